//! Download progress on stderr: a bar redrawn in place on a terminal, a few
//! plain lines otherwise (journals and CI logs should not fill with `\r`).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    total: Option<u64>,
    tty: bool,
    started: Instant,
    last_draw: Instant,
    /// Next quarter to report in plain mode.
    next_quarter: u64,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Progress {
    pub fn start(label: &str, what: &str, total: Option<u64>) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let size = total
            .map(|t| format!(" ({:.1} MiB)", t as f64 / MIB))
            .unwrap_or_default();
        if !tty {
            eprintln!("{label}: {what}{size}");
        }
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            total,
            tty,
            started: now,
            last_draw: now,
            next_quarter: 1,
        }
    }

    pub fn update(&mut self, done: u64) {
        if self.tty {
            if self.last_draw.elapsed() >= Duration::from_millis(100) {
                self.last_draw = Instant::now();
                self.draw(done);
            }
            return;
        }
        if let Some(total) = self.total.filter(|&t| t > 0) {
            while self.next_quarter < 4 && done * 4 >= total * self.next_quarter {
                eprintln!(
                    "{}: {}% ({:.1} of {:.1} MiB)",
                    self.label,
                    self.next_quarter * 25,
                    done as f64 / MIB,
                    total as f64 / MIB
                );
                self.next_quarter += 1;
            }
        }
    }

    fn draw(&self, done: u64) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / MIB / secs;
        let line = match self.total.filter(|&t| t > 0) {
            Some(total) => {
                let frac = (done as f64 / total as f64).min(1.0);
                let filled = (frac * 30.0) as usize;
                format!(
                    "{} [{}{}] {:>3}% {:.1}/{:.1} MiB {:.1} MiB/s",
                    self.label,
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    (frac * 100.0) as u32,
                    done as f64 / MIB,
                    total as f64 / MIB,
                    rate
                )
            }
            None => format!(
                "{} {:.1} MiB {:.1} MiB/s",
                self.label,
                done as f64 / MIB,
                rate
            ),
        };
        let mut err = std::io::stderr().lock();
        // Progress is a courtesy: a closed stderr must not fail the install.
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    /// Ends the bar and says how it went.
    pub fn finish(self, done: u64, outcome: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        if self.tty {
            self.draw(done);
            eprintln!();
        }
        eprintln!(
            "{}: {:.1} MiB in {:.2} s, {outcome}",
            self.label,
            done as f64 / MIB,
            secs
        );
    }

    /// Ends the bar without a summary (the caller reports the failure).
    pub fn abandon(self) {
        if self.tty {
            eprintln!();
        }
    }
}

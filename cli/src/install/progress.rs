//! Download progress on stderr. On a terminal: one line redrawn in place
//! with the bytes so far, the rate over the last few seconds and the time
//! left. Off a terminal (journals, CI logs): nothing while it runs, then one
//! line per artifact with its size, the time it took and the average rate,
//! so logs neither fill with `\r` nor stay silent about what happened.

use super::limits::show_bytes;
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    total: Option<u64>,
    tty: bool,
    started: Instant,
    /// Bytes already there when it started (a resumed download): not part
    /// of this run's rate.
    first: u64,
    last: u64,
    last_draw: Option<Instant>,
    drawn: bool,
    /// (time, bytes) over the last RATE_SPAN, for the rate and the ETA.
    recent: VecDeque<(Instant, u64)>,
}

const REDRAW: Duration = Duration::from_millis(200);
const RATE_SPAN: Duration = Duration::from_secs(5);

/// `0:07`, `12:03`, `1:02:03`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Bytes per second, for humans.
pub fn rate(bytes: u64, over: Duration) -> String {
    let secs = over.as_secs_f64();
    if secs <= 0.0 {
        return "-".to_string();
    }
    format!("{}/s", show_bytes((bytes as f64 / secs) as u64))
}

impl Progress {
    pub fn start(label: &str, total: Option<u64>, already: u64) -> Progress {
        Progress::new(label, total, already, std::io::stderr().is_terminal())
    }

    fn new(label: &str, total: Option<u64>, already: u64, tty: bool) -> Progress {
        let now = Instant::now();
        let mut recent = VecDeque::new();
        recent.push_back((now, already));
        Progress {
            label: label.to_string(),
            total,
            tty,
            started: now,
            first: already,
            last: already,
            last_draw: None,
            drawn: false,
            recent,
        }
    }

    /// The total became known (from Content-Length).
    pub fn set_total(&mut self, total: Option<u64>) {
        if total.is_some() {
            self.total = total;
        }
    }

    /// The file starts again from byte 0 (the server would not resume).
    pub fn restart(&mut self) {
        let now = Instant::now();
        self.first = 0;
        self.last = 0;
        self.started = now;
        self.recent.clear();
        self.recent.push_back((now, 0));
    }

    pub fn update(&mut self, done: u64) {
        self.last = done;
        if !self.tty {
            return;
        }
        let now = Instant::now();
        if self.recent.back().map_or(true, |b| {
            now.duration_since(b.0) >= Duration::from_millis(100)
        }) {
            self.recent.push_back((now, done));
        }
        while self.recent.len() > 2
            && self
                .recent
                .get(1)
                .is_some_and(|s| now.duration_since(s.0) >= RATE_SPAN)
        {
            self.recent.pop_front();
        }
        if self
            .last_draw
            .map_or(true, |t| now.duration_since(t) >= REDRAW)
        {
            self.last_draw = Some(now);
            let line = self.line(now);
            self.draw(&line);
        }
    }

    /// The terminal line: label, bytes, percent, recent rate, time left.
    fn line(&self, now: Instant) -> String {
        let (t0, b0) = self.recent.front().copied().unwrap_or((self.started, 0));
        let span = now.duration_since(t0);
        let recent = self.last.saturating_sub(b0);
        let per_sec = if span.as_secs_f64() > 0.0 {
            recent as f64 / span.as_secs_f64()
        } else {
            0.0
        };
        let speed = if span >= Duration::from_millis(300) {
            rate(recent, span)
        } else {
            "-".to_string()
        };
        match self.total.filter(|&t| t > 0) {
            Some(total) => {
                let pct = (self.last as f64 * 100.0 / total as f64).min(100.0) as u32;
                let eta = if per_sec > 0.0 {
                    let left = total.saturating_sub(self.last) as f64 / per_sec;
                    clock(Duration::from_secs_f64(left.min(360_000.0)))
                } else {
                    "-".to_string()
                };
                format!(
                    "{}  {} of {}  {pct:>3}%  {speed}  ETA {eta}",
                    self.label,
                    show_bytes(self.last),
                    show_bytes(total)
                )
            }
            None => format!("{}  {}  {speed}", self.label, show_bytes(self.last)),
        }
    }

    fn draw(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        // Progress is a courtesy: a closed stderr must not fail the install.
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.tty && self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            self.drawn = false;
        }
    }

    /// A message (a retry, a resume) on a line of its own; the progress
    /// line is redrawn below it at the next update.
    pub fn note(&mut self, message: &str) {
        self.clear();
        eprintln!("{message}");
        self.last_draw = None;
    }

    /// The one line an artifact gets when it is done: size, time, rate.
    pub fn summary(&self, done: u64, outcome: &str) -> String {
        let took = self.started.elapsed();
        let moved = done.saturating_sub(self.first);
        let resumed = if self.first > 0 {
            format!(", resumed at {}", show_bytes(self.first))
        } else {
            String::new()
        };
        format!(
            "{}: {} in {:.1} s ({}{resumed}), {outcome}",
            self.label,
            show_bytes(done),
            took.as_secs_f64(),
            rate(moved, took)
        )
    }

    pub fn finish(mut self, done: u64, outcome: &str) {
        self.clear();
        eprintln!("{}", self.summary(done, outcome));
    }

    /// Ends the line without a summary (the caller reports the failure).
    pub fn abandon(mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_rates() {
        assert_eq!(clock(Duration::from_secs(7)), "0:07");
        assert_eq!(clock(Duration::from_secs(723)), "12:03");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
        assert_eq!(rate(32 * 1024, Duration::from_secs(1)), "32.0 KiB/s");
        assert_eq!(rate(5, Duration::ZERO), "-");
    }

    #[test]
    fn the_terminal_line_has_bytes_rate_and_eta() {
        let mut p = Progress::new("docker.tgz", Some(4 << 20), 0, false);
        let t0 = Instant::now();
        p.recent.clear();
        p.recent.push_back((t0, 0));
        p.last = 1 << 20;
        let line = p.line(t0 + Duration::from_secs(1));
        assert_eq!(
            line,
            "docker.tgz  1.0 MiB of 4.0 MiB   25%  1.0 MiB/s  ETA 0:03"
        );
        p.total = None;
        assert_eq!(
            p.line(t0 + Duration::from_secs(2)),
            "docker.tgz  1.0 MiB  512.0 KiB/s"
        );
    }

    #[test]
    fn the_summary_counts_only_this_runs_bytes() {
        let p = Progress::new("x.tgz", Some(2 << 20), 1 << 20, false);
        let s = p.summary(2 << 20, "downloaded");
        assert!(s.starts_with("x.tgz: 2.0 MiB in "), "{s}");
        assert!(s.contains(", resumed at 1.0 MiB), downloaded"), "{s}");
    }
}

//! Log to the journal when systemd runs us, to stderr otherwise.
//!
//! Units give helpers `JOURNAL_STREAM`; the socket check covers the same
//! helper run by hand on a systemd host. `DOCKYARD_LOG=stderr` forces stderr
//! (tests, debugging) and `DOCKYARD_LOG=journal` forces the journal.

use std::path::Path;

use log::{Level, LevelFilter, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

struct StderrLog {
    ident: &'static str,
}

impl Log for StderrLog {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = match r.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        // Formatted first and written with one call: stderr is unbuffered,
        // and `eprintln!` writes each piece on its own, so lines of helpers
        // running at once would interleave mid-line.
        let line = format!("{}: {level}: {}\n", self.ident, r.args());
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }

    fn flush(&self) {}
}

fn want_journal() -> bool {
    match std::env::var("DOCKYARD_LOG").as_deref() {
        Ok("stderr") => false,
        Ok("journal") => true,
        _ => std::env::var_os("JOURNAL_STREAM").is_some() || Path::new(JOURNAL_SOCKET).exists(),
    }
}

pub fn init(ident: &'static str) {
    let level = match std::env::var("DOCKYARD_LOG_LEVEL").as_deref() {
        Ok("debug") => LevelFilter::Debug,
        Ok("warn") => LevelFilter::Warn,
        _ => LevelFilter::Info,
    };
    if want_journal() {
        if let Ok(j) = JournalLog::new() {
            if j.with_syslog_identifier(ident.to_string())
                .install()
                .is_ok()
            {
                log::set_max_level(level);
                return;
            }
        }
    }
    // Only fails if a logger is already installed; then that one is used.
    let _ = log::set_boxed_logger(Box::new(StderrLog { ident }));
    log::set_max_level(level);
}

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
            let unit = std::fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|c| own_unit(&c));
            if j.with_syslog_identifier(ident.to_string())
                .with_extra_fields(unit.map(|u| ("OBJECT_SYSTEMD_UNIT", u)))
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

/// The service whose cgroup this process is in (`0::/dockyard.slice/
/// dy1_docker.service` gives `dy1_docker.service`). Named in every record
/// as `OBJECT_SYSTEMD_UNIT=`: a helper that fails and exits at once is gone
/// before journald can read its cgroup, and its last message, the one that
/// says why the start failed, would be missing from `systemctl status`.
/// systemd shows a root process's records for that unit too.
fn own_unit(cgroup: &str) -> Option<String> {
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let last = path.trim_end().rsplit('/').next()?;
    last.ends_with(".service").then(|| last.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_is_the_last_service_of_the_cgroup() {
        assert_eq!(
            own_unit("0::/dockyard.slice/dy1_docker.service\n").as_deref(),
            Some("dy1_docker.service")
        );
        assert_eq!(
            own_unit("0::/user.slice/user-0.slice/session-3.scope\n"),
            None
        );
        assert_eq!(own_unit("1:name=systemd:/x.service\n"), None);
    }
}

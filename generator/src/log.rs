//! Logging for a generator: systemd.generator(7) allows no IPC, so the only
//! channel is /dev/kmsg (`<PRI>dockyard-generator[PID]: message`), read back
//! with `journalctl -b -t dockyard-generator`. Inside containers there is no
//! /dev/kmsg; then, and for --dry-run, messages go to stderr.

use std::fs::{File, OpenOptions};
use std::io::Write;

/// syslog priorities, as systemd's SYSTEMD_LOG_LEVEL names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

pub fn parse_level(value: &str) -> Option<u8> {
    match value.trim() {
        "emerg" => Some(0),
        "alert" => Some(1),
        "crit" => Some(2),
        "err" | "error" => Some(3),
        "warning" | "warn" => Some(4),
        "notice" => Some(5),
        "info" => Some(6),
        "debug" => Some(7),
        n => n.parse::<u8>().ok().filter(|l| *l <= 7),
    }
}

enum Sink {
    Kmsg(File),
    Stderr,
}

pub struct Logger {
    sink: Sink,
    max_level: u8,
    pid: u32,
}

impl Logger {
    /// `force_stderr` for --dry-run. SYSTEMD_LOG_TARGET=console selects
    /// stderr as it does for systemd's own generators.
    pub fn new(force_stderr: bool) -> Logger {
        let max_level = std::env::var("SYSTEMD_LOG_LEVEL")
            .ok()
            .and_then(|v| parse_level(&v))
            .unwrap_or(Level::Info as u8);
        let target = std::env::var("SYSTEMD_LOG_TARGET").unwrap_or_default();
        let wants_console =
            force_stderr || matches!(target.as_str(), "console" | "console-prefixed");
        let sink = if wants_console {
            Sink::Stderr
        } else {
            OpenOptions::new()
                .write(true)
                .open("/dev/kmsg")
                .map(Sink::Kmsg)
                .unwrap_or(Sink::Stderr)
        };
        Logger {
            sink,
            max_level,
            pid: std::process::id(),
        }
    }

    pub fn enabled(&self, level: Level) -> bool {
        level as u8 <= self.max_level
    }

    pub fn log(&self, level: Level, message: &str) {
        if !self.enabled(level) {
            return;
        }
        match &self.sink {
            Sink::Kmsg(file) => {
                // One write per record: the kernel treats each write as one
                // line. Errors are ignored: there is nowhere else to report.
                let line = format!(
                    "<{}>dockyard-generator[{}]: {}\n",
                    level as u8, self.pid, message
                );
                let _ = (&*file).write_all(line.as_bytes());
            }
            Sink::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "dockyard-generator: {message}");
            }
        }
    }
}

/// One kernel log record: `<PRI>ident[PID]: message`, the format journald
/// parses into priority, SYSLOG_IDENTIFIER and _PID (so
/// `journalctl -t dockyard-generator` finds it). Newlines would split the
/// record, so they become spaces.
pub fn kmsg_record(level: Level, pid: u32, message: &str) -> String {
    format!(
        "<{}>dockyard-generator[{pid}]: {}\n",
        level as u8,
        message.replace('\n', " ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_records() {
        assert_eq!(
            kmsg_record(
                Level::Err,
                42,
                "/etc/dockyard/instances.d/a.conf:3: error: x"
            ),
            "<3>dockyard-generator[42]: /etc/dockyard/instances.d/a.conf:3: error: x\n"
        );
        assert_eq!(
            kmsg_record(Level::Warning, 1, "a\nb"),
            "<4>dockyard-generator[1]: a b\n"
        );
    }

    #[test]
    fn levels() {
        assert_eq!(parse_level("debug"), Some(7));
        assert_eq!(parse_level("4"), Some(4));
        assert_eq!(parse_level("8"), None);
        assert_eq!(parse_level("loud"), None);
    }
}

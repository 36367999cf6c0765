//! Logging for a generator. systemd.generator(7) asks generators not to
//! talk to other services, and systemd's own generators log to /dev/kmsg
//! (journald reads it back). Inside a container there is no /dev/kmsg and
//! a generator's stderr goes to the container's console, not the journal.
//! So messages go, in this order of preference:
//!
//! 1. the journal's native socket (`/run/systemd/journal/socket`), sent
//!    without blocking: at a `daemon-reload` journald is up and the
//!    message lands with its priority and `SYSLOG_IDENTIFIER`; early at
//!    boot the socket does not exist yet, and a full socket buffer never
//!    makes the generator wait for journald (which PID 1, blocked on the
//!    generator, could not start: the deadlock systemd avoids by
//!    forbidding IPC to its generators);
//! 2. /dev/kmsg (`<PRI>dockyard-generator[PID]: message`), as systemd's
//!    own generators;
//! 3. stderr, also for --dry-run and SYSTEMD_LOG_TARGET=console.
//!
//! Each message tries the next sink when one fails, so none is lost to a
//! journald restart. `journalctl -b -t dockyard-generator` finds them in
//! either of the first two.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// journald's native protocol socket (systemd-journald.service(8)).
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
pub const IDENT: &str = "dockyard-generator";

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

/// Where the messages go, best first; each message takes the first that
/// accepts it.
struct Sinks {
    journal: Option<(UnixDatagram, PathBuf)>,
    kmsg: Option<File>,
}

pub struct Logger {
    sinks: Sinks,
    max_level: u8,
    pid: u32,
}

impl Logger {
    /// `force_stderr` for --dry-run. SYSTEMD_LOG_TARGET=console selects
    /// stderr as it does for systemd's own generators.
    pub fn new(force_stderr: bool) -> Logger {
        Logger::with_paths(
            force_stderr,
            Path::new(JOURNAL_SOCKET),
            Path::new("/dev/kmsg"),
        )
    }

    /// [`Logger::new`] with other socket and kmsg paths, for tests.
    pub fn with_paths(force_stderr: bool, journal: &Path, kmsg: &Path) -> Logger {
        let max_level = std::env::var("SYSTEMD_LOG_LEVEL")
            .ok()
            .and_then(|v| parse_level(&v))
            .unwrap_or(Level::Info as u8);
        let target = std::env::var("SYSTEMD_LOG_TARGET").unwrap_or_default();
        let wants_console =
            force_stderr || matches!(target.as_str(), "console" | "console-prefixed");
        let sinks = if wants_console {
            Sinks {
                journal: None,
                kmsg: None,
            }
        } else {
            Sinks {
                journal: open_journal(journal).map(|s| (s, journal.to_path_buf())),
                kmsg: OpenOptions::new().write(true).open(kmsg).ok(),
            }
        };
        Logger {
            sinks,
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
        // Errors are ignored at the last sink: there is nowhere else to
        // report them.
        if let Some((sock, path)) = &self.sinks.journal {
            if sock
                .send_to(&journal_record(level, self.pid, message), path)
                .is_ok()
            {
                return;
            }
        }
        if let Some(file) = &self.sinks.kmsg {
            // One write per record: the kernel treats each write as one line.
            if (&*file)
                .write_all(kmsg_record(level, self.pid, message).as_bytes())
                .is_ok()
            {
                return;
            }
        }
        let _ = writeln!(std::io::stderr().lock(), "{IDENT}: {message}");
    }
}

fn open_journal(path: &Path) -> Option<UnixDatagram> {
    // Only a socket that exists is worth a try; unbound, non-blocking.
    std::fs::symlink_metadata(path).ok()?;
    let sock = UnixDatagram::unbound().ok()?;
    sock.set_nonblocking(true).ok()?;
    Some(sock)
}

/// One journal entry in the native protocol: `FIELD=value` lines, and the
/// binary form (`FIELD\n`, little-endian u64 length, bytes, `\n`) for a
/// message with a newline in it.
pub fn journal_record(level: Level, pid: u32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 96);
    out.extend_from_slice(format!("PRIORITY={}\n", level as u8).as_bytes());
    out.extend_from_slice(format!("SYSLOG_IDENTIFIER={IDENT}\nSYSLOG_PID={pid}\n").as_bytes());
    if message.contains('\n') {
        out.extend_from_slice(b"MESSAGE\n");
        out.extend_from_slice(&(message.len() as u64).to_le_bytes());
        out.extend_from_slice(message.as_bytes());
        out.push(b'\n');
    } else {
        out.extend_from_slice(b"MESSAGE=");
        out.extend_from_slice(message.as_bytes());
        out.push(b'\n');
    }
    out
}

/// One kernel log record: `<PRI>ident[PID]: message`, the format journald
/// parses into priority, SYSLOG_IDENTIFIER and _PID (so
/// `journalctl -t dockyard-generator` finds it). Newlines would split the
/// record, so they become spaces.
pub fn kmsg_record(level: Level, pid: u32, message: &str) -> String {
    format!(
        "<{}>{IDENT}[{pid}]: {}\n",
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
    fn journal_records() {
        assert_eq!(
            journal_record(Level::Err, 7, "a.conf:3: error: x"),
            b"PRIORITY=3\nSYSLOG_IDENTIFIER=dockyard-generator\nSYSLOG_PID=7\nMESSAGE=a.conf:3: error: x\n"
        );
        let two = journal_record(Level::Warning, 1, "a\nb");
        assert!(
            two.ends_with(b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n"),
            "{two:?}"
        );
    }

    /// No /dev/kmsg (a container): the message reaches the journal socket;
    /// no socket either: it still goes somewhere (stderr), never lost.
    #[test]
    fn the_journal_socket_comes_first_and_kmsg_is_not_needed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sock_path = tmp.path().join("socket");
        let journald = UnixDatagram::bind(&sock_path).expect("bind");
        let logger = Logger::with_paths(false, &sock_path, &tmp.path().join("no-kmsg"));
        logger.log(Level::Err, "dy1.conf:2: error: hello");
        let mut buf = [0u8; 512];
        let n = journald.recv(&mut buf).expect("a record");
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.contains("PRIORITY=3\n"), "{got}");
        assert!(got.contains("MESSAGE=dy1.conf:2: error: hello\n"), "{got}");
        // The socket gone (journald restarting): the next sink, no panic.
        drop(journald);
        logger.log(Level::Err, "second");
    }

    #[test]
    fn levels() {
        assert_eq!(parse_level("debug"), Some(7));
        assert_eq!(parse_level("4"), Some(4));
        assert_eq!(parse_level("8"), None);
        assert_eq!(parse_level("loud"), None);
    }
}

//! Reading one conf file defensively.
//!
//! The generator runs at boot with a 90 s budget shared by all generators, so
//! a conf that is a FIFO, a directory, a symlink loop, a huge or a binary file
//! must produce one clear message and never a hang or a crash.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Confs are a dozen lines; anything bigger is a mistake (a log file renamed,
/// a binary dropped in the wrong place), not a conf worth parsing.
pub const MAX_CONF_BYTES: u64 = 64 * 1024;

const O_NONBLOCK: i32 = 0o4000;

/// A conf's text and its modification time (from the same fstat, so the
/// loader needs no second stat for conflict precedence).
pub struct ConfText {
    pub text: String,
    pub modified: std::time::SystemTime,
}

/// Reads a conf file as UTF-8 text, or says in one sentence why it cannot.
pub fn read_conf_text(path: &Path) -> Result<String, String> {
    read_conf(path).map(|c| c.text)
}

pub fn read_conf(path: &Path) -> Result<ConfText, String> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise block forever.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(|e| describe_open_error(&e))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect file: {e}"))?;
    if meta.is_dir() {
        return Err(
            "is a directory, not a conf file; rename it or move it out of instances.d".into(),
        );
    }
    if !meta.is_file() {
        return Err(
            "is not a regular file (a FIFO, socket or device?); confs must be regular files".into(),
        );
    }
    if meta.len() > MAX_CONF_BYTES {
        return Err(format!(
            "is {} bytes, larger than the {} KiB a conf may be; is this really a Dockyard conf?",
            meta.len(),
            MAX_CONF_BYTES / 1024
        ));
    }
    let modified = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    read_bounded(file, meta.len()).map(|text| ConfText { text, modified })
}

fn read_bounded(file: File, size_hint: u64) -> Result<String, String> {
    // Sized from fstat so a conf is read in one call plus the EOF check.
    let mut bytes = Vec::with_capacity(size_hint as usize + 1);
    // Bound the read too: the file may grow between fstat and read.
    file.take(MAX_CONF_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read file: {e}"))?;
    if bytes.len() as u64 > MAX_CONF_BYTES {
        return Err(format!(
            "is larger than the {} KiB a conf may be",
            MAX_CONF_BYTES / 1024
        ));
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(format!(
            "contains a NUL byte at offset {at}: this is a binary file, not a conf"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "is not valid UTF-8 text (bad byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

fn describe_open_error(e: &io::Error) -> String {
    // ELOOP has no stable io::ErrorKind; match the raw errno.
    const ELOOP: i32 = 40;
    match (e.kind(), e.raw_os_error()) {
        (_, Some(ELOOP)) => "is a symlink loop (too many levels of symbolic links)".into(),
        (io::ErrorKind::NotFound, _) => "does not exist (a dangling symlink?)".into(),
        (io::ErrorKind::PermissionDenied, _) => {
            "cannot be read: permission denied; make it readable by root (chmod 0644)".into()
        }
        _ => format!("cannot be opened: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dockyard-source-test-{}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace("::", "-")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn reads_text() {
        let dir = temp_dir();
        let p = dir.join("a.conf");
        std::fs::write(&p, "[Instance]\n").expect("write");
        assert_eq!(read_conf_text(&p).as_deref(), Ok("[Instance]\n"));
    }

    #[test]
    fn refuses_binary_large_dir_loop_and_fifo() {
        let dir = temp_dir();
        let bin = dir.join("bin.conf");
        std::fs::write(&bin, b"\x7fELF\x00\x01").expect("write");
        assert!(read_conf_text(&bin).unwrap_err().contains("NUL byte"));

        let latin1 = dir.join("latin1.conf");
        std::fs::write(&latin1, b"Root=/caf\xe9\n").expect("write");
        assert!(read_conf_text(&latin1).unwrap_err().contains("UTF-8"));

        let big = dir.join("big.conf");
        let mut f = File::create(&big).expect("create");
        f.write_all(&vec![b'#'; 70 * 1024]).expect("write");
        assert!(read_conf_text(&big).unwrap_err().contains("larger than"));

        let d = dir.join("d.conf");
        std::fs::create_dir(&d).expect("mkdir");
        assert!(read_conf_text(&d).unwrap_err().contains("is a directory"));

        let l = dir.join("loop.conf");
        std::os::unix::fs::symlink(&l, &l).expect("symlink");
        assert!(read_conf_text(&l).unwrap_err().contains("symlink loop"));

        let fifo = dir.join("fifo.conf");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
        assert!(read_conf_text(&fifo)
            .unwrap_err()
            .contains("not a regular file"));
    }
}

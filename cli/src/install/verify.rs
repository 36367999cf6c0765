//! sha256 on the fly. Every byte that reaches the store is hashed as it is
//! copied (download or `--from`), so nothing is read twice and nothing is
//! unpacked before its digest matched the manifest.

use crate::error::{Exit, Failure, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// 256 KiB: large enough that syscalls are a rounding error next to
/// hashing, small enough to stay in L2.
pub const BUF_SIZE: usize = 256 * 1024;

pub fn hex(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(digest.len() * 2);
    for b in digest {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// Which side of a copy failed: a read error may be a network hiccup worth
/// retrying, a write error (disk full) never is.
#[derive(Debug)]
pub enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// What a copy produced.
#[derive(Debug, Clone)]
pub struct Copied {
    pub bytes: u64,
    pub sha256: String,
}

/// Copies `from` into `to`, hashing on the way; `on_progress` gets the
/// byte count after every chunk.
pub fn copy_hashed(
    from: &mut dyn Read,
    to: &mut dyn Write,
    on_progress: &mut dyn FnMut(u64),
) -> std::result::Result<Copied, CopyError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut bytes = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        bytes += n as u64;
        on_progress(bytes);
    }
    Ok(Copied {
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}

/// sha256 of a file already on disk (an installed binary being re-verified).
pub fn hash_file(path: &Path) -> io::Result<Copied> {
    let mut file = File::open(path)?;
    copy_hashed(&mut file, &mut io::sink(), &mut |_| {}).map_err(|e| match e {
        CopyError::Read(e) | CopyError::Write(e) => e,
    })
}

/// The refusal every mismatch gets: both digests, where the pin came from,
/// and what to do about it.
pub fn check(expected: &str, actual: &Copied, what: &str, manifest: &Path) -> Result<()> {
    if actual.sha256 == expected {
        return Ok(());
    }
    Err(Failure::new(
        Exit::Checksum,
        format!(
            "checksum mismatch for {what}: expected sha256 {expected} (pinned in {}), got {} \
             ({} bytes); the file was discarded and nothing was installed. If the pin is right, \
             the server, mirror or local copy holds a different file; fetch it again from the \
             upstream URL. Change the pin only after checking the new file's origin.",
            manifest.display(),
            actual.sha256,
            actual.bytes
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_while_copying() {
        let mut out = Vec::new();
        let mut seen = 0;
        let copied = copy_hashed(&mut &b"abc"[..], &mut out, &mut |n| seen = n).expect("copy");
        assert_eq!(out, b"abc");
        assert_eq!(seen, 3);
        assert_eq!(
            copied.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = check(&"0".repeat(64), &copied, "x.tgz", Path::new("m.toml")).unwrap_err();
        assert_eq!(err.exit, Exit::Checksum);
        assert!(err.message.contains(&"0".repeat(64)) && err.message.contains(&copied.sha256));
    }
}

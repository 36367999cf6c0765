//! One error type for the whole CLI: a message written for the admin (what
//! failed, on which file or URL, and what to do) and the exit code that
//! tells scripts which kind of failure it was. The codes are part of the
//! interface (documented in `dockyard --help`), so they live in one place.

use std::fmt;

/// Exit codes. 2 is clap's own code for a usage error, kept for ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// I/O, unpacking or store problems: anything not listed below.
    Failed = 1,
    Usage = 2,
    /// The manifest is unreadable or invalid, or does not pin what was asked.
    Manifest = 3,
    /// A download failed for good (404, retries used up) or a `--from` file is missing.
    Download = 4,
    /// An artifact or an installed file does not have the pinned sha256.
    Checksum = 5,
    /// Refused to change the store: a version is in use, or in the way.
    Refused = 6,
}

/// The top-level summary; each subcommand's --help lists its own codes.
pub const TOP_EXIT_CODES_HELP: &str = "\
Exit codes (each subcommand's --help says which of them it uses and when):
  0  success, including: nothing to do
  1  failure (the message names what failed and what to do)
  2  usage error
  3  install: manifest unreadable, invalid, or not pinning what was asked for
  4  install: download failed for good
  5  install: checksum mismatch
  6  refused, nothing changed: something is in use or in the way, or no confirmation";

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (including: already installed and verified, nothing to do)
  1  failure: I/O, unpacking, disk full, store problems
  2  usage error
  3  manifest unreadable or invalid, or it does not pin the version/arch asked for
  4  download failed: HTTP 404 or other final status, retries exhausted, idle or rate bound
     reached, TLS failure, over --max-size, --from file missing
  5  checksum mismatch: an artifact or an installed file is not what the manifest pins
     (its sha256, or its pinned size)
  6  refused: the version is pinned by an instance, or a version directory is in the way";

#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Failed, message)
    }

    /// An I/O error on `path`, with the usual fixes for the usual causes.
    pub fn io(what: &str, path: &std::path::Path, e: &std::io::Error) -> Failure {
        let hint = match e.raw_os_error() {
            Some(libc_enospc) if libc_enospc == nix::libc::ENOSPC => {
                "; the disk is full: free space on that filesystem or choose another store with --store"
            }
            Some(code) if code == nix::libc::EACCES || code == nix::libc::EPERM => {
                "; run as root (the store is root's)"
            }
            Some(code) if code == nix::libc::EROFS => "; the filesystem is read-only",
            _ => "",
        };
        Failure::failed(format!("{what} {}: {e}{hint}", path.display()))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

//! The install lock: `flock` on `STORE/.lock`. Held by every command that
//! changes the store, so two installs (or an install and a remove) never
//! interleave. flock dies with the process, so a killed install never
//! leaves a stale lock behind, unlike a pid file.

use crate::error::{Failure, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::Path;

pub struct StoreLock {
    _lock: Flock<File>,
}

pub const LOCK_FILE: &str = ".lock";

impl StoreLock {
    /// Takes the lock, waiting (and saying so) while another holds it.
    pub fn acquire(store: &Path) -> Result<StoreLock> {
        let path = store.join(LOCK_FILE);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Failure::io("cannot open the install lock", &path, &e))?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(StoreLock { _lock: lock }),
            Err((file, Errno::EWOULDBLOCK)) => file,
            Err((_, errno)) => return Err(lock_failed(&path, errno)),
        };
        eprintln!(
            "waiting for another dockyard install to finish (it holds {})",
            path.display()
        );
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => return Ok(StoreLock { _lock: lock }),
                Err((f, Errno::EINTR)) => file = f,
                Err((_, errno)) => return Err(lock_failed(&path, errno)),
            }
        }
    }
}

fn lock_failed(path: &Path, errno: Errno) -> Failure {
    Failure::io(
        "cannot lock",
        path,
        &std::io::Error::from_raw_os_error(errno as i32),
    )
}

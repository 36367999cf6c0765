//! The instance's directories, its daemon.json and its stale socket.
//!
//! Ownership is set on each named directory only, through a file descriptor
//! opened with O_NOFOLLOW (no symlink can redirect it) and never recursively:
//! the bash tool's `chown -R` handed root-run files to the instance user.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::bail;
use crate::error::{Context, Error, Result};

/// Who must own a directory, its mode, and which non-root owner we accept
/// finding there (the instance user, e.g. after the old bash tool's chown).
pub struct DirSpec<'a> {
    pub what: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub tolerated_uid: Option<u32>,
}

/// Refuse early, before any account is created, what `ensure_dir` would
/// refuse later: a symlink, a non-directory, a foreign owner.
pub fn precheck(path: &Path, what: &str, tolerated_uid: Option<u32>) -> Result<()> {
    let spec = DirSpec {
        what,
        uid: 0,
        gid: 0,
        mode: 0,
        tolerated_uid,
    };
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => bail!("cannot inspect the {what} {}: {e}", path.display()),
        Ok(m) if m.file_type().is_symlink() => Err(symlink_refused(path, &spec)),
        Ok(m) if !m.is_dir() => Err(not_a_dir(path, &spec)),
        Ok(m) if m.uid() != 0 && Some(m.uid()) != tolerated_uid => {
            Err(foreign_owner(path, &spec, m.uid()))
        }
        Ok(_) => Ok(()),
    }
}

/// Create `path` (and missing parents, as root 0755) and set owner and mode
/// of `path` itself. Refuses symlinks, non-directories and foreign owners.
pub fn ensure_dir(path: &Path, spec: &DirSpec) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).ctx(|| {
                    format!(
                        "cannot create {} (parent of the {})",
                        parent.display(),
                        spec.what
                    )
                })?;
            }
            match DirBuilder::new().mode(spec.mode).create(path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => bail!("cannot create the {} {}: {e}", spec.what, path.display()),
            }
        }
        Err(e) => bail!("cannot inspect the {} {}: {e}", spec.what, path.display()),
        Ok(m) if m.file_type().is_symlink() => return Err(symlink_refused(path, spec)),
        Ok(m) if !m.is_dir() => return Err(not_a_dir(path, spec)),
        Ok(_) => {}
    }
    // Open without following a symlink, then check and change through the fd
    // so that what we checked is what we chown.
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // Swapped for a link or a file since we looked (ELOOP, or ENOTDIR
            // because O_DIRECTORY is checked first): same refusal.
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => match fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => symlink_refused(path, spec),
                _ => not_a_dir(path, spec),
            },
            _ => Error::new(format!(
                "cannot open the {} {}: {e}",
                spec.what,
                path.display()
            )),
        })?;
    let meta = dir
        .metadata()
        .ctx(|| format!("cannot inspect the {} {}", spec.what, path.display()))?;
    let owner = meta.uid();
    if owner != 0 && owner != spec.uid && Some(owner) != spec.tolerated_uid {
        return Err(foreign_owner(path, spec, owner));
    }
    if owner != spec.uid || meta.gid() != spec.gid {
        nix::unistd::fchown(
            &dir,
            Some(nix::unistd::Uid::from_raw(spec.uid)),
            Some(nix::unistd::Gid::from_raw(spec.gid)),
        )
        .ctx(|| format!("cannot set owner of the {} {}", spec.what, path.display()))?;
    }
    if meta.permissions().mode() & 0o7777 != spec.mode {
        dir.set_permissions(fs::Permissions::from_mode(spec.mode))
            .ctx(|| format!("cannot set mode of the {} {}", spec.what, path.display()))?;
    }
    Ok(())
}

fn symlink_refused(path: &Path, spec: &DirSpec) -> Error {
    Error::new(format!(
        "the {} {} is a symlink; Dockyard does not follow symlinks here (a link could point at a system directory). Replace it with a real directory or use the real path",
        spec.what,
        path.display()
    ))
}

fn foreign_owner(path: &Path, spec: &DirSpec, owner: u32) -> Error {
    Error::new(format!(
        "the {} {} is owned by uid {owner}, which is neither root nor this instance's user; it may belong to something else, so Dockyard will not take it over. Choose another path or chown it to root yourself",
        spec.what,
        path.display()
    ))
}

fn not_a_dir(path: &Path, spec: &DirSpec) -> Error {
    Error::new(format!(
        "the {} {} exists but is not a directory; move it away",
        spec.what,
        path.display()
    ))
}

/// Replace `path` atomically: write a temp file beside it, fsync, rename,
/// fsync the directory. A crash leaves the old file or the new one, never a
/// half-written one (dockerd refuses a truncated daemon.json).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("{} is not a file path", path.display());
    };
    // The pid keeps two writers of the same file (two `up`s racing, or
    // parallel tests) from sharing one temporary name; the last rename wins
    // and neither ever sees a half-written file.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.dockyard-tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    // A leftover from a crashed run that had this pid: unlink (never follows
    // a symlink) and recreate.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            bail!("cannot remove stale temp file {}: {e}", tmp.display())
        }
        _ => {}
    }
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::new(format!("cannot write {}: {e}", path.display()))
    })
}

pub enum SocketState {
    Absent,
    Removed,
    InUse,
    NotASocket,
}

/// Remove a unix socket left by a killed dockerd (nobody accepts on it).
/// One that still accepts connections is left in place and reported.
pub fn remove_stale_socket(path: &Path) -> Result<SocketState> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(SocketState::Absent),
        Err(e) => bail!("cannot inspect {}: {e}", path.display()),
        Ok(m) => m,
    };
    if !meta.file_type().is_socket() {
        return Ok(SocketState::NotASocket);
    }
    match UnixStream::connect(path) {
        Ok(_) => Ok(SocketState::InUse),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => match fs::remove_file(path) {
            Ok(()) => Ok(SocketState::Removed),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(SocketState::Absent),
            Err(e) => bail!("cannot remove stale socket {}: {e}", path.display()),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(SocketState::Absent),
        Err(e) => bail!("cannot probe socket {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("daemon.json");
        write_atomic(&p, b"{}").unwrap();
        write_atomic(&p, b"{\"a\":1}").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{\"a\":1}");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("daemon.json")]);
    }

    #[test]
    fn stale_socket_is_removed_live_one_kept() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("docker.sock");
        assert!(matches!(
            remove_stale_socket(&p).unwrap(),
            SocketState::Absent
        ));
        let l = UnixListener::bind(&p).unwrap();
        assert!(matches!(
            remove_stale_socket(&p).unwrap(),
            SocketState::InUse
        ));
        drop(l); // the socket file stays, nobody listens any more
        assert!(p.exists());
        assert!(matches!(
            remove_stale_socket(&p).unwrap(),
            SocketState::Removed
        ));
        assert!(!p.exists());
        fs::write(&p, b"x").unwrap();
        assert!(matches!(
            remove_stale_socket(&p).unwrap(),
            SocketState::NotASocket
        ));
    }
}

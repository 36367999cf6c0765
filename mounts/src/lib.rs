//! Detaching what is mounted below a directory: what a killed dockerd
//! leaves behind (netns mounts under its exec-root, overlay and shm mounts
//! under its data root). `dockyard-prepare down` and `dockyard destroy`
//! both need it, and they must agree on which mounts those are.
//!
//! A crate of its own because the model stays free of system calls and the
//! CLI does not depend on the helpers' binary. The parsing of mountinfo is
//! the model's (`dockyard_model::mountinfo`); this crate reads the file and
//! makes the `umount2(MNT_DETACH)` calls.

use std::fmt;
use std::path::{Path, PathBuf};

use dockyard_model::mountinfo::{below, parse_mountinfo};
use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};

/// The calling process's view of the mounts.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// [`MOUNTINFO`] could not be read.
#[derive(Debug)]
pub struct ReadError(pub std::io::Error);

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {MOUNTINFO}: {}", self.0)
    }
}

impl std::error::Error for ReadError {}

/// The text of [`MOUNTINFO`], for [`mounted_below`].
pub fn read_mountinfo() -> Result<Vec<u8>, ReadError> {
    std::fs::read(MOUNTINFO).map_err(ReadError)
}

/// Mount points strictly below `base` in a mountinfo text, deepest first.
/// `base` is compared as given: mountinfo shows resolved paths, so pass a
/// path without symlinks (as [`unmount_below`] does).
pub fn mounted_below(mountinfo: &[u8], base: &Path) -> Vec<PathBuf> {
    below(&parse_mountinfo(mountinfo), base)
        .into_iter()
        .map(|m| m.mount_point)
        .collect()
}

/// Is `path` itself a mount point in a mountinfo text?
pub fn is_mount_point(mountinfo: &[u8], path: &Path) -> bool {
    parse_mountinfo(mountinfo)
        .iter()
        .any(|m| m.mount_point == path)
}

/// One mount that would not go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub mount_point: PathBuf,
    pub errno: Errno,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot unmount {}: {}",
            self.mount_point.display(),
            self.errno
        )
    }
}

/// What [`unmount_below`] did: every mount is tried, so one that will not
/// go does not keep the others in place.
#[derive(Debug, Default)]
pub struct Unmounted {
    pub detached: usize,
    pub failed: Vec<Failure>,
}

/// Detaches everything mounted strictly below each base (never a base
/// itself: that may be the admin's own file system), deepest first.
///
/// Each base is resolved first (when it exists), because mountinfo lists
/// resolved paths: a base reached through a symlink would otherwise match
/// nothing, and its mounts would stay, holding the instance's network
/// namespaces and overlays, and keeping `destroy` from deleting the data.
pub fn unmount_below(bases: &[PathBuf]) -> Result<Unmounted, ReadError> {
    let text = read_mountinfo()?;
    let mounts = parse_mountinfo(&text);
    let mut done = Unmounted::default();
    for base in bases {
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.clone());
        for m in below(&mounts, &base) {
            match umount2(&m.mount_point, MntFlags::MNT_DETACH) {
                Ok(()) => done.detached += 1,
                // Already gone: detaching a parent took its children along.
                Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
                Err(errno) => done.failed.push(Failure {
                    mount_point: m.mount_point,
                    errno,
                }),
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_below_the_root_are_found() {
        let info = b"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
102 22 0:50 / /srv/dy1/docker/overlay2/l1/merged rw - overlay overlay rw\n\
103 22 0:51 / /srv/dy10/docker/overlay2/x/merged rw - overlay overlay rw\n\
104 22 0:52 / /srv/dy1 rw - ext4 /dev/sdb1 rw\n";
        assert_eq!(
            mounted_below(info, Path::new("/srv/dy1")),
            [PathBuf::from("/srv/dy1/docker/overlay2/l1/merged")]
        );
        assert!(is_mount_point(info, Path::new("/srv/dy1")));
        assert!(!is_mount_point(info, Path::new("/srv/dy10")));
    }

    #[test]
    fn deeper_mounts_come_first() {
        let info = b"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
102 22 0:50 / /srv/dy1/docker/overlay2/l1/merged rw - overlay overlay rw\n\
105 102 0:53 / /srv/dy1/docker/overlay2/l1/merged/dev/shm rw - tmpfs shm rw\n";
        assert_eq!(
            mounted_below(info, Path::new("/srv/dy1")),
            [
                PathBuf::from("/srv/dy1/docker/overlay2/l1/merged/dev/shm"),
                PathBuf::from("/srv/dy1/docker/overlay2/l1/merged"),
            ]
        );
    }

    #[test]
    fn messages_name_the_file_and_the_mount() {
        let e = ReadError(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(e
            .to_string()
            .starts_with("cannot read /proc/self/mountinfo: "));
        let f = Failure {
            mount_point: "/srv/dy1/docker/x".into(),
            errno: Errno::EBUSY,
        };
        assert_eq!(
            f.to_string(),
            "cannot unmount /srv/dy1/docker/x: EBUSY: Device or resource busy"
        );
    }
}

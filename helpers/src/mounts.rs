//! Mounts a killed dockerd leaves behind (netns under its exec-root, overlay
//! and shm mounts under its data root), found in /proc/self/mountinfo and
//! detached deepest first.

use std::path::PathBuf;

use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};

use crate::error::{Context, Failures, Result};

pub use dockyard_model::mountinfo::{below, parse_mountinfo};

/// Detach everything mounted below each base; returns how many went.
pub fn unmount_below(bases: &[PathBuf]) -> Result<usize> {
    let text = std::fs::read("/proc/self/mountinfo").ctx(|| "cannot read /proc/self/mountinfo")?;
    let mounts = parse_mountinfo(&text);
    let mut f = Failures::default();
    let mut n = 0;
    for base in bases {
        // mountinfo shows resolved paths; resolve ours the same way.
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.clone());
        for m in below(&mounts, &base) {
            match umount2(&m.mount_point, MntFlags::MNT_DETACH) {
                Ok(()) => n += 1,
                // Already gone: detaching a parent took its children along.
                Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
                Err(e) => {
                    f.record::<()>(Err(crate::error::Error::new(format!(
                        "cannot unmount {}: {e}",
                        m.mount_point.display()
                    ))));
                }
            }
        }
    }
    f.finish("unmounting leftovers").map(|()| n)
}

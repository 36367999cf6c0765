//! Mounts a killed dockerd leaves behind (netns under its exec-root, overlay
//! and shm mounts under its data root), detached deepest first by
//! `dockyard_mounts`, which `dockyard destroy` uses too.

use std::path::PathBuf;

use crate::error::{Error, Failures, Result};

/// Detach everything mounted below each base; returns how many went. Each
/// mount that stays is logged; the error counts them.
pub fn unmount_below(bases: &[PathBuf]) -> Result<usize> {
    let done = dockyard_mounts::unmount_below(bases).map_err(|e| Error::new(e.to_string()))?;
    let mut f = Failures::default();
    for failure in &done.failed {
        f.record::<()>(Err(Error::new(failure.to_string())));
    }
    f.finish("unmounting leftovers").map(|()| done.detached)
}

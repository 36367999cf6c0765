//! Writing and removing the records of `up` (`dockyard_model::state` says
//! where they live and `dockyard_model::contract` what is in them).

use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;

use dockyard_model::contract::Record;
use dockyard_model::state;
use dockyard_model::InstanceName;

use crate::bail;
use crate::dirs;
use crate::error::{Context, Error, Result};

pub fn save(instance: &InstanceName, record: &str, text: &str) -> Result<()> {
    let dir = state::instance_dir(instance);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ctx(|| format!("cannot create {}", dir.display()))?;
    dirs::write_atomic(&state::path(instance, record), text.as_bytes())
}

pub fn load(instance: &InstanceName, record: &str) -> Result<Option<Record>> {
    state::load(instance, record).map_err(Error::new)
}

/// Forget what `up` recorded; the instance's directory goes with its last file.
pub fn remove(instance: &InstanceName, record: &str) -> Result<()> {
    let path = state::path(instance, record);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => bail!("cannot remove {}: {e}", path.display()),
    }
    let _ = std::fs::remove_dir(state::instance_dir(instance)); // fails while not empty
    Ok(())
}

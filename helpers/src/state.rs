//! What `up` recorded for `down`: `/run/dockyard/NAME/{network,prepare}`,
//! `key=value` lines, removed again by `down`.
//!
//! Generated units carry every value on their `ExecStopPost=` lines, but
//! when an instance's conf is removed (or broken) while it runs, the next
//! `daemon-reload` replaces its unit by one the generator writes from the
//! instance name alone (dockyard-generator(8)); that unit calls
//! `down --instance NAME`, and the values come from here. /run is empty
//! after a reboot, as are the bridges and rules these files describe.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crate::bail;
use crate::dirs;
use crate::error::{Context, Result};

pub const DIR: &str = "/run/dockyard";

/// `DOCKYARD_STATE_DIR` overrides the directory, for tests.
fn base() -> PathBuf {
    std::env::var_os("DOCKYARD_STATE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DIR))
}

fn file(instance: &str, kind: &str) -> PathBuf {
    base().join(instance).join(kind)
}

pub fn save(instance: &str, kind: &str, values: &[(&str, String)]) -> Result<()> {
    let dir = base().join(instance);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ctx(|| format!("cannot create {}", dir.display()))?;
    let mut text = String::new();
    for (k, v) in values {
        text.push_str(k);
        text.push('=');
        text.push_str(v);
        text.push('\n');
    }
    dirs::write_atomic(&file(instance, kind), text.as_bytes())
}

pub fn load(instance: &str, kind: &str) -> Result<Option<BTreeMap<String, String>>> {
    let path = file(instance, kind);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    Ok(Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    ))
}

/// Forget what `up` recorded; the instance's directory goes with its last file.
pub fn remove(instance: &str, kind: &str) -> Result<()> {
    let path = file(instance, kind);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => bail!("cannot remove {}: {e}", path.display()),
    }
    let _ = std::fs::remove_dir(base().join(instance)); // fails while not empty
    Ok(())
}

//! Where the helpers record what `up` did, for `down`, `status` and
//! `destroy`: `/run/dockyard/NAME/RECORD`, `key=value` lines whose keys are
//! the helper options of [`crate::contract`].
//!
//! Generated units carry every value on their `ExecStopPost=` lines, but
//! when an instance's conf is removed (or broken) while it runs, the next
//! `daemon-reload` replaces its unit by one the generator writes from the
//! instance name alone (dockyard-generator(8)); that unit calls `down
//! --instance NAME`, and the values come from here. /run is empty after a
//! reboot, as are the bridges and rules these files describe.

use crate::contract::Record;
use crate::name::InstanceName;
use std::io::ErrorKind;
use std::path::PathBuf;

pub const DIR: &str = "/run/dockyard";
/// Overrides [`DIR`], for tests.
pub const DIR_ENV: &str = "DOCKYARD_STATE_DIR";

pub fn dir() -> PathBuf {
    std::env::var_os(DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DIR))
}

pub fn instance_dir(instance: &InstanceName) -> PathBuf {
    dir().join(instance.as_str())
}

pub fn path(instance: &InstanceName, record: &str) -> PathBuf {
    instance_dir(instance).join(record)
}

/// Held by every helper while it reads, plans and changes the firewall:
/// instances share chains, and a plan made from a stale read would undo
/// what a concurrent start just did.
pub fn firewall_lock() -> PathBuf {
    dir().join("firewall.lock")
}

/// The instances with a directory of records, i.e. started and not yet
/// cleanly stopped (unreadable or foreign entries are skipped).
pub fn recorded_instances() -> Vec<InstanceName> {
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return Vec::new();
    };
    let mut out: Vec<InstanceName> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            if !e.file_type().ok()?.is_dir() {
                return None;
            }
            InstanceName::parse(e.file_name().to_str()?).ok()
        })
        .collect();
    out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    out
}

/// `Ok(None)` when nothing was recorded.
pub fn load(instance: &InstanceName, record: &str) -> Result<Option<Record>, String> {
    let p = path(instance, record);
    match std::fs::read_to_string(&p) {
        Ok(text) => Ok(Some(Record::parse(instance, &text))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", p.display())),
    }
}

//! The sysbox state all sysbox instances share, removed with the last.

use super::guards::{mountinfo, remove_contents, resolves_to_itself, unmount_below};
use crate::probe::host;
use dockyard_model::{paths, InstanceName};
use dockyard_mounts::mounted_below;
use std::path::Path;

const SYSBOX_UNITS: [&str; 3] = [
    "dockyard-sysbox-chown.service",
    "dockyard-sysbox-fs.service",
    "dockyard-sysbox-mgr.service",
];

/// With no sysbox instance left (no conf with Runtime=sysbox-runc, and no
/// running instance without a conf), stop the shared sysbox units and
/// delete their data root.
pub(super) fn sysbox_cleanup(
    destroyed: &InstanceName,
) -> std::result::Result<Option<String>, String> {
    let remaining = host::known_instances();
    if remaining
        .iter()
        .any(|k| &k.name != destroyed && k.instance.as_ref().map_or(true, |i| i.uses_sysbox()))
    {
        return Ok(None);
    }
    // A shared unit that failed (sysbox not installed, say) would keep the
    // host `degraded` once its file is gone: no instance needs it now.
    if host::systemd_running() {
        let _ = host::systemctl(
            &["reset-failed", "dockyard-sysbox-*.service"],
            host::Output::Capture,
        );
    }
    let data = Path::new(paths::SYSBOX_DATA_DIR);
    let active: Vec<&str> = SYSBOX_UNITS
        .into_iter()
        .filter(|u| host::unit_state(u).is_ok_and(|s| s.active != "inactive"))
        .collect();
    if active.is_empty() && data.symlink_metadata().is_err() {
        return Ok(None);
    }
    if !active.is_empty() {
        let mut args = vec!["stop"];
        args.extend(active.iter().copied());
        host::systemctl(&args, host::Output::Capture).map_err(|e| e.to_string())?;
    }
    if data.symlink_metadata().is_ok() {
        resolves_to_itself(data)?;
        unmount_below(&[data.to_path_buf()])?;
        let left = mounted_below(&mountinfo()?, data);
        if !left.is_empty() {
            return Err(format!(
                "not deleting {}: still mounted below it: {:?}",
                data.display(),
                left
            ));
        }
        remove_contents(data)?;
        std::fs::remove_dir(data).map_err(|e| format!("cannot remove {}: {e}", data.display()))?;
    }
    Ok(Some(format!(
        "no sysbox instance left: stopped the sysbox units and removed {}",
        data.display()
    )))
}

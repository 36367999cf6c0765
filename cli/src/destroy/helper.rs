//! The network helper's `down`, with the values the unit would pass.

use super::discovery::Found;
use dockyard_model::paths;
use std::process::{Command, Stdio};

/// `dockyard-network down` with the instance's networks (from its conf,
/// else from what `up` recorded), or with its name alone.
pub(super) fn network_down(found: &Found) -> std::result::Result<(), String> {
    let helper = paths::helper("dockyard-network");
    let mut cmd = Command::new(&helper);
    cmd.arg("down");
    match &found.network {
        Some(net) => cmd.args(net.args()),
        // The helper then removes the instance's tagged rules and its bridge
        // (the pool of its user-defined networks is unknown).
        None => cmd.args(["--instance", found.name.as_str()]),
    };
    let out = cmd
        .stdin(Stdio::null())
        .env("DOCKYARD_LOG", "stderr")
        .output()
        .map_err(|e| format!("cannot run {helper}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{helper} down failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

//! The instance's user and group, removed only when Dockyard made them.

use super::discovery::Found;
use std::process::{Command, Stdio};

pub(super) fn remove_accounts(found: &Found) -> std::result::Result<Option<String>, String> {
    let account = found.name.account();
    let mark = found.name.account_marker();
    match (&found.user, &found.group) {
        (None, None) => Ok(None),
        (Some(u), _) if u.gecos.to_string_lossy() != mark => Ok(Some(format!(
            "left user {account} alone: Dockyard did not create it (its comment is {:?})",
            u.gecos.to_string_lossy()
        ))),
        (None, Some(_)) => Ok(Some(format!(
            "left group {account} alone: no Dockyard user {account} owns it"
        ))),
        (Some(u), group) => {
            run_tool(Command::new("userdel").arg(&account))?;
            // userdel removes the user's same-named primary group itself
            // (USERGROUPS_ENAB); when it did not, remove it if it was the
            // user's primary group.
            if let Some(g) = group {
                if g.gid == u.gid
                    && nix::unistd::Group::from_name(&account)
                        .ok()
                        .flatten()
                        .is_some()
                {
                    run_tool(Command::new("groupdel").arg(&account))?;
                }
            }
            Ok(Some(format!("removed user and group {account}")))
        }
    }
}

fn run_tool(cmd: &mut Command) -> std::result::Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

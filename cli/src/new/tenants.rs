//! `dockyard new --tenant USER`: the local users an instance is made for,
//! added to its group `NAME_docker`, the group that may use its socket.
//!
//! What that group grants depends on the instance: a rootful dockerd runs
//! as root, so its group is root on the host (a member can bind-mount `/`
//! or the host Docker's socket into a container); a rootless one runs as
//! the instance's own user, so its group gets what that user can do. So
//! tenants go with `--rootless`, and a rootful instance takes them only
//! with `--grant-host-root`, said in so many words.
//!
//! The group is made by the instance's first start (`dockyard-prepare
//! up`), so the users join it after `--start`; without it, `new` says
//! what to run after the first start.

use crate::error::{Exit, Failure, Result};
use dockyard_model::{rootless, InstanceName};
use std::process::{Command, Stdio};

/// Every tenant is an existing local user; checked before anything is
/// written, each one missing named.
pub fn check_users(tenants: &[String], exists: impl Fn(&str) -> bool) -> Result<()> {
    // A name starting with '-' would read as an option of gpasswd.
    let unknown: Vec<&str> = tenants
        .iter()
        .map(String::as_str)
        .filter(|t| t.is_empty() || t.starts_with('-') || !exists(t))
        .collect();
    match unknown.as_slice() {
        [] => Ok(()),
        [one] => Err(Failure::new(
            Exit::Usage,
            format!("--tenant {one}: no such user on this host; nothing was written"),
        )),
        many => Err(Failure::new(
            Exit::Usage,
            format!(
                "--tenant: no such users on this host: {}; nothing was written",
                many.join(", ")
            ),
        )),
    }
}

pub fn user_exists(name: &str) -> bool {
    matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
}

/// Tenants for a rootful instance: refused unless the admin said they may
/// be root on the host.
pub fn check_mode(
    name: &InstanceName,
    tenants: &[String],
    rootless: bool,
    grant_host_root: bool,
) -> Result<()> {
    if tenants.is_empty() || rootless || grant_host_root {
        return Ok(());
    }
    Err(Failure::new(
        Exit::Refused,
        format!(
            "refusing to give {} the group {} of rootful instance {name}: that group is {} \
             ({}); give --rootless, so that the group grants {}, or --grant-host-root if they \
             may be root on this host; nothing was written",
            tenants.join(", "),
            name.account(),
            rootless::group_grants(name, false),
            rootless::why_root(),
            rootless::group_grants(name, true),
        ),
    ))
}

/// The group as the host has it: its members and gid.
pub struct GroupNow {
    pub gid: u32,
    pub members: Vec<String>,
}

pub fn group_now(group: &str) -> Option<GroupNow> {
    nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .map(|g| GroupNow {
            gid: g.gid.as_raw(),
            members: g.mem,
        })
}

fn primary_gid(user: &str) -> Option<u32> {
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.gid.as_raw())
}

/// Runs `gpasswd -a USER GROUP`, else (no gpasswd) `usermod -aG GROUP USER`.
pub fn run_tool(args: &[&str]) -> std::result::Result<(), String> {
    let (program, rest) = args.split_first().ok_or("no command")?;
    let out = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Adds each tenant to `group` once; one already in it (a member, or its
/// primary group) is left as it is. Returns a line per tenant.
pub fn add(
    tenants: &[String],
    group: &str,
    lookup: &dyn Fn(&str) -> Option<GroupNow>,
    primary: &dyn Fn(&str) -> Option<u32>,
    run: &mut dyn FnMut(&[&str]) -> std::result::Result<(), String>,
) -> Result<Vec<String>> {
    let Some(now) = lookup(group) else {
        return Err(Failure::failed(format!(
            "group {group} does not exist, so {} could not join it; it is made by the \
             instance's first start: see `journalctl -u {}`, then run `gpasswd -a USER {group}`",
            tenants.join(", "),
            unit_of(group)
        )));
    };
    let mut lines = Vec::new();
    for t in tenants {
        if now.members.iter().any(|m| m == t) || primary(t) == Some(now.gid) {
            lines.push(format!("{t} is already in group {group}"));
            continue;
        }
        match run(&["gpasswd", "-a", t, group]) {
            Ok(()) => {}
            Err(e) if e.starts_with("cannot run gpasswd") => run(&["usermod", "-aG", group, t])
                .map_err(|e| Failure::failed(format!("cannot add {t} to group {group}: {e}")))?,
            Err(e) => {
                return Err(Failure::failed(format!(
                    "cannot add {t} to group {group}: {e}"
                )))
            }
        }
        lines.push(format!(
            "added {t} to group {group} (it takes effect at {t}'s next login)"
        ));
    }
    Ok(lines)
}

/// `dy1_docker.service` for the group `dy1_docker`.
fn unit_of(group: &str) -> String {
    format!("{group}.service")
}

/// After `new --start`: the tenants join the live group.
pub fn add_live(tenants: &[String], name: &InstanceName) -> Result<Vec<String>> {
    add(
        tenants,
        &name.account(),
        &group_now,
        &primary_gid,
        &mut |args| run_tool(args),
    )
}

/// Without `--start`: what to run once the instance has started.
pub fn later(tenants: &[String], name: &InstanceName) -> String {
    let group = name.account();
    format!(
        "note: group {group} is made by the first start of {}; then add {}: {}",
        name.unit(),
        tenants.join(", "),
        tenants
            .iter()
            .map(|t| format!("`gpasswd -a {t} {group}`"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_users_are_named_before_anything_is_written() {
        let exists = |n: &str| n == "alice";
        assert!(check_users(&tenants(&["alice"]), exists).is_ok());
        let e = check_users(&tenants(&["alice", "bob"]), exists).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--tenant bob: no such user on this host; nothing was written"
        );
        let e = check_users(&tenants(&["bob", "-r"]), |_| true).unwrap_err();
        assert!(e.to_string().contains("no such user on this host"), "{e}");
        let e = check_users(&tenants(&["bob", "carol"]), exists).unwrap_err();
        assert!(
            e.to_string().contains("users on this host: bob, carol"),
            "{e}"
        );
    }

    #[test]
    fn a_rootful_instance_takes_tenants_only_when_told_they_get_root() {
        let name = InstanceName::parse("dy1").unwrap();
        let t = tenants(&["alice"]);
        assert!(check_mode(&name, &t, true, false).is_ok());
        assert!(check_mode(&name, &t, false, true).is_ok());
        assert!(check_mode(&name, &[], false, false).is_ok());
        let e = check_mode(&name, &t, false, false).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("refusing to give alice the group dy1_docker of rootful instance dy1: that group is root on the host (a member can bind-mount / or the host Docker's socket"),
            "{text}"
        );
        assert!(text.contains("give --rootless"), "{text}");
        assert!(text.contains("--grant-host-root"), "{text}");
    }

    #[test]
    fn tenants_join_once_through_gpasswd_else_usermod() {
        let group = |_: &str| {
            Some(GroupNow {
                gid: 990,
                members: vec!["alice".into()],
            })
        };
        let primary = |n: &str| (n == "carol").then_some(990);
        let mut ran: Vec<String> = Vec::new();
        let lines = add(
            &tenants(&["alice", "bob", "carol"]),
            "dy1_docker",
            &group,
            &primary,
            &mut |a| {
                ran.push(a.join(" "));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(ran, ["gpasswd -a bob dy1_docker"]);
        assert_eq!(
            lines,
            [
                "alice is already in group dy1_docker",
                "added bob to group dy1_docker (it takes effect at bob's next login)",
                "carol is already in group dy1_docker",
            ]
        );
        // No gpasswd (a host without it): usermod.
        let mut ran: Vec<String> = Vec::new();
        add(
            &tenants(&["bob"]),
            "dy1_docker",
            &group,
            &primary,
            &mut |a| {
                ran.push(a.join(" "));
                if a[0] == "gpasswd" {
                    Err("cannot run gpasswd: No such file or directory".into())
                } else {
                    Ok(())
                }
            },
        )
        .unwrap();
        assert_eq!(
            ran,
            ["gpasswd -a bob dy1_docker", "usermod -aG dy1_docker bob"]
        );
        // The group is not there (the start did not make it).
        let e = add(
            &tenants(&["bob"]),
            "dy1_docker",
            &|_| None,
            &primary,
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("journalctl -u dy1_docker.service"),
            "{e}"
        );
    }
}

//! The instance's system user and group, created once and never adopted.
//!
//! Dockyard marks the users it creates with the GECOS comment
//! `Dockyard instance <name>`; a same-named user without that marker, or a
//! group that is not the primary group of the marked user, belongs to someone
//! else and we refuse (the bash tool adopted and later deleted such accounts).

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Group, User};

use crate::bail;
use crate::error::{Context, Error, Result};

pub fn marker(instance: &str) -> String {
    match dockyard_model::InstanceName::parse(instance) {
        Ok(n) => n.account_marker(),
        // Not reached: the instance name was checked with the arguments.
        Err(_) => format!("Dockyard instance {instance}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

fn lookup(user: &str, group: &str) -> Result<(Option<User>, Option<Group>)> {
    let u = User::from_name(user).ctx(|| format!("cannot look up user {user}"))?;
    let g = Group::from_name(group).ctx(|| format!("cannot look up group {group}"))?;
    Ok((u, g))
}

/// Decide from what exists: `Ok(Some(ids))` = ours already, `Ok(None)` =
/// neither exists (create them), `Err` = a stranger's account is in the way.
fn classify(
    instance: &str,
    user: &str,
    group: &str,
    u: Option<&User>,
    g: Option<&Group>,
) -> Result<Option<Ids>> {
    let mark = marker(instance);
    if let Some(u) = u {
        let gecos = u.gecos.to_string_lossy();
        if gecos != mark {
            bail!(
                "user {user} (uid {}) already exists and was not created by Dockyard (its comment is {gecos:?}, expected {mark:?}); Dockyard will not adopt it. Remove it or give the instance another user name",
                u.uid
            );
        }
    }
    match (u, g) {
        (None, None) => Ok(None),
        (Some(u), Some(g)) if u.gid == g.gid => Ok(Some(Ids {
            uid: u.uid.as_raw(),
            gid: g.gid.as_raw(),
        })),
        (Some(u), Some(g)) => bail!(
            "group {group} (gid {}) exists but is not the primary group of Dockyard user {user} (gid {}); Dockyard will not adopt it. Remove the group or choose another group name",
            g.gid, u.gid
        ),
        (Some(u), None) => bail!(
            "Dockyard user {user} exists but its group {group} does not (primary gid {}); remove the user (userdel {user}) and start the instance again",
            u.gid
        ),
        (None, Some(g)) => bail!(
            "group {group} (gid {}) already exists and does not belong to a Dockyard user; Dockyard will not adopt it. Remove it (groupdel {group}) if it is a leftover, or choose another group name",
            g.gid
        ),
    }
}

pub fn nologin() -> PathBuf {
    ["/usr/sbin/nologin", "/sbin/nologin"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/bin/false"))
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .ctx(|| format!("cannot run {:?}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::new(format!(
        "{:?} failed ({}): {}",
        cmd.get_program(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// The instance's user as `up` left it: it must exist and be Dockyard's.
pub fn existing(instance: &str, user: &str) -> Result<Ids> {
    let (u, g) = lookup(user, user)?;
    match classify(instance, user, user, u.as_ref(), g.as_ref())? {
        Some(ids) => Ok(ids),
        None => bail!(
            "user {user} does not exist; `dockyard-prepare up` (the unit's ExecStartPre=) creates it"
        ),
    }
}

/// The uid of `user`, for the firewall rules of a rootless instance;
/// `None` when there is no such user. A lookup that fails (NSS trouble)
/// counts as none: this serves what runs beside other instances' starts
/// (putting back their shared pieces), which must not fail for it.
pub fn uid_of(user: &str) -> Option<u32> {
    User::from_name(user).ok().flatten().map(|u| u.uid.as_raw())
}

/// The uid a rootless instance's rules key on, when it starts: its user
/// must exist by then, made by `dockyard-prepare up` earlier in the unit.
pub fn rootless_uid(instance: &str, user: &str) -> Result<u32> {
    match User::from_name(user).ctx(|| format!("cannot look up user {user}"))? {
        Some(u) => Ok(u.uid.as_raw()),
        None => bail!(
            "instance {instance} is rootless (Rootless=yes) and its firewall rules key on its user {user}, which does not exist; `dockyard-prepare up` creates it, and runs before `dockyard-network up` in the instance's unit: start the instance with `systemctl start {instance}_docker.service` (or run that `dockyard-prepare up` first)"
        ),
    }
}

/// Make sure the instance's user and group exist and are Dockyard's.
pub fn ensure(instance: &str, user: &str, group: &str, home: &Path) -> Result<Ids> {
    let (u, g) = lookup(user, group)?;
    if let Some(ids) = classify(instance, user, group, u.as_ref(), g.as_ref())? {
        return Ok(ids);
    }
    let mut useradd = Command::new("useradd");
    useradd
        .args(["--system", "--no-create-home", "--home-dir"])
        .arg(home)
        .arg("--shell")
        .arg(nologin())
        .arg("--comment")
        .arg(marker(instance));
    if user == group {
        useradd.arg("--user-group");
    } else {
        run(Command::new("groupadd").args(["--system", group]))
            .map_err(|e| Error::new(format!("cannot create group {group}: {e}")))?;
        useradd.args(["--gid", group]);
    }
    useradd.arg(user);
    let created = run(&mut useradd);
    // Re-read either way: a concurrent run may have won the race, and the
    // result must pass the same ownership test as a pre-existing account.
    let (u, g) = lookup(user, group)?;
    match classify(instance, user, group, u.as_ref(), g.as_ref())? {
        Some(ids) => {
            log::info!("instance {instance}: created system user {user} and group {group}");
            Ok(ids)
        }
        None => Err(Error::new(format!(
            "cannot create user {user}: {}",
            created
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "useradd succeeded but the user is not visible".into())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::{Gid, Uid};
    use std::ffi::CString;

    fn user(name: &str, gecos: &str, gid: u32) -> User {
        User {
            name: name.into(),
            passwd: CString::new("x").unwrap(),
            uid: Uid::from_raw(990),
            gid: Gid::from_raw(gid),
            gecos: CString::new(gecos).unwrap(),
            dir: "/dy1".into(),
            shell: "/usr/sbin/nologin".into(),
        }
    }

    fn group(name: &str, gid: u32) -> Group {
        Group {
            name: name.into(),
            passwd: CString::new("x").unwrap(),
            gid: Gid::from_raw(gid),
            mem: vec![],
        }
    }

    #[test]
    fn classification() {
        let (n, ng) = ("dy1_docker", "dy1_docker");
        assert_eq!(classify("dy1", n, ng, None, None).unwrap(), None);
        let ours = user(n, "Dockyard instance dy1", 990);
        let g = group(ng, 990);
        assert_eq!(
            classify("dy1", n, ng, Some(&ours), Some(&g)).unwrap(),
            Some(Ids { uid: 990, gid: 990 })
        );
        // Stranger user, or our marker for another instance.
        for gecos in ["", "Some Admin", "Dockyard instance dy10"] {
            let u = user(n, gecos, 990);
            let e = classify("dy1", n, ng, Some(&u), Some(&g)).unwrap_err();
            assert!(e.to_string().contains("not created by Dockyard"), "{e}");
        }
        // Group exists alone, or is not the marked user's primary group.
        assert!(classify("dy1", n, ng, None, Some(&g)).is_err());
        let other = group(ng, 991);
        assert!(classify("dy1", n, ng, Some(&ours), Some(&other)).is_err());
        assert!(classify("dy1", n, ng, Some(&ours), None).is_err());
    }
}

//! `dockyard-prepare sysbox --subid-user sysbox`: the account whose
//! subordinate ids sysbox maps every system container to, set up the way
//! sysbox's own packaging does it, before the shared sysbox-mgr starts
//! (`ExecStartPre=` of `dockyard-sysbox-mgr.service`).
//!
//! What sysbox does (nestybox/sysbox-pkgr `deb/sysbox-ce/sysbox-ce.postinst`
//! `add_sysbox_user()`; nestybox/sysbox-mgr `utils.go` `configSubidRange()`):
//! the package creates the user `sysbox`, and sysbox-mgr, at every start,
//! makes sure `/etc/subuid` and `/etc/subgid` hold exactly one `sysbox` range
//! of 268435456 ids (its `--subid-range-size` default), allocated in the
//! first large enough hole between `SUB_UID_MIN`/`SUB_GID_MIN` and
//! `SUB_UID_MAX`/`SUB_GID_MAX` of login.defs, rewriting the entries
//! otherwise. Doing the same here, before sysbox-mgr starts, means
//! sysbox-mgr finds nothing to change and the ownership watcher, which reads
//! these ranges, can start at once.
//!
//! Like the instance accounts, a same-named user that Dockyard did not create
//! is not adopted, except when it already has sysbox's ranges (a host where
//! sysbox itself was installed and ran): then nothing is changed.

use std::path::Path;
use std::process::Command;

use nix::unistd::{Group, User};

use crate::args;
use crate::bail;
use crate::dirs;
use crate::error::{Context, Error, Result};
use dockyard_model::contract::{self, sysbox, Opt, Values};

use crate::users;
use dockyard_model::subid::{self, Range};

/// sysbox-mgr's default `--subid-range-size`.
pub const RANGE_SIZE: u32 = 268_435_456;
/// sysbox-mgr's window when login.defs does not set one.
const DEFAULT_MIN: u32 = 100_000;
const DEFAULT_MAX: u32 = u32::MAX;
pub const MARKER: &str = "Dockyard sysbox subordinate ids";

pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    let opts = args::parse(argv, sysbox::USER_OPTIONS)?;
    if let Some(a) = &opts.action {
        return Err(Error::usage(format!(
            "dockyard-prepare sysbox: unexpected argument {a:?}"
        )));
    }
    let user = args::account_name(sysbox::SUBID_USER.name, opts.required(sysbox::SUBID_USER)?)?;
    // Overrides exist for tests and unusual hosts; the unit uses the defaults.
    let file = |opt: Opt, default: &str| {
        contract::abs_path(opt, opts.value(opt).unwrap_or(default)).map_err(args::usage)
    };
    let subuid = file(sysbox::SUBUID_FILE, "/etc/subuid")?;
    let subgid = file(sysbox::SUBGID_FILE, "/etc/subgid")?;
    let defs = file(sysbox::LOGIN_DEFS, "/etc/login.defs")?;
    prepare(&user, &subuid, &subgid, &defs)
}

fn read_or_empty(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    }
}

/// Exactly one range of sysbox's size: what sysbox-mgr accepts unchanged.
fn is_sysbox_shaped(ranges: &[Range]) -> bool {
    matches!(ranges, [r] if r.count == RANGE_SIZE)
}

fn describe(ranges: &[Range]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    ranges
        .iter()
        .map(|r| format!("{}:{}", r.first, r.count))
        .collect::<Vec<_>>()
        .join(", ")
}

fn prepare(user: &str, subuid: &Path, subgid: &Path, defs: &Path) -> Result<()> {
    // Rootless instances allocate in the same files.
    let _lock = crate::rootless::subid_lock()?;
    let uid_text = read_or_empty(subuid)?;
    let gid_text = read_or_empty(subgid)?;
    let existing = User::from_name(user).ctx(|| format!("cannot look up user {user}"))?;
    match existing {
        Some(u) if u.gecos.to_string_lossy() == MARKER => {}
        Some(u) => {
            let (uids, gids) = (
                subid::of_user(&uid_text, user),
                subid::of_user(&gid_text, user),
            );
            if is_sysbox_shaped(&uids) && is_sysbox_shaped(&gids) {
                log::info!(
                    "user {user} (uid {}) was not created by Dockyard but already has sysbox's subordinate ranges ({} in {}, {} in {}); using them as they are",
                    u.uid,
                    describe(&uids),
                    subuid.display(),
                    describe(&gids),
                    subgid.display()
                );
                return Ok(());
            }
            bail!(
                "user {user} (uid {}) already exists and was not created by Dockyard (its comment is {:?}), and its subordinate ranges are not sysbox's single range of {RANGE_SIZE} ids ({}: {}; {}: {}); Dockyard will not adopt it. If it is sysbox's own user, give it one such range in both files (or start sysbox-mgr once); otherwise remove it",
                u.uid,
                u.gecos.to_string_lossy(),
                subuid.display(),
                describe(&uids),
                subgid.display(),
                describe(&gids)
            );
        }
        None => create_user(user)?,
    }
    let defs_text = read_or_empty(defs)?;
    let window = |min: &str, max: &str| {
        (
            subid::login_defs_value(&defs_text, min).unwrap_or(DEFAULT_MIN),
            subid::login_defs_value(&defs_text, max).unwrap_or(DEFAULT_MAX),
        )
    };
    let (umin, umax) = window("SUB_UID_MIN", "SUB_UID_MAX");
    let (gmin, gmax) = window("SUB_GID_MIN", "SUB_GID_MAX");
    ensure_range(subuid, &uid_text, user, umin, umax)?;
    ensure_range(subgid, &gid_text, user, gmin, gmax)?;
    Ok(())
}

fn create_user(user: &str) -> Result<()> {
    if let Some(g) = Group::from_name(user).ctx(|| format!("cannot look up group {user}"))? {
        bail!(
            "group {user} (gid {}) already exists without a user {user}; Dockyard will not adopt it. Remove it (groupdel {user}) if it is a leftover",
            g.gid
        );
    }
    let created = users::run(
        Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--home-dir", "/nonexistent", "--shell"])
            .arg(users::nologin())
            .args(["--comment", MARKER])
            .arg(user),
    );
    // Re-read either way: a concurrent run may have created it first.
    match User::from_name(user).ctx(|| format!("cannot look up user {user}"))? {
        Some(u) if u.gecos.to_string_lossy() == MARKER => {
            if created.is_ok() {
                log::info!(
                    "created system user {user} (uid {}) for sysbox's subordinate ids",
                    u.uid
                );
            }
            Ok(())
        }
        _ => Err(Error::new(format!(
            "cannot create user {user}: {}",
            created
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "useradd succeeded but the user is not visible".into())
        ))),
    }
}

/// One range of RANGE_SIZE ids for `user` in `file`; other lines are kept
/// byte for byte. Replaces the user's other entries, as sysbox-mgr would.
fn ensure_range(file: &Path, text: &str, user: &str, min: u32, max: u32) -> Result<()> {
    let mine = subid::of_user(text, user);
    if is_sysbox_shaped(&mine) {
        return Ok(());
    }
    let others: Vec<Range> = subid::all(text)
        .into_iter()
        .filter(|(n, _)| *n != user)
        .map(|(_, r)| r)
        .collect();
    let Some(r) = subid::allocate(&others, RANGE_SIZE, min, max) else {
        bail!(
            "{}: no free range of {RANGE_SIZE} ids between {min} and {max} for {user}; free one or widen the window in /etc/login.defs",
            file.display()
        );
    };
    dirs::write_atomic(file, subid::with_range(text, user, Some(r)).as_bytes())?;
    if mine.is_empty() {
        log::info!(
            "{}: gave {user} the range {}:{}",
            file.display(),
            r.first,
            r.count
        );
    } else {
        log::warn!(
            "{}: replaced {user}'s ranges {} by {}:{} (sysbox uses one range of {RANGE_SIZE})",
            file.display(),
            describe(&mine),
            r.first,
            r.count
        );
    }
    Ok(())
}

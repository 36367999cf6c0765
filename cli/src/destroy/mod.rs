//! `dockyard destroy NAME [--yes] [--keep-data]`: everything of one
//! instance, in the order that leaves nothing running on deleted files:
//! stop the unit, remove rules and bridges, unmount what is left under
//! the root and the exec-root, delete the data (unless --keep-data), the
//! conf and its drop-ins, the runtime state, a rootless instance's
//! subordinate ids once its data is gone, the user and group Dockyard
//! created, reload systemd, and with the last sysbox instance gone, the
//! shared sysbox state. Idempotent: nothing left (no such instance) means exit 0.
//!
//! Deleting is guarded: the root must pass the model's `Root=` checks,
//! must not be or pass through a symlink, must carry the instance's group
//! (or only Dockyard's own entries), and nothing may stay mounted below
//! it. Removal never follows symlinks (std's `remove_dir_all`).
//!
//! The steps live beside this file: what the host holds of the instance
//! ([`discovery`]), the network helper's `down` ([`helper`]), the checks
//! and removals on the file system ([`guards`]), the user and group
//! ([`accounts`]), a rootless instance's subordinate ids ([`subids`]) and
//! the shared sysbox state ([`sysbox`]).

mod accounts;
mod discovery;
mod guards;
mod helper;
mod subids;
mod sysbox;

use crate::error::{Exit, Failure, Result};
use crate::probe::host;
use accounts::remove_accounts;
use discovery::{inspect, Found};
use dockyard_model::{root, InstanceName};
use guards::{remove_any, remove_root, safe_root, unmount_below};
use helper::network_down;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use subids::remove_subids;
use sysbox::sysbox_cleanup;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The instance to destroy
    pub name: String,
    /// Do not ask; required when stdin is not a terminal
    #[arg(long)]
    pub yes: bool,
    /// Keep the instance's root (its Docker data) on disk
    #[arg(long)]
    pub keep_data: bool,
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  destroyed, or nothing was left to destroy
  1  some step failed (each is named); fix it and run destroy again; also: not root
  2  usage error: bad NAME or option
  6  refused, nothing changed: no --yes and stdin is not a terminal, the answer was not y,
     or the instance's root is one Dockyard must not delete";

pub fn run(args: &Args) -> Result<()> {
    let name = InstanceName::parse(&args.name).map_err(|e| Failure::new(Exit::Usage, e))?;
    if !host::is_root() {
        return Err(Failure::failed(format!(
            "destroying instance {name} needs root (it stops units, deletes users and data)"
        )));
    }
    let found = inspect(&name);
    if !found.anything(args.keep_data) {
        // Exit 0 all the same: destroy is idempotent, and a second run
        // after a complete one must not fail. The names help the typo case.
        let known: Vec<String> = host::known_instances()
            .into_iter()
            .map(|k| k.name.to_string())
            .collect();
        println!(
            "{name}: no such instance, nothing to destroy; known: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return Ok(());
    }
    // Refuse before changing anything: a root we must not delete.
    // A root the model refuses stops everything, even when it does not exist
    // (yet): the conf is wrong, and the admin must look at it.
    let data_root = match (&found.root, args.keep_data) {
        (Some(r), false) => {
            let refuse =
                |e: String| Failure::new(Exit::Refused, format!("refusing to destroy {name}: {e}"));
            root::check_root(r)
                .map_err(|e| refuse(format!("its root is not one Dockyard would use: {e}")))?;
            if Path::new(r).symlink_metadata().is_ok() {
                Some(safe_root(r).map_err(refuse)?)
            } else {
                None
            }
        }
        _ => None,
    };
    confirm(&found, data_root.as_deref(), args.keep_data, args.yes)?;

    let mut failures: Vec<String> = Vec::new();
    let mut fail = |e: String| {
        eprintln!("dockyard: {e}");
        failures.push(e);
    };

    if found.unit {
        match host::systemctl(&["stop", &name.unit()], host::Output::Capture) {
            Ok(()) => println!("stopped {}", name.unit()),
            Err(e) => fail(e.to_string()),
        }
        let _ = host::systemctl(&["reset-failed", &name.unit()], host::Output::Capture);
    }
    // The unit's ExecStopPost= did this already when it ran; this covers
    // an instance whose unit is gone, failed, or never ran its stop.
    match network_down(&found) {
        Ok(()) => println!("removed the firewall rules and bridges of {name}"),
        Err(e) => fail(e),
    }
    let exec_root = PathBuf::from(name.exec_root());
    let mut bases = vec![exec_root.clone()];
    if let Some(r) = &data_root {
        bases.push(r.clone());
    }
    match unmount_below(&bases) {
        Ok(0) => {}
        Ok(n) => println!("unmounted {n} stale mounts"),
        Err(e) => fail(e),
    }
    // What data stays on disk: the subordinate ids that own it stay too.
    let mut data_left: Option<String> = None;
    if let Some(r) = &data_root {
        let gid = found.group.as_ref().map(|g| g.gid.as_raw());
        let uid = found.user.as_ref().map(|u| u.uid.as_raw());
        match remove_root(r, gid, uid) {
            Ok(()) => println!("removed the data {}", r.display()),
            Err(e) => {
                data_left = Some(r.display().to_string());
                fail(e)
            }
        }
    } else if args.keep_data {
        if let Some(r) = &found.root {
            println!("kept the data {r} (--keep-data)");
            if Path::new(r).symlink_metadata().is_ok() {
                data_left = Some(r.clone());
            }
        }
    }
    for path in [&found.conf, &found.dropins] {
        match remove_any(path) {
            Ok(true) => println!("removed {}", path.display()),
            Ok(false) => {}
            Err(e) => fail(e),
        }
    }
    for dir in &found.run_dirs {
        match remove_any(dir) {
            Ok(true) => println!("removed {}", dir.display()),
            Ok(false) => {}
            Err(e) => fail(e),
        }
    }
    // Before the user goes: its comment says the ids are Dockyard's.
    match remove_subids(&found, data_left.as_deref()) {
        Ok(Some(msg)) => println!("{msg}"),
        Ok(None) => {}
        Err(e) => fail(e),
    }
    match remove_accounts(&found) {
        Ok(Some(msg)) => println!("{msg}"),
        Ok(None) => {}
        Err(e) => fail(e),
    }
    if host::systemd_running() {
        match host::systemctl(&["daemon-reload"], host::Output::Capture) {
            Ok(()) => println!("reloaded systemd"),
            Err(e) => fail(e.to_string()),
        }
        // A failed unit stays listed (and the host `degraded`) after its
        // file is gone; forget the instance's. The pattern matches only
        // this instance: names have no '_', so "dy2_*" is never dy22's.
        let _ = host::systemctl(
            &["reset-failed", &format!("{}_*.service", name.as_str())],
            host::Output::Capture,
        );
    }
    if found.sysbox != Some(false) {
        match sysbox_cleanup(&name) {
            Ok(Some(msg)) => println!("{msg}"),
            Ok(None) => {}
            Err(e) => fail(e),
        }
    }
    if failures.is_empty() {
        println!("destroyed instance {name}");
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "instance {name} is only partly destroyed ({} problems above); fix them and run dockyard destroy {name} again",
            failures.len()
        )))
    }
}

fn confirm(found: &Found, data: Option<&Path>, keep_data: bool, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    let name = &found.name;
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            Exit::Refused,
            format!("refusing to destroy instance {name} without --yes: stdin is not a terminal"),
        ));
    }
    let data = match (data, keep_data) {
        (Some(d), _) => format!("its data {}", d.display()),
        (None, true) => "(data kept: --keep-data)".into(),
        (None, false) => "(no data on disk)".into(),
    };
    eprint!(
        "Destroy instance {name}: stop {}, remove its rules, bridges, conf {}, {data}, {}and user/group {}? [y/N] ",
        name.unit(),
        found.conf.display(),
        if found.subids {
            "subordinate ids, "
        } else {
            ""
        },
        name.account()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::failed(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Refused,
            format!("not destroying {name}"),
        ))
    }
}

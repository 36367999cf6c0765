//! `dockyard destroy NAME [--yes] [--keep-data]`: everything of one
//! instance, in the order that leaves nothing running on deleted files:
//! stop the unit, remove rules and bridges, unmount what is left under
//! the root and the exec-root, delete the data (unless --keep-data), the
//! conf and its drop-ins, the runtime state, the user and group Dockyard
//! created, reload systemd, and with the last sysbox instance gone, the
//! shared sysbox state. Idempotent: nothing left means exit 0.
//!
//! Deleting is guarded: the root must pass the model's `Root=` checks,
//! must not be or pass through a symlink, must carry the instance's group
//! (or only Dockyard's own entries), and nothing may stay mounted below
//! it. Removal never follows symlinks (std's `remove_dir_all`).

use crate::error::{Exit, Failure, Result};
use crate::probe::host;
use dockyard_model::contract::network::Network;
use dockyard_model::load::load_one;
use dockyard_model::{firewall, ini, paths, root, state, InstanceName};
use dockyard_mounts::{is_mount_point, mounted_below};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

pub const SYSBOX_UNITS: [&str; 3] = [
    "dockyard-sysbox-chown.service",
    "dockyard-sysbox-fs.service",
    "dockyard-sysbox-mgr.service",
];

/// The GECOS comment of the accounts Dockyard creates (helpers/src/users.rs).
pub fn marker(name: &InstanceName) -> String {
    format!("Dockyard instance {name}")
}

/// What the instance consists of, as found on the host.
struct Found {
    name: InstanceName,
    conf: PathBuf,
    dropins: PathBuf,
    /// From the conf (valid or not), the helpers' record, or the default.
    root: Option<String>,
    /// The conf's network values when the conf is valid, else what
    /// `dockyard-network up` recorded.
    network: Option<Network>,
    /// `None` when unknown (no readable conf).
    sysbox: Option<bool>,
    unit: bool,
    bridge: bool,
    rules: bool,
    run_dirs: Vec<PathBuf>,
    user: Option<nix::unistd::User>,
    group: Option<nix::unistd::Group>,
}

impl Found {
    fn anything(&self, keep_data: bool) -> bool {
        self.unit
            || self.bridge
            || self.rules
            || self.conf.exists()
            || self.dropins.symlink_metadata().is_ok()
            || (!keep_data
                && self
                    .root
                    .as_ref()
                    .is_some_and(|r| Path::new(r).symlink_metadata().is_ok()))
            || !self.run_dirs.is_empty()
            || self.user.is_some()
    }
}

pub fn run(args: &Args) -> Result<()> {
    let name = InstanceName::parse(&args.name).map_err(|e| Failure::new(Exit::Usage, e))?;
    if !host::is_root() {
        return Err(Failure::failed(format!(
            "destroying instance {name} needs root (it stops units, deletes users and data)"
        )));
    }
    let found = inspect(&name);
    if !found.anything(args.keep_data) {
        println!("{name}: nothing left to destroy");
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
    if let Some(r) = &data_root {
        let gid = found.group.as_ref().map(|g| g.gid.as_raw());
        match remove_root(r, gid) {
            Ok(()) => println!("removed the data {}", r.display()),
            Err(e) => fail(e),
        }
    } else if args.keep_data {
        if let Some(r) = &found.root {
            println!("kept the data {r} (--keep-data)");
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

fn inspect(name: &InstanceName) -> Found {
    let dir = paths::instances_dir();
    let conf = dir.join(format!("{name}.conf"));
    let dropins = dir.join(format!("{name}.conf.d"));
    let defaults = host::version_defaults();
    let inst = if conf.is_file() {
        load_one(&conf, &defaults).0
    } else {
        None
    };
    let raw = raw_values(&conf, &dropins);
    let root = inst
        .as_ref()
        .map(|i| i.root.clone())
        .or_else(|| {
            raw.iter()
                .rev()
                .find(|(k, _)| k == "Root")
                .map(|(_, v)| v.clone())
        })
        .or_else(|| host::recorded_cleanup(name).map(|c| c.root.to_string_lossy().into_owned()))
        .or_else(|| Some(root::default_root(name.as_str())));
    let sysbox = match &inst {
        Some(i) => Some(i.uses_sysbox()),
        None if conf.is_file() => Some(
            raw.iter()
                .rev()
                .find(|(k, _)| k == "Runtime")
                .map_or(true, |(_, v)| v != "runc"),
        ),
        None => None,
    };
    let unit = host::unit_state(&name.unit())
        .map(|u| u.exists())
        .unwrap_or(false);
    let rules = host::live_rules()
        .map(|live| !firewall::backend().residue(&live, name).is_empty())
        .unwrap_or(true);
    let run_dirs = [
        PathBuf::from(name.exec_root()),
        PathBuf::from(name.containerd_run_dir()),
        state::instance_dir(name),
    ]
    .into_iter()
    .filter(|p| p.symlink_metadata().is_ok())
    .collect();
    let account = name.account();
    let user = nix::unistd::User::from_name(&account).ok().flatten();
    let group = nix::unistd::Group::from_name(&account).ok().flatten();
    Found {
        name: name.clone(),
        network: inst
            .as_ref()
            .map(|i| i.network())
            .or_else(|| host::recorded_network(name)),
        conf,
        dropins,
        root,
        sysbox,
        unit,
        bridge: host::bridge_exists(name),
        rules,
        run_dirs,
        user,
        group,
    }
}

/// `[Instance]` keys of a conf and its drop-ins as written, for a conf the
/// model refuses (its Root= must still be found and checked).
fn raw_values(conf: &Path, dropins: &Path) -> Vec<(String, String)> {
    let mut files = vec![conf.to_path_buf()];
    if let Ok(d) = std::fs::read_dir(dropins) {
        let mut more: Vec<PathBuf> = d
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            let (doc, _) = ini::parse(&f, &text);
            out.extend(
                doc.entries
                    .into_iter()
                    .filter(|e| e.section == "Instance" && !e.value.is_empty())
                    .map(|e| (e.key, e.value)),
            );
        }
    }
    out
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
        "Destroy instance {name}: stop {}, remove its rules, bridges, conf {}, {data}, and user/group {}? [y/N] ",
        name.unit(),
        found.conf.display(),
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

fn network_down(found: &Found) -> std::result::Result<(), String> {
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

/// The root as it may be deleted: passes the model's `Root=` checks, and
/// neither it nor any of its parents is a symlink.
pub fn safe_root(root: &str) -> std::result::Result<PathBuf, String> {
    root::check_root(root).map_err(|e| format!("its root is not one Dockyard would use: {e}"))?;
    resolves_to_itself(Path::new(root))?;
    Ok(PathBuf::from(root))
}

/// `path` exists, is a real directory, and is reached without symlinks.
pub fn resolves_to_itself(path: &Path) -> std::result::Result<(), String> {
    let meta = path
        .symlink_metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symlink; not following it (remove it by hand)",
            path.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    let canon = std::fs::canonicalize(path)
        .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    if canon != path {
        return Err(format!(
            "{} resolves to {} through a symlink; not deleting through it",
            path.display(),
            canon.display()
        ));
    }
    Ok(())
}

/// Does the directory look like an instance root of this instance? Owned by
/// root, with the instance's group (`prepare up` makes it `root:GROUP
/// 0750`); when that group is gone already (an earlier, interrupted
/// destroy), only Dockyard's own entries may be inside.
pub fn check_ownership(
    root: &Path,
    uid: u32,
    gid: u32,
    instance_gid: Option<u32>,
) -> std::result::Result<(), String> {
    if uid != 0 {
        return Err(format!(
            "{} is owned by uid {uid}, not root; Dockyard did not create it",
            root.display()
        ));
    }
    match instance_gid {
        Some(want) if want != gid => Err(format!(
            "{} has group {}, not the instance's group (gid {want}); Dockyard did not create it",
            root.display(),
            host::group_name(gid)
        )),
        Some(_) => Ok(()),
        None => {
            let entries = std::fs::read_dir(root)
                .map_err(|e| format!("cannot list {}: {e}", root.display()))?;
            for e in entries.filter_map(std::result::Result::ok) {
                let n = e.file_name();
                if n != "docker" && n != "docker.sock" {
                    return Err(format!(
                        "{} holds {:?}, which Dockyard did not put there, and the instance's group is gone; delete it by hand if it is the instance's",
                        root.display(),
                        n
                    ));
                }
            }
            Ok(())
        }
    }
}

fn mountinfo() -> std::result::Result<Vec<u8>, String> {
    dockyard_mounts::read_mountinfo().map_err(|e| e.to_string())
}

/// Every failure, not only the first: each mount is tried.
fn unmount_below(bases: &[PathBuf]) -> std::result::Result<usize, String> {
    let done = dockyard_mounts::unmount_below(bases).map_err(|e| e.to_string())?;
    if done.failed.is_empty() {
        Ok(done.detached)
    } else {
        Err(done
            .failed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

fn remove_root(root: &Path, instance_gid: Option<u32>) -> std::result::Result<(), String> {
    resolves_to_itself(root)?;
    let meta = root
        .symlink_metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", root.display()))?;
    check_ownership(root, meta.uid(), meta.gid(), instance_gid)?;
    let info = mountinfo()?;
    let left = mounted_below(&info, root);
    if !left.is_empty() {
        return Err(format!(
            "not deleting {}: still mounted below it: {}",
            root.display(),
            left.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    remove_contents(root)?;
    // The admin's own file system mounted on the root: keep the mount point.
    if !is_mount_point(&info, root) {
        std::fs::remove_dir(root).map_err(|e| format!("cannot remove {}: {e}", root.display()))?;
    }
    Ok(())
}

/// Deletes everything inside `dir` without following symlinks (a symlink
/// is removed, never its target) and without leaving `dir`'s file system.
pub fn remove_contents(dir: &Path) -> std::result::Result<(), String> {
    let dev = dir
        .symlink_metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?
        .dev();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = e.path();
        let meta = path
            .symlink_metadata()
            .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
        if meta.is_dir() {
            if meta.dev() != dev {
                return Err(format!(
                    "not deleting {}: another file system is mounted there",
                    path.display()
                ));
            }
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Removes a file, symlink or directory tree (never following a symlink);
/// `Ok(false)` when it did not exist.
fn remove_any(path: &Path) -> std::result::Result<bool, String> {
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
    .map(|()| true)
    .map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

fn remove_accounts(found: &Found) -> std::result::Result<Option<String>, String> {
    let account = found.name.account();
    let mark = marker(&found.name);
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

/// With no sysbox instance left (no conf with Runtime=sysbox-runc, and no
/// running instance without a conf), stop the shared sysbox units and
/// delete their data root.
fn sysbox_cleanup(destroyed: &InstanceName) -> std::result::Result<Option<String>, String> {
    let remaining = host::known_instances();
    if remaining
        .iter()
        .any(|k| &k.name != destroyed && k.instance.as_ref().map_or(true, |i| i.uses_sysbox()))
    {
        return Ok(None);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn roots_the_model_refuses_are_refused() {
        for r in [
            "/",
            "/etc",
            "/var/lib/dockyard",
            "/srv/../etc",
            "relative",
            "/tmp/x",
            "/usr/local/dy1",
            "/var/lib/dockyard/artifacts/x",
        ] {
            let e = safe_root(r).expect_err(r);
            assert!(e.contains("not one Dockyard would use"), "{r}: {e}");
        }
    }

    #[test]
    fn symlinked_roots_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = dir.path().join("link");
        symlink(&real, &link).expect("symlink");
        assert!(resolves_to_itself(&link)
            .expect_err("link")
            .contains("is a symlink"));
        // A parent that is a symlink.
        std::fs::create_dir(real.join("inner")).expect("mkdir");
        let through = link.join("inner");
        assert!(resolves_to_itself(&through)
            .expect_err("through")
            .contains("through a symlink"));
        let canon_real = std::fs::canonicalize(&real).expect("canon");
        assert!(resolves_to_itself(&canon_real).is_ok());
        let file = canon_real.join("f");
        std::fs::write(&file, "x").expect("write");
        assert!(resolves_to_itself(&file)
            .expect_err("file")
            .contains("not a directory"));
    }

    #[test]
    fn removal_never_follows_symlinks_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::write(outside.join("precious"), "keep").expect("write");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("docker/containers/x")).expect("mkdir");
        std::fs::write(root.join("docker/containers/x/f"), "data").expect("write");
        symlink(&outside, root.join("docker/escape")).expect("symlink");
        symlink(outside.join("precious"), root.join("file-link")).expect("symlink");
        symlink(&outside, root.join("docker/containers/x/dirlink")).expect("symlink");
        remove_contents(&root).expect("remove");
        assert_eq!(std::fs::read_dir(&root).expect("ls").count(), 0);
        assert_eq!(
            std::fs::read_to_string(outside.join("precious")).expect("kept"),
            "keep"
        );
    }

    #[test]
    fn ownership_decides_whose_root_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert!(check_ownership(root, 0, 990, Some(990)).is_ok());
        assert!(check_ownership(root, 1000, 990, Some(990))
            .expect_err("uid")
            .contains("not root"));
        assert!(check_ownership(root, 0, 0, Some(990))
            .expect_err("gid")
            .contains("not the instance's group"));
        // Group gone: only docker/ and docker.sock may be there.
        std::fs::create_dir(root.join("docker")).expect("mkdir");
        assert!(check_ownership(root, 0, 990, None).is_ok());
        std::fs::write(root.join("photos.tar"), "x").expect("write");
        assert!(check_ownership(root, 0, 990, None)
            .expect_err("foreign")
            .contains("photos.tar"));
    }
}

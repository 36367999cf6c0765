//! Host facts, each read in the least privileged way that works. A fact
//! that cannot be read (it needs root, a tool is missing or failed) is an
//! [`Unknown`] for callers to show in its place, never a failure.

use dockyard_generator::run;
use dockyard_model::contract::network::{self, Network};
use dockyard_model::contract::prepare::{self, Cleanup};
use dockyard_model::firewall::{self, choice, Backend, Subject};
use dockyard_model::instance::{Instance, VersionDefaults};
use dockyard_model::load::{load_dir, LoadOptions};
use dockyard_model::state;
use dockyard_model::{paths, rootless, InstanceName};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a host fact is not known. Status and verify print it where the
/// fact would be, as "unknown (…)"; callers that must decide (is it only a
/// matter of privileges?) match on the variant, never on the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// Readable only by root.
    NeedsRoot,
    /// Readable by root or a member of this group (an instance's socket).
    NeedsRootOrGroup(String),
    /// The program that would read it is not installed (a firewall
    /// backend the host does not have).
    NotInstalled(&'static str),
    /// Anything else, in the words of what failed.
    Because(String),
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unknown::NeedsRoot => f.write_str("unknown (needs root)"),
            Unknown::NeedsRootOrGroup(group) => {
                write!(f, "unknown (needs root or membership in group {group})")
            }
            Unknown::NotInstalled(program) => write!(f, "unknown ({program} is not installed)"),
            Unknown::Because(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// In `--json`, the same text as on the status line.
impl serde::Serialize for Unknown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The manifest's defaults, as the generator computes them. The
/// generator's reason for having none points at the manifest error it has
/// just logged; status, verify and destroy log no such error, so their
/// reason carries it.
pub fn version_defaults() -> VersionDefaults {
    let (mut defaults, _, error) = run::version_defaults(&paths::manifest_override());
    if let Some(d) = error {
        defaults.docker = Err(format!("the artifacts manifest is unusable: {d}"));
    }
    defaults
}

/// One instance the host knows of: from a conf (valid or not) or only from
/// its bridge `NAME_docker0` (running without a conf).
#[derive(Debug, Clone)]
pub struct Known {
    pub name: InstanceName,
    pub instance: Option<Instance>,
    pub conf: Option<PathBuf>,
    /// Why the conf produced no instance.
    pub conf_error: Option<String>,
}

pub fn known_instances() -> Vec<Known> {
    let dir = paths::instances_dir();
    let defaults = version_defaults();
    let net = paths::sys_class_net();
    let catalog = load_dir(&LoadOptions {
        dir: &dir,
        defaults: &defaults,
        sys_class_net: &net,
    });
    let mut known: BTreeMap<InstanceName, Known> = BTreeMap::new();
    for inst in catalog.instances {
        known.insert(
            inst.name.clone(),
            Known {
                name: inst.name.clone(),
                conf: Some(inst.conf.clone()),
                instance: Some(inst),
                conf_error: None,
            },
        );
    }
    for s in catalog.skipped {
        let stem = s
            .conf
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".conf"))
            .unwrap_or("");
        if let Ok(name) = InstanceName::parse(stem) {
            known.entry(name.clone()).or_insert(Known {
                name,
                instance: None,
                conf: Some(s.conf.clone()),
                conf_error: Some(s.reason.clone()),
            });
        }
    }
    let removed = marked_users(&std::fs::read_to_string(PASSWD).unwrap_or_default())
        .into_iter()
        .map(|(name, _)| name);
    for name in bridges(&net).into_iter().chain(removed) {
        known.entry(name.clone()).or_insert(Known {
            name,
            instance: None,
            conf: None,
            conf_error: None,
        });
    }
    known.into_values().collect()
}

/// Where useradd(8), which the helpers call, writes accounts.
pub const PASSWD: &str = "/etc/passwd";

/// The instances whose Dockyard-made user (GECOS `Dockyard instance
/// NAME`, user `NAME_docker`) is in `passwd`, with the user's home: the
/// instance's root, as `dockyard-prepare up` creates it. After a conf is
/// removed and its instance stopped, the user and the data are what is
/// left, and nothing else names the instance.
pub fn marked_users(passwd: &str) -> Vec<(InstanceName, PathBuf)> {
    let mut out = Vec::new();
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [user, _, _, _, gecos, home, ..] = fields.as_slice() else {
            continue;
        };
        if let Some(name) = InstanceName::from_account_marker(gecos) {
            if *user == name.account() {
                out.push((name, PathBuf::from(home)));
            }
        }
    }
    out
}

/// What is left on the host of an instance that has neither conf nor
/// bridge: its user, its root (from the helpers' record, else the user's
/// home) and run-time directories; each named for the admin.
pub fn left_behind(name: &InstanceName) -> Vec<String> {
    let mut out = Vec::new();
    let home = marked_users(&std::fs::read_to_string(PASSWD).unwrap_or_default())
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, home)| home);
    if home.is_some() {
        out.push(format!("user {}", name.account()));
    }
    if has_subids(&name.account()) {
        out.push(format!("subordinate ids of {}", name.account()));
    }
    let root = recorded_cleanup(name).map(|c| c.root).or(home);
    if let Some(root) = root.filter(|r| r.symlink_metadata().is_ok()) {
        out.push(format!("data {}", root.display()));
    }
    for dir in [
        PathBuf::from(name.exec_root()),
        PathBuf::from(name.containerd_run_dir()),
        state::instance_dir(name),
    ] {
        if dir.symlink_metadata().is_ok() {
            out.push(dir.display().to_string());
        }
    }
    out
}

/// /etc/subuid and /etc/subgid (or their `DOCKYARD_SUB?ID_FILE`).
pub fn subid_files() -> [PathBuf; 2] {
    [paths::subuid_file(), paths::subgid_file()]
}

/// A subordinate id file's text; `None` when it does not exist.
pub fn read_subid_file(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Whether either file holds lines of `user` (a rootless instance's
/// subordinate ids); unreadable counts as no.
pub fn has_subids(user: &str) -> bool {
    subid_files().iter().any(|f| {
        read_subid_file(f)
            .ok()
            .flatten()
            .is_some_and(|t| dockyard_model::subid::without(&t, user).is_some())
    })
}

/// Instance names of the `NAME_docker0` interfaces in `sys_class_net`.
pub fn bridges(sys_class_net: &Path) -> Vec<InstanceName> {
    let Ok(dir) = std::fs::read_dir(sys_class_net) else {
        return Vec::new();
    };
    let mut names: Vec<InstanceName> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name();
            InstanceName::parse(n.to_str()?.strip_suffix("_docker0")?).ok()
        })
        .collect();
    names.sort();
    names
}

pub fn bridge_exists(name: &InstanceName) -> bool {
    paths::sys_class_net().join(name.bridge()).exists()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub load: String,
    pub active: String,
    pub sub: String,
}

impl UnitState {
    pub fn exists(&self) -> bool {
        self.load != "not-found" || self.active != "inactive"
    }
}

/// `systemctl show` works without root.
pub fn unit_state(unit: &str) -> Result<UnitState, Unknown> {
    // One unit asked for, one block back (keyed by its Id, which for an
    // alias differs from the name asked for: take the only value).
    Ok(unit_states(&[unit.to_string()])?
        .into_values()
        .next()
        .unwrap_or_else(|| parse_show("")))
}

/// The states of many units with one `systemctl show` (one process for
/// the whole status, however many instances), keyed by unit name.
pub fn unit_states(units: &[String]) -> Result<BTreeMap<String, UnitState>, Unknown> {
    if units.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = Command::new("systemctl")
        .args([
            "show",
            "-p",
            "Id",
            "-p",
            "LoadState",
            "-p",
            "ActiveState",
            "-p",
            "SubState",
        ])
        .args(units)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Unknown::Because(format!("cannot run systemctl: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Unknown::Because(err.trim().replace('\n', "; ")));
    }
    Ok(parse_show_many(&String::from_utf8_lossy(&out.stdout)))
}

/// `systemctl show` of several units: blocks separated by empty lines.
pub fn parse_show_many(text: &str) -> BTreeMap<String, UnitState> {
    text.split("\n\n")
        .filter_map(|block| {
            let id = block.lines().find_map(|l| l.strip_prefix("Id="))?;
            Some((id.to_string(), parse_show(block)))
        })
        .collect()
}

pub fn parse_show(text: &str) -> UnitState {
    let map: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| map.get(k).copied().unwrap_or("unknown").to_string();
    UnitState {
        load: get("LoadState"),
        active: get("ActiveState"),
        sub: get("SubState"),
    }
}

/// What systemctl's own output does while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Captured: its stderr becomes part of the error.
    Capture,
    /// Shown to the admin as it happens (and stdin is theirs, for a
    /// password agent): the error has no stderr of its own.
    Inherit,
}

/// `systemctl ARGS` did not succeed.
#[derive(Debug)]
pub enum SystemctlError {
    /// It could not be started at all.
    Spawn { args: String, error: std::io::Error },
    /// It ran and failed; `stderr` is empty unless captured.
    Failed {
        args: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

impl std::fmt::Display for SystemctlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SystemctlError::Spawn { error, .. } => write!(f, "cannot run systemctl: {error}"),
            SystemctlError::Failed { args, stderr, .. } => {
                write!(f, "systemctl {args} failed: {stderr}")
            }
        }
    }
}

/// Runs `systemctl ARGS`, the one way the CLI changes units.
pub fn systemctl(args: &[&str], output: Output) -> Result<(), SystemctlError> {
    let joined = args.join(" ");
    let mut cmd = Command::new("systemctl");
    cmd.args(args);
    let result = match output {
        Output::Capture => cmd.stdin(Stdio::null()).output().map(|o| {
            (
                o.status,
                String::from_utf8_lossy(&o.stderr).trim().to_string(),
            )
        }),
        Output::Inherit => cmd.status().map(|s| (s, String::new())),
    };
    match result {
        Err(error) => Err(SystemctlError::Spawn {
            args: joined,
            error,
        }),
        Ok((status, _)) if status.success() => Ok(()),
        Ok((status, stderr)) => Err(SystemctlError::Failed {
            args: joined,
            status,
            stderr,
        }),
    }
}

/// Is systemd the init system here (so units and reloads mean something)?
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The live rules of each firewall backend, each read at most once per
/// run and only when asked for; reading needs root (CAP_NET_ADMIN).
#[derive(Default)]
pub struct LiveRules {
    read: [std::cell::OnceCell<Result<String, Unknown>>; firewall::BACKENDS.len()],
}

impl LiveRules {
    pub fn of(&self, backend: &dyn Backend) -> &Result<String, Unknown> {
        let i = firewall::BACKENDS
            .iter()
            .position(|b| b.name() == backend.name())
            .unwrap_or(0);
        self.read[i].get_or_init(|| read_live(firewall::BACKENDS[i]))
    }

    /// The backend whose rules `instance` has: the recorded one; with no
    /// record (rules written by a Dockyard that kept none), the first
    /// backend holding any of them; else the one its next start would use.
    pub fn backend_for(&self, instance: &InstanceName) -> &'static dyn Backend {
        if let Ok(Some(b)) = choice::recorded(instance) {
            return b;
        }
        firewall::BACKENDS
            .into_iter()
            .find(|b| {
                self.of(*b)
                    .as_ref()
                    .is_ok_and(|live| !b.residue(live, instance).is_empty())
            })
            .unwrap_or_else(|| choice::chosen().backend)
    }

    /// Does any installed backend hold a line of `instance`? Unreadable
    /// counts as yes: the caller must not conclude there is nothing.
    pub fn any_residue(&self, instance: &InstanceName) -> bool {
        firewall::BACKENDS.iter().any(|b| match self.of(*b) {
            Ok(live) => !b.residue(live, instance).is_empty(),
            Err(Unknown::NotInstalled(_)) => false,
            Err(_) => true,
        })
    }
}

fn read_live(backend: &dyn Backend) -> Result<String, Unknown> {
    let read = backend.read_program();
    let prog = paths::find_program(read.name, paths::Search::PathThenAdminDirs)
        .map_err(|_| Unknown::NotInstalled(read.name))?;
    if !is_root() {
        return Err(Unknown::NeedsRoot);
    }
    let out = Command::new(&prog)
        .args(read.args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Unknown::Because(format!("cannot run {}: {e}", prog.display())))?;
    if !out.status.success() {
        return Err(Unknown::Because(format!(
            "{} failed: {}",
            prog.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The instance as its firewall rules see it: a rootless instance's user
/// looked up now. A user that is gone makes its expected rules missing and
/// its live ones, found by their tag, stray.
pub fn firewall_subject(net: Network) -> Subject {
    Subject::resolve(net, |name| {
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    })
}

/// What `dockyard-network up` recorded for a running instance, e.g. after
/// its conf was removed. A record that does not parse counts as none.
pub fn recorded_network(name: &InstanceName) -> Option<Network> {
    let record = state::load(name, network::RECORD).ok()??;
    Network::parse(&record).ok()
}

/// The root and exec-root `dockyard-prepare up` recorded.
pub fn recorded_cleanup(name: &InstanceName) -> Option<Cleanup> {
    let record = state::load(name, prepare::RECORD).ok()??;
    Cleanup::parse(&record).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    pub path: PathBuf,
    pub exists: bool,
    pub is_socket: bool,
    pub owner: String,
    pub group: String,
    pub mode: u32,
}

impl SocketInfo {
    /// `OWNER:NAME_docker 0660`, what dockerd's `--group` makes: the owner
    /// is root for a rootful instance, the instance's user for a rootless
    /// one (`rootless`; `None` when unknown, e.g. no conf: either).
    pub fn problem(&self, name: &InstanceName, rootless: Option<bool>) -> Option<String> {
        if !self.exists {
            return Some(format!("{} does not exist", self.path.display()));
        }
        if !self.is_socket {
            return Some(format!("{} is not a socket", self.path.display()));
        }
        let want_group = name.account();
        let owners: Vec<String> = match rootless {
            Some(r) => vec![rootless::socket_owner(name, r)],
            None => [false, true]
                .iter()
                .map(|r| rootless::socket_owner(name, *r))
                .collect(),
        };
        if !owners.contains(&self.owner) || self.group != want_group || self.mode != 0o660 {
            return Some(format!(
                "{} is {}:{} {:04o}, expected {}:{want_group} 0660",
                self.path.display(),
                self.owner,
                self.group,
                self.mode,
                owners.join(" or ")
            ));
        }
        None
    }
}

/// Stat without following a symlink. The root is `root:NAME_docker 0750`,
/// so others get [`Unknown::NeedsRoot`].
pub fn socket_info(path: &Path) -> Result<SocketInfo, Unknown> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(SocketInfo {
            path: path.to_path_buf(),
            exists: true,
            is_socket: m.file_type().is_socket(),
            owner: user_name(m.uid()),
            group: group_name(m.gid()),
            mode: m.mode() & 0o7777,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SocketInfo {
            path: path.to_path_buf(),
            exists: false,
            is_socket: false,
            owner: String::new(),
            group: String::new(),
            mode: 0,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Unknown::NeedsRoot),
        Err(e) => Err(Unknown::Because(format!("{}: {e}", path.display()))),
    }
}

pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

pub fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}

/// Is Docker `version` in the store (its dockerd executable)?
pub fn docker_installed(version: &str) -> bool {
    dockyard_model::installed::docker_in(&dockyard_model::installed::store(), version).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_output_is_parsed() {
        let s = parse_show("LoadState=loaded\nActiveState=active\nSubState=running\n");
        assert_eq!(
            (s.load.as_str(), s.active.as_str(), s.sub.as_str()),
            ("loaded", "active", "running")
        );
        assert!(s.exists());
        let gone = parse_show("ActiveState=inactive\nLoadState=not-found\nSubState=dead\n");
        assert!(!gone.exists());
    }

    #[test]
    fn show_of_many_units_is_split_by_id() {
        let text = "Id=a_docker.service\nLoadState=loaded\nActiveState=active\nSubState=running\n\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nId=b_docker.service\n";
        let m = parse_show_many(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m["a_docker.service"].active, "active");
        assert!(!m["b_docker.service"].exists());
    }

    #[test]
    fn unknowns_read_as_before() {
        assert_eq!(Unknown::NeedsRoot.to_string(), "unknown (needs root)");
        assert_eq!(
            Unknown::NeedsRootOrGroup("dy1_docker".into()).to_string(),
            "unknown (needs root or membership in group dy1_docker)"
        );
        assert_eq!(
            Unknown::Because("iptables-save not found; install the iptables package".into())
                .to_string(),
            "unknown (iptables-save not found; install the iptables package)"
        );
        assert_eq!(
            serde_json::to_value(Unknown::NeedsRoot).expect("json"),
            serde_json::json!("unknown (needs root)")
        );
    }

    #[test]
    fn socket_problems_are_named() {
        let name = InstanceName::parse("dy1").expect("name");
        let mut s = SocketInfo {
            path: "/srv/dy1/docker.sock".into(),
            exists: true,
            is_socket: true,
            owner: "root".into(),
            group: "dy1_docker".into(),
            mode: 0o660,
        };
        assert_eq!(s.problem(&name, Some(false)), None);
        assert_eq!(s.problem(&name, None), None);
        // A rootless instance's socket is its user's.
        assert_eq!(
            s.problem(&name, Some(true)).as_deref(),
            Some(
                "/srv/dy1/docker.sock is root:dy1_docker 0660, expected dy1_docker:dy1_docker 0660"
            )
        );
        s.owner = "dy1_docker".into();
        assert_eq!(s.problem(&name, Some(true)), None);
        assert_eq!(s.problem(&name, None), None);
        s.owner = "root".into();
        s.mode = 0o666;
        assert_eq!(
            s.problem(&name, Some(false)).as_deref(),
            Some("/srv/dy1/docker.sock is root:dy1_docker 0666, expected root:dy1_docker 0660")
        );
        s.exists = false;
        assert!(s
            .problem(&name, Some(false))
            .unwrap_or_default()
            .contains("does not exist"));
    }
}

#[cfg(test)]
mod left_behind_tests {
    use super::*;

    #[test]
    fn only_users_dockyard_made_count() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
dy3_docker:x:998:998:Dockyard instance dy3:/var/lib/dockyard/dy3:/usr/sbin/nologin\n\
dy4_docker:x:997:997:Some Admin:/home/dy4:/bin/sh\n\
other:x:996:996:Dockyard instance dy5:/x:/bin/sh\n\
broken line\n";
        assert_eq!(
            marked_users(passwd),
            [(
                InstanceName::parse("dy3").expect("name"),
                PathBuf::from("/var/lib/dockyard/dy3")
            )]
        );
    }
}

//! `dockyard status [NAME] [--json]`: one line per instance (confs, plus
//! running instances without one), from systemd, the socket, the bridge,
//! the firewall, the Docker API and the artifact store. Read-only; what
//! cannot be read without root is shown as "unknown (needs root)".

use crate::error::{Exit, Failure, Result};
use crate::probe::cgroup::{self, Usage};
use crate::probe::host::{self, Known, Unknown};
use crate::probe::http::{self, HttpError};
use dockyard_model::{installed, paths, rootless, InstanceName};
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this instance
    pub name: Option<String>,
    /// Print a JSON array, one object per instance
    #[arg(long)]
    pub json: bool,
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes (as systemctl is-active and systemctl status use them):
  0  every instance shown is active (unknowns, e.g. \"unknown (needs root)\", are not failures)
  1  failure: the status could not be encoded or printed
  2  usage error: bad NAME or option
  3  at least one instance shown is not active (stopped, failed, refused, removed with data left)
  4  NAME is given and the host has nothing of that name (no conf, bridge or Dockyard user)";

/// `systemctl is-active`'s "not active" and `systemctl status`'s "no such unit".
const EXIT_NOT_ACTIVE: u8 = 3;
const EXIT_NO_SUCH_INSTANCE: u8 = 4;

const API_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: &Args) -> Result<std::process::ExitCode> {
    let mut known = host::known_instances();
    if let Some(n) = &args.name {
        let name = InstanceName::parse(n).map_err(|e| Failure::new(Exit::Usage, e))?;
        let all: Vec<String> = known.iter().map(|k| k.name.to_string()).collect();
        known.retain(|k| k.name == name);
        if known.is_empty() {
            eprintln!(
                "dockyard: no instance {name}: no conf {}/{name}.conf, no bridge {} and no user {}; known: {}",
                paths::instances_dir().display(),
                name.bridge(),
                name.account(),
                if all.is_empty() { "none".to_string() } else { all.join(", ") }
            );
            return Ok(std::process::ExitCode::from(EXIT_NO_SUCH_INSTANCE));
        }
    }
    let live = host::LiveRules::default();
    let units: Vec<String> = known
        .iter()
        .flat_map(|k| [k.name.unit(), k.name.containerd_unit()])
        .collect();
    let states = host::unit_states(&units);
    let reports: Vec<Report> = known
        .iter()
        .map(|k| {
            let state_of = |unit: String| match &states {
                Ok(m) => m
                    .get(&unit)
                    .cloned()
                    .ok_or_else(|| Unknown::Because("systemctl did not report it".into())),
                Err(e) => Err(e.clone()),
            };
            report(
                k,
                state_of(k.name.unit()),
                state_of(k.name.containerd_unit()),
                &live,
            )
        })
        .collect();
    if args.json {
        // Through a Value, whose objects keep their keys sorted: the
        // output is what it always was, whatever the field order above.
        let text = serde_json::to_value(&reports)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .map_err(|e| Failure::failed(format!("cannot encode the status: {e}")))?;
        println!("{text}");
    } else if reports.is_empty() {
        println!(
            "no instances: no confs in {} and no running instance",
            paths::instances_dir().display()
        );
    } else {
        print!("{}", table(&reports));
        // What an instance needs that is not installed, with its fix, under
        // the table (one line each: the messages are long).
        for r in &reports {
            for m in &r.not_installed {
                println!("{}: {m}", r.name);
            }
        }
    }
    let all_active = reports.iter().all(Report::is_active);
    Ok(if all_active {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(EXIT_NOT_ACTIVE)
    })
}

/// The columns of the text form, in order (RESOURCES goes after
/// CONTAINERS when there are figures).
const COLUMNS: [&str; 11] = [
    "NAME",
    "MODE",
    "GROUP GRANTS",
    "UNIT",
    "CONTAINERD",
    "BRIDGE",
    "RULES",
    "CONTAINERS",
    "DOCKER",
    "SOCKET",
    "NOTE",
];

/// The text form: a header and one aligned row per instance; what needs
/// the admin's attention (no conf, an invalid conf, data left behind) is
/// the last column, so it can be as long as it must. MODE and GROUP
/// GRANTS come first: who may be given the instance's group depends on
/// them.
pub fn table(reports: &[Report]) -> String {
    let mut header: Vec<&str> = COLUMNS.to_vec();
    let mut rows: Vec<Vec<String>> = reports.iter().map(|r| r.row().to_vec()).collect();
    // The slice's figures, before DOCKER; a real report always has them
    // (the column is left out only for reports built without).
    if reports.iter().any(|r| r.resources.is_some()) {
        let at = 1 + COLUMNS.iter().position(|c| *c == "CONTAINERS").unwrap_or(0);
        header.insert(at, "RESOURCES");
        for (row, r) in rows.iter_mut().zip(reports) {
            row.insert(at, r.resources_cell());
        }
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[&str]| {
        let last = cells.iter().rposition(|c| !c.is_empty()).unwrap_or(0);
        for (i, cell) in cells.iter().enumerate().take(last + 1) {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    };
    push_row(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        push_row(&cells);
    }
    out
}

/// Everything about one instance: its `--json` object (same keys) and,
/// through `Display`, its status line.
#[derive(Debug, Serialize)]
pub struct Report {
    pub name: String,
    pub conf: Option<PathBuf>,
    pub conf_error: Option<String>,
    pub runtime: Option<&'static str>,
    /// `rootful` or `rootless`, from the conf (`None` without a valid one).
    pub mode: Option<&'static str>,
    /// What membership in the instance's group NAME_docker grants: root
    /// on the host, or what the instance's user can do.
    pub group_grants: Option<String>,
    /// The same in a few words, for the GROUP GRANTS column.
    #[serde(skip)]
    pub group_grants_brief: Option<String>,
    pub unit: UnitReport,
    /// Always there in a real report of a rootful instance (a rootless
    /// dockerd starts its own containerd, with no unit); a report without
    /// it leaves it off the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containerd: Option<ContainerdReport>,
    pub socket: SocketReport,
    pub bridge: Bridge,
    pub firewall: FirewallReport,
    #[serde(flatten)]
    pub containers: Containers,
    pub docker: Option<DockerReport>,
    /// What the instance runs that the store lacks, each with the command
    /// that installs it (the unit's own first step fails with the same).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_installed: Vec<String>,
    /// Of an instance with no conf and no bridge (removed and stopped):
    /// what is still on the host, for `dockyard destroy NAME` to remove.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_behind: Vec<String>,
    /// Always there in a real report; a report without it leaves it off
    /// the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesReport>,
}

impl Report {
    /// Its unit is active, as `systemctl is-active` says.
    pub fn is_active(&self) -> bool {
        matches!(&self.unit, UnitReport::Known { active, .. } if active == "active")
    }

    /// What needs the admin's attention, or nothing.
    pub fn note(&self) -> String {
        if !self.left_behind.is_empty() {
            return format!(
                "removed, data left: {}; run dockyard destroy {}",
                self.left_behind.join(", "),
                self.name
            );
        }
        match (&self.conf, &self.conf_error) {
            (_, Some(e)) => format!("conf invalid: {e}"),
            (None, None) => "no conf: stop it to clean up".to_string(),
            (Some(_), None) => String::new(),
        }
    }

    /// `memory 50.0M/2.0G; cpu 1.2s/150%; tasks 37/512`, `-` while the
    /// slice is not active.
    fn resources_cell(&self) -> String {
        match self.resources.as_ref().and_then(|r| r.usage.as_ref()) {
            Some(usage) => usage.to_string(),
            None => "-".to_string(),
        }
    }

    fn row(&self) -> [String; 11] {
        let socket = match &self.socket {
            SocketReport::Seen { path, .. } => format!("{} ({})", path.display(), self.socket),
            SocketReport::Unknown {
                path: Some(path),
                error,
            } => format!("{} ({error})", path.display()),
            SocketReport::Unknown { path: None, error } => error.to_string(),
        };
        let containers = match &self.containers.0 {
            Ok(n) => n.to_string(),
            Err(NoCount::NotRunning) => "-".to_string(),
            Err(why) => why.to_string(),
        };
        let docker = match &self.docker {
            None => "unknown".to_string(),
            Some(d) if d.installed => d.version.clone(),
            Some(d) => format!("{} (NOT installed)", d.version),
        };
        let containerd = match (&self.containerd, self.mode) {
            (Some(c), _) => c.state.to_string(),
            (None, Some("rootless")) => "dockerd's own".to_string(),
            (None, _) => String::new(),
        };
        let unknown = || "-".to_string();
        [
            self.name.clone(),
            self.mode.map_or_else(unknown, str::to_string),
            // The whole sentence is in --json.
            self.group_grants_brief.clone().unwrap_or_else(unknown),
            self.unit.to_string(),
            containerd,
            self.bridge.to_string(),
            self.firewall.to_string(),
            containers,
            docker,
            socket,
            self.note(),
        ]
    }
}

/// The instance's slice: what it uses now against the limits in force,
/// read from its cgroup (dockyard.conf(5) RESOURCES).
#[derive(Debug, Serialize)]
pub struct ResourcesReport {
    pub cgroup: PathBuf,
    /// `false` while the slice's cgroup does not exist (the slice is not
    /// active); the figures are then left out.
    pub present: bool,
    #[serde(flatten)]
    pub usage: Option<Usage>,
}

/// A unit's state, or why it is not known.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum UnitReport {
    Known {
        load: String,
        active: String,
        sub: String,
    },
    Unknown {
        error: Unknown,
    },
}

impl From<std::result::Result<host::UnitState, Unknown>> for UnitReport {
    fn from(r: std::result::Result<host::UnitState, Unknown>) -> UnitReport {
        match r {
            Ok(u) => UnitReport::Known {
                load: u.load,
                active: u.active,
                sub: u.sub,
            },
            Err(error) => UnitReport::Unknown { error },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ContainerdReport {
    #[serde(flatten)]
    pub state: UnitReport,
    pub unit: String,
    pub socket: String,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SocketReport {
    Seen {
        path: PathBuf,
        exists: bool,
        owner: String,
        group: String,
        /// Octal, four digits, as `ls` and `chmod` write it.
        mode: String,
        ok: bool,
    },
    Unknown {
        /// None when no root is known (no valid conf, no record).
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
        error: Unknown,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bridge {
    Present,
    Absent,
}

/// The instance's firewall rules against what they should be.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum FirewallReport {
    /// Compared with the expected rule set (the networks are known).
    Audited {
        state: &'static str,
        present: usize,
        expected: usize,
        missing: Vec<String>,
        duplicated: Vec<Duplicate>,
        stray: Vec<String>,
        backend: &'static str,
    },
    /// The networks are unknown (no conf, no record): only what is tagged
    /// for the instance.
    Residue {
        state: Residue,
        present: usize,
        stray: Vec<String>,
    },
    /// The rules could not be read.
    Unread { state: Unknown },
}

#[derive(Debug, Serialize)]
pub struct Duplicate {
    pub rule: String,
    pub count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residue {
    /// Nothing tagged for the instance.
    Absent,
    /// Tagged lines, which cannot be audited without the networks.
    NetworksUnknown,
}

impl fmt::Display for Residue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Residue::Absent => "absent",
            Residue::NetworksUnknown => "unknown (networks unknown: no conf)",
        })
    }
}

impl Serialize for Residue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How many containers run, or why that is not known: the keys
/// `containers` (a number or null) and `containers_error` (null or why).
#[derive(Debug)]
pub struct Containers(pub std::result::Result<usize, NoCount>);

impl Serialize for Containers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        match &self.0 {
            Ok(n) => {
                m.serialize_entry("containers", n)?;
                m.serialize_entry("containers_error", &None::<String>)?;
            }
            Err(why) => {
                m.serialize_entry("containers", &None::<usize>)?;
                m.serialize_entry("containers_error", &why.to_string())?;
            }
        }
        m.end()
    }
}

/// Why there is no container count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoCount {
    /// No socket answers (and no bridge): the instance is stopped.
    NotRunning,
    Unknown(Unknown),
    /// The API answered something else, in its words.
    Failed(String),
}

impl fmt::Display for NoCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoCount::NotRunning => f.write_str("not running"),
            NoCount::Unknown(u) => u.fmt(f),
            NoCount::Failed(why) => f.write_str(why),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DockerReport {
    pub version: String,
    pub installed: bool,
}

/// Everything about one instance.
pub fn report(
    k: &Known,
    unit: std::result::Result<host::UnitState, Unknown>,
    containerd: std::result::Result<host::UnitState, Unknown>,
    live: &host::LiveRules,
) -> Report {
    let name = &k.name;
    let is_rootless = k.instance.as_ref().map(|i| i.rootless);
    let root: Option<String> = match &k.instance {
        Some(i) => Some(i.root.clone()),
        None => host::recorded_cleanup(name).map(|c| c.root.to_string_lossy().into_owned()),
    };
    let socket_path = root
        .as_ref()
        .map(|r| PathBuf::from(format!("{r}/docker.sock")));
    let socket = match &socket_path {
        None => SocketReport::Unknown {
            path: None,
            error: Unknown::Because("no valid conf and no recorded root".into()),
        },
        Some(p) => match host::socket_info(p) {
            Ok(s) => SocketReport::Seen {
                ok: s.problem(name, is_rootless).is_none(),
                path: s.path,
                exists: s.exists,
                owner: s.owner,
                group: s.group,
                mode: format!("{:04o}", s.mode),
            },
            Err(error) => SocketReport::Unknown {
                path: Some(p.clone()),
                error,
            },
        },
    };
    let bridge = if host::bridge_exists(name) {
        Bridge::Present
    } else {
        Bridge::Absent
    };
    let net = match &k.instance {
        Some(i) => Some(i.network()),
        None => host::recorded_network(name),
    };
    let backend = live.backend_for(name);
    let firewall = match (live.of(backend), &net) {
        (Err(e), _) => FirewallReport::Unread { state: e.clone() },
        (Ok(live), Some(net)) => {
            let a = backend.audit(live, &host::firewall_subject(net.clone()));
            FirewallReport::Audited {
                state: a.state(),
                present: a.ok.len() + a.duplicated.len(),
                expected: a.total(),
                missing: a.missing.iter().map(|e| e.to_string()).collect(),
                duplicated: a
                    .duplicated
                    .iter()
                    .map(|(e, n)| Duplicate {
                        rule: e.to_string(),
                        count: *n,
                    })
                    .collect(),
                stray: a.stray.iter().map(|e| e.to_string()).collect(),
                backend: backend.name(),
            }
        }
        (Ok(live), None) => {
            let lines: Vec<String> = backend
                .residue(live, name)
                .iter()
                .map(|l| l.to_string())
                .collect();
            FirewallReport::Residue {
                state: if lines.is_empty() {
                    Residue::Absent
                } else {
                    Residue::NetworksUnknown
                },
                present: lines.len(),
                stray: lines,
            }
        }
    };
    let containers = match &socket_path {
        Some(p) if bridge == Bridge::Present || p.exists() => container_count(p, name),
        _ => Err(NoCount::NotRunning),
    };
    let left_behind = if k.conf.is_none() && bridge == Bridge::Absent {
        host::left_behind(name)
    } else {
        Vec::new()
    };
    Report {
        name: name.as_str().to_string(),
        conf: k.conf.clone(),
        conf_error: k.conf_error.clone(),
        runtime: k.instance.as_ref().map(|i| i.runtime.as_str()),
        mode: is_rootless.map(rootless::mode),
        group_grants: is_rootless.map(|r| rootless::group_grants(name, r)),
        group_grants_brief: is_rootless.map(|r| rootless::group_grants_brief(name, r)),
        unit: unit.into(),
        containerd: (is_rootless != Some(true)).then(|| ContainerdReport {
            state: containerd.into(),
            unit: name.containerd_unit(),
            socket: name.containerd_socket(),
        }),
        socket,
        bridge,
        firewall,
        containers: Containers(containers),
        docker: k.instance.as_ref().map(|i| DockerReport {
            version: i.docker_version.clone(),
            installed: host::docker_installed(&i.docker_version),
        }),
        left_behind,
        not_installed: k.instance.as_ref().map_or_else(Vec::new, not_installed),
        resources: Some(resources(name)),
    }
}

fn resources(name: &InstanceName) -> ResourcesReport {
    let cgroup = paths::cgroup_root().join(name.container_cgroup());
    let usage = cgroup::read(&cgroup);
    ResourcesReport {
        present: usage.is_some(),
        cgroup,
        usage,
    }
}

fn not_installed(i: &dockyard_model::Instance) -> Vec<String> {
    let (_, sysbox, _) = dockyard_generator::run::version_defaults(&paths::manifest_override());
    installed::missing_for(&installed::store(), i, sysbox.ok().as_deref())
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Running containers, from `GET /containers/json` on the socket.
fn container_count(
    socket: &std::path::Path,
    name: &InstanceName,
) -> std::result::Result<usize, NoCount> {
    match http::get(socket, "/containers/json", API_TIMEOUT) {
        Ok(r) if r.is_success() => match r.json() {
            Ok(Value::Array(a)) => Ok(a.len()),
            Ok(other) => Err(NoCount::Failed(format!("unexpected answer: {other}"))),
            Err(e) => Err(NoCount::Failed(e)),
        },
        Ok(r) => Err(NoCount::Failed(format!(
            "the API answered HTTP {}: {}",
            r.status,
            r.text().trim()
        ))),
        Err(HttpError::PermissionDenied(_)) => {
            Err(NoCount::Unknown(Unknown::NeedsRootOrGroup(name.account())))
        }
        Err(HttpError::NotListening(_)) => Err(NoCount::NotRunning),
        Err(e) => Err(NoCount::Failed(e.to_string())),
    }
}

impl fmt::Display for UnitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitReport::Unknown { error } => error.fmt(f),
            UnitReport::Known { load, .. } if load == "not-found" => f.write_str("no unit"),
            UnitReport::Known { active, sub, .. } => write!(f, "{active}/{sub}"),
        }
    }
}

impl fmt::Display for SocketReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketReport::Unknown { error, .. } => error.fmt(f),
            SocketReport::Seen { exists: false, .. } => f.write_str("absent"),
            SocketReport::Seen {
                owner,
                group,
                mode,
                ok,
                ..
            } => write!(
                f,
                "{owner}:{group} {mode}{}",
                if *ok { "" } else { " (wrong)" }
            ),
        }
    }
}

impl fmt::Display for FirewallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirewallReport::Audited {
                state,
                present,
                expected,
                ..
            } => write!(f, "{state} {present}/{expected}"),
            FirewallReport::Residue { state, present, .. } => {
                write!(f, "{state} ({present} lines)")
            }
            FirewallReport::Unread { state } => state.fmt(f),
        }
    }
}

impl fmt::Display for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bridge::Present => "present",
            Bridge::Absent => "absent",
        })
    }
}

/// The one-line form of a report.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name)?;
        if let (Some(mode), Some(grants)) = (self.mode, &self.group_grants) {
            write!(f, "{mode}, group grants {grants}; ")?;
        }
        write!(f, "unit {}", self.unit)?;
        if let Some(c) = &self.containerd {
            write!(f, "; containerd {}", c.state)?;
        }
        write!(
            f,
            "; socket {}; bridge {}; rules {}; containers ",
            self.socket, self.bridge, self.firewall
        )?;
        match &self.containers.0 {
            Ok(n) => write!(f, "{n}")?,
            Err(why) => write!(f, "{why}")?,
        }
        if let Some(usage) = self.resources.as_ref().and_then(|r| r.usage.as_ref()) {
            write!(f, "; {usage}")?;
        }
        match &self.docker {
            None => f.write_str("; docker unknown")?,
            Some(d) => write!(
                f,
                "; docker {} ({})",
                d.version,
                if d.installed {
                    "installed"
                } else {
                    "NOT installed"
                }
            )?,
        }
        if self.conf.is_none() {
            f.write_str("; no conf")?;
        }
        if let Some(e) = &self.conf_error {
            write!(f, "; conf invalid: {e}")?;
        }
        for m in &self.not_installed {
            write!(f, "\n  {m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn running() -> Report {
        Report {
            name: "dy1".into(),
            conf: Some("/etc/dockyard/instances.d/dy1.conf".into()),
            conf_error: None,
            runtime: Some("sysbox-runc"),
            mode: Some("rootful"),
            group_grants: Some("root on the host".into()),
            group_grants_brief: Some("root on the host".into()),
            unit: UnitReport::Known {
                load: "loaded".into(),
                active: "active".into(),
                sub: "running".into(),
            },
            containerd: Some(ContainerdReport {
                state: UnitReport::Known {
                    load: "loaded".into(),
                    active: "active".into(),
                    sub: "running".into(),
                },
                unit: "dy1_containerd.service".into(),
                socket: "/run/dy1_containerd/containerd.sock".into(),
            }),
            socket: SocketReport::Seen {
                path: "/srv/dy1/docker.sock".into(),
                exists: true,
                owner: "root".into(),
                group: "dy1_docker".into(),
                mode: "0660".into(),
                ok: true,
            },
            bridge: Bridge::Present,
            firewall: FirewallReport::Audited {
                state: "present",
                present: 9,
                expected: 9,
                missing: vec![],
                duplicated: vec![],
                stray: vec![],
                backend: "iptables",
            },
            containers: Containers(Ok(2)),
            docker: Some(DockerReport {
                version: "29.2.1".into(),
                installed: true,
            }),
            left_behind: vec![],
            resources: None,
            not_installed: vec![],
        }
    }

    fn unreadable() -> Report {
        Report {
            name: "dy2".into(),
            conf: None,
            conf_error: None,
            runtime: None,
            mode: None,
            group_grants: None,
            group_grants_brief: None,
            unit: UnitReport::Unknown {
                error: Unknown::Because("System has not been booted with systemd".into()),
            },
            containerd: None,
            socket: SocketReport::Unknown {
                path: None,
                error: Unknown::NeedsRoot,
            },
            bridge: Bridge::Present,
            firewall: FirewallReport::Unread {
                state: Unknown::NeedsRoot,
            },
            containers: Containers(Err(NoCount::Unknown(Unknown::NeedsRootOrGroup(
                "dy2_docker".into(),
            )))),
            docker: None,
            left_behind: vec![],
            resources: None,
            not_installed: vec![],
        }
    }

    fn removed() -> Report {
        Report {
            name: "dy3".into(),
            conf: None,
            conf_error: None,
            runtime: None,
            mode: None,
            group_grants: None,
            group_grants_brief: None,
            unit: UnitReport::Known {
                load: "not-found".into(),
                active: "inactive".into(),
                sub: "dead".into(),
            },
            containerd: None,
            socket: SocketReport::Unknown {
                path: None,
                error: Unknown::Because("no valid conf and no recorded root".into()),
            },
            bridge: Bridge::Absent,
            firewall: FirewallReport::Residue {
                state: Residue::Absent,
                present: 0,
                stray: vec![],
            },
            containers: Containers(Err(NoCount::NotRunning)),
            docker: None,
            left_behind: vec![
                "user dy3_docker".into(),
                "data /var/lib/dockyard/dy3".into(),
            ],
            resources: None,
            not_installed: vec![],
        }
    }

    /// What an admin sees from `dockyard status`: a header, aligned
    /// columns, the socket's path, and what a removed conf left behind.
    #[test]
    fn the_table_has_a_header_aligned_columns_and_the_socket() {
        let reports = [running(), unreadable(), removed()];
        let text = table(&reports);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("NAME  MODE     GROUP GRANTS      UNIT "),
            "{text}"
        );
        // Every column starts at the same place on every line.
        for col in [
            "MODE",
            "GROUP GRANTS",
            "UNIT",
            "CONTAINERD",
            "BRIDGE",
            "RULES",
            "CONTAINERS",
            "DOCKER",
            "SOCKET",
        ] {
            let at = lines[0].find(col).expect("column");
            assert_eq!(&lines[0][at - 2..at], "  ", "{col}: {text}");
        }
        let socket_at = lines[0].find("SOCKET").expect("socket");
        assert!(
            lines[1][socket_at..].starts_with("/srv/dy1/docker.sock (root:dy1_docker 0660)"),
            "{text}"
        );
        assert!(
            lines[1][lines[0].find("UNIT").expect("unit")..].starts_with("active/running "),
            "{text}"
        );
        assert!(
            lines[3].ends_with("removed, data left: user dy3_docker, data /var/lib/dockyard/dy3; run dockyard destroy dy3"),
            "{text}"
        );
        assert!(running().is_active());
        assert!(!removed().is_active());
        assert!(!unreadable().is_active());
    }

    #[test]
    fn what_is_not_installed_follows_the_line_with_its_fix() {
        let mut r = running();
        r.not_installed = vec![
            "sysbox 0.6.7 is not installed (/s/sysbox-runc is missing), and \
            Runtime=sysbox-runc (the default) needs it: run `dockyard install --no-docker --sysbox \
            0.6.7`, or set Runtime=runc in the conf"
                .into(),
        ];
        let text = r.to_string();
        let mut lines = text.lines();
        assert!(lines
            .next()
            .is_some_and(|l| l.starts_with("dy1: rootful, group grants root on the host; unit ")));
        assert_eq!(
            lines.next(),
            Some(format!("  {}", r.not_installed[0]).as_str())
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["not_installed"][0], r.not_installed[0].as_str());
        assert!(serde_json::to_value(running())
            .unwrap()
            .get("not_installed")
            .is_none());
    }

    #[test]
    fn line_summarises_a_report() {
        assert_eq!(
            running().to_string(),
            "dy1: rootful, group grants root on the host; unit active/running; containerd active/running; socket root:dy1_docker 0660; bridge present; rules present 9/9; containers 2; docker 29.2.1 (installed)"
        );
        assert_eq!(
            unreadable().to_string(),
            "dy2: unit unknown (System has not been booted with systemd); socket unknown (needs root); bridge present; rules unknown (needs root); containers unknown (needs root or membership in group dy2_docker); docker unknown; no conf"
        );
    }

    #[test]
    fn line_names_absent_wrong_and_invalid() {
        let mut r = running();
        r.unit = UnitReport::Known {
            load: "not-found".into(),
            active: "inactive".into(),
            sub: "dead".into(),
        };
        r.socket = SocketReport::Seen {
            path: "/srv/dy1/docker.sock".into(),
            exists: true,
            owner: "root".into(),
            group: "root".into(),
            mode: "0666".into(),
            ok: false,
        };
        r.firewall = FirewallReport::Residue {
            state: Residue::NetworksUnknown,
            present: 3,
            stray: vec![],
        };
        r.containers = Containers(Err(NoCount::NotRunning));
        r.docker = Some(DockerReport {
            version: "28.5.2".into(),
            installed: false,
        });
        r.conf_error = Some("BridgeCIDR= is required".into());
        assert_eq!(
            r.to_string(),
            "dy1: rootful, group grants root on the host; unit no unit; containerd active/running; socket root:root 0666 (wrong); bridge present; rules unknown (networks unknown: no conf) (3 lines); containers not running; docker 28.5.2 (NOT installed); conf invalid: BridgeCIDR= is required"
        );
    }

    /// The objects of `--json`, key for key, as they were built by hand
    /// before the report had a type.
    #[test]
    fn json_keeps_every_key_and_value() {
        let v = serde_json::to_value(running()).expect("json");
        assert_eq!(
            v,
            json!({
                "name": "dy1", "conf": "/etc/dockyard/instances.d/dy1.conf", "conf_error": null,
                "runtime": "sysbox-runc", "mode": "rootful", "group_grants": "root on the host",
                "unit": {"load": "loaded", "active": "active", "sub": "running"},
                "containerd": {"load": "loaded", "active": "active", "sub": "running",
                    "unit": "dy1_containerd.service", "socket": "/run/dy1_containerd/containerd.sock"},
                "socket": {"path": "/srv/dy1/docker.sock", "exists": true, "owner": "root", "group": "dy1_docker", "mode": "0660", "ok": true},
                "bridge": "present",
                "firewall": {"state": "present", "present": 9, "expected": 9, "missing": [], "duplicated": [], "stray": [], "backend": "iptables"},
                "containers": 2, "containers_error": null,
                "docker": {"version": "29.2.1", "installed": true},
            })
        );
        let mut r = unreadable();
        r.containerd = Some(ContainerdReport {
            state: UnitReport::Unknown {
                error: Unknown::Because("cannot run systemctl: gone".into()),
            },
            unit: "dy2_containerd.service".into(),
            socket: "/run/dy2_containerd/containerd.sock".into(),
        });
        assert_eq!(
            serde_json::to_value(r).expect("json"),
            json!({
                "name": "dy2", "conf": null, "conf_error": null, "runtime": null,
                "mode": null, "group_grants": null,
                "unit": {"error": "unknown (System has not been booted with systemd)"},
                "containerd": {"error": "unknown (cannot run systemctl: gone)",
                    "unit": "dy2_containerd.service", "socket": "/run/dy2_containerd/containerd.sock"},
                "socket": {"error": "unknown (needs root)"},
                "bridge": "present",
                "firewall": {"state": "unknown (needs root)"},
                "containers": null, "containers_error": "unknown (needs root or membership in group dy2_docker)",
                "docker": null,
            })
        );
        let fw = FirewallReport::Residue {
            state: Residue::Absent,
            present: 0,
            stray: vec![],
        };
        assert_eq!(
            serde_json::to_value(fw).expect("json"),
            json!({"state": "absent", "present": 0, "stray": []})
        );
        let dup = FirewallReport::Audited {
            state: "duplicated",
            present: 9,
            expected: 9,
            missing: vec![],
            duplicated: vec![Duplicate {
                rule: "-A X".into(),
                count: 2,
            }],
            stray: vec![],
            backend: "iptables",
        };
        assert_eq!(
            serde_json::to_value(dup).expect("json")["duplicated"],
            json!([{"rule": "-A X", "count": 2}])
        );
        let sock = SocketReport::Unknown {
            path: Some("/srv/dy1/docker.sock".into()),
            error: Unknown::NeedsRoot,
        };
        assert_eq!(
            serde_json::to_value(sock).expect("json"),
            json!({"path": "/srv/dy1/docker.sock", "error": "unknown (needs root)"})
        );
    }

    #[test]
    fn resources_go_in_their_column_and_into_json() {
        let d = tempfile::tempdir().expect("tempdir");
        for (file, text) in [
            ("memory.current", "104857600\n"),
            ("memory.max", "2147483648\n"),
            ("memory.high", "max\n"),
            ("cpu.stat", "usage_usec 2500000\n"),
            ("cpu.max", "150000 100000\n"),
            ("pids.current", "12\n"),
            ("pids.max", "512\n"),
        ] {
            std::fs::write(d.path().join(file), text).expect("write");
        }
        let mut r = running();
        r.resources = Some(ResourcesReport {
            cgroup: d.path().to_path_buf(),
            present: true,
            usage: cgroup::read(d.path()),
        });
        let text = table(std::slice::from_ref(&r));
        let mut lines = text.lines();
        let header = lines.next().expect("header");
        let row = lines.next().expect("row");
        let at = header.find("RESOURCES").expect("a RESOURCES column");
        assert!(
            header[..at].contains("CONTAINERS") && header[at..].contains("DOCKER"),
            "{text}"
        );
        assert!(
            row[at..].starts_with("memory 100.0M/2.0G; cpu 2.5s/150%; tasks 12/512 "),
            "{text}"
        );
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(
            v["resources"],
            json!({
                "cgroup": d.path(), "present": true,
                "memory": {"current": 104857600, "max": 2147483648u64, "high": "max"},
                "cpu": {"usage_usec": 2500000, "quota_percent": 150.0},
                "tasks": {"current": 12, "max": 512},
                "unread": [],
            })
        );
        r.resources = Some(ResourcesReport {
            cgroup: "/sys/fs/cgroup/dockyard.slice/dockyard-dy1.slice".into(),
            present: false,
            usage: None,
        });
        assert!(!table(std::slice::from_ref(&r)).contains("memory"));
        assert_eq!(
            serde_json::to_value(&r).expect("json")["resources"],
            json!({"cgroup": "/sys/fs/cgroup/dockyard.slice/dockyard-dy1.slice", "present": false})
        );
    }

    /// A rootless instance: its mode, what its group grants (briefly in
    /// the table, whole in --json), and no containerd unit of its own.
    #[test]
    fn a_rootless_instance_says_what_its_group_grants() {
        let mut r = running();
        r.mode = Some("rootless");
        r.runtime = Some("runc");
        r.group_grants =
            Some("what user dy1_docker can do (its socket, its own files; no host root)".into());
        r.group_grants_brief = Some("what user dy1_docker can do".into());
        r.containerd = None;
        let v = serde_json::to_value(&r).expect("json");
        let text = table(&[running(), r]);
        let lines: Vec<&str> = text.lines().collect();
        let grants = lines[0].find("GROUP GRANTS").expect("column");
        let containerd = lines[0].find("CONTAINERD").expect("column");
        assert!(
            lines[1][grants..].starts_with("root on the host "),
            "{text}"
        );
        assert!(
            lines[2][grants..].starts_with("what user dy1_docker can do "),
            "{text}"
        );
        assert!(
            lines[2][containerd..].starts_with("dockerd's own "),
            "{text}"
        );
        assert!(lines[2].starts_with("dy1   rootless "), "{text}");
        assert_eq!(v["mode"], "rootless");
        assert_eq!(
            v["group_grants"],
            "what user dy1_docker can do (its socket, its own files; no host root)"
        );
        assert!(v.get("containerd").is_none());
        assert!(v.get("group_grants_brief").is_none());
    }
}

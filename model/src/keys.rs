//! Every conf key, once: its section, its name, how its value is read and a
//! line of documentation. Like Quadlet's key tables, this is the one place
//! a key is added; the model's validation (`instance.rs`), the generator,
//! `dockyard new` and `import`, `destroy`'s reading of a broken conf and
//! the Ansible role's template all take key names from here.
//!
//! `[Daemon]` has no table: its keys are daemon.json's, checked by shape
//! (`instance::daemon_option`).

use crate::instance::Runtime;
use crate::network::{self, parse_cidr};
use crate::resources;
use crate::root;
use crate::value::{check_version, parse_bool};
use ipnet::Ipv4Net;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Instance,
    Network,
    Resources,
    Daemon,
}

impl Section {
    /// In the order dockyard.conf(5) documents them.
    pub const ALL: [Section; 4] = [
        Section::Instance,
        Section::Network,
        Section::Resources,
        Section::Daemon,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Section::Instance => "Instance",
            Section::Network => "Network",
            Section::Resources => "Resources",
            Section::Daemon => "Daemon",
        }
    }

    pub fn parse(name: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A key's value once read: what the table's parser made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Path(String),
    Net(Ipv4Net),
    Prefix(u8),
    Runtime(Runtime),
    Version(String),
    Bool(bool),
    /// A `[Resources]` value, checked, passed to systemd as written.
    Limit(String),
}

/// Why a value was refused. Most messages are about the value and are
/// shown as `Key=value: why`; a few checks (shared with `destroy`) already
/// name the key and are shown as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Value(String),
    Whole(String),
}

impl From<String> for Refusal {
    fn from(m: String) -> Refusal {
        Refusal::Value(m)
    }
}

/// How the lines of a key combine.
#[derive(Debug, Clone, Copy)]
pub enum Read {
    /// One value: the last line wins (a second line in the same file is
    /// warned about), an empty value resets to the default.
    Single(fn(&str) -> Result<Value, Refusal>),
    /// A list, as systemd's list settings: each line adds words, an empty
    /// value clears what came before. Their words are read by the model
    /// (`AllowFrom=` needs the instance they belong to).
    List,
}

#[derive(Debug)]
pub struct Key {
    pub section: Section,
    pub name: &'static str,
    pub read: Read,
    /// One line for `dockyard.conf(5)`-style help and error messages.
    pub doc: &'static str,
}

impl Key {
    /// `Key=value`, as a conf line (without the newline).
    pub fn line(&self, value: impl std::fmt::Display) -> String {
        format!("{}={value}", self.name)
    }
}

const fn key(section: Section, name: &'static str, read: Read, doc: &'static str) -> Key {
    Key {
        section,
        name,
        read,
        doc,
    }
}

use Read::{List, Single};
use Section::{Instance, Network, Resources};

pub const ROOT: Key = key(
    Instance,
    "Root",
    Single(read_root),
    "directory of the instance's data and socket; default /var/lib/dockyard/NAME",
);
pub const BRIDGE_CIDR: Key = key(
    Instance,
    "BridgeCIDR",
    Single(read_bridge),
    "the bridge's own address and prefix, e.g. 172.22.147.1/24 (required)",
);
pub const FIXED_CIDR: Key = key(
    Instance,
    "FixedCIDR",
    Single(read_fixed),
    "where container addresses come from, inside BridgeCIDR; default the whole bridge network",
);
pub const POOL_BASE: Key = key(
    Instance,
    "PoolBase",
    Single(read_pool),
    "the address pool of user-defined networks, e.g. 172.23.0.0/16 (required)",
);
pub const POOL_SIZE: Key = key(
    Instance,
    "PoolSize",
    Single(read_pool_size),
    "prefix length of each user-defined network; default 24",
);
pub const RUNTIME: Key = key(
    Instance,
    "Runtime",
    Single(read_runtime),
    "sysbox-runc (default) or runc; runc, and only runc, with Rootless=yes",
);
pub const DOCKER_VERSION: Key = key(
    Instance,
    "DockerVersion",
    Single(read_version),
    "Docker version from the artifact store; default the manifest's",
);
pub const ROOTLESS: Key = key(
    Instance,
    "Rootless",
    Single(read_bool),
    "run dockerd, containerd and the containers as the instance's own user in a user namespace (Docker's rootless mode); default no",
);
pub const AUTOSTART: Key = key(
    Instance,
    "Autostart",
    Single(read_bool),
    "start at boot; default yes",
);
pub const ALLOW_FROM: Key = key(
    Network,
    "AllowFrom",
    List,
    "instances and networks that may open connections into this one",
);
pub const BIND_PRIVILEGED_PORTS: Key = key(
    Network,
    "BindPrivilegedPorts",
    Single(read_bool),
    "a rootless instance may publish ports below 1024 (its rootlesskit keeps CAP_NET_BIND_SERVICE); default no",
);
pub const ACCEPT_HOST_ROUTE: Key = key(
    Network,
    "AcceptHostRoute",
    List,
    "host routes the instance's networks may overlap on purpose",
);
pub const MEMORY_MAX: Key = key(
    Resources,
    "MemoryMax",
    Single(read_memory),
    "hard memory limit of the whole instance (OOM kill above it)",
);
pub const MEMORY_HIGH: Key = key(
    Resources,
    "MemoryHigh",
    Single(read_memory),
    "soft memory limit: reclaimed and slowed down above it",
);
pub const MEMORY_SWAP_MAX: Key = key(
    Resources,
    "MemorySwapMax",
    Single(read_memory),
    "swap the instance may use",
);
pub const CPU_QUOTA: Key = key(
    Resources,
    "CPUQuota",
    Single(read_cpu_quota),
    "CPU time, as a share of one CPU (200% = two CPUs)",
);
pub const CPU_WEIGHT: Key = key(
    Resources,
    "CPUWeight",
    Single(read_weight_cpu),
    "CPU share under contention, 1-10000 (default 100)",
);
pub const TASKS_MAX: Key = key(
    Resources,
    "TasksMax",
    Single(read_tasks),
    "processes and threads of the whole instance",
);
pub const IO_WEIGHT: Key = key(
    Resources,
    "IOWeight",
    Single(read_weight_io),
    "block IO share under contention, 1-10000 (default 100)",
);
pub const ALLOWED_CPUS: Key = key(
    Resources,
    "AllowedCPUs",
    Single(read_cpus),
    "CPUs the instance may run on, e.g. 0-3,5",
);

/// Every key, by section in documentation order. The order within a
/// section is the order of checks, and so of messages.
pub const KEYS: &[&Key] = &[
    &ROOT,
    &BRIDGE_CIDR,
    &FIXED_CIDR,
    &POOL_BASE,
    &POOL_SIZE,
    &RUNTIME,
    &DOCKER_VERSION,
    &ROOTLESS,
    &AUTOSTART,
    &ALLOW_FROM,
    &BIND_PRIVILEGED_PORTS,
    &ACCEPT_HOST_ROUTE,
    &MEMORY_MAX,
    &MEMORY_HIGH,
    &MEMORY_SWAP_MAX,
    &CPU_QUOTA,
    &CPU_WEIGHT,
    &TASKS_MAX,
    &IO_WEIGHT,
    &ALLOWED_CPUS,
];

/// The key of that name in that section.
pub fn find(section: Section, name: &str) -> Option<&'static Key> {
    KEYS.iter()
        .copied()
        .find(|k| k.section == section && k.name == name)
}

/// The names of a section's keys, in table order: what an unknown key is
/// compared with. (`[Daemon]` has none: any daemon.json key goes.)
pub fn known_keys(section: Section) -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(move |k| k.section == section)
        .map(|k| k.name)
}

/// The keys of a section.
pub fn section_keys(section: Section) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().copied().filter(move |k| k.section == section)
}

fn read_root(v: &str) -> Result<Value, Refusal> {
    root::check_root(v)
        .map(|()| Value::Path(v.to_string()))
        .map_err(Refusal::Whole)
}

/// One of the network module's checks of a CIDR value.
type NetCheck = fn(&Ipv4Net) -> Result<(), String>;

fn cidr(v: &str, checks: &[NetCheck]) -> Result<Value, Refusal> {
    let net = parse_cidr(v)?;
    for check in checks {
        check(&net)?;
    }
    Ok(Value::Net(net))
}

fn read_bridge(v: &str) -> Result<Value, Refusal> {
    cidr(
        v,
        &[
            network::check_prefix,
            network::check_private,
            network::check_host_address,
        ],
    )
}

fn read_fixed(v: &str) -> Result<Value, Refusal> {
    cidr(v, &[network::check_network_address])
}

fn read_pool(v: &str) -> Result<Value, Refusal> {
    cidr(
        v,
        &[
            network::check_prefix,
            network::check_private,
            network::check_network_address,
        ],
    )
}

fn read_pool_size(v: &str) -> Result<Value, Refusal> {
    v.parse::<u8>()
        .ok()
        .filter(|size| {
            v.bytes().all(|b| b.is_ascii_digit())
                && (network::MIN_PREFIX..=network::MAX_PREFIX).contains(size)
        })
        .map(Value::Prefix)
        .ok_or_else(|| {
            Refusal::Value(format!(
                "not a prefix length from {} to {}{}",
                network::MIN_PREFIX,
                network::MAX_PREFIX,
                network::comment_hint(v)
            ))
        })
}

fn read_runtime(v: &str) -> Result<Value, Refusal> {
    match v {
        "sysbox-runc" => Ok(Value::Runtime(Runtime::SysboxRunc)),
        "runc" => Ok(Value::Runtime(Runtime::Runc)),
        _ => Err(Refusal::Value(
            "unknown runtime; use sysbox-runc or runc".into(),
        )),
    }
}

fn read_version(v: &str) -> Result<Value, Refusal> {
    check_version(v)?;
    Ok(Value::Version(v.to_string()))
}

fn read_bool(v: &str) -> Result<Value, Refusal> {
    parse_bool(v)
        .map(Value::Bool)
        .ok_or_else(|| Refusal::Value("not a boolean; use yes or no".into()))
}

fn limit(check: fn(&str) -> Result<(), String>, v: &str) -> Result<Value, Refusal> {
    check(v)?;
    Ok(Value::Limit(v.to_string()))
}

fn read_memory(v: &str) -> Result<Value, Refusal> {
    limit(resources::check_memory, v)
}

fn read_cpu_quota(v: &str) -> Result<Value, Refusal> {
    limit(resources::check_cpu_quota, v)
}

fn read_weight_cpu(v: &str) -> Result<Value, Refusal> {
    limit(resources::check_weight, v)
}

fn read_weight_io(v: &str) -> Result<Value, Refusal> {
    limit(resources::check_weight, v)
}

fn read_tasks(v: &str) -> Result<Value, Refusal> {
    limit(resources::check_tasks, v)
}

fn read_cpus(v: &str) -> Result<Value, Refusal> {
    limit(resources::check_cpu_list, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_section_and_sections_known() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                assert!(
                    !(a.section == b.section && a.name.eq_ignore_ascii_case(b.name)),
                    "{} twice",
                    a.name
                );
            }
            assert_eq!(Section::parse(a.section.name()), Some(a.section));
            assert!(find(a.section, a.name).is_some());
        }
        assert_eq!(
            known_keys(Section::Network).collect::<Vec<_>>(),
            ["AllowFrom", "BindPrivilegedPorts", "AcceptHostRoute"]
        );
        assert_eq!(known_keys(Section::Daemon).count(), 0);
    }

    #[test]
    fn resources_are_systemd_slice_settings() {
        // The names go into [Slice] unchanged: they must be systemd's.
        let names: Vec<&str> = known_keys(Section::Resources).collect();
        assert_eq!(
            names,
            [
                "MemoryMax",
                "MemoryHigh",
                "MemorySwapMax",
                "CPUQuota",
                "CPUWeight",
                "TasksMax",
                "IOWeight",
                "AllowedCPUs"
            ]
        );
    }

    /// The Ansible role writes confs from a Jinja template, which cannot
    /// read this table: every `Key=` it writes must be one of the table's,
    /// in its section, and `[Resources]` passes whatever the admin lists
    /// (the model checks it like any conf).
    #[test]
    fn the_ansible_template_writes_only_known_keys() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/ansible/roles/dockyard/templates/instance.conf.j2"
        );
        let text = std::fs::read_to_string(path).expect("template");
        let mut section = None;
        let mut written = Vec::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(Section::parse(name).expect("a known section"));
            } else if let Some((key, _)) = line.split_once("={{") {
                if key.starts_with("{{") {
                    continue; // [Resources] and [Daemon]: keys from the item
                }
                let section = section.expect("a key below a section");
                assert!(
                    find(section, key).is_some(),
                    "{key}= in [{}]",
                    section.name()
                );
                written.push(key);
            }
        }
        let settable: Vec<&str> = KEYS
            .iter()
            .filter(|k| k.section == Section::Instance || k.name == ALLOW_FROM.name)
            .map(|k| k.name)
            .collect();
        let mut sorted = written.clone();
        sorted.sort_unstable();
        let mut all = settable.clone();
        all.sort_unstable();
        assert_eq!(
            sorted, all,
            "the role sets every [Instance] key and AllowFrom="
        );
        assert!(text.contains("[Resources]\n{% for key, value in item.resources | dictsort %}"));
    }
}

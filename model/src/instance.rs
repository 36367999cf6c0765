//! A validated instance: the conf's keys turned into typed values, with the
//! origin of each so later checks (conflicts) can still name file and line.

use crate::contract::network::Network;
use crate::diag::{Diagnostic, Origin, Severity};
use crate::ini::{Document, Entry};
use crate::name::InstanceName;
use crate::network::{self, parse_cidr};
use crate::root;
use crate::value::{check_version, parse_bool};
use ipnet::Ipv4Net;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SECTION_INSTANCE: &str = "Instance";
pub const SECTION_DAEMON: &str = "Daemon";
pub const SECTION_NETWORK: &str = "Network";
/// `[Network] AllowFrom=`: who may open connections into the instance.
pub const KEY_ALLOW_FROM: &str = "AllowFrom";
/// `[Network] AcceptHostRoute=`: host routes the admin means to overlap
/// (see [`Instance::accept_host_routes`]).
pub const KEY_ACCEPT_HOST_ROUTE: &str = "AcceptHostRoute";
const NETWORK_KEYS: &[&str] = &[KEY_ALLOW_FROM, KEY_ACCEPT_HOST_ROUTE];

const INSTANCE_KEYS: &[&str] = &[
    "Root",
    "BridgeCIDR",
    "FixedCIDR",
    "PoolBase",
    "PoolSize",
    "Runtime",
    "DockerVersion",
    "Autostart",
];

pub const DEFAULT_POOL_SIZE: u8 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    SysboxRunc,
    Runc,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::SysboxRunc => "sysbox-runc",
            Runtime::Runc => "runc",
        }
    }
}

/// One extra dockerd setting from `[Daemon]`: a daemon.json key and its
/// value as compact JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonOption {
    pub key: String,
    pub json: String,
}

/// One `AllowFrom=` word: another instance (resolved to its networks when
/// all confs are loaded) or a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Instance(InstanceName),
    Net(Ipv4Net),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub peer: Peer,
    pub origin: Origin,
}

/// Where the values that other instances can collide with came from;
/// `None` means the default was used.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    pub root: Option<Origin>,
    pub bridge: Option<Origin>,
    pub fixed: Option<Origin>,
    pub pool: Option<Origin>,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub name: InstanceName,
    /// The main conf file; drop-ins follow in `dropins`.
    pub conf: PathBuf,
    pub dropins: Vec<PathBuf>,
    pub root: String,
    /// The bridge's own address with its prefix, e.g. 172.22.147.1/24.
    pub bridge: Ipv4Net,
    /// Where dockerd allocates container addresses; inside `bridge`.
    pub fixed: Ipv4Net,
    pub pool: Ipv4Net,
    pub pool_size: u8,
    pub runtime: Runtime,
    pub docker_version: String,
    pub autostart: bool,
    pub daemon_options: Vec<DaemonOption>,
    /// `AllowFrom=` as written; see [`Instance::allowed_nets`].
    pub allow_from: Vec<Allow>,
    /// The networks `allow_from` opens the instance to, peers resolved by
    /// [`crate::load::load_dir`] (which knows every instance); a conf loaded
    /// alone has only its literal networks here.
    pub allowed_nets: Vec<Ipv4Net>,
    /// Destinations of host routes that may cover the instance's networks:
    /// a routed network the admin chose, which `check`, `verify` and
    /// `dockyard-network up` otherwise refuse or warn about.
    pub accept_host_routes: Vec<Ipv4Net>,
    pub origins: Origins,
}

impl Instance {
    pub fn socket(&self) -> String {
        format!("{}/docker.sock", self.root)
    }

    pub fn data_root(&self) -> String {
        format!("{}/docker", self.root)
    }

    pub fn config_file(&self) -> String {
        format!("{}/daemon.json", self.name.exec_root())
    }

    pub fn pidfile(&self) -> String {
        format!("{}/dockerd.pid", self.name.exec_root())
    }

    pub fn uses_sysbox(&self) -> bool {
        self.runtime == Runtime::SysboxRunc
    }

    /// Its networks, as the other instances' `AllowFrom=` sees them.
    pub fn own_nets(&self) -> [Ipv4Net; 2] {
        [self.bridge.trunc(), self.pool]
    }

    /// What `dockyard-network` is told about this instance.
    pub fn network(&self) -> Network {
        Network {
            instance: self.name.clone(),
            bridge_cidr: self.bridge,
            fixed: self.fixed,
            pool: self.pool,
            allow_from: self.allowed_nets.clone(),
            data_root: Some(PathBuf::from(self.data_root())),
        }
    }
}

/// What the conf model needs from the artifacts manifest.
#[derive(Debug, Clone)]
pub struct VersionDefaults {
    /// The default Docker version, or why there is none (a broken manifest).
    pub docker: Result<String, String>,
    /// Versions the manifest can install; `None` when it could not be read.
    pub known_docker: Option<Vec<String>>,
}

/// Builds an instance from the merged entries of its conf and drop-ins.
/// Returns every problem found, not just the first; the instance is `None`
/// when any of them is an error.
pub fn build(
    name: InstanceName,
    conf: &Path,
    dropins: Vec<PathBuf>,
    docs: &[Document],
    defaults: &VersionDefaults,
) -> (Option<Instance>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut values: BTreeMap<&str, &Entry> = BTreeMap::new();
    let mut daemon: BTreeMap<String, (&Entry, String)> = BTreeMap::new();
    let mut allow_from: Vec<Allow> = Vec::new();
    let mut accept_host_routes: Vec<Ipv4Net> = Vec::new();

    for doc in docs {
        for (section, origin) in &doc.sections {
            if !section.is_empty()
                && ![SECTION_INSTANCE, SECTION_NETWORK, SECTION_DAEMON].contains(&section.as_str())
            {
                diags.push(Diagnostic::at(
                    origin,
                    Severity::Warning,
                    format!(
                        "unknown section [{section}] ignored{}",
                        crate::suggest::section_hint(
                            section,
                            &[SECTION_INSTANCE, SECTION_NETWORK, SECTION_DAEMON]
                        )
                    ),
                ));
            }
        }
        for entry in &doc.entries {
            match entry.section.as_str() {
                SECTION_INSTANCE => match INSTANCE_KEYS.iter().find(|k| **k == entry.key) {
                    Some(key) => {
                        if let Some(prev) = values.insert(key, entry) {
                            if prev.origin.path == entry.origin.path {
                                diags.push(Diagnostic::at(
                                    &entry.origin,
                                    Severity::Warning,
                                    format!(
                                        "{}= set again; this overrides line {}",
                                        entry.key, prev.origin.line
                                    ),
                                ));
                            }
                        }
                    }
                    None => diags.push(unknown_key(entry)),
                },
                SECTION_NETWORK if entry.key == KEY_ALLOW_FROM => {
                    // Like systemd's list settings: each line adds, an empty
                    // value resets what came before (also from the main conf).
                    if entry.value.is_empty() {
                        allow_from.clear();
                    }
                    for word in entry.value.split_whitespace() {
                        match allow_word(&name, word) {
                            Ok(Some(peer)) => allow_from.push(Allow {
                                peer,
                                origin: entry.origin.clone(),
                            }),
                            Ok(None) => diags.push(Diagnostic::at(
                                &entry.origin,
                                Severity::Warning,
                                format!("AllowFrom={word} names this instance; its own networks are always allowed"),
                            )),
                            Err(m) => diags.push(Diagnostic::at(&entry.origin, Severity::Error, m)),
                        }
                    }
                }
                SECTION_NETWORK if entry.key == KEY_ACCEPT_HOST_ROUTE => {
                    if entry.value.is_empty() {
                        accept_host_routes.clear();
                    }
                    for word in entry.value.split_whitespace() {
                        match network::parse_cidr(word) {
                            Ok(n) if n == n.trunc() => accept_host_routes.push(n),
                            Ok(n) => diags.push(Diagnostic::at(
                                &entry.origin,
                                Severity::Error,
                                format!("{KEY_ACCEPT_HOST_ROUTE}={word}: a route's destination is a network; write {}", n.trunc()),
                            )),
                            Err(m) => diags.push(Diagnostic::at(
                                &entry.origin,
                                Severity::Error,
                                format!("{KEY_ACCEPT_HOST_ROUTE}={word}: {m}"),
                            )),
                        }
                    }
                }
                SECTION_NETWORK => diags.push(Diagnostic::at(
                    &entry.origin,
                    Severity::Warning,
                    format!(
                        "unknown key {}= in [Network] ignored{}",
                        entry.key,
                        crate::suggest::key_hint(&entry.key, NETWORK_KEYS)
                    ),
                )),
                SECTION_DAEMON => match daemon_option(entry) {
                    Ok(json) => {
                        daemon.insert(entry.key.clone(), (entry, json));
                    }
                    Err(d) => diags.push(d),
                },
                _ => {} // reported once at the section header
            }
        }
    }

    // Empty values reset a key to its default, as in systemd unit files.
    let get = |key: &str| values.get(key).copied().filter(|e| !e.value.is_empty());
    let mut error = |entry: Option<&Entry>, msg: String| {
        diags.push(match entry {
            Some(e) => Diagnostic::at(&e.origin, Severity::Error, msg),
            None => Diagnostic::error(conf, None, msg),
        })
    };

    let root = match get("Root") {
        Some(e) => root::check_root(&e.value)
            .map(|()| e.value.clone())
            .map_err(|m| error(Some(e), m))
            .ok(),
        None => Some(root::default_root(name.as_str())),
    };

    let bridge = match get("BridgeCIDR") {
        None => {
            error(None, "BridgeCIDR= is required in [Instance] (the bridge's address and prefix, e.g. BridgeCIDR=172.22.147.1/24)".into());
            None
        }
        Some(e) => cidr_value(e, |net| {
            network::check_prefix(&net)?;
            network::check_private(&net)?;
            network::check_host_address(&net)
        })
        .map_err(|m| error(Some(e), m))
        .ok(),
    };

    let fixed = match get("FixedCIDR") {
        None => bridge.map(|b| b.trunc()),
        Some(e) => cidr_value(e, |net| {
            network::check_network_address(&net)?;
            match bridge {
                Some(b) if !b.trunc().contains(&net) => Err(format!(
                    "{net} is not inside the bridge network {} (BridgeCIDR); dockerd can only hand out addresses the bridge can reach",
                    b.trunc()
                )),
                _ => Ok(()),
            }
        })
        .map_err(|m| error(Some(e), m))
        .ok(),
    };

    let pool = match get("PoolBase") {
        None => {
            error(None, "PoolBase= is required in [Instance] (the base of the address pool for user-defined networks, e.g. PoolBase=172.23.0.0/16)".into());
            None
        }
        Some(e) => cidr_value(e, |net| {
            network::check_prefix(&net)?;
            network::check_private(&net)?;
            network::check_network_address(&net)?;
            match bridge {
                Some(b) if network::overlaps(&net, &b) => Err(format!(
                    "{net} overlaps this instance's bridge network {}; the pool must be a separate range",
                    b.trunc()
                )),
                _ => Ok(()),
            }
        })
        .map_err(|m| error(Some(e), m))
        .ok(),
    };

    let pool_size = match get("PoolSize") {
        None => Some(DEFAULT_POOL_SIZE),
        Some(e) => {
            let parsed = e
                .value
                .parse::<u8>()
                .ok()
                .filter(|_| e.value.chars().all(|c| c.is_ascii_digit()));
            match parsed {
                Some(size) if (network::MIN_PREFIX..=network::MAX_PREFIX).contains(&size) => {
                    match pool {
                        Some(p) if size < p.prefix_len() => {
                            error(Some(e), format!(
                            "PoolSize={size} is smaller than the pool's own prefix /{}: a /{size} network does not fit in {p}; use a PoolSize of at least {}",
                            p.prefix_len(), p.prefix_len()
                        ));
                            None
                        }
                        _ => Some(size),
                    }
                }
                _ => {
                    error(
                        Some(e),
                        format!(
                            "PoolSize={}: not a prefix length from {} to {}{}",
                            e.value,
                            network::MIN_PREFIX,
                            network::MAX_PREFIX,
                            network::comment_hint(&e.value)
                        ),
                    );
                    None
                }
            }
        }
    };

    let runtime = match get("Runtime") {
        None => Some(Runtime::SysboxRunc),
        Some(e) => match e.value.as_str() {
            "sysbox-runc" => Some(Runtime::SysboxRunc),
            "runc" => Some(Runtime::Runc),
            other => {
                error(
                    Some(e),
                    format!("Runtime={other}: unknown runtime; use sysbox-runc or runc"),
                );
                None
            }
        },
    };

    let docker_version = match get("DockerVersion") {
        Some(e) => match check_version(&e.value) {
            Ok(()) => {
                if let Some(known) = &defaults.known_docker {
                    if !known.contains(&e.value) {
                        diags.push(Diagnostic::at(
                            &e.origin,
                            Severity::Warning,
                            format!(
                                "DockerVersion={} is not in the artifacts manifest (known: {}); the installer cannot fetch it, so it must be put in place by other means",
                                e.value,
                                known.join(", ")
                            ),
                        ));
                    }
                }
                Some(e.value.clone())
            }
            Err(m) => {
                diags.push(Diagnostic::at(
                    &e.origin,
                    Severity::Error,
                    format!("DockerVersion={}: {m}", e.value),
                ));
                None
            }
        },
        None => match &defaults.docker {
            Ok(v) => Some(v.clone()),
            Err(why) => {
                diags.push(Diagnostic::error(
                    conf,
                    None,
                    format!("DockerVersion= is not set and there is no default: {why}"),
                ));
                None
            }
        },
    };

    let autostart = match get("Autostart") {
        None => Some(true),
        Some(e) => parse_bool(&e.value).or_else(|| {
            diags.push(Diagnostic::at(
                &e.origin,
                Severity::Error,
                format!("Autostart={}: not a boolean; use yes or no", e.value),
            ));
            None
        }),
    };

    let origin = |key: &str| get(key).map(|e| e.origin.clone());
    let origins = Origins {
        root: origin("Root"),
        bridge: origin("BridgeCIDR"),
        fixed: origin("FixedCIDR"),
        pool: origin("PoolBase"),
    };

    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags);
    }
    let (
        Some(root),
        Some(bridge),
        Some(fixed),
        Some(pool),
        Some(pool_size),
        Some(runtime),
        Some(docker_version),
        Some(autostart),
    ) = (
        root,
        bridge,
        fixed,
        pool,
        pool_size,
        runtime,
        docker_version,
        autostart,
    )
    else {
        // Every None above pushed an error; this is unreachable in practice
        // but must not panic.
        diags.push(Diagnostic::error(conf, None, "incomplete instance"));
        return (None, diags);
    };
    let daemon_options = daemon
        .into_iter()
        .map(|(key, (_, json))| DaemonOption { key, json })
        .collect();
    let allowed_nets = allow_from
        .iter()
        .filter_map(|a| match a.peer {
            Peer::Net(n) => Some(n),
            Peer::Instance(_) => None,
        })
        .collect();
    let instance = Instance {
        name,
        conf: conf.to_path_buf(),
        dropins,
        root,
        bridge,
        fixed,
        pool,
        pool_size,
        runtime,
        docker_version,
        autostart,
        daemon_options,
        allow_from,
        allowed_nets,
        accept_host_routes,
        origins,
    };
    (Some(instance), diags)
}

/// One word of `AllowFrom=`: an instance name or an IPv4 network (any
/// range: a site may let its own LAN in). `None` for the instance itself.
fn allow_word(me: &InstanceName, word: &str) -> Result<Option<Peer>, String> {
    if word.contains('/') || word.starts_with(|c: char| c.is_ascii_digit()) {
        let net = parse_cidr(word).map_err(|m| format!("AllowFrom={word}: {m}"))?;
        network::check_network_address(&net).map_err(|m| format!("AllowFrom={word}: {m}"))?;
        return Ok(Some(Peer::Net(net)));
    }
    let peer = InstanceName::parse(word).map_err(|m| {
        format!("AllowFrom={word}: neither a network (like 192.0.2.0/24) nor an instance name: {m}")
    })?;
    Ok((peer != *me).then_some(Peer::Instance(peer)))
}

/// Parses a CIDR key and applies its checks; the error is prefixed with
/// `Key=value:` so the admin sees exactly what was read.
fn cidr_value(
    entry: &Entry,
    check: impl FnOnce(Ipv4Net) -> Result<(), String>,
) -> Result<Ipv4Net, String> {
    parse_cidr(&entry.value)
        .and_then(|net| check(net).map(|()| net))
        .map_err(|m| format!("{}={}: {m}", entry.key, entry.value))
}

fn unknown_key(entry: &Entry) -> Diagnostic {
    let hint = crate::suggest::key_hint(&entry.key, INSTANCE_KEYS);
    Diagnostic::at(
        &entry.origin,
        Severity::Warning,
        format!("unknown key {}= in [Instance] ignored{hint}", entry.key),
    )
}

/// daemon.json keys that Dockyard sets itself from the conf; setting them in
/// [Daemon] too would make dockerd refuse to start ("specified both as a
/// flag and in the configuration file") or break isolation.
const RESERVED_DAEMON_KEYS: &[(&str, &str)] = &[
    ("data-root", "set Root= in [Instance]"),
    ("exec-root", "it is /run/NAME_docker"),
    ("pidfile", "it lives in /run/NAME_docker"),
    ("hosts", "the socket is Root/docker.sock"),
    ("group", "the socket group is NAME_docker"),
    ("bridge", "set BridgeCIDR= in [Instance]"),
    ("bip", "set BridgeCIDR= in [Instance]"),
    ("fixed-cidr", "set FixedCIDR= in [Instance]"),
    (
        "default-address-pools",
        "set PoolBase= and PoolSize= in [Instance]",
    ),
    ("iptables", "Dockyard owns the firewall rules"),
    (
        "live-restore",
        "Dockyard turns it on while dockerd starts and off once it runs (dockyard.conf(5))",
    ),
    ("ip6tables", "Dockyard owns the firewall rules"),
    ("ip-masq", "Dockyard owns the firewall rules"),
    ("containerd", "each instance runs its own containerd"),
    ("containerd-namespace", "it is the instance name"),
    (
        "containerd-plugin-namespace",
        "it is derived from the instance name",
    ),
    (
        "containerd-plugins-namespace",
        "it is derived from the instance name",
    ),
    ("runtimes", "set Runtime= in [Instance]"),
    ("default-runtime", "set Runtime= in [Instance]"),
    (
        "cgroup-parent",
        "containers go to the slice dockyard-NAME.slice",
    ),
];

/// Checks one `[Daemon]` line and returns its value as compact JSON.
/// Values are JSON; a bare word that is not JSON (`log-driver=journald`) is
/// taken as a string for convenience.
fn daemon_option(entry: &Entry) -> Result<String, Diagnostic> {
    let fail = |m: String| Diagnostic::at(&entry.origin, Severity::Error, m);
    let key = entry.key.as_str();
    let key_ok = key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !key_ok {
        return Err(fail(format!(
            "[Daemon] key {key:?} is not a daemon.json key (lowercase letters, digits and '-', e.g. registry-mirrors)"
        )));
    }
    if let Some((_, how)) = RESERVED_DAEMON_KEYS.iter().find(|(k, _)| *k == key) {
        return Err(fail(format!(
            "[Daemon] {key} is managed by Dockyard and cannot be set here: {how}"
        )));
    }
    let value = entry.value.as_str();
    if value.is_empty() {
        return Err(fail(format!(
            "[Daemon] {key}= has no value; remove the line or give a JSON value"
        )));
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(v) => Ok(v.to_string()),
        Err(e) if value.starts_with(['[', '{', '"']) => {
            Err(fail(format!("[Daemon] {key}={value}: invalid JSON: {e}")))
        }
        Err(_) => Ok(serde_json::Value::String(value.to_string()).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ini;

    fn defaults() -> VersionDefaults {
        VersionDefaults {
            docker: Ok("29.2.1".into()),
            known_docker: Some(vec!["29.2.1".into()]),
        }
    }

    fn build_text(text: &str) -> (Option<Instance>, Vec<String>) {
        let path = Path::new("/c/dy1.conf");
        let (doc, mut diags) = ini::parse(path, text);
        let (inst, more) = build(
            InstanceName::parse("dy1").expect("name"),
            path,
            vec![],
            &[doc],
            &defaults(),
        );
        diags.extend(more);
        (inst, diags.iter().map(ToString::to_string).collect())
    }

    const MINIMAL: &str = "[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\n";

    #[test]
    fn minimal_conf_gets_defaults() {
        let (inst, diags) = build_text(MINIMAL);
        assert!(diags.is_empty(), "{diags:?}");
        let i = inst.expect("instance");
        assert_eq!(i.root, "/var/lib/dockyard/dy1");
        assert_eq!(i.fixed.to_string(), "172.22.147.0/24");
        assert_eq!(i.pool_size, 24);
        assert_eq!(i.runtime, Runtime::SysboxRunc);
        assert_eq!(i.docker_version, "29.2.1");
        assert!(i.autostart);
        assert_eq!(i.socket(), "/var/lib/dockyard/dy1/docker.sock");
    }

    #[test]
    fn every_key() {
        let (inst, diags) = build_text(
            "[Instance]\nRoot=/dy1\nBridgeCIDR=10.1.2.1/24\nFixedCIDR=10.1.2.128/25\nPoolBase=10.2.0.0/16\nPoolSize=26\nRuntime=runc\nDockerVersion=29.2.1\nAutostart=no\n[Daemon]\nmtu=1400\nlog-driver=journald\nregistry-mirrors=[\"https://m.example\"]\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let i = inst.expect("instance");
        assert_eq!(i.root, "/dy1");
        assert_eq!(i.fixed.to_string(), "10.1.2.128/25");
        assert_eq!(i.pool_size, 26);
        assert_eq!(i.runtime, Runtime::Runc);
        assert!(!i.autostart);
        let opts: Vec<String> = i
            .daemon_options
            .iter()
            .map(|o| format!("{}={}", o.key, o.json))
            .collect();
        assert_eq!(
            opts,
            [
                "log-driver=\"journald\"",
                "mtu=1400",
                "registry-mirrors=[\"https://m.example\"]"
            ]
        );
    }

    #[test]
    fn missing_required_keys() {
        let (inst, diags) = build_text("[Instance]\nRoot=/dy1\n");
        assert!(inst.is_none());
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert!(diags[0].starts_with("/c/dy1.conf: error: BridgeCIDR= is required"));
        assert!(diags[1].starts_with("/c/dy1.conf: error: PoolBase= is required"));
    }

    #[test]
    fn bad_values_name_their_line() {
        for (text, expect) in [
            ("[Instance]\nBridgeCIDR=8.8.8.1/24\nPoolBase=172.23.0.0/16\n", "/c/dy1.conf:2: error: BridgeCIDR=8.8.8.1/24: 8.8.8.0/24 is not inside a private range"),
            ("[Instance]\nBridgeCIDR=172.22.147.1/24\nFixedCIDR=172.22.148.0/24\nPoolBase=172.23.0.0/16\n", "/c/dy1.conf:3: error: FixedCIDR=172.22.148.0/24: 172.22.148.0/24 is not inside the bridge network"),
            ("[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\nPoolSize=31\n", "/c/dy1.conf:4: error: PoolSize=31: not a prefix length from 8 to 30"),
            ("[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\nPoolSize=12\n", "/c/dy1.conf:4: error: PoolSize=12 is smaller than the pool's own prefix /16"),
            ("[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.22.0.0/16\n", "/c/dy1.conf:3: error: PoolBase=172.22.0.0/16: 172.22.0.0/16 overlaps this instance's bridge network"),
            ("[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\nRuntime=crun\n", "/c/dy1.conf:4: error: Runtime=crun: unknown runtime"),
            ("[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\nAutostart=maybe\n", "/c/dy1.conf:4: error: Autostart=maybe: not a boolean"),
            ("[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\nRoot=/usr\n", "/c/dy1.conf:4: error: Root=/usr is a system directory"),
            ("[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\n[Daemon]\nbridge=br0\n", "/c/dy1.conf:5: error: [Daemon] bridge is managed by Dockyard"),
            ("[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\n[Daemon]\ndns=[\"1.2.3.4\"\n", "/c/dy1.conf:5: error: [Daemon] dns=[\"1.2.3.4\": invalid JSON"),
        ] {
            let (inst, diags) = build_text(text);
            assert!(inst.is_none(), "{text}");
            assert!(diags.iter().any(|d| d.starts_with(expect)), "{expect}\n got {diags:?}");
        }
    }

    #[test]
    fn warnings_do_not_refuse() {
        let (inst, diags) = build_text(&format!("{MINIMAL}bridgecidr=1\nFoo=bar\n[Extra]\nx=1\n"));
        assert!(inst.is_some());
        assert_eq!(
            diags,
            [
                "/c/dy1.conf:6: warning: unknown section [Extra] ignored; sections are [Instance], [Network], [Daemon]",
                "/c/dy1.conf:4: warning: unknown key bridgecidr= in [Instance] ignored; did you mean BridgeCIDR=?",
                "/c/dy1.conf:5: warning: unknown key Foo= in [Instance] ignored; known keys: Root, BridgeCIDR, FixedCIDR, PoolBase, PoolSize, Runtime, DockerVersion, Autostart",
            ]
        );
    }

    #[test]
    fn allow_from_adds_per_line_and_an_empty_value_resets() {
        let (inst, diags) = build_text(&format!(
            "{MINIMAL}[Network]\nAllowFrom=dy2 10.9.0.0/16\nAllowFrom=\nAllowFrom=dy3\tdy4\n"
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let i = inst.expect("instance");
        let peers: Vec<&Peer> = i.allow_from.iter().map(|a| &a.peer).collect();
        assert_eq!(
            peers,
            [
                &Peer::Instance(InstanceName::parse("dy3").expect("n")),
                &Peer::Instance(InstanceName::parse("dy4").expect("n"))
            ]
        );
        // Names are resolved by load_dir; a conf alone has its networks only.
        let (inst, _) = build_text(&format!("{MINIMAL}[Network]\nAllowFrom=dy2 10.9.0.0/16\n"));
        let i = inst.expect("instance");
        assert_eq!(
            i.allowed_nets,
            ["10.9.0.0/16".parse::<Ipv4Net>().expect("net")]
        );
        assert_eq!(i.network().allow_from, i.allowed_nets);
        assert_eq!(i.allow_from[0].origin.line, 5);
    }

    #[test]
    fn empty_value_resets_to_default() {
        let (inst, diags) = build_text(&format!("{MINIMAL}Root=/dy1\nRoot=\n"));
        assert_eq!(diags.len(), 1, "{diags:?}"); // the override warning
        assert_eq!(inst.expect("instance").root, "/var/lib/dockyard/dy1");
    }
}

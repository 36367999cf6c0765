//! A validated instance: the conf's keys turned into typed values, with the
//! origin of each so later checks (conflicts) can still name file and line.

use crate::contract::network::Network;
use crate::diag::{Diagnostic, Origin, Severity};
use crate::ini::{Document, Entry};
use crate::keys::{self, Key, Read, Refusal, Section, Value};
use crate::name::InstanceName;
use crate::network::{self, parse_cidr};
use crate::resources::Limit;
use crate::root;
use ipnet::Ipv4Net;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// The line in effect (a drop-in's overrides the conf's).
    pub origin: Origin,
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
    /// Docker's rootless mode (`Rootless=yes`): rootlesskit, dockerd, its
    /// containerd and the containers run as the instance's own user in a
    /// user namespace, so its socket grants what that user can do, not root.
    pub rootless: bool,
    /// `BindPrivilegedPorts=yes`: a rootless instance publishes ports below
    /// 1024 (rootful ones always can).
    pub bind_privileged_ports: bool,
    pub autostart: bool,
    pub daemon_options: Vec<DaemonOption>,
    /// `AllowFrom=` as written; see [`Instance::allowed_nets`].
    pub allow_from: Vec<Allow>,
    /// The networks `allow_from` opens the instance to, peers resolved by
    /// [`crate::load::load_dir`] (which knows every instance); a conf loaded
    /// alone has only its literal networks here. Empty for a rootless
    /// instance: nothing but its published ports reaches it.
    pub allowed_nets: Vec<Ipv4Net>,
    /// Rootless only: the networks of the rootful instances whose
    /// `AllowFrom=` names it, which its containers may open connections
    /// into; resolved by [`crate::load::load_dir`] (empty for a conf loaded
    /// alone).
    pub reach: Vec<Ipv4Net>,
    /// Destinations of host routes that may cover the instance's networks:
    /// a routed network the admin chose, which `check`, `verify` and
    /// `dockyard-network up` otherwise refuse or warn about.
    pub accept_host_routes: Vec<Ipv4Net>,
    /// `[Resources]`, in key-table order: the settings of the instance's
    /// slice, which holds its daemons and containers.
    pub resources: Vec<Limit>,
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
        if self.rootless {
            format!("{}/docker.pid", self.name.rootless_runtime_dir())
        } else {
            format!("{}/dockerd.pid", self.name.exec_root())
        }
    }

    /// Where the instance's containerd listens: its own unit's socket, or,
    /// rootless, the one dockerd starts below its exec root (moby's
    /// supervised containerd, `EXEC_ROOT/containerd/containerd.sock`).
    pub fn containerd_socket(&self) -> String {
        if self.rootless {
            format!("{}/containerd/containerd.sock", self.dockerd_exec_root())
        } else {
            self.name.containerd_socket()
        }
    }

    /// dockerd's `--exec-root`: a rootless one's must be its user's.
    pub fn dockerd_exec_root(&self) -> String {
        if self.rootless {
            format!("{}/docker", self.name.rootless_runtime_dir())
        } else {
            self.name.exec_root()
        }
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
            rootless_user: self.rootless.then(|| self.name.account()),
            reach: self.reach.clone(),
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

/// The lines of a conf and its drop-ins, merged by the key table: for each
/// single-valued key the line in effect, plus `AllowFrom=` and `[Daemon]`.
struct Merged<'a> {
    values: BTreeMap<(Section, &'static str), &'a Entry>,
    daemon: BTreeMap<String, (String, Origin)>,
    allow_from: Vec<Allow>,
    accept_host_routes: Vec<Ipv4Net>,
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
    let merged = merge(&name, docs, &mut diags);
    let mut read = Reader {
        merged: &merged,
        conf,
        diags: &mut diags,
    };

    let root = read
        .value(&keys::ROOT)
        .map(|v| v.and_then(path))
        .unwrap_or_else(|| Some(root::default_root(name.as_str())));
    let bridge = read
        .required(
            &keys::BRIDGE_CIDR,
            "the bridge's address and prefix, e.g. BridgeCIDR=172.22.147.1/24",
        )
        .and_then(net);
    let fixed = match read.value(&keys::FIXED_CIDR) {
        None => bridge.map(|b| b.trunc()),
        Some(v) => v.and_then(net).and_then(|f| match bridge {
            Some(b) if !b.trunc().contains(&f) => read.refuse(&keys::FIXED_CIDR, format!(
                "{f} is not inside the bridge network {} (BridgeCIDR); dockerd can only hand out addresses the bridge can reach",
                b.trunc()
            )),
            _ => Some(f),
        }),
    };
    let pool = read
        .required(
            &keys::POOL_BASE,
            "the base of the address pool for user-defined networks, e.g. PoolBase=172.23.0.0/16",
        )
        .and_then(net)
        .and_then(|p| match bridge {
            Some(b) if network::overlaps(&p, &b) => read.refuse(
                &keys::POOL_BASE,
                format!(
                "{p} overlaps this instance's bridge network {}; the pool must be a separate range",
                b.trunc()
            ),
            ),
            _ => Some(p),
        });
    let pool_size = match read.value(&keys::POOL_SIZE) {
        None => Some(DEFAULT_POOL_SIZE),
        Some(v) => v.and_then(prefix).and_then(|size| match pool {
            Some(p) if size < p.prefix_len() => read.refuse_whole(&keys::POOL_SIZE, format!(
                "PoolSize={size} is smaller than the pool's own prefix /{}: a /{size} network does not fit in {p}; use a PoolSize of at least {}",
                p.prefix_len(), p.prefix_len()
            )),
            _ => Some(size),
        }),
    };
    let rootless = read
        .value(&keys::ROOTLESS)
        .map(|v| v.and_then(boolean))
        .unwrap_or(Some(false));
    // sysbox-runc is run by a root dockerd and needs the host-wide
    // sysbox-mgr and sysbox-fs: a rootless instance runs runc, by default
    // and only.
    let runtime = match read.value(&keys::RUNTIME) {
        None if rootless == Some(true) => Some(Runtime::Runc),
        None => Some(Runtime::SysboxRunc),
        Some(v) => v.and_then(runtime).and_then(|r| match (r, rootless) {
            (Runtime::SysboxRunc, Some(true)) => read.refuse(
                &keys::RUNTIME,
                format!(
                    "sysbox-runc needs a rootful dockerd (it is run as root, beside the host-wide sysbox-mgr and sysbox-fs), and this instance has Rootless=yes{}; use Runtime=runc, or drop Rootless=yes",
                    merged
                        .origin(&keys::ROOTLESS)
                        .map(|o| format!(" ({o})"))
                        .unwrap_or_default()
                ),
            ),
            _ => Some(r),
        }),
    };
    let docker_version = match read.value(&keys::DOCKER_VERSION) {
        Some(v) => v.and_then(version).inspect(|v| {
            if let Some(known) = &defaults.known_docker {
                if !known.contains(v) {
                    read.warn(&keys::DOCKER_VERSION, format!(
                        "DockerVersion={v} is not in the artifacts manifest (known: {}); the installer cannot fetch it, so it must be put in place by other means",
                        known.join(", ")
                    ));
                }
            }
        }),
        None => match &defaults.docker {
            Ok(v) => Some(v.clone()),
            Err(why) => {
                read.diags.push(Diagnostic::error(
                    conf,
                    None,
                    format!("DockerVersion= is not set and there is no default: {why}"),
                ));
                None
            }
        },
    };
    let bind_privileged_ports = match read.value(&keys::BIND_PRIVILEGED_PORTS) {
        None => Some(false),
        Some(v) => v.and_then(boolean).inspect(|yes| {
            if *yes && rootless == Some(false) {
                read.warn(
                    &keys::BIND_PRIVILEGED_PORTS,
                    "BindPrivilegedPorts= only changes a rootless instance (Rootless=yes); a rootful dockerd publishes any port".into(),
                );
            }
        }),
    };
    let autostart = read
        .value(&keys::AUTOSTART)
        .map(|v| v.and_then(boolean))
        .unwrap_or(Some(true));
    // Every [Resources] key is a slice setting as it is: the table says
    // how to check it, and nothing else needs to know it.
    let resources: Vec<Limit> = keys::section_keys(Section::Resources)
        .filter_map(|key| match read.value(key)? {
            Some(Value::Limit(value)) => Some(Limit {
                key: key.name,
                value,
            }),
            _ => None,
        })
        .collect();

    let origin = |key: &Key| merged.origin(key);
    let origins = Origins {
        root: origin(&keys::ROOT),
        bridge: origin(&keys::BRIDGE_CIDR),
        fixed: origin(&keys::FIXED_CIDR),
        pool: origin(&keys::POOL_BASE),
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
        Some(rootless),
        Some(bind_privileged_ports),
        Some(autostart),
    ) = (
        root,
        bridge,
        fixed,
        pool,
        pool_size,
        runtime,
        docker_version,
        rootless,
        bind_privileged_ports,
        autostart,
    )
    else {
        // Every None above pushed an error; this is unreachable in practice
        // but must not panic.
        diags.push(Diagnostic::error(conf, None, "incomplete instance"));
        return (None, diags);
    };
    let Merged {
        daemon,
        allow_from,
        accept_host_routes,
        ..
    } = merged;
    let daemon_options = daemon
        .into_iter()
        .map(|(key, (json, origin))| DaemonOption { key, json, origin })
        .collect();
    // A rootless instance's networks are in its own network namespace:
    // nothing on the host routes into them, and what reaches its containers
    // is its published ports, which rootlesskit opens to everyone. An
    // AllowFrom= there would promise an admission no rule can make.
    if rootless {
        if let Some(a) = allow_from.first() {
            diags.push(Diagnostic::at(
                &a.origin,
                Severity::Warning,
                "AllowFrom= has no effect with Rootless=yes: nothing but the instance's published ports reaches its containers; to let this instance reach another, name it in the other's AllowFrom=",
            ));
        }
    }
    let allowed_nets = allow_from
        .iter()
        .filter(|_| !rootless)
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
        rootless,
        bind_privileged_ports,
        autostart,
        daemon_options,
        allow_from,
        allowed_nets,
        reach: Vec::new(),
        accept_host_routes,
        resources,
        origins,
    };
    (Some(instance), diags)
}

/// Sorts every line of every file to its key: unknown sections and keys
/// are warned about, a single-valued key set twice in one file too.
fn merge<'a>(name: &InstanceName, docs: &'a [Document], diags: &mut Vec<Diagnostic>) -> Merged<'a> {
    let mut merged = Merged {
        values: BTreeMap::new(),
        daemon: BTreeMap::new(),
        allow_from: Vec::new(),
        accept_host_routes: Vec::new(),
    };
    for doc in docs {
        for (section, origin) in &doc.sections {
            if !section.is_empty() && Section::parse(section).is_none() {
                diags.push(Diagnostic::at(
                    origin,
                    Severity::Warning,
                    format!(
                        "unknown section [{section}] ignored{}",
                        crate::suggest::section_hint(section, &Section::ALL.map(Section::name))
                    ),
                ));
            }
        }
        for entry in &doc.entries {
            // Entries of an unknown section were reported at its header.
            let Some(section) = Section::parse(&entry.section) else {
                continue;
            };
            if section == Section::Daemon {
                match daemon_option(entry) {
                    Ok(json) => {
                        merged
                            .daemon
                            .insert(entry.key.clone(), (json, entry.origin.clone()));
                    }
                    Err(d) => diags.push(d),
                }
                continue;
            }
            let Some(key) = keys::find(section, &entry.key) else {
                diags.push(unknown_key(entry, section));
                continue;
            };
            match key.read {
                Read::Single(_) => {
                    if let Some(prev) = merged.values.insert((section, key.name), entry) {
                        if prev.origin.path == entry.origin.path {
                            diags.push(Diagnostic::set_again(
                                &entry.origin,
                                &entry.key,
                                prev.origin.line,
                            ));
                        }
                    }
                }
                Read::List if key.name == keys::ALLOW_FROM.name => {
                    allow_lines(name, entry, &mut merged.allow_from, diags)
                }
                Read::List => accept_route_lines(entry, &mut merged.accept_host_routes, diags),
            }
        }
    }
    merged
}

impl Merged<'_> {
    /// The line in effect for a key; an empty value resets a key to its
    /// default, as in systemd unit files.
    fn entry(&self, key: &Key) -> Option<&Entry> {
        self.values
            .get(&(key.section, key.name))
            .copied()
            .filter(|e| !e.value.is_empty())
    }

    fn origin(&self, key: &Key) -> Option<Origin> {
        self.entry(key).map(|e| e.origin.clone())
    }
}

/// Reads keys through the table, recording each refusal where it was
/// written.
struct Reader<'m, 'd> {
    merged: &'m Merged<'m>,
    conf: &'d Path,
    diags: &'d mut Vec<Diagnostic>,
}

impl Reader<'_, '_> {
    /// `None`: the key is not set. `Some(None)`: set, but refused (the
    /// message is recorded).
    fn value(&mut self, key: &Key) -> Option<Option<Value>> {
        let entry = self.merged.entry(key)?;
        let Read::Single(parse) = key.read else {
            return Some(None);
        };
        Some(match parse(&entry.value) {
            Ok(v) => Some(v),
            Err(Refusal::Value(m)) => self.refuse(key, m),
            Err(Refusal::Whole(m)) => self.refuse_whole(key, m),
        })
    }

    /// A key without a default.
    fn required(&mut self, key: &Key, what: &str) -> Option<Value> {
        match self.value(key) {
            Some(v) => v,
            None => {
                self.diags.push(Diagnostic::error(
                    self.conf,
                    None,
                    format!(
                        "{}= is required in [{}] ({what})",
                        key.name,
                        key.section.name()
                    ),
                ));
                None
            }
        }
    }

    /// Refuses the key's value: `Key=value: why`, at its line.
    fn refuse<T>(&mut self, key: &Key, why: String) -> Option<T> {
        let value = self.merged.entry(key).map_or("", |e| e.value.as_str());
        let msg = format!("{}={value}: {why}", key.name);
        self.refuse_whole(key, msg)
    }

    /// Refuses the key's value with a message that names it already.
    fn refuse_whole<T>(&mut self, key: &Key, msg: String) -> Option<T> {
        self.note(key, Severity::Error, msg);
        None
    }

    fn warn(&mut self, key: &Key, msg: String) {
        self.note(key, Severity::Warning, msg);
    }

    fn note(&mut self, key: &Key, severity: Severity, msg: String) {
        self.diags.push(match self.merged.entry(key) {
            Some(e) => Diagnostic::at(&e.origin, severity, msg),
            None => Diagnostic {
                severity,
                ..Diagnostic::error(self.conf, None, msg)
            },
        });
    }
}

// What each key's reader made of its value (keys.rs pairs key and reader,
// so another variant here is a bug in the table, not in a conf).
fn path(v: Value) -> Option<String> {
    match v {
        Value::Path(p) => Some(p),
        _ => None,
    }
}

fn net(v: Value) -> Option<Ipv4Net> {
    match v {
        Value::Net(n) => Some(n),
        _ => None,
    }
}

fn prefix(v: Value) -> Option<u8> {
    match v {
        Value::Prefix(p) => Some(p),
        _ => None,
    }
}

fn runtime(v: Value) -> Option<Runtime> {
    match v {
        Value::Runtime(r) => Some(r),
        _ => None,
    }
}

fn version(v: Value) -> Option<String> {
    match v {
        Value::Version(s) => Some(s),
        _ => None,
    }
}

fn boolean(v: Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(b),
        _ => None,
    }
}

/// One `AllowFrom=` line. Like systemd's list settings: each line adds,
/// an empty value resets what came before (also from the main conf).
fn allow_lines(
    name: &InstanceName,
    entry: &Entry,
    allow_from: &mut Vec<Allow>,
    diags: &mut Vec<Diagnostic>,
) {
    if entry.value.is_empty() {
        allow_from.clear();
    }
    for word in entry.value.split_whitespace() {
        match allow_word(name, word) {
            Ok(Some(peer)) => allow_from.push(Allow {
                peer,
                origin: entry.origin.clone(),
            }),
            Ok(None) => diags.push(Diagnostic::at(
                &entry.origin,
                Severity::Warning,
                format!(
                    "AllowFrom={word} names this instance; its own networks are always allowed"
                ),
            )),
            Err(m) => diags.push(Diagnostic::at(&entry.origin, Severity::Error, m)),
        }
    }
}

/// One `AcceptHostRoute=` line: route destinations, as networks; a list
/// like `AllowFrom=`.
fn accept_route_lines(entry: &Entry, routes: &mut Vec<Ipv4Net>, diags: &mut Vec<Diagnostic>) {
    if entry.value.is_empty() {
        routes.clear();
    }
    for word in entry.value.split_whitespace() {
        match network::parse_cidr(word) {
            Ok(n) if n == n.trunc() => routes.push(n),
            Ok(n) => diags.push(Diagnostic::at(
                &entry.origin,
                Severity::Error,
                format!(
                    "{}={word}: a route's destination is a network; write {}",
                    keys::ACCEPT_HOST_ROUTE.name,
                    n.trunc()
                ),
            )),
            Err(m) => diags.push(Diagnostic::at(
                &entry.origin,
                Severity::Error,
                format!("{}={word}: {m}", keys::ACCEPT_HOST_ROUTE.name),
            )),
        }
    }
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

/// An unknown key of a known section: ignored with a warning that
/// suggests the nearest of the section's keys in the table, or lists them.
fn unknown_key(entry: &Entry, section: Section) -> Diagnostic {
    let known: Vec<&str> = keys::known_keys(section).collect();
    let hint = crate::suggest::key_hint(&entry.key, &known);
    Diagnostic::at(
        &entry.origin,
        Severity::Warning,
        format!(
            "unknown key {}= in [{}] ignored{hint}",
            entry.key,
            section.name()
        ),
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
    (
        "exec-opts",
        "Dockyard sets native.cgroupdriver=systemd so that [Resources] covers the containers",
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
    fn rootless_runs_runc_and_refuses_sysbox() {
        let (inst, diags) = build_text(&format!("{MINIMAL}Rootless=yes\n"));
        assert!(diags.is_empty(), "{diags:?}");
        let i = inst.expect("instance");
        assert!(i.rootless);
        assert_eq!(i.runtime, Runtime::Runc);
        let (inst, diags) = build_text(&format!("{MINIMAL}Rootless=yes\nRuntime=runc\n"));
        assert!(diags.is_empty() && inst.is_some_and(|i| i.rootless));
        // Asked for both: refused at the Runtime= line, naming Rootless='s.
        let (inst, diags) = build_text(&format!("{MINIMAL}Rootless=yes\nRuntime=sysbox-runc\n"));
        assert!(inst.is_none());
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(
            diags[0].starts_with(
                "/c/dy1.conf:5: error: Runtime=sysbox-runc: sysbox-runc needs a rootful dockerd"
            ) && diags[0].contains("Rootless=yes (/c/dy1.conf:4)"),
            "{diags:?}"
        );
        let (inst, diags) = build_text(&format!(
            "{MINIMAL}Rootless=yes\n[Network]\nBindPrivilegedPorts=yes\n"
        ));
        assert!(diags.is_empty() && inst.is_some_and(|i| i.bind_privileged_ports));
        let (inst, diags) = build_text(&format!("{MINIMAL}[Network]\nBindPrivilegedPorts=yes\n"));
        assert!(inst.is_some_and(|i| i.bind_privileged_ports));
        assert!(
            diags.len() == 1 && diags[0].contains("only changes a rootless instance"),
            "{diags:?}"
        );
        let (inst, _) = build_text(&format!("{MINIMAL}Rootless=maybe\n"));
        assert!(inst.is_none());
        let (inst, _) = build_text(MINIMAL);
        assert!(!inst.expect("instance").rootless);
    }

    #[test]
    fn a_rootless_instance_tells_the_network_helper_its_account() {
        let (inst, diags) = build_text(&format!(
            "{MINIMAL}Rootless=yes\n[Network]\nAllowFrom=dy2 10.9.0.0/16\n"
        ));
        // Nothing reaches into it but its published ports: said, not refused.
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(
            diags[0]
                .starts_with("/c/dy1.conf:6: warning: AllowFrom= has no effect with Rootless=yes"),
            "{diags:?}"
        );
        let n = inst.expect("instance").network();
        assert_eq!(n.rootless_user.as_deref(), Some("dy1_docker"));
        assert!(n.allow_from.is_empty() && n.reach.is_empty(), "{n:?}");
        let (inst, _) = build_text(MINIMAL);
        assert_eq!(inst.expect("instance").network().rootless_user, None);
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
                "/c/dy1.conf:6: warning: unknown section [Extra] ignored; sections are [Instance], [Network], [Resources], [Daemon]",
                "/c/dy1.conf:4: warning: unknown key bridgecidr= in [Instance] ignored; did you mean BridgeCIDR=?",
                "/c/dy1.conf:5: warning: unknown key Foo= in [Instance] ignored; known keys: Root, BridgeCIDR, FixedCIDR, PoolBase, PoolSize, Runtime, DockerVersion, Rootless, Autostart",
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

    #[test]
    fn resources_reach_the_instance_in_table_order() {
        let (inst, diags) = build_text(&format!(
            "{MINIMAL}[Resources]\nTasksMax=512\nMemoryMax=2G\nMemoryHigh=1536M\nCPUQuota=150%\nCPUWeight=50\nIOWeight=200\nAllowedCPUs=0-1\nMemorySwapMax=0\n"
        ));
        assert!(diags.is_empty(), "{diags:?}");
        let got: Vec<String> = inst
            .expect("instance")
            .resources
            .iter()
            .map(|l| format!("{}={}", l.key, l.value))
            .collect();
        assert_eq!(
            got,
            [
                "MemoryMax=2G",
                "MemoryHigh=1536M",
                "MemorySwapMax=0",
                "CPUQuota=150%",
                "CPUWeight=50",
                "TasksMax=512",
                "IOWeight=200",
                "AllowedCPUs=0-1"
            ]
        );
        let (inst, _) = build_text(MINIMAL);
        assert!(inst.expect("instance").resources.is_empty());
    }

    #[test]
    fn resources_are_refused_at_their_line_and_reset_by_an_empty_value() {
        for (text, expect) in [
            ("[Resources]\nMemoryMax=2GB\n", "/c/dy1.conf:5: error: MemoryMax=2GB: not a size"),
            ("[Resources]\nMemoryHigh=150%\n", "/c/dy1.conf:5: error: MemoryHigh=150%: 150% is more than 100% of the host's memory"),
            ("[Resources]\nCPUQuota=2\n", "/c/dy1.conf:5: error: CPUQuota=2: not a percentage"),
            ("[Resources]\nCPUWeight=0\n", "/c/dy1.conf:5: error: CPUWeight=0: not a weight from 1 to 10000"),
            ("[Resources]\nTasksMax=lots\n", "/c/dy1.conf:5: error: TasksMax=lots: not a task count"),
            ("[Resources]\n\nIOWeight=20000\n", "/c/dy1.conf:6: error: IOWeight=20000: not a weight"),
            ("[Resources]\nAllowedCPUs=3-1\n", "/c/dy1.conf:5: error: AllowedCPUs=3-1: the range 3-1 runs backwards"),
            ("[Resources]\nMemoryMax=2G  # per tenant\n", "/c/dy1.conf:5: error: MemoryMax=2G  # per tenant: not a size"),
        ] {
            let (inst, diags) = build_text(&format!("{MINIMAL}{text}"));
            assert!(inst.is_none(), "{text}");
            assert!(diags.iter().any(|d| d.starts_with(expect)), "{expect}\n got {diags:?}");
        }
        let (inst, diags) = build_text(&format!(
            "{MINIMAL}[Resources]\nMemoryMax=2G\nMemoryMax=\nmemorymax=1G\n"
        ));
        assert_eq!(
            diags,
            [
                "/c/dy1.conf:6: warning: MemoryMax= set again; this overrides line 5",
                "/c/dy1.conf:7: warning: unknown key memorymax= in [Resources] ignored; did you mean MemoryMax=?",
            ]
        );
        assert!(inst.expect("instance").resources.is_empty());
    }

    #[test]
    fn a_dropin_overrides_a_limit_without_a_warning() {
        let main = Path::new("/c/dy1.conf");
        let drop = Path::new("/c/dy1.conf.d/50-mem.conf");
        let (a, _) = ini::parse(main, &format!("{MINIMAL}[Resources]\nMemoryMax=2G\n"));
        let (b, _) = ini::parse(drop, "[Resources]\nMemoryMax=4G\n");
        let (inst, diags) = build(
            InstanceName::parse("dy1").expect("name"),
            main,
            vec![drop.to_path_buf()],
            &[a, b],
            &defaults(),
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(inst.expect("instance").resources[0].value, "4G");
    }
}

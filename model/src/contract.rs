//! The helpers' command lines and what they record, defined once.
//!
//! The generator renders these into units, the helpers parse them, and the
//! CLI calls `dockyard-network down` itself and reads the records back: all
//! three go through the types here, so an option name, a value's check or a
//! recorded key cannot differ between them. An option's name is also its key
//! in the record (`/run/dockyard/NAME/network`), so what `up` was told is
//! exactly what `down` finds when the conf is gone.

use crate::name::InstanceName;
use crate::network::parse_cidr;
use ipnet::Ipv4Net;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// One helper option: `--NAME VALUE` on the command line, `NAME=VALUE` in a
/// record. Repeatable options appear once per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    pub name: &'static str,
    pub repeatable: bool,
}

const fn once(name: &'static str) -> Opt {
    Opt {
        name,
        repeatable: false,
    }
}

const fn many(name: &'static str) -> Opt {
    Opt {
        name,
        repeatable: true,
    }
}

pub const INSTANCE: Opt = once("instance");

/// Where option values come from: a parsed command line or a record.
pub trait Values {
    /// The values given for `opt`, in order (empty when absent).
    fn values(&self, opt: Opt) -> Vec<&str>;

    fn value(&self, opt: Opt) -> Option<&str> {
        self.values(opt).into_iter().next()
    }
}

/// A value that does not fit its option, named so the caller can say which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    pub opt: &'static str,
    pub message: String,
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BadValue {}

fn bad(opt: Opt, message: impl fmt::Display) -> BadValue {
    BadValue {
        opt: opt.name,
        message: format!("--{}: {message}", opt.name),
    }
}

fn required(from: &dyn Values, opt: Opt) -> Result<&str, BadValue> {
    from.value(opt).ok_or_else(|| BadValue {
        opt: opt.name,
        message: format!("missing required option --{}", opt.name),
    })
}

pub fn instance(from: &dyn Values) -> Result<InstanceName, BadValue> {
    InstanceName::parse(required(from, INSTANCE)?).map_err(|e| bad(INSTANCE, e))
}

/// An interface address with its prefix, e.g. `172.22.147.1/24`.
fn interface_cidr(opt: Opt, s: &str) -> Result<Ipv4Net, BadValue> {
    let net = parse_cidr(s).map_err(|e| bad(opt, e))?;
    if net.prefix_len() < 31 && (net.addr() == net.network() || net.addr() == net.broadcast()) {
        return Err(bad(
            opt,
            format!(
                "{s}: {} is the network or broadcast address of {}; give the bridge a host address",
                net.addr(),
                net.trunc()
            ),
        ));
    }
    Ok(net)
}

/// A network, e.g. `172.23.0.0/16`: host bits must be zero so that what the
/// admin wrote and what ends up in the rules are the same thing.
fn network_cidr(opt: Opt, s: &str) -> Result<Ipv4Net, BadValue> {
    let net = parse_cidr(s).map_err(|e| bad(opt, e))?;
    if net.addr() != net.network() {
        return Err(bad(
            opt,
            format!("{s}: host bits are set; did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

/// Absolute, no `..` (it could climb out of where the admin meant), not `/`;
/// `.` and repeated slashes are normalised away so prefix checks are exact.
pub fn abs_path(opt: Opt, s: &str) -> Result<PathBuf, BadValue> {
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(bad(opt, format!("{s:?} must be an absolute path")));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(bad(opt, format!("{s:?} must not contain '..'")));
    }
    if p.components().all(|c| c == Component::RootDir) {
        return Err(bad(opt, "must not be '/'"));
    }
    Ok(p.components().collect())
}

/// `dockyard-network up|down`: the instance's bridge, forwarding, firewall
/// and the network store of its dockerd.
/// What `dockyard-network up` records about the firewall: the backend that
/// wrote the instance's rules, so that `down`, `status`, `verify` and
/// `destroy` use it also after the host's setting changed.
pub mod firewall {
    use super::*;

    pub const BACKEND: Opt = once("backend");
    pub const RECORD: &str = "firewall";
}

pub mod network {
    use super::*;

    pub const BRIDGE_CIDR: Opt = once("bridge-cidr");
    pub const FIXED_CIDR: Opt = once("fixed-cidr");
    pub const POOL: Opt = once("pool");
    pub const ALLOW_FROM: Opt = many("allow-from");
    pub const DATA_ROOT: Opt = once("data-root");
    /// Written by units of Dockyard 0.1; the bridge name is derived from the
    /// instance name, so a value is only checked against it.
    pub const LEGACY_BRIDGE: Opt = once("bridge");
    /// `up` only: host routes the conf accepts over the instance's
    /// networks (`AcceptHostRoute=`); `up` refuses any other.
    pub const ACCEPT_HOST_ROUTE: Opt = many("accept-host-route");
    /// A rootless instance (`Rootless=yes`): the account its daemons and
    /// containers run as, whose sockets its rules key on; `up` creates no
    /// bridge for it. Always the instance's own account, checked against
    /// its name, so no unit can aim the rules at another user's sockets.
    /// The uid is resolved at `up` (the account exists by then), never
    /// recorded: a teardown finds the rules by their tag.
    pub const ROOTLESS_USER: Opt = once("rootless-user");
    /// Rootless only: networks of rootful instances whose `AllowFrom=`
    /// names it (`crate::load` resolves them), which its user may open
    /// connections into.
    pub const REACH: Opt = many("reach");

    pub const OPTIONS: &[Opt] = &[
        INSTANCE,
        BRIDGE_CIDR,
        FIXED_CIDR,
        POOL,
        ALLOW_FROM,
        DATA_ROOT,
        LEGACY_BRIDGE,
        ACCEPT_HOST_ROUTE,
        ROOTLESS_USER,
        REACH,
    ];

    /// `--accept-host-route NET`, repeated.
    pub fn accept_host_route_args(accepted: &[Ipv4Net]) -> Vec<String> {
        accepted
            .iter()
            .flat_map(|n| [format!("--{}", ACCEPT_HOST_ROUTE.name), n.to_string()])
            .collect()
    }

    pub fn accepted_host_routes(from: &dyn Values) -> Result<Vec<Ipv4Net>, BadValue> {
        from.values(ACCEPT_HOST_ROUTE)
            .into_iter()
            .map(|v| network_cidr(ACCEPT_HOST_ROUTE, v))
            .collect()
    }

    /// The record `up` leaves for `down`, `status` and `destroy`.
    pub const RECORD: &str = "network";

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Network {
        pub instance: InstanceName,
        /// The bridge's own address with its prefix (`BridgeCIDR=`).
        pub bridge_cidr: Ipv4Net,
        /// Where dockerd hands out default-bridge addresses; inside the bridge.
        pub fixed: Ipv4Net,
        /// User-defined networks are carved from it.
        pub pool: Ipv4Net,
        /// Networks whose containers may open connections into this
        /// instance (`AllowFrom=`, peers resolved to their networks).
        pub allow_from: Vec<Ipv4Net>,
        /// dockerd's `--data-root`; its network store must describe these
        /// networks. `None` only in records and units of Dockyard 0.1.
        pub data_root: Option<PathBuf>,
        /// The account of a rootless instance (`--rootless-user`); `None`
        /// for a rootful one.
        pub rootless_user: Option<String>,
        /// Rootless only: the networks its user may open connections into
        /// (`--reach`).
        pub reach: Vec<Ipv4Net>,
    }

    impl Network {
        pub fn bridge(&self) -> String {
            self.instance.bridge()
        }

        /// The bridge's network, e.g. 172.22.147.0/24 for 172.22.147.1/24.
        pub fn bridge_net(&self) -> Ipv4Net {
            self.bridge_cidr.trunc()
        }

        /// Its networks live in its own network namespace, not on the host:
        /// no bridge, no host routes, no forwarding to set up.
        pub fn is_rootless(&self) -> bool {
            self.rootless_user.is_some()
        }

        /// The options after the action word, the same for `up` and `down`
        /// so that a stop always carries exactly what the start was given.
        pub fn args(&self) -> Vec<String> {
            let mut out = Vec::with_capacity(12 + 2 * (self.allow_from.len() + self.reach.len()));
            for (opt, value) in self.pairs() {
                out.push(format!("--{}", opt.name));
                out.push(value);
            }
            out
        }

        /// `key=value` lines, as `up` records them.
        pub fn record(&self) -> String {
            let mut out = String::new();
            for (opt, value) in self.pairs() {
                if opt != INSTANCE {
                    out.push_str(opt.name);
                    out.push('=');
                    out.push_str(&value);
                    out.push('\n');
                }
            }
            out
        }

        fn pairs(&self) -> Vec<(Opt, String)> {
            let mut out = vec![
                (INSTANCE, self.instance.to_string()),
                (BRIDGE_CIDR, self.bridge_cidr.to_string()),
                (FIXED_CIDR, self.fixed.to_string()),
                (POOL, self.pool.to_string()),
            ];
            out.extend(self.allow_from.iter().map(|n| (ALLOW_FROM, n.to_string())));
            if let Some(user) = &self.rootless_user {
                out.push((ROOTLESS_USER, user.clone()));
            }
            out.extend(self.reach.iter().map(|n| (REACH, n.to_string())));
            if let Some(root) = &self.data_root {
                out.push((DATA_ROOT, root.to_string_lossy().into_owned()));
            }
            out
        }

        /// Every value checked; `--fixed-cidr` must lie in the bridge's network
        /// (dockerd refuses it otherwise, with a less helpful message).
        pub fn parse(from: &dyn Values) -> Result<Network, BadValue> {
            let instance = instance(from)?;
            if let Some(b) = from.value(LEGACY_BRIDGE) {
                if b != instance.bridge() {
                    return Err(bad(
                        LEGACY_BRIDGE,
                        format!(
                            "{b:?}: the bridge of instance {instance} is {}",
                            instance.bridge()
                        ),
                    ));
                }
            }
            let bridge_cidr = interface_cidr(BRIDGE_CIDR, required(from, BRIDGE_CIDR)?)?;
            let fixed = network_cidr(FIXED_CIDR, required(from, FIXED_CIDR)?)?;
            if !bridge_cidr.trunc().contains(&fixed) {
                return Err(bad(
                    FIXED_CIDR,
                    format!(
                        "{fixed} is not inside the bridge network {} (from --{} {bridge_cidr})",
                        bridge_cidr.trunc(),
                        BRIDGE_CIDR.name
                    ),
                ));
            }
            let pool = network_cidr(POOL, required(from, POOL)?)?;
            let allow_from = from
                .values(ALLOW_FROM)
                .into_iter()
                .map(|v| network_cidr(ALLOW_FROM, v))
                .collect::<Result<Vec<_>, _>>()?;
            let data_root = from
                .value(DATA_ROOT)
                .map(|v| abs_path(DATA_ROOT, v))
                .transpose()?;
            let rootless_user = from
                .value(ROOTLESS_USER)
                .map(|u| {
                    if u == instance.account() {
                        Ok(u.to_string())
                    } else {
                        Err(bad(
                            ROOTLESS_USER,
                            format!(
                                "{u:?}: a rootless instance runs as its own account, {} for instance {instance}",
                                instance.account()
                            ),
                        ))
                    }
                })
                .transpose()?;
            let reach = from
                .values(REACH)
                .into_iter()
                .map(|v| network_cidr(REACH, v))
                .collect::<Result<Vec<_>, _>>()?;
            if rootless_user.is_some() && !allow_from.is_empty() {
                return Err(bad(
                    ALLOW_FROM,
                    format!(
                        "a rootless instance (--{}) admits no connections into its networks: they are in its own network namespace, and only its published ports reach it",
                        ROOTLESS_USER.name
                    ),
                ));
            }
            if rootless_user.is_none() && !reach.is_empty() {
                return Err(bad(
                    REACH,
                    format!(
                        "only a rootless instance (--{}) is given the networks it may reach; a rootful one is admitted by the other instance's rules",
                        ROOTLESS_USER.name
                    ),
                ));
            }
            Ok(Network {
                instance,
                bridge_cidr,
                fixed,
                pool,
                allow_from,
                data_root,
                rootless_user,
                reach,
            })
        }
    }
}

/// `dockyard-prepare up|started|down`: account, directories, daemon.json.
pub mod prepare {
    use super::*;

    pub const USER: Opt = once("user");
    pub const GROUP: Opt = once("group");
    pub const ROOT: Opt = once("root");
    pub const EXEC_ROOT: Opt = once("exec-root");
    pub const CONFIG_FILE: Opt = once("config-file");
    pub const DAEMON_OPTION: Opt = many("daemon-option");
    /// The image store the generator chose (`crate::engine::image_store`);
    /// absent for engines that have no choice.
    pub const IMAGE_STORE: Opt = once("image-store");
    /// `rootless` for an instance in Docker's rootless mode (`Rootless=yes`):
    /// its directories belong to its user, it gets subordinate ids, and its
    /// socket's owner is set from outside once dockerd is up. Absent means
    /// rootful, as in units written before rootless instances existed.
    pub const MODE: Opt = once("mode");

    pub const OPTIONS: &[Opt] = &[
        INSTANCE,
        USER,
        GROUP,
        ROOT,
        EXEC_ROOT,
        CONFIG_FILE,
        DAEMON_OPTION,
        IMAGE_STORE,
        MODE,
    ];

    /// Who the instance's daemons run as.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Mode {
        /// dockerd as root: its socket's group is root on the host.
        Rootful,
        /// Docker's rootless mode, as the instance's user.
        Rootless,
    }

    impl Mode {
        pub fn of(rootless: bool) -> Mode {
            if rootless {
                Mode::Rootless
            } else {
                Mode::Rootful
            }
        }

        pub fn as_str(self) -> &'static str {
            match self {
                Mode::Rootful => "rootful",
                Mode::Rootless => "rootless",
            }
        }
    }

    /// `--mode`; absent is rootful.
    pub fn mode(from: &dyn Values) -> Result<Mode, BadValue> {
        match from.value(MODE) {
            None | Some("rootful") => Ok(Mode::Rootful),
            Some("rootless") => Ok(Mode::Rootless),
            Some(v) => Err(bad(MODE, format!("{v:?} is not rootful or rootless"))),
        }
    }

    /// `dockyard-prepare run-as --user U -- PROGRAM ARGS…`: the unit's
    /// `ExecStart=` of a rootless instance starts rootlesskit as the
    /// instance's user; everything after `--` is the command, as given.
    pub const RUN_AS: &str = "run-as";
    /// `run-as --keep-capability net_bind_service`: the one capability the
    /// user keeps, ambient, for rootlesskit's port driver to bind ports
    /// below 1024 (`BindPrivilegedPorts=yes`). No other is accepted.
    pub const KEEP_CAPABILITY: Opt = once("keep-capability");
    pub const NET_BIND_SERVICE: &str = "net_bind_service";
    /// `dockyard-prepare in-namespace -- PROGRAM ARGS…`: what rootlesskit
    /// runs in its namespaces, before dockerd (dockerd-rootless.sh's child
    /// half).
    pub const IN_NAMESPACE: &str = "in-namespace";
    /// Separates a helper's options from the command it runs.
    pub const COMMAND_SEPARATOR: &str = "--";

    /// `--image-store`, when given.
    pub fn image_store(from: &dyn Values) -> Result<Option<crate::engine::ImageStore>, BadValue> {
        from.value(IMAGE_STORE)
            .map(|v| {
                crate::engine::ImageStore::parse(v).ok_or_else(|| {
                    bad(
                        IMAGE_STORE,
                        format!("{v:?} is not containerd or graphdriver"),
                    )
                })
            })
            .transpose()
    }

    /// The record `up` leaves for `down` and for `status` / `destroy`.
    pub const RECORD: &str = "prepare";
    /// Left by `up` of a rootless instance beside [`RECORD`], removed by
    /// its `down`: such an instance has no bridge on the host to show that
    /// it runs (`crate::load`).
    pub const ROOTLESS_RECORD: &str = "rootless";

    /// What `down` needs, and what `up` records of it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Cleanup {
        pub instance: InstanceName,
        pub root: PathBuf,
        pub exec_root: PathBuf,
    }

    impl Cleanup {
        pub fn args(&self) -> Vec<String> {
            vec![
                format!("--{}", INSTANCE.name),
                self.instance.to_string(),
                format!("--{}", ROOT.name),
                self.root.to_string_lossy().into_owned(),
                format!("--{}", EXEC_ROOT.name),
                self.exec_root.to_string_lossy().into_owned(),
            ]
        }

        pub fn record(&self) -> String {
            format!(
                "{}={}\n{}={}\n",
                ROOT.name,
                self.root.display(),
                EXEC_ROOT.name,
                self.exec_root.display()
            )
        }

        pub fn parse(from: &dyn Values) -> Result<Cleanup, BadValue> {
            Ok(Cleanup {
                instance: instance(from)?,
                root: abs_path(ROOT, required(from, ROOT)?)?,
                exec_root: abs_path(EXEC_ROOT, required(from, EXEC_ROOT)?)?,
            })
        }
    }
}

/// `dockyard-prepare sysbox` and `dockyard-sysbox-chown`: host-wide, not
/// per instance. The file overrides exist for tests and unusual hosts.
pub mod sysbox {
    use super::*;

    pub const DATA_ROOT: Opt = once("data-root");
    pub const SUBID_USER: Opt = once("subid-user");
    pub const SUBUID_FILE: Opt = once("subuid-file");
    pub const SUBGID_FILE: Opt = once("subgid-file");
    pub const LOGIN_DEFS: Opt = once("login-defs");

    pub const CHOWN_OPTIONS: &[Opt] = &[DATA_ROOT, SUBID_USER, SUBUID_FILE, SUBGID_FILE];
    pub const USER_OPTIONS: &[Opt] = &[SUBID_USER, SUBUID_FILE, SUBGID_FILE, LOGIN_DEFS];
}

/// `dockyard-prepare installed`: the instance unit's first step, which
/// fails with what to install when the store lacks what the unit runs
/// ([`crate::installed`]).
pub mod installed {
    use super::*;

    pub const DOCKER_VERSION: Opt = once("docker-version");
    pub const SYSBOX_VERSION: Opt = once("sysbox-version");
    /// `--rootless yes` for Rootless=yes: rootlesskit in the store, and
    /// slirp4netns, newuidmap, newgidmap and /dev/net/tun on the host
    /// ([`crate::installed::rootless_host`]). Absent means no.
    pub const ROOTLESS: Opt = once("rootless");

    /// The exit status of `installed` when something is missing. The unit
    /// does not restart on it (`RestartPreventExitStatus=`): nothing will
    /// have changed two seconds later, and each retry would push the
    /// message that says what to install out of `systemctl status`.
    pub const EXIT_NOT_INSTALLED: u8 = 6;

    pub const OPTIONS: &[Opt] = &[INSTANCE, DOCKER_VERSION, SYSBOX_VERSION, ROOTLESS];

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Needs {
        pub instance: InstanceName,
        pub docker_version: String,
        /// Set for Runtime=sysbox-runc.
        pub sysbox_version: Option<String>,
        /// Rootless=yes.
        pub rootless: bool,
    }

    fn version(opt: Opt, s: &str) -> Result<String, BadValue> {
        crate::value::check_version(s)
            .map(|()| s.to_string())
            .map_err(|e| bad(opt, e))
    }

    impl Needs {
        pub fn args(&self) -> Vec<String> {
            let mut a = vec![
                format!("--{}", INSTANCE.name),
                self.instance.to_string(),
                format!("--{}", DOCKER_VERSION.name),
                self.docker_version.clone(),
            ];
            if let Some(v) = &self.sysbox_version {
                a.extend([format!("--{}", SYSBOX_VERSION.name), v.clone()]);
            }
            // Only when set, so a rootful instance's unit is what it was.
            if self.rootless {
                a.extend([format!("--{}", ROOTLESS.name), "yes".to_string()]);
            }
            a
        }

        pub fn parse(from: &dyn Values) -> Result<Needs, BadValue> {
            Ok(Needs {
                instance: instance(from)?,
                docker_version: version(DOCKER_VERSION, required(from, DOCKER_VERSION)?)?,
                sysbox_version: from
                    .value(SYSBOX_VERSION)
                    .map(|v| version(SYSBOX_VERSION, v))
                    .transpose()?,
                rootless: from
                    .value(ROOTLESS)
                    .map(|v| {
                        crate::value::parse_bool(v)
                            .ok_or_else(|| bad(ROOTLESS, format!("{v:?} is not yes or no")))
                    })
                    .transpose()?
                    .unwrap_or(false),
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        struct Argv(Vec<String>);

        impl Values for Argv {
            fn values(&self, opt: Opt) -> Vec<&str> {
                let flag = format!("--{}", opt.name);
                self.0
                    .windows(2)
                    .filter(|w| w[0] == flag)
                    .map(|w| w[1].as_str())
                    .collect()
            }
        }

        #[test]
        fn rootless_is_passed_only_when_set_and_round_trips() {
            let mut n = Needs {
                instance: InstanceName::parse("dy1").expect("name"),
                docker_version: "29.2.1".into(),
                sysbox_version: None,
                rootless: false,
            };
            assert!(!n.args().iter().any(|a| a == "--rootless"));
            assert_eq!(Needs::parse(&Argv(n.args())), Ok(n.clone()));
            n.rootless = true;
            assert!(n
                .args()
                .ends_with(&["--rootless".to_string(), "yes".to_string()]));
            assert_eq!(Needs::parse(&Argv(n.args())), Ok(n.clone()));
            let mut bad = n.args();
            let last = bad.len() - 1;
            bad[last] = "maybe".into();
            assert_eq!(Needs::parse(&Argv(bad)).map_err(|e| e.opt), Err("rootless"));
        }
    }
}

/// A record as read back: `key=value` lines, keys being option names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pairs: Vec<(String, String)>,
    instance: String,
}

impl Record {
    /// `instance` is the directory the record was found in: records do not
    /// repeat it, and it is checked like any other value.
    pub fn parse(instance: &InstanceName, text: &str) -> Record {
        Record {
            pairs: text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            instance: instance.to_string(),
        }
    }
}

impl Values for Record {
    fn values(&self, opt: Opt) -> Vec<&str> {
        if opt == INSTANCE {
            return vec![self.instance.as_str()];
        }
        self.pairs
            .iter()
            .filter(|(k, _)| k == opt.name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::network::*;
    use super::*;

    struct Argv(Vec<String>);

    impl Values for Argv {
        fn values(&self, opt: Opt) -> Vec<&str> {
            let flag = format!("--{}", opt.name);
            self.0
                .windows(2)
                .filter(|w| w[0] == flag)
                .map(|w| w[1].as_str())
                .collect()
        }
    }

    fn dy1() -> Network {
        Network {
            instance: InstanceName::parse("dy1").expect("name"),
            bridge_cidr: "172.22.147.1/24".parse().expect("net"),
            fixed: "172.22.147.0/24".parse().expect("net"),
            pool: "172.23.0.0/16".parse().expect("net"),
            allow_from: vec!["172.20.1.0/24".parse().expect("net")],
            data_root: Some(PathBuf::from("/var/lib/dockyard/dy1/docker")),
            rootless_user: None,
            reach: Vec::new(),
        }
    }

    fn rootless() -> Network {
        Network {
            allow_from: Vec::new(),
            rootless_user: Some("dy1_docker".into()),
            reach: vec![
                "172.20.1.0/24".parse().expect("net"),
                "172.21.0.0/16".parse().expect("net"),
            ],
            ..dy1()
        }
    }

    #[test]
    fn a_rootless_instance_round_trips_and_names_only_its_own_account() {
        let n = rootless();
        assert!(n.is_rootless());
        assert_eq!(Network::parse(&Argv(n.args())), Ok(n.clone()));
        let rec = Record::parse(&n.instance, &n.record());
        assert_eq!(Network::parse(&rec), Ok(n.clone()));
        for line in [
            "rootless-user=dy1_docker\n",
            "reach=172.20.1.0/24\nreach=172.21.0.0/16\n",
        ] {
            assert!(n.record().contains(line), "{}", n.record());
        }
        let swap = |from: &str, to: &str, net: &Network| {
            let argv: Vec<String> = net
                .args()
                .into_iter()
                .map(|a| if a == from { to.to_string() } else { a })
                .collect();
            Network::parse(&Argv(argv)).map_err(|e| e.opt)
        };
        // Never another account's sockets, root's least of all.
        assert_eq!(swap("dy1_docker", "root", &n), Err("rootless-user"));
        assert_eq!(swap("dy1_docker", "dy2_docker", &n), Err("rootless-user"));
        // Reach is a rootless instance's; admission a rootful one's.
        let mut rootful = n.clone();
        rootful.rootless_user = None;
        assert_eq!(
            Network::parse(&Argv(rootful.args())).map_err(|e| e.opt),
            Err("reach")
        );
        let mut admits = n.clone();
        admits.allow_from.push("10.1.0.0/16".parse().expect("net"));
        assert_eq!(
            Network::parse(&Argv(admits.args())).map_err(|e| e.opt),
            Err("allow-from")
        );
    }

    #[test]
    fn args_and_record_round_trip() {
        let n = dy1();
        assert_eq!(Network::parse(&Argv(n.args())), Ok(n.clone()));
        let rec = Record::parse(&n.instance, &n.record());
        assert_eq!(Network::parse(&rec), Ok(n.clone()));
        assert!(
            n.record().contains("allow-from=172.20.1.0/24\n"),
            "{}",
            n.record()
        );
    }

    #[test]
    fn old_units_still_parse() {
        // Dockyard 0.1 passed --bridge and no --data-root.
        let argv: Vec<String> = "--instance dy1 --bridge dy1_docker0 --bridge-cidr 172.22.147.1/24 --fixed-cidr 172.22.147.0/24 --pool 172.23.0.0/16"
            .split(' ')
            .map(String::from)
            .collect();
        let n = Network::parse(&Argv(argv.clone())).expect("parses");
        assert_eq!(n.data_root, None);
        let mut wrong = argv;
        wrong[3] = "eth0".into();
        assert_eq!(
            Network::parse(&Argv(wrong)).map_err(|e| e.opt),
            Err("bridge")
        );
    }

    #[test]
    fn bad_values_name_their_option() {
        let mut n = dy1().args();
        let i = n
            .iter()
            .position(|a| a == "172.22.147.0/24")
            .expect("fixed");
        n[i] = "172.22.148.0/24".into();
        let e = Network::parse(&Argv(n)).expect_err("outside the bridge");
        assert_eq!(e.opt, "fixed-cidr");
        assert!(e.message.contains("not inside the bridge network"), "{e}");
        for (from, to, opt) in [
            ("dy1", "Dy1", "instance"),
            ("172.22.147.1/24", "172.22.147.0/24", "bridge-cidr"),
            ("172.23.0.0/16", "172.23.1.0/16", "pool"),
            ("172.20.1.0/24", "banana", "allow-from"),
            ("/var/lib/dockyard/dy1/docker", "/x/../etc", "data-root"),
        ] {
            let argv: Vec<String> = dy1()
                .args()
                .into_iter()
                .map(|a| if a == from { to.to_string() } else { a })
                .collect();
            assert_eq!(
                Network::parse(&Argv(argv)).map_err(|e| e.opt),
                Err(opt),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn paths_are_normalised_and_bounded() {
        let opt = prepare::ROOT;
        assert_eq!(
            abs_path(opt, "/srv//dy1/./x/"),
            Ok(PathBuf::from("/srv/dy1/x"))
        );
        for bad in ["dy1", "", "/", "//", "/dy1/../etc", "./x"] {
            assert!(abs_path(opt, bad).is_err(), "{bad:?}");
        }
    }
}

/// `dockyard-prepare refused`: the ExecStart= of the unit the generator
/// writes for a conf it refused. The diagnostics are fixed when the unit is
/// generated, so a start shows exactly what `daemon-reload` saw, as
/// systemd's own messages about a bad unit setting do.
pub mod refused {
    use super::*;

    pub const ACTION: &str = "refused";
    pub const CONF: Opt = once("conf");
    pub const DIAGNOSTIC: Opt = many("diagnostic");
    pub const OPTIONS: &[Opt] = &[INSTANCE, CONF, DIAGNOSTIC];

    /// What the refused unit passes to the helper.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Refused {
        pub instance: InstanceName,
        pub conf: PathBuf,
        /// `path:line: error: message` lines, in reading order.
        pub diagnostics: Vec<String>,
    }

    impl Refused {
        /// The helper's command line after the program and the action.
        pub fn args(&self) -> Vec<String> {
            let mut args = vec![
                format!("--{}", INSTANCE.name),
                self.instance.to_string(),
                format!("--{}", CONF.name),
                self.conf.to_string_lossy().into_owned(),
            ];
            for d in &self.diagnostics {
                args.push(format!("--{}", DIAGNOSTIC.name));
                args.push(d.clone());
            }
            args
        }

        pub fn parse(from: &dyn Values) -> Result<Refused, BadValue> {
            Ok(Refused {
                instance: instance(from)?,
                conf: abs_path(CONF, required(from, CONF)?)?,
                diagnostics: from
                    .values(DIAGNOSTIC)
                    .into_iter()
                    .map(String::from)
                    .collect(),
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        struct Args(Vec<(&'static str, String)>);
        impl Values for Args {
            fn values(&self, opt: Opt) -> Vec<&str> {
                self.0
                    .iter()
                    .filter(|(k, _)| *k == opt.name)
                    .map(|(_, v)| v.as_str())
                    .collect()
            }
        }

        #[test]
        fn round_trip() {
            let r = Refused {
                instance: InstanceName::parse("dy1").expect("name"),
                conf: PathBuf::from("/etc/dockyard/instances.d/dy1.conf"),
                diagnostics: vec!["a:1: error: x".into(), "a:2: warning: y".into()],
            };
            let args = r.args();
            let pairs: Vec<(&'static str, String)> = args
                .chunks(2)
                .map(|kv| {
                    let name = OPTIONS
                        .iter()
                        .find(|o| kv[0] == format!("--{}", o.name))
                        .expect("known option")
                        .name;
                    (name, kv[1].clone())
                })
                .collect();
            assert_eq!(Refused::parse(&Args(pairs)), Ok(r));
        }
    }
}

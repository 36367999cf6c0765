//! Rendering units from validated instances. Pure functions: text in, text
//! out, so golden tests pin every byte.

use crate::escape::{push_exec_arg, specifiers};
use dockyard_model::contract::network::Network;
use dockyard_model::contract::prepare::{self, Cleanup, Mode};
use dockyard_model::contract::{installed, INSTANCE};
use dockyard_model::engine;
use dockyard_model::paths;
use dockyard_model::Instance;

pub const SYSBOX_MGR_UNIT: &str = "dockyard-sysbox-mgr.service";
pub const SYSBOX_FS_UNIT: &str = "dockyard-sysbox-fs.service";
pub const SYSBOX_CHOWN_UNIT: &str = "dockyard-sysbox-chown.service";
/// Static unit shipped in units/: the parent slice of every instance.
pub const SLICE: &str = "dockyard.slice";
/// The account whose subordinate ids sysbox maps containers to.
pub const SYSBOX_SUBID_USER: &str = "sysbox";
pub const WANTED_BY: &str = "multi-user.target";

/// The base PATH after an instance's bundled binaries: dockerd finds
/// containerd, runc, docker-proxy and docker-init through PATH, so the
/// pinned version's directory must come first.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub name: String,
    pub content: String,
}

/// Everything one generator run produces.
#[derive(Debug, Default)]
pub struct Output {
    pub units: Vec<UnitFile>,
    /// `(target, unit)` pairs: `target.wants/unit` symlinks.
    pub wants: Vec<(String, String)>,
    /// Names of the units in `units` that only say why a conf was refused
    /// ([`refused_unit`]).
    pub refused: Vec<String>,
}

impl Output {
    /// Instances that got a unit that runs them.
    pub fn instance_units(&self) -> usize {
        self.units
            .iter()
            .filter(|u| u.name.ends_with("_docker.service") && !self.refused.contains(&u.name))
            .count()
    }
}

pub fn render(instances: &[Instance], sysbox_version: &str) -> Output {
    let mut out = Output {
        units: dockyard_model::parallel::par_map(instances, |inst| {
            let mut units = vec![
                UnitFile {
                    name: inst.name.unit(),
                    content: instance_unit(inst, sysbox_version),
                },
                slice_unit(inst),
            ];
            // A rootless dockerd starts its own containerd, in its user
            // namespace: no unit of the host's can run one there.
            if !inst.rootless {
                units.push(containerd_unit(inst));
            }
            units
        })
        .into_iter()
        .flatten()
        .collect(),
        wants: Vec::new(),
        refused: Vec::new(),
    };
    for inst in instances.iter().filter(|i| i.autostart) {
        out.wants.push((WANTED_BY.to_string(), inst.name.unit()));
    }
    if instances.iter().any(Instance::uses_sysbox) {
        out.units.extend(sysbox_units(sysbox_version));
    }
    out.units.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Every string an instance's unit needs, computed once: the same values
/// appear in several command lines (start and stop must match), and
/// formatting addresses is the costliest part of rendering 1000 units.
pub struct Values<'a> {
    pub inst: &'a Instance,
    pub name: &'a str,
    pub account: String,
    pub bridge_if: String,
    pub fixed: String,
    pub pool: String,
    pub exec_root: String,
    pub config_file: String,
    pub bin_dir: String,
    pub network: Network,
    pub cleanup: Cleanup,
}

impl<'a> Values<'a> {
    pub fn new(inst: &'a Instance) -> Self {
        let exec_root = inst.name.exec_root();
        Values {
            inst,
            name: inst.name.as_str(),
            account: inst.name.account(),
            bridge_if: inst.name.bridge(),
            fixed: inst.fixed.to_string(),
            pool: inst.pool.to_string(),
            config_file: inst.config_file(),
            cleanup: Cleanup {
                instance: inst.name.clone(),
                root: inst.root.clone().into(),
                exec_root: exec_root.clone().into(),
            },
            exec_root,
            bin_dir: paths::docker_bin_dir(&inst.docker_version),
            network: inst.network(),
        }
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The helper command lines (dockyard_model::contract), shared by the
/// start and stop paths so both always carry the same values.
pub fn network_args(v: &Values<'_>, action: &str) -> Vec<String> {
    let mut args = vec![paths::helper("dockyard-network"), action.to_string()];
    args.extend(v.network.args());
    args
}

fn flag(opt: dockyard_model::contract::Opt) -> String {
    format!("--{}", opt.name)
}

pub fn prepare_up_args(v: &Values<'_>) -> Vec<String> {
    let mut args = vec![paths::helper("dockyard-prepare"), "up".to_string()];
    args.extend(v.cleanup.args());
    args.extend([
        flag(prepare::USER),
        v.account.clone(),
        flag(prepare::GROUP),
        v.account.clone(),
        flag(prepare::CONFIG_FILE),
        v.config_file.clone(),
    ]);
    if v.inst.rootless {
        args.extend([flag(prepare::MODE), Mode::Rootless.as_str().to_string()]);
    }
    // What this engine and runtime store images in (dockyard.conf(5),
    // IMAGE STORE); the helper keeps a data root's graph driver.
    if let Some(store) = engine::image_store(v.inst.runtime, &v.inst.docker_version) {
        args.push(flag(prepare::IMAGE_STORE));
        args.push(store.as_str().to_string());
    }
    for opt in &v.inst.daemon_options {
        args.push(flag(prepare::DAEMON_OPTION));
        let mut kv = String::with_capacity(opt.key.len() + opt.json.len() + 1);
        kv.push_str(&opt.key);
        kv.push('=');
        kv.push_str(&opt.json);
        args.push(kv);
    }
    args
}

/// The instance's first step: the store holds its Docker version (and
/// sysbox, for Runtime=sysbox-runc), else it fails saying what to install.
pub fn installed_args(v: &Values<'_>, sysbox_version: &str) -> Vec<String> {
    let needs = installed::Needs {
        instance: v.inst.name.clone(),
        docker_version: v.inst.docker_version.clone(),
        sysbox_version: v.inst.uses_sysbox().then(|| sysbox_version.to_string()),
        rootless: v.inst.rootless,
    };
    let mut args = vec![paths::helper("dockyard-prepare"), "installed".to_string()];
    args.extend(needs.args());
    args
}

/// Once dockerd is up: its steady daemon.json (`dockyard-prepare started`,
/// dockyard-helper(8)).
pub fn prepare_started_args(v: &Values<'_>) -> Vec<String> {
    let mut args = vec![
        paths::helper("dockyard-prepare"),
        "started".to_string(),
        flag(INSTANCE),
        v.name.to_string(),
        flag(prepare::CONFIG_FILE),
        v.config_file.clone(),
    ];
    // A rootless instance's socket gets its owner from outside.
    if v.inst.rootless {
        args.extend([
            flag(prepare::MODE),
            Mode::Rootless.as_str().to_string(),
            flag(prepare::ROOT),
            v.inst.root.clone(),
            flag(prepare::USER),
            v.account.clone(),
        ]);
    }
    args
}

pub fn prepare_down_args(v: &Values<'_>) -> Vec<String> {
    let mut args = vec![paths::helper("dockyard-prepare"), "down".to_string()];
    args.extend(v.cleanup.args());
    args
}

/// dockerd's command line: every per-instance path and network, so that no
/// two instances share anything and none reads /etc/docker/daemon.json.
pub fn dockerd_args(v: &Values<'_>, sysbox_version: &str) -> Vec<String> {
    let inst = v.inst;
    let mut args = owned(&[
        &format!("{}/dockerd", v.bin_dir),
        "--config-file",
        &v.config_file,
        "--data-root",
        &inst.data_root(),
        "--exec-root",
        &v.exec_root,
        // Its own containerd: without this flag dockerd uses any containerd
        // listening at /run/containerd/containerd.sock, the host's.
        "--containerd",
        &inst.name.containerd_socket(),
        "--pidfile",
        &inst.pidfile(),
        "--host",
        &format!("unix://{}", inst.socket()),
        "--group",
        &v.account,
        "--bridge",
        &v.bridge_if,
        "--fixed-cidr",
        &v.fixed,
        "--default-address-pool",
        &format!("base={},size={}", v.pool, inst.pool_size),
        // Dockyard owns the firewall: with iptables on, every dockerd would
        // flush the host-global DOCKER chains of the others.
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        "--containerd-namespace",
        v.name,
        "--containerd-plugins-namespace",
        &format!("{}-plugins", v.name),
        // Containers go into the instance's slice, below its limits. The
        // systemd driver puts them there on every host; with cgroupfs
        // (dockerd's choice on cgroup v1) the parent would be a directory
        // of that name at the top of the tree, outside the slice.
        "--exec-opt",
        "native.cgroupdriver=systemd",
        "--cgroup-parent",
        &inst.name.container_slice(),
    ]);
    if inst.uses_sysbox() {
        args.extend(owned(&[
            "--add-runtime",
            &format!(
                "sysbox-runc={}/sysbox-runc",
                paths::sysbox_bin_dir(sysbox_version)
            ),
            "--default-runtime",
            "sysbox-runc",
        ]));
    }
    args
}

/// A rootless instance's `ExecStart=`: root becomes the instance's user
/// (`dockyard-prepare run-as`), which becomes rootlesskit; rootlesskit
/// makes the user, mount and network namespaces and runs
/// `dockyard-prepare in-namespace`, which becomes dockerd. rootlesskit's
/// flags are dockerd-rootless.sh's: slirp4netns with its sandbox and
/// seccomp filter where the host allows them, no access to the host's
/// loopback, published ports through rootlesskit's own port driver, and
/// private copies of /etc and /run.
pub fn rootless_start_args(v: &Values<'_>) -> Vec<String> {
    let prepare = paths::helper("dockyard-prepare");
    let mut args = vec![
        prepare.clone(),
        prepare::RUN_AS.to_string(),
        flag(prepare::USER),
        v.account.clone(),
    ];
    if v.inst.bind_privileged_ports {
        args.extend([
            flag(prepare::KEEP_CAPABILITY),
            prepare::NET_BIND_SERVICE.to_string(),
        ]);
    }
    args.extend([
        prepare::COMMAND_SEPARATOR.to_string(),
        format!("{}/rootlesskit", v.bin_dir),
        format!(
            "--state-dir={}/rootlesskit",
            v.inst.name.rootless_runtime_dir()
        ),
        "--net=slirp4netns".to_string(),
        "--mtu=65520".to_string(),
        "--slirp4netns-sandbox=auto".to_string(),
        "--slirp4netns-seccomp=auto".to_string(),
        "--disable-host-loopback".to_string(),
        "--port-driver=builtin".to_string(),
        "--copy-up=/etc".to_string(),
        "--copy-up=/run".to_string(),
        "--propagation=rslave".to_string(),
        prepare,
        prepare::IN_NAMESPACE.to_string(),
        prepare::COMMAND_SEPARATOR.to_string(),
    ]);
    args.extend(rootless_dockerd_args(v));
    args
}

/// A rootless dockerd: the same per-instance paths as a rootful one; its
/// networks inside its own network namespace (its default bridge is that
/// namespace's docker0, with BridgeCIDR=); its own containerd, started by
/// dockerd below its exec root; and dockerd's own iptables rules, which
/// there are the namespace's and nobody else's.
pub fn rootless_dockerd_args(v: &Values<'_>) -> Vec<String> {
    let inst = v.inst;
    owned(&[
        &format!("{}/dockerd", v.bin_dir),
        "--config-file",
        &v.config_file,
        "--data-root",
        &inst.data_root(),
        "--exec-root",
        &inst.dockerd_exec_root(),
        "--pidfile",
        &inst.pidfile(),
        "--host",
        &format!("unix://{}", inst.socket()),
        // Resolved in the user namespace, whose root group is the
        // instance's group on the host; `prepare started` checks it.
        "--group",
        "root",
        "--bip",
        &inst.bridge.to_string(),
        "--fixed-cidr",
        &v.fixed,
        "--default-address-pool",
        &format!("base={},size={}", v.pool, inst.pool_size),
        // Not systemd's driver, which a rootless dockerd on cgroup v2
        // picks by default and which needs the user's own systemd (`systemd
        // --user`, a login session): system users have none. Containers
        // stay in the instance's unit, below its slice's limits.
        "--exec-opt",
        "native.cgroupdriver=cgroupfs",
    ])
}

/// Renders a long command line with one option per continuation line; the
/// program and its positional arguments (the helper's action) stay first,
/// and an option stays on one line with its value.
fn exec_directive(out: &mut String, directive: &str, args: &[String]) {
    out.push_str(directive);
    out.push('=');
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            let starts_line = arg.starts_with("--");
            let after_option =
                !starts_line && args[i - 1].starts_with("--") && !args[i - 1].contains('=');
            if starts_line && !after_option {
                out.push_str(" \\\n\t");
            } else {
                out.push(' ');
            }
        }
        push_exec_arg(out, arg);
    }
    out.push('\n');
}

/// Appends `key=value\n` with specifiers escaped in the value.
fn line(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('=');
    if value.contains('%') {
        out.push_str(&specifiers(value));
    } else {
        out.push_str(value);
    }
    out.push('\n');
}

fn instance_unit(inst: &Instance, sysbox_version: &str) -> String {
    let v = Values::new(inst);
    let mut u = String::with_capacity(4096);
    u.push_str("# Automatically generated by dockyard-generator from ");
    u.push_str(&inst.conf.to_string_lossy());
    u.push('\n');
    for dropin in &inst.dropins {
        u.push_str("# and its drop-in ");
        u.push_str(&dropin.to_string_lossy());
        u.push('\n');
    }
    u.push_str("# Do not edit: change the conf (see dockyard.conf(5)) and run `systemctl daemon-reload`.\n\n");

    u.push_str("[Unit]\n");
    line(
        &mut u,
        "Description",
        &format!(
            "Dockyard Docker instance {}{}",
            v.name,
            if inst.rootless { " (rootless)" } else { "" }
        ),
    );
    u.push_str("Documentation=man:dockyard.conf(5) man:dockyard-generator(8)\n");
    line(&mut u, "SourcePath", &inst.conf.to_string_lossy());
    u.push_str("Wants=network-online.target\n");
    u.push_str("After=network-online.target nss-lookup.target firewalld.service time-set.target\n");
    if !inst.rootless {
        // Wants=, not Requires=: restarting the containerd must not restart
        // dockerd (its containers keep running through containerd's shims).
        // After= for the stop: dockerd stops its containers through
        // containerd, so containerd goes last. The start waits only for
        // containerd's exec (its unit is Type=exec).
        line(&mut u, "Wants", &inst.name.containerd_unit());
        line(&mut u, "After", &inst.name.containerd_unit());
    }
    if inst.uses_sysbox() {
        // Wants= + PartOf=, not Requires=: a shared sysbox unit that fails
        // to start must not fail this job as "a dependency" before its own
        // first step can say why (`dockyard-prepare installed`); stopping
        // or restarting sysbox still stops or restarts the instance.
        u.push_str(concat!(
            "Wants=dockyard-sysbox-mgr.service dockyard-sysbox-fs.service dockyard-sysbox-chown.service\n",
            "PartOf=dockyard-sysbox-mgr.service dockyard-sysbox-fs.service\n",
            "After=dockyard-sysbox-mgr.service dockyard-sysbox-fs.service dockyard-sysbox-chown.service\n",
        ));
    }
    line(&mut u, "RequiresMountsFor", &inst.root);
    u.push_str("StartLimitBurst=3\nStartLimitIntervalSec=60\n\n");

    u.push_str("[Service]\n");
    u.push_str("# dockerd reports READY=1 itself once its API answers.\n");
    u.push_str("Type=notify\n");
    if inst.rootless {
        u.push_str("# From inside rootlesskit, two processes below the main one.\n");
        u.push_str("NotifyAccess=all\n");
    }
    line(&mut u, "Slice", &inst.name.container_slice());
    u.push_str("Environment=");
    push_exec_arg(&mut u, &format!("PATH={}:{SYSTEM_PATH}", v.bin_dir));
    u.push('\n');
    if inst.rootless {
        // dockerd's and rootlesskit's output under dockerd's name, as a
        // rootful instance's (the helpers log under their own).
        u.push_str("SyslogIdentifier=dockerd\n");
        // rootlesskit and a rootless dockerd take their defaults from it.
        u.push_str("Environment=");
        push_exec_arg(
            &mut u,
            &format!("XDG_RUNTIME_DIR={}", inst.name.rootless_runtime_dir()),
        );
        u.push('\n');
    }
    line(&mut u, "RuntimeDirectory", &v.account);
    if inst.rootless {
        // Its user goes through to the directory it owns below.
        u.push_str("RuntimeDirectoryMode=0711\n");
    } else {
        u.push_str("RuntimeDirectoryMode=0700\n");
    }
    u.push_str("# Fails saying what to install while the store lacks what this unit runs.\n");
    exec_directive(&mut u, "ExecStartPre", &installed_args(&v, sysbox_version));
    exec_directive(&mut u, "ExecStartPre", &prepare_up_args(&v));
    let mut up = network_args(&v, "up");
    up.extend(dockyard_model::contract::network::accept_host_route_args(
        &inst.accept_host_routes,
    ));
    exec_directive(&mut u, "ExecStartPre", &up);
    if inst.rootless {
        u.push_str(concat!(
            "# As the instance's user: rootlesskit, in whose user namespace dockerd\n",
            "# (\"--group root\" there is the instance's group here) and its containerd\n",
            "# run (dockyard.conf(5), ROOTLESS).\n",
        ));
        exec_directive(&mut u, "ExecStart", &rootless_start_args(&v));
    } else {
        exec_directive(&mut u, "ExecStart", &dockerd_args(&v, sysbox_version));
    }
    exec_directive(&mut u, "ExecStartPost", &prepare_started_args(&v));
    // rootlesskit passes the signal on to dockerd.
    u.push_str("ExecReload=/bin/kill -s HUP $MAINPID\n");
    exec_directive(&mut u, "ExecStopPost", &network_args(&v, "down"));
    exec_directive(&mut u, "ExecStopPost", &prepare_down_args(&v));
    u.push_str(concat!(
        "# As Docker's own unit: dockerd may take long to restore containers.\n",
        "TimeoutStartSec=0\n",
        "Restart=always\n",
        "RestartSec=2\n",
        "# Not after \"not installed\": a retry would change nothing and push\n",
        "# the message saying what to install out of `systemctl status`.\n",
    ));
    line(
        &mut u,
        "RestartPreventExitStatus",
        &dockyard_model::contract::installed::EXIT_NOT_INSTALLED.to_string(),
    );
    u.push_str(concat!(
        "# SIGTERM to dockerd, which stops the containers; whatever else is left\n",
        "# in the unit is killed at the end.\n",
        "KillMode=mixed\n",
        "Delegate=yes\n",
        "LimitNOFILE=infinity\n",
        "LimitNPROC=infinity\n",
        "LimitCORE=infinity\n",
        "TasksMax=infinity\n",
        "OOMScoreAdjust=-500\n",
    ));
    u
}

/// The instance's containerd, on its own socket, root and state, so that no
/// instance ever shares the host's containerd (or another instance's).
/// Settings as containerd's own unit: its shims, and with them the
/// containers, outlive a restart of containerd (KillMode=process).
fn containerd_unit(inst: &Instance) -> UnitFile {
    let name = &inst.name;
    let bin = paths::docker_bin_dir(&inst.docker_version);
    let mut u = String::with_capacity(1536);
    u.push_str("# Automatically generated by dockyard-generator from ");
    u.push_str(&inst.conf.to_string_lossy());
    u.push_str("\n# Do not edit: change the conf (see dockyard.conf(5)) and run `systemctl daemon-reload`.\n\n");
    u.push_str("[Unit]\n");
    line(
        &mut u,
        "Description",
        &format!("Dockyard containerd of instance {name}"),
    );
    u.push_str("Documentation=man:dockyard-generator(8)\n");
    line(&mut u, "SourcePath", &inst.conf.to_string_lossy());
    u.push_str("# Started by the instance, stopped with it.\n");
    line(&mut u, "PartOf", &name.unit());
    u.push_str("StopWhenUnneeded=yes\n");
    u.push_str("After=network.target local-fs.target\n");
    line(&mut u, "RequiresMountsFor", &inst.root);
    line(
        &mut u,
        "AssertFileIsExecutable",
        &format!("{bin}/containerd"),
    );
    line(&mut u, "AssertFileNotEmpty", &paths::containerd_config());
    u.push_str(concat!(
        "\n[Service]\n",
        "# Started once exec'd, not once it answers: dockerd waits for the socket\n",
        "# itself (up to 60 s), so the instance's helpers run while this one starts.\n",
        "Type=exec\n",
    ));
    line(&mut u, "Slice", &name.container_slice());
    u.push_str("Environment=");
    push_exec_arg(&mut u, &format!("PATH={bin}:{SYSTEM_PATH}"));
    u.push('\n');
    line(
        &mut u,
        "RuntimeDirectory",
        &format!("{}_containerd", name.as_str()),
    );
    u.push_str("RuntimeDirectoryMode=0700\n");
    u.push_str("# The shims of running containers keep their state there.\n");
    u.push_str("RuntimeDirectoryPreserve=restart\n");
    exec_directive(
        &mut u,
        "ExecStart",
        &owned(&[
            &format!("{bin}/containerd"),
            "--config",
            &paths::containerd_config(),
            "--address",
            &name.containerd_socket(),
            "--root",
            &format!("{}/containerd/daemon", inst.data_root()),
            "--state",
            &name.containerd_run_dir(),
        ]),
    );
    u.push_str(CONTAINERD_SERVICE);
    UnitFile {
        name: name.containerd_unit(),
        content: u,
    }
}

/// On in every instance slice, so the figures exist whatever the host's
/// defaults (`DefaultMemoryAccounting=` and the like).
const SLICE_ACCOUNTING: &str =
    "MemoryAccounting=yes\nCPUAccounting=yes\nTasksAccounting=yes\nIOAccounting=yes\n";

/// The instance's slice: its dockerd, its containerd and the shims, and
/// the containers (dockerd's `--cgroup-parent`), so `[Resources]` limit
/// the whole instance. Accounting is on so `dockyard status` can read the
/// figures. Admins change a limit live with `systemctl set-property` or
/// `systemctl edit`: their drop-ins in /etc win over this file.
fn slice_unit(inst: &Instance) -> UnitFile {
    let name = &inst.name;
    let slice = name.container_slice();
    let mut u = String::with_capacity(1024);
    u.push_str("# Automatically generated by dockyard-generator from ");
    u.push_str(&inst.conf.to_string_lossy());
    u.push_str("\n# [Resources] of the conf; `systemctl set-property ");
    u.push_str(&slice);
    u.push_str(" MemoryMax=…` changes a limit\n# live and keeps it over this file (dockyard.conf(5) RESOURCES).\n\n");
    u.push_str("[Unit]\n");
    line(
        &mut u,
        "Description",
        &format!("Dockyard instance {name}: its daemons and containers"),
    );
    u.push_str("Documentation=man:dockyard.conf(5)\n");
    line(&mut u, "SourcePath", &inst.conf.to_string_lossy());
    u.push_str("\n[Slice]\n");
    u.push_str(SLICE_ACCOUNTING);
    // As written, not through `line`: systemd reads these settings without
    // specifiers (CPUQuota=150% stays 150%), and the model admits only
    // digits, '.', '%', ',', '-', spaces, size suffixes and "infinity".
    for limit in &inst.resources {
        u.push_str(limit.key);
        u.push('=');
        u.push_str(&limit.value);
        u.push('\n');
    }
    UnitFile {
        name: slice,
        content: u,
    }
}

const CONTAINERD_SERVICE: &str = "\
Restart=always
RestartSec=2
Delegate=yes
KillMode=process
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999
";

const SYSBOX_HEADER: &str = "# Automatically generated by dockyard-generator: one per host, shared by every\n# instance with Runtime=sysbox-runc (sysbox's sockets are fixed paths).\n# Started with the first such instance, stopped after the last one stops.\n\n";

fn sysbox_units(version: &str) -> Vec<UnitFile> {
    let bin = paths::sysbox_bin_dir(version);
    let data = paths::SYSBOX_DATA_DIR;
    let state_dir = data.trim_start_matches("/var/lib/");
    let daemon = |name: &str, description: &str, extra_unit: &str, pre: &str, args: &str| {
        format!(
            "{SYSBOX_HEADER}[Unit]\n\
             Description={description} ({name} {version})\n\
             Documentation=man:dockyard-generator(8)\n\
             {extra_unit}\
             StopWhenUnneeded=yes\n\
             AssertFileIsExecutable={bin}/{name}\n\n\
             [Service]\n\
             Type=notify\n\
             NotifyAccess=main\n\
             Slice={SLICE}\n\
             Environment=PATH={bin}:{SYSTEM_PATH}\n\
             StateDirectory={state_dir}\n\
             {pre}\
             ExecStart={bin}/{name}{args}\n\
             Restart=on-failure\n\
             TimeoutStartSec=45\n\
             TimeoutStopSec=90\n\
             OOMScoreAdjust=-500\n\
             LimitNOFILE=infinity\n\
             LimitNPROC=infinity\n",
            bin = specifiers(&bin),
        )
    };
    vec![
        UnitFile {
            name: SYSBOX_MGR_UNIT.into(),
            content: daemon(
                "sysbox-mgr",
                "Dockyard shared sysbox manager",
                "",
                &format!(
                    "# sysbox-mgr asks \"the\" Docker daemon (DOCKER_HOST, else\n\
                     # /var/run/docker.sock) whether a container was run with --rm and is\n\
                     # Docker's; with many daemons there is no right one to ask, so it asks\n\
                     # none and falls back to its own checks (dockyard.conf(5), SYSBOX).\n\
                     Environment=DOCKER_HOST=unix://{}\n\
                     # The sysbox user and its /etc/subuid, /etc/subgid ranges, as sysbox's\n\
                     # own package and sysbox-mgr set them up (the watcher reads them).\n\
                     ExecStartPre={} sysbox --subid-user {SYSBOX_SUBID_USER}\n",
                    paths::SYSBOX_MGR_NO_DOCKER,
                    paths::helper("dockyard-prepare")
                ),
                &format!(" --data-root {data}"),
            ),
        },
        UnitFile {
            name: SYSBOX_FS_UNIT.into(),
            content: daemon(
                "sysbox-fs",
                "Dockyard shared sysbox file system",
                &format!("Requires={SYSBOX_MGR_UNIT}\nAfter={SYSBOX_MGR_UNIT}\n"),
                "",
                "",
            ),
        },
        UnitFile {
            name: SYSBOX_CHOWN_UNIT.into(),
            content: format!(
                "{SYSBOX_HEADER}[Unit]\n\
                 Description=Dockyard sysbox ownership watcher\n\
                 Documentation=man:dockyard-generator(8)\n\
                 # Only once sysbox-mgr runs: it is what sets up the ids watched.\n\
                 Requires={SYSBOX_MGR_UNIT}\n\
                 After={SYSBOX_MGR_UNIT}\n\
                 StopWhenUnneeded=yes\n\n\
                 [Service]\n\
                 # READY=1 once it watches {data}.\n\
                 Type=notify\n\
                 Slice={SLICE}\n\
                 StateDirectory={state_dir}\n\
                 ExecStart={} --data-root {data} --subid-user {SYSBOX_SUBID_USER}\n\
                 Restart=on-failure\n",
                paths::helper("dockyard-sysbox-chown"),
            ),
        },
    ]
}

/// The unit of an instance that is running (its bridge exists) but has no
/// valid conf any more: removed, or broken by an edit. Without it, the next
/// `daemon-reload` would drop the unit from under the running dockerd and
/// `systemctl stop` would run no `ExecStopPost=`, leaving its bridge, rules
/// and mounts behind. The conf's values are
/// gone, so the helpers are called with the instance name alone and use
/// what their `up` recorded in /run/dockyard/NAME/. It can only be stopped.
///
/// `conf_exists` says whether the (broken) conf is still there: only then
/// does the unit name it as `SourcePath=`. systemd compares that file's
/// mtime with the unit's at every reload, and a missing file counts as
/// changed, so a removed conf would make every `systemctl` call say
/// "changed on disk, run daemon-reload" for as long as the instance runs.
pub fn remnant_units(
    name: &dockyard_model::name::InstanceName,
    conf: &str,
    conf_exists: bool,
) -> [UnitFile; 3] {
    [
        remnant_unit(name, conf, conf_exists),
        remnant_containerd_unit(name, conf, conf_exists),
        remnant_slice(name, conf),
    ]
}

/// The slice the running instance is in, kept loaded until it stops. Its
/// limits went with the conf; accounting stays, for `dockyard status`.
fn remnant_slice(name: &dockyard_model::name::InstanceName, conf: &str) -> UnitFile {
    let mut u = String::with_capacity(512);
    u.push_str("# Automatically generated by dockyard-generator: the slice of instance ");
    u.push_str(name.as_str());
    u.push_str(",\n# whose conf ");
    u.push_str(conf);
    u.push_str(" is gone or invalid: no [Resources] limits.\n\n[Unit]\n");
    line(
        &mut u,
        "Description",
        &format!("Dockyard instance {name}: its daemons and containers (conf gone)"),
    );
    u.push_str("Documentation=man:dockyard.conf(5)\n\n[Slice]\n");
    u.push_str(SLICE_ACCOUNTING);
    UnitFile {
        name: name.container_slice(),
        content: u,
    }
}

/// The containerd of such an instance, kept so that it still stops with it.
fn remnant_containerd_unit(
    name: &dockyard_model::name::InstanceName,
    conf: &str,
    conf_exists: bool,
) -> UnitFile {
    let mut u = String::with_capacity(768);
    u.push_str("# Automatically generated by dockyard-generator: the containerd of instance ");
    u.push_str(name.as_str());
    u.push_str(",\n# whose conf ");
    u.push_str(conf);
    u.push_str(" is gone or invalid. It only stops with the instance.\n\n[Unit]\n");
    line(
        &mut u,
        "Description",
        &format!("Dockyard containerd of instance {name} (conf gone: stop to clean up)"),
    );
    u.push_str("Documentation=man:dockyard-generator(8)\n");
    if conf_exists {
        line(&mut u, "SourcePath", conf);
    }
    line(&mut u, "PartOf", &name.unit());
    u.push_str("StopWhenUnneeded=yes\nRefuseManualStart=yes\n\n[Service]\nType=notify\n");
    // Where the running containerd is: a slice cannot change under it.
    line(&mut u, "Slice", &name.container_slice());
    line(
        &mut u,
        "RuntimeDirectory",
        &format!("{}_containerd", name.as_str()),
    );
    u.push_str("RuntimeDirectoryMode=0700\nExecStart=/bin/false\n");
    u.push_str(
        CONTAINERD_SERVICE
            .replace("Restart=always\nRestartSec=2\n", "Restart=no\n")
            .as_str(),
    );
    UnitFile {
        name: name.containerd_unit(),
        content: u,
    }
}

fn remnant_unit(
    name: &dockyard_model::name::InstanceName,
    conf: &str,
    conf_exists: bool,
) -> UnitFile {
    let n = name.as_str();
    let mut u = String::with_capacity(1024);
    u.push_str("# Automatically generated by dockyard-generator: instance ");
    u.push_str(n);
    u.push_str(" is running (bridge ");
    u.push_str(&name.bridge());
    u.push_str(" exists)\n# but ");
    u.push_str(conf);
    u.push_str(" is gone or invalid. This unit only stops it and cleans up;\n");
    u.push_str(
        "# restore the conf and run `systemctl daemon-reload` to get the full unit back.\n\n",
    );
    u.push_str("[Unit]\n");
    line(
        &mut u,
        "Description",
        &format!("Dockyard Docker instance {n} (conf gone: stop to clean up)"),
    );
    u.push_str("Documentation=man:dockyard.conf(5) man:dockyard-generator(8)\n");
    if conf_exists {
        line(&mut u, "SourcePath", conf);
    }
    u.push_str("# Never started from here: its settings are gone with the conf.\n");
    u.push_str("RefuseManualStart=yes\n");
    line(&mut u, "Wants", &name.containerd_unit());
    line(&mut u, "After", &name.containerd_unit());
    u.push_str("\n[Service]\nType=notify\n");
    // Where the running dockerd is: a slice cannot change under it.
    line(&mut u, "Slice", &name.container_slice());
    // As the full unit: systemd removes /run/NAME_docker when it stops.
    line(&mut u, "RuntimeDirectory", &name.account());
    u.push_str("RuntimeDirectoryMode=0700\n");
    u.push_str("ExecStart=/bin/false\n");
    for helper in ["dockyard-network", "dockyard-prepare"] {
        exec_directive(
            &mut u,
            "ExecStopPost",
            &owned(&[&paths::helper(helper), "down", "--instance", n]),
        );
    }
    u.push_str("Restart=no\nKillMode=mixed\nDelegate=yes\n");
    UnitFile {
        name: name.unit(),
        content: u,
    }
}

/// At most this many diagnostics go into a refused conf's unit; the rest
/// are one `dockyard check` away.
const REFUSED_MAX_DIAGNOSTICS: usize = 20;

/// The unit of an instance whose conf was refused (and that is not
/// running): without it `systemctl start NAME_docker` says only "Unit not
/// found" and the reason is in a boot log nobody reads. This one is
/// loaded, names the conf as its `SourcePath=` (so an edit makes systemd
/// itself suggest `daemon-reload`), and its start fails with the conf's
/// `file:line` messages in its journal, through `dockyard-prepare refused`
/// (dockyard-helper(8)): no shell, and the messages are those of this
/// generator run, not of a later edit. Not wanted by any target: a refused
/// conf does not fail the boot, it shows where the admin looks.
pub fn refused_unit(refused: &dockyard_model::contract::refused::Refused) -> UnitFile {
    let name = &refused.instance;
    let conf = refused.conf.to_string_lossy();
    let mut u = String::with_capacity(1024);
    u.push_str("# Automatically generated by dockyard-generator: ");
    u.push_str(&conf);
    u.push_str(" was refused,\n# so instance ");
    u.push_str(name.as_str());
    u.push_str(" has no unit. Starting this one logs why and fails.\n");
    u.push_str("# Fix the conf (`dockyard check` shows the same messages), then run `systemctl daemon-reload`.\n\n");
    u.push_str("[Unit]\n");
    line(
        &mut u,
        "Description",
        &format!(
            "Dockyard Docker instance {name} (conf refused: see systemctl status {})",
            name.unit()
        ),
    );
    u.push_str("Documentation=man:dockyard.conf(5) man:dockyard-generator(8)\n");
    line(&mut u, "SourcePath", &conf);
    u.push_str("\n[Service]\nType=oneshot\n");
    let mut shown = refused.clone();
    if shown.diagnostics.len() > REFUSED_MAX_DIAGNOSTICS {
        let more = shown.diagnostics.len() - REFUSED_MAX_DIAGNOSTICS;
        shown.diagnostics.truncate(REFUSED_MAX_DIAGNOSTICS);
        shown.diagnostics.push(format!(
            "{conf}: and {more} more: run `dockyard check {conf}`"
        ));
    }
    let mut args = vec![
        paths::helper("dockyard-prepare"),
        dockyard_model::contract::refused::ACTION.to_string(),
    ];
    args.extend(shown.args());
    exec_directive(&mut u, "ExecStart", &args);
    UnitFile {
        name: name.unit(),
        content: u,
    }
}

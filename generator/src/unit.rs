//! Rendering units from validated instances. Pure functions: text in, text
//! out, so golden tests pin every byte.

use crate::escape::{exec_line, specifiers};
use dockyard_model::paths;
use dockyard_model::Instance;
use std::fmt::Write as _;

pub const SYSBOX_MGR_UNIT: &str = "dockyard-sysbox-mgr.service";
pub const SYSBOX_FS_UNIT: &str = "dockyard-sysbox-fs.service";
pub const SYSBOX_CHOWN_UNIT: &str = "dockyard-sysbox-chown.service";
/// Static unit shipped in units/: the parent slice of every instance.
pub const SLICE: &str = "dockyard.slice";
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
}

pub fn render(instances: &[Instance], sysbox_version: &str) -> Output {
    let mut out = Output::default();
    for inst in instances {
        out.units.push(UnitFile {
            name: inst.name.unit(),
            content: instance_unit(inst, sysbox_version),
        });
        if inst.autostart {
            out.wants.push((WANTED_BY.to_string(), inst.name.unit()));
        }
    }
    if instances.iter().any(Instance::uses_sysbox) {
        out.units.extend(sysbox_units(sysbox_version));
    }
    out.units.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The helper command lines (the contract with helpers/), shared by the
/// start and stop paths so both always carry the same values.
pub fn network_args(inst: &Instance, action: &str) -> Vec<String> {
    vec![
        paths::helper("dockyard-network"),
        action.to_string(),
        "--instance".into(),
        inst.name.to_string(),
        "--bridge".into(),
        inst.name.bridge(),
        "--bridge-cidr".into(),
        inst.bridge.to_string(),
        "--fixed-cidr".into(),
        inst.fixed.to_string(),
        "--pool".into(),
        inst.pool.to_string(),
    ]
}

pub fn prepare_up_args(inst: &Instance) -> Vec<String> {
    let account = inst.name.account();
    let mut args = vec![
        paths::helper("dockyard-prepare"),
        "up".into(),
        "--instance".into(),
        inst.name.to_string(),
        "--user".into(),
        account.clone(),
        "--group".into(),
        account,
        "--root".into(),
        inst.root.clone(),
        "--exec-root".into(),
        inst.name.exec_root(),
        "--config-file".into(),
        inst.config_file(),
    ];
    for opt in &inst.daemon_options {
        args.push("--daemon-option".into());
        args.push(format!("{}={}", opt.key, opt.json));
    }
    args
}

pub fn prepare_down_args(inst: &Instance) -> Vec<String> {
    vec![
        paths::helper("dockyard-prepare"),
        "down".into(),
        "--instance".into(),
        inst.name.to_string(),
        "--root".into(),
        inst.root.clone(),
        "--exec-root".into(),
        inst.name.exec_root(),
    ]
}

/// dockerd's command line: every per-instance path and network, so that no
/// two instances share anything and none reads /etc/docker/daemon.json.
pub fn dockerd_args(inst: &Instance, sysbox_version: &str) -> Vec<String> {
    let name = &inst.name;
    let mut args = vec![
        format!("{}/dockerd", paths::docker_bin_dir(&inst.docker_version)),
        "--config-file".into(),
        inst.config_file(),
        "--data-root".into(),
        inst.data_root(),
        "--exec-root".into(),
        name.exec_root(),
        "--pidfile".into(),
        inst.pidfile(),
        "--host".into(),
        format!("unix://{}", inst.socket()),
        "--group".into(),
        name.account(),
        "--bridge".into(),
        name.bridge(),
        "--fixed-cidr".into(),
        inst.fixed.to_string(),
        "--default-address-pool".into(),
        format!("base={},size={}", inst.pool, inst.pool_size),
        // Dockyard owns the firewall: with iptables on, every dockerd would
        // flush the host-global DOCKER chains of the others.
        "--iptables=false".into(),
        "--ip6tables=false".into(),
        "--ip-masq=false".into(),
        "--containerd-namespace".into(),
        name.to_string(),
        "--containerd-plugins-namespace".into(),
        format!("{name}-plugins"),
        "--cgroup-parent".into(),
        name.container_slice(),
    ];
    if inst.uses_sysbox() {
        args.extend(strings(&[
            "--add-runtime",
            &format!("sysbox-runc={}/sysbox-runc", paths::sysbox_bin_dir(sysbox_version)),
            "--default-runtime",
            "sysbox-runc",
        ]));
    }
    args
}

/// Renders a long command line with one option per continuation line; the
/// program and its positional arguments (the helper's action) stay first.
fn exec_directive(out: &mut String, directive: &str, args: &[String]) {
    let _ = write!(out, "{directive}=");
    let mut iter = args.iter().peekable();
    let mut line: Vec<String> = Vec::new();
    while let Some(arg) = iter.next_if(|a| line.is_empty() || !a.starts_with("--")) {
        line.push(arg.clone());
    }
    out.push_str(&exec_line(&line));
    while let Some(arg) = iter.next() {
        let mut group = vec![arg.clone()];
        // Keep an option and its value on one line.
        if !arg.contains('=') {
            if let Some(value) = iter.next_if(|v| !v.starts_with("--")) {
                group.push(value.clone());
            }
        }
        out.push_str(" \\\n\t");
        out.push_str(&exec_line(&group));
    }
    out.push('\n');
}

fn instance_unit(inst: &Instance, sysbox_version: &str) -> String {
    let bin = paths::docker_bin_dir(&inst.docker_version);
    let mut u = String::with_capacity(4096);
    let _ = writeln!(
        u,
        "# Automatically generated by dockyard-generator from {}",
        inst.conf.display()
    );
    for dropin in &inst.dropins {
        let _ = writeln!(u, "# and its drop-in {}", dropin.display());
    }
    u.push_str("# Do not edit: change the conf (see dockyard.conf(5)) and run `systemctl daemon-reload`.\n\n");

    u.push_str("[Unit]\n");
    let _ = writeln!(u, "Description=Dockyard Docker instance {}", inst.name);
    u.push_str("Documentation=man:dockyard.conf(5) man:dockyard-generator(8)\n");
    let _ = writeln!(u, "SourcePath={}", specifiers(&inst.conf.to_string_lossy()));
    u.push_str("Wants=network-online.target\n");
    u.push_str("After=network-online.target nss-lookup.target firewalld.service time-set.target\n");
    if inst.uses_sysbox() {
        let _ = writeln!(u, "Requires={SYSBOX_MGR_UNIT} {SYSBOX_FS_UNIT}");
        let _ = writeln!(u, "Wants={SYSBOX_CHOWN_UNIT}");
        let _ = writeln!(u, "After={SYSBOX_MGR_UNIT} {SYSBOX_FS_UNIT} {SYSBOX_CHOWN_UNIT}");
    }
    let _ = writeln!(u, "RequiresMountsFor={}", specifiers(&inst.root));
    u.push_str("# Fails with a clear message while this Docker version is not installed.\n");
    let _ = writeln!(u, "AssertFileIsExecutable={}", specifiers(&format!("{bin}/dockerd")));
    if inst.uses_sysbox() {
        let _ = writeln!(
            u,
            "AssertFileIsExecutable={}/sysbox-runc",
            specifiers(&paths::sysbox_bin_dir(sysbox_version))
        );
    }
    u.push_str("StartLimitBurst=3\nStartLimitIntervalSec=60\n\n");

    u.push_str("[Service]\n");
    u.push_str("# dockerd reports READY=1 itself once its API answers.\n");
    u.push_str("Type=notify\n");
    let _ = writeln!(u, "Slice={SLICE}");
    let _ = writeln!(u, "Environment={}", exec_line(&[format!("PATH={bin}:{SYSTEM_PATH}")]));
    let _ = writeln!(u, "RuntimeDirectory={}", inst.name.account());
    u.push_str("RuntimeDirectoryMode=0700\n");
    exec_directive(&mut u, "ExecStartPre", &prepare_up_args(inst));
    exec_directive(&mut u, "ExecStartPre", &network_args(inst, "up"));
    exec_directive(&mut u, "ExecStart", &dockerd_args(inst, sysbox_version));
    u.push_str("ExecReload=/bin/kill -s HUP $MAINPID\n");
    exec_directive(&mut u, "ExecStopPost", &network_args(inst, "down"));
    exec_directive(&mut u, "ExecStopPost", &prepare_down_args(inst));
    u.push_str(concat!(
        "# As Docker's own unit: dockerd may take long to restore containers.\n",
        "TimeoutStartSec=0\n",
        "Restart=always\n",
        "RestartSec=2\n",
        "# dockerd runs its own containerd as a child: SIGTERM goes to dockerd,\n",
        "# which stops containerd cleanly; whatever is left is killed at the end.\n",
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

const SYSBOX_HEADER: &str = "# Automatically generated by dockyard-generator: one per host, shared by every\n# instance with Runtime=sysbox-runc (sysbox's sockets are fixed paths).\n# Started with the first such instance, stopped after the last one stops.\n\n";

fn sysbox_units(version: &str) -> Vec<UnitFile> {
    let bin = paths::sysbox_bin_dir(version);
    let data = paths::SYSBOX_DATA_DIR;
    let state_dir = data.trim_start_matches("/var/lib/");
    let daemon = |name: &str, description: &str, extra_unit: &str, args: &str| {
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
            ),
        },
        UnitFile {
            name: SYSBOX_CHOWN_UNIT.into(),
            content: format!(
                "{SYSBOX_HEADER}[Unit]\n\
                 Description=Dockyard sysbox ownership watcher\n\
                 Documentation=man:dockyard-generator(8)\n\
                 After={SYSBOX_MGR_UNIT}\n\
                 StopWhenUnneeded=yes\n\n\
                 [Service]\n\
                 # READY=1 once it watches {data}.\n\
                 Type=notify\n\
                 Slice={SLICE}\n\
                 StateDirectory={state_dir}\n\
                 ExecStart={} --data-root {data} --subid-user sysbox\n\
                 Restart=on-failure\n",
                paths::helper("dockyard-sysbox-chown"),
            ),
        },
    ]
}

//! `dockyard new NAME`: the bash tool's `gen-env`, done right. Picks free
//! networks (see [`alloc`]) in the ranges of the host's policy
//! (dockyard-host.conf(5)) or of its options, refuses a name anything
//! already uses, checks the conf with the model and writes it atomically,
//! all under one lock so that concurrent runs never pick the same
//! networks.

pub mod alloc;
pub mod host;
pub mod tenants;

use crate::confwrite::{self, WriteError};
use crate::error::{Exit, Failure, Result};
use crate::probe::host::{self as probe, SystemctlError};
use alloc::{Allocation, HostNetworks, Taken};
use dockyard_generator::run::{version_defaults, Settings};
use dockyard_model::keys::{self, Section};
use dockyard_model::load::{load_dir, LoadOptions};
use dockyard_model::{
    hostconf, ini, installed, instance, network, paths, root, rootless, InstanceName,
};
use ipnet::Ipv4Net;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the conf was written (and, with --start, the instance started)
  1  failure: no free range left, netlink or I/O error, unwritable directory, systemctl failed
  2  usage error: bad NAME, bad CIDR or other option, a --tenant that is no user of this host,
     a conf the model refuses (--rootless with --runtime sysbox-runc),
     an error in the host's policy file /etc/dockyard/dockyard.conf
  6  refused: --tenant for a rootful instance without --grant-host-root (its group is root on
     the host), something of that name already exists (conf, unit, bridge, user, group or root),
     a network given on the command line is in use, or (with --start) the Docker or sysbox
     version the instance needs is not installed (with --rootless: or rootlesskit, slirp4netns,
     newuidmap, newgidmap or /dev/net/tun)";

/// The lock around read-allocate-write; `DOCKYARD_NEW_LOCK` overrides it.
pub const LOCK_PATH: &str = "/run/dockyard/new.lock";
pub const LOCK_ENV: &str = "DOCKYARD_NEW_LOCK";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Instance name: a lowercase letter, then lowercase letters and digits, at most 7
    pub name: String,
    /// Instance root (data and socket); default /var/lib/dockyard/NAME
    #[arg(long, value_name = "DIR")]
    pub root: Option<String>,
    /// The bridge's address and prefix instead of a picked one, e.g. 172.22.147.1/24
    #[arg(long, value_name = "CIDR")]
    pub bridge_cidr: Option<String>,
    /// The pool for user-defined networks instead of a picked one, e.g. 172.23.0.0/16
    #[arg(long, value_name = "CIDR")]
    pub pool_base: Option<String>,
    /// Prefix length of each network carved from the pool (PoolSize=); default: the host's policy
    #[arg(long, value_name = "N")]
    pub pool_size: Option<u8>,
    /// Container runtime (default sysbox-runc; runc with --rootless)
    #[arg(long, value_parser = ["sysbox-runc", "runc"])]
    pub runtime: Option<String>,
    /// Run dockerd and its containers as the instance's own user in a user namespace
    /// (Rootless=yes), so that its group NAME_docker is not root on the host
    #[arg(long)]
    pub rootless: bool,
    /// A local user the instance is for, added to its group NAME_docker once the group exists
    /// (with --start; repeatable); needs --rootless or --grant-host-root
    #[arg(long, value_name = "USER")]
    pub tenant: Vec<String>,
    /// With --tenant on a rootful instance: add the tenants to its group all the same, knowing
    /// that the group is root on the host
    #[arg(long, requires = "tenant", conflicts_with = "rootless")]
    pub grant_host_root: bool,
    /// Pin a Docker version (DockerVersion=); default: the manifest's
    #[arg(long, value_name = "V")]
    pub docker_version: Option<String>,
    /// Pick both networks inside this range (sets --bridge-range and --pool-range)
    #[arg(long, value_name = "CIDR")]
    pub range: Option<String>,
    /// Pick the bridge network inside this range instead of the policy's BridgeRange=
    #[arg(long, value_name = "CIDR", conflicts_with = "range")]
    pub bridge_range: Option<String>,
    /// Prefix length of the picked bridge network instead of the policy's BridgePrefix=
    #[arg(long, value_name = "N")]
    pub bridge_prefix: Option<u8>,
    /// Pick the pool inside this range instead of the policy's PoolRange=
    #[arg(long, value_name = "CIDR", conflicts_with = "range")]
    pub pool_range: Option<String>,
    /// Prefix length of the picked pool instead of the policy's PoolPrefix=
    #[arg(long, value_name = "N")]
    pub pool_prefix: Option<u8>,
    /// Reload systemd and start the instance after writing its conf
    #[arg(long)]
    pub start: bool,
    /// Print the conf's values and DOCKER_HOST as JSON
    #[arg(long)]
    pub json: bool,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::new(Exit::Usage, message)
}

/// One of the model's checks on a network value.
type NetCheck = fn(&Ipv4Net) -> std::result::Result<(), String>;

fn cidr_flag(flag: &str, value: &str, checks: &[NetCheck]) -> Result<Ipv4Net> {
    let net = network::parse_cidr(value).map_err(|e| usage(format!("{flag} {value}: {e}")))?;
    for check in checks {
        check(&net).map_err(|e| usage(format!("{flag} {value}: {e}")))?;
    }
    Ok(net)
}

/// One of `new`'s prefix options, checked as the policy's keys are.
fn prefix_flag(flag: &str, value: Option<u8>) -> Result<Option<u8>> {
    match value {
        Some(p) if !(network::MIN_PREFIX..=network::MAX_PREFIX).contains(&p) => {
            Err(usage(format!(
                "{flag} {p}: not a prefix length from {} to {}",
                network::MIN_PREFIX,
                network::MAX_PREFIX
            )))
        }
        _ => Ok(value),
    }
}

/// Where this run picks networks: the host's policy file (every default
/// when it is missing), each option overriding its key. A network given
/// outright stands for its own range, so the checks between keys judge
/// what will really be written.
pub fn policy(
    args: &Args,
    host_conf: &Path,
    bridge: Option<Ipv4Net>,
    pool: Option<Ipv4Net>,
) -> Result<hostconf::Allocation> {
    let (conf, diags) = hostconf::load(host_conf);
    if diags.iter().any(|d| d.is_error()) {
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        return Err(usage(format!(
            "the host's policy {} has errors; nothing was written (fix them, then `dockyard check`):\n{}",
            host_conf.display(),
            lines.join("\n")
        )));
    }
    for d in &diags {
        eprintln!("{d}");
    }
    let range_flag = |flag: &str, v: &str| {
        cidr_flag(
            flag,
            v,
            &[network::check_private, network::check_network_address],
        )
    };
    let mut a = conf.allocation;
    if let Some(v) = args.range.as_deref() {
        let r = range_flag("--range", v)?;
        (a.bridge_range, a.pool_range) = (r, r);
    }
    if let Some(v) = args.bridge_range.as_deref() {
        a.bridge_range = range_flag("--bridge-range", v)?;
    }
    if let Some(v) = args.pool_range.as_deref() {
        a.pool_range = range_flag("--pool-range", v)?;
    }
    if let Some(p) = prefix_flag("--bridge-prefix", args.bridge_prefix)? {
        a.bridge_prefix = p;
    }
    if let Some(p) = prefix_flag("--pool-prefix", args.pool_prefix)? {
        a.pool_prefix = p;
    }
    if let Some(s) = args.pool_size {
        a.pool_size = s;
    }
    if let Some(b) = bridge {
        (a.bridge_range, a.bridge_prefix) = (b.trunc(), b.prefix_len());
    }
    if let Some(p) = pool {
        (a.pool_range, a.pool_prefix) = (p, p.prefix_len());
    }
    match a.problems().first() {
        Some((_, problem)) => Err(usage(format!(
            "{problem} (the host's policy {} with the options given)",
            host_conf.display()
        ))),
        None => Ok(a),
    }
}

pub struct Lock {
    _lock: Flock<File>,
}

/// Takes the exclusive lock that serialises read-allocate-write.
pub fn lock(path: &Path) -> Result<Lock> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::io("cannot create the directory of the lock", parent, &e))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Failure::io("cannot open the lock", path, &e))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(l) => return Ok(Lock { _lock: l }),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, errno)) => {
                return Err(Failure::io(
                    "cannot lock",
                    path,
                    &std::io::Error::from_raw_os_error(errno as i32),
                ))
            }
        }
    }
}

/// Every network and root the instances directory already claims: the
/// loader's accepted instances, plus the networks of confs it skipped
/// (an instance with a typo elsewhere still means to use its networks).
pub fn siblings(settings: &Settings) -> (Vec<Taken>, Vec<(String, String)>) {
    let (defaults, _, _) = version_defaults(&settings.manifest_override);
    let catalog = load_dir(&LoadOptions {
        dir: &settings.instances_dir,
        defaults: &defaults,
        sys_class_net: &settings.sys_class_net,
    });
    let mut taken = Vec::new();
    let mut roots = Vec::new();
    for i in &catalog.instances {
        for (key, net) in [(&keys::BRIDGE_CIDR, i.bridge), (&keys::POOL_BASE, i.pool)] {
            let key = key.name;
            taken.push(Taken {
                net: net.trunc(),
                what: format!("{key} {net} of instance {} ({})", i.name, i.conf.display()),
            });
        }
        roots.push((i.root.clone(), i.name.to_string()));
    }
    for skipped in &catalog.skipped {
        if catalog.instances.iter().any(|i| i.conf == skipped.conf) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&skipped.conf) else {
            continue;
        };
        let (doc, _) = ini::parse(&skipped.conf, &text);
        for e in &doc.entries {
            let network_key = [&keys::BRIDGE_CIDR, &keys::POOL_BASE, &keys::FIXED_CIDR]
                .iter()
                .any(|k| Section::parse(&e.section) == Some(k.section) && e.key == k.name);
            if network_key {
                if let Ok(net) = network::parse_cidr(&e.value) {
                    taken.push(Taken {
                        net: net.trunc(),
                        what: format!("{}={} in {} (a conf with errors)", e.key, e.value, e.origin),
                    });
                }
            }
        }
    }
    (taken, roots)
}

pub struct Plan {
    pub name: InstanceName,
    pub root: Option<String>,
    pub allocation: Allocation,
    pub pool_size: Option<u8>,
    pub runtime: Option<String>,
    pub docker_version: Option<String>,
    pub rootless: bool,
}

pub fn conf_text(plan: &Plan) -> String {
    let mut t = format!(
        "# Written by `dockyard new {}`; see dockyard.conf(5).\n[{}]\n",
        plan.name,
        Section::Instance.name()
    );
    let mut set = |key: &keys::Key, value: Option<String>| {
        if let Some(v) = value {
            t.push_str(&key.line(v));
            t.push('\n');
        }
    };
    set(&keys::ROOT, plan.root.clone());
    set(&keys::BRIDGE_CIDR, Some(plan.allocation.bridge.to_string()));
    set(&keys::POOL_BASE, Some(plan.allocation.pool.to_string()));
    set(&keys::POOL_SIZE, plan.pool_size.map(|s| s.to_string()));
    set(&keys::RUNTIME, plan.runtime.clone());
    set(&keys::DOCKER_VERSION, plan.docker_version.clone());
    set(&keys::ROOTLESS, plan.rootless.then(|| "yes".to_string()));
    t
}

/// Checks a conf's text with the model as if it were `path`; returns the
/// instance, or every diagnostic as one message.
pub fn validate(
    settings: &Settings,
    name: &InstanceName,
    path: &Path,
    text: &str,
) -> std::result::Result<(instance::Instance, Vec<String>), String> {
    let (defaults, _, _) = version_defaults(&settings.manifest_override);
    let (doc, mut diags) = ini::parse(path, text);
    let (inst, more) = instance::build(name.clone(), path, Vec::new(), &[doc], &defaults);
    diags.extend(more);
    let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
    match inst {
        Some(i) if !diags.iter().any(|d| d.is_error()) => Ok((i, lines)),
        _ => Err(lines.join("\n")),
    }
}

/// The lock's path: `DOCKYARD_NEW_LOCK`, else [`LOCK_PATH`].
pub fn lock_path() -> PathBuf {
    std::env::var_os(LOCK_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(LOCK_PATH))
}

pub fn run(args: &Args) -> Result<()> {
    let settings = Settings::from_env();
    let lock_path = lock_path();
    // A bad name is a usage error even where netlink is unavailable.
    InstanceName::parse(&args.name).map_err(usage)?;
    let probe = host::Probe {
        instances_dir: settings.instances_dir.clone(),
        unit_dirs: host::UNIT_DIRS.iter().map(PathBuf::from).collect(),
        sys_class_net: settings.sys_class_net.clone(),
        account: host::system_account,
    };
    let mut source: Box<dyn HostNetworks> =
        Box::new(host::NetlinkNetworks::open().map_err(|e| {
            Failure::failed(format!("cannot open a netlink socket to read routes: {e}"))
        })?);
    let outcome = create(args, &settings, &probe, source.as_mut(), &lock_path)?;
    finish(args, &outcome)
}

pub struct Created {
    pub conf: PathBuf,
    pub instance: instance::Instance,
}

/// Everything but starting and printing: validate, lock, probe, allocate,
/// check, write.
pub fn create(
    args: &Args,
    settings: &Settings,
    probe: &host::Probe,
    source: &mut dyn HostNetworks,
    lock_path: &Path,
) -> Result<Created> {
    let name = InstanceName::parse(&args.name).map_err(usage)?;
    let bridge = args
        .bridge_cidr
        .as_deref()
        .map(|v| {
            cidr_flag(
                "--bridge-cidr",
                v,
                &[
                    network::check_prefix,
                    network::check_private,
                    network::check_host_address,
                ],
            )
        })
        .transpose()?;
    let pool = args
        .pool_base
        .as_deref()
        .map(|v| {
            cidr_flag(
                "--pool-base",
                v,
                &[
                    network::check_prefix,
                    network::check_private,
                    network::check_network_address,
                ],
            )
        })
        .transpose()?;
    // Who the instance is for, before anything is read or written: a
    // tenant of a rootful instance would be root on the host.
    tenants::check_mode(&name, &args.tenant, args.rootless, args.grant_host_root)?;
    tenants::check_users(&args.tenant, tenants::user_exists)?;
    let policy = policy(args, &paths::host_conf(), bridge, pool)?;
    if let Some(r) = &args.root {
        root::check_root(r).map_err(|e| usage(format!("--root {r}: {e}")))?;
    }
    let root_path = args
        .root
        .clone()
        .unwrap_or_else(|| root::default_root(name.as_str()));

    let _lock = lock(lock_path)?;
    let found = probe.in_use(&name, &root_path);
    if !found.is_empty() {
        return Err(Failure::new(
            Exit::Refused,
            format!(
                "refusing to create instance {name}: {}; pick another name (or remove the leftovers)",
                found.join("; ")
            ),
        ));
    }
    let (mut taken, roots) = siblings(settings);
    for (other_root, other) in &roots {
        if root::is_same_or_ancestor(other_root, &root_path)
            || root::is_same_or_ancestor(&root_path, other_root)
        {
            return Err(Failure::new(
                Exit::Refused,
                format!("root {root_path} overlaps root {other_root} of instance {other}; give --root a directory of its own"),
            ));
        }
    }
    taken.extend(alloc::host_taken(source).map_err(|e| {
        Failure::failed(format!(
            "cannot read the host's routes and addresses over netlink: {e}"
        ))
    })?);
    let allocation = alloc::allocate(&policy, &taken, bridge, pool).map_err(|e| {
        let exit = match e {
            alloc::AllocError::InUse { .. } => Exit::Refused,
            alloc::AllocError::Exhausted { .. } => Exit::Failed,
        };
        Failure::new(exit, e.to_string())
    })?;
    let plan = Plan {
        name: name.clone(),
        root: args.root.clone(),
        allocation,
        // The policy's size is written when it is not the conf's default,
        // so the conf means the same on a host without the policy file.
        pool_size: args
            .pool_size
            .or((policy.pool_size != instance::DEFAULT_POOL_SIZE).then_some(policy.pool_size)),
        runtime: args.runtime.clone(),
        docker_version: args.docker_version.clone(),
        rootless: args.rootless,
    };
    let text = conf_text(&plan);
    let file_name = format!("{name}.conf");
    let target = settings.instances_dir.join(&file_name);
    let (instance, warnings) = validate(settings, &name, &target, &text).map_err(|m| {
        usage(format!(
            "the conf would not be valid; nothing was written:\n{m}"
        ))
    })?;
    for w in warnings {
        eprintln!("{w}");
    }
    not_installed(args, settings, &instance)?;
    let conf =
        confwrite::write_new(&settings.instances_dir, &file_name, &text).map_err(|e| match e {
            WriteError::Exists(p) => Failure::new(
                Exit::Refused,
                format!("refusing to overwrite {}", p.display()),
            ),
            WriteError::Io(p, e) => Failure::io("cannot write the conf", &p, &e),
        })?;
    Ok(Created { conf, instance })
}

/// What the instance would run that the store lacks. With --start that
/// is a refusal before anything is written (the start could only fail);
/// without, a note on what to install before starting it. Runtime= keeps
/// its default, sysbox-runc, even when sysbox is missing: falling back to
/// runc would silently give the containers the host's root user.
fn not_installed(args: &Args, settings: &Settings, inst: &instance::Instance) -> Result<()> {
    let (_, sysbox_version, _) = version_defaults(&settings.manifest_override);
    let missing = installed::missing_for(&installed::store(), inst, sysbox_version.ok().as_deref());
    let fixes: Vec<String> = missing
        .iter()
        .map(|m| match m.part {
            installed::Part::Docker => format!("{}: run `{}` first", m.what(), m.install_command()),
            installed::Part::Sysbox => {
                format!(
                "{}, and Runtime=sysbox-runc{} needs it: run `{}` first, or give --runtime runc \
                 (runc does not map the containers' root to an unprivileged user)",
                m.what(),
                if args.runtime.is_none() { " (the default)" } else { "" },
                m.install_command()
            )
            }
            // Rootless=yes: what its own message says to run.
            _ => m.to_string(),
        })
        .collect();
    if fixes.is_empty() {
        return Ok(());
    }
    if args.start {
        return Err(Failure::new(
            Exit::Refused,
            format!(
                "refusing to create and start instance {}: {}; nothing was written",
                inst.name,
                fixes.join("; ")
            ),
        ));
    }
    for f in fixes {
        eprintln!("note: before starting {}: {f}", inst.name);
    }
    Ok(())
}

/// systemctl's own messages go straight to the admin; the failure adds
/// what to do next (`hint`).
fn systemctl(args: &[&str], hint: &str) -> Result<()> {
    probe::systemctl(args, probe::Output::Inherit).map_err(|e| {
        Failure::failed(match e {
            SystemctlError::Spawn { args, error } => {
                format!("cannot run systemctl {args}: {error}")
            }
            SystemctlError::Failed { args, status, .. } => {
                format!("systemctl {args} failed ({status}){hint}")
            }
        })
    })
}

fn finish(args: &Args, created: &Created) -> Result<()> {
    let i = &created.instance;
    let docker_host = format!("unix://{}", i.socket());
    if args.start {
        systemctl(&["daemon-reload"], "")?;
        let unit = i.name.unit();
        let hint = format!(
            "; the conf {} is written: see `journalctl -u {unit}` and `dockyard check`",
            created.conf.display()
        );
        systemctl(&["start", &unit], &hint)?;
    }
    // The group is made by the first start: the tenants join it now, or
    // the admin hears what to run once it has started.
    let mut joined = Vec::new();
    if !args.tenant.is_empty() {
        if args.start {
            joined = tenants::add_live(&args.tenant, &i.name)?;
        } else {
            eprintln!("{}", tenants::later(&args.tenant, &i.name));
        }
    }
    if args.json {
        let v = serde_json::json!({
            "name": i.name.as_str(),
            "conf": created.conf.to_string_lossy(),
            "root": i.root,
            "bridge_cidr": i.bridge.to_string(),
            "fixed_cidr": i.fixed.to_string(),
            "pool_base": i.pool.to_string(),
            "pool_size": i.pool_size,
            "runtime": i.runtime.as_str(),
            "rootless": i.rootless,
            "group_grants": rootless::group_grants(&i.name, i.rootless),
            "tenants": args.tenant,
            "tenants_in_group": args.start && !args.tenant.is_empty(),
            "docker_version": i.docker_version,
            "unit": i.name.unit(),
            "docker_host": docker_host,
            "started": args.start,
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "wrote {}: {} {} {}{}",
        created.conf.display(),
        keys::BRIDGE_CIDR.line(i.bridge),
        keys::POOL_BASE.line(i.pool),
        keys::ROOT.line(&i.root),
        if i.rootless {
            format!(" {}", keys::ROOTLESS.line("yes"))
        } else {
            String::new()
        }
    );
    if args.start {
        println!("started {}", i.name.unit());
        for line in &joined {
            println!("{line}");
        }
    } else {
        println!(
            "start it with: systemctl daemon-reload && systemctl start {}",
            i.name.unit()
        );
    }
    println!("DOCKER_HOST={docker_host}");
    Ok(())
}

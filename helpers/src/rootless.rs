//! The host's side of a rootless instance (`Rootless=yes`, Docker's
//! rootless mode): what dockerd-rootless-setuptool.sh and
//! dockerd-rootless.sh do for one user by hand, done from the instance's
//! unit for its system user.
//!
//! - `prepare up` gives the user its subordinate ids ([`ensure_subids`]),
//!   its directories, and its unit's cgroup ([`delegate_cgroup`]);
//! - `ExecStart=` is `dockyard-prepare run-as --user U -- rootlesskit …`
//!   ([`run_as`]): root drops to the user and becomes rootlesskit, so the
//!   unit needs no `User=` (which systemd resolves before any
//!   `ExecStartPre=` could create the user);
//! - rootlesskit runs `dockyard-prepare in-namespace -- dockerd …`
//!   ([`in_namespace`]) in its user, mount and network namespaces;
//! - `prepare started` sets the socket's owner from outside
//!   ([`own_socket`]): dockerd's `--group` is resolved inside the user
//!   namespace, where the instance's group has no name.
//!
//! Everything that runs as root here works in directories the instance's
//! user can write to, so nothing follows a symlink there.

use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use dockyard_model::contract::prepare::COMMAND_SEPARATOR;
use dockyard_model::contract::{prepare, Values};
use dockyard_model::subid::{self, Range};
use dockyard_model::{paths, InstanceName};
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Uid, User};

use crate::args;
use crate::bail;
use crate::dirs;
use crate::error::{Context, Error, Result};
use crate::users::Ids;

/// login.defs(5)'s defaults when it sets no window.
const DEFAULT_MIN: u32 = 100_000;
const DEFAULT_MAX: u32 = 600_100_000;

/// Splits `OPTIONS… -- COMMAND…`; the command must not be empty.
fn split_command(argv: Vec<OsString>) -> Result<(Vec<OsString>, Vec<OsString>)> {
    let Some(at) = argv.iter().position(|a| a == COMMAND_SEPARATOR) else {
        return Err(Error::usage(format!(
            "missing `{COMMAND_SEPARATOR} COMMAND…`: the command to run"
        )));
    };
    let mut options = argv;
    let command = options.split_off(at + 1);
    options.pop();
    if command.is_empty() {
        return Err(Error::usage(format!(
            "nothing after `{COMMAND_SEPARATOR}`: the command to run"
        )));
    }
    Ok((options, command))
}

/// `run-as --user U -- COMMAND…`: become the instance's user (its primary
/// group alone, its home) and exec the command. Only Dockyard's instance
/// accounts are accepted: this runs as root.
pub fn run_as(argv: Vec<OsString>) -> Result<()> {
    let (options, command) = split_command(argv)?;
    let opts = args::parse(options, &[prepare::USER, prepare::KEEP_CAPABILITY])?;
    let keep_bind = match opts.value(prepare::KEEP_CAPABILITY) {
        None => false,
        Some(prepare::NET_BIND_SERVICE) => true,
        Some(other) => {
            return Err(Error::usage(format!(
                "--{} {other:?}: only {} may be kept",
                prepare::KEEP_CAPABILITY.name,
                prepare::NET_BIND_SERVICE
            )))
        }
    };
    if let Some(a) = &opts.action {
        return Err(Error::usage(format!(
            "{}: unexpected argument {a:?}",
            prepare::RUN_AS
        )));
    }
    let name = args::account_name(prepare::USER.name, opts.required(prepare::USER)?)?;
    let user = User::from_name(&name)
        .ctx(|| format!("cannot look up user {name}"))?
        .ok_or_else(|| {
            Error::new(format!(
                "user {name} does not exist; `dockyard-prepare up` (the unit's ExecStartPre=) creates it"
            ))
        })?;
    let gecos = user.gecos.to_string_lossy();
    if InstanceName::from_account_marker(&gecos).is_none() {
        bail!(
            "user {name} was not created by Dockyard (its comment is {gecos:?}); refusing to run an instance as it"
        );
    }
    if user.uid.is_root() {
        bail!("user {name} has uid 0; a rootless instance cannot run as root");
    }
    if keep_bind {
        // Across the setuid below, keep the permitted set (capabilities(7),
        // PR_SET_KEEPCAPS); everything but CAP_NET_BIND_SERVICE goes after.
        prctl(libc::PR_SET_KEEPCAPS, 1, 0).ctx(|| "cannot keep capabilities")?;
    }
    nix::unistd::setgroups(&[user.gid]).ctx(|| "cannot set the supplementary groups")?;
    nix::unistd::setgid(user.gid).ctx(|| format!("cannot switch to group {}", user.gid))?;
    nix::unistd::setuid(user.uid).ctx(|| format!("cannot switch to user {name}"))?;
    // setuid(2) from root to another uid drops every id and capability;
    // check rather than trust it.
    if nix::unistd::geteuid().is_root() || nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        bail!("still root after switching to user {name}; not starting");
    }
    if keep_bind {
        keep_only_net_bind_service()?;
    }
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("HOME", &user.dir)
        .env("USER", &name)
        .env("LOGNAME", &name);
    let err = cmd.exec();
    Err(Error::new(format!(
        "cannot run {}: {err}",
        Path::new(&command[0]).display()
    )))
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    match unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// capset(2)'s version 3 header and data (linux/capability.h): two words
/// of 32 capabilities each.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_NET_BIND_SERVICE: u32 = 10;

/// After the switch to the user: CAP_NET_BIND_SERVICE alone, permitted,
/// effective, inheritable and ambient, so that rootlesskit (exec'd next)
/// has it and its port driver binds ports below 1024. The processes in
/// its user namespace are no better off: capabilities there are relative
/// to the namespace.
fn keep_only_net_bind_service() -> Result<()> {
    let bit = 1u32 << CAP_NET_BIND_SERVICE;
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: bit,
            permitted: bit,
            inheritable: bit,
        },
        CapData::default(),
    ];
    // SAFETY: header and data are the kernel's v3 layout, data has the two
    // elements v3 reads, and both outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(Error::new(format!(
            "cannot keep CAP_NET_BIND_SERVICE: {}",
            std::io::Error::last_os_error()
        )));
    }
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
        libc::c_ulong::from(CAP_NET_BIND_SERVICE),
    )
    .ctx(|| "cannot make CAP_NET_BIND_SERVICE ambient")?;
    Ok(())
}

/// What the parent namespace's /run leaves in rootlesskit's copy of it
/// (`--copy-up=/run` makes each entry a symlink to the host's), and that
/// dockerd and its containerd must create as their own: Docker's plugin
/// directory, containerd's default socket, the xtables lock that its
/// iptables (in the instance's network namespace) takes.
const HOST_RUN_ENTRIES: [&str; 3] = ["/run/docker", "/run/containerd", "/run/xtables.lock"];

/// `in-namespace -- COMMAND…`: rootlesskit's child, in its namespaces.
pub fn in_namespace(argv: Vec<OsString>) -> Result<()> {
    let (options, command) = split_command(argv)?;
    if let Some(extra) = options.first() {
        return Err(Error::usage(format!(
            "{}: unexpected argument {:?}",
            prepare::IN_NAMESPACE,
            extra
        )));
    }
    if std::env::var_os("ROOTLESSKIT_STATE_DIR").is_none() {
        bail!(
            "{} runs inside rootlesskit's namespaces (ROOTLESSKIT_STATE_DIR is not set); it would remove the host's /run/docker",
            prepare::IN_NAMESPACE
        );
    }
    for entry in HOST_RUN_ENTRIES {
        match fs::symlink_metadata(entry) {
            Ok(m) if m.file_type().is_symlink() || m.is_file() => {
                if let Err(e) = fs::remove_file(entry) {
                    log::warn!("cannot remove {entry} in the instance's namespace: {e}");
                }
            }
            _ => {}
        }
    }
    let err = Command::new(&command[0]).args(&command[1..]).exec();
    Err(Error::new(format!(
        "cannot run {}: {err}",
        Path::new(&command[0]).display()
    )))
}

fn read_or_empty(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(String::new()),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    }
}

/// Holds [`paths::subid_lock`] while the subordinate id files change, so
/// that instances starting together never take the same free range.
pub fn subid_lock() -> Result<Flock<fs::File>> {
    let path = paths::subid_lock();
    let path = path.as_path();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .ctx(|| format!("cannot open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::new(format!("cannot lock {}: {e}", path.display())))
}

/// The user's one range of [`subid::ROOTLESS_RANGE`] ids, the same in
/// /etc/subuid and /etc/subgid: kept when it has one (its data is owned
/// by those ids), else the lowest range free in both files within
/// login.defs' window. rootlesskit's newuidmap/newgidmap map the user
/// namespace's ids 1-65536 onto it.
pub fn ensure_subids(user: &str) -> Result<Range> {
    let (uid_file, gid_file) = (paths::subuid_file(), paths::subgid_file());
    let _lock = subid_lock()?;
    let uid_text = read_or_empty(&uid_file)?;
    let gid_text = read_or_empty(&gid_file)?;
    if let Some(r) = subid::kept(&uid_text, &gid_text, user, subid::ROOTLESS_RANGE) {
        return Ok(r);
    }
    let defs = read_or_empty(&paths::login_defs())?;
    let value = |key: &str, default: u32| subid::login_defs_value(&defs, key).unwrap_or(default);
    let min = value("SUB_UID_MIN", DEFAULT_MIN).max(value("SUB_GID_MIN", DEFAULT_MIN));
    let max = value("SUB_UID_MAX", DEFAULT_MAX).min(value("SUB_GID_MAX", DEFAULT_MAX));
    let Some(range) =
        subid::allocate_both(&uid_text, &gid_text, user, subid::ROOTLESS_RANGE, min, max)
    else {
        bail!(
            "no range of {} ids is free in both {} and {} between {min} and {max} for {user}; remove ranges nobody uses, or widen SUB_UID_MIN..SUB_UID_MAX and SUB_GID_MIN..SUB_GID_MAX in {}",
            subid::ROOTLESS_RANGE,
            uid_file.display(),
            gid_file.display(),
            paths::login_defs().display()
        );
    };
    let before = subid::of_user(&uid_text, user);
    dirs::write_atomic(
        &uid_file,
        subid::with_range(&uid_text, user, Some(range)).as_bytes(),
    )?;
    dirs::write_atomic(
        &gid_file,
        subid::with_range(&gid_text, user, Some(range)).as_bytes(),
    )?;
    if before.is_empty() {
        log::info!(
            "gave {user} the subordinate ids {}-{} in {} and {}",
            range.first,
            u64::from(range.first) + u64::from(range.count) - 1,
            uid_file.display(),
            gid_file.display()
        );
    } else {
        log::warn!(
            "replaced {user}'s subordinate id ranges (not one range of {} ids, the same in both files) by {}:{}",
            subid::ROOTLESS_RANGE,
            range.first,
            range.count
        );
    }
    Ok(range)
}

/// The cgroup (v2) this process runs in, from /proc/self/cgroup's `0::`
/// line; systemd runs a delegated unit's `ExecStartPre=` in its `.control`
/// child, so that one's parent is the unit's.
fn own_unit_cgroup(proc_self_cgroup: &str) -> Option<&str> {
    let path = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?;
    Some(path.strip_suffix("/.control").unwrap_or(path))
}

/// The files systemd hands to a delegated unit's user (systemd's
/// "Control Group APIs and Delegation"): the directory, and the three a
/// cgroup manager writes to move processes and enable controllers below.
const DELEGATED_FILES: [&str; 3] = ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"];

/// What `Delegate=yes` with `User=` would do: the unit's cgroup (v2) is
/// the user's to manage, so a rootless dockerd can put its containers in
/// cgroups of their own below it (per-container limits). Nothing to do on
/// a host without the unified hierarchy, where the unit's limits still
/// hold for the whole instance.
pub fn delegate_cgroup(instance: &InstanceName, ids: Ids) -> Result<()> {
    let root = paths::cgroup_root();
    if !root.join("cgroup.controllers").exists() {
        log::info!(
            "instance {instance}: {} is not cgroup v2; no cgroup delegated to the instance's user",
            root.display()
        );
        return Ok(());
    }
    let text = read_or_empty(Path::new("/proc/self/cgroup"))?;
    let Some(own) = own_unit_cgroup(&text) else {
        bail!("cannot find this process's cgroup v2 in /proc/self/cgroup");
    };
    let unit = instance.unit();
    if !own.ends_with(&format!("/{unit}")) {
        bail!(
            "this step runs in cgroup {own}, not in {unit}'s: `dockyard-prepare up --mode rootless` runs from that unit's ExecStartPre="
        );
    }
    let dir = root.join(own.trim_start_matches('/'));
    let targets = std::iter::once(dir.clone()).chain(DELEGATED_FILES.iter().map(|f| dir.join(f)));
    for path in targets {
        std::os::unix::fs::lchown(&path, Some(ids.uid), Some(ids.gid))
            .ctx(|| format!("cannot hand {} to the instance's user", path.display()))?;
    }
    Ok(())
}

/// Who wrote a data root: the owner of its entries. A rootful dockerd's
/// are root's, a rootless one's its user's (root in its namespace); the
/// other kind of daemon cannot use them (a rootless one cannot read
/// root's files; a rootful one would give containers files owned by
/// shifted ids).
pub fn data_root_writer(data_root: &Path) -> Option<u32> {
    DOCKERD_ENTRIES
        .iter()
        .find_map(|e| fs::symlink_metadata(data_root.join(e)).ok())
        .map(|m| m.uid())
}

/// What only dockerd creates in its data root (Dockyard's network helper
/// writes `network/` of a rootful instance itself).
const DOCKERD_ENTRIES: [&str; 3] = ["image", "containers", "volumes"];

/// `prepare started` of a rootless instance: the socket is the user's and
/// its group's, 0660, whatever dockerd made of `--group` inside its user
/// namespace. The socket lives in a directory the user owns: a symlink
/// there is refused, and nothing is followed.
pub fn own_socket(socket: &Path, ids: Ids) -> Result<()> {
    let meta = fs::symlink_metadata(socket)
        .ctx(|| format!("cannot inspect {} (dockerd's socket)", socket.display()))?;
    if !meta.file_type().is_socket() {
        bail!(
            "{} is not a socket; dockerd listens there. Stop the instance and move it away",
            socket.display()
        );
    }
    if meta.uid() != ids.uid || meta.gid() != ids.gid {
        std::os::unix::fs::lchown(socket, Some(ids.uid), Some(ids.gid))
            .ctx(|| format!("cannot set the owner of {}", socket.display()))?;
        log::info!(
            "{}: owner {}:{} (was {}:{})",
            socket.display(),
            ids.uid,
            ids.gid,
            meta.uid(),
            meta.gid()
        );
    }
    if meta.permissions().mode() & 0o7777 != SOCKET_MODE {
        // chmod(2) follows symlinks and Linux has no lchmod: change the
        // inode opened without following, through its /proc/self/fd link.
        let fd = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(socket)
            .ctx(|| format!("cannot open {}", socket.display()))?;
        let opened = fd
            .metadata()
            .ctx(|| format!("cannot inspect {}", socket.display()))?;
        if !opened.file_type().is_socket() || opened.ino() != meta.ino() {
            bail!("{} changed while its mode was set", socket.display());
        }
        let link = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ));
        fs::set_permissions(&link, fs::Permissions::from_mode(SOCKET_MODE))
            .ctx(|| format!("cannot set the mode of {}", socket.display()))?;
    }
    Ok(())
}

/// The instance's user and its group (the tenants) connect; nobody else.
pub const SOCKET_MODE: u32 = 0o660;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_follows_the_separator() {
        let argv = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (o, c) = split_command(argv(&["--user", "dy1_docker", "--", "rk", "--", "x"])).unwrap();
        assert_eq!(o, argv(&["--user", "dy1_docker"]));
        assert_eq!(c, argv(&["rk", "--", "x"]));
        assert!(split_command(argv(&["--user", "u"]))
            .unwrap_err()
            .is_usage());
        assert!(split_command(argv(&["--user", "u", "--"]))
            .unwrap_err()
            .is_usage());
    }

    #[test]
    fn the_unit_cgroup_is_the_control_group_s_parent() {
        let v1 = "12:pids:/dockyard.slice\n0::/dockyard.slice/dockyard-dy1.slice/dy1_docker.service/.control\n";
        assert_eq!(
            own_unit_cgroup(v1),
            Some("/dockyard.slice/dockyard-dy1.slice/dy1_docker.service")
        );
        assert_eq!(
            own_unit_cgroup("0::/system.slice/x.service\n"),
            Some("/system.slice/x.service")
        );
        assert_eq!(own_unit_cgroup("1:name=systemd:/x\n"), None);
    }

    #[test]
    fn the_writer_of_a_data_root_is_its_entries_owner() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(data_root_writer(d.path()), None);
        assert_eq!(data_root_writer(&d.path().join("absent")), None);
        fs::create_dir(d.path().join("network")).unwrap();
        assert_eq!(data_root_writer(d.path()), None);
        fs::create_dir(d.path().join("image")).unwrap();
        assert_eq!(
            data_root_writer(d.path()),
            Some(nix::unistd::geteuid().as_raw())
        );
    }

    #[test]
    fn a_socket_gets_its_owner_and_mode_and_a_symlink_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("docker.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o755)).unwrap();
        let me = Ids {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        own_socket(&sock, me).unwrap();
        assert_eq!(
            fs::symlink_metadata(&sock).unwrap().permissions().mode() & 0o7777,
            SOCKET_MODE
        );
        let target = d.path().join("target");
        fs::write(&target, "x").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let link = d.path().join("link.sock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(own_socket(&link, me).is_err());
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
            0o600
        );
    }
}

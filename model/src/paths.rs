//! Where Dockyard's files live on a host, the environment variables that
//! move them (dockyard-generator(8)), and where programs are looked for.
//! One place, so the generator, the installer, the helpers, the CLI and
//! the tests agree.

use std::ffi::OsString;
use std::path::PathBuf;

/// Instance confs; `DOCKYARD_INSTANCES_DIR` overrides it.
pub const INSTANCES_DIR: &str = "/etc/dockyard/instances.d";
pub const INSTANCES_DIR_ENV: &str = "DOCKYARD_INSTANCES_DIR";

/// The admin's artifacts manifest, overriding the one built into Dockyard;
/// `DOCKYARD_ARTIFACTS_MANIFEST` moves it (for tests).
pub const MANIFEST_OVERRIDE: &str = "/etc/dockyard/artifacts.toml";
pub const MANIFEST_OVERRIDE_ENV: &str = "DOCKYARD_ARTIFACTS_MANIFEST";

/// The host's policy (dockyard-host.conf(5)): allocation ranges, the
/// firewall backend; `DOCKYARD_HOST_CONF` moves it. Missing means every
/// default.
pub const HOST_CONF: &str = "/etc/dockyard/dockyard.conf";
pub const HOST_CONF_ENV: &str = "DOCKYARD_HOST_CONF";

/// Where the kernel lists network interfaces, so where a running
/// instance's bridge shows up; `DOCKYARD_SYS_CLASS_NET` moves it (for
/// tests).
pub const SYS_CLASS_NET: &str = "/sys/class/net";
pub const SYS_CLASS_NET_ENV: &str = "DOCKYARD_SYS_CLASS_NET";

/// `default`, or the value of `var` when it is set and not empty, made
/// absolute: the instances directory ends up in `SourcePath=`, which
/// systemd ignores when relative.
pub fn overridable(var: &str, default: &str) -> PathBuf {
    resolve(std::env::var_os(var), default)
}

fn resolve(value: Option<OsString>, default: &str) -> PathBuf {
    let p = value
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    std::path::absolute(&p).unwrap_or(p)
}

/// The cgroup v2 hierarchy; `DOCKYARD_CGROUP_ROOT` moves it (for tests).
/// An instance's slice is `dockyard.slice/dockyard-NAME.slice` below it
/// (`InstanceName::container_cgroup`).
pub const CGROUP_ROOT_ENV: &str = "DOCKYARD_CGROUP_ROOT";

/// The cgroup hierarchy in effect (`DOCKYARD_CGROUP_ROOT`).
pub fn cgroup_root() -> PathBuf {
    overridable(CGROUP_ROOT_ENV, "/sys/fs/cgroup")
}

/// The instances directory in effect (`DOCKYARD_INSTANCES_DIR`).
pub fn instances_dir() -> PathBuf {
    overridable(INSTANCES_DIR_ENV, INSTANCES_DIR)
}

/// The admin manifest in effect (`DOCKYARD_ARTIFACTS_MANIFEST`).
pub fn manifest_override() -> PathBuf {
    overridable(MANIFEST_OVERRIDE_ENV, MANIFEST_OVERRIDE)
}

/// The host's policy file in effect (`DOCKYARD_HOST_CONF`).
pub fn host_conf() -> PathBuf {
    overridable(HOST_CONF_ENV, HOST_CONF)
}

/// `/sys/class/net` in effect (`DOCKYARD_SYS_CLASS_NET`).
pub fn sys_class_net() -> PathBuf {
    overridable(SYS_CLASS_NET_ENV, SYS_CLASS_NET)
}

/// Parent of the default instance roots (`/var/lib/dockyard/NAME`).
pub const STATE_DIR: &str = "/var/lib/dockyard";

/// The versioned artifact store the installer fills: one directory per
/// artifact version, e.g. `/var/lib/dockyard/artifacts/docker/29.2.1/bin`.
/// "artifacts" is longer than any instance name, so it can never be a
/// default instance root.
pub const ARTIFACTS_DIR: &str = "/var/lib/dockyard/artifacts";

/// sysbox-mgr's data root, shared by all sysbox instances. sysbox-fs
/// refuses tmpfs, so it lives on persistent storage.
pub const SYSBOX_DATA_DIR: &str = "/var/lib/dockyard-sysbox";

/// What sysbox-mgr's `DOCKER_HOST` points at: a socket that never exists,
/// so its questions to Docker fail at once instead of reaching the host's
/// own Docker (the generated sysbox-mgr unit, dockyard.conf(5) SYSBOX).
pub const SYSBOX_MGR_NO_DOCKER: &str = "/run/dockyard/sysbox-mgr-asks-no-docker.sock";

/// Where sysbox-mgr and sysbox-fs listen: fixed by sysbox, one pair per
/// host. An instance with Runtime=sysbox-runc starts only while both
/// answer (`dockyard-prepare installed`).
pub const SYSBOX_MGR_SOCKET: &str = "/run/sysbox/sysmgr.sock";
pub const SYSBOX_FS_SOCKET: &str = "/run/sysbox/sysfs.sock";

/// The subordinate id files (subuid(5)); `DOCKYARD_SUBUID_FILE` and
/// `DOCKYARD_SUBGID_FILE` move them (tests), as `DOCKYARD_LOGIN_DEFS` moves
/// login.defs(5), whose `SUB_UID_MIN`-style settings bound the ranges.
pub const SUBUID_FILE: &str = "/etc/subuid";
pub const SUBGID_FILE: &str = "/etc/subgid";
pub const LOGIN_DEFS: &str = "/etc/login.defs";

pub fn subuid_file() -> PathBuf {
    overridable("DOCKYARD_SUBUID_FILE", SUBUID_FILE)
}

pub fn subgid_file() -> PathBuf {
    overridable("DOCKYARD_SUBGID_FILE", SUBGID_FILE)
}

pub fn login_defs() -> PathBuf {
    overridable("DOCKYARD_LOGIN_DEFS", LOGIN_DEFS)
}

/// The device slirp4netns opens for a rootless instance's network;
/// `DOCKYARD_DEV_NET_TUN` moves it (tests).
pub const DEV_NET_TUN: &str = "/dev/net/tun";

pub fn dev_net_tun() -> PathBuf {
    overridable("DOCKYARD_DEV_NET_TUN", DEV_NET_TUN)
}

/// What distribution the host is (`ID=`, `ID_LIKE=`): which package
/// manager a message about a missing program names.
pub const OS_RELEASE: &str = "/etc/os-release";

/// Held by whoever changes /etc/subuid and /etc/subgid (a rootless
/// instance's first start, sysbox's user, `dockyard destroy`), so that
/// hundreds of instances starting at once never pick the same free range.
pub const SUBID_LOCK: &str = "/run/dockyard/subid.lock";

/// [`SUBID_LOCK`], or `DOCKYARD_SUBID_LOCK` (tests, which must not share
/// the host's lock file).
pub fn subid_lock() -> PathBuf {
    overridable("DOCKYARD_SUBID_LOCK", SUBID_LOCK)
}

/// Helpers called from the generated units. `make install PREFIX=…` builds
/// with DOCKYARD_LIBEXEC_DIR set so units point where the helpers went.
pub const LIBEXEC_DIR: &str = match option_env!("DOCKYARD_LIBEXEC_DIR") {
    Some(dir) => dir,
    None => "/usr/libexec/dockyard",
};

pub fn docker_bin_dir(version: &str) -> String {
    format!("{ARTIFACTS_DIR}/docker/{version}/bin")
}

pub fn sysbox_bin_dir(version: &str) -> String {
    format!("{ARTIFACTS_DIR}/sysbox/{version}/bin")
}

/// The Compose v2 plugin of one version: `docker-compose` alone in it, so
/// the directory can also be a CLI's `cliPluginsExtraDirs` entry.
pub fn compose_bin_dir(version: &str) -> String {
    format!("{ARTIFACTS_DIR}/compose/{version}/bin")
}

pub fn helper(name: &str) -> String {
    format!("{LIBEXEC_DIR}/{name}")
}

/// Read-only data the package installs (`make install` builds with
/// DOCKYARD_DATA_DIR set, as for the helpers).
pub const DATA_DIR: &str = match option_env!("DOCKYARD_DATA_DIR") {
    Some(dir) => dir,
    None => "/usr/share/dockyard",
};

/// The containerd settings every instance's containerd starts with; paths
/// and the socket are on each instance's command line.
pub fn containerd_config() -> String {
    format!("{DATA_DIR}/containerd.toml")
}

/// systemd's default `PATH` for services: what a helper searches when it
/// was started without one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Searched after `PATH` by the admin's command: `sudo` and some login
/// shells leave the sbin directories out of a user's `PATH`, and the
/// firewall tools live there.
pub const ADMIN_EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// How a program is searched for beyond `PATH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// `PATH`, or [`DEFAULT_PATH`] when it is unset (the helpers: units get
    /// systemd's `PATH`).
    PathOrDefault,
    /// `PATH` (empty when unset), then [`ADMIN_EXTRA_DIRS`] (the CLI).
    PathThenAdminDirs,
}

/// A program that is in none of the directories searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub name: String,
    /// The `PATH` that was searched, as text for the message.
    pub path: OsString,
}

/// The first regular file `DIR/name` over the directories `search` names.
/// Entries of `PATH` are taken as they are, an empty one meaning the
/// current directory, as for execvp(3).
pub fn find_program(name: &str, search: Search) -> Result<PathBuf, NotFound> {
    let path = match search {
        Search::PathOrDefault => std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        Search::PathThenAdminDirs => std::env::var_os("PATH").unwrap_or_default(),
    };
    let extra: &[&str] = match search {
        Search::PathOrDefault => &[],
        Search::PathThenAdminDirs => &ADMIN_EXTRA_DIRS,
    };
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| NotFound {
            name: name.to_string(),
            path,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_when_set_and_not_empty() {
        assert_eq!(resolve(None, "/etc/x"), PathBuf::from("/etc/x"));
        assert_eq!(resolve(Some("".into()), "/etc/x"), PathBuf::from("/etc/x"));
        assert_eq!(
            resolve(Some("/tmp/y".into()), "/etc/x"),
            PathBuf::from("/tmp/y")
        );
        let got = resolve(Some("rel".into()), "/etc/x");
        assert!(got.is_absolute() && got.ends_with("rel"), "{got:?}");
        assert_eq!(
            overridable("DOCKYARD_TEST_NEVER_SET", "/etc/x"),
            PathBuf::from("/etc/x")
        );
    }

    #[test]
    fn programs_are_found_on_path_and_reported_when_missing() {
        let sh = find_program("sh", Search::PathThenAdminDirs).expect("sh");
        assert!(sh.ends_with("sh"), "{sh:?}");
        let e =
            find_program("dockyard-no-such-program", Search::PathOrDefault).expect_err("missing");
        assert_eq!(e.name, "dockyard-no-such-program");
    }
}

//! Where Dockyard's files live on a host. One place, so the generator, the
//! installer, the helpers and the tests agree.

/// Instance confs; `DOCKYARD_INSTANCES_DIR` overrides it.
pub const INSTANCES_DIR: &str = "/etc/dockyard/instances.d";
pub const INSTANCES_DIR_ENV: &str = "DOCKYARD_INSTANCES_DIR";

/// The admin's artifacts manifest, overriding the one built into Dockyard.
pub const MANIFEST_OVERRIDE: &str = "/etc/dockyard/artifacts.toml";

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

//! Instance names and every per-instance resource name derived from them.
//!
//! The name is the conf's file stem and ends up in a unit name, a bridge
//! name, a user name, a path and iptables comments, so it is restricted to
//! what is safe in all of them.

use std::fmt;

/// Linux interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL);
/// the bridge is `NAME_docker0`, which leaves 7 bytes for NAME.
pub const MAX_NAME_LEN: usize = 15 - "_docker0".len();

const ACCOUNT_MARKER_PREFIX: &str = "Dockyard instance ";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceName(String);

impl InstanceName {
    /// Accepts `[a-z][a-z0-9]*` of at most [`MAX_NAME_LEN`] bytes.
    pub fn parse(name: &str) -> Result<Self, String> {
        let mut chars = name.chars();
        let Some(first) = chars.next() else {
            return Err("the instance name (the file name before .conf) is empty".into());
        };
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        {
            return Err(format!(
                "instance name {name:?} contains {bad:?}; names are a lowercase letter followed by lowercase letters and digits (e.g. dy1)"
            ));
        }
        if !first.is_ascii_lowercase() {
            return Err(format!(
                "instance name {name:?} must start with a lowercase letter (e.g. dy1)"
            ));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(format!(
                "instance name {name:?} is {} characters; at most {MAX_NAME_LEN} fit, because the bridge {name}_docker0 must fit the kernel's 15-byte interface names",
                name.len()
            ));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `dy1_docker`: the unit's stem, and the system user and group.
    pub fn account(&self) -> String {
        format!("{}_docker", self.0)
    }

    /// The GECOS comment of the user Dockyard creates for the instance: how
    /// its accounts are told from a stranger's of the same name, and found
    /// again when nothing else of the instance is left.
    pub fn account_marker(&self) -> String {
        format!("{ACCOUNT_MARKER_PREFIX}{}", self.0)
    }

    /// The instance an account's GECOS comment marks, if it is one.
    pub fn from_account_marker(gecos: &str) -> Option<InstanceName> {
        InstanceName::parse(gecos.strip_prefix(ACCOUNT_MARKER_PREFIX)?).ok()
    }

    pub fn unit(&self) -> String {
        format!("{}_docker.service", self.0)
    }

    pub fn bridge(&self) -> String {
        format!("{}_docker0", self.0)
    }

    /// dockerd's `--exec-root`, kept short because containerd's socket
    /// lives below it and unix socket paths are limited to 108 bytes.
    pub fn exec_root(&self) -> String {
        format!("/run/{}_docker", self.0)
    }

    /// A rootless instance's own directory below its exec root, and its
    /// daemons' `XDG_RUNTIME_DIR`: rootlesskit's state, dockerd's exec root
    /// and pid file, its containerd's socket. The exec root itself stays
    /// root's (systemd's `RuntimeDirectory=`, which systemd gives back to
    /// the unit's user, root, before every command it starts).
    pub fn rootless_runtime_dir(&self) -> String {
        format!("/run/{}_docker/user", self.0)
    }

    /// The instance's slice, below `dockyard.slice`: its dockerd, its
    /// containerd with the shims, and (dockerd's `--cgroup-parent`) its
    /// containers; `[Resources]` are its settings.
    pub fn container_slice(&self) -> String {
        format!("dockyard-{}.slice", self.0)
    }

    /// Its slice in the cgroup tree: systemd nests `a-b.slice` in `a.slice`.
    pub fn container_cgroup(&self) -> String {
        format!("dockyard.slice/{}", self.container_slice())
    }

    /// Tag carried by every firewall rule of this instance, for audits.
    pub fn firewall_tag(&self) -> String {
        format!("dockyard:{}", self.0)
    }

    /// Its own filter chain (who may enter its networks) and nat chain
    /// (masquerade). xtables chain names are at most 28 bytes.
    pub fn firewall_chain(&self) -> String {
        format!("DOCKYARD-{}", self.0)
    }

    /// Its nftables table (the nftables backend): deleting it is most of
    /// the instance's teardown. Table names have room to spare.
    pub fn nft_table(&self) -> String {
        format!("dockyard-{}", self.0)
    }

    /// Its filter chain for the gateway addresses on the host (INPUT).
    pub fn firewall_input_chain(&self) -> String {
        format!("DOCKYARD-{}-IN", self.0)
    }

    /// `dy1_containerd.service`: the instance's own containerd, so dockerd
    /// never falls back to a host containerd at /run/containerd.
    pub fn containerd_unit(&self) -> String {
        format!("{}_containerd.service", self.0)
    }

    /// The containerd's state and socket directory (its RuntimeDirectory).
    pub fn containerd_run_dir(&self) -> String {
        format!("/run/{}_containerd", self.0)
    }

    pub fn containerd_socket(&self) -> String {
        format!("{}/containerd.sock", self.containerd_run_dir())
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_names() {
        for n in ["a", "dy1", "abcdefg", "x0"] {
            assert!(InstanceName::parse(n).is_ok(), "{n}");
        }
        let n = InstanceName::parse("dy1").expect("valid");
        assert_eq!(n.bridge(), "dy1_docker0");
        assert_eq!(n.unit(), "dy1_docker.service");
        assert_eq!(n.exec_root(), "/run/dy1_docker");
        assert_eq!(n.containerd_socket(), "/run/dy1_containerd/containerd.sock");
        assert!(
            InstanceName::parse("abcdefg")
                .expect("7")
                .firewall_input_chain()
                .len()
                <= 28
        );
        assert!(InstanceName::parse("abcdefg").expect("7").bridge().len() <= 15);
    }

    #[test]
    fn refuses_bad_names() {
        for (n, why) in [
            ("", "empty"),
            ("abcdefgh", "at most 7"),
            ("1dy", "must start"),
            ("Dy1", "contains 'D'"),
            ("dy-1", "contains '-'"),
            ("dy 1", "contains ' '"),
            ("dy$1", "contains '$'"),
            ("dy%1", "contains '%'"),
            ("dy\"1", "contains '\"'"),
            ("dy/1", "contains '/'"),
            ("dé", "contains 'é'"),
        ] {
            let err = InstanceName::parse(n).expect_err(n);
            assert!(err.contains(why), "{n}: {err}");
        }
    }
}

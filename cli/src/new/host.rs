//! What `dockyard new` reads from the host: routes and addresses over
//! netlink, and whether anything of an instance's name already exists.

use super::alloc::HostNetworks;
use dockyard_netlink::{Netlink, Route};
use ipnet::Ipv4Net;
use std::io;
use std::path::{Path, PathBuf};

/// The running kernel's routes (every table) and addresses, over netlink.
pub struct NetlinkNetworks {
    nl: Netlink,
}

impl NetlinkNetworks {
    pub fn open() -> io::Result<NetlinkNetworks> {
        Ok(NetlinkNetworks {
            nl: Netlink::open()?,
        })
    }
}

impl HostNetworks for NetlinkNetworks {
    fn routes(&mut self) -> io::Result<Vec<Route>> {
        self.nl.routes_v4()
    }
    fn addresses(&mut self) -> io::Result<Vec<Ipv4Net>> {
        Ok(self.nl.addresses_v4()?.into_iter().map(|a| a.net).collect())
    }
}

/// Where units can come from: generated, admin's, runtime and vendor.
pub const UNIT_DIRS: &[&str] = &[
    "/run/systemd/generator.early",
    "/run/systemd/generator",
    "/run/systemd/generator.late",
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Where to look for an instance's traces; paths are injectable for tests.
pub struct Probe {
    pub instances_dir: PathBuf,
    pub unit_dirs: Vec<PathBuf>,
    pub sys_class_net: PathBuf,
    /// Whether a user or group of that name exists: `Some("user")`,
    /// `Some("group")` or `None`.
    pub account: fn(&str) -> Option<&'static str>,
}

pub fn system_account(name: &str) -> Option<&'static str> {
    if matches!(nix::unistd::User::from_name(name), Ok(Some(_))) {
        Some("user")
    } else if matches!(nix::unistd::Group::from_name(name), Ok(Some(_))) {
        Some("group")
    } else {
        None
    }
}

fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

impl Probe {
    /// Everything of this name that already exists, each naming what and
    /// where; empty when the name is free.
    pub fn in_use(&self, name: &dockyard_model::InstanceName, root: &str) -> Vec<String> {
        let mut found = Vec::new();
        let conf = self.instances_dir.join(format!("{name}.conf"));
        if exists(&conf) {
            found.push(format!("its conf {} exists", conf.display()));
        }
        let dropins = self.instances_dir.join(format!("{name}.conf.d"));
        if exists(&dropins) {
            found.push(format!(
                "its drop-in directory {} exists",
                dropins.display()
            ));
        }
        for dir in &self.unit_dirs {
            let unit = dir.join(name.unit());
            if exists(&unit) {
                found.push(format!("its unit {} exists", unit.display()));
            }
        }
        let bridge = self.sys_class_net.join(name.bridge());
        if exists(&bridge) {
            found.push(format!("its bridge {} exists", name.bridge()));
        }
        if let Some(kind) = (self.account)(&name.account()) {
            found.push(format!("a {kind} named {} exists", name.account()));
        }
        if exists(Path::new(root)) {
            found.push(format!("its root {root} exists"));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_account(_: &str) -> Option<&'static str> {
        None
    }

    fn dy9_group(name: &str) -> Option<&'static str> {
        (name == "dy9_docker").then_some("group")
    }

    #[test]
    fn names_each_existing_trace() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        for d in ["inst", "gen", "etc", "net", "root"] {
            std::fs::create_dir(t.join(d)).expect("mkdir");
        }
        let probe = Probe {
            instances_dir: t.join("inst"),
            unit_dirs: vec![t.join("gen"), t.join("etc")],
            sys_class_net: t.join("net"),
            account: no_account,
        };
        let name = dockyard_model::InstanceName::parse("dy9").expect("name");
        let root = t.join("root/dy9");
        let root = root.to_str().expect("utf-8");
        assert!(probe.in_use(&name, root).is_empty());

        std::fs::write(t.join("inst/dy9.conf"), "").expect("conf");
        std::fs::write(t.join("etc/dy9_docker.service"), "").expect("unit");
        std::fs::create_dir(t.join("net/dy9_docker0")).expect("bridge");
        std::fs::create_dir(root).expect("root");
        let found = probe.in_use(&name, root).join("\n");
        for want in [
            "conf",
            "etc/dy9_docker.service",
            "bridge dy9_docker0",
            "root",
        ] {
            assert!(found.contains(want), "{want} missing from:\n{found}");
        }
        let probe = Probe {
            account: dy9_group,
            ..probe
        };
        assert!(probe
            .in_use(&name, root)
            .iter()
            .any(|f| f == "a group named dy9_docker exists"));
    }
}

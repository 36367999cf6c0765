//! Which instances use which version, from their confs (the model's
//! loader, so the answer matches what the generator renders). Docker
//! versions are pinned per instance (DockerVersion= or the manifest's
//! default); the sysbox version is the manifest's default, used by every
//! instance with Runtime=sysbox-runc.

use dockyard_model::instance::VersionDefaults;
use dockyard_model::load::{load_dir, LoadOptions};
use dockyard_model::manifest::{Kind, Manifest};
use dockyard_model::paths;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default)]
pub struct Pins {
    pub docker: BTreeMap<String, Vec<String>>,
    pub sysbox: BTreeMap<String, Vec<String>>,
    /// Confs that could not be read: their pins are unknown.
    pub unreadable: Vec<String>,
    pub dir: PathBuf,
}

impl Pins {
    /// The instances that run `kind` at `version`. No instance runs the
    /// Compose plugin (users' shells do), so it is never pinned.
    pub fn users(&self, kind: Kind, version: &str) -> &[String] {
        let map = match kind {
            Kind::Sysbox => &self.sysbox,
            Kind::Compose => return &[],
            Kind::Docker | Kind::DockerRootlessExtras => &self.docker,
        };
        map.get(version).map(Vec::as_slice).unwrap_or(&[])
    }
}

pub fn instances_dir() -> PathBuf {
    paths::instances_dir()
}

pub fn load(manifest: &Manifest) -> Pins {
    let dir = instances_dir();
    let defaults = VersionDefaults {
        docker: Ok(manifest.defaults.docker.clone()),
        // Not checked against the manifest here: an instance pinning a
        // version the manifest forgot still uses it.
        known_docker: None,
    };
    let catalog = load_dir(&LoadOptions {
        dir: &dir,
        defaults: &defaults,
        sys_class_net: &dockyard_model::paths::sys_class_net(),
    });
    let mut pins = Pins {
        dir,
        ..Pins::default()
    };
    for inst in &catalog.instances {
        let name = inst.name.as_str().to_string();
        pins.docker
            .entry(inst.docker_version.clone())
            .or_default()
            .push(name.clone());
        if inst.uses_sysbox() {
            pins.sysbox
                .entry(manifest.defaults.sysbox.clone())
                .or_default()
                .push(name);
        }
    }
    for skipped in &catalog.skipped {
        pins.unreadable
            .push(format!("{}: {}", skipped.conf.display(), skipped.reason));
    }
    pins
}

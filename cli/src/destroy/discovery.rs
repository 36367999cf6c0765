//! What the host holds of an instance: its conf (valid or not), the
//! helpers' records, its unit, bridge, rules, run-time directories and
//! accounts. Read before anything is changed.

use crate::probe::host;
use dockyard_model::contract::network::Network;
use dockyard_model::keys::{self, Section};
use dockyard_model::load::load_one;
use dockyard_model::{ini, paths, root, state, InstanceName};
use std::path::{Path, PathBuf};

/// What the instance consists of, as found on the host.
pub(super) struct Found {
    pub(super) name: InstanceName,
    pub(super) conf: PathBuf,
    pub(super) dropins: PathBuf,
    /// From the conf (valid or not), the helpers' record, or the default.
    pub(super) root: Option<String>,
    /// The conf's network values when the conf is valid, else what
    /// `dockyard-network up` recorded.
    pub(super) network: Option<Network>,
    /// `None` when unknown (no readable conf).
    pub(super) sysbox: Option<bool>,
    pub(super) unit: bool,
    pub(super) bridge: bool,
    pub(super) rules: bool,
    pub(super) run_dirs: Vec<PathBuf>,
    pub(super) user: Option<nix::unistd::User>,
    pub(super) group: Option<nix::unistd::Group>,
    /// The user `NAME_docker` has lines in /etc/subuid or /etc/subgid (a
    /// rootless instance's subordinate ids).
    pub(super) subids: bool,
}

impl Found {
    pub(super) fn anything(&self, keep_data: bool) -> bool {
        self.unit
            || self.bridge
            || self.rules
            || self.conf.exists()
            || self.dropins.symlink_metadata().is_ok()
            || (!keep_data
                && self
                    .root
                    .as_ref()
                    .is_some_and(|r| Path::new(r).symlink_metadata().is_ok()))
            || !self.run_dirs.is_empty()
            || self.user.is_some()
            || (!keep_data && self.subids)
    }
}

pub(super) fn inspect(name: &InstanceName) -> Found {
    let dir = paths::instances_dir();
    let conf = dir.join(format!("{name}.conf"));
    let dropins = dir.join(format!("{name}.conf.d"));
    let defaults = host::version_defaults();
    let inst = if conf.is_file() {
        load_one(&conf, &defaults).0
    } else {
        None
    };
    let raw = raw_values(&conf, &dropins);
    let root = inst
        .as_ref()
        .map(|i| i.root.clone())
        .or_else(|| {
            raw.iter()
                .rev()
                .find(|(k, _)| k == keys::ROOT.name)
                .map(|(_, v)| v.clone())
        })
        .or_else(|| host::recorded_cleanup(name).map(|c| c.root.to_string_lossy().into_owned()))
        .or_else(|| Some(root::default_root(name.as_str())));
    let sysbox = match &inst {
        Some(i) => Some(i.uses_sysbox()),
        None if conf.is_file() => Some(
            raw.iter()
                .rev()
                .find(|(k, _)| k == keys::RUNTIME.name)
                .map_or(true, |(_, v)| v != "runc"),
        ),
        None => None,
    };
    let unit = host::unit_state(&name.unit())
        .map(|u| u.exists())
        .unwrap_or(false);
    let rules = host::LiveRules::default().any_residue(name);
    let run_dirs = [
        PathBuf::from(name.exec_root()),
        PathBuf::from(name.containerd_run_dir()),
        state::instance_dir(name),
    ]
    .into_iter()
    .filter(|p| p.symlink_metadata().is_ok())
    .collect();
    let account = name.account();
    let user = nix::unistd::User::from_name(&account).ok().flatten();
    let group = nix::unistd::Group::from_name(&account).ok().flatten();
    Found {
        name: name.clone(),
        network: inst
            .as_ref()
            .map(|i| i.network())
            .or_else(|| host::recorded_network(name)),
        conf,
        dropins,
        root,
        sysbox,
        unit,
        bridge: host::bridge_exists(name),
        rules,
        run_dirs,
        user,
        group,
        subids: host::has_subids(&account),
    }
}

/// `[Instance]` keys of a conf and its drop-ins as written, for a conf the
/// model refuses (its Root= must still be found and checked).
fn raw_values(conf: &Path, dropins: &Path) -> Vec<(String, String)> {
    let mut files = vec![conf.to_path_buf()];
    if let Ok(d) = std::fs::read_dir(dropins) {
        let mut more: Vec<PathBuf> = d
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            let (doc, _) = ini::parse(&f, &text);
            out.extend(
                doc.entries
                    .into_iter()
                    .filter(|e| e.section == Section::Instance.name() && !e.value.is_empty())
                    .map(|e| (e.key, e.value)),
            );
        }
    }
    out
}

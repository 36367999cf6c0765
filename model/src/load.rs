//! Loading a directory of confs into accepted instances and diagnostics.
//! Each conf is handled on its own: a bad file is reported and skipped, and
//! every other instance is still loaded (zram-generator stopped at the first
//! bad file and its users lost all their devices over a typo).

use crate::conflict::{self, Standing};
use crate::diag::Diagnostic;
use crate::ini;
use crate::instance::{self, Instance, VersionDefaults};
use crate::name::InstanceName;
use crate::source::{read_conf, read_conf_text};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const CONF_SUFFIX: &str = ".conf";
use crate::contract::prepare::ROOTLESS_RECORD;
pub const DROPIN_SUFFIX: &str = ".conf.d";

/// A conf that produced no unit, and the first reason why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub conf: PathBuf,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Catalog {
    /// Accepted instances, sorted by name.
    pub instances: Vec<Instance>,
    /// Instances whose bridge `NAME_docker0` exists (running), with or
    /// without a conf, sorted; read once from `sys_class_net`.
    pub running: Vec<InstanceName>,
    /// Every error and warning, grouped by file in name order.
    pub diagnostics: Vec<Diagnostic>,
    pub skipped: Vec<Skipped>,
}

pub struct LoadOptions<'a> {
    pub dir: &'a Path,
    pub defaults: &'a VersionDefaults,
    /// `/sys/class/net`, where a running instance's bridge shows up.
    pub sys_class_net: &'a Path,
}

/// Loads every `NAME.conf` of `opts.dir` (hidden files and other suffixes
/// are ignored). A missing directory means no instances.
pub fn load_dir(opts: &LoadOptions<'_>) -> Catalog {
    let mut catalog = Catalog::default();
    // One directory read instead of a stat per instance: which bridges
    // exist. Read before the confs: running instances matter even when the
    // instances directory is gone (the generator keeps a unit to stop them).
    let bridges: HashSet<String> = std::fs::read_dir(opts.sys_class_net)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    catalog.running = bridges
        .iter()
        .filter_map(|b| InstanceName::parse(b.strip_suffix("_docker0")?).ok())
        .collect();
    // A rootless instance has no bridge on the host: what says it runs is
    // the record its `prepare up` leaves until its `prepare down`.
    catalog.running.extend(
        crate::state::recorded_instances()
            .into_iter()
            .filter(|n| crate::state::path(n, ROOTLESS_RECORD).exists()),
    );
    catalog.running.sort();
    catalog.running.dedup();
    let listing = match list_dir(opts.dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return catalog,
        Err(e) => {
            catalog.diagnostics.push(Diagnostic::error(
                opts.dir,
                None,
                format!("cannot list the instances directory: {e}"),
            ));
            return catalog;
        }
    };

    let loaded = crate::parallel::par_map(&listing.confs, |conf| {
        let has_dropins = conf
            .file_name()
            .map(|n| {
                listing
                    .dropin_dirs
                    .contains(&format!("{}.d", n.to_string_lossy()))
            })
            .unwrap_or(false);
        load_conf(conf, has_dropins, opts.defaults)
    });
    let mut candidates = Vec::with_capacity(loaded.len());
    for (conf, (instance, modified, diags)) in listing.confs.iter().zip(loaded) {
        if instance.is_none() {
            catalog.skipped.push(Skipped {
                conf: conf.clone(),
                reason: diags
                    .iter()
                    .find(|d| d.is_error())
                    .map(|d| d.message.clone())
                    .unwrap_or_default(),
            });
        }
        catalog.diagnostics.extend(diags);
        if let Some(inst) = instance {
            let standing = Standing {
                running: catalog.running.binary_search(&inst.name).is_ok(),
                modified,
            };
            candidates.push((inst, standing));
        }
    }

    let (accepted, conflicts) = conflict::resolve(candidates);
    let (accepted, unknown_peers) = resolve_peers(accepted, opts.dir);
    for d in conflicts.iter().chain(&unknown_peers) {
        catalog.skipped.push(Skipped {
            conf: d.path.clone(),
            reason: d.message.clone(),
        });
    }
    catalog.diagnostics.extend(conflicts);
    catalog.diagnostics.extend(unknown_peers);
    catalog.instances = accepted;
    catalog
}

/// Turns every `AllowFrom=` instance name into that instance's networks.
/// A name with no accepted instance refuses the conf that names it: opening
/// an instance to a peer that is not there is a typo or an ordering mistake
/// the admin must see, not a silent no-op. Refusals can cascade (a peer
/// refused for its own unknown peer), so this repeats until nothing changes.
fn resolve_peers(mut accepted: Vec<Instance>, dir: &Path) -> (Vec<Instance>, Vec<Diagnostic>) {
    let mut refused = Vec::new();
    loop {
        let known: HashSet<InstanceName> = accepted.iter().map(|i| i.name.clone()).collect();
        let before = accepted.len();
        accepted.retain(|inst| {
            let missing = inst.allow_from.iter().find(|a| match &a.peer {
                instance::Peer::Instance(p) => !known.contains(p),
                instance::Peer::Net(_) => false,
            });
            match missing {
                Some(a) => {
                    let instance::Peer::Instance(p) = &a.peer else {
                        return true;
                    };
                    refused.push(Diagnostic::at(
                        &a.origin,
                        crate::Severity::Error,
                        format!(
                            "AllowFrom={p}: there is no instance {p} (no valid {}/{p}.conf); fix or remove the name",
                            dir.display()
                        ),
                    ));
                    false
                }
                None => true,
            }
        });
        if accepted.len() == before {
            break;
        }
    }
    let nets: std::collections::HashMap<InstanceName, [ipnet::Ipv4Net; 2]> = accepted
        .iter()
        .map(|i| (i.name.clone(), i.own_nets()))
        .collect();
    let rootless: HashSet<InstanceName> = accepted
        .iter()
        .filter(|i| i.rootless)
        .map(|i| i.name.clone())
        .collect();
    // A rootless peer's containers reach the host as its user's sockets
    // (locally generated, never forwarded), which the admission of the
    // instance naming it never sees: its own rules let them into this
    // instance's networks instead (`reach`), and its networks, which live
    // in its own namespace, are admitted nowhere.
    let mut reach: std::collections::HashMap<InstanceName, Vec<ipnet::Ipv4Net>> =
        std::collections::HashMap::new();
    for inst in &mut accepted {
        let mut allowed = Vec::new();
        // A rootless instance's own AllowFrom= admits nothing (its conf
        // says so when loaded).
        let admits = !inst.rootless;
        for a in inst.allow_from.iter().filter(|_| admits) {
            match &a.peer {
                instance::Peer::Net(n) => allowed.push(*n),
                instance::Peer::Instance(p) if rootless.contains(p) => {
                    reach.entry(p.clone()).or_default().extend(inst.own_nets())
                }
                instance::Peer::Instance(p) => allowed.extend(nets.get(p).into_iter().flatten()),
            }
        }
        allowed.dedup();
        inst.allowed_nets = allowed;
    }
    for inst in accepted.iter_mut().filter(|i| i.rootless) {
        let mut nets = reach.remove(&inst.name).unwrap_or_default();
        nets.sort();
        nets.dedup();
        inst.reach = nets;
    }
    (accepted, refused)
}

/// Loads one conf with its drop-ins; the instance is `None` on any error.
pub fn load_one(conf: &Path, defaults: &VersionDefaults) -> (Option<Instance>, Vec<Diagnostic>) {
    let (instance, _, diags) = load_conf(conf, true, defaults);
    (instance, diags)
}

/// `look_for_dropins` is false when the caller's directory listing already
/// showed there is no `NAME.conf.d`, saving a failed open per instance.
fn load_conf(
    conf: &Path,
    look_for_dropins: bool,
    defaults: &VersionDefaults,
) -> (Option<Instance>, SystemTime, Vec<Diagnostic>) {
    let mut modified = SystemTime::UNIX_EPOCH;
    let (instance, diags) = load_conf_inner(conf, look_for_dropins, defaults, &mut modified);
    (instance, modified, diags)
}

fn load_conf_inner(
    conf: &Path,
    look_for_dropins: bool,
    defaults: &VersionDefaults,
    modified: &mut SystemTime,
) -> (Option<Instance>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let file_name = conf.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = file_name.strip_suffix(CONF_SUFFIX).unwrap_or(file_name);
    let name = match InstanceName::parse(stem) {
        Ok(n) => n,
        Err(e) => {
            diags.push(Diagnostic::error(conf, None, e));
            return (None, diags);
        }
    };
    let text = match read_conf(conf) {
        Ok(c) => {
            *modified = c.modified;
            c.text
        }
        Err(e) => {
            diags.push(Diagnostic::error(conf, None, e));
            return (None, diags);
        }
    };
    if text.trim().is_empty() {
        diags.push(Diagnostic::error(
            conf,
            None,
            "is empty; an instance needs at least [Instance] with BridgeCIDR= and PoolBase= (see dockyard.conf(5))",
        ));
        return (None, diags);
    }
    let mut docs = Vec::new();
    let (doc, parse_diags) = ini::parse(conf, &text);
    docs.push(doc);
    diags.extend(parse_diags);

    let dropin_dir = conf.with_file_name(format!("{stem}{DROPIN_SUFFIX}"));
    let listed = if look_for_dropins {
        list_dir(&dropin_dir).map(|l| l.confs)
    } else {
        Ok(Vec::new())
    };
    let dropins = match listed {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            diags.push(Diagnostic::error(
                &dropin_dir,
                None,
                format!("cannot list drop-ins: {e}"),
            ));
            return (None, diags);
        }
    };
    for dropin in &dropins {
        match read_conf_text(dropin) {
            Ok(text) => {
                let (doc, parse_diags) = ini::parse(dropin, &text);
                docs.push(doc);
                diags.extend(parse_diags);
            }
            Err(e) => diags.push(Diagnostic::error(dropin, None, e)),
        }
    }
    let parse_failed = diags.iter().any(Diagnostic::is_error);
    let files: Vec<PathBuf> = std::iter::once(conf.to_path_buf())
        .chain(dropins.iter().cloned())
        .collect();
    let (instance, more) = instance::build(name, conf, dropins, &docs, defaults);
    diags.extend(more);
    add_comment_hints(&mut diags, &docs);
    // Report in reading order: file by file, line by line (whole-file
    // messages first), as an admin fixes them.
    diags.sort_by_key(|d| {
        let file = files
            .iter()
            .position(|f| *f == d.path)
            .unwrap_or(usize::MAX);
        (file, d.line.unwrap_or(0))
    });
    if parse_failed {
        return (None, diags);
    }
    (instance, diags)
}

/// A value with a side comment (`Runtime=runc  # why`) keeps the comment,
/// as systemd reads it; whatever check then fails on that line, its
/// message says why, once, for every key alike.
fn add_comment_hints(diags: &mut [Diagnostic], docs: &[ini::Document]) {
    for d in diags.iter_mut() {
        let Some(line) = d.line else { continue };
        let entry = docs
            .iter()
            .flat_map(|doc| &doc.entries)
            .find(|e| e.origin.line == line && e.origin.path == d.path);
        if let Some(e) = entry {
            let hint = crate::network::comment_hint(&e.value);
            if !hint.is_empty() && !d.message.contains(hint.trim()) {
                d.message.push_str(hint);
            }
        }
    }
}

struct Listing {
    /// `*.conf` entries (not hidden), sorted by file name.
    confs: Vec<PathBuf>,
    /// Names of `*.conf.d` entries, candidates for drop-in directories.
    dropin_dirs: HashSet<String>,
}

fn list_dir(dir: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing {
        confs: Vec::new(),
        dropin_dirs: HashSet::new(),
    };
    for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if name.ends_with(CONF_SUFFIX) {
            listing.confs.push(entry.path());
        } else if name.ends_with(DROPIN_SUFFIX) {
            listing.dropin_dirs.insert(name.into_owned());
        }
    }
    listing.confs.sort();
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(dir: &Path, name: &str, third: u8, extra: &str) {
        std::fs::write(
            dir.join(format!("{name}.conf")),
            format!(
                "[Instance]\nDockerVersion=29.2.1\nBridgeCIDR=10.9.{third}.1/24\nPoolBase=172.{}.0.0/16\n{extra}",
                20 + third
            ),
        )
        .expect("write conf");
    }

    fn load(dir: &Path) -> Catalog {
        let defaults = VersionDefaults {
            docker: Ok("29.2.1".into()),
            known_docker: None,
        };
        load_dir(&LoadOptions {
            dir,
            defaults: &defaults,
            sys_class_net: &dir.join("no-sys-class-net"),
        })
    }

    /// A rootful instance's AllowFrom= naming a rootless one becomes the
    /// rootless one's reach, in whatever order the confs are read; its own
    /// admission gains nothing for it.
    #[test]
    fn allow_from_naming_a_rootless_instance_is_its_reach() {
        let dir = tempfile::tempdir().expect("tempdir");
        conf(dir.path(), "dy1", 1, "[Network]\nAllowFrom=dyr\n");
        conf(dir.path(), "dy2", 2, "[Network]\nAllowFrom=dy1 dyr\n");
        conf(dir.path(), "dy3", 3, "");
        conf(dir.path(), "dyr", 4, "Rootless=yes\n");
        let c = load(dir.path());
        assert!(c.skipped.is_empty(), "{:?}", c.diagnostics);
        let get = |n: &str| {
            c.instances
                .iter()
                .find(|i| i.name.as_str() == n)
                .unwrap_or_else(|| panic!("{n} loaded"))
        };
        let nets = |s: &[&str]| -> Vec<ipnet::Ipv4Net> {
            s.iter().map(|n| n.parse().expect("net")).collect()
        };
        assert_eq!(
            get("dyr").reach,
            nets(&[
                "10.9.1.0/24",
                "10.9.2.0/24",
                "172.21.0.0/16",
                "172.22.0.0/16"
            ])
        );
        assert!(get("dy1").allowed_nets.is_empty(), "{:?}", get("dy1"));
        assert_eq!(
            get("dy2").allowed_nets,
            nets(&["10.9.1.0/24", "172.21.0.0/16"])
        );
        assert!(get("dy3").reach.is_empty() && get("dy1").reach.is_empty());
        let n = get("dyr").network();
        assert_eq!(n.reach, get("dyr").reach);
        assert_eq!(n.rootless_user.as_deref(), Some("dyr_docker"));
    }
}

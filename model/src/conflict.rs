//! Cross-instance checks: two instances may not share address space or
//! roots. When they do, one is refused, by a rule that is deterministic and
//! never takes a running instance's unit away because of a newcomer:
//!
//! 1. an instance that is running (its bridge exists) wins over one that is
//!    not;
//! 2. then the instance whose main conf was modified earlier wins (a newly
//!    dropped file is newer than the conf of the instance it collides with);
//! 3. then the instance whose name sorts first wins.
//!
//! Instances are accepted greedily in that order; each later one is checked
//! against those already accepted, so a refused instance never blocks
//! anybody.

use crate::diag::{Diagnostic, Origin, Severity};
use crate::instance::Instance;
use crate::network;
use crate::root;
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

/// What decides precedence, gathered by the loader from the file system.
#[derive(Debug, Clone)]
pub struct Standing {
    pub running: bool,
    pub modified: SystemTime,
}

struct Accepted<'a> {
    instance: &'a Instance,
    standing: &'a Standing,
}

/// Returns the accepted instances (sorted by name) and one error per refused
/// instance naming the instance it collides with.
pub fn resolve(candidates: Vec<(Instance, Standing)>) -> (Vec<Instance>, Vec<Diagnostic>) {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let (ia, sa) = &candidates[a];
        let (ib, sb) = &candidates[b];
        sb.running
            .cmp(&sa.running)
            .then(sa.modified.cmp(&sb.modified))
            .then(ia.name.cmp(&ib.name))
    });

    // Accepted networks are pairwise disjoint, so an interval map keyed by
    // first address answers "does this overlap anything?" with one lookup.
    let mut networks: BTreeMap<u32, (u32, usize, &'static str)> = BTreeMap::new();
    let mut roots: BTreeSet<&str> = BTreeSet::new();
    let mut root_owner: BTreeMap<&str, usize> = BTreeMap::new();
    let mut accepted: Vec<usize> = Vec::new();
    let mut diags = Vec::new();

    for &idx in &order {
        let (inst, standing) = &candidates[idx];
        let conflict = network_conflict(inst, &networks)
            .map(|(key, other, other_key)| {
                let o = &candidates[other].0;
                let (net, other_net) = (key_net(inst, key), key_net(o, other_key));
                (
                    key_origin(inst, key),
                    format!(
                        "{key} {net} overlaps {other_key} {other_net} of instance {} ({})",
                        o.name,
                        describe_origin(o, other_key)
                    ),
                    other,
                )
            })
            .or_else(|| {
                root_conflict(&inst.root, &roots).map(|other_root| {
                    let other = root_owner.get(other_root).copied().unwrap_or(idx);
                    let o = &candidates[other].0;
                    let relation = if other_root == inst.root {
                        "is the same as"
                    } else if root::is_inside(&inst.root, other_root) {
                        "lies inside"
                    } else {
                        "contains"
                    };
                    (
                        inst.origins.root.clone(),
                        format!(
                            "Root {} {relation} Root {} of instance {} ({})",
                            inst.root,
                            o.root,
                            o.name,
                            describe_origin(o, "Root")
                        ),
                        other,
                    )
                })
            });
        match conflict {
            None => {
                for (key, net) in [("BridgeCIDR", inst.bridge), ("PoolBase", inst.pool)] {
                    let (start, end) = network::span(&net);
                    networks.insert(start, (end, idx, key));
                }
                roots.insert(&inst.root);
                root_owner.insert(&inst.root, idx);
                accepted.push(idx);
            }
            Some((origin, what, other)) => {
                let winner = Accepted {
                    instance: &candidates[other].0,
                    standing: &candidates[other].1,
                };
                let msg = format!(
                    "{what}; {} keeps it because {}. This instance is skipped: give it a range or root of its own",
                    winner.instance.name,
                    precedence_reason(&winner, standing)
                );
                diags.push(match origin {
                    Some(o) => Diagnostic::at(&o, Severity::Error, msg),
                    None => Diagnostic::error(&inst.conf, None, msg),
                });
            }
        }
    }

    let mut result: Vec<Instance> = Vec::with_capacity(accepted.len());
    let mut slots: Vec<Option<Instance>> = candidates.into_iter().map(|(i, _)| Some(i)).collect();
    for idx in accepted {
        if let Some(inst) = slots[idx].take() {
            result.push(inst);
        }
    }
    result.sort_by(|a, b| a.name.cmp(&b.name));
    (result, diags)
}

fn network_conflict(
    inst: &Instance,
    networks: &BTreeMap<u32, (u32, usize, &'static str)>,
) -> Option<(&'static str, usize, &'static str)> {
    for (key, net) in [("BridgeCIDR", inst.bridge), ("PoolBase", inst.pool)] {
        let (start, end) = network::span(&net);
        if let Some((_, (other_end, owner, other_key))) = networks.range(..=end).next_back() {
            if *other_end >= start {
                return Some((key, *owner, other_key));
            }
        }
    }
    None
}

fn root_conflict<'a>(root: &str, roots: &BTreeSet<&'a str>) -> Option<&'a str> {
    if let Some(same) = roots.get(root) {
        return Some(same);
    }
    // An accepted root that is an ancestor of this one.
    let mut prefix = root;
    while let Some(pos) = prefix.rfind('/') {
        prefix = &root[..pos];
        if let Some(anc) = roots.get(prefix) {
            return Some(anc);
        }
    }
    // An accepted root below this one: the first key after "root/".
    let below = format!("{root}/");
    roots
        .range::<str, _>((
            std::ops::Bound::Included(below.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .next()
        .filter(|r| r.starts_with(&below))
        .copied()
}

fn key_net(inst: &Instance, key: &str) -> Ipv4Net {
    match key {
        "PoolBase" => inst.pool,
        _ => inst.bridge,
    }
}

fn key_origin(inst: &Instance, key: &str) -> Option<Origin> {
    match key {
        "PoolBase" => inst.origins.pool.clone(),
        "BridgeCIDR" => inst.origins.bridge.clone(),
        _ => inst.origins.root.clone(),
    }
}

fn describe_origin(inst: &Instance, key: &str) -> String {
    match key_origin(inst, key) {
        Some(o) => o.to_string(),
        None => format!("{}, by default", inst.conf.display()),
    }
}

fn precedence_reason(winner: &Accepted<'_>, loser: &Standing) -> String {
    if winner.standing.running && !loser.running {
        format!(
            "it is running (its bridge {} exists)",
            winner.instance.name.bridge()
        )
    } else if winner.standing.modified < loser.modified {
        "its conf is older".into()
    } else {
        "its name sorts first".into()
    }
}

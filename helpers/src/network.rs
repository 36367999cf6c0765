//! `dockyard-network up|down`: the instance's bridge, its address,
//! IPv4 forwarding, its firewall rules and its dockerd's network store.
//! Everything comes from the arguments, so `down` works after the
//! instance's conf was deleted. A rootless instance (`--rootless-user`)
//! gets its firewall rules only: its networks, bridge and network store
//! live in its own network namespace, made by rootlesskit as its user.

use std::path::Path;
use std::time::Instant;

use dockyard_model::contract::firewall as firewall_record;
use dockyard_model::contract::network::{self, Network};
use dockyard_model::firewall::{self, choice, Backend, Subject};
use dockyard_model::paths::{self, Search};
use dockyard_model::InstanceName;
use ipnet::Ipv4Net;

use crate::args;
use crate::error::{Context, Failures, Result};
use crate::netlink::Netlink;
use crate::{bail, dirs, notify, state};

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    let opts = args::parse(argv, network::OPTIONS)?;
    let action = opts.action(&["up", "down"])?;
    // `down --instance NAME` alone: the values `up` recorded (the unit the
    // generator writes for a running instance whose conf is gone).
    if action == "down" && opts.instance_only() {
        let instance = dockyard_model::contract::instance(&opts).map_err(args::usage)?;
        return down_from_record(&instance);
    }
    let net = Network::parse(&opts).map_err(args::usage)?;
    if action == "up" {
        let accepted = network::accepted_host_routes(&opts).map_err(args::usage)?;
        // A rootless instance's networks are not on the host: no host
        // route can be shadowed by them.
        if !net.is_rootless() {
            refuse_crossing_routes(&net, &accepted)?;
        }
        up(&net)?;
        state::save(&net.instance, network::RECORD, &net.record())
    } else {
        down(&net.instance, Some(&net))?;
        state::remove(&net.instance, network::RECORD)
    }
}

/// Before anything is changed: a host route over the instance's networks
/// (a LAN's 10.90.0.0/16 over BridgeCIDR=10.90.1.1/24) would be shadowed
/// by the bridge, silently cutting the host off from those addresses. A
/// start is where that must stop, against the tables as they are now;
/// `AcceptHostRoute=` in the conf says the overlap is meant.
fn refuse_crossing_routes(net: &Network, accepted: &[Ipv4Net]) -> Result<()> {
    let found = dockyard_netlink::crossing::live_crossings(&[net.bridge_net(), net.pool], accepted)
        .ctx(|| "cannot read the host's routes")?;
    let Some(first) = found.first() else {
        return Ok(());
    };
    bail!(
        "instance {}: {first}{}; give the instance networks no host route covers (BridgeCIDR=, PoolBase=), or, if that routed network is meant for it, add AcceptHostRoute={} to its conf's [Network] section (dockyard.conf(5))",
        net.instance,
        if found.len() > 1 {
            format!(" (and {} more)", found.len() - 1)
        } else {
            String::new()
        },
        first.route.dst
    )
}

fn down_from_record(instance: &InstanceName) -> Result<()> {
    let recorded = match state::load(instance, network::RECORD)? {
        Some(r) => Some(Network::parse(&r).map_err(|e| {
            crate::error::Error::new(format!(
                "the network record of instance {instance} is unreadable ({e}); remove {} and run this again",
                dockyard_model::state::path(instance, network::RECORD).display()
            ))
        })?),
        None => None,
    };
    if recorded.is_none() {
        log::warn!(
            "instance {instance}: no network state recorded; removing its tagged rules and bridge {}, but not the bridges of its user-defined networks (their pool is unknown)",
            instance.bridge()
        );
    }
    down(instance, recorded.as_ref())?;
    state::remove(instance, network::RECORD)
}

/// The instance as its rules see it. A rootless instance's user must exist
/// (its rules key on the uid): refused before anything is changed.
fn subject(net: &Network) -> Result<Subject> {
    let uid = match &net.rootless_user {
        Some(user) => Some(crate::users::rootless_uid(net.instance.as_str(), user)?),
        None => None,
    };
    Ok(Subject::resolve(net.clone(), |_| uid))
}

pub fn up(net: &Network) -> Result<()> {
    let t0 = Instant::now();
    let this = subject(net)?;
    let chosen = choice::chosen();
    let backend = chosen.backend;
    notify::status(&format!("setting up the network of {}", net.instance));
    leave_other_backends(&net.instance, backend)?;
    // Recorded before the rules go in: a helper killed after writing them
    // must not leave rules that no record names.
    state::save(
        &net.instance,
        firewall_record::RECORD,
        &choice::record_text(backend),
    )?;
    // The firewall's read and write processes start first and get going
    // while the bridge is set up (both are a few milliseconds, and the
    // firewall dominates a bring-up). If the bridge fails, the write gets
    // no input and changes nothing.
    let change = crate::firewall::begin(backend)?;
    if !net.is_rootless() {
        bridge_up(net)?;
    }
    let changed = change.up(&this)?;
    let what = match (&net.rootless_user, &this.user) {
        (Some(name), Some(user)) => format!("rootless, its rules key on user {name} (uid {user})"),
        _ => format!("bridge {} has {} and is up", net.bridge(), net.bridge_cidr),
    };
    log::info!(
        "instance {}: {what}; {} rules {} ({} ms; {})",
        net.instance,
        backend.name(),
        if changed == 0 {
            "were already in place"
        } else {
            "put in place"
        },
        t0.elapsed().as_millis(),
        chosen.why
    );
    notify::status(&format!("network of {} is ready", net.instance));
    Ok(())
}

/// When the instance's rules were written by another backend than the one
/// chosen now (the setting changed while it ran and it is starting again
/// without a stop in between), that backend removes them first.
fn leave_other_backends(instance: &InstanceName, backend: &'static dyn Backend) -> Result<()> {
    let old = match choice::recorded(instance) {
        Ok(Some(old)) if old.name() != backend.name() => vec![old],
        Ok(_) => return Ok(()),
        Err(e) => {
            log::warn!("instance {instance}: {e}; removing its rules from every other backend");
            installed_backends()
                .into_iter()
                .filter(|b| b.name() != backend.name())
                .collect()
        }
    };
    for b in old {
        log::info!(
            "instance {instance}: moving its rules from {} to {}",
            b.name(),
            backend.name()
        );
        crate::firewall::begin(b)?.down(instance)?;
    }
    Ok(())
}

/// The backends whose programs this host has.
fn installed_backends() -> Vec<&'static dyn Backend> {
    firewall::BACKENDS
        .into_iter()
        .filter(|b| paths::find_program(b.read_program().name, Search::PathOrDefault).is_ok())
        .collect()
}

/// The bridge with exactly its address, up; forwarding; dockerd's network
/// store matching the networks.
fn bridge_up(net: &Network) -> Result<()> {
    let bridge = net.bridge();
    let mut nl = Netlink::open().ctx(|| "cannot open a netlink socket")?;
    let link = ensure_bridge(&mut nl, &bridge)?;
    ensure_address(&mut nl, link.index, &bridge, net.bridge_cidr)?;
    if !link.up {
        nl.set_up(link.index)
            .ctx(|| format!("cannot bring bridge {bridge} up"))?;
    }
    enable_forwarding()?;
    if let Some(root) = &net.data_root {
        match_network_store(net, root)?;
    }
    Ok(())
}

/// dockerd keeps its networks in `DATA_ROOT/network/files/local-kv.db` and,
/// at start, brings the stored default network back (putting its old
/// address on the bridge) and every user-defined network with its old
/// subnet, before it looks at its flags. So when the conf gave the instance
/// other networks, the store is set aside (never deleted) and dockerd builds
/// a new one from the conf; user-defined networks must be created again,
/// and the log says so. The networks the store was built for are recorded
/// next to it.
fn match_network_store(net: &Network, data_root: &Path) -> Result<()> {
    let dir = data_root.join("network");
    let record = dir.join("dockyard-networks");
    let store = dir.join("files").join("local-kv.db");
    // The keys are the contract's option names, as in the helpers' records.
    let want = format!(
        "{}={}\n{}={}\n{}={}\n",
        network::BRIDGE_CIDR.name,
        net.bridge_cidr,
        network::FIXED_CIDR.name,
        net.fixed,
        network::POOL.name,
        net.pool
    );
    let have = match std::fs::read_to_string(&record) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("cannot read {}: {e}", record.display()),
    };
    // No record: a new instance, or one started by Dockyard 0.1, whose
    // store was built from this same conf as far as anyone can know.
    if let Some(have) = have.as_deref().filter(|h| *h != want) {
        if store.exists() {
            let aside = dir.join("files").join(format!(
                "local-kv.db.before-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            ));
            std::fs::rename(&store, &aside)
                .ctx(|| format!("cannot move {} aside", store.display()))?;
            log::warn!(
                "instance {}: its networks changed ({} -> {}); Docker's network store was moved to {} and will be rebuilt from the conf: user-defined networks must be created again",
                net.instance,
                have.trim().replace('\n', ", "),
                want.trim().replace('\n', ", "),
                aside.display()
            );
        }
    }
    if have.as_deref() != Some(want.as_str()) {
        // dockerd makes it on its first start; only created here if missing.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&dir)
            .ctx(|| format!("cannot create {}", dir.display()))?;
        dirs::write_atomic(&record, want.as_bytes())?;
    }
    Ok(())
}

fn ensure_bridge(nl: &mut Netlink, name: &str) -> Result<crate::netlink::Link> {
    let existing = nl.link(name).ctx(|| "cannot list network interfaces")?;
    let link = match existing {
        Some(l) => l,
        None => {
            nl.create_bridge(name)
                .ctx(|| format!("cannot create bridge {name}"))?;
            match nl.link(name).ctx(|| "cannot list network interfaces")? {
                Some(l) => l,
                None => bail!("bridge {name} vanished right after it was created; is something else deleting interfaces?"),
            }
        }
    };
    if !link.is_bridge {
        bail!(
            "interface {name} exists but is not a bridge; Dockyard will not reuse it. Delete it (ip link del {name}) or choose another bridge name"
        );
    }
    Ok(link)
}

/// Exactly one IPv4 address on the bridge: ours. Addresses from an older conf
/// are removed so dockerd does not pick the wrong subnet.
fn ensure_address(nl: &mut Netlink, index: u32, bridge: &str, want: Ipv4Net) -> Result<()> {
    let addrs = nl.addresses_v4().ctx(|| "cannot list IPv4 addresses")?;
    let mut have = false;
    for a in addrs.iter().filter(|a| a.index == index) {
        if a.net == want {
            have = true;
        } else {
            log::info!(
                "bridge {bridge}: removing old address {} (want {want})",
                a.net
            );
            nl.del_address(index, a.net)
                .ctx(|| format!("cannot remove old address {} from bridge {bridge}", a.net))?;
        }
    }
    if !have {
        nl.add_address(index, want)
            .ctx(|| format!("cannot add address {want} to bridge {bridge}"))?;
    }
    Ok(())
}

fn enable_forwarding() -> Result<()> {
    let cur = std::fs::read_to_string(IP_FORWARD).unwrap_or_default();
    if cur.trim() != "1" {
        std::fs::write(IP_FORWARD, "1\n")
            .ctx(|| format!("cannot enable IPv4 forwarding ({IP_FORWARD})"))?;
    }
    Ok(())
}

/// Teardown runs every step even if one fails, so one problem does not leave
/// the rest behind; it exits 0 when there was nothing to remove. `net` is
/// what the unit or the record says (`None`: nothing known but the name).
/// The rules go by the instance's tag, whatever it was; the bridges only
/// of a rootful instance (a rootless one has none on the host, and a
/// `br-…` bridge in its pool is someone else's).
pub fn down(instance: &InstanceName, net: Option<&Network>) -> Result<()> {
    let bridge = instance.bridge();
    let pool = net.map(|n| n.pool);
    let mut f = Failures::default();
    notify::status(&format!("removing firewall rules of {instance}"));
    // The backend that wrote the rules; with nothing recorded (a Dockyard
    // that kept no record, or a record lost), every backend looks.
    let backends = match choice::recorded(instance) {
        Ok(Some(b)) => vec![b],
        Ok(None) => installed_backends(),
        Err(e) => {
            log::warn!("instance {instance}: {e}; looking in every backend");
            installed_backends()
        }
    };
    let mut removed = true;
    for backend in backends {
        let change = crate::firewall::begin(backend).and_then(|c| c.down(instance));
        match f.record(change) {
            Some(n) if n > 0 => log::info!("instance {instance}: {} rules removed", backend.name()),
            Some(_) => {}
            None => removed = false,
        }
    }
    // Kept while rules may be left, so the next try knows where they are.
    if removed {
        f.record(state::remove(instance, firewall_record::RECORD));
    }

    if net.is_some_and(Network::is_rootless) {
        return f.finish(&format!("network teardown of instance {instance}"));
    }
    notify::status(&format!("removing bridges of {instance}"));
    let nl = f.record(Netlink::open().ctx(|| "cannot open a netlink socket"));
    if let Some(mut nl) = nl {
        let listed = nl
            .links()
            .and_then(|l| Ok((l, nl.addresses_v4()?)))
            .ctx(|| "cannot list network interfaces and addresses");
        if let Some((links, addrs)) = f.record(listed) {
            for l in &links {
                let ours = l.name == bridge;
                // Leftover user-defined networks of this instance: br-… bridges
                // whose address lies in this instance's pool, and nothing else.
                let leftover = l.is_bridge
                    && l.name.starts_with("br-")
                    && addrs.iter().any(|ad| {
                        ad.index == l.index && pool.is_some_and(|p| p.contains(&ad.net.addr()))
                    });
                if ours && !l.is_bridge {
                    log::warn!(
                        "interface {} is not a bridge; leaving it alone (Dockyard did not create it)",
                        l.name
                    );
                    continue;
                }
                if ours || leftover {
                    let r = nl
                        .delete_link(l.index)
                        .ctx(|| format!("cannot delete bridge {}", l.name));
                    if let Some(true) = f.record(r) {
                        log::info!("instance {instance}: deleted bridge {}", l.name);
                    }
                }
            }
        }
    }
    f.finish(&format!("network teardown of instance {instance}"))
}

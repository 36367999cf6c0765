//! `dockyard-network up|down`: the instance's bridge, its address,
//! IPv4 forwarding and its firewall rules. Everything comes from the
//! arguments, so `down` works after the instance's conf was deleted.

use std::time::Instant;

use ipnet::Ipv4Net;

use crate::args::{self, Opts};
use crate::error::{Context, Failures, Result};
use crate::firewall::{self, Spec};
use crate::netlink::Netlink;
use crate::{bail, notify, state};

const OPTIONS: &[&str] = &["instance", "bridge", "bridge-cidr", "fixed-cidr", "pool"];
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

#[derive(Debug)]
pub struct NetArgs {
    pub instance: String,
    pub bridge: String,
    pub bridge_cidr: Ipv4Net,
    pub fixed: Ipv4Net,
    pub pool: Ipv4Net,
}

pub fn parse(opts: &Opts) -> Result<NetArgs> {
    Ok(NetArgs {
        instance: args::instance_name(opts.required("instance")?)?,
        bridge: args::bridge_name(opts.required("bridge")?)?,
        bridge_cidr: args::interface_cidr("bridge-cidr", opts.required("bridge-cidr")?)?,
        fixed: args::network_cidr("fixed-cidr", opts.required("fixed-cidr")?)?,
        pool: args::network_cidr("pool", opts.required("pool")?)?,
    })
}

pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    let opts = args::parse(argv, OPTIONS, &[])?;
    let action = opts.action(&["up", "down"])?;
    // `down --instance NAME` alone: the values `up` recorded (the unit the
    // generator writes for a running instance whose conf is gone).
    if action == "down" && OPTIONS[1..].iter().all(|o| opts.get(o).is_none()) {
        let instance = args::instance_name(opts.required("instance")?)?;
        return down_from_state(&instance);
    }
    let a = parse(&opts)?;
    if action == "up" {
        up(&a)?;
        state::save(
            &a.instance,
            STATE,
            &[
                ("bridge", a.bridge.clone()),
                ("bridge-cidr", a.bridge_cidr.to_string()),
                ("fixed-cidr", a.fixed.to_string()),
                ("pool", a.pool.to_string()),
            ],
        )
    } else {
        down(&a.instance, &a.bridge, Some(a.pool))?;
        state::remove(&a.instance, STATE)
    }
}

const STATE: &str = "network";

fn down_from_state(instance: &str) -> Result<()> {
    let recorded = state::load(instance, STATE)?;
    let value = |k: &str| recorded.as_ref().and_then(|m| m.get(k)).map(String::as_str);
    let bridge = match value("bridge") {
        Some(b) => args::bridge_name(b)?,
        None => {
            log::warn!(
                "instance {instance}: no network state recorded; removing its tagged rules and bridge {instance}_docker0, but not the bridges of its user-defined networks (their pool is unknown)"
            );
            format!("{instance}_docker0")
        }
    };
    let pool = value("pool")
        .map(|p| args::network_cidr("pool", p))
        .transpose()?;
    down(instance, &bridge, pool)?;
    state::remove(instance, STATE)
}

fn spec(a: &NetArgs) -> Spec {
    Spec {
        instance: a.instance.clone(),
        bridge: a.bridge.clone(),
        fixed: a.fixed,
        pool: a.pool,
    }
}

pub fn up(a: &NetArgs) -> Result<()> {
    let t0 = Instant::now();
    // dockerd refuses a --fixed-cidr outside the bridge's subnet; say so here,
    // where the message can name both values.
    if !a.bridge_cidr.trunc().contains(&a.fixed) {
        bail!(
            "instance {}: --fixed-cidr {} is not inside the bridge subnet {} (from --bridge-cidr {}); fix the instance's network settings",
            a.instance, a.fixed, a.bridge_cidr.trunc(), a.bridge_cidr
        );
    }
    notify::status(&format!("setting up bridge {}", a.bridge));
    let mut nl = Netlink::open().ctx(|| "cannot open a netlink socket")?;
    let link = ensure_bridge(&mut nl, &a.bridge)?;
    ensure_address(&mut nl, link.index, &a.bridge, a.bridge_cidr)?;
    if !link.up {
        nl.set_up(link.index)
            .ctx(|| format!("cannot bring bridge {} up", a.bridge))?;
    }
    enable_forwarding()?;

    notify::status(&format!("adding firewall rules for {}", a.instance));
    let changed = firewall::apply_up(&spec(a))?;
    log::info!(
        "instance {}: bridge {} has {} and is up; firewall chain {} {} ({} ms)",
        a.instance,
        a.bridge,
        a.bridge_cidr,
        firewall::chain(&a.instance),
        if changed == 0 {
            "was already complete"
        } else {
            "updated"
        },
        t0.elapsed().as_millis()
    );
    notify::status(&format!("network of {} is ready", a.instance));
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
/// the rest behind; it exits 0 when there was nothing to remove.
pub fn down(instance: &str, bridge: &str, pool: Option<Ipv4Net>) -> Result<()> {
    let mut f = Failures::default();
    notify::status(&format!("removing firewall rules of {instance}"));
    if let Some(n) = f.record(firewall::apply_down(instance)) {
        if n > 0 {
            log::info!("instance {instance}: firewall rules and chains removed");
        }
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

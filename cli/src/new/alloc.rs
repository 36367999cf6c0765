//! Choosing an instance's networks: a bridge network and a pool, each the
//! lowest free block of its size in its range (the host's policy,
//! dockyard-host.conf(5), or `new`'s options). Packing from the bottom
//! keeps a host's instances in one readable block and fits the most of
//! them; dockyard(8), NETWORK ALLOCATION, has the arithmetic.
//!
//! Everything in use arrives as a list of [`Taken`] networks (host routes
//! of every table, interface addresses, other confs), so this is pure and
//! tested without a host. Networks are compared as address intervals: a
//! route to 172.16.0.0/12 through a VPN covers every block inside it. The
//! intervals are sorted once and swept, so a pick costs O(n log n) in the
//! number of networks in use, whatever the size of the range.

use dockyard_model::hostconf;
use dockyard_model::keys;
use dockyard_model::network::span;
use dockyard_netlink::Route;
use ipnet::Ipv4Net;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;

/// A network something already uses, and what, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub net: Ipv4Net,
    pub what: String,
}

/// Where the host's routes and addresses come from: netlink on a host,
/// a fixed list in tests.
pub trait HostNetworks {
    fn routes(&mut self) -> io::Result<Vec<Route>>;
    fn addresses(&mut self) -> io::Result<Vec<Ipv4Net>>;
}

/// Fixed routes and addresses, for tests.
#[cfg(test)]
#[derive(Debug, Default, Clone)]
pub struct FixedNetworks {
    pub routes: Vec<Route>,
    pub addresses: Vec<Ipv4Net>,
}

#[cfg(test)]
impl HostNetworks for FixedNetworks {
    fn routes(&mut self) -> io::Result<Vec<Route>> {
        Ok(self.routes.clone())
    }
    fn addresses(&mut self) -> io::Result<Vec<Ipv4Net>> {
        Ok(self.addresses.clone())
    }
}

/// The host's routes (of every table) and addresses as taken networks.
/// Default routes (/0) are skipped: they say where traffic goes, not that
/// an address range is in use.
pub fn host_taken(source: &mut dyn HostNetworks) -> io::Result<Vec<Taken>> {
    let mut taken = Vec::new();
    for r in source.routes()? {
        if r.dst.prefix_len() == 0 {
            continue;
        }
        let table = match r.table {
            254 => "main".to_string(),
            255 => "local".to_string(),
            t => t.to_string(),
        };
        taken.push(Taken {
            net: r.dst.trunc(),
            what: format!("host route {} (table {table})", r.dst.trunc()),
        });
    }
    for a in source.addresses()? {
        taken.push(Taken {
            net: a.trunc(),
            what: format!("address {a} on this host"),
        });
    }
    Ok(taken)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// The bridge's address: the first host of its network.
    pub bridge: Ipv4Net,
    pub pool: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocError {
    /// Every block of this size in the range overlaps something.
    Exhausted {
        key: &'static str,
        prefix: u8,
        range: Ipv4Net,
        candidates: u64,
    },
    /// A network given on the command line overlaps something in use.
    InUse {
        key: &'static str,
        net: Ipv4Net,
        by: String,
    },
}

impl AllocError {
    /// The policy key and the option that set the range a key is picked in.
    fn range_setting(key: &str) -> (&'static str, &'static str) {
        if key == keys::POOL_BASE.name {
            ("PoolRange", "--pool-range")
        } else {
            ("BridgeRange", "--bridge-range")
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::Exhausted {
                key,
                prefix,
                range,
                candidates,
            } if *candidates == 0 => {
                let (setting, flag) = Self::range_setting(key);
                write!(
                    f,
                    "no free range left for {key}: {range} holds no /{prefix} networks; give a larger {flag}, or set {setting}= in {}",
                    dockyard_model::paths::host_conf().display()
                )
            }
            AllocError::Exhausted {
                key,
                prefix,
                range,
                candidates,
            } => {
                let (setting, flag) = Self::range_setting(key);
                write!(
                    f,
                    "no free range left for {key}: all {candidates} candidate /{prefix} ranges in {range} are in use ({candidates} of {candidates} overlap host routes, host addresses or other instances); give another {flag}, set {setting}= in {}, or free some",
                    dockyard_model::paths::host_conf().display()
                )
            }
            AllocError::InUse { key, net, by } => write!(
                f,
                "{key} {net} overlaps {by}; choose another or leave it out to have one picked"
            ),
        }
    }
}

/// The networks in use as address intervals, sorted and merged, each
/// merged interval keeping the first network that made it (for messages).
pub struct InUse<'a> {
    spans: Vec<(u32, u32, &'a Taken)>,
}

impl<'a> InUse<'a> {
    pub fn new(taken: impl IntoIterator<Item = &'a Taken>) -> InUse<'a> {
        let mut all: Vec<(u32, u32, &Taken)> = taken
            .into_iter()
            .map(|t| {
                let (lo, hi) = span(&t.net);
                (lo, hi, t)
            })
            .collect();
        all.sort_unstable_by_key(|&(lo, hi, _)| (lo, std::cmp::Reverse(hi)));
        let mut spans: Vec<(u32, u32, &Taken)> = Vec::with_capacity(all.len());
        for (lo, hi, t) in all {
            match spans.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => {
                    last.1 = last.1.max(hi);
                }
                _ => spans.push((lo, hi, t)),
            }
        }
        InUse { spans }
    }

    /// What overlaps `net`, if anything.
    pub fn overlapping(&self, net: &Ipv4Net) -> Option<&'a Taken> {
        let (lo, hi) = span(net);
        // The first interval ending at or after `lo`.
        let i = self.spans.partition_point(|&(_, end, _)| end < lo);
        self.spans
            .get(i)
            .filter(|&&(start, _, _)| start <= hi)
            .map(|&(_, _, t)| t)
    }

    /// The lowest block of `prefix` inside `range` that overlaps nothing.
    pub fn first_free(&self, range: Ipv4Net, prefix: u8) -> Option<Ipv4Net> {
        let range = range.trunc();
        if prefix < range.prefix_len() || prefix > 32 {
            return None;
        }
        let size = 1u64 << (32 - prefix);
        let (start, end) = span(&range);
        let (start, end) = (u64::from(start), u64::from(end));
        let mut at = start;
        let mut i = self.spans.partition_point(|&(_, e, _)| u64::from(e) < at);
        while at + size <= end + 1 {
            // Skip the intervals that end before this block.
            while self.spans.get(i).is_some_and(|s| u64::from(s.1) < at) {
                i += 1;
            }
            match self.spans.get(i) {
                Some(&(s, e, _)) if u64::from(s) < at + size => {
                    // Overlaps: the next candidate is the first aligned
                    // block after the interval.
                    at = (u64::from(e) + 1).div_ceil(size) * size;
                }
                _ => {
                    let addr = Ipv4Addr::from(u32::try_from(at).ok()?);
                    return Ipv4Net::new(addr, prefix).ok();
                }
            }
        }
        None
    }
}

/// Blocks of `prefix` in `range`: what an exhausted range held.
fn candidates(range: Ipv4Net, prefix: u8) -> u64 {
    if prefix < range.prefix_len() || prefix > 32 {
        0
    } else {
        1u64 << (prefix - range.prefix_len())
    }
}

fn pick(
    key: &'static str,
    range: Ipv4Net,
    prefix: u8,
    in_use: &InUse,
) -> Result<Ipv4Net, AllocError> {
    in_use
        .first_free(range, prefix)
        .ok_or(AllocError::Exhausted {
            key,
            prefix,
            range: range.trunc(),
            candidates: candidates(range.trunc(), prefix),
        })
}

fn check_given(key: &'static str, net: Ipv4Net, in_use: &InUse) -> Result<Ipv4Net, AllocError> {
    match in_use.overlapping(&net) {
        Some(t) => Err(AllocError::InUse {
            key,
            net,
            by: t.what.clone(),
        }),
        None => Ok(net),
    }
}

/// Picks the pool first, then the bridge outside it, each from its range
/// in `policy`. A network given by the admin is checked instead of
/// picked, and the other one avoids it.
pub fn allocate(
    policy: &hostconf::Allocation,
    taken: &[Taken],
    bridge: Option<Ipv4Net>,
    pool: Option<Ipv4Net>,
) -> Result<Allocation, AllocError> {
    let given_bridge = bridge.map(|b| Taken {
        net: b.trunc(),
        what: format!("the bridge network {}", b.trunc()),
    });
    let pool = match pool {
        Some(p) => check_given(keys::POOL_BASE.name, p, &InUse::new(taken))?,
        None => pick(
            keys::POOL_BASE.name,
            policy.pool_range,
            policy.pool_prefix,
            &InUse::new(taken.iter().chain(&given_bridge)),
        )?,
    };
    let this_pool = Taken {
        net: pool,
        what: format!("this instance's pool {pool}"),
    };
    let in_use = InUse::new(taken.iter().chain(Some(&this_pool)));
    let bridge = match bridge {
        Some(b) => check_given(keys::BRIDGE_CIDR.name, b, &in_use)?,
        None => {
            let net = pick(
                keys::BRIDGE_CIDR.name,
                policy.bridge_range,
                policy.bridge_prefix,
                &in_use,
            )?;
            let host = Ipv4Addr::from(u32::from(net.network()).saturating_add(1));
            Ipv4Net::new(host, net.prefix_len()).unwrap_or(net)
        }
    };
    Ok(Allocation { bridge, pool })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockyard_model::network::overlaps;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("test network")
    }

    fn route(table: u32, dst: &str) -> Route {
        Route {
            table,
            dst: net(dst),
        }
    }

    fn taken_of(routes: Vec<Route>, addresses: Vec<Ipv4Net>) -> Vec<Taken> {
        host_taken(&mut FixedNetworks { routes, addresses }).expect("fixed source")
    }

    fn sibling(n: &str) -> Taken {
        Taken {
            net: net(n),
            what: format!("a conf's {n}"),
        }
    }

    fn policy() -> hostconf::Allocation {
        hostconf::Allocation::default()
    }

    /// One range for both kinds, pools of /16: the old plan.
    fn one_range(range: &str) -> hostconf::Allocation {
        hostconf::Allocation {
            bridge_range: net(range),
            pool_range: net(range),
            pool_prefix: 16,
            ..policy()
        }
    }

    fn assert_free(a: &Allocation, taken: &[Taken], p: &hostconf::Allocation) {
        for t in taken {
            assert!(
                !overlaps(&a.pool, &t.net),
                "pool {} overlaps {}",
                a.pool,
                t.what
            );
            assert!(
                !overlaps(&a.bridge, &t.net),
                "bridge {} overlaps {}",
                a.bridge,
                t.what
            );
        }
        assert!(!overlaps(&a.bridge, &a.pool));
        assert!(p.pool_range.contains(&a.pool) && p.bridge_range.contains(&a.bridge.trunc()));
        assert_eq!(a.bridge.prefix_len(), p.bridge_prefix);
        assert_eq!(a.pool.prefix_len(), p.pool_prefix);
        assert_ne!(a.bridge.addr(), a.bridge.network());
    }

    #[test]
    fn an_empty_host_gets_the_lowest_blocks() {
        let a = allocate(&policy(), &[], None, None).expect("free");
        assert_eq!(a.bridge, net("10.200.0.1/24"));
        assert_eq!(a.pool, net("10.128.0.0/21"));
    }

    #[test]
    fn the_default_plan_fits_2048_instances_and_no_more() {
        let p = policy();
        // One after the other, each new instance next to the last.
        let mut taken = Vec::new();
        for i in 0..100u32 {
            let a = allocate(&p, &taken, None, None).unwrap_or_else(|e| panic!("{i}: {e}"));
            assert_free(&a, &taken, &p);
            let want_bridge = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 1)) + (i << 8));
            let want_pool = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (i << 11));
            assert_eq!(
                (a.bridge.addr(), a.pool.network()),
                (want_bridge, want_pool)
            );
            taken.push(sibling(&a.bridge.trunc().to_string()));
            taken.push(sibling(&a.pool.to_string()));
        }
        // The 2048th finds the last blocks; the 2049th finds none.
        let bridges = p.bridge_range.subnets(24).expect("bridges");
        let pools = p.pool_range.subnets(21).expect("pools");
        let mut taken: Vec<Taken> = bridges
            .zip(pools)
            .take(2047)
            .flat_map(|(b, q)| [sibling(&b.to_string()), sibling(&q.to_string())])
            .collect();
        let last = allocate(&p, &taken, None, None).expect("one left");
        assert_eq!(last.bridge, net("10.207.255.1/24"));
        assert_eq!(last.pool, net("10.191.248.0/21"));
        taken.push(sibling("10.207.255.0/24"));
        taken.push(sibling("10.191.248.0/21"));
        let err = allocate(&p, &taken, None, None).expect_err("full");
        let msg = err.to_string();
        assert!(
            msg.contains("all 2048 candidate /21 ranges in 10.128.0.0/10"),
            "{msg}"
        );
        assert!(msg.contains("PoolRange="), "{msg}");
    }

    #[test]
    fn covering_route_in_a_vpn_table_exhausts_everything() {
        // 10.0.0.0/8 routed through a VPN in table 51820 covers every
        // candidate; a string comparison would have found 10.200.x.x free.
        let taken = taken_of(vec![route(51820, "10.0.0.0/8")], vec![]);
        let err = allocate(&policy(), &taken, None, None).expect_err("nothing is free");
        assert_eq!(
            err,
            AllocError::Exhausted {
                key: "PoolBase",
                prefix: 21,
                range: net("10.128.0.0/10"),
                candidates: 2048
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("no free range left"), "{msg}");
        assert!(msg.contains("2048 of 2048"), "{msg}");
        assert!(msg.contains("--pool-range"), "{msg}");
    }

    #[test]
    fn exhaustion_of_bridges_counts_candidates() {
        // The range holds exactly one /16 (the pool), so no /24 is left
        // for the bridge.
        let err = allocate(&one_range("10.9.0.0/16"), &[], None, None).expect_err("full");
        assert!(err.to_string().contains("256 of 256"), "{err}");
        assert!(err.to_string().contains("BridgeRange="), "{err}");
        // A range too small for a /16 pool says so.
        let err = allocate(&one_range("10.9.0.0/20"), &[], None, None).expect_err("too small");
        assert!(err.to_string().contains("holds no /16"), "{err}");
    }

    #[test]
    fn routes_in_non_main_tables_are_avoided() {
        // Everything but 172.20.0.0/16 and 172.21.0.0/16 is taken, by routes
        // spread over tables main, local, 100 and a large id; the only
        // answer is pool and bridge in those two.
        let mut routes = Vec::new();
        for (i, second) in (16..32).filter(|s| *s != 20 && *s != 21).enumerate() {
            let table = [254, 255, 100, 1_000_000][i % 4];
            routes.push(route(table, &format!("172.{second}.0.0/16")));
        }
        routes.push(route(254, "0.0.0.0/0"));
        let taken = taken_of(routes, vec![]);
        let p = one_range("172.16.0.0/12");
        let a = allocate(&p, &taken, None, None).expect("two /16s free");
        assert_free(&a, &taken, &p);
        assert_eq!(a.pool, net("172.20.0.0/16"));
        assert_eq!(a.bridge, net("172.21.0.1/24"));
        // With 172.21.0.0/16 taken too (in table 100), the pool takes the
        // last /16 and the bridge has nowhere left to go.
        let mut routes = taken_of(vec![route(100, "172.21.0.0/16")], vec![]);
        routes.extend(taken);
        let err = allocate(&p, &routes, None, None).expect_err("bridge exhausted");
        assert!(err.to_string().contains("BridgeCIDR"), "{err}");
    }

    #[test]
    fn addresses_and_siblings_are_avoided_wherever_they_sit() {
        // Nested, adjacent, and unaligned-looking neighbours: a /32 address
        // in the first bridge block, a /23 covering the next two, a /16
        // covering the first 32 pools.
        let mut taken = taken_of(vec![], vec![net("10.200.0.77/32")]);
        taken.push(sibling("10.200.2.0/23"));
        taken.push(sibling("10.200.1.0/24"));
        taken.push(sibling("10.128.0.0/16"));
        taken.push(sibling("10.129.0.0/24"));
        let p = policy();
        let a = allocate(&p, &taken, None, None).expect("free");
        assert_free(&a, &taken, &p);
        assert_eq!(a.bridge, net("10.200.4.1/24"));
        assert_eq!(a.pool, net("10.129.8.0/21"));
    }

    #[test]
    fn given_networks_are_checked_not_picked_and_avoided() {
        let taken = taken_of(vec![route(100, "10.200.0.0/16")], vec![]);
        let err = allocate(&policy(), &taken, Some(net("10.200.5.1/24")), None)
            .expect_err("bridge in use");
        assert!(err.to_string().contains("table 100"), "{err}");
        // A given bridge inside the pool range: the pool goes around it.
        let a = allocate(&policy(), &taken, Some(net("10.128.3.1/24")), None).expect("free");
        assert_eq!(a.bridge, net("10.128.3.1/24"));
        assert_eq!(a.pool, net("10.128.8.0/21"));
        // A given pool inside the bridge range: the bridge goes around it.
        let a = allocate(&policy(), &[], None, Some(net("10.200.0.0/22"))).expect("free");
        assert_eq!(a.bridge, net("10.200.4.1/24"));
    }

    #[test]
    fn interval_queries_agree_with_pairwise_overlap() {
        // A deterministic scatter of networks of every size, against
        // every /24 of a /16: the sweep and the pairwise test must agree.
        let mut taken = Vec::new();
        let mut x: u32 = 12345;
        for _ in 0..300 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let prefix = 16 + (x >> 28) as u8;
            let addr = Ipv4Addr::from(0x0a00_0000 | ((x >> 4) & 0x00ff_ffff));
            let n = Ipv4Net::new(addr, prefix).expect("prefix").trunc();
            taken.push(sibling(&n.to_string()));
        }
        let in_use = InUse::new(&taken);
        let range = net("10.0.0.0/8");
        for prefix in [16u8, 20, 24, 28] {
            let want = range
                .subnets(prefix)
                .expect("subnets")
                .find(|c| !taken.iter().any(|t| overlaps(c, &t.net)));
            assert_eq!(in_use.first_free(range, prefix), want, "/{prefix}");
        }
        for c in net("10.7.0.0/16").subnets(24).expect("subnets") {
            let pairwise = taken.iter().any(|t| overlaps(&c, &t.net));
            assert_eq!(in_use.overlapping(&c).is_some(), pairwise, "{c}");
        }
    }

    #[test]
    fn the_top_of_the_address_space_does_not_overflow() {
        let taken = vec![sibling("192.168.255.0/25")];
        let in_use = InUse::new(&taken);
        let range = net("192.168.255.0/24");
        assert_eq!(
            in_use.first_free(range, 25),
            Some(net("192.168.255.128/25"))
        );
        assert_eq!(in_use.first_free(range, 24), None);
        let all = vec![sibling("0.0.0.0/0")];
        assert_eq!(InUse::new(&all).first_free(range, 30), None);
    }
}

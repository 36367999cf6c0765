//! Choosing an instance's networks: a bridge /24 and a pool /16 inside a
//! range (172.16.0.0/12 by default) that overlap nothing already in use.
//! Everything in use arrives as a list of [`Taken`] networks (host routes
//! of every table, interface addresses, other confs), so this is pure and
//! tested without a host. Networks are compared as networks: a route to
//! 172.16.0.0/12 through a VPN covers every candidate.

use dockyard_netlink::Route;
use ipnet::Ipv4Net;
use std::fmt;
use std::io;

pub const DEFAULT_RANGE: Ipv4Net = dockyard_model::network::PRIVATE_RANGES[1];
pub const BRIDGE_PREFIX: u8 = 24;
pub const POOL_PREFIX: u8 = 16;

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

/// splitmix64: a tiny, well-mixed generator; deterministic under `--seed`.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from the kernel's random pool (time and pid if unreadable).
    pub fn from_entropy() -> Rng {
        let mut buf = [0u8; 8];
        let ok = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
            .is_ok();
        if ok {
            return Rng(u64::from_le_bytes(buf));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// The bridge's address: the first host of its /24.
    pub bridge: Ipv4Net,
    pub pool: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocError {
    /// Every candidate of this size in the range overlaps something.
    Exhausted {
        key: &'static str,
        prefix: u8,
        range: Ipv4Net,
        candidates: usize,
        in_use: usize,
    },
    /// A network given on the command line overlaps something in use.
    InUse {
        key: &'static str,
        net: Ipv4Net,
        by: String,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::Exhausted {
                key,
                prefix,
                range,
                candidates,
                ..
            } if *candidates == 0 => write!(
                f,
                "no free range left for {key}: {range} holds no /{prefix} networks; give a larger --range"
            ),
            AllocError::Exhausted {
                key,
                prefix,
                range,
                candidates,
                in_use,
            } => write!(
                f,
                "no free range left for {key}: all {candidates} candidate /{prefix} ranges in {range} are in use ({in_use} of {candidates} overlap host routes, host addresses or other instances); give another --range or free some"
            ),
            AllocError::InUse { key, net, by } => write!(
                f,
                "{key} {net} overlaps {by}; choose another or leave it out to have one picked"
            ),
        }
    }
}

fn overlapping<'a>(net: &Ipv4Net, taken: &'a [Taken]) -> Option<&'a Taken> {
    taken
        .iter()
        .find(|t| dockyard_model::network::overlaps(net, &t.net))
}

fn pick(
    key: &'static str,
    prefix: u8,
    range: Ipv4Net,
    taken: &[Taken],
    rng: &mut Rng,
) -> Result<Ipv4Net, AllocError> {
    let mut candidates: Vec<Ipv4Net> = range
        .trunc()
        .subnets(prefix)
        .map(|s| s.collect())
        .unwrap_or_default();
    let total = candidates.len();
    rng.shuffle(&mut candidates);
    if let Some(free) = candidates.iter().find(|c| overlapping(c, taken).is_none()) {
        return Ok(*free);
    }
    Err(AllocError::Exhausted {
        key,
        prefix,
        range,
        candidates: total,
        in_use: total,
    })
}

/// Picks the pool first (a /16 is the scarcer kind), then a bridge /24
/// outside it. A network given by the admin is checked instead of picked.
pub fn allocate(
    range: Ipv4Net,
    taken: &[Taken],
    bridge: Option<Ipv4Net>,
    pool: Option<Ipv4Net>,
    rng: &mut Rng,
) -> Result<Allocation, AllocError> {
    let pool = match pool {
        Some(p) => {
            if let Some(t) = overlapping(&p, taken) {
                return Err(AllocError::InUse {
                    key: "PoolBase",
                    net: p,
                    by: t.what.clone(),
                });
            }
            p
        }
        None => {
            // A given bridge must not end up inside the picked pool.
            let mut with_bridge = taken.to_vec();
            if let Some(b) = bridge {
                with_bridge.push(Taken {
                    net: b.trunc(),
                    what: format!("the bridge network {}", b.trunc()),
                });
            }
            pick("PoolBase", POOL_PREFIX, range, &with_bridge, rng)?
        }
    };
    let mut with_pool = taken.to_vec();
    with_pool.push(Taken {
        net: pool,
        what: format!("this instance's pool {pool}"),
    });
    let bridge = match bridge {
        Some(b) => {
            if let Some(t) = overlapping(&b, &with_pool) {
                return Err(AllocError::InUse {
                    key: "BridgeCIDR",
                    net: b,
                    by: t.what.clone(),
                });
            }
            b
        }
        None => {
            let net = pick("BridgeCIDR", BRIDGE_PREFIX, range, &with_pool, rng)?;
            let host = std::net::Ipv4Addr::from(u32::from(net.network()).saturating_add(1));
            Ipv4Net::new(host, BRIDGE_PREFIX).unwrap_or(net)
        }
    };
    Ok(Allocation { bridge, pool })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn assert_free(a: &Allocation, taken: &[Taken]) {
        for t in taken {
            assert!(
                !dockyard_model::network::overlaps(&a.pool, &t.net),
                "pool {} overlaps {}",
                a.pool,
                t.what
            );
            assert!(
                !dockyard_model::network::overlaps(&a.bridge, &t.net),
                "bridge {} overlaps {}",
                a.bridge,
                t.what
            );
        }
        assert!(!dockyard_model::network::overlaps(&a.bridge, &a.pool));
        assert!(DEFAULT_RANGE.contains(&a.pool) && DEFAULT_RANGE.contains(&a.bridge.trunc()));
        assert_eq!(a.bridge.prefix_len(), 24);
        assert_eq!(a.pool.prefix_len(), 16);
        assert_ne!(a.bridge.addr(), a.bridge.network());
    }

    #[test]
    fn seed_is_deterministic_and_seeds_differ() {
        let a = allocate(DEFAULT_RANGE, &[], None, None, &mut Rng::seeded(7)).expect("free");
        let b = allocate(DEFAULT_RANGE, &[], None, None, &mut Rng::seeded(7)).expect("free");
        assert_eq!(a, b);
        let others: Vec<Allocation> = (0..8)
            .map(|s| allocate(DEFAULT_RANGE, &[], None, None, &mut Rng::seeded(s)).expect("free"))
            .collect();
        assert!(others.iter().any(|o| *o != a), "seeds change the pick");
    }

    #[test]
    fn covering_route_in_a_vpn_table_exhausts_everything() {
        // 172.16.0.0/12 routed through a VPN in table 51820 covers every
        // candidate; a string comparison would have found 172.22.x.x free.
        let taken = taken_of(vec![route(51820, "172.16.0.0/12")], vec![]);
        let err = allocate(DEFAULT_RANGE, &taken, None, None, &mut Rng::seeded(1))
            .expect_err("nothing is free");
        let AllocError::Exhausted {
            candidates, in_use, ..
        } = &err
        else {
            panic!("expected exhaustion, got {err:?}");
        };
        assert_eq!((*candidates, *in_use), (16, 16));
        let msg = err.to_string();
        assert!(msg.contains("no free range left"), "{msg}");
        assert!(msg.contains("16 of 16"), "{msg}");
    }

    #[test]
    fn exhaustion_of_bridges_counts_candidates() {
        let range = net("10.9.0.0/16");
        // The range holds exactly one /16 (the pool), so no /24 is left
        // for the bridge.
        let err = allocate(range, &[], None, None, &mut Rng::seeded(3)).expect_err("full");
        assert!(err.to_string().contains("256 of 256"), "{err}");
        // A range too small for a /16 pool says so.
        let err = allocate(net("10.9.0.0/20"), &[], None, None, &mut Rng::seeded(3))
            .expect_err("too small");
        assert!(err.to_string().contains("holds no /16"), "{err}");
    }

    #[test]
    fn routes_in_non_main_tables_are_avoided() {
        // Everything but 172.20.0.0/16 and 172.21.0.0/16 is taken, by routes
        // spread over tables main, local, 100 and a large id; the only
        // answer is pool and bridge in those two, whatever the seed.
        let mut routes = Vec::new();
        for (i, second) in (16..32).filter(|s| *s != 20 && *s != 21).enumerate() {
            let table = [254, 255, 100, 1_000_000][i % 4];
            routes.push(route(table, &format!("172.{second}.0.0/16")));
        }
        routes.push(route(254, "0.0.0.0/0"));
        let taken = taken_of(routes, vec![]);
        for seed in 0..32 {
            let a = allocate(DEFAULT_RANGE, &taken, None, None, &mut Rng::seeded(seed))
                .expect("two /16s free");
            assert_free(&a, &taken);
            let pool_second = a.pool.network().octets()[1];
            assert!([20, 21].contains(&pool_second), "{a:?}");
        }
        // With 172.21.0.0/16 taken too (in table 100), the pool takes the
        // last /16 and the bridge has nowhere left to go.
        let mut routes = taken_of(vec![route(100, "172.21.0.0/16")], vec![]);
        routes.extend(taken);
        let err = allocate(DEFAULT_RANGE, &routes, None, None, &mut Rng::seeded(0))
            .expect_err("bridge exhausted");
        assert!(err.to_string().contains("BridgeCIDR"), "{err}");
    }

    #[test]
    fn addresses_and_siblings_are_avoided() {
        let mut taken = taken_of(vec![], vec![net("172.17.0.1/16")]);
        taken.push(Taken {
            net: net("172.18.0.0/15"),
            what: "PoolBase of instance dy2".into(),
        });
        for seed in 0..64 {
            let a =
                allocate(DEFAULT_RANGE, &taken, None, None, &mut Rng::seeded(seed)).expect("free");
            assert_free(&a, &taken);
        }
    }

    #[test]
    fn given_networks_are_checked_not_picked() {
        let taken = taken_of(vec![route(100, "172.22.0.0/16")], vec![]);
        let err = allocate(
            DEFAULT_RANGE,
            &taken,
            Some(net("172.22.5.1/24")),
            None,
            &mut Rng::seeded(0),
        )
        .expect_err("bridge in use");
        assert!(err.to_string().contains("table 100"), "{err}");
        let a = allocate(
            DEFAULT_RANGE,
            &taken,
            Some(net("172.30.5.1/24")),
            None,
            &mut Rng::seeded(0),
        )
        .expect("free");
        assert_eq!(a.bridge, net("172.30.5.1/24"));
        assert_ne!(a.pool, net("172.30.0.0/16"), "pool avoids the bridge");
    }
}

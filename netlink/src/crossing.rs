//! Host routes that take an instance's addresses away from the network.
//!
//! One rule for `dockyard check`, `dockyard verify` and `dockyard-network
//! up` (and the routes `dockyard new` avoids come from the same
//! [`Netlink::routes_v4`](crate::Netlink::routes_v4) dump): a route of any
//! table whose destination is wider than one of the instance's networks
//! and contains it, such as a LAN's 10.90.0.0/16 over an instance bridge
//! 10.90.1.0/24, means the instance takes those addresses from the LAN:
//! the bridge's more specific route wins and the host no longer reaches
//! them. Default routes (/0) say where traffic goes, not that a network is
//! in use, and routes inside an instance's network (its bridge's connected
//! and local routes, dockerd's own networks from the pool) are its own.

use crate::Route;
use ipnet::Ipv4Net;
use std::fmt;

/// A host route covering one of an instance's networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    pub route: Route,
    /// The instance's network it covers.
    pub net: Ipv4Net,
}

/// A routing table's name as `ip route` prints it.
pub fn table_name(table: u32) -> String {
    match table {
        253 => "default".into(),
        254 => "main".into(),
        255 => "local".into(),
        n => n.to_string(),
    }
}

impl fmt::Display for Crossing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host route {} (table {}) covers {}: the instance would take those addresses from where that route leads",
            self.route.dst,
            table_name(self.route.table),
            self.net
        )
    }
}

/// The routes of `routes` that cover one of `nets`, except those whose
/// destination is in `accepted` (the conf's `AcceptHostRoute=`); in route
/// order, one per route and network.
pub fn crossings(routes: &[Route], nets: &[Ipv4Net], accepted: &[Ipv4Net]) -> Vec<Crossing> {
    let mut out = Vec::new();
    for r in routes {
        if r.dst.prefix_len() == 0 || accepted.contains(&r.dst.trunc()) {
            continue;
        }
        for net in nets {
            if r.dst.prefix_len() < net.prefix_len() && r.dst.trunc().contains(net) {
                out.push(Crossing {
                    route: *r,
                    net: *net,
                });
            }
        }
    }
    out
}

/// [`crossings`] against the running kernel's routes, every table.
pub fn live_crossings(nets: &[Ipv4Net], accepted: &[Ipv4Net]) -> std::io::Result<Vec<Crossing>> {
    let routes = crate::Netlink::open()?.routes_v4()?;
    Ok(crossings(&routes, nets, accepted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("net")
    }

    fn route(table: u32, dst: &str) -> Route {
        Route {
            table,
            dst: net(dst),
        }
    }

    #[test]
    fn a_lan_route_over_the_bridge_is_named() {
        let routes = [
            route(254, "0.0.0.0/0"),
            route(254, "10.90.0.0/16"),
            // The instance's own: connected, local, a dockerd network.
            route(254, "10.90.1.0/24"),
            route(255, "10.90.1.1/32"),
            route(254, "172.23.4.0/24"),
            // Elsewhere.
            route(254, "192.0.2.0/24"),
        ];
        let nets = [net("10.90.1.0/24"), net("172.23.0.0/16")];
        let found = crossings(&routes, &nets, &[]);
        assert_eq!(
            found,
            [Crossing {
                route: route(254, "10.90.0.0/16"),
                net: net("10.90.1.0/24")
            }]
        );
        assert_eq!(
            found[0].to_string(),
            "host route 10.90.0.0/16 (table main) covers 10.90.1.0/24: the instance would take those addresses from where that route leads"
        );
    }

    #[test]
    fn any_table_counts_and_accepted_routes_do_not() {
        let routes = [route(51820, "172.16.0.0/12")];
        let nets = [net("172.22.147.0/24"), net("172.23.0.0/16")];
        assert_eq!(crossings(&routes, &nets, &[]).len(), 2);
        assert!(crossings(&routes, &nets, &[net("172.16.0.0/12")]).is_empty());
        assert_eq!(table_name(51820), "51820");
    }
}

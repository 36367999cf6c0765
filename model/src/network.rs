//! IPv4 networks as Dockyard uses them: private, prefix-bounded, compared as
//! networks (never as strings: the bash tool's substring check missed
//! covering routes).

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// RFC 1918. Instance networks are NATed behind the host, so they must never
/// shadow a public range the host needs to reach.
pub const PRIVATE_RANGES: [Ipv4Net; 3] = [
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
];

/// Smallest and largest prefix accepted for the bridge and the pool: /8 is a
/// whole private range, /30 leaves two addresses.
pub const MIN_PREFIX: u8 = 8;
pub const MAX_PREFIX: u8 = 30;

/// Parses strict `a.b.c.d/n` (the prefix is required).
pub fn parse_cidr(value: &str) -> Result<Ipv4Net, String> {
    let Some((addr, len)) = value.split_once('/') else {
        return Err(format!(
            "not in CIDR notation; write address/prefix, e.g. 172.22.147.1/24{}",
            comment_hint(value)
        ));
    };
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 address{}", comment_hint(value)))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| len.chars().all(|c| c.is_ascii_digit()) && *l <= 32)
        .ok_or_else(|| {
            format!(
                "prefix {len:?} is not a number from 0 to 32{}",
                comment_hint(value)
            )
        })?;
    Ipv4Net::new(addr, len).map_err(|e| e.to_string())
}

/// A conf line like `Root=/dy1  # comment` keeps the comment in the value
/// (systemd semantics); say so instead of leaving the admin puzzled.
pub fn comment_hint(value: &str) -> &'static str {
    if value.contains(" #") || value.contains(" ;") || value.contains("\t#") {
        " (comments must be on a line of their own, starting with # or ;)"
    } else {
        ""
    }
}

pub fn check_prefix(net: &Ipv4Net) -> Result<(), String> {
    if (MIN_PREFIX..=MAX_PREFIX).contains(&net.prefix_len()) {
        Ok(())
    } else {
        Err(format!(
            "prefix /{} is out of range; use /{MIN_PREFIX} to /{MAX_PREFIX}",
            net.prefix_len()
        ))
    }
}

pub fn check_private(net: &Ipv4Net) -> Result<(), String> {
    let network = net.trunc();
    if PRIVATE_RANGES.iter().any(|r| r.contains(&network)) {
        Ok(())
    } else {
        Err(format!(
            "{network} is not inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
        ))
    }
}

/// A network value (FixedCIDR, PoolBase) must be written as its network
/// address; a stray host part is usually a typo worth pointing at.
pub fn check_network_address(net: &Ipv4Net) -> Result<(), String> {
    if net.addr() == net.network() {
        Ok(())
    } else {
        Err(format!(
            "{net} has host bits set; did you mean {}?",
            net.trunc()
        ))
    }
}

/// The bridge's own address must be a usable host address of its network.
pub fn check_host_address(net: &Ipv4Net) -> Result<(), String> {
    if net.addr() == net.network() {
        Err(format!(
            "{net} is the network address; give the bridge a host address such as {}/{}",
            next(net.network()),
            net.prefix_len()
        ))
    } else if net.addr() == net.broadcast() {
        Err(format!(
            "{net} is the broadcast address; give the bridge a host address such as {}/{}",
            next(net.network()),
            net.prefix_len()
        ))
    } else {
        Ok(())
    }
}

fn next(addr: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(addr).saturating_add(1))
}

/// Two networks overlap when either contains the other (CIDR blocks nest or
/// are disjoint; they never partially overlap).
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    let (a, b) = (a.trunc(), b.trunc());
    a.contains(&b) || b.contains(&a)
}

/// First and last address as integers, for interval searches over many
/// instances.
pub fn span(net: &Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly() {
        assert!(parse_cidr("172.22.147.1/24").is_ok());
        for bad in [
            "172.22.147.1",
            "172.22.147/24",
            "172.22.147.1/33",
            "172.22.147.1/+4",
            "172.022.147.1/24",
            "fd00::1/64",
            "",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
        assert!(parse_cidr("172.22.147.1/24 # x")
            .unwrap_err()
            .contains("comments must be on a line of their own"));
    }

    #[test]
    fn private_and_addresses() {
        let ok = parse_cidr("172.22.147.1/24").expect("cidr");
        assert!(check_private(&ok).is_ok());
        assert!(check_host_address(&ok).is_ok());
        assert!(check_private(&parse_cidr("8.8.8.0/24").expect("c")).is_err());
        // Spans beyond 172.16.0.0/12: not private as a whole.
        assert!(check_private(&parse_cidr("172.0.0.0/8").expect("c")).is_err());
        assert!(check_host_address(&parse_cidr("10.0.0.0/24").expect("c")).is_err());
        assert!(check_host_address(&parse_cidr("10.0.0.255/24").expect("c")).is_err());
        assert!(
            check_network_address(&parse_cidr("10.0.0.1/24").expect("c"))
                .unwrap_err()
                .contains("did you mean 10.0.0.0/24")
        );
    }

    #[test]
    fn overlap_is_containment() {
        let a = parse_cidr("172.22.0.0/16").expect("c");
        let b = parse_cidr("172.22.147.1/24").expect("c");
        let c = parse_cidr("172.23.0.0/16").expect("c");
        assert!(overlaps(&a, &b));
        assert!(overlaps(&b, &a));
        assert!(!overlaps(&a, &c));
    }
}

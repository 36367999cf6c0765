//! The host's policy file, `/etc/dockyard/dockyard.conf`
//! (dockyard-host.conf(5)): what a site decides once for every instance,
//! such as the ranges `dockyard new` picks networks from and the firewall
//! backend. Same syntax, parser and `file:line` diagnostics as an
//! instance's conf ([`crate::ini`]); a missing file means every default.
//!
//! Keys are a table, as in Quadlet: one row per key with its section, its
//! parser and its documentation, so adding a key is adding a row, and the
//! "known keys" hints can never go stale.

use crate::diag::{Diagnostic, Origin, Severity};
use crate::ini::{self, Document, Entry};
use crate::network::{self, parse_cidr};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::path::Path;

pub const SECTION_ALLOCATION: &str = "Allocation";
pub const SECTION_FIREWALL: &str = "Firewall";
const SECTIONS: [&str; 2] = [SECTION_ALLOCATION, SECTION_FIREWALL];

/// Where `dockyard new` picks an instance's networks when its flags do not
/// say. The defaults fit 2048 instances (dockyard(8), "NETWORK
/// ALLOCATION", has the arithmetic): bridges packed into one /13, pools
/// into one /10, all inside 10.0.0.0/8, away from the ranges Docker
/// (172.17.0.0/16 and up, 192.168.0.0/16), Podman (10.88.0.0/16) and
/// Kubernetes' usual service range (10.96.0.0/12) take by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// The block every bridge network is carved from (`BridgeRange=`).
    pub bridge_range: Ipv4Net,
    /// Each bridge network's prefix (`BridgePrefix=`).
    pub bridge_prefix: u8,
    /// The block every pool is carved from (`PoolRange=`).
    pub pool_range: Ipv4Net,
    /// Each instance's pool prefix (`PoolPrefix=`).
    pub pool_prefix: u8,
    /// The prefix of each user-defined network inside a pool, the
    /// instance conf's `PoolSize=` (`PoolSize=`).
    pub pool_size: u8,
}

impl Default for Allocation {
    fn default() -> Self {
        Allocation {
            bridge_range: Ipv4Net::new_assert(Ipv4Addr::new(10, 200, 0, 0), 13),
            bridge_prefix: 24,
            pool_range: Ipv4Net::new_assert(Ipv4Addr::new(10, 128, 0, 0), 10),
            pool_prefix: 21,
            pool_size: crate::instance::DEFAULT_POOL_SIZE,
        }
    }
}

/// Which firewall backend the helpers use (`[Firewall] Backend=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FirewallBackend {
    /// Whatever the host's firewall already uses.
    #[default]
    Auto,
    Iptables,
    Nftables,
}

impl FirewallBackend {
    pub const ALL: [FirewallBackend; 3] = [
        FirewallBackend::Auto,
        FirewallBackend::Iptables,
        FirewallBackend::Nftables,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FirewallBackend::Auto => "auto",
            FirewallBackend::Iptables => "iptables",
            FirewallBackend::Nftables => "nftables",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Firewall {
    pub backend: FirewallBackend,
}

/// The whole policy; [`HostConf::default`] is what a host without the
/// file gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostConf {
    pub allocation: Allocation,
    pub firewall: Firewall,
}

/// One key: where it lives, how its value is checked and stored, and what
/// it means (said with every error about its value).
pub struct Key {
    pub section: &'static str,
    pub name: &'static str,
    pub parse: fn(&str, &mut HostConf) -> Result<(), String>,
    pub doc: &'static str,
}

pub const KEYS: &[Key] = &[
    Key {
        section: SECTION_ALLOCATION,
        name: "BridgeRange",
        parse: |v, c| range(v).map(|n| c.allocation.bridge_range = n),
        doc: "the block bridge networks are carved from",
    },
    Key {
        section: SECTION_ALLOCATION,
        name: "BridgePrefix",
        parse: |v, c| prefix(v).map(|p| c.allocation.bridge_prefix = p),
        doc: "each bridge network's prefix length",
    },
    Key {
        section: SECTION_ALLOCATION,
        name: "PoolRange",
        parse: |v, c| range(v).map(|n| c.allocation.pool_range = n),
        doc: "the block address pools are carved from",
    },
    Key {
        section: SECTION_ALLOCATION,
        name: "PoolPrefix",
        parse: |v, c| prefix(v).map(|p| c.allocation.pool_prefix = p),
        doc: "each instance's pool prefix length",
    },
    Key {
        section: SECTION_ALLOCATION,
        name: "PoolSize",
        parse: |v, c| prefix(v).map(|p| c.allocation.pool_size = p),
        doc: "the prefix length of each user-defined network in a pool",
    },
    Key {
        section: SECTION_FIREWALL,
        name: "Backend",
        parse: |v, c| backend(v).map(|b| c.firewall.backend = b),
        doc: "the firewall backend: auto, iptables or nftables",
    },
];

/// A range: a private network written as its network address.
fn range(value: &str) -> Result<Ipv4Net, String> {
    let net = parse_cidr(value)?;
    network::check_private(&net)?;
    network::check_network_address(&net)?;
    if net.prefix_len() < network::MIN_PREFIX {
        return Err(format!(
            "prefix /{} is wider than a private range; use /{} or longer",
            net.prefix_len(),
            network::MIN_PREFIX
        ));
    }
    Ok(net)
}

/// A prefix length, digits only, in the range the instance conf accepts.
fn prefix(value: &str) -> Result<u8, String> {
    value
        .parse::<u8>()
        .ok()
        .filter(|_| value.chars().all(|c| c.is_ascii_digit()))
        .filter(|p| (network::MIN_PREFIX..=network::MAX_PREFIX).contains(p))
        .ok_or_else(|| {
            format!(
                "not a prefix length from {} to {}{}",
                network::MIN_PREFIX,
                network::MAX_PREFIX,
                network::comment_hint(value)
            )
        })
}

fn backend(value: &str) -> Result<FirewallBackend, String> {
    FirewallBackend::ALL
        .into_iter()
        .find(|b| b.as_str() == value)
        .ok_or_else(|| {
            format!(
                "unknown backend{}; use auto, iptables or nftables",
                network::comment_hint(value)
            )
        })
}

/// Reads the policy at `path`: a missing file is every default and no
/// diagnostic; a file that cannot be read is an error naming it.
pub fn load(path: &Path) -> (HostConf, Vec<Diagnostic>) {
    if let Err(e) = path.symlink_metadata() {
        if e.kind() == std::io::ErrorKind::NotFound {
            return (HostConf::default(), Vec::new());
        }
    }
    match crate::source::read_conf_text(path) {
        Ok(text) => parse(path, &text),
        Err(why) => (
            HostConf::default(),
            vec![Diagnostic::error(
                path,
                None,
                format!("the host's policy {why}"),
            )],
        ),
    }
}

/// The policy in `text`, read from `path`. A key with a bad value keeps
/// its default and is an error; unknown sections and keys are warnings
/// (ignored, as systemd does), each at its line.
pub fn parse(path: &Path, text: &str) -> (HostConf, Vec<Diagnostic>) {
    let (doc, mut diags) = ini::parse(path, text);
    let (conf, more) = build(path, &doc);
    diags.extend(more);
    (conf, diags)
}

fn build(path: &Path, doc: &Document) -> (HostConf, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    for (section, origin) in &doc.sections {
        if !section.is_empty() && !SECTIONS.contains(&section.as_str()) {
            diags.push(Diagnostic::at(
                origin,
                Severity::Warning,
                format!(
                    "unknown section [{section}] ignored; sections are [{SECTION_ALLOCATION}] and [{SECTION_FIREWALL}]"
                ),
            ));
        }
    }
    // The last line of each key wins, as in systemd; an empty value
    // resets the key to its default.
    let mut last: Vec<(&Key, &Entry)> = Vec::new();
    for entry in &doc.entries {
        if !SECTIONS.contains(&entry.section.as_str()) {
            continue; // reported once at its header
        }
        let Some(key) = KEYS
            .iter()
            .find(|k| k.section == entry.section && k.name == entry.key)
        else {
            diags.push(unknown_key(entry));
            continue;
        };
        if let Some(at) = last.iter().position(|(k, _)| std::ptr::eq(*k, key)) {
            let (_, prev) = last.remove(at);
            diags.push(Diagnostic::set_again(
                &entry.origin,
                &entry.key,
                prev.origin.line,
            ));
        }
        last.push((key, entry));
    }
    let mut conf = HostConf::default();
    let mut origins: Vec<(&'static str, &Origin)> = Vec::new();
    for (key, entry) in last {
        if entry.value.is_empty() {
            continue;
        }
        match (key.parse)(&entry.value, &mut conf) {
            Ok(()) => origins.push((key.name, &entry.origin)),
            Err(m) => diags.push(Diagnostic::at(
                &entry.origin,
                Severity::Error,
                format!(
                    "{}={}: {m} ({}= is {})",
                    entry.key, entry.value, key.name, key.doc
                ),
            )),
        }
    }
    let origin = |name: &str| origins.iter().find(|(n, _)| *n == name).map(|(_, o)| *o);
    for (name, problem) in conf.allocation.problems() {
        // At the line that set the key to change, or at the file when that
        // key kept its default (a range was set, its prefix was not).
        diags.push(match origin(name) {
            Some(o) => Diagnostic::at(o, Severity::Error, problem),
            None => Diagnostic::error(path, None, problem),
        });
    }
    (conf, diags)
}

impl Allocation {
    /// The checks between keys, each with the key to blame: a network of
    /// a prefix must fit in its range, and a pool's networks in the pool.
    /// `dockyard new` runs them again after its options override keys.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let a = self;
        let mut problems = Vec::new();
        if a.bridge_prefix < a.bridge_range.prefix_len() {
            problems.push((
                "BridgePrefix",
                format!(
                    "BridgePrefix={} does not fit in BridgeRange={}; use a BridgePrefix of at least {}",
                    a.bridge_prefix,
                    a.bridge_range,
                    a.bridge_range.prefix_len()
                ),
            ));
        }
        if a.pool_prefix < a.pool_range.prefix_len() {
            problems.push((
                "PoolPrefix",
                format!(
                    "PoolPrefix={} does not fit in PoolRange={}; use a PoolPrefix of at least {}",
                    a.pool_prefix,
                    a.pool_range,
                    a.pool_range.prefix_len()
                ),
            ));
        }
        if a.pool_size < a.pool_prefix {
            problems.push((
                "PoolSize",
                format!(
                    "PoolSize={} is larger than a pool (PoolPrefix={}); use a PoolSize of at least {}",
                    a.pool_size, a.pool_prefix, a.pool_prefix
                ),
            ));
        }
        problems
    }
}

fn unknown_key(entry: &Entry) -> Diagnostic {
    let known: Vec<&str> = KEYS
        .iter()
        .filter(|k| k.section == entry.section)
        .map(|k| k.name)
        .collect();
    let hint = known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(&entry.key))
        .map(|k| format!("; did you mean {k}=?"))
        .unwrap_or_else(|| format!("; known keys: {}", known.join(", ")));
    Diagnostic::at(
        &entry.origin,
        Severity::Warning,
        format!(
            "unknown key {}= in [{}] ignored{hint}",
            entry.key, entry.section
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> (HostConf, Vec<String>) {
        let (conf, diags) = parse(Path::new("/etc/dockyard/dockyard.conf"), text);
        (conf, diags.iter().map(ToString::to_string).collect())
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("test network")
    }

    #[test]
    fn a_missing_file_is_every_default() {
        let missing = std::env::temp_dir()
            .join(format!("dockyard-hostconf-none-{}", std::process::id()))
            .join("dockyard.conf");
        let (conf, diags) = load(&missing);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(conf, HostConf::default());
        assert_eq!(conf.firewall.backend, FirewallBackend::Auto);
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let (_, diags) = load(&std::env::temp_dir());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].is_error());
        assert!(diags[0].to_string().contains("is a directory"), "{diags:?}");
    }

    #[test]
    fn every_key_sets_its_field() {
        let (conf, diags) = p("[Allocation]\nBridgeRange=172.20.0.0/14\nBridgePrefix=25\n\
             PoolRange=10.0.0.0/9\nPoolPrefix=20\nPoolSize=26\n\
             [Firewall]\nBackend=nftables\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            conf.allocation,
            Allocation {
                bridge_range: net("172.20.0.0/14"),
                bridge_prefix: 25,
                pool_range: net("10.0.0.0/9"),
                pool_prefix: 20,
                pool_size: 26,
            }
        );
        assert_eq!(conf.firewall.backend, FirewallBackend::Nftables);
        for b in FirewallBackend::ALL {
            let (conf, diags) = p(&format!("[Firewall]\nBackend={}\n", b.as_str()));
            assert!(diags.is_empty(), "{diags:?}");
            assert_eq!(conf.firewall.backend, b);
        }
    }

    #[test]
    fn the_defaults_fit_each_other() {
        assert!(Allocation::default().problems().is_empty());
        let a = Allocation::default();
        assert!(!network::overlaps(&a.bridge_range, &a.pool_range));
    }

    #[test]
    fn unknown_sections_and_keys_are_warnings_at_their_line() {
        let (conf, diags) = p("[Allocation]\nbridgerange=10.0.0.0/16\nColour=red\n\
             [Network]\nX=1\n[Firewall]\nBackend=iptables\n");
        assert_eq!(
            diags,
            vec![
                "/etc/dockyard/dockyard.conf:4: warning: unknown section [Network] ignored; sections are [Allocation] and [Firewall]",
                "/etc/dockyard/dockyard.conf:2: warning: unknown key bridgerange= in [Allocation] ignored; did you mean BridgeRange=?",
                "/etc/dockyard/dockyard.conf:3: warning: unknown key Colour= in [Allocation] ignored; known keys: BridgeRange, BridgePrefix, PoolRange, PoolPrefix, PoolSize",
            ]
        );
        assert_eq!(conf.allocation, Allocation::default());
        assert_eq!(conf.firewall.backend, FirewallBackend::Iptables);
    }

    #[test]
    fn bad_values_are_errors_at_their_line_and_keep_the_default() {
        let (conf, diags) = p("[Allocation]\nBridgeRange=8.8.0.0/16\nPoolPrefix=31\n\
             PoolRange=10.1.2.0/16\nBridgePrefix=24 # bridges\n[Firewall]\nBackend=pf\n");
        assert_eq!(diags.len(), 5, "{diags:#?}");
        for (d, line, what) in [
            (&diags[0], 2, "not inside a private range"),
            (&diags[1], 3, "not a prefix length from 8 to 30"),
            (&diags[2], 4, "did you mean 10.1.0.0/16?"),
            (&diags[3], 5, "comments must be on a line of their own"),
            (&diags[4], 7, "use auto, iptables or nftables"),
        ] {
            assert!(
                d.starts_with(&format!("/etc/dockyard/dockyard.conf:{line}: error: ")),
                "{d}"
            );
            assert!(d.contains(what), "{d} lacks {what}");
        }
        assert_eq!(conf, HostConf::default());
    }

    #[test]
    fn keys_that_do_not_fit_together_are_errors_at_the_key_to_change() {
        let (_, diags) = p("[Allocation]\nPoolRange=10.0.0.0/16\nPoolPrefix=12\nPoolSize=10\n");
        assert_eq!(
            diags,
            vec![
                "/etc/dockyard/dockyard.conf:3: error: PoolPrefix=12 does not fit in PoolRange=10.0.0.0/16; use a PoolPrefix of at least 16",
                "/etc/dockyard/dockyard.conf:4: error: PoolSize=10 is larger than a pool (PoolPrefix=12); use a PoolSize of at least 12",
            ]
        );
        // Only the range was set: the default prefix is blamed on the file.
        let (_, diags) = p("[Allocation]\nBridgeRange=10.0.0.0/26\n");
        assert_eq!(
            diags,
            vec!["/etc/dockyard/dockyard.conf: error: BridgePrefix=24 does not fit in BridgeRange=10.0.0.0/26; use a BridgePrefix of at least 26"]
        );
    }

    #[test]
    fn the_last_line_wins_and_an_empty_value_resets() {
        let (conf, diags) =
            p("[Firewall]\nBackend=nftables\nBackend=\n[Allocation]\nPoolSize=26\nPoolSize=25\n");
        assert_eq!(
            diags,
            vec![
                "/etc/dockyard/dockyard.conf:3: warning: Backend= set again; this overrides line 2",
                "/etc/dockyard/dockyard.conf:6: warning: PoolSize= set again; this overrides line 5",
            ]
        );
        assert_eq!(conf.firewall.backend, FirewallBackend::Auto);
        assert_eq!(conf.allocation.pool_size, 25);
    }

    #[test]
    fn every_key_is_documented_once() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(SECTIONS.contains(&k.section), "{}", k.name);
            assert!(!k.doc.is_empty(), "{}", k.name);
            assert!(
                !KEYS[i + 1..]
                    .iter()
                    .any(|o| o.section == k.section && o.name == k.name),
                "{} twice",
                k.name
            );
        }
    }
}

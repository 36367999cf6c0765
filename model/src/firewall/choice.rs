//! Which backend writes an instance's rules, and which one wrote them.
//!
//! The host chooses with `[Firewall] Backend=` (dockyard-host.conf(5));
//! `auto` picks nftables when `nft` is installed, unless the host's
//! `iptables` is iptables-legacy: then the DROP policy a host Docker sets
//! on `FORWARD` lives in x_tables, where no nftables rule can accept past
//! it, and the iptables backend is the one that works beside it.
//!
//! `dockyard-network up` records the backend it used; everything after it
//! (`down`, `status`, `verify`, `destroy`) uses the recorded one, so a
//! changed setting applies at an instance's next start, never to rules
//! already in place.

use super::{named, Backend, IPTABLES, NFTABLES};
use crate::contract::{firewall as record, Values};
use crate::hostconf::{self, FirewallBackend};
use crate::name::InstanceName;
use crate::paths::{self, Search};
use crate::state;
use std::path::Path;

/// A backend and why it was picked, for logs and `dockyard status`.
#[derive(Clone, Copy)]
pub struct Chosen {
    pub backend: &'static dyn Backend,
    pub why: &'static str,
}

impl std::fmt::Debug for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.backend.name(), self.why)
    }
}

/// What the host knows that `auto` depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub has_nft: bool,
    pub iptables_is_legacy: bool,
}

impl Host {
    pub fn probe() -> Host {
        let iptables_is_legacy = paths::find_program("iptables", Search::PathOrDefault)
            .ok()
            .and_then(|p| std::fs::canonicalize(p).ok())
            .and_then(|p| Some(p.file_name()?.to_string_lossy().contains("legacy")))
            .unwrap_or(false);
        Host {
            has_nft: paths::find_program("nft", Search::PathOrDefault).is_ok(),
            iptables_is_legacy,
        }
    }
}

pub fn resolve(setting: FirewallBackend, host: Host) -> Chosen {
    let chosen = |backend: &'static dyn Backend, why| Chosen { backend, why };
    match setting {
        FirewallBackend::Iptables => chosen(&IPTABLES, "[Firewall] Backend=iptables"),
        FirewallBackend::Nftables => chosen(&NFTABLES, "[Firewall] Backend=nftables"),
        FirewallBackend::Auto if !host.has_nft => chosen(&IPTABLES, "auto: nft is not installed"),
        FirewallBackend::Auto if host.iptables_is_legacy => chosen(
            &IPTABLES,
            "auto: the host's iptables is iptables-legacy, whose FORWARD policy nftables cannot accept past",
        ),
        FirewallBackend::Auto => chosen(&NFTABLES, "auto: nft is installed"),
    }
}

/// The host's choice now, from the policy file at `conf` (its problems are
/// `dockyard check`'s to report; a bad value counts as its default).
pub fn chosen_with(conf: &Path) -> Chosen {
    let (policy, _) = hostconf::load(conf);
    resolve(policy.firewall.backend, Host::probe())
}

pub fn chosen() -> Chosen {
    chosen_with(&paths::host_conf())
}

/// The record's text for `backend`.
pub fn record_text(backend: &dyn Backend) -> String {
    format!("{}={}\n", record::BACKEND.name, backend.name())
}

/// The backend `up` recorded for `instance`; `Ok(None)` when nothing is
/// recorded (stopped, or started by a Dockyard that kept no record).
pub fn recorded(instance: &InstanceName) -> Result<Option<&'static dyn Backend>, String> {
    let Some(rec) = state::load(instance, record::RECORD)? else {
        return Ok(None);
    };
    let name = rec.value(record::BACKEND).unwrap_or_default();
    named(name).map(Some).ok_or_else(|| {
        format!(
            "{} names firewall backend {name:?}, which this Dockyard does not know",
            state::path(instance, record::RECORD).display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_host() {
        let pick = |has_nft, iptables_is_legacy| {
            resolve(
                FirewallBackend::Auto,
                Host {
                    has_nft,
                    iptables_is_legacy,
                },
            )
            .backend
            .name()
        };
        assert_eq!(pick(true, false), "nftables");
        assert_eq!(pick(true, true), "iptables");
        assert_eq!(pick(false, false), "iptables");
        let set = resolve(
            FirewallBackend::Nftables,
            Host {
                has_nft: false,
                iptables_is_legacy: true,
            },
        );
        assert_eq!(set.backend.name(), "nftables");
    }

    #[test]
    fn the_record_names_the_backend() {
        let dir = std::env::temp_dir().join(format!("dy-choice-{}", std::process::id()));
        let name = InstanceName::parse("dy1").expect("name");
        std::env::set_var(crate::state::DIR_ENV, &dir);
        assert!(recorded(&name).expect("readable").is_none());
        let p = state::path(&name, record::RECORD);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, record_text(&NFTABLES)).expect("write");
        assert_eq!(
            recorded(&name).expect("readable").map(|b| b.name()),
            Some("nftables")
        );
        std::fs::write(&p, "backend=pf\n").expect("write");
        assert!(recorded(&name).is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

//! An instance's firewall as data: the rules `dockyard-network up` puts in
//! place, built once from the helper contract and handed to a backend that
//! renders, parses and audits them. The helpers apply a backend's plans;
//! `dockyard status`, `verify` and `destroy` audit through the same backend,
//! so nothing outside the backend knows a rule's text.
//!
//! The policy, per instance (tenant isolation by default):
//! - Only the instance itself may open connections into its networks (the
//!   default bridge and the pool its user-defined networks come from), plus
//!   the networks its `AllowFrom=` names. Replies always pass. That one rule,
//!   enforced by every instance for its own networks, is also what keeps
//!   instances from reaching each other: the sender's own rules never need
//!   to know the others.
//! - The same holds for the instance's gateway addresses on the host (INPUT),
//!   but there the rules only drop: what they let through is still decided
//!   by the host's own INPUT rules and policy.
//! - Its containers may open connections to anything no instance claims, and
//!   leave masqueraded.
//! - A rootless instance (`Rootless=yes`) has no networks on the host: its
//!   containers' traffic leaves as sockets of its user, opened by
//!   slirp4netns or pasta in the host's namespace, so it is locally
//!   generated (OUTPUT, never FORWARD) and the rules above never see it.
//!   Its own rules, keyed on that user's uid, drop its new connections to
//!   the host's own addresses (except DNS, [`DNS_PORT`]; also the gateways
//!   of instances that admit it) and to every rootful instance's networks
//!   except those of the instances whose `AllowFrom=` names it
//!   (`--reach`); replies and everything else are left to the host. Nothing reaches into it but its published ports
//!   (rootlesskit listens for them on the host as its user), so it needs
//!   no admission rules.
//!
//! Shape: two chains shared by all instances, `DOCKYARD-FORWARD` (from
//! FORWARD) and `DOCKYARD-INPUT` (from INPUT). Each instance puts in
//! `DOCKYARD-FORWARD` one jump per network to its own admission chain, at
//! the top, and one accept per network for what its containers send, at the
//! bottom: every admission decision is taken before any sender's accept, in
//! whatever order instances start. The verdicts are explicit (ACCEPT or
//! DROP), so the host's FORWARD policy does not matter, whether ACCEPT or the
//! DROP a host Docker sets. Masquerading stays in a per-instance nat chain.
//! For rootless instances, `DOCKYARD-OUTPUT` (from OUTPUT) sends each one's
//! user's packets to its own chain, which ends in a jump to
//! `DOCKYARD-NETS`, where every rootful instance keeps one drop per network:
//! an instance started later, or again after a crash, is covered at once,
//! and a rootless instance costs the same few rules however many others run.

pub mod choice;
pub mod iptables;
pub mod nftables;

use crate::contract::network::Network;
use crate::name::InstanceName;
use ipnet::Ipv4Net;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Filter,
    Nat,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Filter, Table::Nat];

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
        }
    }
}

/// What a rule tests. Only what Dockyard's own rules use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Match {
    Source {
        net: Ipv4Net,
        negated: bool,
    },
    Dest {
        net: Ipv4Net,
        negated: bool,
    },
    InIface(String),
    OutIface {
        iface: String,
        negated: bool,
    },
    /// conntrack state RELATED or ESTABLISHED: replies to allowed connections.
    Reply,
    /// The sending socket belongs to this user (a rootless instance's).
    Owner(User),
    /// TCP or UDP to this destination port.
    Dport {
        proto: Proto,
        port: u16,
    },
    /// The destination is an address of the host itself: loopback, its LAN
    /// addresses, every rootful instance's gateway.
    LocalDest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// DNS, the one service on the host's own addresses a rootless instance's
/// user may open connections to (over UDP and TCP): slirp4netns and pasta
/// forward its containers' queries to the nameservers of the host's
/// /etc/resolv.conf, which is often a resolver on the host itself
/// (systemd-resolved's 127.0.0.53, a local dnsmasq).
pub const DNS_PORT: u16 = 53;

/// A rootless instance's user as its rules key on it. The model looks
/// nothing up: whoever applies or audits resolves the account the contract
/// names (`Network::rootless_user`) and passes the uid in
/// ([`Subject::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum User {
    Uid(u32),
    /// The account does not exist (deleted while its rules stayed, or not
    /// created yet). No live rule can key on it: an audit reports the
    /// expected rules missing, by this name, and the live ones, found by
    /// their tag, as stray. `dockyard-network up` refuses before planning.
    Missing(String),
}

impl User {
    pub fn uid(&self) -> Option<u32> {
        match self {
            User::Uid(u) => Some(*u),
            User::Missing(_) => None,
        }
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            User::Uid(u) => write!(f, "{u}"),
            User::Missing(name) => f.write_str(name),
        }
    }
}

/// One instance as its firewall sees it: the helper contract's values and,
/// for a rootless instance, its user as the host resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub net: Network,
    /// `Some` exactly when the instance is rootless.
    pub user: Option<User>,
}

impl Subject {
    /// `uid_of` looks an account up; `None` means there is no such user.
    pub fn resolve(net: Network, uid_of: impl Fn(&str) -> Option<u32>) -> Subject {
        let user = net.rootless_user.as_deref().map(|name| match uid_of(name) {
            Some(uid) => User::Uid(uid),
            None => User::Missing(name.to_string()),
        });
        Subject { net, user }
    }

    pub fn instance(&self) -> &InstanceName {
        &self.net.instance
    }

    /// The networks a rootless instance may reach, as disjoint networks
    /// (nftables refuses overlapping intervals; nested ones add nothing).
    pub fn reach(&self) -> Vec<Ipv4Net> {
        Ipv4Net::aggregate(&self.net.reach)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Masquerade,
    Jump(String),
}

/// Whose a rule is; rendered as its comment (`dockyard:NAME`, `dockyard`),
/// which is how an audit finds residue, also of instances whose conf is gone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Instance(InstanceName),
    /// Pieces every instance needs (the jumps to the shared chains).
    Shared,
}

impl Owner {
    pub fn tag(&self) -> String {
        match self {
            Owner::Instance(n) => n.firewall_tag(),
            Owner::Shared => SHARED_TAG.to_string(),
        }
    }
}

pub const SHARED_TAG: &str = "dockyard";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// In canonical order (sorted), so two rules with the same tests compare
    /// equal however a backend printed them.
    matches: Vec<Match>,
    pub verdict: Verdict,
    pub owner: Owner,
}

impl Rule {
    pub fn new(mut matches: Vec<Match>, verdict: Verdict, owner: Owner) -> Rule {
        matches.sort();
        Rule {
            matches,
            verdict,
            owner,
        }
    }

    pub fn matches(&self) -> &[Match] {
        &self.matches
    }

    pub fn jumps_to(&self, chain: &str) -> bool {
        matches!(&self.verdict, Verdict::Jump(c) if c == chain)
    }
}

/// A chain the instance owns whole: created, flushed and refilled as a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub table: Table,
    pub name: String,
    pub rules: Vec<Rule>,
}

/// Where in a chain the instance does not own a rule of its must stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Before every rule that is not a jump (in a shared chain: before any
    /// instance's accept); at the top of a built-in chain.
    First,
    /// After every jump (in a shared chain: after every admission jump).
    Last,
}

/// One rule placed in a chain the instance shares with others or with the
/// host (a built-in chain or a shared Dockyard chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub table: Table,
    pub chain: String,
    pub place: Place,
    pub rule: Rule,
}

/// A chain all instances share, reached from a built-in chain (`hook`) or
/// from instances' chains. The shared chains exist, with their hooks,
/// while any instance has a rule in any of them: every instance's set
/// holds every hook, so any start puts back a hook someone removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shared {
    pub table: Table,
    pub name: &'static str,
    pub hook: Option<&'static str>,
}

pub const SHARED_FORWARD: Shared = Shared {
    table: Table::Filter,
    name: "DOCKYARD-FORWARD",
    hook: Some("FORWARD"),
};

pub const SHARED_INPUT: Shared = Shared {
    table: Table::Filter,
    name: "DOCKYARD-INPUT",
    hook: Some("INPUT"),
};

/// What sockets send: one jump per rootless instance, keyed on its user.
pub const SHARED_OUTPUT: Shared = Shared {
    table: Table::Filter,
    name: "DOCKYARD-OUTPUT",
    hook: Some("OUTPUT"),
};

/// Every rootful instance's networks, one drop each: where no rootless
/// instance's user may open connections. Reached only from the rootless
/// instances' chains, after what they may reach returned.
pub const SHARED_NETS: Shared = Shared {
    table: Table::Filter,
    name: "DOCKYARD-NETS",
    hook: None,
};

pub const SHARED: [Shared; 4] = [SHARED_FORWARD, SHARED_INPUT, SHARED_OUTPUT, SHARED_NETS];

impl Shared {
    /// The jump from the built-in chain, tagged as nobody's in particular.
    pub fn hook_link(&self) -> Option<Link> {
        Some(Link {
            table: self.table,
            chain: self.hook?.to_string(),
            place: Place::First,
            rule: Rule::new(Vec::new(), Verdict::Jump(self.name.into()), Owner::Shared),
        })
    }

    pub fn is(&self, table: Table, chain: &str) -> bool {
        self.table == table && self.name == chain
    }
}

pub fn is_shared(table: Table, chain: &str) -> bool {
    SHARED.iter().any(|s| s.is(table, chain))
}

/// Everything one instance needs in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub instance: InstanceName,
    pub chains: Vec<Chain>,
    /// The instance's rules in chains it does not own, then the shared
    /// chains' hooks.
    pub links: Vec<Link>,
}

/// The names of the chains an instance owns (in every table).
pub fn own_chains(instance: &InstanceName) -> [String; 2] {
    [instance.firewall_chain(), instance.firewall_input_chain()]
}

impl Ruleset {
    pub fn of(subject: &Subject) -> Ruleset {
        match &subject.user {
            Some(user) => Ruleset::rootless(subject, user),
            None => Ruleset::rootful(&subject.net),
        }
    }

    fn rootful(net: &Network) -> Ruleset {
        let name = &net.instance;
        let mine = || Owner::Instance(name.clone());
        let rule = |m: Vec<Match>, v: Verdict| Rule::new(m, v, mine());
        let src = |net: Ipv4Net| Match::Source {
            net,
            negated: false,
        };
        let dst = |net: Ipv4Net| Match::Dest {
            net,
            negated: false,
        };
        let own_nets = [net.bridge_net(), net.pool];
        let admitted: Vec<Ipv4Net> = own_nets
            .iter()
            .chain(net.allow_from.iter())
            .copied()
            .collect();
        let (forward, input) = (name.firewall_chain(), name.firewall_input_chain());

        // Who may open a connection into the instance's networks.
        let mut admission = vec![rule(vec![Match::Reply], Verdict::Accept)];
        admission.extend(
            admitted
                .iter()
                .map(|n| rule(vec![src(*n)], Verdict::Accept)),
        );
        admission.push(rule(Vec::new(), Verdict::Drop));

        // Who may reach the instance's gateway addresses on the host. Only
        // drops: the host's INPUT rules decide about everything returned.
        let mut gateway = vec![
            rule(vec![Match::InIface("lo".into())], Verdict::Return),
            rule(vec![Match::Reply], Verdict::Return),
        ];
        gateway.extend(
            admitted
                .iter()
                .map(|n| rule(vec![src(*n)], Verdict::Return)),
        );
        gateway.push(rule(Vec::new(), Verdict::Drop));

        let masquerade = vec![
            rule(
                vec![
                    src(net.fixed),
                    Match::OutIface {
                        iface: net.bridge(),
                        negated: true,
                    },
                ],
                Verdict::Masquerade,
            ),
            rule(
                vec![
                    src(net.pool),
                    Match::Dest {
                        net: net.pool,
                        negated: true,
                    },
                ],
                Verdict::Masquerade,
            ),
        ];

        let link = |shared: Shared, place, rule| Link {
            table: shared.table,
            chain: shared.name.to_string(),
            place,
            rule,
        };
        let mut links = Vec::new();
        for n in own_nets {
            links.push(link(
                SHARED_FORWARD,
                Place::First,
                rule(vec![dst(n)], Verdict::Jump(forward.clone())),
            ));
        }
        // What the containers send: from the default bridge only through
        // the bridge itself, so a source address alone does not pass.
        links.push(link(
            SHARED_FORWARD,
            Place::Last,
            rule(
                vec![Match::InIface(net.bridge()), src(net.bridge_net())],
                Verdict::Accept,
            ),
        ));
        links.push(link(
            SHARED_FORWARD,
            Place::Last,
            rule(vec![src(net.pool)], Verdict::Accept),
        ));
        for n in own_nets {
            links.push(link(
                SHARED_INPUT,
                Place::First,
                rule(vec![dst(n)], Verdict::Jump(input.clone())),
            ));
        }
        // Where rootless instances' users may not go, whenever this one
        // starts: they need not restart to be kept out.
        for n in own_nets {
            links.push(link(
                SHARED_NETS,
                Place::Last,
                rule(vec![dst(n)], Verdict::Drop),
            ));
        }
        links.push(Link {
            table: Table::Nat,
            chain: "POSTROUTING".into(),
            place: Place::First,
            rule: rule(Vec::new(), Verdict::Jump(forward.clone())),
        });
        links.extend(SHARED.iter().filter_map(Shared::hook_link));

        Ruleset {
            instance: name.clone(),
            chains: vec![
                Chain {
                    table: Table::Filter,
                    name: forward.clone(),
                    rules: admission,
                },
                Chain {
                    table: Table::Filter,
                    name: input,
                    rules: gateway,
                },
                Chain {
                    table: Table::Nat,
                    name: forward,
                    rules: masquerade,
                },
            ],
            links,
        }
    }

    /// A rootless instance: only what its user's sockets open, in its
    /// chain (`firewall_chain`, as a rootful one's admission chain, so a
    /// teardown by name finds it either way). Replies return first; then
    /// DNS and nothing else to the host's own addresses; then what it may
    /// reach; then every rootful instance's networks drop (`DOCKYARD-NETS`);
    /// the rest returns to the host's OUTPUT rules and policy.
    fn rootless(subject: &Subject, user: &User) -> Ruleset {
        let name = subject.instance();
        let mine = || Owner::Instance(name.clone());
        let rule = |m: Vec<Match>, v: Verdict| Rule::new(m, v, mine());
        let chain = name.firewall_chain();
        let mut rules = vec![rule(vec![Match::Reply], Verdict::Return)];
        for proto in [Proto::Udp, Proto::Tcp] {
            rules.push(rule(
                vec![
                    Match::Dport {
                        proto,
                        port: DNS_PORT,
                    },
                    Match::LocalDest,
                ],
                Verdict::Return,
            ));
        }
        // Before what it may reach: an admitting instance's bridge network
        // holds its gateway, an address of the host like any other.
        rules.push(rule(vec![Match::LocalDest], Verdict::Drop));
        rules.extend(subject.reach().into_iter().map(|net| {
            rule(
                vec![Match::Dest {
                    net,
                    negated: false,
                }],
                Verdict::Return,
            )
        }));
        rules.push(rule(Vec::new(), Verdict::Jump(SHARED_NETS.name.into())));

        let mut links = vec![Link {
            table: SHARED_OUTPUT.table,
            chain: SHARED_OUTPUT.name.to_string(),
            place: Place::First,
            rule: rule(
                vec![Match::Owner(user.clone())],
                Verdict::Jump(chain.clone()),
            ),
        }];
        links.extend(SHARED.iter().filter_map(Shared::hook_link));
        Ruleset {
            instance: name.clone(),
            chains: vec![Chain {
                table: Table::Filter,
                name: chain,
                rules,
            }],
            links,
        }
    }

    /// How many rules (chain contents and links) make the whole set.
    pub fn len(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum::<usize>() + self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One line as a backend prints it, with the table it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub table: Table,
    pub text: String,
    /// A piece every instance shares (a hook, a shared chain's rule): it
    /// stays while other instances run, so it says nothing about this one.
    pub shared: bool,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How the live rules of one instance compare with its [`Ruleset`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// Expected lines found exactly once.
    pub ok: Vec<Line>,
    pub missing: Vec<Line>,
    /// Expected lines found more than once, with how often.
    pub duplicated: Vec<(Line, usize)>,
    /// Lines of the instance (tagged for it, in or jumping to its chains)
    /// that are not expected.
    pub stray: Vec<Line>,
}

impl Audit {
    pub fn total(&self) -> usize {
        self.ok.len() + self.missing.len() + self.duplicated.len()
    }

    /// Everything expected is there exactly once, and nothing else.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.stray.is_empty()
    }

    /// `present` (complete), `absent` (nothing of the instance; the shared
    /// hooks alone do not count, other instances keep them), `stray` (only
    /// unexpected lines), else `missing` or `duplicated`.
    pub fn state(&self) -> &'static str {
        let own_found = self
            .ok
            .iter()
            .chain(self.duplicated.iter().map(|(l, _)| l))
            .any(|l| !l.shared);
        if self.is_complete() {
            "present"
        } else if !own_found && self.stray.is_empty() {
            "absent"
        } else if !own_found {
            "stray"
        } else if !self.missing.is_empty() {
            "missing"
        } else if !self.duplicated.is_empty() {
            "duplicated"
        } else {
            "stray"
        }
    }
}

/// The programs a backend runs: one read of the live rules, one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    pub args: &'static [&'static str],
}

/// A firewall implementation. Plans are text for one run of
/// [`Backend::apply_program`], applied in one transaction per table; `None`
/// means nothing to do. Everything takes the output of
/// [`Backend::read_program`], so the pure part is testable without a kernel.
pub trait Backend: Sync {
    fn name(&self) -> &'static str;
    fn read_program(&self) -> Program;
    fn apply_program(&self) -> Program;
    /// Brings the live rules to exactly what `this` needs (and the shared
    /// pieces it needs). `running` are the other instances recorded as up
    /// with this backend: a backend whose shared pieces hold something of
    /// every instance puts back what they lost. A rootless instance's
    /// user must have been resolved (a [`User::Missing`] is the caller's
    /// to refuse; its pieces are left out).
    fn plan_up(&self, live: &str, this: &Subject, running: &[Subject]) -> Option<String>;
    /// Removes every trace of `instance`, and the shared chains when it was
    /// the last one using them. Needs nothing but the name (and `running`,
    /// as for [`Backend::plan_up`]).
    fn plan_down(&self, live: &str, instance: &InstanceName, running: &[Subject])
        -> Option<String>;
    fn audit(&self, live: &str, this: &Subject) -> Audit;
    /// Every line of `instance`, expected or not (networks unknown).
    fn residue(&self, live: &str, instance: &InstanceName) -> Vec<Line>;
}

pub const IPTABLES: iptables::Iptables = iptables::Iptables;
pub const NFTABLES: nftables::Nftables = nftables::Nftables;
/// Every backend, for what must look everywhere: a teardown with nothing
/// recorded, `destroy`'s search for residue.
pub const BACKENDS: [&dyn Backend; 2] = [&IPTABLES, &NFTABLES];

pub fn named(name: &str) -> Option<&'static dyn Backend> {
    BACKENDS.into_iter().find(|b| b.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    pub(crate) fn network(name: &str, third: u8, pool: &str) -> Network {
        Network {
            instance: InstanceName::parse(name).expect("name"),
            bridge_cidr: format!("172.22.{third}.1/24").parse().expect("net"),
            fixed: format!("172.22.{third}.0/24").parse().expect("net"),
            pool: pool.parse().expect("net"),
            allow_from: Vec::new(),
            data_root: Some(PathBuf::from(format!("/var/lib/dockyard/{name}/docker"))),
            rootless_user: None,
            reach: Vec::new(),
        }
    }

    /// A rootful instance.
    pub(crate) fn net(name: &str, third: u8, pool: &str) -> Subject {
        Subject::resolve(network(name, third, pool), |_| None)
    }

    /// A rootless instance whose user has `uid`, reaching `reach`.
    pub(crate) fn rootless(name: &str, third: u8, uid: u32, reach: &[&str]) -> Subject {
        let mut n = network(name, third, &format!("172.{}.0.0/16", 100 + third));
        n.rootless_user = Some(n.instance.account());
        n.reach = reach.iter().map(|r| r.parse().expect("net")).collect();
        Subject::resolve(n, |_| Some(uid))
    }

    #[test]
    fn ruleset_shape() {
        let rs = Ruleset::of(&net("dy1", 147, "172.23.0.0/16"));
        let names: Vec<(Table, &str)> = rs
            .chains
            .iter()
            .map(|c| (c.table, c.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (Table::Filter, "DOCKYARD-dy1"),
                (Table::Filter, "DOCKYARD-dy1-IN"),
                (Table::Nat, "DOCKYARD-dy1")
            ]
        );
        // Admission ends in an explicit drop, never the host's policy.
        assert_eq!(
            rs.chains[0].rules.last().map(|r| &r.verdict),
            Some(&Verdict::Drop)
        );
        // The gateway chain never accepts: the host's INPUT rules decide.
        assert!(rs.chains[1]
            .rules
            .iter()
            .all(|r| r.verdict != Verdict::Accept));
        let hooks = rs
            .links
            .iter()
            .filter(|l| l.rule.owner == Owner::Shared)
            .count();
        assert_eq!(hooks, 3);
        // Its networks are where no rootless instance's user may go.
        let drops: Vec<&Rule> = rs
            .links
            .iter()
            .filter(|l| l.chain == SHARED_NETS.name)
            .map(|l| &l.rule)
            .collect();
        assert_eq!(drops.len(), 2);
        assert!(drops.iter().all(|r| r.verdict == Verdict::Drop));
        assert_eq!(rs.len(), 4 + 5 + 2 + 12);
    }

    #[test]
    fn a_rootless_instance_keys_its_chain_on_its_user() {
        let rs = Ruleset::of(&rootless(
            "dyr",
            9,
            1234,
            &["172.22.1.0/24", "172.23.0.0/16", "172.23.4.0/24"],
        ));
        assert_eq!(rs.chains.len(), 1, "no admission, no masquerade");
        let chain = &rs.chains[0];
        assert_eq!(
            (chain.table, chain.name.as_str()),
            (Table::Filter, "DOCKYARD-dyr")
        );
        let verdicts: Vec<&Verdict> = chain.rules.iter().map(|r| &r.verdict).collect();
        let ret = &Verdict::Return;
        assert_eq!(
            verdicts,
            [
                ret,
                ret,
                ret,
                &Verdict::Drop,
                // Nested reach networks collapse into one.
                ret,
                ret,
                &Verdict::Jump("DOCKYARD-NETS".into())
            ]
        );
        assert_eq!(chain.rules[0].matches(), [Match::Reply]);
        // The host's own addresses drop before any reach returns: an
        // admitting instance's gateway is one.
        assert_eq!(chain.rules[3].matches(), [Match::LocalDest]);
        assert_eq!(
            chain.rules[1].matches(),
            [
                Match::Dport {
                    proto: Proto::Udp,
                    port: 53
                },
                Match::LocalDest
            ]
        );
        let jump = rs
            .links
            .iter()
            .find(|l| l.chain == SHARED_OUTPUT.name)
            .expect("dispatch");
        assert_eq!(jump.rule.matches(), [Match::Owner(User::Uid(1234))]);
        assert!(jump.rule.jumps_to("DOCKYARD-dyr"));
        // Every hook, so its start puts back whichever someone removed.
        let hooks: Vec<&str> = rs
            .links
            .iter()
            .filter(|l| l.rule.owner == Owner::Shared)
            .map(|l| l.chain.as_str())
            .collect();
        assert_eq!(hooks, ["FORWARD", "INPUT", "OUTPUT"]);
        assert_eq!(rs.len(), 7 + 4);
    }

    #[test]
    fn allowed_peers_are_admitted_in_both_chains() {
        let mut n = net("dy2", 2, "172.25.0.0/16");
        let peer: Ipv4Net = "172.22.1.0/24".parse().expect("net");
        n.net.allow_from.push(peer);
        let rs = Ruleset::of(&n);
        let admits = |c: &Chain| {
            c.rules.iter().any(|r| {
                r.matches()
                    == [Match::Source {
                        net: peer,
                        negated: false,
                    }]
            })
        };
        assert!(admits(&rs.chains[0]) && admits(&rs.chains[1]));
        assert!(!admits(&rs.chains[2]));
    }
}

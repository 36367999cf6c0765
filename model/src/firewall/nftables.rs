//! The nftables backend: the same policy as [`super::Ruleset`], as native
//! nftables objects, read with one `nft -j list ruleset` and changed with
//! one `nft -f -`, which the kernel commits as one transaction (all of a
//! plan or none of it).
//!
//! Layout:
//! - `table inet dockyard`, shared: set `nets` holds every running
//!   rootful instance's networks, set `admit` every pair (source network .
//!   instance network) allowed to open connections; one `forward` and one
//!   `input` chain drop a new connection into `@nets` whose pair is not in
//!   `@admit`. One lookup per packet however many instances run; each
//!   element carries its instance's tag, so `down` finds them by name.
//!   For rootless instances, set `rootless` holds their users' uids and
//!   `reach` the pairs (uid . network) they may open connections into; the
//!   `output` chain's four rules let a new connection of such a user
//!   through to DNS on the host's own addresses, drop it to any other
//!   address of the host (`fib daddr type local`, IPv6 too), let it into
//!   `@reach`, and drop it into `@nets`. A rootless instance is two elements and one
//!   per reached network, and `@nets` covers instances started after it.
//! - `table inet dockyard-NAME`: the instance's masquerade; deleting it is
//!   the instance's teardown, with its elements, in the same transaction.
//! - Four accepts tagged for the instance in iptables' `ip filter FORWARD`.
//!   An nftables accept only ends one base chain: the packet still meets
//!   every other table's chain on the hook, and the DROP policy a host
//!   Docker gives `FORWARD` would drop the instance's traffic (Docker's
//!   "Docker with nftables" page describes the same). The accepts are
//!   written in the form iptables-nft itself writes (so `iptables-save`
//!   still reads the table), and the chain is created the way iptables-nft
//!   creates it when missing, so a host Docker started later keeps them.
//!   They accept only what the shared chains did not drop: a drop is final
//!   in any table.

use super::{
    Audit, Backend, Line, Program, Subject, Table, User, DNS_PORT, SHARED_FORWARD, SHARED_TAG,
};
use crate::name::InstanceName;
use ipnet::Ipv4Net;
use serde_json::Value;
use std::fmt::Write as _;

pub struct Nftables;

pub const FAMILY: &str = "inet";
pub const SHARED_TABLE: &str = "dockyard";
pub const NETS: &str = "nets";
pub const ADMIT: &str = "admit";
pub const ROOTLESS: &str = "rootless";
pub const REACH: &str = "reach";
/// The shared sets: name, type, flags.
const SETS: [(&str, &str, &str); 4] = [
    (NETS, "ipv4_addr", "flags interval; "),
    (ADMIT, "ipv4_addr . ipv4_addr", "flags interval; "),
    (ROOTLESS, "uid", ""),
    (REACH, "uid . ipv4_addr", "flags interval; "),
];
/// Ahead of iptables-nft's filter chains (priority 0), so a drop here costs
/// them nothing; the order is not what makes it final.
const SHARED_PRIORITY: i64 = -10;
const HOST_FAMILY: &str = "ip";
const HOST_TABLE: &str = "filter";
const HOST_CHAIN: &str = "FORWARD";
const NAT_CHAIN: &str = "postrouting";

/// One test of a rule. Only what Dockyard's own rules use; anything else
/// makes a live rule "not Dockyard's form".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    Saddr {
        net: Ipv4Net,
        negated: bool,
    },
    Daddr {
        net: Ipv4Net,
        negated: bool,
    },
    Iif {
        name: String,
        negated: bool,
    },
    Oif {
        name: String,
        negated: bool,
    },
    /// `ip daddr @SET`
    DaddrIn(String),
    /// `ip saddr . ip daddr != @SET`
    PairNotIn(String),
    /// `ct state != { established, related }`: not a reply.
    New,
    /// `meta skuid @SET`: the sending socket's owner is in the set.
    SkuidIn(String),
    /// `meta skuid . ip daddr @SET`
    SkuidDaddrIn(String),
    /// `meta l4proto { tcp, udp }`
    TcpOrUdp,
    /// `th dport N`
    Dport(u16),
    /// `fib daddr type local`: an address of the host itself.
    LocalDest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Accept,
    Drop,
    Masquerade,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NftRule {
    pub exprs: Vec<Expr>,
    pub action: Action,
    pub tag: String,
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

impl NftRule {
    /// The rule in `nft` syntax; iptables-nft's own rules carry a counter,
    /// `with_counter` makes ours look the same to it.
    pub fn render(&self, with_counter: bool) -> String {
        let mut s = String::with_capacity(96);
        let ne = |n: bool| if n { "!= " } else { "" };
        for e in &self.exprs {
            let _ = match e {
                Expr::Saddr { net, negated } => write!(s, "ip saddr {}{net} ", ne(*negated)),
                Expr::Daddr { net, negated } => write!(s, "ip daddr {}{net} ", ne(*negated)),
                Expr::Iif { name, negated } => {
                    write!(s, "iifname {}{} ", ne(*negated), quote(name))
                }
                Expr::Oif { name, negated } => {
                    write!(s, "oifname {}{} ", ne(*negated), quote(name))
                }
                Expr::DaddrIn(set) => write!(s, "ip daddr @{set} "),
                Expr::PairNotIn(set) => write!(s, "ip saddr . ip daddr != @{set} "),
                Expr::New => write!(s, "ct state != {{ established, related }} "),
                Expr::SkuidIn(set) => write!(s, "meta skuid @{set} "),
                Expr::SkuidDaddrIn(set) => write!(s, "meta skuid . ip daddr @{set} "),
                Expr::TcpOrUdp => write!(s, "meta l4proto {{ tcp, udp }} "),
                Expr::Dport(port) => write!(s, "th dport {port} "),
                Expr::LocalDest => write!(s, "fib daddr type local "),
            };
        }
        if with_counter {
            s.push_str("counter ");
        }
        s.push_str(match self.action {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Masquerade => "masquerade",
        });
        let _ = write!(s, " comment {}", quote(&self.tag));
        s
    }
}

/// An element of one of the shared sets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Element {
    Net(Ipv4Net),
    Pair(Ipv4Net, Ipv4Net),
    Rootless(User),
    Reach(User, Ipv4Net),
}

impl Element {
    fn set(&self) -> &'static str {
        match self {
            Element::Net(_) => NETS,
            Element::Pair(..) => ADMIT,
            Element::Rootless(_) => ROOTLESS,
            Element::Reach(..) => REACH,
        }
    }

    /// A missing user renders by name: only an audit shows it (`up`
    /// refuses first, and no plan writes it).
    fn render(&self) -> String {
        match self {
            Element::Net(n) => n.to_string(),
            Element::Pair(s, d) => format!("{s} . {d}"),
            Element::Rootless(u) => u.to_string(),
            Element::Reach(u, n) => format!("{u} . {n}"),
        }
    }

    /// Can the kernel hold it (not keyed on a missing user)?
    fn writable(&self) -> bool {
        match self {
            Element::Rootless(u) | Element::Reach(u, _) => u.uid().is_some(),
            _ => true,
        }
    }
}

/// What one instance needs in place, in nftables' terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub instance: InstanceName,
    pub elements: Vec<Element>,
    pub host_accepts: Vec<NftRule>,
    pub masquerade: Vec<NftRule>,
}

impl Want {
    pub fn of(subject: &Subject) -> Want {
        let net = &subject.net;
        let tag = net.instance.firewall_tag();
        // A rootless instance: its user and what it may reach, nothing on
        // the host's FORWARD or nat (its networks are in its namespace).
        if let Some(user) = &subject.user {
            let mut elements = vec![Element::Rootless(user.clone())];
            elements.extend(
                subject
                    .reach()
                    .into_iter()
                    .map(|n| Element::Reach(user.clone(), n)),
            );
            return Want {
                instance: net.instance.clone(),
                elements,
                host_accepts: Vec::new(),
                masquerade: Vec::new(),
            };
        }
        let rule = |exprs, action| NftRule {
            exprs,
            action,
            tag: tag.clone(),
        };
        let own = [net.bridge_net(), net.pool];
        // Disjoint sources: overlapping pairs would be refused by the
        // interval set (an AllowFrom= inside an own network, or two nested).
        let sources = Ipv4Net::aggregate(&own.iter().chain(&net.allow_from).copied().collect());
        let mut elements: Vec<Element> = own.iter().map(|n| Element::Net(*n)).collect();
        for d in own {
            elements.extend(sources.iter().map(|s| Element::Pair(*s, d)));
        }
        let pos = |net| Expr::Saddr {
            net,
            negated: false,
        };
        let dst = |net| Expr::Daddr {
            net,
            negated: false,
        };
        let host_accepts = vec![
            rule(vec![dst(net.bridge_net())], Action::Accept),
            rule(vec![dst(net.pool)], Action::Accept),
            // From the default bridge only through the bridge itself.
            rule(
                vec![
                    Expr::Iif {
                        name: net.bridge(),
                        negated: false,
                    },
                    pos(net.bridge_net()),
                ],
                Action::Accept,
            ),
            rule(vec![pos(net.pool)], Action::Accept),
        ];
        let masquerade = vec![
            rule(
                vec![
                    pos(net.fixed),
                    Expr::Oif {
                        name: net.bridge(),
                        negated: true,
                    },
                ],
                Action::Masquerade,
            ),
            rule(
                vec![
                    pos(net.pool),
                    Expr::Daddr {
                        net: net.pool,
                        negated: true,
                    },
                ],
                Action::Masquerade,
            ),
        ];
        Want {
            instance: net.instance.clone(),
            elements,
            host_accepts,
            masquerade,
        }
    }

    pub fn len(&self) -> usize {
        self.elements.len() + self.host_accepts.len() + self.masquerade.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shared chains' rules, in order. `forward` and `input` have one: a
/// new connection into an instance's network from a source not admitted
/// for it is dropped (on `input` the host's own loopback traffic is left to
/// the host). `output` has a rootless instance's user's new connections:
/// an accept there only ends this chain, so it means "not dropped here",
/// and the host's OUTPUT rules still decide.
fn shared_rules(chain: &str) -> Vec<NftRule> {
    let rule = |exprs: Vec<Expr>, action| NftRule {
        exprs,
        action,
        tag: SHARED_TAG.into(),
    };
    if chain == "output" {
        let user = || [Expr::SkuidIn(ROOTLESS.into()), Expr::New];
        let with = |more: &[Expr]| user().into_iter().chain(more.iter().cloned()).collect();
        // The host's own addresses before what it may reach: an admitting
        // instance's bridge network holds its gateway.
        return vec![
            rule(
                with(&[Expr::TcpOrUdp, Expr::Dport(DNS_PORT), Expr::LocalDest]),
                Action::Accept,
            ),
            rule(with(&[Expr::LocalDest]), Action::Drop),
            rule(with(&[Expr::SkuidDaddrIn(REACH.into())]), Action::Accept),
            rule(with(&[Expr::DaddrIn(NETS.into())]), Action::Drop),
        ];
    }
    let mut exprs = Vec::new();
    if chain == "input" {
        exprs.push(Expr::Iif {
            name: "lo".into(),
            negated: true,
        });
    }
    exprs.extend([
        Expr::DaddrIn(NETS.into()),
        Expr::New,
        Expr::PairNotIn(ADMIT.into()),
    ]);
    vec![rule(exprs, Action::Drop)]
}

const SHARED_CHAINS: [(&str, &str); 3] = [
    ("forward", "forward"),
    ("input", "input"),
    ("output", "output"),
];

/// A rule as the kernel has it.
#[derive(Debug, Clone)]
pub struct LiveRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    pub rule: Option<NftRule>,
    /// The chain it jumps to, in whatever form (iptables-nft's own too).
    pub jump: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LiveElement {
    pub element: Element,
    pub comment: Option<String>,
}

/// What `nft -j list ruleset` says, as far as Dockyard cares.
#[derive(Debug, Default)]
pub struct Live {
    pub tables: Vec<(String, String)>,
    pub chains: Vec<(String, String, String)>,
    pub sets: Vec<String>,
    pub rules: Vec<LiveRule>,
    pub elements: Vec<LiveElement>,
}

impl Live {
    fn has_table(&self, family: &str, name: &str) -> bool {
        self.tables.iter().any(|(f, n)| f == family && n == name)
    }

    fn has_chain(&self, family: &str, table: &str, chain: &str) -> bool {
        self.chains
            .iter()
            .any(|(f, t, c)| f == family && t == table && c == chain)
    }

    fn rules_in<'a>(
        &'a self,
        family: &'a str,
        table: &'a str,
        chain: &'a str,
    ) -> impl Iterator<Item = &'a LiveRule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.family == family && r.table == table && r.chain == chain)
    }

    fn tagged_elements<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements
            .iter()
            .filter(move |e| e.comment.as_deref() == Some(tag))
            .map(|e| &e.element)
    }

    /// The iptables backend's jump from FORWARD to its shared chain, when
    /// instances on that backend run beside this one's (the last, should
    /// there be copies).
    fn iptables_jump(&self) -> Option<&LiveRule> {
        self.rules_in(HOST_FAMILY, HOST_TABLE, HOST_CHAIN)
            .filter(|r| r.jump.as_deref() == Some(SHARED_FORWARD.name))
            .last()
    }

    /// `r` (a rule of FORWARD) comes before the iptables backend's jump:
    /// an accept there would let traffic past the admission of the
    /// instances on that backend.
    fn above_iptables_jump(&self, r: &LiveRule) -> bool {
        let Some(jump) = self.iptables_jump() else {
            return false;
        };
        let at = |x: &LiveRule| self.rules.iter().position(|y| std::ptr::eq(x, y));
        at(r) < at(jump)
    }

    fn host_rules_tagged<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a LiveRule> + 'a {
        self.rules_in(HOST_FAMILY, HOST_TABLE, HOST_CHAIN)
            .filter(move |r| r.comment.as_deref() == Some(tag))
    }
}

fn net_of(v: &Value) -> Option<Ipv4Net> {
    match v {
        Value::String(s) => s.parse::<std::net::Ipv4Addr>().ok().map(Ipv4Net::from),
        Value::Object(o) => {
            let p = o.get("prefix")?;
            let addr: std::net::Ipv4Addr = p.get("addr")?.as_str()?.parse().ok()?;
            let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
            Ipv4Net::new(addr, len).ok()
        }
        _ => None,
    }
}

fn payload_field(v: &Value) -> Option<&str> {
    let p = v.get("payload")?;
    (p.get("protocol")?.as_str()? == "ip")
        .then_some(())
        .and_then(|_| p.get("field")?.as_str())
}

fn meta_key(v: &Value) -> Option<&str> {
    v.get("meta")?.get("key")?.as_str()
}

/// An array of strings, sorted; `None` if anything in it is not a string.
fn sorted_strings(v: &Value) -> Option<Vec<&str>> {
    let mut out = v
        .as_array()?
        .iter()
        .map(Value::as_str)
        .collect::<Option<Vec<&str>>>()?;
    out.sort_unstable();
    Some(out)
}

fn expr_of(m: &Value) -> Option<Expr> {
    let negated = match m.get("op")?.as_str()? {
        "==" => false,
        "!=" => true,
        _ => return None,
    };
    let left = m.get("left")?;
    let right = m.get("right")?;
    if let Some(key) = meta_key(left) {
        if key == "l4proto" {
            let protos = sorted_strings(right.get("set")?)?;
            return (!negated && protos == ["tcp", "udp"]).then_some(Expr::TcpOrUdp);
        }
        let name = right.as_str()?.to_string();
        return match key {
            "iifname" => Some(Expr::Iif { name, negated }),
            "oifname" => Some(Expr::Oif { name, negated }),
            "skuid" if !negated => Some(Expr::SkuidIn(name.strip_prefix('@')?.into())),
            _ => None,
        };
    }
    if let Some(fib) = left.get("fib") {
        let flags = sorted_strings(fib.get("flags")?)?;
        let local = fib.get("result")?.as_str()? == "type"
            && flags == ["daddr"]
            && right.as_str()? == "local";
        return (local && !negated).then_some(Expr::LocalDest);
    }
    if let Some(p) = left.get("payload") {
        if p.get("protocol")?.as_str()? == "th" {
            let port = u16::try_from(right.as_u64()?).ok()?;
            return (!negated && p.get("field")?.as_str()? == "dport").then_some(Expr::Dport(port));
        }
    }
    if left
        .get("ct")
        .and_then(|x| x.get("key"))
        .and_then(Value::as_str)
        == Some("state")
    {
        let states = sorted_strings(right.get("set")?)?;
        return (negated && states == ["established", "related"]).then_some(Expr::New);
    }
    if let Some(parts) = left.get("concat").and_then(Value::as_array) {
        let set = right.as_str()?.strip_prefix('@')?;
        return match parts.as_slice() {
            [u, d] if meta_key(u) == Some("skuid") && payload_field(d) == Some("daddr") => {
                (!negated).then(|| Expr::SkuidDaddrIn(set.into()))
            }
            [s, d] if payload_field(s) == Some("saddr") && payload_field(d) == Some("daddr") => {
                negated.then(|| Expr::PairNotIn(set.into()))
            }
            _ => None,
        };
    }
    let field = payload_field(left)?;
    if let Some(set) = right.as_str().and_then(|s| s.strip_prefix('@')) {
        return (!negated && field == "daddr").then(|| Expr::DaddrIn(set.into()));
    }
    let net = net_of(right)?;
    match field {
        "saddr" => Some(Expr::Saddr { net, negated }),
        "daddr" => Some(Expr::Daddr { net, negated }),
        _ => None,
    }
}

/// A live rule as an [`NftRule`] if it has exactly the shape Dockyard
/// writes (counters are ignored: iptables-nft adds them).
fn rule_of(exprs: &[Value], comment: Option<&str>) -> Option<NftRule> {
    let mut out = Vec::new();
    let mut action = None;
    for e in exprs {
        let obj = e.as_object()?;
        let (k, v) = obj.iter().next()?;
        match k.as_str() {
            "match" => out.push(expr_of(v)?),
            "counter" => {}
            "accept" => action = Some(Action::Accept),
            "drop" => action = Some(Action::Drop),
            "masquerade" => action = Some(Action::Masquerade),
            _ => return None,
        }
    }
    Some(NftRule {
        exprs: out,
        action: action?,
        tag: comment?.to_string(),
    })
}

fn str_of(o: &Value, k: &str) -> String {
    o.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Parses `nft -j list ruleset`. Text that is not JSON reads as an empty
/// ruleset (the read program's failure is reported before this).
pub fn parse_live(text: &str) -> Live {
    let mut live = Live::default();
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return live;
    };
    let Some(items) = doc.get("nftables").and_then(Value::as_array) else {
        return live;
    };
    for item in items {
        if let Some(t) = item.get("table") {
            live.tables.push((str_of(t, "family"), str_of(t, "name")));
        } else if let Some(c) = item.get("chain") {
            live.chains
                .push((str_of(c, "family"), str_of(c, "table"), str_of(c, "name")));
        } else if let Some(s) = item.get("set") {
            if str_of(s, "family") != FAMILY || str_of(s, "table") != SHARED_TABLE {
                continue;
            }
            let name = str_of(s, "name");
            for e in s
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(le) = element_of(&name, e) {
                    live.elements.push(le);
                }
            }
            live.sets.push(name);
        } else if let Some(r) = item.get("rule") {
            let comment = r.get("comment").and_then(Value::as_str);
            let exprs = r.get("expr").and_then(Value::as_array);
            live.rules.push(LiveRule {
                family: str_of(r, "family"),
                table: str_of(r, "table"),
                chain: str_of(r, "chain"),
                handle: r.get("handle").and_then(Value::as_u64).unwrap_or(0),
                comment: comment.map(str::to_string),
                rule: exprs.and_then(|x| rule_of(x, comment)),
                jump: exprs.and_then(|x| {
                    x.iter()
                        .find_map(|e| e.get("jump")?.get("target")?.as_str())
                        .map(str::to_string)
                }),
            });
        }
    }
    live
}

/// nft prints uids as numbers (names only with `-u`, which Dockyard never
/// passes).
fn uid_of(v: &Value) -> Option<User> {
    Some(User::Uid(u32::try_from(v.as_u64()?).ok()?))
}

fn element_of(set: &str, e: &Value) -> Option<LiveElement> {
    // Elements with a comment come wrapped: {"elem": {"val": …, "comment": …}}.
    let (val, comment) = match e.get("elem") {
        Some(inner) => (
            inner.get("val")?,
            inner.get("comment").and_then(Value::as_str),
        ),
        None => (e, None),
    };
    let parts = || val.get("concat")?.as_array();
    let element = match set {
        NETS => Element::Net(net_of(val)?),
        ADMIT => match parts()?.as_slice() {
            [s, d] => Element::Pair(net_of(s)?, net_of(d)?),
            _ => return None,
        },
        ROOTLESS => Element::Rootless(uid_of(val)?),
        REACH => match parts()?.as_slice() {
            [u, d] => Element::Reach(uid_of(u)?, net_of(d)?),
            _ => return None,
        },
        _ => return None,
    };
    Some(LiveElement {
        element,
        comment: comment.map(str::to_string),
    })
}

fn element_line(e: &Element) -> Line {
    Line {
        table: Table::Filter,
        text: format!("{FAMILY} {SHARED_TABLE} @{} {}", e.set(), e.render()),
        shared: false,
    }
}

fn rule_line(family: &str, table: &str, chain: &str, r: &NftRule, nat: bool) -> Line {
    Line {
        table: if nat { Table::Nat } else { Table::Filter },
        text: format!("{family} {table} {chain} {}", r.render(false)),
        shared: r.tag == SHARED_TAG,
    }
}

fn unknown_line(r: &LiveRule) -> Line {
    Line {
        table: Table::Filter,
        text: format!(
            "{} {} {} handle {} (comment {:?}; not Dockyard's form)",
            r.family,
            r.table,
            r.chain,
            r.handle,
            r.comment.as_deref().unwrap_or("")
        ),
        shared: false,
    }
}

fn delete_rule(text: &mut String, r: &LiveRule) {
    let _ = writeln!(
        text,
        "delete rule {} {} {} handle {}",
        r.family, r.table, r.chain, r.handle
    );
}

fn elements_cmd(text: &mut String, verb: &str, elements: &[&Element], tag: Option<&str>) {
    for (set, _, _) in SETS {
        let items: Vec<String> = elements
            .iter()
            .filter(|e| e.set() == set && e.writable())
            .map(|e| match tag {
                Some(t) => format!("{} comment {}", e.render(), quote(t)),
                None => e.render(),
            })
            .collect();
        if !items.is_empty() {
            let _ = writeln!(
                text,
                "{verb} element {FAMILY} {SHARED_TABLE} {set} {{ {} }}",
                items.join(", ")
            );
        }
    }
}

fn instance_table_text(want: &Want) -> String {
    let table = want.instance.nft_table();
    let mut s = format!(
        "table {FAMILY} {table} {{\n\tchain {NAT_CHAIN} {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
    );
    for r in &want.masquerade {
        let _ = writeln!(s, "\t\t{}", r.render(false));
    }
    s.push_str("\t}\n}\n");
    s
}

/// The shared table, sets and chains, each only if missing (an `add` of a
/// base chain that exists would still rewrite its definition).
fn shared_text(live: &Live, text: &mut String) {
    host_chain_text(live, text);
    if !live.has_table(FAMILY, SHARED_TABLE) {
        let _ = writeln!(text, "add table {FAMILY} {SHARED_TABLE}");
    }
    for (set, ty, flags) in SETS {
        if !live.sets.iter().any(|s| s == set) {
            let _ = writeln!(
                text,
                "add set {FAMILY} {SHARED_TABLE} {set} {{ type {ty}; {flags}}}"
            );
        }
    }
    for (chain, hook) in SHARED_CHAINS {
        if !live.has_chain(FAMILY, SHARED_TABLE, chain) {
            let _ = writeln!(
                text,
                "add chain {FAMILY} {SHARED_TABLE} {chain} {{ type filter hook {hook} priority {SHARED_PRIORITY}; policy accept; }}"
            );
        }
        // Exactly these rules in this order, else all of them anew (the
        // transaction is atomic: no packet sees the chain half done).
        let want = shared_rules(chain);
        let have: Vec<&LiveRule> = live.rules_in(FAMILY, SHARED_TABLE, chain).collect();
        let same = have.len() == want.len()
            && have
                .iter()
                .zip(&want)
                .all(|(h, w)| h.rule.as_ref() == Some(w));
        if !same {
            for r in have {
                delete_rule(text, r);
            }
            for w in &want {
                let _ = writeln!(
                    text,
                    "add rule {FAMILY} {SHARED_TABLE} {chain} {}",
                    w.render(true)
                );
            }
        }
    }
}

/// iptables' FORWARD when it is missing, created as iptables-nft creates
/// it; no policy, so one set meanwhile by someone else would stay.
fn host_chain_text(live: &Live, text: &mut String) {
    if !live.has_chain(HOST_FAMILY, HOST_TABLE, HOST_CHAIN) {
        let _ = writeln!(text, "add table {HOST_FAMILY} {HOST_TABLE}");
        let _ = writeln!(
            text,
            "add chain {HOST_FAMILY} {HOST_TABLE} {HOST_CHAIN} {{ type filter hook forward priority 0; }}"
        );
    }
}

/// What the other running instances lost of what they share with the
/// host and each other (someone deleted the shared table, flushed a set or
/// iptables' FORWARD) goes back with any instance's start or stop, as a
/// flushed FORWARD's one jump does with iptables. Only ever added, never
/// removed: an element without a record may belong to an instance whose
/// start has just committed and not yet recorded.
fn restore_others(live: &Live, this: &InstanceName, running: &[Subject], text: &mut String) {
    for other in running.iter().filter(|n| n.instance() != this) {
        let w = Want::of(other);
        let tag = w.instance.firewall_tag();
        let have: Vec<&Element> = live.tagged_elements(&tag).collect();
        let missing: Vec<&Element> = w.elements.iter().filter(|e| !have.contains(e)).collect();
        elements_cmd(text, "add", &missing, Some(&tag));
        let mut accepts: Vec<&NftRule> = Vec::new();
        for r in live.host_rules_tagged(&tag) {
            if live.above_iptables_jump(r) {
                delete_rule(text, r);
            } else if let Some(rule) = &r.rule {
                accepts.push(rule);
            }
        }
        insert_host_accepts(
            text,
            live,
            w.host_accepts.iter().filter(|r| !accepts.contains(r)),
        );
    }
}

/// At the top of iptables' FORWARD, ahead of anything of the host's that
/// would drop; but below the iptables backend's jump to its shared chain
/// when instances on that backend run too (a switch of backends under way):
/// an accept is final in FORWARD, so above that jump it would let this
/// instance's traffic into theirs past their admission.
fn insert_host_accepts<'a>(
    text: &mut String,
    live: &Live,
    rules: impl DoubleEndedIterator<Item = &'a NftRule>,
) {
    let place = match live.iptables_jump() {
        Some(j) => format!(
            "add rule {HOST_FAMILY} {HOST_TABLE} {HOST_CHAIN} position {}",
            j.handle
        ),
        None => format!("insert rule {HOST_FAMILY} {HOST_TABLE} {HOST_CHAIN}"),
    };
    for r in rules.rev() {
        let _ = writeln!(text, "{place} {}", r.render(true));
    }
}

/// The instance's own table holds its masquerade; a rootless instance has
/// none, and no table.
fn wants_table(want: &Want) -> bool {
    !want.masquerade.is_empty()
}

fn instance_table_matches(live: &Live, want: &Want) -> bool {
    let table = want.instance.nft_table();
    let chains: Vec<&str> = live
        .chains
        .iter()
        .filter(|(f, t, _)| f == FAMILY && *t == table)
        .map(|(_, _, c)| c.as_str())
        .collect();
    let rules: Vec<Option<&NftRule>> = live
        .rules
        .iter()
        .filter(|r| r.family == FAMILY && r.table == table)
        .map(|r| (r.chain == NAT_CHAIN).then_some(r.rule.as_ref()).flatten())
        .collect();
    chains == [NAT_CHAIN]
        && rules.len() == want.masquerade.len()
        && want.masquerade.iter().all(|w| rules.contains(&Some(w)))
}

impl Backend for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn read_program(&self) -> Program {
        Program {
            name: "nft",
            args: &["-j", "list", "ruleset"],
        }
    }

    fn apply_program(&self) -> Program {
        Program {
            name: "nft",
            args: &["-f", "-"],
        }
    }

    fn plan_up(&self, live: &str, this: &Subject, running: &[Subject]) -> Option<String> {
        let live = parse_live(live);
        let want = Want::of(this);
        let tag = want.instance.firewall_tag();
        let mut text = String::new();
        shared_text(&live, &mut text);
        restore_others(&live, &want.instance, running, &mut text);

        let table = want.instance.nft_table();
        if wants_table(&want) {
            if !instance_table_matches(&live, &want) {
                if live.has_table(FAMILY, &table) {
                    let _ = writeln!(text, "delete table {FAMILY} {table}");
                }
                text.push_str(&instance_table_text(&want));
            }
        } else if live.has_table(FAMILY, &table) {
            let _ = writeln!(text, "delete table {FAMILY} {table}");
        }

        let have: Vec<&Element> = live.tagged_elements(&tag).collect();
        let stray: Vec<&Element> = have
            .iter()
            .copied()
            .filter(|e| !want.elements.contains(e))
            .collect();
        let missing: Vec<&Element> = want.elements.iter().filter(|e| !have.contains(e)).collect();
        elements_cmd(&mut text, "delete", &stray, None);
        elements_cmd(&mut text, "add", &missing, Some(&tag));

        let mut kept: Vec<&NftRule> = Vec::new();
        for r in live.host_rules_tagged(&tag) {
            match &r.rule {
                Some(rule)
                    if want.host_accepts.contains(rule)
                        && !kept.contains(&rule)
                        && !live.above_iptables_jump(r) =>
                {
                    kept.push(rule)
                }
                _ => delete_rule(&mut text, r),
            }
        }
        insert_host_accepts(
            &mut text,
            &live,
            want.host_accepts.iter().filter(|r| !kept.contains(r)),
        );
        (!text.is_empty()).then_some(text)
    }

    fn plan_down(
        &self,
        live: &str,
        instance: &InstanceName,
        running: &[Subject],
    ) -> Option<String> {
        let live = parse_live(live);
        let tag = instance.firewall_tag();
        let mut text = String::new();
        let table = instance.nft_table();
        if live.has_table(FAMILY, &table) {
            let _ = writeln!(text, "delete table {FAMILY} {table}");
        }
        let running: Vec<&Subject> = running
            .iter()
            .filter(|n| n.instance() != instance)
            .collect();
        let others = !running.is_empty()
            || live
                .elements
                .iter()
                .any(|e| e.comment.as_deref() != Some(tag.as_str()));
        if live.has_table(FAMILY, SHARED_TABLE) {
            if others {
                let mine: Vec<&Element> = live.tagged_elements(&tag).collect();
                elements_cmd(&mut text, "delete", &mine, None);
                let kept: Vec<Subject> = running.into_iter().cloned().collect();
                // Their accepts go back into FORWARD: without the chain
                // (someone deleted iptables' table) the whole transaction,
                // this instance's removal with it, would fail.
                if !kept.is_empty() {
                    host_chain_text(&live, &mut text);
                }
                restore_others(&live, instance, &kept, &mut text);
            } else {
                // The last instance takes the shared table with it.
                let _ = writeln!(text, "delete table {FAMILY} {SHARED_TABLE}");
            }
        } else if !running.is_empty() {
            // Gone while others run: theirs is put back.
            shared_text(&live, &mut text);
            let kept: Vec<Subject> = running.into_iter().cloned().collect();
            restore_others(&live, instance, &kept, &mut text);
        }
        for r in live.host_rules_tagged(&tag) {
            delete_rule(&mut text, r);
        }
        (!text.is_empty()).then_some(text)
    }

    fn audit(&self, live: &str, this: &Subject) -> Audit {
        let live = parse_live(live);
        let want = Want::of(this);
        let tag = want.instance.firewall_tag();
        let table = want.instance.nft_table();
        let mut audit = Audit::default();
        let mut count = |line: Line, n: usize| match n {
            0 => audit.missing.push(line),
            1 => audit.ok.push(line),
            n => audit.duplicated.push((line, n)),
        };
        for (chain, _) in SHARED_CHAINS {
            for r in shared_rules(chain) {
                let n = live
                    .rules_in(FAMILY, SHARED_TABLE, chain)
                    .filter(|l| l.rule.as_ref() == Some(&r))
                    .count();
                count(rule_line(FAMILY, SHARED_TABLE, chain, &r, false), n);
            }
        }
        for e in &want.elements {
            let n = live.tagged_elements(&tag).filter(|x| *x == e).count();
            count(element_line(e), n);
        }
        for r in &want.host_accepts {
            let n = live
                .host_rules_tagged(&tag)
                .filter(|l| l.rule.as_ref() == Some(r))
                .count();
            count(rule_line(HOST_FAMILY, HOST_TABLE, HOST_CHAIN, r, false), n);
        }
        for r in &want.masquerade {
            let n = live
                .rules_in(FAMILY, &table, NAT_CHAIN)
                .filter(|l| l.rule.as_ref() == Some(r))
                .count();
            count(rule_line(FAMILY, &table, NAT_CHAIN, r, true), n);
        }
        for e in live.tagged_elements(&tag) {
            if !want.elements.contains(e) {
                audit.stray.push(element_line(e));
            }
        }
        for r in live.host_rules_tagged(&tag) {
            if !r
                .rule
                .as_ref()
                .is_some_and(|x| want.host_accepts.contains(x))
            {
                audit.stray.push(live_rule_line(r));
            }
        }
        for r in live
            .rules
            .iter()
            .filter(|r| r.family == FAMILY && r.table == table)
        {
            if !r.rule.as_ref().is_some_and(|x| want.masquerade.contains(x)) {
                audit.stray.push(live_rule_line(r));
            }
        }
        audit
    }

    fn residue(&self, live: &str, instance: &InstanceName) -> Vec<Line> {
        let live = parse_live(live);
        let tag = instance.firewall_tag();
        let table = instance.nft_table();
        let mut out: Vec<Line> = live.tagged_elements(&tag).map(element_line).collect();
        out.extend(live.host_rules_tagged(&tag).map(live_rule_line));
        out.extend(
            live.rules
                .iter()
                .filter(|r| r.family == FAMILY && r.table == table)
                .map(live_rule_line),
        );
        if out.is_empty() && live.has_table(FAMILY, &table) {
            out.push(Line {
                table: Table::Nat,
                text: format!("table {FAMILY} {table} (empty)"),
                shared: false,
            });
        }
        out
    }
}

fn live_rule_line(r: &LiveRule) -> Line {
    match &r.rule {
        Some(rule) => rule_line(
            &r.family,
            &r.table,
            &r.chain,
            rule,
            rule.action == Action::Masquerade,
        ),
        None => unknown_line(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::tests::{net, rootless};

    #[test]
    fn want_shape() {
        let w = Want::of(&net("dy1", 1, "172.23.0.0/16"));
        assert_eq!(w.elements.len(), 2 + 4);
        assert_eq!(w.host_accepts.len(), 4);
        assert_eq!(w.masquerade.len(), 2);
    }

    #[test]
    fn allow_from_inside_an_own_network_makes_no_overlapping_pair() {
        let mut n = net("dy2", 2, "172.25.0.0/16");
        n.net.allow_from.push("172.25.3.0/24".parse().expect("net"));
        n.net.allow_from.push("10.0.0.0/8".parse().expect("net"));
        n.net.allow_from.push("10.9.0.0/16".parse().expect("net"));
        let w = Want::of(&n);
        let pairs: Vec<(Ipv4Net, Ipv4Net)> = w
            .elements
            .iter()
            .filter_map(|e| match e {
                Element::Pair(s, d) => Some((*s, *d)),
                _ => None,
            })
            .collect();
        for (i, a) in pairs.iter().enumerate() {
            for b in &pairs[i + 1..] {
                let overlap = |x: &Ipv4Net, y: &Ipv4Net| x.contains(y) || y.contains(x);
                assert!(!(overlap(&a.0, &b.0) && overlap(&a.1, &b.1)), "{a:?} {b:?}");
            }
        }
        // own bridge, pool, 10/8 as sources, for both destinations.
        assert_eq!(pairs.len(), 6);
    }

    /// What nft 1.0.6 printed for a ruleset this backend wrote (trimmed to
    /// what matters), with iptables-nft's own rule beside ours.
    fn sample() -> String {
        r#"{"nftables": [
 {"metainfo": {"version": "1.0.6"}},
 {"table": {"family": "ip", "name": "filter", "handle": 1}},
 {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
 {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 9, "comment": "dockyard:dy1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "172.22.1.0", "len": 24}}}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
 {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "1.2.3.4"}}, {"xt": {"type": "match", "name": "conntrack"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
 {"table": {"family": "inet", "name": "dockyard", "handle": 2}},
 {"set": {"family": "inet", "name": "nets", "table": "dockyard", "type": "ipv4_addr", "handle": 1, "flags": ["interval"], "elem": [{"elem": {"val": {"prefix": {"addr": "172.22.1.0", "len": 24}}, "comment": "dockyard:dy1"}}, {"elem": {"val": {"prefix": {"addr": "172.23.0.0", "len": 16}}, "comment": "dockyard:dy1"}}, {"elem": {"val": {"prefix": {"addr": "172.22.9.0", "len": 24}}, "comment": "dockyard:dy9"}}]}},
 {"set": {"family": "inet", "name": "admit", "table": "dockyard", "type": ["ipv4_addr", "ipv4_addr"], "handle": 2, "flags": ["interval"], "elem": [{"elem": {"val": {"concat": [{"prefix": {"addr": "172.22.1.0", "len": 24}}, {"prefix": {"addr": "172.22.1.0", "len": 24}}]}, "comment": "dockyard:dy1"}}]}},
 {"chain": {"family": "inet", "table": "dockyard", "name": "forward", "handle": 3, "type": "filter", "hook": "forward", "prio": -10, "policy": "accept"}},
 {"rule": {"family": "inet", "table": "dockyard", "chain": "forward", "handle": 5, "comment": "dockyard", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@nets"}}, {"match": {"op": "!=", "left": {"ct": {"key": "state"}}, "right": {"set": ["established", "related"]}}}, {"match": {"op": "!=", "left": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "ip", "field": "daddr"}}]}, "right": "@admit"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
 {"table": {"family": "inet", "name": "dockyard-dy1", "handle": 3}},
 {"chain": {"family": "inet", "table": "dockyard-dy1", "name": "postrouting", "handle": 1, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}},
 {"rule": {"family": "inet", "table": "dockyard-dy1", "chain": "postrouting", "handle": 2, "comment": "dockyard:dy1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "172.22.1.0", "len": 24}}}}, {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "dy1_docker0"}}, {"masquerade": null}]}}
]}"#
        .to_string()
    }

    #[test]
    fn parses_what_nft_prints() {
        let live = parse_live(&sample());
        assert_eq!(live.elements.len(), 4);
        let shared = live
            .rules
            .iter()
            .find(|r| r.table == SHARED_TABLE)
            .and_then(|r| r.rule.clone());
        assert_eq!(shared.as_ref(), shared_rules("forward").first());
        // iptables-nft's own rule (an xt match) is nobody's form.
        assert!(live.rules.iter().any(|r| r.handle == 3 && r.rule.is_none()));
        let nat = live.rules.iter().find(|r| r.table == "dockyard-dy1");
        assert_eq!(
            nat.and_then(|r| r.rule.as_ref()).map(|r| r.render(false)),
            Some(
                r#"ip saddr 172.22.1.0/24 oifname != "dy1_docker0" masquerade comment "dockyard:dy1""#
                    .to_string()
            )
        );
    }

    #[test]
    fn first_up_creates_everything() {
        let n = net("dy1", 1, "172.23.0.0/16");
        let plan = Nftables
            .plan_up(r#"{"nftables": []}"#, &n, &[])
            .expect("a plan");
        for want in [
            "add chain ip filter FORWARD { type filter hook forward priority 0; }",
            "add set inet dockyard nets { type ipv4_addr; flags interval; }",
            "add rule inet dockyard input iifname != \"lo\" ip daddr @nets ct state != { established, related } ip saddr . ip daddr != @admit counter drop comment \"dockyard\"",
            "table inet dockyard-dy1 {",
            "add element inet dockyard nets { 172.22.1.0/24 comment \"dockyard:dy1\", 172.23.0.0/16 comment \"dockyard:dy1\" }",
            "insert rule ip filter FORWARD ip daddr 172.22.1.0/24 counter accept comment \"dockyard:dy1\"",
        ] {
            assert!(plan.contains(want), "{want} not in\n{plan}");
        }
        assert!(!plan.contains("delete"), "{plan}");
    }

    #[test]
    fn up_repairs_only_what_is_missing() {
        let n = net("dy1", 1, "172.23.0.0/16");
        let plan = Nftables.plan_up(&sample(), &n, &[]).expect("a plan");
        // Present: the host chain, shared table, the forward rule; one host
        // accept; 3 of 6 elements; the instance table lacks the pool's
        // masquerade, so it is replaced whole.
        assert!(!plan.contains("add chain ip filter"), "{plan}");
        assert!(
            plan.contains("delete table inet dockyard-dy1\ntable inet dockyard-dy1 {"),
            "{plan}"
        );
        assert!(!plan.contains("add rule inet dockyard forward"), "{plan}");
        assert!(plan.contains("add rule inet dockyard input"), "{plan}");
        assert_eq!(
            plan.matches("insert rule ip filter FORWARD").count(),
            3,
            "{plan}"
        );
        assert!(
            !plan.contains("172.22.9.0"),
            "another instance's element: {plan}"
        );
    }

    #[test]
    fn down_keeps_the_shared_table_while_others_use_it() {
        let dy1 = InstanceName::parse("dy1").expect("name");
        let plan = Nftables.plan_down(&sample(), &dy1, &[]).expect("a plan");
        assert!(plan.contains("delete table inet dockyard-dy1\n"), "{plan}");
        assert!(
            plan.contains("delete element inet dockyard nets { 172.22.1.0/24, 172.23.0.0/16 }"),
            "{plan}"
        );
        assert!(
            plan.contains("delete rule ip filter FORWARD handle 9"),
            "{plan}"
        );
        assert!(!plan.contains("handle 3"), "the host's rule: {plan}");
        assert!(!plan.contains("delete table inet dockyard\n"), "{plan}");
        let dy9 = InstanceName::parse("dy9").expect("name");
        let sample = sample().replace("dockyard:dy1", "dockyard:dy9");
        let last = Nftables.plan_down(&sample, &dy9, &[]).expect("a plan");
        assert!(last.contains("delete table inet dockyard\n"), "{last}");
        let none = InstanceName::parse("dy5").expect("name");
        assert_eq!(Nftables.plan_down(&sample, &none, &[]), None);
    }

    /// Someone deleted iptables' table (`nft delete table ip filter`, a
    /// flushed ruleset put partly back): a stop while others run puts their
    /// accepts back into a FORWARD it creates first, so the stop itself
    /// does not fail.
    #[test]
    fn a_stop_recreates_forward_before_putting_accepts_back() {
        let dy1 = net("dy1", 1, "172.23.0.0/16");
        let dy3 = net("dy3", 3, "172.26.0.0/16");
        let no_filter = sample()
            .replace(
                r#""family": "ip", "name": "filter""#,
                r#""family": "ip", "name": "gone""#,
            )
            .replace(
                r#""family": "ip", "table": "filter""#,
                r#""family": "ip", "table": "gone""#,
            );
        let plan = Nftables
            .plan_down(&no_filter, dy1.instance(), std::slice::from_ref(&dy3))
            .expect("a plan");
        let chain = plan
            .find("add chain ip filter FORWARD { type filter hook forward priority 0; }\n")
            .unwrap_or_else(|| panic!("no FORWARD created:\n{plan}"));
        let accept = plan
            .find("insert rule ip filter FORWARD ip daddr 172.26.0.0/16 counter accept comment \"dockyard:dy3\"")
            .unwrap_or_else(|| panic!("dy3's accept not put back:\n{plan}"));
        assert!(chain < accept, "{plan}");
        // With nobody to put back, a stop creates nothing.
        let alone = Nftables
            .plan_down(&no_filter, dy1.instance(), &[])
            .expect("a plan");
        assert!(!alone.contains("add "), "{alone}");
    }

    /// Instances on both backends (the host's setting changed, some have
    /// not restarted yet): the iptables backend admits into its instances'
    /// networks from its jump in FORWARD, and an accept above that jump
    /// would let the nftables instances' traffic past it. Accepts go below
    /// it, and one found above it is moved.
    #[test]
    fn accepts_stay_below_the_iptables_backends_jump() {
        let jump = r#"{"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 20, "expr": [{"xt": {"type": "match", "name": "comment"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "DOCKYARD-FORWARD"}}]}},
 {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 3,"#;
        let mixed = sample().replacen(
            r#"{"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 3,"#,
            jump,
            1,
        );
        let live = parse_live(&mixed);
        assert_eq!(live.iptables_jump().map(|r| r.handle), Some(20));
        let dy1 = net("dy1", 1, "172.23.0.0/16");
        let dy3 = net("dy3", 3, "172.26.0.0/16");
        let plan = Nftables
            .plan_up(&mixed, &dy1, std::slice::from_ref(&dy3))
            .expect("a plan");
        // dy1's one accept was above the jump: moved, with the three missing.
        assert!(
            plan.contains("delete rule ip filter FORWARD handle 9\n"),
            "{plan}"
        );
        assert_eq!(
            plan.matches("add rule ip filter FORWARD position 20 ")
                .count(),
            4 + 4,
            "{plan}"
        );
        assert!(!plan.contains("insert rule ip filter FORWARD"), "{plan}");
        // In order: the first of dy1's four right below the jump.
        let first = plan
            .lines()
            .rfind(|l| l.contains("dockyard:dy1") && l.contains("position 20"))
            .unwrap_or_default();
        assert!(first.contains("ip daddr 172.22.1.0/24"), "{plan}");
        // Without the iptables backend's jump: at the top, as before.
        let plan = Nftables.plan_up(&sample(), &dy1, &[]).expect("a plan");
        assert!(!plan.contains("position"), "{plan}");
    }

    #[test]
    fn any_start_or_stop_puts_back_what_running_instances_lost() {
        let dy1 = net("dy1", 1, "172.23.0.0/16");
        let dy3 = net("dy3", 3, "172.26.0.0/16");
        // Someone deleted the shared table: dy3 runs, dy1 starts.
        let plan = Nftables
            .plan_up(r#"{"nftables": []}"#, &dy1, std::slice::from_ref(&dy3))
            .expect("a plan");
        assert!(
            plan.contains("172.26.0.0/16 comment \"dockyard:dy3\""),
            "{plan}"
        );
        // dy1, the last with elements, stops while dy3 is recorded as up:
        // the shared table stays and dy3's elements come back.
        let plan = Nftables
            .plan_down(&sample(), dy1.instance(), &[dy3.clone(), dy1.clone()])
            .expect("a plan");
        assert!(!plan.contains("delete table inet dockyard\n"), "{plan}");
        assert!(
            plan.contains(
                "add element inet dockyard nets { 172.22.3.0/24 comment \"dockyard:dy3\""
            ),
            "{plan}"
        );
        assert!(
            !plan.contains("172.23.0.0/16 comment"),
            "dy1's own are not restored: {plan}"
        );
    }

    #[test]
    fn audit_counts_and_finds_strays() {
        let n = net("dy1", 1, "172.23.0.0/16");
        let a = Nftables.audit(&sample(), &n);
        // The shared chains' six rules, elements, accepts, masquerades.
        assert_eq!(a.total(), 6 + 6 + 4 + 2);
        assert_eq!(a.state(), "missing");
        let mut other = n.clone();
        other.net.pool = "172.24.0.0/16".parse().expect("net");
        let a = Nftables.audit(&sample(), &other);
        assert!(
            a.stray.iter().any(|l| l.text.contains("172.23.0.0/16")),
            "{a:?}"
        );
        let residue = Nftables.residue(&sample(), n.instance());
        assert_eq!(residue.len(), 2 + 1 + 1 + 1);
    }

    /// What `nft -j list ruleset` (nft 1.0.6) printed in a network
    /// namespace after `dockyard-network up` of the rootless dyr (user uid
    /// 995, reaching dy1's networks) and then of the rootful dy1.
    const ROOTLESS_LIVE: &str = include_str!("testdata/rootless-nft.json");

    fn dyr() -> Subject {
        rootless("dyr", 9, 995, &["172.22.1.0/24", "172.23.0.0/16"])
    }

    fn dy1() -> Subject {
        net("dy1", 1, "172.23.0.0/16")
    }

    #[test]
    fn a_rootless_instance_is_its_user_and_what_it_reaches() {
        let w = Want::of(&rootless(
            "dyr",
            9,
            995,
            &["172.22.1.0/24", "172.23.0.0/16", "172.23.8.0/24"],
        ));
        let n = |s: &str| s.parse::<Ipv4Net>().expect("net");
        assert_eq!(
            w.elements,
            [
                Element::Rootless(User::Uid(995)),
                Element::Reach(User::Uid(995), n("172.22.1.0/24")),
                // Nested networks would be overlapping intervals.
                Element::Reach(User::Uid(995), n("172.23.0.0/16")),
            ]
        );
        assert!(w.host_accepts.is_empty() && w.masquerade.is_empty());
    }

    #[test]
    fn what_nft_printed_for_a_rootless_instance_parses_back() {
        let live = parse_live(ROOTLESS_LIVE);
        let output: Vec<Option<NftRule>> = live
            .rules_in(FAMILY, SHARED_TABLE, "output")
            .map(|r| r.rule.clone())
            .collect();
        let want: Vec<Option<NftRule>> = shared_rules("output").into_iter().map(Some).collect();
        assert_eq!(output, want);
        let tag = "dockyard:dyr";
        let mine: Vec<&Element> = live.tagged_elements(tag).collect();
        assert_eq!(mine, Want::of(&dyr()).elements.iter().collect::<Vec<_>>());
        // Each as the other's running peer, as the helper passes them.
        for (this, other) in [(dyr(), dy1()), (dy1(), dyr())] {
            let running = std::slice::from_ref(&other);
            assert_eq!(Nftables.plan_up(ROOTLESS_LIVE, &this, running), None);
            let a = Nftables.audit(ROOTLESS_LIVE, &this);
            assert!(a.is_complete(), "{}: {a:#?}", this.instance());
        }
        // The shared chains' six rules, its user and two reached networks.
        assert_eq!(Nftables.audit(ROOTLESS_LIVE, &dyr()).total(), 6 + 3);
    }

    #[test]
    fn a_rootless_instance_starts_with_its_elements_only() {
        let plan = Nftables
            .plan_up(r#"{"nftables": []}"#, &dyr(), &[])
            .expect("a plan");
        for want in [
            "add set inet dockyard rootless { type uid; }",
            "add set inet dockyard reach { type uid . ipv4_addr; flags interval; }",
            "add chain inet dockyard output { type filter hook output priority -10; policy accept; }",
            "add rule inet dockyard output meta skuid @rootless ct state != { established, related } meta l4proto { tcp, udp } th dport 53 fib daddr type local counter accept comment \"dockyard\"",
            "add rule inet dockyard output meta skuid @rootless ct state != { established, related } ip daddr @nets counter drop comment \"dockyard\"",
            "add element inet dockyard rootless { 995 comment \"dockyard:dyr\" }",
            "add element inet dockyard reach { 995 . 172.22.1.0/24 comment \"dockyard:dyr\", 995 . 172.23.0.0/16 comment \"dockyard:dyr\" }",
        ] {
            assert!(plan.contains(want), "{want} not in\n{plan}");
        }
        // No table of its own, no accepts in FORWARD, nothing in @nets.
        assert!(!plan.contains("dockyard-dyr"), "{plan}");
        assert!(!plan.contains("rule ip filter FORWARD"), "{plan}");
        assert!(!plan.contains("element inet dockyard nets"), "{plan}");
    }

    #[test]
    fn a_rootless_instance_stops_with_its_elements_and_nothing_else() {
        let plan = Nftables
            .plan_down(
                ROOTLESS_LIVE,
                dyr().instance(),
                std::slice::from_ref(&dy1()),
            )
            .expect("a plan");
        assert_eq!(
            plan,
            "delete element inet dockyard rootless { 995 }\ndelete element inet dockyard reach { 995 . 172.22.1.0/24, 995 . 172.23.0.0/16 }\n"
        );
        // The rootful one stops while the rootless one runs: the shared
        // table, with @nets now empty, stays for it.
        let plan = Nftables
            .plan_down(
                ROOTLESS_LIVE,
                dy1().instance(),
                std::slice::from_ref(&dyr()),
            )
            .expect("a plan");
        assert!(!plan.contains("delete table inet dockyard\n"), "{plan}");
        assert!(!plan.contains("995"), "{plan}");
    }

    /// Someone deleted the shared table while a rootless instance ran: the
    /// next start of any instance puts its user and reach back.
    #[test]
    fn any_start_puts_back_a_running_rootless_instances_elements() {
        let plan = Nftables
            .plan_up(r#"{"nftables": []}"#, &dy1(), std::slice::from_ref(&dyr()))
            .expect("a plan");
        assert!(
            plan.contains("add element inet dockyard rootless { 995 comment \"dockyard:dyr\" }"),
            "{plan}"
        );
        // Unless its user is gone: nothing the kernel would refuse.
        let mut gone = dyr();
        gone.user = Some(User::Missing("dyr_docker".into()));
        let plan = Nftables
            .plan_up(r#"{"nftables": []}"#, &dy1(), std::slice::from_ref(&gone))
            .expect("a plan");
        assert!(!plan.contains("dyr"), "{plan}");
    }

    #[test]
    fn a_rootless_instance_whose_user_is_gone_is_found_by_its_tag() {
        let mut gone = dyr();
        gone.user = Some(User::Missing("dyr_docker".into()));
        let a = Nftables.audit(ROOTLESS_LIVE, &gone);
        assert_eq!(a.state(), "stray", "{a:#?}");
        assert_eq!((a.missing.len(), a.stray.len()), (3, 3), "{a:#?}");
        assert!(
            a.missing
                .iter()
                .any(|l| l.text == "inet dockyard @rootless dyr_docker"),
            "{a:#?}"
        );
        assert_eq!(Nftables.residue(ROOTLESS_LIVE, gone.instance()).len(), 3);
    }
}

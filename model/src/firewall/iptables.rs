//! The iptables backend: rules rendered as `iptables-restore` input, the
//! live set read with one `iptables-save`, every change applied with one
//! `iptables-restore --noflush` (one transaction per table).
//!
//! Live rules are parsed back into [`Rule`]s and compared as data, so the
//! comment quoting of iptables-nft (`"dockyard:dy1"`) against legacy's bare
//! word, or the order in which a variant prints matches, cannot make a
//! present rule look missing. A line Dockyard could not have written parses
//! to nothing and is only ever reported or deleted verbatim.

use super::{
    is_shared, own_chains, Audit, Backend, Line, Match, Owner, Place, Program, Proto, Rule,
    Ruleset, Subject, Table, User, Verdict, SHARED, SHARED_TAG,
};
use crate::name::InstanceName;
use std::fmt::Write as _;

pub struct Iptables;

/// One rule as `iptables-save` printed it.
#[derive(Debug, Clone)]
pub struct SavedRule {
    pub chain: String,
    /// The text after `-A CHAIN`, valid `-D` input as it stands.
    pub spec: String,
    pub rule: Option<Rule>,
}

#[derive(Debug, Default)]
pub struct SavedTable {
    pub name: String,
    pub chains: Vec<String>,
    pub rules: Vec<SavedRule>,
}

#[derive(Debug, Default)]
pub struct Saved {
    pub tables: Vec<SavedTable>,
}

impl Saved {
    pub fn table(&self, t: Table) -> Option<&SavedTable> {
        self.tables.iter().find(|x| x.name == t.as_str())
    }
}

impl SavedTable {
    fn in_chain<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a SavedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

/// The rule in restore syntax, without `-A CHAIN`. Matches come in the order
/// iptables-save prints them, so a plan reads like the saved state.
pub fn render(rule: &Rule) -> String {
    let mut s = String::with_capacity(96);
    let neg = |n: bool| if n { "! " } else { "" };
    for m in rule.matches() {
        match m {
            Match::Source { net, negated } => write!(s, "{}-s {net} ", neg(*negated)),
            Match::Dest { net, negated } => write!(s, "{}-d {net} ", neg(*negated)),
            Match::InIface(i) => write!(s, "-i {i} "),
            Match::OutIface { iface, negated } => write!(s, "{}-o {iface} ", neg(*negated)),
            Match::Reply => write!(s, "-m conntrack --ctstate RELATED,ESTABLISHED "),
            // A missing user renders by name: only ever shown by an audit
            // (`up` refuses first), where it says whose rules are missing.
            Match::Owner(user) => write!(s, "-m owner --uid-owner {user} "),
            Match::Dport { proto, port } => {
                let p = proto.as_str();
                write!(s, "-p {p} -m {p} --dport {port} ")
            }
            Match::LocalDest => write!(s, "-m addrtype --dst-type LOCAL "),
        }
        .unwrap_or(());
    }
    let target = match &rule.verdict {
        Verdict::Accept => "ACCEPT",
        Verdict::Drop => "DROP",
        Verdict::Return => "RETURN",
        Verdict::Masquerade => "MASQUERADE",
        Verdict::Jump(c) => c.as_str(),
    };
    let _ = write!(s, "-m comment --comment {} -j {target}", rule.owner.tag());
    s
}

/// Split like iptables-restore does: whitespace separates, double quotes
/// group, backslash escapes the next character inside quotes.
pub fn words(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = spec.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// A saved spec as a [`Rule`], if it has exactly the shape Dockyard writes:
/// only the matches of [`Match`], one Dockyard comment, one target.
pub fn parse_rule(spec: &str) -> Option<Rule> {
    let w = words(spec);
    let mut i = 0;
    let mut matches = Vec::new();
    let mut owner = None;
    let mut verdict = None;
    // `-p` and `--dport` make one match; either alone is not Dockyard's.
    let mut proto = None;
    let mut dport = None;
    while i < w.len() {
        let negated = w[i] == "!";
        if negated {
            i += 1;
        }
        let opt = w.get(i)?.as_str();
        let val = w.get(i + 1).map(String::as_str);
        match (opt, negated) {
            ("-s", _) => matches.push(Match::Source {
                net: val?.parse().ok()?,
                negated,
            }),
            ("-d", _) => matches.push(Match::Dest {
                net: val?.parse().ok()?,
                negated,
            }),
            ("-i", false) => matches.push(Match::InIface(val?.to_string())),
            ("-o", _) => matches.push(Match::OutIface {
                iface: val?.to_string(),
                negated,
            }),
            ("-m", false)
                if matches!(
                    val,
                    Some("conntrack" | "comment" | "owner" | "addrtype" | "tcp" | "udp")
                ) =>
            {
                i += 2;
                continue;
            }
            ("--ctstate", false) if val == Some("RELATED,ESTABLISHED") => {
                matches.push(Match::Reply)
            }
            ("--uid-owner", false) => matches.push(Match::Owner(User::Uid(val?.parse().ok()?))),
            ("--dst-type", false) if val == Some("LOCAL") => matches.push(Match::LocalDest),
            ("-p", false) if proto.is_none() => {
                proto = Some(match val? {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    _ => return None,
                })
            }
            ("--dport", false) if dport.is_none() => dport = Some(val?.parse::<u16>().ok()?),
            ("--comment", false) => {
                owner = Some(match val? {
                    SHARED_TAG => Owner::Shared,
                    t => Owner::Instance(InstanceName::parse(t.strip_prefix("dockyard:")?).ok()?),
                })
            }
            ("-j", false) => {
                verdict = Some(match val? {
                    "ACCEPT" => Verdict::Accept,
                    "DROP" => Verdict::Drop,
                    "RETURN" => Verdict::Return,
                    "MASQUERADE" => Verdict::Masquerade,
                    c => Verdict::Jump(c.to_string()),
                })
            }
            _ => return None,
        }
        i += 2;
    }
    match (proto, dport) {
        (Some(proto), Some(port)) => matches.push(Match::Dport { proto, port }),
        (None, None) => {}
        _ => return None,
    }
    Some(Rule::new(matches, verdict?, owner?))
}

pub fn parse_save(text: &str) -> Saved {
    let mut saved = Saved::default();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix('*') {
            saved.tables.push(SavedTable {
                name: name.to_string(),
                ..SavedTable::default()
            });
            continue;
        }
        let Some(table) = saved.tables.last_mut() else {
            continue;
        };
        if let Some(decl) = line.strip_prefix(':') {
            if let Some(name) = decl.split_whitespace().next() {
                table.chains.push(name.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
            table.rules.push(SavedRule {
                chain: chain.to_string(),
                spec: spec.to_string(),
                rule: parse_rule(spec),
            });
        }
    }
    saved
}

/// Is this saved rule the instance's: tagged for it, or jumping to one of
/// its chains (found also when someone copied it without the comment)?
fn belongs_to(r: &SavedRule, own: &[String; 2], instance: &InstanceName) -> bool {
    let w = words(&r.spec);
    let tag = instance.firewall_tag();
    w.windows(2).any(|p| {
        (p[0] == "--comment" && p[1] == tag)
            || ((p[0] == "-j" || p[0] == "-g") && own.contains(&p[1]))
    })
}

/// Is `rule` at position `idx` of `chain` where `place` wants it? Only shared
/// chains have an order that matters: admission jumps before every accept.
fn placed(table: &SavedTable, t: Table, chain: &str, idx: usize, place: Place) -> bool {
    if !is_shared(t, chain) {
        return true;
    }
    let is_jump =
        |r: &SavedRule| matches!(r.rule.as_ref().map(|x| &x.verdict), Some(Verdict::Jump(_)));
    let rules: Vec<&SavedRule> = table.in_chain(chain).collect();
    match place {
        Place::First => rules[..idx].iter().all(|r| is_jump(r)),
        Place::Last => rules[idx + 1..].iter().all(|r| !is_jump(r)),
    }
}

/// A line as an audit shows it; shared when tagged as nobody's in
/// particular (a hook), whatever it jumps to.
fn line(t: Table, chain: &str, spec: &str) -> Line {
    Line {
        table: t,
        shared: words(spec)
            .windows(2)
            .any(|p| p[0] == "--comment" && p[1] == SHARED_TAG),
        text: format!("-t {} -A {chain} {spec}", t.as_str()),
    }
}

/// Does the saved rule jump (or go) to one of the shared chains?
fn jumps_to_shared(r: &SavedRule) -> bool {
    words(&r.spec)
        .windows(2)
        .any(|p| (p[0] == "-j" || p[0] == "-g") && SHARED.iter().any(|s| s.name == p[1]))
}

/// Accumulates one table's restore lines: chain declarations must come
/// before the rules that use them.
#[derive(Default)]
struct TablePlan {
    declare: Vec<String>,
    commands: Vec<String>,
}

fn emit(text: &mut String, t: Table, plan: TablePlan) {
    if plan.declare.is_empty() && plan.commands.is_empty() {
        return;
    }
    let _ = writeln!(text, "*{}", t.as_str());
    for l in plan.declare.iter().chain(&plan.commands) {
        text.push_str(l);
        text.push('\n');
    }
    text.push_str("COMMIT\n");
}

impl Backend for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn read_program(&self) -> Program {
        Program {
            name: "iptables-save",
            args: &[],
        }
    }

    /// `-w 60` waits for the xtables lock (legacy backend): other tools may
    /// hold it; Dockyard's own helpers serialise on their own lock.
    fn apply_program(&self) -> Program {
        Program {
            name: "iptables-restore",
            args: &["--noflush", "-w", "60"],
        }
    }

    /// Every shared piece here is one hook or a chain the rules are in,
    /// put back by any instance's `up`: nothing to restore for others.
    fn plan_up(&self, live: &str, this: &Subject, _running: &[Subject]) -> Option<String> {
        let want = &Ruleset::of(this);
        let saved = parse_save(live);
        let own = own_chains(&want.instance);
        let mut text = String::new();
        for t in Table::ALL {
            let empty = SavedTable::default();
            let table = saved.table(t).unwrap_or(&empty);
            let mut plan = TablePlan::default();

            for s in SHARED.iter().filter(|s| s.table == t) {
                if !table.chains.iter().any(|c| c == s.name) {
                    plan.declare.push(format!(":{} - [0:0]", s.name));
                }
            }
            // Own chains: created, or flushed and refilled when they differ
            // in any way (an older conf, a duplicate, the order).
            for c in want.chains.iter().filter(|c| c.table == t) {
                let fill = c
                    .rules
                    .iter()
                    .map(|r| format!("-A {} {}", c.name, render(r)));
                if !table.chains.contains(&c.name) {
                    plan.declare.push(format!(":{} - [0:0]", c.name));
                    plan.commands.extend(fill);
                } else {
                    let live: Vec<Option<&Rule>> =
                        table.in_chain(&c.name).map(|r| r.rule.as_ref()).collect();
                    let same = live.len() == c.rules.len()
                        && live.iter().zip(&c.rules).all(|(l, w)| *l == Some(w));
                    if !same {
                        plan.commands.push(format!("-F {}", c.name));
                        plan.commands.extend(fill);
                    }
                }
            }
            // Links: exactly one, in the right place; otherwise every copy
            // goes and one is put where it belongs.
            let links: Vec<_> = want.links.iter().filter(|l| l.table == t).collect();
            let mut inserts = Vec::new();
            for l in &links {
                let copies: Vec<(usize, &SavedRule)> = table
                    .in_chain(&l.chain)
                    .enumerate()
                    .filter(|(_, r)| r.rule.as_ref() == Some(&l.rule))
                    .collect();
                let fine = copies.len() == 1 && placed(table, t, &l.chain, copies[0].0, l.place);
                if !fine {
                    for (_, r) in &copies {
                        plan.commands.push(format!("-D {} {}", r.chain, r.spec));
                    }
                    let spec = render(&l.rule);
                    inserts.push(match l.place {
                        Place::First => format!("-I {} 1 {spec}", l.chain),
                        Place::Last => format!("-A {} {spec}", l.chain),
                    });
                }
            }
            // Anything else of the instance outside its own chains.
            for r in table.rules.iter().filter(|r| !own.contains(&r.chain)) {
                let expected = links
                    .iter()
                    .any(|l| l.chain == r.chain && r.rule.as_ref() == Some(&l.rule));
                if !expected && belongs_to(r, &own, &want.instance) {
                    plan.commands.push(format!("-D {} {}", r.chain, r.spec));
                }
            }
            // Own chains it no longer needs (it was rootful and is now
            // rootless, or the other way): unreferenced by now.
            for c in own.iter().filter(|c| table.chains.contains(c)) {
                if !want.chains.iter().any(|w| w.table == t && w.name == *c) {
                    plan.commands.push(format!("-F {c}"));
                    plan.commands.push(format!("-X {c}"));
                }
            }
            // Inserted after the deletions, so a `-D` never hits a new copy.
            plan.commands.extend(inserts);
            emit(&mut text, t, plan);
        }
        (!text.is_empty()).then_some(text)
    }

    fn plan_down(
        &self,
        live: &str,
        instance: &InstanceName,
        _running: &[Subject],
    ) -> Option<String> {
        let saved = parse_save(live);
        let own = own_chains(instance);
        let hooks: Vec<&str> = SHARED.iter().filter_map(|s| s.hook).collect();
        let mut text = String::new();
        for table in &saved.tables {
            let t = table_of(&table.name);
            let mut plan = TablePlan::default();
            let mut gone = vec![false; table.rules.len()];
            for (i, r) in table.rules.iter().enumerate() {
                if own.contains(&r.chain) {
                    gone[i] = true;
                } else if belongs_to(r, &own, instance) {
                    plan.commands.push(format!("-D {} {}", r.chain, r.spec));
                    gone[i] = true;
                }
            }
            for c in own.iter().filter(|c| table.chains.contains(c)) {
                plan.commands.push(format!("-F {c}"));
                plan.commands.push(format!("-X {c}"));
            }
            // The last instance out takes the shared chains along, all of
            // them at once: while anyone's rule is left in one, or an
            // instance's chain jumps to one, every one stays with its hook
            // (a rootful instance's audit expects the OUTPUT hook also when
            // no rootless instance runs).
            let still_used = table.rules.iter().zip(&gone).any(|(r, gone)| {
                !gone
                    && (t.is_some_and(|t| is_shared(t, &r.chain))
                        || (!hooks.contains(&r.chain.as_str()) && jumps_to_shared(r)))
            });
            let shared: Vec<&str> = SHARED
                .iter()
                .filter(|s| Some(s.table) == t && table.chains.iter().any(|c| c == s.name))
                .map(|s| s.name)
                .collect();
            if !shared.is_empty() && !still_used {
                for (r, _) in table.rules.iter().zip(&gone).filter(|(_, g)| !**g) {
                    if !is_shared_name(&r.chain) && jumps_to_shared(r) {
                        plan.commands.push(format!("-D {} {}", r.chain, r.spec));
                    }
                }
                // Empty by now. No `-F`: iptables-nft then fails the `-X`
                // of the instance chains earlier in the same batch (EBUSY,
                // measured with iptables 1.8.9).
                for s in shared {
                    plan.commands.push(format!("-X {s}"));
                }
            }
            if !plan.commands.is_empty() {
                let _ = writeln!(text, "*{}", table.name);
                for l in &plan.commands {
                    text.push_str(l);
                    text.push('\n');
                }
                text.push_str("COMMIT\n");
            }
        }
        (!text.is_empty()).then_some(text)
    }

    fn audit(&self, live: &str, this: &Subject) -> Audit {
        let want = &Ruleset::of(this);
        let saved = parse_save(live);
        let own = own_chains(&want.instance);
        let mut audit = Audit::default();
        let expected = want
            .chains
            .iter()
            .flat_map(|c| c.rules.iter().map(move |r| (c.table, c.name.as_str(), r)))
            .chain(
                want.links
                    .iter()
                    .map(|l| (l.table, l.chain.as_str(), &l.rule)),
            );
        for (t, chain, rule) in expected {
            let l = line(t, chain, &render(rule));
            let n = saved.table(t).map_or(0, |table| {
                table
                    .in_chain(chain)
                    .filter(|r| r.rule.as_ref() == Some(rule))
                    .count()
            });
            match n {
                0 => audit.missing.push(l),
                1 => audit.ok.push(l),
                n => audit.duplicated.push((l, n)),
            }
        }
        for (t, table) in saved
            .tables
            .iter()
            .filter_map(|x| Some((table_of(&x.name)?, x)))
        {
            for r in &table.rules {
                let ours = own.contains(&r.chain) || belongs_to(r, &own, &want.instance);
                let wanted = r.rule.as_ref().is_some_and(|rule| {
                    want.chains
                        .iter()
                        .any(|c| c.table == t && c.name == r.chain && c.rules.contains(rule))
                        || want
                            .links
                            .iter()
                            .any(|l| l.table == t && l.chain == r.chain && l.rule == *rule)
                });
                if ours && !wanted {
                    audit.stray.push(line(t, &r.chain, &r.spec));
                }
            }
        }
        audit
    }

    fn residue(&self, live: &str, instance: &InstanceName) -> Vec<Line> {
        let saved = parse_save(live);
        let own = own_chains(instance);
        saved
            .tables
            .iter()
            .filter_map(|x| Some((table_of(&x.name)?, x)))
            .flat_map(|(t, table)| {
                table
                    .rules
                    .iter()
                    .filter(|r| own.contains(&r.chain) || belongs_to(r, &own, instance))
                    .map(move |r| line(t, &r.chain, &r.spec))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn table_of(name: &str) -> Option<Table> {
    Table::ALL.into_iter().find(|t| t.as_str() == name)
}

fn is_shared_name(chain: &str) -> bool {
    SHARED.iter().any(|s| s.name == chain)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{net, rootless};
    use super::*;

    fn apply(saved: &str, plan: &str) -> String {
        // A tiny iptables-restore --noflush, enough for the plans we emit,
        // producing iptables-nft-save style output (quoted comments).
        let mut s = parse_save(saved);
        let mut cur: Option<usize> = None;
        for l in plan.lines() {
            if let Some(t) = l.strip_prefix('*') {
                cur = Some(match s.tables.iter().position(|x| x.name == t) {
                    Some(i) => i,
                    None => {
                        s.tables.push(SavedTable {
                            name: t.into(),
                            ..SavedTable::default()
                        });
                        s.tables.len() - 1
                    }
                });
                continue;
            }
            let Some(ti) = cur else { continue };
            let table = &mut s.tables[ti];
            let mut it = l.splitn(3, ' ');
            let (op, chain) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            let rest = it.next().unwrap_or("");
            let quote = |spec: &str| {
                let w = words(spec);
                w.iter()
                    .map(|x| {
                        if x.starts_with("dockyard") {
                            format!("\"{x}\"")
                        } else {
                            x.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            match op {
                "COMMIT" => {}
                _ if l.starts_with(':') => {
                    let name = l[1..].split(' ').next().unwrap_or("").to_string();
                    if !table.chains.contains(&name) {
                        table.chains.push(name);
                    }
                }
                "-A" => table.rules.push(SavedRule {
                    chain: chain.into(),
                    spec: quote(rest),
                    rule: parse_rule(rest),
                }),
                "-I" => {
                    let spec = rest.split_once(' ').map(|(_, s)| s).unwrap_or("");
                    let at = table
                        .rules
                        .iter()
                        .position(|r| r.chain == chain)
                        .unwrap_or(table.rules.len());
                    table.rules.insert(
                        at,
                        SavedRule {
                            chain: chain.into(),
                            spec: quote(spec),
                            rule: parse_rule(spec),
                        },
                    );
                }
                "-D" => {
                    let w = words(rest);
                    let at = table
                        .rules
                        .iter()
                        .position(|r| r.chain == chain && words(&r.spec) == w)
                        .unwrap_or_else(|| panic!("-D of a missing rule: {l}"));
                    table.rules.remove(at);
                }
                "-F" => table.rules.retain(|r| r.chain != chain),
                "-X" => {
                    assert!(
                        !table
                            .rules
                            .iter()
                            .any(|r| words(&r.spec).contains(&chain.to_string())),
                        "-X of a referenced chain {chain}"
                    );
                    table.chains.retain(|c| c != chain);
                }
                other => panic!("unexpected restore line {other}: {l}"),
            }
        }
        let mut out = String::new();
        for t in &s.tables {
            out.push_str(&format!("*{}\n", t.name));
            for c in &t.chains {
                out.push_str(&format!(":{c} - [0:0]\n"));
            }
            for r in &t.rules {
                out.push_str(&format!("-A {} {}\n", r.chain, r.spec));
            }
            out.push_str("COMMIT\n");
        }
        out
    }

    const HOST: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\n-A DOCKER-USER -j RETURN\nCOMMIT\n*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\nCOMMIT\n";

    fn up(live: &str, n: &Subject) -> String {
        match IPTABLES_TEST.plan_up(live, n, &[]) {
            Some(plan) => apply(live, &plan),
            None => live.to_string(),
        }
    }

    const IPTABLES_TEST: Iptables = Iptables;

    #[test]
    fn render_and_parse_agree() {
        let rs = Ruleset::of(&net("dy1", 147, "172.23.0.0/16"));
        for r in rs
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .chain(rs.links.iter().map(|l| &l.rule))
        {
            assert_eq!(parse_rule(&render(r)).as_ref(), Some(r), "{}", render(r));
        }
        // As iptables-nft-save prints them: quoted comment.
        let saved = "-s 172.22.147.0/24 ! -o dy1_docker0 -m comment --comment \"dockyard:dy1\" -j MASQUERADE";
        assert_eq!(parse_rule(saved), parse_rule(&saved.replace('"', "")));
        assert!(parse_rule(saved).is_some());
        // Shapes Dockyard never writes are nobody's rule.
        for foreign in [
            "-p tcp -m comment --comment dockyard:dy1 -j ACCEPT",
            "-s 1.2.3.4/32 -j ACCEPT",
            "-m comment --comment other -j ACCEPT",
            "-m comment --comment dockyard:Dy1 -j ACCEPT",
        ] {
            assert_eq!(parse_rule(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn first_up_creates_everything_and_a_rerun_nothing() {
        let dy1 = net("dy1", 147, "172.23.0.0/16");
        let plan = IPTABLES_TEST.plan_up(HOST, &dy1, &[]).expect("a plan");
        assert!(plan.starts_with("*filter\n:DOCKYARD-FORWARD - [0:0]\n:DOCKYARD-INPUT - [0:0]\n:DOCKYARD-OUTPUT - [0:0]\n:DOCKYARD-NETS - [0:0]\n:DOCKYARD-dy1 - [0:0]\n"), "{plan}");
        assert!(
            plan.contains("-I FORWARD 1 -m comment --comment dockyard -j DOCKYARD-FORWARD\n"),
            "{plan}"
        );
        let after = apply(HOST, &plan);
        let a = IPTABLES_TEST.audit(&after, &dy1);
        assert!(a.is_complete(), "{a:?}");
        assert_eq!(a.state(), "present");
        assert_eq!(IPTABLES_TEST.plan_up(&after, &dy1, &[]), None);
        // The host's own rules are untouched.
        for keep in [
            "-A FORWARD -j DOCKER-USER",
            "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        ] {
            assert!(after.contains(keep), "{after}");
        }
    }

    #[test]
    fn admission_jumps_stay_above_every_accept() {
        let (a, b) = (
            net("dya", 1, "172.24.0.0/16"),
            net("dyb", 2, "172.25.0.0/16"),
        );
        let both = up(&up(HOST, &a), &b);
        let chain: Vec<&str> = both
            .lines()
            .filter_map(|l| l.strip_prefix("-A DOCKYARD-FORWARD "))
            .collect();
        let first_accept = chain
            .iter()
            .position(|l| l.ends_with("-j ACCEPT"))
            .expect("accepts");
        assert_eq!(first_accept, 4, "{chain:#?}");
        assert!(
            chain[..4].iter().all(|l| l.contains("-j DOCKYARD-dy")),
            "{chain:#?}"
        );
        assert!(IPTABLES_TEST.audit(&both, &a).is_complete());
        // A hand-made reorder is repaired by the next up.
        let moved = both.replacen(
            "-A DOCKYARD-FORWARD -d 172.22.2.0/24 -m comment --comment \"dockyard:dyb\" -j DOCKYARD-dyb\n",
            "",
            1,
        ) + "";
        let moved = moved.replace(
            "COMMIT\n*nat",
            "-A DOCKYARD-FORWARD -d 172.22.2.0/24 -m comment --comment \"dockyard:dyb\" -j DOCKYARD-dyb\nCOMMIT\n*nat",
        );
        let plan = IPTABLES_TEST.plan_up(&moved, &b, &[]).expect("repair");
        assert!(
            plan.contains("-I DOCKYARD-FORWARD 1 -d 172.22.2.0/24"),
            "{plan}"
        );
    }

    #[test]
    fn down_leaves_others_and_the_last_takes_the_shared_chains() {
        let (a, b) = (
            net("dy1", 1, "172.24.0.0/16"),
            net("dy10", 2, "172.25.0.0/16"),
        );
        let both = up(&up(HOST, &a), &b);
        let plan = IPTABLES_TEST
            .plan_down(&both, a.instance(), &[])
            .expect("a plan");
        assert!(
            !plan.contains("dy10"),
            "dy1's teardown must not touch dy10: {plan}"
        );
        assert!(!plan.contains("-X DOCKYARD-FORWARD"), "{plan}");
        let only_b = apply(&both, &plan);
        assert!(IPTABLES_TEST.audit(&only_b, &b).is_complete());
        assert!(IPTABLES_TEST.residue(&only_b, a.instance()).is_empty());
        assert_eq!(IPTABLES_TEST.audit(&only_b, &a).state(), "absent");
        let none = apply(
            &only_b,
            &IPTABLES_TEST
                .plan_down(&only_b, b.instance(), &[])
                .expect("plan"),
        );
        assert!(!none.contains("DOCKYARD"), "{none}");
        assert!(!none.contains("dockyard"), "{none}");
        assert!(none.contains("-A FORWARD -j DOCKER-USER"), "{none}");
        assert_eq!(IPTABLES_TEST.plan_down(&none, b.instance(), &[]), None);
    }

    #[test]
    fn up_replaces_the_old_layout_and_a_changed_network() {
        // What Dockyard 0.1 wrote: a FORWARD jump to DOCKYARD-dy1 and five accepts.
        let old = "*filter\n:FORWARD ACCEPT [0:0]\n:DOCKYARD-dy1 - [0:0]\n-A FORWARD -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1\n-A DOCKYARD-dy1 -s 172.23.0.0/16 -m comment --comment \"dockyard:dy1\" -j ACCEPT\nCOMMIT\n*nat\n:POSTROUTING ACCEPT [0:0]\n:DOCKYARD-dy1 - [0:0]\n-A POSTROUTING -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1\n-A DOCKYARD-dy1 -s 172.23.0.0/16 ! -d 172.23.0.0/16 -m comment --comment \"dockyard:dy1\" -j MASQUERADE\nCOMMIT\n";
        let mut n = net("dy1", 147, "172.23.0.0/16");
        let after = up(old, &n);
        let a = IPTABLES_TEST.audit(&after, &n);
        assert!(a.is_complete(), "{a:#?}\n{after}");
        assert!(
            !after.contains("-A FORWARD -m comment --comment \"dockyard:dy1\""),
            "{after}"
        );
        n.net.pool = "172.30.0.0/16".parse().expect("net");
        let moved = up(&after, &n);
        assert!(IPTABLES_TEST.audit(&moved, &n).is_complete());
        assert!(!moved.contains("172.23."), "{moved}");
    }

    #[test]
    fn audit_names_missing_duplicated_and_stray() {
        let n = net("dy1", 147, "172.23.0.0/16");
        let live = up(HOST, &n);
        let masq = "-A DOCKYARD-dy1 -s 172.22.147.0/24 ! -o dy1_docker0 -m comment --comment \"dockyard:dy1\" -j MASQUERADE\n";
        let a = IPTABLES_TEST.audit(&live.replace(masq, ""), &n);
        assert_eq!((a.state(), a.missing.len()), ("missing", 1));
        assert_eq!(a.missing[0].table, Table::Nat);
        let dup = live.replace(masq, &format!("{masq}{masq}"));
        let a = IPTABLES_TEST.audit(&dup, &n);
        assert_eq!((a.state(), a.duplicated.len()), ("duplicated", 1));
        let stray = live.replace(
            "COMMIT\n*nat",
            "-A INPUT -s 1.2.3.4/32 -m comment --comment \"dockyard:dy1\" -j DROP\nCOMMIT\n*nat",
        );
        let a = IPTABLES_TEST.audit(&stray, &n);
        assert_eq!(a.state(), "stray");
        assert_eq!(a.stray.len(), 1, "{a:?}");
        // dy10's tag starts with dy1's: never dy1's.
        let other = up(HOST, &net("dy10", 9, "172.29.0.0/16"));
        assert!(IPTABLES_TEST.residue(&other, n.instance()).is_empty());
        assert_eq!(IPTABLES_TEST.audit(&other, &n).state(), "absent");
    }

    #[test]
    fn words_follow_restore_quoting() {
        assert_eq!(
            words(r#"-m comment --comment "a \"b\" c" -j X"#),
            vec!["-m", "comment", "--comment", "a \"b\" c", "-j", "X"]
        );
        assert_eq!(words("  -s  1.2.3.4/32 "), vec!["-s", "1.2.3.4/32"]);
        assert_eq!(words(r#"--comment """#), vec!["--comment", ""]);
    }

    /// What iptables-save 1.8.9 (nf_tables) printed in a network namespace
    /// after `dockyard-network up` of the rootless dyr (user uid 995,
    /// reaching dy1's networks) and then of the rootful dy1.
    const ROOTLESS_SAVED: &str = include_str!("testdata/rootless-iptables-save.txt");

    fn dyr() -> Subject {
        rootless("dyr", 9, 995, &["172.22.1.0/24", "172.23.0.0/16"])
    }

    fn dy1() -> Subject {
        net("dy1", 1, "172.23.0.0/16")
    }

    /// The tagged lines and shared chains of a saved state, sorted: what
    /// two states must share to be the same rules in another order.
    fn dockyard_lines(saved: &str) -> Vec<String> {
        let mut v: Vec<String> = saved
            .lines()
            .filter(|l| l.contains("dockyard") || l.starts_with(":DOCKYARD"))
            .map(|l| l.replace('"', ""))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn what_iptables_printed_for_a_rootless_instance_parses_back() {
        let saved = parse_save(ROOTLESS_SAVED);
        let filter = saved.table(Table::Filter).expect("filter");
        for r in &filter.rules {
            assert!(r.rule.is_some(), "not parsed: -A {} {}", r.chain, r.spec);
        }
        let dispatch = filter
            .in_chain("DOCKYARD-OUTPUT")
            .next()
            .and_then(|r| r.rule.clone())
            .expect("the dispatch");
        assert_eq!(dispatch.matches(), [Match::Owner(User::Uid(995))]);
        for who in [dyr(), dy1()] {
            let a = IPTABLES_TEST.audit(ROOTLESS_SAVED, &who);
            assert!(a.is_complete(), "{}: {a:#?}", who.instance());
            assert_eq!(IPTABLES_TEST.plan_up(ROOTLESS_SAVED, &who, &[]), None);
        }
        assert_eq!(IPTABLES_TEST.audit(ROOTLESS_SAVED, &dyr()).total(), 7 + 4);
        // Every rule of the set reads back as itself.
        let rs = Ruleset::of(&dyr());
        for r in rs
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .chain(rs.links.iter().map(|l| &l.rule))
        {
            assert_eq!(parse_rule(&render(r)).as_ref(), Some(r), "{}", render(r));
        }
        // Half a port match, or a uid range, is nobody's rule.
        for foreign in [
            "-p udp -m addrtype --dst-type LOCAL -m comment --comment dockyard:dyr -j RETURN",
            "-m udp --dport 53 -m comment --comment dockyard:dyr -j RETURN",
            "-m owner --uid-owner 995-999 -m comment --comment dockyard:dyr -j DOCKYARD-dyr",
            "-m addrtype --dst-type UNICAST -m comment --comment dockyard:dyr -j DROP",
        ] {
            assert_eq!(parse_rule(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn a_rootless_instance_and_a_rootful_one_start_in_either_order() {
        let first = up(&up(HOST, &dyr()), &dy1());
        let second = up(&up(HOST, &dy1()), &dyr());
        for live in [&first, &second] {
            for who in [dyr(), dy1()] {
                assert!(IPTABLES_TEST.audit(live, &who).is_complete(), "{live}");
            }
        }
        assert_eq!(dockyard_lines(&first), dockyard_lines(&second));
        assert_eq!(dockyard_lines(&first), dockyard_lines(ROOTLESS_SAVED));
    }

    #[test]
    fn either_stops_and_leaves_the_other_whole_then_nothing() {
        let both = up(&up(HOST, &dyr()), &dy1());
        for (goes, stays) in [(dy1(), dyr()), (dyr(), dy1())] {
            let plan = IPTABLES_TEST
                .plan_down(&both, goes.instance(), &[])
                .expect("a plan");
            let left = apply(&both, &plan);
            assert!(
                IPTABLES_TEST.audit(&left, &stays).is_complete(),
                "{} after {} stopped:\n{left}",
                stays.instance(),
                goes.instance()
            );
            assert!(IPTABLES_TEST.residue(&left, goes.instance()).is_empty());
            let none = apply(
                &left,
                &IPTABLES_TEST
                    .plan_down(&left, stays.instance(), &[])
                    .expect("a plan"),
            );
            assert!(
                !none.contains("DOCKYARD") && !none.contains("dockyard"),
                "{none}"
            );
            assert_eq!(IPTABLES_TEST.plan_down(&none, stays.instance(), &[]), None);
        }
    }

    #[test]
    fn a_rootless_instance_whose_user_is_gone_is_found_by_its_tag() {
        let mut gone = dyr();
        gone.user = Some(User::Missing("dyr_docker".into()));
        // Its chain is there; what keyed on the uid is stray, and what
        // would key on the user is missing, by name.
        let a = IPTABLES_TEST.audit(ROOTLESS_SAVED, &gone);
        assert_eq!(a.state(), "missing", "{a:#?}");
        assert_eq!(a.missing.len(), 1, "{a:#?}");
        assert!(
            a.missing[0].text.contains("--uid-owner dyr_docker "),
            "{}",
            a.missing[0]
        );
        assert_eq!(a.stray.len(), 1, "the dispatch keyed on the old uid");
        assert_eq!(
            IPTABLES_TEST.residue(ROOTLESS_SAVED, gone.instance()).len(),
            8
        );
        let down = IPTABLES_TEST
            .plan_down(ROOTLESS_SAVED, gone.instance(), &[])
            .expect("a plan");
        let left = apply(ROOTLESS_SAVED, &down);
        assert_eq!(IPTABLES_TEST.audit(&left, &gone).state(), "absent");
    }

    #[test]
    fn an_instance_turned_rootless_loses_its_bridge_rules_and_back() {
        let mut rootful = dyr();
        rootful.user = None;
        let before = up(HOST, &rootful);
        let after = up(&before, &dyr());
        assert!(IPTABLES_TEST.audit(&after, &dyr()).is_complete(), "{after}");
        for gone in [
            "DOCKYARD-dyr-IN",
            "-A DOCKYARD-FORWARD",
            "-A POSTROUTING -m",
        ] {
            assert!(!after.contains(gone), "{gone}:\n{after}");
        }
        let nat = after.split("*nat").nth(1).unwrap_or_default();
        assert!(!nat.contains("DOCKYARD-dyr"), "{after}");
        let back = up(&after, &rootful);
        assert!(IPTABLES_TEST.audit(&back, &rootful).is_complete(), "{back}");
        assert!(!back.contains("--uid-owner"), "{back}");
    }
}

//! The firewall rules of an instance as data, and `iptables-save` parsing:
//! the pure half of the helpers' firewall module (which adds and removes
//! the rules), shared so that `dockyard status` and `dockyard verify`
//! compare against exactly the rules `dockyard-network up` writes.
//!
//! Shape: a chain `DOCKYARD-<inst>` in `filter` (reached from FORWARD) and in
//! `nat` (reached from POSTROUTING), each jump inserted at the top. Every rule
//! and jump carries `-m comment --comment dockyard:<inst>`. Rules are compared
//! as token lists, not strings, because iptables-nft quotes the comment
//! (`"dockyard:dy1"`) and iptables-legacy does not.

use ipnet::Ipv4Net;

/// What the up path needs to know; down needs only the instance name.
#[derive(Debug, Clone)]
pub struct Spec {
    pub instance: String,
    pub bridge: String,
    pub fixed: Ipv4Net,
    pub pool: Ipv4Net,
}

pub fn tag(instance: &str) -> String {
    format!("dockyard:{instance}")
}

pub fn chain(instance: &str) -> String {
    format!("DOCKYARD-{instance}")
}

/// (table, built-in chain that jumps to ours)
pub const HOOKS: [(&str, &str); 2] = [("filter", "FORWARD"), ("nat", "POSTROUTING")];

/// The rules of the instance chain in `table`, in order, in iptables-save form
/// (without the leading `-A CHAIN`).
pub fn desired_rules(spec: &Spec, table: &str) -> Vec<String> {
    let c = format!("-m comment --comment {}", tag(&spec.instance));
    let (br, fixed, pool) = (&spec.bridge, spec.fixed, spec.pool);
    match table {
        "filter" => vec![
            // bridge -> bridge (container to container on the default network)
            format!("-i {br} -o {br} {c} -j ACCEPT"),
            // bridge -> anywhere else (outbound)
            format!("-i {br} ! -o {br} {c} -j ACCEPT"),
            // replies back into the bridge
            format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED {c} -j ACCEPT"),
            // user-defined networks get br-... bridges from the pool
            format!("-s {pool} {c} -j ACCEPT"),
            format!("-d {pool} {c} -j ACCEPT"),
        ],
        "nat" => vec![
            format!("-s {fixed} ! -o {br} {c} -j MASQUERADE"),
            format!("-s {pool} ! -d {pool} {c} -j MASQUERADE"),
        ],
        _ => Vec::new(),
    }
}

pub fn jump_rule(instance: &str) -> String {
    format!(
        "-m comment --comment {} -j {}",
        tag(instance),
        chain(instance)
    )
}

/// One rule from iptables-save: its chain, the spec text as saved (valid
/// restore input) and the spec split into unquoted words for comparison.
#[derive(Debug, Clone)]
pub struct Rule {
    pub chain: String,
    pub spec: String,
    pub words: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Table {
    pub name: String,
    pub chains: Vec<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Default)]
pub struct Saved {
    pub tables: Vec<Table>,
}

impl Saved {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
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

pub fn parse_save(text: &str) -> Saved {
    let mut saved = Saved::default();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix('*') {
            saved.tables.push(Table {
                name: name.to_string(),
                ..Table::default()
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
            table.rules.push(Rule {
                chain: chain.to_string(),
                spec: spec.to_string(),
                words: words(spec),
            });
        }
    }
    saved
}

/// Does this rule carry exactly our tag? (`dockyard:dy1` must not match
/// `dockyard:dy10`: we compare whole words, never prefixes.)
pub fn is_tagged(rule: &Rule, instance: &str) -> bool {
    let t = tag(instance);
    rule.words
        .windows(2)
        .any(|w| w[0] == "--comment" && w[1] == t)
}

/// Does this rule jump (or goto) our chain, tagged or not?
pub fn targets_chain(rule: &Rule, instance: &str) -> bool {
    let c = chain(instance);
    rule.words
        .windows(2)
        .any(|w| (w[0] == "-j" || w[0] == "-g") && w[1] == c)
}

/// One expected line: the chain it is appended to and its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub table: &'static str,
    pub chain: String,
    pub spec: String,
}

impl Expected {
    /// As `iptables-save` would print it (unquoted comment).
    pub fn line(&self) -> String {
        format!("-t {} -A {} {}", self.table, self.chain, self.spec)
    }
}

/// Every line `dockyard-network up` makes sure of: per table, the jump from
/// the built-in hook, then the chain's rules.
pub fn expected(spec: &Spec) -> Vec<Expected> {
    let own = chain(&spec.instance);
    let mut out = Vec::new();
    for (table, hook) in HOOKS {
        out.push(Expected {
            table,
            chain: hook.to_string(),
            spec: jump_rule(&spec.instance),
        });
        for r in desired_rules(spec, table) {
            out.push(Expected {
                table,
                chain: own.clone(),
                spec: r,
            });
        }
    }
    out
}

/// How the live rules of one instance compare with the expected set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// Expected lines found exactly once.
    pub ok: Vec<Expected>,
    pub missing: Vec<Expected>,
    /// Expected lines found more than once, with how often.
    pub duplicated: Vec<(Expected, usize)>,
    /// Lines tagged for the instance (or jumping to its chain) that are not
    /// expected, as `-t TABLE -A CHAIN SPEC`.
    pub stray: Vec<String>,
}

impl Audit {
    pub fn total(&self) -> usize {
        self.ok.len() + self.missing.len() + self.duplicated.len()
    }

    /// Everything expected is there exactly once, and nothing else.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.stray.is_empty()
    }

    /// Nothing of the instance is there at all (a stopped instance).
    pub fn is_absent(&self) -> bool {
        self.ok.is_empty() && self.duplicated.is_empty() && self.stray.is_empty()
    }

    /// `present` (complete), `absent` (nothing), `stray` (only lines that
    /// are not expected), else `missing` or `duplicated`, or `stray` when
    /// only unexpected extra lines spoil it.
    pub fn state(&self) -> &'static str {
        if self.is_complete() {
            "present"
        } else if self.is_absent() {
            "absent"
        } else if self.ok.is_empty() && self.duplicated.is_empty() {
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

/// Compares the saved rules with [`expected`] for `spec`. Matching is by
/// table, chain and token list, so `dockyard:dy1` never matches
/// `dockyard:dy10`, and quoting differences do not matter.
pub fn audit(saved: &Saved, spec: &Spec) -> Audit {
    let mut result = Audit::default();
    let want = expected(spec);
    let want_words: Vec<Vec<String>> = want.iter().map(|e| words(&e.spec)).collect();
    for (e, w) in want.iter().zip(&want_words) {
        let count = saved
            .table(e.table)
            .map(|t| {
                t.rules
                    .iter()
                    .filter(|r| r.chain == e.chain && r.words == *w)
                    .count()
            })
            .unwrap_or(0);
        match count {
            0 => result.missing.push(e.clone()),
            1 => result.ok.push(e.clone()),
            n => result.duplicated.push((e.clone(), n)),
        }
    }
    result.stray = stray(saved, &spec.instance, |table, r| {
        want.iter()
            .zip(&want_words)
            .any(|(e, w)| e.table == table && e.chain == r.chain && *w == r.words)
    });
    result
}

/// Lines of `instance` that `is_expected` does not claim: tagged with its
/// comment, jumping to its chain, or inside its chain.
pub fn stray(
    saved: &Saved,
    instance: &str,
    is_expected: impl Fn(&str, &Rule) -> bool,
) -> Vec<String> {
    let own = chain(instance);
    let mut out = Vec::new();
    for t in &saved.tables {
        for r in &t.rules {
            let ours = r.chain == own || is_tagged(r, instance) || targets_chain(r, instance);
            if ours && !is_expected(&t.name, r) {
                out.push(format!("-t {} -A {} {}", t.name, r.chain, r.spec));
            }
        }
    }
    out
}

/// Every line of `instance` in the saved rules, expected or not (for
/// instances whose networks, hence expected rules, are unknown).
pub fn tagged_lines(saved: &Saved, instance: &str) -> Vec<String> {
    stray(saved, instance, |_, _| false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(inst: &str, fixed: &str, pool: &str) -> Spec {
        Spec {
            instance: inst.into(),
            bridge: format!("{inst}_docker0"),
            fixed: fixed.parse().expect("net"),
            pool: pool.parse().expect("net"),
        }
    }

    /// iptables-nft-save output with dy1 complete and dy10 beside it
    /// (dy10's lines carry a tag that starts with dy1's).
    const BOTH: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:FORWARD ACCEPT [0:0]
:DOCKYARD-dy1 - [0:0]
:DOCKYARD-dy10 - [0:0]
-A FORWARD -m comment --comment "dockyard:dy10" -j DOCKYARD-dy10
-A FORWARD -m comment --comment "dockyard:dy1" -j DOCKYARD-dy1
-A FORWARD -i eth0 -j ACCEPT
-A DOCKYARD-dy1 -i dy1_docker0 -o dy1_docker0 -m comment --comment "dockyard:dy1" -j ACCEPT
-A DOCKYARD-dy1 -i dy1_docker0 ! -o dy1_docker0 -m comment --comment "dockyard:dy1" -j ACCEPT
-A DOCKYARD-dy1 -o dy1_docker0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "dockyard:dy1" -j ACCEPT
-A DOCKYARD-dy1 -s 172.23.0.0/16 -m comment --comment "dockyard:dy1" -j ACCEPT
-A DOCKYARD-dy1 -d 172.23.0.0/16 -m comment --comment "dockyard:dy1" -j ACCEPT
-A DOCKYARD-dy10 -i dy10_docker0 -o dy10_docker0 -m comment --comment "dockyard:dy10" -j ACCEPT
-A DOCKYARD-dy10 -i dy10_docker0 ! -o dy10_docker0 -m comment --comment "dockyard:dy10" -j ACCEPT
-A DOCKYARD-dy10 -o dy10_docker0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "dockyard:dy10" -j ACCEPT
-A DOCKYARD-dy10 -s 10.10.0.0/16 -m comment --comment "dockyard:dy10" -j ACCEPT
-A DOCKYARD-dy10 -d 10.10.0.0/16 -m comment --comment "dockyard:dy10" -j ACCEPT
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
:DOCKYARD-dy1 - [0:0]
:DOCKYARD-dy10 - [0:0]
-A POSTROUTING -m comment --comment "dockyard:dy1" -j DOCKYARD-dy1
-A POSTROUTING -m comment --comment "dockyard:dy10" -j DOCKYARD-dy10
-A DOCKYARD-dy1 -s 172.22.147.0/24 ! -o dy1_docker0 -m comment --comment "dockyard:dy1" -j MASQUERADE
-A DOCKYARD-dy1 -s 172.23.0.0/16 ! -d 172.23.0.0/16 -m comment --comment "dockyard:dy1" -j MASQUERADE
-A DOCKYARD-dy10 -s 10.9.0.0/24 ! -o dy10_docker0 -m comment --comment "dockyard:dy10" -j MASQUERADE
-A DOCKYARD-dy10 -s 10.10.0.0/16 ! -d 10.10.0.0/16 -m comment --comment "dockyard:dy10" -j MASQUERADE
COMMIT
"#;

    fn dy1() -> Spec {
        spec("dy1", "172.22.147.0/24", "172.23.0.0/16")
    }

    fn dy10() -> Spec {
        spec("dy10", "10.9.0.0/24", "10.10.0.0/16")
    }

    #[test]
    fn expected_set_is_two_jumps_and_seven_rules() {
        let e = expected(&dy1());
        assert_eq!(e.len(), 9);
        assert_eq!(
            e.iter()
                .filter(|x| x.spec.ends_with("-j DOCKYARD-dy1"))
                .count(),
            2
        );
        assert_eq!(
            e[7].line(),
            "-t nat -A DOCKYARD-dy1 -s 172.22.147.0/24 ! -o dy1_docker0 -m comment --comment dockyard:dy1 -j MASQUERADE"
        );
    }

    #[test]
    fn complete_for_both_dy1_and_dy10() {
        let saved = parse_save(BOTH);
        for s in [dy1(), dy10()] {
            let a = audit(&saved, &s);
            assert!(a.is_complete(), "{}: {a:?}", s.instance);
            assert_eq!((a.ok.len(), a.state()), (9, "present"));
        }
    }

    #[test]
    fn absent_when_only_dy10_is_there() {
        // dy1's lines removed: dy10's `dockyard:dy10` must not count for dy1.
        let only10: String = BOTH
            .lines()
            .filter(|l| !l.contains("\"dockyard:dy1\"") && !l.contains(":DOCKYARD-dy1 "))
            .map(|l| format!("{l}\n"))
            .collect();
        let a = audit(&parse_save(&only10), &dy1());
        assert_eq!(a.state(), "absent", "{a:?}");
        assert_eq!(a.missing.len(), 9);
        assert!(audit(&parse_save(&only10), &dy10()).is_complete());
        assert_eq!(audit(&parse_save(""), &dy1()).state(), "absent");
    }

    #[test]
    fn missing_rule_is_named() {
        let text = BOTH.replace(
            "-A DOCKYARD-dy1 -s 172.22.147.0/24 ! -o dy1_docker0 -m comment --comment \"dockyard:dy1\" -j MASQUERADE\n",
            "",
        );
        let a = audit(&parse_save(&text), &dy1());
        assert_eq!(a.state(), "missing");
        assert_eq!(a.missing.len(), 1);
        assert!(a.missing[0].spec.contains("MASQUERADE"), "{a:?}");
        assert_eq!(a.ok.len(), 8);
        assert!(audit(&parse_save(&text), &dy10()).is_complete());
    }

    #[test]
    fn duplicates_and_strays_are_reported() {
        let text = BOTH
            .replace(
                "-A FORWARD -i eth0 -j ACCEPT\n",
                "-A FORWARD -i eth0 -j ACCEPT\n-A FORWARD -m comment --comment dockyard:dy1 -j DOCKYARD-dy1\n-A FORWARD -s 1.2.3.4/32 -m comment --comment \"dockyard:dy1\" -j DROP\n",
            );
        let a = audit(&parse_save(&text), &dy1());
        assert_eq!(a.state(), "duplicated", "{a:?}");
        assert_eq!(a.duplicated.len(), 1);
        assert_eq!(a.duplicated[0].1, 2);
        assert_eq!(a.duplicated[0].0.chain, "FORWARD");
        assert_eq!(
            a.stray,
            ["-t filter -A FORWARD -s 1.2.3.4/32 -m comment --comment \"dockyard:dy1\" -j DROP"]
        );
        // dy10 is untouched by dy1's mess.
        assert!(audit(&parse_save(&text), &dy10()).is_complete());
        // Only a stray line: state "stray".
        let only_stray = "*filter\n-A FORWARD -m comment --comment dockyard:dy1 -j DROP\nCOMMIT\n";
        let a = audit(&parse_save(only_stray), &dy1());
        assert_eq!(a.state(), "stray");
        assert_eq!(tagged_lines(&parse_save(only_stray), "dy1").len(), 1);
        assert!(tagged_lines(&parse_save(only_stray), "dy10").is_empty());
    }

    #[test]
    fn old_pool_counts_as_missing_plus_stray() {
        // The conf's pool changed while the instance ran with the old one.
        let mut s = dy1();
        s.pool = "172.24.0.0/16".parse().expect("net");
        let a = audit(&parse_save(BOTH), &s);
        assert_eq!(a.missing.len(), 3, "{a:?}");
        assert_eq!(a.stray.len(), 3, "{a:?}");
        assert_eq!(a.state(), "missing");
    }
}

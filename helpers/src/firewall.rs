//! The instance's iptables rules (design-notes §3), as one `iptables-save`
//! read and at most one `iptables-restore --noflush` write.
//!
//! Shape: a chain `DOCKYARD-<inst>` in `filter` (reached from FORWARD) and in
//! `nat` (reached from POSTROUTING), each jump inserted at the top. Every rule
//! and jump carries `-m comment --comment dockyard:<inst>`, so
//! `iptables-save | grep dockyard:<inst>` audits an instance's residue.
//!
//! Why not the `iptables` crate: it execs `iptables` once per check and once
//! per add (about 10 ms a rule here); this is two processes in total. Rules
//! are compared as token lists, not strings, because iptables-nft quotes the
//! comment (`"dockyard:dy1"`) and iptables-legacy does not.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Context, Error, Result};

// The rule set and the iptables-save parser live in the model, shared with
// `dockyard status` and `dockyard verify`.
pub use dockyard_model::firewall::*;

/// Restore text that brings the instance's rules to exactly the desired set,
/// or `None` when everything is already in place (the common restart case).
pub fn build_up(saved: &Saved, spec: &Spec) -> Option<String> {
    let own = chain(&spec.instance);
    let jump = jump_rule(&spec.instance);
    let jump_words = words(&jump);
    let mut text = String::new();

    for (tname, hook) in HOOKS {
        let mut lines: Vec<String> = Vec::new();
        let empty = Table::default();
        let table = saved.table(tname).unwrap_or(&empty);
        let desired = desired_rules(spec, tname);

        // The instance chain: create it, or flush and refill it if it differs
        // from the desired list in any way (old conf, duplicates, order).
        if !table.chains.contains(&own) {
            lines.push(format!(":{own} - [0:0]"));
            lines.extend(desired.iter().map(|r| format!("-A {own} {r}")));
        } else {
            let current: Vec<&Vec<String>> = table
                .rules
                .iter()
                .filter(|r| r.chain == own)
                .map(|r| &r.words)
                .collect();
            let wanted: Vec<Vec<String>> = desired.iter().map(|r| words(r)).collect();
            if current.len() != wanted.len() || current.iter().zip(&wanted).any(|(a, b)| *a != b) {
                lines.push(format!("-F {own}"));
                lines.extend(desired.iter().map(|r| format!("-A {own} {r}")));
            }
        }

        // Outside our chain: keep exactly one correct jump from the hook,
        // remove anything else that is tagged for us or jumps to us.
        let mut jumps = 0;
        for r in table.rules.iter().filter(|r| r.chain != own) {
            if r.chain == hook && r.words == jump_words {
                jumps += 1;
                if jumps > 1 {
                    lines.push(format!("-D {} {}", r.chain, r.spec));
                }
            } else if is_tagged(r, &spec.instance) || targets_chain(r, &spec.instance) {
                lines.push(format!("-D {} {}", r.chain, r.spec));
            }
        }
        if jumps == 0 {
            lines.push(format!("-I {hook} 1 {jump}"));
        }

        if !lines.is_empty() {
            text.push_str(&format!("*{tname}\n"));
            for l in lines {
                text.push_str(&l);
                text.push('\n');
            }
            text.push_str("COMMIT\n");
        }
    }
    (!text.is_empty()).then_some(text)
}

/// Restore text that removes every trace of the instance in every table:
/// each copy of each tagged rule or jump, then the chain itself.
pub fn build_down(saved: &Saved, instance: &str) -> Option<String> {
    let own = chain(instance);
    let mut text = String::new();
    for table in &saved.tables {
        let mut lines = Vec::new();
        for r in table.rules.iter().filter(|r| r.chain != own) {
            if is_tagged(r, instance) || targets_chain(r, instance) {
                lines.push(format!("-D {} {}", r.chain, r.spec));
            }
        }
        if table.chains.contains(&own) {
            lines.push(format!("-F {own}"));
            lines.push(format!("-X {own}"));
        }
        if !lines.is_empty() {
            text.push_str(&format!("*{}\n", table.name));
            for l in lines {
                text.push_str(&l);
                text.push('\n');
            }
            text.push_str("COMMIT\n");
        }
    }
    (!text.is_empty()).then_some(text)
}

/// Find a program on PATH (units get systemd's default PATH), falling back
/// to the usual sbin directories when PATH is unset.
pub fn find_program(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::new(format!(
        "{name} not found on PATH ({}); install the iptables package (apt-get install iptables)",
        path.to_string_lossy()
    )))
}

pub fn save() -> Result<Saved> {
    let prog = find_program("iptables-save")?;
    let out = Command::new(&prog)
        .stdin(Stdio::null())
        .output()
        .ctx(|| format!("cannot run {}", prog.display()))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "{} failed ({}): {}",
            prog.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_save(&String::from_utf8_lossy(&out.stdout)))
}

/// Apply restore text in one transaction per table. `-w 60` waits for the
/// xtables lock (legacy backend) because instances start concurrently.
pub fn restore(text: &str) -> Result<()> {
    let prog = find_program("iptables-restore")?;
    let mut child = Command::new(&prog)
        .args(["--noflush", "-w", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("cannot run {}", prog.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .ctx(|| format!("cannot write rules to {}", prog.display()))?;
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("waiting for {}", prog.display()))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "{} --noflush failed ({}): {}\nrules it was given:\n{text}",
            prog.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Bring the rules up; returns how many restore lines were needed (0 = none).
pub fn apply_up(spec: &Spec) -> Result<usize> {
    let saved = save()?;
    match build_up(&saved, spec) {
        None => Ok(0),
        Some(text) => {
            log::debug!("iptables-restore input:\n{text}");
            restore(&text).map_err(|e| {
                Error::new(format!(
                    "adding the firewall rules of instance {} failed: {e}",
                    spec.instance
                ))
            })?;
            Ok(text.lines().count())
        }
    }
}

pub fn apply_down(instance: &str) -> Result<usize> {
    let saved = save()?;
    match build_down(&saved, instance) {
        None => Ok(0),
        Some(text) => {
            log::debug!("iptables-restore input:\n{text}");
            restore(&text).map_err(|e| {
                Error::new(format!(
                    "removing the firewall rules of instance {instance} failed: {e}"
                ))
            })?;
            Ok(text.lines().count())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(inst: &str) -> Spec {
        Spec {
            instance: inst.into(),
            bridge: format!("{inst}_docker0"),
            fixed: "172.22.147.0/24".parse().unwrap(),
            pool: "172.23.0.0/16".parse().unwrap(),
        }
    }

    const FRESH_UP: &str = "\
*filter
:DOCKYARD-dy1 - [0:0]
-A DOCKYARD-dy1 -i dy1_docker0 -o dy1_docker0 -m comment --comment dockyard:dy1 -j ACCEPT
-A DOCKYARD-dy1 -i dy1_docker0 ! -o dy1_docker0 -m comment --comment dockyard:dy1 -j ACCEPT
-A DOCKYARD-dy1 -o dy1_docker0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment dockyard:dy1 -j ACCEPT
-A DOCKYARD-dy1 -s 172.23.0.0/16 -m comment --comment dockyard:dy1 -j ACCEPT
-A DOCKYARD-dy1 -d 172.23.0.0/16 -m comment --comment dockyard:dy1 -j ACCEPT
-I FORWARD 1 -m comment --comment dockyard:dy1 -j DOCKYARD-dy1
COMMIT
*nat
:DOCKYARD-dy1 - [0:0]
-A DOCKYARD-dy1 -s 172.22.147.0/24 ! -o dy1_docker0 -m comment --comment dockyard:dy1 -j MASQUERADE
-A DOCKYARD-dy1 -s 172.23.0.0/16 ! -d 172.23.0.0/16 -m comment --comment dockyard:dy1 -j MASQUERADE
-I POSTROUTING 1 -m comment --comment dockyard:dy1 -j DOCKYARD-dy1
COMMIT
";

    /// What iptables-nft-save prints after FRESH_UP was applied (quoted
    /// comments), with another instance dy10 and an unrelated rule around.
    const SAVED_PRESENT: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
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
-A DOCKYARD-dy10 -s 10.10.0.0/16 -m comment --comment "dockyard:dy10" -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKYARD-dy1 - [0:0]
:DOCKYARD-dy10 - [0:0]
-A POSTROUTING -m comment --comment "dockyard:dy1" -j DOCKYARD-dy1
-A POSTROUTING -m comment --comment "dockyard:dy10" -j DOCKYARD-dy10
-A DOCKYARD-dy1 -s 172.22.147.0/24 ! -o dy1_docker0 -m comment --comment "dockyard:dy1" -j MASQUERADE
-A DOCKYARD-dy1 -s 172.23.0.0/16 ! -d 172.23.0.0/16 -m comment --comment "dockyard:dy1" -j MASQUERADE
-A DOCKYARD-dy10 -s 10.10.0.0/16 ! -d 10.10.0.0/16 -m comment --comment "dockyard:dy10" -j MASQUERADE
COMMIT
"#;

    #[test]
    fn up_on_empty_host_adds_everything() {
        assert_eq!(
            build_up(&parse_save(""), &spec("dy1")).as_deref(),
            Some(FRESH_UP)
        );
    }

    #[test]
    fn up_when_present_does_nothing() {
        assert_eq!(build_up(&parse_save(SAVED_PRESENT), &spec("dy1")), None);
    }

    #[test]
    fn up_adds_only_missing_pieces() {
        // The nat jump is missing (e.g. deleted by hand): only it is added.
        let saved = SAVED_PRESENT.replace(
            "-A POSTROUTING -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1\n",
            "",
        );
        assert_eq!(
            build_up(&parse_save(&saved), &spec("dy1")).as_deref(),
            Some("*nat\n-I POSTROUTING 1 -m comment --comment dockyard:dy1 -j DOCKYARD-dy1\nCOMMIT\n")
        );
    }

    #[test]
    fn up_removes_duplicates_and_refills_a_changed_chain() {
        // An older buggy version left a second jump and a duplicated rule;
        // the pool changed since, so the chain is flushed and refilled.
        let saved = SAVED_PRESENT
            .replace(
                "-A FORWARD -i eth0 -j ACCEPT\n",
                "-A FORWARD -i eth0 -j ACCEPT\n-A FORWARD -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1\n-A FORWARD -s 172.23.0.0/16 -m comment --comment \"dockyard:dy1\" -j ACCEPT\n",
            )
            .replace(
                "-A DOCKYARD-dy1 -d 172.23.0.0/16 -m comment --comment \"dockyard:dy1\" -j ACCEPT\n",
                "-A DOCKYARD-dy1 -d 172.23.0.0/16 -m comment --comment \"dockyard:dy1\" -j ACCEPT\n-A DOCKYARD-dy1 -d 172.23.0.0/16 -m comment --comment \"dockyard:dy1\" -j ACCEPT\n",
            );
        let expected = "\
*filter
-F DOCKYARD-dy1
-A DOCKYARD-dy1 -i dy1_docker0 -o dy1_docker0 -m comment --comment dockyard:dy1 -j ACCEPT
-A DOCKYARD-dy1 -i dy1_docker0 ! -o dy1_docker0 -m comment --comment dockyard:dy1 -j ACCEPT
-A DOCKYARD-dy1 -o dy1_docker0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment dockyard:dy1 -j ACCEPT
-A DOCKYARD-dy1 -s 172.23.0.0/16 -m comment --comment dockyard:dy1 -j ACCEPT
-A DOCKYARD-dy1 -d 172.23.0.0/16 -m comment --comment dockyard:dy1 -j ACCEPT
-D FORWARD -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1
-D FORWARD -s 172.23.0.0/16 -m comment --comment \"dockyard:dy1\" -j ACCEPT
COMMIT
";
        assert_eq!(
            build_up(&parse_save(&saved), &spec("dy1")).as_deref(),
            Some(expected)
        );
    }

    #[test]
    fn up_with_changed_pool_refills_nat_chain() {
        let mut s = spec("dy1");
        s.pool = "172.24.0.0/16".parse().unwrap();
        let text = build_up(&parse_save(SAVED_PRESENT), &s).unwrap();
        assert!(text.contains("*nat\n-F DOCKYARD-dy1\n"), "{text}");
        assert!(
            text.contains("-A DOCKYARD-dy1 -s 172.24.0.0/16 ! -d 172.24.0.0/16"),
            "{text}"
        );
        assert!(!text.contains("-I "), "jumps exist already: {text}");
    }

    #[test]
    fn down_selects_only_this_instance() {
        let expected = "\
*filter
-D FORWARD -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1
-F DOCKYARD-dy1
-X DOCKYARD-dy1
COMMIT
*nat
-D POSTROUTING -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1
-F DOCKYARD-dy1
-X DOCKYARD-dy1
COMMIT
";
        assert_eq!(
            build_down(&parse_save(SAVED_PRESENT), "dy1").as_deref(),
            Some(expected)
        );
        // And dy10's teardown leaves dy1 alone.
        let dy10 = build_down(&parse_save(SAVED_PRESENT), "dy10").unwrap();
        assert!(!dy10.contains("dockyard:dy1\""), "{dy10}");
        assert!(!dy10.contains("DOCKYARD-dy1\n"), "{dy10}");
    }

    #[test]
    fn down_removes_every_duplicate_and_stray_rule() {
        let saved = "\
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -m comment --comment dockyard:dy1 -j ACCEPT
-A FORWARD -m comment --comment dockyard:dy1 -j ACCEPT
-A FORWARD -m comment --comment dockyard:dy10 -j ACCEPT
-A FORWARD -m comment --comment \"dockyard:dy1 extra\" -j ACCEPT
-A FORWARD -j DOCKYARD-dy1
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -m comment --comment dockyard:dy1 -j RETURN
COMMIT
";
        let expected = "\
*filter
-D FORWARD -m comment --comment dockyard:dy1 -j ACCEPT
-D FORWARD -m comment --comment dockyard:dy1 -j ACCEPT
-D FORWARD -j DOCKYARD-dy1
COMMIT
*mangle
-D PREROUTING -m comment --comment dockyard:dy1 -j RETURN
COMMIT
";
        assert_eq!(
            build_down(&parse_save(saved), "dy1").as_deref(),
            Some(expected)
        );
    }

    #[test]
    fn down_with_nothing_is_none() {
        assert_eq!(build_down(&parse_save(""), "dy1"), None);
        assert_eq!(
            build_down(
                &parse_save("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"),
                "dy1"
            ),
            None
        );
    }

    #[test]
    fn tag_matching_is_exact() {
        let t = parse_save("*filter\n-A X -m comment --comment \"dockyard:dy10\" -j ACCEPT\n-A X -m comment --comment dockyard:dy1 -j ACCEPT\n-A X -j DOCKYARD-dy10\n");
        let r = &t.tables[0].rules;
        assert!(!is_tagged(&r[0], "dy1"));
        assert!(is_tagged(&r[0], "dy10"));
        assert!(is_tagged(&r[1], "dy1"));
        assert!(!targets_chain(&r[2], "dy1"));
        assert!(targets_chain(&r[2], "dy10"));
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
}

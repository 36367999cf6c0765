//! `dockyard-network` with the nftables backend, against the real kernel,
//! each test in its own fresh network namespace.

mod common;

use common::{require_root, NetNs};

fn args(action: &str, inst: &str, net: u8, pool: &str) -> Vec<String> {
    [
        action,
        "--instance",
        inst,
        "--bridge-cidr",
        &format!("172.22.{net}.1/24"),
        "--fixed-cidr",
        &format!("172.22.{net}.0/24"),
        "--pool",
        pool,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn network(ns: &NetNs, a: &[String]) -> common::Run {
    let mut v = vec!["network"];
    v.extend(a.iter().map(|s| s.as_str()));
    ns.helper(&v)
}

fn have_nft() -> bool {
    let ok = common::sh("command -v nft").code == 0;
    if !ok {
        eprintln!("SKIPPED: nft not installed");
    }
    ok
}

/// `nft list ruleset` without counters, which change as packets pass.
fn ruleset(ns: &NetNs) -> String {
    ns.ok(&["nft", "list", "ruleset"])
        .lines()
        .map(|l| l.replace('\t', " "))
        .map(|l| match l.find(" counter packets") {
            Some(i) => {
                let rest = &l[i + 1..];
                let skip: usize = rest.split(' ').take(5).map(|w| w.len() + 1).sum();
                format!("{}counter {}", &l[..=i], &rest[skip.min(rest.len())..])
            }
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn up_is_one_table_shared_sets_and_host_accepts_once() {
    if !require_root("nft up") || !have_nft() {
        return;
    }
    let ns = NetNs::with_backend("nftables");
    let up = args("up", "dy1", 147, "172.23.0.0/16");
    let r = network(&ns, &up);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("nftables rules put in place"),
        "{}",
        r.stderr
    );
    let rs = ruleset(&ns);
    for want in [
        "table inet dockyard-dy1 {",
        "ip saddr 172.22.147.0/24 oifname != \"dy1_docker0\" masquerade comment \"dockyard:dy1\"",
        "172.22.147.0/24 comment \"dockyard:dy1\"",
        "ip daddr @nets ct state != { established, related } ip saddr . ip daddr != @admit counter drop comment \"dockyard\"",
        "ip daddr 172.23.0.0/16 counter accept comment \"dockyard:dy1\"",
    ] {
        assert!(rs.contains(want), "missing {want}\n{rs}");
    }
    // iptables-nft still reads its table, with our accepts in it.
    let save = ns.ok(&["iptables-save"]);
    assert_eq!(save.matches("dockyard:dy1").count(), 4, "{save}");

    let r = network(&ns, &up);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("were already in place"), "{}", r.stderr);
    assert_eq!(ruleset(&ns), rs);
}

#[test]
fn down_takes_one_instance_and_the_last_takes_the_shared_table() {
    if !require_root("nft down") || !have_nft() {
        return;
    }
    let ns = NetNs::with_backend("nftables");
    // The host's Docker was there first: FORWARD drops.
    ns.ok(&["iptables", "-P", "FORWARD", "DROP"]);
    for (n, third, pool) in [("dy1", 1, "172.23.0.0/16"), ("dy2", 2, "172.24.0.0/16")] {
        let r = network(&ns, &args("up", n, third, pool));
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = network(&ns, &args("down", "dy1", 1, "172.23.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rs = ruleset(&ns);
    assert!(!rs.contains("dockyard:dy1"), "{rs}");
    assert!(!rs.contains("dockyard-dy1"), "{rs}");
    assert!(rs.contains("table inet dockyard-dy2"), "{rs}");
    assert!(
        rs.contains("172.24.0.0/16 comment \"dockyard:dy2\""),
        "{rs}"
    );
    let r = network(&ns, &args("down", "dy2", 2, "172.24.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rs = ruleset(&ns);
    assert!(!rs.contains("dockyard"), "{rs}");
    // The host's chain and its policy stay as they were.
    assert!(rs.contains("policy drop"), "{rs}");
    let r = network(&ns, &args("down", "dy2", 2, "172.24.0.0/16"));
    assert_eq!(r.code, 0, "a second down: {}", r.stderr);
}

#[test]
fn a_changed_backend_moves_the_rules_and_down_follows_the_record() {
    if !require_root("nft switch") || !have_nft() {
        return;
    }
    let ns = NetNs::new();
    let up = args("up", "dy1", 5, "172.25.0.0/16");
    let r = network(&ns, &up);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        ns.ok(&["iptables-save"]).matches("dockyard:dy1").count(),
        20
    );
    // The setting changes, and the instance starts again without a stop
    // in between: the start moves its rules.
    ns.backend.set("nftables");
    let r = network(&ns, &up);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("moving its rules from iptables to nftables"),
        "{}",
        r.stderr
    );
    let save = ns.ok(&["iptables-save"]);
    assert_eq!(
        save.matches("dockyard:dy1").count(),
        4,
        "only the host accepts: {save}"
    );
    assert!(!save.contains("DOCKYARD-"), "{save}");
    // Set back to iptables: the stop still uses the backend that wrote them.
    ns.backend.set("iptables");
    let r = network(&ns, &args("down", "dy1", 5, "172.25.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!ruleset(&ns).contains("dockyard"), "{}", ruleset(&ns));
}

#[test]
fn down_with_nothing_recorded_looks_in_every_backend() {
    if !require_root("nft unrecorded") || !have_nft() {
        return;
    }
    let ns = NetNs::with_backend("nftables");
    let r = network(&ns, &args("up", "dy1", 6, "172.26.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    ns.backend.set("iptables");
    let r = network(&ns, &args("up", "dy2", 7, "172.27.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A Dockyard that kept no record (an upgrade with instances running).
    let _ = std::fs::remove_dir_all(common::state_dir());
    for (n, third, pool) in [("dy1", 6, "172.26.0.0/16"), ("dy2", 7, "172.27.0.0/16")] {
        let r = network(&ns, &args("down", n, third, pool));
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let rs = ruleset(&ns);
    assert!(!rs.contains("dockyard"), "{rs}");
}

#[test]
fn concurrent_starts_leave_the_shared_sets_exact() {
    if !require_root("nft concurrent") || !have_nft() {
        return;
    }
    let ns = NetNs::with_backend("nftables");
    let conf = common::host_conf("nftables");
    let state = common::state_dir();
    // Six units starting at once, as at boot: every element once, none lost.
    let handles: Vec<_> = (1..=6u8)
        .map(|i| {
            let a = args(
                "up",
                &format!("dy{i}"),
                40 + i,
                &format!("172.{}.0.0/16", 40 + i),
            );
            let (name, conf, state) = (ns.name.clone(), conf.clone(), state.clone());
            std::thread::spawn(move || {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", &name])
                    .arg(common::helper())
                    .arg("network")
                    .args(&a)
                    .env("DOCKYARD_HOST_CONF", conf)
                    .env("DOCKYARD_STATE_DIR", state);
                common::run(&mut c)
            })
        })
        .collect();
    for h in handles {
        let r = h.join().expect("thread");
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let rs = ruleset(&ns);
    for i in 1..=6 {
        let tag = format!("\"dockyard:dy{i}\"");
        // 2 nets + 4 pairs + 2 masquerades + 4 host accepts.
        assert_eq!(rs.matches(&tag).count(), 12, "dy{i}:\n{rs}");
    }
    // The shared chains' rules once: forward, input and output's four.
    assert_eq!(rs.matches("comment \"dockyard\"").count(), 6, "{rs}");
}

#[test]
fn any_start_puts_back_the_shared_table_for_every_running_instance() {
    if !require_root("nft repair") || !have_nft() {
        return;
    }
    let ns = NetNs::with_backend("nftables");
    for (n, third, pool) in [("dy1", 11, "172.31.0.0/16"), ("dy2", 12, "172.30.0.0/16")] {
        let r = network(&ns, &args("up", n, third, pool));
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let before = ruleset(&ns);
    // Someone deletes the shared table and flushes FORWARD; dy1 alone is
    // restarted.
    ns.ok(&["nft", "delete", "table", "inet", "dockyard"]);
    ns.ok(&["iptables", "-F", "FORWARD"]);
    let r = network(&ns, &args("up", "dy1", 11, "172.31.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = ruleset(&ns);
    assert!(
        after.contains("172.30.0.0/16 comment \"dockyard:dy2\""),
        "{after}"
    );
    assert_eq!(
        after.matches("dockyard:dy2").count(),
        before.matches("dockyard:dy2").count(),
        "{after}"
    );
    // dy2 stops: nothing of it is put back by dy1's records or anyone's.
    let r = network(&ns, &args("down", "dy2", 12, "172.30.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = network(&ns, &args("up", "dy1", 11, "172.31.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!ruleset(&ns).contains("dockyard:dy2"), "{}", ruleset(&ns));
}

/// iptables' table deleted under running instances (`nft delete table ip
/// filter`): one of them stops cleanly, nothing of it is left, and the
/// other's accepts are back in a FORWARD the stop created.
#[test]
fn a_stop_after_iptables_table_went_removes_everything_of_it() {
    if !require_root("nft stop without ip filter") || !have_nft() {
        return;
    }
    let ns = NetNs::with_backend("nftables");
    for (n, third, pool) in [("dy1", 10, "172.30.0.0/16"), ("dy2", 11, "172.31.0.0/16")] {
        let r = network(&ns, &args("up", n, third, pool));
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    ns.ok(&["nft", "delete", "table", "ip", "filter"]);
    let r = network(&ns, &args("down", "dy1", 10, "172.30.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rs = ruleset(&ns);
    assert!(!rs.contains("dockyard:dy1"), "{rs}");
    assert!(!rs.contains("dockyard-dy1"), "{rs}");
    let save = ns.ok(&["iptables-save"]);
    assert_eq!(save.matches("dockyard:dy2").count(), 4, "{save}");
}

/// An instance on iptables runs while another starts on nftables (the
/// host's setting changed): the nftables accepts go below the iptables
/// backend's jump, so they cannot let traffic past its admission.
#[test]
fn accepts_go_below_the_iptables_backends_jump() {
    if !require_root("nft beside iptables") || !have_nft() {
        return;
    }
    let ns = NetNs::new();
    let r = network(&ns, &args("up", "dy1", 12, "172.30.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    ns.backend.set("nftables");
    let r = network(&ns, &args("up", "dy2", 13, "172.31.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let forward: Vec<String> = ns
        .ok(&["iptables", "-S", "FORWARD"])
        .lines()
        .map(String::from)
        .collect();
    let jump = forward
        .iter()
        .position(|l| l.ends_with("-j DOCKYARD-FORWARD"))
        .unwrap_or_else(|| panic!("no jump to DOCKYARD-FORWARD: {forward:?}"));
    let accepts: Vec<usize> = (0..forward.len())
        .filter(|&i| forward[i].contains("dockyard:dy2"))
        .collect();
    assert_eq!(accepts.len(), 4, "{forward:?}");
    assert!(accepts.iter().all(|&i| i > jump), "{forward:?}");
}

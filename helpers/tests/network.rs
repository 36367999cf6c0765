//! `dockyard-network` against real netlink and iptables, each test in its
//! own fresh network namespace.

mod common;

use std::time::Instant;

use common::{require_root, NetNs};

/// The lines one instance tags with its name: 11 in its own chains, 9 in
/// chains it shares (dockyard_model::firewall::Ruleset): its admission
/// jumps and accepts, its drops for rootless instances' users in
/// `DOCKYARD-NETS`, the POSTROUTING jump.
const TAGGED: usize = 20;

fn args<'a>(action: &'a str, inst: &'a str, net: u8, pool: &'a str) -> Vec<String> {
    vec![
        action.into(),
        "--instance".into(),
        inst.into(),
        "--bridge-cidr".into(),
        format!("172.22.{net}.1/24"),
        "--fixed-cidr".into(),
        format!("172.22.{net}.0/24"),
        "--pool".into(),
        pool.into(),
    ]
}

fn network(ns: &NetNs, a: &[String]) -> common::Run {
    let mut v = vec!["network"];
    v.extend(a.iter().map(|s| s.as_str()));
    ns.helper(&v)
}

/// iptables-save lines carrying exactly this instance's tag (nft quotes it).
fn tagged(save: &str, inst: &str) -> Vec<String> {
    let t = format!("\"dockyard:{inst}\"");
    save.lines()
        .filter(|l| l.contains(&t) || l.contains(&format!("dockyard:{inst} ")))
        .map(str::to_string)
        .collect()
}

fn rules_only(save: &str) -> Vec<String> {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn up_creates_bridge_address_and_rules_once() {
    if !require_root("up_creates_bridge_address_and_rules_once") {
        return;
    }
    let ns = NetNs::new();
    let up = args("up", "dy1", 147, "172.23.0.0/16");
    let t0 = Instant::now();
    let r = network(&ns, &up);
    let first = t0.elapsed();
    assert_eq!(r.code, 0, "{}", r.stderr);
    eprintln!("MEASURE network up in a fresh netns (incl. ip netns exec): {first:?}");

    let addr = ns.ok(&["ip", "-4", "-o", "addr", "show", "dev", "dy1_docker0"]);
    assert!(addr.contains("inet 172.22.147.1/24"), "{addr}");
    assert_eq!(addr.lines().count(), 1, "{addr}");
    let link = ns.ok(&["ip", "-d", "-o", "link", "show", "dy1_docker0"]);
    assert!(link.contains(",UP") || link.contains("<UP"), "{link}");
    assert!(link.contains(" bridge "), "{link}");
    assert_eq!(ns.ok(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(), "1");

    let save1 = ns.ok(&["iptables-save"]);
    let mine = tagged(&save1, "dy1");
    assert_eq!(mine.len(), TAGGED, "{save1}");
    for want in [
        "-A FORWARD -m comment --comment dockyard -j DOCKYARD-FORWARD",
        "-A INPUT -m comment --comment dockyard -j DOCKYARD-INPUT",
        "-A DOCKYARD-FORWARD -d 172.22.147.0/24 -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1",
        "-A DOCKYARD-FORWARD -s 172.22.147.0/24 -i dy1_docker0 -m comment --comment \"dockyard:dy1\" -j ACCEPT",
        "-A DOCKYARD-INPUT -d 172.23.0.0/16 -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1-IN",
        "-A DOCKYARD-dy1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"dockyard:dy1\" -j ACCEPT",
        "-A DOCKYARD-dy1 -m comment --comment \"dockyard:dy1\" -j DROP",
        "-A POSTROUTING -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1",
        "-A DOCKYARD-dy1 -s 172.22.147.0/24 ! -o dy1_docker0 -m comment --comment \"dockyard:dy1\" -j MASQUERADE",
        "-A DOCKYARD-dy1 -s 172.23.0.0/16 ! -d 172.23.0.0/16 -m comment --comment \"dockyard:dy1\" -j MASQUERADE",
    ] {
        assert!(save1.lines().any(|l| l == want), "missing {want}\n{save1}");
    }

    // A restart: nothing changes, nothing is duplicated, nothing is written.
    let t1 = Instant::now();
    let r = network(&ns, &up);
    eprintln!("MEASURE network up again (all present): {:?}", t1.elapsed());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("were already in place"), "{}", r.stderr);
    let save2 = ns.ok(&["iptables-save"]);
    assert_eq!(rules_only(&save1), rules_only(&save2));
    let addr2 = ns.ok(&["ip", "-4", "-o", "addr", "show", "dev", "dy1_docker0"]);
    assert_eq!(addr2.lines().count(), 1, "{addr2}");
}

#[test]
fn up_replaces_an_old_address_and_converges_duplicates() {
    if !require_root("up_replaces_an_old_address_and_converges_duplicates") {
        return;
    }
    let ns = NetNs::new();
    ns.ok(&["ip", "link", "add", "dy1_docker0", "type", "bridge"]);
    ns.ok(&["ip", "addr", "add", "10.99.0.1/24", "dev", "dy1_docker0"]);
    // An older buggy version left a duplicated jump and a stray tagged rule.
    ns.ok(&["iptables", "-N", "DOCKYARD-dy1"]);
    for _ in 0..2 {
        ns.ok(&[
            "iptables",
            "-A",
            "FORWARD",
            "-m",
            "comment",
            "--comment",
            "dockyard:dy1",
            "-j",
            "DOCKYARD-dy1",
        ]);
    }
    ns.ok(&[
        "iptables",
        "-A",
        "FORWARD",
        "-s",
        "10.99.0.0/24",
        "-m",
        "comment",
        "--comment",
        "dockyard:dy1",
        "-j",
        "ACCEPT",
    ]);

    let r = network(&ns, &args("up", "dy1", 147, "172.23.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let addr = ns.ok(&["ip", "-4", "-o", "addr", "show", "dev", "dy1_docker0"]);
    assert!(
        addr.contains("172.22.147.1/24") && !addr.contains("10.99.0.1"),
        "{addr}"
    );
    let save = ns.ok(&["iptables-save"]);
    let mine = tagged(&save, "dy1");
    assert_eq!(mine.len(), TAGGED, "{save}");
    assert!(!save.contains("10.99.0.0/24"), "{save}");
    // The old layout's jump from FORWARD straight to the instance is gone.
    assert!(
        !save.contains("-A FORWARD -m comment --comment \"dockyard:dy1\" -j DOCKYARD-dy1"),
        "{save}"
    );
}

#[test]
fn down_removes_only_this_instance() {
    if !require_root("down_removes_only_this_instance") {
        return;
    }
    let ns = NetNs::new();
    assert_eq!(
        network(&ns, &args("up", "dy1", 147, "172.23.0.0/16")).code,
        0
    );
    assert_eq!(
        network(&ns, &args("up", "dy10", 148, "172.24.0.0/16")).code,
        0
    );
    // A user-defined network of dy1 (inside its pool) and a stranger bridge.
    ns.ok(&["ip", "link", "add", "br-x", "type", "bridge"]);
    ns.ok(&["ip", "addr", "add", "172.23.5.1/24", "dev", "br-x"]);
    ns.ok(&["ip", "link", "add", "br-y", "type", "bridge"]);
    ns.ok(&["ip", "addr", "add", "172.25.5.1/24", "dev", "br-y"]);
    // Residue of an older version: duplicated tagged rules outside the chain.
    for _ in 0..2 {
        ns.ok(&[
            "iptables",
            "-A",
            "FORWARD",
            "-s",
            "172.23.0.0/16",
            "-m",
            "comment",
            "--comment",
            "dockyard:dy1",
            "-j",
            "ACCEPT",
        ]);
    }
    let before10 = tagged(&ns.ok(&["iptables-save"]), "dy10");
    assert_eq!(before10.len(), TAGGED);

    let r = network(&ns, &args("down", "dy1", 147, "172.23.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);

    let save = ns.ok(&["iptables-save"]);
    assert!(tagged(&save, "dy1").is_empty(), "{save}");
    assert!(!save.contains(":DOCKYARD-dy1 "), "{save}");
    assert_eq!(
        tagged(&save, "dy10"),
        before10,
        "dy10 must survive:\n{save}"
    );
    let links = ns.ok(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("dy1_docker0"), "{links}");
    assert!(!links.contains("br-x"), "{links}");
    assert!(links.contains("br-y"), "{links}");
    assert!(links.contains("dy10_docker0"), "{links}");
    // dy10 still needs the shared chains.
    assert!(save.contains(":DOCKYARD-FORWARD "), "{save}");

    // And again, now that nothing is left: still success.
    let r = network(&ns, &args("down", "dy1", 147, "172.23.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The last instance out takes the shared chains and their jumps along.
    let r = network(&ns, &args("down", "dy10", 148, "172.24.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let save = ns.ok(&["iptables-save"]);
    assert!(
        !save.contains("DOCKYARD") && !save.contains("dockyard"),
        "{save}"
    );
}

#[test]
fn down_with_nothing_present_exits_zero() {
    if !require_root("down_with_nothing_present_exits_zero") {
        return;
    }
    let ns = NetNs::new();
    let r = network(&ns, &args("down", "dy1", 147, "172.23.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "", "nothing to report when nothing existed");
}

#[test]
fn up_refuses_a_non_bridge_and_bad_arguments() {
    if !require_root("up_refuses_a_non_bridge_and_bad_arguments") {
        return;
    }
    let ns = NetNs::new();
    ns.ok(&[
        "ip",
        "link",
        "add",
        "dy1_docker0",
        "type",
        "veth",
        "peer",
        "name",
        "dyp0",
    ]);
    let r = network(&ns, &args("up", "dy1", 147, "172.23.0.0/16"));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not a bridge"), "{}", r.stderr);

    // An old unit's --bridge must name the instance's own bridge.
    let mut bad = args("up", "dy1", 147, "172.23.0.0/16");
    bad.extend(["--bridge".into(), "a_very_long_bridge0".into()]);
    let r = network(&ns, &bad);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--bridge"), "{}", r.stderr);

    let mut bad = args("up", "dy1", 147, "172.23.0.0/16");
    bad[6] = "172.22.9.0/24".into(); // fixed-cidr outside the bridge subnet
    let r = network(&ns, &bad);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("not inside the bridge network"),
        "{}",
        r.stderr
    );
    assert!(ns
        .ok(&["iptables-save"])
        .lines()
        .all(|l| !l.contains("dockyard:")));
}

#[test]
fn concurrent_instances_each_get_exactly_their_rules() {
    if !require_root("concurrent_instances_each_get_exactly_their_rules") {
        return;
    }
    let ns = NetNs::new();
    // Six units starting at once, as at boot: no lost or doubled rules.
    let handles: Vec<_> = (1..=6u8)
        .map(|i| {
            let a = args(
                "up",
                &format!("dy{i}"),
                i,
                &format!("172.{}.0.0/16", 30 + i),
            );
            let (name, state) = (ns.name.clone(), common::state_dir());
            std::thread::spawn(move || {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", &name])
                    .arg(common::helper())
                    .arg("network")
                    .args(&a)
                    .env("DOCKYARD_STATE_DIR", state);
                common::run(&mut c)
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let save = ns.ok(&["iptables-save"]);
    for i in 1..=6 {
        assert_eq!(
            tagged(&save, &format!("dy{i}")).len(),
            TAGGED,
            "dy{i}:\n{save}"
        );
    }
}

#[test]
fn legacy_iptables_backend_is_idempotent_too() {
    if !require_root("legacy_iptables_backend_is_idempotent_too") {
        return;
    }
    let (save, restore) = (
        "/usr/sbin/iptables-legacy-save",
        "/usr/sbin/iptables-legacy-restore",
    );
    if !std::path::Path::new(save).exists() {
        eprintln!("SKIPPED legacy_iptables_backend_is_idempotent_too: {save} not installed");
        return;
    }
    // Put the legacy tools first on PATH under their plain names, the way a
    // host whose alternatives point at iptables-legacy looks to the helper.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(save, bin.path().join("iptables-save")).unwrap();
    std::os::unix::fs::symlink(restore, bin.path().join("iptables-restore")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ns = NetNs::new();
    let go = |action: &str| {
        let mut c = ns.cmd(common::helper());
        c.arg("network")
            .args(args(action, "dy1", 147, "172.23.0.0/16"))
            .env("PATH", &path);
        common::run(&mut c)
    };
    assert_eq!(go("up").code, 0);
    let r = go("up");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("were already in place"), "{}", r.stderr);
    let saved = ns.ok(&["iptables-legacy-save"]);
    assert_eq!(
        saved.lines().filter(|l| l.contains("dockyard:dy1")).count(),
        TAGGED,
        "{saved}"
    );
    assert_eq!(go("down").code, 0);
    let saved = ns.ok(&["iptables-legacy-save"]);
    assert!(!saved.contains("dockyard:dy1"), "{saved}");
}

/// The unit the generator writes for a running instance whose conf is gone
/// calls `down --instance NAME` alone: the values come from what `up` recorded.
#[test]
fn down_with_the_instance_name_alone_uses_what_up_recorded() {
    if !require_root("down_with_the_instance_name_alone_uses_what_up_recorded") {
        return;
    }
    let ns = NetNs::new();
    // A name no other test uses: the state directory is shared by the tests.
    let inst = "dystate";
    assert_eq!(
        network(&ns, &args("up", inst, 150, "172.27.0.0/16")).code,
        0
    );
    let state = common::state_dir().join(inst).join("network");
    let recorded = std::fs::read_to_string(&state).expect("network up records its values");
    assert!(recorded.contains("pool=172.27.0.0/16\n"), "{recorded}");
    ns.ok(&["ip", "link", "add", "br-z", "type", "bridge"]);
    ns.ok(&["ip", "addr", "add", "172.27.9.1/24", "dev", "br-z"]);

    let r = ns.helper(&["network", "down", "--instance", inst]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let save = ns.ok(&["iptables-save"]);
    assert!(tagged(&save, inst).is_empty(), "{save}");
    assert!(!save.contains(&format!(":DOCKYARD-{inst} ")), "{save}");
    let links = ns.ok(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("dystate_docker0"), "{links}");
    assert!(!links.contains("br-z"), "{links}");
    assert!(!state.exists(), "down must forget the recorded state");

    // Nothing recorded any more: still success, tagged leftovers by name.
    let r = ns.helper(&["network", "down", "--instance", inst]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("no network state recorded"),
        "{}",
        r.stderr
    );
}

/// dockerd brings back the networks in its store before it reads its flags:
/// a changed conf must set the old store aside (never delete it).
#[test]
fn changed_networks_set_the_old_network_store_aside() {
    if !require_root("changed_networks_set_the_old_network_store_aside") {
        return;
    }
    let ns = NetNs::new();
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("docker");
    let with_root = |net: u8, pool: &str| {
        let mut a = args("up", "dykv", net, pool);
        a.extend(["--data-root".into(), root.display().to_string()]);
        a
    };
    assert_eq!(network(&ns, &with_root(151, "172.28.0.0/16")).code, 0);
    let files = root.join("network/files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("local-kv.db"), "old store").unwrap();
    // Same networks again: the store stays.
    assert_eq!(network(&ns, &with_root(151, "172.28.0.0/16")).code, 0);
    assert!(files.join("local-kv.db").exists());
    // Another pool: set aside, said in the log, recorded anew.
    let r = network(&ns, &with_root(151, "172.29.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("networks changed"), "{}", r.stderr);
    assert!(!files.join("local-kv.db").exists());
    let aside: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].starts_with("local-kv.db.before-"), "{aside:?}");
    let record = std::fs::read_to_string(root.join("network/dockyard-networks")).unwrap();
    assert!(record.contains("pool=172.29.0.0/16\n"), "{record}");
    let r = network(&ns, &args("down", "dykv", 151, "172.29.0.0/16"));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

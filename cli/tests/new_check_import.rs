//! `dockyard new`, `check` and `import` through the built binary, on
//! temporary instances directories (DOCKYARD_INSTANCES_DIR), a temporary
//! lock (DOCKYARD_NEW_LOCK) and a fake /sys/class/net
//! (DOCKYARD_SYS_CLASS_NET) and a host policy file that is absent unless
//! a test writes it (DOCKYARD_HOST_CONF). Roots are paths under /srv that are never
//! created (`new` only checks that they do not exist).

use ipnet::Ipv4Net;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct Env {
    tmp: tempfile::TempDir,
    roots: String,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("net")).expect("net dir");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Env {
            tmp,
            roots: format!("/srv/dockyard-test-{}-{n}", std::process::id()),
        }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("instances.d")
    }

    fn root(&self, name: &str) -> String {
        format!("{}/{name}", self.roots)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dockyard"));
        c.env("DOCKYARD_INSTANCES_DIR", self.dir())
            .env("DOCKYARD_NEW_LOCK", self.tmp.path().join("new.lock"))
            .env("DOCKYARD_SYS_CLASS_NET", self.tmp.path().join("net"))
            .env(
                "DOCKYARD_ARTIFACTS_MANIFEST",
                self.tmp.path().join("no-override.toml"),
            )
            .env("DOCKYARD_HOST_CONF", self.host_conf())
            .env("DOCKYARD_ARTIFACTS_DIR", self.tmp.path().join("store"));
        c
    }

    /// The host's policy file; absent unless a test writes it.
    fn host_conf(&self) -> PathBuf {
        self.tmp.path().join("dockyard.conf")
    }

    /// Puts executables named as `version`'s needed binaries into the
    /// test's store (`kind` docker or sysbox).
    fn installed(&self, kind: &str, version: &str) {
        use std::os::unix::fs::PermissionsExt;
        let bin = self
            .tmp
            .path()
            .join("store")
            .join(kind)
            .join(version)
            .join("bin");
        std::fs::create_dir_all(&bin).expect("store");
        let names: &[&str] = match kind {
            "docker" => &dockyard_model::installed::DOCKER_NEEDS,
            _ => &dockyard_model::installed::SYSBOX_NEEDS,
        };
        for n in names {
            let p = bin.join(n);
            std::fs::write(&p, "#!/bin/sh\n").expect("binary");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run dockyard")
    }

    fn new_instance(&self, name: &str, extra: &[&str]) -> Output {
        let root = self.root(name);
        let mut args = vec!["new", name, "--root", &root];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn expect(o: &Output, want_code: i32, want_stderr: &str) {
    assert_eq!(
        code(o),
        want_code,
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    assert!(
        stderr(o).contains(want_stderr),
        "stderr lacks {want_stderr:?}:\n{}",
        stderr(o)
    );
}

/// The networks of every conf in `dir`: (name, bridge, pool).
fn networks(dir: &Path) -> Vec<(String, Ipv4Net, Ipv4Net)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("list").filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".conf") else {
            continue;
        };
        let text = std::fs::read_to_string(e.path()).expect("read conf");
        let get = |key: &str| -> Ipv4Net {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} in {name}"))
                .parse()
                .expect("cidr")
        };
        out.push((stem.to_string(), get("BridgeCIDR"), get("PoolBase")));
    }
    out.sort();
    out
}

fn assert_disjoint(nets: &[(String, Ipv4Net, Ipv4Net)]) {
    let all: Vec<(String, Ipv4Net)> = nets
        .iter()
        .flat_map(|(n, b, p)| {
            [
                (format!("{n} bridge"), b.trunc()),
                (format!("{n} pool"), *p),
            ]
        })
        .collect();
    for (i, (an, a)) in all.iter().enumerate() {
        for (bn, b) in &all[i + 1..] {
            assert!(
                !(a.contains(b) || b.contains(a)),
                "{an} {a} overlaps {bn} {b}"
            );
        }
    }
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

#[test]
fn new_writes_a_valid_conf_and_json() {
    let env = Env::new();
    let o = env.new_instance("zt1", &["--runtime", "runc", "--json"]);
    expect(&o, 0, "");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["name"], "zt1");
    assert_eq!(v["runtime"], "runc");
    assert_eq!(
        v["docker_host"],
        format!("unix://{}/docker.sock", env.root("zt1"))
    );
    let nets = networks(&env.dir());
    assert_eq!(v["bridge_cidr"], nets[0].1.to_string());
    assert_eq!(v["pool_base"], nets[0].2.to_string());
    // The generator accepts it.
    expect(&env.run(&["check"]), 0, "1 instance unit(s)");
    // A fresh directory on the same host: the same pick (the lowest free
    // blocks).
    let env2 = Env::new();
    expect(&env2.new_instance("zt1", &["--runtime", "runc"]), 0, "");
    assert_eq!(networks(&env2.dir()), nets);
    // Without --json: the DOCKER_HOST line to use.
    let o = env.new_instance("zt2", &[]);
    expect(&o, 0, "");
    assert!(
        stdout(&o).contains(&format!(
            "DOCKER_HOST=unix://{}/docker.sock",
            env.root("zt2")
        )),
        "{}",
        stdout(&o)
    );
    assert_disjoint(&networks(&env.dir()));
}

#[test]
fn new_refuses_bad_names_and_flags() {
    let env = Env::new();
    for (args, want) in [
        (vec!["new", "Dy1"], "contains 'D'"),
        (vec!["new", "abcdefgh"], "at most 7"),
        (vec!["new", "1dy"], "must start with a lowercase letter"),
        (
            vec!["new", "zt1", "--bridge-cidr", "172.22.0.0/24"],
            "is the network address",
        ),
        (
            vec!["new", "zt1", "--bridge-cidr", "172.22.1.1"],
            "not in CIDR notation",
        ),
        (
            vec!["new", "zt1", "--pool-base", "8.8.0.0/16"],
            "not inside a private range",
        ),
        (
            vec!["new", "zt1", "--pool-base", "172.23.0.1/16"],
            "has host bits set",
        ),
        (vec!["new", "zt1", "--range", "banana"], "--range banana"),
        (vec!["new", "zt1", "--root", "relative/x"], "--root"),
    ] {
        expect(&env.run(&args), 2, want);
    }
    assert!(!env.dir().exists(), "nothing written");
    // clap refuses an unknown runtime as a usage error too.
    expect(&env.run(&["new", "zt1", "--runtime", "crun"]), 2, "crun");
}

#[test]
fn new_refuses_names_in_use_naming_which() {
    let env = Env::new();
    expect(&env.new_instance("zt1", &[]), 0, "");
    let o = env.new_instance("zt1", &[]);
    expect(&o, 6, "its conf");
    assert!(stderr(&o).contains("zt1.conf"), "{}", stderr(&o));

    std::fs::create_dir(env.tmp.path().join("net/zt5_docker0")).expect("fake bridge");
    expect(
        &env.new_instance("zt5", &[]),
        6,
        "its bridge zt5_docker0 exists",
    );

    // A root that exists (needs a directory outside /tmp, which the model
    // refuses for roots; /srv is root's).
    let existing = env.root("zt6");
    if std::fs::create_dir_all(&existing).is_ok() {
        let o = env.run(&["new", "zt6", "--root", &existing]);
        let _ = std::fs::remove_dir_all(&env.roots);
        expect(&o, 6, &format!("its root {existing} exists"));
    } else {
        eprintln!("skipped the existing-root case: cannot create {existing}");
    }
    // A root inside another instance's root.
    let inside = format!("{}/sub", env.root("zt1"));
    expect(
        &env.run(&["new", "zt7", "--root", &inside]),
        6,
        "overlaps root",
    );
    // A given network in use by a sibling.
    let zt1 = &networks(&env.dir())[0];
    let pool = zt1.2.to_string();
    expect(
        &env.new_instance("zt8", &["--pool-base", &pool]),
        6,
        "of instance zt1",
    );
    assert_eq!(networks(&env.dir()).len(), 1, "nothing else written");
}

#[test]
fn new_refuses_an_existing_group_or_user() {
    if !is_root() {
        eprintln!("skipped: needs root to add a group");
        return;
    }
    let env = Env::new();
    let name = format!("zq{}", std::process::id() % 100_000);
    let group = format!("{name}_docker");
    let added = Command::new("groupadd")
        .args(["--system", &group])
        .status()
        .expect("groupadd");
    assert!(added.success());
    let o = env.new_instance(&name, &[]);
    let _ = Command::new("groupdel").arg(&group).status();
    expect(&o, 6, &format!("a group named {group} exists"));

    // A user without a group of the same name.
    let name = format!("zu{}", std::process::id() % 100_000);
    let user = format!("{name}_docker");
    let added = Command::new("useradd")
        .args(["--system", "--no-create-home", "--no-user-group", &user])
        .status()
        .expect("useradd");
    assert!(added.success());
    let o = env.new_instance(&name, &[]);
    let _ = Command::new("userdel").arg(&user).status();
    expect(&o, 6, &format!("a user named {user} exists"));
    assert!(!env.dir().exists(), "nothing written");
}

#[test]
fn new_reports_an_unwritable_directory() {
    let env = Env::new();
    // A directory below a regular file cannot be created, even by root.
    let file = env.tmp.path().join("plain-file");
    std::fs::write(&file, "").expect("file");
    let o = env
        .cmd()
        .env("DOCKYARD_INSTANCES_DIR", file.join("instances.d"))
        .args(["new", "zt1", "--root", &env.root("zt1")])
        .output()
        .expect("run");
    expect(&o, 1, "cannot write the conf");
}

#[test]
fn new_says_when_no_range_is_left_and_how_many_are_in_use() {
    let env = Env::new();
    // Two candidate /16s: the first instance takes one for its pool and
    // puts its bridge in the other.
    let one_range = ["--range", "10.200.0.0/15", "--pool-prefix", "16"];
    expect(&env.new_instance("zt1", &one_range), 0, "");
    let o = env.new_instance("zt2", &one_range);
    expect(&o, 1, "no free range left");
    assert!(stderr(&o).contains("2 of 2"), "{}", stderr(&o));
}

#[test]
fn concurrent_news_never_pick_the_same_networks() {
    let env = Env::new();
    // Without the lock they would all pick the same lowest free blocks.
    let children: Vec<_> = (1..=6)
        .map(|i| {
            let name = format!("zt{i}");
            env.cmd()
                .args(["new", &name, "--root", &env.root(&name)])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().expect("wait");
        expect(&o, 0, "");
    }
    let nets = networks(&env.dir());
    assert_eq!(nets.len(), 6);
    assert_disjoint(&nets);
    expect(&env.run(&["check"]), 0, "6 instance unit(s)");
}

#[test]
fn new_avoids_a_route_in_table_100_of_a_fresh_netns() {
    if !is_root() {
        eprintln!("skipped: needs root for a network namespace");
        return;
    }
    let env = Env::new();
    // Table 100 (not main) covers all of the default ranges but the last
    // /16 of each, 10.191.0.0/16 for pools and 10.207.0.0/16 for bridges:
    // the pool and the bridge must land there.
    let script = format!(
        "set -e; ip link set lo up; \
         for r in 10.128.0.0/11 10.160.0.0/12 10.176.0.0/13 10.184.0.0/14 10.188.0.0/15 10.190.0.0/16 \
                  10.200.0.0/14 10.204.0.0/15 10.206.0.0/16; do ip route add $r dev lo table 100; done; \
         ip route show table 100 | grep -q 10.206.0.0/16; \
         for i in 1 2 3 4; do \"$0\" new zt$i --root {}/zt$i --pool-prefix 16; done",
        env.roots
    );
    let mut c = Command::new("unshare");
    for (k, v) in env.cmd().get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let o = c
        .args(["--net", "sh", "-c", &script, env!("CARGO_BIN_EXE_dockyard")])
        .output()
        .expect("unshare");
    let nets = networks(&env.dir());
    // 10.191.0.0/16 holds one /16 pool: one instance, then exhaustion,
    // counted over all 64 /16s of the pool range.
    assert_eq!(nets.len(), 1, "stderr: {}", stderr(&o));
    let (_, bridge, pool) = &nets[0];
    assert_eq!(pool.to_string(), "10.191.0.0/16");
    assert_eq!(bridge.to_string(), "10.207.0.1/24");
    assert!(
        stderr(&o).contains("no free range left for PoolBase"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("64 of 64"), "{}", stderr(&o));
}

#[test]
fn new_picks_in_the_host_policy_and_its_options_override_it() {
    let env = Env::new();
    write(
        &env.host_conf(),
        "[Allocation]\nBridgeRange=10.77.0.0/20\nBridgePrefix=26\n\
         PoolRange=10.77.64.0/18\nPoolPrefix=22\nPoolSize=25\n",
    );
    expect(&env.new_instance("zt1", &[]), 0, "");
    let nets = networks(&env.dir());
    let (_, bridge, pool) = &nets[0];
    assert!(
        bridge.prefix_len() == 26
            && "10.77.0.0/20"
                .parse::<Ipv4Net>()
                .expect("net")
                .contains(bridge),
        "{bridge}"
    );
    assert!(
        pool.prefix_len() == 22
            && "10.77.64.0/18"
                .parse::<Ipv4Net>()
                .expect("net")
                .contains(pool),
        "{pool}"
    );
    let conf = std::fs::read_to_string(env.dir().join("zt1.conf")).expect("conf");
    assert!(conf.contains("\nPoolSize=25\n"), "{conf}");

    // The options win for one instance.
    let o = env.new_instance(
        "zt2",
        &[
            "--pool-range",
            "10.78.0.0/16",
            "--pool-prefix",
            "20",
            "--pool-size",
            "24",
            "--bridge-prefix",
            "24",
        ],
    );
    expect(&o, 0, "");
    let nets = networks(&env.dir());
    let (_, bridge, pool) = &nets[1];
    assert!(bridge.prefix_len() == 24, "{bridge}");
    assert!(
        pool.prefix_len() == 20
            && "10.78.0.0/16"
                .parse::<Ipv4Net>()
                .expect("net")
                .contains(pool),
        "{pool}"
    );
    assert_disjoint(&nets);
    let conf = std::fs::read_to_string(env.dir().join("zt2.conf")).expect("conf");
    assert!(conf.contains("\nPoolSize=24\n"), "{conf}");

    // Options that do not fit together are a usage error; nothing written.
    let o = env.new_instance("zt3", &["--pool-size", "20"]);
    expect(&o, 2, "PoolSize=20 is larger than a pool (PoolPrefix=22)");
    expect(
        &env.new_instance("zt3", &["--pool-prefix", "31"]),
        2,
        "--pool-prefix 31: not a prefix length",
    );
    // A policy with an error stops new, naming file and line.
    write(&env.host_conf(), "[Allocation]\nPoolPrefix=abc\n");
    let o = env.new_instance("zt3", &[]);
    expect(
        &o,
        2,
        &format!("{}:2: error: PoolPrefix=abc", env.host_conf().display()),
    );
    assert!(!env.dir().join("zt3.conf").exists());
}

const GOOD: &str = "[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\nRuntime=runc\nRoot=/srv/ztt-check/zt1\n";

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// `check FILE` and `check` drop a sysbox instance exactly as the
/// generator does when the manifest gives no sysbox version.
#[test]
fn check_refuses_sysbox_without_a_manifest_version() {
    let env = Env::new();
    write(
        &env.tmp.path().join("no-override.toml"),
        "[defaults]\ndocker = \"29.2.1\"\n",
    );
    let conf = env.dir().join("zt1.conf");
    write(
        &conf,
        "[Instance]\nBridgeCIDR=172.24.1.1/24\nPoolBase=172.25.0.0/16\nRuntime=sysbox-runc\nDockerVersion=29.2.1\nRoot=/srv/ztt-check/zt1\n",
    );
    let want =
        "zt1.conf: error: Runtime=sysbox-runc needs the sysbox version from the artifacts manifest";
    let o = env.run(&["check"]);
    expect(&o, 1, want);
    expect(&o, 1, "1 conf(s) would get none");
    let o = env.run(&["check", conf.to_str().expect("utf-8")]);
    expect(&o, 1, want);
    expect(&o, 1, "1 conf(s) would get none");
}

#[test]
fn check_reports_the_host_policy_file_at_its_lines() {
    let env = Env::new();
    write(&env.dir().join("zt1.conf"), GOOD);
    // What zt1 runs is installed: the only warnings are the policy file's.
    env.installed("docker", DEFAULT_DOCKER);
    env.installed("sysbox", DEFAULT_SYSBOX);
    let host = env.host_conf();
    let at = host.display().to_string();
    // Missing: every default, nothing to say.
    let o = env.run(&["check"]);
    expect(&o, 0, "0 error(s), 0 warning(s)");
    write(
        &host,
        "[Allocation]\nPoolPrefix=20\n[Firewall]\nBackend=nftables\nColour=red\n",
    );
    let o = env.run(&["check"]);
    expect(
        &o,
        0,
        &format!("{at}:5: warning: unknown key Colour= in [Firewall]"),
    );
    expect(&o, 0, "0 error(s), 1 warning(s)");
    write(&host, "[Allocation]\nBridgeRange=8.8.0.0/16\n[Firewal]\n");
    for args in [
        vec!["check"],
        vec!["check", env.dir().join("zt1.conf").to_str().expect("utf-8")],
    ] {
        let o = env.run(&args);
        expect(
            &o,
            1,
            &format!(
                "{at}:2: error: BridgeRange=8.8.0.0/16: 8.8.0.0/16 is not inside a private range"
            ),
        );
        expect(
            &o,
            1,
            &format!("{at}:3: warning: unknown section [Firewal]"),
        );
        expect(&o, 1, "1 error(s), 1 warning(s)");
    }
}

#[test]
fn check_prints_diagnostics_and_exits_by_errors() {
    let env = Env::new();
    let dir = env.dir();
    write(&dir.join("zt1.conf"), GOOD);
    write(
        &dir.join("zt2.conf"),
        "[Instance]\nBridgeCIDR=172.24.1.1/24\nPoolBase=172.25.0.0/16\nRuntime=runc\nRoot=/srv/ztt-check/zt2\nColour=blue\n",
    );
    let o = env.run(&["check"]);
    expect(&o, 0, "zt2.conf:6: warning:");
    assert!(stdout(&o).is_empty(), "units only with --dry-run");

    let o = env.run(&["check", "--dry-run"]);
    expect(&o, 0, "2 instance unit(s)");
    assert!(
        stdout(&o).contains("# zt1_docker.service"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("# zt2_docker.service"),
        "{}",
        stdout(&o)
    );

    // A third conf taking zt1's pool: the generator skips it, check fails.
    write(
        &dir.join("zt3.conf"),
        "[Instance]\nBridgeCIDR=172.26.1.1/24\nPoolBase=172.23.0.0/16\nRuntime=runc\nRoot=/srv/ztt-check/zt3\n",
    );
    let o = env.run(&["check"]);
    expect(&o, 1, "zt3.conf:3: error: PoolBase 172.23.0.0/16 overlaps");
    assert!(stderr(&o).contains("of instance zt1"), "{}", stderr(&o));
    std::fs::remove_file(dir.join("zt3.conf")).expect("rm");

    // FILE mode: a conf outside the directory, against the directory.
    let outside = env.tmp.path().join("candidate/zt4.conf");
    write(
        &outside,
        "[Instance]\nBridgeCIDR=172.22.147.9/24\nPoolBase=172.29.0.0/16\nRuntime=runc\nRoot=/srv/ztt-check/zt4\n",
    );
    let o = env.run(&["check", outside.to_str().expect("utf-8")]);
    expect(
        &o,
        1,
        "zt4.conf:2: error: BridgeCIDR 172.22.147.9/24 overlaps",
    );
    // A syntax error in FILE: file:line, exit 1, no unit.
    let broken = env.tmp.path().join("candidate/zt5.conf");
    write(
        &broken,
        "[Instance]\nBridgeCIDR=172.30.1.1/33\nPoolBase=172.31.0.0/16\n",
    );
    let o = env.run(&["check", "--dry-run", broken.to_str().expect("utf-8")]);
    expect(&o, 1, "zt5.conf:2: error:");
    assert!(!stdout(&o).contains("zt5_docker.service"));
    // A good FILE: exit 0 and only its unit.
    let fine = env.tmp.path().join("candidate/zt6.conf");
    write(
        &fine,
        "[Instance]\nBridgeCIDR=172.30.1.1/24\nPoolBase=172.31.0.0/16\nRuntime=runc\nRoot=/srv/ztt-check/zt6\n",
    );
    let o = env.run(&["check", "--dry-run", fine.to_str().expect("utf-8")]);
    expect(&o, 0, "1 instance unit(s)");
    assert!(stdout(&o).contains("# zt6_docker.service"));
    assert!(!stdout(&o).contains("# zt1_docker.service"));
    // A missing FILE is an error too.
    let missing = env.tmp.path().join("nope/zt7.conf");
    expect(
        &env.run(&["check", missing.to_str().expect("utf-8")]),
        1,
        "zt7.conf",
    );
}

#[test]
fn import_never_runs_the_env_file_and_reports_keys() {
    let env = Env::new();
    let marker = env.tmp.path().join(format!("pwned-{}", std::process::id()));
    let marker2 = PathBuf::from(format!("/tmp/dockyard-pwned-{}", std::process::id()));
    let m = marker.display();
    let m2 = marker2.display();
    let envfile = env.tmp.path().join("dockyard.env");
    write(
        &envfile,
        &format!(
            "DOCKYARD_ROOT=$(touch {m})\n\
             DOCKYARD_DOCKER_PREFIX=zt1_\n\
             DOCKYARD_BRIDGE_CIDR=172.22.147.1/24\n\
             DOCKYARD_FIXED_CIDR=`touch {m2}`\n\
             DOCKYARD_POOL_BASE=\"172.23.0.0/16\"\n\
             DOCKYARD_EXTRA=\"$(touch {m2})\"\n\
             touch {m}\n"
        ),
    );
    let o = env.run(&[
        "import",
        envfile.to_str().expect("utf-8"),
        "--root",
        &env.root("zt1"),
    ]);
    expect(&o, 0, "DOCKYARD_ROOT");
    let err = stderr(&o);
    for key in [
        "DOCKYARD_ROOT",
        "DOCKYARD_FIXED_CIDR",
        "DOCKYARD_EXTRA",
        "line 7",
    ] {
        assert!(err.contains(key), "{key} not reported:\n{err}");
    }
    assert!(!marker.exists(), "the env file was executed");
    assert!(!marker2.exists(), "the env file was executed");
    let conf = std::fs::read_to_string(env.dir().join("zt1.conf")).expect("conf written");
    assert!(conf.contains("BridgeCIDR=172.22.147.1/24"), "{conf}");
    assert!(conf.contains("PoolBase=172.23.0.0/16"), "{conf}");
    assert!(!conf.contains("touch"), "{conf}");
    expect(&env.run(&["check"]), 0, "1 instance unit(s)");
    // Never overwrites.
    let o = env.run(&["import", envfile.to_str().expect("utf-8")]);
    expect(&o, 6, "refusing to overwrite");
}

#[test]
fn import_parses_quotes_and_export() {
    let env = Env::new();
    let envfile = env.tmp.path().join("dockyard.env");
    write(
        &envfile,
        "# written by gen-env\n\
         export DOCKYARD_ROOT='/srv/ztt-import/zt2'\n\
         export DOCKYARD_DOCKER_PREFIX=\"zt2_\"\n\
         DOCKYARD_BRIDGE_CIDR='172.24.9.1/24'\n\
         DOCKYARD_FIXED_CIDR=172.24.9.128/25\n\
         DOCKYARD_POOL_BASE=\"172.25.0.0/16\"\n\
         DOCKYARD_POOL_SIZE=26\n",
    );
    let o = env.run(&["import", envfile.to_str().expect("utf-8")]);
    expect(&o, 0, "");
    assert!(!stderr(&o).contains("not carried over"), "{}", stderr(&o));
    let conf = std::fs::read_to_string(env.dir().join("zt2.conf")).expect("conf");
    for line in [
        "Root=/srv/ztt-import/zt2",
        "BridgeCIDR=172.24.9.1/24",
        "FixedCIDR=172.24.9.128/25",
        "PoolBase=172.25.0.0/16",
        "PoolSize=26",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} missing:\n{conf}");
    }
    // --name overrides the prefix.
    let o = env.run(&["import", envfile.to_str().expect("utf-8"), "--name", "Bad"]);
    expect(&o, 2, "contains 'B'");
}

#[test]
fn import_refuses_an_invalid_or_colliding_conf() {
    let env = Env::new();
    write(&env.dir().join("zt1.conf"), GOOD);
    let envfile = env.tmp.path().join("dockyard.env");
    // Collides with zt1's bridge network.
    write(
        &envfile,
        "DOCKYARD_DOCKER_PREFIX=zt3_\nDOCKYARD_ROOT=/srv/ztt-import/zt3\nDOCKYARD_BRIDGE_CIDR=172.22.147.7/24\nDOCKYARD_POOL_BASE=172.27.0.0/16\n",
    );
    let o = env.run(&["import", envfile.to_str().expect("utf-8")]);
    expect(&o, 1, "collides");
    assert!(!env.dir().join("zt3.conf").exists());
    // The bridge value refused (shell syntax): the conf lacks BridgeCIDR.
    write(
        &envfile,
        "DOCKYARD_DOCKER_PREFIX=zt4_\nDOCKYARD_BRIDGE_CIDR=${NET}\nDOCKYARD_POOL_BASE=172.27.0.0/16\n",
    );
    let o = env.run(&["import", envfile.to_str().expect("utf-8")]);
    expect(&o, 1, "BridgeCIDR= is required");
    assert!(
        stderr(&o).contains("DOCKYARD_BRIDGE_CIDR"),
        "{}",
        stderr(&o)
    );
    assert!(!env.dir().join("zt4.conf").exists());
    // No prefix, no --name.
    write(&envfile, "DOCKYARD_BRIDGE_CIDR=172.28.1.1/24\n");
    expect(
        &env.run(&["import", envfile.to_str().expect("utf-8")]),
        2,
        "--name",
    );
    // Unreadable file.
    expect(
        &env.run(&["import", "/nonexistent/dockyard.env"]),
        1,
        "cannot read",
    );
}

#[test]
fn completions_for_each_shell() {
    let env = Env::new();
    for (shell, want) in [
        ("bash", "_dockyard"),
        ("zsh", "#compdef dockyard"),
        ("fish", "complete -c dockyard"),
    ] {
        let o = env.run(&["completions", shell]);
        expect(&o, 0, "");
        assert!(stdout(&o).contains(want), "{shell}");
        assert!(
            stdout(&o).contains("import"),
            "{shell} completes subcommands"
        );
    }
}

/// A `systemctl` stand-in on PATH that logs its arguments and exits with
/// `status`.
fn fake_systemctl(env: &Env, status: i32) -> (PathBuf, PathBuf) {
    let bin = env.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let log = env.tmp.path().join("systemctl.log");
    let script = bin.join("systemctl");
    write(
        &script,
        &format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexit {status}\n",
            log.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (bin, log)
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn new_start_reloads_starts_and_prints_docker_host() {
    let env = Env::new();
    env.installed("docker", DEFAULT_DOCKER);
    env.installed("sysbox", DEFAULT_SYSBOX);
    let (bin, log) = fake_systemctl(&env, 0);
    let root = env.root("zt1");
    let o = env
        .cmd()
        .env("PATH", path_with(&bin))
        .args(["new", "zt1", "--root", &root, "--start"])
        .output()
        .expect("run");
    expect(&o, 0, "");
    assert_eq!(
        std::fs::read_to_string(&log).expect("systemctl ran"),
        "daemon-reload\nstart zt1_docker.service\n"
    );
    assert!(
        stdout(&o).contains(&format!("DOCKER_HOST=unix://{root}/docker.sock")),
        "{}",
        stdout(&o)
    );

    // A failing start: exit 1, naming the unit; the conf stays for a retry.
    let env = Env::new();
    env.installed("docker", DEFAULT_DOCKER);
    env.installed("sysbox", DEFAULT_SYSBOX);
    let (bin, _) = fake_systemctl(&env, 3);
    let o = env
        .cmd()
        .env("PATH", path_with(&bin))
        .args(["new", "zt2", "--root", &env.root("zt2"), "--start"])
        .output()
        .expect("run");
    expect(&o, 1, "systemctl daemon-reload failed");
    assert!(env.dir().join("zt2.conf").exists());
}

/// The built-in manifest's defaults (conf/artifacts.toml).
const DEFAULT_DOCKER: &str = "29.2.1";
const DEFAULT_SYSBOX: &str = "0.6.7";

/// Issue 13: `new --start` with the default runtime and no sysbox refuses
/// before writing or starting anything, naming both fixes; without
/// --start the conf is written with a note; --runtime runc starts.
#[test]
fn new_start_without_sysbox_refuses_with_the_fix() {
    let env = Env::new();
    env.installed("docker", DEFAULT_DOCKER);
    let (bin, log) = fake_systemctl(&env, 0);
    let o = env
        .cmd()
        .env("PATH", path_with(&bin))
        .args(["new", "zt3", "--root", &env.root("zt3"), "--start"])
        .output()
        .expect("run");
    let sysbox_runc = env.tmp.path().join("store/sysbox/0.6.7/bin/sysbox-runc");
    expect(
        &o,
        6,
        &format!(
            "dockyard: error: refusing to create and start instance zt3: sysbox 0.6.7 is not installed \
             ({} is missing), and Runtime=sysbox-runc (the default) needs it: run `dockyard \
             install --no-docker --sysbox 0.6.7` first, or give --runtime runc",
            sysbox_runc.display()
        ),
    );
    assert!(stderr(&o).contains("nothing was written"), "{}", stderr(&o));
    assert!(!env.dir().join("zt3.conf").exists());
    assert!(!log.exists(), "systemctl ran");

    let o = env.new_instance("zt3", &[]);
    expect(
        &o,
        0,
        "note: before starting zt3: sysbox 0.6.7 is not installed",
    );
    assert!(env.dir().join("zt3.conf").exists());

    let o = env
        .cmd()
        .env("PATH", path_with(&bin))
        .args([
            "new",
            "zt4",
            "--root",
            &env.root("zt4"),
            "--start",
            "--runtime",
            "runc",
        ])
        .output()
        .expect("run");
    expect(&o, 0, "");
    assert!(!stderr(&o).contains("sysbox"), "{}", stderr(&o));
}

/// `check` warns (exit 0: the confs are valid) about what the store lacks.
#[test]
fn check_warns_about_what_is_not_installed() {
    let env = Env::new();
    write(
        &env.dir().join("zt5.conf"),
        "[Instance]\nBridgeCIDR=172.30.5.1/24\nPoolBase=172.31.0.0/16\nRoot=/srv/ztt/zt5\n",
    );
    env.installed("docker", DEFAULT_DOCKER);
    let o = env.run(&["check"]);
    let conf = env.dir().join("zt5.conf");
    expect(
        &o,
        0,
        &format!(
            "{}: warning: instance zt5: sysbox 0.6.7 is not installed",
            conf.display()
        ),
    );
    assert!(
        stderr(&o).contains("or set Runtime=runc in the conf"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("0 error(s), 1 warning(s)"),
        "{}",
        stderr(&o)
    );
    env.installed("sysbox", DEFAULT_SYSBOX);
    let o = env.run(&["check"]);
    expect(&o, 0, "0 error(s), 0 warning(s)");
}

#[test]
fn new_avoids_siblings_including_confs_with_errors() {
    let env = Env::new();
    // A valid sibling holding 172.24.0.0/14 and a bridge in 172.28.0.0/24,
    // and a conf with an error (unknown runtime) still claiming
    // 172.16.0.0/13: only 172.29-31 are left for pools.
    write(
        &env.dir().join("zt8.conf"),
        "[Instance]\nBridgeCIDR=172.28.0.1/24\nPoolBase=172.24.0.0/14\nRuntime=runc\nRoot=/srv/ztt-sib/zt8\n",
    );
    write(
        &env.dir().join("zt9.conf"),
        "[Instance]\nBridgeCIDR=172.16.0.1/24\nPoolBase=172.17.0.0/16\nFixedCIDR=172.16.0.0/24\nRuntime=crun\n",
    );
    // The broken conf's own networks are a /24 and a /16; widen what it
    // claims with a second broken conf holding a /13 pool.
    write(
        &env.dir().join("zt7.conf"),
        "[Instance]\nBridgeCIDR=172.18.0.1/24\nPoolBase=172.16.0.0/13\nRuntime=crun\n",
    );
    expect(&env.run(&["check"]), 1, "zt7.conf:4: error:");
    let free: Ipv4Net = "172.28.0.0/14".parse().expect("net");
    for name in ["zt1", "zt2"] {
        let old_plan = ["--range", "172.16.0.0/12", "--pool-prefix", "16"];
        let mut args = vec!["--runtime", "runc"];
        args.extend(old_plan);
        expect(&env.new_instance(name, &args), 0, "");
    }
    let nets: Vec<_> = networks(&env.dir())
        .into_iter()
        .filter(|(n, _, _)| n == "zt1" || n == "zt2")
        .collect();
    assert_eq!(nets.len(), 2);
    for (n, b, p) in &nets {
        assert!(free.contains(p), "{n} pool {p} outside {free}");
        assert!(free.contains(&b.trunc()), "{n} bridge {b} outside {free}");
        assert!(
            !b.trunc()
                .contains(&"172.28.0.1".parse::<std::net::Ipv4Addr>().expect("ip")),
            "{n} bridge {b} is zt8's"
        );
    }
}

/// Rootless=yes: `check` warns about rootlesskit missing beside an
/// installed Docker and about what the host lacks, each with its fix.
#[test]
fn check_warns_about_what_a_rootless_instance_needs() {
    let env = Env::new();
    write(
        &env.dir().join("zt9.conf"),
        "[Instance]\nBridgeCIDR=172.30.9.1/24\nPoolBase=172.31.0.0/16\nRoot=/srv/ztt/zt9\nRootless=yes\n",
    );
    env.installed("docker", DEFAULT_DOCKER);
    let tun = env.tmp.path().join("no-tun");
    let o = env
        .cmd()
        .env("DOCKYARD_DEV_NET_TUN", &tun)
        .args(["check"])
        .output()
        .expect("run");
    let conf = env.dir().join("zt9.conf");
    let rootlesskit = env.tmp.path().join("store/docker/29.2.1/bin/rootlesskit");
    expect(
        &o,
        0,
        &format!(
            "{}: warning: instance zt9: Docker 29.2.1 is installed without rootlesskit ({} is \
             missing), and Rootless=yes runs it from there",
            conf.display(),
            rootlesskit.display()
        ),
    );
    assert!(
        stderr(&o).contains(&format!(
            "instance zt9: {} does not exist, and slirp4netns needs it",
            tun.display()
        )),
        "{}",
        stderr(&o)
    );
    // No sysbox: a rootless instance runs runc.
    assert!(!stderr(&o).contains("sysbox"), "{}", stderr(&o));
}

/// A user every Debian and Fedora host has, to stand for a tenant.
const TENANT: &str = "nobody";

fn conf_text(env: &Env, name: &str) -> String {
    std::fs::read_to_string(env.dir().join(format!("{name}.conf"))).unwrap_or_default()
}

/// Issue 21: `new --rootless` writes Rootless=yes and no Runtime=; the
/// model refuses it with sysbox-runc; tenants need a rootless instance
/// (or the admin's --grant-host-root) and existing users, all checked
/// before anything is written.
#[test]
fn new_rootless_and_its_tenants() {
    let env = Env::new();
    let o = env.new_instance("zr1", &["--rootless", "--json"]);
    expect(&o, 0, "");
    let text = conf_text(&env, "zr1");
    assert!(text.contains("\nRootless=yes\n"), "{text}");
    assert!(!text.contains("Runtime="), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["runtime"], "runc");
    assert_eq!(v["rootless"], true);
    assert_eq!(
        v["group_grants"],
        "what user zr1_docker can do (its socket, its own files; no host root)"
    );
    expect(&env.run(&["check"]), 0, "1 instance unit(s)");

    // sysbox-runc with --rootless: the model's refusal, nothing written.
    let o = env.new_instance("zr2", &["--rootless", "--runtime", "sysbox-runc"]);
    expect(&o, 2, "sysbox-runc needs a rootful dockerd");
    assert!(stderr(&o).contains("nothing was written"), "{}", stderr(&o));
    assert!(!env.dir().join("zr2.conf").exists());

    // A tenant for a rootful instance: refused, naming why and the fixes.
    let o = env.new_instance("zr3", &["--tenant", TENANT]);
    expect(
        &o,
        6,
        &format!(
            "refusing to give {TENANT} the group zr3_docker of rootful instance zr3: that \
             group is root on the host"
        ),
    );
    for want in [
        "give --rootless",
        "--grant-host-root",
        "nothing was written",
    ] {
        assert!(stderr(&o).contains(want), "{want}: {}", stderr(&o));
    }
    assert!(!env.dir().join("zr3.conf").exists());
    // --grant-host-root needs a tenant, and is not for a rootless one.
    expect(
        &env.new_instance("zr3", &["--grant-host-root"]),
        2,
        "--tenant",
    );
    expect(
        &env.new_instance(
            "zr3",
            &["--rootless", "--tenant", TENANT, "--grant-host-root"],
        ),
        2,
        "cannot be used with",
    );

    // A user the host does not have: named, nothing written.
    let o = env.new_instance("zr4", &["--rootless", "--tenant", "dockyard-no-such-user"]);
    expect(
        &o,
        2,
        "--tenant dockyard-no-such-user: no such user on this host; nothing was written",
    );
    assert!(!env.dir().join("zr4.conf").exists());

    // Without --start the group does not exist yet: what to run after.
    let o = env.new_instance("zr5", &["--rootless", "--tenant", TENANT]);
    expect(
        &o,
        0,
        &format!(
            "note: group zr5_docker is made by the first start of zr5_docker.service; then \
             add {TENANT}: `gpasswd -a {TENANT} zr5_docker`"
        ),
    );
    assert!(conf_text(&env, "zr5").contains("Rootless=yes"));
    // The admin's explicit choice for a rootful one.
    let o = env.new_instance("zr6", &["--tenant", TENANT, "--grant-host-root"]);
    expect(&o, 0, "note: group zr6_docker is made by the first start");
    assert!(!conf_text(&env, "zr6").contains("Rootless"));
}

/// `new --rootless --start` refuses before writing anything when the
/// host lacks what a rootless instance runs, naming each fix.
#[test]
fn new_rootless_start_refuses_what_the_host_lacks() {
    let env = Env::new();
    env.installed("docker", DEFAULT_DOCKER);
    let (bin, log) = fake_systemctl(&env, 0);
    let tun = env.tmp.path().join("no-tun");
    let o = env
        .cmd()
        .env("PATH", path_with(&bin))
        .env("DOCKYARD_DEV_NET_TUN", &tun)
        .args([
            "new",
            "zr7",
            "--root",
            &env.root("zr7"),
            "--rootless",
            "--tenant",
            TENANT,
            "--start",
        ])
        .output()
        .expect("run");
    expect(&o, 6, "refusing to create and start instance zr7: ");
    for want in [
        "Docker 29.2.1 is installed without rootlesskit".to_string(),
        format!("{} does not exist, and slirp4netns needs it", tun.display()),
        "nothing was written".to_string(),
    ] {
        assert!(stderr(&o).contains(&want), "{want}: {}", stderr(&o));
    }
    assert!(!env.dir().join("zr7.conf").exists());
    assert!(!log.exists(), "systemctl ran");
}

/// `check` warns, at their lines, about AllowFrom= and [Daemon] keys a
/// rootless instance cannot use; the conf stays valid (exit 0).
#[test]
fn check_warns_about_settings_a_rootless_instance_cannot_use() {
    let env = Env::new();
    let conf = env.dir().join("zr8.conf");
    write(
        &conf,
        "[Instance]\nBridgeCIDR=172.30.8.1/24\nPoolBase=172.31.0.0/16\nRoot=/srv/ztt/zr8\nRootless=yes\n[Network]\nAllowFrom=10.9.0.0/16\n[Daemon]\nuserns-remap=default\n",
    );
    let o = env.run(&["check"]);
    expect(
        &o,
        0,
        &format!(
            "{}:7: warning: AllowFrom= has no effect on rootless instance zr8",
            conf.display()
        ),
    );
    assert!(
        stderr(&o).contains(&format!(
            "{}:9: warning: [Daemon] userns-remap=\"default\" on rootless instance zr8",
            conf.display()
        )),
        "{}",
        stderr(&o)
    );
}

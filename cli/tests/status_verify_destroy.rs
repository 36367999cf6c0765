//! Error paths of `dockyard status`, `verify` and `destroy` through the
//! built binary, on a temporary instances directory and a fake
//! /sys/class/net, touching nothing on the host. (The working paths run
//! in the booted host: tests/lifecycle/cli_suite.sh.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("net")).expect("net");
        std::fs::create_dir(tmp.path().join("instances.d")).expect("instances.d");
        Env { tmp }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("instances.d")
    }

    fn conf(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir().join(format!("{name}.conf"));
        std::fs::write(&p, text).expect("conf");
        p
    }

    fn bridge(&self, name: &str) {
        std::fs::create_dir(self.tmp.path().join("net").join(name)).expect("bridge");
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dockyard"))
            .args(args)
            .env("DOCKYARD_INSTANCES_DIR", self.dir())
            .env("DOCKYARD_SYS_CLASS_NET", self.tmp.path().join("net"))
            .env("DOCKYARD_SUBUID_FILE", self.tmp.path().join("subuid"))
            .env("DOCKYARD_SUBGID_FILE", self.tmp.path().join("subgid"))
            .env("DOCKYARD_SUBID_LOCK", self.tmp.path().join("subid.lock"))
            .stdin(Stdio::null())
            .output()
            .expect("run dockyard")
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Instance names unlikely to exist on any host running the tests.
const CONF: &str = "[Instance]\nRoot=/srv/dockyard-test-never-created/q7\nBridgeCIDR=172.31.250.1/24\nPoolBase=172.30.0.0/16\nRuntime=runc\nDockerVersion=1.0.0\n";

#[test]
fn status_lists_confs_and_conf_less_bridges() {
    let env = Env::new();
    let empty = env.run(&["status"]);
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty));
    assert!(text(&empty).contains("no instances"), "{}", text(&empty));

    env.conf("q7", CONF);
    std::fs::write(
        env.dir().join("q8.conf"),
        "[Instance]\nBridgeCIDR=nonsense\n",
    )
    .expect("bad conf");
    env.bridge("q9_docker0");
    env.bridge("eth0");
    let out = env.run(&["status", "--json"]);
    // Nothing runs here: not active, as `systemctl is-active` exits.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["q7", "q8", "q9"]);
    assert_eq!(v[0]["bridge"], "absent");
    assert_eq!(v[0]["docker"]["version"], "1.0.0");
    assert_eq!(v[0]["docker"]["installed"], false);
    assert_eq!(v[0]["socket"]["exists"], false);
    assert_eq!(v[0]["containers_error"], "not running");
    assert_eq!(v[0]["mode"], "rootful");
    assert_eq!(v[0]["group_grants"], "root on the host");
    assert!(v[2]["mode"].is_null());
    assert!(v[1]["conf_error"].is_string(), "{}", v[1]);
    assert!(v[2]["conf"].is_null());
    assert_eq!(v[2]["bridge"], "present");

    let one = env.run(&["status", "q7"]);
    assert_eq!(one.status.code(), Some(3), "{}", text(&one));
    let table = text(&one);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME  MODE     GROUP GRANTS      UNIT"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("q7    rootful  root on the host  "),
        "{table}"
    );
    assert!(lines[1].contains("  absent  "), "{table}");
    assert!(lines[1].contains("  1.0.0 (NOT installed)  "), "{table}");
    assert!(
        lines[1].contains("/srv/dockyard-test-never-created/q7/docker.sock"),
        "{table}"
    );
}

#[test]
fn status_reads_the_manifest_the_generator_reads() {
    let env = Env::new();
    // No DockerVersion=: the default comes from the manifest in effect.
    env.conf(
        "q7",
        "[Instance]\nRoot=/srv/dockyard-test-never-created/q7\nBridgeCIDR=172.31.250.1/24\nPoolBase=172.30.0.0/16\nRuntime=runc\n",
    );
    let manifest = env.tmp.path().join("artifacts.toml");
    let status = |manifest: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_dockyard"))
            .args(["status", "--json"])
            .env("DOCKYARD_INSTANCES_DIR", env.dir())
            .env("DOCKYARD_SYS_CLASS_NET", env.tmp.path().join("net"))
            .env("DOCKYARD_ARTIFACTS_MANIFEST", manifest)
            .stdin(Stdio::null())
            .output()
            .expect("run dockyard");
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v[0].clone()
    };
    std::fs::write(
        &manifest,
        "[defaults]\ndocker = \"28.5.2\"\nsysbox = \"0.6.7\"\n",
    )
    .expect("manifest");
    assert_eq!(status(&manifest)["docker"]["version"], "28.5.2");
    // A broken one: the conf has no Docker version, and says why.
    std::fs::write(&manifest, "[defaults]\ndocker = \"28.5.2\"\n").expect("manifest");
    let q7 = status(&manifest);
    let why = q7["conf_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("the artifacts manifest is unusable")
            && why.contains(&manifest.display().to_string()),
        "{q7}"
    );
}

#[test]
fn status_of_unknown_or_invalid_names_fails() {
    let env = Env::new();
    let out = env.run(&["status", "q7"]);
    // As `systemctl status` says of a unit that does not exist.
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("no instance q7"), "{}", text(&out));
    // (Dockyard users of the host running the tests would be known too.)
    assert!(text(&out).contains("; known: "), "{}", text(&out));
    env.conf("q6", CONF);
    let out = env.run(&["status", "q7"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let known = text(&out);
    let known = known.rsplit("; known: ").next().unwrap_or("");
    assert!(known.split(", ").any(|n| n.trim() == "q6"), "{known}");
    let out = env.run(&["status", "Bad-Name"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn verify_without_a_conf_fails_with_a_reason() {
    let env = Env::new();
    let out = env.run(&["verify", "q7"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAIL conf: no conf"), "{}", text(&out));
    std::fs::write(env.dir().join("q8.conf"), "[Instance]\n").expect("bad conf");
    let out = env.run(&["verify", "q8"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("FAIL conf: the conf is invalid"),
        "{}",
        text(&out)
    );
    // A conf but nothing running: every check after `conf` fails, none panics.
    env.conf("q7", CONF);
    let out = env.run(&["verify", "q7"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("ok   conf:"), "{t}");
    assert!(
        t.contains("FAIL socket: /srv/dockyard-test-never-created/q7/docker.sock does not exist"),
        "{t}"
    );
    assert!(
        t.contains("FAIL container: not run: the API does not answer"),
        "{t}"
    );
}

fn is_root() -> bool {
    // The effective uid, from the Uid: line of /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn destroy_refuses_before_changing_anything() {
    let env = Env::new();
    let out = env.run(&["destroy", "Bad-Name", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    if !is_root() {
        let out = env.run(&["destroy", "q7", "--yes"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("needs root"), "{}", text(&out));
        eprintln!("SKIPPED the rest: needs root");
        return;
    }
    // Nothing of q7 exists: nothing to do, exit 0, also without --yes.
    let out = env.run(&["destroy", "q7"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("q7: no such instance, nothing to destroy; known: "),
        "{}",
        text(&out)
    );
    // A conf exists: without --yes and without a terminal, refused (6).
    let conf = env.conf("q7", CONF);
    let out = env.run(&["destroy", "q7"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out).contains("without --yes: stdin is not a terminal"),
        "{}",
        text(&out)
    );
    assert!(conf.exists());
    // Roots the model refuses are never deleted, even from a broken conf.
    for root in ["/etc", "/", "/var/lib/dockyard", "/srv/../etc"] {
        let conf = env.conf("q8", &format!("[Instance]\nRoot={root}\nBridgeCIDR=bad\n"));
        let out = env.run(&["destroy", "q8", "--yes"]);
        assert_eq!(out.status.code(), Some(6), "{root}: {}", text(&out));
        assert!(
            text(&out).contains("refusing to destroy q8"),
            "{}",
            text(&out)
        );
        assert!(conf.exists(), "{root}: the conf went");
    }
    assert!(Path::new("/etc/passwd").exists());
}

/// Issue 21: destroying a rootless instance removes its user's lines from
/// /etc/subuid and /etc/subgid (here: the test's files), every other line
/// kept byte for byte and the files' modes kept; also when its conf is
/// gone; not while its data is kept.
#[test]
fn destroy_removes_a_rootless_instances_subordinate_ids() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let env = Env::new();
    let (uids, gids) = (env.tmp.path().join("subuid"), env.tmp.path().join("subgid"));
    let uid_text = "# kept\nalice:100000:65536\nq6_docker:165536:65536\nq66_docker:231072:65536\nq5_docker:296608:65536\n";
    let gid_text = "alice:100000:65536\nq6_docker:165536:65536\nq5_docker:296608:65536\n  q66_docker:231072:65536";
    std::fs::write(&uids, uid_text).expect("subuid");
    std::fs::write(&gids, gid_text).expect("subgid");
    std::fs::set_permissions(&gids, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    env.conf(
        "q6",
        "[Instance]\nRoot=/srv/dockyard-test-never-created/q6\nBridgeCIDR=172.31.251.1/24\nPoolBase=172.30.0.0/16\nRootless=yes\nDockerVersion=1.0.0\n",
    );
    // The network helper is not installed here: that step fails (exit 1),
    // the others still run.
    let out = env.run(&["destroy", "q6", "--yes"]);
    let t = text(&out);
    assert!(
        t.contains(&format!(
            "removed the subordinate ids of q6_docker from {} and {}",
            uids.display(),
            gids.display()
        )),
        "{t}"
    );
    assert_eq!(
        std::fs::read_to_string(&uids).expect("subuid"),
        "# kept\nalice:100000:65536\nq66_docker:231072:65536\nq5_docker:296608:65536\n"
    );
    assert_eq!(
        std::fs::read_to_string(&gids).expect("subgid"),
        "alice:100000:65536\nq5_docker:296608:65536\n  q66_docker:231072:65536"
    );
    let mode = std::fs::metadata(&gids)
        .expect("subgid")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);

    // No conf, no user: the lines alone are what is left of q5. Its
    // runtime is unknown, so destroy also looks after the shared sysbox
    // state: only tried where there is none to lose.
    let sysbox_here =
        Path::new("/var/lib/dockyard-sysbox").exists() || Path::new("/run/systemd/system").exists();
    if sysbox_here {
        eprintln!("SKIPPED the conf-less case: this host has sysbox state or systemd");
    } else {
        let out = env.run(&["destroy", "q5", "--yes"]);
        let t = text(&out);
        assert!(
            t.contains("removed the subordinate ids of q5_docker"),
            "{t}"
        );
        assert!(!std::fs::read_to_string(&uids)
            .expect("subuid")
            .contains("q5_docker"));
        // Nothing of it left: a second destroy has nothing to do.
        let out = env.run(&["destroy", "q5", "--yes"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            text(&out).contains("q5: no such instance"),
            "{}",
            text(&out)
        );
    }

    // Data kept: so are the ids that own it.
    let data = env.tmp.path().join("q4-root");
    std::fs::create_dir(&data).expect("root");
    env.conf(
        "q4",
        &format!(
            "[Instance]\nRoot={}\nBridgeCIDR=172.31.252.1/24\nPoolBase=172.29.0.0/16\nRootless=yes\nRuntime=runc\n",
            data.display()
        ),
    );
    std::fs::write(&uids, "q4_docker:1:65536\n").expect("subuid");
    let out = env.run(&["destroy", "q4", "--yes", "--keep-data"]);
    let t = text(&out);
    assert!(t.contains("kept the subordinate ids of q4_docker"), "{t}");
    assert_eq!(
        std::fs::read_to_string(&uids).expect("subuid"),
        "q4_docker:1:65536\n"
    );
}

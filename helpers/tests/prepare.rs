//! `dockyard-prepare` against temp directories, a real (random, removed
//! afterwards) system user, and real mounts inside a private mount namespace.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{helper, require_root, run, sh, Run};

/// A random instance name and its user; both are deleted on drop.
struct TestUser {
    instance: String,
    user: String,
}

impl TestUser {
    fn new() -> TestUser {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // 't' + 6 digits: a valid 7-character instance name.
        let n = (nanos / 1000 + std::process::id() * 7 + k * 100_003) % 1_000_000;
        let instance = format!("t{n:06}");
        TestUser {
            user: format!("{instance}_docker"),
            instance,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).output();
        let _ = Command::new("groupdel").arg(&self.user).output();
    }
}

struct Layout {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    exec_root: PathBuf,
    config: PathBuf,
}

fn layout() -> Layout {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("srv/inst");
    let exec_root = tmp.path().join("run/inst_docker");
    let config = exec_root.join("daemon.json");
    Layout {
        root,
        exec_root,
        config,
        _tmp: tmp,
    }
}

fn prepare_up(u: &TestUser, l: &Layout, extra: &[&str]) -> Run {
    let mut c = Command::new(helper());
    c.args([
        "prepare",
        "up",
        "--instance",
        &u.instance,
        "--user",
        &u.user,
        "--group",
        &u.user,
    ])
    .arg("--root")
    .arg(&l.root)
    .arg("--exec-root")
    .arg(&l.exec_root)
    .arg("--config-file")
    .arg(&l.config)
    .args(extra);
    run(&mut c)
}

fn prepare_down(instance: &str, root: &Path, exec_root: &Path) -> Run {
    let mut c = Command::new(helper());
    c.args(["prepare", "down", "--instance", instance])
        .arg("--root")
        .arg(root)
        .arg("--exec-root")
        .arg(exec_root);
    run(&mut c)
}

fn owner_mode(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid(), m.permissions().mode() & 0o7777)
}

#[test]
fn up_creates_user_dirs_config_and_is_idempotent() {
    if !require_root("up_creates_user_dirs_config_and_is_idempotent") {
        return;
    }
    let u = TestUser::new();
    let l = layout();
    // A stale socket from a dockerd killed with -9.
    fs::create_dir_all(&l.root).unwrap();
    drop(UnixListener::bind(l.root.join("docker.sock")).unwrap());

    let r = prepare_up(
        &u,
        &l,
        &[
            "--daemon-option",
            "log-level=\"warn\"",
            "--daemon-option",
            "mtu=1400",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    let pw = nix::unistd::User::from_name(&u.user)
        .unwrap()
        .expect("user created");
    assert_eq!(
        pw.gecos.to_str().unwrap(),
        format!("Dockyard instance {}", u.instance)
    );
    assert_eq!(pw.dir, l.root);
    assert!(pw.uid.as_raw() < 1000, "system user, got uid {}", pw.uid);
    let gid = pw.gid.as_raw();
    assert_eq!(
        nix::unistd::Group::from_gid(pw.gid).unwrap().unwrap().name,
        u.user
    );

    assert_eq!(owner_mode(&l.root), (0, gid, 0o750));
    assert_eq!(owner_mode(&l.root.join("docker")), (0, 0, 0o710));
    assert_eq!(owner_mode(&l.exec_root), (0, 0, 0o700));
    // Live-restore on while dockerd starts (it would delete the host's
    // docker0 otherwise), off in the file `started` puts in place.
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&l.config).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"log-level": "warn", "mtu": 1400, "live-restore": true})
    );
    let running = l.config.with_file_name("daemon.json.running");
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&running).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"log-level": "warn", "mtu": 1400, "live-restore": false})
    );
    assert!(!l.root.join("docker.sock").exists(), "stale socket removed");

    // Re-run (restart): same result; no options gives "{}".
    let r = prepare_up(&u, &l, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(&l.config).unwrap(),
        "{\n  \"live-restore\": true\n}\n"
    );
    assert_eq!(owner_mode(&l.root), (0, gid, 0o750));
    let names: Vec<_> = fs::read_dir(&l.exec_root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temp files left: {names:?}");

    // Once dockerd is up: the steady file replaces the start-up one and
    // $MAINPID gets SIGHUP (a sleep here, which SIGHUP ends).
    let mut dockerd = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let mut cmd = std::process::Command::new(common::helper());
    cmd.args([
        "prepare",
        "started",
        "--instance",
        &u.instance,
        "--config-file",
    ])
    .arg(&l.config)
    .env("MAINPID", dockerd.id().to_string())
    .env("DOCKYARD_LOG", "stderr");
    let r = common::run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(&l.config).unwrap(),
        "{\n  \"live-restore\": false\n}\n"
    );
    assert!(!running.exists());
    let status = dockerd.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(1),
        "SIGHUP"
    );
    // Again (a restart of the ExecStartPost alone): nothing to do.
    let r = common::run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A root the old bash tool chowned to the instance user is taken back,
    // but only that directory: its contents keep their owner.
    let inside = l.root.join("keep");
    fs::write(&inside, b"x").unwrap();
    nix::unistd::chown(&l.root, Some(pw.uid), Some(pw.gid)).unwrap();
    nix::unistd::chown(&inside, Some(pw.uid), None).unwrap();
    let r = prepare_up(&u, &l, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(owner_mode(&l.root), (0, gid, 0o750));
    assert_eq!(owner_mode(&inside).0, pw.uid.as_raw(), "never recursive");
}

#[test]
fn up_refuses_a_stranger_user() {
    if !require_root("up_refuses_a_stranger_user") {
        return;
    }
    let u = TestUser::new();
    let l = layout();
    let r = run(Command::new("useradd").args([
        "--system",
        "--no-create-home",
        "--comment",
        "someone else",
        &u.user,
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = prepare_up(&u, &l, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("not created by Dockyard"), "{}", r.stderr);
    assert!(!l.root.exists(), "nothing created for a refused instance");
    let pw = nix::unistd::User::from_name(&u.user).unwrap().unwrap();
    assert_eq!(pw.gecos.to_str().unwrap(), "someone else", "untouched");
}

#[test]
fn up_refuses_symlinked_or_foreign_root() {
    if !require_root("up_refuses_symlinked_or_foreign_root") {
        return;
    }
    let u = TestUser::new();
    let l = layout();
    let target = l.root.with_file_name("real");
    fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&target, &l.root).unwrap();
    let r = prepare_up(&u, &l, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("symlink"), "{}", r.stderr);
    assert_eq!(owner_mode(&target).1, 0, "link target untouched");
    assert!(
        nix::unistd::User::from_name(&u.user).unwrap().is_none(),
        "no account created for a refused root"
    );

    fs::remove_file(&l.root).unwrap();
    fs::create_dir(&l.root).unwrap();
    nix::unistd::chown(&l.root, Some(nix::unistd::Uid::from_raw(54321)), None).unwrap();
    let r = prepare_up(&u, &l, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("uid 54321"), "{}", r.stderr);
    assert_eq!(owner_mode(&l.root).0, 54321, "not taken over");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let l = layout();
    for (opt, val) in [
        ("--instance", "Bad"),
        ("--root", "relative/path"),
        ("--root", "/srv/../etc"),
        ("--root", "/"),
        ("--daemon-option", "debug=yes please"),
        ("--user", "no:colons"),
    ] {
        let mut c = Command::new(helper());
        c.args([
            "prepare",
            "up",
            "--instance",
            "dy1",
            "--user",
            "dy1_docker",
            "--group",
            "dy1_docker",
        ])
        .args(["--exec-root"])
        .arg(&l.exec_root)
        .args(["--config-file"])
        .arg(&l.config);
        if opt != "--root" {
            c.arg("--root").arg(&l.root);
        }
        // Later duplicates are rejected too, so replace instead of append.
        let mut args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if let Some(i) = args.iter().position(|a| a == opt) {
            args[i + 1] = val.into();
        } else {
            args.push(opt.into());
            args.push(val.into());
        }
        let r = run(Command::new(helper()).args(&args));
        assert_eq!(r.code, 2, "{opt} {val}: {}", r.stderr);
        assert!(
            r.stderr.contains(opt.trim_start_matches("--")),
            "{opt}: {}",
            r.stderr
        );
    }
    assert!(!l.root.exists());
}

#[test]
fn down_with_nothing_present_exits_zero() {
    if !require_root("down_with_nothing_present_exits_zero") {
        return;
    }
    let l = layout();
    let r = prepare_down("dy1", &l.root, &l.exec_root);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = prepare_down("dy1", &l.root, &l.exec_root);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn down_detaches_leftover_mounts_but_not_the_data_root_itself() {
    if !require_root("down_detaches_leftover_mounts_but_not_the_data_root_itself") {
        return;
    }
    let l = layout();
    let root = l.root.display().to_string();
    let exec = l.exec_root.display().to_string();
    // In a private mount namespace: an admin's filesystem on <root>/docker,
    // and what a dockerd killed with -9 leaves: netns, overlay, shm (with a
    // space in its path to exercise mountinfo's \040 escaping).
    let script = format!(
        r#"
        mkdir -p "{root}/docker" "{exec}/netns/abc"
        mount -t tmpfs admin "{root}/docker"
        mkdir -p "{root}/docker/overlay2/l1/merged" "{root}/docker/containers/c 1/mounts/shm"
        mount -t tmpfs ovl "{root}/docker/overlay2/l1/merged"
        mkdir -p "{root}/docker/overlay2/l1/merged/dev/shm"
        mount -t tmpfs shm "{root}/docker/overlay2/l1/merged/dev/shm"
        mount -t tmpfs shm "{root}/docker/containers/c 1/mounts/shm"
        mount -t tmpfs ns "{exec}/netns/abc"
        python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind("{root}/docker.sock")'
        echo before=$(grep -c -e "{root}/docker/" -e "{exec}/" /proc/self/mountinfo)
        DOCKYARD_LOG=stderr "{helper}" prepare down --instance dy1 --root "{root}" --exec-root "{exec}"
        echo rc=$?
        echo after=$(grep -c -e "{root}/docker/" -e "{exec}/" /proc/self/mountinfo || true)
        echo dataroot=$(awk '$5 == "{root}/docker"' /proc/self/mountinfo | wc -l)
        test -e "{root}/docker.sock" && echo sock=present || echo sock=gone
        "#,
        helper = helper().display()
    );
    let r = run(Command::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("before=4"), "{}", r.stdout);
    assert!(r.stdout.contains("rc=0"), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("after=0"), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("dataroot=1"), "{}", r.stdout);
    assert!(r.stdout.contains("sock=gone"), "{}", r.stdout);
    assert!(r.stderr.contains("detached"), "{}", r.stderr);
    let _ = sh("true");
}

fn prepare_sysbox(user: &str, dir: &Path) -> Run {
    let mut c = Command::new(helper());
    c.args(["prepare", "sysbox", "--subid-user", user])
        .arg("--subuid-file")
        .arg(dir.join("subuid"))
        .arg("--subgid-file")
        .arg(dir.join("subgid"))
        .arg("--login-defs")
        .arg(dir.join("login.defs"));
    run(&mut c)
}

fn sysbox_files(subuid: &str, subgid: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("subuid"), subuid).unwrap();
    fs::write(d.path().join("subgid"), subgid).unwrap();
    fs::write(
        d.path().join("login.defs"),
        "SUB_UID_MIN\t\t   100000\nSUB_UID_MAX\t\t600100000\nSUB_GID_MIN 200000\n",
    )
    .unwrap();
    d
}

#[test]
fn sysbox_creates_user_and_ranges_like_sysbox_and_is_idempotent() {
    if !require_root("sysbox_creates_user_and_ranges_like_sysbox_and_is_idempotent") {
        return;
    }
    // The random instance's user name doubles as the sysbox account name.
    let u = TestUser::new();
    let d = sysbox_files("# keep me\nalice:100000:65536\n", "alice:100000:65536\n");
    let r = prepare_sysbox(&u.user, d.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pw = sh(&format!("getent passwd {}", u.user)).stdout;
    assert!(pw.contains(":Dockyard sysbox subordinate ids:"), "{pw}");
    let subuid = fs::read_to_string(d.path().join("subuid")).unwrap();
    assert_eq!(
        subuid,
        format!(
            "# keep me\nalice:100000:65536\n{}:165536:268435456\n",
            u.user
        )
    );
    // SUB_GID_MIN from login.defs moves the subgid window.
    let subgid = fs::read_to_string(d.path().join("subgid")).unwrap();
    assert_eq!(
        subgid,
        format!("alice:100000:65536\n{}:200000:268435456\n", u.user)
    );
    // Again: nothing changes.
    let r = prepare_sysbox(&u.user, d.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fs::read_to_string(d.path().join("subuid")).unwrap(), subuid);
    assert_eq!(fs::read_to_string(d.path().join("subgid")).unwrap(), subgid);
    // A wrong-sized range of our own user is replaced, as sysbox-mgr would.
    fs::write(
        d.path().join("subuid"),
        format!("{}:100000:65536\nalice:165536:10\n", u.user),
    )
    .unwrap();
    let r = prepare_sysbox(&u.user, d.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(d.path().join("subuid")).unwrap(),
        format!("alice:165536:10\n{}:165546:268435456\n", u.user)
    );
}

#[test]
fn sysbox_adopts_a_foreign_user_only_with_sysbox_ranges() {
    if !require_root("sysbox_adopts_a_foreign_user_only_with_sysbox_ranges") {
        return;
    }
    let u = TestUser::new();
    let made = sh(&format!(
        "useradd --system --user-group --no-create-home --comment 'someone else' {}",
        u.user
    ));
    assert_eq!(made.code, 0, "{}", made.stderr);
    // No ranges: refused, files untouched.
    let d = sysbox_files("", "");
    let r = prepare_sysbox(&u.user, d.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("will not adopt"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(d.path().join("subuid")).unwrap(), "");
    // Ranges of the wrong size (a plain useradd's 65536): refused too.
    let line = format!("{}:100000:65536\n", u.user);
    let d = sysbox_files(&line, &line);
    let r = prepare_sysbox(&u.user, d.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    // sysbox's own setup (one range of 268435456 in each file): used as is.
    let line = format!("{}:165536:268435456\n", u.user);
    let d = sysbox_files(&line, &line);
    let r = prepare_sysbox(&u.user, d.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fs::read_to_string(d.path().join("subuid")).unwrap(), line);
    assert_eq!(fs::read_to_string(d.path().join("subgid")).unwrap(), line);
}

#[test]
fn sysbox_refuses_a_lone_group_and_bad_arguments() {
    if !require_root("sysbox_refuses_a_lone_group_and_bad_arguments") {
        return;
    }
    let u = TestUser::new();
    assert_eq!(sh(&format!("groupadd --system {}", u.user)).code, 0);
    let d = sysbox_files("", "");
    let r = prepare_sysbox(&u.user, d.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("will not adopt"), "{}", r.stderr);
    assert!(sh(&format!("getent passwd {}", u.user)).code != 0);
    for bad in [
        vec!["prepare", "sysbox"],
        vec!["prepare", "sysbox", "--subid-user", "Bad:Name"],
        vec!["prepare", "sysbox", "--subid-user", "sysbox", "extra"],
        vec![
            "prepare",
            "sysbox",
            "--subid-user",
            "sysbox",
            "--root",
            "/x",
        ],
    ] {
        let r = run(Command::new(helper()).args(&bad));
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stderr);
    }
}

#[test]
fn down_with_the_instance_name_alone_uses_what_up_recorded() {
    if !require_root("down_with_the_instance_name_alone_uses_what_up_recorded") {
        return;
    }
    let u = TestUser::new();
    let l = layout();
    let r = prepare_up(&u, &l, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let state = common::state_dir().join(&u.instance).join("prepare");
    let recorded = fs::read_to_string(&state).expect("prepare up records its values");
    assert!(
        recorded.contains(&format!("root={}\n", l.root.display())),
        "{recorded}"
    );
    // A stale socket, as a dockerd killed with SIGKILL leaves it.
    drop(UnixListener::bind(l.root.join("docker.sock")).unwrap());
    let r = run(Command::new(helper()).args(["prepare", "down", "--instance", &u.instance]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!l.root.join("docker.sock").exists(), "stale socket left");
    assert!(!state.exists(), "down must forget the recorded state");
    let r = run(Command::new(helper()).args(["prepare", "down", "--instance", &u.instance]));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

//! `dockyard-sysbox-chown` as systemd runs it: READY over a notify socket,
//! re-owning new container directories within milliseconds, SIGTERM.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{helper, require_root, run};

const UID: u32 = 165536;
const GID: u32 = 231072;

struct Watcher {
    child: Child,
    notify: UnixDatagram,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watcher {
    fn start(tmp: &Path, data_root: &Path) -> Watcher {
        let sock = tmp.join("notify.sock");
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let child = Command::new(helper())
            .arg("sysbox-chown")
            .arg("--data-root")
            .arg(data_root)
            .args(["--subid-user", "sysbox", "--subuid-file"])
            .arg(tmp.join("subuid"))
            .arg("--subgid-file")
            .arg(tmp.join("subgid"))
            .env("NOTIFY_SOCKET", &sock)
            .env("DOCKYARD_LOG", "stderr")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Watcher { child, notify }
    }

    /// Read notify datagrams until one contains `want`.
    fn wait_for(&self, want: &str) -> String {
        let mut buf = [0u8; 4096];
        loop {
            let n = self
                .notify
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {want} from the watcher: {e}"));
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().any(|l| l == want) {
                return msg;
            }
        }
    }
}

fn subid_files(tmp: &Path) {
    fs::write(
        tmp.join("subuid"),
        format!("# test\nalice:100000:65536\nsysbox:{UID}:65536\n"),
    )
    .unwrap();
    fs::write(tmp.join("subgid"), format!("sysbox:{GID}:65536\n")).unwrap();
}

fn owner(p: &Path) -> (u32, u32) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

/// mkdir as root, then time until the watcher has re-owned it.
fn mkdir_and_time(dir: &Path) -> Duration {
    let t0 = Instant::now();
    fs::create_dir(dir).unwrap();
    loop {
        if owner(dir) == (UID, GID) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "{} not re-owned within 1 s",
            dir.display()
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

#[test]
fn watcher_reowns_new_container_dirs_quickly_and_nothing_else() {
    if !require_root("watcher_reowns_new_container_dirs_quickly_and_nothing_else") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    subid_files(tmp.path());
    let data_root = tmp.path().join("lib/sysbox");
    let docker = data_root.join("docker");
    fs::create_dir_all(&docker).unwrap();
    // Present before start: fixed at start, except what is not ours to touch.
    fs::create_dir(docker.join("pre")).unwrap();
    fs::create_dir(docker.join("foreign")).unwrap();
    nix::unistd::chown(
        &docker.join("foreign"),
        Some(nix::unistd::Uid::from_raw(4242)),
        None,
    )
    .unwrap();
    let target = tmp.path().join("target");
    fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&target, docker.join("link")).unwrap();
    fs::write(docker.join("file"), b"x").unwrap();

    let w = Watcher::start(tmp.path(), &data_root);
    let ready = w.wait_for("READY=1");
    assert!(ready.contains("STATUS=watching"), "{ready}");

    assert_eq!(owner(&docker.join("pre")), (UID, GID));
    assert_eq!(owner(&docker.join("foreign")).0, 4242);
    assert_eq!(owner(&target), (0, 0), "symlink not followed");
    assert_eq!(
        owner(&docker.join("link")),
        (0, 0),
        "symlink itself left alone"
    );
    assert_eq!(owner(&docker.join("file")), (0, 0), "only directories");
    assert_eq!(
        owner(&docker),
        (0, 0),
        "the docker/ level itself is sysbox's"
    );

    // New container directories: measure mkdir -> chown.
    let mut lat: Vec<Duration> = (0..50)
        .map(|i| mkdir_and_time(&docker.join(format!("c{i}"))))
        .collect();
    lat.sort();
    eprintln!(
        "MEASURE watcher mkdir->chown over {} dirs: p50 {:?}, p90 {:?}, max {:?}",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() * 9 / 10],
        lat[lat.len() - 1]
    );

    // Never below the per-container level.
    let inner = docker.join("c0/var-lib-docker-inner");
    fs::create_dir(&inner).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        owner(&inner),
        (0, 0),
        "must not recurse into container data"
    );

    // A directory handed back to root later (ATTRIB) is fixed again.
    nix::unistd::chown(
        &docker.join("c1"),
        Some(nix::unistd::Uid::from_raw(0)),
        Some(nix::unistd::Gid::from_raw(0)),
    )
    .unwrap();
    let t0 = Instant::now();
    while owner(&docker.join("c1")) != (UID, GID) {
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "re-chowned dir not fixed"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

#[test]
fn watcher_survives_sysbox_mgr_recreating_its_data_root_and_stops_on_sigterm() {
    if !require_root("watcher_survives_sysbox_mgr_recreating_its_data_root_and_stops_on_sigterm") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    subid_files(tmp.path());
    // Data root does not exist yet (sysbox-mgr not started yet).
    let data_root: PathBuf = tmp.path().join("lib/sysbox");
    let mut w = Watcher::start(tmp.path(), &data_root);
    w.wait_for("READY=1");

    // sysbox-mgr start: MkdirAll(data-root), MkdirAll(docker), then containers.
    fs::create_dir_all(data_root.join("docker")).unwrap();
    mkdir_and_time(&data_root.join("docker/a"));

    // sysbox-mgr restart: RemoveAll(data-root) and the same again.
    fs::remove_dir_all(&data_root).unwrap();
    fs::create_dir_all(data_root.join("docker")).unwrap();
    let d = mkdir_and_time(&data_root.join("docker/b"));
    eprintln!("MEASURE watcher mkdir->chown right after the data root was recreated: {d:?}");

    let pid = w.child.id().to_string();
    assert_eq!(run(Command::new("kill").args(["-TERM", &pid])).code, 0);
    w.wait_for("STOPPING=1");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "watcher did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn watcher_fails_clearly_without_a_subid_entry() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("subuid"), "alice:100000:65536\n").unwrap();
    fs::write(tmp.path().join("subgid"), "alice:100000:65536\n").unwrap();
    let r = run(Command::new(helper())
        .arg("sysbox-chown")
        .arg("--data-root")
        .arg(tmp.path().join("sysbox"))
        .args(["--subid-user", "sysbox", "--subuid-file"])
        .arg(tmp.path().join("subuid"))
        .arg("--subgid-file")
        .arg(tmp.path().join("subgid")));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no entry for user \"sysbox\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("subuid"), "{}", r.stderr);
}

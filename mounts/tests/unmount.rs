//! `unmount_below` against real mounts, inside a private mount namespace:
//! the test runs itself again under `unshare --mount`, and the copy inside
//! mounts tmpfs file systems in a temporary directory and detaches them.
//! Needs root; without it the test prints SKIPPED and passes.

use std::path::Path;
use std::process::Command;

use dockyard_mounts::{is_mount_point, mounted_below, read_mountinfo, unmount_below};

const INSIDE: &str = "DOCKYARD_MOUNTS_TEST_INSIDE";

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

fn mount_tmpfs(at: &Path) {
    std::fs::create_dir_all(at).expect("mkdir");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "dockyard-test"])
        .arg(at)
        .status()
        .expect("run mount");
    assert!(ok.success(), "mount {}", at.display());
}

/// Inside the namespace: a base with nested mounts, reached through a
/// symlink, and a base that is itself a mount point.
fn inside() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let real = std::fs::canonicalize(tmp.path()).expect("canonicalize");
    let root = real.join("root");
    mount_tmpfs(&root.join("docker/overlay2/l1/merged"));
    mount_tmpfs(&root.join("docker/overlay2/l1/merged/dev/shm"));
    mount_tmpfs(&root.join("docker/containers/c 1/mounts/shm"));
    let link = real.join("link");
    std::os::unix::fs::symlink(&root, &link).expect("symlink");
    let admin = real.join("admin");
    mount_tmpfs(&admin);
    mount_tmpfs(&admin.join("inner"));

    let info = read_mountinfo().expect("mountinfo");
    assert_eq!(mounted_below(&info, &root).len(), 3);
    // Through the symlink, as given: mountinfo has no such path.
    assert!(mounted_below(&info, &link).is_empty());

    let done = unmount_below(&[link.clone(), admin.clone()]).expect("unmount");
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    assert_eq!(done.detached, 4);
    let info = read_mountinfo().expect("mountinfo");
    assert!(mounted_below(&info, &root).is_empty());
    assert!(mounted_below(&info, &admin).is_empty());
    // A base itself is never detached.
    assert!(is_mount_point(&info, &admin));
    // Nothing left: nothing to do.
    let again = unmount_below(&[root, admin]).expect("unmount");
    assert_eq!((again.detached, again.failed.len()), (0, 0));
    println!("inside: ok");
}

#[test]
fn detaches_everything_below_each_base_resolving_symlinks() {
    if std::env::var_os(INSIDE).is_some() {
        inside();
        return;
    }
    if !is_root() {
        eprintln!("SKIPPED detaches_everything_below_each_base_resolving_symlinks: needs root");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(exe)
        .args([
            "--exact",
            "detaches_everything_below_each_base_resolving_symlinks",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1")
        .output()
        .expect("run unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("inside: ok"), "{text}");
}

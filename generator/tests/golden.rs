//! Golden fixture trees, as zram-generator tests itself: each directory of
//! tests/generator/cases holds a conf dir `in/`, the expected unit tree
//! `expected/`, the expected log `expected.log` and exit status
//! `expected.status`. Paths of the temporary instances dir are written as
//! @DIR@ in the expectations.
//!
//! Optional per-case files:
//! - `mtimes`: `FILE SECONDS` lines; every other conf gets the same base
//!   time, so precedence falls back to names unless a case says otherwise.
//! - `running`: bridge names that count as running (a fake /sys/class/net).
//! - `manifest.toml`: an admin artifacts manifest.
//! - `setup`: files the repo cannot hold: `big NAME BYTES`, `fifo NAME`.
//!
//! `DOCKYARD_UPDATE_GOLDEN=1 cargo test` rewrites the expectations; review
//! the diff before committing it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const BASE_MTIME: u64 = 1_700_000_000;

fn cases_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/generator/cases");
    dir.canonicalize().unwrap_or(dir)
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    let mut entries: Vec<_> = fs::read_dir(from)
        .expect("read fixture dir")
        .map(|e| e.expect("entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).expect("stat fixture");
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).expect("readlink"), &dst)
                .expect("symlink");
        } else if meta.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).expect("copy fixture");
        }
    }
}

fn set_mtimes(dir: &Path, overrides: &BTreeMap<String, u64>) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                stack.push(path.clone());
            }
            if !meta.is_file() {
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let secs = overrides.get(&rel).copied().unwrap_or(BASE_MTIME);
            let f = fs::File::options()
                .write(true)
                .open(&path)
                .expect("open for mtime");
            f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
                .expect("set mtime");
        }
    }
}

fn apply_setup(case: &Path, instances: &Path) {
    let Ok(text) = fs::read_to_string(case.join("setup")) else {
        return;
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["big", name, bytes] => {
                let n: usize = bytes.parse().expect("size");
                let mut content = b"[Instance]\n".to_vec();
                content.resize(n, b'#');
                fs::write(instances.join(name), content).expect("write big");
            }
            ["fifo", name] => {
                let ok = Command::new("mkfifo")
                    .arg(instances.join(name))
                    .status()
                    .expect("mkfifo");
                assert!(ok.success());
            }
            other => panic!("unknown setup line {other:?}"),
        }
    }
}

/// Every file and symlink below `dir`, with content or link target.
fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(dir)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).expect("stat");
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", fs::read_link(&path).expect("readlink").display()),
                );
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                out.insert(rel, fs::read_to_string(&path).expect("read output"));
            }
        }
    }
    out
}

fn write_tree(dir: &Path, tree: &BTreeMap<String, String>) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("mkdir expected");
    for (rel, content) in tree {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        match content.strip_prefix("-> ") {
            Some(target) => std::os::unix::fs::symlink(target, &path).expect("symlink"),
            None => fs::write(&path, content).expect("write"),
        }
    }
}

struct Outcome {
    tree: BTreeMap<String, String>,
    log: String,
    status: i32,
}

fn run_case(case: &Path) -> Outcome {
    let tmp = tempfile::tempdir().expect("tempdir");
    let instances = tmp.path().join("instances.d");
    let input = case.join("in");
    if input.exists() {
        copy_tree(&input, &instances);
        apply_setup(case, &instances);
        let overrides: BTreeMap<String, u64> = fs::read_to_string(case.join("mtimes"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(f, s)| (f.to_string(), s.trim().parse().expect("mtime seconds")))
            .collect();
        set_mtimes(&instances, &overrides);
    }
    let sysnet = tmp.path().join("sys-class-net");
    fs::create_dir_all(&sysnet).expect("mkdir");
    for bridge in fs::read_to_string(case.join("running"))
        .unwrap_or_default()
        .split_whitespace()
    {
        fs::create_dir(sysnet.join(bridge)).expect("fake bridge");
    }
    let manifest = case.join("manifest.toml");
    let manifest = if manifest.exists() {
        manifest
    } else {
        tmp.path().join("no-admin-manifest")
    };
    let out = tmp.path().join("normal");
    fs::create_dir(&out).expect("mkdir out");

    let result = Command::new(env!("CARGO_BIN_EXE_dockyard-generator"))
        .arg(&out)
        .env("DOCKYARD_INSTANCES_DIR", &instances)
        .env("DOCKYARD_ARTIFACTS_MANIFEST", &manifest)
        .env("DOCKYARD_SYS_CLASS_NET", &sysnet)
        .env("SYSTEMD_LOG_TARGET", "console")
        .env("SYSTEMD_LOG_LEVEL", "info")
        .env_remove("SYSTEMD_IN_INITRD")
        .output()
        .expect("run generator");
    let dir = instances.to_string_lossy().into_owned();
    let case_dir = case.to_string_lossy().into_owned();
    let tree = read_tree(&out)
        .into_iter()
        .map(|(k, v)| (k, v.replace(&dir, "@DIR@")))
        .collect();
    Outcome {
        tree,
        log: String::from_utf8_lossy(&result.stderr)
            .replace(&dir, "@DIR@")
            .replace(&case_dir, "@CASE@"),
        status: result.status.code().unwrap_or(-1),
    }
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("DOCKYARD_UPDATE_GOLDEN").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(cases_dir())
        .expect("cases dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the golden cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let got = run_case(case);
        if update {
            write_tree(&case.join("expected"), &got.tree);
            fs::write(case.join("expected.log"), &got.log).expect("write log");
            fs::write(case.join("expected.status"), format!("{}\n", got.status))
                .expect("write status");
            continue;
        }
        let want_tree = read_tree(&case.join("expected"));
        let want_log = fs::read_to_string(case.join("expected.log")).unwrap_or_default();
        let want_status: i32 = fs::read_to_string(case.join("expected.status"))
            .map(|s| s.trim().parse().expect("status"))
            .unwrap_or(0);
        if got.tree != want_tree {
            let want_keys: Vec<_> = want_tree.keys().collect();
            let got_keys: Vec<_> = got.tree.keys().collect();
            let differing: Vec<_> = got
                .tree
                .iter()
                .filter(|(k, v)| want_tree.get(*k) != Some(v))
                .map(|(k, _)| k)
                .collect();
            failures.push(format!("{name}: unit tree differs\n  expected files {want_keys:?}\n  got files      {got_keys:?}\n  differing {differing:?}"));
        }
        if got.log != want_log {
            failures.push(format!(
                "{name}: log differs\n--- expected\n{want_log}--- got\n{}",
                got.log
            ));
        }
        if got.status != want_status {
            failures.push(format!(
                "{name}: exit status {} (expected {want_status})",
                got.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

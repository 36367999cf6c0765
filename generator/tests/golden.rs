//! Golden fixtures, as zram-generator and Podman's Quadlet test
//! themselves: each directory of tests/generator/cases holds a conf dir
//! `in/` and is one of two kinds (tests/generator/README.md says more).
//!
//! - A whole-tree case has `expected.status`: its expected unit tree
//!   `expected/`, log `expected.log` and exit status are compared whole.
//!   Paths of the temporary instances dir are written as @DIR@, of the
//!   case as @CASE@. Kept for a few cases that show everything at once.
//! - An assertion case has none of those: its `in/*.conf` files carry
//!   `## assert-…` lines (comments to the generator) naming only what the
//!   case is about; see [`Assertion`].
//!
//! Optional per-case files, for both kinds:
//! - `mtimes`: `FILE SECONDS` lines; every other conf gets the same base
//!   time, so precedence falls back to names unless a case says otherwise.
//! - `running`: bridge names that count as running (a fake /sys/class/net).
//! - `manifest.toml`: an admin artifacts manifest.
//! - `setup`: files the repo cannot hold: `big NAME BYTES`, `fifo NAME`.
//!
//! `DOCKYARD_UPDATE_GOLDEN=1 cargo test` rewrites the whole-tree cases'
//! expectations (review the diff before committing it); assertion cases
//! are still checked, and are edited by hand.

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
        // No records of this host's instances: a case's running instances
        // are its fake bridges.
        .env("DOCKYARD_STATE_DIR", sysnet.join("no-records"))
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

/// One `## assert-KIND ARGS` line of an assertion case's conf.
///
/// - `assert-failed`: the generator exits 1 (without it, 0).
/// - `assert-files PATH…`: the output tree holds exactly these files and
///   symlinks (all `assert-files` lines of the case together).
/// - `assert-key-is UNIT SECTION KEY VALUE`: the lines for one KEY list its
///   values in order, exactly; VALUE is the rest of the line, with a
///   unit's continuation lines joined by one space.
/// - `assert-key-contains UNIT SECTION KEY TEXT`: some value contains TEXT.
/// - `assert-key-missing UNIT SECTION KEY`.
/// - `assert-last-arg UNIT SECTION KEY ARG`: the key has one value, whose
///   last whitespace-separated word is ARG.
/// - `assert-line UNIT TEXT`: the unit has a line that is exactly TEXT
///   (for comments, such as the header naming the drop-ins).
/// - `assert-stderr-contains TEXT`: a log line contains TEXT. Each log line
///   must be named by one such assertion (no message goes unnoticed), and
///   the assertions of one conf find their lines in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Assertion {
    Failed,
    Files(Vec<String>),
    KeyIs(UnitKey, String),
    KeyContains(UnitKey, String),
    KeyMissing(UnitKey),
    LastArg(UnitKey, String),
    Line(String, String),
    StderrContains(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct UnitKey {
    unit: String,
    section: String,
    key: String,
}

/// An assertion and where it was written, for messages.
#[derive(Debug, Clone)]
struct Located {
    file: String,
    line: usize,
    assertion: Assertion,
}

/// The `## assert-` lines of one conf; an unknown or malformed one, or any
/// other line starting with `##`, is an error, so a typo cannot pass
/// silently.
fn parse_assertions(file: &str, text: &str) -> Result<Vec<Located>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // `##` starts an assertion and nothing else: a misspelt one must
        // not pass as a comment. Plain comments take one `#`.
        if !line.starts_with("##") {
            continue;
        }
        let Some(rest) = line.strip_prefix("## assert-") else {
            return Err(format!(
                "{file}:{}: `##` lines are assertions, and this is none: {line}",
                i + 1
            ));
        };
        let (kind, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let bad = || format!("{file}:{}: malformed assert-{kind}: {line}", i + 1);
        // The first `n` words, then the rest of the line verbatim.
        let words = |n: usize| -> Result<(Vec<String>, String), String> {
            let mut w = Vec::new();
            let mut tail = args;
            for _ in 0..n {
                let t = tail.trim_start();
                let (word, more) = t.split_once(' ').unwrap_or((t, ""));
                if word.is_empty() {
                    return Err(bad());
                }
                w.push(word.to_string());
                tail = more;
            }
            Ok((w, tail.to_string()))
        };
        let key = |w: &[String]| UnitKey {
            unit: w[0].clone(),
            section: w[1].clone(),
            key: w[2].clone(),
        };
        let assertion = match kind {
            "failed" if args.is_empty() => Assertion::Failed,
            "files" if !args.trim().is_empty() => {
                Assertion::Files(args.split_whitespace().map(String::from).collect())
            }
            "key-is" | "key-contains" | "last-arg" => {
                let (w, tail) = words(3)?;
                if tail.is_empty() {
                    return Err(bad());
                }
                match kind {
                    "key-is" => Assertion::KeyIs(key(&w), tail),
                    "key-contains" => Assertion::KeyContains(key(&w), tail),
                    _ => Assertion::LastArg(key(&w), tail),
                }
            }
            "key-missing" => {
                let (w, tail) = words(3)?;
                if !tail.trim().is_empty() {
                    return Err(bad());
                }
                Assertion::KeyMissing(key(&w))
            }
            "line" => {
                let (w, tail) = words(1)?;
                if tail.is_empty() {
                    return Err(bad());
                }
                Assertion::Line(w[0].clone(), tail)
            }
            "stderr-contains" if !args.is_empty() => Assertion::StderrContains(args.to_string()),
            _ => return Err(bad()),
        };
        out.push(Located {
            file: file.to_string(),
            line: i + 1,
            assertion,
        });
    }
    Ok(out)
}

/// Every assertion of a case: from its `in/*.conf` files, by file name.
fn case_assertions(case: &Path) -> Result<Vec<Located>, String> {
    let mut confs: Vec<PathBuf> = fs::read_dir(case.join("in"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    confs.retain(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file());
    confs.sort();
    let mut all = Vec::new();
    for conf in confs {
        let name = conf
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        // Some confs are not text on purpose (binary, Latin-1): no assertions.
        let Ok(text) = fs::read_to_string(&conf) else {
            continue;
        };
        all.extend(parse_assertions(&format!("in/{name}"), &text)?);
    }
    Ok(all)
}

/// The values of each (section, key) of a unit file.
type Values = BTreeMap<(String, String), Vec<String>>;

/// A unit file's values, continuation lines joined by one space, comments
/// left out.
fn unit_values(text: &str) -> Values {
    let mut out = Values::new();
    let mut section = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let mut logical = t.to_string();
        while let Some(head) = logical.strip_suffix('\\') {
            logical = head.trim_end().to_string();
            match lines.next() {
                Some(next) => {
                    logical.push(' ');
                    logical.push_str(next.trim());
                }
                None => break,
            }
        }
        if let Some((k, v)) = logical.split_once('=') {
            out.entry((section.clone(), k.to_string()))
                .or_default()
                .push(v.to_string());
        }
    }
    out
}

/// What is wrong with `got` by the case's assertions; empty when nothing.
fn check_assertions(asserts: &[Located], got: &Outcome) -> Vec<String> {
    let mut failures = Vec::new();
    let at = |a: &Located| format!("{}:{}", a.file, a.line);
    let units: BTreeMap<&str, (&str, Values)> = got
        .tree
        .iter()
        .map(|(k, v)| (k.as_str(), (v.as_str(), unit_values(v))))
        .collect();
    // The values of a key; None when the unit itself is not there.
    let values = |k: &UnitKey| -> Option<Vec<String>> {
        units.get(k.unit.as_str()).map(|(_, v)| {
            v.get(&(k.section.clone(), k.key.clone()))
                .cloned()
                .unwrap_or_default()
        })
    };

    // Exit status.
    let want_failed = asserts.iter().any(|a| a.assertion == Assertion::Failed);
    let want_status = i32::from(want_failed);
    if got.status != want_status {
        failures.push(format!(
            "exit status {} (expected {want_status}{})",
            got.status,
            if want_failed {
                ": assert-failed"
            } else {
                ": no assert-failed"
            }
        ));
    }

    // The file set.
    let files: Vec<&Located> = asserts
        .iter()
        .filter(|a| matches!(a.assertion, Assertion::Files(_)))
        .collect();
    if !files.is_empty() {
        let mut want: Vec<String> = files
            .iter()
            .flat_map(|a| match &a.assertion {
                Assertion::Files(f) => f.clone(),
                _ => Vec::new(),
            })
            .collect();
        want.sort();
        let have: Vec<String> = got.tree.keys().cloned().collect();
        if want != have {
            failures.push(format!(
                "{}: assert-files: expected {want:?}, got {have:?}",
                at(files[0])
            ));
        }
    }

    // Keys: all assert-key-is lines of one key together are its values.
    let mut key_is: BTreeMap<UnitKey, (Vec<String>, &Located)> = BTreeMap::new();
    for a in asserts {
        if let Assertion::KeyIs(k, v) = &a.assertion {
            key_is
                .entry(k.clone())
                .or_insert_with(|| (Vec::new(), a))
                .0
                .push(v.clone());
        }
    }
    for (k, (want, a)) in &key_is {
        match values(k) {
            None => failures.push(format!("{}: assert-key-is: no unit {}", at(a), k.unit)),
            Some(have) if &have != want => failures.push(format!(
                "{}: assert-key-is {} [{}] {}: expected {want:?}, got {have:?}",
                at(a),
                k.unit,
                k.section,
                k.key
            )),
            Some(_) => {}
        }
    }
    for a in asserts {
        let fail = |what: String| format!("{}: {what}", at(a));
        match &a.assertion {
            Assertion::KeyContains(k, text) => match values(k) {
                None => failures.push(fail(format!("assert-key-contains: no unit {}", k.unit))),
                Some(have) if !have.iter().any(|v| v.contains(text.as_str())) => failures.push(
                    fail(format!(
                        "assert-key-contains {} [{}] {}: no value contains {text:?}; values {have:?}",
                        k.unit, k.section, k.key
                    )),
                ),
                Some(_) => {}
            },
            Assertion::KeyMissing(k) => match values(k) {
                None => failures.push(fail(format!("assert-key-missing: no unit {}", k.unit))),
                Some(have) if !have.is_empty() => failures.push(fail(format!(
                    "assert-key-missing {} [{}] {}: it is there: {have:?}",
                    k.unit, k.section, k.key
                ))),
                Some(_) => {}
            },
            Assertion::LastArg(k, arg) => match values(k) {
                None => failures.push(fail(format!("assert-last-arg: no unit {}", k.unit))),
                Some(have) => {
                    let last = match have.as_slice() {
                        [one] => one.split_whitespace().last(),
                        _ => None,
                    };
                    if last != Some(arg.as_str()) {
                        failures.push(fail(format!(
                            "assert-last-arg {} [{}] {}: expected one value ending in {arg:?}, got {have:?}",
                            k.unit, k.section, k.key
                        )));
                    }
                }
            },
            Assertion::Line(unit, text) => match units.get(unit.as_str()) {
                None => failures.push(fail(format!("assert-line: no unit {unit}"))),
                Some((raw, _)) if !raw.lines().any(|l| l == text) => {
                    failures.push(fail(format!("assert-line {unit}: no line {text:?}")))
                }
                Some(_) => {}
            },
            _ => {}
        }
    }

    // The log: every line named, in order within each conf.
    let lines: Vec<&str> = got.log.lines().filter(|l| !l.is_empty()).collect();
    let mut claimed = vec![false; lines.len()];
    let mut by_file: BTreeMap<&str, Vec<(&Located, &str)>> = BTreeMap::new();
    for a in asserts {
        if let Assertion::StderrContains(text) = &a.assertion {
            by_file.entry(&a.file).or_default().push((a, text));
        }
    }
    for asserts in by_file.values() {
        let mut from = 0;
        for (a, text) in asserts {
            match (from..lines.len()).find(|&i| !claimed[i] && lines[i].contains(*text)) {
                Some(i) => {
                    claimed[i] = true;
                    from = i + 1;
                }
                None if lines.iter().any(|l| l.contains(*text)) => failures.push(format!(
                    "{}: assert-stderr-contains: {text:?} is logged, but not after the line the assertion above it names (or only once for two assertions)",
                    at(a)
                )),
                None => failures.push(format!(
                    "{}: assert-stderr-contains: no log line contains {text:?}",
                    at(a)
                )),
            }
        }
    }
    for (line, seen) in lines.iter().zip(&claimed) {
        if !seen {
            failures.push(format!(
                "a log line no assert-stderr-contains names: {line}"
            ));
        }
    }
    failures
}

fn case_name(case: &Path) -> String {
    case.file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned()
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
    let (mut whole, mut asserted) = (0, 0);
    for case in &cases {
        let name = case_name(case);
        let asserts = match case_assertions(case) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let whole_tree = case.join("expected.status").exists();
        match (whole_tree, asserts.is_empty()) {
            (true, false) => {
                failures.push(format!(
                    "{name}: has both expected.status and ## assert- lines; a case is one kind"
                ));
                continue;
            }
            (false, true) => {
                failures.push(format!(
                    "{name}: has neither expected.status nor ## assert- lines"
                ));
                continue;
            }
            _ => {}
        }
        let got = run_case(case);
        if !whole_tree {
            asserted += 1;
            failures.extend(
                check_assertions(&asserts, &got)
                    .into_iter()
                    .map(|f| format!("{name}/{f}")),
            );
            continue;
        }
        whole += 1;
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
        whole >= 3 && asserted >= 10,
        "expected both kinds of case: {whole} whole-tree, {asserted} assertion"
    );
    assert!(
        failures.is_empty(),
        "{} golden check(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The checks can fail: each wrong assertion below, against a real run of
/// a case, is reported, and so is a log line or an exit status no
/// assertion accounts for.
#[test]
fn assertions_catch_what_is_wrong() {
    let case = cases_dir().join("runc-only");
    let mut got = run_case(&case);
    let own = case_assertions(&case).expect("assertions");
    assert!(!own.is_empty());
    assert_eq!(check_assertions(&own, &got), Vec::<String>::new());

    let wrong = [
        ("## assert-key-is web_docker.service Service Type simple", "expected [\"simple\"]"),
        ("## assert-key-is web_docker.service Unit After network-online.target nss-lookup.target firewalld.service time-set.target", "got [\"network-online.target"),
        ("## assert-key-is nosuch.service Service Type notify", "no unit nosuch.service"),
        ("## assert-key-contains web_docker.service Service ExecStart --default-runtime", "no value contains"),
        ("## assert-key-missing web_docker.service Service Type", "it is there"),
        ("## assert-last-arg web_docker.service Service ExecStart --ip-masq=false", "ending in"),
        ("## assert-last-arg web_docker.service Service ExecStartPre up", "ending in"),
        ("## assert-line web_docker.service # not in the unit", "no line"),
        ("## assert-files web_docker.service", "assert-files: expected"),
        ("## assert-stderr-contains warning: nothing of the sort", "no log line contains"),
        ("## assert-failed", "exit status 0 (expected 1"),
    ];
    for (line, want) in wrong {
        let mut asserts = own.clone();
        asserts.extend(parse_assertions("in/extra.conf", line).expect(line));
        let failures = check_assertions(&asserts, &got);
        assert!(
            failures.iter().any(|f| f.contains(want)),
            "{line}: expected a failure containing {want:?}, got {failures:?}"
        );
    }

    // Malformed or unknown assertions are errors, not ignored lines.
    for line in [
        "## assert-key-is web_docker.service Service",
        "## assert-keyis web_docker.service Service Type notify",
        "## asert-failed",
        "## assert-failed now",
        "## assert-files",
        "## assert-stderr-contains",
    ] {
        assert!(parse_assertions("in/x.conf", line).is_err(), "{line}");
    }

    // A message nobody asserted, and a status nobody expected.
    got.log
        .push_str("dockyard-generator: @DIR@/web.conf: warning: unexpected\n");
    got.status = 1;
    let failures = check_assertions(&own, &got);
    assert!(
        failures
            .iter()
            .any(|f| f.contains("no assert-stderr-contains names")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|f| f.contains("exit status 1 (expected 0")),
        "{failures:?}"
    );

    // The assertions of one conf find their lines in order.
    got.log = "dockyard-generator: b\ndockyard-generator: a\n".into();
    got.status = 0;
    let ordered = parse_assertions(
        "in/web.conf",
        "## assert-stderr-contains a\n## assert-stderr-contains b\n",
    )
    .expect("parse");
    let failures = check_assertions(&ordered, &got);
    assert!(
        failures.iter().any(|f| f.contains("not after the line")),
        "{failures:?}"
    );
}

#[test]
fn unit_values_join_continuations() {
    let v = unit_values(
        "# c\n[Unit]\nAfter=a b\nAfter=c\n\n[Service]\nExecStart=/bin/x \\\n\t--one 1 \\\n\t--two\nType=notify\n",
    );
    assert_eq!(v[&("Unit".into(), "After".into())], ["a b", "c"]);
    assert_eq!(
        v[&("Service".into(), "ExecStart".into())],
        ["/bin/x --one 1 --two"]
    );
    assert_eq!(v[&("Service".into(), "Type".into())], ["notify"]);
}

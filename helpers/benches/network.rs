//! Benchmark: `dockyard-helper network up|down` side by side with the bash
//! tool's sequence for the same job, each run in a fresh network namespace.
//!
//! `cargo bench --locked -p dockyard-helpers --bench network` (or `make
//! bench`). Needs root; without it, it says so and exits 0. Not a test: it
//! prints a Markdown table for PERFORMANCE.md.
//!
//! Method. Every run gets its own namespace (`ip netns add dybench-PID-N`,
//! untimed), and the timed part is exactly one command spawned straight into
//! it (the benchmark thread joins the namespace for the spawn), spawn to
//! exit, for both contenders: what a unit's `ExecStartPre=` costs, without
//! the start-up of an `nsenter` that production never runs. Per iteration: helper `up` in namespace A, bash
//! `up` in namespace B, helper `down` in A, bash `down` in B (so `down`
//! always tears down what the same tool brought up), then both namespaces
//! are deleted. Every `up` is checked afterwards (bridge with its address
//! and UP, `ip_forward` = 1, rules tagged `dockyard:bn1` in `filter` and
//! `nat` of `iptables-save`: the bash tool's seven for the bash sequence,
//! the two masquerade rules for the helper, and for both the same tagged
//! lines in every run), and every `down` too (bridge and tagged lines
//! gone), so a contender that skips work cannot look fast. Everything happens inside
//! the private namespaces with addresses in 172.22.0.0/16 and
//! 172.23.0.0/16; nothing is sent anywhere and the host's own interfaces,
//! sysctls and rules are never touched.
//!
//! The helper runs once per firewall backend (`[Firewall] Backend=` in a
//! host policy file of the benchmark's own): iptables (checked in
//! `iptables-save` as above) and nftables (checked in `nft list ruleset`:
//! the instance's masquerade table, its set elements and host accepts).
//! Both are compared with the same bash sequence; the bash tool only ever
//! spoke iptables, and that is what a user would otherwise run.
//!
//! `DOCKYARD_BENCH_HELPER=/path/to/dockyard-helper` measures another build
//! (e.g. an older commit) instead of this workspace's release binary.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const WARMUP: usize = 3;
const RUNS: usize = 25;
/// Quiet time before every timed command, and after deleting an
/// iteration's namespaces: the kernel tears a namespace down asynchronously
/// (under the global RTNL lock), which must not land in a measurement.
const GAP: Duration = Duration::from_millis(30);
const SETTLE: Duration = Duration::from_millis(150);
const NS_PREFIX: &str = "dybench-";

/// The instance the benchmark brings up, in every namespace.
struct Net {
    instance: &'static str,
    bridge: &'static str,
    bridge_cidr: &'static str,
    fixed: &'static str,
    pool: &'static str,
}

const NET: Net = Net {
    instance: "bn1",
    bridge: "bn1_docker0",
    bridge_cidr: "172.22.147.1/24",
    fixed: "172.22.147.0/24",
    pool: "172.23.0.0/16",
};

/// The helper's command line for `action` (`up` or `down`). The one place
/// to update when `dockyard-network` gains options.
fn helper_args(action: &str) -> Vec<String> {
    let n = &NET;
    [
        "network",
        action,
        "--instance",
        n.instance,
        "--bridge",
        n.bridge,
        "--bridge-cidr",
        n.bridge_cidr,
        "--fixed-cidr",
        n.fixed,
        "--pool",
        n.pool,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A firewall rule: table, chain, match and target.
struct Rule {
    table: &'static str,
    chain: &'static str,
    spec: String,
    target: &'static str,
}

impl Rule {
    fn new(table: &'static str, chain: &'static str, spec: String, target: &'static str) -> Rule {
        Rule {
            table,
            chain,
            spec,
            target,
        }
    }

    /// As `iptables-save` prints it, without `-A CHAIN` and the comment.
    fn words(&self) -> Vec<String> {
        format!("{} -j {}", self.spec, self.target)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

/// The bash tool's seven rules.
fn bash_rules() -> Vec<Rule> {
    let (br, fixed, pool) = (NET.bridge, NET.fixed, NET.pool);
    vec![
        Rule::new("filter", "FORWARD", format!("-i {br} -o {br}"), "ACCEPT"),
        Rule::new("filter", "FORWARD", format!("-i {br} ! -o {br}"), "ACCEPT"),
        Rule::new(
            "filter",
            "FORWARD",
            format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED"),
            "ACCEPT",
        ),
        Rule::new("filter", "FORWARD", format!("-s {pool}"), "ACCEPT"),
        Rule::new("filter", "FORWARD", format!("-d {pool}"), "ACCEPT"),
        Rule::new(
            "nat",
            "POSTROUTING",
            format!("-s {fixed} ! -o {br}"),
            "MASQUERADE",
        ),
        Rule::new(
            "nat",
            "POSTROUTING",
            format!("-s {pool} ! -d {pool}"),
            "MASQUERADE",
        ),
    ]
}

/// What the helper must have written whatever its filter layout (which
/// changes between versions, e.g. with the isolation rules): the two
/// masquerade rules. Its filter rules are checked against its own first run.
fn helper_required_rules() -> Vec<Rule> {
    bash_rules()
        .into_iter()
        .filter(|r| r.table == "nat")
        .collect()
}

fn tag() -> String {
    format!("dockyard:{}", NET.instance)
}

/// The bash tool's `ExecStartPre=` (bring-up) or `ExecStopPost=` plus the
/// bridge's removal (teardown), as one script of the real commands.
fn bash_script(action: &str) -> String {
    let n = &NET;
    let mut s = format!(
        "#!/bin/bash\n# The bash tool's network {action} for instance {}, as separate commands.\nset -e\n",
        n.instance
    );
    let iptables = |op: &str| {
        bash_rules()
            .into_iter()
            .map(
                |Rule {
                     table,
                     chain,
                     spec,
                     target,
                 }| {
                    let t = if table == "filter" {
                        String::new()
                    } else {
                        format!(" -t {table}")
                    };
                    format!(
                        "iptables -w{t} {op} {chain} {spec} -m comment --comment {} -j {target}\n",
                        tag()
                    )
                },
            )
            .collect::<String>()
    };
    if action == "up" {
        s.push_str("sysctl -w net.ipv4.ip_forward=1\n");
        s.push_str(&format!("ip link add {} type bridge\n", n.bridge));
        s.push_str(&format!("ip addr add {} dev {}\n", n.bridge_cidr, n.bridge));
        s.push_str(&format!("ip link set {} up\n", n.bridge));
        s.push_str(&iptables("-I"));
    } else {
        s.push_str(&iptables("-D"));
        s.push_str(&format!("ip link del {}\n", n.bridge));
    }
    s
}

type Res<T> = Result<T, String>;

/// A throw-away network namespace.
struct Ns {
    name: String,
    path: PathBuf,
}

/// Every namespace this run created; whatever is left is deleted on drop,
/// also when a run fails or panics.
struct Namespaces {
    live: Vec<String>,
    next: u32,
}

impl Namespaces {
    fn new() -> Namespaces {
        Namespaces {
            live: Vec::new(),
            next: 0,
        }
    }

    fn create(&mut self) -> Res<Ns> {
        let name = format!("{NS_PREFIX}{}-{}", std::process::id(), self.next);
        self.next += 1;
        output(Command::new("ip").args(["netns", "add", &name]))?;
        self.live.push(name.clone());
        Ok(Ns {
            path: Path::new("/run/netns").join(&name),
            name,
        })
    }

    fn delete(&mut self, ns: Ns) -> Res<()> {
        self.live.retain(|n| *n != ns.name);
        output(Command::new("ip").args(["netns", "delete", &ns.name])).map(drop)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.live.drain(..) {
            let r = Command::new("ip").args(["netns", "delete", &name]).output();
            if !matches!(r, Ok(ref o) if o.status.success()) {
                eprintln!(
                    "network bench: could not delete namespace {name}; run: ip netns delete {name}"
                );
            }
        }
    }
}

/// Namespaces left by an earlier run that was killed (its PID is gone).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("network bench: removing namespace {name} left by an earlier run");
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
        }
    }
}

/// Runs `cmd` to completion; its stdout, or an error naming it with stderr.
fn output(cmd: &mut Command) -> Res<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn in_ns(ns: &Ns, prog: impl Into<OsString>, args: &[String]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", ns.path.display()))
        .arg("--")
        .arg(prog.into())
        .args(args);
    c
}

/// Where a contender's rules are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checked {
    Iptables,
    Nftables,
}

/// One contender: how to run `up` and `down` inside a namespace.
struct Contender {
    label_up: String,
    label_down: String,
    prog: OsString,
    required: Vec<Rule>,
    up: Vec<String>,
    down: Vec<String>,
    /// The host policy file the helper is given (none for bash).
    host_conf: Option<PathBuf>,
    checked: Checked,
}

struct Bench<'a> {
    state_dir: &'a Path,
}

impl Bench<'_> {
    /// Wall time from spawn to exit of CMD run inside `ns`. The process is
    /// spawned straight into the namespace, as systemd spawns a unit's
    /// `ExecStartPre=` command in the host's: this thread joins the
    /// namespace for the spawn and goes back to its own right after, so no
    /// `nsenter` start-up is in either contender's figure.
    fn time(&self, ns: &Ns, c: &Contender, args: &[String]) -> Res<Duration> {
        let mut cmd = Command::new(&c.prog);
        if let Some(conf) = &c.host_conf {
            cmd.env("DOCKYARD_HOST_CONF", conf);
        }
        cmd.args(args)
            .env("DOCKYARD_LOG", "stderr")
            // One state directory per contender: each is a host of its own,
            // and the record of one backend must not steer the other.
            .env("DOCKYARD_STATE_DIR", self.state_dir.join(&c.label_up))
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let target = fs::File::open(&ns.path)
            .map_err(|e| format!("cannot open {}: {e}", ns.path.display()))?;
        let home = fs::File::open("/proc/thread-self/ns/net")
            .map_err(|e| format!("cannot open this thread's network namespace: {e}"))?;
        sleep(GAP);
        enter(&target, &ns.path)?;
        let start = Instant::now();
        let spawned = cmd.spawn();
        // Back before anything else can fail: every other command of the
        // benchmark must run in the host's namespace.
        enter(&home, Path::new("/proc/thread-self/ns/net"))?;
        let out = spawned
            .and_then(|c| c.wait_with_output())
            .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
        let took = start.elapsed();
        if !out.status.success() {
            return Err(format!(
                "{cmd:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(took)
    }
}

/// Moves this thread into the network namespace `ns` (an open nsfs file).
fn enter(ns: &fs::File, what: &Path) -> Res<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns takes a file descriptor we own and a flag; it changes
    // only this thread's network namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "cannot enter the network namespace {}: {}",
            what.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The words of an `iptables-save` rule without `-A CHAIN` and without the
/// comment match (iptables-nft quotes the comment, legacy does not).
fn rule_words(line: &str) -> Vec<String> {
    let mut w: Vec<String> = line
        .split_whitespace()
        .skip(2)
        .map(|s| s.trim_matches('"').to_string())
        .collect();
    while let Some(i) = w
        .windows(4)
        .position(|x| x[0] == "-m" && x[1] == "comment" && x[2] == "--comment")
    {
        w.drain(i..i + 4);
    }
    w
}

/// Output of `prog args…` run inside `ns` (untimed checks).
fn ns_output(ns: &Ns, prog: &str, args: &[&str]) -> Res<String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    output(&mut in_ns(ns, prog, &args))
}

/// Checks what `up` must have done in `ns`: the bridge UP with its
/// address, forwarding on, tagged rules in `filter` and in `nat` and among
/// them every rule in `required`. Returns the tagged lines.
/// The bridge with its address and UP, and forwarding on.
fn verify_link(ns: &Ns) -> Res<()> {
    let n = &NET;
    let link = ns_output(ns, "ip", &["-d", "-o", "link", "show", "dev", n.bridge])?;
    let flags = link.split(['<', '>']).nth(1).unwrap_or("");
    if !link.contains(" bridge ") || !flags.split(',').any(|f| f == "UP") {
        return Err(format!("{} is not an UP bridge: {}", n.bridge, link.trim()));
    }
    let addr = ns_output(ns, "ip", &["-4", "-o", "addr", "show", "dev", n.bridge])?;
    if !addr.contains(&format!("inet {} ", n.bridge_cidr)) {
        return Err(format!(
            "{} lacks {}: {}",
            n.bridge,
            n.bridge_cidr,
            addr.trim()
        ));
    }
    let fwd = ns_output(ns, "cat", &["/proc/sys/net/ipv4/ip_forward"])?;
    if fwd.trim() != "1" {
        return Err(format!("net.ipv4.ip_forward is {}", fwd.trim()));
    }
    Ok(())
}

fn verify_up(ns: &Ns, required: &[Rule]) -> Res<Vec<Tagged>> {
    verify_link(ns)?;
    let save = ns_output(ns, "iptables-save", &[])?;
    let tagged = tagged_rules(&save);
    for table in ["filter", "nat"] {
        if !tagged.iter().any(|t| t.table == table) {
            return Err(format!("no rule tagged {} in table {table}\n{save}", tag()));
        }
    }
    for r in required {
        let want = r.words();
        if !tagged.iter().any(|t| t.table == r.table && t.words == want) {
            return Err(format!(
                "no rule tagged {} in table {}: {} -j {}\n{save}",
                tag(),
                r.table,
                r.spec,
                r.target
            ));
        }
    }
    Ok(tagged)
}

/// One tagged `iptables-save` line: table, chain and the rule's words
/// without the comment match.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Tagged {
    table: String,
    chain: String,
    words: Vec<String>,
}

/// Every line tagged `dockyard:INSTANCE`, in the order `iptables-save` prints them.
fn tagged_rules(save: &str) -> Vec<Tagged> {
    let tag = tag();
    let mut table = String::new();
    let mut rules = Vec::new();
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
        } else if line.starts_with("-A ")
            && line.split_whitespace().any(|w| w.trim_matches('"') == tag)
        {
            rules.push(Tagged {
                table: table.clone(),
                chain: line.split_whitespace().nth(1).unwrap_or("").to_string(),
                words: rule_words(line),
            });
        }
    }
    rules
}

/// The lines of `nft list ruleset` that carry the instance's tag, plus
/// its own table's header: what the nftables backend put in place.
fn nft_tagged(ns: &Ns) -> Res<Vec<Tagged>> {
    let listed = ns_output(ns, "nft", &["list", "ruleset"])?;
    let tag = format!("\"{}\"", tag());
    let table = format!("table inet dockyard-{} {{", NET.instance);
    Ok(listed
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(&tag) || *l == table)
        .map(|l| Tagged {
            table: "nft".into(),
            chain: String::new(),
            // Counters change as packets pass; they are not the rule.
            words: l
                .split_whitespace()
                .scan(0, |skip, w| {
                    if *skip > 0 {
                        *skip -= 1;
                        return Some(None);
                    }
                    if w == "packets" || w == "bytes" {
                        *skip = 1;
                        return Some(None);
                    }
                    Some(Some(w.to_string()))
                })
                .flatten()
                .collect(),
        })
        .collect())
}

fn verify_up_nft(ns: &Ns) -> Res<Vec<Tagged>> {
    verify_link(ns)?;
    let tagged = nft_tagged(ns)?;
    let has = |needle: &str| tagged.iter().any(|t| t.words.join(" ").contains(needle));
    for want in [
        format!("table inet dockyard-{} {{", NET.instance),
        format!(
            "ip saddr {} oifname != \"{}\" masquerade",
            NET.fixed, NET.bridge
        ),
        format!("ip saddr {} ip daddr != {} masquerade", NET.pool, NET.pool),
        format!("{} comment", NET.pool),
        format!("ip daddr {} counter accept", NET.pool),
    ] {
        if !has(&want) {
            return Err(format!("nft ruleset lacks {want:?}"));
        }
    }
    Ok(tagged)
}

fn verify_down_nft(ns: &Ns) -> Res<()> {
    verify_no_bridge(ns)?;
    let left = nft_tagged(ns)?.len();
    if left != 0 {
        return Err(format!("{left} nft lines of {} remain", tag()));
    }
    Ok(())
}

fn verify_no_bridge(ns: &Ns) -> Res<()> {
    let links = ns_output(ns, "ip", &["-o", "link", "show"])?;
    if links
        .lines()
        .any(|l| l.split(':').nth(1).map(str::trim) == Some(NET.bridge))
    {
        return Err(format!("bridge {} still exists", NET.bridge));
    }
    Ok(())
}

/// Checks that `down` removed the bridge and every tagged line.
fn verify_down(ns: &Ns) -> Res<()> {
    verify_no_bridge(ns)?;
    let save = ns_output(ns, "iptables-save", &[])?;
    let left = tagged_rules(&save).len();
    if left != 0 {
        return Err(format!("{left} lines tagged {} remain\n{save}", tag()));
    }
    Ok(())
}

#[derive(Default)]
struct Samples {
    up: Vec<Duration>,
    down: Vec<Duration>,
    /// The tagged lines of the first `up`, sorted: every later `up` must
    /// leave exactly these.
    reference: Option<Vec<Tagged>>,
}

struct Stats {
    min: f64,
    median: f64,
    p90: f64,
}

fn stats(v: &[Duration]) -> Stats {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    // Nearest rank.
    let p90 = ms[(n * 9).div_ceil(10) - 1];
    Stats {
        min: ms[0],
        median,
        p90,
    }
}

fn ratio(baseline: f64, ours: f64) -> String {
    if ours <= baseline {
        format!("{:.1}x faster", baseline / ours)
    } else {
        format!("{:.1}x slower", ours / baseline)
    }
}

fn find_tool(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| d.join(name).is_file())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The release helper: `DOCKYARD_BENCH_HELPER`, else
/// `$CARGO_TARGET_DIR/release/dockyard-helper`, else the workspace's
/// `target/release/dockyard-helper`; built when missing.
fn helper_binary() -> Res<PathBuf> {
    if let Some(p) = std::env::var_os("DOCKYARD_BENCH_HELPER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "DOCKYARD_BENCH_HELPER={}: no such file",
                p.display()
            ))
        };
    }
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    let bin = target.join("release").join("dockyard-helper");
    if !bin.is_file() {
        eprintln!("network bench: {} missing, building it", bin.display());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "dockyard-helpers",
                "--bin",
                "dockyard-helper",
            ])
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cannot run cargo build: {e}"))?;
        if !status.success() || !bin.is_file() {
            return Err(format!(
                "cargo build of {} failed ({status})",
                bin.display()
            ));
        }
    }
    bin.canonicalize()
        .map_err(|e| format!("{}: {e}", bin.display()))
}

fn run() -> Res<()> {
    let helper = helper_binary()?;
    let iptables_version = output(Command::new("iptables").arg("--version"))?;
    // The helper records its state in /run/dockyard, a tmpfs on every
    // systemd host; a record on disk would add fsync time the real helper
    // never pays. /dev/shm is the tmpfs every Linux host has.
    let tmpfs = Path::new("/dev/shm");
    let state = tempfile::Builder::new()
        .prefix("dybench-state-")
        .tempdir_in(if tmpfs.is_dir() {
            tmpfs
        } else {
            Path::new("/tmp")
        })
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let mut scripts = Vec::new();
    for action in ["up", "down"] {
        let path = state.path().join(format!("bash-{action}.sh"));
        fs::write(&path, bash_script(action))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        scripts.push(path.display().to_string());
    }
    let helper_state = state.path().join("state");
    let bench = Bench {
        state_dir: &helper_state,
    };
    let host_conf = |backend: &str| -> Res<PathBuf> {
        let p = state.path().join(format!("host-{backend}.conf"));
        fs::write(&p, format!("[Firewall]\nBackend={backend}\n"))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        Ok(p)
    };
    let mut contenders = vec![Contender {
        label_up: "bash sequence: `sysctl` + 3 `ip` + 7 `iptables -I`".into(),
        label_down: "bash sequence: 7 `iptables -D` + `ip link del`".into(),
        prog: "bash".into(),
        required: bash_rules(),
        up: vec![scripts[0].clone()],
        down: vec![scripts[1].clone()],
        host_conf: None,
        checked: Checked::Iptables,
    }];
    let mut who = vec!["bash sequence"];
    let with_nft = find_tool("nft");
    for (backend, checked) in [
        ("iptables", Checked::Iptables),
        ("nftables", Checked::Nftables),
    ] {
        if checked == Checked::Nftables && !with_nft {
            println!("network bench: nftables contender SKIPPED, nft is not installed");
            continue;
        }
        contenders.push(Contender {
            label_up: format!("`dockyard-helper network up`, {backend}"),
            label_down: format!("`dockyard-helper network down`, {backend}"),
            prog: helper.clone().into(),
            required: helper_required_rules(),
            up: helper_args("up"),
            down: helper_args("down"),
            host_conf: Some(host_conf(backend)?),
            checked,
        });
        who.push(if checked == Checked::Iptables {
            "helper (iptables)"
        } else {
            "helper (nftables)"
        });
    }

    remove_stale_namespaces();
    let mut spaces = Namespaces::new();
    let mut samples: Vec<Samples> = contenders.iter().map(|_| Samples::default()).collect();
    for iteration in 0..WARMUP + RUNS {
        let ns: Vec<Ns> = (0..contenders.len())
            .map(|_| spaces.create())
            .collect::<Res<_>>()?;
        let mut up = Vec::new();
        for (i, c) in contenders.iter().enumerate() {
            up.push(bench.time(&ns[i], c, &c.up)?);
            let verified = match c.checked {
                Checked::Iptables => verify_up(&ns[i], &c.required),
                Checked::Nftables => verify_up_nft(&ns[i]),
            };
            let mut tagged = verified
                .map_err(|e| format!("{} up in {} did not do its job: {e}", who[i], ns[i].name))?;
            tagged.sort();
            match &samples[i].reference {
                None => samples[i].reference = Some(tagged),
                Some(r) if *r != tagged => {
                    return Err(format!(
                        "{} up in {} left {} tagged lines, not the {} of its first run (or different ones)",
                        who[i],
                        ns[i].name,
                        tagged.len(),
                        r.len()
                    ))
                }
                Some(_) => {}
            }
        }
        let mut down = Vec::new();
        for (i, c) in contenders.iter().enumerate() {
            down.push(bench.time(&ns[i], c, &c.down)?);
            let verified = match c.checked {
                Checked::Iptables => verify_down(&ns[i]),
                Checked::Nftables => verify_down_nft(&ns[i]),
            };
            verified.map_err(|e| {
                format!("{} down in {} did not do its job: {e}", who[i], ns[i].name)
            })?;
        }
        for n in ns {
            spaces.delete(n)?;
        }
        if iteration >= WARMUP {
            for i in 0..contenders.len() {
                samples[i].up.push(up[i]);
                samples[i].down.push(down[i]);
            }
        }
        sleep(SETTLE);
    }
    drop(spaces);

    // Other work on the machine (a build) shows up as spread: say how busy it was.
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{}; kernel {}; load average {}; {RUNS} runs each after {WARMUP} warm-ups, interleaved, each spawned straight into a fresh network namespace",
        iptables_version.trim(),
        output(Command::new("uname").arg("-r"))?.trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("helper: {}", helper.display());
    println!();
    if with_nft {
        println!("{}", output(Command::new("nft").arg("--version"))?.trim());
    }
    println!();
    println!("| case | tagged lines | min ms | median ms | p90 ms | median vs bash sequence |");
    println!("|---|---|---|---|---|---|");
    let lines = |s: &Samples, action: &str| {
        let t = s.reference.as_ref().map_or(0, Vec::len);
        if action == "up" {
            format!("{t}")
        } else {
            format!("{t} → 0")
        }
    };
    for action in ["up", "down"] {
        let pick = |s: &Samples| {
            if action == "up" {
                s.up.clone()
            } else {
                s.down.clone()
            }
        };
        let base = stats(&pick(&samples[0]));
        for (i, c) in contenders.iter().enumerate() {
            let o = stats(&pick(&samples[i]));
            let label = if action == "up" {
                &c.label_up
            } else {
                &c.label_down
            };
            let vs = if i == 0 {
                "1.0x (baseline)".to_string()
            } else {
                ratio(base.median, o.median)
            };
            println!(
                "| {action}: {label} | {} | {:.2} | {:.2} | {:.2} | {vs} |",
                lines(&samples[i], action),
                o.min,
                o.median,
                o.p90
            );
        }
    }
    Ok(())
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        println!("network bench: SKIPPED, needs root (creates network namespaces with bridges and iptables rules)");
        return;
    }
    // Both contenders inherit this priority: on a machine busy with builds
    // they then compete less with those than with each other. The figures
    // stay a comparison of the two, measured side by side.
    // SAFETY: setpriority takes plain integers and only changes this
    // process's scheduling priority.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -15) } != 0 {
        eprintln!(
            "network bench: could not raise the priority; figures are noisier on a busy machine"
        );
    }
    let missing: Vec<&str> = [
        "ip",
        "iptables",
        "iptables-save",
        "sysctl",
        "nsenter",
        "bash",
    ]
    .into_iter()
    .filter(|t| !find_tool(t))
    .collect();
    if !missing.is_empty() {
        println!("network bench: SKIPPED, missing {}", missing.join(", "));
        return;
    }
    if let Err(e) = run() {
        eprintln!("network bench: {e}");
        std::process::exit(1);
    }
}

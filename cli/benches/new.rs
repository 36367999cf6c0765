//! Benchmark: `dockyard new` in an instances directory of 1000 confs
//! against `dockyard new` in an empty one, side by side: what the
//! thousandth instance costs beyond the first. Wall time from spawn to
//! exit of the release binary, the runs interleaved so both see the same
//! page cache and CPU state; the conf written is removed after each run so
//! every run sees the same directory. Reads the real host's routes over
//! netlink, as `new` does. Not a test: it prints figures (PERFORMANCE.md).
//!
//! Goal (issue 11): well under 100 ms with 1000 confs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFS: usize = 1000;
const RUNS: usize = 21;

struct Dir {
    instances: PathBuf,
    lock: PathBuf,
}

/// An instances directory holding `n` confs laid out as `new`'s default
/// plan would have written them: bridge i in 10.200.0.0/13, pool i in
/// 10.128.0.0/10.
fn directory(base: &Path, label: &str, n: usize) -> Dir {
    let instances = base.join(label).join("instances.d");
    std::fs::create_dir_all(&instances).expect("mkdir");
    for i in 0..n as u32 {
        let bridge = std::net::Ipv4Addr::from(0x0ac8_0001 + (i << 8));
        let pool = std::net::Ipv4Addr::from(0x0a80_0000 + (i << 11));
        let text = format!(
            "[Instance]\nRoot=/srv/dockyard-bench-{pid}/b{i}\nBridgeCIDR={bridge}/24\nPoolBase={pool}/21\nRuntime=runc\n",
            pid = std::process::id()
        );
        std::fs::write(instances.join(format!("b{i}.conf")), text).expect("write conf");
    }
    Dir {
        instances,
        lock: base.join(label).join("new.lock"),
    }
}

fn run_new(dir: &Dir, host_conf: &Path, net: &Path) -> Duration {
    let root = format!("/srv/dockyard-bench-{}/zbench", std::process::id());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockyard"));
    cmd.args(["new", "zbench", "--root", &root, "--runtime", "runc"])
        .env("DOCKYARD_INSTANCES_DIR", &dir.instances)
        .env("DOCKYARD_NEW_LOCK", &dir.lock)
        .env("DOCKYARD_HOST_CONF", host_conf)
        .env("DOCKYARD_SYS_CLASS_NET", net)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.output().expect("run dockyard new");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "dockyard new failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(dir.instances.join("zbench.conf")).expect("remove the new conf");
    took
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(v: &mut [Duration]) -> Duration {
    v.sort();
    v[(v.len() * 9) / 10]
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    std::fs::create_dir(&net).expect("mkdir");
    let host_conf = tmp.path().join("no-dockyard.conf");
    let empty = directory(tmp.path(), "empty", 0);
    let full = directory(tmp.path(), "full", CONFS);

    let (mut base, mut many) = (Vec::new(), Vec::new());
    for run in 0..=RUNS {
        let a = run_new(&empty, &host_conf, &net);
        let b = run_new(&full, &host_conf, &net);
        // Run 0 warms the page cache.
        if run > 0 {
            base.push(a);
            many.push(b);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (min_a, min_b) = (base.iter().min().copied(), many.iter().min().copied());
    let (med_a, med_b) = (median(&mut base), median(&mut many));
    let (p90_a, p90_b) = (p90(&mut base), p90(&mut many));
    println!(
        "dockyard new, {RUNS} runs each, interleaved (release build, host routes over netlink)"
    );
    println!("| case | min ms | median ms | p90 ms | median vs empty directory |");
    println!("|---|---|---|---|---|");
    println!(
        "| empty instances directory | {:.1} | {:.1} | {:.1} | 1.00x |",
        ms(min_a.unwrap_or_default()),
        ms(med_a),
        ms(p90_a)
    );
    println!(
        "| {CONFS} confs | {:.1} | {:.1} | {:.1} | {:.2}x |",
        ms(min_b.unwrap_or_default()),
        ms(med_b),
        ms(p90_b),
        med_b.as_secs_f64() / med_a.as_secs_f64()
    );
}

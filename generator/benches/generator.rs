//! Benchmark: the built generator binary over 1, 100 and 1000 instance
//! confs, run the way systemd runs it (a fresh output dir on tmpfs, like
//! /run/systemd/generator), side by side with systemd's own getty generator
//! as the floor a trivial generator costs (process start-up and exit).
//!
//! `cargo bench -p dockyard-generator --bench generator` (or `make bench`).
//! Goal: 1000 instances in under 50 ms on a 2-core machine.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 40;
const WARMUP: usize = 5;
const GETTY: &str = "/usr/lib/systemd/system-generators/systemd-getty-generator";

/// Instance `i` gets the i-th slot of 8 /24s in 10.0.0.0/8: a /24 bridge
/// and a /22 pool carved into /26 networks, so 1000 instances never overlap.
fn conf(i: usize) -> String {
    let slot = (i * 8) as u32;
    let net = |n: u32| format!("10.{}.{}", n / 256, n % 256);
    let runtime = if i % 2 == 0 { "runc" } else { "sysbox-runc" };
    format!(
        "[Instance]\nRoot=/srv/b{i}\nBridgeCIDR={}.1/24\nPoolBase={}.0/22\nPoolSize=26\nRuntime={runtime}\n[Daemon]\nlog-driver=journald\n",
        net(slot),
        net(slot + 4)
    )
}

fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("dockyard-bench-{}", std::process::id()))
}

fn fresh_dir(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("create output dir");
}

/// Runs `cmd` RUNS times into a freshly emptied `out`, returning sorted
/// wall times of spawn-to-exit.
fn measure(mut make: impl FnMut() -> Command, out: &Path) -> Vec<Duration> {
    let mut times = Vec::with_capacity(RUNS);
    for run in 0..WARMUP + RUNS {
        fresh_dir(out);
        let mut cmd = make();
        let start = Instant::now();
        let status = cmd.status().expect("run generator");
        let elapsed = start.elapsed();
        assert!(status.success(), "generator failed: {status}");
        if run >= WARMUP {
            times.push(elapsed);
        }
    }
    times.sort();
    times
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this once.
    let root = scratch_root();
    fresh_dir(&root);
    let out = root.join("normal");
    let binary = env!("CARGO_BIN_EXE_dockyard-generator");
    println!(
        "dockyard-generator benchmark: {RUNS} runs each after {WARMUP} warm-ups, output on {}",
        root.display()
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>12}",
        "case", "min ms", "median ms", "p90 ms", "vs getty"
    );

    let baseline = if Path::new(GETTY).exists() {
        let times = measure(
            || {
                let mut c = Command::new(GETTY);
                c.arg(&out).env("SYSTEMD_LOG_TARGET", "console");
                c
            },
            &out,
        );
        Some(times[times.len() / 2])
    } else {
        println!("(systemd-getty-generator not installed: no baseline)");
        None
    };
    if let Some(b) = baseline {
        println!(
            "{:<28} {:>10} {:>10.2} {:>10} {:>12}",
            "systemd-getty-generator",
            "",
            ms(b),
            "",
            "1.00x"
        );
    }

    for n in [1usize, 100, 1000] {
        let confs = root.join(format!("confs-{n}"));
        fresh_dir(&confs);
        for i in 0..n {
            fs::write(confs.join(format!("b{i}.conf")), conf(i)).expect("write conf");
        }
        let times = measure(
            || {
                let mut c = Command::new(binary);
                c.arg(&out)
                    .env("DOCKYARD_INSTANCES_DIR", &confs)
                    .env("DOCKYARD_ARTIFACTS_MANIFEST", root.join("none"))
                    .env("SYSTEMD_LOG_TARGET", "console");
                c
            },
            &out,
        );
        let units = fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
        let (min, med, p90) = (
            times[0],
            times[times.len() / 2],
            times[times.len() * 9 / 10],
        );
        let ratio = baseline
            .map(|b| format!("{:.2}x", med.as_secs_f64() / b.as_secs_f64()))
            .unwrap_or_default();
        println!(
            "{:<28} {:>10.2} {:>10.2} {:>10.2} {:>12}",
            format!("{n} instance(s) [{units} entries]"),
            ms(min),
            ms(med),
            ms(p90),
            ratio
        );
    }
    let _ = fs::remove_dir_all(&root);
}

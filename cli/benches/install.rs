//! Benchmark: `dockyard install` from a mirror on 127.0.0.1 against what an
//! admin would otherwise run on the same artifact, side by side:
//! `curl -o F URL && sha256sum -c && tar xzf F`. Wall time from spawn to
//! exit, fresh store each run, runs interleaved so both see the same page
//! cache and CPU state. Not a test: it prints figures (PERFORMANCE.md).
//!
//! The artifact is Docker-sized: Debian's docker.io binaries when that
//! package is installed, else stand-ins of the same order of size and
//! compressibility (192 MiB unpacked, 91 MiB gzipped).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 7;

/// Bytes that gzip roughly like Go binaries (~2:1 here): runs of a small
/// vocabulary of random "instructions" mixed with random data.
fn binary_like(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let vocab: Vec<[u8; 8]> = (0..512).map(|_| next().to_le_bytes()).collect();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let r = next();
        if r % 16 < 13 {
            out.extend_from_slice(&vocab[(r >> 8) as usize % vocab.len()]);
        } else {
            out.extend_from_slice(&next().to_le_bytes()[..6]);
        }
    }
    out.truncate(len);
    out
}

fn stand_ins() -> Vec<(String, Vec<u8>)> {
    // Roughly Docker 29's static build: dockerd 75, docker 38, containerd
    // 38, shim 8, ctr 18, runc 12, proxy 2, init 1 MiB.
    let sizes = [75, 38, 38, 8, 18, 12, 2, 1];
    DOCKER_BINARIES
        .iter()
        .zip(sizes)
        .enumerate()
        .map(|(i, (n, mib))| (n.to_string(), binary_like(mib << 20, i as u64 + 7)))
        .collect()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    let world = World::new();
    let server = Server::start();
    let binaries = if std::path::Path::new("/usr/sbin/dockerd").is_file() {
        docker_binaries()
    } else {
        eprintln!("artifact: stand-in binaries (docker.io not installed)");
        stand_ins()
    };
    let unpacked: usize = binaries.iter().map(|(_, d)| d.len()).sum();
    let tgz = docker_tgz(&binaries);
    let digest = sha256(&tgz);
    server.add("docker.tgz", tgz.clone());
    manifest(
        &world.manifest,
        None,
        &[Pin {
            kind: "docker",
            version: DOCKER_VERSION,
            url: server.url("files", "docker.tgz"),
            sha256: digest.clone(),
            size: Some(tgz.len() as u64),
        }],
    );
    let url = server.url("files", "docker.tgz");
    let shell_dir = world.tmp.path().join("shell");
    let pipeline = format!(
        "set -e; mkdir -p d; curl -fsS -o docker.tgz '{url}'; \
         echo '{digest}  docker.tgz' | sha256sum -c --quiet; tar xzf docker.tgz -C d"
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 0..=RUNS {
        let _ = std::fs::remove_dir_all(&world.store);
        let _ = std::fs::remove_dir_all(&shell_dir);
        std::fs::create_dir_all(&shell_dir).expect("mkdir");
        let a = time(&mut world.command(&["--no-sysbox"]));
        let b = time(
            Command::new("sh")
                .args(["-c", &pipeline])
                .current_dir(&shell_dir),
        );
        // Run 0 warms the page cache and the server.
        if run > 0 {
            ours.push(a);
            theirs.push(b);
        }
    }
    let (min_a, min_b) = (*ours.iter().min().unwrap(), *theirs.iter().min().unwrap());
    let (med_a, med_b) = (median(&mut ours), median(&mut theirs));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "artifact: {:.1} MiB .tgz, {:.1} MiB unpacked (8 binaries); {RUNS} runs each, interleaved",
        tgz.len() as f64 / 1048576.0,
        unpacked as f64 / 1048576.0
    );
    println!("| case | min ms | median ms | median vs pipeline |");
    println!("|---|---|---|---|");
    println!(
        "| curl -o + sha256sum -c + tar xzf | {:.0} | {:.0} | 1.00x |",
        ms(min_b),
        ms(med_b)
    );
    println!(
        "| dockyard install --no-sysbox | {:.0} | {:.0} | {:.2}x |",
        ms(min_a),
        ms(med_a),
        ms(med_a) / ms(med_b)
    );
}

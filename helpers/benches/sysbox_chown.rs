//! Benchmark: the sysbox ownership watcher (`dockyard-helper sysbox-chown`,
//! release build) side by side with the bash tool's way of doing the same
//! job, a loop that re-owned root-owned container directories once a
//! second (design-notes §5). The loop is written out charitably: one
//! `find -uid 0 -exec chown` per second rather than a `stat` per
//! directory.
//!
//! `cargo bench --locked -p dockyard-helpers --bench sysbox_chown` (or
//! `make bench`). Needs root (chown); without it, it says so and exits 0.
//! Not a test: it prints Markdown tables for PERFORMANCE.md.
//!
//! Two measurements:
//! - idle: both contenders run at once, each on its own data root with
//!   nothing happening, for 60 s (`DOCKYARD_BENCH_IDLE_SECS`); counted
//!   from `/proc/PID/status` (context switches: every one is a wake-up of
//!   a process that has nothing to do) and `/proc/PID/stat` (CPU time,
//!   with the reaped children's: the loop's `sleep` and `find`).
//! - latency: 1000 container directories made one every 10 ms, first for
//!   the watcher, then for the loop, each timed from `mkdir` returning to
//!   the chown's inotify `IN_ATTRIB` event, read by this benchmark's own
//!   inotify on `docker/`, so the measurement itself never polls.

use inotify::{EventMask, Inotify, WatchMask};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const UID: u32 = 165536;
const GID: u32 = 231072;
const DIRS: usize = 1000;
const EVERY: Duration = Duration::from_millis(10);

const LOOP: &str = r#"# The bash tool's ownership loop: once a second, re-own new root-owned
# container directories of sysbox to the subid offset.
docker=$1 owner=$2
while true; do
    find "$docker" -mindepth 1 -maxdepth 1 -type d -uid 0 -exec chown "$owner" {} +
    sleep 1
done
"#;

struct Contender {
    name: &'static str,
    child: Child,
    docker: PathBuf,
}

impl Drop for Contender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watcher(tmp: &Path, label: &str) -> Contender {
    let data_root = tmp.join(label).join("sysbox");
    let docker = data_root.join("docker");
    fs::create_dir_all(&docker).expect("mkdir");
    let child = Command::new(env!("CARGO_BIN_EXE_dockyard-helper"))
        .arg("sysbox-chown")
        .arg("--data-root")
        .arg(&data_root)
        .args(["--subid-user", "sysbox", "--subuid-file"])
        .arg(tmp.join("subuid"))
        .arg("--subgid-file")
        .arg(tmp.join("subgid"))
        .env("DOCKYARD_LOG", "stderr")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the watcher");
    Contender {
        name: "dockyard-sysbox-chown (inotify)",
        child,
        docker,
    }
}

fn bash_loop(tmp: &Path, label: &str) -> Contender {
    let docker = tmp.join(label).join("sysbox/docker");
    fs::create_dir_all(&docker).expect("mkdir");
    let script = tmp.join("loop.sh");
    fs::write(&script, LOOP).expect("write the loop");
    let child = Command::new("bash")
        .arg(&script)
        .arg(&docker)
        .arg(format!("{UID}:{GID}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bash");
    Contender {
        name: "bash loop, 1 s polling",
        child,
        docker,
    }
}

/// Waits until the contender re-owns a probe directory: it is up and has
/// done its first pass.
fn wait_ready(c: &Contender) {
    let probe = c.docker.join("probe");
    fs::create_dir(&probe).expect("probe");
    let t0 = Instant::now();
    while fs::metadata(&probe).map(|m| m.uid()).unwrap_or(0) != UID {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{} never re-owned the probe",
            c.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fs::remove_dir(&probe).expect("rm probe");
}

/// Context switches and CPU time (own plus reaped children) of `pid`.
fn usage(pid: u32) -> (u64, Duration) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let switches: u64 = status
        .lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // utime, stime, cutime, cstime are fields 14-17; `after` starts at 3.
    let ticks: u64 = f.get(10..14).map(|s| s.iter().sum()).unwrap_or(0);
    // SAFETY: sysconf only reads a constant of the C library.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    (switches, Duration::from_micros(ticks * 1_000_000 / hz))
}

/// mkdir → IN_ATTRIB (the chown) for `DIRS` directories, one every `EVERY`.
fn latencies(c: &Contender) -> Vec<Duration> {
    let mut inotify = Inotify::init().expect("inotify");
    inotify
        .watches()
        .add(&c.docker, WatchMask::ATTRIB)
        .expect("watch docker/");
    let (tx, rx) = mpsc::channel::<(OsString, Instant)>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        let mut seen = 0;
        while seen < DIRS {
            let events = match inotify.read_events_blocking(&mut buf) {
                Ok(ev) => ev,
                Err(_) => return,
            };
            let at = Instant::now();
            for ev in events {
                if ev.mask.contains(EventMask::ATTRIB) {
                    if let Some(n) = ev.name {
                        seen += 1;
                        if tx.send((n.to_os_string(), at)).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let mut made: HashMap<OsString, Instant> = HashMap::new();
    let start = Instant::now();
    for i in 0..DIRS {
        let due = start + EVERY * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let name = OsString::from(format!("c{i:04}"));
        fs::create_dir(c.docker.join(&name)).expect("mkdir");
        made.insert(name, Instant::now());
    }
    let mut lat = Vec::with_capacity(DIRS);
    let deadline = Instant::now() + Duration::from_secs(5);
    while lat.len() < DIRS {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((name, at)) = rx.recv_timeout(left) else {
            break;
        };
        if let Some(t) = made.get(&name) {
            lat.push(at.saturating_duration_since(*t));
        }
    }
    drop(rx);
    drop(reader); // detached: it ends at the next event or with the process
    assert_eq!(
        lat.len(),
        DIRS,
        "{}: not every directory was re-owned",
        c.name
    );
    for name in made.keys() {
        let m = fs::metadata(c.docker.join(name)).expect("stat");
        assert_eq!((m.uid(), m.gid()), (UID, GID), "{}: {name:?}", c.name);
    }
    lat.sort();
    lat
}

fn pct(v: &[Duration], p: usize) -> Duration {
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("sysbox_chown benchmark skipped: needs root (chown)");
        return;
    }
    let idle_secs: u64 = std::env::var("DOCKYARD_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(tmp.path().join("subuid"), format!("sysbox:{UID}:65536\n")).expect("subuid");
    fs::write(tmp.path().join("subgid"), format!("sysbox:{GID}:65536\n")).expect("subgid");

    // Idle, both at once.
    let idle_w = watcher(tmp.path(), "idle-watcher");
    let idle_b = bash_loop(tmp.path(), "idle-loop");
    wait_ready(&idle_w);
    wait_ready(&idle_b);
    let before: Vec<_> = [&idle_w, &idle_b]
        .iter()
        .map(|c| usage(c.child.id()))
        .collect();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let after: Vec<_> = [&idle_w, &idle_b]
        .iter()
        .map(|c| usage(c.child.id()))
        .collect();
    drop(idle_w);
    drop(idle_b);

    // Latency, one after the other.
    let w = watcher(tmp.path(), "lat-watcher");
    wait_ready(&w);
    let lat_w = latencies(&w);
    drop(w);
    let b = bash_loop(tmp.path(), "lat-loop");
    wait_ready(&b);
    let lat_b = latencies(&b);
    drop(b);

    println!("idle for {idle_secs} s, both at once:");
    println!("| contender | wake-ups (context switches) | CPU ms (with reaped children) |");
    println!("|---|---|---|");
    for (i, name) in ["dockyard-sysbox-chown (inotify)", "bash loop, 1 s polling"]
        .iter()
        .enumerate()
    {
        println!(
            "| {name} | {} | {:.0} |",
            after[i].0 - before[i].0,
            (after[i].1.saturating_sub(before[i].1)).as_secs_f64() * 1000.0
        );
    }
    println!();
    println!(
        "mkdir -> chown over {DIRS} directories, one every {} ms:",
        EVERY.as_millis()
    );
    println!("| contender | p50 ms | p99 ms | max ms | p50 vs bash loop |");
    println!("|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (name, lat) in [
        ("dockyard-sysbox-chown (inotify)", &lat_w),
        ("bash loop, 1 s polling", &lat_b),
    ] {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.5}x |",
            ms(pct(lat, 50)),
            ms(pct(lat, 99)),
            ms(lat[lat.len() - 1]),
            pct(lat, 50).as_secs_f64() / pct(&lat_b, 50).as_secs_f64()
        );
    }
}

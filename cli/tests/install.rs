//! `dockyard install` end to end: the real binary against a real HTTP
//! server on 127.0.0.1, fixture artifacts built here. Run as root in CI
//! (the disk-full case mounts a tmpfs in a private mount namespace).

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TGZ: &str = "docker-99.1.0.tgz";
const DEB: &str = "sysbox-ce_0.9.1-0.linux_amd64.deb";

struct Fixture {
    world: World,
    server: Server,
    docker: Vec<(String, Vec<u8>)>,
    tgz: Vec<u8>,
    deb: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let world = World::new();
        let server = Server::start();
        let docker = docker_binaries();
        let tgz = docker_tgz(&docker);
        let deb = deb(world.tmp.path(), "xz", &SYSBOX_BINARIES).expect("dpkg-deb -Zxz");
        server.add(TGZ, tgz.clone());
        server.add(DEB, deb.clone());
        Fixture {
            world,
            server,
            docker,
            tgz,
            deb,
        }
    }

    /// A manifest fetching Docker through `docker_behaviour` and sysbox
    /// through `sysbox_behaviour` (see `Server`).
    fn pin(&self, docker_behaviour: &str, sysbox_behaviour: &str) {
        manifest(
            &self.world.manifest,
            None,
            &[
                Pin {
                    kind: "docker",
                    version: DOCKER_VERSION,
                    url: self.server.url(docker_behaviour, TGZ),
                    sha256: sha256(&self.tgz),
                    size: Some(self.tgz.len() as u64),
                },
                Pin {
                    kind: "sysbox",
                    version: SYSBOX_VERSION,
                    url: self.server.url(sysbox_behaviour, DEB),
                    sha256: sha256(&self.deb),
                    size: Some(self.deb.len() as u64),
                },
            ],
        );
    }

    fn assert_docker_installed(&self) {
        let bin = self.world.bin("docker", DOCKER_VERSION);
        for (name, data) in &self.docker {
            let path = bin.join(name);
            let got = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                got == *data,
                "{} differs from the tarball's",
                path.display()
            );
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{}", path.display());
        }
        assert!(bin
            .parent()
            .expect("dir")
            .join(".dockyard-artifact.toml")
            .is_file());
    }

    fn assert_sysbox_installed(&self, version: &str) {
        let bin = self.world.bin("sysbox", version);
        for name in SYSBOX_BINARIES {
            let got = std::fs::read(bin.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, sysbox_binary(name));
        }
        let names: Vec<_> = std::fs::read_dir(&bin)
            .expect("bin")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 3, "only the three sysbox binaries: {names:?}");
    }

    fn assert_nothing_installed(&self) {
        assert!(
            !self
                .world
                .store
                .join("docker")
                .join(DOCKER_VERSION)
                .exists(),
            "no docker version may be visible"
        );
        assert_eq!(
            self.world.staging(),
            Vec::<String>::new(),
            "staging left behind"
        );
    }
}

#[test]
fn happy_path_then_idempotent_without_network() {
    let f = Fixture::new();
    f.pin("files", "files");
    let run = f.world.run(&[]);
    assert_eq!(run.code, 0, "{run}");
    f.assert_docker_installed();
    f.assert_sysbox_installed(SYSBOX_VERSION);
    assert_eq!(f.world.staging(), Vec::<String>::new());
    assert!(run.stdout.contains("docker 99.1.0 installed in"), "{run}");
    assert_eq!(f.server.total_hits(), 2);

    let again = f.world.run(&[]);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again
            .stdout
            .contains("docker 99.1.0 is already installed and verified"),
        "{again}"
    );
    assert!(
        again
            .stdout
            .contains("sysbox 0.9.1 is already installed and verified"),
        "{again}"
    );
    assert_eq!(
        f.server.total_hits(),
        2,
        "a re-run must not touch the network"
    );

    // A damaged binary is caught by the re-run's verification, offline.
    std::fs::write(
        f.world.bin("docker", DOCKER_VERSION).join("runc"),
        b"tampered",
    )
    .expect("write");
    let damaged = f.world.run(&["--no-sysbox"]);
    assert_eq!(damaged.code, 5, "{damaged}");
    assert!(
        damaged.stderr.contains("is damaged") && damaged.stderr.contains("runc"),
        "{damaged}"
    );
    assert_eq!(f.server.total_hits(), 2);
}

#[test]
fn deb_in_each_compression() {
    let f = Fixture::new();
    let mut tried = Vec::new();
    for (i, compression) in ["xz", "zstd", "gzip"].into_iter().enumerate() {
        let Some(deb) = deb(f.world.tmp.path(), compression, &SYSBOX_BINARIES) else {
            assert_eq!(compression, "zstd", "dpkg-deb must support -Z{compression}");
            eprintln!("skipping .deb with -Zzstd: this dpkg-deb cannot build it");
            continue;
        };
        let version: &'static str = ["0.9.1", "0.9.2", "0.9.3"][i];
        let name = format!("sysbox-{compression}.deb");
        f.server.add(&name, deb.clone());
        manifest(
            &f.world.manifest,
            None,
            &[Pin {
                kind: "sysbox",
                version,
                url: f.server.url("files", &name),
                sha256: sha256(&deb),
                size: None,
            }],
        );
        let run = f.world.run(&["--no-docker", "--sysbox", version]);
        assert_eq!(run.code, 0, "{compression}: {run}");
        f.assert_sysbox_installed(version);
        tried.push(compression);
    }
    eprintln!(".deb compressions installed: {tried:?}");
}

#[test]
fn checksum_mismatch_is_refused_naming_both_digests() {
    let f = Fixture::new();
    let wrong = "0".repeat(64);
    manifest(
        &f.world.manifest,
        None,
        &[Pin {
            kind: "docker",
            version: DOCKER_VERSION,
            url: f.server.url("files", TGZ),
            sha256: wrong.clone(),
            size: None,
        }],
    );
    let run = f.world.run(&["--no-sysbox"]);
    assert_eq!(run.code, 5, "{run}");
    assert!(run.stderr.contains("checksum mismatch"), "{run}");
    assert!(run.stderr.contains(&wrong), "expected digest named: {run}");
    assert!(
        run.stderr.contains(&sha256(&f.tgz)),
        "actual digest named: {run}"
    );
    assert!(
        run.stderr.contains(&f.server.url("files", TGZ)),
        "url named: {run}"
    );
    assert_eq!(
        f.server.hits(&format!("/files/{TGZ}")),
        1,
        "a mismatch is not retried"
    );
    f.assert_nothing_installed();
}

#[test]
fn truncated_download_is_retried_then_fails() {
    let f = Fixture::new();
    f.pin("truncate", "files");
    let run = f.world.run(&["--no-sysbox"]);
    assert_eq!(run.code, 4, "{run}");
    assert!(run.stderr.contains("gave up after 4 attempts"), "{run}");
    assert!(run.stderr.contains(&f.server.url("truncate", TGZ)), "{run}");
    assert_eq!(f.server.hits(&format!("/truncate/{TGZ}")), 4);
    f.assert_nothing_installed();
}

#[test]
fn server_error_then_success_is_retried() {
    let f = Fixture::new();
    f.pin("flaky", "flaky");
    let run = f.world.run(&[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("attempt 1 failed"), "{run}");
    assert!(run.stderr.contains("HTTP 500"), "{run}");
    assert_eq!(f.server.hits(&format!("/flaky/{TGZ}")), 2);
    assert_eq!(f.server.hits(&format!("/flaky/{DEB}")), 2);
    f.assert_docker_installed();
    f.assert_sysbox_installed(SYSBOX_VERSION);
}

#[test]
fn not_found_is_final() {
    let f = Fixture::new();
    f.pin("files", "missing");
    let run = f.world.run(&[]);
    assert_eq!(run.code, 4, "{run}");
    assert!(run.stderr.contains("HTTP 404"), "{run}");
    assert!(run.stderr.contains(&f.server.url("missing", DEB)), "{run}");
    assert_eq!(
        f.server.hits(&format!("/missing/{DEB}")),
        1,
        "404 is not retried"
    );
    // Docker came first and is complete; sysbox is simply absent.
    f.assert_docker_installed();
    assert!(!f.world.store.join("sysbox").join(SYSBOX_VERSION).exists());
    assert_eq!(f.world.staging(), Vec::<String>::new());
}

/// Serves `tgz` as the Docker artifact and expects a refusal containing `why`.
fn refused_tarball(tgz: Vec<u8>, why: &str) {
    let f = Fixture::new();
    f.server.add("evil.tgz", tgz.clone());
    manifest(
        &f.world.manifest,
        None,
        &[Pin {
            kind: "docker",
            version: DOCKER_VERSION,
            url: f.server.url("files", "evil.tgz"),
            sha256: sha256(&tgz),
            size: None,
        }],
    );
    let run = f.world.run(&["--no-sysbox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("refusing the archive"), "{run}");
    assert!(run.stderr.contains(why), "{run}");
    f.assert_nothing_installed();
    for escaped in ["evil", "store/evil", "store/docker/evil"] {
        assert!(
            !f.world.tmp.path().join(escaped).exists(),
            "{escaped} was written"
        );
    }
}

fn good_entries() -> Vec<Entry> {
    let mut e = vec![Entry::Dir("docker/")];
    for name in DOCKER_BINARIES {
        let path: &'static str = Box::leak(format!("docker/{name}").into_boxed_str());
        e.push(Entry::File(path, b"#!/bin/sh\n".to_vec()));
    }
    e
}

#[test]
fn tarball_with_dotdot_entry_is_refused() {
    let mut e = good_entries();
    e.push(Entry::File("docker/../../evil", b"x".to_vec()));
    refused_tarball(tgz(&e), "climbs out with '..'");
}

#[test]
fn tarball_with_absolute_entry_is_refused() {
    let mut e = good_entries();
    e.insert(1, Entry::File("/tmp/dockyard-test-evil", b"x".to_vec()));
    refused_tarball(tgz(&e), "absolute path");
    assert!(!Path::new("/tmp/dockyard-test-evil").exists());
}

#[test]
fn symlink_escaping_the_store_is_refused() {
    let mut e = good_entries();
    e.push(Entry::Symlink("docker/escape", "../../../../../etc/passwd"));
    refused_tarball(tgz(&e), "points outside the archive");
    let mut e = good_entries();
    e.push(Entry::Symlink("docker/abs", "/etc"));
    refused_tarball(tgz(&e), "points outside the archive");
}

#[test]
fn wanted_binary_as_symlink_is_refused() {
    let mut e: Vec<Entry> = good_entries()
        .into_iter()
        .filter(|x| !matches!(x, Entry::File("docker/runc", _)))
        .collect();
    e.push(Entry::Symlink("docker/runc", "dockerd"));
    refused_tarball(tgz(&e), "only regular files");
}

#[test]
fn tarball_without_docker_binaries_names_them() {
    let f = Fixture::new();
    let e: Vec<Entry> = good_entries()
        .into_iter()
        .filter(|x| !matches!(x, Entry::File("docker/dockerd" | "docker/ctr", _)))
        .collect();
    let tgz = tgz(&e);
    f.server.add("partial.tgz", tgz.clone());
    manifest(
        &f.world.manifest,
        None,
        &[Pin {
            kind: "docker",
            version: DOCKER_VERSION,
            url: f.server.url("files", "partial.tgz"),
            sha256: sha256(&tgz),
            size: None,
        }],
    );
    let run = f.world.run(&["--no-sysbox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("lacks dockerd, ctr"), "{run}");
    f.assert_nothing_installed();
}

#[test]
fn deb_without_the_binaries_names_what_is_missing() {
    let f = Fixture::new();
    let deb = deb(f.world.tmp.path(), "xz", &["sysbox-runc"]).expect("dpkg-deb");
    f.server.add("partial.deb", deb.clone());
    manifest(
        &f.world.manifest,
        None,
        &[Pin {
            kind: "sysbox",
            version: SYSBOX_VERSION,
            url: f.server.url("files", "partial.deb"),
            sha256: sha256(&deb),
            size: None,
        }],
    );
    let run = f.world.run(&["--no-docker"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("has no sysbox-mgr, sysbox-fs"), "{run}");
    assert!(!f.world.store.join("sysbox").join(SYSBOX_VERSION).exists());
    assert_eq!(f.world.staging(), Vec::<String>::new());
}

/// The size of the download in progress (`.staging/partial/*.part`).
fn partial_bytes(world: &World) -> u64 {
    std::fs::read_dir(world.store.join(".staging/partial"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().ends_with(".part"))
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Waits until the download in progress has at least `bytes` on disk.
fn wait_for_partial_download(world: &World, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while partial_bytes(world) < bytes {
        assert!(
            Instant::now() < deadline,
            "the download never got to {bytes} bytes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A few MB of incompressible bytes: slow to serve at 32 KiB / 40 ms.
fn big_docker(f: &mut Fixture, mib: usize) {
    let mut noise = vec![0u8; mib * 1024 * 1024];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    f.docker[0].1 = noise;
    f.tgz = docker_tgz(&f.docker);
    f.server.add(TGZ, f.tgz.clone());
}

#[test]
fn interrupted_install_leaves_nothing_visible_and_rerun_succeeds() {
    let mut f = Fixture::new();
    big_docker(&mut f, 2);
    f.pin("slow", "files");
    let mut child = f
        .world
        .command(&["--no-sysbox"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for_partial_download(&f.world, 1);
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(!f.world.store.join("docker").join(DOCKER_VERSION).exists());
    let mut left = f.world.staging();
    left.sort();
    assert_eq!(
        left.len(),
        2,
        "the killed install's staging dir remains: {left:?}"
    );
    assert_eq!(left[1], "partial", "and its partial download: {left:?}");

    // `slow` ignores Range: the resume falls back to the whole file.
    let run = f.world.run(&["--no-sysbox"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("leftover staging"), "{run}");
    assert!(run.stderr.contains("resuming at"), "{run}");
    assert!(
        run.stderr
            .contains("sent the whole file instead of resuming"),
        "{run}"
    );
    f.assert_docker_installed();
    assert_eq!(f.world.staging(), Vec::<String>::new());
}

#[test]
fn two_installs_at_once_fetch_once_and_both_succeed() {
    let mut f = Fixture::new();
    big_docker(&mut f, 1);
    f.pin("slow", "files");
    let spawn = || {
        f.world
            .command(&["--no-sysbox"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let a = Run::from(a.wait_with_output().expect("wait"));
    let b = Run::from(b.wait_with_output().expect("wait"));
    assert_eq!((a.code, b.code), (0, 0), "{a}\n{b}");
    assert_eq!(
        f.server.hits(&format!("/slow/{TGZ}")),
        1,
        "the lock serialises: {a}\n{b}"
    );
    let waited = [&a, &b]
        .iter()
        .filter(|r| r.stderr.contains("waiting for another"))
        .count();
    let skipped = [&a, &b]
        .iter()
        .filter(|r| r.stdout.contains("already installed and verified"))
        .count();
    assert_eq!((waited, skipped), (1, 1), "{a}\n{b}");
    f.assert_docker_installed();
}

/// Runs `dockyard install --manifest M --store TMPFS/store ARGS…` with a
/// tmpfs of `size` as the store's file system, in a private mount namespace
/// (root only; the tmpfs disappears with it). Returns the run, what is left
/// in the store's `docker/` and `.staging/` (`left: …` on stdout) and the
/// tmpfs's used KiB after the run (`used: N`).
fn install_in_tmpfs(world: &World, size: &str, args: &[&str]) -> Run {
    let small = world.tmp.path().join("small");
    std::fs::create_dir_all(&small).expect("mkdir");
    let script = r#"mount -t tmpfs -o "size=$1" dockyard-test "$2" || exit 90
bin=$3 manifest=$4 dir=$2
shift 4
"$bin" install --manifest "$manifest" --store "$dir/store" "$@"
rc=$?
echo "left:" $(find "$dir/store/docker" "$dir/store/.staging" -mindepth 1 2>/dev/null)
echo "used:" $(df -k --output=used "$dir" | tail -n 1)
exit $rc"#;
    let mut argv: Vec<&std::ffi::OsStr> = vec![
        size.as_ref(),
        small.as_os_str(),
        env!("CARGO_BIN_EXE_dockyard").as_ref(),
        world.manifest.as_os_str(),
    ];
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    let run = in_private_mounts(
        script,
        &argv,
        &[("DOCKYARD_INSTANCES_DIR", &world.instances)],
    );
    assert_ne!(run.code, 90, "could not mount a tmpfs: {run}");
    assert!(
        !small.join("store").exists(),
        "the tmpfs was private to the namespace"
    );
    run
}

fn used_kib(run: &Run) -> u64 {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix("used: ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no used: line: {run}"))
}

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root to mount a tmpfs (CI runs as root)");
    true
}

#[test]
fn no_room_for_the_download_is_refused_before_writing() {
    if skip_unless_root("no_room_for_the_download_is_refused_before_writing") {
        return;
    }
    let mut f = Fixture::new();
    big_docker(&mut f, 2);
    f.pin("files", "files");
    let run = install_in_tmpfs(&f.world, "1m", &["--no-sysbox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("not enough space for"), "{run}");
    assert!(run.stderr.contains("nothing was written"), "{run}");
    assert!(run.stdout.contains("left:\n"), "nothing may be left: {run}");
}

#[test]
fn disk_full_while_unpacking_fails_cleanly() {
    if skip_unless_root("disk_full_while_unpacking_fails_cleanly") {
        return;
    }
    // A download that fits and binaries that do not: 2 MiB of zeros
    // compress to a few KiB, so only the unpacking fills the disk.
    let mut f = Fixture::new();
    f.docker[0].1 = vec![0u8; 2 << 20];
    f.tgz = docker_tgz(&f.docker);
    f.server.add(TGZ, f.tgz.clone());
    f.pin("files", "files");
    let run = install_in_tmpfs(&f.world, "1m", &["--no-sysbox"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("No space left on device"), "{run}");
    assert!(run.stderr.contains("the disk is full"), "{run}");
    assert!(run.stdout.contains("left:\n"), "nothing may be left: {run}");
}

#[test]
fn from_dir_applies_the_same_checks() {
    let f = Fixture::new();
    f.pin("files", "files");
    let dir = f.world.tmp.path().join("offline");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join(TGZ), &f.tgz).expect("write");
    let missing = f.world.run(&["--from", dir.to_str().expect("utf8")]);
    assert_eq!(missing.code, 4, "{missing}");
    assert!(
        missing.stderr.contains(DEB) && missing.stderr.contains("put "),
        "{missing}"
    );

    std::fs::write(dir.join(DEB), b"not a deb").expect("write");
    let short = f.world.run(&["--from", dir.to_str().expect("utf8")]);
    assert_eq!(short.code, 5, "{short}");
    assert!(
        short.stderr.contains(&format!(
            "is 9 bytes but the manifest pins size = {}",
            f.deb.len()
        )),
        "{short}"
    );

    let same_length = vec![b'x'; f.deb.len()];
    std::fs::write(dir.join(DEB), &same_length).expect("write");
    let corrupt = f.world.run(&["--from", dir.to_str().expect("utf8")]);
    assert_eq!(corrupt.code, 5, "{corrupt}");
    assert!(corrupt.stderr.contains(&sha256(&same_length)), "{corrupt}");

    std::fs::write(dir.join(DEB), &f.deb).expect("write");
    let run = f.world.run(&["--from", dir.to_str().expect("utf8")]);
    assert_eq!(run.code, 0, "{run}");
    f.assert_sysbox_installed(SYSBOX_VERSION);
    f.assert_docker_installed();
    assert_eq!(f.server.total_hits(), 0, "--from never uses the network");
}

#[test]
fn mirror_replaces_scheme_and_host() {
    let f = Fixture::new();
    manifest(
        &f.world.manifest,
        Some(&format!("http://127.0.0.1:{}", f.server.port)),
        &[Pin {
            kind: "docker",
            version: DOCKER_VERSION,
            url: format!("https://download.docker.com/linux/static/stable/x86_64/{TGZ}"),
            sha256: sha256(&f.tgz),
            size: None,
        }],
    );
    let run = f.world.run(&["--no-sysbox"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        f.server.hits(&format!("/linux/static/stable/x86_64/{TGZ}")),
        1
    );
    f.assert_docker_installed();
}

#[test]
fn unknown_version_names_the_pinned_ones() {
    let f = Fixture::new();
    f.pin("files", "files");
    let run = f.world.run(&["1.2.3"]);
    assert_eq!(run.code, 3, "{run}");
    assert!(run.stderr.contains("pins no docker 1.2.3"), "{run}");
    assert!(
        run.stderr
            .contains(&format!("pinned: {DOCKER_VERSION} {}", arch())),
        "{run}"
    );
    assert!(
        !f.world.store.exists(),
        "the store is not touched before the manifest answers"
    );
}

const CONF: &str = "[Instance]\nBridgeCIDR=172.30.{N}.1/24\nPoolBase=10.{N}.0.0/16\n";

fn conf(n: u8, extra: &str) -> String {
    format!("{}{extra}", CONF.replace("{N}", &n.to_string()))
}

#[test]
fn list_shows_versions_and_their_instances() {
    let f = Fixture::new();
    f.pin("files", "files");
    assert_eq!(f.world.run(&[]).code, 0);
    f.world.conf("dy1", &conf(1, "Runtime=sysbox-runc\n"));
    f.world.conf(
        "dy2",
        &conf(
            2,
            &format!("Runtime=runc\nDockerVersion={DOCKER_VERSION}\n"),
        ),
    );
    f.world
        .conf("dy3", &conf(3, "Runtime=runc\nDockerVersion=98.0.0\n"));
    let run = f.world.run(&["--list"]);
    assert_eq!(run.code, 0, "{run}");
    let lines: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines.contains(&vec![
            "docker",
            DOCKER_VERSION,
            "(default)",
            "installed",
            "dy1,dy2"
        ]),
        "{run}"
    );
    assert!(
        lines.contains(&vec![
            "sysbox",
            SYSBOX_VERSION,
            "(default)",
            "installed",
            "dy1"
        ]),
        "{run}"
    );
    assert!(
        lines.contains(&vec!["docker", "98.0.0", "MISSING", "dy3"]),
        "{run}"
    );
    assert!(
        run.stdout.lines().last().is_some_and(|l| l
            == "MISSING versions are pinned by the instances listed and not installed: run \
                `dockyard install 98.0.0`"),
        "{run}"
    );
}

#[test]
fn remove_is_refused_while_pinned() {
    let f = Fixture::new();
    f.pin("files", "files");
    assert_eq!(f.world.run(&[]).code, 0);
    f.world.conf("dy1", &conf(1, "Runtime=sysbox-runc\n"));
    f.world.conf("dy2", &conf(2, "Runtime=runc\n"));

    let run = f.world.run(&["--remove", DOCKER_VERSION]);
    assert_eq!(run.code, 6, "{run}");
    assert!(run.stderr.contains("instances dy1, dy2 use it"), "{run}");
    let run = f
        .world
        .run(&["--remove", &format!("sysbox/{SYSBOX_VERSION}")]);
    assert_eq!(run.code, 6, "{run}");
    assert!(run.stderr.contains("instance dy1 uses it"), "{run}");
    f.assert_docker_installed();

    std::fs::remove_file(f.world.instances.join("dy1.conf")).expect("rm");
    let run = f.world.run(&["--remove", SYSBOX_VERSION]);
    assert_eq!(run.code, 0, "{run}");
    assert!(!f.world.store.join("sysbox").join(SYSBOX_VERSION).exists());
    let run = f.world.run(&["--remove", SYSBOX_VERSION]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("is not installed"), "{run}");
}

#[test]
fn a_hand_made_version_directory_is_left_alone() {
    let f = Fixture::new();
    f.pin("files", "files");
    let bin = f.world.bin("docker", DOCKER_VERSION);
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::write(bin.join("dockerd"), b"hand-laid").expect("write");
    let run = f.world.run(&["--no-sysbox"]);
    assert_eq!(run.code, 6, "{run}");
    assert!(
        run.stderr.contains("was not installed by dockyard install"),
        "{run}"
    );
    assert_eq!(
        std::fs::read(bin.join("dockerd")).expect("read"),
        b"hand-laid"
    );
    assert_eq!(f.server.total_hits(), 0);
}

// ------------------------------------------------- slow and hostile networks
//
// Servers on 127.0.0.1 misbehave in the ways `common::Server` lists; the
// limits are set small on the command line so that the whole group takes
// seconds, and each test says what its numbers prove. The defaults (30 s
// connect, 30 s idle, 16 KiB/s over 60 s, 512 MiB) are checked in --help.

/// A one-artifact world: Docker as a tarball of about `len` bytes of noise,
/// served through `behaviour`, pinned with its size when `sized`.
struct Hostile {
    world: World,
    server: Server,
    docker: Vec<(String, Vec<u8>)>,
    tgz: Vec<u8>,
}

impl Hostile {
    fn new(len: usize) -> Hostile {
        Hostile::with_server(len, Server::start())
    }

    fn with_server(len: usize, server: Server) -> Hostile {
        let (docker, tgz) = noise_docker(len, len as u64);
        server.add(TGZ, tgz.clone());
        Hostile {
            world: World::new(),
            server,
            docker,
            tgz,
        }
    }

    fn pin(&self, behaviour: &str, sized: bool) {
        self.pin_as(
            behaviour,
            sha256(&self.tgz),
            sized.then_some(self.tgz.len() as u64),
        );
    }

    fn pin_as(&self, behaviour: &str, sha: String, size: Option<u64>) {
        manifest(
            &self.world.manifest,
            None,
            &[Pin {
                kind: "docker",
                version: DOCKER_VERSION,
                url: self.server.url(behaviour, TGZ),
                sha256: sha,
                size,
            }],
        );
    }

    fn path(&self, behaviour: &str) -> String {
        format!("/{behaviour}/{TGZ}")
    }

    fn run(&self, args: &[&str]) -> (Run, Duration) {
        let t0 = Instant::now();
        let mut all = vec!["--no-sysbox"];
        all.extend_from_slice(args);
        let run = self.world.run(&all);
        (run, t0.elapsed())
    }

    fn assert_installed(&self) {
        let bin = self.world.bin("docker", DOCKER_VERSION);
        for (name, data) in &self.docker {
            let got = std::fs::read(bin.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(got == *data, "{name} differs from the tarball's");
        }
        assert_eq!(self.world.staging(), Vec::<String>::new(), "staging left");
    }

    fn assert_nothing(&self) {
        assert!(!self.world.bin("docker", DOCKER_VERSION).exists());
        assert_eq!(self.world.staging(), Vec::<String>::new(), "staging left");
    }
}

/// Issue 16: a steady 32 KiB/s download used to die at 60 s, because the
/// body inherited the response-header deadline. Here 256 KiB at 32 KiB/s
/// take 8 s, with an idle timeout and a rate window of 2 s each: the
/// download lasts four times the header bound and four windows, and the
/// rate (twice the minimum of 16 KiB/s) is judged over each of them. Under
/// the old rule (a deadline counted from the headers) it would have been
/// cut off after 2 s; with no deadline it completes. The full-size case,
/// 3 MiB at 32 KiB/s with the defaults (about 100 s), is
/// `slow_but_steady_3_mib_with_the_defaults` (ignored: run it with
/// `cargo test -- --ignored`).
#[test]
fn slow_but_steady_download_completes() {
    let h = Hostile::new(256 * 1024);
    h.pin("rate=32768", true);
    let (run, took) = h.run(&[
        "--idle-timeout",
        "2",
        "--rate-window",
        "2",
        "--min-rate",
        "16K",
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        took >= Duration::from_secs(7),
        "too fast to prove anything: {took:?}"
    );
    assert_eq!(
        h.server.hits(&h.path("rate=32768")),
        1,
        "one attempt: {run}"
    );
    h.assert_installed();
}

#[test]
#[ignore = "takes about 100 s: the issue's own numbers, with the default limits"]
fn slow_but_steady_3_mib_with_the_defaults() {
    let h = Hostile::new(3 << 20);
    h.pin("rate=32768", true);
    let (run, took) = h.run(&[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(took >= Duration::from_secs(90), "{took:?}");
    h.assert_installed();
}

/// 64 bytes every 250 ms: never idle, 256 B/s, far below a 16 KiB/s
/// minimum. Judged once the 3 s window has passed, so it must stop between
/// 3 s and 3 s plus one read.
#[test]
fn trickle_below_the_minimum_rate_gives_up_within_its_window() {
    let h = Hostile::new(1 << 20);
    h.pin("trickle", true);
    let (run, took) = h.run(&[
        "--rate-window",
        "3",
        "--min-rate",
        "16K",
        "--idle-timeout",
        "2",
    ]);
    assert_eq!(run.code, 4, "{run}");
    assert!(run.stderr.contains("too slow"), "{run}");
    assert!(
        run.stderr.contains("below the minimum of 16.0 KiB/s"),
        "{run}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "gave up after {took:?}"
    );
    assert_eq!(
        h.server.hits(&h.path("trickle")),
        1,
        "a slow server is not retried"
    );
    h.assert_nothing();
}

/// Each kind of stall gives up within the idle bound (2 s here; 30 s by
/// default, where the old code took about 248 s): no response at all,
/// headers then nothing, half the body then nothing. A connection gets half
/// the bound, then one more is tried with what is left of it (and resumes,
/// with `range`). Without ranges a retry receives the first half again,
/// which is not progress: four such attempts at most, and still within
/// twice the bound.
#[test]
fn stalls_give_up_within_the_idle_bound() {
    let cases: [(&'static str, std::ops::RangeInclusive<usize>); 4] = [
        ("no-response", 2..=2),
        ("stall-after-headers", 2..=2),
        ("stall-mid-body", 2..=4),
        ("range,stall-mid-body", 2..=2),
    ];
    let runs: Vec<_> = cases
        .iter()
        .map(|(behaviour, _)| {
            let behaviour = *behaviour;
            std::thread::spawn(move || {
                let h = Hostile::new(256 * 1024);
                h.pin(behaviour, true);
                let (run, took) = h.run(&["--idle-timeout", "2"]);
                (h, run, took)
            })
        })
        .collect();
    for ((behaviour, requests), handle) in cases.iter().zip(runs) {
        let (h, run, took) = handle.join().expect("thread");
        assert_eq!(run.code, 4, "{behaviour}: {run}");
        assert!(
            run.stderr.contains("the idle timeout is 2 s"),
            "{behaviour}: {run}"
        );
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(4500),
            "{behaviour}: gave up after {took:?}"
        );
        let hits = h.server.hits(&h.path(behaviour));
        assert!(
            requests.contains(&hits),
            "{behaviour}: {hits} requests: {run}"
        );
        if behaviour.starts_with("range") {
            let reqs = h.server.requests(&h.path(behaviour));
            assert!(
                reqs[1]
                    .range
                    .as_deref()
                    .is_some_and(|r| r.starts_with("bytes=")),
                "{behaviour}: the retry resumes: {reqs:?}"
            );
            // What was received is kept for the next run to resume.
            assert!(
                run.stderr.contains("resumes from there"),
                "{behaviour}: {run}"
            );
        } else {
            h.assert_nothing();
        }
    }
}

/// The connection breaks after half the file (`truncate1`); the server
/// supports ranges, so the second request asks for the rest only.
#[test]
fn a_broken_download_resumes_with_a_range_request() {
    let h = Hostile::new(512 * 1024);
    h.pin("range,truncate1", true);
    let (run, _) = h.run(&[]);
    assert_eq!(run.code, 0, "{run}");
    let reqs = h.server.requests(&h.path("range,truncate1"));
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let half = h.tgz.len() / 2;
    assert_eq!(reqs[0].range, None);
    assert_eq!(reqs[1].range.as_deref(), Some(&*format!("bytes={half}-")));
    assert_eq!(reqs[1].sent(), (h.tgz.len() - half) as u64, "only the rest");
    h.assert_installed();
}

/// A resume whose bytes do not belong to the file (the server's file
/// changed, or it answers ranges wrongly) fails the whole-file check; the
/// file is then fetched once more from byte 0, without a range.
#[test]
fn a_resumed_download_that_does_not_match_is_fetched_whole_again() {
    let h = Hostile::new(256 * 1024);
    h.pin("badrange,truncate1", true);
    let (run, _) = h.run(&[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("downloading it whole again"), "{run}");
    let reqs = h.server.requests(&h.path("badrange,truncate1"));
    let ranges: Vec<_> = reqs.iter().map(|r| r.range.is_some()).collect();
    assert_eq!(ranges, [false, true, false], "{reqs:?}");
    h.assert_installed();
}

/// `kill -9` in the middle of a download: the next run resumes from what
/// the killed one left on disk, with a range request, and verifies the
/// whole file.
#[test]
fn a_killed_download_resumes_in_the_next_run() {
    let h = Hostile::new(2 << 20);
    h.pin("range,slow", true);
    let mut child = h
        .world
        .command(&["--no-sysbox"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for_partial_download(&h.world, 512 * 1024);
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    let left = partial_bytes(&h.world);
    assert!(left > 0 && (left as usize) < h.tgz.len(), "{left}");

    let (run, _) = h.run(&[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("resuming at"), "{run}");
    let reqs = h.server.requests(&h.path("range,slow"));
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1].range.as_deref(), Some(&*format!("bytes={left}-")));
    assert_eq!(reqs[1].sent(), h.tgz.len() as u64 - left, "only the rest");
    assert!(
        run.stderr.contains("resumed at"),
        "the summary says so: {run}"
    );
    h.assert_installed();
}

/// A pinned size is checked against what the server announces before a
/// byte is written, and the pin is final: no retry.
#[test]
fn a_length_other_than_the_pinned_size_is_refused_up_front() {
    let h = Hostile::new(64 * 1024);
    h.pin_as("files", sha256(&h.tgz), Some(h.tgz.len() as u64 + 1));
    let (run, _) = h.run(&[]);
    assert_eq!(run.code, 5, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "announces {} bytes but the manifest pins size = {}",
            h.tgz.len(),
            h.tgz.len() + 1
        )),
        "{run}"
    );
    assert_eq!(h.server.hits(&h.path("files")), 1);
    h.assert_nothing();
}

/// Hostile bodies on a small file system (a 4 MiB tmpfs holding the
/// store): an endless body is stopped at the pinned size (and installs
/// when its first bytes are the right file), a 64 GiB Content-Length is
/// refused before a byte is written, and without a pinned size the bound is
/// --max-size; nothing is left behind and the disk is never filled.
#[test]
fn endless_bodies_and_huge_lengths_stop_at_the_bound() {
    if skip_unless_root("endless_bodies_and_huge_lengths_stop_at_the_bound") {
        return;
    }
    let h = Hostile::new(256 * 1024);
    let len = h.tgz.len() as u64;
    let sha = sha256(&h.tgz);
    let huge = 64u64 << 30;
    let fakelen = format!("fakelen={huge}");
    // (behaviour, pinned size, extra args, exit, message)
    type Case<'a> = (&'a str, Option<u64>, &'a [&'a str], i32, String);
    let cases: [Case; 6] = [
        ("endless", Some(len), &[], 0, "downloaded".to_string()),
        (
            "endless",
            None,
            &["--max-size", "1M"],
            4,
            "sent more than the 1.0 MiB allowed".to_string(),
        ),
        (
            &fakelen,
            Some(len),
            &[],
            5,
            format!("announces {huge} bytes but the manifest pins size = {len}"),
        ),
        (
            &fakelen,
            None,
            &[],
            4,
            "more than the 512.0 MiB allowed for an artifact whose manifest entry has no size"
                .to_string(),
        ),
        (
            "fakelen=104857600",
            None,
            &[],
            1,
            "100.0 MiB more to write".to_string(),
        ),
        (
            "fakelen=104857600",
            Some(len),
            &[],
            5,
            "pins size".to_string(),
        ),
    ];
    for (behaviour, size, args, code, message) in &cases {
        h.pin_as(behaviour, sha.clone(), *size);
        let mut all = vec!["--no-sysbox"];
        all.extend_from_slice(args);
        let run = install_in_tmpfs(&h.world, "4m", &all);
        let what = format!("{behaviour} size={size:?} {args:?}");
        assert_eq!(run.code, *code, "{what}: {run}");
        assert!(run.stderr.contains(message.as_str()), "{what}: {run}");
        let used = used_kib(&run);
        if *code == 0 {
            assert!(run.stdout.contains("left: /"), "{what}: installed: {run}");
            assert!(used < 1024, "{what}: {used} KiB used: {run}");
        } else {
            assert!(
                run.stdout.contains("left:\n"),
                "{what}: nothing may be left: {run}"
            );
            assert!(
                used < 64,
                "{what}: {used} KiB used, the disk was written: {run}"
            );
        }
    }
    // The endless server with a pin of other bytes: stopped at the size,
    // then refused by the sha256 (exit 5), nothing left.
    h.pin_as("endless", "0".repeat(64), Some(len));
    let run = install_in_tmpfs(&h.world, "4m", &["--no-sysbox"]);
    assert_eq!(run.code, 5, "{run}");
    assert!(
        run.stderr.contains(&format!("({len} bytes)")),
        "stopped at the size: {run}"
    );
    assert!(run.stdout.contains("left:\n"), "{run}");
}

/// An HTTPS mirror whose certificate comes from a private CA: refused
/// (final, no HTTP request made) until the CA is in the system store, then
/// trusted through it. Tried with `SSL_CERT_FILE`, and, as root, with the
/// store where Debian keeps it (`/etc/ssl/certs/ca-certificates.crt`, on a
/// tmpfs over `/etc/ssl` in a private mount namespace), found by the same
/// probing as OpenSSL's. The sha256 pin still decides what is installed.
#[test]
fn a_private_ca_mirror_is_trusted_through_the_system_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(ca) = PrivateCa::make(tmp.path()) else {
        eprintln!("SKIPPED: cannot make a CA with openssl (apt-get install openssl)");
        return;
    };
    let h = Hostile::with_server(
        64 * 1024,
        Server::start_tls(ca.cert.clone(), ca.key.clone()),
    );
    h.pin("files", true);
    assert!(h.server.url("files", TGZ).starts_with("https://127.0.0.1:"));

    let (run, _) = h.run(&[]);
    assert_eq!(run.code, 4, "{run}");
    assert!(run.stderr.contains("TLS"), "{run}");
    assert!(run.stderr.contains("update-ca-certificates"), "{run}");
    assert!(
        !run.stderr.contains("attempt 1 failed"),
        "TLS failures are final: {run}"
    );
    assert_eq!(h.server.total_hits(), 0, "no request without trust");
    assert!(!run.stderr.contains("plain http"), "{run}");

    let out = h
        .world
        .command(&["--no-sysbox"])
        .env("SSL_CERT_FILE", &ca.ca_pem)
        .output()
        .expect("run");
    let run = Run::from(out);
    assert_eq!(run.code, 0, "SSL_CERT_FILE: {run}");
    assert_eq!(h.server.total_hits(), 1);
    h.assert_installed();

    if !is_root() || !Path::new("/etc/ssl").is_dir() {
        eprintln!("SKIPPED the /etc/ssl part: needs root and /etc/ssl");
        return;
    }
    std::fs::remove_dir_all(&h.world.store).expect("fresh store");
    let script = r#"mount -t tmpfs dockyard-test-ssl /etc/ssl || exit 90
mkdir /etc/ssl/certs && cp "$1" /etc/ssl/certs/ca-certificates.crt || exit 91
shift
exec "$@""#;
    let bin = env!("CARGO_BIN_EXE_dockyard");
    let args: Vec<&std::ffi::OsStr> = vec![
        ca.ca_pem.as_os_str(),
        bin.as_ref(),
        "install".as_ref(),
        "--manifest".as_ref(),
        h.world.manifest.as_os_str(),
        "--store".as_ref(),
        h.world.store.as_os_str(),
        "--no-sysbox".as_ref(),
    ];
    let run = in_private_mounts(
        script,
        &args,
        &[("DOCKYARD_INSTANCES_DIR", &h.world.instances)],
    );
    assert_eq!(run.code, 0, "system store: {run}");
    assert_eq!(h.server.total_hits(), 2);
    h.assert_installed();
}

/// Off a terminal: one line per artifact, when it is done, with size, time
/// and rate; no percentages, no carriage returns. And one warning for the
/// plain-http URLs, however many there are.
#[test]
fn off_a_terminal_each_artifact_gets_one_line_and_http_one_warning() {
    let f = Fixture::new();
    f.pin("files", "files");
    let run = f.world.run(&[]);
    assert_eq!(run.code, 0, "{run}");
    for name in [TGZ, DEB] {
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with(&format!("{name}:")))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {run}");
        let line = lines[0];
        assert!(
            line.contains(" in ") && line.contains("/s") && line.ends_with("downloaded"),
            "{line}"
        );
    }
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('%'),
        "{run}"
    );
    assert_eq!(run.stderr.matches("is plain http://").count(), 1, "{run}");
}

/// On a terminal (a pty through `script`): one line redrawn in place with
/// bytes, rate and ETA, then the summary.
#[test]
fn on_a_terminal_progress_is_one_redrawn_line_with_rate_and_eta() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no script(1) (util-linux)");
        return;
    }
    let h = Hostile::new(192 * 1024);
    h.pin("rate=98304", true);
    let cmd = format!(
        "{} install --manifest {} --store {} --no-sysbox",
        env!("CARGO_BIN_EXE_dockyard"),
        h.world.manifest.display(),
        h.world.store.display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("DOCKYARD_INSTANCES_DIR", &h.world.instances)
        .env_remove("SSL_CERT_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{run}");
    let redraws = run.stdout.matches(&format!("\r{TGZ}  ")).count();
    assert!(redraws >= 3, "{redraws} redraws: {:?}", run.stdout);
    assert!(run.stdout.contains("ETA 0:0"), "{:?}", run.stdout);
    assert!(run.stdout.contains("KiB/s"), "{:?}", run.stdout);
    assert!(
        run.stdout.contains(&format!("{TGZ}: ")),
        "summary: {:?}",
        run.stdout
    );
    h.assert_installed();
}

#[test]
fn help_documents_the_download_limits_and_their_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_dockyard"))
        .args(["install", "--help"])
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--connect-timeout <SECS>",
        "[env: DOCKYARD_CONNECT_TIMEOUT=]",
        "[default: 30]",
        "--idle-timeout <SECS>",
        "[env: DOCKYARD_IDLE_TIMEOUT=]",
        "--min-rate <RATE>",
        "[default: 16K]",
        "--rate-window <SECS>",
        "[default: 60]",
        "--max-size <BYTES>",
        "[default: 512M]",
        "SSL_CERT_FILE",
    ] {
        assert!(help.contains(want), "{want} missing from:\n{help}");
    }
}

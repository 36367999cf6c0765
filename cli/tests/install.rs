//! `dockyard install` end to end: the real binary against a real HTTP
//! server on 127.0.0.1, fixture artifacts built here. Run as root in CI
//! (the disk-full case mounts a tmpfs in a private mount namespace).

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
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
                },
                Pin {
                    kind: "sysbox",
                    version: SYSBOX_VERSION,
                    url: self.server.url(sysbox_behaviour, DEB),
                    sha256: sha256(&self.deb),
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
    assert!(run.stderr.contains("attempt 1 of 4 failed"), "{run}");
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
        }],
    );
    let run = f.world.run(&["--no-docker"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("has no sysbox-mgr, sysbox-fs"), "{run}");
    assert!(!f.world.store.join("sysbox").join(SYSBOX_VERSION).exists());
    assert_eq!(f.world.staging(), Vec::<String>::new());
}

/// Waits until a download file in staging has bytes, or panics.
fn wait_for_partial_download(world: &World) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let staging = world.store.join(".staging");
        let partial = std::fs::read_dir(&staging)
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| {
                std::fs::read_dir(d.path().join("downloads"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|f| f.metadata().map(|m| m.len() > 0).unwrap_or(false))
            });
        if partial {
            return;
        }
        assert!(Instant::now() < deadline, "the download never started");
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
    wait_for_partial_download(&f.world);
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(!f.world.store.join("docker").join(DOCKER_VERSION).exists());
    assert_eq!(
        f.world.staging().len(),
        1,
        "the killed install's staging dir remains"
    );

    let run = f.world.run(&["--no-sysbox"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("leftover staging"), "{run}");
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

#[test]
fn disk_full_fails_cleanly() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { nix::libc::geteuid() } != 0 {
        eprintln!("SKIPPED disk_full_fails_cleanly: needs root to mount a tmpfs (CI runs as root)");
        return;
    }
    let mut f = Fixture::new();
    big_docker(&mut f, 2);
    f.pin("files", "files");
    let small = f.world.tmp.path().join("small");
    std::fs::create_dir(&small).expect("mkdir");
    let store = small.join("store");
    // A private mount namespace: the tmpfs disappears with the process.
    let script = r#"mount -t tmpfs -o size=1m dockyard-test "$1" || exit 90
"$2" install --manifest "$3" --store "$1/store" --no-sysbox
rc=$?
echo "left:" $(find "$1/store/docker" "$1/store/.staging" -mindepth 1)
exit $rc"#;
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&small)
        .arg(env!("CARGO_BIN_EXE_dockyard"))
        .arg(&f.world.manifest)
        .env("DOCKYARD_INSTANCES_DIR", &f.world.instances)
        .output()
        .expect("unshare (util-linux)");
    let run = Run::from(out);
    assert_ne!(run.code, 90, "could not mount a tmpfs: {run}");
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("No space left on device"), "{run}");
    assert!(run.stderr.contains("the disk is full"), "{run}");
    assert_eq!(run.stdout.trim_end(), "left:", "nothing may be left: {run}");
    assert!(!store.exists(), "the tmpfs was private to the namespace");
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
    let corrupt = f.world.run(&["--from", dir.to_str().expect("utf8")]);
    assert_eq!(corrupt.code, 5, "{corrupt}");
    assert!(corrupt.stderr.contains(&sha256(b"not a deb")), "{corrupt}");

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

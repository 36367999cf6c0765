//! `dockyard install --distro`: Docker from the distribution's packages,
//! given in a directory (`--debs`) or fetched by `apt-get download` (here
//! a stand-in on PATH), laid out in the versioned store under
//! `UPSTREAM-DISTRO`. Package fixtures are built with dpkg-deb, with the
//! paths Debian's docker.io, containerd, runc and tini use.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// (package, version, files in it)
const PACKAGES: [(&str, &str, &[&str]); 4] = [
    (
        "docker.io",
        "20.10.24+dfsg1-1+deb12u1+b6",
        &[
            "usr/sbin/dockerd",
            "usr/bin/docker",
            "usr/sbin/docker-proxy",
        ],
    ),
    (
        "containerd",
        "1.6.20~ds1-1+deb12u3",
        &[
            "usr/bin/containerd",
            "usr/bin/containerd-shim-runc-v2",
            "usr/bin/ctr",
        ],
    ),
    ("runc", "1.1.5+ds1-1+deb12u1", &["usr/sbin/runc"]),
    (
        "tini",
        "0.19.0-1+b3",
        &["usr/bin/tini", "usr/bin/tini-static"],
    ),
];

fn deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

fn os_id() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("ID="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "distro".into())
}

/// Builds the four packages into `dir`, each binary a script naming itself
/// (and `build`, so two builds of the same versions differ).
fn debs(work: &Path, dir: &Path, build: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for (package, version, files) in PACKAGES {
        let root = work.join(format!("root-{package}"));
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: {package}\nVersion: {version}\nArchitecture: {}\nMaintainer: t <t@example.invalid>\nDescription: fixture\n",
                deb_arch()
            ),
        )
        .unwrap();
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("#!/bin/sh\necho {f}{build}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // The links the real packages ship beside the binaries.
        if package == "runc" {
            std::fs::create_dir_all(root.join("usr/bin")).unwrap();
            std::os::unix::fs::symlink("../sbin/runc", root.join("usr/bin/runc")).unwrap();
        }
        let out = dir.join(format!("{package}_{version}_{}.deb", deb_arch()));
        let status = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&root)
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("dpkg-deb (packaging/install-deps.sh installs it)");
        assert!(status.success());
    }
}

fn dockyard(store: &Path, args: &[&str], path: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dockyard"));
    c.arg("install").arg("--store").arg(store).args(args);
    if let Some(p) = path {
        c.env(
            "PATH",
            format!(
                "{}:{}",
                p.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    }
    c.stdin(Stdio::null()).output().expect("run dockyard")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn distro_packages_from_a_directory_become_a_store_version() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("debs");
    debs(tmp.path(), &dir, "");
    let store = tmp.path().join("store");
    let version = format!("20.10.24+dfsg1-{}", os_id());
    let o = dockyard(&store, &["--distro", "--debs", dir.to_str().unwrap()], None);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let bin = store.join("docker").join(&version).join("bin");
    assert_eq!(
        text(&o.stdout),
        format!(
            "docker {version} installed in {} from docker.io 20.10.24+dfsg1-1+deb12u1+b6, \
             containerd 1.6.20~ds1-1+deb12u3, runc 1.1.5+ds1-1+deb12u1, tini 0.19.0-1+b3: \
             containerd containerd-shim-runc-v2 ctr docker docker-init docker-proxy dockerd \
             runc; use it with DockerVersion={version}\n",
            bin.display()
        )
    );
    // docker-init is tini's static build; runc the file, not its link.
    assert_eq!(
        std::fs::read_to_string(bin.join("docker-init")).unwrap(),
        "#!/bin/sh\necho usr/bin/tini-static\n"
    );
    assert!(!bin.join("tini").exists());
    let staging: Vec<_> = std::fs::read_dir(store.join(".staging")).unwrap().collect();
    assert!(staging.is_empty(), "staging left: {staging:?}");
    // The same packages again: verified, nothing changed. `--list` shows it.
    let o = dockyard(&store, &["--distro", "--debs", dir.to_str().unwrap()], None);
    assert!(o.status.success());
    assert!(
        text(&o.stdout).contains("is already installed and verified"),
        "{}",
        text(&o.stdout)
    );
    // Another build of the same versions: refused, never rewritten.
    let other = tmp.path().join("other");
    debs(&tmp.path().join("w2"), &other, " (rebuilt)");
    let o = dockyard(
        &store,
        &["--distro", "--debs", other.to_str().unwrap()],
        None,
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("was installed from other packages"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn a_missing_package_or_a_failing_apt_is_one_line_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("debs");
    debs(tmp.path(), &dir, "");
    std::fs::remove_file(dir.join(format!("runc_1.1.5+ds1-1+deb12u1_{}.deb", deb_arch()))).unwrap();
    let store = tmp.path().join("store");
    let o = dockyard(&store, &["--distro", "--debs", dir.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "dockyard: error: {} has no runc .deb for {} (named PACKAGE_VERSION_{}.deb, as \
             apt-get download names them); Dockyard needs docker.io, containerd, runc, tini\n",
            dir.display(),
            std::env::consts::ARCH,
            deb_arch()
        )
    );

    // No archive reachable: apt-get's last error, once, and what to do.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let apt = bin.join("apt-get");
    std::fs::write(
        &apt,
        "#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9; do echo \"W: noise $i\" >&2; done\n\
         echo 'E: Unable to locate package docker.io' >&2\nexit 100\n",
    )
    .unwrap();
    std::fs::set_permissions(&apt, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = dockyard(&store, &["--distro"], Some(&bin));
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "fetching docker.io containerd runc tini with apt-get download",
            "dockyard: error: apt-get download docker.io containerd runc tini failed (exit \
             status: 100): E: Unable to locate package docker.io; run `apt-get update` if its \
             lists are old, or fetch the four .debs elsewhere and give them with --debs DIR",
        ],
        "{err}"
    );
    let left: Vec<PathBuf> = std::fs::read_dir(store.join(".staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The distribution's rootlesskit package (Debian 12's layout) into `dir`.
fn rootlesskit_deb(work: &Path, dir: &Path) {
    let root = work.join("root-rootlesskit");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: rootlesskit\nVersion: 1.1.0-1+b4\nArchitecture: {}\nMaintainer: t <t@example.invalid>\nDescription: fixture\n",
            deb_arch()
        ),
    )
    .unwrap();
    for f in [
        "usr/bin/rootlesskit",
        "usr/bin/rootlessctl",
        "usr/bin/rootlesskit-docker-proxy",
    ] {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("#!/bin/sh\necho {f}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = dir.join(format!("rootlesskit_1.1.0-1+b4_{}.deb", deb_arch()));
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .expect("dpkg-deb");
    assert!(status.success());
}

/// An `apt-get` stand-in: `download` copies the named packages' .debs
/// from `archive` (failing, as apt does, for one it lacks); `install`
/// logs its arguments.
fn fake_apt(bin: &Path, archive: &Path, log: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    let apt = bin.join("apt-get");
    std::fs::write(
        &apt,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n\
             download) shift; for a in \"$@\"; do case \"$a\" in -*|APT::*) continue;; esac\n\
               f=$(ls {archive}/\"$a\"_*.deb 2>/dev/null) || {{ echo \"E: Unable to locate package $a\" >&2; exit 100; }}\n\
               cp $f .; done;;\n\
             install) echo \"$*\" >> {log};;\n\
             esac\n",
            archive = archive.display(),
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&apt, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What rootless instances need from the host that this host lacks, by
/// package, as the installer decides it.
fn host_lacks() -> Vec<&'static str> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .collect();
    let has = |n: &str| dirs.iter().any(|d| d.join(n).is_file());
    let mut out = Vec::new();
    if !has("slirp4netns") {
        out.push("slirp4netns");
    }
    if !has("newuidmap") || !has("newgidmap") {
        out.push("uidmap");
    }
    out
}

/// The archive's rootlesskit goes into the store beside dockerd,
/// executable, without rootlessctl; the host's missing packages are
/// apt-get installed; a version installed without rootlesskit is kept
/// and said to lack it.
#[test]
fn rootlesskit_joins_the_store_and_the_host_gets_what_it_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    debs(tmp.path(), &archive, "");
    let store = tmp.path().join("store");
    let version = format!("20.10.24+dfsg1-{}", os_id());
    let bin = store.join("docker").join(&version).join("bin");

    // Installed first from a DIR without rootlesskit: noted, no apt.
    let o = dockyard(
        &store,
        &["--distro", "--debs", archive.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr)
            .contains("has no rootlesskit .deb: this Docker will not run rootless instances"),
        "{}",
        text(&o.stderr)
    );
    assert!(!bin.join("rootlesskit").exists());

    // From the archive, which has it: the installed version is kept.
    rootlesskit_deb(tmp.path(), &archive);
    let fake = tmp.path().join("bin");
    let log = tmp.path().join("apt-install.log");
    fake_apt(&fake, &archive, &log);
    let o = dockyard(&store, &["--distro"], Some(&fake));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("is already installed and verified"));
    assert!(
        text(&o.stderr).contains(&format!(
            "was installed without rootlesskit, so it does not run rootless instances \
             (Rootless=yes); while no instance uses it, `dockyard install --remove \
             docker/{version}` and run this again to add it"
        )),
        "{}",
        text(&o.stderr)
    );

    // Removed and installed again: with rootlesskit and its proxy.
    let o = dockyard(&store, &["--remove", &format!("docker/{version}")], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let _ = std::fs::remove_file(&log);
    let o = dockyard(&store, &["--distro"], Some(&fake));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("tini 0.19.0-1+b3, rootlesskit 1.1.0-1+b4: containerd"),
        "{}",
        text(&o.stdout)
    );
    for f in ["rootlesskit", "rootlesskit-docker-proxy"] {
        let mode = std::fs::metadata(bin.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{f}");
    }
    assert!(!bin.join("rootlessctl").exists());
    let lacks = host_lacks();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    if lacks.is_empty() {
        assert_eq!(logged, "");
    } else {
        assert_eq!(
            logged,
            format!(
                "install -y -q --no-install-recommends {}\n",
                lacks.join(" ")
            )
        );
    }
    // Again: verified, nothing changed.
    let o = dockyard(&store, &["--distro"], Some(&fake));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("is already installed and verified"));
    assert!(!text(&o.stderr).contains("without rootlesskit"));
}

//! `dockyard install --distro [--debs DIR]`: a Docker build from the
//! distribution's own packages (`docker.io`, `containerd`, `runc`, `tini`,
//! and `rootlesskit` when the archive or DIR has it), for hosts whose only
//! reachable source is the distribution's archive.
//!
//! Rootless instances (Rootless=yes) also run `slirp4netns`, `newuidmap`
//! and `newgidmap` from the host; those are the host's own packages
//! (`slirp4netns`, `uidmap`: the id mappers must be installed setuid root,
//! which only the package manager does), so they are `apt-get install`ed,
//! only when missing and never from `--debs` (offline: a note says what to
//! install).
//!
//! The packages are fetched with `apt-get download` (no `dpkg`: their
//! maintainer scripts would enable the host's own docker.service) or taken
//! from DIR, their binaries are unpacked as the sysbox `.deb` is, and the
//! result goes into the same versioned store, through the same staging and
//! atomic rename, under a version that says where it came from:
//! `UPSTREAM-DISTRO`, e.g. `20.10.24+dfsg1-debian` for Debian's
//! `docker.io 20.10.24+dfsg1-1+deb12u1+b6`. Instances use it with
//! `DockerVersion=` that name. The record pins each package by its sha256,
//! so a re-run with the same packages verifies and changes nothing, and one
//! with other packages of the same upstream version is refused (installed
//! versions are never rewritten).

use super::store::{self, Record, RecordedArtifact, State, Store};
use super::{lock, manifest_select, tar_take, unpack_deb, verify};
use crate::error::{Exit, Failure, Result};
use dockyard_model::manifest::Kind;
use dockyard_model::{installed, paths};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The packages, in the order they are reported.
pub const PACKAGES: [&str; 4] = ["docker.io", "containerd", "runc", "tini"];

/// The package whose `rootlesskit` a rootless instance runs from the
/// store version's bin directory. Optional: rootful instances do without,
/// and older archives lack it.
pub const ROOTLESSKIT: &str = "rootlesskit";

/// What is taken from it: `rootlesskit` must be there;
/// `rootlesskit-docker-proxy` is taken when the package has it (1.x does,
/// 2.x dropped it).
const ROOTLESS_BINARIES: [(&str, &[&str]); 2] = [
    ("rootlesskit", &["usr/bin/rootlesskit"]),
    (
        "rootlesskit-docker-proxy",
        &["usr/bin/rootlesskit-docker-proxy"],
    ),
];

/// Each binary the store's Docker layout holds (unpack_tgz's list), the
/// package it comes from and its path in that package's data (Debian's
/// first, then Ubuntu's). Only regular files: the links the packages also
/// ship (`/usr/bin/runc`, `/usr/bin/docker-init`) are not taken.
const BINARIES: [(&str, &str, &[&str]); 8] = [
    (
        "dockerd",
        "docker.io",
        &["usr/sbin/dockerd", "usr/bin/dockerd"],
    ),
    ("docker", "docker.io", &["usr/bin/docker"]),
    (
        "docker-proxy",
        "docker.io",
        &[
            "usr/sbin/docker-proxy",
            "usr/bin/docker-proxy",
            "usr/libexec/docker/docker-proxy",
        ],
    ),
    ("containerd", "containerd", &["usr/bin/containerd"]),
    (
        "containerd-shim-runc-v2",
        "containerd",
        &["usr/bin/containerd-shim-runc-v2"],
    ),
    ("ctr", "containerd", &["usr/bin/ctr"]),
    ("runc", "runc", &["usr/sbin/runc"]),
    // dockerd runs `docker-init` for `--init`; Debian's is tini's static build.
    ("docker-init", "tini", &["usr/bin/tini-static"]),
];

/// One package file: `PACKAGE_VERSION_ARCH.deb`, as apt-get download and
/// the archive name them (an epoch's ':' is written `%3a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deb {
    pub path: PathBuf,
    pub package: String,
    pub version: String,
    pub arch: String,
}

pub fn parse_name(path: &Path) -> Option<Deb> {
    let name = path.file_name()?.to_str()?.strip_suffix(".deb")?;
    let mut parts = name.splitn(3, '_');
    let (package, version, arch) = (parts.next()?, parts.next()?, parts.next()?);
    Some(Deb {
        path: path.to_path_buf(),
        package: package.to_string(),
        version: version.replace("%3a", ":").replace("%3A", ":"),
        arch: arch.to_string(),
    })
}

/// The store's version for a docker.io package version on `distro`:
/// the upstream part (no epoch, no Debian revision) and the distribution.
pub fn store_version(package_version: &str, distro: &str) -> String {
    let no_epoch = package_version
        .split_once(':')
        .map_or(package_version, |(_, v)| v);
    let upstream = no_epoch.rsplit_once('-').map_or(no_epoch, |(u, _)| u);
    format!("{upstream}-{distro}")
}

/// `ID=` of /etc/os-release (`debian`, `ubuntu`), else `distro`.
fn distro_id() -> String {
    std::fs::read_to_string(dockyard_model::paths::OS_RELEASE)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("ID="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .filter(|id| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        .unwrap_or_else(|| "distro".to_string())
}

/// The Debian name of the host's architecture.
fn deb_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The four packages in `dir`, one of each, of the host's architecture,
/// and rootlesskit when `dir` has it.
pub fn find(dir: &Path, arch: &str) -> Result<BTreeMap<&'static str, Deb>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Failure::io("cannot list", dir, &e))?;
    let mut found: BTreeMap<&'static str, Vec<Deb>> = BTreeMap::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let Some(deb) = parse_name(&entry.path()) else {
            continue;
        };
        if deb.arch != deb_arch(arch) {
            continue;
        }
        if let Some(p) = PACKAGES
            .iter()
            .chain([&ROOTLESSKIT])
            .find(|p| **p == deb.package)
        {
            found.entry(p).or_default().push(deb);
        }
    }
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for p in PACKAGES.into_iter().chain([ROOTLESSKIT]) {
        match found.remove(p).unwrap_or_default().as_slice() {
            [one] => {
                out.insert(p, one.clone());
            }
            [] if p == ROOTLESSKIT => {}
            [] => missing.push(p),
            many => {
                return Err(Failure::new(
                    Exit::Usage,
                    format!(
                        "{} holds {} {p} packages ({}); leave one",
                        dir.display(),
                        many.len(),
                        many.iter()
                            .map(|d| d.version.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        }
    }
    if !missing.is_empty() {
        return Err(Failure::failed(format!(
            "{} has no {} .deb for {} (named PACKAGE_VERSION_{}.deb, as apt-get download \
             names them); Dockyard needs {}",
            dir.display(),
            missing.join(", "),
            arch,
            deb_arch(arch),
            PACKAGES.join(", ")
        )));
    }
    Ok(out)
}

/// `apt-get download` of the four packages into `dir`. Its output is
/// kept; on failure the admin gets one line: its last error and what to do.
fn download(dir: &Path) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    // Written by root into a root-only directory: no sandbox user needed.
    cmd.args(["download", "-q", "-o", "APT::Sandbox::User=root"])
        .args(PACKAGES)
        .current_dir(dir)
        .env("DEBIAN_FRONTEND", "noninteractive");
    eprintln!("fetching {} with apt-get download", PACKAGES.join(" "));
    let out = cmd.output().map_err(|e| {
        Failure::failed(format!(
            "cannot run apt-get ({e}): --distro needs apt; on other hosts give the four .debs \
             with --debs DIR"
        ))
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("E:"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no message");
    Err(Failure::failed(format!(
        "apt-get download {} failed ({}): {last}; run `apt-get update` if its lists are old, or \
         fetch the four .debs elsewhere and give them with --debs DIR",
        PACKAGES.join(" "),
        out.status
    )))
}

/// `apt-get download rootlesskit` into `dir`, on its own: an archive
/// without it still gives a Docker for rootful instances. `false` (with a
/// note saying what that means) when it could not be fetched.
fn download_rootlesskit(dir: &Path) -> bool {
    let out = Command::new("apt-get")
        .args([
            "download",
            "-q",
            "-o",
            "APT::Sandbox::User=root",
            ROOTLESSKIT,
        ])
        .current_dir(dir)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| l.starts_with("E:"))
                .unwrap_or("no message");
            eprintln!(
                "note: apt-get download {ROOTLESSKIT} failed ({}): {last}; this Docker will not \
                 run rootless instances (Rootless=yes)",
                o.status
            );
            false
        }
        Err(e) => {
            eprintln!("note: cannot run apt-get download {ROOTLESSKIT}: {e}");
            false
        }
    }
}

/// The host packages a rootless instance's programs come from, for those
/// the host lacks (the model's list of programs and their packages).
fn missing_host_packages() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for p in installed::Program::ALL {
        let package = p.package(installed::Distro::Debian);
        if paths::find_program(p.name(), paths::Search::PathThenAdminDirs).is_err()
            && !out.contains(&package)
        {
            out.push(package);
        }
    }
    out
}

/// `apt-get install` of what rootless instances need from the host and
/// the host lacks. Its failure is a warning: the Docker in the store is
/// complete, and rootful instances need none of it.
fn host_packages(offline: bool) {
    let wanted = missing_host_packages();
    if wanted.is_empty() {
        return;
    }
    let list = wanted.join(" ");
    if offline {
        eprintln!(
            "note: rootless instances (Rootless=yes) also need {list} on the host, which it \
             lacks: run `apt-get install {list}`"
        );
        return;
    }
    eprintln!("installing {list} with apt-get install (rootless instances run them)");
    let out = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&wanted)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output();
    let why = match out {
        Ok(o) if o.status.success() => return,
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| l.starts_with("E:"))
                .unwrap_or("no message")
                .to_string();
            format!("failed ({}): {last}", o.status)
        }
        Err(e) => format!("could not run: {e}"),
    };
    eprintln!(
        "warning: apt-get install {list} {why}; rootless instances cannot start until it \
         is installed: run `apt-get install {list}`"
    );
}

pub fn install(store: &Store, debs: Option<&Path>) -> Result<()> {
    let arch = manifest_select::host_arch()?;
    store.ensure()?;
    let _lock = lock::StoreLock::acquire(&store.root)?;
    store.clean_staging(&[])?;
    // Downloads go into the staging area: same file system, root-only,
    // removed on the way out (or by the next run after a crash).
    let fetched = match debs {
        Some(_) => None,
        None => {
            let dir = store
                .root
                .join(store::STAGING_DIR)
                .join(format!("apt-{}", std::process::id()));
            std::fs::create_dir(&dir).map_err(|e| Failure::io("cannot create", &dir, &e))?;
            Some(TempDir(dir))
        }
    };
    if let Some(dir) = &fetched {
        download(&dir.0)?;
        download_rootlesskit(&dir.0);
    }
    let dir = debs.unwrap_or_else(|| fetched.as_ref().map_or(Path::new("."), |d| &d.0));
    let found = find(dir, &arch)?;
    let with_rootlesskit = found.contains_key(ROOTLESSKIT);
    if !with_rootlesskit && debs.is_some() {
        eprintln!(
            "note: {} has no {ROOTLESSKIT} .deb: this Docker will not run rootless instances \
             (Rootless=yes); add the distribution's {ROOTLESSKIT} package there to have it",
            dir.display()
        );
    }
    let packages: Vec<&'static str> = PACKAGES
        .into_iter()
        .chain(with_rootlesskit.then_some(ROOTLESSKIT))
        .collect();
    let docker = &found["docker.io"];
    let version = store_version(&docker.version, &distro_id());
    dockyard_model::installed::check_version(&version)
        .map_err(|e| Failure::failed(format!("docker.io {}: {e}", docker.version)))?;
    let name = format!("docker {version}");
    let mut artifacts = Vec::new();
    for &p in &packages {
        let deb = &found[p];
        let sha256 = verify::hash_file(&deb.path)
            .map_err(|e| Failure::io("cannot read", &deb.path, &e))?
            .sha256;
        artifacts.push(RecordedArtifact {
            kind: p.to_string(),
            url: format!("deb:{}_{}_{}", deb.package, deb.version, deb.arch),
            sha256,
        });
    }
    let dest = store.version_dir(Kind::Docker, &version);
    match store.state(Kind::Docker, &version) {
        State::Absent => {}
        State::Installed(record) => {
            // Installed before Dockyard took rootlesskit (or from a DIR
            // without it): the same Docker, verified, and never rewritten.
            let without_rootlesskit: Vec<RecordedArtifact> = artifacts
                .iter()
                .filter(|a| a.kind != ROOTLESSKIT)
                .cloned()
                .collect();
            let lacks_rootlesskit = record.artifacts != artifacts
                && with_rootlesskit
                && record.artifacts == without_rootlesskit;
            if record.artifacts != artifacts && !lacks_rootlesskit {
                return Err(Failure::new(
                    Exit::Refused,
                    format!(
                        "{name} in {} was installed from other packages ({}) than these ({}); \
                         installed versions are never rewritten. If no instance uses it, \
                         `dockyard install --remove docker/{version}` and install again",
                        dest.display(),
                        describe(&record.artifacts),
                        describe(&artifacts)
                    ),
                ));
            }
            store.verify_files(Kind::Docker, &record)?;
            println!(
                "{name} is already installed and verified in {}; nothing changed",
                dest.join("bin").display()
            );
            if lacks_rootlesskit {
                eprintln!(
                    "note: {name} was installed without {ROOTLESSKIT}, so it does not run \
                     rootless instances (Rootless=yes); while no instance uses it, \
                     `dockyard install --remove docker/{version}` and run this again to add it"
                );
            }
            host_packages(debs.is_some());
            return Ok(());
        }
        State::Unmanaged(why) => {
            return Err(store::refuse_unmanaged(&dest, &why));
        }
    }
    let staging = store.stage(Kind::Docker, &version)?;
    let mut files = BTreeMap::new();
    for &p in &packages {
        let wanted: Vec<(&str, &[&str])> = if p == ROOTLESSKIT {
            ROOTLESS_BINARIES.to_vec()
        } else {
            BINARIES
                .iter()
                .filter(|(_, pkg, _)| *pkg == p)
                .map(|(bin, _, paths)| (*bin, *paths))
                .collect()
        };
        // What the package must hold: all of it, but for rootlesskit's
        // optional docker proxy.
        let required: Vec<&str> = wanted
            .iter()
            .map(|(b, _)| *b)
            .filter(|b| *b != "rootlesskit-docker-proxy")
            .collect();
        let pick = |parts: &[String]| -> Option<String> {
            let path = parts.join("/");
            wanted
                .iter()
                .find(|(_, paths)| paths.contains(&path.as_str()))
                .map(|(bin, _)| bin.to_string())
        };
        let taken = unpack_deb::with_data(&found[p].path, |tar, what| {
            let taken = tar_take::take(
                tar,
                what,
                tar_take::AbsoluteLinks::ImageRoot,
                &staging.bin,
                &pick,
            )?;
            let missing = tar_take::missing(&taken, &required);
            if !missing.is_empty() {
                return Err(Failure::failed(format!(
                    "{what} has no {} (looked for {}); it is not the {p} package Dockyard knows",
                    missing.join(", "),
                    wanted
                        .iter()
                        .filter(|(b, _)| missing.contains(b))
                        .flat_map(|(_, paths)| paths.iter().map(|x| format!("/{x}")))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )));
            }
            Ok(taken)
        })?;
        files.extend(taken);
    }
    let record = Record {
        kind: "docker".to_string(),
        version: version.clone(),
        arch,
        artifacts,
        files: store::record_files(&files),
    };
    let dest = store.commit(staging, &record, Kind::Docker)?;
    println!(
        "{name} installed in {} from {}: {}; use it with DockerVersion={version}",
        dest.join("bin").display(),
        packages
            .iter()
            .map(|p| format!("{p} {}", found[p].version))
            .collect::<Vec<_>>()
            .join(", "),
        files.keys().cloned().collect::<Vec<_>>().join(" ")
    );
    host_packages(debs.is_some());
    Ok(())
}

fn describe(artifacts: &[RecordedArtifact]) -> String {
    artifacts
        .iter()
        .map(|a| a.url.trim_start_matches("deb:").to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The download directory, removed when the install ends either way.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_say_where_they_came_from() {
        let d = parse_name(Path::new(
            "/x/docker.io_20.10.24+dfsg1-1+deb12u1+b6_amd64.deb",
        ))
        .expect("a package name");
        assert_eq!(
            (d.package.as_str(), d.version.as_str(), d.arch.as_str()),
            ("docker.io", "20.10.24+dfsg1-1+deb12u1+b6", "amd64")
        );
        assert_eq!(store_version(&d.version, "debian"), "20.10.24+dfsg1-debian");
        assert_eq!(
            store_version("5:24.0.7-0ubuntu2~22.04.1", "ubuntu"),
            "24.0.7-ubuntu"
        );
        assert_eq!(store_version("1.2.3", "debian"), "1.2.3-debian");
        let e = parse_name(Path::new("docker.io_1%3a2.0-1_arm64.deb")).expect("epoch");
        assert_eq!(e.version, "1:2.0-1");
        assert_eq!(parse_name(Path::new("notes.txt")), None);
    }
}

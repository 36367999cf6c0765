//! `dockyard verify NAME`: a smoke test after install. One line per check,
//! `ok`, `FAIL` with the reason, or `SKIP` for a check this user cannot
//! make (the firewall and the socket need root); exit 1 when any check
//! failed. A skipped check is not a failure: it was not made.
//!
//! The container check never contacts a registry: it runs `true` in an
//! image the instance already has, or, when there is none (or it has no
//! `true`), loads a one-file image made on the spot from the instance's
//! own statically linked `docker-init` (tini) and runs `docker-init
//! --version`; that image is removed again afterwards.

use crate::error::{Exit, Failure, Result};
use crate::probe::host;
use crate::probe::http::{self, HttpError, Response};
use dockyard_model::firewall::{Audit, Table};
use dockyard_model::{paths, Instance, InstanceName};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The instance to check
    pub name: String,
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  no check failed (SKIP lines name checks that need root; run as root to make them)
  1  at least one check failed (each FAIL line says why)
  2  usage error: bad NAME";

const API_TIMEOUT: Duration = Duration::from_secs(10);
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
pub const VERIFY_IMAGE: &str = "dockyard-verify:1";

#[derive(Default)]
struct Report {
    failed: usize,
    skipped: usize,
    total: usize,
}

/// Why a check did not pass: it failed, or it could not be made.
#[derive(Debug)]
enum Problem {
    Fail(String),
    /// Not made, e.g. without root; never counted as a failure.
    Skip(String),
}

impl From<String> for Problem {
    fn from(why: String) -> Problem {
        Problem::Fail(why)
    }
}

/// What could not be read for want of rights is a check not made.
impl From<host::Unknown> for Problem {
    fn from(u: host::Unknown) -> Problem {
        match u {
            host::Unknown::NeedsRoot | host::Unknown::NeedsRootOrGroup(_) => {
                Problem::Skip(u.to_string())
            }
            _ => Problem::Fail(u.to_string()),
        }
    }
}

impl Report {
    fn check(
        &mut self,
        what: &str,
        result: std::result::Result<String, impl Into<Problem>>,
    ) -> bool {
        self.total += 1;
        match result.map_err(Into::into) {
            Ok(detail) => {
                println!("ok   {what}: {detail}");
                true
            }
            Err(Problem::Fail(why)) => {
                self.failed += 1;
                println!("FAIL {what}: {why}");
                false
            }
            Err(Problem::Skip(why)) => {
                self.skipped += 1;
                println!("SKIP {what}: {why}");
                false
            }
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    let name = InstanceName::parse(&args.name).map_err(|e| Failure::new(Exit::Usage, e))?;
    let mut report = Report::default();
    let known = host::known_instances().into_iter().find(|k| k.name == name);
    let inst = match known.as_ref().and_then(|k| k.instance.clone()) {
        Some(i) => i,
        None => {
            let why = match known.and_then(|k| k.conf_error) {
                Some(e) => format!("the conf is invalid: {e}"),
                None => format!("no conf {}/{name}.conf", paths::instances_dir().display()),
            };
            report.check("conf", Err::<String, _>(why));
            return finish(&report);
        }
    };
    report.check("conf", Ok::<_, String>(inst.conf.display().to_string()));
    report.check(
        "unit",
        match host::unit_state(&name.unit()) {
            Ok(u) if u.active == "active" => Ok(format!("{} is active ({})", name.unit(), u.sub)),
            Ok(u) => Err(format!(
                "{} is {}/{} (start it: systemctl start {})",
                name.unit(),
                u.active,
                u.sub,
                name.unit()
            )),
            Err(e) => Err(e.to_string()),
        },
    );
    let socket = PathBuf::from(inst.socket());
    report.check("containerd", containerd(&inst));
    report.check(
        "socket",
        match host::socket_info(&socket) {
            Ok(s) => match s.problem(&name, Some(inst.rootless)) {
                None => Ok(format!(
                    "{} is {}:{} 0660",
                    socket.display(),
                    dockyard_model::rootless::socket_owner(&name, inst.rootless),
                    name.account()
                )),
                Some(p) => Err(Problem::Fail(p)),
            },
            Err(e) => Err(Problem::from(e)),
        },
    );
    let ping = api_checked(&socket, "GET", "/_ping", None).and_then(|r| {
        if r.is_success() && r.text().trim() == "OK" {
            Ok("/_ping answered OK".to_string())
        } else {
            Err(Problem::Fail(format!(
                "/_ping answered HTTP {}: {}",
                r.status,
                r.text().trim()
            )))
        }
    });
    let api_skipped = matches!(ping, Err(Problem::Skip(_)));
    let api_ok = report.check("api", ping);
    if api_ok {
        let version = api(&socket, "GET", "/version", None).and_then(|r| {
            let v = r.json()?;
            match v.get("Version").and_then(Value::as_str) {
                Some(version) => Ok(format!(
                    "dockerd {version}, API {}",
                    v.get("ApiVersion").and_then(Value::as_str).unwrap_or("?")
                )),
                None => Err(format!("/version has no Version: {v}")),
            }
        });
        report.check("version", version);
    }
    report.check("nat", nat_rules(&inst));
    report.check("isolation", isolation_rules(&inst));
    report.check("routes", host_routes(&inst));
    if api_ok {
        report.check("container", run_container(&socket, &inst));
    } else if api_skipped {
        report.check(
            "container",
            Err(Problem::Skip(
                "the API needs root or the instance's group".into(),
            )),
        );
    } else {
        report.check(
            "container",
            Err::<String, _>("not run: the API does not answer".to_string()),
        );
    }
    finish(&report)
}

fn finish(report: &Report) -> Result<()> {
    let skipped = if report.skipped == 0 {
        String::new()
    } else {
        format!(
            "; {} skipped (not made without root: run it as root to make them)",
            report.skipped
        )
    };
    if report.failed == 0 {
        println!(
            "{} of {} checks passed{skipped}",
            report.total - report.skipped,
            report.total
        );
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "{} of {} checks failed{skipped}",
            report.failed, report.total
        )))
    }
}

/// Host routes over the instance's networks (netlink's crossing rule, as
/// `dockyard-network up` applies it at start): a route that appeared since
/// the start, or one the start did not see, fails the check.
fn host_routes(inst: &Instance) -> std::result::Result<String, Problem> {
    if inst.rootless {
        return Ok(
            "rootless: its networks are in its own network namespace, out of the host's routes"
                .into(),
        );
    }
    let nets = inst.own_nets();
    let found = dockyard_netlink::crossing::live_crossings(&nets, &inst.accept_host_routes)
        .map_err(|e| Problem::Fail(format!("cannot read the host's routes: {e}")))?;
    if !found.is_empty() {
        let list: Vec<String> = found.iter().map(ToString::to_string).collect();
        return Err(Problem::Fail(format!(
            "{}; give the instance other networks, or add AcceptHostRoute={} to [Network] if the routed network is meant (dockyard.conf(5))",
            list.join("; "),
            found[0].route.dst
        )));
    }
    let accepted = if inst.accept_host_routes.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = inst
            .accept_host_routes
            .iter()
            .map(ToString::to_string)
            .collect();
        format!(" (AcceptHostRoute= {})", list.join(" "))
    };
    Ok(format!(
        "no host route covers {} or {}{accepted}",
        nets[0], nets[1]
    ))
}

/// [`api`], with "needs root or the group" as a check not made.
fn api_checked(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::result::Result<Response, Problem> {
    let body = body.map(|b| b.to_string());
    http::request(
        socket,
        method,
        path,
        body.as_deref().map(str::as_bytes),
        API_TIMEOUT,
    )
    .map_err(|e| match e {
        HttpError::PermissionDenied(m) => Problem::Skip(format!(
            "{m}; run as root or as a member of the instance's group"
        )),
        e => Problem::Fail(e.to_string()),
    })
}

fn api(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::result::Result<Response, String> {
    api_checked(socket, method, path, body).map_err(|p| match p {
        Problem::Fail(m) | Problem::Skip(m) => m,
    })
}

/// The instance's own containerd runs and listens where dockerd is told to
/// (a rootless dockerd starts its own, in the instance's namespaces).
fn containerd(inst: &Instance) -> std::result::Result<String, String> {
    let unit = if inst.rootless {
        "dockerd's own containerd".to_string()
    } else {
        inst.name.containerd_unit()
    };
    if !inst.rootless {
        match host::unit_state(&unit) {
            Ok(u) if u.active == "active" => {}
            Ok(u) => return Err(format!("{unit} is {}/{}", u.active, u.sub)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let sock = inst.containerd_socket();
    match std::fs::symlink_metadata(&sock) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            Ok(format!("{unit} is active, listening on {sock}"))
        }
        Ok(_) => Err(format!("{sock} is not a socket")),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Ok(format!("{unit} is active ({sock}: needs root to look)"))
        }
        Err(e) => Err(format!("{unit} is active but {sock}: {e}")),
    }
}

/// The outbound NAT: the POSTROUTING jump and the MASQUERADE rules.
fn nat_rules(inst: &Instance) -> std::result::Result<String, Problem> {
    if inst.rootless {
        return Ok(format!(
            "none on the host: rootless, its containers' traffic leaves as sockets of user {}",
            inst.name.account()
        ));
    }
    let (backend, audit) = audit(inst)?;
    let missing: Vec<String> = audit
        .missing
        .iter()
        .filter(|e| e.table == Table::Nat)
        .map(|e| e.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing: {}", missing.join("; ")).into());
    }
    Ok(format!(
        "masquerade of {} and {} in place ({backend})",
        inst.fixed, inst.pool,
    ))
}

/// The instance's rules against what its backend (named first) should hold.
fn audit(inst: &Instance) -> std::result::Result<(&'static str, Audit), Problem> {
    let live = host::LiveRules::default();
    let backend = live.backend_for(&inst.name);
    let live = live
        .of(backend)
        .as_ref()
        .map_err(|e| Problem::from(e.clone()))?;
    let this = host::firewall_subject(inst.network());
    Ok((backend.name(), backend.audit(live, &this)))
}

/// The isolation: every rule of the instance in place exactly once.
fn isolation_rules(inst: &Instance) -> std::result::Result<String, Problem> {
    let (backend, a) = audit(inst)?;
    if !a.is_complete() {
        let mut problems: Vec<String> = a.missing.iter().map(|l| format!("missing {l}")).collect();
        problems.extend(
            a.duplicated
                .iter()
                .map(|(l, n)| format!("{n} copies of {l}")),
        );
        problems.extend(a.stray.iter().map(|l| format!("stray {l}")));
        return Err(problems.join("; ").into());
    }
    if inst.rootless {
        let reach = if inst.reach.is_empty() {
            "no instance's networks".to_string()
        } else {
            inst.reach
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Ok(format!(
            "all {} {backend} rules in place; new connections of user {} only into {reach}, to DNS on the host's own addresses, and to no other instance's networks or host address",
            a.total(),
            inst.name.account()
        ));
    }
    let open = if inst.allowed_nets.is_empty() {
        "no other network".to_string()
    } else {
        inst.allowed_nets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "all {} {backend} rules in place; new connections into {} and {} only from the instance and {open}",
        a.total(),
        inst.bridge.trunc(),
        inst.pool
    ))
}

/// Runs a container to completion and removes it.
fn run_container(socket: &Path, inst: &Instance) -> std::result::Result<String, String> {
    let images = api(socket, "GET", "/images/json", None)?.json()?;
    let present = images
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("RepoTags")?.as_array()?.first()?.as_str())
        .find(|t| *t != "<none>:<none>" && *t != VERIFY_IMAGE)
        .map(str::to_string);
    let mut first_error = None;
    if let Some(image) = &present {
        match run_once(socket, image, &["true"]) {
            Ok(()) => return Ok(format!("ran `true` in local image {image}, exit 0")),
            Err(e) => first_error = Some(format!("{image}: {e}")),
        }
    }
    // No usable local image: a one-file image from the static docker-init.
    let init = Path::new(&paths::docker_bin_dir(&inst.docker_version)).join("docker-init");
    let tar = minimal_image(&init).map_err(|e| match &first_error {
        Some(f) => format!("{f}; and no image could be made: {e}"),
        None => format!(
            "the instance has no image and none could be made: {e}; load one with docker load"
        ),
    })?;
    let loaded = http::request_typed(
        socket,
        "POST",
        "/images/load?quiet=1",
        Some(("application/x-tar", &tar)),
        RUN_TIMEOUT,
    )
    .map_err(|e| format!("loading the minimal image: {e}"))?;
    if !loaded.is_success() {
        return Err(format!(
            "loading the minimal image: HTTP {}: {}",
            loaded.status,
            loaded.text().trim()
        ));
    }
    let result = run_once(socket, VERIFY_IMAGE, &["/docker-init", "--version"]);
    let _ = api(
        socket,
        "DELETE",
        &format!("/images/{VERIFY_IMAGE}?force=1"),
        None,
    );
    result.map(|()| {
        format!(
            "ran docker-init --version in a minimal image made from {} (no local image{}), exit 0; image removed",
            init.display(),
            first_error.map(|e| format!(" usable: {e}")).unwrap_or_default()
        )
    })
}

fn run_once(socket: &Path, image: &str, entrypoint: &[&str]) -> std::result::Result<(), String> {
    let body = json!({
        "Image": image,
        "Entrypoint": entrypoint,
        "Cmd": [],
        "Labels": {"dockyard.verify": "1"},
        "NetworkDisabled": false,
    });
    let name = format!("dockyard-verify-{}", std::process::id());
    let created = api(
        socket,
        "POST",
        &format!("/containers/create?name={name}"),
        Some(&body),
    )?;
    if !created.is_success() {
        return Err(format!(
            "create: HTTP {}: {}",
            created.status,
            created.text().trim()
        ));
    }
    let id = created
        .json()?
        .get("Id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or("create: no Id in the answer")?;
    let result = start_and_wait(socket, &id);
    let _ = api(socket, "DELETE", &format!("/containers/{id}?force=1"), None);
    result
}

fn start_and_wait(socket: &Path, id: &str) -> std::result::Result<(), String> {
    let started = api(socket, "POST", &format!("/containers/{id}/start"), None)?;
    if !started.is_success() {
        return Err(format!(
            "start: HTTP {}: {}",
            started.status,
            started.text().trim()
        ));
    }
    let waited = http::request(
        socket,
        "POST",
        &format!("/containers/{id}/wait"),
        None,
        RUN_TIMEOUT,
    )
    .map_err(|e| format!("wait: {e}"))?;
    let code = waited.json()?.get("StatusCode").and_then(Value::as_i64);
    match code {
        Some(0) => Ok(()),
        Some(c) => Err(format!("the container exited with status {c}")),
        None => Err(format!(
            "wait: HTTP {}: {}",
            waited.status,
            waited.text().trim()
        )),
    }
}

/// A `docker save`-format archive of image `dockyard-verify:1`: one layer
/// holding `/docker-init`, which must be statically linked.
pub fn minimal_image(init: &Path) -> std::result::Result<Vec<u8>, String> {
    let binary = std::fs::read(init).map_err(|e| format!("cannot read {}: {e}", init.display()))?;
    if !is_static_elf(&binary) {
        return Err(format!(
            "{} is not a statically linked executable",
            init.display()
        ));
    }
    let mut layer = tar::Builder::new(Vec::new());
    append(&mut layer, "docker-init", &binary, 0o755)?;
    let layer = layer.into_inner().map_err(|e| e.to_string())?;
    let layer_digest = hex(&Sha256::digest(&layer));
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/docker-init", "--version"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
    })
    .to_string();
    let config_digest = hex(&Sha256::digest(config.as_bytes()));
    let manifest = json!([{
        "Config": format!("{config_digest}.json"),
        "RepoTags": [VERIFY_IMAGE],
        "Layers": [format!("{layer_digest}/layer.tar")],
    }])
    .to_string();
    let mut image = tar::Builder::new(Vec::new());
    append(
        &mut image,
        &format!("{layer_digest}/layer.tar"),
        &layer,
        0o644,
    )?;
    append(
        &mut image,
        &format!("{config_digest}.json"),
        config.as_bytes(),
        0o644,
    )?;
    append(&mut image, "manifest.json", manifest.as_bytes(), 0o644)?;
    image.into_inner().map_err(|e| e.to_string())
}

fn append(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> std::result::Result<(), String> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, path, data)
        .map_err(|e| format!("cannot build the image archive: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 64-bit little-endian ELF executable without a PT_INTERP header.
pub fn is_static_elf(data: &[u8]) -> bool {
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap_or([0xff; 8])) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        let Some(p_type) = data.get(at..at + 4) else {
            return false;
        };
        if p_type == [3, 0, 0, 0] {
            return false; // PT_INTERP: needs a dynamic loader
        }
    }
    phnum > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_elf_detection() {
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        // This test binary is dynamically linked (it has PT_INTERP).
        let me = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        assert!(!is_static_elf(&me));
        // A minimal static header: one PT_LOAD program header.
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x20] = 64;
        elf[0x36] = 56;
        elf[0x38] = 1;
        elf[64] = 1;
        assert!(is_static_elf(&elf));
        elf[64] = 3;
        assert!(!is_static_elf(&elf));
    }

    #[test]
    fn minimal_image_is_a_docker_save_archive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dynamic = dir.path().join("dyn");
        std::fs::copy(std::env::current_exe().expect("exe"), &dynamic).expect("copy");
        assert!(minimal_image(&dynamic)
            .unwrap_err()
            .contains("not a statically linked"));
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        (elf[4], elf[5], elf[0x20], elf[0x36], elf[0x38], elf[64]) = (2, 1, 64, 56, 1, 1);
        let init = dir.path().join("docker-init");
        std::fs::write(&init, &elf).expect("write");
        let tar = minimal_image(&init).expect("image");
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names[0].ends_with("/layer.tar"));
        assert_eq!(names[2], "manifest.json");
    }
}

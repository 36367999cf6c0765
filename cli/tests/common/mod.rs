//! Test support for `dockyard install`: a std-only HTTP server on
//! 127.0.0.1 with failure behaviours, fixture artifacts built at test time,
//! manifests pointing at the server, and a runner for the real binary.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DOCKER_VERSION: &str = "99.1.0";
pub const SYSBOX_VERSION: &str = "0.9.1";

pub const DOCKER_BINARIES: [&str; 8] = [
    "dockerd",
    "docker",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "docker-proxy",
    "docker-init",
];
pub const SYSBOX_BINARIES: [&str; 3] = ["sysbox-runc", "sysbox-mgr", "sysbox-fs"];

pub fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn arch() -> &'static str {
    std::env::consts::ARCH
}

// ---------------------------------------------------------------- server

/// Serves files by the last segment of the request path. The first path
/// segment picks a behaviour:
/// `/files/…` (or anything else) serve, `/missing/…` 404,
/// `/flaky/…` 500 on the first request for that path then serve,
/// `/truncate/…` announce the full length and send half, then close,
/// `/slow/…` 32 KiB every 40 ms.
pub struct Server {
    pub port: u16,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (f, h) = (files.clone(), hits.clone());
        // Lives as long as the test process; every connection is bounded
        // by the size of the file it serves.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (f, h) = (f.clone(), h.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, &f, &h);
                });
            }
        });
        Server { port, files, hits }
    }

    pub fn add(&self, name: &str, data: Vec<u8>) {
        self.files.lock().unwrap().insert(name.to_string(), data);
    }

    pub fn url(&self, behaviour: &str, name: &str) -> String {
        format!("http://127.0.0.1:{}/{behaviour}/{name}", self.port)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }
}

fn handle(
    stream: TcpStream,
    files: &Mutex<HashMap<String, Vec<u8>>>,
    hits: &Mutex<HashMap<String, usize>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let count = {
        let mut h = hits.lock().unwrap();
        let c = h.entry(path.clone()).or_insert(0);
        *c += 1;
        *c
    };
    let behaviour = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let name = path.rsplit('/').next().unwrap_or("");
    let data = files.lock().unwrap().get(name).cloned();
    let mut out = stream;
    let status = |out: &mut TcpStream, code: &str| {
        write!(
            out,
            "HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    let data = match (behaviour, data) {
        ("missing", _) | (_, None) => return status(&mut out, "404 Not Found"),
        ("flaky", _) if count == 1 => return status(&mut out, "500 Internal Server Error"),
        (_, Some(d)) => d,
    };
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    )?;
    match behaviour {
        "truncate" => {
            out.write_all(&data[..data.len() / 2])?;
            out.flush()?;
            // Closing with bytes still owed: the client sees an early EOF.
            drop(out);
        }
        "slow" => {
            for chunk in data.chunks(32 * 1024) {
                out.write_all(chunk)?;
                out.flush()?;
                std::thread::sleep(Duration::from_millis(40));
            }
        }
        _ => out.write_all(&data)?,
    }
    Ok(())
}

// -------------------------------------------------------------- fixtures

/// Contents for Docker's binaries: Debian's docker.io binaries when that
/// package is installed, else small stand-in shell scripts. Says which.
pub fn docker_binaries() -> Vec<(String, Vec<u8>)> {
    let debian: [(&str, &str); 8] = [
        ("dockerd", "/usr/sbin/dockerd"),
        ("docker", "/usr/bin/docker"),
        ("containerd", "/usr/bin/containerd"),
        (
            "containerd-shim-runc-v2",
            "/usr/bin/containerd-shim-runc-v2",
        ),
        ("ctr", "/usr/bin/ctr"),
        ("runc", "/usr/sbin/runc"),
        ("docker-proxy", "/usr/sbin/docker-proxy"),
        ("docker-init", "/usr/sbin/docker-init"),
    ];
    if debian.iter().all(|(_, p)| Path::new(p).is_file()) {
        eprintln!("fixture: Docker tarball made from Debian's docker.io binaries");
        return debian
            .iter()
            .map(|(n, p)| {
                (
                    n.to_string(),
                    std::fs::read(p).expect("read docker.io binary"),
                )
            })
            .collect();
    }
    eprintln!("fixture: docker.io is not installed; Docker tarball made from stand-in scripts");
    DOCKER_BINARIES
        .iter()
        .map(|n| {
            (
                n.to_string(),
                format!("#!/bin/sh\necho 'stand-in {n}'\n").into_bytes(),
            )
        })
        .collect()
}

/// One entry of a hand-made tarball.
pub enum Entry {
    File(&'static str, Vec<u8>),
    Dir(&'static str),
    Symlink(&'static str, &'static str),
}

/// A gzip tarball whose entry names are written raw into the header, so
/// tests can make what `tar::Builder` (rightly) refuses to: `..`,
/// absolute paths, escaping links.
pub fn tgz(entries: &[Entry]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match entry {
            Entry::File(name, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o755);
                header.set_size(data.len() as u64);
                (name, data)
            }
            Entry::Dir(name) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                (name, &[])
            }
            Entry::Symlink(name, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                let link = &mut header.as_old_mut().linkname;
                link[..target.len()].copy_from_slice(target.as_bytes());
                (name, &[])
            }
        };
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, data).expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gzip")
}

/// Docker's static layout: `docker/` and the eight binaries.
pub fn docker_tgz(binaries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let names: Vec<&'static str> = binaries
        .iter()
        .map(|(n, _)| &*Box::leak(format!("docker/{n}").into_boxed_str()))
        .collect();
    let mut entries = vec![Entry::Dir("docker/")];
    for ((_, data), name) in binaries.iter().zip(names) {
        entries.push(Entry::File(name, data.clone()));
    }
    tgz(&entries)
}

/// The sysbox stand-ins' contents.
pub fn sysbox_binary(name: &str) -> Vec<u8> {
    format!("#!/bin/sh\necho 'stand-in {name}'\n").into_bytes()
}

/// A real `.deb` made by `dpkg-deb --build -Z<compression>`, holding
/// `usr/bin/NAME` for each of `binaries` plus a doc file. `None` when
/// this dpkg-deb cannot use that compression.
pub fn deb(work: &Path, compression: &str, binaries: &[&str]) -> Option<Vec<u8>> {
    let root = work.join(format!("debroot-{compression}-{}", binaries.len()));
    std::fs::create_dir_all(root.join("DEBIAN")).expect("mkdir");
    std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
    std::fs::create_dir_all(root.join("usr/share/doc/sysbox-ce")).expect("mkdir");
    std::fs::write(
        root.join("DEBIAN/control"),
        format!("Package: sysbox-ce\nVersion: {SYSBOX_VERSION}-0\nArchitecture: amd64\nMaintainer: test <t@example.invalid>\nDescription: test fixture\n"),
    )
    .expect("control");
    std::fs::write(root.join("usr/share/doc/sysbox-ce/README"), "fixture\n").expect("doc");
    for b in binaries {
        let p = root.join("usr/bin").join(b);
        std::fs::write(&p, sysbox_binary(b)).expect("bin");
        run_ok(Command::new("chmod").arg("0755").arg(&p));
    }
    // An absolute symlink, as real packages have: fine inside a .deb image.
    let _ = std::os::unix::fs::symlink(
        "/usr/bin/sysbox-runc",
        root.join("usr/share/doc/sysbox-ce/runc-link"),
    );
    let out = work.join(format!("sysbox-{compression}-{}.deb", binaries.len()));
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", &format!("-Z{compression}"), "--build"])
        .arg(&root)
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("dpkg-deb must be installed (packaging/install-deps.sh)");
    if !status.status.success() {
        eprintln!(
            "dpkg-deb -Z{compression} failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        return None;
    }
    Some(std::fs::read(&out).expect("read deb"))
}

fn run_ok(cmd: &mut Command) {
    let st = cmd.status().expect("spawn");
    assert!(st.success(), "{cmd:?} failed");
}

// -------------------------------------------------------------- manifest

pub struct Pin {
    pub kind: &'static str,
    pub version: &'static str,
    pub url: String,
    pub sha256: String,
}

pub fn manifest(path: &Path, mirror: Option<&str>, pins: &[Pin]) {
    // Top-level keys come before the first table.
    let mut text = mirror
        .map(|m| format!("mirror = \"{m}\"\n"))
        .unwrap_or_default();
    text.push_str(&format!(
        "[defaults]\ndocker = \"{DOCKER_VERSION}\"\nsysbox = \"{SYSBOX_VERSION}\"\n"
    ));
    for p in pins {
        text.push_str(&format!(
            "\n[[artifact]]\nkind = \"{}\"\nversion = \"{}\"\narch = \"{}\"\nurl = \"{}\"\nsha256 = \"{}\"\n",
            p.kind,
            p.version,
            arch(),
            p.url,
            p.sha256
        ));
    }
    std::fs::write(path, text).expect("write manifest");
}

// ---------------------------------------------------------------- runner

/// A test's world: temp dir with a store, an instances dir and a manifest.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub store: PathBuf,
    pub instances: PathBuf,
    pub manifest: PathBuf,
}

impl World {
    pub fn new() -> World {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = tmp.path().join("store");
        let instances = tmp.path().join("instances.d");
        std::fs::create_dir_all(&instances).expect("mkdir");
        let manifest = tmp.path().join("artifacts.toml");
        World {
            tmp,
            store,
            instances,
            manifest,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockyard"));
        cmd.arg("install")
            .arg("--manifest")
            .arg(&self.manifest)
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .env("DOCKYARD_INSTANCES_DIR", &self.instances)
            .stdin(Stdio::null());
        // The server is local: no proxy may stand in between.
        for var in [
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run dockyard");
        Run::from(out)
    }

    pub fn bin(&self, kind: &str, version: &str) -> PathBuf {
        self.store.join(kind).join(version).join("bin")
    }

    /// What is left in the store's staging area.
    pub fn staging(&self) -> Vec<String> {
        match std::fs::read_dir(self.store.join(".staging")) {
            Ok(d) => d
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn conf(&self, name: &str, body: &str) {
        std::fs::write(self.instances.join(format!("{name}.conf")), body).expect("conf");
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).expect("read");
    v
}

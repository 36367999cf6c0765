//! Test support for `dockyard install`: a std-only HTTP server on
//! 127.0.0.1 with failure behaviours, fixture artifacts built at test time,
//! manifests pointing at the server, and a runner for the real binary.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
/// segment is a comma-separated list of behaviours (anything unknown, e.g.
/// `files`, just serves):
///
/// | behaviour | what the server does |
/// |---|---|
/// | `missing` | 404 |
/// | `flaky` | 500 on the first request for that path, then serves |
/// | `range` | says `Accept-Ranges: bytes` and answers `Range: bytes=N-` with 206 |
/// | `badrange` | like `range`, but a 206 carries garbage of the right length |
/// | `truncate` | announces the full length, sends half, closes ("dies mid-body") |
/// | `truncate1` | `truncate` on the first request for that path only |
/// | `slow` | 32 KiB every 40 ms |
/// | `rate=N` | a steady N bytes/s (N/20 bytes every 50 ms) |
/// | `trickle` | 64 bytes every 250 ms (256 B/s), never idle |
/// | `no-response` | reads the request and never answers |
/// | `stall-after-headers` | headers, then nothing |
/// | `stall-mid-body` | headers and the body up to the file's middle, then nothing |
/// | `endless` | no Content-Length: the file, then random bytes until the client goes |
/// | `fakelen=N` | announces Content-Length N whatever the file's length |
///
/// A stalled connection is held until the client closes it (at most 120 s).
pub struct Server {
    pub port: u16,
    tls: bool,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    requests: Arc<Mutex<Vec<Request>>>,
}

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub range: Option<String>,
    /// Body bytes the server wrote in answer.
    pub sent: Arc<Mutex<u64>>,
}

/// Either side of a connection, plain or TLS, with its socket.
trait Conn: Read + Write + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

#[derive(Clone, Default)]
struct State {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    pub fn start() -> Server {
        Server::spawn(None)
    }

    /// HTTPS with this certificate (DER) and PKCS#8 key (DER).
    pub fn start_tls(cert: Vec<u8>, key: Vec<u8>) -> Server {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(cert)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
            )
            .expect("server certificate");
        Server::spawn(Some(Arc::new(config)))
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let state = State::default();
        let s = state.clone();
        let is_tls = tls.is_some();
        // Lives as long as the test process; every connection ends with the
        // file it serves, the client going away, or the 120 s hold bound.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, tls) = (s.clone(), tls.clone());
                std::thread::spawn(move || {
                    let conn: Box<dyn Conn> = match tls {
                        Some(config) => match rustls::ServerConnection::new(config) {
                            Ok(c) => Box::new(rustls::StreamOwned::new(c, stream)),
                            Err(_) => return,
                        },
                        None => Box::new(stream),
                    };
                    let _ = handle(conn, &s);
                });
            }
        });
        Server {
            port,
            tls: is_tls,
            files: state.files,
            hits: state.hits,
            requests: state.requests,
        }
    }

    pub fn add(&self, name: &str, data: Vec<u8>) {
        self.files.lock().unwrap().insert(name.to_string(), data);
    }

    pub fn url(&self, behaviour: &str, name: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{behaviour}/{name}", self.port)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }

    /// The requests for `path`, in order.
    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

impl Request {
    pub fn sent(&self) -> u64 {
        *self.sent.lock().unwrap()
    }
}

/// Waits until the client closes the connection (or 120 s).
fn hold(conn: &mut dyn Conn) {
    let _ = conn
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(200)));
    let until = Instant::now() + Duration::from_secs(120);
    let mut buf = [0u8; 1024];
    while Instant::now() < until {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

fn handle(mut conn: Box<dyn Conn>, state: &State) -> std::io::Result<()> {
    conn.tcp().set_read_timeout(Some(Duration::from_secs(10)))?;
    // Read the request head byte by byte: no buffered reader may swallow
    // bytes of the connection (TLS records, or the client's close).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if conn.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Ok(());
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let request = lines.next().unwrap_or("");
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let range = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("range"))
        .map(|(_, v)| v.trim().to_string());
    let sent = Arc::new(Mutex::new(0u64));
    state.requests.lock().unwrap().push(Request {
        path: path.clone(),
        range: range.clone(),
        sent: sent.clone(),
    });
    let count = {
        let mut h = state.hits.lock().unwrap();
        let c = h.entry(path.clone()).or_insert(0);
        *c += 1;
        *c
    };
    let behaviours: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .split(',')
        .collect();
    let has = |b: &str| behaviours.contains(&b);
    let value = |key: &str| -> Option<u64> {
        behaviours
            .iter()
            .find_map(|b| b.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    let name = path.rsplit('/').next().unwrap_or("");
    let data = state.files.lock().unwrap().get(name).cloned();
    let status = |conn: &mut dyn Conn, code: &str| {
        write!(
            conn,
            "HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    let data = match data {
        _ if has("missing") => return status(&mut *conn, "404 Not Found"),
        None => return status(&mut *conn, "404 Not Found"),
        _ if has("flaky") && count == 1 => return status(&mut *conn, "500 Internal Server Error"),
        Some(d) => d,
    };
    if has("no-response") {
        hold(&mut *conn);
        return Ok(());
    }
    let ranges = has("range") || has("badrange");
    let start = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) if ranges => r
            .trim_end_matches('-')
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0),
        _ => None,
    };
    if let Some(start) = start {
        if start >= data.len() {
            return status(&mut *conn, "416 Range Not Satisfiable");
        }
    }
    let mut body: Vec<u8> = match start {
        Some(s) => data[s..].to_vec(),
        None => data.clone(),
    };
    if start.is_some() && has("badrange") {
        body.iter_mut().for_each(|b| *b = !*b);
    }
    let accept = if ranges {
        "Accept-Ranges: bytes\r\n"
    } else {
        ""
    };
    let length = match (value("fakelen"), has("endless")) {
        (_, true) => String::new(),
        (Some(n), _) => format!("Content-Length: {n}\r\n"),
        (None, _) => format!("Content-Length: {}\r\n", body.len()),
    };
    match start {
        Some(s) => write!(
            conn,
            "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\n{accept}Content-Range: bytes {s}-{}/{}\r\n{length}Connection: close\r\n\r\n",
            data.len() - 1,
            data.len()
        )?,
        None => write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{accept}{length}Connection: close\r\n\r\n"
        )?,
    }
    conn.flush()?;
    if has("stall-after-headers") {
        hold(&mut *conn);
        return Ok(());
    }
    let truncate = has("truncate") || (has("truncate1") && count == 1);
    if truncate {
        body.truncate(body.len() / 2);
    }
    if has("stall-mid-body") {
        // Always at the same point: the middle of the file.
        let start = start.unwrap_or(0);
        body.truncate((data.len() / 2).saturating_sub(start));
    }
    // Pace: (chunk, pause).
    let pace = if let Some(rate) = value("rate") {
        Some(((rate / 20).max(1) as usize, Duration::from_millis(50)))
    } else if has("trickle") {
        Some((64, Duration::from_millis(250)))
    } else if has("slow") {
        Some((32 * 1024, Duration::from_millis(40)))
    } else {
        None
    };
    let send = |conn: &mut dyn Conn, bytes: &[u8]| -> std::io::Result<()> {
        conn.write_all(bytes)?;
        *sent.lock().unwrap() += bytes.len() as u64;
        Ok(())
    };
    match pace {
        Some((chunk, pause)) => {
            for piece in body.chunks(chunk) {
                send(&mut *conn, piece)?;
                conn.flush()?;
                std::thread::sleep(pause);
            }
        }
        None => send(&mut *conn, &body)?,
    }
    conn.flush()?;
    if has("stall-mid-body") {
        hold(&mut *conn);
        return Ok(());
    }
    if has("endless") {
        // Until the client goes away (a write fails), at most 4 GiB.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut junk = vec![0u8; 64 * 1024];
        for _ in 0..65536 {
            for b in junk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            send(&mut *conn, &junk)?;
        }
    }
    // Returning drops the connection: with bytes still owed (truncate), the
    // client sees an early end (over TLS, one without close_notify).
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
    /// `size = N` in the manifest when set.
    pub size: Option<u64>,
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
        if let Some(size) = p.size {
            text.push_str(&format!("size = {size}\n"));
        }
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
        // The server is local: no proxy may stand in between. And the
        // tests choose the limits and the CA store, not the environment.
        for var in [
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "all_proxy",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "DOCKYARD_CONNECT_TIMEOUT",
            "DOCKYARD_IDLE_TIMEOUT",
            "DOCKYARD_MIN_RATE",
            "DOCKYARD_RATE_WINDOW",
            "DOCKYARD_MAX_SIZE",
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

// ------------------------------------------------------- hostile networks

/// Incompressible bytes (xorshift), the same for the same seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A Docker tarball of about `len` bytes: `dockerd` is `len` bytes of
/// noise, the other binaries stand-in scripts. Returns the binaries and
/// the tarball.
pub fn noise_docker(len: usize, seed: u64) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let binaries: Vec<(String, Vec<u8>)> = DOCKER_BINARIES
        .iter()
        .map(|n| {
            let data = if *n == "dockerd" {
                noise(len, seed)
            } else {
                format!("#!/bin/sh\necho 'stand-in {n}'\n").into_bytes()
            };
            (n.to_string(), data)
        })
        .collect();
    let tgz = docker_tgz(&binaries);
    (binaries, tgz)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { nix::libc::geteuid() == 0 }
}

/// A CA and a server certificate for 127.0.0.1 made with the openssl CLI,
/// valid for two days. `None` (and a message) when openssl is missing.
pub struct PrivateCa {
    /// The CA certificate, PEM: what an admin adds to the system store.
    pub ca_pem: PathBuf,
    /// The server's certificate and PKCS#8 key, DER.
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl PrivateCa {
    pub fn make(dir: &Path) -> Option<PrivateCa> {
        let ok = |args: &[&str]| -> bool {
            match Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
            {
                Ok(out) if out.status.success() => true,
                Ok(out) => {
                    eprintln!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
                    false
                }
                Err(e) => {
                    eprintln!("openssl: {e} (apt-get install openssl)");
                    false
                }
            }
        };
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        let steps: [&[&str]; 5] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Dockyard test private CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-outform",
                "DER",
                "-out",
                "server.der",
            ],
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "server.key",
                "-outform",
                "DER",
                "-out",
                "server.key.der",
            ],
            &["x509", "-in", "ca.pem", "-noout"],
        ];
        for step in steps {
            if !ok(step) {
                return None;
            }
        }
        Some(PrivateCa {
            ca_pem: dir.join("ca.pem"),
            cert: std::fs::read(dir.join("server.der")).expect("server.der"),
            key: std::fs::read(dir.join("server.key.der")).expect("server.key.der"),
        })
    }
}

/// Runs `sh -c SCRIPT sh ARGS…` in a private mount namespace (root only):
/// mounts made there vanish with it.
pub fn in_private_mounts(script: &str, args: &[&std::ffi::OsStr], envs: &[(&str, &Path)]) -> Run {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .args(args)
    .stdin(Stdio::null());
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR", "http_proxy", "https_proxy"] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("unshare (util-linux)"))
}

//! Getting an artifact's bytes into the staging directory: over HTTP(S)
//! with ureq, or from `--from DIR`. Both hash while writing, bound what they
//! write by the pinned size, and check the pin before anything is unpacked.
//!
//! Downloads go to `STORE/.staging/partial/SHA256.part`, named by the pin,
//! so that an interrupted download (a broken connection, a killed run) is
//! resumed with `Range:` where the server supports it, and only ever for
//! the file it was started for. A resumed file is verified whole, like any
//! other; if it does not match, it is downloaded once more from byte 0
//! (the server's file may have changed between the two parts).
//!
//! Retries: connection errors, resets, early ends, read timeouts and 5xx
//! (plus 408/429) are retried with doubling back-off while (a) fewer than
//! four attempts in a row made no progress that a resume keeps, and (b) the
//! idle and rate bounds of `limits` allow it. 404 and other 4xx, TLS
//! failures, size violations and a full disk are final.

use super::limits::{show_bytes, Limits, Verdict, Watch};
use super::manifest_select::Source;
use super::progress::Progress;
use super::tls;
use super::verify::{self, Copied, CopyError};
use crate::error::{Exit, Failure, Result};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where artifacts come from.
pub enum Origin {
    Network(Fetcher),
    Dir(PathBuf),
}

pub struct Fetcher {
    agent: ureq::Agent,
    limits: Limits,
    attempts: u32,
    first_delay: Duration,
    warned_http: Cell<bool>,
}

/// What bounds one artifact's length.
#[derive(Debug, Clone, Copy)]
struct Bound {
    limit: u64,
    /// The manifest pins this exact size (else `limit` is `--max-size`).
    pinned: bool,
}

impl Bound {
    fn of(source: &Source, limits: &Limits) -> Bound {
        match source.size {
            Some(size) => Bound {
                limit: size,
                pinned: true,
            },
            None => Bound {
                limit: limits.max_size,
                pinned: false,
            },
        }
    }
}

impl Fetcher {
    /// `https` says whether any URL of this run is `https://`: only then is
    /// the system CA store read.
    pub fn new(limits: Limits, https: bool) -> Fetcher {
        let mut config = ureq::Agent::config_builder()
            // Status codes are ours to classify (retry 5xx, stop at 404).
            .http_status_as_error(false)
            .timeout_resolve(Some(limits.connect))
            .timeout_connect(Some(limits.connect))
            // The header and body timeouts are set per request (see
            // `attempt`): never a deadline counted from the headers.
            .user_agent(concat!("dockyard/", env!("CARGO_PKG_VERSION")));
        if https {
            let roots = tls::roots();
            if let Some((first, n)) = &roots.problem {
                eprintln!(
                    "warning: reading the system CA store: {first}{}; using the {} certificates \
                     it did load and dockyard's built-in roots",
                    if *n > 1 {
                        format!(" (and {} more problems)", n - 1)
                    } else {
                        String::new()
                    },
                    roots.system
                );
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&roots.certs))
                    .build(),
            );
        }
        Fetcher {
            agent: config.build().into(),
            limits,
            attempts: 4,
            first_delay: Duration::from_millis(500),
            warned_http: Cell::new(false),
        }
    }

    fn warn_plain_http(&self, url: &str) {
        if self.warned_http.get() || tls::is_https(url) {
            return;
        }
        self.warned_http.set(true);
        eprintln!(
            "warning: {url} is plain http://: anyone on the path can see and delay the \
             download; what is installed is still only what the manifest's sha256 pins"
        );
    }
}

impl Origin {
    /// Brings `source` to `dest` (created or replaced) and checks its size
    /// and sha256 against the pin. `partial_dir` holds resumable downloads.
    /// `dest` is left for the caller to unpack.
    pub fn fetch(
        &self,
        source: &Source,
        dest: &Path,
        manifest: &Path,
        partial_dir: &Path,
    ) -> Result<Copied> {
        match self {
            Origin::Network(fetcher) => {
                let part = partial_dir.join(format!("{}.part", source.sha256));
                let copied = fetcher.download(source, &part, manifest)?;
                std::fs::rename(&part, dest).map_err(|e| {
                    Failure::io(&format!("cannot move {} to", part.display()), dest, &e)
                })?;
                Ok(copied)
            }
            Origin::Dir(dir) => {
                let copied = copy_local(dir, source, dest)?;
                let what = dir.join(&source.file_name).display().to_string();
                verify::check(&source.sha256, &copied, &what, manifest).inspect_err(|_| {
                    let _ = std::fs::remove_file(dest);
                })?;
                Ok(copied)
            }
        }
    }
}

// ------------------------------------------------------------ the file

/// The download file: what is in it, hashed as it grows.
struct Part {
    path: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
    len: u64,
    /// Some of the bytes came from an earlier connection or run (so a
    /// mismatch may be two versions of the file spliced together).
    spliced: bool,
}

impl Part {
    /// Opens `path`, keeping what an earlier run left if it is within
    /// `bound` (hashing it, so the digest covers the whole file).
    fn open(path: &Path, bound: u64) -> Result<Part> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Failure::io("cannot create", path, &e))?;
        let len = file
            .metadata()
            .map_err(|e| Failure::io("cannot stat", path, &e))?
            .len();
        let mut hasher = Sha256::new();
        let mut kept = 0;
        if len > 0 && len <= bound {
            let mut buf = vec![0u8; verify::BUF_SIZE];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Failure::io("cannot read", path, &e)),
                };
                hasher.update(&buf[..n]);
                kept += n as u64;
            }
        }
        if kept != len {
            // Larger than the bound (an older pin?) or unreadable: start over.
            file.set_len(0)
                .map_err(|e| Failure::io("cannot truncate", path, &e))?;
            hasher = Sha256::new();
            kept = 0;
        }
        file.seek(SeekFrom::Start(kept))
            .map_err(|e| Failure::io("cannot seek in", path, &e))?;
        Ok(Part {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(verify::BUF_SIZE, file),
            hasher,
            len: kept,
            spliced: kept > 0,
        })
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Writes out the buffer: before a resume is requested, so that what a
    /// killed run leaves on disk is exactly the prefix it received.
    fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| Failure::io("cannot write", &self.path, &e))
    }

    fn restart(&mut self) -> Result<()> {
        self.flush()?;
        let file = self.out.get_mut();
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| Failure::io("cannot truncate", &self.path, &e))?;
        self.hasher = Sha256::new();
        self.len = 0;
        self.spliced = false;
        Ok(())
    }

    fn digest(&mut self) -> Result<Copied> {
        self.flush()?;
        Ok(Copied {
            bytes: self.len,
            sha256: verify::hex(&self.hasher.clone().finalize()),
        })
    }

    fn discard(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}

/// Free space for unprivileged writers on the filesystem holding `dir`
/// (root may dip into the reserved blocks, but the instances' data shares
/// that filesystem and needs them more). The casts: the statvfs field
/// types differ between targets.
#[allow(clippy::unnecessary_cast)]
fn free_space(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

fn check_space(dir: &Path, needed: u64, url: &str) -> std::result::Result<(), Failure> {
    match free_space(dir) {
        Some(free) if free < needed => Err(Failure::failed(format!(
            "not enough space for {url}: {} more to write, {} free in {}; nothing was written. \
             Free space on that filesystem or choose another store with --store",
            show_bytes(needed),
            show_bytes(free),
            dir.display()
        ))),
        _ => Ok(()),
    }
}

// ------------------------------------------------------------ download

/// One failed attempt, and whether another could succeed.
struct AttemptError {
    kind: Kind,
    failure: Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Worth another attempt (within the bounds).
    Transient,
    /// The idle or rate bound ended the download: no further attempt, but
    /// what was received is kept for a later resume.
    GaveUp,
    /// Final; the file is discarded.
    Fatal,
}

/// What one run has learnt about the server.
#[derive(Default)]
struct Server {
    /// It honours `Range:` (said `Accept-Ranges: bytes`, or answered 206).
    resumable: Option<bool>,
    /// A strong ETag or Last-Modified, for `If-Range:`.
    validator: Option<String>,
}

fn header<'a>(response: &'a ureq::http::Response<ureq::Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`).
fn content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (end >= start && total.map_or(true, |t| end < t)).then_some((start, end, total))
}

impl Fetcher {
    fn download(&self, source: &Source, part_path: &Path, manifest: &Path) -> Result<Copied> {
        let bound = Bound::of(source, &self.limits);
        let mut part = Part::open(part_path, bound.limit)?;
        let mut server = Server::default();
        let mut whole_again = false;
        loop {
            let copied = match self.fill(source, bound, &mut part, &mut server) {
                Ok(c) => c,
                Err((kind, failure)) => {
                    if kind == Kind::GaveUp && server.resumable == Some(true) && part.len > 0 {
                        let _ = part.flush();
                        eprintln!(
                            "{}: kept the {} received in {}; the next `dockyard install` \
                             resumes from there",
                            source.file_name,
                            show_bytes(part.len),
                            part.path.display()
                        );
                    } else {
                        part.discard();
                    }
                    return Err(failure);
                }
            };
            match verify::check(&source.sha256, &copied, &source.url, manifest) {
                Ok(()) => return Ok(copied),
                Err(_) if part.spliced && !whole_again => {
                    eprintln!(
                        "{}: the resumed download does not match its pin (the server's file may \
                         have changed between the parts); downloading it whole again",
                        source.file_name
                    );
                    part.restart()?;
                    whole_again = true;
                }
                Err(e) => {
                    part.discard();
                    return Err(e);
                }
            }
        }
    }

    /// Attempts until the file is complete or a bound says stop.
    fn fill(
        &self,
        source: &Source,
        bound: Bound,
        part: &mut Part,
        server: &mut Server,
    ) -> std::result::Result<Copied, (Kind, Failure)> {
        let io_fatal = |f: Failure| (Kind::Fatal, f);
        let mut watch = Watch::new(self.limits, Instant::now());
        let mut progress = Progress::start(
            &source.file_name,
            bound.pinned.then_some(bound.limit),
            part.len,
        );
        if part.len > 0 {
            progress.note(&format!(
                "{}: resuming at {} (left by an interrupted run)",
                source.file_name,
                show_bytes(part.len)
            ));
        }
        let mut delay = self.first_delay;
        let mut attempt = 0;
        let mut fruitless = 0;
        loop {
            if bound.pinned && part.len == bound.limit {
                let copied = part.digest().map_err(io_fatal)?;
                progress.finish(copied.bytes, "downloaded");
                return Ok(copied);
            }
            attempt += 1;
            let before = part.len;
            let error = match self.attempt(source, bound, part, server, &mut watch, &mut progress) {
                Ok(()) => {
                    let copied = part.digest().map_err(io_fatal)?;
                    progress.finish(copied.bytes, "downloaded");
                    return Ok(copied);
                }
                Err(e) => e,
            };
            if error.kind != Kind::Transient {
                progress.abandon();
                return Err((error.kind, error.failure));
            }
            // Progress a resume keeps resets the count; bytes that the next
            // attempt would have to fetch again do not.
            if part.len > before && server.resumable == Some(true) {
                fruitless = 0;
                delay = self.first_delay;
            } else {
                fruitless += 1;
            }
            let now = Instant::now();
            let why = error.failure.message;
            let stop = if fruitless >= self.attempts {
                Some(format!("{why} (gave up after {attempt} attempts)"))
            } else {
                match watch.check(now) {
                    Verdict::Idle(quiet) => Some(self.idle_message(&why, quiet)),
                    Verdict::TooSlow { bytes, over } => {
                        Some(self.slow_message(&source.url, bytes, over))
                    }
                    Verdict::Go if !watch.may_retry_after(delay, now) => {
                        Some(self.idle_message(&why, watch.since_last_byte(now) + delay))
                    }
                    Verdict::Go => None,
                }
            };
            if let Some(message) = stop {
                progress.abandon();
                return Err((
                    Kind::GaveUp,
                    Failure::new(
                        Exit::Download,
                        format!(
                            "{message}; check the network, the manifest's mirror, or copy the \
                             file into a directory and use --from DIR"
                        ),
                    ),
                ));
            }
            progress.note(&format!(
                "{}: attempt {attempt} failed: {why}; retrying in {:.1} s",
                source.file_name,
                delay.as_secs_f64()
            ));
            std::thread::sleep(delay);
            delay *= 2;
        }
    }

    fn idle_message(&self, why: &str, quiet: Duration) -> String {
        format!(
            "{why}; nothing received for {:.0} s, the idle timeout is {:.0} s \
             (--idle-timeout, DOCKYARD_IDLE_TIMEOUT)",
            quiet.as_secs_f64(),
            self.limits.idle.as_secs_f64()
        )
    }

    fn slow_message(&self, url: &str, bytes: u64, over: Duration) -> String {
        format!(
            "download of {url} too slow: {} in the last {:.0} s ({}), below the minimum of {}/s \
             averaged over {:.0} s (--min-rate, --rate-window)",
            show_bytes(bytes),
            over.as_secs_f64(),
            super::progress::rate(bytes, over),
            show_bytes(self.limits.min_rate),
            self.limits.window.as_secs_f64()
        )
    }

    fn attempt(
        &self,
        source: &Source,
        bound: Bound,
        part: &mut Part,
        server: &mut Server,
        watch: &mut Watch,
        progress: &mut Progress,
    ) -> std::result::Result<(), AttemptError> {
        let url = &source.url;
        let transient = |message: String| AttemptError {
            kind: Kind::Transient,
            failure: Failure::new(Exit::Download, message),
        };
        let fatal = |exit: Exit, message: String| AttemptError {
            kind: Kind::Fatal,
            failure: Failure::new(exit, message),
        };
        let io_fatal = |failure: Failure| AttemptError {
            kind: Kind::Fatal,
            failure,
        };
        self.warn_plain_http(url);
        let read_timeout = self
            .limits
            .read_timeout(server.resumable, watch.since_last_byte(Instant::now()));
        let offset = part.len;
        let mut request = self
            .agent
            .get(url)
            .config()
            // Response headers within the read timeout of the request being
            // sent; then each body read gets the read timeout afresh.
            .timeout_send_request(Some(read_timeout))
            .timeout_recv_response(None)
            .timeout_recv_body(Some(read_timeout))
            .build();
        if offset > 0 {
            part.flush().map_err(io_fatal)?;
            request = request.header("Range", format!("bytes={offset}-"));
            if let Some(v) = &server.validator {
                request = request.header("If-Range", v);
            }
        }
        let mut response = match request.call() {
            Ok(r) => r,
            Err(e) => return Err(classify(url, e, read_timeout)),
        };
        {
            use ureq::ResponseExt;
            self.warn_plain_http(&response.get_uri().to_string());
        }
        let status = response.status().as_u16();
        let total = match status {
            200 => {
                if offset > 0 {
                    progress.note(&format!(
                        "{}: {url} sent the whole file instead of resuming at {}; starting again \
                         from byte 0",
                        source.file_name,
                        show_bytes(offset)
                    ));
                    part.restart().map_err(io_fatal)?;
                    progress.restart();
                }
                server.resumable = Some(
                    header(&response, "accept-ranges")
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("bytes")),
                );
                server.validator = header(&response, "etag")
                    .filter(|v| !v.starts_with("W/"))
                    .or_else(|| header(&response, "last-modified"))
                    .map(str::to_string);
                response.body().content_length()
            }
            206 => {
                let range = header(&response, "content-range").and_then(content_range);
                match range {
                    Some((start, _, total)) if start == offset => {
                        server.resumable = Some(true);
                        part.spliced = true;
                        total.or_else(|| response.body().content_length().map(|n| n + offset))
                    }
                    _ => {
                        server.resumable = Some(false);
                        part.restart().map_err(io_fatal)?;
                        progress.restart();
                        return Err(transient(format!(
                            "{url} answered the resume at byte {offset} with {}; starting again \
                             from byte 0",
                            header(&response, "content-range").unwrap_or("no Content-Range")
                        )));
                    }
                }
            }
            416 => {
                server.resumable = Some(false);
                part.restart().map_err(io_fatal)?;
                progress.restart();
                return Err(transient(format!(
                    "{url} refused to resume at byte {offset} (HTTP 416); starting again from \
                     byte 0"
                )));
            }
            408 | 429 | 500..=599 => {
                return Err(transient(format!("{url} answered HTTP {status}")));
            }
            404 | 410 => {
                return Err(fatal(
                    Exit::Download,
                    format!(
                        "{url} does not exist (HTTP {status}); check the url in the manifest, or \
                         that the mirror holds the file under the same path"
                    ),
                ));
            }
            _ => {
                return Err(fatal(
                    Exit::Download,
                    format!("{url} answered HTTP {status}; expected 200"),
                ))
            }
        };
        // The size bound, before a byte is written.
        if let Some(total) = total {
            if bound.pinned && total != bound.limit {
                return Err(fatal(
                    Exit::Checksum,
                    format!(
                        "{url} announces {total} bytes but the manifest pins size = {} for it; \
                         nothing was written. The server or mirror holds a different file",
                        bound.limit
                    ),
                ));
            }
            if !bound.pinned && total > bound.limit {
                return Err(fatal(
                    Exit::Download,
                    format!(
                        "{url} announces {total} bytes ({}), more than the {} allowed for an \
                         artifact whose manifest entry has no size; nothing was written. Pin its \
                         size in the manifest (size = BYTES) or raise --max-size",
                        show_bytes(total),
                        show_bytes(bound.limit)
                    ),
                ));
            }
        }
        let expected = total.or(bound.pinned.then_some(bound.limit));
        if let (Some(end), Some(dir)) = (expected, part.path.parent()) {
            check_space(dir, end.saturating_sub(part.len), url).map_err(io_fatal)?;
        }
        progress.set_total(expected);
        let mut reader = response.body_mut().as_reader();
        let mut buf = vec![0u8; verify::BUF_SIZE];
        loop {
            let room = bound.limit - part.len;
            if bound.pinned && room == 0 {
                // Exactly the pinned length: whatever the server would still
                // send is not read.
                break;
            }
            // Unpinned: one byte more than allowed tells an overrun apart.
            let cap = if bound.pinned {
                room
            } else {
                room.saturating_add(1)
            };
            let want = buf.len().min(usize::try_from(cap).unwrap_or(usize::MAX));
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(classify(url, ureq::Error::from(e), read_timeout)),
            };
            if n as u64 > room {
                return Err(fatal(
                    Exit::Download,
                    format!(
                        "{url} sent more than the {} allowed for an artifact whose manifest \
                         entry has no size; stopped there and discarded it. Pin its size in the \
                         manifest (size = BYTES) or raise --max-size",
                        show_bytes(bound.limit)
                    ),
                ));
            }
            part.append(&buf[..n])
                .map_err(|e| io_fatal(Failure::io("cannot write", &part.path, &e)))?;
            let now = Instant::now();
            watch.received(n as u64, now);
            progress.update(part.len);
            if let Verdict::TooSlow { bytes, over } = watch.check(now) {
                return Err(AttemptError {
                    kind: Kind::GaveUp,
                    failure: Failure::new(Exit::Download, self.slow_message(url, bytes, over)),
                });
            }
        }
        if let Some(end) = expected.filter(|&e| e != part.len) {
            return Err(transient(format!(
                "download of {url} ended after {} of {end} bytes",
                part.len
            )));
        }
        Ok(())
    }
}

/// A ureq error as an attempt's outcome: what is worth retrying.
fn classify(url: &str, e: ureq::Error, read_timeout: Duration) -> AttemptError {
    let (kind, message) = match e {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => (
            Kind::Transient,
            format!("cannot connect to {url}: timed out (--connect-timeout)"),
        ),
        ureq::Error::Timeout(_) => (
            Kind::Transient,
            format!("no data from {url} for {:.1} s", read_timeout.as_secs_f64()),
        ),
        ureq::Error::Io(ref io) if tls_error(io).is_some() => (
            Kind::Fatal,
            untrusted(
                url,
                tls_error(io).map(|e| e.to_string()).unwrap_or_default(),
            ),
        ),
        ureq::Error::Io(ref io) if io.kind() == io::ErrorKind::TimedOut => (
            Kind::Transient,
            format!("no data from {url} for {:.1} s", read_timeout.as_secs_f64()),
        ),
        ureq::Error::Rustls(ref tls) => (Kind::Fatal, untrusted(url, tls.to_string())),
        ureq::Error::BadUri(_)
        | ureq::Error::Tls(_)
        | ureq::Error::TlsRequired
        | ureq::Error::TooManyRedirects
        | ureq::Error::RedirectFailed => (Kind::Fatal, format!("cannot download {url}: {e}")),
        _ => (Kind::Transient, format!("download of {url} broke off: {e}")),
    };
    AttemptError {
        kind,
        failure: Failure::new(Exit::Download, message),
    }
}

/// The TLS failure inside an I/O error (how rustls reports a handshake
/// that failed, a certificate it does not trust among them).
fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

fn untrusted(url: &str, why: String) -> String {
    format!(
        "cannot download {url}: TLS: {why}; if the server's certificate comes from a private \
         CA, add that CA to the system store (on Debian: copy it to \
         /usr/local/share/ca-certificates/NAME.crt and run update-ca-certificates; or point \
         SSL_CERT_FILE at it)"
    )
}

// ------------------------------------------------------------ --from DIR

fn copy_local(dir: &Path, source: &Source, dest: &Path) -> Result<Copied> {
    let path = dir.join(&source.file_name);
    let mut input = File::open(&path).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            format!("; put {} (from {}) there", source.file_name, source.url)
        } else {
            String::new()
        };
        Failure::new(
            Exit::Download,
            format!("cannot open {}: {e}{hint}", path.display()),
        )
    })?;
    let total = input.metadata().ok().map(|m| m.len());
    if let (Some(size), Some(len)) = (source.size, total) {
        if size != len {
            return Err(Failure::new(
                Exit::Checksum,
                format!(
                    "{} is {len} bytes but the manifest pins size = {size} for it; nothing was \
                     copied. Fetch it again from {}",
                    path.display(),
                    source.url
                ),
            ));
        }
    }
    if let (Some(len), Some(parent)) = (total, dest.parent()) {
        check_space(parent, len, &path.display().to_string())?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dest)
        .map_err(|e| Failure::io("cannot create", dest, &e))?;
    let mut out = BufWriter::with_capacity(verify::BUF_SIZE, file);
    let mut progress = Progress::start(&source.file_name, total, 0);
    // Never more than the pinned size, even from a file still growing.
    let cap = source.size.unwrap_or(u64::MAX);
    let mut limited = (&mut input).take(cap);
    let copied = match verify::copy_hashed(&mut limited, &mut out, &mut |n| progress.update(n)) {
        Ok(c) => c,
        Err(CopyError::Read(e)) => {
            progress.abandon();
            return Err(Failure::io("cannot read", &path, &e));
        }
        Err(CopyError::Write(e)) => {
            progress.abandon();
            let _ = std::fs::remove_file(dest);
            return Err(Failure::io("cannot write", dest, &e));
        }
    };
    out.into_inner()
        .map_err(|e| Failure::io("cannot write", dest, e.error()))?
        .flush()
        .map_err(|e| Failure::io("cannot write", dest, &e))?;
    progress.finish(copied.bytes, "copied");
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            content_range("bytes 100-199/200"),
            Some((100, 199, Some(200)))
        );
        assert_eq!(content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(content_range("bytes 9-5/10"), None);
        assert_eq!(content_range("bytes 0-10/10"), None);
        assert_eq!(content_range("items 0-1/2"), None);
        assert_eq!(content_range("bytes */200"), None);
    }

    #[test]
    fn a_part_keeps_and_hashes_what_an_earlier_run_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.part");
        std::fs::write(&path, b"abc").expect("write");
        let mut part = Part::open(&path, 10).expect("open");
        assert_eq!((part.len, part.spliced), (3, true));
        part.append(b"def").expect("append");
        let copied = part.digest().expect("digest");
        assert_eq!(copied.bytes, 6);
        // sha256("abcdef")
        assert_eq!(
            copied.sha256,
            "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721"
        );
        assert_eq!(std::fs::read(&path).expect("read"), b"abcdef");
        drop(part);
        // Over the bound: started again.
        let part = Part::open(&path, 4).expect("open");
        assert_eq!((part.len, part.spliced), (0, false));
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 0);
    }
}

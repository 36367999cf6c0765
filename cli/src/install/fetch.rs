//! Getting an artifact's bytes into the staging directory: over HTTP(S)
//! with ureq, or from `--from DIR`. Both paths hash while writing and check
//! the pin before anything is unpacked.
//!
//! Retries: connection errors, resets, truncated bodies, timeouts and 5xx
//! (plus 408/429) are retried a bounded number of times with doubling
//! back-off; every attempt starts again from byte 0 into a truncated file.
//! No `Range:` resume: a partial file from an earlier attempt or a killed
//! run cannot be verified on its own, so it is never trusted. 404 and other
//! 4xx are final: asking again will not make the file appear.

use super::manifest_select::Source;
use super::progress::Progress;
use super::verify::{self, Copied, CopyError};
use crate::error::{Exit, Failure, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where artifacts come from.
pub enum Origin {
    Network(Fetcher),
    Dir(PathBuf),
}

pub struct Fetcher {
    agent: ureq::Agent,
    attempts: u32,
    first_delay: Duration,
}

impl Fetcher {
    pub fn new() -> Fetcher {
        let config = ureq::Agent::config_builder()
            // Status codes are ours to classify (retry 5xx, stop at 404).
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("dockyard/", env!("CARGO_PKG_VERSION")))
            .build();
        Fetcher {
            agent: config.into(),
            attempts: 4,
            first_delay: Duration::from_millis(500),
        }
    }
}

/// One failed attempt, and whether another could succeed.
struct AttemptError {
    transient: bool,
    failure: Failure,
}

impl Origin {
    /// Brings `source` to `dest` (created or truncated) and checks its
    /// sha256 against the pin. `dest` is left for the caller to unpack.
    pub fn fetch(&self, source: &Source, dest: &Path, manifest: &Path) -> Result<Copied> {
        let copied = match self {
            Origin::Network(fetcher) => fetcher.download(source, dest)?,
            Origin::Dir(dir) => copy_local(dir, source, dest)?,
        };
        let what = match self {
            Origin::Network(_) => source.url.clone(),
            Origin::Dir(dir) => dir.join(&source.file_name).display().to_string(),
        };
        verify::check(&source.sha256, &copied, &what, manifest)?;
        Ok(copied)
    }
}

impl Fetcher {
    fn download(&self, source: &Source, dest: &Path) -> Result<Copied> {
        let mut delay = self.first_delay;
        let mut attempt = 1;
        loop {
            match self.attempt(source, dest) {
                Ok(copied) => return Ok(copied),
                Err(e) if e.transient && attempt < self.attempts => {
                    eprintln!(
                        "{}: attempt {attempt} of {} failed: {}; retrying in {:.1} s",
                        source.file_name,
                        self.attempts,
                        e.failure.message,
                        delay.as_secs_f64()
                    );
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) if e.transient => {
                    return Err(Failure::new(
                        Exit::Download,
                        format!(
                            "{} (gave up after {attempt} attempts); check the network, the \
                             manifest's mirror, or copy the file into a directory and use --from DIR",
                            e.failure.message
                        ),
                    ))
                }
                Err(e) => return Err(e.failure),
            }
        }
    }

    fn attempt(&self, source: &Source, dest: &Path) -> std::result::Result<Copied, AttemptError> {
        let url = &source.url;
        let transient = |message: String| AttemptError {
            transient: true,
            failure: Failure::new(Exit::Download, message),
        };
        let fatal = |message: String| AttemptError {
            transient: false,
            failure: Failure::new(Exit::Download, message),
        };
        let mut response = match self.agent.get(url).call() {
            Ok(r) => r,
            Err(e) => {
                let message = format!("cannot download {url}: {e}");
                return Err(match e {
                    ureq::Error::BadUri(_)
                    | ureq::Error::Tls(_)
                    | ureq::Error::TooManyRedirects
                    | ureq::Error::RedirectFailed => fatal(message),
                    _ => transient(message),
                });
            }
        };
        let status = response.status().as_u16();
        match status {
            200 => {}
            408 | 429 | 500..=599 => {
                return Err(transient(format!("{url} answered HTTP {status}")));
            }
            404 | 410 => {
                return Err(fatal(format!(
                    "{url} does not exist (HTTP {status}); check the url in the manifest, or that \
                     the mirror holds the file under the same path"
                )));
            }
            _ => return Err(fatal(format!("{url} answered HTTP {status}; expected 200"))),
        }
        let total = response.body().content_length();
        let file = create(dest).map_err(|f| AttemptError {
            transient: false,
            failure: f,
        })?;
        let mut out = BufWriter::with_capacity(verify::BUF_SIZE, file);
        let mut progress = Progress::start(&source.file_name, &format!("downloading {url}"), total);
        let mut reader = response.body_mut().as_reader();
        let result = verify::copy_hashed(&mut reader, &mut out, &mut |n| progress.update(n));
        let copied = match result {
            Ok(c) => c,
            Err(CopyError::Read(e)) => {
                progress.abandon();
                return Err(transient(format!("download of {url} broke off: {e}")));
            }
            Err(CopyError::Write(e)) => {
                progress.abandon();
                return Err(AttemptError {
                    transient: false,
                    failure: Failure::io("cannot write", dest, &e),
                });
            }
        };
        if let Some(total) = total.filter(|&t| t != copied.bytes) {
            progress.abandon();
            return Err(transient(format!(
                "download of {url} ended after {} of {total} bytes",
                copied.bytes
            )));
        }
        finish(out, dest).map_err(|f| AttemptError {
            transient: false,
            failure: f,
        })?;
        progress.finish(copied.bytes, "downloaded");
        Ok(copied)
    }
}

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
    let file = create(dest)?;
    let mut out = BufWriter::with_capacity(verify::BUF_SIZE, file);
    let mut progress = Progress::start(
        &source.file_name,
        &format!("copying {}", path.display()),
        total,
    );
    let copied = match verify::copy_hashed(&mut input, &mut out, &mut |n| progress.update(n)) {
        Ok(c) => c,
        Err(CopyError::Read(e)) => {
            progress.abandon();
            return Err(Failure::io("cannot read", &path, &e));
        }
        Err(CopyError::Write(e)) => {
            progress.abandon();
            return Err(Failure::io("cannot write", dest, &e));
        }
    };
    finish(out, dest)?;
    progress.finish(copied.bytes, "copied");
    Ok(copied)
}

fn create(dest: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dest)
        .map_err(|e| Failure::io("cannot create", dest, &e))
}

/// Flushes the buffer; a write error here (disk full) is final.
fn finish(out: BufWriter<File>, dest: &Path) -> Result<()> {
    out.into_inner()
        .map_err(|e| Failure::io("cannot write", dest, e.error()))?
        .flush()
        .map_err(|e| Failure::io("cannot write", dest, &e))
}

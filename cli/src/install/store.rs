//! The versioned store: `STORE/{docker,sysbox,compose}/VERSION/bin/`, one
//! directory per version, shared by every instance that pins it.
//!
//! A version is built in `STORE/.staging/` (same filesystem, so the final
//! step is one `rename`) and only appears under its real name complete,
//! with its record written last. An interrupted install therefore leaves
//! at most a staging directory, which the next run (holding the lock, so
//! no live install owns it) deletes. Versions are immutable once in place:
//! running daemons keep their binaries, and nothing rewrites them.

use super::verify;
use crate::error::{Exit, Failure, Result};
use dockyard_model::manifest::{kind_name, Kind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Written last into a version directory: what it was built from and the
/// digest of every file, so a re-run can verify it without the network.
pub const RECORD_FILE: &str = ".dockyard-artifact.toml";
pub const STAGING_DIR: &str = ".staging";
/// Inside `.staging`: downloads in progress, `SHA256.part`, kept across runs
/// so that an interrupted download resumes.
pub const PARTIAL_DIR: &str = "partial";
pub const STORE_KINDS: [Kind; 3] = [Kind::Docker, Kind::Sysbox, Kind::Compose];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub kind: String,
    pub version: String,
    pub arch: String,
    #[serde(rename = "artifact")]
    pub artifacts: Vec<RecordedArtifact>,
    #[serde(rename = "file")]
    pub files: Vec<RecordedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedArtifact {
    pub kind: String,
    pub url: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// What is at `STORE/KIND/VERSION`.
#[derive(Debug)]
pub enum State {
    Absent,
    /// Installed by `dockyard install`.
    Installed(Record),
    /// A directory without a readable record: laid out by hand (or by an
    /// older quick start). Never touched by an install.
    Unmanaged(String),
}

/// The refusal for an [`State::Unmanaged`] directory at `dir`: every way
/// of installing leaves it alone, and says so in the same words.
pub fn refuse_unmanaged(dir: &Path, why: &str) -> Failure {
    Failure::new(
        Exit::Refused,
        format!(
            "{} exists but was not installed by dockyard install ({why}); it is left \
             alone. If no instance runs from it, move it away and run this again",
            dir.display()
        ),
    )
}

pub struct Store {
    pub root: PathBuf,
}

/// A version being built. Deleted on drop unless committed, so a failure
/// (disk full, bad archive) in this process leaves nothing behind.
pub struct Staging {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub downloads: PathBuf,
    committed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: what is left is removed by the next run.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn mkdir(path: &Path) -> Result<()> {
    match DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(Failure::io("cannot create directory", path, &e)),
    }
}

fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| Failure::io("cannot flush directory", path, &e))
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    /// Creates the store's directories (root-owned, 0755: the units run
    /// the binaries as root, everyone may read them).
    pub fn ensure(&self) -> Result<()> {
        if let Some(parent) = self.root.parent() {
            if !parent.as_os_str().is_empty() {
                fs::create_dir_all(parent)
                    .map_err(|e| Failure::io("cannot create directory", parent, &e))?;
            }
        }
        mkdir(&self.root)?;
        mkdir(&self.root.join(STAGING_DIR))?;
        for kind in STORE_KINDS {
            mkdir(&self.root.join(kind_name(kind)))?;
        }
        Ok(())
    }

    pub fn version_dir(&self, kind: Kind, version: &str) -> PathBuf {
        self.root.join(kind_name(kind)).join(version)
    }

    /// Deletes what killed installs left in `.staging`, except the partial
    /// downloads of the artifacts pinned by `keep` (their sha256): those
    /// are resumed. Call with the lock held: then nothing there belongs to a
    /// live install. Returns how many leftovers were removed.
    pub fn clean_staging(&self, keep: &[&str]) -> Result<usize> {
        let dir = self.root.join(STAGING_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Failure::io("cannot list", &dir, &e)),
        };
        let mut cleaned = 0;
        for entry in entries {
            let entry = entry.map_err(|e| Failure::io("cannot list", &dir, &e))?;
            let path = entry.path();
            if entry.file_name() == PARTIAL_DIR && path.is_dir() && !path.is_symlink() {
                self.clean_partials(keep)?;
                continue;
            }
            remove_leftover(&path)?;
            cleaned += 1;
        }
        Ok(cleaned)
    }

    /// Where downloads in progress live (created on demand).
    pub fn partial_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join(STAGING_DIR).join(PARTIAL_DIR);
        mkdir(&dir)?;
        Ok(dir)
    }

    fn clean_partials(&self, keep: &[&str]) -> Result<()> {
        let dir = self.root.join(STAGING_DIR).join(PARTIAL_DIR);
        let entries = fs::read_dir(&dir).map_err(|e| Failure::io("cannot list", &dir, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Failure::io("cannot list", &dir, &e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let wanted = name
                .strip_suffix(".part")
                .is_some_and(|sha| keep.contains(&sha));
            let path = entry.path();
            if wanted && path.is_file() && !path.is_symlink() {
                continue;
            }
            remove_leftover(&path)?;
        }
        self.tidy_partials();
        Ok(())
    }

    /// Removes the partial directory when nothing is in it (best effort).
    pub fn tidy_partials(&self) {
        let _ = fs::remove_dir(self.root.join(STAGING_DIR).join(PARTIAL_DIR));
    }

    pub fn stage(&self, kind: Kind, version: &str) -> Result<Staging> {
        let dir = self.root.join(STAGING_DIR).join(format!(
            "{}-{version}.{}",
            kind_name(kind),
            std::process::id()
        ));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| Failure::io("cannot remove", &dir, &e))?;
        }
        mkdir(&dir)?;
        let staging = Staging {
            bin: dir.join("bin"),
            downloads: dir.join("downloads"),
            dir,
            committed: false,
        };
        mkdir(&staging.bin)?;
        mkdir(&staging.downloads)?;
        Ok(staging)
    }

    /// Writes the record, flushes everything and renames the staging
    /// directory to `KIND/VERSION`. The rename is the only moment the
    /// version becomes visible, and it is atomic.
    pub fn commit(&self, mut staging: Staging, record: &Record, kind: Kind) -> Result<PathBuf> {
        fs::remove_dir_all(&staging.downloads)
            .map_err(|e| Failure::io("cannot remove", &staging.downloads, &e))?;
        let text = toml::to_string(record)
            .map_err(|e| Failure::failed(format!("cannot serialise the install record: {e}")))?;
        let record_path = staging.dir.join(RECORD_FILE);
        let write = || -> io::Result<()> {
            let mut f = File::create(&record_path)?;
            f.write_all(b"# Written by `dockyard install`; do not edit: it is how re-runs verify this version.\n")?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| Failure::io("cannot write", &record_path, &e))?;
        sync_dir(&staging.bin)?;
        sync_dir(&staging.dir)?;
        let dest = self.version_dir(kind, &record.version);
        // rename(2) onto a missing name; the caller checked it was absent
        // under the lock. A non-empty directory there makes it fail
        // (ENOTEMPTY) instead of replacing anything.
        fs::rename(&staging.dir, &dest).map_err(|e| {
            Failure::io(
                &format!("cannot move {} into place as", staging.dir.display()),
                &dest,
                &e,
            )
        })?;
        staging.committed = true;
        sync_dir(dest.parent().unwrap_or(&self.root))?;
        Ok(dest)
    }

    pub fn state(&self, kind: Kind, version: &str) -> State {
        let dir = self.version_dir(kind, version);
        if !dir.exists() {
            return State::Absent;
        }
        let path = dir.join(RECORD_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => match toml::from_str::<Record>(&text) {
                Ok(record) => State::Installed(record),
                Err(e) => {
                    State::Unmanaged(format!("{} is unreadable: {}", path.display(), e.message()))
                }
            },
            Err(e) => State::Unmanaged(format!("{}: {e}", path.display())),
        }
    }

    /// Re-hashes every recorded file (local reads only).
    pub fn verify_files(&self, kind: Kind, record: &Record) -> Result<()> {
        let bin = self.version_dir(kind, &record.version).join("bin");
        for f in &record.files {
            let path = bin.join(&f.name);
            let got = verify::hash_file(&path).map_err(|e| {
                Failure::new(
                    Exit::Checksum,
                    format!(
                        "installed {} {} is damaged: {}: {e}; remove it (dockyard install --remove {}) and install again",
                        record.kind, record.version, path.display(), record.version
                    ),
                )
            })?;
            if got.sha256 != f.sha256 {
                return Err(Failure::new(
                    Exit::Checksum,
                    format!(
                        "installed {} {} is damaged: {} has sha256 {}, recorded {}; remove it \
                         (dockyard install --remove {}) and install again",
                        record.kind,
                        record.version,
                        path.display(),
                        got.sha256,
                        f.sha256,
                        record.version
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every version directory, by kind, in name order.
    pub fn list(&self) -> Result<Vec<(Kind, String, State)>> {
        let mut out = Vec::new();
        for kind in STORE_KINDS {
            let dir = self.root.join(kind_name(kind));
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Failure::io("cannot list", &dir, &e)),
            };
            let mut versions: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect();
            versions.sort();
            for v in versions {
                let state = self.state(kind, &v);
                out.push((kind, v, state));
            }
        }
        Ok(out)
    }

    /// Takes a version out of sight with one rename, then deletes it. Call
    /// with the lock held and after checking no instance pins it.
    pub fn remove(&self, kind: Kind, version: &str) -> Result<()> {
        let dir = self.version_dir(kind, version);
        let doomed = self.root.join(STAGING_DIR).join(format!(
            "removing-{}-{version}.{}",
            kind_name(kind),
            std::process::id()
        ));
        fs::rename(&dir, &doomed).map_err(|e| Failure::io("cannot move away", &dir, &e))?;
        fs::remove_dir_all(&doomed).map_err(|e| Failure::io("cannot remove", &doomed, &e))
    }
}

/// The record's file list from what was unpacked (hashed while written).
pub fn record_files(taken: &BTreeMap<String, verify::Copied>) -> Vec<RecordedFile> {
    taken
        .iter()
        .map(|(name, c)| RecordedFile {
            name: name.clone(),
            size: c.bytes,
            sha256: c.sha256.clone(),
        })
        .collect()
}

/// A leftover of an interrupted run: a directory goes whole (never through
/// a symlink: `remove_dir_all` does not follow them), anything else alone.
fn remove_leftover(path: &Path) -> Result<()> {
    let removed = if path.is_dir() && !path.is_symlink() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    removed.map_err(|e| Failure::io("cannot remove the leftover", path, &e))
}

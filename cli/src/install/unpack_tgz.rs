//! Docker's static `.tgz` (`docker/dockerd`, `docker/docker`, …) and the
//! rootless extras (`docker-rootless-extras/…`), with tar + flate2.

use super::tar_take::{self, AbsoluteLinks};
use super::verify::Copied;
use crate::error::{Failure, Result};
use dockyard_model::manifest::Kind;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// What a Docker daemon instance runs; all must be in the tarball.
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

pub const DOCKER_DIR: &str = "docker";
pub const EXTRAS_DIR: &str = "docker-rootless-extras";

/// Unpacks `archive` (already verified) into `bin_dir`.
pub fn unpack(kind: Kind, archive: &Path, bin_dir: &Path) -> Result<BTreeMap<String, Copied>> {
    let what = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = File::open(archive).map_err(|e| Failure::io("cannot open", archive, &e))?;
    let gz = flate2::read::GzDecoder::new(BufReader::with_capacity(super::verify::BUF_SIZE, file));
    let mut tar = tar::Archive::new(gz);
    let top = if kind == Kind::Docker {
        DOCKER_DIR
    } else {
        EXTRAS_DIR
    };
    let pick = |parts: &[String]| -> Option<String> {
        match parts {
            [dir, name] if dir == top => {
                // Docker's own binaries are a fixed list; the extras are
                // whatever that tarball holds (it varies by arch and release).
                (kind != Kind::Docker || DOCKER_BINARIES.contains(&name.as_str()))
                    .then(|| name.clone())
            }
            _ => None,
        }
    };
    let taken = tar_take::take(&mut tar, &what, AbsoluteLinks::Escape, bin_dir, &pick)?;
    if kind == Kind::Docker {
        let missing = tar_take::missing(&taken, &DOCKER_BINARIES);
        if !missing.is_empty() {
            return Err(Failure::failed(format!(
                "{what} lacks {} under {DOCKER_DIR}/; it is not a Docker static build \
                 (download.docker.com/linux/static/…); check the manifest's url",
                missing.join(", ")
            )));
        }
    } else if taken.is_empty() {
        return Err(Failure::failed(format!(
            "{what} has no files under {EXTRAS_DIR}/; it is not Docker's rootless extras tarball"
        )));
    }
    Ok(taken)
}

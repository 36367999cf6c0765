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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A `.tgz` of `(path, mode)` regular files, with their directory.
    fn tgz(dir: &str, files: &[(&str, u32)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, format!("{dir}/"), std::io::empty())
            .expect("dir");
        for (name, mode) in files {
            let body = format!("#!/bin/sh\necho {name}\n");
            let mut h = tar::Header::new_gnu();
            h.set_mode(*mode);
            h.set_size(body.len() as u64);
            b.append_data(&mut h, format!("{dir}/{name}"), body.as_bytes())
                .expect("file");
        }
        b.into_inner().expect("tar").finish().expect("gzip")
    }

    /// Docker's rootless extras: every file lands in bin/, executable
    /// whatever mode the archive gave it (a rootless unit runs
    /// `bin/rootlesskit`).
    #[test]
    fn the_rootless_extras_put_an_executable_rootlesskit_in_bin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("docker-rootless-extras-29.2.1.tgz");
        let files = [
            ("dockerd-rootless.sh", 0o755),
            ("dockerd-rootless-setuptool.sh", 0o755),
            ("rootlesskit", 0o644),
            ("vpnkit", 0o755),
        ];
        std::fs::write(&archive, tgz(EXTRAS_DIR, &files)).expect("write");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let taken = unpack(Kind::DockerRootlessExtras, &archive, &bin).expect("unpacked");
        assert_eq!(
            taken.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "dockerd-rootless-setuptool.sh",
                "dockerd-rootless.sh",
                "rootlesskit",
                "vpnkit"
            ]
        );
        let mode = std::fs::metadata(bin.join("rootlesskit"))
            .expect("rootlesskit")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
    }
}

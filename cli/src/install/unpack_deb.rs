//! sysbox's `.deb`: the `ar` outer archive, then the tar in `data.tar.xz`,
//! `.zst` or `.gz` (whichever dpkg-deb used), taking only the three
//! binaries Dockyard's sysbox units run. No `dpkg`: the package's
//! maintainer scripts would start sysbox's own host-wide services. The
//! distribution's Docker packages are read the same way (`with_data`,
//! used by `distro`).

use super::tar_take::{self, AbsoluteLinks};
use super::verify::Copied;
use crate::error::{Failure, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

pub const SYSBOX_BINARIES: [&str; 3] = ["sysbox-runc", "sysbox-mgr", "sysbox-fs"];

pub fn unpack(deb: &Path, bin_dir: &Path) -> Result<BTreeMap<String, Copied>> {
    with_data(deb, |tar, member_what| {
        let pick = |parts: &[String]| -> Option<String> {
            parts
                .last()
                .filter(|n| SYSBOX_BINARIES.contains(&n.as_str()))
                .cloned()
        };
        let taken = tar_take::take(tar, member_what, AbsoluteLinks::ImageRoot, bin_dir, &pick)?;
        let missing = tar_take::missing(&taken, &SYSBOX_BINARIES);
        if !missing.is_empty() {
            return Err(Failure::failed(format!(
                "{member_what} has no {}; Dockyard needs sysbox-runc, sysbox-mgr and sysbox-fs \
                 from the sysbox-ce package: check the manifest's url",
                missing.join(", ")
            )));
        }
        Ok(taken)
    })
}

/// Opens `deb`'s data member (`data.tar.xz`, `.zst`, `.gz` or plain) and
/// hands its tar stream to `f`, with a name for messages.
pub fn with_data<T>(
    deb: &Path,
    f: impl FnOnce(&mut tar::Archive<Box<dyn Read + '_>>, &str) -> Result<T>,
) -> Result<T> {
    let what = deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = File::open(deb).map_err(|e| Failure::io("cannot open", deb, &e))?;
    let mut ar = ar::Archive::new(BufReader::with_capacity(super::verify::BUF_SIZE, file));
    let mut members = Vec::new();
    while let Some(member) = ar.next_entry() {
        let member = member.map_err(|e| {
            Failure::failed(format!("{what}: not a readable .deb (ar archive): {e}"))
        })?;
        // GNU ar ends member names with '/'; dpkg does not.
        let name = String::from_utf8_lossy(member.header().identifier())
            .trim_end_matches('/')
            .to_string();
        let decoder: Box<dyn Read + '_> = match name.as_str() {
            "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(member)),
            "data.tar.zst" => Box::new(zstd::stream::read::Decoder::new(member).map_err(|e| {
                Failure::failed(format!("{what}: cannot start the zstd decoder: {e}"))
            })?),
            "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(member)),
            "data.tar" => Box::new(member),
            _ => {
                members.push(name);
                continue;
            }
        };
        let member_what = format!("{what} ({name})");
        let mut tar = tar::Archive::new(decoder);
        return f(&mut tar, &member_what);
    }
    Err(Failure::failed(format!(
        "{what} has no data.tar.xz, .zst or .gz member (members: {}); it is not a .deb Dockyard can read",
        if members.is_empty() { "none".to_string() } else { members.join(", ") }
    )))
}

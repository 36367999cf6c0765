//! Walking a tar stream safely and taking only the binaries Dockyard needs.
//! Shared by the Docker `.tgz` and the sysbox `.deb`'s data member.
//!
//! Nothing is unpacked by path: every wanted file is written by us, by its
//! bare name, with `O_EXCL` into the staging `bin/` directory, so a hostile
//! archive cannot write elsewhere. Every entry is still checked, wanted or
//! not: an archive with an absolute path, a `..` component or a link that
//! climbs out of the archive is refused as a whole, because a pinned
//! artifact that contains one is not the artifact it claims to be.

use super::verify::{copy_hashed, Copied, CopyError};
use crate::error::{Failure, Result};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use tar::EntryType;

/// How link targets that start with `/` are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbsoluteLinks {
    /// A tarball unpacked as a relative tree: `/x` points out of it.
    Escape,
    /// A `.deb` data member is an image of `/`: `/usr/bin/x` stays inside.
    ImageRoot,
}

/// An entry's path as components, without `.` and empty parts. Refuses
/// absolute paths and `..` anywhere.
pub fn components(raw: &[u8]) -> std::result::Result<Vec<String>, String> {
    let text = String::from_utf8_lossy(raw);
    if text.starts_with('/') {
        return Err(format!("absolute path {text:?}"));
    }
    let mut out = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("path {text:?} climbs out with '..'")),
            _ => out.push(part.to_string()),
        }
    }
    Ok(out)
}

/// Checks that a link at `entry` (components) pointing to `target` stays in
/// the archive. Hard-link targets are archive paths; symlink targets are
/// relative to the link's directory.
fn check_link(
    entry: &[String],
    target: &[u8],
    hard: bool,
    absolute: AbsoluteLinks,
) -> std::result::Result<(), String> {
    let text = String::from_utf8_lossy(target);
    let outside = || {
        format!(
            "link {:?} -> {text:?} points outside the archive",
            entry.join("/")
        )
    };
    if text.starts_with('/') {
        return match absolute {
            AbsoluteLinks::ImageRoot => Ok(()),
            AbsoluteLinks::Escape => Err(outside()),
        };
    }
    let mut depth: Vec<&str> = if hard {
        Vec::new()
    } else {
        entry[..entry.len().saturating_sub(1)]
            .iter()
            .map(String::as_str)
            .collect()
    };
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return Err(outside());
                }
            }
            p => depth.push(p),
        }
    }
    Ok(())
}

/// The names of `wanted` that `take` did not find, in `wanted`'s order.
pub fn missing<'a>(taken: &BTreeMap<String, Copied>, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|b| !taken.contains_key(*b))
        .collect()
}

/// Reads every entry of `archive`; `pick` maps an entry's components to the
/// name it gets in `bin_dir`, or `None` to skip it. Returns what was taken,
/// by name, with its size and sha256 (hashed while writing).
pub fn take<R: Read>(
    archive: &mut tar::Archive<R>,
    what: &str,
    absolute: AbsoluteLinks,
    bin_dir: &Path,
    pick: &dyn Fn(&[String]) -> Option<String>,
) -> Result<BTreeMap<String, Copied>> {
    let bad = |e: String| Failure::failed(format!("{what}: refusing the archive: {e}"));
    let broken = |e: io::Error| Failure::failed(format!("{what}: cannot read the archive: {e}"));
    let mut taken = BTreeMap::new();
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let parts = components(&entry.path_bytes()).map_err(bad)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::Symlink | EntryType::Link) {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            check_link(&parts, &target, kind == EntryType::Link, absolute).map_err(bad)?;
        }
        let Some(name) = pick(&parts) else { continue };
        if kind != EntryType::Regular && kind != EntryType::Continuous {
            return Err(bad(format!(
                "{:?} is a {kind:?} entry; Dockyard takes only regular files",
                parts.join("/")
            )));
        }
        let dest = bin_dir.join(&name);
        let copied = write_executable(&mut entry, &dest).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => bad(format!("{:?} appears twice", parts.join("/"))),
            _ => Failure::io("cannot write", &dest, &e),
        })?;
        taken.insert(name, copied);
    }
    Ok(taken)
}

/// Writes one binary, 0755, never through an existing file or link, and
/// flushed to disk before the version directory is renamed into place
/// (also the Compose plugin, which is released as a bare binary).
pub fn write_executable(from: &mut dyn Read, dest: &Path) -> io::Result<Copied> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(dest)?;
    let mut out = BufWriter::with_capacity(super::verify::BUF_SIZE, file);
    let copied = copy_hashed(from, &mut out, &mut |_| {}).map_err(|e| match e {
        CopyError::Read(e) | CopyError::Write(e) => e,
    })?;
    let file: File = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> Vec<String> {
        components(s.as_bytes()).expect("relative")
    }

    #[test]
    fn paths_must_be_relative_without_dotdot() {
        assert_eq!(parts("./docker/dockerd"), ["docker", "dockerd"]);
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"docker/../../etc").is_err());
        assert!(components(b"..").is_err());
    }

    #[test]
    fn links_must_stay_inside() {
        let e = parts("docker/x");
        assert!(check_link(&e, b"dockerd", false, AbsoluteLinks::Escape).is_ok());
        assert!(check_link(&e, b"../docker/dockerd", false, AbsoluteLinks::Escape).is_ok());
        assert!(check_link(&e, b"../../etc/passwd", false, AbsoluteLinks::Escape).is_err());
        assert!(check_link(&e, b"/etc/passwd", false, AbsoluteLinks::Escape).is_err());
        assert!(check_link(&e, b"/usr/bin/x", false, AbsoluteLinks::ImageRoot).is_ok());
        // Hard-link targets are archive paths, not relative to the link.
        assert!(check_link(&e, b"docker/dockerd", true, AbsoluteLinks::Escape).is_ok());
        assert!(check_link(&e, b"../x", true, AbsoluteLinks::Escape).is_err());
    }
}

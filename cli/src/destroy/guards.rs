//! What destroy checks before it deletes, and how it deletes: the root
//! must be one the model accepts, reached without symlinks, carrying the
//! instance's group, with nothing mounted below it; removal never follows
//! a symlink nor leaves the root's file system.

use crate::probe::host;
use dockyard_model::root;
use dockyard_mounts::{is_mount_point, mounted_below};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The root as it may be deleted: passes the model's `Root=` checks, and
/// neither it nor any of its parents is a symlink.
pub(super) fn safe_root(root: &str) -> std::result::Result<PathBuf, String> {
    root::check_root(root).map_err(|e| format!("its root is not one Dockyard would use: {e}"))?;
    resolves_to_itself(Path::new(root))?;
    Ok(PathBuf::from(root))
}

/// `path` exists, is a real directory, and is reached without symlinks.
pub(super) fn resolves_to_itself(path: &Path) -> std::result::Result<(), String> {
    let meta = path
        .symlink_metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symlink; not following it (remove it by hand)",
            path.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    let canon = std::fs::canonicalize(path)
        .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    if canon != path {
        return Err(format!(
            "{} resolves to {} through a symlink; not deleting through it",
            path.display(),
            canon.display()
        ));
    }
    Ok(())
}

/// Does the directory look like an instance root of this instance? Owned by
/// root, with the instance's group (`prepare up` makes it `root:GROUP
/// 0750`); when that group is gone already (an earlier, interrupted
/// destroy), only Dockyard's own entries may be inside.
fn check_ownership(
    root: &Path,
    uid: u32,
    gid: u32,
    instance_gid: Option<u32>,
    instance_uid: Option<u32>,
) -> std::result::Result<(), String> {
    // A rootless instance's root is its user's (`dockyard-prepare up
    // --mode rootless`); a rootful one's is root's.
    if uid != 0 && Some(uid) != instance_uid {
        return Err(format!(
            "{} is owned by uid {uid}, neither root nor the instance's user; Dockyard did not create it",
            root.display()
        ));
    }
    match instance_gid {
        Some(want) if want != gid => Err(format!(
            "{} has group {}, not the instance's group (gid {want}); Dockyard did not create it",
            root.display(),
            host::group_name(gid)
        )),
        Some(_) => Ok(()),
        None => {
            let entries = std::fs::read_dir(root)
                .map_err(|e| format!("cannot list {}: {e}", root.display()))?;
            for e in entries.filter_map(std::result::Result::ok) {
                let n = e.file_name();
                if n != "docker" && n != "docker.sock" {
                    return Err(format!(
                        "{} holds {:?}, which Dockyard did not put there, and the instance's group is gone; delete it by hand if it is the instance's",
                        root.display(),
                        n
                    ));
                }
            }
            Ok(())
        }
    }
}

pub(super) fn mountinfo() -> std::result::Result<Vec<u8>, String> {
    dockyard_mounts::read_mountinfo().map_err(|e| e.to_string())
}

/// Every failure, not only the first: each mount is tried.
pub(super) fn unmount_below(bases: &[PathBuf]) -> std::result::Result<usize, String> {
    let done = dockyard_mounts::unmount_below(bases).map_err(|e| e.to_string())?;
    if done.failed.is_empty() {
        Ok(done.detached)
    } else {
        Err(done
            .failed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

pub(super) fn remove_root(
    root: &Path,
    instance_gid: Option<u32>,
    instance_uid: Option<u32>,
) -> std::result::Result<(), String> {
    resolves_to_itself(root)?;
    let meta = root
        .symlink_metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", root.display()))?;
    check_ownership(root, meta.uid(), meta.gid(), instance_gid, instance_uid)?;
    let info = mountinfo()?;
    let left = mounted_below(&info, root);
    if !left.is_empty() {
        return Err(format!(
            "not deleting {}: still mounted below it: {}",
            root.display(),
            left.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    remove_contents(root)?;
    // The admin's own file system mounted on the root: keep the mount point.
    if !is_mount_point(&info, root) {
        std::fs::remove_dir(root).map_err(|e| format!("cannot remove {}: {e}", root.display()))?;
    }
    Ok(())
}

/// Deletes everything inside `dir` without following symlinks (a symlink
/// is removed, never its target) and without leaving `dir`'s file system.
pub(super) fn remove_contents(dir: &Path) -> std::result::Result<(), String> {
    let dev = dir
        .symlink_metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?
        .dev();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = e.path();
        let meta = path
            .symlink_metadata()
            .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
        if meta.is_dir() {
            if meta.dev() != dev {
                return Err(format!(
                    "not deleting {}: another file system is mounted there",
                    path.display()
                ));
            }
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Removes a file, symlink or directory tree (never following a symlink);
/// `Ok(false)` when it did not exist.
pub(super) fn remove_any(path: &Path) -> std::result::Result<bool, String> {
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
    .map(|()| true)
    .map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn roots_the_model_refuses_are_refused() {
        for r in [
            "/",
            "/etc",
            "/var/lib/dockyard",
            "/srv/../etc",
            "relative",
            "/tmp/x",
            "/usr/local/dy1",
            "/var/lib/dockyard/artifacts/x",
        ] {
            let e = safe_root(r).expect_err(r);
            assert!(e.contains("not one Dockyard would use"), "{r}: {e}");
        }
    }

    #[test]
    fn symlinked_roots_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = dir.path().join("link");
        symlink(&real, &link).expect("symlink");
        assert!(resolves_to_itself(&link)
            .expect_err("link")
            .contains("is a symlink"));
        // A parent that is a symlink.
        std::fs::create_dir(real.join("inner")).expect("mkdir");
        let through = link.join("inner");
        assert!(resolves_to_itself(&through)
            .expect_err("through")
            .contains("through a symlink"));
        let canon_real = std::fs::canonicalize(&real).expect("canon");
        assert!(resolves_to_itself(&canon_real).is_ok());
        let file = canon_real.join("f");
        std::fs::write(&file, "x").expect("write");
        assert!(resolves_to_itself(&file)
            .expect_err("file")
            .contains("not a directory"));
    }

    #[test]
    fn removal_never_follows_symlinks_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::write(outside.join("precious"), "keep").expect("write");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("docker/containers/x")).expect("mkdir");
        std::fs::write(root.join("docker/containers/x/f"), "data").expect("write");
        symlink(&outside, root.join("docker/escape")).expect("symlink");
        symlink(outside.join("precious"), root.join("file-link")).expect("symlink");
        symlink(&outside, root.join("docker/containers/x/dirlink")).expect("symlink");
        remove_contents(&root).expect("remove");
        assert_eq!(std::fs::read_dir(&root).expect("ls").count(), 0);
        assert_eq!(
            std::fs::read_to_string(outside.join("precious")).expect("kept"),
            "keep"
        );
    }

    #[test]
    fn ownership_decides_whose_root_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert!(check_ownership(root, 0, 990, Some(990), Some(991)).is_ok());
        // A rootless instance's root is its user's.
        assert!(check_ownership(root, 991, 990, Some(990), Some(991)).is_ok());
        assert!(check_ownership(root, 1000, 990, Some(990), Some(991))
            .expect_err("uid")
            .contains("neither root nor the instance's user"));
        assert!(check_ownership(root, 0, 0, Some(990), None)
            .expect_err("gid")
            .contains("not the instance's group"));
        // Group gone: only docker/ and docker.sock may be there.
        std::fs::create_dir(root.join("docker")).expect("mkdir");
        assert!(check_ownership(root, 0, 990, None, None).is_ok());
        std::fs::write(root.join("photos.tar"), "x").expect("write");
        assert!(check_ownership(root, 0, 990, None, None)
            .expect_err("foreign")
            .contains("photos.tar"));
    }
}

//! A rootless instance's subordinate ids: its user's lines in /etc/subuid
//! and /etc/subgid, removed once its data is gone, under the lock every
//! writer of those files holds, each file replaced atomically with every
//! other line kept byte for byte.
//!
//! Whose lines they are: the user `NAME_docker` when Dockyard made it (its
//! comment is the instance's marker), or no user at all (a destroy that
//! removed the user and was interrupted before this). A same-named user
//! that is not Dockyard's keeps its lines. A rootful instance's user has
//! no lines, and then nothing is written.
//!
//! While the data stays (`--keep-data`, or its removal failed) so do the
//! ids: its files are owned by them, and ids handed to another instance
//! later would make that instance's containers their owners.

use super::discovery::Found;
use crate::probe::host;
use dockyard_model::{paths, subid};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

fn read(path: &Path) -> std::result::Result<Option<String>, String> {
    host::read_subid_file(path)
}

/// Replaces `path` with `text`: a temporary file beside it with the old
/// file's owner and mode, flushed, renamed over it, the directory flushed.
fn replace(path: &Path, text: &str) -> std::result::Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("{} is not a file path", path.display()));
    };
    let tmp = dir.join(format!(
        ".{}.dockyard-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(o_nofollow())
            .open(&tmp)?;
        std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()))?;
        f.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// `O_NOFOLLOW`: the temporary name is never followed if something put a
/// link there.
fn o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// Removes the instance user's lines when they are Dockyard's and its data
/// is gone (`data_left`: kept or not removed). `Ok(None)`: nothing to do.
pub(super) fn remove_subids(
    found: &Found,
    data_left: Option<&str>,
) -> std::result::Result<Option<String>, String> {
    let user = found.name.account();
    if !host::has_subids(&user) {
        return Ok(None);
    }
    let [uid_file, gid_file] = host::subid_files();
    let where_ = format!("{} and {}", uid_file.display(), gid_file.display());
    if let Some(u) = &found.user {
        let gecos = u.gecos.to_string_lossy();
        if gecos != found.name.account_marker() {
            return Ok(Some(format!(
                "left the subordinate ids of {user} in {where_} alone: Dockyard did not create \
                 user {user} (its comment is {gecos:?})"
            )));
        }
    }
    if let Some(data) = data_left {
        return Ok(Some(format!(
            "kept the subordinate ids of {user} in {where_}: the data {data} is owned by them; \
             once it is gone, `dockyard destroy {}` removes them",
            found.name
        )));
    }
    // Read again under the lock: a starting instance may have just
    // written its own line.
    let _lock = crate::new::lock(&paths::subid_lock()).map_err(|e| e.to_string())?;
    let mut changed = Vec::new();
    for f in [&uid_file, &gid_file] {
        let Some(text) = read(f)? else { continue };
        if let Some(rest) = subid::without(&text, &user) {
            replace(f, &rest)?;
            changed.push(f.display().to_string());
        }
    }
    Ok((!changed.is_empty()).then(|| {
        format!(
            "removed the subordinate ids of {user} from {}",
            changed.join(" and ")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_keeps_its_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("subuid");
        std::fs::write(&f, "a:1:2\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        replace(&f, "b:3:4\n").expect("replaced");
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "b:3:4\n");
        let mode = std::fs::metadata(&f).expect("meta").mode() & 0o7777;
        assert_eq!(mode, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}

//! Writing a new conf into the instances directory: whole or not at all,
//! and never over an existing one. The text goes to a hidden temporary file
//! (the loader ignores names starting with '.'), is fsynced, and is then
//! hard-linked to its name: link(2) fails with EEXIST instead of replacing,
//! which rename(2) would not. The directory is fsynced last so the new name
//! survives a crash.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum WriteError {
    /// The conf already exists; nothing was written.
    Exists(PathBuf),
    Io(PathBuf, io::Error),
}

pub fn write_new(dir: &Path, file_name: &str, text: &str) -> Result<PathBuf, WriteError> {
    let target = dir.join(file_name);
    std::fs::create_dir_all(dir).map_err(|e| WriteError::Io(dir.to_path_buf(), e))?;
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| WriteError::Io(tmp.clone(), e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| WriteError::Io(tmp.clone(), e))?;
        match std::fs::hard_link(&tmp, &target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(WriteError::Exists(target.clone()))
            }
            Err(e) => Err(WriteError::Io(target.clone(), e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overwrites_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write_new(dir.path(), "a.conf", "one\n").expect("first write");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "one\n");
        match write_new(dir.path(), "a.conf", "two\n") {
            Err(WriteError::Exists(path)) => assert_eq!(path, p),
            other => panic!("expected Exists, got {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "one\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}

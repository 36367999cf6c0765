//! An artifact that is itself the binary: the Compose v2 plugin is released
//! as one `docker-compose-linux-ARCH` file. It is written under the name the
//! docker CLI looks for, `docker-compose`, the same way as a binary taken
//! from an archive.

use super::tar_take::write_executable;
use super::verify::Copied;
use crate::error::{Failure, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// The plugin's name: `docker compose` runs `docker-compose`.
pub const COMPOSE_BINARY: &str = "docker-compose";

/// Copies `download` (already verified) to `bin_dir/name`, 0755.
pub fn unpack(download: &Path, bin_dir: &Path, name: &str) -> Result<BTreeMap<String, Copied>> {
    let file = File::open(download).map_err(|e| Failure::io("cannot open", download, &e))?;
    let mut from = BufReader::with_capacity(super::verify::BUF_SIZE, file);
    let dest = bin_dir.join(name);
    let copied =
        write_executable(&mut from, &dest).map_err(|e| Failure::io("cannot write", &dest, &e))?;
    Ok(BTreeMap::from([(name.to_string(), copied)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_copied_executable_under_its_plugin_name() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dockyard-plain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let download = dir.join("docker-compose-linux-x86_64");
        std::fs::write(&download, b"#!/bin/sh\n").unwrap();
        let taken = unpack(&download, &dir.join("bin"), COMPOSE_BINARY).unwrap();
        let copied = &taken[COMPOSE_BINARY];
        assert_eq!(copied.bytes, 10);
        let meta = std::fs::metadata(dir.join("bin").join(COMPOSE_BINARY)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        // Never through an existing file.
        assert!(unpack(&download, &dir.join("bin"), COMPOSE_BINARY).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

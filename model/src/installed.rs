//! Whether the binaries an instance runs are in the artifact store, and
//! what to run when they are not. One answer, with one wording, for every
//! place an admin looks: `dockyard check`, `new`, `status`, and the
//! instance unit's own first step (`dockyard-prepare installed`), so a
//! missing sysbox or Docker version is never only "A dependency job
//! failed".

use crate::paths;
/// What a store version's directory name may be (also DockerVersion=).
pub use crate::value::check_version;
use std::fmt;
use std::path::{Path, PathBuf};

/// The files a Docker version's units start (the rest of the build is
/// found through `PATH`).
pub const DOCKER_NEEDS: [&str; 2] = ["dockerd", "containerd"];
/// What Runtime=sysbox-runc needs: the runtime dockerd is given and the
/// two shared daemons.
pub const SYSBOX_NEEDS: [&str; 3] = ["sysbox-runc", "sysbox-mgr", "sysbox-fs"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Docker,
    Sysbox,
}

/// A version the instance needs that the store lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub part: Part,
    pub version: String,
    /// The first needed file that is not an executable file.
    pub file: PathBuf,
}

impl Missing {
    /// "sysbox 0.6.7 is not installed (FILE is missing)", without the fix.
    pub fn what(&self) -> String {
        let name = match self.part {
            Part::Docker => "Docker",
            Part::Sysbox => "sysbox",
        };
        format!(
            "{name} {} is not installed ({} is missing)",
            self.version,
            self.file.display()
        )
    }

    /// The command that installs it.
    pub fn install_command(&self) -> String {
        match self.part {
            Part::Docker => format!("dockyard install {}", self.version),
            Part::Sysbox => format!("dockyard install --no-docker --sysbox {}", self.version),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.part {
            Part::Docker => write!(f, "{}: run `{}`", self.what(), self.install_command()),
            Part::Sysbox => write!(
                f,
                "{}, and Runtime=sysbox-runc (the default) needs it: run `{}`, or set \
                 Runtime=runc in the conf",
                self.what(),
                self.install_command()
            ),
        }
    }
}

/// `store` holds `docker/VERSION/bin` and `sysbox/VERSION/bin`
/// ([`paths::ARTIFACTS_DIR`] on a host; a fixture tree in tests).
pub fn docker_in(store: &Path, version: &str) -> Option<Missing> {
    first_missing(store, "docker", version, &DOCKER_NEEDS).map(|file| Missing {
        part: Part::Docker,
        version: version.to_string(),
        file,
    })
}

pub fn sysbox_in(store: &Path, version: &str) -> Option<Missing> {
    first_missing(store, "sysbox", version, &SYSBOX_NEEDS).map(|file| Missing {
        part: Part::Sysbox,
        version: version.to_string(),
        file,
    })
}

/// What `inst` needs that `store` lacks: its Docker version, and the
/// host's sysbox version when it runs sysbox-runc.
pub fn missing_for(
    store: &Path,
    inst: &crate::Instance,
    sysbox_version: Option<&str>,
) -> Vec<Missing> {
    let mut out: Vec<Missing> = docker_in(store, &inst.docker_version).into_iter().collect();
    if inst.uses_sysbox() {
        out.extend(sysbox_version.and_then(|v| sysbox_in(store, v)));
    }
    out
}

/// Moves the store these checks look in (tests); the units always run
/// from [`paths::ARTIFACTS_DIR`].
pub const STORE_ENV: &str = "DOCKYARD_ARTIFACTS_DIR";

/// The store on this host.
pub fn store() -> PathBuf {
    paths::overridable(STORE_ENV, paths::ARTIFACTS_DIR)
}

fn first_missing(store: &Path, kind: &str, version: &str, needs: &[&str]) -> Option<PathBuf> {
    let bin = store.join(kind).join(version).join("bin");
    needs
        .iter()
        .map(|n| bin.join(n))
        .find(|p| !is_executable_file(p))
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn put(store: &Path, rel: &str, mode: u32) {
        let p = store.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"#!/bin/true\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_missing_sysbox_names_the_file_and_both_fixes() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "sysbox/0.6.7/bin/sysbox-runc", 0o755);
        let m = sysbox_in(dir.path(), "0.6.7").expect("sysbox-mgr is missing");
        assert_eq!(m.file, dir.path().join("sysbox/0.6.7/bin/sysbox-mgr"));
        let text = m.to_string();
        assert!(
            text.starts_with("sysbox 0.6.7 is not installed ("),
            "{text}"
        );
        assert!(
            text.contains("run `dockyard install --no-docker --sysbox 0.6.7`, or set Runtime=runc"),
            "{text}"
        );
    }

    #[test]
    fn a_file_that_is_not_executable_counts_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "docker/27.3.1/bin/dockerd", 0o644);
        put(dir.path(), "docker/27.3.1/bin/containerd", 0o755);
        let m = docker_in(dir.path(), "27.3.1").expect("dockerd is not executable");
        assert_eq!(
            m.to_string(),
            format!(
                "Docker 27.3.1 is not installed ({}/docker/27.3.1/bin/dockerd is missing): run `dockyard install 27.3.1`",
                dir.path().display()
            )
        );
        put(dir.path(), "docker/27.3.1/bin/dockerd", 0o755);
        assert_eq!(docker_in(dir.path(), "27.3.1"), None);
    }
}

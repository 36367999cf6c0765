//! The artifacts manifest: which Docker and sysbox builds exist, pinned by
//! sha256. The generator needs only its defaults; the installer needs all of
//! it. One parser for both, so a manifest the installer accepts is one the
//! generator understands.

use crate::diag::Diagnostic;
use crate::value::check_version;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The manifest shipped in `conf/artifacts.toml`, compiled in so that the
/// generator never depends on where a package put its data files.
pub const BUILTIN: &str = include_str!("../../conf/artifacts.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub defaults: Defaults,
    /// Replaces the scheme and host of every URL, for mirrors and air-gapped
    /// sites.
    #[serde(default)]
    pub mirror: Option<String>,
    #[serde(default, rename = "artifact")]
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub docker: String,
    pub sysbox: String,
    /// The Compose v2 plugin `dockyard install` lays out beside the Docker
    /// builds (one per host, like sysbox). Optional: a manifest written
    /// before Compose was an artifact still loads, and installs none.
    #[serde(default)]
    pub compose: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Docker,
    DockerRootlessExtras,
    Sysbox,
    /// The Compose v2 CLI plugin: the release's single `docker-compose`
    /// binary, not an archive.
    Compose,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub kind: Kind,
    pub version: String,
    pub arch: String,
    pub url: String,
    pub sha256: String,
    /// The file's exact length in bytes. Optional, so that an admin's own
    /// manifest without it still loads; when pinned, the installer refuses
    /// a server announcing another length and never writes more than this.
    #[serde(default)]
    pub size: Option<u64>,
}

/// The manifest in force and the file it came from (for messages).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    pub source: PathBuf,
}

impl Manifest {
    pub fn parse(text: &str, source: &Path) -> Result<Manifest, Diagnostic> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| {
                text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            });
            Diagnostic::error(
                source,
                line,
                format!("invalid artifacts manifest: {}", e.message()),
            )
        })?;
        let defaults = &manifest.defaults;
        for version in [&defaults.docker, &defaults.sysbox]
            .into_iter()
            .chain(defaults.compose.as_ref())
        {
            check_version(version).map_err(|e| {
                Diagnostic::error(source, None, format!("invalid default version: {e}"))
            })?;
        }
        for artifact in &manifest.artifacts {
            check_version(&artifact.version).map_err(|e| {
                Diagnostic::error(source, None, format!("invalid artifact version: {e}"))
            })?;
            let hex_ok = artifact.sha256.len() == 64
                && artifact
                    .sha256
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
            if !hex_ok {
                return Err(Diagnostic::error(
                    source,
                    None,
                    format!(
                        "artifact {} {} {}: sha256 {:?} is not 64 lowercase hex digits",
                        kind_name(artifact.kind),
                        artifact.version,
                        artifact.arch,
                        artifact.sha256
                    ),
                ));
            }
            if artifact.size == Some(0) {
                return Err(Diagnostic::error(
                    source,
                    None,
                    format!(
                        "artifact {} {} {}: size 0: write the file's length in bytes, or leave \
                         size out",
                        kind_name(artifact.kind),
                        artifact.version,
                        artifact.arch
                    ),
                ));
            }
        }
        Ok(manifest)
    }

    pub fn has_docker(&self, version: &str) -> bool {
        self.artifacts
            .iter()
            .any(|a| a.kind == Kind::Docker && a.version == version)
    }

    pub fn docker_versions(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .artifacts
            .iter()
            .filter(|a| a.kind == Kind::Docker)
            .map(|a| a.version.as_str())
            .collect();
        v.dedup();
        v
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Docker => "docker",
        Kind::DockerRootlessExtras => "docker-rootless-extras",
        Kind::Sysbox => "sysbox",
        Kind::Compose => "compose",
    }
}

/// Loads `override_path` when it exists, else the built-in manifest.
pub fn load(override_path: &Path) -> Result<Loaded, Diagnostic> {
    match std::fs::read_to_string(override_path) {
        Ok(text) => Ok(Loaded {
            manifest: Manifest::parse(&text, override_path)?,
            source: override_path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let source = PathBuf::from("(built-in artifacts manifest)");
            Ok(Loaded {
                manifest: Manifest::parse(BUILTIN, &source)?,
                source,
            })
        }
        Err(e) => Err(Diagnostic::error(
            override_path,
            None,
            format!("cannot read artifacts manifest: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses() {
        let m = Manifest::parse(BUILTIN, Path::new("builtin")).expect("built-in manifest");
        assert_eq!(m.defaults.docker, "29.2.1");
        assert_eq!(m.defaults.sysbox, "0.6.7");
        assert!(m.has_docker("29.2.1"));
        assert_eq!(m.defaults.compose.as_deref(), Some("2.40.3"));
        assert_eq!(m.artifacts.len(), 8);
        assert!(m
            .artifacts
            .iter()
            .any(|a| a.kind == Kind::Compose && a.version == "2.40.3" && a.arch == "aarch64"));
    }

    #[test]
    fn compose_is_optional_and_checked() {
        let head = "[defaults]\ndocker = \"1.0\"\nsysbox = \"1.0\"\n";
        let m = Manifest::parse(head, Path::new("m")).expect("no compose");
        assert_eq!(m.defaults.compose, None);
        let bad = Manifest::parse(&format!("{head}compose = \"../x\"\n"), Path::new("m"));
        assert!(bad.unwrap_err().message.contains("invalid default version"));
    }

    #[test]
    fn errors_name_the_line() {
        let text = "[defaults]\ndocker = \"29.2.1\"\nsysbox = \"0.6.7\"\nbogus = 1\n";
        let err = Manifest::parse(text, Path::new("/etc/dockyard/artifacts.toml")).unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        let bad_sha = "[defaults]\ndocker = \"1.0\"\nsysbox = \"1.0\"\n[[artifact]]\nkind = \"docker\"\nversion = \"1.0\"\narch = \"x86_64\"\nurl = \"https://x/\"\nsha256 = \"abc\"\n";
        assert!(Manifest::parse(bad_sha, Path::new("m"))
            .unwrap_err()
            .message
            .contains("64 lowercase hex"));
    }

    #[test]
    fn size_is_optional_and_positive() {
        let head = "[defaults]\ndocker = \"1.0\"\nsysbox = \"1.0\"\n[[artifact]]\nkind = \"docker\"\nversion = \"1.0\"\narch = \"x86_64\"\nurl = \"https://x/d.tgz\"\n";
        let sha = format!("sha256 = \"{}\"\n", "a".repeat(64));
        let without = Manifest::parse(&format!("{head}{sha}"), Path::new("m")).expect("no size");
        assert_eq!(without.artifacts[0].size, None);
        let with =
            Manifest::parse(&format!("{head}{sha}size = 1048576\n"), Path::new("m")).expect("size");
        assert_eq!(with.artifacts[0].size, Some(1 << 20));
        let zero = Manifest::parse(&format!("{head}{sha}size = 0\n"), Path::new("m")).unwrap_err();
        assert!(zero.message.contains("size 0"), "{zero}");
        let negative =
            Manifest::parse(&format!("{head}{sha}size = -1\n"), Path::new("m")).unwrap_err();
        assert_eq!(negative.line, Some(10), "{negative}");
    }
}

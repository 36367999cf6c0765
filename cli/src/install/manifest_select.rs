//! Which artifacts to install: the manifest in force, the host's
//! architecture, the mirror, and the artifacts pinned for one version.
//! The parsing itself is the model's (`dockyard_model::manifest`), so the
//! installer and the generator can never read a manifest differently.

use crate::error::{Exit, Failure, Result};
use dockyard_model::manifest::{self, kind_name, Kind, Loaded, Manifest};
use dockyard_model::paths;
use std::path::Path;

/// One file to fetch: where from, under which name, and its pinned digest.
#[derive(Debug, Clone)]
pub struct Source {
    pub kind: Kind,
    /// The URL after the mirror was applied.
    pub url: String,
    /// The last segment of the URL: the name in `--from DIR` and on disk.
    pub file_name: String,
    pub sha256: String,
    /// The pinned length in bytes, when the manifest has one.
    pub size: Option<u64>,
}

/// Everything that goes into one version directory of the store.
#[derive(Debug, Clone)]
pub struct Selection {
    /// `docker` or `sysbox`: the store's directory.
    pub store_kind: Kind,
    pub version: String,
    pub arch: String,
    pub sources: Vec<Source>,
}

/// `--manifest FILE` must exist; otherwise the admin's override when it
/// exists, else the built-in manifest (the generator's rule).
pub fn load(flag: Option<&Path>) -> Result<Loaded> {
    let loaded = match flag {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::new(
                    Exit::Manifest,
                    format!(
                        "cannot read the manifest given with --manifest {}: {e}",
                        path.display()
                    ),
                )
            })?;
            Manifest::parse(&text, path).map(|manifest| Loaded {
                manifest,
                source: path.to_path_buf(),
            })
        }
        None => manifest::load(Path::new(paths::MANIFEST_OVERRIDE)),
    };
    loaded.map_err(|d| Failure::new(Exit::Manifest, d.to_string()))
}

/// The kernel's machine name, in the manifest's spelling. From uname rather
/// than the compile-time target: what matters is what the host runs.
pub fn host_arch() -> Result<String> {
    let uts = nix::sys::utsname::uname().map_err(|e| {
        Failure::failed(format!(
            "cannot ask the kernel for the architecture (uname): {e}"
        ))
    })?;
    let machine = uts.machine().to_string_lossy().into_owned();
    Ok(match machine.as_str() {
        "arm64" => "aarch64".to_string(),
        "amd64" => "x86_64".to_string(),
        _ => machine,
    })
}

/// Replaces scheme and host (and port) of `url` with `mirror`, keeping the
/// path: `https://download.docker.com/linux/x.tgz` with mirror
/// `http://10.0.0.5:8080/dl` becomes `http://10.0.0.5:8080/dl/linux/x.tgz`.
pub fn apply_mirror(url: &str, mirror: Option<&str>) -> std::result::Result<String, String> {
    let Some(mirror) = mirror else {
        return Ok(url.to_string());
    };
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("url {url:?} has no scheme (expected https://…)"))?;
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    if !mirror.contains("://") {
        return Err(format!(
            "mirror {mirror:?} has no scheme; write it as https://host[:port][/path]"
        ));
    }
    Ok(format!("{}{path}", mirror.trim_end_matches('/')))
}

/// The file name a URL names: its last path segment, without query.
pub fn file_name(url: &str) -> std::result::Result<String, String> {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = without_query
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(without_query);
    let name = after_scheme
        .split_once('/')
        .and_then(|(_, path)| path.rsplit('/').next())
        .unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("url {url:?} does not end in a file name"));
    }
    Ok(name.to_string())
}

/// The artifacts pinned for `store_kind` (Docker or sysbox) at `version` on
/// `arch`. Docker's rootless extras, when pinned, go into the same
/// version directory as Docker itself.
pub fn select(loaded: &Loaded, store_kind: Kind, version: &str, arch: &str) -> Result<Selection> {
    let m = &loaded.manifest;
    let kinds: &[Kind] = match store_kind {
        Kind::Docker => &[Kind::Docker, Kind::DockerRootlessExtras],
        Kind::Compose => &[Kind::Compose],
        _ => &[Kind::Sysbox],
    };
    let mut sources = Vec::new();
    for &kind in kinds {
        let Some(a) = m
            .artifacts
            .iter()
            .find(|a| a.kind == kind && a.version == version && a.arch == arch)
        else {
            continue;
        };
        let in_manifest = |e: String| {
            Failure::new(
                Exit::Manifest,
                format!(
                    "{}: {} {version} {arch}: {e}",
                    loaded.source.display(),
                    kind_name(kind)
                ),
            )
        };
        let url = apply_mirror(&a.url, m.mirror.as_deref()).map_err(in_manifest)?;
        let file_name = file_name(&url).map_err(in_manifest)?;
        sources.push(Source {
            kind,
            url,
            file_name,
            sha256: a.sha256.clone(),
            size: a.size,
        });
    }
    if sources.first().map(|s| s.kind) != Some(kinds[0]) {
        let mut pinned: Vec<String> = m
            .artifacts
            .iter()
            .filter(|a| a.kind == store_kind)
            .map(|a| format!("{} {}", a.version, a.arch))
            .collect();
        pinned.dedup();
        let pinned = if pinned.is_empty() {
            "none".to_string()
        } else {
            pinned.join(", ")
        };
        return Err(Failure::new(
            Exit::Manifest,
            format!(
                "the artifacts manifest {} pins no {} {version} for {arch} (pinned: {pinned}); \
                 add an [[artifact]] with its url and sha256 to {} or choose a pinned version",
                loaded.source.display(),
                kind_name(store_kind),
                paths::MANIFEST_OVERRIDE
            ),
        ));
    }
    Ok(Selection {
        store_kind,
        version: version.to_string(),
        arch: arch.to_string(),
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn mirror_replaces_scheme_and_host_only() {
        let url = "https://download.docker.com/linux/static/stable/x86_64/docker-29.2.1.tgz";
        assert_eq!(apply_mirror(url, None).as_deref(), Ok(url));
        assert_eq!(
            apply_mirror(url, Some("http://127.0.0.1:8080/")).as_deref(),
            Ok("http://127.0.0.1:8080/linux/static/stable/x86_64/docker-29.2.1.tgz")
        );
        assert_eq!(
            apply_mirror(url, Some("https://m.example/dl")).as_deref(),
            Ok("https://m.example/dl/linux/static/stable/x86_64/docker-29.2.1.tgz")
        );
        assert!(apply_mirror(url, Some("m.example")).is_err());
    }

    #[test]
    fn file_names_come_from_the_last_segment() {
        assert_eq!(
            file_name("https://h/a/b/x.deb?sig=1").as_deref(),
            Ok("x.deb")
        );
        assert!(file_name("https://h/a/").is_err());
        assert!(file_name("https://h").is_err());
        assert!(file_name("https://h/..").is_err());
    }

    #[test]
    fn selects_docker_with_its_extras_and_names_what_is_pinned() {
        let loaded = Loaded {
            manifest: Manifest::parse(manifest::BUILTIN, Path::new("b")).expect("builtin"),
            source: PathBuf::from("b"),
        };
        let s = select(&loaded, Kind::Docker, "29.2.1", "aarch64").expect("pinned");
        assert_eq!(s.sources.len(), 2);
        assert_eq!(s.sources[0].file_name, "docker-29.2.1.tgz");
        assert_eq!(s.sources[1].kind, Kind::DockerRootlessExtras);
        let err = select(&loaded, Kind::Docker, "1.0", "x86_64").unwrap_err();
        assert_eq!(err.exit, Exit::Manifest);
        assert!(
            err.message
                .contains("pinned: 29.2.1 x86_64, 29.2.1 aarch64"),
            "{err}"
        );
        let err = select(&loaded, Kind::Sysbox, "0.6.7", "riscv64").unwrap_err();
        assert!(
            err.message.contains("pins no sysbox 0.6.7 for riscv64"),
            "{err}"
        );
    }
}

//! `dockyard env NAME`: the shell settings that point a user's `docker` at
//! an instance, with the CLI of the instance's own Docker version.
//!
//! Why a CLI of its own: a Docker 29 daemon refuses clients older than API
//! 1.44, so the distribution's `docker` (Debian 12's speaks 1.41) cannot
//! talk to it. The versioned store holds the matching CLI beside the
//! daemon; this prints `DOCKER_HOST` and a `PATH` that starts with it (and
//! with the Compose plugin's directory, so `docker-compose` runs the pinned
//! Compose). The output is POSIX shell, every value single-quoted, for
//! `eval "$(dockyard env NAME)"`; it only prints, and changes nothing.
//!
//! `PATH` is the caller's own with any earlier store entry taken out, so
//! switching from one instance to another does not pile them up.

use crate::error::{Exit, Failure, Result};
use crate::probe::host;
use dockyard_model::manifest;
use dockyard_model::{paths, Instance, InstanceName};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The instance to point the shell at
    pub name: String,
}

pub const EXIT_CODES_HELP: &str = "\
Use: eval \"$(dockyard env NAME)\"

Exit codes:
  0  printed
  1  no valid conf for NAME, or its Docker version is not installed (dockyard install VERSION)
  2  usage error: bad NAME";

pub fn run(args: &Args) -> Result<()> {
    let name = InstanceName::parse(&args.name).map_err(|e| Failure::new(Exit::Usage, e))?;
    let known = host::known_instances().into_iter().find(|k| k.name == name);
    let inst = match known.as_ref().and_then(|k| k.instance.clone()) {
        Some(i) => i,
        None => {
            let why = match known.and_then(|k| k.conf_error) {
                Some(e) => format!("the conf of {name} is invalid: {e}"),
                None => format!(
                    "no instance {name}: no conf {}/{name}.conf",
                    paths::instances_dir().display()
                ),
            };
            return Err(Failure::failed(why));
        }
    };
    let docker_bin = PathBuf::from(paths::docker_bin_dir(&inst.docker_version));
    if !docker_bin.join("docker").is_file() {
        return Err(Failure::failed(format!(
            "{name} runs Docker {v}, whose CLI is not in {}: run `dockyard install {v}`",
            docker_bin.display(),
            v = inst.docker_version
        )));
    }
    let compose_bin = compose_dir();
    print!(
        "{}",
        render(
            &inst,
            &docker_bin,
            compose_bin.as_deref(),
            std::env::var_os("PATH")
        )
    );
    Ok(())
}

/// The installed Compose plugin's directory, when the manifest names one
/// and it is in the store.
fn compose_dir() -> Option<PathBuf> {
    let loaded = manifest::load(&paths::manifest_override()).ok()?;
    let dir = PathBuf::from(paths::compose_bin_dir(
        loaded.manifest.defaults.compose.as_ref()?,
    ));
    dir.join(COMPOSE).is_file().then_some(dir)
}

const COMPOSE: &str = "docker-compose";

/// The text to eval: pure, so tests pin it.
pub fn render(
    inst: &Instance,
    docker_bin: &Path,
    compose_bin: Option<&Path>,
    path: Option<OsString>,
) -> String {
    let mut dirs: Vec<PathBuf> = vec![docker_bin.to_path_buf()];
    dirs.extend(compose_bin.map(Path::to_path_buf));
    let store = Path::new(paths::ARTIFACTS_DIR);
    let caller = path.unwrap_or_else(|| paths::DEFAULT_PATH.into());
    dirs.extend(std::env::split_paths(&caller).filter(|d| !d.starts_with(store)));
    let joined = std::env::join_paths(&dirs)
        .map(|p| p.to_string_lossy().into_owned())
        // A PATH entry with ':' in it cannot be joined; keep ours only.
        .unwrap_or_else(|_| {
            dirs[..1 + usize::from(compose_bin.is_some())]
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(":")
        });
    let mut out = format!(
        "# Dockyard instance {name}: Docker {version}{compose}\n",
        name = inst.name,
        version = inst.docker_version,
        compose = if compose_bin.is_some() {
            ", Compose as docker-compose"
        } else {
            ""
        },
    );
    export(
        &mut out,
        "DOCKER_HOST",
        &format!("unix://{}", inst.socket()),
    );
    export(&mut out, "PATH", &joined);
    out
}

fn export(out: &mut String, var: &str, value: &str) {
    out.push_str(var);
    out.push('=');
    out.push_str(&shell_quote(value));
    out.push_str("; export ");
    out.push_str(var);
    out.push('\n');
}

/// `value` as one POSIX shell word: single quotes, each `'` as `'\''`.
pub fn shell_quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        if c == '\'' {
            s.push_str("'\\''");
        } else {
            s.push(c);
        }
    }
    s.push('\'');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockyard_model::instance::VersionDefaults;
    use dockyard_model::load::load_one;

    fn instance(dir: &Path) -> Instance {
        let conf = dir.join("dy1.conf");
        std::fs::write(
            &conf,
            "[Instance]\nBridgeCIDR=172.20.1.1/24\nPoolBase=172.24.0.0/16\nRoot=/srv/dy1\nDockerVersion=29.2.1\n",
        )
        .unwrap();
        let defaults = VersionDefaults {
            docker: Ok("29.2.1".into()),
            known_docker: None,
        };
        let (inst, diags) = load_one(&conf, &defaults);
        inst.unwrap_or_else(|| panic!("{diags:?}"))
    }

    #[test]
    fn quoting_survives_any_value() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(x)`y`"), "'$(x)`y`'");
    }

    #[test]
    fn points_at_the_instance_and_its_own_cli() {
        let dir = std::env::temp_dir().join(format!("dockyard-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let inst = instance(&dir);
        let docker = PathBuf::from(paths::docker_bin_dir("29.2.1"));
        let compose = PathBuf::from(paths::compose_bin_dir("2.40.3"));
        // An earlier instance's store entries go; the caller's stay, in order.
        let caller = format!(
            "{}:/usr/local/bin:/usr/bin",
            paths::docker_bin_dir("28.0.1")
        );
        let text = render(&inst, &docker, Some(&compose), Some(caller.into()));
        assert_eq!(
            text,
            "# Dockyard instance dy1: Docker 29.2.1, Compose as docker-compose\n\
             DOCKER_HOST='unix:///srv/dy1/docker.sock'; export DOCKER_HOST\n\
             PATH='/var/lib/dockyard/artifacts/docker/29.2.1/bin:/var/lib/dockyard/artifacts/compose/2.40.3/bin:/usr/local/bin:/usr/bin'; export PATH\n"
        );
        let without = render(&inst, &docker, None, None);
        assert!(without.contains(&format!(
            "PATH='/var/lib/dockyard/artifacts/docker/29.2.1/bin:{}'",
            paths::DEFAULT_PATH
        )));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `dockyard-prepare installed --instance NAME --docker-version V
//! [--sysbox-version V] [--rootless yes]`: the instance unit's first step.
//! It fails, saying what to install, when the artifact store (or, for a
//! rootless instance, the host) lacks what the unit runs, so the unit's
//! own status and journal carry the fix (an `AssertFileIsExecutable=`
//! names only a path; a failed shared sysbox unit only "a dependency").

use dockyard_model::contract::installed::{Needs, EXIT_NOT_INSTALLED, OPTIONS};
use dockyard_model::{installed, paths};

use crate::args;
use crate::error::{Error, Result};

pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    let opts = args::parse(argv, OPTIONS)?;
    if let Some(a) = &opts.action {
        return Err(Error::usage(format!(
            "dockyard-prepare installed: unexpected argument {a:?}"
        )));
    }
    let needs = Needs::parse(&opts).map_err(args::usage)?;
    // Searched as the unit's own later steps find programs: its PATH.
    let host = installed::Host::live(paths::Search::PathOrDefault);
    check(&installed::store(), &host, &needs)
}

pub fn check(store: &std::path::Path, host: &installed::Host, needs: &Needs) -> Result<()> {
    let mut missing: Vec<String> = installed::docker_in(store, &needs.docker_version)
        .into_iter()
        .map(|m| m.to_string())
        .collect();
    if let Some(v) = &needs.sysbox_version {
        missing.extend(installed::sysbox_in(store, v).map(|m| m.to_string()));
    }
    if needs.rootless {
        missing.extend(installed::rootless_in(store, &needs.docker_version).map(|m| m.to_string()));
        missing.extend(installed::rootless_host(host).iter().map(|m| m.to_string()));
    }
    if missing.is_empty() {
        return match needs.sysbox_version {
            Some(_) => sysbox_answers(&needs.instance),
            None => Ok(()),
        };
    }
    Err(Error::with_exit(
        EXIT_NOT_INSTALLED,
        format!(
            "instance {} cannot start: {}",
            needs.instance,
            missing.join("; ")
        ),
    ))
}

/// sysbox is installed; its shared daemons (ordered before this unit)
/// must also be up, or dockerd would start with a runtime that cannot run
/// a container. Connecting, not only finding the socket file: a crashed
/// daemon leaves its socket behind.
fn sysbox_answers(instance: &dockyard_model::InstanceName) -> Result<()> {
    for (socket, unit) in [
        (paths::SYSBOX_MGR_SOCKET, "dockyard-sysbox-mgr.service"),
        (paths::SYSBOX_FS_SOCKET, "dockyard-sysbox-fs.service"),
    ] {
        if let Err(e) = std::os::unix::net::UnixStream::connect(socket) {
            return Err(Error::new(format!(
                "instance {instance} cannot start: Runtime=sysbox-runc, but nothing answers \
                 at {socket} ({e}); see `systemctl status {unit}` and `journalctl -u {unit}`"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockyard_model::InstanceName;

    #[test]
    fn the_failure_says_what_to_install() {
        let store = tempfile::tempdir().unwrap();
        let needs = Needs {
            instance: InstanceName::parse("dy2").unwrap(),
            docker_version: "29.2.1".into(),
            sysbox_version: Some("0.6.7".into()),
            rootless: false,
        };
        let e = check(store.path(), &nothing(store.path()), &needs)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("instance dy2 cannot start: Docker 29.2.1 is not installed"),
            "{e}"
        );
        assert!(e.contains("run `dockyard install 29.2.1`"), "{e}");
        assert!(
            e.contains("; sysbox 0.6.7 is not installed") && e.contains("or set Runtime=runc"),
            "{e}"
        );
    }

    /// A host with none of a rootless instance's programs, nor tun.
    fn nothing(dir: &std::path::Path) -> installed::Host {
        installed::Host {
            find: Box::new(|_| None),
            tun: dir.join("no-tun"),
            distro: installed::Distro::Debian,
        }
    }

    fn put(path: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/true\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Rootless=yes: rootlesskit beside the installed Docker, and the
    /// host's programs, each with its fix, and the exit status that keeps
    /// Restart= from looping.
    #[test]
    fn a_rootless_instance_needs_rootlesskit_and_the_hosts_programs() {
        let store = tempfile::tempdir().unwrap();
        for f in ["dockerd", "containerd"] {
            put(&store.path().join("docker/29.2.1/bin").join(f));
        }
        let mut needs = Needs {
            instance: InstanceName::parse("dy3").unwrap(),
            docker_version: "29.2.1".into(),
            sysbox_version: None,
            rootless: false,
        };
        let host = nothing(store.path());
        assert!(check(store.path(), &host, &needs).is_ok());
        needs.rootless = true;
        let e = check(store.path(), &host, &needs).unwrap_err();
        assert_eq!(e.exit_status(), i32::from(EXIT_NOT_INSTALLED));
        let e = e.to_string();
        for want in [
            "instance dy3 cannot start: Docker 29.2.1 is installed without rootlesskit",
            "slirp4netns is not installed (not found on PATH), and Rootless=yes needs it for \
             the instance's network: run `apt-get install slirp4netns`",
            "run `apt-get install uidmap`",
            "no-tun does not exist, and slirp4netns needs it",
        ] {
            assert!(e.contains(want), "{want:?} not in {e}");
        }
    }
}

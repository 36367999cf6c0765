//! `dockyard-prepare installed --instance NAME --docker-version V
//! [--sysbox-version V]`: the instance unit's first step. It fails, saying
//! what to install, when the artifact store lacks what the unit runs, so the
//! unit's own status and journal carry the fix (an `AssertFileIsExecutable=`
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
    check(&installed::store(), &needs)
}

pub fn check(store: &std::path::Path, needs: &Needs) -> Result<()> {
    let mut missing: Vec<String> = installed::docker_in(store, &needs.docker_version)
        .into_iter()
        .map(|m| m.to_string())
        .collect();
    if let Some(v) = &needs.sysbox_version {
        missing.extend(installed::sysbox_in(store, v).map(|m| m.to_string()));
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
        };
        let e = check(store.path(), &needs).unwrap_err().to_string();
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
}

//! `dockyard-prepare installed`: the instance unit's first step fails with
//! the line an admin reads in the unit's journal, naming the missing file
//! and the command that installs it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn a_missing_sysbox_is_one_error_line_naming_the_fix() {
    let store = tempfile::tempdir().expect("tempdir");
    let bin = store.path().join("docker/29.2.1/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in ["dockerd", "containerd"] {
        std::fs::write(bin.join(b), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join(b), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |args: &[&str]| {
        common::run(
            Command::new(common::helper())
                .args(["prepare", "installed"])
                .args(args)
                .env("DOCKYARD_ARTIFACTS_DIR", store.path()),
        )
    };
    let r = run(&[
        "--instance",
        "dy2",
        "--docker-version",
        "29.2.1",
        "--sysbox-version",
        "0.6.7",
    ]);
    // Its own status: the unit does not restart on it.
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "dockyard-prepare: error: instance dy2 cannot start: sysbox 0.6.7 is not installed \
             ({}/sysbox/0.6.7/bin/sysbox-runc is missing), and Runtime=sysbox-runc (the default) \
             needs it: run `dockyard install --no-docker --sysbox 0.6.7`, or set Runtime=runc in \
             the conf\n",
            store.path().display()
        )
    );
    // Docker there and no sysbox asked for: nothing to say.
    let r = run(&["--instance", "dy2", "--docker-version", "29.2.1"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

//! The multi-call contract: dispatch on argv[0]'s basename (the installed
//! symlinks) and on a first argument; usage errors exit 2, nothing run.

mod common;

use std::process::Command;

use common::{helper, run};

#[test]
fn dispatches_on_symlink_name_and_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    for (link, tool) in [
        ("dockyard-network", "network"),
        ("dockyard-prepare", "prepare"),
        ("dockyard-sysbox-chown", "sysbox-chown"),
    ] {
        let p = tmp.path().join(link);
        std::os::unix::fs::symlink(helper(), &p).unwrap();
        // An unknown option is a usage error naming the tool that parsed it.
        let r = run(Command::new(&p).arg("--no-such-option"));
        assert_eq!(r.code, 2, "{link}: {}", r.stderr);
        assert!(
            r.stderr.starts_with(&format!("{link}: error: ")),
            "{link}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("unknown option --no-such-option"),
            "{}",
            r.stderr
        );

        let r = run(Command::new(helper()).args([tool, "--no-such-option"]));
        assert_eq!(r.code, 2, "{tool}: {}", r.stderr);
        assert!(
            r.stderr.starts_with(&format!("{link}: error: ")),
            "{tool}: {}",
            r.stderr
        );
    }
    let r = run(Command::new(helper()).arg("bogus"));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("usage:"), "{}", r.stderr);
    let r = run(&mut Command::new(helper()));
    assert_eq!(r.code, 2);
}

#[test]
fn actions_and_required_options_are_checked() {
    let r = run(Command::new(helper()).args(["network", "sideways", "--instance", "dy1"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown action \"sideways\""),
        "{}",
        r.stderr
    );
    // (`down --instance NAME` alone is valid: it uses what `up` recorded.)
    let r = run(Command::new(helper()).args(["network", "up", "--instance", "dy1"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("missing required option --bridge-cidr"),
        "{}",
        r.stderr
    );
    let r = run(Command::new(helper()).args([
        "network",
        "down",
        "--instance",
        "dy1",
        "--pool",
        "172.23.0.0/16",
    ]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("missing required option --bridge-cidr"),
        "{}",
        r.stderr
    );
    let r = run(Command::new(helper()).args([
        "prepare",
        "down",
        "--instance",
        "dy1",
        "--root",
        "/dy1",
    ]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--exec-root"), "{}", r.stderr);
    let r = run(Command::new(helper()).args(["sysbox-chown", "--subid-user", "sysbox"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--data-root"), "{}", r.stderr);
}

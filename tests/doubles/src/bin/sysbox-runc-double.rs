//! TEST DOUBLE for sysbox-runc (see src/lib.rs): execs `runc` (found through
//! PATH, which Dockyard's units start with the instance's Docker binaries)
//! with the same arguments, so containers of a sysbox instance really run,
//! as ordinary runc containers.

use std::os::unix::process::CommandExt;

fn main() {
    let err = std::process::Command::new("runc")
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!("sysbox-runc-double: cannot exec runc: {err}");
    std::process::exit(127);
}

//! TEST DOUBLE for sysbox-fs (see src/lib.rs): ready at once, no FUSE.

fn main() {
    if std::env::args().len() > 1 {
        eprintln!("sysbox-fs-double: takes no arguments");
        std::process::exit(2);
    }
    if let Err(e) = dockyard_test_doubles::ready("sysbox-fs-double") {
        eprintln!("sysbox-fs-double: sd_notify failed: {e}");
        std::process::exit(1);
    }
    dockyard_test_doubles::wait_forever()
}

//! TEST DOUBLE for sysbox-fs (see src/lib.rs): ready at once, no FUSE.

fn main() {
    if std::env::args().len() > 1 {
        eprintln!("sysbox-fs-double: takes no arguments");
        std::process::exit(2);
    }
    let _listener = match dockyard_test_doubles::listen(dockyard_model::paths::SYSBOX_FS_SOCKET) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "sysbox-fs-double: cannot listen at {}: {e}",
                dockyard_model::paths::SYSBOX_FS_SOCKET
            );
            std::process::exit(1);
        }
    };
    if let Err(e) = dockyard_test_doubles::ready("sysbox-fs-double") {
        eprintln!("sysbox-fs-double: sd_notify failed: {e}");
        std::process::exit(1);
    }
    dockyard_test_doubles::wait_forever()
}

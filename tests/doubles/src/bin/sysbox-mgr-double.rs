//! TEST DOUBLE for sysbox-mgr (see src/lib.rs). Like the real one, it takes
//! `--data-root DIR` and creates `DIR/docker/`, the directory under which
//! sysbox-mgr makes one backing directory per container (the directory
//! dockyard-sysbox-chown watches). Nothing else of sysbox-mgr is imitated.

use std::os::unix::fs::DirBuilderExt;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data_root = match args.as_slice() {
        [flag, dir] if flag == "--data-root" => dir.clone(),
        [] => "/var/lib/sysbox".to_string(),
        _ => {
            eprintln!("sysbox-mgr-double: usage: sysbox-mgr-double [--data-root DIR]");
            std::process::exit(2);
        }
    };
    let docker = std::path::Path::new(&data_root).join("docker");
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&docker)
    {
        eprintln!("sysbox-mgr-double: cannot create {}: {e}", docker.display());
        std::process::exit(1);
    }
    let _listener = match dockyard_test_doubles::listen(dockyard_model::paths::SYSBOX_MGR_SOCKET) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "sysbox-mgr-double: cannot listen at {}: {e}",
                dockyard_model::paths::SYSBOX_MGR_SOCKET
            );
            std::process::exit(1);
        }
    };
    if let Err(e) = dockyard_test_doubles::ready("sysbox-mgr-double") {
        eprintln!("sysbox-mgr-double: sd_notify failed: {e}");
        std::process::exit(1);
    }
    dockyard_test_doubles::wait_forever()
}

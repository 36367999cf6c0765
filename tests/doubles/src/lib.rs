//! TEST DOUBLES, not sysbox. The lifecycle suite (tests/lifecycle/suite.sh)
//! installs these as `sysbox-mgr`, `sysbox-fs` and `sysbox-runc` in the
//! artifact store of a test container, because real sysbox cannot be
//! downloaded there. They do just enough for the shared sysbox units'
//! lifecycle to be tested under a real systemd: the daemons send `READY=1`
//! from their main process (the units are `Type=notify`, `NotifyAccess=main`)
//! and stay up until SIGTERM, listening where the real ones do (the
//! instance's first step connects there); the runtime execs `runc`.

use std::io;

/// Tell systemd we are ready, saying loudly what we are.
pub fn ready(what: &str) -> io::Result<()> {
    let status = format!("{what}: TEST DOUBLE standing in for sysbox (not sysbox)");
    eprintln!("{status}");
    sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
    )
}

/// Block until a signal ends the process (SIGTERM from `systemctl stop`
/// keeps its default action: the process exits).
pub fn wait_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// Listen at `path` as the real daemon does (a stale file from an earlier
/// run is replaced). Keep the listener for as long as the process runs.
pub fn listen(path: &str) -> io::Result<std::os::unix::net::UnixListener> {
    let path = std::path::Path::new(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::os::unix::net::UnixListener::bind(path)
}

//! sd_notify: progress for `systemctl status`, READY/STOPPING for the watcher.
//! Without `NOTIFY_SOCKET` (run by hand, or from a unit that does not listen)
//! every call is a no-op; a broken socket is logged, never fatal, because the
//! work itself has been done.

use sd_notify::NotifyState;

pub fn status(msg: &str) {
    send(&[NotifyState::Status(msg)]);
}

pub fn ready(msg: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(msg)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        log::warn!("could not notify systemd through NOTIFY_SOCKET: {e}");
    }
}

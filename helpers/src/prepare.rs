//! `dockyard-prepare up|down`: account, directories and daemon.json before
//! dockerd starts; leftover mounts and the stale socket after it stopped.

use std::path::PathBuf;

use crate::args::{self, Opts};
use crate::dirs::{self, DirSpec, SocketState};
use crate::error::{Error, Failures, Result};
use crate::{bail, mounts, notify, state, users};

const OPTIONS: &[&str] = &[
    "instance",
    "user",
    "group",
    "root",
    "exec-root",
    "config-file",
    "daemon-option",
];

/// sun_path is 108 bytes including the terminating NUL.
const SUN_PATH_MAX: usize = 107;

pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    // `sysbox` is host-wide, not per instance: its own options.
    if argv.first().is_some_and(|a| a == "sysbox") {
        return crate::sysbox_user::main(argv.into_iter().skip(1).collect());
    }
    let opts = args::parse(argv, OPTIONS, &["daemon-option"])?;
    let action = opts.action(&["up", "down", "sysbox"])?;
    let instance = args::instance_name(opts.required("instance")?)?;
    // `down --instance NAME` alone: the values `up` recorded (the unit the
    // generator writes for a running instance whose conf is gone).
    if action == "down" && OPTIONS[1..].iter().all(|o| opts.get(o).is_none()) {
        let Some(recorded) = state::load(&instance, STATE)? else {
            log::warn!("instance {instance}: no state recorded by prepare up; nothing to clean up");
            return Ok(());
        };
        let value = |k: &str| recorded.get(k).map(String::as_str).unwrap_or("");
        let root = args::abs_path("root", value("root"))?;
        let exec_root = args::abs_path("exec-root", value("exec-root"))?;
        down(&instance, root, exec_root)?;
        return state::remove(&instance, STATE);
    }
    let root = args::abs_path("root", opts.required("root")?)?;
    let exec_root = args::abs_path("exec-root", opts.required("exec-root")?)?;
    if action == "up" {
        let values = [
            ("root", root.to_string_lossy().into_owned()),
            ("exec-root", exec_root.to_string_lossy().into_owned()),
        ];
        up(&opts, &instance, root, exec_root)?;
        state::save(&instance, STATE, &values)
    } else {
        down(&instance, root, exec_root)?;
        state::remove(&instance, STATE)
    }
}

const STATE: &str = "prepare";

/// The daemon.json object from `--daemon-option KEY=JSON` arguments; `{}`
/// when there are none (dockerd rejects an empty file).
pub fn daemon_json(options: &[&str]) -> Result<String> {
    let mut map = serde_json::Map::new();
    for o in options {
        let (k, v) = args::daemon_option(o)?;
        if map.insert(k.clone(), v).is_some() {
            return Err(Error::usage(format!(
                "--daemon-option {k} given more than once"
            )));
        }
    }
    let mut s = serde_json::to_string_pretty(&serde_json::Value::Object(map))
        .map_err(|e| Error::new(format!("cannot encode daemon.json: {e}")))?;
    s.push('\n');
    Ok(s)
}

fn socket_path(root: &std::path::Path) -> PathBuf {
    root.join("docker.sock")
}

fn up(opts: &Opts, instance: &str, root: PathBuf, exec_root: PathBuf) -> Result<()> {
    let user = args::account_name("user", opts.required("user")?)?;
    let group = args::account_name("group", opts.required("group")?)?;
    let config = args::abs_path("config-file", opts.required("config-file")?)?;
    let json = daemon_json(&opts.all("daemon-option"))?;
    let sock = socket_path(&root);
    if sock.as_os_str().len() > SUN_PATH_MAX {
        return Err(Error::usage(format!(
            "--root {}: the socket path {} is {} bytes, over the 107-byte unix socket limit; choose a shorter root",
            root.display(),
            sock.display(),
            sock.as_os_str().len()
        )));
    }

    notify::status(&format!(
        "preparing user {user} and directories of {instance}"
    ));
    let known_uid = nix::unistd::User::from_name(&user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    dirs::precheck(&root, "instance root", known_uid)?;
    let ids = users::ensure(instance, &user, &group, &root)?;
    // root:<group> 0750 so group members can reach docker.sock; nothing in
    // it is owned by the instance user.
    dirs::ensure_dir(
        &root,
        &DirSpec {
            what: "instance root",
            uid: 0,
            gid: ids.gid,
            mode: 0o750,
            tolerated_uid: Some(ids.uid),
        },
    )?;
    dirs::ensure_dir(
        &root.join("docker"),
        &DirSpec {
            what: "docker data root",
            uid: 0,
            gid: 0,
            mode: 0o710,
            tolerated_uid: Some(ids.uid),
        },
    )?;
    dirs::ensure_dir(
        &exec_root,
        &DirSpec {
            what: "exec root",
            uid: 0,
            gid: 0,
            mode: 0o700,
            tolerated_uid: None,
        },
    )?;
    dirs::write_atomic(&config, json.as_bytes())?;

    match dirs::remove_stale_socket(&sock)? {
        SocketState::InUse => bail!(
            "something is already listening on {}: is another dockerd running with root {}? Stop it before starting instance {instance}",
            sock.display(),
            root.display()
        ),
        SocketState::NotASocket => bail!(
            "{} exists and is not a socket; dockerd could not listen there. Move it away",
            sock.display()
        ),
        SocketState::Removed => log::info!("removed stale socket {}", sock.display()),
        SocketState::Absent => {}
    }
    log::info!(
        "instance {instance}: user {user}, {} (root:{group} 0750), config {}",
        root.display(),
        config.display()
    );
    Ok(())
}

fn down(instance: &str, root: PathBuf, exec_root: PathBuf) -> Result<()> {
    let mut f = Failures::default();
    notify::status(&format!("cleaning up after dockerd of {instance}"));
    if let Some(n) = f.record(mounts::unmount_below(&[exec_root, root.join("docker")])) {
        if n > 0 {
            log::info!("instance {instance}: detached {n} leftover mount(s)");
        }
    }
    let sock = socket_path(&root);
    match f.record(dirs::remove_stale_socket(&sock)) {
        Some(SocketState::Removed) => log::info!("removed stale socket {}", sock.display()),
        Some(SocketState::InUse) => log::warn!(
            "{} still accepts connections; leaving it (is another dockerd using this root?)",
            sock.display()
        ),
        Some(SocketState::NotASocket) => {
            log::warn!("{} is not a socket; leaving it", sock.display())
        }
        _ => {}
    }
    f.finish(&format!("cleanup of instance {instance}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_json_shapes() {
        assert_eq!(daemon_json(&[]).unwrap(), "{}\n");
        let j = daemon_json(&["log-level=\"warn\"", "debug=true", "mtu=1400"]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"log-level": "warn", "debug": true, "mtu": 1400})
        );
        assert!(daemon_json(&["a=1", "a=2"]).unwrap_err().is_usage());
        assert!(daemon_json(&["a=nope"]).is_err());
    }
}

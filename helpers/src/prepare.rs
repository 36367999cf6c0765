//! `dockyard-prepare up|started|down` (and `sysbox`, `installed`, each its
//! own module): account, directories and daemon.json
//! before dockerd starts; its steady settings once it is up; leftover
//! containers, mounts and the stale socket after it stopped.

use std::path::{Path, PathBuf};

use dockyard_model::contract::prepare::{self, Cleanup, Mode};
use dockyard_model::contract::{self, Values};
use dockyard_model::engine::{self, ImageStore};
use dockyard_model::InstanceName;

use crate::args::{self, Opts};
use crate::dirs::{self, DirSpec, SocketState};
use crate::error::{Context, Error, Failures, Result};
use crate::{bail, mounts, notify, rootless, state, users};

/// sun_path is 108 bytes including the terminating NUL.
const SUN_PATH_MAX: usize = 107;

pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    // `sysbox` is host-wide, not per instance: its own options.
    if argv.first().is_some_and(|a| a == "sysbox") {
        return crate::sysbox_user::main(argv.into_iter().skip(1).collect());
    }
    // `refused`: the unit of a conf the generator refused; no instance to prepare.
    if argv
        .first()
        .is_some_and(|a| a == dockyard_model::contract::refused::ACTION)
    {
        return crate::refused::main(argv.into_iter().skip(1).collect());
    }
    if argv.first().is_some_and(|a| a == "installed") {
        return crate::installed::main(argv.into_iter().skip(1).collect());
    }
    if argv.first().is_some_and(|a| a == prepare::RUN_AS) {
        return rootless::run_as(argv.into_iter().skip(1).collect());
    }
    if argv.first().is_some_and(|a| a == prepare::IN_NAMESPACE) {
        return rootless::in_namespace(argv.into_iter().skip(1).collect());
    }
    let opts = args::parse(argv, prepare::OPTIONS)?;
    let action = opts.action(&["up", "started", "down", "sysbox"])?;
    let instance = contract::instance(&opts).map_err(args::usage)?;
    if action == "started" {
        let config = contract::abs_path(prepare::CONFIG_FILE, opts.required(prepare::CONFIG_FILE)?)
            .map_err(args::usage)?;
        if prepare::mode(&opts).map_err(args::usage)? == Mode::Rootless {
            return started_rootless(&opts, &instance);
        }
        return started(&instance, &config);
    }
    // `down --instance NAME` alone: the values `up` recorded (the unit the
    // generator writes for a running instance whose conf is gone).
    if action == "down" && opts.instance_only() {
        let Some(recorded) = state::load(&instance, prepare::RECORD)? else {
            log::warn!("instance {instance}: no state recorded by prepare up; nothing to clean up");
            return Ok(());
        };
        down(&Cleanup::parse(&recorded).map_err(args::usage)?)?;
        state::remove(&instance, prepare::ROOTLESS_RECORD)?;
        return state::remove(&instance, prepare::RECORD);
    }
    let cleanup = Cleanup::parse(&opts).map_err(args::usage)?;
    if action == "up" {
        up(&opts, &cleanup)?;
        if prepare::mode(&opts).map_err(args::usage)? == Mode::Rootless {
            state::save(&instance, prepare::ROOTLESS_RECORD, "mode=rootless\n")?;
        }
        state::save(&instance, prepare::RECORD, &cleanup.record())
    } else {
        down(&cleanup)?;
        state::remove(&instance, prepare::ROOTLESS_RECORD)?;
        state::remove(&instance, prepare::RECORD)
    }
}

/// daemon.json while dockerd starts, and `daemon.json.running` for after.
///
/// dockerd starts with `live-restore` on and is switched to off once it is
/// up (`dockyard-prepare started`). On: at start-up, when it finds its stored
/// default network and an address pool is set, a dockerd without
/// live-restore deletes the interface named `docker0`, whatever `--bridge`
/// says, and that is the host Docker's bridge (moby
/// `daemon/daemon_unix.go`, `configureNetworking`, since 19.03). Off after
/// start: on shutdown dockerd then stops the instance's containers, as an
/// instance stop must, before its bridge and rules go away. dockerd reloads
/// the setting on SIGHUP; it must be present (false) to be reloaded.
///
/// `image_store`, when given, becomes `features.containerd-snapshotter`,
/// unless the admin's `[Daemon] features` already sets that key: an explicit
/// conf wins (dockyard.conf(5), IMAGE STORE).
pub fn daemon_json(options: &[&str], image_store: Option<ImageStore>) -> Result<(String, String)> {
    let mut map = serde_json::Map::new();
    for o in options {
        let (k, v) = args::daemon_option(o)?;
        if map.insert(k.clone(), v).is_some() {
            return Err(Error::usage(format!(
                "--daemon-option {k} given more than once"
            )));
        }
    }
    if let Some(store) = image_store {
        let features = map
            .entry(engine::FEATURES_KEY)
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        let serde_json::Value::Object(features) = features else {
            return Err(Error::usage(format!(
                "--daemon-option {}: not a JSON object, so {} cannot be set in it",
                engine::FEATURES_KEY,
                engine::SNAPSHOTTER_FEATURE
            )));
        };
        features
            .entry(engine::SNAPSHOTTER_FEATURE)
            .or_insert(serde_json::Value::Bool(store.snapshotter_feature()));
    }
    let render = |live_restore: bool| -> Result<String> {
        let mut m = map.clone();
        m.insert(LIVE_RESTORE.into(), serde_json::Value::Bool(live_restore));
        let mut s = serde_json::to_string_pretty(&serde_json::Value::Object(m))
            .map_err(|e| Error::new(format!("cannot encode daemon.json: {e}")))?;
        s.push('\n');
        Ok(s)
    };
    Ok((render(true)?, render(false)?))
}

const LIVE_RESTORE: &str = "live-restore";

fn running_config(config: &Path) -> PathBuf {
    let mut p = config.as_os_str().to_owned();
    p.push(".running");
    PathBuf::from(p)
}

/// `ExecStartPost=`: dockerd is up; give it its steady settings (see
/// [`daemon_json`]) and make it reload them. `$MAINPID` is dockerd.
fn started(instance: &InstanceName, config: &Path) -> Result<()> {
    let running = running_config(config);
    if !running.exists() {
        log::info!(
            "instance {instance}: {} is already in place",
            config.display()
        );
        return Ok(());
    }
    let pid: i32 = std::env::var("MAINPID")
        .ok()
        .and_then(|p| p.parse().ok())
        .filter(|p| *p > 1)
        .ok_or_else(|| {
            Error::usage(
                "$MAINPID is not set: dockyard-prepare started runs from the unit's ExecStartPost=",
            )
        })?;
    std::fs::rename(&running, config)
        .ctx(|| format!("cannot put {} in place", running.display()))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .ctx(|| {
        format!(
            "cannot signal dockerd (pid {pid}) to reload {}",
            config.display()
        )
    })?;
    log::info!(
        "instance {instance}: dockerd (pid {pid}) reloads {}: live-restore off",
        config.display()
    );
    Ok(())
}

/// `ExecStartPost=` of a rootless instance: dockerd answers; its socket
/// gets the instance's user and group, 0660. Its daemon.json never
/// changes: a rootless dockerd's containers live in its namespaces and end
/// with it, so live-restore has nothing to keep.
fn started_rootless(opts: &Opts, instance: &InstanceName) -> Result<()> {
    let user = args::account_name(prepare::USER.name, opts.required(prepare::USER)?)?;
    let root =
        contract::abs_path(prepare::ROOT, opts.required(prepare::ROOT)?).map_err(args::usage)?;
    let ids = users::existing(instance.as_str(), &user)?;
    let sock = socket_path(&root);
    rootless::own_socket(&sock, ids)?;
    log::info!(
        "instance {instance}: {} is {user}'s and its group's (0660)",
        sock.display()
    );
    Ok(())
}

fn socket_path(root: &std::path::Path) -> PathBuf {
    root.join("docker.sock")
}

fn up(opts: &Opts, c: &Cleanup) -> Result<()> {
    let (instance, root, exec_root) = (&c.instance, &c.root, &c.exec_root);
    let user = args::account_name(prepare::USER.name, opts.required(prepare::USER)?)?;
    let group = args::account_name(prepare::GROUP.name, opts.required(prepare::GROUP)?)?;
    let config = contract::abs_path(prepare::CONFIG_FILE, opts.required(prepare::CONFIG_FILE)?)
        .map_err(args::usage)?;
    let chosen = prepare::image_store(opts).map_err(args::usage)?;
    let image_store = chosen.map(|c| keep_graph_driver(instance, &root.join("docker"), c));
    let (json, running_json) = daemon_json(&opts.values(prepare::DAEMON_OPTION), image_store)?;
    let sock = socket_path(root);
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
    let mode = prepare::mode(opts).map_err(args::usage)?;
    let known_uid = nix::unistd::User::from_name(&user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    dirs::precheck(root, "instance root", known_uid)?;
    let ids = users::ensure(instance.as_str(), &user, &group, root)?;
    let data_root = root.join("docker");
    refuse_other_modes_data(instance, &data_root, mode, ids)?;
    // Rootful: root:<group> 0750 so group members can reach docker.sock,
    // and nothing in it is the instance user's. Rootless: the user's, as
    // its dockerd creates the socket and its data there (its group still
    // only reaches the socket).
    let owner = match mode {
        Mode::Rootful => 0,
        Mode::Rootless => ids.uid,
    };
    dirs::ensure_dir(
        root,
        &DirSpec {
            what: "instance root",
            uid: owner,
            gid: ids.gid,
            mode: 0o750,
            tolerated_uid: Some(ids.uid),
        },
    )?;
    dirs::ensure_dir(
        &data_root,
        &DirSpec {
            what: "docker data root",
            uid: owner,
            gid: if owner == 0 { 0 } else { ids.gid },
            mode: 0o710,
            tolerated_uid: Some(ids.uid),
        },
    )?;
    dirs::ensure_dir(
        exec_root,
        &DirSpec {
            what: "exec root",
            uid: 0,
            gid: 0,
            mode: match mode {
                Mode::Rootful => 0o700,
                Mode::Rootless => 0o711,
            },
            tolerated_uid: None,
        },
    )?;
    if mode == Mode::Rootless {
        dirs::ensure_dir(
            Path::new(&instance.rootless_runtime_dir()),
            &DirSpec {
                what: "rootless runtime directory",
                uid: ids.uid,
                gid: ids.gid,
                mode: 0o700,
                tolerated_uid: None,
            },
        )?;
        rootless::ensure_subids(&user)?;
        rootless::delegate_cgroup(instance, ids)?;
        // One daemon.json for good: `started` changes nothing (see
        // started_rootless); a stale `.running` from a rootful past goes.
        match std::fs::remove_file(running_config(&config)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                bail!("cannot remove {}: {e}", running_config(&config).display())
            }
            _ => {}
        }
        dirs::write_atomic(&config, running_json.as_bytes())?;
    } else {
        dirs::write_atomic(&running_config(&config), running_json.as_bytes())?;
        dirs::write_atomic(&config, json.as_bytes())?;
    }

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
        "instance {instance}: {} user {user}, {} ({}:{group} 0750), config {}",
        mode.as_str(),
        root.display(),
        if owner == 0 { "root" } else { user.as_str() },
        config.display()
    );
    Ok(())
}

/// A data root written by the other kind of daemon is refused before
/// anything changes: a rootless dockerd cannot read a rootful one's files,
/// and a rootful one would hand containers files owned by the rootless
/// one's shifted ids. Switching keeps the data where it is for the admin.
fn refuse_other_modes_data(
    instance: &InstanceName,
    data_root: &Path,
    mode: Mode,
    ids: users::Ids,
) -> Result<()> {
    let Some(writer) = rootless::data_root_writer(data_root) else {
        return Ok(());
    };
    let (wrote, wanted) = match mode {
        Mode::Rootless if writer == 0 => ("a rootful", "Rootless=yes"),
        Mode::Rootful if writer == ids.uid => ("a rootless", "Rootless=no"),
        _ => return Ok(()),
    };
    bail!(
        "instance {instance}: {} holds {wrote} dockerd's images, containers and volumes, which a daemon with {wanted} cannot use; set Rootless= back, or move {} away (its data is not converted) and start again",
        data_root.display(),
        data_root.display()
    )
}

/// The image store the data root gets: `chosen`, except that a data root
/// holding graph-driver data keeps its graph driver (its images and
/// containers are there; moby v29 decides the same way while nothing is
/// chosen explicitly, `vfs` aside).
fn keep_graph_driver(instance: &InstanceName, data_root: &Path, chosen: ImageStore) -> ImageStore {
    if chosen == ImageStore::GraphDriver {
        return chosen;
    }
    match graph_driver_data(data_root) {
        Some(driver) => {
            log::info!(
                "instance {instance}: {} holds {driver} data: keeping the graph driver, not the \
                 {} image store",
                data_root.display(),
                chosen.as_str()
            );
            ImageStore::GraphDriver
        }
        None => chosen,
    }
}

/// The first graph driver whose directory in `data_root` is not empty.
fn graph_driver_data(data_root: &Path) -> Option<&'static str> {
    engine::GRAPH_DRIVER_DIRS.iter().copied().find(|d| {
        std::fs::read_dir(data_root.join(d))
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false)
    })
}

fn down(c: &Cleanup) -> Result<()> {
    let (instance, root) = (&c.instance, &c.root);
    let mut f = Failures::default();
    notify::status(&format!("cleaning up after dockerd of {instance}"));
    // A dockerd that stopped normally stopped its containers. One that
    // crashed left them running in its containerd, about to lose their
    // bridge; and a restart would find them and keep them (it starts with
    // live-restore on), broken. So whatever is left of them ends here.
    if let Some(n) = f.record(end_leftover_containers(instance)) {
        if n > 0 {
            log::warn!(
                "instance {instance}: ended {n} process(es) of containers its dockerd left running"
            );
        }
    }
    if let Some(n) = f.record(mounts::unmount_below(&[
        c.exec_root.clone(),
        root.join("docker"),
    ])) {
        if n > 0 {
            log::info!("instance {instance}: detached {n} leftover mount(s)");
        }
    }
    let sock = socket_path(root);
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

/// Kills every process left in the instance's containers: the cgroups in
/// its slice other than its own services (cgroup v2's `cgroup.kill`, which
/// also reaches processes forking meanwhile); returns how many there were.
/// The services are spared because this runs from the instance's own
/// `ExecStopPost=`, inside the slice: its containerd, and this helper.
fn end_leftover_containers(instance: &InstanceName) -> Result<usize> {
    let slice = dockyard_model::paths::cgroup_root().join(instance.container_cgroup());
    let own = [instance.unit(), instance.containerd_unit()];
    let Ok(children) = std::fs::read_dir(&slice) else {
        return Ok(0);
    };
    let mut count = 0;
    for child in children.filter_map(std::result::Result::ok) {
        let is_dir = child.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || own.iter().any(|u| child.file_name() == u.as_str()) {
            continue;
        }
        let n = count_procs(&child.path());
        if n > 0 {
            let kill = child.path().join("cgroup.kill");
            std::fs::write(&kill, "1").ctx(|| format!("cannot write {}", kill.display()))?;
            count += n;
        }
    }
    Ok(count)
}

fn count_procs(dir: &Path) -> usize {
    let own = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let below: usize = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| count_procs(&e.path()))
        .sum();
    own + below
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_json_shapes() {
        let (start, running) = daemon_json(&[], None).unwrap();
        assert_eq!(start, "{\n  \"live-restore\": true\n}\n");
        assert_eq!(running, "{\n  \"live-restore\": false\n}\n");
        let (j, _) = daemon_json(&["log-level=\"warn\"", "debug=true", "mtu=1400"], None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"log-level": "warn", "debug": true, "mtu": 1400, "live-restore": true})
        );
        assert!(daemon_json(&["a=1", "a=2"], None).unwrap_err().is_usage());
        assert!(daemon_json(&["a=nope"], None).is_err());
    }

    #[test]
    fn image_store_is_a_feature_the_conf_can_override() {
        let json = |opts: &[&str], store| -> serde_json::Value {
            serde_json::from_str(&daemon_json(opts, store).unwrap().1).unwrap()
        };
        assert_eq!(
            json(&[], Some(ImageStore::GraphDriver))["features"],
            serde_json::json!({"containerd-snapshotter": false})
        );
        assert_eq!(
            json(
                &["features={\"buildkit\": true}"],
                Some(ImageStore::Containerd)
            )["features"],
            serde_json::json!({"buildkit": true, "containerd-snapshotter": true})
        );
        // The admin's explicit choice wins.
        assert_eq!(
            json(
                &["features={\"containerd-snapshotter\": true}"],
                Some(ImageStore::GraphDriver)
            )["features"],
            serde_json::json!({"containerd-snapshotter": true})
        );
        assert!(json(&[], None).get("features").is_none());
        assert!(daemon_json(&["features=[1]"], Some(ImageStore::Containerd))
            .unwrap_err()
            .is_usage());
    }

    #[test]
    fn a_data_root_with_graph_driver_data_keeps_it() {
        let dir = std::env::temp_dir().join(format!("dockyard-prior-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("overlay2")).unwrap();
        let name = InstanceName::parse("dy1").unwrap();
        // Fresh (an empty driver directory is no data): the choice stands.
        assert_eq!(
            keep_graph_driver(&name, &dir, ImageStore::Containerd),
            ImageStore::Containerd
        );
        std::fs::create_dir(dir.join("vfs")).unwrap();
        std::fs::write(dir.join("vfs").join("x"), "").unwrap();
        assert_eq!(graph_driver_data(&dir), Some("vfs"));
        assert_eq!(
            keep_graph_driver(&name, &dir, ImageStore::Containerd),
            ImageStore::GraphDriver
        );
        assert_eq!(
            keep_graph_driver(&name, &dir.join("absent"), ImageStore::Containerd),
            ImageStore::Containerd
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

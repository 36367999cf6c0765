//! `dockyard-sysbox-chown`: give each new per-container Docker backing
//! directory of sysbox to the `sysbox` subuid/subgid offset, within
//! milliseconds, using inotify (no polling, no wake-ups while idle).
//!
//! sysbox-mgr's on-disk layout (nestybox/sysbox-mgr: `utils.go`
//! `setupDockerVolMgr()` does `hostDir := filepath.Join(sysboxLibDir,
//! "docker")`, and `volMgr/volMgr.go` `CreateVol()` does `volPath :=
//! filepath.Join(m.hostDir, id)` + `os.Mkdir(volPath, perm)`; `sysboxLibDir`
//! is `--data-root`, default `/var/lib/sysbox`):
//!
//! ```text
//! <data-root>/                 root 0710, removed and recreated at every
//!                              sysbox-mgr start (cleanupWorkDirs -> RemoveAll)
//! <data-root>/docker/          root 0700, the docker volume manager's hostDir
//! <data-root>/docker/<cid>/    one per container: bind-mounted on the
//!                              container's /var/lib/docker  <- we chown these
//! ```
//!
//! So we watch three levels: the parent of the data root (to see it come
//! back), the data root (to see `docker/` come back) and `docker/` (for new
//! container directories). We only ever touch `docker/<cid>` entries that
//! are directories owned by uid 0, with fchownat(AT_SYMLINK_NOFOLLOW), and
//! never anything below them.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::{fstatat, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

use dockyard_model::contract::{self, sysbox, Opt, Values};

use crate::args;
use crate::bail;
use crate::error::{Context, Error, Result};
use crate::notify;
use dockyard_model::subid;

pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    let opts = args::parse(argv, sysbox::CHOWN_OPTIONS)?;
    if let Some(a) = &opts.action {
        return Err(Error::usage(format!("unexpected argument {a:?}")));
    }
    let path = |opt: Opt, default: Option<&str>| -> Result<PathBuf> {
        let v = match default {
            Some(d) => opts.value(opt).unwrap_or(d),
            None => opts.required(opt)?,
        };
        contract::abs_path(opt, v).map_err(args::usage)
    };
    let data_root = path(sysbox::DATA_ROOT, None)?;
    let user = args::account_name(sysbox::SUBID_USER.name, opts.required(sysbox::SUBID_USER)?)?;
    // Overrides exist for tests and unusual hosts; units use the defaults.
    let subuid = path(sysbox::SUBUID_FILE, Some("/etc/subuid"))?;
    let subgid = path(sysbox::SUBGID_FILE, Some("/etc/subgid"))?;
    let uid = offset(&subuid, &user)?;
    let gid = offset(&subgid, &user)?;
    Watcher::new(data_root, uid, gid)?.run()
}

fn offset(file: &Path, user: &str) -> Result<u32> {
    let text = std::fs::read_to_string(file).ctx(|| format!("cannot read {}", file.display()))?;
    let Some(r) = subid::find(&text, user) else {
        bail!(
            "{} has no entry for user {user:?}; `dockyard-prepare sysbox --subid-user {user}` (run before dockyard-sysbox-mgr.service starts) or sysbox-mgr itself writes one (like `{user}:165536:268435456`). Start dockyard-sysbox-mgr.service once or add the entry, then restart this service",
            file.display()
        );
    };
    if r.first == 0 {
        bail!("{}: the range of {user:?} starts at 0, which would hand directories to root; fix the entry", file.display());
    }
    Ok(r.first)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Parent,
    Root,
    Docker,
}

struct Watcher {
    inotify: Inotify,
    wds: HashMap<WatchDescriptor, Level>,
    parent: PathBuf,
    root_name: OsString,
    data_root: PathBuf,
    docker: PathBuf,
    uid: u32,
    gid: u32,
    fixed: u64,
}

enum Todo {
    Resync,
    Fix(OsString),
}

impl Watcher {
    fn new(data_root: PathBuf, uid: u32, gid: u32) -> Result<Self> {
        let (Some(parent), Some(root_name)) = (data_root.parent(), data_root.file_name()) else {
            bail!(
                "--data-root {} has no parent directory",
                data_root.display()
            );
        };
        std::fs::create_dir_all(parent).ctx(|| format!("cannot create {}", parent.display()))?;
        Ok(Watcher {
            inotify: Inotify::init().ctx(|| "cannot create an inotify instance")?,
            wds: HashMap::new(),
            parent: parent.to_path_buf(),
            root_name: root_name.to_os_string(),
            docker: data_root.join("docker"),
            data_root,
            uid,
            gid,
            fixed: 0,
        })
    }

    /// (Re)establish the watches top-down, then fix what exists. Adding a
    /// watch before looking means nothing created in between is missed.
    fn resync(&mut self) -> Result<()> {
        self.wds.clear();
        let mut w = self.inotify.watches();
        let wd = w
            .add(
                &self.parent,
                WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::ONLYDIR,
            )
            .ctx(|| format!("cannot watch {}", self.parent.display()))?;
        self.wds.insert(wd, Level::Parent);
        let self_gone = WatchMask::DELETE_SELF | WatchMask::MOVE_SELF | WatchMask::ONLYDIR;
        match w.add(
            &self.data_root,
            WatchMask::CREATE | WatchMask::MOVED_TO | self_gone,
        ) {
            Ok(wd) => {
                self.wds.insert(wd, Level::Root);
            }
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) => bail!("cannot watch {}: {e}", self.data_root.display()),
        }
        let mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::ATTRIB
            | WatchMask::DONT_FOLLOW
            | self_gone;
        match w.add(&self.docker, mask) {
            Ok(wd) => {
                self.wds.insert(wd, Level::Docker);
            }
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) => bail!("cannot watch {}: {e}", self.docker.display()),
        }
        self.scan()
    }

    fn open_docker(&self) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.docker)
    }

    fn scan(&mut self) -> Result<()> {
        let dir = match self.open_docker() {
            Ok(d) => d,
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) => bail!("cannot open {}: {e}", self.docker.display()),
        };
        let entries = std::fs::read_dir(&self.docker)
            .ctx(|| format!("cannot list {}", self.docker.display()))?;
        for e in entries.flatten() {
            self.fix(&dir, &e.file_name());
        }
        Ok(())
    }

    /// Chown `docker/<name>` if, and only if, it is a directory owned by root.
    /// Errors are logged, not fatal: one odd entry must not stop the watcher.
    fn fix(&mut self, dir: &File, name: &OsStr) {
        let path = self.docker.join(name);
        let st = match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return, // already removed again
            Err(e) => {
                log::warn!("cannot inspect {}: {e}", path.display());
                return;
            }
        };
        let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if !is_dir || st.st_uid != 0 {
            return;
        }
        match fchownat(
            dir.as_fd(),
            name,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(()) => {
                self.fixed += 1;
                // Logged, not sent as STATUS=: sd_notify sends block, and a
                // notify socket nobody drains (its queue holds ~10 datagrams)
                // would stall the watcher.
                log::info!("re-owned {} to {}:{}", path.display(), self.uid, self.gid);
            }
            Err(Errno::ENOENT) => {}
            Err(e) => log::error!(
                "cannot chown {} to {}:{}: {e}; the container's inner Docker will fail to write its data",
                path.display(),
                self.uid,
                self.gid
            ),
        }
    }

    fn status(&self) -> String {
        format!(
            "watching {} ({} director{} re-owned to {}:{})",
            self.docker.display(),
            self.fixed,
            if self.fixed == 1 { "y" } else { "ies" },
            self.uid,
            self.gid
        )
    }

    fn handle_events(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut todo = Vec::new();
        loop {
            let events = match self.inotify.read_events(buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => bail!("cannot read inotify events: {e}"),
            };
            for ev in events {
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    todo.push(Todo::Resync);
                    continue;
                }
                let Some(level) = self.wds.get(&ev.wd).copied() else {
                    continue; // a watch from before the last resync
                };
                let gone = ev
                    .mask
                    .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED);
                match (level, ev.name) {
                    (_, _) if gone => todo.push(Todo::Resync),
                    (Level::Parent, Some(n)) if n == self.root_name.as_os_str() => {
                        todo.push(Todo::Resync)
                    }
                    (Level::Root, Some(n)) if n == "docker" => todo.push(Todo::Resync),
                    (Level::Docker, Some(n)) => todo.push(Todo::Fix(n.to_os_string())),
                    _ => {}
                }
            }
        }
        if todo.iter().any(|t| matches!(t, Todo::Resync)) {
            return self.resync(); // rescans everything anyway
        }
        if todo.is_empty() {
            return Ok(());
        }
        match self.open_docker() {
            Ok(dir) => {
                for t in todo {
                    if let Todo::Fix(name) = t {
                        self.fix(&dir, &name);
                    }
                }
                Ok(())
            }
            Err(e) if is_absent(&e) => self.resync(),
            Err(e) => bail!("cannot open {}: {e}", self.docker.display()),
        }
    }

    fn run(mut self) -> Result<()> {
        // SIGTERM/SIGINT arrive through a signalfd polled with inotify, so
        // shutdown happens between events, never in the middle of a chown.
        let mut sigs = SigSet::empty();
        sigs.add(Signal::SIGTERM);
        sigs.add(Signal::SIGINT);
        sigs.thread_block().ctx(|| "cannot block SIGTERM")?;
        let sfd = SignalFd::with_flags(&sigs, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .ctx(|| "cannot create a signalfd")?;

        self.resync()?;
        let msg = self.status();
        log::info!("{msg}; sysbox subid offset {}:{}", self.uid, self.gid);
        notify::ready(&msg);

        let mut buf = [0u8; 4096];
        loop {
            let mut fds = [
                PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => bail!("poll failed: {e}"),
            }
            if let Ok(Some(si)) = sfd.read_signal() {
                notify::stopping();
                log::info!(
                    "stopping on signal {} after re-owning {} directories",
                    si.ssi_signo,
                    self.fixed
                );
                return Ok(());
            }
            self.handle_events(&mut buf)?;
        }
    }
}

fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
    )
}

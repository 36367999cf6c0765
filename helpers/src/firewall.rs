//! Applying the firewall backend's plans (`dockyard_model::firewall`): one
//! read of the live rules and at most one write, under a lock, because
//! instances share chains and starting instances run these concurrently.
//!
//! Why not the `iptables` crate: it execs `iptables` once per check and once
//! per add (about 10 ms a rule here); a plan is two processes in total.
//!
//! A plan reaches its writer in one write(2) into an empty pipe with room
//! for all of it: the kernel copies it whole, so a helper killed at any
//! point leaves the writer either the whole plan or an empty input (a
//! no-op). That matters for `nft -f -`, which would commit a plan cut at a
//! line as a shorter, still valid transaction.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use dockyard_model::contract::firewall as firewall_record;
use dockyard_model::contract::network::{self, Network};
use dockyard_model::firewall::choice;
use dockyard_model::firewall::{Backend, Program, Subject};
use dockyard_model::paths::{self, Search};
use dockyard_model::{state, InstanceName};
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Context, Error, Result};

/// Find a program on PATH (units get systemd's default PATH), falling back
/// to systemd's default when PATH is unset.
pub fn find_program(name: &str) -> Result<PathBuf> {
    paths::find_program(name, Search::PathOrDefault).map_err(|e| {
        let package = if name == "nft" { "nftables" } else { "iptables" };
        Error::new(format!(
            "{name} not found on PATH ({}); install the {package} package (apt-get install {package}), or choose the other backend with [Firewall] Backend= in {}",
            e.path.to_string_lossy(),
            paths::host_conf().display()
        ))
    })
}

/// Room in the writer's pipe for all of `len` bytes (64 KiB by default).
fn make_room(stdin: &std::process::ChildStdin, len: usize) -> Result<()> {
    const DEFAULT_PIPE: usize = 65536;
    if len <= DEFAULT_PIPE {
        return Ok(());
    }
    nix::fcntl::fcntl(stdin, nix::fcntl::FcntlArg::F_SETPIPE_SZ(len as nix::libc::c_int))
        .map(|_| ())
        .ctx(|| format!("cannot make a pipe of {len} bytes for the firewall plan (see /proc/sys/fs/pipe-max-size)"))
}

fn spawn(program: Program, input: bool) -> Result<Child> {
    let prog = find_program(program.name)?;
    Command::new(&prog)
        .args(program.args)
        .stdin(if input { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("cannot run {}", prog.display()))
}

fn finish(program: Program, child: Child, input: Option<&str>) -> Result<String> {
    let out = child
        .wait_with_output()
        .ctx(|| format!("waiting for {}", program.name))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "{} {} failed ({}): {}{}",
            program.name,
            program.args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            input
                .map(|t| format!("\nrules it was given:\n{t}"))
                .unwrap_or_default()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Held from the read to the write: a plan made from a stale read could
/// undo what a concurrent helper just added to a shared chain. The kernel
/// releases it when a killed helper dies.
fn lock() -> Result<Flock<std::fs::File>> {
    let path = state::firewall_lock();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("cannot open the firewall lock {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::new(format!("cannot lock {}: {e}", path.display())))
}

/// A change begun: the lock is held, the live rules are being read, and
/// the writer is already started, waiting for its input. Its start-up
/// (exec, libraries, extensions) then overlaps the read, the longer part
/// of a bring-up; it gets an empty input when there is nothing to do. It
/// reads the kernel's rules only once it gets a table, after the read,
/// and under the lock nobody else of Dockyard changes them meanwhile.
pub struct Change {
    backend: &'static dyn Backend,
    _held: Flock<std::fs::File>,
    reading: Child,
    writer: Child,
}

pub fn begin(backend: &'static dyn Backend) -> Result<Change> {
    let held = lock()?;
    let reading = spawn(backend.read_program(), false)?;
    Ok(Change {
        backend,
        _held: held,
        reading,
        writer: spawn(backend.apply_program(), true)?,
    })
}

impl Change {
    /// Plans from the live rules and applies; returns how many lines the
    /// plan had (0: everything was already in place), and the lock, for
    /// what must change before anyone else reads.
    fn apply(
        mut self,
        plan: impl FnOnce(&str) -> Option<String>,
    ) -> Result<(usize, Flock<std::fs::File>)> {
        let apply = self.backend.apply_program();
        let live = finish(self.backend.read_program(), self.reading, None)?;
        let text = plan(&live);
        if let Some(text) = &text {
            log::debug!("{} input:\n{text}", apply.name);
            let mut stdin = self
                .writer
                .stdin
                .take()
                .ok_or_else(|| Error::new(format!("{} has no input pipe", apply.name)))?;
            make_room(&stdin, text.len())?;
            stdin
                .write_all(text.as_bytes())
                .ctx(|| format!("cannot write rules to {}", apply.name))?;
        }
        // Dropping the pipe (also unused) ends the writer's input.
        self.writer.stdin = None;
        finish(apply, self.writer, text.as_deref())?;
        Ok((text.map_or(0, |t| t.lines().count()), self._held))
    }

    pub fn up(self, this: &Subject) -> Result<usize> {
        let backend = self.backend;
        self.apply(|live| backend.plan_up(live, this, &running(backend, this.instance())))
            .map(|(n, _)| n)
            .map_err(|e| {
                Error::new(format!(
                    "adding the {} rules of instance {} failed: {e}",
                    backend.name(),
                    this.instance()
                ))
            })
    }

    /// Also forgets which backend the instance's rules were in, before the
    /// lock goes: from then on no other helper counts it as running.
    pub fn down(self, instance: &InstanceName) -> Result<usize> {
        let backend = self.backend;
        let (n, held) = self
            .apply(|live| backend.plan_down(live, instance, &running(backend, instance)))
            .map_err(|e| {
                Error::new(format!(
                    "removing the {} rules of instance {instance} failed: {e}",
                    backend.name()
                ))
            })?;
        crate::state::remove(instance, firewall_record::RECORD)?;
        drop(held);
        Ok(n)
    }
}

/// The other instances whose rules `backend` wrote, with the networks
/// they recorded (and a rootless one's user, as it is now). Read under the
/// lock: an instance counts from the moment its `up` recorded the backend
/// until its `down` removed its rules.
fn running(backend: &dyn Backend, except: &InstanceName) -> Vec<Subject> {
    state::recorded_instances()
        .into_iter()
        .filter(|n| n != except)
        .filter(|n| matches!(choice::recorded(n), Ok(Some(b)) if b.name() == backend.name()))
        .filter_map(|n| {
            let record = state::load(&n, network::RECORD).ok()??;
            Network::parse(&record).ok()
        })
        .map(|net| Subject::resolve(net, crate::users::uid_of))
        .collect()
}

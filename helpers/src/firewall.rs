//! Applying the firewall backend's plans (`dockyard_model::firewall`): one
//! read of the live rules and at most one write, under a lock, because
//! instances share chains and starting instances run these concurrently.
//!
//! Why not the `iptables` crate: it execs `iptables` once per check and once
//! per add (about 10 ms a rule here); a plan is two processes in total.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use dockyard_model::firewall::{Backend, Program, Ruleset};
use dockyard_model::{state, InstanceName};
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Context, Error, Result};

/// Find a program on PATH (units get systemd's default PATH), falling back
/// to the usual sbin directories when PATH is unset.
pub fn find_program(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::new(format!(
        "{name} not found on PATH ({}); install the iptables package (apt-get install iptables)",
        path.to_string_lossy()
    )))
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

fn run(program: Program, input: Option<&str>) -> Result<String> {
    let mut child = spawn(program, input.is_some())?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .ctx(|| format!("cannot write rules to {}", program.name))?;
    }
    finish(program, child, input)
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

/// A change begun: the lock is held and the live rules are being read.
pub struct Change {
    backend: &'static dyn Backend,
    _held: Flock<std::fs::File>,
    reading: Child,
}

pub fn begin(backend: &'static dyn Backend) -> Result<Change> {
    let held = lock()?;
    Ok(Change {
        backend,
        _held: held,
        reading: spawn(backend.read_program(), false)?,
    })
}

impl Change {
    /// Plans from the live rules and applies; returns how many lines the
    /// plan had (0: everything was already in place).
    fn apply(self, plan: impl FnOnce(&str) -> Option<String>) -> Result<usize> {
        let live = finish(self.backend.read_program(), self.reading, None)?;
        match plan(&live) {
            None => Ok(0),
            Some(text) => {
                log::debug!("{} input:\n{text}", self.backend.apply_program().name);
                run(self.backend.apply_program(), Some(&text))?;
                Ok(text.lines().count())
            }
        }
    }

    pub fn up(self, want: &Ruleset) -> Result<usize> {
        let backend = self.backend;
        self.apply(|live| backend.plan_up(live, want)).map_err(|e| {
            Error::new(format!(
                "adding the firewall rules of instance {} failed: {e}",
                want.instance
            ))
        })
    }

    pub fn down(self, instance: &InstanceName) -> Result<usize> {
        let backend = self.backend;
        self.apply(|live| backend.plan_down(live, instance))
            .map_err(|e| {
                Error::new(format!(
                    "removing the firewall rules of instance {instance} failed: {e}"
                ))
            })
    }
}

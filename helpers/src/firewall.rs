//! Applying the firewall backend's plans (`dockyard_model::firewall`): one
//! read of the live rules and at most one write, under a lock, because
//! instances share chains and starting instances run these concurrently.
//!
//! Why not the `iptables` crate: it execs `iptables` once per check and once
//! per add (about 10 ms a rule here); a plan is two processes in total.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

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

fn run(program: Program, input: Option<&str>) -> Result<String> {
    let prog = find_program(program.name)?;
    let mut child = Command::new(&prog)
        .args(program.args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("cannot run {}", prog.display()))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .ctx(|| format!("cannot write rules to {}", prog.display()))?;
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("waiting for {}", prog.display()))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "{} {} failed ({}): {}{}",
            prog.display(),
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

/// Reads, plans and applies under the lock; returns how many lines the plan
/// had (0: everything was already as planned).
fn change(backend: &dyn Backend, plan: impl FnOnce(&str) -> Option<String>) -> Result<usize> {
    let _held = lock()?;
    let live = run(backend.read_program(), None)?;
    match plan(&live) {
        None => Ok(0),
        Some(text) => {
            log::debug!("{} input:\n{text}", backend.apply_program().name);
            run(backend.apply_program(), Some(&text))?;
            Ok(text.lines().count())
        }
    }
}

pub fn apply_up(backend: &dyn Backend, want: &Ruleset) -> Result<usize> {
    change(backend, |live| backend.plan_up(live, want)).map_err(|e| {
        Error::new(format!(
            "adding the firewall rules of instance {} failed: {e}",
            want.instance
        ))
    })
}

pub fn apply_down(backend: &dyn Backend, instance: &InstanceName) -> Result<usize> {
    change(backend, |live| backend.plan_down(live, instance)).map_err(|e| {
        Error::new(format!(
            "removing the firewall rules of instance {instance} failed: {e}"
        ))
    })
}

//! Shared test plumbing: the built binary, root detection, throw-away
//! network namespaces (never the host's interfaces or rules).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub fn helper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dockyard-helper"))
}

/// Integration tests change users, mounts and netns: they need root. Without
/// it they say so loudly and return (counted as passed, but visibly skipped).
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root (creates network namespaces, users and mounts)");
    false
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A host policy file naming `backend`. Tests never depend on what `auto`
/// finds on the machine they run on.
pub fn host_conf(backend: &str) -> PathBuf {
    let dir = state_dir();
    std::fs::create_dir_all(&dir).expect("state dir");
    let p = dir.join(format!("host-{backend}.conf"));
    // Threads of one test share the directory: never let one read it half written.
    let tmp = dir.join(format!(
        ".host-{backend}.{}",
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&tmp, format!("[Firewall]\nBackend={backend}\n")).expect("host conf");
    std::fs::rename(&tmp, &p).expect("host conf");
    p
}

pub fn run(cmd: &mut Command) -> Run {
    if !cmd.get_envs().any(|(k, _)| k == "DOCKYARD_HOST_CONF") {
        cmd.env("DOCKYARD_HOST_CONF", host_conf("iptables"));
    }
    // State the helpers record for `down --instance NAME` goes to the build
    // tree, never to the host's /run/dockyard.
    // A test's own threads pass its directory along (theirs have no name).
    if !cmd.get_envs().any(|(k, _)| k == "DOCKYARD_STATE_DIR") {
        cmd.env("DOCKYARD_STATE_DIR", state_dir());
    }
    cmd.env("DOCKYARD_LOG", "stderr")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("spawn")
        .into()
}

/// One state directory per test: tests run in parallel threads and reuse
/// instance names (each in its own network namespace), so a shared
/// directory let one test's `down` delete another's record, and their
/// writes race. The test harness names each thread after its test.
pub fn state_dir() -> PathBuf {
    let test = std::thread::current()
        .name()
        .unwrap_or("main")
        .replace("::", "-");
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("helper-state")
        .join(test)
}

pub fn sh(script: &str) -> Run {
    run(Command::new("sh").args(["-euc", script]))
}

/// A named network namespace that is deleted on drop (also on panic).
pub struct NetNs {
    pub name: String,
    /// The firewall backend the helpers are told to use (`[Firewall]
    /// Backend=` in a host policy file of the test's own).
    pub backend: std::cell::Cell<&'static str>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl NetNs {
    pub fn new() -> NetNs {
        let name = format!(
            "dyt-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let r = run(Command::new("ip").args(["netns", "add", &name]));
        assert_eq!(r.code, 0, "ip netns add {name}: {}", r.stderr);
        NetNs {
            name,
            backend: std::cell::Cell::new("iptables"),
        }
    }

    pub fn with_backend(backend: &'static str) -> NetNs {
        let ns = NetNs::new();
        ns.backend.set(backend);
        ns
    }

    fn host_conf(&self) -> PathBuf {
        host_conf(self.backend.get())
    }

    /// Run a program inside the namespace.
    pub fn cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(prog);
        c
    }

    pub fn exec(&self, args: &[&str]) -> Run {
        let mut c = self.cmd(args[0]);
        c.args(&args[1..]);
        run(&mut c)
    }

    pub fn helper(&self, args: &[&str]) -> Run {
        let mut c = self.cmd(helper());
        c.args(args).env("DOCKYARD_HOST_CONF", self.host_conf());
        run(&mut c)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.exec(args);
        assert_eq!(r.code, 0, "{args:?} failed: {}", r.stderr);
        r.stdout
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

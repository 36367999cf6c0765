//! dockyard-helper: one binary, called by Dockyard's generated units as
//! `dockyard-network`, `dockyard-prepare` or `dockyard-sysbox-chown`
//! (symlinks), or as `dockyard-helper network|prepare|sysbox-chown ...`.
//!
//! Exit codes: 0 done (also: nothing to do), 1 the operation failed,
//! 2 the command line is wrong, 6 (`prepare installed`) what the unit
//! runs is not installed.

mod args;
mod dirs;
mod error;
mod firewall;
mod installed;
mod logging;
mod mounts;
mod netlink;
mod network;
mod notify;
mod prepare;
mod refused;
mod rootless;
mod state;
mod sysbox_chown;
mod sysbox_user;
mod users;

use std::ffi::OsString;
use std::path::Path;

const USAGE: &str = "\
usage:
  dockyard-network up|down --instance NAME --bridge IFACE --bridge-cidr ADDR/LEN --fixed-cidr NET/LEN --pool NET/LEN
  dockyard-network down --instance NAME          (values recorded by up)
  dockyard-prepare up --instance NAME --user USER --group GROUP --root DIR --exec-root DIR --config-file FILE [--daemon-option KEY=JSON]...
  dockyard-prepare down --instance NAME --root DIR --exec-root DIR
  dockyard-prepare down --instance NAME          (values recorded by up)
  dockyard-prepare refused --instance NAME --conf FILE [--diagnostic TEXT]...   (the unit of a refused conf: logs, fails)
  dockyard-prepare installed --instance NAME --docker-version V [--sysbox-version V] [--rootless yes]
  dockyard-prepare sysbox --subid-user NAME [--subuid-file FILE] [--subgid-file FILE] [--login-defs FILE]
  dockyard-sysbox-chown --data-root DIR --subid-user NAME [--subuid-file FILE] [--subgid-file FILE]
  (or: dockyard-helper network|prepare|sysbox-chown ARGS...)";

#[derive(Clone, Copy)]
enum Tool {
    Network,
    Prepare,
    SysboxChown,
}

impl Tool {
    fn from_name(name: &str) -> Option<Tool> {
        match name {
            "dockyard-network" | "network" => Some(Tool::Network),
            "dockyard-prepare" | "prepare" => Some(Tool::Prepare),
            "dockyard-sysbox-chown" | "sysbox-chown" => Some(Tool::SysboxChown),
            _ => None,
        }
    }

    fn ident(self) -> &'static str {
        match self {
            Tool::Network => "dockyard-network",
            Tool::Prepare => "dockyard-prepare",
            Tool::SysboxChown => "dockyard-sysbox-chown",
        }
    }
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    let base = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let tool = match Tool::from_name(&base) {
        Some(t) => {
            argv.remove(0);
            t
        }
        // Fallback: `dockyard-helper network up ...` (any other argv[0]).
        None => match argv
            .get(1)
            .and_then(|a| a.to_str())
            .and_then(Tool::from_name)
        {
            Some(t) => {
                argv.drain(..2);
                t
            }
            None => {
                eprintln!("dockyard-helper: unknown helper; call it as one of its symlinks or name one\n{USAGE}");
                return 2;
            }
        },
    };
    logging::init(tool.ident());
    // Only the helper's own options: after `--` comes a command of its own
    // (`dockyard-prepare run-as … -- rootlesskit …`).
    if argv
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--help" || a == "-h")
    {
        println!("{USAGE}");
        return 0;
    }
    let result = match tool {
        Tool::Network => network::main(argv),
        Tool::Prepare => prepare::main(argv),
        Tool::SysboxChown => sysbox_chown::main(argv),
    };
    match result {
        Ok(()) => 0,
        Err(e) if e.is_usage() => {
            log::error!("{e}");
            eprintln!("{USAGE}");
            2
        }
        Err(e) => {
            log::error!("{e}");
            notify::status(&format!("failed: {e}"));
            e.exit_status()
        }
    }
}

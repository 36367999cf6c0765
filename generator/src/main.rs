//! dockyard-generator: turns /etc/dockyard/instances.d/*.conf into
//! NAME_docker.service units at boot and at every `systemctl daemon-reload`.
//! See systemd.generator(7) and dockyard-generator(8).

use dockyard_generator::log::{Level, Logger};
use dockyard_generator::run::{run, Settings};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: dockyard-generator [--dry-run] NORMAL_DIR [EARLY_DIR LATE_DIR]\n       dockyard-generator --dry-run\n\nRun by systemd; see dockyard-generator(8). --dry-run prints the units instead of writing them.";

enum Mode {
    Help,
    Version,
    Generate { dry_run: bool, dirs: Vec<PathBuf> },
}

fn parse_args(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Mode, String> {
    let mut dry_run = false;
    let mut dirs = Vec::new();
    for arg in args {
        match arg.to_str() {
            Some("--dry-run") => dry_run = true,
            Some("--help" | "-h") => return Ok(Mode::Help),
            Some("--version") => return Ok(Mode::Version),
            Some(s) if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => dirs.push(PathBuf::from(arg)),
        }
    }
    match (dry_run, dirs.len()) {
        (_, 1 | 3) | (true, 0) => Ok(Mode::Generate { dry_run, dirs }),
        (_, n) => Err(format!("expected 1 or 3 directory arguments, got {n}")),
    }
}

/// systemd sets SYSTEMD_IN_INITRD for generators; /etc/initrd-release is
/// how systemd itself detects the initrd otherwise.
fn in_initrd() -> bool {
    match std::env::var("SYSTEMD_IN_INITRD").ok().as_deref() {
        Some("1" | "yes" | "true" | "on") => true,
        Some("0" | "no" | "false" | "off") => false,
        _ => std::path::Path::new("/etc/initrd-release").exists(),
    }
}

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args_os().skip(1)) {
        Ok(mode) => mode,
        Err(e) => {
            let logger = Logger::new(false);
            logger.log(Level::Err, &format!("{e}\n{USAGE}"));
            if !logger.enabled(Level::Err) {
                eprintln!("dockyard-generator: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let (dry_run, dirs) = match mode {
        Mode::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Mode::Version => {
            println!("dockyard-generator {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Mode::Generate { dry_run, dirs } => (dry_run, dirs),
    };
    let logger = Logger::new(dry_run);
    // Instances are host services; nothing of them belongs in the initrd.
    if !dry_run && in_initrd() {
        logger.log(Level::Debug, "running in the initrd; nothing to generate");
        return ExitCode::SUCCESS;
    }
    let normal_dir = if dry_run {
        None
    } else {
        dirs.first().map(PathBuf::as_path)
    };
    let status = run(&Settings::from_env(), normal_dir, &logger);
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}

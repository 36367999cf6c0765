//! Writing the generated tree. systemd empties the output directory before
//! each run, but a unit must never be seen half-written (Quadlet shipped
//! truncated units from concurrent runs), so every file and symlink is
//! created under a temporary name and renamed into place. No fsync: the
//! output directory is a tmpfs under /run that systemd reads right after
//! the generator exits.

use crate::unit::Output;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn temp_name(dir: &Path, name: &str) -> PathBuf {
    // The pid keeps two concurrent runs on one directory from sharing a
    // temporary name; read once, it costs a syscall per call otherwise.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    dir.join(format!(".{name}.{}.tmp", PID.get_or_init(std::process::id)))
}

fn with_context(e: io::Error, what: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", what.display()))
}

pub fn write_file(dir: &Path, name: &str, content: &str) -> io::Result<()> {
    let tmp = temp_name(dir, name);
    let target = dir.join(name);
    let result = std::fs::File::create_new(&tmp)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &target));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| with_context(e, &target))
}

pub fn write_symlink(dir: &Path, name: &str, points_to: &str) -> io::Result<()> {
    let tmp = temp_name(dir, name);
    let target = dir.join(name);
    let result =
        std::os::unix::fs::symlink(points_to, &tmp).and_then(|()| std::fs::rename(&tmp, &target));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| with_context(e, &target))
}

/// Writes all units and `*.wants/` links into `dir`. Returns one error per
/// file that could not be written; the others are still written.
pub fn write_tree(dir: &Path, output: &Output) -> Vec<io::Error> {
    let mut errors: Vec<io::Error> = dockyard_model::parallel::par_map(&output.units, |unit| {
        write_file(dir, &unit.name, &unit.content)
    })
    .into_iter()
    .filter_map(Result::err)
    .collect();
    let mut targets: Vec<&str> = output.wants.iter().map(|(t, _)| t.as_str()).collect();
    targets.dedup();
    for target in targets {
        let wants_dir = dir.join(format!("{target}.wants"));
        if let Err(e) = std::fs::create_dir_all(&wants_dir) {
            errors.push(with_context(e, &wants_dir));
        }
    }
    let links: Vec<io::Result<()>> =
        dockyard_model::parallel::par_map(&output.wants, |(target, unit)| {
            write_symlink(
                &dir.join(format!("{target}.wants")),
                unit,
                &format!("../{unit}"),
            )
        });
    errors.extend(links.into_iter().filter_map(Result::err));
    errors
}

/// `--dry-run`: the same tree, printed like `systemctl cat`.
pub fn print_tree(out: &mut impl Write, output: &Output) -> io::Result<()> {
    let mut first = true;
    for unit in &output.units {
        if !first {
            writeln!(out)?;
        }
        first = false;
        writeln!(out, "# {}", unit.name)?;
        out.write_all(unit.content.as_bytes())?;
    }
    for (target, unit) in &output.wants {
        if !first {
            writeln!(out)?;
        }
        first = false;
        writeln!(out, "# {target}.wants/{unit} -> ../{unit}")?;
    }
    Ok(())
}

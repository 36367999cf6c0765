//! `dockyard check [FILE…] [--dry-run]`: the generator's own validation,
//! through the generator's library, so the CLI and the boot can never
//! disagree. Without FILE it checks the whole instances directory exactly
//! as a `daemon-reload` would; with FILEs it checks those confs (which need
//! not be in the directory yet) and their conflicts with the directory's
//! instances, as if they had just been dropped in. Either way it also
//! checks the host's policy file (`/etc/dockyard/dockyard.conf`).

use crate::error::{Failure, Result};
use dockyard_generator::run::{generate, sysbox_needs_a_version, version_defaults, Settings};
use dockyard_generator::{output, unit};
use dockyard_model::conflict::{self, Standing};
use dockyard_model::instance::VersionDefaults;
use dockyard_model::load::{load_dir, load_one, LoadOptions};
use dockyard_model::{hostconf, installed, paths, rootless};
use dockyard_model::{Diagnostic, Instance};
use dockyard_netlink::Crossing;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  no errors (warnings do not fail: AllowFrom= or a [Daemon] key a rootless instance
     cannot use is a warning; a Docker or sysbox version an instance needs
     and the store lacks is a warning, with the `dockyard install` that fixes it; so is
     what a rootless instance needs from the host, with the package that installs it)
  1  at least one error: a conf would get no unit, the directory or manifest is unusable,
     or the host's policy file /etc/dockyard/dockyard.conf has an error
  2  usage error";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Confs to check (with their NAME.conf.d drop-ins); default: every conf of the instances directory
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also print the units the generator would write
    #[arg(long)]
    pub dry_run: bool,
}

pub struct Report {
    /// The instances that would get a unit.
    pub instances: Vec<Instance>,
    pub diagnostics: Vec<Diagnostic>,
    /// Confs that would get no unit.
    pub skipped: usize,
    pub output: unit::Output,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.skipped > 0 || self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The files' instances against the instances directory: the directory's
/// instances of other names stand as they are; a file replaces the
/// directory's conf of the same name.
pub fn check_files(settings: &Settings, files: &[PathBuf]) -> Report {
    let (defaults, sysbox_version, manifest_error) = version_defaults(&settings.manifest_override);
    let mut diagnostics: Vec<Diagnostic> = manifest_error.into_iter().collect();
    let mut skipped = 0;
    let mut mine: Vec<Instance> = Vec::new();
    for file in files {
        let (inst, diags) = load_one(file, &defaults);
        diagnostics.extend(diags);
        match inst {
            Some(i) => mine.push(i),
            None => skipped += 1,
        }
    }
    let names: Vec<_> = mine.iter().map(|i| i.name.clone()).collect();
    let (mine, conflicts) = against_dir(settings, &defaults, mine);
    skipped += names.len() - mine.len();
    diagnostics.extend(conflicts);
    let (renderable, sysbox_version, dropped) =
        sysbox_needs_a_version(mine, sysbox_version, &mut diagnostics);
    skipped += dropped;
    let output = unit::render(&renderable, &sysbox_version);
    Report {
        instances: renderable,
        diagnostics,
        skipped,
        output,
    }
}

/// Resolves `mine` against the instances directory's instances as the
/// generator would (a conf in `mine` replaces the directory's conf of the
/// same name); returns the accepted ones of `mine` and the errors about
/// them.
pub fn against_dir(
    settings: &Settings,
    defaults: &VersionDefaults,
    mine: Vec<Instance>,
) -> (Vec<Instance>, Vec<Diagnostic>) {
    let catalog = load_dir(&LoadOptions {
        dir: &settings.instances_dir,
        defaults,
        sys_class_net: &settings.sys_class_net,
    });
    let running = |i: &Instance| settings.sys_class_net.join(i.name.bridge()).exists();
    // A conf not written yet is the newest of all.
    let modified = |i: &Instance| {
        std::fs::metadata(&i.conf)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now())
    };
    let mut candidates: Vec<(Instance, Standing)> = catalog
        .instances
        .into_iter()
        .filter(|i| !mine.iter().any(|m| m.name == i.name))
        .map(|i| {
            let standing = Standing {
                running: running(&i),
                modified: modified(&i),
            };
            (i, standing)
        })
        .collect();
    let names: Vec<_> = mine.iter().map(|i| i.name.clone()).collect();
    let my_files: Vec<PathBuf> = mine
        .iter()
        .flat_map(|i| std::iter::once(i.conf.clone()).chain(i.dropins.iter().cloned()))
        .collect();
    for i in mine {
        let standing = Standing {
            running: running(&i),
            modified: modified(&i),
        };
        candidates.push((i, standing));
    }
    let (accepted, conflicts) = conflict::resolve(candidates);
    let mine = accepted
        .into_iter()
        .filter(|i| names.contains(&i.name))
        .collect();
    let conflicts = conflicts
        .into_iter()
        .filter(|d| my_files.contains(&d.path))
        .collect();
    (mine, conflicts)
}

/// The instances (all of the directory, or `files`), and the host's
/// policy file (dockyard-host.conf(5)) that `new` and the helpers read.
pub fn check(settings: &Settings, files: &[PathBuf]) -> Report {
    let (_, mut diagnostics) = hostconf::load(&paths::host_conf());
    let mut report = if files.is_empty() {
        let g = generate(settings);
        Report {
            instances: g.instances,
            diagnostics: g.diagnostics,
            skipped: g.skipped,
            output: g.output,
        }
    } else {
        check_files(settings, files)
    };
    diagnostics.append(&mut report.diagnostics);
    report.diagnostics = diagnostics;
    report
}

/// Warnings for host routes over each instance's networks (netlink's
/// crossing rule). Warnings, not errors: the generator, whose verdict
/// `check` repeats, does not read the routing table (at boot it is not set
/// up yet), and the tables at start may differ from now; `dockyard-network
/// up` refuses the start against the tables as they are then.
pub fn route_warnings(
    instances: &[Instance],
    live: impl Fn(&[ipnet::Ipv4Net], &[ipnet::Ipv4Net]) -> std::io::Result<Vec<Crossing>>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for i in instances {
        let found = match live(&i.own_nets(), &i.accept_host_routes) {
            Ok(f) => f,
            Err(e) => {
                out.push(Diagnostic::warning(
                    &i.conf,
                    None,
                    format!("cannot read the host's routes to check them: {e}"),
                ));
                return out;
            }
        };
        for c in found {
            let origin = if c.net == i.pool {
                i.origins.pool.as_ref()
            } else {
                i.origins.bridge.as_ref()
            };
            out.push(Diagnostic {
                severity: dockyard_model::Severity::Warning,
                path: origin.map_or_else(|| i.conf.clone(), |o| o.path.clone()),
                line: origin.map(|o| o.line),
                message: format!(
                    "{c}; `dockyard-network up` will refuse to start {}: choose networks no host route covers, or add AcceptHostRoute={} to [Network] if the routed network is meant",
                    i.name.unit(),
                    c.route.dst
                ),
            });
        }
    }
    out
}

/// Warnings for what the checked instances run that the store lacks: the
/// conf is valid (its unit is generated), but the unit would fail, so the
/// admin hears it here with the command that installs it.
pub fn not_installed(settings: &Settings, files: &[PathBuf], store: &Path) -> Vec<Diagnostic> {
    let (defaults, sysbox_version, _) = version_defaults(&settings.manifest_override);
    let instances: Vec<Instance> = if files.is_empty() {
        load_dir(&LoadOptions {
            dir: &settings.instances_dir,
            defaults: &defaults,
            sys_class_net: &settings.sys_class_net,
        })
        .instances
    } else {
        files
            .iter()
            .filter_map(|f| load_one(f, &defaults).0)
            .collect()
    };
    let sysbox = sysbox_version.ok();
    instances
        .iter()
        .flat_map(|i| {
            installed::missing_for(store, i, sysbox.as_deref())
                .into_iter()
                .map(|m| Diagnostic::warning(&i.conf, None, format!("instance {}: {m}", i.name)))
        })
        .collect()
}

pub fn run(args: &Args) -> Result<()> {
    let settings = Settings::from_env();
    let mut report = check(&settings, &args.files);
    let routes = route_warnings(
        &report.instances,
        dockyard_netlink::crossing::live_crossings,
    );
    report.diagnostics.extend(routes);
    // Valid, but doing nothing or breaking dockerd on a rootless instance.
    let rootless: Vec<Diagnostic> = report
        .instances
        .iter()
        .flat_map(rootless::warnings)
        .collect();
    report.diagnostics.extend(rootless);
    report
        .diagnostics
        .extend(not_installed(&settings, &args.files, &installed::store()));
    for d in &report.diagnostics {
        eprintln!("{d}");
    }
    if args.dry_run {
        let stdout = std::io::stdout();
        output::print_tree(&mut stdout.lock(), &report.output)
            .map_err(|e| Failure::failed(format!("cannot print the units: {e}")))?;
    }
    let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = report.diagnostics.len() - errors;
    let units = report.output.instance_units();
    let summary = format!(
        "{units} instance unit(s) would be generated; {} conf(s) would get none; {errors} error(s), {warnings} warning(s)",
        report.skipped
    );
    if report.failed() {
        Err(Failure::failed(summary))
    } else {
        eprintln!("{summary}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockyard_netlink::{crossings, Route};

    fn instance(text: &str) -> (tempfile::TempDir, Instance) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let conf = tmp.path().join("lan.conf");
        std::fs::write(&conf, text).expect("conf");
        let defaults = VersionDefaults {
            docker: Ok("29.2.1".into()),
            known_docker: None,
        };
        let (inst, diags) = load_one(&conf, &defaults);
        (tmp, inst.unwrap_or_else(|| panic!("{diags:?}")))
    }

    fn lan_routes(
        nets: &[ipnet::Ipv4Net],
        accepted: &[ipnet::Ipv4Net],
    ) -> std::io::Result<Vec<Crossing>> {
        let routes = [Route {
            table: 254,
            dst: "10.90.0.0/16".parse().expect("net"),
        }];
        Ok(crossings(&routes, nets, accepted))
    }

    /// What an admin sees from `dockyard check` for a conf inside a LAN route.
    #[test]
    fn a_conf_inside_a_lan_route_is_warned_about_at_its_line() {
        let (tmp, inst) =
            instance("[Instance]\nRuntime=runc\nBridgeCIDR=10.90.1.1/24\nPoolBase=172.23.0.0/16\n");
        let w = route_warnings(std::slice::from_ref(&inst), lan_routes);
        let text: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [format!(
                "{}/lan.conf:3: warning: host route 10.90.0.0/16 (table main) covers 10.90.1.0/24: the instance would take those addresses from where that route leads; `dockyard-network up` will refuse to start lan_docker.service: choose networks no host route covers, or add AcceptHostRoute=10.90.0.0/16 to [Network] if the routed network is meant",
                tmp.path().display()
            )]
        );
        let (_tmp, accepted) = instance(
            "[Instance]\nRuntime=runc\nBridgeCIDR=10.90.1.1/24\nPoolBase=172.23.0.0/16\n[Network]\nAcceptHostRoute=10.90.0.0/16\n",
        );
        assert!(route_warnings(&[accepted], lan_routes).is_empty());
    }
}

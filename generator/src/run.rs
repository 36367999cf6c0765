//! One generator run: confs in, units out, diagnostics logged.

use crate::log::{Level, Logger};
use crate::output;
use crate::unit;
use dockyard_model::contract::refused::Refused;
use dockyard_model::instance::VersionDefaults;
use dockyard_model::load::{load_dir, LoadOptions, CONF_SUFFIX};
use dockyard_model::manifest;
use dockyard_model::name::InstanceName;
use dockyard_model::paths;
use dockyard_model::{Diagnostic, Instance, Severity};
use std::path::{Path, PathBuf};

pub struct Settings {
    pub instances_dir: PathBuf,
    pub manifest_override: PathBuf,
    pub sys_class_net: PathBuf,
}

impl Settings {
    /// The real paths, with the documented environment overrides
    /// (dockyard-generator(8)): the instances directory for admins and
    /// tests, the manifest and /sys/class/net for tests only.
    pub fn from_env() -> Settings {
        Settings {
            instances_dir: paths::instances_dir(),
            manifest_override: paths::manifest_override(),
            sys_class_net: paths::sys_class_net(),
        }
    }
}

pub struct Generated {
    pub output: unit::Output,
    /// The instances that got a unit.
    pub instances: Vec<Instance>,
    pub diagnostics: Vec<Diagnostic>,
    pub skipped: usize,
}

/// The version defaults confs are checked against, and the sysbox version
/// units point at, from the artifacts manifest; a broken manifest gives
/// its diagnostic and the reason there are no defaults.
pub fn version_defaults(
    manifest_override: &Path,
) -> (VersionDefaults, Result<String, String>, Option<Diagnostic>) {
    match manifest::load(manifest_override) {
        Ok(loaded) => (
            VersionDefaults {
                docker: Ok(loaded.manifest.defaults.docker.clone()),
                known_docker: Some(
                    loaded
                        .manifest
                        .docker_versions()
                        .into_iter()
                        .map(String::from)
                        .collect(),
                ),
            },
            Ok(loaded.manifest.defaults.sysbox.clone()),
            None,
        ),
        Err(d) => {
            let why = format!(
                "the artifacts manifest {} is unusable (see the error above)",
                d.path.display()
            );
            (
                VersionDefaults {
                    docker: Err(why.clone()),
                    known_docker: None,
                },
                Err(why),
                Some(d),
            )
        }
    }
}

/// The instances that can be rendered with `sysbox_version` (from
/// [`version_defaults`]), and the version to render them with. Without a
/// usable manifest there is no sysbox version to point units at: each
/// Runtime=sysbox-runc instance is dropped with an error, in order; the
/// count says how many.
pub fn sysbox_needs_a_version(
    mut instances: Vec<Instance>,
    sysbox_version: Result<String, String>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<Instance>, String, usize) {
    match sysbox_version {
        Ok(v) => (instances, v, 0),
        Err(why) => {
            let before = instances.len();
            instances.retain(|i| {
                if i.uses_sysbox() {
                    diagnostics.push(Diagnostic::error(
                        &i.conf,
                        None,
                        format!("Runtime=sysbox-runc needs the sysbox version from {why}"),
                    ));
                }
                !i.uses_sysbox()
            });
            let dropped = before - instances.len();
            (instances, String::new(), dropped)
        }
    }
}

/// Loads and renders; writes nothing.
pub fn generate(settings: &Settings) -> Generated {
    let mut diagnostics = Vec::new();
    let (defaults, sysbox_version, manifest_error) = version_defaults(&settings.manifest_override);
    diagnostics.extend(manifest_error);
    let catalog = load_dir(&LoadOptions {
        dir: &settings.instances_dir,
        defaults: &defaults,
        sys_class_net: &settings.sys_class_net,
    });
    diagnostics.extend(catalog.diagnostics);
    let mut skipped = catalog.skipped.len();

    let (instances, sysbox_version, dropped) =
        sysbox_needs_a_version(catalog.instances, sysbox_version, &mut diagnostics);
    skipped += dropped;
    let mut output = unit::render(&instances, &sysbox_version);
    add_remnants(settings, catalog.running, &mut output, &mut diagnostics);
    add_refused(&settings.instances_dir, &diagnostics, &mut output);
    Generated {
        output,
        instances,
        diagnostics,
        skipped,
    }
}

/// Running instances (their bridge `NAME_docker0` exists) that got no unit
/// above keep one that can stop them and clean up (unit::remnant_unit).
fn add_remnants(
    settings: &Settings,
    running: Vec<InstanceName>,
    output: &mut unit::Output,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let names: Vec<InstanceName> = running
        .into_iter()
        .filter(|n| !output.units.iter().any(|u| u.name == n.unit()))
        .collect();
    for name in names {
        let conf = settings
            .instances_dir
            .join(format!("{}.conf", name.as_str()));
        diagnostics.push(Diagnostic::warning(
            &conf,
            None,
            format!(
                "instance {} is running (bridge {} exists) but has no valid conf; its unit can only stop it and clean up: `systemctl stop {}`, or restore the conf and run `systemctl daemon-reload`",
                name.as_str(),
                name.bridge(),
                name.unit()
            ),
        ));
        output.units.extend(unit::remnant_units(
            &name,
            &conf.to_string_lossy(),
            conf.exists(),
        ));
    }
    output.units.sort_by(|a, b| a.name.cmp(&b.name));
}

/// The instance a diagnostic is about: `DIR/NAME.conf`, or a drop-in
/// `DIR/NAME.conf.d/*.conf`; `None` for anything else (the directory, the
/// manifest) and for a file name that is no instance name.
fn instance_of(instances_dir: &Path, file: &Path) -> Option<InstanceName> {
    let parent = file.parent()?;
    let conf_name = if parent == instances_dir {
        file.file_name()?.to_str()?
    } else if parent.parent()? == instances_dir {
        parent
            .file_name()?
            .to_str()?
            .strip_suffix(".d")
            .filter(|n| n.ends_with(CONF_SUFFIX))?
    } else {
        return None;
    };
    InstanceName::parse(conf_name.strip_suffix(CONF_SUFFIX)?).ok()
}

/// A conf with an error that got no unit gets one that says why
/// (unit::refused_unit), with every message about its files, warnings
/// included: "unknown key BridgeCIRD=; did you mean BridgeCIDR=?" is often
/// the reason behind "BridgeCIDR= is required".
fn add_refused(instances_dir: &Path, diagnostics: &[Diagnostic], output: &mut unit::Output) {
    let mut refused: Vec<Refused> = Vec::new();
    for d in diagnostics {
        let Some(name) = instance_of(instances_dir, &d.path) else {
            continue;
        };
        if output.units.iter().any(|u| u.name == name.unit()) {
            continue;
        }
        match refused.iter_mut().find(|r| r.instance == name) {
            Some(r) => r.diagnostics.push(d.to_string()),
            None => refused.push(Refused {
                conf: instances_dir.join(format!("{name}{CONF_SUFFIX}")),
                instance: name,
                diagnostics: vec![d.to_string()],
            }),
        }
    }
    // Only confs with an error: a conf with warnings alone has its unit.
    refused.retain(|r| {
        diagnostics.iter().any(|d| {
            d.is_error() && instance_of(instances_dir, &d.path).as_ref() == Some(&r.instance)
        })
    });
    for r in refused {
        let u = unit::refused_unit(&r);
        output.refused.push(u.name.clone());
        output.units.push(u);
    }
    output.units.sort_by(|a, b| a.name.cmp(&b.name));
}

pub fn log_diagnostics(logger: &Logger, diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        let level = match d.severity {
            Severity::Error => Level::Err,
            Severity::Warning => Level::Warning,
        };
        logger.log(level, &d.to_string());
    }
}

/// The whole run for the binary; returns the exit status.
pub fn run(settings: &Settings, normal_dir: Option<&Path>, logger: &Logger) -> i32 {
    let generated = generate(settings);
    log_diagnostics(logger, &generated.diagnostics);
    let mut failed =
        generated.skipped > 0 || generated.diagnostics.iter().any(Diagnostic::is_error);

    match normal_dir {
        Some(dir) => {
            for e in output::write_tree(dir, &generated.output) {
                logger.log(Level::Err, &format!("cannot write {e}"));
                failed = true;
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            if let Err(e) = output::print_tree(&mut lock, &generated.output) {
                logger.log(Level::Err, &format!("cannot print units: {e}"));
                failed = true;
            }
        }
    }
    let instances = generated.output.instance_units();
    let level = if generated.skipped > 0 {
        Level::Notice
    } else {
        Level::Debug
    };
    logger.log(
        level,
        &format!(
            "generated {instances} instance unit(s) from {}; skipped {} conf(s); `dockyard check` shows the messages again",
            settings.instances_dir.display(),
            generated.skipped
        ),
    );
    i32::from(failed)
}

//! `dockyard install`: fetch, verify and lay out Docker and sysbox builds
//! in the versioned store the generated units run from.
//!
//! Order of work, chosen so that failures cost nothing: everything the
//! manifest must answer (versions, arch, URLs) is settled before the store
//! is touched; each version is then fetched, checked against its pin,
//! unpacked and recorded in a staging directory, and renamed into place
//! last. One module per concern:
//!
//! | module | owns |
//! |---|---|
//! | `manifest_select` | manifest in force, host arch, mirror, which artifacts |
//! | `fetch` | HTTP(S) download with retries and resume, or `--from DIR` |
//! | `limits` | connect, idle, rate and size bounds; the watch that applies them |
//! | `tls` | the CA roots HTTPS trusts: built-in and the system store |
//! | `verify` | sha256 while copying, mismatch messages |
//! | `progress` | progress bar or plain lines |
//! | `tar_take`, `unpack_tgz`, `unpack_deb`, `unpack_plain` | safe extraction of only the needed binaries (the Compose plugin is a bare binary) |
//! | `store` | staging, atomic rename, records, list, remove |
//! | `distro` | Docker from the distribution's packages (`--distro`) |
//! | `lock` | one store-changing command at a time |
//! | `pins` | which instances use which version |

mod distro;
mod fetch;
mod limits;
mod lock;
mod manifest_select;
mod pins;
mod progress;
mod store;
mod tar_take;
mod tls;
mod unpack_deb;
mod unpack_plain;
mod unpack_tgz;
mod verify;

use crate::error::{Exit, Failure, Result};
use dockyard_model::manifest::{kind_name, Kind, Loaded};
use dockyard_model::{installed, paths};
use fetch::{Fetcher, Origin};
use manifest_select::Selection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use store::{Record, RecordedArtifact, State, Store};

const INSTALL_FLAGS: [&str; 15] = [
    "version",
    "distro",
    "debs",
    "docker",
    "sysbox",
    "no_sysbox",
    "compose",
    "no_compose",
    "no_docker",
    "from",
    "connect_timeout",
    "idle_timeout",
    "min_rate",
    "rate_window",
    "max_size",
];

/// `dockyard install --help`'s description (set on the subcommand in
/// main.rs, whose doc comment would otherwise replace it).
pub const LONG_ABOUT: &str =
    "Fetches the Docker static build, the sysbox package and the Compose v2 plugin pinned \
in the artifacts manifest, checks their sha256, and lays the binaries out in the versioned \
store (STORE/docker/VERSION/bin, STORE/sysbox/VERSION/bin, STORE/compose/VERSION/bin) where \
the generated units run them and `dockyard env NAME` points users' shells. \
Without arguments: the manifest's default Docker, sysbox and Compose versions (Compose only \
when the manifest names a default). Installing what is already installed and verified does \
no network I/O.\n\n\
The manifest is /etc/dockyard/artifacts.toml when it exists, else the one built into \
dockyard; its `mirror` replaces scheme and host of every URL.\n\n\
Downloads have no overall deadline: one that keeps making progress runs to its end. It gives \
up when no byte arrived for --idle-timeout, counted across reconnections (a connection silent \
for half of it is re-opened), or when, once it has run for --rate-window, fewer bytes arrived \
over the last window than --min-rate allows. \
Connection failures, early ends and HTTP 5xx are retried; an interrupted download resumes \
with a range request where the server supports it (also in the next run, after a kill), and \
the whole file is checked against its sha256. No artifact is written beyond the manifest's \
`size` for it, or beyond --max-size when it pins none; a server announcing another length \
is refused before a byte is written, and so is a download the file system has no room for. \
HTTPS trusts dockyard's built-in roots and the system CA store ($SSL_CERT_FILE and \
$SSL_CERT_DIR when set, else the distribution's bundle, e.g. \
/etc/ssl/certs/ca-certificates.crt); a plain http:// URL gets a warning. Progress: one \
updating line on a terminal, else one line per artifact when it is done.";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Docker version to install [default: the manifest's default]
    #[arg(value_name = "VERSION", conflicts_with = "docker")]
    pub version: Option<String>,

    /// Docker version to install (same as VERSION)
    #[arg(long, value_name = "VERSION")]
    pub docker: Option<String>,

    /// sysbox version to install [default: the manifest's default]
    #[arg(long, value_name = "VERSION", conflicts_with = "no_sysbox")]
    pub sysbox: Option<String>,

    /// Do not install sysbox
    #[arg(long)]
    pub no_sysbox: bool,

    /// Do not install Docker (only sysbox and Compose)
    #[arg(long, conflicts_with_all = ["version", "docker"])]
    pub no_docker: bool,

    /// Compose v2 plugin version to install [default: the manifest's default, if any]
    #[arg(long, value_name = "VERSION", conflicts_with = "no_compose")]
    pub compose: Option<String>,

    /// Do not install the Compose plugin
    #[arg(long)]
    pub no_compose: bool,

    /// Install from files in DIR (named as in the manifest's URLs) instead of downloading
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,

    /// Use this manifest instead of /etc/dockyard/artifacts.toml or the built-in one
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// The artifact store
    #[arg(long, value_name = "DIR", default_value = paths::ARTIFACTS_DIR)]
    pub store: PathBuf,

    /// Seconds to wait for each connection (suffixes ms, s, m)
    #[arg(long, value_name = "SECS", env = "DOCKYARD_CONNECT_TIMEOUT",
          default_value = limits::DEFAULT_CONNECT, value_parser = limits::parse_duration,
          help_heading = "Download limits")]
    pub connect_timeout: Duration,

    /// Give up when nothing arrived for this long, across reconnections
    #[arg(long, value_name = "SECS", env = "DOCKYARD_IDLE_TIMEOUT",
          default_value = limits::DEFAULT_IDLE, value_parser = limits::parse_duration,
          help_heading = "Download limits")]
    pub idle_timeout: Duration,

    /// Give up below this average rate in bytes/s (K, M suffixes; 0: never)
    #[arg(long, value_name = "RATE", env = "DOCKYARD_MIN_RATE",
          default_value = limits::DEFAULT_MIN_RATE, value_parser = limits::parse_bytes,
          help_heading = "Download limits")]
    pub min_rate: u64,

    /// The window --min-rate is averaged over, in seconds
    #[arg(long, value_name = "SECS", env = "DOCKYARD_RATE_WINDOW",
          default_value = limits::DEFAULT_WINDOW, value_parser = limits::parse_duration,
          help_heading = "Download limits")]
    pub rate_window: Duration,

    /// Largest artifact accepted when the manifest pins no size for it (K, M, G)
    #[arg(long, value_name = "BYTES", env = "DOCKYARD_MAX_SIZE",
          default_value = limits::DEFAULT_MAX_SIZE, value_parser = limits::parse_size,
          help_heading = "Download limits")]
    pub max_size: u64,

    /// Install Docker from the distribution's packages (docker.io, containerd, runc,
    /// tini) fetched with apt-get download, as version UPSTREAM-DISTRO
    #[arg(long, conflicts_with_all = ["version", "docker", "sysbox", "no_docker", "from", "manifest"])]
    pub distro: bool,

    /// With --distro: take the four .debs from DIR instead of apt-get download
    #[arg(long, value_name = "DIR", requires = "distro")]
    pub debs: Option<PathBuf>,

    /// List installed versions and the instances using each (confs in
    /// /etc/dockyard/instances.d or $DOCKYARD_INSTANCES_DIR)
    #[arg(long, conflicts_with_all = INSTALL_FLAGS)]
    pub list: bool,

    /// Remove an installed version (KIND/VERSION when Docker and sysbox
    /// share the number); refused while an instance pins it
    #[arg(long, value_name = "[KIND/]VERSION", conflicts_with_all = INSTALL_FLAGS, conflicts_with = "list")]
    pub remove: Option<String>,
}

pub fn run(args: &Args) -> Result<()> {
    // Needs no manifest: the packages are their own pin.
    if args.distro {
        return distro::install(&Store::new(&args.store), args.debs.as_deref());
    }
    let loaded = manifest_select::load(args.manifest.as_deref())?;
    let store = Store::new(&args.store);
    if args.list {
        return list(&store, &loaded);
    }
    if let Some(spec) = &args.remove {
        return remove(&store, &loaded, spec);
    }
    install(args, &store, &loaded)
}

fn install(args: &Args, store: &Store, loaded: &Loaded) -> Result<()> {
    let arch = manifest_select::host_arch()?;
    let defaults = &loaded.manifest.defaults;
    // Everything the manifest has to answer, before the store is touched.
    let mut selections = Vec::new();
    if !args.no_docker {
        let version = args
            .version
            .as_deref()
            .or(args.docker.as_deref())
            .unwrap_or(&defaults.docker);
        selections.push(manifest_select::select(
            loaded,
            Kind::Docker,
            version,
            &arch,
        )?);
    }
    if !args.no_sysbox {
        let version = args.sysbox.as_deref().unwrap_or(&defaults.sysbox);
        selections.push(manifest_select::select(
            loaded,
            Kind::Sysbox,
            version,
            &arch,
        )?);
    }
    if !args.no_compose {
        if let Some(version) = args.compose.as_deref().or(defaults.compose.as_deref()) {
            selections.push(manifest_select::select(
                loaded,
                Kind::Compose,
                version,
                &arch,
            )?);
        }
    }
    let origin = match &args.from {
        Some(dir) => Origin::Dir(dir.clone()),
        None => {
            let limits = limits::Limits {
                connect: args.connect_timeout,
                idle: args.idle_timeout,
                min_rate: args.min_rate,
                window: args.rate_window,
                max_size: args.max_size,
            };
            let https = selections
                .iter()
                .flat_map(|s| &s.sources)
                .any(|s| tls::is_https(&s.url));
            Origin::Network(Fetcher::new(limits, https))
        }
    };
    store.ensure()?;
    let _lock = lock::StoreLock::acquire(&store.root)?;
    // Partial downloads of what this run installs are resumed; any other
    // leftover goes.
    let keep: Vec<&str> = selections
        .iter()
        .flat_map(|s| &s.sources)
        .map(|s| s.sha256.as_str())
        .collect();
    let cleaned = store.clean_staging(&keep)?;
    if cleaned > 0 {
        eprintln!(
            "removed {cleaned} leftover staging director{} of an interrupted install",
            if cleaned == 1 { "y" } else { "ies" }
        );
    }
    let result = selections
        .iter()
        .try_for_each(|selection| install_one(store, &origin, selection, &loaded.source));
    store.tidy_partials();
    result
}

fn install_one(store: &Store, origin: &Origin, sel: &Selection, manifest: &Path) -> Result<()> {
    let kind = sel.store_kind;
    let name = format!("{} {}", kind_name(kind), sel.version);
    let dir = store.version_dir(kind, &sel.version);
    match store.state(kind, &sel.version) {
        State::Absent => {}
        State::Installed(record) => {
            let pinned: Vec<(String, String)> = sel
                .sources
                .iter()
                .map(|s| (kind_name(s.kind).to_string(), s.sha256.clone()))
                .collect();
            let recorded: Vec<(String, String)> = record
                .artifacts
                .iter()
                .map(|a| (a.kind.clone(), a.sha256.clone()))
                .collect();
            if pinned != recorded {
                return Err(Failure::new(
                    Exit::Refused,
                    format!(
                        "{name} in {} was installed from other artifacts ({}) than {} pins ({}); \
                         installed versions are never rewritten. If no instance uses it, \
                         `dockyard install --remove {}/{}` and install again",
                        dir.display(),
                        describe(&recorded),
                        manifest.display(),
                        describe(&pinned),
                        kind_name(kind),
                        sel.version
                    ),
                ));
            }
            store.verify_files(kind, &record)?;
            println!(
                "{name} is already installed and verified in {}; nothing fetched",
                dir.join("bin").display()
            );
            return Ok(());
        }
        State::Unmanaged(why) => {
            return Err(store::refuse_unmanaged(&dir, &why));
        }
    }
    let staging = store.stage(kind, &sel.version)?;
    let mut files: BTreeMap<String, verify::Copied> = BTreeMap::new();
    let mut artifacts = Vec::new();
    for source in &sel.sources {
        let download = staging.downloads.join(&source.file_name);
        let partial = store.partial_dir()?;
        origin.fetch(source, &download, manifest, &partial)?;
        if source.size.is_none() && matches!(origin, Origin::Network(_)) {
            if let Ok(meta) = std::fs::metadata(&download) {
                eprintln!(
                    "note: {} pins no size for {}; add `size = {}` beside its sha256 to bound \
                     the download by it",
                    manifest.display(),
                    source.file_name,
                    meta.len()
                );
            }
        }
        let taken = match source.kind {
            Kind::Sysbox => unpack_deb::unpack(&download, &staging.bin)?,
            Kind::Compose => {
                unpack_plain::unpack(&download, &staging.bin, unpack_plain::COMPOSE_BINARY)?
            }
            k => unpack_tgz::unpack(k, &download, &staging.bin)?,
        };
        // Free the space before the next artifact (disk-full hosts).
        std::fs::remove_file(&download).map_err(|e| Failure::io("cannot remove", &download, &e))?;
        files.extend(taken);
        artifacts.push(RecordedArtifact {
            kind: kind_name(source.kind).to_string(),
            url: source.url.clone(),
            sha256: source.sha256.clone(),
        });
    }
    let record = Record {
        kind: kind_name(kind).to_string(),
        version: sel.version.clone(),
        arch: sel.arch.clone(),
        artifacts,
        files: store::record_files(&files),
    };
    let dest = store.commit(staging, &record, kind)?;
    println!(
        "{name} installed in {}: {}",
        dest.join("bin").display(),
        files.keys().cloned().collect::<Vec<_>>().join(" ")
    );
    Ok(())
}

fn describe(artifacts: &[(String, String)]) -> String {
    artifacts
        .iter()
        .map(|(k, sha)| format!("{k} sha256 {sha}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn warn_unreadable(p: &pins::Pins) {
    for u in &p.unreadable {
        eprintln!("warning: a conf was skipped, so its pins are unknown: {u}");
    }
}

fn list(store: &Store, loaded: &Loaded) -> Result<()> {
    let pins = pins::load(&loaded.manifest);
    warn_unreadable(&pins);
    let defaults = &loaded.manifest.defaults;
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut seen: Vec<(Kind, String)> = Vec::new();
    for (kind, version, state) in store.list()? {
        let state = match state {
            State::Installed(_) => "installed".to_string(),
            State::Unmanaged(_) => "unmanaged".to_string(),
            State::Absent => continue,
        };
        rows.push(row(kind, &version, state, &pins, defaults));
        seen.push((kind, version));
    }
    // Versions instances need that are not there: their units would fail.
    let mut fixes = Vec::new();
    for (kind, map) in [(Kind::Docker, &pins.docker), (Kind::Sysbox, &pins.sysbox)] {
        for version in map.keys() {
            if !seen.contains(&(kind, version.clone())) {
                rows.push(row(kind, version, "MISSING".to_string(), &pins, defaults));
                fixes.push(install_command(kind, version));
            }
        }
    }
    if rows.is_empty() {
        println!(
            "nothing installed in {} and no instance in {}; run `dockyard install`",
            store.root.display(),
            pins.dir.display()
        );
        return Ok(());
    }
    let header = ["KIND", "VERSION", "STATE", "INSTANCES"].map(String::from);
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in std::iter::once(&header).chain(&rows) {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    if !fixes.is_empty() {
        println!(
            "MISSING versions are pinned by the instances listed and not installed: run {}",
            fixes
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// The same command the units' and status's messages give
/// (dockyard_model::installed).
fn install_command(kind: Kind, version: &str) -> String {
    let part = match kind {
        Kind::Sysbox => installed::Part::Sysbox,
        _ => installed::Part::Docker,
    };
    installed::Missing {
        part,
        version: version.to_string(),
        file: PathBuf::new(),
    }
    .install_command()
}

fn row(
    kind: Kind,
    version: &str,
    state: String,
    pins: &pins::Pins,
    defaults: &dockyard_model::manifest::Defaults,
) -> [String; 4] {
    let default = match kind {
        Kind::Sysbox => Some(&defaults.sysbox),
        Kind::Compose => defaults.compose.as_ref(),
        _ => Some(&defaults.docker),
    };
    let version = if Some(&version.to_string()) == default {
        format!("{version} (default)")
    } else {
        version.to_string()
    };
    let users = pins.users(kind, version.split(' ').next().unwrap_or(""));
    let users = if users.is_empty() {
        "-".to_string()
    } else {
        users.join(",")
    };
    [kind_name(kind).to_string(), version, state, users]
}

fn remove(store: &Store, loaded: &Loaded, spec: &str) -> Result<()> {
    let (kinds, version): (Vec<Kind>, &str) = match spec.split_once('/') {
        Some(("docker", v)) => (vec![Kind::Docker], v),
        Some(("sysbox", v)) => (vec![Kind::Sysbox], v),
        Some(("compose", v)) => (vec![Kind::Compose], v),
        Some((k, _)) => {
            return Err(Failure::new(
                Exit::Usage,
                format!(
                    "--remove {spec}: unknown kind {k:?}; use docker/VERSION, sysbox/VERSION or \
                     compose/VERSION"
                ),
            ))
        }
        None => (store::STORE_KINDS.to_vec(), spec),
    };
    if version.is_empty() || version.starts_with('.') || version.contains('/') {
        return Err(Failure::new(
            Exit::Usage,
            format!("--remove {spec}: not a version"),
        ));
    }
    if !store.root.is_dir() {
        return Err(Failure::failed(format!(
            "nothing is installed: {} does not exist",
            store.root.display()
        )));
    }
    let _lock = lock::StoreLock::acquire(&store.root)?;
    let found: Vec<Kind> = kinds
        .into_iter()
        .filter(|&k| store.version_dir(k, version).is_dir())
        .collect();
    let kind = match found.as_slice() {
        [k] => *k,
        [] => {
            return Err(Failure::failed(format!(
                "{spec} is not installed in {} (see dockyard install --list)",
                store.root.display()
            )))
        }
        several => {
            let which: Vec<String> = several
                .iter()
                .map(|k| format!("--remove {}/{version}", kind_name(*k)))
                .collect();
            return Err(Failure::new(
                Exit::Usage,
                format!(
                    "{version} is installed as more than one kind; say which: {}",
                    which.join(" or ")
                ),
            ));
        }
    };
    let pins = pins::load(&loaded.manifest);
    warn_unreadable(&pins);
    let users = pins.users(kind, version);
    if !users.is_empty() {
        let how = match kind {
            Kind::Sysbox => {
                "switch them to Runtime=runc or pin another sysbox default in the manifest"
            }
            _ => "give them another DockerVersion= (or change the manifest's default)",
        };
        return Err(Failure::new(
            Exit::Refused,
            format!(
                "refusing to remove {} {version}: instance{} {} use{} it (confs in {}); {how}, \
                 restart them, then remove it",
                kind_name(kind),
                if users.len() == 1 { "" } else { "s" },
                users.join(", "),
                if users.len() == 1 { "s" } else { "" },
                pins.dir.display()
            ),
        ));
    }
    store.clean_staging(&[])?;
    store.remove(kind, version)?;
    println!(
        "removed {} {version} from {}",
        kind_name(kind),
        store.root.display()
    );
    Ok(())
}

//! Whether the binaries an instance runs are in the artifact store (and,
//! for Rootless=yes, on the host), and what to run when they are not. One
//! answer, with one wording, for every place an admin looks: `dockyard
//! check`, `new`, `status`, and the instance unit's own first step
//! (`dockyard-prepare installed`), so a missing sysbox or Docker version
//! is never only "A dependency job failed".
//!
//! A rootless instance runs `rootlesskit` from its Docker version's store
//! directory (Docker's rootless extras, or the distribution's package laid
//! out by `dockyard install --distro`), and from the host: `slirp4netns`
//! for its network (which opens `/dev/net/tun`), and `newuidmap` and
//! `newgidmap`, which must be setuid root (or carry file capabilities) to
//! map the instance user's subordinate ids.

use crate::paths;
/// What a store version's directory name may be (also DockerVersion=).
pub use crate::value::check_version;
use std::fmt;
use std::path::{Path, PathBuf};

/// The files a Docker version's units start (the rest of the build is
/// found through `PATH`).
pub const DOCKER_NEEDS: [&str; 2] = ["dockerd", "containerd"];
/// What Runtime=sysbox-runc needs: the runtime dockerd is given and the
/// two shared daemons.
pub const SYSBOX_NEEDS: [&str; 3] = ["sysbox-runc", "sysbox-mgr", "sysbox-fs"];

/// What Rootless=yes runs from the Docker version's store directory.
pub const ROOTLESS_NEEDS: [&str; 1] = ["rootlesskit"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Docker,
    Sysbox,
    /// The Docker version is installed, but without rootlesskit.
    Rootlesskit,
    /// A host program a rootless instance runs is not on `PATH`.
    Program(Program, Distro),
    /// newuidmap or newgidmap (at `file`) is neither setuid root nor
    /// given file capabilities: it cannot map the subordinate ids.
    Unprivileged(Program, Distro),
    /// `/dev/net/tun` (at `file`) is missing: slirp4netns needs it.
    Tun,
}

/// The host programs a rootless instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Slirp4netns,
    Newuidmap,
    Newgidmap,
}

impl Program {
    pub const ALL: [Program; 3] = [Program::Slirp4netns, Program::Newuidmap, Program::Newgidmap];

    pub fn name(self) -> &'static str {
        match self {
            Program::Slirp4netns => "slirp4netns",
            Program::Newuidmap => "newuidmap",
            Program::Newgidmap => "newgidmap",
        }
    }

    /// The package that installs it on `distro` (Debian splits the id
    /// mappers out of `passwd` into `uidmap`; Fedora keeps them in
    /// `shadow-utils`).
    pub fn package(self, distro: Distro) -> &'static str {
        match (self, distro) {
            (Program::Slirp4netns, _) => "slirp4netns",
            (_, Distro::Fedora) => "shadow-utils",
            _ => "uidmap",
        }
    }

    /// The id mappers only work setuid root or with file capabilities:
    /// they write another process's uid_map, which an unprivileged user
    /// may not.
    fn must_be_privileged(self) -> bool {
        self != Program::Slirp4netns
    }

    fn what_for(self) -> &'static str {
        match self {
            Program::Slirp4netns => "for the instance's network",
            _ => "to map the instance user's subordinate ids",
        }
    }
}

/// What kind of distribution the host is, for the package manager a
/// message names; `Unknown` names both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    Debian,
    Fedora,
    Unknown,
}

impl Distro {
    /// From os-release(5) text: `ID=` and `ID_LIKE=` (`ubuntu` is
    /// `ID_LIKE=debian`, Rocky and Alma say `rhel centos fedora`).
    pub fn from_os_release(text: &str) -> Distro {
        let mut words = Vec::new();
        for line in text.lines() {
            if let Some(v) = line
                .strip_prefix("ID=")
                .or_else(|| line.strip_prefix("ID_LIKE="))
            {
                words.extend(v.trim().trim_matches('"').split_whitespace());
            }
        }
        if words.iter().any(|w| matches!(*w, "debian" | "ubuntu")) {
            Distro::Debian
        } else if words
            .iter()
            .any(|w| matches!(*w, "fedora" | "rhel" | "centos"))
        {
            Distro::Fedora
        } else {
            Distro::Unknown
        }
    }

    /// This host's ([`paths::OS_RELEASE`]; unreadable means `Unknown`).
    pub fn host() -> Distro {
        std::fs::read_to_string(paths::OS_RELEASE)
            .map(|t| Distro::from_os_release(&t))
            .unwrap_or(Distro::Unknown)
    }

    /// The command that installs `program`'s package (`reinstall` for a
    /// package that is there but broken), in backquotes; both families'
    /// when the host is neither.
    fn install_fix(self, program: Program, reinstall: bool) -> String {
        let package = program.package(Distro::Debian);
        let apt = if reinstall {
            format!("`apt-get install --reinstall {package}`")
        } else {
            format!("`apt-get install {package}`")
        };
        let package = program.package(Distro::Fedora);
        let dnf = if reinstall {
            format!("`dnf reinstall {package}`")
        } else {
            format!("`dnf install {package}`")
        };
        match self {
            Distro::Debian => apt,
            Distro::Fedora => dnf,
            Distro::Unknown => format!("{apt} (Debian, Ubuntu) or {dnf} (Fedora, RHEL)"),
        }
    }
}

/// A version the instance needs that the store lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub part: Part,
    pub version: String,
    /// The first needed file that is not an executable file.
    pub file: PathBuf,
}

impl Missing {
    /// "sysbox 0.6.7 is not installed (FILE is missing)", without the fix.
    pub fn what(&self) -> String {
        let file = self.file.display();
        match self.part {
            Part::Docker => format!(
                "Docker {} is not installed ({file} is missing)",
                self.version
            ),
            Part::Sysbox => format!(
                "sysbox {} is not installed ({file} is missing)",
                self.version
            ),
            Part::Rootlesskit => format!(
                "Docker {} is installed without rootlesskit ({file} is missing)",
                self.version
            ),
            Part::Program(p, _) => format!("{} is not installed (not found on PATH)", p.name()),
            Part::Unprivileged(_, _) => {
                format!("{file} is neither setuid root nor given file capabilities")
            }
            Part::Tun => format!("{file} does not exist"),
        }
    }

    /// The command that installs it, as a shell command line.
    pub fn install_command(&self) -> String {
        match self.part {
            Part::Docker => format!("dockyard install {}", self.version),
            Part::Sysbox => format!("dockyard install --no-docker --sysbox {}", self.version),
            _ => self.fix().replace('`', ""),
        }
    }

    /// What to run, each command in backquotes.
    pub fn fix(&self) -> String {
        match self.part {
            Part::Docker | Part::Sysbox => format!("`{}`", self.install_command()),
            // Installed versions are never rewritten: the version goes and
            // comes back with its rootless extras.
            Part::Rootlesskit => format!(
                "`dockyard install --remove docker/{v}` and `dockyard install {v}`",
                v = self.version
            ),
            Part::Program(p, distro) => distro.install_fix(p, false),
            Part::Unprivileged(p, distro) => distro.install_fix(p, true),
            Part::Tun => "`modprobe tun`".to_string(),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.part {
            Part::Docker => write!(f, "{}: run `{}`", self.what(), self.install_command()),
            Part::Sysbox => write!(
                f,
                "{}, and Runtime=sysbox-runc (the default) needs it: run `{}`, or set \
                 Runtime=runc in the conf",
                self.what(),
                self.install_command()
            ),
            Part::Rootlesskit => write!(
                f,
                "{}, and Rootless=yes runs it from there: while no instance runs that version, \
                 run {} (with the manifest's docker-rootless-extras for it; for a Docker from \
                 the distribution's packages `dockyard install --distro` takes its rootlesskit), \
                 or set DockerVersion= to a version that has it",
                self.what(),
                self.fix()
            ),
            Part::Program(p, _) => write!(
                f,
                "{}, and Rootless=yes needs it {}: run {}",
                self.what(),
                p.what_for(),
                self.fix()
            ),
            Part::Unprivileged(p, _) => write!(
                f,
                "{}, so Rootless=yes cannot use it {}: run {}",
                self.what(),
                p.what_for(),
                self.fix()
            ),
            Part::Tun => write!(
                f,
                "{}, and slirp4netns needs it for a rootless instance's network: run {} \
                 (and list tun in /etc/modules-load.d/ to keep it after a reboot)",
                self.what(),
                self.fix()
            ),
        }
    }
}

/// `store` holds `docker/VERSION/bin` and `sysbox/VERSION/bin`
/// ([`paths::ARTIFACTS_DIR`] on a host; a fixture tree in tests).
pub fn docker_in(store: &Path, version: &str) -> Option<Missing> {
    first_missing(store, "docker", version, &DOCKER_NEEDS).map(|file| Missing {
        part: Part::Docker,
        version: version.to_string(),
        file,
    })
}

pub fn sysbox_in(store: &Path, version: &str) -> Option<Missing> {
    first_missing(store, "sysbox", version, &SYSBOX_NEEDS).map(|file| Missing {
        part: Part::Sysbox,
        version: version.to_string(),
        file,
    })
}

/// rootlesskit in a Docker version's store directory. Only said of an
/// installed Docker: `dockyard install VERSION` lays the rootless extras
/// out with it, so a missing Docker's one fix covers both.
pub fn rootless_in(store: &Path, version: &str) -> Option<Missing> {
    if docker_in(store, version).is_some() {
        return None;
    }
    first_missing(store, "docker", version, &ROOTLESS_NEEDS).map(|file| Missing {
        part: Part::Rootlesskit,
        version: version.to_string(),
        file,
    })
}

/// Finds a program by name, as the caller searches (`None`: not found).
pub type FindProgram = Box<dyn Fn(&str) -> Option<PathBuf>>;

/// Where the host's programs and devices are looked for: the live host
/// ([`Host::live`]) or a stand-in in tests.
pub struct Host {
    pub find: FindProgram,
    pub tun: PathBuf,
    pub distro: Distro,
}

impl Host {
    /// The helpers search as units do ([`paths::Search::PathOrDefault`]),
    /// the CLI as an admin's shell does.
    pub fn live(search: paths::Search) -> Host {
        Host {
            find: Box::new(move |name| paths::find_program(name, search).ok()),
            tun: paths::dev_net_tun(),
            distro: Distro::host(),
        }
    }
}

/// What a rootless instance needs from the host that `host` lacks.
pub fn rootless_host(host: &Host) -> Vec<Missing> {
    let mut out = Vec::new();
    for p in Program::ALL {
        match (host.find)(p.name()) {
            None => out.push(Missing {
                part: Part::Program(p, host.distro),
                version: String::new(),
                file: PathBuf::from(p.name()),
            }),
            Some(path) if p.must_be_privileged() && !is_privileged(&path) => out.push(Missing {
                part: Part::Unprivileged(p, host.distro),
                version: String::new(),
                file: path,
            }),
            Some(_) => {}
        }
    }
    // A character device; anything else (or nothing) is no tun.
    let tun_ok = std::fs::metadata(&host.tun).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_char_device()
    });
    if !tun_ok {
        out.push(Missing {
            part: Part::Tun,
            version: String::new(),
            file: host.tun.clone(),
        });
    }
    out
}

/// Setuid root, or carrying file capabilities (Fedora ships newuidmap
/// with `cap_setuid=ep` instead of the setuid bit). Follows symlinks, as
/// exec does.
fn is_privileged(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(path) else {
        return false;
    };
    if m.uid() == 0 && m.mode() & 0o4000 != 0 {
        return true;
    }
    has_file_capabilities(path)
}

fn has_file_capabilities(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated and outlive the call; a
    // null buffer of size 0 asks only for the attribute's size.
    let size = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    size > 0
}

/// What `inst` needs that `store` lacks: its Docker version, and the
/// host's sysbox version when it runs sysbox-runc; for Rootless=yes also
/// rootlesskit and what the host must have (searched as an admin's shell
/// does: the CLI's callers).
pub fn missing_for(
    store: &Path,
    inst: &crate::Instance,
    sysbox_version: Option<&str>,
) -> Vec<Missing> {
    let host = inst
        .rootless
        .then(|| Host::live(paths::Search::PathThenAdminDirs));
    missing_with(store, inst, sysbox_version, host.as_ref())
}

/// [`missing_for`] with the host given (`None`: not looked at).
pub fn missing_with(
    store: &Path,
    inst: &crate::Instance,
    sysbox_version: Option<&str>,
    host: Option<&Host>,
) -> Vec<Missing> {
    let mut out: Vec<Missing> = docker_in(store, &inst.docker_version).into_iter().collect();
    if inst.uses_sysbox() {
        out.extend(sysbox_version.and_then(|v| sysbox_in(store, v)));
    }
    if inst.rootless {
        out.extend(rootless_in(store, &inst.docker_version));
        if let Some(host) = host {
            out.extend(rootless_host(host));
        }
    }
    out
}

/// Moves the store these checks look in (tests); the units always run
/// from [`paths::ARTIFACTS_DIR`].
pub const STORE_ENV: &str = "DOCKYARD_ARTIFACTS_DIR";

/// The store on this host.
pub fn store() -> PathBuf {
    paths::overridable(STORE_ENV, paths::ARTIFACTS_DIR)
}

fn first_missing(store: &Path, kind: &str, version: &str, needs: &[&str]) -> Option<PathBuf> {
    let bin = store.join(kind).join(version).join("bin");
    needs
        .iter()
        .map(|n| bin.join(n))
        .find(|p| !is_executable_file(p))
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn put(store: &Path, rel: &str, mode: u32) {
        let p = store.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"#!/bin/true\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_missing_sysbox_names_the_file_and_both_fixes() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "sysbox/0.6.7/bin/sysbox-runc", 0o755);
        let m = sysbox_in(dir.path(), "0.6.7").expect("sysbox-mgr is missing");
        assert_eq!(m.file, dir.path().join("sysbox/0.6.7/bin/sysbox-mgr"));
        let text = m.to_string();
        assert!(
            text.starts_with("sysbox 0.6.7 is not installed ("),
            "{text}"
        );
        assert!(
            text.contains("run `dockyard install --no-docker --sysbox 0.6.7`, or set Runtime=runc"),
            "{text}"
        );
    }

    #[test]
    fn a_file_that_is_not_executable_counts_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "docker/27.3.1/bin/dockerd", 0o644);
        put(dir.path(), "docker/27.3.1/bin/containerd", 0o755);
        let m = docker_in(dir.path(), "27.3.1").expect("dockerd is not executable");
        assert_eq!(
            m.to_string(),
            format!(
                "Docker 27.3.1 is not installed ({}/docker/27.3.1/bin/dockerd is missing): run `dockyard install 27.3.1`",
                dir.path().display()
            )
        );
        put(dir.path(), "docker/27.3.1/bin/dockerd", 0o755);
        assert_eq!(docker_in(dir.path(), "27.3.1"), None);
    }

    fn stand_in(found: Vec<(&'static str, PathBuf)>, tun: PathBuf) -> Host {
        Host {
            find: Box::new(move |name| {
                found
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, p)| p.clone())
            }),
            tun,
            distro: Distro::Debian,
        }
    }

    #[test]
    fn the_host_family_picks_the_package_manager() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n";
        let ubuntu = "ID=ubuntu\nID_LIKE=debian\n";
        let rocky = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";
        assert_eq!(Distro::from_os_release(debian), Distro::Debian);
        assert_eq!(Distro::from_os_release(ubuntu), Distro::Debian);
        assert_eq!(Distro::from_os_release(rocky), Distro::Fedora);
        assert_eq!(Distro::from_os_release("ID=arch\n"), Distro::Unknown);
        let m = |d| Missing {
            part: Part::Program(Program::Newuidmap, d),
            version: String::new(),
            file: PathBuf::from("newuidmap"),
        };
        assert_eq!(
            m(Distro::Debian).to_string(),
            "newuidmap is not installed (not found on PATH), and Rootless=yes needs it to map \
             the instance user's subordinate ids: run `apt-get install uidmap`"
        );
        assert!(m(Distro::Fedora)
            .to_string()
            .ends_with("run `dnf install shadow-utils`"));
        assert!(m(Distro::Unknown).to_string().ends_with(
            "run `apt-get install uidmap` (Debian, Ubuntu) or `dnf install shadow-utils` (Fedora, RHEL)"
        ));
        assert_eq!(
            m(Distro::Debian).install_command(),
            "apt-get install uidmap"
        );
    }

    #[test]
    fn a_rootless_host_needs_its_programs_privileged_and_tun() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing found, no tun: each piece once, in a fixed order.
        let host = stand_in(vec![], dir.path().join("tun"));
        let parts: Vec<Part> = rootless_host(&host).iter().map(|m| m.part).collect();
        assert_eq!(
            parts,
            [
                Part::Program(Program::Slirp4netns, Distro::Debian),
                Part::Program(Program::Newuidmap, Distro::Debian),
                Part::Program(Program::Newgidmap, Distro::Debian),
                Part::Tun
            ]
        );
        let tun = rootless_host(&host).pop().unwrap().to_string();
        assert!(tun.ends_with("run `modprobe tun` (and list tun in /etc/modules-load.d/ to keep it after a reboot)"), "{tun}");
        // Found, but the id mappers are plain executables: not usable. A
        // regular file is no tun either.
        put(dir.path(), "bin/slirp4netns", 0o755);
        put(dir.path(), "bin/newuidmap", 0o755);
        put(dir.path(), "bin/newgidmap", 0o755);
        put(dir.path(), "tun", 0o644);
        let bin = dir.path().join("bin");
        let found: Vec<(&str, PathBuf)> = ["slirp4netns", "newuidmap", "newgidmap"]
            .into_iter()
            .map(|n| (n, bin.join(n)))
            .collect();
        let host = stand_in(found.clone(), dir.path().join("tun"));
        let missing = rootless_host(&host);
        let parts: Vec<Part> = missing.iter().map(|m| m.part).collect();
        assert_eq!(
            parts,
            [
                Part::Unprivileged(Program::Newuidmap, Distro::Debian),
                Part::Unprivileged(Program::Newgidmap, Distro::Debian),
                Part::Tun
            ]
        );
        assert_eq!(
            missing[0].to_string(),
            format!(
                "{} is neither setuid root nor given file capabilities, so Rootless=yes cannot \
                 use it to map the instance user's subordinate ids: run `apt-get install \
                 --reinstall uidmap`",
                bin.join("newuidmap").display()
            )
        );
        // Setuid root (only root can make one owned by root): usable; the
        // host's own character device stands in for tun.
        if unsafe { libc::geteuid() } == 0 {
            for n in ["newuidmap", "newgidmap"] {
                std::fs::set_permissions(bin.join(n), std::fs::Permissions::from_mode(0o4755))
                    .unwrap();
            }
            let host = Host {
                tun: PathBuf::from("/dev/null"),
                ..stand_in(found, PathBuf::new())
            };
            assert_eq!(rootless_host(&host), vec![]);
        }
    }

    #[test]
    fn rootlesskit_is_named_only_beside_an_installed_docker() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(rootless_in(dir.path(), "27.3.1"), None);
        put(dir.path(), "docker/27.3.1/bin/dockerd", 0o755);
        put(dir.path(), "docker/27.3.1/bin/containerd", 0o755);
        let m = rootless_in(dir.path(), "27.3.1").expect("no rootlesskit");
        assert_eq!(m.file, dir.path().join("docker/27.3.1/bin/rootlesskit"));
        let text = m.to_string();
        assert!(
            text.contains(
                "run `dockyard install --remove docker/27.3.1` and `dockyard install 27.3.1`"
            ),
            "{text}"
        );
        put(dir.path(), "docker/27.3.1/bin/rootlesskit", 0o755);
        assert_eq!(rootless_in(dir.path(), "27.3.1"), None);
    }
}

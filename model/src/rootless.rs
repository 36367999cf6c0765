//! What Rootless=yes changes that more than one command says: what an
//! instance's group grants (`dockyard status`, `new --tenant`), who owns
//! its socket (`status`, `verify`), and the conf settings that do nothing
//! or harm on a rootless instance (`dockyard check`'s warnings).

use crate::diag::{Diagnostic, Severity};
use crate::instance::Instance;
use crate::keys;
use crate::name::InstanceName;

/// Docker's own words on why a rootful daemon's socket is root.
pub const DOCKER_ATTACK_SURFACE: &str =
    "https://docs.docker.com/engine/security/#docker-daemon-attack-surface";

/// `rootful` or `rootless`, as status prints the mode.
pub fn mode(rootless: bool) -> &'static str {
    if rootless {
        "rootless"
    } else {
        "rootful"
    }
}

/// What membership in the instance's group `NAME_docker` grants, in a
/// few words (a table's cell): its socket reaches a dockerd running as
/// root, or as the instance's user.
pub fn group_grants_brief(name: &InstanceName, rootless: bool) -> String {
    if rootless {
        format!("what user {} can do", name.account())
    } else {
        "root on the host".to_string()
    }
}

/// [`group_grants_brief`], with what that means for a rootless one.
pub fn group_grants(name: &InstanceName, rootless: bool) -> String {
    let brief = group_grants_brief(name, rootless);
    if rootless {
        format!("{brief} (its socket, its own files; no host root)")
    } else {
        brief
    }
}

/// Why a rootful instance's group is root, for a refusal or a warning.
pub fn why_root() -> String {
    format!(
        "a member can bind-mount / or the host Docker's socket into a container \
         ({DOCKER_ATTACK_SURFACE})"
    )
}

/// Who owns the instance's socket: root for a rootful dockerd (its group
/// is the instance's), the instance's user for a rootless one.
pub fn socket_owner(name: &InstanceName, rootless: bool) -> String {
    if rootless {
        name.account()
    } else {
        "root".to_string()
    }
}

/// `[Daemon]` keys a rootless dockerd cannot take, and why. A warning,
/// not a refusal: the conf is valid, the daemon is what fails.
/// (`cgroup-parent` and `exec-opts` are Dockyard's on every instance and
/// refused already.)
pub const DAEMON_KEYS: &[(&str, &str)] = &[
    (
        "userns-remap",
        "a rootless dockerd already runs in a user namespace, with only the instance's 65536 \
         subordinate ids; remapping again needs ids it does not have, and dockerd fails to \
         start (moby/moby#48521)",
    ),
    (
        "storage-driver",
        "a rootless dockerd can use only overlay2 (kernel 5.11 or later, or Debian's and \
         Ubuntu's kernels), fuse-overlayfs, btrfs and vfs; with another one it fails to start",
    ),
];

/// Storage drivers a rootless dockerd can use (Docker's rootless docs).
const ROOTLESS_STORAGE_DRIVERS: [&str; 4] = ["overlay2", "fuse-overlayfs", "btrfs", "vfs"];

/// What `dockyard check` warns about on a rootless instance: `AllowFrom=`
/// (nothing reaches into its networks but its published ports) and
/// `[Daemon]` keys a rootless dockerd cannot take. Nothing for a rootful
/// one.
pub fn warnings(inst: &Instance) -> Vec<Diagnostic> {
    if !inst.rootless {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(first) = inst.allow_from.first() {
        out.push(Diagnostic::at(
            &first.origin,
            Severity::Warning,
            format!(
                "{}= has no effect on rootless instance {}: nothing reaches into a rootless \
                 instance's networks but its published ports (its own connections to another \
                 instance are admitted by THAT instance's {}=); remove the line",
                keys::ALLOW_FROM.name,
                inst.name,
                keys::ALLOW_FROM.name,
            ),
        ));
    }
    for opt in &inst.daemon_options {
        let Some((_, why)) = DAEMON_KEYS.iter().find(|(k, _)| *k == opt.key) else {
            continue;
        };
        if opt.key == "storage-driver"
            && ROOTLESS_STORAGE_DRIVERS
                .iter()
                .any(|d| opt.json == format!("\"{d}\""))
        {
            continue;
        }
        out.push(Diagnostic::at(
            &opt.origin,
            Severity::Warning,
            format!(
                "[Daemon] {}={} on rootless instance {}: {why}; remove the line",
                opt.key, opt.json, inst.name
            ),
        ));
    }
    // In the order of the files' lines ([Daemon] keys come sorted by name).
    out.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::VersionDefaults;
    use std::path::Path;

    fn build(text: &str) -> Instance {
        let path = Path::new("/c/dy1.conf");
        let (doc, _) = crate::ini::parse(path, text);
        let (inst, diags) = crate::instance::build(
            InstanceName::parse("dy1").expect("name"),
            path,
            vec![],
            &[doc],
            &VersionDefaults {
                docker: Ok("29.2.1".into()),
                known_docker: None,
            },
        );
        inst.unwrap_or_else(|| panic!("{diags:?}"))
    }

    const BASE: &str = "[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\n";

    #[test]
    fn a_rootless_instance_is_warned_about_allow_from_and_daemon_keys() {
        let text = format!(
            "{BASE}Rootless=yes\n[Network]\nAllowFrom=10.1.0.0/16\n[Daemon]\nuserns-remap=default\nstorage-driver=devicemapper\nlog-driver=journald\n"
        );
        let w: Vec<String> = warnings(&build(&text))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].starts_with(
                "/c/dy1.conf:6: warning: AllowFrom= has no effect on rootless instance dy1"
            ),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("/c/dy1.conf:8: warning: [Daemon] userns-remap=\"default\" on rootless instance dy1"),
            "{w:?}"
        );
        assert!(w[2].contains("storage-driver=\"devicemapper\""), "{w:?}");
        // Drivers it can use, and a rootful instance: nothing.
        let ok = format!("{BASE}Rootless=yes\n[Daemon]\nstorage-driver=fuse-overlayfs\n");
        assert!(warnings(&build(&ok)).is_empty());
        let rootful =
            format!("{BASE}[Network]\nAllowFrom=10.1.0.0/16\n[Daemon]\nuserns-remap=default\n");
        assert!(warnings(&build(&rootful)).is_empty());
    }

    #[test]
    fn what_the_group_grants_and_who_owns_the_socket() {
        let n = InstanceName::parse("dy1").expect("name");
        assert_eq!(group_grants(&n, false), "root on the host");
        assert_eq!(
            group_grants(&n, true),
            "what user dy1_docker can do (its socket, its own files; no host root)"
        );
        assert_eq!(socket_owner(&n, false), "root");
        assert_eq!(socket_owner(&n, true), "dy1_docker");
        assert_eq!((mode(false), mode(true)), ("rootful", "rootless"));
    }
}

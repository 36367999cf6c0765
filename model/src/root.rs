//! Validation of an instance's `Root=`: the directory that holds its data
//! and its socket. A wrong root can make dockerd write over system files or
//! make `dockyard destroy` delete them, so the rules are strict.

use crate::paths;

/// Unix socket paths hold 107 bytes plus a NUL; the socket is
/// `Root/docker.sock`.
pub const MAX_ROOT_LEN: usize = 107 - "/docker.sock".len();

/// Directories a root may neither be nor contain.
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/local",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/spool",
    "/var/tmp",
    "/var/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    paths::STATE_DIR,
    paths::ARTIFACTS_DIR,
    paths::SYSBOX_DATA_DIR,
];

/// Trees a root may not live in: virtual, volatile, read-only or owned by
/// the OS or by another container engine.
const FORBIDDEN_TREES: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/var/run",
    "/var/tmp",
    "/var/log",
    "/var/cache",
    "/var/lib/docker",
    "/var/lib/containerd",
    paths::ARTIFACTS_DIR,
    paths::SYSBOX_DATA_DIR,
];

pub fn default_root(name: &str) -> String {
    format!("{}/{name}", paths::STATE_DIR)
}

/// Checks a `Root=` value; the returned error is one sentence with the fix.
pub fn check_root(root: &str) -> Result<(), String> {
    if !root.starts_with('/') {
        return Err(format!(
            "Root={root:?} is not an absolute path; write e.g. /srv/dy1"
        ));
    }
    if let Some(bad) = root
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')))
    {
        return Err(format!(
            "Root={root:?} contains {bad:?}; use only letters, digits, '/', '.', '_' and '-'{}",
            crate::network::comment_hint(root)
        ));
    }
    if root.len() > 1 && root.ends_with('/') {
        return Err(format!("Root={root:?} ends with '/'; write it without"));
    }
    if root.contains("//") {
        return Err(format!(
            "Root={root:?} contains an empty path component (//)"
        ));
    }
    if root.split('/').any(|c| c == "." || c == "..") {
        return Err(format!(
            "Root={root:?} contains a '.' or '..' component; write the plain absolute path"
        ));
    }
    if root.len() > MAX_ROOT_LEN {
        return Err(format!(
            "Root={root:?} is {} bytes; at most {MAX_ROOT_LEN} fit, because {root}/docker.sock must fit a unix socket path (107 bytes)",
            root.len()
        ));
    }
    if root == "/" {
        return Err("Root=/ would put an instance's data over the whole system".into());
    }
    if let Some(dir) = SYSTEM_DIRS.iter().find(|d| is_same_or_ancestor(root, d)) {
        return Err(if *dir == root {
            format!("Root={root} is a system directory; give the instance a directory of its own, e.g. /srv/NAME, or leave Root= unset for /var/lib/dockyard/NAME")
        } else {
            format!("Root={root} contains the system directory {dir}; use a directory of its own, e.g. /srv/NAME")
        });
    }
    if let Some(tree) = FORBIDDEN_TREES.iter().find(|t| is_inside(root, t)) {
        return Err(format!(
            "Root={root} lies inside {tree}, which is {}; use a directory on persistent storage such as /srv/NAME",
            describe_tree(tree)
        ));
    }
    Ok(())
}

fn describe_tree(tree: &str) -> &'static str {
    match tree {
        "/proc" | "/sys" | "/dev" => "a virtual file system",
        "/run" | "/tmp" | "/var/run" | "/var/tmp" => "volatile or shared scratch space",
        "/var/lib/docker" | "/var/lib/containerd" => "the host Docker's own state",
        t if t == paths::ARTIFACTS_DIR || t == paths::SYSBOX_DATA_DIR => "Dockyard's own state",
        _ => "owned by the operating system",
    }
}

/// `a` equals `b` or is one of its ancestors.
pub fn is_same_or_ancestor(a: &str, b: &str) -> bool {
    a == b || is_inside(b, a)
}

/// `path` lies strictly below `dir`.
pub fn is_inside(path: &str, dir: &str) -> bool {
    path.len() > dir.len()
        && path.starts_with(dir)
        && (dir == "/" || path.as_bytes()[dir.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_roots() {
        for r in [
            "/dy1",
            "/srv/dy1",
            "/var/lib/dockyard/dy1",
            "/home/alice/dy-1.d",
            "/data/x_y",
        ] {
            assert!(check_root(r).is_ok(), "{r}: {:?}", check_root(r));
        }
    }

    #[test]
    fn refuses_dangerous_roots() {
        for (r, why) in [
            ("dy1", "absolute"),
            ("/", "whole system"),
            ("/usr", "system directory"),
            ("/var", "system directory"),
            ("/var/lib", "system directory"),
            ("/var/lib/dockyard", "system directory"),
            ("/srv/../etc", "'..'"),
            ("/srv/./x", "'.'"),
            ("/srv//x", "empty path"),
            ("/srv/x/", "ends with"),
            ("/srv/my dir", "contains ' '"),
            ("/srv/$x", "contains '$'"),
            ("/srv/%n", "contains '%'"),
            ("/srv/\"x", "contains '\"'"),
            ("/srv/é", "contains 'é'"),
            ("/usr/local/dy1", "inside /usr"),
            ("/proc/x", "virtual"),
            ("/run/dy1", "volatile"),
            ("/var/lib/docker/x", "host Docker"),
            ("/var/lib/dockyard/artifacts/x", "Dockyard's own"),
            ("/dy1 # comment", "comments must be on a line"),
        ] {
            let err = check_root(r).expect_err(r);
            assert!(err.contains(why), "{r}: {err}");
        }
        let long = format!("/{}", "a".repeat(MAX_ROOT_LEN));
        assert!(check_root(&long).unwrap_err().contains("unix socket"));
        let fits = format!("/{}", "a".repeat(MAX_ROOT_LEN - 1));
        assert!(check_root(&fits).is_ok());
    }

    #[test]
    fn inside_respects_components() {
        assert!(is_inside("/srv/a/b", "/srv/a"));
        assert!(!is_inside("/srv/ab", "/srv/a"));
        assert!(!is_inside("/srv/a", "/srv/a"));
        assert!(is_same_or_ancestor("/srv/a", "/srv/a"));
    }
}

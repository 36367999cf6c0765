//! Parsing `/proc/self/mountinfo`: which mounts lie below a directory,
//! deepest first. `dockyard-mounts` reads the file and detaches them for
//! `dockyard-prepare down` (leftover dockerd mounts) and `dockyard destroy`
//! (stale mounts under an instance root).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    pub mount_point: PathBuf,
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 3 < field.len() {
            let oct = &field[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// Parse mountinfo(5): `id parent maj:min root mount_point options ...`.
/// Malformed lines are skipped rather than failing the whole teardown.
pub fn parse_mountinfo(text: &[u8]) -> Vec<Mount> {
    text.split(|b| *b == b'\n')
        .filter_map(|line| {
            let mut f = line.split(|b| *b == b' ');
            let id = std::str::from_utf8(f.next()?).ok()?.parse().ok()?;
            let _parent = f.next()?;
            let _dev = f.next()?;
            let _root = f.next()?;
            let mp = unescape(f.next()?);
            Some(Mount {
                id,
                mount_point: PathBuf::from(OsStr::from_bytes(&mp)),
            })
        })
        .collect()
}

/// Mounts strictly below `base` (never `base` itself: that may be the admin's
/// own filesystem for the data root), deepest first; for stacked mounts on
/// one path, the newest (highest id) first.
pub fn below(mounts: &[Mount], base: &Path) -> Vec<Mount> {
    let mut v: Vec<Mount> = mounts
        .iter()
        .filter(|m| m.mount_point != base && m.mount_point.starts_with(base))
        .cloned()
        .collect();
    v.sort_by(|a, b| {
        let depth = |m: &Mount| m.mount_point.components().count();
        depth(b).cmp(&depth(a)).then(b.id.cmp(&a.id))
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /run rw,nosuid shared:5 - tmpfs tmpfs rw
101 30 0:4 net:[4026532] /run/dy1_docker/netns/abc rw shared:7 - nsfs nsfs rw
102 22 0:50 / /dy1/docker/overlay2/l1/merged rw,relatime - overlay overlay rw
103 102 0:51 / /dy1/docker/overlay2/l1/merged/dev/shm rw - tmpfs shm rw
104 22 0:52 / /dy1/docker/containers/with\\040space/mounts/shm rw - tmpfs shm rw
105 22 0:53 / /dy1/docker rw - ext4 /dev/sdb1 rw
106 22 0:54 / /dy10/docker/overlay2/x/merged rw - overlay overlay rw
107 22 0:55 / /dy1/docker/overlay2/l1/merged rw - overlay overlay rw
garbage line
";

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(br"a\040b"), b"a b");
        assert_eq!(unescape(br"tab\011nl\012bs\134"), b"tab\tnl\nbs\\");
        assert_eq!(unescape(br"trailing\04"), br"trailing\04");
        assert_eq!(unescape(br"\999"), br"\999");
    }

    #[test]
    fn parses_and_selects_deepest_first() {
        let m = parse_mountinfo(SAMPLE.as_bytes());
        assert_eq!(m.len(), 9);
        assert_eq!(
            m[5].mount_point,
            PathBuf::from("/dy1/docker/containers/with space/mounts/shm")
        );
        let sel: Vec<_> = below(&m, Path::new("/dy1/docker"))
            .into_iter()
            .map(|m| (m.id, m.mount_point.display().to_string()))
            .collect();
        assert_eq!(
            sel,
            vec![
                (103, "/dy1/docker/overlay2/l1/merged/dev/shm".to_string()),
                (
                    104,
                    "/dy1/docker/containers/with space/mounts/shm".to_string()
                ),
                (107, "/dy1/docker/overlay2/l1/merged".to_string()),
                (102, "/dy1/docker/overlay2/l1/merged".to_string()),
            ]
        );
        // The data root itself (105) and /dy10 are never selected.
        let ns: Vec<_> = below(&m, Path::new("/run/dy1_docker"))
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ns, vec![101]);
        assert!(below(&m, Path::new("/dy")).is_empty());
    }
}

//! /etc/subuid and /etc/subgid: `name:first:count` lines (subuid(5)).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub first: u32,
    pub count: u32,
}

/// The first range of `user`. Blank lines and `#` comments are skipped;
/// malformed lines are ignored, as shadow-utils does.
pub fn find(text: &str, user: &str) -> Option<Range> {
    text.lines().find_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut f = line.split(':');
        let (name, first, count) = (f.next()?, f.next()?, f.next()?);
        if f.next().is_some() || name != user {
            return None;
        }
        let first: u32 = first.trim().parse().ok()?;
        let count: u32 = count.trim().parse().ok()?;
        (count > 0).then_some(Range { first, count })
    })
}

/// Every well-formed range in the file, whoever it belongs to: `(name, range)`.
pub fn all(text: &str) -> Vec<(&str, Range)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut f = line.split(':');
            let (name, first, count) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() {
                return None;
            }
            let first: u32 = first.trim().parse().ok()?;
            let count: u32 = count.trim().parse().ok()?;
            (count > 0).then_some((name, Range { first, count }))
        })
        .collect()
}

/// The ranges of `user`, in file order.
pub fn of_user(text: &str, user: &str) -> Vec<Range> {
    all(text)
        .into_iter()
        .filter(|(n, _)| *n == user)
        .map(|(_, r)| r)
        .collect()
}

/// The lowest free range of `count` ids within `[min, max]` (inclusive),
/// given every range already handed out: the first hole from `min` up that
/// is large enough, like sysbox-mgr's `allocSubidRange` and shadow-utils.
pub fn allocate(taken: &[Range], count: u32, min: u32, max: u32) -> Option<Range> {
    let mut used: Vec<(u64, u64)> = taken
        .iter()
        .map(|r| (u64::from(r.first), u64::from(r.first) + u64::from(r.count)))
        .collect();
    used.sort_unstable();
    let (count64, end) = (u64::from(count), u64::from(max) + 1);
    let mut start = u64::from(min);
    for (first, past) in used {
        if first >= start + count64 {
            break;
        }
        start = start.max(past);
    }
    (count > 0 && start + count64 <= end).then_some(Range {
        first: start as u32,
        count,
    })
}

/// `SUB_UID_MIN`-style numeric settings from login.defs(5) text.
pub fn login_defs_value(text: &str, key: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == key).then_some(())?;
        words.next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u32, count: u32) -> Range {
        Range { first, count }
    }

    #[test]
    fn allocates_the_first_hole_that_fits() {
        // Empty file: the bottom of the window.
        assert_eq!(
            allocate(&[], 65536, 100000, 600100000),
            Some(r(100000, 65536))
        );
        // Debian's first user at 100000: the range goes after it.
        assert_eq!(
            allocate(&[r(100000, 65536)], 268435456, 100000, 600100000),
            Some(r(165536, 268435456))
        );
        // A hole between two ranges that is large enough, in any file order.
        assert_eq!(
            allocate(&[r(300000, 10), r(100000, 100000)], 1000, 100000, 600100000),
            Some(r(200000, 1000))
        );
        // Too small a hole is skipped; overlapping ranges are handled.
        assert_eq!(
            allocate(
                &[r(100000, 10), r(100020, 5), r(100001, 100)],
                50,
                100000,
                600100000
            ),
            Some(r(100101, 50))
        );
        // Exactly fitting the top of the window, and not fitting.
        assert_eq!(allocate(&[], 10, 90, 99), Some(r(90, 10)));
        assert_eq!(allocate(&[], 11, 90, 99), None);
        assert_eq!(
            allocate(&[r(100000, 500000000)], 268435456, 100000, 600100000),
            None
        );
        assert_eq!(allocate(&[], 0, 1, 10), None);
        // No overflow at the top of the id space.
        assert_eq!(allocate(&[], 268435456, u32::MAX - 10, u32::MAX), None);
    }

    #[test]
    fn reads_ranges_and_login_defs() {
        let t = "alice:100000:65536\n# x\nsysbox:165536:268435456\nbad:line\nsysbox:1:2\n";
        assert_eq!(all(t).len(), 3);
        assert_eq!(of_user(t, "sysbox"), vec![r(165536, 268435456), r(1, 2)]);
        let defs =
            "# SUB_UID_MIN 5\nSUB_UID_MIN\t\t   100000\nSUB_UID_MAX 600100000\nSUB_GID_MIN x\n";
        assert_eq!(login_defs_value(defs, "SUB_UID_MIN"), Some(100000));
        assert_eq!(login_defs_value(defs, "SUB_UID_MAX"), Some(600100000));
        assert_eq!(login_defs_value(defs, "SUB_GID_MIN"), None);
        assert_eq!(login_defs_value(defs, "SUB_GID_MAX"), None);
    }

    #[test]
    fn finds_the_user() {
        let t =
            "# comment\n\nalice:100000:65536\nsysboxer:1:2\nsysbox:165536:268435456\nsysbox:1:1\n";
        assert_eq!(
            find(t, "sysbox"),
            Some(Range {
                first: 165536,
                count: 268435456
            })
        );
        assert_eq!(
            find(t, "alice"),
            Some(Range {
                first: 100000,
                count: 65536
            })
        );
        assert_eq!(find(t, "sys"), None);
        assert_eq!(
            find("sysbox:x:1\nsysbox:5:0\nsysbox:1:2:3\n", "sysbox"),
            None
        );
        assert_eq!(find("", "sysbox"), None);
        assert_eq!(find("sysbox:99999999999:1", "sysbox"), None);
    }
}

//! /etc/subuid and /etc/subgid: `name:first:count` lines (subuid(5)).
//! Pure text functions: the helpers (sysbox's user, a rootless instance's
//! user) and `dockyard destroy` do the reading, locking and writing.

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

/// The ids a rootless instance's user gets: 65536, what an image's files
/// and users need (Docker's and rootlesskit's documentation ask for it),
/// so that about 5000 instances fit login.defs' default window beside
/// sysbox's one range of 268435456.
pub const ROOTLESS_RANGE: u32 = 65_536;

/// The range `user` may keep: its one range of at least `count` ids in
/// both files, the same numbers in both (what a rootless instance's data
/// is owned by, so it must never move once files carry it).
pub fn kept(uid_text: &str, gid_text: &str, user: &str, count: u32) -> Option<Range> {
    match (
        of_user(uid_text, user).as_slice(),
        of_user(gid_text, user).as_slice(),
    ) {
        ([u], [g]) if u == g && u.count >= count => Some(*u),
        _ => None,
    }
}

/// One range of `count` ids free in both files within `[min, max]`: a
/// rootless instance gets the same numbers as uids and gids, so `ls -n` of
/// its data reads the same either way. Every other name's ranges (other
/// instances', sysbox's, the admin's) are avoided; `user`'s own are not
/// counted, as they are replaced.
pub fn allocate_both(
    uid_text: &str,
    gid_text: &str,
    user: &str,
    count: u32,
    min: u32,
    max: u32,
) -> Option<Range> {
    let taken: Vec<Range> = all(uid_text)
        .into_iter()
        .chain(all(gid_text))
        .filter(|(n, _)| *n != user)
        .map(|(_, r)| r)
        .collect();
    allocate(&taken, count, min, max)
}

/// `text` without `user`'s lines, and with `user:first:count` appended
/// when `range` is given; every other line (comments included) is kept
/// byte for byte.
pub fn with_range(text: &str, user: &str, range: Option<Range>) -> String {
    let mut out = String::with_capacity(text.len() + 40);
    for line in text.lines() {
        let t = line.trim();
        let is_users = !t.starts_with('#') && t.split(':').next() == Some(user);
        if !is_users {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(r) = range {
        out.push_str(&format!("{user}:{}:{}\n", r.first, r.count));
    }
    out
}

/// `text` without `user`'s lines, when it has any (`dockyard destroy` of a
/// rootless instance); every other byte is kept, a missing newline at the
/// end included.
pub fn without(text: &str, user: &str) -> Option<String> {
    let rest = with_range(text, user, None);
    // with_range ends every kept line with '\n'.
    let rest = if text.ends_with('\n') || text.is_empty() {
        rest
    } else {
        rest.strip_suffix('\n').map(str::to_string).unwrap_or(rest)
    };
    (rest != text).then_some(rest)
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
    fn a_rootless_range_is_free_in_both_files_and_kept() {
        let uids = "alice:100000:65536\nsysbox:165536:268435456\n";
        let gids = "alice:100000:65536\nbob:268601000:100\n";
        // Above sysbox's range (ends at 268600992) in subuid and bob's gids.
        let r = allocate_both(uids, gids, "dy1_docker", ROOTLESS_RANGE, 100000, 600100000)
            .expect("room");
        assert_eq!(
            r,
            Range {
                first: 268601100,
                count: ROOTLESS_RANGE
            }
        );
        let (u, g) = (
            with_range(uids, "dy1_docker", Some(r)),
            with_range(gids, "dy1_docker", Some(r)),
        );
        assert_eq!(kept(&u, &g, "dy1_docker", ROOTLESS_RANGE), Some(r));
        // Its own old lines do not block it, and are replaced.
        let again = allocate_both(&u, &g, "dy1_docker", ROOTLESS_RANGE, 100000, 600100000);
        assert_eq!(again, Some(r));
        // A second instance goes after the first.
        let r2 =
            allocate_both(&u, &g, "dy2_docker", ROOTLESS_RANGE, 100000, 600100000).expect("room");
        assert_eq!(r2.first, r.first + ROOTLESS_RANGE);
        // Different numbers in the two files, or too small: not kept.
        let g_other = with_range(
            gids,
            "dy1_docker",
            Some(Range {
                first: 5,
                count: ROOTLESS_RANGE,
            }),
        );
        assert_eq!(kept(&u, &g_other, "dy1_docker", ROOTLESS_RANGE), None);
        assert_eq!(kept(&u, &g, "dy1_docker", ROOTLESS_RANGE + 1), None);
        // Removal keeps every other line, comments included.
        assert_eq!(
            with_range(
                "# c\ndy1_docker:1:2\nalice:100000:65536\n",
                "dy1_docker",
                None
            ),
            "# c\nalice:100000:65536\n"
        );
        // Hundreds of instances fit the default window beside sysbox.
        let (mut u, mut g) = (uids.to_string(), gids.to_string());
        for i in 0..500 {
            let name = format!("i{i}_docker");
            let r = allocate_both(&u, &g, &name, ROOTLESS_RANGE, 100000, 600100000).expect("room");
            u = with_range(&u, &name, Some(r));
            g = with_range(&g, &name, Some(r));
        }
        let ranges: Vec<Range> = all(&u).into_iter().map(|(_, r)| r).collect();
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                let (a0, b0) = (u64::from(a.first), u64::from(b.first));
                assert!(
                    a0 + u64::from(a.count) <= b0 || b0 + u64::from(b.count) <= a0,
                    "{a:?} overlaps {b:?}"
                );
            }
        }
    }

    #[test]
    fn without_a_user_every_other_byte_stays() {
        let text =
            "# ids\nalice:100000:65536\ndy1_docker:165536:65536\n  dy11_docker:231072:65536\n";
        assert_eq!(
            without(text, "dy1_docker").as_deref(),
            Some("# ids\nalice:100000:65536\n  dy11_docker:231072:65536\n")
        );
        assert_eq!(without(text, "dy2_docker"), None);
        assert_eq!(
            without("alice:1:2\ndy1_docker:3:4\nbob:5:6", "dy1_docker").as_deref(),
            Some("alice:1:2\nbob:5:6")
        );
        assert_eq!(
            without("dy1_docker:3:4\n", "dy1_docker").as_deref(),
            Some("")
        );
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

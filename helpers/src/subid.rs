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

#[cfg(test)]
mod tests {
    use super::*;

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

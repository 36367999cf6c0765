//! "Did you mean …?" for misspelt key and section names.
//!
//! The nearest known name by edit distance (Damerau–Levenshtein with
//! adjacent transpositions, compared case-insensitively), as systemd and
//! cargo do for their own settings: a typo the admin made by hand is one or
//! two keystrokes away from what they meant. Names further away than a
//! third of their length get no suggestion: a wild guess misleads more than
//! the list of known names that is shown instead.

/// The known name nearest to `typed`, if any is near enough.
pub fn nearest<'a>(typed: &str, known: &[&'a str]) -> Option<&'a str> {
    let typed_lower = typed.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for k in known {
        let d = distance(&typed_lower, &k.to_ascii_lowercase());
        let nearer = match best {
            Some((bd, _)) => d < bd,
            None => true,
        };
        if nearer {
            best = Some((d, k));
        }
    }
    let (d, k) = best?;
    // Case alone (distance 0) is always worth saying; otherwise at most one
    // edit per three characters, and at least one allowed.
    let allowed = (typed.chars().count().max(k.chars().count()) / 3).max(1);
    if d <= allowed {
        return Some(k);
    }
    // A name cut short (`Allow=` for AllowFrom=): the one known name it begins.
    let mut begun = known
        .iter()
        .filter(|k| typed.len() >= 4 && k.to_ascii_lowercase().starts_with(&typed_lower));
    match (begun.next(), begun.next()) {
        (Some(k), None) => Some(k),
        _ => None,
    }
}

/// `"; did you mean BridgeCIDR=?"`, or `"; known keys: A, B"` when no
/// known key is near: the tail of an unknown-key message.
pub fn key_hint(typed: &str, known: &[&str]) -> String {
    match nearest(typed, known) {
        Some(k) => format!("; did you mean {k}=?"),
        None => format!("; known keys: {}", known.join(", ")),
    }
}

/// `"; did you mean [Network]?"`, or the list of sections: the tail of an
/// unknown-section message.
pub fn section_hint(typed: &str, known: &[&str]) -> String {
    match nearest(typed, known) {
        Some(s) => format!("; did you mean [{s}]?"),
        None => {
            let list: Vec<String> = known.iter().map(|s| format!("[{s}]")).collect();
            format!("; sections are {}", list.join(", "))
        }
    }
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and swaps of two neighbours each cost one.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = v;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &[
        "Root",
        "BridgeCIDR",
        "FixedCIDR",
        "PoolBase",
        "PoolSize",
        "Runtime",
        "DockerVersion",
        "Autostart",
    ];

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("bridgecidr", "bridgecird"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn typos_find_the_key() {
        for (typed, want) in [
            ("BridgeCIRD", "BridgeCIDR"),
            ("bridgecidr", "BridgeCIDR"),
            ("BrigeCIDR", "BridgeCIDR"),
            ("Poolbase", "PoolBase"),
            ("PoolSise", "PoolSize"),
            ("Runtim", "Runtime"),
            ("AutoStart", "Autostart"),
            ("DockerVerison", "DockerVersion"),
            ("Docker", "DockerVersion"),
        ] {
            assert_eq!(nearest(typed, KEYS), Some(want), "{typed}");
        }
    }

    #[test]
    fn far_names_get_the_list() {
        assert_eq!(nearest("Foo", KEYS), None);
        assert_eq!(nearest("Memory", KEYS), None);
        // Cut short, but two names begin so: no guess.
        assert_eq!(nearest("Pool", KEYS), None);
        assert_eq!(
            key_hint("Foo", &["Root", "Runtime"]),
            "; known keys: Root, Runtime"
        );
    }

    #[test]
    fn sections() {
        let s = &["Instance", "Network", "Daemon"];
        assert_eq!(section_hint("Netwrok", s), "; did you mean [Network]?");
        assert_eq!(section_hint("instance", s), "; did you mean [Instance]?");
        assert_eq!(
            section_hint("Extra", s),
            "; sections are [Instance], [Network], [Daemon]"
        );
    }
}

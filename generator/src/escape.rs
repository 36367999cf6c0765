//! Escaping values for unit files (systemd.unit(5), systemd.service(5)).
//! Conf values are validated to safe characters before they get here; this
//! is the second line of defence, so it escapes everything systemd would
//! otherwise interpret.

/// For directives that expand specifiers (`Description=`, paths, ...).
pub fn specifiers(value: &str) -> String {
    value.replace('%', "%%")
}

/// One argument of an `Exec*=` command line: `%` and `$` escaped, and
/// double-quoted with C-style escapes when it contains anything the
/// command-line splitter would treat specially.
pub fn exec_arg(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_exec_arg(&mut out, value);
    out
}

/// Appends one escaped argument to `out`. The generator renders thousands
/// of arguments per run, so the common case (nothing to escape) is a plain
/// copy without allocation.
pub fn push_exec_arg(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value.bytes().all(|b| {
            b.is_ascii_graphic() && !matches!(b, b'%' | b'$' | b'"' | b'\'' | b'\\' | b';')
        });
    if plain {
        out.push_str(value);
        return;
    }
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | ';'));
    if needs_quotes {
        out.push('"');
    }
    for c in value.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '"' if needs_quotes => out.push_str("\\\""),
            '\\' if needs_quotes => out.push_str("\\\\"),
            '\n' if needs_quotes => out.push_str("\\n"),
            '\t' if needs_quotes => out.push_str("\\t"),
            c if c.is_control() => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    if needs_quotes {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_pass_through() {
        assert_eq!(exec_arg("/dy1/docker"), "/dy1/docker");
        assert_eq!(
            exec_arg("base=172.23.0.0/16,size=24"),
            "base=172.23.0.0/16,size=24"
        );
    }

    #[test]
    fn specifiers_and_variables_are_escaped() {
        assert_eq!(exec_arg("50%"), "50%%");
        assert_eq!(exec_arg("$HOME"), "$$HOME");
        assert_eq!(specifiers("a%nb"), "a%%nb");
    }

    #[test]
    fn special_characters_are_quoted() {
        assert_eq!(exec_arg(""), "\"\"");
        assert_eq!(exec_arg("a b"), "\"a b\"");
        assert_eq!(exec_arg(";"), "\";\"");
        assert_eq!(
            exec_arg("registry-mirrors=[\"https://m\"]"),
            "\"registry-mirrors=[\\\"https://m\\\"]\""
        );
        assert_eq!(exec_arg("a\\b\nc"), "\"a\\\\b\\nc\"");
        assert_eq!(exec_arg("x\u{1}"), "\"x\\x01\"");
    }
}

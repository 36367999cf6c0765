//! A small systemd-style INI parser that remembers where every key came from.
//!
//! No INI crate keeps per-key line numbers (see docs/dependencies.md), and
//! `file:line` in every message is the point of Dockyard's diagnostics.
//! Syntax, as in systemd unit files: `[Section]` headers, `Key=Value` lines,
//! whole-line comments starting with `#` or `;`. There are no inline comments
//! and no quoting: the value is everything after the first `=`, trimmed.

use crate::diag::{Diagnostic, Origin};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub section: String,
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// A parsed file: its entries in file order, plus the sections it declared
/// (so an unknown section is reported once, at its header).
#[derive(Debug, Default)]
pub struct Document {
    pub entries: Vec<Entry>,
    pub sections: Vec<(String, Origin)>,
}

/// Parses `text` read from `path`. Every malformed line is an error; parsing
/// continues past it so that one run reports all of them.
pub fn parse(path: &Path, text: &str) -> (Document, Vec<Diagnostic>) {
    let mut doc = Document::default();
    let mut diags = Vec::new();
    let mut section: Option<String> = None;

    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let origin = Origin {
            path: path.to_path_buf(),
            line: line_no,
        };
        if let Some(rest) = line.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(name) if is_section_name(name) => {
                    section = Some(name.to_string());
                    doc.sections.push((name.to_string(), origin));
                }
                _ => {
                    diags.push(Diagnostic::error(
                        path,
                        Some(line_no),
                        format!(
                            "malformed section header {line:?}; expected e.g. [Instance]{}",
                            crate::network::comment_hint(line)
                        ),
                    ));
                    // Keys below a broken header must not land in the previous section.
                    section = None;
                    doc.sections.push((String::new(), origin));
                }
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            diags.push(Diagnostic::error(
                path,
                Some(line_no),
                format!("expected Key=Value, found {line:?}"),
            ));
            continue;
        };
        let key = key.trim();
        if !is_key(key) {
            diags.push(Diagnostic::error(
                path,
                Some(line_no),
                format!("invalid key name {key:?}; keys are letters, digits, '-', '_' and '.'"),
            ));
            continue;
        }
        let Some(current) = &section else {
            if doc.sections.is_empty() {
                diags.push(Diagnostic::error(
                    path,
                    Some(line_no),
                    format!("{key}= appears before any section; add [Instance] above it"),
                ));
            }
            // Under a malformed header: that header was already reported.
            continue;
        };
        doc.entries.push(Entry {
            section: current.clone(),
            key: key.to_string(),
            value: value.trim().to_string(),
            origin,
        });
    }
    (doc, diags)
}

fn is_section_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> (Document, Vec<String>) {
        let (doc, diags) = parse(Path::new("/x.conf"), text);
        (doc, diags.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn keeps_line_numbers_and_trims() {
        let (doc, diags) = p("# c\n[Instance]\n\n  Root = /dy1  \r\n; c\nBridgeCIDR=1=2\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(doc.entries.len(), 2);
        assert_eq!(doc.entries[0].key, "Root");
        assert_eq!(doc.entries[0].value, "/dy1");
        assert_eq!(doc.entries[0].origin.line, 4);
        assert_eq!(doc.entries[1].value, "1=2");
        assert_eq!(doc.entries[1].origin.line, 6);
    }

    #[test]
    fn no_inline_comments_and_no_escapes() {
        let (doc, _) = p("[Instance]\nRoot=/dy1 # comment\nX=a\\tb\n");
        assert_eq!(doc.entries[0].value, "/dy1 # comment");
        assert_eq!(doc.entries[1].value, "a\\tb");
    }

    #[test]
    fn a_side_comment_on_a_section_line_says_so() {
        let (_, diags) = p("[Instance]  # the instance\n");
        assert_eq!(
            diags,
            vec!["/x.conf:1: error: malformed section header \"[Instance]  # the instance\"; expected e.g. [Instance] (comments must be on a line of their own, starting with # or ;)"]
        );
    }

    #[test]
    fn reports_malformed_lines() {
        let (doc, diags) = p("Root=/x\n[Instance\n[Instance]\njunk\nbad key=1\n");
        assert_eq!(
            diags,
            vec![
                "/x.conf:1: error: Root= appears before any section; add [Instance] above it",
                "/x.conf:2: error: malformed section header \"[Instance\"; expected e.g. [Instance]",
                "/x.conf:4: error: expected Key=Value, found \"junk\"",
                "/x.conf:5: error: invalid key name \"bad key\"; keys are letters, digits, '-', '_' and '.'",
            ]
        );
        assert!(doc.entries.is_empty());
    }
}

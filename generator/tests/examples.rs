//! Every conf example an admin may paste (README.md's ```ini blocks, the
//! man pages' .nf blocks with a section line, conf/examples/) parses
//! without one error or warning. A side comment, a stale key or a typo in
//! the docs fails here, not on a new admin's host.

use dockyard_model::instance::VersionDefaults;
use dockyard_model::load::load_one;
use std::path::{Path, PathBuf};

/// The repository's top directory.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

const SECTIONS: [&str; 3] = ["[Instance]", "[Network]", "[Daemon]"];

/// A fragment (`[Daemon]` alone) gets the keys a conf cannot do without,
/// so that only the fragment's own lines are judged.
const REQUIRED: &str =
    "[Instance]\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\nRuntime=runc\n";

fn is_conf(block: &str) -> bool {
    block.lines().any(|l| SECTIONS.contains(&l.trim()))
}

/// ```ini blocks of a Markdown file, with the line each starts on.
fn markdown_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```ini") => {
                current = Some((i + 2, String::new()))
            }
            Some(_) if line.trim_start().starts_with("```") => out.extend(current.take()),
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

/// What roff prints for the escapes the man pages use in examples.
fn unroff(line: &str) -> String {
    line.replace("\\-", "-")
        .replace("\\(dq", "\"")
        .replace("\\&", "")
        .replace("\\e", "\\")
}

/// `.nf` … `.fi` blocks of a man page, with the line each starts on.
fn roff_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None if line.starts_with(".nf") => current = Some((i + 2, String::new())),
            Some(_) if line.starts_with(".fi") => out.extend(current.take()),
            Some((_, block)) if !line.starts_with('.') => {
                block.push_str(&unroff(line));
                block.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Every message the model has for `text` as a conf named `dy1.conf`.
fn messages(text: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("dy1.conf");
    let whole = if text.lines().any(|l| l.trim() == "[Instance]") {
        text.to_string()
    } else {
        format!("{REQUIRED}{text}")
    };
    std::fs::write(&conf, whole).expect("write");
    let defaults = VersionDefaults {
        docker: Ok("29.2.1".into()),
        known_docker: None,
    };
    let (_, diags) = load_one(&conf, &defaults);
    diags.iter().map(ToString::to_string).collect()
}

fn examples() -> Vec<(String, String)> {
    let root = repo();
    let mut out = Vec::new();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    for (line, block) in markdown_blocks(&readme) {
        out.push((format!("README.md:{line}"), block));
    }
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("man"))
        .expect("man/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    pages.sort();
    for page in pages {
        let text = std::fs::read_to_string(&page).expect("man page");
        for (line, block) in roff_blocks(&text) {
            if is_conf(&block) {
                out.push((format!("{}:{line}", page.display()), block));
            }
        }
    }
    let mut confs = vec![
        root.join("conf/examples/dy1.conf"),
        root.join("conf/examples/ci.conf"),
    ];
    let dropins = root.join("conf/examples/dy1.conf.d");
    if let Ok(d) = std::fs::read_dir(dropins) {
        confs.extend(d.filter_map(Result::ok).map(|e| e.path()));
    }
    for conf in confs {
        let text = std::fs::read_to_string(&conf).expect("example conf");
        out.push((conf.display().to_string(), text));
    }
    out
}

#[test]
fn every_documented_conf_parses_cleanly() {
    let all = examples();
    // The README's conf, dockyard.conf(5)'s [Daemon] and EXAMPLES, the
    // example files: a count that drops means an extractor broke.
    assert!(all.len() >= 6, "only {} examples found: {all:?}", all.len());
    let mut failures = Vec::new();
    for (whence, text) in &all {
        let m = messages(text);
        if !m.is_empty() {
            failures.push(format!("{whence}:\n{text}\n  {}", m.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The extractor finds a bad example, and says where.
#[test]
fn a_side_comment_in_an_example_is_caught() {
    let md = "text\n```ini\n[Instance]\nRuntime=runc   # why\nBridgeCIDR=172.22.147.1/24\nPoolBase=172.23.0.0/16\n```\n";
    let blocks = markdown_blocks(md);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 3);
    let m = messages(&blocks[0].1);
    assert!(
        m.iter().any(|l| l.contains(
            "Runtime=runc   # why: unknown runtime; use sysbox-runc or runc (comments must be on a line of their own"
        )),
        "{m:?}"
    );
    let roff = ".nf\n[Daemon]\nlog\\-driver=journald\n.fi\n";
    let blocks = roff_blocks(roff);
    assert_eq!(blocks[0].1, "[Daemon]\nlog-driver=journald\n");
    assert!(messages(&blocks[0].1).is_empty());
}

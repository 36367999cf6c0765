//! Diagnostics that name the file and line an admin has to fix.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// Where a value came from: the conf file (or drop-in) and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// One problem with one file, printed like a compiler message:
/// `path:line: error: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    pub fn warning(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    pub fn at(origin: &Origin, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            severity,
            path: origin.path.clone(),
            line: Some(origin.line),
            message: message.into(),
        }
    }

    /// A single-valued `key` given again at `origin`: the later line wins,
    /// in instance confs and the host's policy alike.
    pub fn set_again(origin: &Origin, key: &str, earlier_line: usize) -> Self {
        Self::at(
            origin,
            Severity::Warning,
            format!("{key}= set again; this overrides line {earlier_line}"),
        )
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.line {
            Some(line) => write!(
                f,
                "{}:{}: {}: {}",
                self.path.display(),
                line,
                word,
                self.message
            ),
            None => write!(f, "{}: {}: {}", self.path.display(), word, self.message),
        }
    }
}

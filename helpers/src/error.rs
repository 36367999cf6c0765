//! One error type for every helper: a message an admin can act on, plus a
//! flag that separates bad invocations (exit 2) from failed operations (exit 1).

use std::fmt;

#[derive(Debug)]
pub struct Error {
    msg: String,
    usage: bool,
    /// An exit status of its own (a fact the unit acts on), else 1 or 2.
    exit: Option<u8>,
}

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error {
            msg: msg.into(),
            usage: false,
            exit: None,
        }
    }

    /// A failure with its own exit status.
    pub fn with_exit(exit: u8, msg: impl Into<String>) -> Self {
        Error {
            exit: Some(exit),
            ..Error::new(msg)
        }
    }

    pub fn exit_status(&self) -> i32 {
        match (self.exit, self.usage) {
            (Some(code), _) => i32::from(code),
            (None, true) => 2,
            (None, false) => 1,
        }
    }

    /// A wrong command line: the unit (or the admin) called us wrongly.
    pub fn usage(msg: impl Into<String>) -> Self {
        Error {
            msg: msg.into(),
            usage: true,
            exit: None,
        }
    }

    pub fn is_usage(&self) -> bool {
        self.usage
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Attach "what we were doing" to a lower-level error (io, nix, netlink).
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::new(format!("{}: {e}", what().into())))
    }
}

/// `bail!("...")` returns an operational error from the current function.
#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => {
        return Err($crate::error::Error::new(format!($($t)*)))
    };
}

/// Several independent steps (teardown) run to the end and report together.
#[derive(Default)]
pub struct Failures(Vec<String>);

impl Failures {
    pub fn record<T>(&mut self, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                log::error!("{e}");
                self.0.push(e.to_string());
                None
            }
        }
    }

    pub fn finish(self, what: &str) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::new(format!(
                "{what}: {} step(s) failed (see the messages above); fix the cause and run it again, it is safe to repeat",
                self.0.len()
            )))
        }
    }
}

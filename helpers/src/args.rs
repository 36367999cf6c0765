//! Command-line parsing (lexopt) and validation of every value the units pass.
//!
//! The helpers run as root from generated units, so every argument is checked
//! against a strict shape before it reaches a path, a netlink message, an
//! iptables rule or a useradd call (the bash tool pasted values unchecked).

use std::ffi::OsString;

use dockyard_model::contract::{BadValue, Opt, Values};

use crate::error::{Error, Result};

/// Options seen on the command line, in order. All helper options take a value.
#[derive(Debug, Default)]
pub struct Opts {
    pub action: Option<String>,
    values: Vec<(&'static str, String)>,
}

/// Parse `args` (without argv[0]) accepting only the `allowed` options; the
/// repeatable ones may appear several times, the others at most once.
pub fn parse<I>(args: I, allowed: &[Opt]) -> Result<Opts>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut opts = Opts::default();
    loop {
        let arg = p.next().map_err(|e| Error::usage(e.to_string()))?;
        let Some(arg) = arg else { break };
        match arg {
            Long(name) => {
                let Some(known) = allowed.iter().find(|a| a.name == name) else {
                    return Err(Error::usage(format!("unknown option --{name}")));
                };
                let value = p
                    .value()
                    .map_err(|e| Error::usage(format!("--{}: {e}", known.name)))?
                    .string()
                    .map_err(|_| {
                        Error::usage(format!("--{}: value is not valid UTF-8", known.name))
                    })?;
                if !known.repeatable && opts.values.iter().any(|(k, _)| *k == known.name) {
                    return Err(Error::usage(format!(
                        "--{} given more than once",
                        known.name
                    )));
                }
                opts.values.push((known.name, value));
            }
            Value(v) if opts.action.is_none() => {
                let v = v
                    .string()
                    .map_err(|_| Error::usage("action is not valid UTF-8"))?;
                opts.action = Some(v);
            }
            other => return Err(Error::usage(other.unexpected().to_string())),
        }
    }
    Ok(opts)
}

impl Values for Opts {
    fn values(&self, opt: Opt) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| *k == opt.name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Opts {
    pub fn required(&self, opt: Opt) -> Result<&str> {
        self.value(opt)
            .ok_or_else(|| Error::usage(format!("missing required option --{}", opt.name)))
    }

    /// Only `--instance` was given: `down` takes the rest from the record.
    pub fn instance_only(&self) -> bool {
        self.values
            .iter()
            .all(|(k, _)| *k == dockyard_model::contract::INSTANCE.name)
    }

    /// The `up`/`down` word; anything else is a usage error.
    pub fn action(&self, choices: &[&str]) -> Result<String> {
        match &self.action {
            Some(a) if choices.contains(&a.as_str()) => Ok(a.clone()),
            Some(a) => Err(Error::usage(format!(
                "unknown action {a:?}; expected one of: {}",
                choices.join(", ")
            ))),
            None => Err(Error::usage(format!(
                "missing action; expected one of: {}",
                choices.join(", ")
            ))),
        }
    }
}

/// A value the model's contract refuses is a wrong command line.
pub fn usage(e: BadValue) -> Error {
    Error::usage(e.to_string())
}

/// User and group names: the portable subset useradd accepts on every distro.
pub fn account_name(opt: &str, s: &str) -> Result<String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::usage(format!(
            "--{opt} {s:?} is not a valid account name: use up to 32 of [a-z0-9_-], starting with a letter or '_'"
        )))
    }
}

/// `--daemon-option KEY=JSON`: the key is a daemon.json key, the value any JSON.
pub fn daemon_option(s: &str) -> Result<(String, serde_json::Value)> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(Error::usage(format!(
            "--daemon-option {s:?} must look like KEY=JSON (for example log-level=\"warn\")"
        )));
    };
    let key_ok = !k.is_empty()
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.');
    if !key_ok {
        return Err(Error::usage(format!(
            "--daemon-option key {k:?} must be non-empty letters, digits, '-', '_' or '.'"
        )));
    }
    let value = serde_json::from_str(v).map_err(|e| {
        Error::usage(format!(
            "--daemon-option {k}: value {v:?} is not valid JSON ({e}); strings need quotes, like {k}=\"{v}\""
        ))
    })?;
    Ok((k.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts() {
        assert!(account_name("user", "dy1_docker").is_ok());
        for bad in ["", "Dy", "1x", "a:b", "a b", &"a".repeat(33)] {
            assert!(account_name("user", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn daemon_options() {
        let (k, v) = daemon_option("log-level=\"warn\"").unwrap();
        assert_eq!(k, "log-level");
        assert_eq!(v, serde_json::json!("warn"));
        let (_, v) = daemon_option(
            "default-ulimits={\"nofile\":{\"Name\":\"nofile\",\"Hard\":1,\"Soft\":1}}",
        )
        .unwrap();
        assert!(v.is_object());
        assert!(daemon_option("a=b=1").unwrap_err().is_usage());
        assert!(daemon_option("debug=true").is_ok());
        assert!(daemon_option("log-level=warn").is_err()); // unquoted string
        assert!(daemon_option("=1").is_err());
        assert!(daemon_option("noequals").is_err());
        assert!(daemon_option("a b=1").is_err());
    }

    #[test]
    fn parser_rejects_unknown_and_repeats() {
        const INSTANCE: Opt = dockyard_model::contract::INSTANCE;
        const POOL: Opt = dockyard_model::contract::network::POOL;
        const D: Opt = dockyard_model::contract::prepare::DAEMON_OPTION;
        let o = parse(
            ["up", "--instance", "dy1", "--pool=10.0.0.0/8"],
            &[INSTANCE, POOL],
        )
        .unwrap();
        assert_eq!(
            o.action("up down".split(' ').collect::<Vec<_>>().as_slice())
                .unwrap(),
            "up"
        );
        assert_eq!(o.value(POOL), Some("10.0.0.0/8"));
        assert!(!o.instance_only());
        assert!(parse(["up", "--bogus", "x"], &[INSTANCE])
            .unwrap_err()
            .is_usage());
        assert!(parse(["up", "--instance", "a", "--instance", "b"], &[INSTANCE]).is_err());
        let o = parse(
            ["up", "--daemon-option", "a=1", "--daemon-option", "b=2"],
            &[D],
        )
        .unwrap();
        assert_eq!(o.values(D), vec!["a=1", "b=2"]);
        assert!(parse(["up", "down"], &[INSTANCE]).is_err());
        assert!(parse(["up", "--instance"], &[INSTANCE]).is_err());
        let o = parse(["sideways"], &[]).unwrap();
        assert!(o.action(&["up", "down"]).is_err());
    }
}

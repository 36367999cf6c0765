//! Command-line parsing (lexopt) and validation of every value the units pass.
//!
//! The helpers run as root from generated units, so every argument is checked
//! against a strict shape before it reaches a path, a netlink message, an
//! iptables rule or a useradd call (the bash tool pasted values unchecked).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// Options seen on the command line, in order. All helper options take a value.
#[derive(Debug, Default)]
pub struct Opts {
    pub action: Option<String>,
    values: Vec<(&'static str, String)>,
}

/// Parse `args` (without argv[0]) accepting only `allowed` long options; those in
/// `repeatable` may appear several times, the others at most once.
pub fn parse<I>(args: I, allowed: &[&'static str], repeatable: &[&'static str]) -> Result<Opts>
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
                let Some(known) = allowed.iter().find(|a| **a == name) else {
                    return Err(Error::usage(format!("unknown option --{name}")));
                };
                let value = p
                    .value()
                    .map_err(|e| Error::usage(format!("--{known}: {e}")))?
                    .string()
                    .map_err(|_| Error::usage(format!("--{known}: value is not valid UTF-8")))?;
                if !repeatable.contains(known) && opts.values.iter().any(|(k, _)| k == known) {
                    return Err(Error::usage(format!("--{known} given more than once")));
                }
                opts.values.push((known, value));
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

impl Opts {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| Error::usage(format!("missing required option --{name}")))
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
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

/// Instance names are short so that `<name>_docker0` fits IFNAMSIZ and chain
/// names stay well under the 28-byte xtables limit.
pub fn instance_name(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 7
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::usage(format!(
            "--instance {s:?} is not a valid instance name: use 1-7 characters, a lowercase letter followed by lowercase letters or digits ([a-z][a-z0-9]{{0,6}})"
        )))
    }
}

/// Linux interface names: at most 15 bytes (IFNAMSIZ - 1); we also keep to a
/// conservative character set so the name is safe in iptables rules.
pub fn bridge_name(s: &str) -> Result<String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s.starts_with('-')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.');
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::usage(format!(
            "--bridge {s:?} is not a valid interface name: use 1-15 bytes of letters, digits, '_', '-' or '.'"
        )))
    }
}

/// An interface address with its prefix, e.g. `172.22.147.1/24`.
pub fn interface_cidr(opt: &str, s: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        Error::usage(format!(
            "--{opt} {s:?} is not an IPv4 address with prefix (like 172.22.147.1/24)"
        ))
    })?;
    if net.prefix_len() < 31 && (net.addr() == net.network() || net.addr() == net.broadcast()) {
        return Err(Error::usage(format!(
            "--{opt} {s}: {} is the network or broadcast address of {}; give the bridge a host address (like {}/{})",
            net.addr(),
            net.trunc(),
            net.hosts().next().unwrap_or(net.addr()),
            net.prefix_len()
        )));
    }
    Ok(net)
}

/// A network, e.g. `172.23.0.0/16`: host bits must be zero so that what the
/// admin wrote and what ends up in the rules are the same thing.
pub fn network_cidr(opt: &str, s: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        Error::usage(format!(
            "--{opt} {s:?} is not an IPv4 network (like 172.23.0.0/16)"
        ))
    })?;
    if net.addr() != net.network() {
        return Err(Error::usage(format!(
            "--{opt} {s}: host bits are set; did you mean {}?",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Absolute, no `..` (it could climb out of where the admin meant), not `/`.
pub fn abs_path(opt: &str, s: &str) -> Result<PathBuf> {
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(Error::usage(format!(
            "--{opt} {s:?} must be an absolute path"
        )));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(Error::usage(format!("--{opt} {s:?} must not contain '..'")));
    }
    if p.components().all(|c| c == Component::RootDir) {
        return Err(Error::usage(format!("--{opt} must not be '/'")));
    }
    // Normalise away "." and repeated slashes so later prefix checks are exact.
    Ok(p.components().collect())
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
    fn instance_names() {
        for ok in ["a", "dy1", "abcdefg", "z9"] {
            assert!(instance_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1dy", "Dy1", "abcdefgh", "dy-1", "dy_1", "dy 1", "dý"] {
            assert!(instance_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bridge_names() {
        assert!(bridge_name("dy1_docker0").is_ok());
        assert!(bridge_name("abcdefghijklmno").is_ok()); // 15 bytes
        for bad in ["", "abcdefghijklmnop", "a b", "a/b", "..", "-x", "a;b"] {
            assert!(bridge_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        let b = interface_cidr("bridge-cidr", "172.22.147.1/24").unwrap();
        assert_eq!(b.addr().to_string(), "172.22.147.1");
        assert!(interface_cidr("bridge-cidr", "172.22.147.0/24").is_err());
        assert!(interface_cidr("bridge-cidr", "172.22.147.255/24").is_err());
        assert!(interface_cidr("bridge-cidr", "172.22.147.1").is_err());
        assert!(interface_cidr("bridge-cidr", "fd00::1/64").is_err());
        assert!(network_cidr("pool", "172.23.0.0/16").is_ok());
        let e = network_cidr("pool", "172.23.1.0/16").unwrap_err();
        assert!(e.to_string().contains("172.23.0.0/16"), "{e}");
        assert!(network_cidr("pool", "172.23.0.0/33").is_err());
        assert!(network_cidr("pool", "banana").is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(abs_path("root", "/dy1").unwrap(), PathBuf::from("/dy1"));
        assert_eq!(
            abs_path("root", "/srv//dy1/./x/").unwrap(),
            PathBuf::from("/srv/dy1/x")
        );
        for bad in ["dy1", "", "/", "//", "/dy1/../etc", "/..", "./x"] {
            assert!(abs_path("root", bad).is_err(), "{bad:?}");
        }
    }

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
        let o = parse(
            ["up", "--instance", "dy1", "--pool=10.0.0.0/8"],
            &["instance", "pool"],
            &[],
        )
        .unwrap();
        assert_eq!(
            o.action("up down".split(' ').collect::<Vec<_>>().as_slice())
                .unwrap(),
            "up"
        );
        assert_eq!(o.get("pool"), Some("10.0.0.0/8"));
        assert!(parse(["up", "--bogus", "x"], &["instance"], &[])
            .unwrap_err()
            .is_usage());
        assert!(parse(
            ["up", "--instance", "a", "--instance", "b"],
            &["instance"],
            &[]
        )
        .is_err());
        let o = parse(["up", "--d", "a=1", "--d", "b=2"], &["d"], &["d"]).unwrap();
        assert_eq!(o.all("d"), vec!["a=1", "b=2"]);
        assert!(parse(["up", "down"], &["instance"], &[]).is_err());
        assert!(parse(["up", "--instance"], &["instance"], &[]).is_err());
        let o = parse(["sideways"], &[], &[]).unwrap();
        assert!(o.action(&["up", "down"]).is_err());
    }
}

//! `dockyard import ENVFILE`: turns the bash tool's `dockyard.env` into a
//! conf. The file is never executed or sourced: it is read as text, and a
//! value that would mean anything to a shell beyond a literal string
//! (`$`, backquotes, `$(…)`, `\`, `;`, `|`, `&`, redirections, globs …) is
//! refused for that key, never expanded.

use crate::confwrite::{self, WriteError};
use crate::error::{Exit, Failure, Result};
use crate::new::validate;
use dockyard_generator::run::version_defaults;
use dockyard_generator::run::Settings;
use dockyard_model::keys::{self, Key, Section};
use dockyard_model::InstanceName;
use std::path::PathBuf;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the conf was written (keys that could not be carried over are listed)
  1  failure: the env file is unreadable, the conf would be invalid, I/O error
  2  usage error: bad --name or no name to be had
  6  refused: the conf already exists";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bash tool's env file (e.g. /dy1/docker-runtime/etc/dockyard.env)
    #[arg(value_name = "ENVFILE")]
    pub env_file: PathBuf,
    /// Instance name; default: DOCKYARD_DOCKER_PREFIX without its '_'
    #[arg(long)]
    pub name: Option<String>,
    /// Root for the instance instead of DOCKYARD_ROOT
    #[arg(long, value_name = "DIR")]
    pub root: Option<String>,
}

/// One `KEY=value` of the file, or why its value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry {
    pub line: usize,
    pub key: String,
    pub value: std::result::Result<String, String>,
}

/// Characters that make a shell do something other than take a literal.
const SHELL_SPECIAL: &[char] = &[
    '$', '`', '\\', ';', '&', '|', '<', '>', '(', ')', '{', '}', '*', '?', '[', ']', '~', '!', '#',
    '"', '\'', ' ', '\t',
];

fn literal(raw: &str) -> std::result::Result<String, String> {
    let refuse = |what: &str| Err(format!("{what}; refused, not expanded"));
    if raw.contains("$(") {
        return refuse("contains a command substitution $(…)");
    }
    if raw.contains('`') {
        return refuse("contains a backquote command substitution");
    }
    if raw.contains('$') {
        return refuse("contains '$' (a variable or expansion)");
    }
    let (inner, quote) = if let Some(rest) = raw.strip_prefix('"') {
        match rest.strip_suffix('"') {
            Some(inner) => (inner, Some('"')),
            None => return refuse("has an unterminated double quote"),
        }
    } else if let Some(rest) = raw.strip_prefix('\'') {
        match rest.strip_suffix('\'') {
            Some(inner) => (inner, Some('\'')),
            None => return refuse("has an unterminated single quote"),
        }
    } else {
        (raw, None)
    };
    let bad = match quote {
        // Inside double quotes only these still mean something.
        Some('"') => inner.chars().find(|c| ['"', '\\', '!'].contains(c)),
        Some(_) => inner.chars().find(|c| *c == '\''),
        None => inner.chars().find(|c| SHELL_SPECIAL.contains(c)),
    };
    if let Some(c) = bad {
        return refuse(&format!("contains {c:?}, which a shell would interpret"));
    }
    Ok(inner.to_string())
}

/// Parses the file as text: `KEY=value`, `KEY="value"`, `KEY='value'`,
/// `export KEY=…`, blank lines and `#` comments. Returns the entries and
/// the lines that are none of these.
pub fn parse_env(text: &str) -> (Vec<EnvEntry>, Vec<(usize, String)>) {
    let mut entries = Vec::new();
    let mut other = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t
            .strip_prefix("export")
            .filter(|r| r.starts_with([' ', '\t']))
            .map(str::trim_start)
            .unwrap_or(t);
        let Some((key, raw)) = t.split_once('=') else {
            other.push((n, line.to_string()));
            continue;
        };
        let valid_key = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            other.push((n, line.to_string()));
            continue;
        }
        // A trailing ` # comment` after an unquoted or quoted value.
        let raw = match raw.find(" #").or_else(|| raw.find("\t#")) {
            Some(pos) if !raw.starts_with('\'') && !raw.starts_with('"') => raw[..pos].trim_end(),
            Some(pos)
                if raw[..pos].trim_end().len() > 1
                    && raw[..pos].trim_end().ends_with(&raw[..1]) =>
            {
                raw[..pos].trim_end()
            }
            _ => raw,
        };
        entries.push(EnvEntry {
            line: n,
            key: key.to_string(),
            value: literal(raw),
        });
    }
    (entries, other)
}

/// The conf text and every key that was not carried over, with why.
pub struct Converted {
    pub prefix: Option<String>,
    pub root: Option<String>,
    pub keys: Vec<(&'static Key, String)>,
    pub dropped: Vec<String>,
}

pub fn convert(entries: &[EnvEntry]) -> Converted {
    let mut c = Converted {
        prefix: None,
        root: None,
        keys: Vec::new(),
        dropped: Vec::new(),
    };
    for e in entries {
        let value = match &e.value {
            Ok(v) => v.clone(),
            Err(why) => {
                c.dropped.push(format!("line {}: {}: {why}", e.line, e.key));
                continue;
            }
        };
        let conf_key = match e.key.as_str() {
            "DOCKYARD_ROOT" => {
                c.root = Some(value);
                continue;
            }
            "DOCKYARD_DOCKER_PREFIX" => {
                c.prefix = Some(value);
                continue;
            }
            "DOCKYARD_BRIDGE_CIDR" => &keys::BRIDGE_CIDR,
            "DOCKYARD_FIXED_CIDR" => &keys::FIXED_CIDR,
            "DOCKYARD_POOL_BASE" => &keys::POOL_BASE,
            "DOCKYARD_POOL_SIZE" => &keys::POOL_SIZE,
            other => {
                c.dropped.push(format!(
                    "line {}: {other}: not a setting a conf has (see dockyard.conf(5))",
                    e.line
                ));
                continue;
            }
        };
        c.keys.retain(|(k, _)| k.name != conf_key.name);
        c.keys.push((conf_key, value));
    }
    c
}

pub fn run(args: &Args) -> Result<()> {
    let settings = Settings::from_env();
    let text = std::fs::read_to_string(&args.env_file)
        .map_err(|e| Failure::io("cannot read", &args.env_file, &e))?;
    let (entries, other) = parse_env(&text);
    let mut converted = convert(&entries);
    for (n, line) in other {
        converted
            .dropped
            .push(format!("line {n}: not a KEY=value assignment: {line}"));
    }
    let name = match (&args.name, &converted.prefix) {
        (Some(n), _) => n.clone(),
        (None, Some(p)) => p.strip_suffix('_').unwrap_or(p).to_string(),
        (None, None) => {
            return Err(Failure::new(
                Exit::Usage,
                format!(
                    "{} has no usable DOCKYARD_DOCKER_PREFIX; give the instance a name with --name",
                    args.env_file.display()
                ),
            ))
        }
    };
    let name = InstanceName::parse(&name).map_err(|e| Failure::new(Exit::Usage, e))?;
    let root = args.root.clone().or(converted.root.clone());

    let mut conf = format!(
        "# Imported by `dockyard import` from {}; see dockyard.conf(5).\n# The bash tool always ran sysbox-runc, the default {}.\n[{}]\n",
        args.env_file.display(),
        keys::RUNTIME.name,
        Section::Instance.name()
    );
    if let Some(r) = &root {
        conf.push_str(&keys::ROOT.line(r));
        conf.push('\n');
    }
    for (k, v) in &converted.keys {
        conf.push_str(&k.line(v));
        conf.push('\n');
    }
    for d in &converted.dropped {
        eprintln!("dockyard: not carried over: {d}");
    }
    let file_name = format!("{name}.conf");
    let target = settings.instances_dir.join(&file_name);
    // The same lock as `dockyard new`: a concurrent new must see this conf
    // (or this import its conf) before picking networks.
    let _lock = crate::new::lock(&crate::new::lock_path())?;
    let (instance, warnings) = validate(&settings, &name, &target, &conf).map_err(|m| {
        Failure::failed(format!(
            "{} does not make a valid conf; nothing was written:\n{m}",
            args.env_file.display()
        ))
    })?;
    for w in warnings {
        eprintln!("{w}");
    }
    let (defaults, _, _) = version_defaults(&settings.manifest_override);
    let (_, conflicts) = crate::check::against_dir(&settings, &defaults, vec![instance]);
    if !conflicts.is_empty() {
        let lines: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
        return Err(Failure::failed(format!(
            "the imported conf collides with an existing instance; nothing was written:\n{}",
            lines.join("\n")
        )));
    }
    let written =
        confwrite::write_new(&settings.instances_dir, &file_name, &conf).map_err(|e| match e {
            WriteError::Exists(p) => Failure::new(
                Exit::Refused,
                format!("refusing to overwrite {}", p.display()),
            ),
            WriteError::Io(p, e) => Failure::io("cannot write the conf", &p, &e),
        })?;
    println!("wrote {}", written.display());
    if !converted.dropped.is_empty() {
        println!(
            "{} line(s) not carried over (listed above); check {} before starting {}",
            converted.dropped.len(),
            written.display(),
            name.unit()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_export_and_comments() {
        let text = "# made by gen-env\n\
            export DOCKYARD_ROOT=/dy1\n\
            DOCKYARD_DOCKER_PREFIX=\"dy1_\"\n\
            DOCKYARD_BRIDGE_CIDR='172.22.147.1/24'\n\
            export\tDOCKYARD_POOL_BASE=\"172.23.0.0/16\"  # pool\n\
            \n\
            DOCKYARD_POOL_SIZE=24 # size\n";
        let (entries, other) = parse_env(text);
        assert!(other.is_empty(), "{other:?}");
        let got: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_deref().expect("literal")))
            .collect();
        assert_eq!(
            got,
            [
                ("DOCKYARD_ROOT", "/dy1"),
                ("DOCKYARD_DOCKER_PREFIX", "dy1_"),
                ("DOCKYARD_BRIDGE_CIDR", "172.22.147.1/24"),
                ("DOCKYARD_POOL_BASE", "172.23.0.0/16"),
                ("DOCKYARD_POOL_SIZE", "24"),
            ]
        );
        let c = convert(&entries);
        assert_eq!(c.prefix.as_deref(), Some("dy1_"));
        assert!(c.dropped.is_empty());
    }

    #[test]
    fn shell_syntax_is_refused_per_key() {
        let text = "DOCKYARD_ROOT=$(touch /tmp/x)\n\
            DOCKYARD_BRIDGE_CIDR=`id`\n\
            DOCKYARD_POOL_BASE=\"${HOME}\"\n\
            DOCKYARD_FIXED_CIDR=a;b\n\
            DOCKYARD_POOL_SIZE='24'\n\
            source /etc/profile\n";
        let (entries, other) = parse_env(text);
        assert_eq!(other.len(), 1);
        let refused: Vec<&str> = entries
            .iter()
            .filter(|e| e.value.is_err())
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(
            refused,
            [
                "DOCKYARD_ROOT",
                "DOCKYARD_BRIDGE_CIDR",
                "DOCKYARD_POOL_BASE",
                "DOCKYARD_FIXED_CIDR"
            ]
        );
        let c = convert(&entries);
        assert_eq!(c.dropped.len(), 4);
        assert!(
            c.dropped[0].contains("command substitution"),
            "{:?}",
            c.dropped
        );
        let keys: Vec<(&str, &str)> = c.keys.iter().map(|(k, v)| (k.name, v.as_str())).collect();
        assert_eq!(keys, [("PoolSize", "24")]);
    }
}

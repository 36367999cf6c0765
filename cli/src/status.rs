//! `dockyard status [NAME] [--json]`: one line per instance (confs, plus
//! running instances without one), from systemd, the socket, the bridge,
//! the firewall, the Docker API and the artifact store. Read-only; what
//! cannot be read without root is shown as "unknown (needs root)".

use crate::error::{Exit, Failure, Result};
use crate::probe::host::{self, Known};
use crate::probe::http::{self, HttpError};
use dockyard_model::firewall::{self, Ruleset};
use dockyard_model::{paths, InstanceName};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this instance
    pub name: Option<String>,
    /// Print a JSON array, one object per instance
    #[arg(long)]
    pub json: bool,
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the status was printed (unknowns, e.g. \"unknown (needs root)\", are not failures)
  1  NAME is given and there is no conf and no bridge of that name
  2  usage error: bad NAME or option";

const API_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: &Args) -> Result<()> {
    let mut known = host::known_instances();
    if let Some(n) = &args.name {
        let name = InstanceName::parse(n).map_err(|e| Failure::new(Exit::Usage, e))?;
        known.retain(|k| k.name == name);
        if known.is_empty() {
            return Err(Failure::failed(format!(
                "no instance {name}: no conf {}/{name}.conf and no bridge {}",
                paths::instances_dir().display(),
                name.bridge()
            )));
        }
    }
    let live = host::live_rules();
    let units: Vec<String> = known
        .iter()
        .flat_map(|k| [k.name.unit(), k.name.containerd_unit()])
        .collect();
    let states = host::unit_states(&units);
    let reports: Vec<Value> = known
        .iter()
        .map(|k| {
            let state_of = |unit: String| match &states {
                Ok(m) => m
                    .get(&unit)
                    .cloned()
                    .ok_or_else(|| "unknown (systemctl did not report it)".to_string()),
                Err(e) => Err(e.clone()),
            };
            report(
                k,
                state_of(k.name.unit()),
                state_of(k.name.containerd_unit()),
                &live,
            )
        })
        .collect();
    if args.json {
        let text = serde_json::to_string_pretty(&Value::Array(reports))
            .map_err(|e| Failure::failed(format!("cannot encode the status: {e}")))?;
        println!("{text}");
    } else if reports.is_empty() {
        println!(
            "no instances: no confs in {} and no running instance",
            paths::instances_dir().display()
        );
    } else {
        for r in &reports {
            println!("{}", line(r));
        }
    }
    Ok(())
}

/// Everything about one instance, as the JSON object of `--json`.
pub fn report(
    k: &Known,
    unit: std::result::Result<host::UnitState, String>,
    containerd: std::result::Result<host::UnitState, String>,
    live: &std::result::Result<String, String>,
) -> Value {
    let name = &k.name;
    let unit_json = |unit: std::result::Result<host::UnitState, String>| match unit {
        Ok(u) => json!({"load": u.load, "active": u.active, "sub": u.sub}),
        Err(e) => json!({"error": e}),
    };
    let unit = unit_json(unit);
    let mut containerd = unit_json(containerd);
    containerd["unit"] = Value::from(name.containerd_unit());
    containerd["socket"] = Value::from(name.containerd_socket());
    let root: Option<String> = match &k.instance {
        Some(i) => Some(i.root.clone()),
        None => host::recorded_cleanup(name).map(|c| c.root.to_string_lossy().into_owned()),
    };
    let socket_path = root
        .as_ref()
        .map(|r| PathBuf::from(format!("{r}/docker.sock")));
    let socket = match &socket_path {
        None => json!({"error": "unknown (no valid conf and no recorded root)"}),
        Some(p) => match host::socket_info(p) {
            Ok(s) => json!({
                "path": s.path,
                "exists": s.exists,
                "owner": s.owner,
                "group": s.group,
                "mode": format!("{:04o}", s.mode),
                "ok": s.problem(name).is_none(),
            }),
            Err(e) => json!({"path": p, "error": e}),
        },
    };
    let bridge = if host::bridge_exists(name) {
        "present"
    } else {
        "absent"
    };
    let net = match &k.instance {
        Some(i) => Some(i.network()),
        None => host::recorded_network(name),
    };
    let backend = firewall::backend();
    let rules = match (live, &net) {
        (Err(e), _) => json!({"state": e}),
        (Ok(live), Some(net)) => {
            let a = backend.audit(live, &Ruleset::of(net));
            json!({
                "state": a.state(),
                "present": a.ok.len() + a.duplicated.len(),
                "expected": a.total(),
                "missing": a.missing.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                "duplicated": a.duplicated.iter().map(|(e, n)| json!({"rule": e.to_string(), "count": n})).collect::<Vec<_>>(),
                "stray": a.stray.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                "backend": backend.name(),
            })
        }
        (Ok(live), None) => {
            let lines: Vec<String> = backend
                .residue(live, name)
                .iter()
                .map(|l| l.to_string())
                .collect();
            json!({
                "state": if lines.is_empty() { "absent" } else { "unknown (networks unknown: no conf)" },
                "present": lines.len(),
                "stray": lines,
            })
        }
    };
    let (containers, containers_error) = match &socket_path {
        Some(p) if bridge == "present" || p.exists() => container_count(p, name),
        _ => (Value::Null, Value::from("not running")),
    };
    let docker = match &k.instance {
        Some(i) => {
            json!({"version": i.docker_version, "installed": host::docker_installed(&i.docker_version)})
        }
        None => Value::Null,
    };
    json!({
        "name": name.as_str(),
        "conf": k.conf,
        "conf_error": k.conf_error,
        "runtime": k.instance.as_ref().map(|i| i.runtime.as_str()),
        "unit": unit,
        "containerd": containerd,
        "socket": socket,
        "bridge": bridge,
        "firewall": rules,
        "containers": containers,
        "containers_error": containers_error,
        "docker": docker,
    })
}

/// Running containers, from `GET /containers/json` on the socket.
fn container_count(socket: &std::path::Path, name: &InstanceName) -> (Value, Value) {
    match http::get(socket, "/containers/json", API_TIMEOUT) {
        Ok(r) if r.is_success() => match r.json() {
            Ok(Value::Array(a)) => (Value::from(a.len()), Value::Null),
            Ok(other) => (
                Value::Null,
                Value::from(format!("unexpected answer: {other}")),
            ),
            Err(e) => (Value::Null, Value::from(e)),
        },
        Ok(r) => (
            Value::Null,
            Value::from(format!(
                "the API answered HTTP {}: {}",
                r.status,
                r.text().trim()
            )),
        ),
        Err(HttpError::PermissionDenied(_)) => (
            Value::Null,
            Value::from(format!(
                "unknown (needs root or membership in group {})",
                name.account()
            )),
        ),
        Err(HttpError::NotListening(_)) => (Value::Null, Value::from("not running")),
        Err(e) => (Value::Null, Value::from(e.to_string())),
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The one-line form of a report.
fn unit_text(unit: &Value) -> String {
    match unit.get("error").and_then(Value::as_str) {
        Some(e) => e.to_string(),
        None if s(unit, "load") == "not-found" => "no unit".into(),
        None => format!("{}/{}", s(unit, "active"), s(unit, "sub")),
    }
}

pub fn line(r: &Value) -> String {
    let unit = unit_text(&r["unit"]);
    let containerd = match &r["containerd"] {
        Value::Null => String::new(),
        c => format!("; containerd {}", unit_text(c)),
    };
    let sock = &r["socket"];
    let socket = match sock.get("error").and_then(Value::as_str) {
        Some(e) => e.to_string(),
        None if sock["exists"] == Value::Bool(false) => "absent".into(),
        None => format!(
            "{}:{} {}{}",
            s(sock, "owner"),
            s(sock, "group"),
            s(sock, "mode"),
            if sock["ok"] == Value::Bool(true) {
                ""
            } else {
                " (wrong)"
            }
        ),
    };
    let fw = &r["firewall"];
    let rules = match (fw.get("present"), fw.get("expected")) {
        (Some(p), Some(e)) => format!("{} {p}/{e}", s(fw, "state")),
        (Some(p), None) => format!("{} ({p} lines)", s(fw, "state")),
        _ => s(fw, "state").to_string(),
    };
    let containers = match &r["containers"] {
        Value::Number(n) => n.to_string(),
        _ => s(r, "containers_error").to_string(),
    };
    let docker = match &r["docker"] {
        Value::Null => "unknown".to_string(),
        d => format!(
            "{} ({})",
            s(d, "version"),
            if d["installed"] == Value::Bool(true) {
                "installed"
            } else {
                "NOT installed"
            }
        ),
    };
    let mut out = format!(
        "{}: unit {unit}{containerd}; socket {socket}; bridge {}; rules {rules}; containers {containers}; docker {docker}",
        s(r, "name"),
        s(r, "bridge"),
    );
    if r["conf"].is_null() {
        out.push_str("; no conf");
    }
    if let Some(e) = r["conf_error"].as_str() {
        out.push_str(&format!("; conf invalid: {e}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_summarises_a_report() {
        let r = json!({
            "name": "dy1", "conf": "/etc/dockyard/instances.d/dy1.conf", "conf_error": null,
            "unit": {"load": "loaded", "active": "active", "sub": "running"},
            "containerd": {"load": "loaded", "active": "active", "sub": "running"},
            "socket": {"path": "/srv/dy1/docker.sock", "exists": true, "owner": "root", "group": "dy1_docker", "mode": "0660", "ok": true},
            "bridge": "present",
            "firewall": {"state": "present", "present": 9, "expected": 9},
            "containers": 2, "containers_error": null,
            "docker": {"version": "29.2.1", "installed": true},
        });
        assert_eq!(
            line(&r),
            "dy1: unit active/running; containerd active/running; socket root:dy1_docker 0660; bridge present; rules present 9/9; containers 2; docker 29.2.1 (installed)"
        );
        let r = json!({
            "name": "dy2", "conf": null, "conf_error": null,
            "unit": {"error": "unknown (System has not been booted with systemd)"},
            "socket": {"error": "unknown (needs root)"},
            "bridge": "present",
            "firewall": {"state": "unknown (needs root)"},
            "containers": null, "containers_error": "unknown (needs root or membership in group dy2_docker)",
            "docker": null,
        });
        assert_eq!(
            line(&r),
            "dy2: unit unknown (System has not been booted with systemd); socket unknown (needs root); bridge present; rules unknown (needs root); containers unknown (needs root or membership in group dy2_docker); docker unknown; no conf"
        );
    }
}

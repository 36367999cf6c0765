//! An instance's slice as the kernel accounts it: what its daemons and
//! containers use now and the limits in force, from the cgroup v2 files
//! of `dockyard.slice/dockyard-NAME.slice`. These files are world-readable,
//! so `status` shows them without root. The limits are read from the
//! kernel, not from the conf: they include `systemctl set-property`
//! changes, and show what actually holds.

use serde::Serialize;
use std::fmt;
use std::path::Path;

/// A limit as cgroup v2 writes it: a number, or `max` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Max,
    Value(u64),
}

/// `"max"` or the number, as in the cgroup file.
impl Serialize for Bound {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Bound::Max => s.serialize_str("max"),
            Bound::Value(v) => s.serialize_u64(*v),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    /// `memory.current`, bytes.
    pub current: Option<u64>,
    /// `memory.max`: above it the kernel's OOM killer acts inside the slice.
    pub max: Option<Bound>,
    /// `memory.high`: above it the slice is throttled and reclaimed.
    pub high: Option<Bound>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cpu {
    /// `cpu.stat` `usage_usec`: CPU time used since the slice was created.
    pub usage_usec: Option<u64>,
    /// `cpu.max` as a share of one CPU (150 = one and a half CPUs);
    /// `"max"` when unlimited.
    pub quota_percent: Option<QuotaPercent>,
}

/// A CPU quota in percent of one CPU, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuotaPercent {
    Max,
    Percent(f64),
}

impl Serialize for QuotaPercent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            QuotaPercent::Max => s.serialize_str("max"),
            QuotaPercent::Percent(p) => s.serialize_f64(*p),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tasks {
    /// `pids.current`: processes and threads.
    pub current: Option<u64>,
    /// `pids.max`.
    pub max: Option<Bound>,
}

/// The slice's figures. A file that cannot be read leaves its figure
/// `null` and says why in `unread` (a controller not enabled on this
/// host, say), so a missing number never reads as zero.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub memory: Memory,
    pub cpu: Cpu,
    pub tasks: Tasks,
    pub unread: Vec<String>,
}

/// Reads the slice's files below `dir`; `None` when there is no such
/// cgroup (the slice is not active: the instance has not run since boot,
/// or the slice was stopped).
pub fn read(dir: &Path) -> Option<Usage> {
    if !dir.is_dir() {
        return None;
    }
    let mut unread = Vec::new();
    let mut file = |name: &str| match std::fs::read_to_string(dir.join(name)) {
        Ok(t) => Some(t),
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "no such file (its controller is not enabled for this cgroup)".to_string()
                }
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            unread.push(format!("{name}: {why}"));
            None
        }
    };
    let memory = Memory {
        current: file("memory.current").and_then(|t| number(&t)),
        max: file("memory.max").and_then(|t| bound(&t)),
        high: file("memory.high").and_then(|t| bound(&t)),
    };
    let cpu = Cpu {
        usage_usec: file("cpu.stat").and_then(|t| stat_field(&t, "usage_usec")),
        quota_percent: file("cpu.max").and_then(|t| cpu_max(&t)),
    };
    let tasks = Tasks {
        current: file("pids.current").and_then(|t| number(&t)),
        max: file("pids.max").and_then(|t| bound(&t)),
    };
    Some(Usage {
        memory,
        cpu,
        tasks,
        unread,
    })
}

/// Bytes as systemd shows them: base 1024, one decimal, `50.0M`.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = ["K", "M", "G", "T", "P", "E"];
        let mut value = self.0 as f64;
        let mut unit = None;
        for u in units {
            if value < 1024.0 {
                break;
            }
            value /= 1024.0;
            unit = Some(u);
        }
        match unit {
            None => write!(f, "{}B", self.0),
            Some(u) => write!(f, "{value:.1}{u}"),
        }
    }
}

impl fmt::Display for Usage {
    /// `memory 50.0M/2.0G (high max); cpu 1.2s/150%; tasks 37/512`, with
    /// `?` for a figure that could not be read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = |b: Option<Bound>| match b {
            None => "?".to_string(),
            Some(Bound::Max) => "max".to_string(),
            Some(Bound::Value(v)) => Bytes(v).to_string(),
        };
        let count = |b: Option<Bound>| match b {
            None => "?".to_string(),
            Some(Bound::Max) => "max".to_string(),
            Some(Bound::Value(v)) => v.to_string(),
        };
        write!(
            f,
            "memory {}/{}",
            bytes(self.memory.current.map(Bound::Value)),
            bytes(self.memory.max)
        )?;
        if let Some(Bound::Value(_)) = self.memory.high {
            write!(f, " (high {})", bytes(self.memory.high))?;
        }
        match self.cpu.usage_usec {
            Some(us) => write!(f, "; cpu {:.1}s/", us as f64 / 1e6)?,
            None => f.write_str("; cpu ?/")?,
        }
        match self.cpu.quota_percent {
            None => f.write_str("?")?,
            Some(QuotaPercent::Max) => f.write_str("max")?,
            Some(QuotaPercent::Percent(p)) => write!(f, "{p}%")?,
        }
        write!(
            f,
            "; tasks {}/{}",
            count(self.tasks.current.map(Bound::Value)),
            count(self.tasks.max)
        )
    }
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

fn bound(text: &str) -> Option<Bound> {
    match text.trim() {
        "max" => Some(Bound::Max),
        t => t.parse().ok().map(Bound::Value),
    }
}

/// One `key value` line of a flat-keyed file such as `cpu.stat`.
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| number(v))
}

/// `cpu.max` is `QUOTA PERIOD` in microseconds, `max PERIOD` for none.
fn cpu_max(text: &str) -> Option<QuotaPercent> {
    let mut words = text.split_whitespace();
    let quota = words.next()?;
    let period: u64 = words.next()?.parse().ok().filter(|p| *p > 0)?;
    if quota == "max" {
        return Some(QuotaPercent::Max);
    }
    let quota: u64 = quota.parse().ok()?;
    // Rounded to 1/100 %, as systemd shows CPUQuota=.
    let percent = (quota as f64 * 10000.0 / period as f64).round() / 100.0;
    Some(QuotaPercent::Percent(percent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).expect("write");
        }
        d
    }

    #[test]
    fn reads_figures_and_limits() {
        let d = dir(&[
            ("memory.current", "52428800\n"),
            ("memory.max", "2147483648\n"),
            ("memory.high", "max\n"),
            (
                "cpu.stat",
                "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n",
            ),
            ("cpu.max", "150000 100000\n"),
            ("pids.current", "37\n"),
            ("pids.max", "512\n"),
        ]);
        let u = read(d.path()).expect("present");
        assert_eq!(
            u.memory,
            Memory {
                current: Some(52428800),
                max: Some(Bound::Value(2147483648)),
                high: Some(Bound::Max)
            }
        );
        assert_eq!(u.cpu.usage_usec, Some(1234567));
        assert_eq!(u.cpu.quota_percent, Some(QuotaPercent::Percent(150.0)));
        assert_eq!(u.tasks.current, Some(37));
        assert_eq!(u.tasks.max, Some(Bound::Value(512)));
        assert!(u.unread.is_empty(), "{:?}", u.unread);
    }

    #[test]
    fn a_missing_controller_is_null_and_said_not_zero() {
        let d = dir(&[("cpu.stat", "usage_usec 10\n")]);
        let u = read(d.path()).expect("present");
        assert_eq!(u.memory.current, None);
        assert_eq!(u.tasks.max, None);
        assert_eq!(u.cpu.usage_usec, Some(10));
        assert!(u.unread.contains(
            &"memory.current: no such file (its controller is not enabled for this cgroup)"
                .to_string()
        ));
        assert_eq!(u.unread.len(), 6, "{:?}", u.unread);
        assert!(read(&d.path().join("gone")).is_none());
    }

    #[test]
    fn line_form() {
        let d = dir(&[
            ("memory.current", "52428800\n"),
            ("memory.max", "2147483648\n"),
            ("memory.high", "1610612736\n"),
            ("cpu.stat", "usage_usec 1234567\n"),
            ("cpu.max", "max 100000\n"),
            ("pids.current", "37\n"),
        ]);
        assert_eq!(
            read(d.path()).expect("present").to_string(),
            "memory 50.0M/2.0G (high 1.5G); cpu 1.2s/max; tasks 37/?"
        );
        assert_eq!(Bytes(512).to_string(), "512B");
        assert_eq!(Bytes(1536).to_string(), "1.5K");
    }

    #[test]
    fn cpu_max_forms() {
        assert_eq!(cpu_max("max 100000\n"), Some(QuotaPercent::Max));
        assert_eq!(cpu_max("50000 100000"), Some(QuotaPercent::Percent(50.0)));
        assert_eq!(cpu_max("12500 100000"), Some(QuotaPercent::Percent(12.5)));
        assert_eq!(cpu_max("1 0"), None);
        assert_eq!(cpu_max("junk"), None);
    }

    #[test]
    fn json_writes_max_as_the_kernel_does() {
        let t = Tasks {
            current: Some(3),
            max: Some(Bound::Max),
        };
        assert_eq!(
            serde_json::to_value(t).expect("json"),
            serde_json::json!({"current": 3, "max": "max"})
        );
    }
}

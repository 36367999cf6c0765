//! `[Resources]`: limits for a whole instance (its dockerd, containerd,
//! shims and containers), written with systemd's own names and value
//! syntax (systemd.resource-control(5)) because they end up, unchanged, in
//! the instance's slice `dockyard-NAME.slice`.
//!
//! Each check accepts what systemd's parser for that setting accepts
//! (`parse_size` base 1024, `parse_permyriad`, `parse_cpu_set`, the weight
//! ranges), minus the spellings no admin writes, so that a value that
//! passes here is never dropped by systemd with only a journal line.

/// One `[Resources]` setting as it goes into the slice: the key's name
/// (from the key table) and the value as the admin wrote it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: &'static str,
    pub value: String,
}

/// The largest CPU number `AllowedCPUs=` may name (systemd's CPU sets go
/// up to 8192 CPUs).
const MAX_CPU: u32 = 8191;

/// `MemoryMax=`, `MemoryHigh=`, `MemorySwapMax=`: bytes with an optional
/// K, M, G, T, P or E suffix (base 1024), a percentage of the host's
/// memory, or `infinity`.
pub fn check_memory(value: &str) -> Result<(), String> {
    if value == "infinity" {
        return Ok(());
    }
    if let Some(pct) = value.strip_suffix('%') {
        return check_percent(pct, Some(100)).map_err(|m| format!("{m} of the host's memory"));
    }
    let digits = value.trim_end_matches(['K', 'M', 'G', 'T', 'P', 'E']);
    let suffix = &value[digits.len()..];
    if suffix.len() > 1 || !is_decimal(digits) || (digits.contains('.') && suffix.is_empty()) {
        return Err(format!(
            "not a size: write bytes with an optional K, M, G, T suffix (base 1024), e.g. 512M or 2G, a percentage of the host's memory like 25%, or infinity{}",
            crate::network::comment_hint(value)
        ));
    }
    Ok(())
}

/// `CPUQuota=`: a percentage of one CPU's time, above 100% for more than
/// one CPU (200% = two CPUs' worth).
pub fn check_cpu_quota(value: &str) -> Result<(), String> {
    match value.strip_suffix('%') {
        Some(pct) => check_percent(pct, None).and_then(|()| {
            if pct.bytes().all(|b| b == b'0' || b == b'.') {
                Err(
                    "0% would stop every process of the instance; give a positive share, e.g. 150%"
                        .into(),
                )
            } else {
                Ok(())
            }
        }),
        None => Err(format!(
            "not a percentage: write a share of one CPU like 50% or 200% (two CPUs){}",
            crate::network::comment_hint(value)
        )),
    }
}

/// `CPUWeight=` and `IOWeight=`: 1 to 10000, 100 being every other slice's
/// default.
pub fn check_weight(value: &str) -> Result<(), String> {
    match value.parse::<u32>() {
        Ok(w) if (1..=10000).contains(&w) && value.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!(
            "not a weight from 1 to 10000 (100 is the default of every other slice){}",
            crate::network::comment_hint(value)
        )),
    }
}

/// `TasksMax=`: a number of tasks (processes and threads), a percentage
/// of the kernel's limit, or `infinity`.
pub fn check_tasks(value: &str) -> Result<(), String> {
    if value == "infinity" {
        return Ok(());
    }
    if let Some(pct) = value.strip_suffix('%') {
        return check_percent(pct, Some(100))
            .map_err(|m| format!("{m} of the kernel's task limit"));
    }
    match value.parse::<u64>() {
        Ok(n) if n > 0 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!(
            "not a task count: write a positive number like 512, a percentage like 10%, or infinity{}",
            crate::network::comment_hint(value)
        )),
    }
}

/// `AllowedCPUs=`: CPU numbers and ranges separated by commas or spaces,
/// e.g. `0-3,5`.
pub fn check_cpu_list(value: &str) -> Result<(), String> {
    let bad = |why: String| {
        Err(format!(
            "{why}; write CPU numbers and ranges like 0-3,5{}",
            crate::network::comment_hint(value)
        ))
    };
    for word in value.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        let (lo, hi) = word.split_once('-').unwrap_or((word, word));
        let (Some(lo), Some(hi)) = (cpu_number(lo), cpu_number(hi)) else {
            return bad(format!("{word:?} is not a CPU number or range"));
        };
        if lo > hi {
            return bad(format!("the range {word} runs backwards"));
        }
        if hi > MAX_CPU {
            return bad(format!("CPU {hi} is beyond the {MAX_CPU} systemd can name"));
        }
    }
    Ok(())
}

fn cpu_number(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The number before `%`: digits with at most two decimals (systemd counts
/// in 1/10000), at most `max` percent when given.
fn check_percent(number: &str, max: Option<u64>) -> Result<(), String> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let permyriad = (is_decimal(number) && frac.len() <= 2)
        .then(|| whole.parse::<u64>().ok())
        .flatten()
        .and_then(|w| w.checked_mul(100))
        .and_then(|w| w.checked_add(format!("{frac:0<2}").parse::<u64>().unwrap_or(0)));
    match (permyriad, max) {
        (None, _) => Err(format!("{number}% is not a percentage like 25% or 12.5%")),
        (Some(p), Some(max)) if p > max * 100 => Err(format!("{number}% is more than {max}%")),
        _ => Ok(()),
    }
}

/// Digits, optionally one `.` followed by digits.
fn is_decimal(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_as_systemd_writes_them() {
        for ok in [
            "512M",
            "2G",
            "1.5G",
            "1073741824",
            "1T",
            "25%",
            "12.5%",
            "100%",
            "infinity",
        ] {
            assert!(check_memory(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "2GB", "2g", "G", "1.5", "-1G", "101%", "100.5%", "1.255%", "2G # cap", "max",
            "2 G",
        ] {
            assert!(check_memory(bad).is_err(), "{bad}");
        }
        assert!(check_memory("2G # cap").unwrap_err().contains("comment"));
    }

    #[test]
    fn cpu_quota_is_a_positive_percentage() {
        for ok in ["50%", "200%", "12.5%", "1000%"] {
            assert!(check_cpu_quota(ok).is_ok(), "{ok}");
        }
        for bad in ["50", "0%", "0.00%", "-5%", "%", "1.234%", "half"] {
            assert!(check_cpu_quota(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_from_1_to_10000() {
        for ok in ["1", "100", "10000"] {
            assert!(check_weight(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "10001", "+5", "idle ", "1e3", ""] {
            assert!(check_weight(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tasks() {
        for ok in ["1", "512", "10%", "infinity"] {
            assert!(check_tasks(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "-1", "512 tasks", "110%", "lots"] {
            assert!(check_tasks(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_lists() {
        for ok in ["0", "0-3,5", "0-1 4-5", "1,2,3", "8191"] {
            assert!(check_cpu_list(ok).is_ok(), "{ok}");
        }
        for bad in ["3-1", "a", "0-", "-1", "8192", "0;1", "0..3"] {
            assert!(check_cpu_list(bad).is_err(), "{bad}");
        }
        assert!(check_cpu_list("3-1").unwrap_err().contains("backwards"));
    }
}

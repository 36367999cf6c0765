//! How long and how slowly a download may go on, and how large it may grow:
//! the knobs of `dockyard install` (flags with environment fallbacks) and the
//! watch that applies them across all attempts of one artifact.
//!
//! The rules, as dockyard(8) states them:
//!
//! - **connect**: each connection must be established within this time.
//! - **idle**: the download gives up when no byte has arrived for this long,
//!   counted across reconnections. A connection is given half of it (all of
//!   it once the server has shown it cannot resume), then re-opened, so that
//!   one that went silent mid-body (a NAT mapping dropped during a long
//!   download) is resumed within the same bound; every attempt's timeouts
//!   are capped by what is left of the bound.
//! - **minimum rate over a window**: once a download has run for a whole
//!   window, the bytes received in the last window, divided by its length,
//!   must reach the minimum. Reconnections and back-off count as time, so a
//!   server cannot keep the installer forever with a byte per connection.
//! - no overall deadline: a download that keeps up the rate runs to the end.
//! - **size**: the pinned size, else `--max-size`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const DEFAULT_CONNECT: &str = "30";
pub const DEFAULT_IDLE: &str = "30";
pub const DEFAULT_MIN_RATE: &str = "16K";
pub const DEFAULT_WINDOW: &str = "60";
pub const DEFAULT_MAX_SIZE: &str = "512M";

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect: Duration,
    pub idle: Duration,
    /// Bytes per second.
    pub min_rate: u64,
    pub window: Duration,
    /// The bound for artifacts whose manifest entry has no size.
    pub max_size: u64,
}

impl Limits {
    /// How long one read (or the wait for response headers) may block in
    /// an attempt: half the idle timeout unless the server is known not to
    /// resume (re-opening would then start again from byte 0), and never
    /// beyond what is left of the idle bound after `quiet` without a byte.
    pub fn read_timeout(&self, resumable: Option<bool>, quiet: Duration) -> Duration {
        let t = if resumable == Some(false) {
            self.idle
        } else {
            self.idle / 2
        };
        t.min(self.idle.saturating_sub(quiet))
            .max(Duration::from_millis(100))
    }
}

/// `30`, `30s`, `1.5`, `500ms`, `2m`: a positive duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (seconds, or with ms, s or m)"))?;
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!(
            "{text:?}: give a duration above 0 and at most a day"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `16384`, `16K`, `16KiB`, `1M`, `2G`: a byte count (K = 1024). `0` is
/// allowed where the caller allows it (a minimum rate of 0 switches the rate
/// check off).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let stripped = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (number, shift) = match stripped.chars().last() {
        Some('k') => (&stripped[..stripped.len() - 1], 10),
        Some('m') => (&stripped[..stripped.len() - 1], 20),
        Some('g') => (&stripped[..stripped.len() - 1], 30),
        _ => (stripped, 0),
    };
    let value: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size (bytes, or with K, M or G)"))?;
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

pub fn parse_size(text: &str) -> Result<u64, String> {
    match parse_bytes(text)? {
        0 => Err(format!("{text:?}: a size must be above 0")),
        n => Ok(n),
    }
}

/// Human-readable bytes for messages: `512 B`, `16.0 KiB`, `75.3 MiB`.
pub fn show_bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if f < K {
        format!("{n} B")
    } else if f < K * K {
        format!("{:.1} KiB", f / K)
    } else if f < K * K * K {
        format!("{:.1} MiB", f / (K * K))
    } else {
        format!("{:.1} GiB", f / (K * K * K))
    }
}

/// Why the watch ended a download.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// Nothing received for the idle timeout.
    Idle(Duration),
    /// Received this many bytes over the last `window`.
    TooSlow {
        bytes: u64,
        over: Duration,
    },
}

/// Idle time and average rate across every attempt of one artifact. Times
/// are passed in, so the rules are tested without sleeping.
pub struct Watch {
    limits: Limits,
    started: Instant,
    last_byte: Instant,
    received: u64,
    /// (time, bytes received by then), oldest first; the front is the
    /// newest sample at least a window old, the baseline of the average.
    samples: VecDeque<(Instant, u64)>,
}

/// Samples are at least this far apart (one per read would be tens of
/// thousands per window on a fast link).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

impl Watch {
    pub fn new(limits: Limits, now: Instant) -> Watch {
        let mut samples = VecDeque::new();
        samples.push_back((now, 0));
        Watch {
            limits,
            started: now,
            last_byte: now,
            received: 0,
            samples,
        }
    }

    /// `n` more bytes arrived at `now`.
    pub fn received(&mut self, n: u64, now: Instant) {
        if n == 0 {
            return;
        }
        self.received += n;
        self.last_byte = now;
        // At most one sample per SAMPLE_EVERY: a baseline taken up to that
        // much too early makes the average over the window a little higher,
        // never lower.
        let due = self
            .samples
            .back()
            .map_or(true, |last| now.duration_since(last.0) >= SAMPLE_EVERY);
        if due {
            self.samples.push_back((now, self.received));
        }
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        // Keep exactly one sample older than the window: the baseline.
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|s| now.duration_since(s.0) >= self.limits.window)
        {
            self.samples.pop_front();
        }
    }

    pub fn since_last_byte(&self, now: Instant) -> Duration {
        now.duration_since(self.last_byte)
    }

    /// Whether the download may go on at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let quiet = self.since_last_byte(now);
        if quiet >= self.limits.idle {
            return Verdict::Idle(quiet);
        }
        if self.limits.min_rate == 0 || now.duration_since(self.started) < self.limits.window {
            return Verdict::Go;
        }
        self.trim(now);
        let Some(&(t0, b0)) = self.samples.front() else {
            return Verdict::Go;
        };
        let over = now.duration_since(t0);
        let bytes = self.received - b0;
        // bytes / over < min_rate, without dividing by a tiny duration.
        if (bytes as f64) < self.limits.min_rate as f64 * over.as_secs_f64() {
            return Verdict::TooSlow { bytes, over };
        }
        Verdict::Go
    }

    /// Whether a retry after sleeping `delay` could still receive a byte
    /// before the idle timeout ends the download.
    pub fn may_retry_after(&self, delay: Duration, now: Instant) -> bool {
        self.since_last_byte(now) + delay < self.limits.idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            connect: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            min_rate: 16 * 1024,
            window: Duration::from_secs(60),
            max_size: 512 << 20,
        }
    }

    #[test]
    fn parses_durations_and_sizes() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["0", "-1", "x", "", "nan", "1e9"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_bytes("16K"), Ok(16384));
        assert_eq!(parse_bytes("16KiB"), Ok(16384));
        assert_eq!(parse_bytes("16kb"), Ok(16384));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_size("0").is_err());
        assert!(parse_bytes("99999999999999G").is_err());
        assert!(parse_bytes("1.5M").is_err());
    }

    #[test]
    fn a_steady_download_at_twice_the_minimum_never_stops() {
        let t0 = Instant::now();
        let mut w = Watch::new(limits(), t0);
        // 32 KiB/s in 8 KiB reads for ten minutes: no deadline.
        for i in 1..=2400u64 {
            let now = t0 + Duration::from_millis(250 * i);
            w.received(8 * 1024, now);
            assert_eq!(w.check(now), Verdict::Go, "at {i}");
        }
        assert!(
            w.samples.len() < 700,
            "samples are trimmed: {}",
            w.samples.len()
        );
    }

    #[test]
    fn a_trickle_is_stopped_after_one_window() {
        let t0 = Instant::now();
        let mut w = Watch::new(limits(), t0);
        // A byte every second: never idle, far below the rate.
        let mut stopped = None;
        for s in 1..=120u64 {
            let now = t0 + Duration::from_secs(s);
            w.received(1, now);
            if let Verdict::TooSlow { bytes, over } = w.check(now) {
                stopped = Some((s, bytes, over));
                break;
            }
        }
        let (at, bytes, over) = stopped.expect("stopped");
        assert_eq!(at, 60, "judged once a whole window has passed");
        assert!(
            bytes <= 60 && over >= Duration::from_secs(60),
            "{bytes} {over:?}"
        );
    }

    #[test]
    fn a_burst_then_silence_is_idle_and_slow_start_is_judged_late() {
        let t0 = Instant::now();
        let mut w = Watch::new(limits(), t0);
        w.received(1 << 20, t0 + Duration::from_secs(1));
        assert_eq!(w.check(t0 + Duration::from_secs(30)), Verdict::Go);
        assert_eq!(
            w.check(t0 + Duration::from_secs(31)),
            Verdict::Idle(Duration::from_secs(30))
        );
        assert!(w.may_retry_after(Duration::from_secs(1), t0 + Duration::from_secs(20)));
        assert!(!w.may_retry_after(Duration::from_secs(1), t0 + Duration::from_secs(30)));
        // Nothing at all: idle after 30 s, from the start of the download.
        let mut w = Watch::new(limits(), t0);
        assert_eq!(w.check(t0 + Duration::from_secs(29)), Verdict::Go);
        assert!(matches!(
            w.check(t0 + Duration::from_secs(30)),
            Verdict::Idle(_)
        ));
    }

    #[test]
    fn the_average_covers_the_last_window_only() {
        let t0 = Instant::now();
        let mut w = Watch::new(limits(), t0);
        // A fast first minute does not pay for a slow second one.
        for s in 1..=60u64 {
            w.received(1 << 20, t0 + Duration::from_secs(s));
        }
        for s in 61..=200u64 {
            let now = t0 + Duration::from_secs(s);
            w.received(100, now);
            if let Verdict::TooSlow { .. } = w.check(now) {
                assert!((119..=121).contains(&s), "stopped at {s}");
                return;
            }
        }
        panic!("never stopped");
    }

    #[test]
    fn read_timeouts() {
        let l = limits();
        let s = Duration::from_secs;
        assert_eq!(l.read_timeout(None, s(0)), s(15));
        assert_eq!(l.read_timeout(Some(true), s(0)), s(15));
        assert_eq!(l.read_timeout(Some(false), s(0)), s(30));
        assert_eq!(l.read_timeout(Some(false), s(16)), s(14));
        assert_eq!(
            l.read_timeout(Some(true), s(40)),
            Duration::from_millis(100)
        );
    }
}

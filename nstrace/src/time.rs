//! nstrace's two clocks, as two types, and [`Clock`], the one place that
//! reads them and turns one into the other.
//!
//! Hook records are stamped with the boot clock (CLOCK_BOOTTIME, the eBPF
//! side's `bpf_ktime_get_boot_ns`): [`BootNs`], which the store also takes
//! as `now`. What people, the JSON and the database read is wall-clock
//! Unix time in seconds: [`UnixTime`]. Passing one for the other does not
//! compile.

use std::{
    ops::{Add, Sub},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// Nanoseconds of CLOCK_BOOTTIME (a record's `ts_ns`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootNs(u64);

impl BootNs {
    pub const fn from_nanos(ns: u64) -> BootNs {
        BootNs(ns)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `d` earlier (0 at the most).
    pub fn saturating_sub(self, d: Duration) -> BootNs {
        BootNs(self.0.saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }
}

/// Wall-clock time: seconds since the Unix epoch, as nstrace prints and
/// stores it (a JSON number, a REAL column).
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(f64);

impl UnixTime {
    pub const fn from_secs(secs: f64) -> UnixTime {
        UnixTime(secs)
    }

    pub const fn as_secs(self) -> f64 {
        self.0
    }

    /// Orders times totally (for sorting).
    pub fn total_cmp(&self, other: &UnixTime) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The seconds, as f64 prints them (width and precision apply).
impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

/// Seconds from `rhs` to `self` (an age, a lifetime).
impl Sub for UnixTime {
    type Output = f64;
    fn sub(self, rhs: UnixTime) -> f64 {
        self.0 - rhs.0
    }
}

impl Sub<Duration> for UnixTime {
    type Output = UnixTime;
    fn sub(self, rhs: Duration) -> UnixTime {
        UnixTime(self.0 - rhs.as_secs_f64())
    }
}

impl Add<Duration> for UnixTime {
    type Output = UnixTime;
    fn add(self, rhs: Duration) -> UnixTime {
        UnixTime(self.0 + rhs.as_secs_f64())
    }
}

/// Converts record timestamps (CLOCK_BOOTTIME) to Unix time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset: f64,
}

impl Clock {
    /// A clock whose Unix time is CLOCK_BOOTTIME plus `offset` seconds (tests).
    pub fn with_offset(offset: f64) -> Clock {
        Clock { offset }
    }

    pub fn new() -> Clock {
        let now = |id| {
            let ts = rustix::time::clock_gettime(id);
            ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
        };
        Clock { offset: now(rustix::time::ClockId::Realtime) - now(rustix::time::ClockId::Boottime) }
    }

    pub fn unix(&self, t: BootNs) -> UnixTime {
        UnixTime(t.0 as f64 / 1e9 + self.offset)
    }

    /// The CLOCK_BOOTTIME nanoseconds of a Unix time ([`Self::unix`] undone,
    /// to f64's precision: a fraction of a microsecond).
    pub fn boot_ns(&self, t: UnixTime) -> u64 {
        ((t.0 - self.offset) * 1e9).max(0.0).round() as u64
    }

    /// Wall-clock time now: the one place nstrace reads it.
    pub fn unix_now() -> UnixTime {
        UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()))
    }

    /// Boot-clock time now: the one place nstrace reads it.
    pub fn now_boot_ns() -> BootNs {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        BootNs(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_becomes_unix_time_by_the_clock_s_offset() {
        let clock = Clock::with_offset(1_000_000.0);
        assert_eq!(clock.unix(BootNs::from_nanos(2_500_000_000)), UnixTime::from_secs(1_000_002.5));
        assert_eq!(UnixTime::from_secs(10.0) - UnixTime::from_secs(4.0), 6.0);
        assert_eq!(UnixTime::from_secs(10.0) - Duration::from_secs(4), UnixTime::from_secs(6.0));
        assert_eq!(BootNs::from_nanos(5).saturating_sub(Duration::from_nanos(9)), BootNs::default());
        assert_eq!(serde_json::to_string(&UnixTime::from_secs(1.25)).unwrap(), "1.25");
    }
}

//! What the kernel log says a network namespace teardown waits for: a
//! device whose references do not drop stalls `cleanup_net` with
//! "unregister_netdevice: waiting for DEV to become free. Usage count = N",
//! repeated every ten seconds. Nothing else names that device once it left
//! its namespace's list, so `why` quotes the log (read from `/dev/kmsg`,
//! without blocking, newest records only).

use std::{io::Read, os::unix::fs::OpenOptionsExt};

use serde::Serialize;

/// A device the kernel waits for, from its log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceWait {
    pub device: String,
    /// The device's reference count the last message gave.
    pub usage: u32,
    /// How many messages named it, and how long ago the last one came.
    pub messages: u32,
    pub last_seconds_ago: f64,
}

/// Records read at most: the log ring holds a few thousand.
const MAX_RECORDS: usize = 100_000;

/// The devices the kernel logged waiting for in the last `within` seconds,
/// most recent last; empty when the log cannot be read (not root, or
/// `dmesg_restrict` for an unprivileged reader).
pub fn device_waits(within: f64) -> Vec<DeviceWait> {
    let Ok(mut kmsg) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg") else {
        return Vec::new();
    };
    let now_us = monotonic_us();
    let mut records = Vec::new();
    let mut buf = vec![0u8; 8192];
    for _ in 0..MAX_RECORDS {
        match kmsg.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(r) = parse_record(&String::from_utf8_lossy(&buf[..n])) {
                    records.push(r);
                }
            }
            // A record overwritten while we read: go on with the next.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            // EAGAIN: the end of the log; anything else ends the read too.
            Err(_) => break,
        }
    }
    waits(&records, now_us, within)
}

/// One `/dev/kmsg` record: "prio,seq,usec,flags[,...];message\n...".
fn parse_record(record: &str) -> Option<(u64, String)> {
    let (head, rest) = record.split_once(';')?;
    let usec = head.split(',').nth(2)?.parse().ok()?;
    let message = rest.lines().next()?.to_string();
    Some((usec, message))
}

/// "unregister_netdevice: waiting for DEV to become free. Usage count = N".
fn parse_wait(message: &str) -> Option<(&str, u32)> {
    let rest = message.split("unregister_netdevice: waiting for ").nth(1)?;
    let (device, rest) = rest.split_once(" to become free")?;
    let usage = rest.rsplit("= ").next()?.trim().parse().ok()?;
    Some((device, usage))
}

fn waits(records: &[(u64, String)], now_us: u64, within: f64) -> Vec<DeviceWait> {
    let mut out: Vec<DeviceWait> = Vec::new();
    for (usec, message) in records {
        let ago = now_us.saturating_sub(*usec) as f64 / 1e6;
        let Some((device, usage)) = parse_wait(message) else { continue };
        if ago > within {
            continue;
        }
        match out.iter_mut().find(|w| w.device == device) {
            Some(w) => {
                w.usage = usage;
                w.messages += 1;
                w.last_seconds_ago = ago;
            }
            None => out.push(DeviceWait { device: device.to_string(), usage, messages: 1, last_seconds_ago: ago }),
        }
    }
    out.sort_by(|a, b| b.last_seconds_ago.total_cmp(&a.last_seconds_ago));
    out
}

/// The clock of the log's timestamps.
fn monotonic_us() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_names_the_devices_a_teardown_waits_for_recent_ones_only() {
        let log = [
            "0,120,1000000,-;unregister_netdevice: waiting for veth9 to become free. Usage count = 2\n",
            "6,121,50000000,-;eth0: link up\n",
            "0,122,80000000,-;unregister_netdevice: waiting for lo to become free. Usage count = 3\n",
            "0,123,90000000,c;unregister_netdevice: waiting for lo to become free. Usage count = 1\n SUBSYSTEM=net\n",
            "garbage",
        ];
        let records: Vec<(u64, String)> = log.iter().filter_map(|r| parse_record(r)).collect();
        assert_eq!(records.len(), 4, "{records:?}");
        let got = waits(&records, 100_000_000, 30.0);
        assert_eq!(got, [DeviceWait { device: "lo".into(), usage: 1, messages: 2, last_seconds_ago: 10.0 }]);
        let all = waits(&records, 100_000_000, 1000.0);
        assert_eq!(all.iter().map(|w| w.device.as_str()).collect::<Vec<_>>(), ["veth9", "lo"]);
        assert_eq!(parse_wait("eth0: link up"), None);
    }

    #[test]
    fn reading_the_log_never_blocks() {
        // At its end /dev/kmsg blocks a reader without O_NONBLOCK: a hang fails.
        let _ = device_waits(1.0);
    }
}

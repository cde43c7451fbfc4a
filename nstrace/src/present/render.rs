//! Rendering of events as text lines and perf-script-style records.

use std::fmt::Write as _;

use crate::events::{Event, NsChange, NsIds};

/// "HH:MM:SS.micros" (UTC) of a Unix time.
pub fn clock_time(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let micros = ((unix - secs as f64) * 1e6) as u32;
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}.{micros:06}", day / 3600, day / 60 % 60, day % 60)
}

fn ids(n: &Option<NsIds>) -> String {
    n.map(|n| format!("{}/{}", n.id, n.inode)).unwrap_or_else(|| "-".into())
}

fn changes(c: &[NsChange]) -> String {
    if c.is_empty() {
        return "none".into();
    }
    c.iter().map(|c| format!("{}={}/{}", c.slot, c.id, c.inode)).collect::<Vec<_>>().join(",")
}

fn result(r: i64, errno: &Option<&str>) -> String {
    match errno {
        Some(e) => format!("{e}({r})"),
        None => r.to_string(),
    }
}

/// One human-readable line per event.
pub fn event_text(e: &Event) -> String {
    match e {
        Event::Create { time, pid, comm, ns_type, id, inode, owner, parent, cause, flags_text, .. } => format!(
            "{} create     {:<6} id={id} inode={inode} owner={} parent={} by {comm}[{pid}] via {cause} {flags_text}",
            clock_time(*time),
            ns_type.name(),
            ids(owner),
            ids(parent)
        ),
        Event::Destroy { time, ns_type, id, inode, lifetime, .. } => format!(
            "{} destroy    {:<6} id={id} inode={inode} lifetime={}",
            clock_time(*time),
            ns_type.name(),
            lifetime.map(|l| format!("{l:.3}s")).unwrap_or_else(|| "unknown (created before nstrace)".into())
        ),
        Event::Setns { time, pid, tid, comm, fd, fd_kind, flags_text, result: r, errno, joined, .. } => format!(
            "{} setns      {comm}[{pid}/{tid}] fd={fd} ({fd_kind}) flags={flags_text} result={} joined={}",
            clock_time(*time),
            result(*r, errno),
            changes(joined)
        ),
        Event::Unshare { time, pid, tid, comm, flags_text, result: r, errno, new, .. } => format!(
            "{} unshare    {comm}[{pid}/{tid}] flags={flags_text} result={} new={}",
            clock_time(*time),
            result(*r, errno),
            changes(new)
        ),
        Event::Clone { time, pid, comm, child_pid, flags_text, .. } => {
            format!("{} clone      {comm}[{pid}] child={child_pid} flags={flags_text}", clock_time(*time))
        }
        Event::Namespaces { time, pid, tid, comm, cause, namespaces } => {
            let mut s = format!("{} namespaces {comm}[{pid}/{tid}] on {cause}:", clock_time(*time));
            for n in namespaces {
                let _ = write!(s, " {}={}", n.ns_type.name(), n.inode);
            }
            s
        }
        Event::Lost { time, kind, count, total } => {
            format!("{} lost       {count} {kind} records (total {total}); resyncing", clock_time(*time))
        }
        Event::Resync { time, reason, namespaces, created, destroyed } => format!(
            "{} resync     {reason}: {namespaces} namespaces, {created} found, {destroyed} gone",
            clock_time(*time)
        ),
    }
}

/// The layout `perf script --show-namespace-events` prints for a
/// PERF_RECORD_NAMESPACES record (perf's seven namespaces plus time as
/// index 7); None for other events.
pub fn event_perf(e: &Event) -> Option<String> {
    let Event::Namespaces { time, pid, tid, comm, namespaces, .. } = e else { return None };
    let mut s = format!(
        "{comm:>16} {pid:>7} {time:>17.6}: PERF_RECORD_NAMESPACES {pid}/{tid} - nr_namespaces: {}\n\t\t[",
        namespaces.len()
    );
    for (idx, n) in namespaces.iter().enumerate() {
        if idx != 0 && idx % 4 == 0 {
            s.push_str("\n\t\t ");
        }
        let sep = if idx + 1 != namespaces.len() { ", " } else { "]" };
        let _ = write!(s, "{idx}/{}: {}/{:#x}{sep}", n.ns_type.name(), n.dev, n.inode);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use nstrace_common::ns::NsType;

    use super::*;
    use crate::events::PerfNs;

    #[test]
    fn perf_layout_matches_perf_script() {
        let e = Event::Namespaces {
            time: 12.5,
            pid: 42,
            tid: 43,
            comm: "bash".into(),
            cause: "fork",
            namespaces: NsType::ALL
                .iter()
                .map(|t| PerfNs { ns_type: *t, dev: 4, inode: 0xf000_0000 + *t as u64 })
                .collect(),
        };
        let s = event_perf(&e).unwrap();
        assert!(
            s.contains(
                "PERF_RECORD_NAMESPACES 42/43 - nr_namespaces: 8\n\t\t[0/net: 4/0xf0000000, 1/uts: 4/0xf0000001"
            ),
            "{s}"
        );
        assert!(s.contains("3/pid: 4/0xf0000003, \n\t\t 4/user: 4/0xf0000004"), "{s}");
        assert!(s.ends_with("7/time: 4/0xf0000007]"), "{s}");
    }

    #[test]
    fn clock() {
        assert_eq!(clock_time(3661.25), "01:01:01.250000");
    }
}

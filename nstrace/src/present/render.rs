//! Rendering of events as text lines and perf-script-style records.

use std::fmt::Write as _;

use crate::{
    events::{Event, NsChange, NsIds},
    time::UnixTime,
};

/// "HH:MM:SS.micros" (UTC) of a Unix time.
pub fn clock_time(unix: UnixTime) -> String {
    let unix = unix.as_secs();
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
    crate::present::escape::text(&event_text_raw(e)).into_owned()
}

/// [`event_text`] without its time and kind (the perf.data samples' detail).
pub fn event_detail(e: &Event) -> String {
    let text = event_text(e);
    let rest = text.split_once(' ').map_or("", |(_, r)| r).trim_start();
    rest.strip_prefix(e.name()).unwrap_or(rest).trim_start().to_string()
}

/// [`event_text`] before escaping.
fn event_text_raw(e: &Event) -> String {
    match e {
        Event::Create { time, pid, comm, ns_type, id, inode, owner, parent, cause, flags_text, .. } => format!(
            "{} create     {:<6} id={id} inode={inode} owner={} parent={} by {comm}[{pid}] via {cause} {flags_text}",
            clock_time(*time),
            ns_type.name(),
            ids(owner),
            ids(parent)
        ),
        Event::Destroy { time, ns_type, id, inode, lifetime, teardown, .. } => format!(
            "{} destroy    {:<6} id={id} inode={inode} lifetime={}{}",
            clock_time(*time),
            ns_type.name(),
            lifetime.map(|l| format!("{l:.3}s")).unwrap_or_else(|| "unknown (created before nstrace)".into()),
            teardown.map(|t| format!(" teardown={t:.3}s")).unwrap_or_default()
        ),
        Event::Dying { time, ns_type, id, inode, stage } => format!(
            "{} dying      {:<6} id={id} inode={inode} no reference left, teardown {}",
            clock_time(*time),
            ns_type.name(),
            match stage {
                crate::model::TeardownStage::Queued => "queued for cleanup_net",
                crate::model::TeardownStage::Cleanup => "in cleanup_net",
            }
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
        Event::Exit { time, pid, tid, comm, parent_pid } => {
            format!("{} exit       {comm}[{pid}/{tid}] parent={parent_pid}", clock_time(*time))
        }
        Event::Namespaces { time, pid, tid, comm, cause, namespaces, .. } => {
            let mut s = format!("{} namespaces {comm}[{pid}/{tid}] on {cause}:", clock_time(*time));
            for n in namespaces {
                let _ = write!(s, " {}={}", n.ns_type.name(), n.inode);
            }
            s
        }
        Event::Mount { time, pid, comm, parent_pid, parent_comm, syscall, mnt_ns, target, path, .. } => format!(
            "{} mount      {comm}[{pid}] (parent {parent_comm}[{parent_pid}]) {syscall} {}{} in mnt ns {mnt_ns}",
            clock_time(*time),
            target,
            path.as_ref().map(|p| format!(" (= {p})")).unwrap_or_default()
        ),
        Event::Refused { time, pid, tid, comm, uid, syscall, flags_text, errno, text, explain, container, .. } => {
            format!(
                "{} refused    {comm}[{pid}/{tid}] uid={uid}{} {syscall} flags={flags_text} result={errno}: {text}{}",
                clock_time(*time),
                container.as_ref().map(|c| format!(" container={c}")).unwrap_or_default(),
                explain.as_ref().map(|c| format!("; what counts: {c}")).unwrap_or_default()
            )
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
    use crate::time::UnixTime;

    fn perf_ns(types: &[NsType]) -> Vec<PerfNs> {
        types.iter().map(|t| PerfNs { ns_type: *t, dev: 4, inode: 0xf000_0000 + *t as u64 }).collect()
    }

    fn namespaces(types: &[NsType]) -> Event {
        Event::Namespaces {
            time: UnixTime::from_secs(12.5),
            pid: 42,
            tid: 43,
            comm: "bash".into(),
            cause: crate::events::Cause::Fork,
            namespaces: perf_ns(types),
            forked_by: Some((41, 41)),
        }
    }

    #[test]
    fn perf_layout_matches_perf_script() {
        let s = event_perf(&namespaces(&NsType::ALL)).unwrap();
        assert_eq!(
            s,
            "            bash      42         12.500000: PERF_RECORD_NAMESPACES 42/43 - nr_namespaces: 8\n\
             \t\t[0/net: 4/0xf0000000, 1/uts: 4/0xf0000001, 2/ipc: 4/0xf0000002, 3/pid: 4/0xf0000003, \n\
             \t\t 4/user: 4/0xf0000004, 5/mnt: 4/0xf0000005, 6/cgroup: 4/0xf0000006, 7/time: 4/0xf0000007]"
        );
        let s = event_perf(&namespaces(&[NsType::Pid])).unwrap();
        assert!(s.ends_with("nr_namespaces: 1\n\t\t[0/pid: 4/0xf0000003]"), "{s}");
        let lost = Event::Lost { time: UnixTime::from_secs(1.0), kind: "create", count: 1, total: 1 };
        assert_eq!(event_perf(&lost), None);
    }

    #[test]
    fn clock() {
        assert_eq!(clock_time(UnixTime::from_secs(0.0)), "00:00:00.000000");
        assert_eq!(clock_time(UnixTime::from_secs(3661.25)), "01:01:01.250000");
        assert_eq!(clock_time(UnixTime::from_secs(86_399.5)), "23:59:59.500000");
        assert_eq!(clock_time(UnixTime::from_secs(86_400.75)), "00:00:00.750000");
        assert_eq!(clock_time(UnixTime::from_secs(-0.5)), "23:59:59.500000");
    }

    fn ids(id: u64, inode: u64) -> Option<NsIds> {
        Some(NsIds { id, inode })
    }

    fn change(ns_type: NsType, slot: &'static str, id: u64, inode: u64) -> NsChange {
        NsChange { ns_type, slot, id, inode }
    }

    #[test]
    fn create_and_destroy_lines() {
        let create = |owner, parent| Event::Create {
            time: UnixTime::from_secs(12.5),
            pid: 42,
            tid: 43,
            comm: "unshare".into(),
            ns_type: NsType::Net,
            id: 7,
            inode: 4026532000,
            owner,
            parent,
            level: None,
            cause: crate::events::Cause::Unshare,
            flags: 0x4000_0000,
            flags_text: crate::events::CloneFlags(0x4000_0000),
        };
        assert_eq!(
            event_text(&create(ids(1, 4026531837), None)),
            "00:00:12.500000 create     net    id=7 inode=4026532000 owner=1/4026531837 parent=- \
             by unshare[42] via unshare CLONE_NEWNET"
        );
        assert_eq!(
            event_text(&create(None, ids(2, 4026531836))),
            "00:00:12.500000 create     net    id=7 inode=4026532000 owner=- parent=2/4026531836 \
             by unshare[42] via unshare CLONE_NEWNET"
        );
        let destroy = |lifetime| Event::Destroy {
            time: UnixTime::from_secs(12.5),
            ns_type: NsType::Cgroup,
            id: 9,
            inode: 4026532001,
            lifetime,
            creator_pid: None,
            via: crate::events::DeathVia::TreeWalk,
            teardown: None,
        };
        assert_eq!(
            event_text(&destroy(Some(1.23456))),
            "00:00:12.500000 destroy    cgroup id=9 inode=4026532001 lifetime=1.235s"
        );
        assert_eq!(
            event_text(&destroy(None)),
            "00:00:12.500000 destroy    cgroup id=9 inode=4026532001 lifetime=unknown (created before nstrace)"
        );
    }

    #[test]
    fn setns_and_unshare_lines() {
        let setns = |result, errno, joined| Event::Setns {
            time: UnixTime::from_secs(12.5),
            pid: 42,
            tid: 43,
            comm: "ip".into(),
            fd: 3,
            fd_kind: "nsfs",
            flags: 0,
            flags_text: crate::events::CloneFlags(0),
            result,
            errno,
            joined,
        };
        assert_eq!(
            event_text(&setns(-22, Some("EINVAL"), vec![])),
            "00:00:12.500000 setns      ip[42/43] fd=3 (nsfs) flags=0 result=EINVAL(-22) joined=none"
        );
        let joined =
            vec![change(NsType::Net, "net", 7, 4026532000), change(NsType::Pid, "pid_for_children", 8, 4026532001)];
        assert_eq!(
            event_text(&setns(0, None, joined)),
            "00:00:12.500000 setns      ip[42/43] fd=3 (nsfs) flags=0 result=0 \
             joined=net=7/4026532000,pid_for_children=8/4026532001"
        );
        let unshare = |result, errno, new| Event::Unshare {
            time: UnixTime::from_secs(12.5),
            pid: 42,
            tid: 42,
            comm: "unshare".into(),
            flags: 0x1002_0000,
            flags_text: crate::events::CloneFlags(0x1002_0000),
            result,
            errno,
            new,
        };
        assert_eq!(
            event_text(&unshare(0, None, vec![change(NsType::User, "user", 3, 4026532100)])),
            "00:00:12.500000 unshare    unshare[42/42] flags=CLONE_NEWUSER|CLONE_NEWNS result=0 new=user=3/4026532100"
        );
        assert_eq!(
            event_text(&unshare(-1, Some("EPERM"), vec![])),
            "00:00:12.500000 unshare    unshare[42/42] flags=CLONE_NEWUSER|CLONE_NEWNS result=EPERM(-1) new=none"
        );
    }

    #[test]
    fn other_event_lines() {
        let clone = Event::Clone {
            time: UnixTime::from_secs(12.5),
            pid: 42,
            tid: 43,
            comm: "bash".into(),
            child_pid: 50,
            child_tid: 50,
            flags: 0x2000_0000,
            flags_text: crate::events::CloneFlags(0x2000_0000),
            types: vec![NsType::Pid],
        };
        assert_eq!(event_text(&clone), "00:00:12.500000 clone      bash[42] child=50 flags=CLONE_NEWPID");
        assert_eq!(
            event_text(&namespaces(&[NsType::Net, NsType::Pid])),
            "00:00:12.500000 namespaces bash[42/43] on fork: net=4026531840 pid=4026531843"
        );
        assert_eq!(event_text(&namespaces(&[])), "00:00:12.500000 namespaces bash[42/43] on fork:");
        let mount = |path| Event::Mount {
            time: UnixTime::from_secs(12.5),
            pid: 42,
            tid: 43,
            comm: "ip".into(),
            parent_pid: 1,
            parent_comm: "bash".into(),
            syscall: "mount",
            flags: 0x1000,
            mnt_ns: 4026531841,
            target: "/run/netns/blue".into(),
            path,
        };
        assert_eq!(
            event_text(&mount(None)),
            "00:00:12.500000 mount      ip[42] (parent bash[1]) mount /run/netns/blue in mnt ns 4026531841"
        );
        assert_eq!(
            event_text(&mount(Some("/var/run/netns/blue".into()))),
            "00:00:12.500000 mount      ip[42] (parent bash[1]) mount /run/netns/blue (= /var/run/netns/blue) \
             in mnt ns 4026531841"
        );
        let lost = Event::Lost { time: UnixTime::from_secs(12.5), kind: "create", count: 5, total: 17 };
        assert_eq!(event_text(&lost), "00:00:12.500000 lost       5 create records (total 17); resyncing");
        let resync = Event::Resync {
            time: UnixTime::from_secs(12.5),
            reason: "lost events".into(),
            namespaces: 120,
            created: 3,
            destroyed: 2,
        };
        assert_eq!(event_text(&resync), "00:00:12.500000 resync     lost events: 120 namespaces, 3 found, 2 gone");
    }
}

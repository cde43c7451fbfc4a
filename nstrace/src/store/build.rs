//! How snapshot records, holder scans and hook records become rows and events.

use nstrace_common::{event::NsInfoRecord, ns::NsType};

use super::refcount_of;
use crate::{
    events::{Clock, Event, NsIds, flags_text},
    model::{Creator, Holder, Namespace, NsRow, NsState},
    procfs::holders::HolderScan,
};

/// The row a snapshot record describes (None: unknown type).
pub(super) fn row_of(r: &NsInfoRecord) -> Option<NsRow> {
    let ns_type = NsType::from_u32(r.ns_type)?;
    let tree = matches!(ns_type, NsType::Pid | NsType::User);
    Some(NsRow {
        id: (r.id != 0).then_some(r.id),
        refcount: refcount_of(r),
        active_refs: (r.active != nstrace_common::event::ACTIVE_UNKNOWN).then_some(r.active),
        owner: (r.owner.inum != 0).then_some(r.owner.inum as u64),
        parent: (tree && r.parent.inum != 0).then_some(r.parent.inum as u64),
        level: tree.then_some(r.level),
        ..NsRow::new(ns_type, r.inum as u64)
    })
}

/// A row's holder-derived fields: holders, state, pids, command, containers, names.
pub(super) fn fill_holders(row: &mut NsRow, holders: Vec<Holder>, names: Vec<String>, scan: &HolderScan) {
    let mut pids: Vec<u32> = holders
        .iter()
        .filter_map(|h| match h {
            Holder::Task { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    row.command = pids.first().and_then(|first| {
        holders.iter().find_map(|h| match h {
            Holder::Task { pid, comm, .. } if pid == first => Some(Box::from(&**comm)),
            _ => None,
        })
    });
    // Each distinct cgroup once: a shared namespace has thousands of
    // processes in a handful of cgroups.
    let mut cgroups: Vec<&str> = pids.iter().filter_map(|p| scan.processes.get(p)).map(|p| &*p.cgroup).collect();
    cgroups.sort_unstable();
    cgroups.dedup();
    // Processes in no container's cgroup are the host's (counted per
    // process, once a cgroup is known to be no container's).
    let host_cgroups: Vec<&str> =
        cgroups.iter().copied().filter(|c| crate::containers::from_cgroup(c).is_none()).collect();
    row.host_tasks = pids
        .iter()
        .filter(|p| scan.processes.get(p).is_some_and(|pr| host_cgroups.binary_search(&&*pr.cgroup).is_ok()))
        .count() as u32;
    let mut containers: Vec<_> = cgroups.into_iter().filter_map(crate::containers::from_cgroup).collect();
    containers.sort();
    containers.dedup();
    row.containers = containers.into();
    row.tasks = pids.len() as u32;
    row.pids = pids.into();
    row.state = NsState::of(&holders);
    row.holders = holders.into();
    row.names = names.into();
}

pub(super) fn create_event(
    ns: &Namespace,
    owner: Option<NsIds>,
    parent: Option<NsIds>,
    ts: u64,
    clock: &Clock,
) -> Event {
    let (pid, tid, comm, cause, flags) = match &ns.creator {
        Some(c) => (c.pid, c.tid, c.comm.clone(), c.cause, c.flags),
        None => (0, 0, String::new(), "walk", 0),
    };
    Event::Create {
        time: ns.created.unwrap_or_else(|| clock.unix(ts)),
        pid,
        tid,
        comm,
        ns_type: ns.row.ns_type,
        id: ns.row.id.unwrap_or(0),
        inode: ns.row.inode,
        owner,
        parent,
        level: ns.row.level,
        cause,
        flags,
        flags_text: flags_text(flags),
    }
}

pub(super) fn destroy_event(
    row: &NsRow,
    created: Option<f64>,
    creator: Option<&Creator>,
    died: u64,
    via: &'static str,
    clock: &Clock,
) -> Event {
    let time = clock.unix(died);
    Event::Destroy {
        time,
        ns_type: row.ns_type,
        id: row.id.unwrap_or(0),
        inode: row.inode,
        lifetime: created.map(|c| (time - c).max(0.0)),
        creator_pid: creator.map(|c| c.pid),
        via,
    }
}

//! How snapshot records, holder scans and hook records become rows and events.

use nstrace_common::{event::NsInfoRecord, ns::NsType};

use super::refcount_of;
use crate::{
    containers::Container,
    events::{CloneFlags, Event, NsIds},
    model::{Charge, Creator, Holder, Namespace, NsKey, NsRow, NsState, UserNsCharges},
    procfs::holders::HolderScan,
    time::{BootNs, Clock, UnixTime},
};

/// The namespace a snapshot record describes (None: unknown type).
pub(super) fn key_of(r: &NsInfoRecord) -> Option<NsKey> {
    Some(NsKey::of_record(NsType::from_u32(r.ns_type)?, r.id, r.inum))
}

/// The row a snapshot record describes (None: unknown type).
pub(super) fn row_of(r: &NsInfoRecord) -> Option<NsRow> {
    let key = key_of(r)?;
    let tree = matches!(key.ns_type, NsType::Pid | NsType::User);
    Some(NsRow {
        id: key.id(),
        refcount: refcount_of(r),
        active_refs: (r.active != nstrace_common::event::ACTIVE_UNKNOWN).then_some(r.active),
        owner: (r.owner.inum != 0).then_some(u64::from(r.owner.inum)),
        parent: (tree && r.parent.inum != 0).then_some(u64::from(r.parent.inum)),
        level: tree.then_some(r.level),
        charge: Charge::of_record(r, key.ns_type).unwrap_or(Charge::UNKNOWN),
        user_charges: if key.ns_type == NsType::User { UserNsCharges::of_record(r) } else { None },
        ..NsRow::new(key.ns_type, key.inode)
    })
}

/// Containers by cgroup path, parsed once per path: one snapshot fills
/// thousands of rows whose processes sit in a handful of cgroups.
#[derive(Default)]
pub(super) struct CgroupMemo(foldhash::HashMap<Box<str>, Option<Container>>);

impl CgroupMemo {
    fn container(&mut self, cgroup: &str) -> Option<Container> {
        if let Some(known) = self.0.get(cgroup) {
            return known.clone();
        }
        let found = crate::containers::from_cgroup(cgroup);
        self.0.insert(cgroup.into(), found.clone());
        found
    }
}

/// A row's holder-derived fields: holders, state, pids, command, containers, names.
pub(super) fn fill_holders(
    row: &mut NsRow,
    holders: Vec<Holder>,
    names: Vec<String>,
    scan: &HolderScan,
    memo: &mut CgroupMemo,
) {
    let mut pids: Vec<u32> = Vec::with_capacity(holders.len());
    pids.extend(holders.iter().filter_map(|h| match h {
        Holder::Task { pid, .. } => Some(*pid),
        _ => None,
    }));
    pids.sort_unstable();
    pids.dedup();
    row.command = pids.first().and_then(|first| {
        holders.iter().find_map(|h| match h {
            Holder::Task { pid, comm, .. } if pid == first => Some(Box::from(&**comm)),
            _ => None,
        })
    });
    let cgroup_of = |pid: &u32| scan.processes.get(pid).map(|p| &*p.cgroup);
    let (host_tasks, containers) = match &pids[..] {
        // Most namespaces have one process: no lists to build.
        [pid] => match cgroup_of(pid).map(|c| memo.container(c)) {
            Some(Some(container)) => (0, vec![container]),
            Some(None) => (1, Vec::new()),
            None => (0, Vec::new()),
        },
        _ => {
            // Each distinct cgroup once: a shared namespace has thousands
            // of processes in a handful of cgroups.
            let mut cgroups: Vec<&str> = pids.iter().filter_map(cgroup_of).collect();
            cgroups.sort_unstable();
            cgroups.dedup();
            let found: Vec<Option<Container>> = cgroups.iter().map(|c| memo.container(c)).collect();
            // Processes in no container's cgroup are the host's.
            let host = pids
                .iter()
                .filter_map(cgroup_of)
                .filter(|c| cgroups.binary_search(c).is_ok_and(|i| found[i].is_none()))
                .count();
            let mut containers: Vec<Container> = found.into_iter().flatten().collect();
            containers.sort();
            containers.dedup();
            (host as u32, containers)
        }
    };
    row.host_tasks = host_tasks;
    row.containers = containers.into();
    row.tasks = pids.len() as u32;
    row.pids = pids.into();
    // Nothing revives a namespace with no reference left.
    row.state = if row.dying.is_some() { NsState::Dying } else { NsState::of_live(&holders, row.active_refs) };
    row.holders = holders.into();
    row.names = names.into();
}

pub(super) fn create_event(
    ns: &Namespace,
    owner: Option<NsIds>,
    parent: Option<NsIds>,
    ts: BootNs,
    clock: &Clock,
) -> Event {
    let (pid, tid, comm, cause, flags) = match &ns.creator {
        Some(c) => (c.pid, c.tid, c.comm.clone(), c.cause, c.flags),
        None => (0, 0, String::new(), crate::events::Cause::Walk, 0),
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
        flags_text: CloneFlags(flags),
    }
}

pub(super) fn destroy_event(
    row: &NsRow,
    created: Option<UnixTime>,
    creator: Option<&Creator>,
    died: BootNs,
    via: crate::events::DeathVia,
    clock: &Clock,
) -> Event {
    let time = clock.unix(died);
    Event::Destroy {
        teardown: row.dying.as_ref().map(|d| (time - d.since).max(0.0)),
        time,
        ns_type: row.ns_type,
        id: row.id.unwrap_or(0),
        inode: row.inode,
        lifetime: created.map(|c| (time - c).max(0.0)),
        creator_pid: creator.map(|c| c.pid),
        via,
    }
}

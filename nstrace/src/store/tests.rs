use crate::time::{BootNs, UnixTime};
use nstrace_common::event::{EventHeader, EventKind, NsRef, create_cause};

use super::*;
use crate::{
    events::NsChange,
    model::{Holder, TaskHold},
    procfs::holders::ProcInfo,
};

pub(crate) const SEC: u64 = 1_000_000_000;

pub(crate) fn store() -> NsStore {
    NsStore::new(Clock::with_offset(1_000_000.0), StoreOptions::default())
}

/// The live record with kernel id `id`.
pub(crate) fn by_id(s: &NsStore, id: u64) -> Option<&Namespace> {
    s.live().find(|n| n.row.id == Some(id))
}

/// The kernel ids of `keys` (0: none).
pub(crate) fn ids(keys: &[NsKey]) -> Vec<u64> {
    keys.iter().map(|k| k.id().unwrap_or(0)).collect()
}

pub(crate) fn walk_row(ty: NsType, id: u64, inum: u32, refcount: u32) -> NsInfoRecord {
    NsInfoRecord {
        header: EventHeader { kind: EventKind::NsInfo as u32, size: 96, ts_ns: 0, tgid: 0, tid: 0 },
        ns_type: ty as u32,
        level: 0,
        id,
        inum,
        refcount,
        owner: NsRef { id: 1, inum: 100, _reserved: 0 },
        parent: NsRef::default(),
        kaddr: 0,
        active: nstrace_common::event::ACTIVE_UNKNOWN,
        charged_uid: nstrace_common::event::UID_UNKNOWN,
        charged: 0,
        charged_counts: [nstrace_common::event::COUNT_UNKNOWN; 8],
        limits: [nstrace_common::event::COUNT_UNKNOWN; 8],
    }
}

pub(crate) fn create(ty: NsType, id: u64, inum: u32, ts: u64, pid: u32) -> NsCreateEvent {
    NsCreateEvent {
        header: EventHeader { kind: EventKind::Create as u32, size: 112, ts_ns: ts, tgid: pid, tid: pid },
        ns_type: ty as u32,
        cause: create_cause::UNSHARE,
        flags: ty.clone_flag(),
        id,
        inum,
        level: 0,
        owner: NsRef { id: 1, inum: 100, _reserved: 0 },
        parent: NsRef::default(),
        subject_tgid: pid,
        subject_tid: pid,
        comm: *b"unshare\0\0\0\0\0\0\0\0\0",
        parent_tgid: 1,
        _reserved: 0,
        parent_comm: *b"init\0\0\0\0\0\0\0\0\0\0\0\0",
        cgroup_id: 0,
        args: [0; nstrace_common::event::CREATOR_ARGS],
    }
}

/// A destroy record naming only the inode (the free-inum hooks).
pub(crate) fn freed(inum: u32, ts: u64) -> NsDestroyEvent {
    NsDestroyEvent {
        header: EventHeader { kind: EventKind::Destroy as u32, size: 40, ts_ns: ts, tgid: 0, tid: 0 },
        ns_type: NS_TYPE_UNKNOWN,
        inum,
        id: 0,
        via: 2,
        _reserved: 0,
    }
}

pub(crate) fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.name()).collect()
}

mod reuse;
mod teardown;
mod walks;

#[test]
fn create_records_the_creator_and_reports_once() {
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Net, 3, 10, 5)], BootNs::from_nanos(0));
    assert!(s.on_create(&create(NsType::Net, 50, 11, 2 * SEC, 7), &mut out));
    assert!(!s.on_create(&create(NsType::Net, 50, 11, 3 * SEC, 7), &mut out), "a duplicate is not new");
    assert_eq!(kinds(&out), ["create"]);
    let ns = by_id(&s, 50).expect("recorded");
    let creator = ns.creator.as_ref().expect("creator");
    assert_eq!((creator.pid, creator.comm.as_str(), creator.cause), (7, "unshare", crate::events::Cause::Unshare));
    assert_eq!(ns.created, Some(UnixTime::from_secs(1_000_002.0)));
    assert_eq!(ns.row.state, NsState::Active);
    assert_eq!(ns.history.len(), 1);
    assert_eq!(s.len(), 2);
}

#[test]
fn holders_decide_state_tasks_command_names_and_containers() {
    let mut s = store();
    s.seed(
        &[
            walk_row(NsType::Net, 1, 10, 1),
            walk_row(NsType::Net, 2, 11, 1),
            walk_row(NsType::Uts, 3, 12, 1),
            walk_row(NsType::Ipc, 4, 13, 1),
        ],
        BootNs::from_nanos(0),
    );
    let mut scan = HolderScan::default();
    let task = |pid, comm: &str| Holder::Task { pid, comm: comm.into(), hold: TaskHold::Member, tid: None };
    let key = |t, i| NsKey::new(t, i);
    scan.holders.insert(key(NsType::Net, 10), vec![task(30, "b"), task(20, "a"), task(30, "b")]);
    let mount = Holder::Mount { path: "/run/netns/x".into(), mnt_ns: 5, via_pid: 1, stack: Default::default() };
    scan.holders.insert(key(NsType::Net, 11), vec![mount]);
    scan.holders.insert(key(NsType::Uts, 12), vec![Holder::Fd { pid: 9, fd: 4, comm: "c".into() }]);
    scan.netns_names.insert(11, vec!["x".into()]);
    let docker = "0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
    let info =
        |cgroup: &str| ProcInfo { ppid: 1, comm: "a".into(), cgroup: cgroup.into(), threads: 1, kernel_thread: false };
    scan.processes.insert(20, info(docker));
    scan.processes.insert(30, info("0::/user.slice"));
    // Found by the scan only (created after the walk): ignored unless adopted.
    scan.holders.insert(key(NsType::Pid, 99), vec![task(20, "a")]);
    s.apply_holders(scan, BootNs::from_nanos(SEC), false);
    let net = by_id(&s, 1).unwrap();
    assert_eq!((net.row.state, net.row.tasks, &net.row.pids[..]), (NsState::Active, 2, &[20, 30][..]));
    assert_eq!(net.row.command.as_deref(), Some("a"), "the lowest pid's command");
    assert_eq!(net.row.containers.len(), 1);
    assert_eq!(net.last_change, UnixTime::from_secs(1_000_001.0));
    let mounted = by_id(&s, 2).unwrap();
    assert_eq!((mounted.row.state, &mounted.row.names[..]), (NsState::Mounted, &["x".to_string()][..]));
    assert_eq!(by_id(&s, 3).unwrap().row.state, NsState::FdOnly);
    assert_eq!(by_id(&s, 4).unwrap().row.state, NsState::Orphaned);
    assert_eq!(s.len(), 4);
    let counts = s.counts();
    assert_eq!(counts.live, 4);
    assert_eq!(counts.by_type[NsType::Net as usize], (NsType::Net, 2));
    assert!(counts.by_state.contains(&(NsState::Orphaned, 1)));
}

#[test]
fn one_shot_store_adopts_what_the_scan_found_after_the_walk() {
    let mut scan = HolderScan::default();
    let fd = Holder::Fd { pid: 9, fd: 4, comm: "c".into() };
    scan.holders.insert(NsKey::new(NsType::Pid, 99), vec![fd]);
    let s = NsStore::from_snapshot(
        &[walk_row(NsType::Net, 1, 10, 1)],
        scan,
        Clock::with_offset(0.0),
        BootNs::from_nanos(0),
    );
    let rows = s.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].ns_type, rows[1].ns_type), (NsType::Net, NsType::Pid), "type, then inode order");
    assert_eq!(rows[1].state, NsState::FdOnly);
    assert!(s.find(NsType::Pid, 99).is_some());
    assert!(s.find(NsType::Net, 99).is_none());
}

#[test]
fn max_rows_evicts_destroyed_records_first_then_shrinks_the_stalest() {
    let opts = StoreOptions { max_rows: 3, ..StoreOptions::default() };
    let mut s = NsStore::new(Clock::with_offset(0.0), opts);
    let mut out = Vec::new();
    for (i, ts) in [(1u32, 1), (2, 5), (3, 2)] {
        s.on_create(&create(NsType::Net, i as u64, i, ts * SEC, 7), &mut out);
    }
    for i in [4u32, 5] {
        s.on_create(&create(NsType::Net, i as u64, i, 3 * SEC, 7), &mut out);
    }
    s.on_destroy(&freed(4, 4 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out);
    s.on_destroy(&freed(5, 4 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out);
    assert_eq!((s.len(), s.destroyed().count()), (3, 2));
    s.evict(BootNs::from_nanos(5 * SEC));
    assert_eq!((s.len(), s.destroyed().count()), (3, 0), "destroyed records went first");
    let opts = StoreOptions { max_rows: 2, ..StoreOptions::default() };
    s.opts = opts;
    s.evict(BootNs::from_nanos(5 * SEC));
    let mut kept: Vec<u64> = s.live().map(|n| n.row.inode).collect();
    kept.sort();
    assert_eq!(kept, [2, 3], "the record that changed longest ago shrank");
    let counts = s.counts();
    assert_eq!((counts.live, counts.evicted), (3, 1), "still counted");
    assert!(s.contains(NsKey::of_record(NsType::Net, 1, 1)));
    // Still tracked: a walk does not announce it again, its death is reported.
    out.clear();
    let rows = [walk_row(NsType::Net, 1, 1, 1), walk_row(NsType::Net, 2, 2, 1), walk_row(NsType::Net, 3, 3, 1)];
    assert_eq!(
        s.reconcile(
            &rows,
            BootNs::from_nanos(6 * SEC),
            Coverage::Complete,
            crate::events::DeathVia::TreeWalk,
            &mut out
        ),
        Reconciled::default()
    );
    assert!(!s.on_create(&create(NsType::Net, 1, 1, SEC, 7), &mut out));
    let r = s.reconcile(
        &rows[1..],
        BootNs::from_nanos(7 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert_eq!(ids(&r.destroyed), [1]);
    assert_eq!(kinds(&out), ["destroy"]);
    assert_eq!(s.counts().evicted, 0);
}

#[test]
fn destroyed_records_expire() {
    let opts = StoreOptions { keep_destroyed: Duration::from_secs(60), ..StoreOptions::default() };
    let mut s = NsStore::new(Clock::with_offset(0.0), opts);
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 1, 1, SEC, 7), &mut out);
    s.on_create(&create(NsType::Net, 2, 2, SEC, 7), &mut out);
    s.on_destroy(&freed(1, 10 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out);
    s.on_destroy(&freed(2, 95 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out);
    s.evict(BootNs::from_nanos(100 * SEC));
    let left: Vec<u64> = s.destroyed().map(|n| n.row.inode).collect();
    assert_eq!(left, [2]);
}

#[test]
fn history_is_bounded_and_keeps_the_latest() {
    let mut s = store();
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 5, 50, SEC, 7), &mut out);
    for i in 0..40 {
        let e = Event::Setns {
            time: UnixTime::from_secs(i as f64),
            pid: i,
            tid: i,
            comm: "ip".into(),
            fd: 3,
            fd_kind: "nsfs",
            flags: 0,
            flags_text: Default::default(),
            result: 0,
            errno: None,
            joined: vec![NsChange { ns_type: NsType::Net, slot: "net", id: 5, inode: 50 }],
        };
        s.note(&e);
    }
    let ns = by_id(&s, 5).unwrap();
    assert_eq!(ns.history.len(), 16);
    let Some(Event::Setns { pid, .. }) = ns.history.back() else { panic!() };
    assert_eq!(*pid, 39);
    assert_eq!(ns.last_change, UnixTime::from_secs(39.0));
}

#[test]
fn an_unshare_names_how_a_constructor_hook_saw_creation() {
    let mut s = store();
    let mut out = Vec::new();
    let by_constructor =
        |pid| NsCreateEvent { cause: create_cause::CONSTRUCTOR, flags: 0, ..create(NsType::Net, 5, 50, SEC, pid) };
    s.on_create(&by_constructor(7), &mut out);
    let unshare = |pid| Event::Unshare {
        time: UnixTime::from_secs(2.0),
        pid,
        tid: pid,
        comm: "ip".into(),
        flags: NsType::Net.clone_flag(),
        flags_text: crate::events::CloneFlags(0x4000_0000),
        result: 0,
        errno: None,
        new: vec![NsChange { ns_type: NsType::Net, slot: "net", id: 5, inode: 50 }],
    };
    s.note(&unshare(8));
    assert_eq!(
        by_id(&s, 5).unwrap().creator.as_ref().unwrap().cause,
        crate::events::Cause::Constructor,
        "another process's unshare"
    );
    s.note(&unshare(7));
    let c = by_id(&s, 5).unwrap().creator.as_ref().unwrap();
    assert_eq!((c.cause, c.flags), (crate::events::Cause::Unshare, NsType::Net.clone_flag()));
}

fn pid_create(id: u64, inum: u32, ts: u64, pid: u32) -> NsCreateEvent {
    NsCreateEvent {
        level: 2,
        parent: NsRef { id: 40, inum: 400, _reserved: 0 },
        ..create(NsType::Pid, id, inum, ts, pid)
    }
}

#[test]
fn a_hook_record_fills_in_owner_parent_level_and_command() {
    let mut s = store();
    let mut out = Vec::new();
    s.on_create(&pid_create(9, 90, SEC, 7), &mut out);
    let row = &by_id(&s, 9).unwrap().row;
    assert_eq!((row.owner, row.parent, row.level), (Some(100), Some(400), Some(2)));
    assert_eq!((row.command.as_deref(), row.state, row.id), (Some("unshare"), NsState::Active, Some(9)));
    let Event::Create { owner, parent, level, .. } = &out[0] else { panic!() };
    assert_eq!((owner.map(|o| o.id), parent.map(|p| p.inode), *level), (Some(1), Some(400), Some(2)));
    // A namespace no task made (pid 0: a kernel hook saw it first).
    s.on_create(&create(NsType::Net, 10, 91, SEC, 0), &mut out);
    let row = &by_id(&s, 10).unwrap().row;
    assert_eq!((row.command.as_deref(), row.state), (None, NsState::Orphaned));
    // Non-tree types have no parent or level.
    assert_eq!((row.parent, row.level), (None, None));
}

#[test]
fn a_late_duplicate_record_does_not_replace_the_creator() {
    let mut s = store();
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 5, 50, 5 * SEC, 7), &mut out);
    assert!(!s.on_create(&create(NsType::Net, 5, 50, SEC, 9), &mut out));
    let ns = by_id(&s, 5).unwrap();
    assert_eq!((ns.creator.as_ref().unwrap().pid, ns.created), (7, Some(UnixTime::from_secs(1_000_005.0))));
}

#[test]
fn snapshot_rows_carry_refcount_owner_parent_and_level() {
    let mut s = store();
    let mut out = Vec::new();
    let user =
        NsInfoRecord { level: 1, parent: NsRef { id: 2, inum: 20, _reserved: 0 }, ..walk_row(NsType::User, 3, 30, 5) };
    // A net namespace has no parent, whatever the record's parent field holds.
    let proc_row = NsInfoRecord {
        parent: NsRef { id: 1, inum: 9, _reserved: 0 },
        ..walk_row(NsType::Net, 4, 40, REFCOUNT_UNKNOWN)
    };
    // 6.19+ counts active references; before, the walk says it cannot.
    let counted = NsInfoRecord { active: 2, ..walk_row(NsType::Ipc, 7, 70, 3) };
    s.seed(&[user, proc_row, walk_row(NsType::Uts, 6, 60, 0), counted], BootNs::from_nanos(0));
    let u = &by_id(&s, 3).unwrap().row;
    assert_eq!((u.refcount, u.owner, u.parent, u.level), (Some(5), Some(100), Some(20), Some(1)));
    assert_eq!((u.active_refs, by_id(&s, 7).unwrap().row.active_refs), (None, Some(2)));
    let n = &by_id(&s, 4).unwrap().row;
    assert_eq!((n.refcount, n.parent, n.level), (None, None, None), "/proc knows no refcount; net has no parent");
    assert!(by_id(&s, 6).is_none(), "no reference left: not alive");
    // A later snapshot updates the refcount and the owner, unless it does not know them.
    let moved = NsInfoRecord { owner: NsRef { id: 8, inum: 800, _reserved: 0 }, ..walk_row(NsType::User, 3, 30, 7) };
    let unknown_owner = NsInfoRecord { owner: NsRef::default(), ..proc_row };
    s.reconcile(
        &[moved, unknown_owner, counted],
        BootNs::from_nanos(SEC),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    let u = &by_id(&s, 3).unwrap().row;
    assert_eq!((u.refcount, u.owner), (Some(7), Some(800)));
    assert_eq!(by_id(&s, 4).unwrap().row.owner, Some(100), "an unknown owner keeps the known one");
    assert!(out.is_empty());
}

#[test]
fn a_namespace_listed_with_no_reference_left_is_never_announced() {
    let mut s = store();
    let mut out = Vec::new();
    let dying = [walk_row(NsType::Ipc, 7, 70, 0)];
    s.reconcile(&dying, BootNs::from_nanos(SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out);
    s.reconcile(&dying, BootNs::from_nanos(2 * SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert!(s.is_empty());
}

#[test]
fn store_accessors() {
    let mut s = store();
    assert!(s.is_empty());
    assert_eq!(s.clock().unix(BootNs::from_nanos(0)), UnixTime::from_secs(1_000_000.0));
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 1, 10, SEC, 7), &mut out);
    s.on_create(&create(NsType::Net, 2, 11, SEC, 7), &mut out);
    s.on_destroy(&freed(11, 2 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out);
    assert!(!s.is_empty());
    let net = |id, inum| NsKey::of_record(NsType::Net, id, inum);
    assert!(s.contains(net(1, 10)) && !s.contains(net(2, 11)) && !s.contains(net(3, 12)));
    let mut all: Vec<u64> = s.records().map(|n| n.row.inode).collect();
    all.sort();
    assert_eq!(all, [10, 11], "live and destroyed records");
    assert_eq!(s.evicted().count(), 0);
}

#[test]
fn recent_deaths_remember_the_latest_4096() {
    let mut d = RecentDeaths::default();
    let (k, at) = (|inode| NsKey::new(NsType::Uts, inode), BootNs::from_nanos);
    d.remember(k(1), at(10));
    d.remember(k(2), at(10));
    assert!(d.is_stale(k(1), at(5)) && d.is_stale(k(2), at(10)) && !d.is_stale(k(2), at(11)));
    for i in 3..=4097 {
        d.remember(k(i), at(10));
    }
    assert!(!d.is_stale(k(1), at(5)), "the oldest death is forgotten");
    assert!(d.is_stale(k(2), at(5)) && d.is_stale(k(4097), at(5)));
    assert_eq!(d.order.len(), 4096);
}

#[test]
fn a_death_seen_late_does_not_unlink_the_inode_from_its_new_owner() {
    // Before 6.18 inodes are reused at once, across types: the net
    // namespace on inode 10 died unseen and a uts namespace got inode 10.
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Net, 0, 10, 1)], BootNs::from_nanos(0));
    s.on_create(&create(NsType::Uts, 0, 10, SEC, 7), &mut out);
    // The rescan sees the net namespace gone.
    s.reconcile(
        &[walk_row(NsType::Uts, 0, 10, 1)],
        BootNs::from_nanos(2 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::ProcRescan,
        &mut out,
    );
    // The free-inum hook names only the inode: it is the uts namespace's.
    let key = s.on_destroy(&freed(10, 3 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out);
    assert_eq!(key, Some(NsKey::new(NsType::Uts, 10)));
}

#[test]
fn max_rows_edges() {
    let opts = StoreOptions { max_rows: 3, ..StoreOptions::default() };
    let mut s = NsStore::new(Clock::with_offset(0.0), opts);
    let mut out = Vec::new();
    for i in 1..=3u32 {
        s.on_create(&create(NsType::Net, i as u64, i, i as u64 * SEC, 7), &mut out);
    }
    s.on_destroy(&freed(3, 4 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out);
    s.evict(BootNs::from_nanos(5 * SEC));
    assert_eq!((s.len(), s.destroyed().count()), (2, 1), "exactly at the cap: nothing goes");
    // Five live over a cap of two: the three stalest shrink.
    let opts = StoreOptions { max_rows: 2, ..StoreOptions::default() };
    let mut s = NsStore::new(Clock::with_offset(0.0), opts);
    for i in 1..=5u32 {
        s.on_create(&create(NsType::Net, i as u64, i, i as u64 * SEC, 7), &mut out);
    }
    s.evict(BootNs::from_nanos(6 * SEC));
    let mut kept: Vec<u64> = s.live().map(|n| n.row.inode).collect();
    kept.sort();
    assert_eq!(kept, [4, 5]);
    let mut evicted: Vec<NsKey> = s.evicted().collect();
    evicted.sort_by_key(|e| e.inode);
    assert_eq!(evicted[0], NsKey::of_record(NsType::Net, 1, 1));
    assert_eq!(evicted.len(), 3);
    let counts = s.counts();
    assert_eq!((counts.live, counts.evicted, counts.by_type[0]), (5, 3, (NsType::Net, 5)), "evicted still counted");
    // An evicted namespace's death by inode alone is still reported, with its id.
    out.clear();
    assert_eq!(
        s.on_destroy(&freed(2, 7 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out),
        Some(NsKey::of_record(NsType::Net, 2, 2))
    );
    let Event::Destroy { id, inode, lifetime, .. } = &out[0] else { panic!("{out:?}") };
    assert_eq!((*id, *inode, *lifetime), (2, 2, None));
    assert!(s.on_destroy(&freed(99, 7 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out).is_none());
}

#[test]
fn bounded_queues_keep_the_newest() {
    let mut q = VecDeque::new();
    for i in 0..40 {
        push_bounded(&mut q, i, 16);
    }
    assert_eq!((q.len(), q.front(), q.back()), (16, Some(&24), Some(&39)));
    let mut none = VecDeque::new();
    push_bounded(&mut none, 1, 0);
    assert!(none.is_empty(), "a cap of 0 keeps nothing");
}

/// A destroyed row lists no holder: its mount held it while it lived, not
/// after (`live` must not show a destroyed netns still "held" by its bind
/// mount).
#[test]
fn a_destroyed_row_lists_no_holder() {
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Net, 3, 10, 5), walk_row(NsType::Net, 4, 11, 1)], BootNs::from_nanos(0));
    let mut scan = HolderScan::default();
    let mount = Holder::Mount { path: "/run/netns/x".into(), mnt_ns: 5, via_pid: 1, stack: Default::default() };
    scan.holders.insert(NsKey::new(NsType::Net, 11), vec![mount]);
    s.apply_holders(scan, BootNs::from_nanos(SEC), false);
    assert_eq!(by_id(&s, 4).unwrap().row.holders.len(), 1, "mounted while alive");
    s.reconcile(
        &[walk_row(NsType::Net, 3, 10, 5)],
        BootNs::from_nanos(2 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    let dead: Vec<_> = s.destroyed().collect();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].row.holders.is_empty() && dead[0].row.tasks == 0, "{:?}", dead[0].row.holders);
}

/// On 6.19+ the kernel's active count tells an inactive namespace (nothing
/// counted: a socket, a cred keeps it) from an orphaned one whose users
/// nstrace did not find; a task, mount or fd holder decides first.
#[test]
fn a_taskless_namespace_the_kernel_counts_no_user_of_is_inactive() {
    use crate::{model::Holder, procfs::holders::HolderScan};
    let mut s = store();
    let inactive = NsInfoRecord { active: 0, ..walk_row(NsType::Net, 7, 70, 2) };
    let counted = NsInfoRecord { active: 1, ..walk_row(NsType::User, 8, 80, 2) };
    let unknown = walk_row(NsType::Ipc, 9, 90, 2);
    let entered = NsInfoRecord { active: 0, ..walk_row(NsType::Uts, 10, 100, 2) };
    s.seed(&[inactive, counted, unknown, entered], BootNs::from_nanos(0));
    let mut scan = HolderScan::default();
    let socket = Holder::Socket { pid: 5, fd: 3, comm: "py".into(), socket: 77 };
    scan.holders.insert(NsKey::new(NsType::Net, 70), vec![socket]);
    let task = Holder::Task { pid: 6, tid: None, comm: "sh".into(), hold: crate::model::TaskHold::Member };
    scan.holders.insert(NsKey::new(NsType::Uts, 100), vec![task]);
    s.apply_holders(scan, BootNs::from_nanos(0), false);
    let state = |id| by_id(&s, id).unwrap().row.state;
    assert_eq!(state(7), NsState::Inactive, "a socket is no active user");
    assert_eq!(state(8), NsState::Orphaned, "the kernel counts a user nstrace did not name");
    assert_eq!(state(9), NsState::Orphaned, "no count before 6.19");
    assert_eq!(state(10), NsState::Active, "a task found since the walk decides");
}

/// Whether the rows' socket holders are the kernel's whole answer follows
/// the last holder scan, and a reading copy keeps it (`why` and `leaks`
/// then open no socket).
#[test]
fn the_last_scan_says_whether_sockets_were_walked() {
    use crate::procfs::holders::HolderScan;
    let mut s = store();
    assert!(!s.sockets_walked(), "nothing scanned yet");
    let mut walked = HolderScan::default();
    walked.sockets_walked = true;
    s.apply_holders(walked, BootNs::from_nanos(0), false);
    assert!(s.sockets_walked() && s.copy_for_reading().sockets_walked());
    s.apply_holders(HolderScan::default(), BootNs::from_nanos(0), false);
    assert!(!s.sockets_walked(), "a /proc scan after the walk");
}

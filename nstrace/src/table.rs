//! The namespace table: one entry per live namespace, fed by hook records
//! and reconciled against the kernel's lists (the tree walk). Pure state:
//! no I/O, so every transition is unit-tested without a kernel.

use std::collections::{HashMap, VecDeque};

use nstrace_common::{
    event::{NS_TYPE_UNKNOWN, NsCreateEvent, NsDestroyEvent, NsInfoRecord},
    ns::NsType,
};
use serde::Serialize;

use crate::{events::NsIds, loader::known_key, render::comm_str};

/// Who made a namespace, when a hook saw it happen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Creator {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cause: &'static str,
    pub flags: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct NsEntry {
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub id: u64,
    pub inode: u64,
    pub owner: Option<NsIds>,
    pub parent: Option<NsIds>,
    pub level: Option<u32>,
    pub refcount: Option<u32>,
    /// CLOCK_BOOTTIME ns of creation, when seen (None: before nstrace started).
    pub created_ns: Option<u64>,
    /// Boxed: most namespaces predate nstrace and have none.
    pub creator: Option<Box<Creator>>,
    /// CLOCK_BOOTTIME ns of the last change nstrace saw.
    pub last_change_ns: u64,
}

impl NsEntry {
    pub fn key(&self) -> u64 {
        known_key(self.id, self.ns_type as u32, self.inode as u32)
    }

    fn from_walk(r: &NsInfoRecord, now: u64, created: Option<u64>) -> Option<NsEntry> {
        let ns_type = NsType::from_u32(r.ns_type)?;
        let tree = matches!(ns_type, NsType::Pid | NsType::User);
        Some(NsEntry {
            ns_type,
            id: r.id,
            inode: r.inum as u64,
            owner: NsIds::of(&r.owner),
            parent: if tree { NsIds::of(&r.parent) } else { None },
            level: tree.then_some(r.level),
            refcount: refcount_of(r),
            created_ns: created,
            creator: None,
            last_change_ns: now,
        })
    }
}

/// `NsInfoRecord::refcount` when the source knows it ([`REFCOUNT_UNKNOWN`]: /proc).
pub fn refcount_of(r: &NsInfoRecord) -> Option<u32> {
    (r.refcount != REFCOUNT_UNKNOWN).then_some(r.refcount)
}

/// Refcount of a record from a source that cannot read it (/proc).
pub const REFCOUNT_UNKNOWN: u32 = u32::MAX;

/// What one reconcile changed.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Namespaces the walk found that no hook reported.
    pub created: Vec<NsEntry>,
    /// Namespaces gone from the kernel's lists (or with no references left).
    pub destroyed: Vec<NsEntry>,
}

/// The table. Dead entries are dropped at once; callers keep what history
/// they need from [`Reconciled::destroyed`].
#[derive(Debug, Default)]
pub struct Table {
    entries: HashMap<u64, NsEntry>,
    /// Keys of the most recently destroyed namespaces, so a late create
    /// record of a namespace already reaped does not resurrect it.
    recently_destroyed: VecDeque<u64>,
    /// The same keys with the time of death, for O(1) lookups on every
    /// create record. Before 6.18 keys are type+inode and inodes are reused
    /// at once, so only records older than the death are stale.
    recently_destroyed_set: HashMap<u64, u64>,
    /// Namespaces one walk found that no hook has reported yet: the hook's
    /// record may still be on its way (the walk can run between a
    /// namespace's creation and its creator's syscall exit), so they become
    /// entries only if the next walk still finds them unreported.
    pending: HashMap<u64, NsEntry>,
    /// Key by inode number: `proc_free_inum` names only the inode (unique
    /// among live namespaces of all types).
    by_inode: HashMap<u32, u64>,
}

const RECENT_DESTROYED: usize = 4096;

impl Table {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: u64) -> Option<&NsEntry> {
        self.entries.get(&key)
    }

    pub fn entries(&self) -> impl Iterator<Item = &NsEntry> {
        self.entries.values()
    }

    /// Fills an empty table from a walk (namespaces that predate nstrace).
    pub fn seed(&mut self, rows: &[NsInfoRecord], now: u64) {
        for r in rows.iter().filter(|r| r.refcount > 0) {
            if let Some(e) = NsEntry::from_walk(r, now, None) {
                self.insert(e.key(), e);
            }
        }
    }

    fn insert(&mut self, key: u64, e: NsEntry) {
        self.by_inode.insert(e.inode as u32, key);
        self.entries.insert(key, e);
    }

    fn remove(&mut self, key: u64, died: u64) -> Option<NsEntry> {
        let e = self.entries.remove(&key)?;
        if self.by_inode.get(&(e.inode as u32)) == Some(&key) {
            self.by_inode.remove(&(e.inode as u32));
        }
        self.remember_destroyed(key, died);
        Some(e)
    }

    /// A kernel hook saw a namespace freed. Returns its entry when it was
    /// in the table (`proc_free_inum` also frees procfs inodes: ignored).
    pub fn on_destroy(&mut self, d: &NsDestroyEvent) -> Option<NsEntry> {
        let key = if d.ns_type == NS_TYPE_UNKNOWN {
            *self.by_inode.get(&d.inum)?
        } else {
            known_key(d.id, d.ns_type, d.inum)
        };
        if self.pending.remove(&key).is_some() {
            // Seen by one walk only: too short-lived to report.
            self.remember_destroyed(key, d.header.ts_ns);
            return None;
        }
        self.remove(key, d.header.ts_ns)
    }

    /// A hook saw a namespace first. Returns the entry when it is new.
    pub fn on_create(&mut self, c: &NsCreateEvent) -> Option<&NsEntry> {
        let ns_type = NsType::from_u32(c.ns_type)?;
        let key = known_key(c.id, c.ns_type, c.inum);
        let stale = self.recently_destroyed_set.get(&key).is_some_and(|&died| c.header.ts_ns <= died);
        if self.entries.contains_key(&key) || stale {
            return None;
        }
        self.pending.remove(&key);
        let tree = matches!(ns_type, NsType::Pid | NsType::User);
        let entry = NsEntry {
            ns_type,
            id: c.id,
            inode: c.inum as u64,
            owner: NsIds::of(&c.owner),
            parent: if tree { NsIds::of(&c.parent) } else { None },
            level: tree.then_some(c.level),
            refcount: None,
            created_ns: Some(c.header.ts_ns),
            creator: Some(Box::new(Creator {
                pid: c.subject_tgid,
                tid: c.subject_tid,
                comm: comm_str(&c.comm),
                cause: crate::events::cause_name(c.cause),
                flags: c.flags,
            })),
            last_change_ns: c.header.ts_ns,
        };
        self.insert(key, entry);
        self.entries.get(&key)
    }

    /// Makes the table equal to a fresh walk: adds what it lacks and, when
    /// `drop_missing`, drops what the walk no longer lists (or lists with no
    /// reference left). Callers pass false when the snapshot may miss live
    /// namespaces (/proc) and a kernel hook reports every death instead.
    pub fn reconcile(&mut self, rows: &[NsInfoRecord], now: u64, drop_missing: bool) -> Reconciled {
        let mut out = Reconciled::default();
        let mut alive: HashMap<u64, &NsInfoRecord> = HashMap::with_capacity(rows.len());
        for r in rows.iter().filter(|r| r.refcount > 0) {
            alive.insert(known_key(r.id, r.ns_type, r.inum), r);
        }
        // Pending ones that died unreported were still real: report both.
        // Unless the snapshot may miss live namespaces (then absence proves
        // nothing, and a hook reports deaths: drop them quietly).
        let pending_dead: Vec<u64> = self.pending.keys().filter(|k| !alive.contains_key(k)).copied().collect();
        for key in pending_dead {
            if let Some(e) = self.pending.remove(&key)
                && drop_missing
            {
                out.created.push(e.clone());
                self.insert(key, e);
            }
        }
        let dead: Vec<u64> = if drop_missing {
            self.entries.keys().filter(|k| !alive.contains_key(k)).copied().collect()
        } else {
            Vec::new()
        };
        for key in dead {
            if let Some(e) = self.remove(key, now) {
                out.destroyed.push(e);
            }
        }
        for (key, r) in alive {
            match self.entries.get_mut(&key) {
                Some(e) => {
                    if let Some(rc) = refcount_of(r) {
                        e.refcount = Some(rc);
                    }
                    // Hooks do not see owner/parent changes; the walk is exact.
                    e.owner = NsIds::of(&r.owner).or(e.owner);
                }
                None => match self.pending.remove(&key) {
                    Some(e) => {
                        out.created.push(e.clone());
                        self.insert(key, e);
                    }
                    None => {
                        if let Some(e) = NsEntry::from_walk(r, now, Some(now)) {
                            self.pending.insert(key, e);
                        }
                    }
                },
            }
        }
        out
    }

    fn remember_destroyed(&mut self, key: u64, died: u64) {
        if self.recently_destroyed_set.insert(key, died).is_none() {
            if self.recently_destroyed.len() == RECENT_DESTROYED
                && let Some(old) = self.recently_destroyed.pop_front()
            {
                self.recently_destroyed_set.remove(&old);
            }
            self.recently_destroyed.push_back(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use nstrace_common::event::{EventHeader, EventKind, NsRef, create_cause};

    use super::*;

    fn walk_row(ty: NsType, id: u64, inum: u32, refcount: u32) -> NsInfoRecord {
        NsInfoRecord {
            header: EventHeader { kind: EventKind::NsInfo as u32, size: 88, ts_ns: 0, tgid: 0, tid: 0 },
            ns_type: ty as u32,
            level: 0,
            id,
            inum,
            refcount,
            owner: NsRef { id: 1, inum: 100, _reserved: 0 },
            parent: NsRef::default(),
            kaddr: 0,
        }
    }

    fn create(ty: NsType, id: u64, inum: u32, ts: u64) -> NsCreateEvent {
        NsCreateEvent {
            header: EventHeader { kind: EventKind::Create as u32, size: 112, ts_ns: ts, tgid: 7, tid: 7 },
            ns_type: ty as u32,
            cause: create_cause::UNSHARE,
            flags: ty.clone_flag(),
            id,
            inum,
            level: 0,
            owner: NsRef { id: 1, inum: 100, _reserved: 0 },
            parent: NsRef::default(),
            subject_tgid: 7,
            subject_tid: 7,
            comm: *b"unshare\0\0\0\0\0\0\0\0\0",
        }
    }

    #[test]
    fn create_then_destroy() {
        let mut t = Table::default();
        t.seed(&[walk_row(NsType::Net, 3, 10, 5)], 0);
        let e = t.on_create(&create(NsType::Net, 50, 11, 100)).expect("new");
        assert_eq!(e.creator.as_ref().unwrap().comm, "unshare");
        assert_eq!(t.len(), 2);
        let r = t.reconcile(&[walk_row(NsType::Net, 3, 10, 5)], 200, true);
        assert_eq!(r.destroyed.len(), 1);
        assert_eq!(r.destroyed[0].id, 50);
        assert_eq!(r.destroyed[0].created_ns, Some(100));
        assert!(r.created.is_empty());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn duplicate_creates_report_once() {
        let mut t = Table::default();
        assert!(t.on_create(&create(NsType::Uts, 9, 12, 1)).is_some());
        assert!(t.on_create(&create(NsType::Uts, 9, 12, 2)).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn out_of_order_create_after_destroy_is_ignored() {
        let mut t = Table::default();
        t.on_create(&create(NsType::Ipc, 20, 30, 1));
        let r = t.reconcile(&[], 5, true);
        assert_eq!(r.destroyed.len(), 1);
        // A late duplicate record of the dead namespace does not revive it.
        assert!(t.on_create(&create(NsType::Ipc, 20, 30, 1)).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn walk_finds_what_hooks_missed() {
        // Lost create records: the resync walk adds them, with no creator.
        let mut t = Table::default();
        t.seed(&[walk_row(NsType::Net, 3, 10, 1)], 0);
        let rows = [walk_row(NsType::Net, 3, 10, 1), walk_row(NsType::Pid, 44, 55, 1)];
        // The first walk only notes it: a hook record may be in flight.
        assert!(t.reconcile(&rows, 9, true).created.is_empty());
        let r = t.reconcile(&rows, 10, true);
        assert_eq!(r.created.len(), 1);
        let e = &r.created[0];
        assert_eq!((e.ns_type, e.id, e.creator.is_none()), (NsType::Pid, 44, true));
    }

    #[test]
    fn hook_record_after_walk_wins() {
        let mut t = Table::default();
        assert!(t.reconcile(&[walk_row(NsType::Uts, 70, 71, 1)], 1, true).created.is_empty());
        let e = t.on_create(&create(NsType::Uts, 70, 71, 1)).expect("reported by the hook");
        assert!(e.creator.is_some());
        assert!(t.reconcile(&[walk_row(NsType::Uts, 70, 71, 1)], 2, true).created.is_empty());
    }

    #[test]
    fn unreported_namespace_that_died_is_created_and_destroyed() {
        let mut t = Table::default();
        t.reconcile(&[walk_row(NsType::Uts, 80, 81, 1)], 1, true);
        let r = t.reconcile(&[], 2, true);
        assert_eq!((r.created.len(), r.destroyed.len()), (1, 1));
    }

    #[test]
    fn without_drop_missing_absence_is_not_death() {
        let mut t = Table::default();
        t.seed(&[walk_row(NsType::Uts, 0, 81, 1)], 0);
        // Seen once, unreported, then gone: not promoted to an entry.
        t.reconcile(&[walk_row(NsType::Uts, 0, 81, 1), walk_row(NsType::Ipc, 0, 90, 1)], 1, false);
        let r = t.reconcile(&[], 2, false);
        assert!(r.created.is_empty() && r.destroyed.is_empty());
        assert_eq!(t.len(), 1, "the seeded one stays until a hook reports its death");
        let d = NsDestroyEvent {
            header: EventHeader { kind: EventKind::Destroy as u32, size: 40, ts_ns: 3, tgid: 0, tid: 0 },
            ns_type: NS_TYPE_UNKNOWN,
            inum: 81,
            id: 0,
            via: 2,
            _reserved: 0,
        };
        assert_eq!(t.on_destroy(&d).map(|e| e.inode), Some(81));
        assert!(t.is_empty());
        // The inode is reused by a new namespace created after the death.
        let again = create(NsType::Uts, 0, 81, 4);
        assert!(t.on_create(&again).is_some(), "a later create of a reused inode is new");
        let late = create(NsType::Uts, 0, 81, 2);
        let mut t2 = Table::default();
        t2.seed(&[walk_row(NsType::Uts, 0, 81, 1)], 0);
        t2.on_destroy(&d);
        assert!(t2.on_create(&late).is_none(), "a create record older than the death is stale");
    }

    #[test]
    fn zero_refcount_is_dead() {
        let mut t = Table::default();
        t.seed(&[walk_row(NsType::Time, 2, 20, 1)], 0);
        let r = t.reconcile(&[walk_row(NsType::Time, 2, 20, 0)], 1, true);
        assert_eq!(r.destroyed.len(), 1);
    }

    #[test]
    fn inode_reuse_is_a_new_namespace() {
        // Inodes are reused at once; ids are not.
        let mut t = Table::default();
        t.seed(&[walk_row(NsType::Net, 60, 10, 1)], 0);
        let r = t.reconcile(&[walk_row(NsType::Net, 61, 10, 1)], 1, true);
        assert_eq!(r.destroyed.len(), 1);
        assert_eq!(r.destroyed[0].id, 60);
        let r = t.reconcile(&[walk_row(NsType::Net, 61, 10, 1)], 2, true);
        assert_eq!(r.created.len(), 1);
        assert_eq!(r.created[0].id, 61);
    }
}

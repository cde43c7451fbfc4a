//! `NsStore`: the only namespace table. Every namespace's [`Namespace`]
//! record lives here and nowhere else; the engine feeds it (hook records,
//! walks, /proc snapshots, holder scans) and every view reads it.
//!
//! Pure state: no I/O, no clock reads (callers pass `now`), so every
//! transition is unit-tested without a kernel (`store/tests.rs`).

use std::{collections::VecDeque, time::Duration};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use nstrace_common::{
    event::{NS_TYPE_UNKNOWN, NsCreateEvent, NsDestroyEvent, NsInfoRecord, create_cause},
    ns::NsType,
};

use self::{
    build::{CgroupMemo, create_event, destroy_event, fill_holders, row_of},
    deaths::RecentDeaths,
    journal::Journal,
    provenance::RecentMounts,
    teardown::Cleanups,
};
use nstrace_common::decode::comm_str;

use crate::{
    database::Death,
    events::{Cause, DeathVia, Event, NsIds},
    model::{Creator, Namespace, NsKey, NsRow, NsState},
    origin::Origin,
    procfs::holders::HolderScan,
    time::{BootNs, Clock, UnixTime},
};

/// Refcount of a record from a source that cannot read it (/proc).
pub const REFCOUNT_UNKNOWN: u32 = u32::MAX;

/// `NsInfoRecord::refcount` when the source knows it.
pub fn refcount_of(r: &NsInfoRecord) -> Option<u32> {
    (r.refcount != REFCOUNT_UNKNOWN).then_some(r.refcount)
}

/// Bounds on what the store keeps.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Events kept per namespace.
    pub history: usize,
    /// Most records kept (live and destroyed). Destroyed ones go first,
    /// oldest death first; past that, live ones that changed longest ago
    /// shrink to a bare identity (see [`NsStore::evicted`]).
    pub max_rows: usize,
    /// How long a destroyed record stays visible.
    pub keep_destroyed: Duration,
    /// Track pins and journal provenance changes for the database (`serve`).
    pub provenance: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { history: 16, max_rows: 100_000, keep_destroyed: Duration::from_secs(60), provenance: false }
    }
}

/// Whether a snapshot lists every live namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// The kernel's own lists: a namespace missing from them is dead.
    Complete,
    /// The kernel's lists beside a hook that reports every death: the hook
    /// names each death. A walk can fall between the last reference going
    /// and the hook's free (a user or net namespace is freed from a
    /// workqueue), so one missing from two walks in a row is dead, as of
    /// the first (the hook missed it).
    BesideDestroyHook,
    /// /proc: misses namespaces only the kernel holds, so absence proves
    /// nothing (a destroy hook reports deaths instead).
    Partial,
}

/// What one reconcile changed (store keys).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Namespaces the snapshot found that no hook reported.
    pub created: Vec<NsKey>,
    /// Namespaces gone from the snapshot (or with no reference left).
    pub destroyed: Vec<NsKey>,
}

/// A namespace one snapshot found that no hook has reported yet: the hook's
/// record may still be on its way (a walk can run between a namespace's
/// creation and its creator's syscall exit), so it becomes a record only if
/// the next snapshot still finds it unreported.
#[derive(Clone, Debug)]
struct Pending {
    ns: Namespace,
    owner: Option<NsIds>,
    parent: Option<NsIds>,
}

/// Live totals, for headers and gauges.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    pub by_type: Vec<(NsType, usize)>,
    pub by_state: Vec<(NsState, usize)>,
    pub live: usize,
    pub destroyed_shown: usize,
    /// Live namespaces whose records were dropped under `max_rows`.
    pub evicted: usize,
}

#[derive(Debug)]
pub struct NsStore {
    clock: Clock,
    opts: StoreOptions,
    /// Boxed: a slot is a key and a pointer, so the map's spare capacity
    /// (up to half of it after growing) costs little per namespace.
    live: HashMap<NsKey, Box<Namespace>>,
    /// Destroyed records, oldest death first; apart from `live` so a new
    /// namespace reusing a dead one's key (type+inode before 6.18) never
    /// meets the dead one's record.
    destroyed: VecDeque<Box<Namespace>>,
    pending: HashMap<NsKey, Pending>,
    /// Live keys the last walk beside a destroy hook did not find, with
    /// when (see [`Coverage::BesideDestroyHook`]).
    missing: HashMap<NsKey, BootNs>,
    deaths: RecentDeaths,
    /// Live keys by inode: `proc_free_inum` names only the inode (unique
    /// among live namespaces of all types).
    by_inode: HashMap<u64, NsKey>,
    /// Live namespaces whose records were dropped under `max_rows`: their
    /// keys are enough to count them and report their deaths.
    evicted: HashSet<NsKey>,
    journal: Journal,
    /// Recent bind mounts, to say who made the mounts that pin namespaces.
    mounts: RecentMounts,
    /// `cleanup_net` runs, which end dying network namespaces.
    cleanups: Cleanups,
    /// Whether the last holder scan read sockets' net namespaces in the
    /// kernel: then socket holders are in the rows (see [`HolderScan::sockets_walked`]).
    sockets_walked: bool,
}

impl NsStore {
    /// A copy that answers questions off the event loop (`serve`'s
    /// requests): the records, the views' inputs; no provenance journal
    /// (changes stay with the one store that writes them).
    pub fn copy_for_reading(&self) -> NsStore {
        NsStore {
            clock: self.clock,
            opts: self.opts.clone(),
            live: self.live.clone(),
            destroyed: self.destroyed.clone(),
            pending: self.pending.clone(),
            missing: self.missing.clone(),
            deaths: self.deaths.clone(),
            by_inode: self.by_inode.clone(),
            evicted: self.evicted.clone(),
            journal: Journal::new(false),
            mounts: self.mounts.clone(),
            cleanups: self.cleanups.clone(),
            sockets_walked: self.sockets_walked,
        }
    }

    pub fn new(clock: Clock, opts: StoreOptions) -> NsStore {
        NsStore {
            clock,
            journal: Journal::new(opts.provenance),
            opts,
            live: HashMap::new(),
            destroyed: VecDeque::new(),
            pending: HashMap::new(),
            missing: HashMap::new(),
            deaths: RecentDeaths::default(),
            by_inode: HashMap::new(),
            evicted: HashSet::new(),
            mounts: RecentMounts::default(),
            cleanups: Cleanups::default(),
            sockets_walked: false,
        }
    }

    /// A store holding one snapshot: what `ls`, `leaks` and `why` read.
    /// Namespaces the holder scan found after the walk get a record too.
    pub fn from_snapshot(records: &[NsInfoRecord], scan: HolderScan, clock: Clock, now: BootNs) -> NsStore {
        // Never evicted: one snapshot is shown whole.
        let mut store = NsStore::new(clock, StoreOptions::default());
        store.seed(records, now);
        store.apply_holders(scan, now, true);
        store
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Whether the rows' socket holders are the kernel's whole answer (the
    /// fd walk read every socket): nothing need open a socket's namespace.
    pub fn sockets_walked(&self) -> bool {
        self.sockets_walked
    }

    /// Number of live records.
    /// Whether a snapshot found namespaces no hook announced (they become
    /// records at the next snapshot that still finds them).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn get(&self, key: NsKey) -> Option<&Namespace> {
        self.live.get(&key).map(|n| &**n)
    }

    /// Whether the store tracks this live namespace (with or without a record).
    pub fn contains(&self, key: NsKey) -> bool {
        self.live.contains_key(&key) || self.evicted.contains(&key)
    }

    /// Live records, in no particular order.
    pub fn live(&self) -> impl Iterator<Item = &Namespace> {
        self.live.values().map(|n| &**n)
    }

    /// Destroyed records still shown, oldest death first.
    pub fn destroyed(&self) -> impl Iterator<Item = &Namespace> {
        self.destroyed.iter().map(|n| &**n)
    }

    /// Live, then destroyed records.
    pub fn records(&self) -> impl Iterator<Item = &Namespace> {
        self.live().chain(self.destroyed())
    }

    /// Live namespaces whose records were dropped under `max_rows`.
    pub fn evicted(&self) -> impl Iterator<Item = NsKey> {
        self.evicted.iter().copied()
    }

    /// The live rows sorted by type and inode (the `ls --json` order).
    pub fn rows(&self) -> Vec<&NsRow> {
        let mut rows: Vec<&NsRow> = self.live.values().map(|n| &n.row).collect();
        rows.sort_unstable_by_key(|r| r.key());
        rows
    }

    /// The live record of a type and inode.
    pub fn find(&self, ns_type: NsType, inode: u64) -> Option<&Namespace> {
        if let Some(key) = self.by_inode.get(&inode)
            && let Some(ns) = self.live.get(key).map(|n| &**n)
            && ns.row.ns_type == ns_type
        {
            return Some(ns);
        }
        self.live().find(|n| n.row.ns_type == ns_type && n.row.inode == inode)
    }

    /// Fills an empty store from a snapshot (namespaces that predate nstrace).
    pub fn seed(&mut self, records: &[NsInfoRecord], now: BootNs) {
        let at = self.clock.unix(now);
        self.live.reserve(records.len());
        self.by_inode.reserve(records.len());
        for r in records.iter().filter(|r| r.refcount > 0) {
            if let Some(row) = row_of(r) {
                self.insert(Namespace::seen(row, at));
            }
        }
    }

    fn insert(&mut self, ns: Namespace) {
        let key = ns.key();
        self.by_inode.insert(ns.row.inode, key);
        self.live.insert(key, Box::new(ns));
        self.journal.touch(key);
    }

    /// Moves a live namespace to the destroyed records; returns its key.
    fn kill(&mut self, key: NsKey, died: BootNs, event: Event) -> Option<NsKey> {
        self.deaths.remember(key, died);
        self.cleanups.dying.remove(&key);
        let death = match &event {
            Event::Destroy { time, lifetime, via, .. } => Death { at: *time, lifetime: *lifetime, via: Some(*via) },
            _ => Death { at: self.clock.unix(died), lifetime: None, via: None },
        };
        if self.evicted.remove(&key) {
            // Reported, but no record to keep.
            self.journal.died(None, key, death);
            return Some(key);
        }
        let mut ns = self.live.remove(&key)?;
        if ns.pins.release_all(death.at) {
            self.journal.touch(key);
        }
        self.journal.died(Some(&ns), key, death);
        if self.by_inode.get(&ns.row.inode) == Some(&key) {
            self.by_inode.remove(&ns.row.inode);
        }
        let at = self.clock.unix(died);
        ns.destroyed = Some(at);
        ns.last_change = at;
        // Nothing holds what is gone: a destroyed row lists no holder (its
        // pins are released above; history keeps what held it).
        ns.row.holders = Default::default();
        ns.row.tasks = 0;
        ns.history.push(event, self.opts.history);
        self.destroyed.push_back(ns);
        Some(key)
    }

    /// A hook saw a namespace created. Pushes a `create` event and returns
    /// true when it is new; a record for a namespace a snapshot already
    /// took in fills in its creator instead.
    pub fn on_create(&mut self, c: &NsCreateEvent, out: &mut Vec<Event>) -> bool {
        let Some(ns_type) = NsType::from_u32(c.ns_type) else { return false };
        let key = NsKey::of_record(ns_type, c.id, c.inum);
        // (A record flagged REPLACED is of a new namespace for certain, even
        // one that came and went before the re-scan that saw the death.)
        let ts = BootNs::from_nanos(c.header.ts_ns);
        if c.cause & create_cause::REPLACED == 0 && self.deaths.is_stale(key, ts) {
            return false;
        }
        let created = self.clock.unix(ts);
        let creator = Creator {
            pid: c.subject_tgid,
            tid: c.subject_tid,
            comm: comm_str(&c.comm),
            cause: Cause::of_record(c.cause),
            flags: c.flags,
            origin: Origin::from_record(&c.args, c.parent_tgid, &comm_str(&c.parent_comm), c.cgroup_id),
        };
        if c.cause & create_cause::REPLACED != 0 && self.live.contains_key(&key) {
            // The hook saw a new struct under a live key: the one we have
            // died just before (no destroy hook saw it) and left its inode.
            self.destroy(key, ts.saturating_sub(Duration::from_nanos(1)), DeathVia::InodeReused, out);
        }
        if let Some(ns) = self.live.get_mut(&key) {
            // The walk got there first (its create event said "walk"):
            // keep what the hook knows, report nothing twice.
            if ns.creator.is_none() && ns.created.is_some_and(|seen| created <= seen) {
                ns.created = Some(created);
                ns.creator = Some(Box::new(creator));
            }
            return false;
        }
        if self.evicted.contains(&key) {
            return false;
        }
        self.pending.remove(&key);
        let tree = matches!(ns_type, NsType::Pid | NsType::User);
        let owner = NsIds::of(&c.owner);
        let parent = if tree { NsIds::of(&c.parent) } else { None };
        let row = NsRow {
            id: (c.id != 0).then_some(c.id),
            owner: owner.map(|o| o.inode),
            parent: parent.map(|p| p.inode),
            level: tree.then_some(c.level),
            // The creator is in it (until a holder scan says otherwise).
            state: if c.subject_tgid != 0 { NsState::Active } else { NsState::Orphaned },
            command: (c.subject_tgid != 0).then(|| creator.comm.as_str().into()),
            ..NsRow::new(ns_type, key.inode)
        };
        let mut ns =
            Namespace { created: Some(created), creator: Some(Box::new(creator)), ..Namespace::seen(row, created) };
        let event = create_event(&ns, owner, parent, ts, &self.clock);
        ns.history.push(event.clone(), self.opts.history);
        out.push(event);
        self.insert(ns);
        true
    }

    /// A hook saw a namespace die. Pushes a `destroy` event and returns the
    /// key when it was live (`proc_free_inum` also frees procfs inodes:
    /// those are not in the store and are ignored). `via` names the mechanism.
    pub fn on_destroy(&mut self, d: &NsDestroyEvent, via: DeathVia, out: &mut Vec<Event>) -> Option<NsKey> {
        let key = if d.ns_type == NS_TYPE_UNKNOWN {
            let inode = u64::from(d.inum);
            self.by_inode.get(&inode).copied().or_else(|| self.evicted_by_inode(inode))?
        } else {
            NsKey::of_record(NsType::from_u32(d.ns_type)?, d.id, d.inum)
        };
        if self.pending.remove(&key).is_some() {
            // Seen by one snapshot only, never reported: too short-lived to report.
            self.deaths.remember(key, BootNs::from_nanos(d.header.ts_ns));
            return None;
        }
        let died = BootNs::from_nanos(d.header.ts_ns);
        if self.net_gone(key, died, teardown::Gone::Hook, via, out) {
            return Some(key);
        }
        self.destroy(key, died, via, out)
    }

    fn evicted_by_inode(&self, inode: u64) -> Option<NsKey> {
        self.evicted.iter().find(|k| k.inode == inode).copied()
    }

    fn destroy(&mut self, key: NsKey, died: BootNs, via: DeathVia, out: &mut Vec<Event>) -> Option<NsKey> {
        let event = match (self.live.get(&key), self.evicted.contains(&key)) {
            (Some(ns), _) => destroy_event(&ns.row, ns.created, ns.creator.as_deref(), died, via, &self.clock),
            (None, true) => {
                let row = NsRow { id: key.id(), ..NsRow::new(key.ns_type, key.inode) };
                destroy_event(&row, None, None, died, via, &self.clock)
            }
            (None, false) => return None,
        };
        out.push(event.clone());
        self.kill(key, died, event)
    }

    /// Applies a holder scan: every live record's holders, state, tasks,
    /// command, containers and `ip netns` names. With `adopt`, namespaces
    /// the scan found that no snapshot listed get a record (a one-shot
    /// snapshot's walk ran just before the scan); otherwise the next
    /// snapshot adds them.
    pub fn apply_holders(&mut self, mut scan: HolderScan, now: BootNs, adopt: bool) {
        let at = self.clock.unix(now);
        self.sockets_walked = scan.sockets_walked;
        let mut memo = CgroupMemo::default();
        for ns in self.live.values_mut() {
            let key = ns.row.key().without_id();
            let holders = scan.holders.remove(&key).unwrap_or_default();
            let names = if key.ns_type == NsType::Net {
                scan.netns_names.remove(&key.inode).unwrap_or_default()
            } else {
                Vec::new()
            };
            let before = (ns.row.state, ns.row.tasks);
            fill_holders(&mut ns.row, holders, names, &scan, &mut memo);
            if self.opts.provenance {
                // A namespace the host's own processes use too (hostNetwork,
                // hostPID, the host's cgroup namespace) is no container's.
                let seen = if ns.row.host_tasks == 0 { ns.seen_in.note(&ns.row.containers) } else { false };
                let changed = ns.pins.update(&ns.row.holders, at) | seen;
                if self.mounts.attribute(&mut ns.pins) || changed {
                    self.journal.touch(ns.key());
                }
            }
            if before != (ns.row.state, ns.row.tasks) {
                ns.last_change = at;
            }
        }
        if adopt {
            let keys: Vec<NsKey> = scan.holders.keys().copied().collect();
            for key in keys {
                let holders = scan.holders.remove(&key).unwrap_or_default();
                let names = scan.netns_names.remove(&key.inode).unwrap_or_default();
                let mut row = NsRow::new(key.ns_type, key.inode);
                fill_holders(&mut row, holders, names, &scan, &mut memo);
                let mut ns = Namespace::seen(row, at);
                if self.opts.provenance {
                    ns.pins.update(&ns.row.holders, at);
                }
                self.insert(ns);
            }
        }
    }

    /// Keeps a `setns`/`unshare` event in the history of each namespace it
    /// moved its caller into.
    pub fn note(&mut self, e: &Event) {
        let (Event::Setns { joined: changes, time, .. } | Event::Unshare { new: changes, time, .. }) = e else {
            return;
        };
        for c in changes {
            let key = NsKey::new(c.ns_type, c.inode).with_id(Some(c.id));
            if let Some(ns) = self.live.get_mut(&key) {
                ns.last_change = *time;
                ns.history.push(e.clone(), self.opts.history);
                // A kernel-function hook saw the creation ("constructor"):
                // the syscall that asked for it says how, with its flags.
                if let (Event::Unshare { pid, flags, .. }, Some(creator)) = (e, ns.creator.as_mut())
                    && creator.pid == *pid
                    && creator.cause.awaits_syscall()
                {
                    creator.cause = Cause::Unshare;
                    creator.flags = *flags;
                    self.journal.touch(key);
                }
            }
        }
    }

    /// Drops destroyed records older than `keep_destroyed`, then, over
    /// `max_rows`, destroyed records (oldest death first), then shrinks the
    /// live records that changed longest ago to a bare identity.
    pub fn evict(&mut self, now: BootNs) {
        let now = self.clock.unix(now);
        let keep = self.opts.keep_destroyed.as_secs_f64();
        while self.destroyed.front().is_some_and(|d| d.destroyed.is_some_and(|at| now - at >= keep)) {
            self.destroyed.pop_front();
        }
        let max = self.opts.max_rows;
        while self.live.len() + self.destroyed.len() > max && self.destroyed.pop_front().is_some() {}
        if self.live.len() <= max {
            return;
        }
        let mut order: Vec<(UnixTime, NsKey)> = self.live.iter().map(|(k, n)| (n.last_change, *k)).collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let excess = self.live.len() - max;
        for (_, key) in order.into_iter().take(excess) {
            if let Some(ns) = self.live.remove(&key) {
                self.by_inode.remove(&ns.row.inode);
                self.evicted.insert(key);
            }
        }
    }

    /// Live totals by type and state.
    pub fn counts(&self) -> Counts {
        let mut by_type = [0usize; NsType::ALL.len()];
        let mut by_state: HashMap<NsState, usize> = HashMap::new();
        for ns in self.live.values() {
            by_type[ns.row.ns_type as usize] += 1;
            *by_state.entry(ns.row.state).or_default() += 1;
        }
        for e in &self.evicted {
            by_type[e.ns_type as usize] += 1;
        }
        let mut states: Vec<(NsState, usize)> = by_state.into_iter().collect();
        states.sort();
        Counts {
            by_type: NsType::ALL.iter().map(|t| (*t, by_type[*t as usize])).collect(),
            by_state: states,
            live: self.live.len() + self.evicted.len(),
            destroyed_shown: self.destroyed.len(),
            evicted: self.evicted.len(),
        }
    }
}

/// Appends to a queue that keeps at most `cap` items (the newest).
pub(crate) fn push_bounded<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    if cap == 0 {
        return;
    }
    while q.len() >= cap {
        q.pop_front();
    }
    q.push_back(v);
}

mod build;
mod deaths;
mod journal;
mod provenance;
mod reconcile;
mod teardown;
pub use teardown::TeardownStatus;
#[cfg(test)]
pub(crate) mod tests;

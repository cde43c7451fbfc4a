//! The snapshots the engine runs beside the ring: why each runs, the
//! records held meanwhile, and making the store match one when it ends.

use super::*;
use crate::events::DeathVia;

/// Why a snapshot runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WalkPurpose {
    /// The periodic walk, or an early one after a death hint.
    Routine,
    /// A reported resync: `lost` ring records are healed by it.
    Resync { lost: u64 },
    /// A reported resync: `dropped` records arrived while a walk ran and
    /// were more than could be held.
    Overflow { dropped: u64 },
}

impl WalkPurpose {
    pub(super) fn after_loss(lost: u64) -> WalkPurpose {
        if lost > 0 { WalkPurpose::Resync { lost } } else { WalkPurpose::Routine }
    }

    /// What a resync says it healed.
    fn reason(self) -> Option<String> {
        match self {
            WalkPurpose::Routine => None,
            WalkPurpose::Resync { lost } => Some(format!("{lost} records lost")),
            WalkPurpose::Overflow { dropped } => Some(format!("{dropped} records not held while a walk ran")),
        }
    }
}

/// What a change check found.
enum Check {
    Counts(crate::kernel::tree_watch::Counts),
    /// The walker is in use (a holder scan).
    Busy,
    /// No check on this kernel (or it failed): walk to know.
    Unavailable,
}

/// A snapshot running on a blocking thread, and what it is for.
pub(super) struct Walking {
    pub(super) purpose: WalkPurpose,
    pub(super) started: std::time::Instant,
    pub(super) handle: tokio::task::JoinHandle<Result<Taken, EngineError>>,
}

/// Records held while a snapshot runs, at most: past it they are counted
/// lost and a resync follows.
pub(super) const MAX_HELD: usize = 1 << 16;

impl Engine {
    /// Keeps records that arrive while a snapshot runs, up to [`MAX_HELD`].
    pub(super) fn hold(&mut self, records: &mut Vec<StreamItem>) {
        let room = MAX_HELD.saturating_sub(self.held.len());
        if records.len() > room {
            self.dropped_while_walking += (records.len() - room) as u64;
            records.truncate(room);
        }
        self.held.append(records);
    }

    /// Starts a snapshot of `types` on a blocking thread. The timers that
    /// start walks wait while one runs.
    pub(super) fn start_walk(&mut self, purpose: WalkPurpose, types: NsTypeSet) {
        let snapshotter = self.snapshotter.clone();
        let ids = self.ids;
        let types = match self.snapshotter {
            Snapshotter::Tree(_) if purpose == WalkPurpose::Routine => types,
            // A resync, or a /proc scan: everything.
            _ => NsTypeSet::ALL,
        };
        // The counts the walk answers for: a change after this read shows
        // at the next check.
        if let Check::Counts(now) = self.change_counts() {
            let seen = self.tree_seen.get_or_insert([None; nstrace_common::ns::NS_TYPES]);
            types.iter().for_each(|t| seen[t as usize] = now[t as usize]);
        }
        let handle = tokio::task::spawn_blocking(move || snapshotter.take(ids, types));
        self.walking = Some(Walking { purpose, started: std::time::Instant::now(), handle });
    }

    /// The types a periodic check must walk: those whose lists changed
    /// since they were last walked, where the kernel's lists count changes;
    /// none when a hook reports every death; every type otherwise (and
    /// while a snapshot's newcomers wait for the walk that confirms them).
    pub(super) fn changed_types(&mut self) -> NsTypeSet {
        if self.store.has_pending() {
            return NsTypeSet::ALL;
        }
        match (self.change_counts(), &self.tree_seen) {
            (Check::Counts(now), Some(seen)) => crate::kernel::tree_watch::changed(seen, &now),
            (Check::Counts(_), None) => NsTypeSet::ALL,
            // A holder scan has the walker: check at the next tick.
            (Check::Busy, _) => NsTypeSet::EMPTY,
            (Check::Unavailable, _) if self.mechanisms.destroy.is_exact_hook() => NsTypeSet::EMPTY,
            (Check::Unavailable, _) => NsTypeSet::ALL,
        }
    }

    /// Each list's change count now.
    fn change_counts(&self) -> Check {
        let Snapshotter::Tree(walker) = &self.snapshotter else { return Check::Unavailable };
        let Ok(walker) = walker.try_lock() else { return Check::Busy };
        match walker.change_counts() {
            Some(Ok(counts)) => Check::Counts(counts),
            Some(Err(e)) => {
                log::debug!("change check: {}", crate::chain::Chain(&e));
                Check::Unavailable
            }
            None => Check::Unavailable,
        }
    }

    /// Makes the store match a finished snapshot.
    pub(super) fn apply(&mut self, walking: Walking, taken: Taken, out: &mut Vec<Event>) {
        let Walking { purpose, started, .. } = walking;
        let Taken { rows, scan, types, fell_back } = taken;
        let fell_back_now = fell_back.is_some();
        if fell_back_now {
            // /proc answered: the lists were not walked after all.
            self.tree_seen = None;
        }
        self.note_walk(fell_back);
        self.last_snapshot_cost = started.elapsed();
        self.stats.walks += 1;
        self.walk_soon = None;
        self.last_walk_at = tokio::time::Instant::now();
        let now = Clock::now_boot_ns();
        // A /proc snapshot misses namespaces only the kernel holds; when a
        // hook reports every death, only a resync after lost records may
        // take absence for death at once (a tree walk confirms it at the
        // next walk, so the hook gets to name it).
        let exact_hook = self.mechanisms.destroy.is_exact_hook();
        let coverage = if fell_back_now {
            // /proc answered for a failed walk: deaths wait for the next one.
            Coverage::Partial
        } else if purpose != WalkPurpose::Routine || !exact_hook {
            Coverage::Complete
        } else if self.mechanisms.snapshot == Snapshot::TreeWalk {
            Coverage::BesideDestroyHook
        } else {
            Coverage::Partial
        };
        let via = match self.mechanisms.snapshot {
            Snapshot::TreeWalk if fell_back_now => DeathVia::ProcRescan,
            Snapshot::TreeWalk => DeathVia::TreeWalk,
            Snapshot::Proc => DeathVia::ProcRescan,
            Snapshot::Listns => DeathVia::Listns,
        };
        let r = self.store.reconcile_types(&rows, types, now, coverage, via, out);
        if let Some(scan) = scan {
            self.store.apply_holders(scan, now, false);
        }
        self.store.evict(now);
        for &key in &r.created {
            // Without ids, a free-inum hook forgets keys in the kernel; a
            // key put back from here could outlive its namespace and hide
            // the next one with that inode. Ids are never reused.
            if key.has_id() || !self.mechanisms.destroy.is_exact_hook() {
                let _ = self.known.insert(key);
            }
        }
        for &key in &r.destroyed {
            self.known.remove(key);
        }
        if let Some(reason) = purpose.reason() {
            // What the resync found unannounced becomes a record at the
            // next walk (a hook record may be in flight): make it soon.
            if self.store.has_pending() && self.walk_soon.is_none() {
                self.walk_soon = Some(tokio::time::Instant::now() + HINT_WALK_GAP.max(self.last_snapshot_cost * 2));
                self.hinted = NsTypeSet::ALL;
            }
            self.stats.resyncs += 1;
            out.push(Event::Resync {
                time: self.store.clock().unix(now),
                reason,
                namespaces: self.store.counts().live,
                created: r.created.len(),
                destroyed: r.destroyed.len(),
            });
        }
    }
}

//! Network namespaces between their last reference and the end of their
//! teardown. When its last reference goes the kernel queues a network
//! namespace for `cleanup_net`, one work item that takes every queued
//! namespace at its start (6.18: and takes them off the namespace list
//! then) and tears the batch down; its end is their death. A device whose
//! references never drop ("unregister_netdevice: waiting for lo to become
//! free") stalls the run and everything queued behind it.
//!
//! With each run's start and end hooked ([`NsStore::track_teardown`]), a
//! network namespace found gone (missing from a walk, listed with no
//! reference left, or named by a destroy hook) is *dying* until the end of
//! the run that took it: `queued` while no run has taken it, then
//! `cleanup`. Its teardown time (since it was found with no reference, or
//! since the run that took it began, whichever is earlier, never before
//! it was last seen alive) goes on its `destroy` event.

use foldhash::HashSet;
use nstrace_common::ns::NsType;

use super::NsStore;
use crate::{
    events::{DeathVia, Event},
    model::{Dying, NsKey, NsState, TeardownStage},
    time::BootNs,
};

/// What the hooks said of `cleanup_net` runs.
#[derive(Clone, Debug, Default)]
pub(super) struct Cleanups {
    /// The dying records (a few; the backlog gauges read only these).
    pub(super) dying: HashSet<NsKey>,
    /// Both hooks are attached: deaths of network namespaces wait for them.
    pub(super) tracked: bool,
    /// Start of the run in progress.
    running: Option<BootNs>,
    /// Start and end of the last run that ended.
    last: Option<(BootNs, BootNs)>,
    /// The last complete walk of the network namespace list: what it
    /// listed with a reference was alive then.
    pub(super) last_walk: Option<BootNs>,
    /// Runs seen to end.
    pub(super) runs: u64,
}

/// How a network namespace was found gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gone {
    /// A walk listed it with no reference left: queued for cleanup.
    NoReference,
    /// A walk no longer listed it (6.18+: a run took it off the list).
    Missing {
        /// The walk before this one, when it was last seen alive.
        previous_walk: Option<BootNs>,
    },
    /// A destroy hook named it.
    Hook,
}

/// The dying network namespaces' teardown, for `why` and the gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct TeardownStatus {
    /// Whether `cleanup_net` runs are hooked (else nothing is ever dying).
    pub tracked: bool,
    /// When the run in progress started (seconds since the epoch).
    pub running_since: Option<crate::time::UnixTime>,
    /// Runs seen to end since nstrace started.
    pub runs: u64,
}

impl NsStore {
    /// Whether `cleanup_net` runs are hooked: then a network namespace's
    /// death waits for the end of the run that tears it down.
    pub fn track_teardown(&mut self, tracked: bool) {
        self.cleanups.tracked = tracked;
    }

    /// Type and start of each dying namespace (the backlog gauges: a
    /// pass over these, not over every record).
    pub fn dying_backlog(&self) -> impl Iterator<Item = (NsType, crate::time::UnixTime)> + '_ {
        self.cleanups.dying.iter().filter_map(|k| {
            let row = &self.live.get(k)?.row;
            Some((row.ns_type, row.dying.as_ref()?.since))
        })
    }

    pub fn teardown_status(&self) -> TeardownStatus {
        let c = &self.cleanups;
        TeardownStatus { tracked: c.tracked, running_since: c.running.map(|t| self.clock.unix(t)), runs: c.runs }
    }

    /// A `cleanup_net` run started at `ts`: it takes every network
    /// namespace queued before it.
    pub fn cleanup_started(&mut self, ts: BootNs) {
        self.cleanups.running = Some(ts);
        for key in &self.cleanups.dying {
            if let Some(d) = self.live.get_mut(key).and_then(|ns| ns.row.dying.as_deref_mut())
                && d.stage == TeardownStage::Queued
                && d.since_boot <= ts
            {
                d.stage = TeardownStage::Cleanup;
            }
        }
    }

    /// The run in progress ended at `ts`: what it took is gone.
    pub fn cleanup_ended(&mut self, ts: BootNs, out: &mut Vec<Event>) {
        let start = self.cleanups.running.take().unwrap_or(ts);
        self.cleanups.last = Some((start, ts));
        self.cleanups.runs += 1;
        // The dying ones only: a run ends at every network namespace's death.
        let done: Vec<NsKey> = self
            .cleanups
            .dying
            .iter()
            .filter(|k| {
                let dying = self.live.get(k).and_then(|ns| ns.row.dying.as_deref());
                dying.is_some_and(|d| d.stage == TeardownStage::Cleanup && d.since_boot <= ts)
            })
            .copied()
            .collect();
        for key in done {
            let via = self.live.get(&key).and_then(|ns| ns.row.dying.as_deref()).map_or(DeathVia::TreeWalk, |d| d.via);
            self.destroy(key, ts, via, out);
        }
    }

    /// Records gone dying, or ended, after lost records: a run's end may be
    /// among them, and nothing else would end them.
    pub fn cleanup_records_lost(&mut self, now: BootNs, out: &mut Vec<Event>) {
        if self.cleanups.running.is_some() || !self.cleanups.dying.is_empty() {
            self.cleanup_ended(now, out);
        }
    }

    /// A network namespace found gone at `now`. Returns whether it is
    /// dying or was destroyed here (its death waited for a run's end);
    /// false when teardown is not tracked or nothing explains its death
    /// (the caller destroys it now).
    pub(super) fn net_gone(&mut self, key: NsKey, now: BootNs, how: Gone, via: DeathVia, out: &mut Vec<Event>) -> bool {
        let c = &self.cleanups;
        let (running, last) = (c.running, c.last);
        if !c.tracked || key.ns_type != NsType::Net {
            return false;
        }
        let Some(ns) = self.live.get_mut(&key) else { return false };
        let was = ns.row.dying.as_deref().copied();
        let verdict = match (how, running) {
            (Gone::NoReference, _) => Verdict::Dying(was.map_or(TeardownStage::Queued, |d| d.stage), now, false),
            (Gone::Hook, Some(start)) if start <= now => Verdict::Dying(TeardownStage::Cleanup, now, false),
            (Gone::Hook, _) => Verdict::Dying(TeardownStage::Queued, now, false),
            (Gone::Missing { previous_walk }, running) => {
                let alive_at = previous_walk.unwrap_or(now).min(now);
                match (running, last) {
                    // Taken by the run in progress.
                    (Some(start), _) => Verdict::Dying(TeardownStage::Cleanup, start.max(alive_at).min(now), false),
                    // A whole run since it was last seen alive: that run took it.
                    (None, Some((start, end))) if end >= alive_at => Verdict::DiedAt(start.max(alive_at).min(end), end),
                    // No run explains it yet (its records may be on their
                    // way); still none at the next walk: gone now.
                    _ if was.is_some_and(|d| d.unexplained) => Verdict::Unexplained,
                    _ => Verdict::Dying(TeardownStage::Cleanup, alive_at, true),
                }
            }
        };
        let (stage, since, unexplained, died) = match verdict {
            Verdict::Dying(stage, since, unexplained) => (stage, since, unexplained, None),
            Verdict::DiedAt(since, end) => (TeardownStage::Cleanup, since, false, Some(end)),
            Verdict::Unexplained => {
                // Its teardown time is unknown: none reported.
                ns.row.dying = None;
                self.cleanups.dying.remove(&key);
                return false;
            }
        };
        let since = was.map_or(since, |d| d.since_boot.min(since));
        let via = was.map_or(via, |d| d.via);
        let dying = Dying { since: self.clock.unix(since), stage, since_boot: since, unexplained, via };
        ns.row.dying = Some(Box::new(dying));
        ns.row.state = NsState::Dying;
        self.cleanups.dying.insert(key);
        if was.is_none() {
            ns.last_change = dying.since;
            let event = Event::Dying {
                time: dying.since,
                ns_type: key.ns_type,
                id: ns.row.id.unwrap_or(0),
                inode: ns.row.inode,
                stage,
            };
            ns.history.push(event.clone(), self.opts.history);
            out.push(event);
        }
        if let Some(end) = died {
            self.destroy(key, end.max(since), via, out);
        }
        true
    }
}

/// What finding a network namespace gone means.
enum Verdict {
    /// Dying: at this stage, since then; `true`: unexplained so far.
    Dying(TeardownStage, BootNs, bool),
    /// Taken by a run that already ended: dying since, gone at its end.
    DiedAt(BootNs, BootNs),
    /// Missing twice with no run to explain it.
    Unexplained,
}

//! The store's provenance side (`serve`): creators' origins, what a
//! database remembers, the journal of changes, and who made the mounts
//! that pin namespaces.

use std::{collections::VecDeque, time::Duration};

use super::NsStore;
use crate::{
    database::{Change, NsProvenance},
    events::Event,
    model::{Creator, NsKey, Pin, PinKind, PinMaker, Pins, Process},
    origin::{ContainerRef, Origin},
    time::UnixTime,
};

/// Bind mounts remembered for attribution.
const RECENT_MOUNTS: usize = 1024;
/// A mount event may be stamped this much after the refresh that first saw
/// its mount (the refresh runs on another thread).
const MOUNT_SKEW: Duration = Duration::from_secs(2);

/// One bind mount a hook saw.
#[derive(Clone, Debug, PartialEq)]
struct SeenMount {
    time: UnixTime,
    mnt_ns: u64,
    target: String,
    path: Option<String>,
    by: PinMaker,
}

#[derive(Clone, Debug, Default)]
pub(super) struct RecentMounts(VecDeque<SeenMount>);

impl RecentMounts {
    fn push(&mut self, m: SeenMount) {
        if self.0.len() == RECENT_MOUNTS {
            self.0.pop_front();
        }
        self.0.push_back(m);
    }

    /// Names the makers of `pins`' mounts not yet attributed; true if any.
    pub(super) fn attribute(&self, pins: &mut Pins) -> bool {
        let unknown: Vec<(String, u64, UnixTime)> = pins
            .iter()
            .filter(|p| p.kind == PinKind::Mount && p.by.is_none() && p.released.is_none())
            .filter_map(|p| Some((p.target.clone(), p.mnt_ns?, p.since)))
            .collect();
        let mut changed = false;
        for (target, mnt_ns, since) in unknown {
            // The newest mount there made before (or just after) it was seen.
            let maker = self.0.iter().rev().find(|m| {
                m.mnt_ns == mnt_ns
                    && m.time <= since + MOUNT_SKEW
                    && (m.target == target || m.path.as_deref() == Some(target.as_str()))
            });
            if let Some(m) = maker {
                changed |= pins.attribute(&target, mnt_ns, m.by.clone(), crate::model::Attribution::MountSyscall);
            }
        }
        changed
    }
}

impl NsStore {
    /// Completes, with what /proc said, the origin of the live namespace `key`'s creator.
    pub fn set_origin(&mut self, key: NsKey, origin: Origin) {
        if let Some(c) = self.live.get_mut(&key).and_then(|ns| ns.creator.as_mut()) {
            c.origin.complete(origin);
            self.journal.touch(key);
        }
    }

    /// Provenance changes since the last call, for the database (empty
    /// unless [`StoreOptions::provenance`]).
    pub fn take_provenance(&mut self) -> Vec<Change> {
        let live = &self.live;
        self.journal.take(|key| live.get(&key).map(|ns| NsProvenance::of(ns)))
    }

    /// Gives the live namespace `key` what an earlier run knew of it (the
    /// provenance database, after a restart). Keeps what this run saw.
    pub fn adopt(
        &mut self,
        key: NsKey,
        created: Option<UnixTime>,
        creator: Option<Creator>,
        pins: Vec<Pin>,
        containers: Vec<ContainerRef>,
    ) -> bool {
        let Some(ns) = self.live.get_mut(&key) else { return false };
        if ns.creator.is_none() {
            ns.created = created.or(ns.created);
            ns.creator = creator.map(Box::new);
        }
        ns.pins.adopt(pins);
        ns.seen_in.adopt(containers);
        self.journal.touch(key);
        true
    }

    /// Names (through `namer`: runtime state on disk) the containers seen in
    /// namespaces whose provenance changed since the database last heard.
    pub fn name_containers(
        &mut self,
        mut namer: impl FnMut(&ContainerRef) -> Option<crate::containers::names::RuntimeNames>,
    ) {
        for key in self.journal.dirty_keys() {
            if let Some(ns) = self.live.get_mut(&key) {
                ns.seen_in.name(&mut namer);
            }
        }
    }

    /// A bind mount was made: remembered, to name who made the pin a
    /// refresh finds there (now, or at the next refresh).
    pub fn on_mount(&mut self, e: &Event) {
        if !self.opts.provenance {
            return;
        }
        if let Event::Mount { time, pid, comm, parent_pid, parent_comm, mnt_ns, target, path, .. } = e {
            self.mounts.push(SeenMount {
                time: *time,
                mnt_ns: *mnt_ns,
                target: target.clone(),
                path: path.clone(),
                by: PinMaker {
                    process: Process::new(comm, *pid),
                    parent: Some(Process::new(parent_comm, *parent_pid)),
                },
            });
        }
    }
}

#[cfg(test)]
mod tests;

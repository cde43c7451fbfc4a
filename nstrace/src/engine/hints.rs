//! Hints that a namespace may have died (a task's exit, a syscall that
//! left namespaces, a destroying work item's end), and the start and end of
//! `cleanup_net` runs, which bound a dying network namespace's teardown.

use nstrace_common::{
    config::WORK_CLEANUP_NET,
    event::{DestroyHintEvent, hint_phase},
    ns::{NsType, NsTypeSet},
};

use std::time::Duration;

use super::{Engine, HINT_WALK_GAP, Snapshotter, destroy_work_types};
use crate::{events::Event, time::BootNs};

impl Engine {
    /// A namespace of `types` may have died: walk their lists soon
    /// (rate-limited). Not needed when a kernel hook reports every death.
    pub(super) fn hint(&mut self, types: NsTypeSet) {
        if self.mechanisms.destroy.is_exact_hook() || types.is_empty() {
            return;
        }
        self.hinted = self.hinted.union(types);
        if self.walk_soon.is_none() {
            // Within a budget: a walk of the kernel's lists grows with the
            // namespaces alive, so under churn they take at most a 200th of
            // the time (at 10,000 namespaces a death is reported within
            // about 0.6 s); a /proc re-scan costs far more and is the only
            // way to see deaths there: a third.
            let factor = if matches!(self.snapshotter, Snapshotter::Tree(_)) { 200 } else { 2 };
            let gap = HINT_WALK_GAP.max(self.last_snapshot_cost * factor);
            let earliest = self.last_walk_at + gap;
            // A little delay lets a burst of exits share one walk.
            let at = (tokio::time::Instant::now() + Duration::from_millis(5)).max(earliest);
            self.walk_soon = Some(at);
        }
    }

    /// A destroying work item ended, or `cleanup_net` started or ended.
    pub(super) fn destroy_hint(&mut self, h: &DestroyHintEvent, out: &mut Vec<Event>) {
        let ts = BootNs::from_nanos(h.header.ts_ns);
        let net = h.which as usize == WORK_CLEANUP_NET;
        match h.phase {
            hint_phase::START if net => {
                self.store.cleanup_started(ts);
                // What it took leaves the list now: a walk while it runs
                // shows them dying (a quick run ends before it: they die at once).
                self.hint(NsTypeSet::of(NsType::Net));
            }
            hint_phase::START => {}
            _ => {
                if net {
                    self.store.cleanup_ended(ts, out);
                }
                self.hint(destroy_work_types(h.which));
            }
        }
    }
}

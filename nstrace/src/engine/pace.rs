//! The engine's pace: which types a record hints may have died, and how
//! often walks, hint-driven walks and lost-record checks may run.

use std::time::Duration;

use nstrace_common::ns::{NsTypeSet, SLOT_TYPES, TASK_NS_SLOTS};

/// The types of the task-set slots for which `pick` holds.
pub(super) fn slot_types(pick: impl Fn(usize) -> bool) -> NsTypeSet {
    (0..TASK_NS_SLOTS).filter(|&i| pick(i)).fold(NsTypeSet::EMPTY, |set, i| set.with(SLOT_TYPES[i]))
}

/// The types whose deaths `Config::destroy_work_fns[which]` finishes.
pub(super) fn destroy_work_types(which: u32) -> NsTypeSet {
    // A slot the record should not carry: any type may have died.
    nstrace_common::config::DESTROY_WORK_FN_TYPES.get(which as usize).map_or(NsTypeSet::ALL, |t| NsTypeSet::of(*t))
}

/// Shortest gap between readings of the lost-record counters outside the
/// periodic walk.
pub(super) const LOST_CHECK_GAP: Duration = Duration::from_millis(250);

/// The gap between periodic walks (and the monitor's holder refreshes):
/// the configured interval per 2,500 namespaces alive. Their cost grows with
/// the namespaces (docs/benchmarks.md, a busy host): a large host gets them
/// less often rather than paying a share of a CPU for each. By count, not
/// by measured cost, so a slow (emulated) machine with few namespaces
/// keeps its pace.
pub fn periodic_gap(interval: Duration, live: usize) -> Duration {
    interval * (live / 2_500).max(1) as u32
}

/// Shortest gap between hint-driven walks (bounds their cost under churn).
pub(super) const HINT_WALK_GAP: Duration = Duration::from_millis(50);

/// Ids of our own (host) namespaces.
pub(super) fn host_namespace_ids() -> std::collections::HashSet<u64> {
    nstrace_common::ns::NsType::ALL
        .iter()
        .filter_map(|t| crate::procfs::nsfs::open(std::path::Path::new(&format!("/proc/self/ns/{}", t.name()))).ok())
        .filter_map(|fd| crate::procfs::nsfs::ns_id(&fd).ok())
        .collect()
}

//! Network namespaces dying between their last reference and the end of
//! the `cleanup_net` run that tears them down.

use super::*;
use crate::{events::DeathVia, model::TeardownStage, time::BootNs};

const MS: u64 = SEC / 1000;

fn at(ns: u64) -> BootNs {
    BootNs::from_nanos(ns)
}

/// A store tracking teardown, with net namespace 50 (inode 11) alive as of
/// a walk at 1 s.
fn tracked() -> NsStore {
    let mut s = store();
    s.track_teardown(true);
    let alive = [walk_row(NsType::Net, 3, 10, 5), walk_row(NsType::Net, 50, 11, 1)];
    s.seed(&alive, at(0));
    walk(&mut s, &alive, SEC);
    s
}

fn walk(s: &mut NsStore, rows: &[NsInfoRecord], ts: u64) -> Vec<Event> {
    let mut out = Vec::new();
    s.reconcile(rows, at(ts), Coverage::Complete, DeathVia::TreeWalk, &mut out);
    out
}

fn stage(s: &NsStore, id: u64) -> Option<TeardownStage> {
    by_id(s, id).and_then(|n| n.row.dying.as_deref()).map(|d| d.stage)
}

fn teardown(events: &[Event]) -> Option<f64> {
    events.iter().find_map(|e| match e {
        Event::Destroy { teardown, .. } => *teardown,
        _ => None,
    })
}

#[test]
fn missing_while_a_run_is_in_progress_is_dying_until_the_run_ends() {
    let mut s = tracked();
    s.cleanup_started(at(2 * SEC));
    let out = walk(&mut s, &[walk_row(NsType::Net, 3, 10, 5)], 2 * SEC + 100 * MS);
    assert_eq!(kinds(&out), ["dying"]);
    assert_eq!(stage(&s, 50), Some(TeardownStage::Cleanup));
    assert_eq!(by_id(&s, 50).unwrap().row.state, NsState::Dying);
    // Still missing while the run goes on: nothing new.
    assert!(walk(&mut s, &[walk_row(NsType::Net, 3, 10, 5)], 3 * SEC).is_empty());
    let mut out = Vec::new();
    s.cleanup_ended(at(4 * SEC), &mut out);
    assert_eq!(kinds(&out), ["destroy"]);
    // Dying since the run took it (it was alive at the walk before, at 1 s).
    assert_eq!(teardown(&out), Some(2.0));
    assert!(by_id(&s, 50).is_none());
}

#[test]
fn listed_with_no_reference_is_queued_then_taken_by_the_next_run() {
    let mut s = tracked();
    let out = walk(&mut s, &[walk_row(NsType::Net, 3, 10, 5), walk_row(NsType::Net, 50, 11, 0)], 2 * SEC);
    assert_eq!(kinds(&out), ["dying"]);
    assert_eq!(stage(&s, 50), Some(TeardownStage::Queued));
    // A run that ends without having started after it does not end it.
    let mut out = Vec::new();
    s.cleanup_ended(at(2 * SEC + 10 * MS), &mut out);
    assert!(out.is_empty(), "{out:?}");
    s.cleanup_started(at(5 * SEC));
    assert_eq!(stage(&s, 50), Some(TeardownStage::Cleanup));
    s.cleanup_ended(at(7 * SEC), &mut out);
    assert_eq!(teardown(&out), Some(5.0));
}

#[test]
fn a_whole_run_between_two_walks_took_what_went_missing() {
    let mut s = tracked();
    s.cleanup_started(at(2 * SEC));
    let mut out = Vec::new();
    s.cleanup_ended(at(2 * SEC + 300 * MS), &mut out);
    assert!(out.is_empty());
    let out = walk(&mut s, &[walk_row(NsType::Net, 3, 10, 5)], 3 * SEC);
    assert_eq!(kinds(&out), ["dying", "destroy"]);
    let Event::Destroy { time, teardown, .. } = &out[1] else { panic!() };
    assert!(teardown.is_some_and(|t| (t - 0.3).abs() < 1e-6), "{teardown:?}");
    assert_eq!(*time, s.clock().unix(at(2 * SEC + 300 * MS)), "gone at the run's end");
}

#[test]
fn missing_with_no_run_seen_waits_for_the_late_end_record_then_one_more_walk() {
    let mut s = tracked();
    // The run's records are still in the ring when the walk finds it missing.
    let out = walk(&mut s, &[walk_row(NsType::Net, 3, 10, 5)], 3 * SEC);
    assert_eq!(kinds(&out), ["dying"]);
    let mut out = Vec::new();
    s.cleanup_started(at(2 * SEC));
    s.cleanup_ended(at(2 * SEC + 500 * MS), &mut out);
    assert_eq!(teardown(&out), Some(1.5), "dying since it was last seen alive, at 1 s");

    // No record ever comes: gone at the second walk, teardown unknown.
    let mut s = tracked();
    walk(&mut s, &[walk_row(NsType::Net, 3, 10, 5)], 3 * SEC);
    let out = walk(&mut s, &[walk_row(NsType::Net, 3, 10, 5)], 4 * SEC);
    assert_eq!(kinds(&out), ["destroy"]);
    assert_eq!(teardown(&out), None);
}

#[test]
fn a_destroy_hook_outside_a_run_queues_it_inside_a_run_takes_it() {
    let mut s = tracked();
    let mut out = Vec::new();
    let mut gone = freed(11, 2 * SEC);
    gone.ns_type = NsType::Net as u32;
    gone.id = 50;
    assert!(s.on_destroy(&gone, DeathVia::FentryNsTree, &mut out).is_some());
    assert_eq!(stage(&s, 50), Some(TeardownStage::Queued));
    s.cleanup_started(at(3 * SEC));
    s.cleanup_ended(at(3 * SEC + 250 * MS), &mut out);
    assert_eq!(kinds(&out), ["dying", "destroy"]);
    let Event::Destroy { via, teardown, .. } = &out[1] else { panic!() };
    assert_eq!((*via, *teardown), (DeathVia::FentryNsTree, Some(1.25)));
}

#[test]
fn untracked_or_other_types_die_at_once() {
    let mut s = store();
    s.seed(&[walk_row(NsType::Net, 50, 11, 1)], at(0));
    let out = walk(&mut s, &[], SEC);
    assert_eq!((kinds(&out), teardown(&out)), (vec!["destroy"], None));

    let mut s = tracked();
    s.seed(&[walk_row(NsType::Uts, 60, 12, 1)], at(0));
    s.cleanup_started(at(2 * SEC));
    let out = walk(&mut s, &[walk_row(NsType::Net, 3, 10, 5), walk_row(NsType::Net, 50, 11, 1)], 3 * SEC);
    assert_eq!(kinds(&out), ["destroy"], "the uts namespace");
}

#[test]
fn lost_records_end_what_a_lost_end_would_have() {
    let mut s = tracked();
    s.cleanup_started(at(2 * SEC));
    walk(&mut s, &[walk_row(NsType::Net, 3, 10, 5)], 3 * SEC);
    let mut out = Vec::new();
    s.cleanup_records_lost(at(9 * SEC), &mut out);
    assert_eq!(kinds(&out), ["destroy"]);
    assert!(s.teardown_status().running_since.is_none());
}

//! Deaths and births a walk finds: lifetimes, refcounts, a destroy hook
//! beside the walk, walks of some types, snapshots that cannot decide.

use super::*;
use crate::time::{BootNs, UnixTime};

#[test]
fn destroy_by_walk_reports_lifetime_and_creator() {
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Net, 3, 10, 5)], BootNs::from_nanos(0));
    s.on_create(&create(NsType::Net, 50, 11, SEC, 7), &mut out);
    out.clear();
    let r = s.reconcile(
        &[walk_row(NsType::Net, 3, 10, 5)],
        BootNs::from_nanos(4 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert_eq!((ids(&r.created), ids(&r.destroyed)), (vec![], vec![50]));
    let Event::Destroy { lifetime, creator_pid, via, id, .. } = &out[0] else { panic!("{out:?}") };
    assert_eq!((*id, *lifetime, *creator_pid, *via), (50, Some(3.0), Some(7), crate::events::DeathVia::TreeWalk));
    assert!(by_id(&s, 50).is_none());
    let dead: Vec<_> = s.destroyed().collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].destroyed, Some(UnixTime::from_secs(1_000_004.0)));
    assert_eq!(dead[0].history.len(), 2, "create and destroy");
}

#[test]
fn zero_refcount_is_dead() {
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Time, 2, 20, 1)], BootNs::from_nanos(0));
    let r = s.reconcile(
        &[walk_row(NsType::Time, 2, 20, 0)],
        BootNs::from_nanos(1),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert_eq!(ids(&r.destroyed), [2]);
}

/// Beside a hook that reports every death, one walk may fall between the
/// last reference going and the hook's free (a user namespace is freed
/// from a workqueue): the hook names the death; a second walk confirms
/// one the hook missed.
#[test]
fn a_walk_beside_a_destroy_hook_waits_one_walk_for_the_hook() {
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::User, 3, 10, 1), walk_row(NsType::Uts, 4, 11, 1)], BootNs::from_nanos(0));
    let gone = [walk_row(NsType::User, 3, 10, 0)];
    let r = s.reconcile(
        &gone,
        BootNs::from_nanos(SEC),
        Coverage::BesideDestroyHook,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert_eq!((r.destroyed.len(), out.len()), (0, 0), "{out:?}");
    assert_eq!(
        s.on_destroy(&freed(10, SEC + SEC / 2), crate::events::DeathVia::FentryFreeInum, &mut out).map(|k| k.id()),
        Some(Some(3))
    );
    let Event::Destroy { via, .. } = &out[0] else { panic!("{out:?}") };
    assert_eq!(*via, crate::events::DeathVia::FentryFreeInum);
    // The uts namespace no hook reported: dead at the walk that first missed it.
    out.clear();
    let r = s.reconcile(
        &[],
        BootNs::from_nanos(2 * SEC),
        Coverage::BesideDestroyHook,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert_eq!(ids(&r.destroyed), [4]);
    let Event::Destroy { via, time, .. } = &out[0] else { panic!("{out:?}") };
    assert_eq!((*via, *time), (crate::events::DeathVia::TreeWalk, UnixTime::from_secs(1_000_001.0)));
    // One that comes back (a walk that raced a slow reference) is not killed.
    s.seed(&[walk_row(NsType::Net, 5, 12, 1)], BootNs::from_nanos(2 * SEC));
    out.clear();
    s.reconcile(
        &[],
        BootNs::from_nanos(3 * SEC),
        Coverage::BesideDestroyHook,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    s.reconcile(
        &[walk_row(NsType::Net, 5, 12, 1)],
        BootNs::from_nanos(4 * SEC),
        Coverage::BesideDestroyHook,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    s.reconcile(
        &[],
        BootNs::from_nanos(5 * SEC),
        Coverage::BesideDestroyHook,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert!(out.is_empty() && by_id(&s, 5).is_some(), "{out:?}");
}

/// A hint's walk of some types' lists judges only those types.
#[test]
fn a_walk_of_some_types_leaves_the_others_alone() {
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Net, 3, 10, 1), walk_row(NsType::Uts, 4, 11, 1)], BootNs::from_nanos(0));
    let uts = nstrace_common::ns::NsTypeSet::of(NsType::Uts);
    let r = s.reconcile_types(
        &[walk_row(NsType::Uts, 4, 11, 1)],
        uts,
        BootNs::from_nanos(SEC),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert_eq!(r, Reconciled::default(), "{out:?}");
    let r = s.reconcile_types(
        &[],
        uts,
        BootNs::from_nanos(2 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert_eq!(ids(&r.destroyed), [4]);
    assert!(by_id(&s, 3).is_some(), "the net namespace was not walked");
    // A new net namespace a uts walk cannot know of stays pending for its own walk.
    let net = [walk_row(NsType::Net, 3, 10, 1), walk_row(NsType::Net, 5, 12, 1)];
    s.reconcile(&net, BootNs::from_nanos(3 * SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out);
    s.reconcile_types(
        &[],
        uts,
        BootNs::from_nanos(4 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert!(by_id(&s, 5).is_none());
    let r =
        s.reconcile(&net, BootNs::from_nanos(5 * SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out);
    assert_eq!(ids(&r.created), [5]);
}

#[test]
fn walk_finds_what_lost_records_never_announced() {
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Net, 3, 10, 1)], BootNs::from_nanos(0));
    let rows = [walk_row(NsType::Net, 3, 10, 1), walk_row(NsType::Pid, 44, 55, 1)];
    // The first walk only notes it: a hook record may be in flight.
    assert!(
        s.reconcile(&rows, BootNs::from_nanos(SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out)
            .created
            .is_empty()
    );
    assert!(by_id(&s, 44).is_none());
    let r = s.reconcile(
        &rows,
        BootNs::from_nanos(2 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    assert_eq!(ids(&r.created), [44]);
    let Event::Create { cause, pid, .. } = &out[0] else { panic!() };
    assert_eq!((*cause, *pid), (crate::events::Cause::Walk, 0));
    let ns = by_id(&s, 44).unwrap();
    assert!(ns.creator.is_none());
    assert_eq!(ns.created, Some(UnixTime::from_secs(1_000_001.0)), "first seen by the first walk");
}

#[test]
fn unreported_namespace_that_died_is_created_and_destroyed() {
    let mut s = store();
    let mut out = Vec::new();
    s.reconcile(
        &[walk_row(NsType::Uts, 80, 81, 1)],
        BootNs::from_nanos(1),
        Coverage::Complete,
        crate::events::DeathVia::TreeWalk,
        &mut out,
    );
    let r = s.reconcile(&[], BootNs::from_nanos(2), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out);
    assert_eq!((r.created.len(), r.destroyed.len()), (1, 1));
    assert_eq!(kinds(&out), ["create", "destroy"]);
}

#[test]
fn create_record_after_the_walk_saw_it_keeps_the_creator() {
    let mut s = store();
    let mut out = Vec::new();
    let row = [walk_row(NsType::Uts, 70, 71, 1)];
    s.reconcile(&row, BootNs::from_nanos(2 * SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out);
    assert!(s.on_create(&create(NsType::Uts, 70, 71, SEC, 9), &mut out), "the hook reports it");
    assert!(
        s.reconcile(&row, BootNs::from_nanos(3 * SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out)
            .created
            .is_empty()
    );
    assert_eq!(kinds(&out), ["create"]);
    assert_eq!(by_id(&s, 70).unwrap().creator.as_ref().unwrap().pid, 9);

    // Later still: two walks promoted it ("walk"), then the record came.
    let mut s = store();
    let mut out = Vec::new();
    s.reconcile(&row, BootNs::from_nanos(2 * SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out);
    s.reconcile(&row, BootNs::from_nanos(3 * SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out);
    assert!(!s.on_create(&create(NsType::Uts, 70, 71, SEC, 9), &mut out), "reported once");
    assert_eq!(kinds(&out), ["create"]);
    let ns = by_id(&s, 70).unwrap();
    assert_eq!(ns.creator.as_ref().map(|c| c.pid), Some(9), "the walk's record learns its creator");
    assert_eq!(ns.created, Some(UnixTime::from_secs(1_000_001.0)));
}

#[test]
fn partial_snapshots_never_decide_a_death() {
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Uts, 0, 81, 1)], BootNs::from_nanos(0));
    // Seen once, unreported, then gone: not promoted.
    let rows = [walk_row(NsType::Uts, 0, 81, 1), walk_row(NsType::Ipc, 0, 90, 1)];
    s.reconcile(&rows, BootNs::from_nanos(1), Coverage::Partial, crate::events::DeathVia::ProcRescan, &mut out);
    let r = s.reconcile(&[], BootNs::from_nanos(2), Coverage::Partial, crate::events::DeathVia::ProcRescan, &mut out);
    assert_eq!(r, Reconciled::default());
    assert!(out.is_empty());
    assert_eq!(s.len(), 1, "the seeded one stays until a hook reports its death");
    assert!(s.on_destroy(&freed(81, 3), crate::events::DeathVia::FentryFreeInum, &mut out).is_some());
    assert!(s.is_empty());
}

//! Before 6.18 keys are type+inode and inodes are reused at once: deaths,
//! late records and new namespaces under a dead one's key.

use super::*;
use crate::time::{BootNs, UnixTime};

#[test]
fn late_create_of_a_reaped_namespace_does_not_revive_it() {
    let mut s = store();
    let mut out = Vec::new();
    s.on_create(&create(NsType::Ipc, 20, 30, SEC, 7), &mut out);
    s.reconcile(&[], BootNs::from_nanos(5 * SEC), Coverage::Complete, crate::events::DeathVia::TreeWalk, &mut out);
    assert!(!s.on_create(&create(NsType::Ipc, 20, 30, SEC, 7), &mut out));
    assert!(s.is_empty());
}

#[test]
fn inode_reuse_without_ids_and_an_exact_destroy_hook_is_a_new_namespace() {
    // Before 6.18: keys are type+inode; the free-inum hook names the inode.
    let mut s = store();
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Uts, 0, 81, 1)], BootNs::from_nanos(0));
    s.on_create(&create(NsType::Uts, 0, 90, SEC, 7), &mut out);
    assert_eq!(
        s.on_destroy(&freed(90, 2 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out),
        Some(NsKey::new(NsType::Uts, 90))
    );
    // A new namespace gets the same inode at once, created by someone else.
    assert!(s.on_create(&create(NsType::Uts, 0, 90, 3 * SEC, 8), &mut out));
    let key = NsKey::new(NsType::Uts, 90);
    let ns = s.get(key).expect("the new one is live");
    assert_eq!(ns.destroyed, None, "not shown as destroyed");
    assert_eq!(ns.creator.as_ref().unwrap().pid, 8, "does not inherit the dead one's creator");
    assert_eq!(ns.created, Some(UnixTime::from_secs(1_000_003.0)));
    // The holder scan attaches to the live one.
    let mut scan = HolderScan::default();
    let fd = Holder::Fd { pid: 8, fd: 3, comm: "holder".into() };
    scan.holders.insert(NsKey::new(NsType::Uts, 90), vec![fd]);
    s.apply_holders(scan, BootNs::from_nanos(4 * SEC), false);
    assert_eq!(s.get(key).unwrap().row.state, NsState::FdOnly);
    let dead: Vec<_> = s.destroyed().collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].creator.as_ref().unwrap().pid, 7);
    assert_eq!(kinds(&out), ["create", "destroy", "create"]);
    // A record older than the death is stale.
    assert!(!s.on_create(&create(NsType::Uts, 0, 90, 2 * SEC - 1, 7), &mut out));
    // procfs inodes freed through the same hook are not namespaces.
    assert_eq!(s.on_destroy(&freed(4242, 5 * SEC), crate::events::DeathVia::FentryFreeInum, &mut out), None);
}

#[test]
fn inode_reuse_without_ids_or_a_destroy_hook_is_seen_at_the_next_rescan() {
    let mut s = store();
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 0, 90, SEC, 7), &mut out);
    let r = s.reconcile(
        &[],
        BootNs::from_nanos(2 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::ProcRescan,
        &mut out,
    );
    assert_eq!(r.destroyed.len(), 1);
    assert!(s.on_create(&create(NsType::Net, 0, 90, 3 * SEC, 8), &mut out));
    let ns = s.get(NsKey::new(NsType::Net, 90)).unwrap();
    assert_eq!((ns.destroyed, ns.creator.as_ref().unwrap().pid), (None, 8));
}

#[test]
fn inode_reuse_without_ids_or_a_destroy_hook_is_seen_by_the_hook_at_once() {
    // The hook found a new struct under a key it knew: the old one is dead
    // although no re-scan has run since.
    let mut s = store();
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 0, 90, SEC, 7), &mut out);
    let replaced = NsCreateEvent {
        cause: create_cause::UNSHARE | create_cause::REPLACED,
        ..create(NsType::Net, 0, 90, 3 * SEC, 8)
    };
    assert!(s.on_create(&replaced, &mut out), "the new one is reported");
    let ns = s.get(NsKey::new(NsType::Net, 90)).unwrap();
    assert_eq!((ns.destroyed, ns.creator.as_ref().unwrap().pid), (None, 8));
    assert_eq!(ns.creator.as_ref().unwrap().cause, crate::events::Cause::Unshare, "the flag is not part of the cause");
    let dead: Vec<_> = s.destroyed().collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].creator.as_ref().unwrap().pid, 7);
    assert_eq!(kinds(&out), ["create", "destroy", "create"]);
    assert!(
        matches!(&out[1], Event::Destroy { via, .. } if *via == crate::events::DeathVia::InodeReused),
        "{:?}",
        out[1]
    );
    // The re-scan that follows finds the new one alive.
    let r = s.reconcile(
        &[walk_row(NsType::Net, 0, 90, 1)],
        BootNs::from_nanos(4 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::ProcRescan,
        &mut out,
    );
    assert_eq!(r, Reconciled::default());
    assert_eq!(s.live().count(), 1);
    // A flagged record for a key the store does not hold is just new.
    assert!(s.on_create(
        &NsCreateEvent { cause: create_cause::FORK | create_cause::REPLACED, ..create(NsType::Uts, 0, 91, 5 * SEC, 9) },
        &mut out
    ));
    assert_eq!(s.destroyed().count(), 1);
}

#[test]
fn a_replaced_namespace_that_lived_and_died_between_two_rescans_is_reported() {
    // The second namespace with an inode was made and gone before the
    // re-scan that saw the first one's death; its record, older than that
    // death, is not the dead one's late create: the hook said it is new.
    let mut s = store();
    let mut out = Vec::new();
    s.on_create(&create(NsType::Uts, 0, 90, SEC, 7), &mut out);
    let r = s.reconcile(
        &[],
        BootNs::from_nanos(3 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::ProcRescan,
        &mut out,
    );
    assert_eq!(r.destroyed.len(), 1);
    let replaced = NsCreateEvent {
        cause: create_cause::UNSHARE | create_cause::REPLACED,
        ..create(NsType::Uts, 0, 90, 2 * SEC, 8)
    };
    assert!(s.on_create(&replaced, &mut out), "the second one is reported");
    assert_eq!(kinds(&out), ["create", "destroy", "create"]);
    assert_eq!(s.get(NsKey::new(NsType::Uts, 90)).unwrap().creator.as_ref().unwrap().pid, 8);
    // The next re-scan finds it gone too.
    let r = s.reconcile(
        &[],
        BootNs::from_nanos(4 * SEC),
        Coverage::Complete,
        crate::events::DeathVia::ProcRescan,
        &mut out,
    );
    assert_eq!(r.destroyed.len(), 1);
    // An unflagged record older than the death stays stale.
    assert!(!s.on_create(&create(NsType::Uts, 0, 90, 2 * SEC, 9), &mut out));
}

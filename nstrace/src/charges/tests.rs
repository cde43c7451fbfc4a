use nstrace_common::{event::NsInfoRecord, ns::NsType};

use super::*;
use crate::procfs::userns::UserNsFacts;
use crate::{
    procfs::holders::HolderScan,
    store::tests::walk_row,
    time::{BootNs, Clock},
};

const HOST_USER: u32 = 100;
const CHILD_USER: u32 = 200;
const GRANDCHILD_USER: u32 = 300;

fn user(inum: u32, parent: u32, level: u32, owner_uid: u32, counts: [u32; 8], limits: [u32; 8]) -> NsInfoRecord {
    let mut r = walk_row(NsType::User, u64::from(inum), inum, 3);
    r.owner.inum = parent;
    r.parent.inum = parent;
    r.level = level;
    if parent != 0 {
        r.charged = 0xffff_0000 + u64::from(inum);
        r.charged_uid = owner_uid;
    }
    r.charged_counts = counts;
    r.limits = limits;
    r
}

fn member(ty: NsType, inum: u32, owner: u32, uid: u32, kernel_count: u32) -> NsInfoRecord {
    let mut r = walk_row(ty, u64::from(inum), inum, 1);
    r.owner.inum = owner;
    r.charged = 0xeeee_0000 + u64::from(owner);
    r.charged_uid = uid;
    r.charged_counts[ty as usize] = kernel_count;
    r
}

fn store(records: &[NsInfoRecord]) -> NsStore {
    NsStore::from_snapshot(records, HolderScan::default(), Clock::with_offset(0.0), BootNs::from_nanos(1))
}

fn only(counts: &[(NsType, u32)]) -> [u32; 8] {
    let mut a = [0; 8];
    for &(t, n) in counts {
        a[t as usize] = n;
    }
    a
}

fn find(t: &ChargeTable, user_ns: u64, uid: u32, ty: NsType) -> &Level {
    t.levels
        .iter()
        .find(|l| l.user_ns == user_ns && l.uid == Some(uid) && l.ns_type == ty)
        .unwrap_or_else(|| panic!("no level {user_ns}/{uid}/{ty:?} in {:#?}", t.levels))
}

/// Two uts namespaces made by uid 0 in a child user namespace (limit 2)
/// count 2 of 2 there and, through the child's owner, 2 at the host: the
/// kernel's counts and the derived ones agree, and the full level sorts first.
#[test]
fn a_child_level_counts_its_namespaces_and_passes_them_up() {
    let t = table(&store(&[
        user(HOST_USER, 0, 0, 0, [0; 8], [1000; 8]),
        user(CHILD_USER, HOST_USER, 1, 0, only(&[(NsType::Uts, 2), (NsType::User, 1)]), only(&[(NsType::Uts, 2)])),
        member(NsType::Uts, 501, CHILD_USER, 0, 2),
        member(NsType::Uts, 502, CHILD_USER, 0, 2),
    ]));
    assert_eq!(t.counts, CountSource::Kernel);
    let child = find(&t, u64::from(CHILD_USER), 0, NsType::Uts);
    assert_eq!((child.used, child.limit, child.headroom), (2, Some(2), Some(0)));
    assert_eq!((child.kernel_used, child.derived_used), (Some(2), 2));
    let mut members: Vec<u64> = child.members.iter().map(|k| k.inode).collect();
    members.sort_unstable();
    assert_eq!(members, [501, 502]);
    let host = find(&t, u64::from(HOST_USER), 0, NsType::Uts);
    assert_eq!((host.kernel_used, host.derived_used, host.limit), (Some(2), 2, Some(1000)));
    assert_eq!(t.levels[0].user_ns, u64::from(CHILD_USER), "the full level first");
    // The child user namespace itself counts against the host for its owner.
    let users = find(&t, u64::from(HOST_USER), 0, NsType::User);
    assert_eq!((users.kernel_used, users.derived_used), (Some(1), 1));
}

/// A grandchild's namespaces are charged at the child's level to the uid
/// that owns the grandchild, and at the host to the child's owner.
#[test]
fn each_ancestor_level_is_charged_to_the_owner_of_the_child_below() {
    let t = table(&store(&[
        user(HOST_USER, 0, 0, 0, [0; 8], [1000; 8]),
        user(CHILD_USER, HOST_USER, 1, 1000, only(&[(NsType::Net, 1), (NsType::User, 2)]), [1000; 8]),
        user(GRANDCHILD_USER, CHILD_USER, 2, 7, only(&[(NsType::Net, 1), (NsType::User, 1)]), [1000; 8]),
        member(NsType::Net, 601, GRANDCHILD_USER, 5, 1),
    ]));
    assert_eq!(find(&t, u64::from(GRANDCHILD_USER), 5, NsType::Net).derived_used, 1);
    assert_eq!(find(&t, u64::from(CHILD_USER), 7, NsType::Net).derived_used, 1);
    assert_eq!(find(&t, u64::from(HOST_USER), 1000, NsType::Net).derived_used, 1);
    assert!(t.levels.iter().all(|l| l.kernel_used == Some(l.derived_used)), "{:#?}", t.levels);
    assert_eq!(t.deepest.user, 2);
}

/// Where the walk read no charges (before 6.18), counts are derived and
/// said to be; the initial namespaces are left out.
#[test]
fn without_the_kernels_counts_they_are_derived() {
    let mut host = walk_row(NsType::User, 1, 0xEFFF_FFFD, 3);
    host.owner.inum = 0;
    let mut uts = walk_row(NsType::Uts, 9, 777, 1);
    uts.owner.inum = 0xEFFF_FFFD;
    let t = table(&store(&[host, uts]));
    assert_eq!(t.counts, CountSource::Derived);
    assert_eq!(t.levels.len(), 1, "{:#?}", t.levels);
    assert_eq!((t.levels[0].uid, t.levels[0].derived_used, t.levels[0].kernel_used), (None, 1, None));
    // With the owner uids and limits /proc gives: charged to the owner's uid.
    let mut facts = UserNsFacts::default();
    facts.owner_uid.insert(0xEFFF_FFFD, 0);
    facts.limits.insert(0xEFFF_FFFD, [Some(5); 8]);
    let t = table_with(&store(&[host, uts]), &facts);
    assert_eq!((t.levels[0].uid, t.levels[0].limit, t.levels[0].headroom), (Some(0), Some(5), Some(4)));
}

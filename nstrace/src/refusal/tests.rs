use nstrace_common::{
    event::{CHARGE_LEVELS, COUNT_UNKNOWN, ChargeLevel, EventHeader, EventKind, NsRef, RefusalEvent, UID_UNKNOWN},
    ns::NsType,
};

use super::*;

const UTS: u64 = 0x0400_0000;
const NEWUSER: u64 = 0x1000_0000;
const NEWNS: u64 = 0x0002_0000;

fn level(inum: u32, depth: u32, uid: u32) -> ChargeLevel {
    ChargeLevel {
        user_ns: NsRef { id: u64::from(inum) - 4_026_531_000, inum, _reserved: 0 },
        uid,
        depth,
        counts: [0; 8],
        limits: [1000; 8],
    }
}

fn refusal(flags: u64, levels: &[ChargeLevel]) -> RefusalEvent {
    let mut all = [level(4_026_531_837, 0, 0); CHARGE_LEVELS];
    all[..levels.len()].copy_from_slice(levels);
    RefusalEvent {
        header: EventHeader { kind: EventKind::Refused as u32, size: 0, ts_ns: 0, tgid: 1, tid: 1 },
        syscall: 1,
        ret: -28,
        flags,
        euid: 0,
        pid_depth: 0,
        cgroup_id: 0,
        comm: [0; 16],
        level_count: levels.len() as u32,
        _reserved: 0,
        levels: all,
    }
}

/// The caller's own level is full: it is named, with its uid and figures.
#[test]
fn the_callers_own_full_level_is_named() {
    let mut child = level(4_026_532_100, 1, 0);
    child.counts[NsType::Uts as usize] = 2;
    child.limits[NsType::Uts as usize] = 2;
    let host = level(4_026_531_837, 0, 0);
    let r = RefusalReason::of(&refusal(UTS, &[child, host]));
    assert_eq!(
        r,
        RefusalReason::Limit {
            ns_type: NsType::Uts,
            user_ns: 4_026_532_100,
            user_ns_id: Some(1100),
            depth: 1,
            uid: Some(0),
            used: 2,
            limit: 2,
            sysctl: "max_uts_namespaces".into()
        }
    );
    assert_eq!(r.text(), "max_uts_namespaces = 2 in user namespace 4026532100 (depth 1), uid 0 there has 2");
    assert_eq!(crate::present::metrics::RefusalLabel::of(&r), crate::present::metrics::RefusalLabel::limit);
}

/// An ancestor's limit refuses although the creator's own level has room:
/// the ancestor is named, not the creator's level.
#[test]
fn an_ancestor_level_is_named_not_the_creators() {
    let mut grandchild = level(4_026_532_200, 2, 0);
    grandchild.counts[NsType::Uts as usize] = 1;
    let mut child = level(4_026_532_100, 1, 0);
    child.counts[NsType::Uts as usize] = 1;
    child.limits[NsType::Uts as usize] = 1;
    let r = RefusalReason::of(&refusal(UTS, &[grandchild, child, level(4_026_531_837, 0, 0)]));
    assert!(matches!(r, RefusalReason::Limit { user_ns: 4_026_532_100, depth: 1, .. }), "{r:?}");
}

/// Unknown counts (euid != uid at level 0) are never taken for full; the
/// levels above still are.
#[test]
fn unknown_counts_are_skipped() {
    let mut own = level(4_026_532_100, 1, UID_UNKNOWN);
    own.counts = [COUNT_UNKNOWN; 8];
    own.limits[NsType::Uts as usize] = 0;
    let mut host = level(4_026_531_837, 0, 1000);
    host.counts[NsType::Uts as usize] = 5;
    host.limits[NsType::Uts as usize] = 5;
    let r = RefusalReason::of(&refusal(UTS, &[own, host]));
    assert!(matches!(r, RefusalReason::Limit { depth: 0, uid: Some(1000), .. }), "{r:?}");
    assert!(r.text().contains("the host's"), "{}", r.text());
}

/// A user namespace as deep as the kernel allows: the reason is the depth.
#[test]
fn nesting_past_the_kernels_depth_is_a_depth_refusal() {
    let r = RefusalReason::of(&refusal(NEWUSER, &[level(4_026_533_000, 33, 0)]));
    assert_eq!(r, RefusalReason::Depth { ns_type: NsType::User, depth: 33, max: 33 });
    assert!(r.text().contains("depth"));
    let shallow = RefusalReason::of(&refusal(NEWUSER, &[level(4_026_533_000, 32, 0)]));
    assert_eq!(shallow, RefusalReason::Unknown, "depth 32 may still nest once more");
}

/// The kernel makes the user namespace before the others: with both full,
/// the user limit is the one that refused.
#[test]
fn the_kernels_order_decides_between_full_types() {
    let mut l = level(4_026_532_100, 1, 0);
    for t in [NsType::User, NsType::Uts] {
        l.counts[t as usize] = 3;
        l.limits[t as usize] = 3;
    }
    let r = RefusalReason::of(&refusal(UTS | NEWUSER, &[l]));
    assert_eq!(r.ns_type(), Some(NsType::User));
}

/// Nothing full and a mount namespace asked for: the mount-max limit.
#[test]
fn a_mount_namespace_with_no_full_level_is_mount_max() {
    assert_eq!(RefusalReason::of(&refusal(NEWNS, &[level(4_026_531_837, 0, 0)])), RefusalReason::MountMax);
    assert_eq!(RefusalReason::of(&refusal(UTS, &[level(4_026_531_837, 0, 0)])), RefusalReason::Unknown);
}

/// A clone whose flags could not be read: the first full level of any type
/// is named.
#[test]
fn unknown_flags_check_every_type() {
    let mut l = level(4_026_532_100, 1, 0);
    l.counts[NsType::Net as usize] = 1;
    l.limits[NsType::Net as usize] = 1;
    assert_eq!(RefusalReason::of(&refusal(0, &[l])).ns_type(), Some(NsType::Net));
}

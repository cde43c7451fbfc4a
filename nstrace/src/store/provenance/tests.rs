//! The store's provenance side: the journal, pins and who made them.

use crate::{
    database::Change,
    events::Event,
    model::{Holder, NsKey, TaskHold},
    origin::Origin,
    procfs::holders::HolderScan,
    store::{
        NsStore, StoreOptions,
        tests::{SEC, by_id, create, freed, store, walk_row},
    },
    time::{BootNs, Clock, UnixTime},
};
use nstrace_common::{event::NsDestroyEvent, ns::NsType};

#[test]
fn provenance_journal_orders_updates_before_deaths() {
    let mut s = NsStore::new(Clock::with_offset(1_000_000.0), StoreOptions { provenance: true, ..Default::default() });
    let mut out = Vec::new();
    s.seed(&[walk_row(NsType::Uts, 0, 81, 1)], BootNs::from_nanos(0));
    s.on_create(&create(NsType::Net, 5, 90, SEC, 7), &mut out);
    let changes = s.take_provenance();
    let mut upserted: Vec<u64> = changes
        .iter()
        .map(|c| match c {
            Change::Upsert(r) => r.inode,
            other => panic!("{other:?}"),
        })
        .collect();
    upserted.sort();
    assert_eq!(upserted, [81, 90], "seeded and created namespaces are recorded");
    assert!(s.take_provenance().is_empty(), "nothing changed since");
    // Origin, then a pin, then the death, all before the next take.
    let key = NsKey::of_record(NsType::Net, 5, 90);
    s.set_origin(key, Origin { exe: Some("/usr/sbin/ip".into()), ..Default::default() });
    let mut scan = HolderScan::default();
    let mount = Holder::Mount { path: "/run/netns/blue".into(), mnt_ns: 1, via_pid: 1, stack: Default::default() };
    scan.holders.insert(NsKey::new(NsType::Net, 90), vec![mount]);
    s.apply_holders(scan, BootNs::from_nanos(2 * SEC), false);
    let d = NsDestroyEvent { ns_type: NsType::Net as u32, id: 5, ..freed(90, 3 * SEC) };
    s.on_destroy(&d, crate::events::DeathVia::FentryNsTree, &mut out);
    let changes = s.take_provenance();
    assert_eq!(changes.len(), 2, "{changes:?}");
    let Change::Upsert(r) = &changes[0] else { panic!("{changes:?}") };
    assert_eq!(r.creator.as_ref().unwrap().origin.exe.as_deref(), Some("/usr/sbin/ip"));
    assert_eq!(
        (r.pins.len(), r.pins[0].target.as_str(), r.pins[0].since),
        (1, "/run/netns/blue", UnixTime::from_secs(1_000_002.0))
    );
    assert_eq!(r.pins[0].released, Some(UnixTime::from_secs(1_000_003.0)), "a death releases its pins");
    let Change::Died { key: k, death, .. } = &changes[1] else { panic!("{changes:?}") };
    assert_eq!(
        (*k, death.at, death.via.map_or("", |v| v.name())),
        (key, UnixTime::from_secs(1_000_003.0), "fentry-ns-tree")
    );
    assert_eq!(death.lifetime, Some(2.0));
    // A store without the journal keeps nothing.
    let mut plain = store();
    plain.on_create(&create(NsType::Net, 5, 90, SEC, 7), &mut out);
    assert!(plain.take_provenance().is_empty());
}

#[test]
fn pins_are_added_released_and_bounded() {
    use crate::model::{PinKind, Pins};
    let mut p = Pins::default();
    assert!(
        !p.update(
            &[Holder::Task { pid: 1, comm: "x".into(), hold: TaskHold::Member, tid: None }],
            UnixTime::from_secs(1.0)
        ),
        "tasks are not pins"
    );
    assert!(p.is_empty());
    let fd = Holder::Fd { pid: 7, fd: 3, comm: "py".into() };
    let mount = Holder::Mount { path: "/run/netns/a".into(), mnt_ns: 9, via_pid: 1, stack: Default::default() };
    assert!(p.update(&[fd.clone(), mount.clone()], UnixTime::from_secs(2.0)));
    assert!(!p.update(&[fd.clone(), mount.clone()], UnixTime::from_secs(3.0)), "nothing new");
    let pins: Vec<_> = p.iter().cloned().collect();
    assert_eq!(
        (
            pins[0].kind,
            pins[0].target.as_str(),
            pins[0].by.as_ref().map(ToString::to_string).as_deref(),
            pins[0].attribution.name()
        ),
        (PinKind::Fd, "7:3", Some("py[7]"), "fd-owner")
    );
    assert_eq!(
        (
            pins[1].kind,
            pins[1].mnt_ns,
            pins[1].by.as_ref().map(ToString::to_string).as_deref(),
            pins[1].attribution.name()
        ),
        (PinKind::Mount, Some(9), None, "unknown")
    );
    assert!(p.attribute("/run/netns/a", 9, "ip[5]".parse().unwrap(), crate::model::Attribution::MountSyscall));
    assert!(
        !p.attribute("/run/netns/a", 8, "ip[5]".parse().unwrap(), crate::model::Attribution::MountSyscall),
        "another mount namespace"
    );
    assert!(p.update(std::slice::from_ref(&mount), UnixTime::from_secs(4.0)), "the fd closed");
    let pins: Vec<_> = p.iter().cloned().collect();
    assert_eq!(
        (pins[0].released, pins[1].released, pins[1].by.as_ref().map(ToString::to_string).as_deref()),
        (Some(UnixTime::from_secs(4.0)), None, Some("ip[5]"))
    );
    // Re-mounted later: a new pin, the old one kept.
    assert!(p.update(&[], UnixTime::from_secs(5.0)));
    assert!(p.update(&[mount], UnixTime::from_secs(6.0)));
    assert_eq!(p.iter().count(), 3);
    for i in 0..40 {
        p.update(&[Holder::Fd { pid: 100 + i, fd: 3, comm: "x".into() }], UnixTime::from_secs(7.0 + i as f64));
    }
    assert_eq!(p.iter().count(), Pins::CAP);
    assert!(p.iter().any(|p| p.released.is_none()), "the live pin is kept");
}

#[test]
fn a_bind_mount_names_who_pinned_a_namespace() {
    let mut s = NsStore::new(Clock::with_offset(1_000_000.0), StoreOptions { provenance: true, ..Default::default() });
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 5, 90, SEC, 7), &mut out);
    let mount = |time: f64, target: &str, path: Option<&str>| Event::Mount {
        time: UnixTime::from_secs(time),
        pid: 40,
        tid: 41,
        comm: "dockerd".into(),
        parent_pid: 1,
        parent_comm: "init".into(),
        syscall: "mount",
        flags: 4096,
        mnt_ns: 9,
        target: target.into(),
        path: path.map(Into::into),
    };
    let scan_with = |path: &str| {
        let mut scan = HolderScan::default();
        scan.holders.insert(
            NsKey::new(NsType::Net, 90),
            vec![Holder::Mount { path: path.into(), mnt_ns: 9, via_pid: 1, stack: Default::default() }],
        );
        scan
    };
    // The mount record first (as the kernel made it), the refresh later.
    s.on_mount(&mount(1_000_001.5, "/var/run/docker/netns/x", Some("/run/docker/netns/x")));
    s.apply_holders(scan_with("/run/docker/netns/x"), BootNs::from_nanos(2 * SEC + SEC / 2), false);
    let pin = by_id(&s, 5).unwrap().pins.iter().next().cloned().unwrap();
    assert_eq!(
        (pin.by.as_ref().map(ToString::to_string).as_deref(), pin.attribution.name()),
        (Some("dockerd[40] (parent init[1])"), "mount-syscall")
    );
    // A refresh first, the record after: named at the next refresh.
    s.on_create(&create(NsType::Uts, 6, 91, SEC, 7), &mut out);
    let mut scan = HolderScan::default();
    scan.holders.insert(
        NsKey::new(NsType::Uts, 91),
        vec![Holder::Mount { path: "/pin".into(), mnt_ns: 9, via_pid: 1, stack: Default::default() }],
    );
    s.apply_holders(scan, BootNs::from_nanos(3 * SEC), false);
    assert_eq!(by_id(&s, 6).unwrap().pins.iter().next().unwrap().by, None);
    s.on_mount(&mount(1_000_002.9, "/pin", None));
    let mut scan = HolderScan::default();
    scan.holders.insert(
        NsKey::new(NsType::Uts, 91),
        vec![Holder::Mount { path: "/pin".into(), mnt_ns: 9, via_pid: 1, stack: Default::default() }],
    );
    s.apply_holders(scan, BootNs::from_nanos(4 * SEC), false);
    assert!(by_id(&s, 6).unwrap().pins.iter().next().unwrap().by.is_some(), "named at the next refresh");
}

/// The records the next `take_provenance` upserts, by inode.
fn upserted(s: &mut NsStore) -> Vec<crate::database::NsProvenance> {
    s.take_provenance()
        .into_iter()
        .filter_map(|c| match c {
            Change::Upsert(r) => Some(*r),
            Change::Died { .. } | Change::Refused(_) => None,
        })
        .collect()
}

#[test]
fn a_container_seen_or_a_pin_made_is_journaled_alone_or_together() {
    use crate::procfs::holders::ProcInfo;
    let mut s = NsStore::new(Clock::with_offset(1_000_000.0), StoreOptions { provenance: true, ..Default::default() });
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 5, 90, SEC, 7), &mut out);
    s.take_provenance();
    let key = NsKey::new(NsType::Net, 90);
    let task = |pid| Holder::Task { pid, comm: "sh".into(), hold: TaskHold::Member, tid: None };
    let in_docker = |id: char| ProcInfo {
        cgroup: format!("/system.slice/docker-{}.scope", id.to_string().repeat(64)),
        ..Default::default()
    };
    let scan_of = |holders: Vec<Holder>, procs: Vec<(u32, ProcInfo)>| {
        let mut scan = HolderScan::default();
        scan.holders.insert(key, holders);
        scan.processes.extend(procs);
        scan
    };
    // A container's task comes in: seen_in changes, no pin does.
    s.apply_holders(scan_of(vec![task(7)], vec![(7, in_docker('a'))]), BootNs::from_nanos(2 * SEC), false);
    let r = upserted(&mut s);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].containers.len(), 1);
    // The same again: nothing to record.
    s.apply_holders(scan_of(vec![task(7)], vec![(7, in_docker('a'))]), BootNs::from_nanos(3 * SEC), false);
    assert!(upserted(&mut s).is_empty());
    // Another container and a mount at once: recorded once, with both.
    let mount = Holder::Mount { path: "/run/netns/x".into(), mnt_ns: 1, via_pid: 1, stack: Default::default() };
    s.apply_holders(
        scan_of(vec![task(7), task(8), mount], vec![(7, in_docker('a')), (8, in_docker('b'))]),
        BootNs::from_nanos(4 * SEC),
        false,
    );
    let r = upserted(&mut s);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].containers.len(), r[0].pins.len()), (2, 1), "{r:?}");
}

#[test]
fn the_death_of_an_evicted_namespace_keeps_its_id() {
    let opts = StoreOptions { provenance: true, max_rows: 1, ..Default::default() };
    let mut s = NsStore::new(Clock::with_offset(0.0), opts);
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 5, 90, SEC, 7), &mut out);
    s.on_create(&create(NsType::Uts, 6, 91, 2 * SEC, 7), &mut out);
    s.evict(BootNs::from_nanos(3 * SEC));
    assert_eq!(s.counts().evicted, 1);
    s.take_provenance();
    let d = NsDestroyEvent { ns_type: NsType::Net as u32, id: 5, ..freed(90, 4 * SEC) };
    s.on_destroy(&d, crate::events::DeathVia::FentryNsTree, &mut out);
    let died: Vec<_> = s
        .take_provenance()
        .into_iter()
        .filter_map(|c| match c {
            Change::Died { key, .. } => Some((key.ns_type, key.inode, key.id())),
            Change::Upsert(_) | Change::Refused(_) => None,
        })
        .collect();
    assert_eq!(died, [(NsType::Net, 90, Some(5))]);
}

/// A store with net 90 (id 5) created, and a mount event maker.
fn mount_event(time: f64, pid: u32, target: &str) -> Event {
    Event::Mount {
        time: UnixTime::from_secs(time),
        pid,
        tid: pid,
        comm: "mounter".into(),
        parent_pid: 1,
        parent_comm: "init".into(),
        syscall: "mount",
        flags: 4096,
        mnt_ns: 9,
        target: target.into(),
        path: None,
    }
}

fn scan_with_mounts(paths: &[&str]) -> HolderScan {
    let mut scan = HolderScan::default();
    scan.holders.insert(
        NsKey::new(NsType::Net, 90),
        paths
            .iter()
            .map(|p| Holder::Mount { path: (*p).into(), mnt_ns: 9, via_pid: 1, stack: Default::default() })
            .collect(),
    );
    scan
}

fn makers(s: &NsStore) -> Vec<(String, Option<String>)> {
    by_id(s, 5).unwrap().pins.iter().map(|p| (p.target.clone(), p.by.as_ref().map(ToString::to_string))).collect()
}

#[test]
fn every_recent_mount_is_remembered_and_a_named_pin_keeps_its_maker() {
    let mut s = NsStore::new(Clock::with_offset(1_000_000.0), StoreOptions { provenance: true, ..Default::default() });
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 5, 90, SEC, 7), &mut out);
    // Two mounts, then a refresh that finds both: both makers named.
    s.on_mount(&mount_event(1_000_001.1, 40, "/a"));
    s.on_mount(&mount_event(1_000_001.2, 41, "/b"));
    s.apply_holders(scan_with_mounts(&["/a", "/b"]), BootNs::from_nanos(2 * SEC), false);
    let by = |pid| Some(format!("mounter[{pid}] (parent init[1])"));
    assert_eq!(makers(&s), [("/a".to_string(), by(40)), ("/b".to_string(), by(41))]);
    // A later mount over the same path does not rename the pin's maker.
    s.on_mount(&mount_event(1_000_002.5, 42, "/a"));
    s.apply_holders(scan_with_mounts(&["/a", "/b"]), BootNs::from_nanos(2 * SEC + SEC / 2), false);
    assert_eq!(makers(&s)[0], ("/a".to_string(), by(40)));
}

#[test]
fn a_namespace_the_host_shares_with_a_container_is_not_claimed_for_it() {
    use crate::procfs::holders::ProcInfo;
    let mut s = NsStore::new(Clock::with_offset(1_000_000.0), StoreOptions { provenance: true, ..Default::default() });
    let mut out = Vec::new();
    s.on_create(&create(NsType::Cgroup, 5, 90, SEC, 7), &mut out);
    let mut scan = HolderScan::default();
    let task = |pid| Holder::Task { pid, comm: "sh".into(), hold: TaskHold::Member, tid: None };
    scan.holders.insert(NsKey::new(NsType::Cgroup, 90), vec![task(7), task(8)]);
    let pod = "/kubepods/besteffort/pod0f7e1c9a-1b2c-4d5e-8f90-a1b2c3d4e5f6";
    scan.processes.insert(7, ProcInfo { cgroup: format!("{pod}/{}", "c".repeat(64)), ..Default::default() });
    scan.processes.insert(8, ProcInfo { cgroup: "/user.slice/session-1.scope".into(), ..Default::default() });
    s.apply_holders(scan, BootNs::from_nanos(2 * SEC), false);
    let ns = by_id(&s, 5).unwrap();
    assert_eq!((ns.row.containers.len(), ns.row.host_tasks), (1, 1), "used by both, and shown so");
    assert!(ns.seen_in.is_empty(), "a host namespace (hostNetwork, hostPID) is not the pod's: {:?}", ns.seen_in);
}

#[test]
fn containers_are_named_where_provenance_changed() {
    use crate::procfs::holders::ProcInfo;
    let mut s = NsStore::new(Clock::with_offset(1_000_000.0), StoreOptions { provenance: true, ..Default::default() });
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 5, 90, SEC, 7), &mut out);
    let mut scan = HolderScan::default();
    scan.holders.insert(
        NsKey::new(NsType::Net, 90),
        vec![Holder::Task { pid: 7, comm: "sh".into(), hold: TaskHold::Member, tid: None }],
    );
    let cgroup = format!("/system.slice/docker-{}.scope", "c".repeat(64));
    scan.processes.insert(7, ProcInfo { cgroup, ..Default::default() });
    s.apply_holders(scan, BootNs::from_nanos(2 * SEC), false);
    let mut asked = Vec::new();
    s.name_containers(|c| {
        asked.push(c.id.clone());
        Some(crate::containers::names::RuntimeNames { name: Some("web".into()), ..Default::default() })
    });
    assert_eq!(asked, ["c".repeat(64)]);
    let seen: Vec<_> = by_id(&s, 5).unwrap().seen_in.iter().map(|c| c.name.clone()).collect();
    assert_eq!(seen, [Some("web".to_string())]);
    // Once recorded, nothing is asked again.
    s.take_provenance();
    s.name_containers(|_| panic!("nothing changed"));
}

#[test]
fn a_mount_made_well_after_the_pin_was_seen_is_not_its_maker_and_a_late_name_is_journaled() {
    let mut s = NsStore::new(Clock::with_offset(1_000_000.0), StoreOptions { provenance: true, ..Default::default() });
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 5, 90, SEC, 7), &mut out);
    // Seen at 1,000,002; a mount at the same place 10 s later made another one.
    s.apply_holders(scan_with_mounts(&["/a"]), BootNs::from_nanos(2 * SEC), false);
    s.take_provenance();
    s.on_mount(&mount_event(1_000_012.0, 40, "/a"));
    s.apply_holders(scan_with_mounts(&["/a"]), BootNs::from_nanos(12 * SEC), false);
    assert_eq!(makers(&s), [("/a".to_string(), None)]);
    assert!(upserted(&mut s).is_empty(), "nothing changed");
    // Within the skew (the record drained after the refresh): named, and
    // the change is journaled though the pin itself is not new.
    s.on_mount(&mount_event(1_000_003.5, 41, "/a"));
    s.apply_holders(scan_with_mounts(&["/a"]), BootNs::from_nanos(13 * SEC), false);
    let r = upserted(&mut s);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].pins[0].by.as_ref().map(ToString::to_string).as_deref(), Some("mounter[41] (parent init[1])"));
}

#[test]
fn adopt_says_whether_the_namespace_is_live() {
    let mut s = NsStore::new(Clock::with_offset(1_000_000.0), StoreOptions { provenance: true, ..Default::default() });
    let mut out = Vec::new();
    s.on_create(&create(NsType::Net, 5, 90, SEC, 7), &mut out);
    assert!(s.adopt(
        NsKey::of_record(NsType::Net, 5, 90),
        Some(UnixTime::from_secs(1.0)),
        None,
        Vec::new(),
        Vec::new()
    ));
    assert!(
        !s.adopt(NsKey::of_record(NsType::Net, 6, 90), Some(UnixTime::from_secs(1.0)), None, Vec::new(), Vec::new()),
        "no such namespace"
    );
}

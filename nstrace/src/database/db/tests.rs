use super::*;
use crate::{
    database::Death,
    model::{Creator, NsKey},
    origin::{ContainerRef, Origin},
    time::UnixTime,
};

struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("nstrace-db-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
    fn db(&self) -> PathBuf {
        self.0.join("sub/nstrace.db")
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn record(ns_type: NsType, inode: u64, id: Option<u64>, created: f64) -> NsProvenance {
    let container = ContainerRef {
        runtime: crate::containers::Runtime::Docker,
        id: "ab".repeat(32),
        name: Some("web".into()),
        ..Default::default()
    };
    NsProvenance {
        key: NsKey::new(ns_type, inode).with_id(id),
        ns_type,
        inode,
        id,
        created: Some(UnixTime::from_secs(created)),
        first_seen: UnixTime::from_secs(created),
        creator: Some(Creator {
            pid: 42,
            tid: 43,
            comm: "dockerd".into(),
            cause: crate::events::Cause::Unshare,
            flags: 0x4000_0000,
            origin: Origin {
                exe: Some("/usr/bin/dockerd".into()),
                cmdline: Some("dockerd -H x".into()),
                parent: Some("init[1]".parse().unwrap()),
                cgroup: Some("/system.slice/docker.service".into()),
                container: Some(container),
                cgroup_id: None,
            },
        }),
        owner: Some(4026531837),
        parent: None,
        containers: vec![ContainerRef {
            runtime: crate::containers::Runtime::Docker,
            id: "cd".repeat(32),
            name: Some("db".into()),
            ..Default::default()
        }],
        pins: vec![Pin {
            kind: PinKind::Mount,
            target: "/run/docker/netns/abc".into(),
            mnt_ns: Some(4026531841),
            by: Some("dockerd[42]".parse().unwrap()),
            attribution: crate::model::Attribution::MountSyscall,
            since: UnixTime::from_secs(created + 1.0),
            released: None,
        }],
        identity: Some(123),
    }
}

#[test]
fn records_round_trip_and_deaths_close_them() {
    let dir = TempDir::new("roundtrip");
    let (mut db, note) = Db::open(&dir.db(), "boot-a").unwrap();
    assert_eq!(note, None);
    let mode = std::fs::metadata(dir.db().parent().unwrap()).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o700, "the directory is private");
    let mut rowids = HashMap::new();
    let net = record(NsType::Net, 4026532500, Some(77), 1000.0);
    let uts = NsProvenance { creator: None, pins: vec![], ..record(NsType::Uts, 4026532501, Some(78), 1001.0) };
    db.apply(&[Change::Upsert(Box::new(net.clone())), Change::Upsert(Box::new(uts.clone()))], &mut rowids).unwrap();
    assert_eq!(rowids.len(), 2);
    let alive = db.alive().unwrap();
    assert_eq!(alive.len(), 2);
    let got = alive.iter().find(|a| a.record.ns_type == NsType::Net).unwrap();
    assert_eq!(got.record, net, "everything written comes back");
    // An update replaces the pins; a death closes the row.
    let mut later = net.clone();
    later.pins[0].released = Some(UnixTime::from_secs(1010.0));
    db.apply(&[Change::Upsert(Box::new(later.clone()))], &mut rowids).unwrap();
    let death = Death {
        at: UnixTime::from_secs(1020.0),
        lifetime: Some(20.0),
        via: crate::events::DeathVia::of_name("fentry-ns-tree"),
    };
    db.apply(&[Change::Died { key: net.key, death }], &mut rowids).unwrap();
    assert_eq!(rowids.len(), 1);
    assert_eq!(db.alive().unwrap().len(), 1);
    let h = db.history(&Query { alive: Some(false), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].destroyed, h[0].lifetime, h[0].via.map(crate::events::DeathVia::name)),
        (Some(UnixTime::from_secs(1020.0)), Some(20.0), Some("fentry-ns-tree"))
    );
    assert_eq!(h[0].record.pins[0].released, Some(UnixTime::from_secs(1010.0)));
    assert_eq!(h[0].boot_id, "boot-a");
    assert_eq!(db.integrity().unwrap(), "ok");
    assert!(db.bytes().unwrap() > 0);
    // A death never seen alive still gets a row.
    let d =
        Death { at: UnixTime::from_secs(1030.0), lifetime: None, via: crate::events::DeathVia::of_name("proc-rescan") };
    db.apply(&[Change::Died { key: NsKey::new(NsType::Ipc, 5), death: d }], &mut rowids).unwrap();
    assert_eq!(db.history(&Query { ns_type: Some(NsType::Ipc), limit: 10, ..Default::default() }).unwrap().len(), 1);
}

#[test]
fn history_filters_by_type_container_time_and_state() {
    let dir = TempDir::new("history");
    let (mut db, _) = Db::open(&dir.db(), "boot-a").unwrap();
    let mut rowids = HashMap::new();
    let a = record(NsType::Net, 10, Some(1), 100.0);
    let mut b = record(NsType::Uts, 11, Some(2), 200.0);
    b.creator.as_mut().unwrap().origin.container = None;
    let c = record(NsType::Net, 12, Some(3), 300.0);
    db.apply(
        &[
            Change::Upsert(Box::new(a.clone())),
            Change::Upsert(Box::new(b.clone())),
            Change::Upsert(Box::new(c.clone())),
        ],
        &mut rowids,
    )
    .unwrap();
    let death =
        Death { at: UnixTime::from_secs(150.0), lifetime: Some(50.0), via: crate::events::DeathVia::of_name("x") };
    db.apply(&[Change::Died { key: a.key, death }], &mut rowids).unwrap();
    let q =
        |q: Query| db.history(&Query { limit: 100, ..q }).unwrap().iter().map(|e| e.record.inode).collect::<Vec<_>>();
    assert_eq!(q(Query::default()), [12, 11, 10], "newest first");
    assert_eq!(q(Query { ns_type: Some(NsType::Net), ..Default::default() }), [12, 10]);
    assert_eq!(q(Query { container: Some("web".into()), ..Default::default() }), [12, 10]);
    assert_eq!(q(Query { container: Some("abab".into()), ..Default::default() }), [12, 10], "an id prefix");
    assert_eq!(
        q(Query { container: Some("ab".into()), ..Default::default() }),
        Vec::<u64>::new(),
        "too short a prefix"
    );
    assert_eq!(q(Query { container: Some("db".into()), ..Default::default() }), [12, 11, 10], "seen in it");
    assert_eq!(q(Query { container: Some("cdcd".into()), ..Default::default() }), [12, 11, 10], "seen: id prefix");
    assert_eq!(
        q(Query { since: Some(UnixTime::from_secs(160.0)), ..Default::default() }),
        [12, 11],
        "dead before --since"
    );
    assert_eq!(q(Query { alive: Some(true), ..Default::default() }), [12, 11]);
    assert_eq!(q(Query { alive: Some(false), ..Default::default() }), [10]);
    assert_eq!(db.history(&Query { limit: 1, ..Default::default() }).unwrap().len(), 1);
    assert_eq!(db.find(NsType::Net, 12, Some(3)).unwrap().map(|r| r.inode), Some(12));
    assert_eq!(db.find(NsType::Net, 99, None).unwrap(), None);
}

#[test]
fn restart_closes_what_died_meanwhile_and_other_boots() {
    let dir = TempDir::new("restart");
    let (mut db, _) = Db::open(&dir.db(), "boot-a").unwrap();
    let mut rowids = HashMap::new();
    let a = record(NsType::Net, 10, None, 100.0);
    db.apply(&[Change::Upsert(Box::new(a))], &mut rowids).unwrap();
    drop(db);
    // Same boot: still alive until closed.
    let (mut db, _) = Db::open(&dir.db(), "boot-a").unwrap();
    let alive = db.alive().unwrap();
    assert_eq!(alive.len(), 1);
    assert_eq!(
        db.close_unseen(&[(alive[0].rowid, crate::events::DeathVia::WhileNstraceWasDown)], UnixTime::from_secs(500.0))
            .unwrap(),
        1
    );
    assert!(db.alive().unwrap().is_empty());
    let h = db.history(&Query { limit: 5, ..Default::default() }).unwrap();
    assert_eq!(h[0].via.map(crate::events::DeathVia::name), Some("while-nstrace-was-down"));
    // Another boot: rows of the old one are closed as "reboot".
    let mut rowids = HashMap::new();
    db.apply(&[Change::Upsert(Box::new(record(NsType::Uts, 11, None, 200.0)))], &mut rowids).unwrap();
    drop(db);
    let (mut db, _) = Db::open(&dir.db(), "boot-b").unwrap();
    assert!(db.alive().unwrap().is_empty(), "another boot's rows are not this boot's namespaces");
    assert_eq!(db.close_unseen(&[], UnixTime::from_secs(600.0)).unwrap(), 1);
    let h = db.history(&Query { ns_type: Some(NsType::Uts), limit: 5, ..Default::default() }).unwrap();
    assert_eq!(h[0].via.map(crate::events::DeathVia::name), Some("reboot"));
}

#[test]
fn a_writer_knows_its_boot_and_its_file() {
    let dir = TempDir::new("boot");
    let (db, _) = Db::open(&dir.db(), "boot-a").unwrap();
    // A writer that reopens the file after a failure opens it for the same boot.
    assert_eq!((db.boot_id(), db.path()), ("boot-a", dir.db().as_path()));
    // nstrace_database_size_bytes: the file and its WAL, a page at least.
    let on_disk = std::fs::metadata(dir.db()).unwrap().len();
    assert!(db.bytes().unwrap() >= on_disk.max(4096), "{:?} vs {on_disk}", db.bytes());
    assert!(matches!(Db::open(&dir.db(), "boot-a"), Err(DbError::InUse { .. })), "one writer at a time");
    drop(db);
    assert!(Db::open(&dir.db(), "boot-a").is_ok(), "the lock goes with the connection");
}

#[test]
fn prune_by_age_then_by_row_cap() {
    let dir = TempDir::new("prune");
    let (mut db, _) = Db::open(&dir.db(), "boot-a").unwrap();
    let mut rowids = HashMap::new();
    let mut changes = Vec::new();
    for i in 0..10u64 {
        let r = record(NsType::Ipc, 100 + i, Some(i + 1), i as f64);
        changes.push(Change::Upsert(Box::new(r.clone())));
        if i < 8 {
            let death = Death {
                at: UnixTime::from_secs(10.0 + i as f64),
                lifetime: None,
                via: crate::events::DeathVia::of_name("x"),
            };
            changes.push(Change::Died { key: r.key, death });
        }
    }
    db.apply(&changes, &mut rowids).unwrap();
    assert_eq!(db.prune(UnixTime::from_secs(12.0), 1000).unwrap(), 2, "dead before t=12");
    assert_eq!(db.prune(UnixTime::from_secs(0.0), 5).unwrap(), 3, "then the oldest dead past 5 rows");
    let left = db.history(&Query { limit: 100, ..Default::default() }).unwrap();
    assert_eq!(left.len(), 5);
    assert_eq!(left.iter().filter(|e| e.destroyed.is_none()).count(), 2, "live rows are never pruned");
    let pins: i64 = db.conn.query_row("SELECT count(*) FROM pins", [], |r| r.get(0)).unwrap();
    assert_eq!(pins, 5, "pins go with their namespace");
}

#[test]
fn a_corrupt_file_is_moved_aside() {
    let dir = TempDir::new("corrupt");
    std::fs::create_dir_all(dir.db().parent().unwrap()).unwrap();
    std::fs::write(dir.db(), vec![0x5a; 8192]).unwrap();
    let (db, note) = Db::open(&dir.db(), "boot-a").unwrap();
    let note = note.expect("says so");
    assert!(note.contains("moved it to") && note.contains(".corrupt-"), "{note}");
    assert_eq!(db.integrity().unwrap(), "ok");
    let aside: Vec<_> = std::fs::read_dir(dir.db().parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(aside[0].path()).unwrap().len(), 8192, "the old file is kept as it was");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = TempDir::new("newer");
    drop(Db::open(&dir.db(), "b").unwrap());
    let conn = Connection::open(dir.db()).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = Db::open(&dir.db(), "b").err().expect("refused");
    assert!(err.to_string().contains("newer nstrace (schema 99"), "{err}");
}

#[test]
fn a_failed_write_keeps_the_mappings() {
    let dir = TempDir::new("failed");
    let (mut db, _) = Db::open(&dir.db(), "b").unwrap();
    let mut rowids = HashMap::new();
    let r = record(NsType::Net, 10, Some(1), 1.0);
    db.apply(&[Change::Upsert(Box::new(r.clone()))], &mut rowids).unwrap();
    let before = rowids.clone();
    db.conn.execute_batch("DROP TABLE pins").unwrap();
    let death = Death { at: UnixTime::from_secs(2.0), lifetime: None, via: crate::events::DeathVia::of_name("x") };
    let fresh = record(NsType::Uts, 11, Some(2), 1.0);
    let changes = [Change::Died { key: r.key, death }, Change::Upsert(Box::new(fresh))];
    assert!(db.apply(&changes, &mut rowids).is_err());
    assert_eq!(rowids, before, "rolled back: the death is still to write, the new row never existed");
}

#[test]
fn a_namespace_born_and_dead_in_one_batch_is_one_dead_row() {
    let dir = TempDir::new("one-batch");
    let (mut db, _) = Db::open(&dir.db(), "boot-a").unwrap();
    let mut rowids = HashMap::new();
    // Before 6.18 keys are type+inode: the inode is reused by a second
    // namespace in the same batch, which stays alive.
    let first = record(NsType::Uts, 20, None, 100.0);
    let mut second = record(NsType::Uts, 20, None, 100.5);
    second.creator.as_mut().unwrap().pid = 77;
    let died = |at| Change::Died {
        key: first.key,
        death: Death {
            at,
            lifetime: Some(at - UnixTime::from_secs(100.0)),
            via: crate::events::DeathVia::of_name("tree-walk"),
        },
    };
    db.apply(
        &[
            Change::Upsert(Box::new(first.clone())),
            died(UnixTime::from_secs(100.2)),
            Change::Upsert(Box::new(second.clone())),
        ],
        &mut rowids,
    )
    .unwrap();
    let h = db.history(&Query { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(h.len(), 2, "{h:?}");
    let dead = h.iter().find(|e| e.destroyed.is_some()).unwrap();
    assert_eq!(
        (dead.record.creator.as_ref().unwrap().pid, dead.via.map(crate::events::DeathVia::name)),
        (42, Some("tree-walk"))
    );
    assert_eq!(dead.record.pins, first.pins, "its pins are written too");
    let alive = db.alive().unwrap();
    assert_eq!(alive.len(), 1);
    assert_eq!(alive[0].record.creator.as_ref().unwrap().pid, 77);
    assert_eq!(rowids.len(), 1, "only the live one keeps a row mapping");
    // The live one's death, in a later batch, closes its own row.
    db.apply(&[died(UnixTime::from_secs(103.0))], &mut rowids).unwrap();
    assert!(db.alive().unwrap().is_empty() && rowids.is_empty());
    assert_eq!(db.history(&Query { alive: Some(false), limit: 10, ..Default::default() }).unwrap().len(), 2);
}

#[test]
fn history_finds_a_pod_by_name_uid_or_sandbox_in_the_containers_seen() {
    let dir = TempDir::new("history-pod");
    let (mut db, _) = Db::open(&dir.db(), "boot-a").unwrap();
    let mut rowids = HashMap::new();
    // A CRI netns: made by the runtime on the host (no creator container),
    // seen in the pod's sandbox.
    let mut a = record(NsType::Net, 10, Some(1), 100.0);
    a.creator.as_mut().unwrap().origin.container = None;
    a.containers = vec![ContainerRef {
        runtime: crate::containers::Runtime::Containerd,
        id: "5ab1e0c9".repeat(8),
        pod: Some("shop/web_1".into()),
        pod_uid: Some("u-1".into()),
        sandbox: Some("5ab1e0c9".repeat(8)),
        ..Default::default()
    }];
    let b = record(NsType::Net, 11, Some(2), 200.0);
    db.apply(&[Change::Upsert(Box::new(a)), Change::Upsert(Box::new(b))], &mut rowids).unwrap();
    let q = |pod: &str| {
        let q = Query { pod: Some(pod.into()), limit: 10, ..Default::default() };
        db.history(&q).unwrap().iter().map(|e| e.record.inode).collect::<Vec<_>>()
    };
    for found in ["web_1", "shop/web_1", "u-1", "5ab1e0c9"] {
        assert_eq!(q(found), [10], "{found}");
    }
    // `_` and `%` are not wildcards; a short prefix and another namespace match nothing.
    for none in ["web%", "web__", "5ab", "other/web_1", "shop"] {
        assert_eq!(q(none), Vec::<u64>::new(), "{none}");
    }
}

/// Refusals are kept as the events `trace` printed, newest first, and go
/// by age and by the row cap like destroyed namespaces.
#[test]
fn refusals_are_kept_newest_first_and_pruned() {
    let dir = TempDir::new("refusals");
    let (mut db, _) = Db::open(&dir.db(), "boot-a").unwrap();
    let refusal = |at: f64, pid: u32| {
        Change::Refused(Box::new(crate::database::RefusalRow {
            at: UnixTime::from_secs(at),
            pid,
            uid: 0,
            event: format!(r#"{{"event":"refused","pid":{pid},"reason":{{"kind":"limit"}}}}"#),
        }))
    };
    let mut rowids = HashMap::new();
    db.apply(&[refusal(1.0, 10), refusal(2.0, 20), refusal(3.0, 30)], &mut rowids).unwrap();
    assert!(rowids.is_empty(), "a refusal is no namespace's row");
    let all = db.refusals(None, 100).unwrap();
    let pids: Vec<u64> = all.iter().map(|r| r["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids, [30, 20, 10]);
    assert_eq!(all[0]["reason"]["kind"], "limit");
    assert_eq!(db.refusals(Some(UnixTime::from_secs(2.5)), 100).unwrap().len(), 1, "--since");
    assert_eq!(db.prune(UnixTime::from_secs(1.5), 1000).unwrap(), 1, "older than --retain");
    assert_eq!(db.prune(UnixTime::from_secs(0.0), 1).unwrap(), 1, "past the row cap, the oldest");
    assert_eq!(db.refusals(None, 100).unwrap()[0]["pid"], 30);
}

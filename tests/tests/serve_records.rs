//! What `nstrace serve` keeps in its database and says in its metrics:
//! retention (`--db-max-rows`, `--retain`), writes that fail after the
//! database opened (a full disk, a file system gone read-only mid-run)
//! and are written once it recovers, the database counters, the
//! per-container gauges and leak ages counted from creation. Everything
//! here is the service's own logic: it runs on the host only.

use std::{
    collections::HashSet,
    process::Command,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tests::{
    RmDir, eventually, ls_json, root_or_skip, service::Service, service::sample, service::sqlite, sh,
    short_lived_namespaces, skip, spawn_ready, tempdir,
};

/// The tests here count rows of the whole host: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn host_only(test: &str) -> bool {
    root_or_skip(test) && tests::kernel_independent(test)
}

/// Creator pids of destroyed `uts` rows the children of `pids` made.
fn destroyed_uts_of(db: &str, pids: &HashSet<u64>) -> usize {
    sqlite(db, "SELECT creator_pid FROM namespaces WHERE type = 'uts' AND destroyed_at IS NOT NULL")
        .iter()
        .filter(|p| p.parse().is_ok_and(|p: u64| pids.contains(&p)))
        .count()
}

fn metric(service: &Service, name: &str) -> f64 {
    let text = service.metrics();
    sample(&text, name, &[]).unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn db_max_rows_removes_the_oldest_destroyed_rows_and_never_a_live_one() {
    let test = "db_max_rows_removes_the_oldest_destroyed_rows_and_never_a_live_one";
    if !host_only(test) {
        return;
    }
    let _serial = serial();
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    // Room for what lives now and 45 destroyed rows.
    let cap = ls_json(&["--source", "proc"]).len() + 45;
    let service = Service::start_args(&dir, &["--db-max-rows", &cap.to_string()]);
    let db = service.db();
    // Four batches of 30, one after another: batch 1 dies first.
    let batches: Vec<HashSet<u64>> = (0..4)
        .map(|_| {
            let pids = short_lived_namespaces(30, libc::CLONE_NEWUTS);
            std::thread::sleep(Duration::from_millis(300));
            pids
        })
        .collect();
    let rows = || sqlite(&db, "SELECT count(*) FROM namespaces")[0].parse::<usize>().unwrap();
    // The newest batch is written, and the table is back within the cap
    // (plus the tenth it may outgrow it by between prunes).
    eventually(Duration::from_secs(20), "the newest batch written and the cap kept", || {
        (destroyed_uts_of(&db, &batches[3]) == 30 && rows() <= cap + cap / 10).then_some(())
    });
    let kept: Vec<usize> = batches.iter().map(|b| destroyed_uts_of(&db, b)).collect();
    assert_eq!(kept[0], 0, "the oldest destroyed rows go first: kept per batch {kept:?}, cap {cap}");
    for k in 0..3 {
        assert!(kept[k] == 0 || kept[k + 1] == 30, "a batch kept before a newer one was whole: {kept:?}");
    }
    // The counter is published with the rest (about once a second when
    // idle): the prune may be newer than the last publish.
    eventually(Duration::from_secs(5), "the pruned rows counted", || {
        (metric(&service, "nstrace_database_rows_pruned_total") >= 45.0).then_some(())
    });
    // Never a live row: every namespace alive now (and a moment ago) has its row.
    let alive_db: HashSet<(String, u64)> = sqlite(&db, "SELECT type, inode FROM namespaces WHERE destroyed_at IS NULL")
        .iter()
        .filter_map(|l| l.split_once('|').map(|(t, i)| (t.to_string(), i.parse().unwrap())))
        .collect();
    let listed = || -> HashSet<(String, u64)> {
        ls_json(&["--source", "proc"])
            .iter()
            .map(|r| (r["type"].as_str().unwrap().to_string(), r["inode"].as_u64().unwrap()))
            .collect()
    };
    let (before, after) = (listed(), listed());
    let missing: Vec<_> = before.intersection(&after).filter(|k| !alive_db.contains(k)).collect();
    assert!(missing.is_empty(), "live namespaces without a row: {missing:?}");
}

#[test]
fn retain_removes_destroyed_rows_older_than_it_and_keeps_younger_ones() {
    let test = "retain_removes_destroyed_rows_older_than_it_and_keeps_younger_ones";
    if !host_only(test) {
        return;
    }
    let _serial = serial();
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start_args(&dir, &["--retain", "6s"]);
    let db = service.db();
    let old = short_lived_namespaces(20, libc::CLONE_NEWUTS);
    eventually(Duration::from_secs(10), "the first batch written", || {
        (destroyed_uts_of(&db, &old) == 20).then_some(())
    });
    let written = Instant::now();
    // Past the retention (and the tenth of it a prune may lag).
    std::thread::sleep(Duration::from_secs(8).saturating_sub(written.elapsed()));
    let young = short_lived_namespaces(20, libc::CLONE_NEWUTS);
    eventually(Duration::from_secs(10), "the second batch written", || {
        (destroyed_uts_of(&db, &young) == 20).then_some(())
    });
    // Two prunes later (one a second): the old rows are gone, the young stay.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(destroyed_uts_of(&db, &old), 0, "rows destroyed over 6 s ago are pruned");
    assert_eq!(destroyed_uts_of(&db, &young), 20, "rows destroyed under 6 s ago are kept");
    // Live rows are never pruned, however old.
    let host_uts = tests::ns_inode(std::process::id(), "uts");
    assert_eq!(
        sqlite(&db, &format!("SELECT count(*) FROM namespaces WHERE inode = {host_uts} AND destroyed_at IS NULL")),
        ["1"]
    );
}

/// A file system on a loop device: an ext4 image mounted with
/// errors=remount-ro, so the test can make it fail the way a disk does.
struct Ext4 {
    image: String,
    mnt: String,
}

impl Ext4 {
    fn new(dir: &str) -> Option<Ext4> {
        let (image, mnt) = (format!("{dir}/ext4.img"), format!("{dir}/ext4"));
        std::fs::create_dir_all(&mnt).unwrap();
        let ok = |cmd: &mut Command| cmd.status().is_ok_and(|s| s.success());
        (ok(Command::new("truncate").args(["-s", "64M", &image]))
            && ok(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0", &image])))
        .then(|| Ext4 { image, mnt })
        .filter(|e| e.mount())
    }

    fn mount(&self) -> bool {
        Command::new("mount")
            .args(["-o", "loop,errors=remount-ro", &self.image, &self.mnt])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The kernel's own error path (`trigger_fs_error`): ext4 aborts its
    /// journal and goes read-only under every open file.
    fn fail(&self) -> bool {
        let dev = sh(&format!("findmnt -no SOURCE {}", self.mnt));
        let knob = format!("/sys/fs/ext4/{}/trigger_fs_error", dev.trim().trim_start_matches("/dev/"));
        std::fs::write(&knob, "nstrace test\n").is_ok()
    }

    /// What an administrator does: unmount it (serve, failing, holds no
    /// file on it), repair it, mount it again.
    fn repair(&self) {
        eventually(Duration::from_secs(10), "the failed file system unmounted", || {
            Command::new("umount").arg(&self.mnt).status().is_ok_and(|s| s.success()).then_some(())
        });
        let _ = Command::new("e2fsck").args(["-fy", &self.image]).output();
        assert!(self.mount(), "mounting {} again", self.image);
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", &self.mnt]).status();
    }
}

#[test]
fn writes_that_fail_after_the_database_opened_are_kept_and_written_later() {
    let test = "writes_that_fail_after_the_database_opened_are_kept_and_written_later";
    if !host_only(test) {
        return;
    }
    let _serial = serial();
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let Some(fs) = Ext4::new(&dir) else {
        skip(test, "cannot make and mount an ext4 image (mkfs.ext4, loop devices)");
        return;
    };
    let db = format!("{}/nstrace.db", fs.mnt);
    let service = Service::start_with(&dir, &db);
    eventually(Duration::from_secs(10), "the first rows written", || {
        (metric(&service, "nstrace_database_changes_written_total") > 0.0).then_some(())
    });
    assert_eq!(metric(&service, "nstrace_database_write_failures_total"), 0.0, "written, none failed");
    let failing = |service: &Service| {
        eventually(Duration::from_secs(10), "/healthz to say the database fails", || {
            let (status, body) = service.http("/healthz");
            (status == 503 && body.contains("provenance database")).then_some(())
        });
        assert_eq!(metric(service, "nstrace_database_up"), 0.0);
    };
    let recovered = |service: &Service, pids: &HashSet<u64>, what: &str| {
        eventually(Duration::from_secs(20), what, || {
            (metric(service, "nstrace_database_up") == 1.0 && destroyed_uts_of(&db, pids) == pids.len()).then_some(())
        });
        assert_eq!(service.http("/healthz").0, 200);
    };

    // 1. Disk full (no blocks kept for root: -m 0; the big writes, then
    // what is left in small ones): the namespaces made meanwhile land once
    // there is room.
    for (file, block) in [("fill", "bs=1M"), ("fill2", "bs=4k")] {
        let _ = Command::new("dd").args(["if=/dev/zero", &format!("of={}/{file}", fs.mnt), block]).output();
        sh("sync");
    }
    let while_full = short_lived_namespaces(300, libc::CLONE_NEWUTS);
    failing(&service);
    let failures = metric(&service, "nstrace_database_write_failures_total");
    let queued = metric(&service, "nstrace_database_changes_queued");
    // Failed commits are counted, not the changes they carried.
    assert!(failures >= 1.0 && failures < queued, "failures {failures}, changes queued {queued}");
    for file in ["fill", "fill2"] {
        std::fs::remove_file(format!("{}/{file}", fs.mnt)).unwrap();
    }
    // (On disk before the error below aborts the journal.)
    sh("sync");
    recovered(&service, &while_full, "the rows made while the disk was full");
    // Writing again adds writes, not failures.
    let failures = metric(&service, "nstrace_database_write_failures_total");
    let more = short_lived_namespaces(50, libc::CLONE_NEWUTS);
    recovered(&service, &more, "the next rows");
    assert_eq!(metric(&service, "nstrace_database_write_failures_total"), failures);

    // 2. The file system goes read-only under serve (a disk error).
    if !fs.fail() {
        skip(test, "no trigger_fs_error knob for this ext4 (the disk-full half ran)");
        return;
    }
    let while_read_only = short_lived_namespaces(50, libc::CLONE_NEWUTS);
    failing(&service);
    // Repaired and mounted again: serve opens the file anew and writes what it kept.
    fs.repair();
    recovered(&service, &while_read_only, "the rows made while the file system was read-only");
    assert_eq!(metric(&service, "nstrace_database_changes_dropped_total"), 0.0, "nothing lost");
    assert_eq!(sqlite(&db, "PRAGMA integrity_check"), ["ok"]);
    // A stop flushes what is queued and says it was written.
    let (status, printed) = service.stop_and_output();
    assert!(status.success());
    let last = printed.iter().find(|l| l.contains("serve stopped")).cloned().unwrap_or_default();
    assert!(last.contains("changes written") && !last.contains("not confirmed") && !last.contains("failing"), "{last}");
}

/// A cgroup named like one of Docker's: processes moved into it are
/// attributed to that container.
struct DockerCgroup {
    path: String,
    id: String,
}

impl DockerCgroup {
    fn new(seed: u32) -> Option<DockerCgroup> {
        let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .find(|b| std::path::Path::new(&format!("{b}/cgroup.procs")).exists())?;
        let id: String = (0..64).map(|i| char::from_digit((i * 5 + seed) % 16, 16).unwrap()).collect();
        let path = format!("{base}/system.slice/docker-{id}.scope");
        std::fs::create_dir_all(&path).ok()?;
        Some(DockerCgroup { path, id })
    }

    /// Starts `sh -c SCRIPT` in the cgroup (SCRIPT runs once it is there).
    fn run(&self, script: &str) -> tests::ChildGuard {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("echo ready; read x; {script}")]).stdin(std::process::Stdio::piped());
        let (mut child, _) = spawn_ready(&mut cmd);
        std::fs::write(format!("{}/cgroup.procs", self.path), child.pid().to_string()).unwrap();
        child.send_line("go");
        child
    }
}

impl Drop for DockerCgroup {
    fn drop(&mut self) {
        // Its last process may take a moment to leave; never a panic here.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn per_container_gauges_drop_destroyed_namespaces_and_leak_ages_count_from_creation() {
    let test = "per_container_gauges_drop_destroyed_namespaces_and_leak_ages_count_from_creation";
    if !host_only(test) {
        return;
    }
    let _serial = serial();
    let Some(cgroup) = DockerCgroup::new(11) else {
        skip(test, "no cgroup2 hierarchy mounted");
        return;
    };
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start_args(&dir, &["--per-container", "--leak-age", "3"]);
    // A container's own uts namespace, alive while its process is.
    let mut keeper = cgroup.run("exec unshare -u sleep infinity");
    let gauge = |service: &Service| {
        sample(
            &service.metrics(),
            "nstrace_container_namespaces",
            &[("runtime", "docker"), ("container", &cgroup.id), ("type", "uts")],
        )
    };
    eventually(Duration::from_secs(10), "the container's uts namespace counted", || {
        (gauge(&service) == Some(1.0)).then_some(())
    });
    // Destroyed: no longer the container's (the series goes).
    let _ = keeper.child_mut().kill();
    let _ = keeper.child_mut().wait();
    eventually(Duration::from_secs(10), "the destroyed namespace no longer counted", || {
        gauge(&service).is_none_or(|n| n == 0.0).then_some(())
    });

    // An ipc namespace only a bind mount keeps (no task: a leak suspect once
    // older than --leak-age), created under one serve and seen by the next.
    let pin = format!("{dir}/ipc-pin");
    std::fs::write(&pin, "").unwrap();
    sh(&format!("unshare --ipc={pin} true"));
    let _umount = tests::Umount(pin.clone());
    let created = Instant::now();
    let age = |service: &Service| {
        sample(&service.metrics(), "nstrace_taskless_namespace_age_seconds", &[("type", "ipc")]).unwrap_or(0.0)
    };
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&pin).unwrap());
    eventually(Duration::from_secs(10), "the pinned ipc namespace recorded with its creation", || {
        let (_, out, _) = service.ask(&["history", "--type", "ipc", "--alive", "--json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        rows.iter().any(|r| r["inode"] == inode && r["created"].is_number()).then_some(())
    });
    assert!(service.stop().success());
    std::thread::sleep(Duration::from_secs(4));
    let service = Service::start_args(&dir, &["--per-container", "--leak-age", "3"]);
    // This run first saw it a moment ago; it was made over 4 s ago.
    let seen = eventually(Duration::from_secs(10), "the ipc namespace's age", || {
        let a = age(&service);
        (a > 0.0).then_some(a)
    });
    let floor = created.elapsed().as_secs_f64() - 1.0;
    assert!(
        seen >= floor.min(4.0),
        "age {seen:.1} s counts from creation ({:.1} s ago)",
        created.elapsed().as_secs_f64()
    );
    assert!(
        sample(&service.metrics(), "nstrace_leak_suspects", &[("type", "ipc")]).is_some_and(|n| n >= 1.0),
        "older than --leak-age 3 from its creation: a suspect"
    );
}

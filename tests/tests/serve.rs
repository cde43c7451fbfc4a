//! `nstrace serve`: provenance that outlives the processes that made and
//! pinned a namespace, and `serve` itself (kill -9 included); the one-shot
//! commands answered over its socket; faults of the database and socket.
//! What kernels change (hooks, ids, inode reuse) runs in the VMs too; the
//! database, socket and storm handling run on the host only.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tests::{IpNetns, RmDir, eventually, root_or_skip, service::Service, sh, skip, unique};

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

/// The pin of `why --json` at `target` that is still live.
fn live_pin<'a>(why: &'a Value, target: &str) -> Option<&'a Value> {
    why["pins"].as_array()?.iter().find(|p| p["target"] == target && p["released"].is_null())
}

#[test]
fn ip_netns_add_from_a_script_names_ip_and_the_script() {
    let test = "ip_netns_add_from_a_script_names_ip_and_the_script";
    if !root_or_skip(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start(&dir);
    let name = unique("nstrace-serve");
    let script = format!("{dir}/make-netns.sh");
    std::fs::write(&script, format!("#!/bin/sh\nip netns add {name}\n")).unwrap();
    sh(&format!("chmod +x {script}"));
    let _netns = IpNetns(name.clone());
    sh(&script);
    let path = format!("/run/netns/{name}");
    let why = eventually(Duration::from_secs(10), "the pin attributed", || {
        let why = service.why_json(&path);
        live_pin(&why, &path).is_some_and(|p| !p["by"].is_null()).then_some(why)
    });
    let pin = live_pin(&why, &path).unwrap();
    let by = pin["by"].as_str().unwrap();
    assert!(by.starts_with("ip[") && by.contains("(parent make-netns.sh["), "pinner: {pin}");
    assert_eq!(pin["attribution"], "mount-syscall", "{pin}");
    let creator = &why["creator"];
    assert_eq!(creator["comm"], "ip", "{why}");
    // (A constructor hook sees it first; the unshare that asked says how.)
    assert_eq!(creator["cause"], "unshare", "{why}");
    assert!(creator["cmdline"].as_str().is_some_and(|c| c == format!("ip netns add {name}")), "{creator}");
    assert!(creator["parent"].as_str().is_some_and(|p| p.starts_with("make-netns.sh[")), "{creator}");
    // ls: AGE filled, and the -o columns.
    let (_, table, _) = service.ask(&["ls", "--type", "net", "-o", "+creator,pinned-by"]);
    let header = table.lines().next().unwrap();
    assert!(header.contains(" AGE CREATOR ") && header.contains(" PINNED-BY "), "{header}");
    let line = table
        .lines()
        .find(|l| l.split_whitespace().any(|cell| cell == name.as_str()))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    let age = cells[cells.iter().position(|c| c.starts_with("ip[")).unwrap() - 1];
    assert!(age.ends_with('s') && age[..age.len() - 1].parse::<u32>().is_ok(), "AGE {age} in {line}");
    assert!(line.matches(" ip[").count() >= 2, "creator and pinner ip: {line}");
    // The service writes the table in the client's width (COLUMNS here).
    let narrow = tests::nstrace_command()
        .args(["ls", "-o", "+creator,pinned-by"])
        .env("NSTRACE_SOCKET", service.socket())
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    let narrow = String::from_utf8_lossy(&narrow.stdout);
    assert!(narrow.lines().count() > 1 && narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
    let (_, json, _) = service.ask(&["ls", "--json", "--type", "net"]);
    let rows: Vec<Value> = serde_json::from_str(&json).unwrap();
    let row = rows.iter().find(|r| r["names"][0] == name.as_str()).unwrap();
    assert!(
        row["age"].as_f64().is_some() && row["creator"]["comm"] == "ip" && row["pins"][0]["by"].is_string(),
        "{row}"
    );
    // The text says the same.
    let (_, text, _) = service.ask(&["why", &path]);
    assert!(text.contains("created:") && text.contains("by ip[") && text.contains("parent make-netns.sh["), "{text}");
    assert!(text.contains(&format!("pinned:    mount {path}")), "{text}");
}

/// Python that renames itself (prctl PR_SET_NAME), then runs `body`.
fn renamed(comm: &str, body: &str) -> String {
    format!(
        "import ctypes, os, sys, time\nlibc = ctypes.CDLL(None, use_errno=True)\n\
         libc.prctl(15, ctypes.c_char_p(b'{comm}'), 0, 0, 0)\n{body}\n"
    )
}

#[test]
fn provenance_survives_the_processes_kill_9_and_a_restart() {
    let test = "provenance_survives_the_processes_kill_9_and_a_restart";
    if !root_or_skip(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start(&dir);
    let target = format!("{dir}/pinned-netns");
    std::fs::write(&target, "").unwrap();
    let _umount = Unmount(target.clone());
    // nsmaker: a new net namespace; prints its pid and waits to be pinned.
    let maker = renamed(
        "nsmaker",
        "assert libc.unshare(0x40000000) == 0, ctypes.get_errno()\nprint(os.getpid(), flush=True)\nsys.stdin.readline()",
    );
    let (mut maker, pid) = tests::spawn_ready(Command::new("python3").args(["-c", &maker]).stdin(Stdio::piped()));
    let inode = tests::ns_inode(pid.parse().unwrap(), "net");
    // nspinner: bind-mounts it (mount(2) itself, so its own name shows).
    let pinner = renamed(
        "nspinner",
        &format!(
            "r = libc.mount(b'/proc/{pid}/ns/net', b'{target}', None, 4096, None)\nassert r == 0, ctypes.get_errno()"
        ),
    );
    let status = Command::new("python3").args(["-c", &pinner]).status().unwrap();
    assert!(status.success());
    maker.send_line("done");
    drop(maker);
    let check = |service: &Service, when: &str| {
        eventually(Duration::from_secs(10), &format!("creator and pinner {when}"), || {
            let why = service.why_json(&target);
            let pinned = live_pin(&why, &target).and_then(|p| p["by"].as_str().map(str::to_string));
            // Mounted: the service's holder refresh (every second) has seen nsmaker go.
            (why["creator"]["comm"] == "nsmaker"
                && pinned.as_deref().is_some_and(|b| b.starts_with("nspinner["))
                && why["namespace"]["state"] == "mounted")
                .then_some(why)
        })
    };
    let why = check(&service, "while serve runs");
    assert_eq!(why["namespace"]["inode"], inode, "{why}");
    assert_eq!(why["namespace"]["state"], "mounted", "{why}");
    let created = why["created"].as_f64().unwrap();

    // kill -9 (a second later: at most the last second may be lost), then a
    // restart on the same database: still known.
    std::thread::sleep(Duration::from_secs(1));
    service.kill9();
    let service = Service::start(&dir);
    let why = check(&service, "after kill -9 and a restart");
    assert_eq!(why["created"].as_f64(), Some(created), "the creation time survives: {why}");
    assert!(
        service.stderr.lock().unwrap().iter().any(|l| l.contains("recorded by an earlier run are still alive")),
        "the restart says what it adopted"
    );

    // Unmounted: destroyed, with its lifetime, in history.
    sh(&format!("umount {target}"));
    let entry = eventually(Duration::from_secs(15), "the namespace destroyed in history", || {
        let (code, out, _) = service.ask(&["history", "--type", "net", "--destroyed", "--json"]);
        assert_eq!(code, 0);
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        rows.into_iter().find(|r| r["inode"] == inode && r["creator"]["comm"] == "nsmaker")
    });
    assert!(entry["lifetime"].as_f64().is_some_and(|l| l > 0.0), "{entry}");
    assert!(entry["pins"][0]["by"].as_str().is_some_and(|b| b.starts_with("nspinner[")), "{entry}");
    assert!(entry["pins"][0]["released"].is_number(), "{entry}");
    let (_, text, _) = service.ask(&["history", "--type", "net", "--destroyed"]);
    assert!(text.contains(&format!("net {inode} ")) && text.contains("created by nsmaker["), "{text}");

    // Users read the file with the sqlite3 tool. (Inodes are reused: other
    // tests' namespaces may have had this one before.)
    assert_eq!(service.stop().code(), Some(0));
    let db = format!("{dir}/db/nstrace.db");
    let row = sh(&format!(
        "sqlite3 {db} \"SELECT creator_comm, destroyed_at IS NOT NULL FROM namespaces WHERE inode = {inode} AND creator_comm = 'nsmaker'\""
    ));
    assert_eq!(row.trim(), "nsmaker|1");
    assert_eq!(sh(&format!("sqlite3 {db} 'PRAGMA integrity_check'")).trim(), "ok");
    let pinner = sh(&format!(
        "sqlite3 {db} \"SELECT made_by FROM pins JOIN namespaces ON pins.ns = namespaces.rowid WHERE inode = {inode} AND creator_comm = 'nsmaker'\""
    ));
    assert!(pinner.starts_with("nspinner["), "{pinner}");
}

/// Rows of namespaces a restart cannot carry on are closed with the
/// reason: died while serve was down, recorded in an earlier boot, or (no
/// ids before 6.18, no pin to prove it) possibly a new namespace on a
/// reused inode. `history` says which.
#[test]
fn rows_closed_at_a_restart_say_why() {
    let test = "rows_closed_at_a_restart_say_why";
    if !root_or_skip(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start(&dir);
    let keeper = || {
        let (child, _) =
            tests::spawn_ready(Command::new("unshare").args(["-u", "sh", "-c", "echo ready; exec sleep infinity"]));
        let inode = tests::ns_inode(child.pid(), "uts");
        (child, inode)
    };
    let (gone, earlier_boot, alive) = (keeper(), keeper(), keeper());
    let history = |service: &Service, extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["history", "--type", "uts", "--json"];
        args.extend_from_slice(extra);
        let (code, out, err) = service.ask(&args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    eventually(Duration::from_secs(10), "the three namespaces recorded alive", || {
        let rows = history(&service, &["--alive"]);
        [gone.1, earlier_boot.1, alive.1].iter().all(|i| rows.iter().any(|r| r["inode"] == *i)).then_some(())
    });
    assert!(service.stop().success());
    // While serve is down: one namespace dies, one row is made an earlier boot's.
    let gone_inode = gone.1;
    drop(gone);
    sh(&format!(
        "sqlite3 {dir}/db/nstrace.db \"UPDATE namespaces SET boot_id = 'an-earlier-boot' WHERE type = 'uts' AND \
         inode = {} AND destroyed_at IS NULL\"",
        earlier_boot.1
    ));
    let service = Service::start(&dir);
    // It says what it carried on and what it closed: the namespaces still
    // alive (the host's and `alive`: carried on where ids prove them, else
    // closed as unproven), and the one that ended meanwhile.
    let said = service.stderr.lock().unwrap().iter().find(|l| l.contains("recorded by an earlier run")).cloned();
    let said = said.unwrap_or_else(|| panic!("no word of the restart: {:?}", service.stderr));
    let count = |before: &str| -> i64 {
        let head = said.split(before).next().unwrap_or_default();
        head.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(i64::MIN)
    };
    if tests::kernel().has_ns_ids {
        assert!(count(" namespace(s) recorded by an earlier run") >= 1, "{said}");
    } else {
        assert_eq!(count(" namespace(s) recorded by an earlier run"), 0, "{said}");
        assert!(count(" whose inode is alive but could be a new namespace") >= 1, "{said}");
    }
    // At least `gone` (its row is checked below); the service records the
    // whole host, and a parallel test's namespace may end meanwhile too.
    assert!(count(" recorded one(s) ended while serve was not running") >= 1, "{said}");
    let rows = history(&service, &[]);
    let row = |inode: u64, what: &str| -> &Value {
        rows.iter()
            .find(|r| r["inode"] == inode && r["creator"]["comm"] == "unshare")
            .unwrap_or_else(|| panic!("{what}: no row of uts {inode} made by unshare in {rows:?}"))
    };
    let r = row(gone_inode, "died while serve was down");
    assert_eq!(r["via"], "while-nstrace-was-down", "{r}");
    assert!(r["destroyed"].is_number(), "{r}");
    let r = row(earlier_boot.1, "an earlier boot's");
    assert_eq!((&r["via"], &r["boot_id"]), (&"reboot".into(), &"an-earlier-boot".into()), "{r}");
    let r = row(alive.1, "alive all along");
    if tests::kernel().has_ns_ids {
        // Its id proves it is the same namespace: the record goes on.
        assert!(r["destroyed"].is_null() && r["created"].is_number(), "adopted: {r}");
    } else {
        // Nothing proves the inode was not freed and reused meanwhile.
        assert_eq!(r["via"], "identity-unknown", "{r}");
    }
    let (_, text, _) = service.ask(&["history", "--type", "uts", "--destroyed"]);
    for says in [format!("uts {gone_inode} "), "(while-nstrace-was-down)".into(), "(reboot)".into()] {
        assert!(text.contains(&says), "history says {says}: {text}");
    }
    drop((earlier_boot, alive));
}

/// Unmounts a bind mount when dropped (the test's own file stays for RmDir).
struct Unmount(String);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).stderr(Stdio::null()).status();
    }
}

#[test]
fn a_second_service_on_the_same_socket_or_database_is_refused() {
    let test = "a_second_service_on_the_same_socket_or_database_is_refused";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let _service = Service::start(&dir);
    let run = |args: &[&str]| {
        let out = tests::nstrace_command().arg("serve").args(["--listen", "127.0.0.1:0"]).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let db = format!("{dir}/db/nstrace.db");
    let (code, err) = run(&["--db", &format!("{dir}/other.db"), "--socket", &format!("{dir}/nstrace.sock")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("another nstrace serve answers on"), "{err}");
    let (code, err) = run(&["--db", &db, "--socket", &format!("{dir}/other.sock")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("in use by another nstrace serve"), "{err}");
}

#[test]
fn the_socket_is_root_only_and_bad_requests_get_an_error() {
    let test = "the_socket_is_root_only_and_bad_requests_get_an_error";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let service = Service::start(&dir);
    let mode = std::fs::metadata(service.socket()).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);
    // As nobody: refused by the kernel.
    let py = format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect('{}')\n    print('connected')\nexcept PermissionError:\n    print('refused')",
        service.socket()
    );
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", &py])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "refused", "{}", String::from_utf8_lossy(&out.stderr));
    // Malformed and unknown requests: an error reply, and the service goes on.
    for (request, says) in [
        ("not json\n", "malformed request"),
        ("{\"version\":9,\"command\":\"ls\"}\n", "version 9"),
        ("{\"version\":1,\"command\":\"trace\"}\n", "unknown command"),
        ("{\"version\":1,\"command\":\"ls\",\"args\":[\"--bogus\"]}\n", "--bogus"),
        ("{\"version\":1,\"command\":\"why\",\"args\":[\"999999999999\"]}\n", "no namespace with id or inode"),
    ] {
        let mut s = UnixStream::connect(service.socket()).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let reply: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply}"));
        assert_eq!(reply["exit"], 2, "{request}: {reply}");
        assert!(reply["stderr"].as_str().unwrap().contains(says), "{request}: {reply}");
    }
    // A client that connects and says nothing does not block others.
    let _silent = UnixStream::connect(service.socket()).unwrap();
    let (code, out, _) = service.ask(&["ls", "--json"]);
    assert_eq!(code, 0);
    assert!(serde_json::from_str::<Vec<Value>>(&out).unwrap().len() > 1);
}

#[test]
fn a_corrupt_database_is_moved_aside() {
    let test = "a_corrupt_database_is_moved_aside";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    std::fs::create_dir_all(format!("{dir}/db")).unwrap();
    std::fs::write(format!("{dir}/db/nstrace.db"), vec![0x42u8; 16384]).unwrap();
    let service = Service::start(&dir);
    assert!(service.stderr.lock().unwrap().iter().any(|l| l.contains("moved it to")), "{:?}", service.stderr);
    let aside = std::fs::read_dir(format!("{dir}/db"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .count();
    assert_eq!(aside, 1);
    let (status, body) = service.http("/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

#[test]
fn a_read_only_database_keeps_tracing_and_recovers() {
    let test = "a_read_only_database_keeps_tracing_and_recovers";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let fs = format!("{dir}/ro");
    std::fs::create_dir_all(&fs).unwrap();
    if !Command::new("mount").args(["-t", "tmpfs", "-o", "ro,size=4m", "tmpfs", &fs]).status().unwrap().success() {
        skip(test, "cannot mount a tmpfs");
        return;
    }
    let _umount = Unmount(fs.clone());
    let service = Service::start_with(&dir, &format!("{fs}/nstrace.db"));
    let (status, body) = eventually(Duration::from_secs(10), "/healthz to say the database fails", || {
        let r = service.http("/healthz");
        (r.0 == 503).then_some(r)
    });
    assert!(body.contains("degraded: provenance database"), "{status} {body}");
    let (_, metrics) = service.http("/metrics");
    assert_eq!(metric(&metrics, "nstrace_database_up"), Some(0.0), "{metrics}");
    // Tracing and answering go on.
    let name = unique("nstrace-ro");
    let _netns = IpNetns::add(name.clone());
    let path = format!("/run/netns/{name}");
    eventually(Duration::from_secs(10), "the new netns known", || {
        (service.why_json(&path)["creator"]["comm"] == "ip").then_some(())
    });
    // Writable again: the queued changes land.
    sh(&format!("mount -o remount,rw {fs}"));
    eventually(Duration::from_secs(15), "the database writable again", || {
        let (_, m) = service.http("/metrics");
        (metric(&m, "nstrace_database_up") == Some(1.0)).then_some(())
    });
    assert_eq!(service.http("/healthz").0, 200);
    let inode = service.why_json(&path)["namespace"]["inode"].clone();
    assert!(inode.is_u64());
    eventually(Duration::from_secs(10), "the netns in the database", || {
        let (_, out, _) = service.ask(&["history", "--type", "net", "--alive", "--json"]);
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        rows.iter().any(|r| r["inode"] == inode && r["creator"]["comm"] == "ip").then_some(())
    });
}

#[test]
fn without_a_service_commands_say_so_and_answer_from_a_snapshot() {
    let test = "without_a_service_commands_say_so_and_answer_from_a_snapshot";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let out = tests::nstrace_command()
        .args(["ls", "--json"])
        .env("NSTRACE_SOCKET", format!("{dir}/none.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("one-shot snapshot").count(), 1, "said once: {err}");
    assert!(serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap().len() > 1);
    // history needs the database.
    let out = tests::nstrace_command().args(["history", "--db", &format!("{dir}/missing.db")]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no provenance database"));
}

#[test]
fn a_storm_of_5000_namespaces_lands_in_the_database() {
    let test = "a_storm_of_5000_namespaces_lands_in_the_database";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start(&dir);
    let pids = tests::storm_of_5000();
    let db = format!("{dir}/db/nstrace.db");
    // (created, destroyed) storm rows in the database; waits while deaths
    // keep arriving (ipc namespaces are freed one RCU grace period apart).
    let count = || {
        let out = sh(&format!(
            "sqlite3 {db} \"SELECT creator_pid, destroyed_at IS NOT NULL FROM namespaces WHERE cause = 'unshare' AND type IN ('uts', 'ipc')\""
        ));
        out.lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(pid, _)| pid.parse().is_ok_and(|p: u64| pids.contains(&p)))
            .fold((0, 0), |(c, d), (_, dead)| (c + 1, d + (dead == "1") as usize))
    };
    let (mut best, mut progress) = ((0, 0), std::time::Instant::now());
    while progress.elapsed() < tests::scaled(Duration::from_secs(5)) {
        let now = count();
        if now == (5000, 5000) {
            break;
        }
        if now > best {
            (best, progress) = (now, std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, metrics) = service.http("/metrics");
    assert_eq!(
        count(),
        (5000, 5000),
        "created and destroyed storm namespaces recorded; metrics:\n{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("nstrace_database") || l.starts_with("nstrace_events_lost"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(metric(&metrics, "nstrace_database_changes_dropped_total"), Some(0.0));
    assert_eq!(sh(&format!("sqlite3 {db} 'PRAGMA integrity_check'")).trim(), "ok");
}

/// No timer re-reads holders on a quiet host (`--sweep` an hour away), and
/// opening an nsfs file sends no event: `ls` through the service still
/// shows the new fd, because a request is answered after a walk and a
/// holder re-read that start when it comes.
#[test]
fn a_request_sees_an_fd_opened_after_the_last_refresh() {
    let test = "a_request_sees_an_fd_opened_after_the_last_refresh";
    if !root_or_skip(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start_args(&dir, &["--sweep", "3600", "--refresh", "1"]);
    let (owner, _) = tests::spawn_ready(Command::new("unshare").args([
        "--uts",
        "setpriv",
        "--pdeathsig",
        "KILL",
        "sh",
        "-c",
        "echo ready; exec sleep infinity",
    ]));
    let inode = tests::ns_inode(owner.pid(), "uts");
    let rows = |service: &Service| -> Vec<Value> {
        let (code, out, err) = service.ask(&["ls", "--json", "--type", "uts"]);
        assert_eq!(code, 0, "{test}: {err}");
        serde_json::from_str(&out).unwrap()
    };
    eventually(Duration::from_secs(10), "the service lists the uts namespace", || {
        tests::find_row(&rows(&service), "uts", inode).map(|_| ())
    });
    // Long enough that no re-read is still running from the request above.
    std::thread::sleep(Duration::from_millis(1500));
    let path = format!("/proc/{}/ns/uts", owner.pid());
    let script = "import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDONLY)\nprint(fd, flush=True)\nwhile True: time.sleep(3600)\n";
    let (holder, fd) = tests::spawn_ready(Command::new("python3").args(["-c", script, &path]));
    let fd: u64 = fd.parse().expect("the fd number");
    std::thread::sleep(Duration::from_millis(1500));
    let rows = rows(&service);
    let row = tests::find_row(&rows, "uts", inode).unwrap_or_else(|| panic!("{test}: no row for {inode}"));
    let held = row["holders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["kind"] == "fd" && h["pid"] == holder.pid() && h["fd"].as_u64() == Some(fd));
    assert!(held, "{test}: the fd {fd} of {} is not among the holders: {row}", holder.pid());
}

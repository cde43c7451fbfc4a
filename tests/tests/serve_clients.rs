//! The clients of `nstrace serve`: a socket a killed service left behind,
//! requests that never end or never stop, and `leaks` answered by the
//! service with its creation times. The service's own logic: host only.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{IpNetns, RmDir, eventually, nstrace_command, root_or_skip, service::Service, sh, tempdir, unique};

fn host_only(test: &str) -> bool {
    root_or_skip(test) && tests::kernel_independent(test)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_socket_left_by_a_killed_service_falls_back_to_a_snapshot_and_says_so_once() {
    let test = "a_socket_left_by_a_killed_service_falls_back_to_a_snapshot_and_says_so_once";
    if !host_only(test) {
        return;
    }
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start(&dir);
    let socket = service.socket();
    service.kill9();
    assert!(std::path::Path::new(&socket).exists(), "SIGKILL leaves the socket file behind");
    for args in [&["ls", "--json"][..], &["why", "--json", "/proc/self/ns/net"], &["leaks", "--json"]] {
        let out = tests::output_bounded(nstrace_command().args(args).env("NSTRACE_SOCKET", &socket));
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let code = out.status.code();
        assert!(code == Some(0) || (args[0] == "leaks" && code == Some(1)), "{args:?}: {code:?} {stderr}");
        assert!(serde_json::from_str::<Value>(&stdout).is_ok(), "{args:?} answered: {stdout}");
        assert_eq!(stderr.matches("one-shot snapshot").count(), 1, "{args:?} says it once: {stderr}");
        // A stale socket is "no service", not an I/O error to report.
        assert!(
            stderr.contains(&format!("no `nstrace serve` answers on {socket}")),
            "{args:?} says no service answers there: {stderr}"
        );
    }
}

#[test]
fn requests_are_cut_off_at_the_limit_and_cannot_grow_the_service() {
    let test = "requests_are_cut_off_at_the_limit_and_cannot_grow_the_service";
    if !host_only(test) {
        return;
    }
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start(&dir);
    let socket = service.socket();
    let pid = service.child.id();
    // Warm: the first answer allocates what every later one reuses.
    assert_eq!(service.ask(&["ls", "--json"]).0, 0);
    let before = rss_kib(pid);
    // 16 clients each send 8 MiB of one endless line, and keep their end open.
    const ENDLESS: usize = 8 << 20;
    let hogs: Vec<_> = (0..16)
        .map(|_| {
            let mut s = UnixStream::connect(&socket).unwrap();
            s.set_write_timeout(Some(tests::scaled(Duration::from_secs(20)))).unwrap();
            s.set_read_timeout(Some(tests::scaled(Duration::from_secs(20)))).unwrap();
            std::thread::spawn(move || {
                let chunk = vec![b'x'; 64 << 10];
                let mut sent = 0;
                while sent < ENDLESS {
                    match s.write(&chunk) {
                        Ok(n) => sent += n,
                        Err(_) => break,
                    }
                }
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                (sent, reply)
            })
        })
        .collect();
    // Meanwhile the service answers others, and does not grow.
    let mut peak = before;
    let started = Instant::now();
    while !hogs.iter().all(|h| h.is_finished()) && started.elapsed() < tests::scaled(Duration::from_secs(30)) {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, out, _) = service.ask(&["ls", "--json"]);
    assert!(code == 0 && serde_json::from_str::<Vec<Value>>(&out).is_ok_and(|r| r.len() > 1), "served: {out}");
    for h in hogs {
        let (sent, reply) = h.join().unwrap();
        assert!(sent < ENDLESS, "the service read all {sent} bytes of an endless request");
        assert!(reply.contains("longer than 65536 bytes"), "the client is told why: {reply}");
    }
    // 16 x 8 MiB read in would be 128 MiB; the bound keeps it to buffers.
    assert!(peak < before + 24 * 1024, "serve grew from {before} KiB to {peak} KiB");
    // A client that sends half a request and waits is cut off too.
    let mut silent = UnixStream::connect(&socket).unwrap();
    silent.write_all(b"{\"version\":1,").unwrap();
    silent.set_read_timeout(Some(tests::scaled(Duration::from_secs(30)))).unwrap();
    let mut reply = String::new();
    let _ = silent.read_to_string(&mut reply);
    assert!(reply.contains("no complete request within"), "{reply}");
}

fn leaks(service: &Service, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["leaks", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = service.ask(&args);
    assert!(code == 0 || code == 1, "leaks {extra:?}: {code} {err}");
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")))
}

fn listed(report: &Value, ty: &str, inode: u64) -> bool {
    report["leaks"].as_array().unwrap().iter().any(|l| l["type"] == ty && l["inode"] == inode)
}

#[test]
fn leaks_through_the_service_filter_by_type_and_age_from_creation() {
    let test = "leaks_through_the_service_filter_by_type_and_age_from_creation";
    if !host_only(test) {
        return;
    }
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start(&dir);
    // Two leaks the service sees made: a netns only `ip netns` keeps, and
    // an ipc namespace only a bind mount keeps.
    let name = unique("nstrace-leaks");
    let _netns = IpNetns::add(name.clone());
    let net = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(format!("/run/netns/{name}")).unwrap());
    let pin = format!("{dir}/ipc-pin");
    std::fs::write(&pin, "").unwrap();
    sh(&format!("unshare --ipc={pin} true"));
    let _umount = tests::Umount(pin.clone());
    let ipc = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&pin).unwrap());
    eventually(Duration::from_secs(10), "both leaks reported", || {
        let (_, r) = leaks(&service, &[]);
        (listed(&r, "net", net) && listed(&r, "ipc", ipc)).then_some(())
    });
    // --type: only that type, and the exit status is that type's.
    let (code, r) = leaks(&service, &["--type", "ipc"]);
    assert_eq!(code, 1, "an ipc leak: exit 1");
    assert!(listed(&r, "ipc", ipc) && r["leaks"].as_array().unwrap().iter().all(|l| l["type"] == "ipc"), "{r}");
    let (code, r) = leaks(&service, &["--type", "time"]);
    assert!(r["leaks"].as_array().unwrap().iter().all(|l| l["type"] == "time"), "{r}");
    assert_eq!(code, i32::from(!r["leaks"].as_array().unwrap().is_empty()), "the exit status of time leaks only: {r}");
    // --min-age: the service knows they are seconds old.
    let (_, r) = leaks(&service, &["--min-age", "1h"]);
    assert!(!listed(&r, "net", net) && !listed(&r, "ipc", ipc), "new leaks are not an hour old: {r}");
    // A restart: the ages come from the database's creation times, not from
    // when the new run first saw them.
    assert!(service.stop().success());
    std::thread::sleep(Duration::from_secs(4));
    let service = Service::start(&dir);
    let (_, r) = eventually(Duration::from_secs(10), "the leaks known to the restarted service", || {
        let (code, r) = leaks(&service, &["--min-age", "3s"]);
        (listed(&r, "net", net) && listed(&r, "ipc", ipc)).then_some((code, r))
    });
    let age = r["leaks"].as_array().unwrap().iter().find(|l| l["inode"] == net).unwrap()["age"].as_f64();
    assert!(age.is_some_and(|a| a >= 4.0), "age from creation: {r}");
    let (_, r) = leaks(&service, &["--min-age", "1h"]);
    assert!(!listed(&r, "net", net) && !listed(&r, "ipc", ipc), "still not an hour old after a restart: {r}");
}

/// A fresh node has no /run/nstrace: serve makes the socket's directory.
#[test]
fn the_socket_directory_is_made_when_missing() {
    let test = "the_socket_directory_is_made_when_missing";
    if !host_only(test) {
        return;
    }
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let run = format!("{dir}/fresh/run/nstrace");
    assert!(!std::path::Path::new(&run).exists());
    let service = Service::start_full(&run, &format!("{dir}/db/nstrace.db"), &[], &[]);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&run).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755, "{run}");
    let (code, out, _) = service.ask(&["ls", "--json"]);
    assert!(code == 0 && serde_json::from_str::<Vec<Value>>(&out).is_ok_and(|r| r.len() > 1), "{out}");
}

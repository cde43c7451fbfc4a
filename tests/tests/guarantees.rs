//! Behaviours a user relies on, each checked against ground truth the test
//! measures itself (the inode and device of `/proc/PID/ns/*`, NS_GET_ID,
//! its own clock), so that breaking the behaviour fails a test.
//!
//! The tests here run one at a time ([`serial`]): several measure timing
//! claims (a death seen before the periodic walk, a lifetime) that a
//! concurrent storm would blur.

use std::{
    collections::HashSet,
    os::unix::fs::MetadataExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{
    ChildGuard, FD_RECEIVER_PY, FD_SENDER_PY, RmDir, Trace, eventually, kernel, ns_inode, nstrace, nstrace_bin,
    root_or_skip, scaled, sh, spawn_ready, tempdir, unique,
};

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A shell that prints "ready", waits for a line on stdin, then execs
/// `argv` (same pid, so the pid is known before the namespace exists).
fn gated(argv: &[&str]) -> ChildGuard {
    let script = format!("echo ready; read _; exec {}", argv.join(" "));
    let (child, ready) =
        spawn_ready(Command::new("sh").args(["-c", &script]).stdin(Stdio::piped()).stderr(Stdio::null()));
    assert_eq!(ready, "ready");
    child
}

/// A symlink to unshare(1) named `name`: the process it runs has `name` as
/// its comm (the kernel takes comm from the executed file's name).
fn unshare_named(dir: &str, name: &str) -> String {
    let path = format!("{dir}/{name}");
    std::os::unix::fs::symlink("/usr/bin/unshare", &path).unwrap();
    path
}

#[test]
fn trace_filters_by_pid_comm_and_type() {
    if !root_or_skip("trace_filters_by_pid_comm_and_type")
        || !tests::kernel_independent("trace_filters_by_pid_comm_and_type")
    {
        return;
    }
    let _serial = serial();
    let dir = RmDir(tempdir());
    let alpha = unshare_named(&dir.0, "nsalpha");
    let beta = unshare_named(&dir.0, "nsbeta");
    // Each test process first waits, then unshares uts and ipc.
    let run = |bin: &str| gated(&[bin, "--uts", "--ipc", "true"]);
    let (mut a, mut b) = (run(&alpha), run(&beta));
    let by_pid = Trace::start(&["--pid", &a.pid().to_string(), "--event", "create,unshare"]);
    let by_comm = Trace::start(&["--comm", "nsbeta", "--event", "create,unshare"]);
    let by_type =
        Trace::start(&["--type", "ipc", "--event", "create,unshare", "--pid", &format!("{},{}", a.pid(), b.pid())]);
    a.send_line("go");
    b.send_line("go");
    let (pa, pb) = (a.pid(), b.pid());
    let seen = |t: &Trace, pid: u32| t.wait_for(Duration::from_secs(5), |v| v["event"] == "unshare" && v["pid"] == pid);
    assert!(seen(&by_pid, pa).is_some(), "--pid {pa} reports that process's unshare");
    assert!(seen(&by_comm, pb).is_some(), "--comm nsbeta reports nsbeta's unshare");
    assert!(seen(&by_type, pa).is_some() && seen(&by_type, pb).is_some(), "--type ipc reports both unshares");
    // The other process's events had as long to arrive: none may be there.
    std::thread::sleep(Duration::from_millis(300));
    for e in by_pid.events() {
        assert_eq!(e["pid"], pa, "--pid {pa} let through: {e}");
    }
    for e in by_comm.events() {
        assert_eq!(e["comm"], "nsbeta", "--comm nsbeta let through: {e}");
    }
    let types: HashSet<String> = by_type
        .events()
        .iter()
        .filter(|e| e["event"] == "create")
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, HashSet::from(["ipc".to_string()]), "--type ipc: creates of other types let through");
    for e in by_type.events().iter().filter(|e| e["event"] == "unshare") {
        let flags = e["flags"].as_u64().unwrap();
        assert_ne!(flags & libc::CLONE_NEWIPC as u64, 0, "--type ipc let through an unshare without ipc: {e}");
    }
}

#[test]
fn namespaces_records_carry_the_nsfs_device_and_inodes() {
    if !root_or_skip("namespaces_records_carry_the_nsfs_device_and_inodes") {
        return;
    }
    let _serial = serial();
    let mut child = gated(&["unshare", "--uts", "--net", "sleep", "infinity"]);
    let pid = child.pid();
    let trace = Trace::start(&["--event", "namespaces", "--pid", &pid.to_string()]);
    child.send_line("go");
    // unshare(1) reports its new set at the syscall's exit, then sleep execs.
    let e = trace
        .wait_for(Duration::from_secs(5), |v| v["pid"] == pid && v["cause"] == "exec" && v["comm"] == "sleep")
        .expect("a namespaces record for the exec of sleep");
    let mut checked = 0;
    for ns in e["namespaces"].as_array().unwrap() {
        let ty = ns["type"].as_str().unwrap();
        let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/{ty}")) else { continue };
        assert_eq!(ns["inode"].as_u64(), Some(meta.ino()), "{ty} inode");
        assert_eq!(ns["dev"].as_u64(), Some(meta.dev()), "{ty} dev: st_dev of /proc/{pid}/ns/{ty}");
        checked += 1;
    }
    assert!(checked >= 7, "checked {checked} namespaces of {e}");
}

#[test]
fn destroy_lifetime_is_the_time_the_namespace_lived() {
    if !root_or_skip("destroy_lifetime_is_the_time_the_namespace_lived") {
        return;
    }
    let _serial = serial();
    let trace = Trace::start(&["--event", "create,destroy"]);
    let started = Instant::now();
    let (mut child, inode) =
        spawn_ready(Command::new("unshare").args(["--uts", "sh", "-c", "stat -L -c %i /proc/self/ns/uts; sleep 1.5"]));
    let inode: u64 = inode.parse().unwrap();
    let create = trace
        .wait_for(Duration::from_secs(5), |v| v["event"] == "create" && v["type"] == "uts" && v["inode"] == inode)
        .expect("create of the uts namespace");
    let _ = child.next_line();
    drop(child);
    let destroy = trace
        .wait_for(Duration::from_secs(5), |v| kernel().is_destroy_of(v, &create))
        .expect("destroy of the uts namespace");
    let lived = started.elapsed().as_secs_f64();
    let lifetime = destroy["lifetime"].as_f64().expect("lifetime known");
    assert!(lifetime >= 1.4, "lived at least its 1.5 s sleep, reported {lifetime}");
    assert!(lifetime <= lived + 0.1, "lived at most the test's {lived:.2} s, reported {lifetime}");
    let span = destroy["time"].as_f64().unwrap() - create["time"].as_f64().unwrap();
    assert!((span - lifetime).abs() < 0.01, "lifetime {lifetime} = destroy time - create time {span}");
}

#[test]
fn a_death_hint_reports_the_death_long_before_the_periodic_walk() {
    if !root_or_skip("a_death_hint_reports_the_death_long_before_the_periodic_walk") {
        return;
    }
    let _serial = serial();
    // The periodic walk is 60 s away: only a hint (or an exact hook) can be this quick.
    let trace = Trace::start(&["--event", "create,destroy", "--walk-interval", "60"]);
    let (child, inode) = spawn_ready(Command::new("unshare").args([
        "--ipc",
        "sh",
        "-c",
        "stat -L -c %i /proc/self/ns/ipc; exec sleep infinity",
    ]));
    let inode: u64 = inode.parse().unwrap();
    let create = trace
        .wait_for(Duration::from_secs(5), |v| v["event"] == "create" && v["type"] == "ipc" && v["inode"] == inode)
        .expect("create of the ipc namespace");
    let killed = Instant::now();
    drop(child);
    let destroy = trace
        .wait_for(Duration::from_secs(10), |v| kernel().is_destroy_of(v, &create))
        .expect("the death reported well before the 60 s walk");
    println!("death reported {:?} after the kill, via {}", killed.elapsed(), destroy["via"]);
}

#[test]
fn lost_records_are_counted_reported_and_healed_by_a_resync() {
    if !root_or_skip("lost_records_are_counted_reported_and_healed_by_a_resync") {
        return;
    }
    let _serial = serial();
    // A 4 KiB ring cannot hold a storm: records are lost. The periodic walk
    // is a minute away: the loss must be seen and healed without it.
    let trace = Trace::start(&["--ring-bytes", "4096", "--event", "create,lost,resync", "--walk-interval", "60"]);
    // 200 processes each keep a new uts namespace; 1,500 more live and die at once.
    let mut held = Vec::new();
    for i in 0..1700 {
        // SAFETY: the child only makes async-signal-safe calls.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: unshare(2) takes no pointers.
            unsafe {
                libc::unshare(libc::CLONE_NEWUTS);
                if i % 17 == 0 {
                    libc::pause();
                }
                libc::_exit(0);
            }
        }
        assert!(pid > 0);
        if i % 17 == 0 {
            held.push(pid);
        } else {
            // SAFETY: waitpid(2) on our own child; a null status pointer is allowed.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
    }
    struct Reap(Vec<i32>);
    impl Drop for Reap {
        fn drop(&mut self) {
            for &p in &self.0 {
                // SAFETY: kill(2) takes no pointers; the pid is our own child.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                    libc::waitpid(p, std::ptr::null_mut(), 0);
                }
            }
        }
    }
    let held = Reap(held);
    let inodes: HashSet<u64> = eventually(Duration::from_secs(5), "held processes in their uts namespaces", || {
        let host = ns_inode(std::process::id(), "uts");
        let v: HashSet<u64> = held.0.iter().map(|&p| ns_inode(p as u32, "uts")).collect();
        (v.len() == held.0.len() && !v.contains(&host)).then_some(v)
    });
    // Losses are reported within a quarter of a second, and a resync follows.
    let resync_after = |t: f64| move |v: &Value| v["event"] == "resync" && v["time"].as_f64().is_some_and(|rt| rt >= t);
    let first_lost = trace.wait_for(Duration::from_secs(5), |v| v["event"] == "lost").expect("a lost event");
    let resync = trace
        .wait_for(Duration::from_secs(5), resync_after(first_lost["time"].as_f64().unwrap()))
        .expect("a resync after the loss");
    assert!(resync["reason"].as_str().unwrap().contains("lost"), "{resync}");
    // Every namespace alive at the resync is reported, lost records or not
    // (a namespace the walk finds unannounced waits one more walk for a
    // record still in flight).
    let created = |events: &[Value]| -> HashSet<u64> {
        events
            .iter()
            .filter(|v| v["event"] == "create" && v["type"] == "uts")
            .map(|v| v["inode"].as_u64().unwrap())
            .collect()
    };
    let deadline = Instant::now() + scaled(Duration::from_secs(5));
    while !inodes.iter().all(|i| created(&trace.events()).contains(i)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = trace.events();
    let seen = created(&events);
    let missing: Vec<&u64> = inodes.iter().filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} held namespaces never reported created: {missing:?}",
        missing.len(),
        inodes.len()
    );
    // Per record kind, the counts of the lost events add up to their running total.
    let mut per_kind: std::collections::HashMap<String, (u64, u64)> = Default::default();
    for v in events.iter().filter(|v| v["event"] == "lost") {
        let e = per_kind.entry(v["kind"].as_str().unwrap().to_string()).or_default();
        e.0 += v["count"].as_u64().unwrap();
        e.1 = e.1.max(v["total"].as_u64().unwrap());
    }
    for (kind, (sum, total)) in &per_kind {
        assert_eq!(sum, total, "lost {kind} records: counts add up to the total");
    }
    let lost: u64 = per_kind.values().map(|(s, _)| s).sum();
    println!("{lost} records lost; {} uts creates reported", seen.len());
}

#[test]
fn live_exits_cleanly_on_sigterm() {
    if !root_or_skip("live_exits_cleanly_on_sigterm") || !tests::kernel_independent("live_exits_cleanly_on_sigterm") {
        return;
    }
    let _serial = serial();
    let mut child = tests::nstrace_command()
        .args(["live", "--plain"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    // (A note that no `nstrace serve` answers may come first.)
    tests::wait_for_line(&mut stderr, "live table", "nstrace live");
    // SAFETY: kill(2) takes no pointers; the pid is our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + scaled(Duration::from_secs(5));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("live ignored SIGTERM for 5 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

#[test]
fn max_rows_bounds_the_live_table() {
    if !root_or_skip("max_rows_bounds_the_live_table") || !tests::kernel_independent("max_rows_bounds_the_live_table") {
        return;
    }
    let _serial = serial();
    let host_total = tests::ls_json(&[]).len();
    assert!(host_total > 5, "this host has {host_total} namespaces: too few to test a cap of 5");
    let mut child = tests::nstrace_command()
        .args(["live", "--plain", "--max-rows", "5", "--interval", "0.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    // One table: a header line, the column header, rows, a blank line.
    let mut lines = std::io::BufRead::lines(stdout).map_while(Result::ok);
    let header = lines.next().expect("a header line");
    let rows: Vec<String> = lines.by_ref().skip(1).take_while(|l| !l.is_empty()).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(rows.len() <= 5, "--max-rows 5 printed {} rows:\n{}", rows.len(), rows.join("\n"));
    assert!(!rows.is_empty(), "some rows kept");
    assert!(header.contains("namespaces"), "{header}");
}

#[test]
fn why_resolves_a_namespace_id() {
    if !root_or_skip("why_resolves_a_namespace_id") {
        return;
    }
    let _serial = serial();
    if !kernel().has_ns_ids {
        tests::skip("why_resolves_a_namespace_id", "this kernel has no namespace ids (NS_GET_ID)");
        return;
    }
    let (child, inode) = spawn_ready(Command::new("unshare").args([
        "--uts",
        "sh",
        "-c",
        "stat -L -c %i /proc/self/ns/uts; exec sleep infinity",
    ]));
    let inode: u64 = inode.parse().unwrap();
    // NS_GET_ID (_IOR(0xb7, 13, u64)), asked of the kernel by the test itself.
    let py = "import fcntl,os,struct,sys; fd=os.open(sys.argv[1],os.O_RDONLY); \
              print(struct.unpack('Q', fcntl.ioctl(fd, 0x8008b70d, b'\\0'*8))[0])";
    let id: u64 = sh(&format!("python3 -c \"{py}\" /proc/{}/ns/uts", child.pid())).trim().parse().unwrap();
    let (code, out, err) = nstrace(&["why", &id.to_string(), "--json"]);
    assert_eq!(code, 0, "why {id}: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["namespace"]["id"], id);
    assert_eq!(v["namespace"]["inode"], inode, "why {id} explained the namespace with that id");
    assert_eq!(v["namespace"]["type"], "uts");
}

#[test]
fn release_advice_names_the_holding_fd() {
    if !root_or_skip("release_advice_names_the_holding_fd")
        || !tests::kernel_independent("release_advice_names_the_holding_fd")
    {
        return;
    }
    let _serial = serial();
    let dir = RmDir(tempdir());
    let sock = format!("{}/sock", dir.0);
    let (mut receiver, ready) =
        spawn_ready(Command::new("python3").args(["-c", FD_RECEIVER_PY, &sock]).stderr(Stdio::null()));
    assert_eq!(ready, "listening");
    let inode: u64 = sh(&format!("unshare --net python3 -c '{FD_SENDER_PY}' {sock}")).trim().parse().unwrap();
    let fd: i32 = receiver.next_line().parse().unwrap();
    // Ground truth: the receiver's fd `fd` is the namespace.
    let target = std::fs::metadata(format!("/proc/{}/fd/{fd}", receiver.pid())).unwrap();
    assert_eq!(target.ino(), inode);
    let (code, out, err) = nstrace(&["why", &inode.to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let release: Vec<&str> = v["release"].as_array().unwrap().iter().filter_map(|r| r["command"].as_str()).collect();
    let pid = receiver.pid();
    assert!(
        release.iter().any(|r| r.contains(&format!("-p {pid} ")) && r.contains(&format!("close({fd})"))),
        "the advice closes fd {fd} of pid {pid}: {release:?}"
    );
    // Any other fd named is real and does hold it: the accepted end of the
    // unix connection (created in the sender's net namespace) is a socket.
    for r in &release {
        let Some(n) = r.split("close(").nth(1).and_then(|t| t.split(')').next()) else { continue };
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{n}")).unwrap_or_default();
        let link = link.to_string_lossy();
        assert!(
            n == fd.to_string() || link.starts_with("socket:"),
            "advice closes fd {n} of {pid}, which is {link}: {release:?}"
        );
    }
}

#[test]
fn ls_state_filter_and_tree_show_exactly_what_exists() {
    if !root_or_skip("ls_state_filter_and_tree_show_exactly_what_exists")
        || !tests::kernel_independent("ls_state_filter_and_tree_show_exactly_what_exists")
    {
        return;
    }
    let _serial = serial();
    let name = unique("nsg");
    let _netns = tests::IpNetns::add(name.clone());
    let mounted = std::fs::metadata(format!("/run/netns/{name}")).unwrap().ino();
    // A user namespace owning three namespaces, all held by one process.
    let (child, line) = spawn_ready(Command::new("unshare").args([
        "--user",
        "--map-root-user",
        "--uts",
        "--ipc",
        "--net",
        "sh",
        "-c",
        "echo ok; exec sleep infinity",
    ]));
    assert_eq!(line, "ok");
    let pid = child.pid();
    let user = ns_inode(pid, "user");
    let owned: Vec<(&str, u64)> = ["uts", "ipc", "net"].iter().map(|t| (*t, ns_inode(pid, t))).collect();

    let rows = tests::ls_json(&["--state", "mounted"]);
    assert!(rows.iter().all(|r| r["state"] == "mounted"), "--state mounted printed another state");
    assert!(rows.iter().any(|r| r["inode"] == mounted), "the ip netns namespace is mounted");
    assert!(!rows.iter().any(|r| r["inode"] == owned[2].1), "an active namespace is not mounted");

    let (code, out, err) = nstrace(&["ls", "--tree"]);
    assert_eq!(code, 0, "{err}");
    // The user namespace's line, then its subtree (deeper indentation).
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| l.contains(&format!("user {user} "))).expect("the user namespace in the tree");
    let indent = |l: &str| l.len() - l.trim_start_matches([' ', '|', '`', '-']).len();
    let subtree: Vec<&str> = lines[at + 1..].iter().take_while(|l| indent(l) > indent(lines[at])).copied().collect();
    for (ty, inode) in &owned {
        assert!(
            subtree.iter().any(|l| l.contains(&format!("{ty} {inode} "))),
            "{ty} {inode} listed under its owner user {user}:\n{}",
            subtree.join("\n")
        );
    }
}

#[test]
fn leaks_exit_status_matches_its_report() {
    if !root_or_skip("leaks_exit_status_matches_its_report")
        || !tests::kernel_independent("leaks_exit_status_matches_its_report")
    {
        return;
    }
    let _serial = serial();
    for args in [&["leaks"][..], &["leaks", "--json"][..], &["leaks", "--type", "time"][..]] {
        let (code, out, err) = nstrace(args);
        let none = if args.contains(&"--json") {
            serde_json::from_str::<Value>(&out).unwrap()["count"] == 0
        } else {
            out.contains("no leaked namespaces")
        };
        assert_eq!(
            code,
            if none { 0 } else { 1 },
            "{args:?} printed {}; stderr {err}",
            if none { "none" } else { "leaks" }
        );
    }
    let netns = tests::IpNetns::add(unique("nsleak"));
    let (code, out, _) = nstrace(&["leaks", "--type", "net", "--json"]);
    drop(netns);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["count"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(code, 1, "leaks found: exit 1");
}

/// Without privileges every command that would give a partial answer says
/// so and fails (exit 3); none prints an empty "all clear".
#[test]
fn unprivileged_users_get_a_clear_error_not_an_empty_answer() {
    if !root_or_skip("unprivileged_users_get_a_clear_error_not_an_empty_answer")
        || !tests::kernel_independent("unprivileged_users_get_a_clear_error_not_an_empty_answer")
    {
        return;
    }
    let _serial = serial();
    let bin = nstrace_bin();
    for args in [&["ls", "--json"][..], &["leaks"], &["why", "1"], &["trace", "--duration", "1"], &["live", "--plain"]]
    {
        let out = Command::new("setpriv")
            .envs(tests::private_env())
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(3), "{args:?} as nobody: {stderr}");
        assert!(stdout.trim().is_empty(), "{args:?} as nobody printed an answer: {stdout}");
        assert!(stderr.contains("root is needed") && stderr.contains("CAP_SYS_ADMIN"), "{args:?}: {stderr}");
    }
    // doctor is for finding out what is missing: it runs, and says it cannot.
    let out = Command::new("setpriv")
        .envs(tests::private_env())
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "doctor as nobody: {}", String::from_utf8_lossy(&out.stderr));
}

//! Foundation: the task hooks report a task's real namespace set.

use std::{os::unix::process::CommandExt, process::Command, time::Duration};

use serde_json::Value;
use tests::{Trace, children_of, eventually, ns_inode, root_or_skip};

/// Inode of type `ty` in a `namespaces` event.
fn ns_of(event: &Value, ty: &str) -> u64 {
    event["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == ty)
        .and_then(|n| n["inode"].as_u64())
        .unwrap_or_else(|| panic!("no {ty} in {event}"))
}

#[test]
fn unshare_net_uts_child_reports_its_new_namespaces() {
    if !root_or_skip("unshare_net_uts_child_reports_its_new_namespaces") {
        return;
    }
    let trace = Trace::start(&["--event", "namespaces,unshare"]);
    let mut cmd = Command::new("sleep");
    cmd.arg("3");
    // SAFETY: unshare is async-signal-safe; the closure runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWUTS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn child");
    let pid = child.id();
    let event = trace
        .wait_for(Duration::from_secs(5), |v| v["event"] == "namespaces" && v["cause"] == "exec" && v["pid"] == pid)
        .unwrap_or_else(|| panic!("no exec event for pid {pid}; saw {:?}", trace.events()));
    let (net, uts) = (ns_inode(pid, "net"), ns_inode(pid, "uts"));
    child.kill().ok();
    child.wait().ok();
    let me = std::process::id();
    assert_ne!(net, ns_inode(me, "net"), "child has a new net namespace");
    assert_eq!(event["comm"], "sleep");
    assert_eq!(event["tid"], pid);
    assert_eq!(ns_of(&event, "net"), net);
    assert_eq!(ns_of(&event, "uts"), uts);
    // Namespaces the child did not unshare are the parent's.
    for ty in ["ipc", "user", "mnt", "pid", "cgroup", "time"] {
        assert_eq!(ns_of(&event, ty), ns_inode(me, ty), "{ty}");
    }
    // perf's order, plus time.
    let order: Vec<&str> =
        event["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(order, ["net", "uts", "ipc", "pid", "user", "mnt", "cgroup", "time"]);
    // The unshare itself was reported with the new namespaces' ids.
    let unshare =
        trace.wait_for(Duration::from_secs(5), |v| v["event"] == "unshare" && v["pid"] == pid).expect("unshare event");
    assert_eq!(unshare["flags_text"], "CLONE_NEWNET|CLONE_NEWUTS");
    assert_eq!(unshare["result"], 0);
    let new_net = unshare["new"].as_array().unwrap().iter().find(|c| c["type"] == "net").expect("net in new");
    assert_eq!(new_net["inode"], net);
    if tests::kernel().has_ns_ids {
        assert!(new_net["id"].as_u64().unwrap() > 3, "a fresh ns_id: {new_net}");
    } else {
        assert_eq!(new_net["id"], 0, "no ns_id before 6.18: {new_net}");
    }
}

#[test]
fn fork_event_carries_the_child() {
    if !root_or_skip("fork_event_carries_the_child") {
        return;
    }
    let trace = Trace::start(&["--event", "namespaces"]);
    let mut sh = Command::new("sh").args(["-c", "sleep 2 & wait"]).spawn().unwrap();
    let child = eventually(Duration::from_secs(5), "sh's child", || children_of(sh.id()).into_iter().next());
    let fork = trace
        .wait_for(Duration::from_secs(5), |v| v["event"] == "namespaces" && v["cause"] == "fork" && v["pid"] == child)
        .unwrap_or_else(|| panic!("no fork event for child {child}"));
    sh.wait().ok();
    assert_eq!(fork["tid"], child);
    assert_eq!(ns_of(&fork, "mnt"), ns_inode(std::process::id(), "mnt"));
    assert!(fork["namespaces"][0]["dev"].as_u64().unwrap() > 0, "nsfs dev number");
}

/// A fork or exec that changes no namespace costs a few reads in the kernel
/// and sends nothing: without `--event namespaces` only tasks whose
/// namespaces changed get a `namespaces` event (a child entering its
/// parent's new pid namespace, an exec entering a new time namespace);
/// with it, every fork and exec does, as perf --namespaces.
#[test]
fn only_changed_namespace_sets_are_reported_unless_every_task_is_asked_for() {
    let test = "only_changed_namespace_sets_are_reported_unless_every_task_is_asked_for";
    if !root_or_skip(test) {
        return;
    }
    let changed_only = Trace::start(&[]);
    let every = Trace::start(&["--event", "namespaces"]);
    let is = |v: &Value, cause: &str, pid: u32| v["event"] == "namespaces" && v["cause"] == cause && v["pid"] == pid;

    // A plain fork and exec: nothing changes.
    let mut sh = Command::new("sh").args(["-c", "sleep 60 & wait"]).spawn().unwrap();
    let plain = eventually(Duration::from_secs(5), "sh's child", || children_of(sh.id()).into_iter().next());
    // A child entering the pid namespace its parent unshared; a program
    // exec'd into the time namespace unshare made for it.
    let mut pid_ns =
        Command::new("unshare").args(["--pid", "--fork", "--kill-child", "sleep", "infinity"]).spawn().unwrap();
    let in_new_pid =
        eventually(Duration::from_secs(5), "unshare's child", || children_of(pid_ns.id()).into_iter().next());
    // Read now: under emulation the events can take longer than a short sleep.
    let new_pid_ns = ns_inode(in_new_pid, "pid");
    let time = Command::new("unshare").args(["--time", "readlink", "/proc/self/ns/time"]).output().unwrap();
    let time_inode = String::from_utf8_lossy(&time.stdout).trim().to_owned();
    assert!(time.status.success(), "unshare --time: {}", String::from_utf8_lossy(&time.stderr));
    // Older kernels (6.1) move only the children, not an exec, into it.
    let exec_enters_time_ns = time_inode != format!("time:[{}]", ns_inode(std::process::id(), "time"));
    if !exec_enters_time_ns {
        println!("{test}: exec does not enter the time namespace for children on this kernel: no exec case");
    }

    for (name, t) in [("every", &every), ("changed only", &changed_only)] {
        let fork = t
            .wait_for(Duration::from_secs(5), |v| is(v, "fork", in_new_pid))
            .unwrap_or_else(|| panic!("{name}: no fork event for {in_new_pid} in a new pid namespace"));
        assert_eq!(fork["namespaces"][3]["type"], "pid");
        assert_eq!(fork["namespaces"][3]["inode"], new_pid_ns, "{name}: {fork}");
        if !exec_enters_time_ns {
            continue;
        }
        let exec = t
            .wait_for(Duration::from_secs(5), |v| {
                v["event"] == "namespaces" && v["cause"] == "exec" && v["comm"] == "readlink"
            })
            .unwrap_or_else(|| panic!("{name}: no exec event for readlink in a new time namespace"));
        let inode =
            exec["namespaces"].as_array().unwrap().iter().find(|n| n["type"] == "time").unwrap()["inode"].clone();
        assert_eq!(format!("time:[{inode}]"), time_inode, "{name}: {exec}");
    }
    assert!(
        every.wait_for(Duration::from_secs(5), |v| is(v, "fork", plain)).is_some(),
        "every: no event for the plain fork"
    );
    assert!(every.wait_for(Duration::from_secs(5), |v| is(v, "exec", plain)).is_some(), "every: no event for its exec");
    // Both came through the other tracer; give this one as long again.
    std::thread::sleep(tests::scaled(Duration::from_millis(300)));
    let plain_events: Vec<Value> =
        changed_only.events().into_iter().filter(|v| v["event"] == "namespaces" && v["pid"] == plain).collect();
    assert!(plain_events.is_empty(), "a fork and exec that changed nothing were reported: {plain_events:?}");
    for child in [plain, in_new_pid] {
        // SAFETY: kill(2) on a pid of ours.
        unsafe { libc::kill(child as i32, libc::SIGKILL) };
    }
    sh.wait().ok();
    pid_ns.wait().ok();
}

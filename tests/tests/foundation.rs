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
    let trace = Trace::start(&[]);
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
    let trace = Trace::start(&[]);
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

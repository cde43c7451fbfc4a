//! Foundation: the task hooks report a task's real namespace set.

use std::{os::unix::process::CommandExt, process::Command, time::Duration};

use tests::{Trace, ns_inode, root_or_skip};

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
    // Give exec a moment so /proc/<pid>/ns shows the new namespaces.
    std::thread::sleep(Duration::from_millis(200));
    let (net, uts) = (ns_inode(pid, "net"), ns_inode(pid, "uts"));
    assert_ne!(net, ns_inode(std::process::id(), "net"), "child has a new net namespace");
    let event = trace
        .wait_for(Duration::from_secs(5), |v| v["cause"] == "exec" && v["pid"] == pid)
        .unwrap_or_else(|| panic!("no exec event for pid {pid}; saw {:?}", trace.events()));
    child.kill().ok();
    child.wait().ok();
    assert_eq!(event["comm"], "sleep");
    assert_eq!(event["tid"], pid);
    assert_eq!(event["namespaces"]["net"]["inode"], net);
    assert_eq!(event["namespaces"]["uts"]["inode"], uts);
    // Namespaces the child did not unshare are the parent's.
    assert_eq!(event["namespaces"]["ipc"]["inode"], ns_inode(std::process::id(), "ipc"));
    assert_eq!(event["namespaces"]["user"]["inode"], ns_inode(std::process::id(), "user"));
    // ns_id is never 0 on 6.18+ and differs between the new and old net ns.
    let id = event["namespaces"]["net"]["id"].as_u64().unwrap();
    assert!(id > 3, "new net ns id {id} should be above the init net ns id 3");
}

#[test]
fn fork_event_carries_child_and_clone_flags() {
    if !root_or_skip("fork_event_carries_child_and_clone_flags") {
        return;
    }
    let trace = Trace::start(&[]);
    let mut child = Command::new("sh").args(["-c", "sleep 2 & wait"]).spawn().unwrap();
    let sh = child.id();
    let fork = trace
        .wait_for(Duration::from_secs(5), |v| v["cause"] == "fork" && v["ppid"] == sh)
        .unwrap_or_else(|| panic!("no fork event from sh {sh}"));
    child.wait().ok();
    assert_eq!(fork["caller_pid"], sh, "the forking process is the caller");
    assert_ne!(fork["pid"], sh, "the subject of a fork event is the child");
    assert_eq!(fork["namespaces"]["mnt"]["inode"], ns_inode(std::process::id(), "mnt"));
}

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

/// The fork gate (a plain fork decided with no kernel read while no task
/// has a pid namespace for children of its own) must not hide the forks
/// that do change namespaces: those of a task that unshared its pid
/// namespace for children, whether it did so before `nstrace trace`
/// started (found in /proc when the gate opens) or after (seen by the
/// unshare hook). Each such fork is a `namespaces` event whose child is in
/// the new pid namespace.
#[test]
fn forks_into_a_pid_namespace_for_children_are_reported_before_and_after_start() {
    if !root_or_skip("forks_into_a_pid_namespace_for_children_are_reported_before_and_after_start") {
        return;
    }
    // `unshare --pid` without --fork: the shell itself is the pending task;
    // each line on its stdin makes it fork one child (the first becomes the
    // new namespace's init and stays, so later forks can happen).
    // The children die with the shell (parent-death signal).
    let script = "k='setpriv --pdeathsig KILL sleep infinity'; $k & echo ready; while read x; do $k & echo $!; done";
    let start = |cmd: &mut Command| {
        cmd.args(["--pid", "sh", "-c", script]).stdin(std::process::Stdio::piped());
        tests::spawn_ready(cmd).0
    };
    let mut before = start(&mut Command::new("unshare"));
    // Pending before the tracer starts: its pid namespace for children is
    // not its own.
    eventually(Duration::from_secs(5), "the shell's pid namespace for children", || {
        let p = before.pid();
        (std::fs::read_link(format!("/proc/{p}/ns/pid_for_children")).ok()?
            != std::fs::read_link(format!("/proc/{p}/ns/pid")).ok()?)
        .then_some(())
    });
    // No `--event namespaces`: that asks for every fork; here a fork is
    // reported only if the hooks find its namespaces changed.
    let trace = Trace::start(&[]);
    // The one pending before start forks first: no other task may have
    // closed the gate then.
    check_fork(&trace, &mut before, "before");
    let mut after = start(&mut Command::new("unshare"));
    check_fork(&trace, &mut after, "after");
}

/// One fork of the pending shell `sh` is reported, its child in the new pid namespace.
fn check_fork(trace: &Trace, sh: &mut tests::ChildGuard, when: &str) {
    let shell = sh.pid();
    sh.send_line("fork");
    let child: u32 = sh.next_line().trim().parse().expect("the shell prints its child's pid");
    let event = trace.wait_for(Duration::from_secs(5), |v| v["cause"] == "fork" && v["tid"] == child).unwrap_or_else(|| {
        panic!(
            "the fork of pid {child} by {shell} (pending since {when} nstrace started) into a new pid namespace is not \
             reported; events: {:?}",
            trace.events()
        )
    });
    assert_eq!(ns_of(&event, "pid"), ns_inode(child, "pid"), "{event}");
    assert_ne!(ns_of(&event, "pid"), ns_inode(shell, "pid"), "the child is in the new pid namespace: {event}");
}

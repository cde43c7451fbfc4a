//! `nstrace trace`: one test per event kind, each doing the real syscall.

use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use serde_json::json;
use tests::{ChildGuard, Trace, kernel, ns_inode, root_or_skip, sh, spawn_ready, unique};

const DEATH: Duration = Duration::from_secs(2);

/// Held by the storm and by tests that wait for one namespace's death:
/// before 6.18 the kernel frees ipc namespaces one at a time after an RCU
/// grace period each, so a storm's thousands delay every other ipc death.
fn storm_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
const SEEN: Duration = Duration::from_secs(5);

fn is(v: &Value, event: &str, pid: u32) -> bool {
    v["event"] == event && v["pid"] == pid
}

/// Waits for the destroy event of the namespace `create` reported (within 2 s).
fn assert_destroyed(trace: &Trace, create: &Value) {
    let d = trace
        .wait_for(DEATH + Duration::from_millis(500), |v| kernel().is_destroy_of(v, create))
        .unwrap_or_else(|| panic!("namespace {create} not reported destroyed within {:?}", tests::scaled(DEATH)));
    assert!(d["lifetime"].as_f64().is_some_and(|l| l >= 0.0), "lifetime known: {d}");
}

#[test]
fn unshare_of_each_type_creates_and_destroys() {
    if !root_or_skip("unshare_of_each_type_creates_and_destroys") {
        return;
    }
    let _storm = storm_lock();
    let trace = Trace::start(&[]);
    // (type, unshare(1) option, flag text, how the new namespace is held)
    let cases = [
        ("net", "-n", "CLONE_NEWNET"),
        ("uts", "-u", "CLONE_NEWUTS"),
        ("ipc", "-i", "CLONE_NEWIPC"),
        ("pid", "-p", "CLONE_NEWPID"),
        ("user", "-U", "CLONE_NEWUSER"),
        ("mnt", "-m", "CLONE_NEWNS"),
        ("cgroup", "-C", "CLONE_NEWCGROUP"),
        ("time", "-T", "CLONE_NEWTIME"),
    ];
    for (ty, opt, flag) in cases {
        let mut args = vec![opt];
        if ty == "pid" {
            args.push("-f"); // a pid namespace needs a first process
        }
        args.push("true");
        let status = Command::new("unshare").args(&args).status().unwrap();
        assert!(status.success(), "unshare {args:?}");
        let unshare = trace
            .wait_for(SEEN, |v| v["event"] == "unshare" && v["comm"] == "unshare" && v["flags_text"] == flag)
            .unwrap_or_else(|| panic!("no unshare event for {flag}"));
        assert_eq!(unshare["result"], 0);
        let pid = unshare["pid"].as_u64().unwrap();
        let k = kernel();
        let create = trace
            .wait_for(SEEN, |v| {
                v["event"] == "create" && v["type"] == ty && v["pid"] == pid && k.cause_matches(v, "unshare")
            })
            .unwrap_or_else(|| {
                let of_type: Vec<_> =
                    trace.events().into_iter().filter(|v| v["type"] == ty || v["pid"] == pid).collect();
                panic!("no create event for the new {ty} ns of {pid}; events of that type or pid: {of_type:?}")
            });
        assert!(!k.has_ns_ids || create["id"].as_u64().unwrap() > 0);
        assert!(create["inode"].as_u64().unwrap() > 0);
        assert_eq!(create["comm"], "unshare");
        // The unshare event names the same namespace.
        let changed = unshare["new"].as_array().unwrap();
        assert!(
            changed.iter().any(|c| c["inode"] == create["inode"] && c["id"] == create["id"]),
            "{unshare} vs {create}"
        );
        if ty == "user" {
            assert_eq!(create["parent"]["inode"], ns_inode(std::process::id(), "user"));
        } else {
            assert_eq!(create["owner"]["inode"], ns_inode(std::process::id(), "user"));
        }
        assert_destroyed(&trace, &create);
    }
}

/// clone3(2) with CLONE_NEWPID|CLONE_NEWNET from this process.
#[test]
fn clone3_with_new_pid_and_net() {
    if !root_or_skip("clone3_with_new_pid_and_net") {
        return;
    }
    let trace = Trace::start(&[]);
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
    }
    let args = CloneArgs {
        flags: (libc::CLONE_NEWPID | libc::CLONE_NEWNET) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: the child only calls async-signal-safe functions, then _exit.
    let child = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>()) };
    if child == 0 {
        // SAFETY: _exit(2) ends the forked child at once.
        unsafe {
            libc::usleep(300_000);
            libc::_exit(0);
        }
    }
    assert!(child > 0, "clone3 failed: {}", std::io::Error::last_os_error());
    let child = child as u32;
    let me = std::process::id();
    let clone = trace
        .wait_for(SEEN, |v| v["event"] == "clone" && v["child_pid"] == child)
        .unwrap_or_else(|| panic!("no clone event for child {child}"));
    assert_eq!(clone["pid"], me);
    assert_eq!(clone["flags_text"], "CLONE_NEWNET|CLONE_NEWPID");
    assert_eq!(clone["types"], serde_json::json!(["net", "pid"]));
    let mut creates = Vec::new();
    // A kernel-function hook sees the caller of clone3 create them; first
    // sightings see the child in them.
    let k = kernel();
    let creator = if k.exact_create() { me } else { child };
    for ty in ["net", "pid"] {
        let c = trace
            .wait_for(SEEN, |v| v["event"] == "create" && v["type"] == ty && v["pid"] == creator)
            .unwrap_or_else(|| panic!("no create of {ty} by {creator} for the clone3 child"));
        assert!(k.cause_matches(&c, "fork"), "{c}");
        creates.push(c);
    }
    // SAFETY: waitpid(2) on our own child; a null status pointer is allowed.
    unsafe { libc::waitpid(child as i32, std::ptr::null_mut(), 0) };
    for c in creates {
        assert_destroyed(&trace, &c);
    }
}

/// A target process in its own net and uts namespaces.
fn target() -> ChildGuard {
    spawn_ready(Command::new("unshare").args(["-n", "-u", "sh", "-c", "echo ready; exec sleep infinity"])).0
}

/// Runs `sleep` in a child that first calls setns(fd, nstype) with an fd from
/// `open` (a path, or a pidfd for `pid:N`); setns errors are ignored so
/// failing calls can be traced too.
fn setns_child(open: &str, nstype: i32) -> ChildGuard {
    let path = CString::new(open).unwrap();
    let pidfd_of: Option<i32> = open.strip_prefix("pid:").map(|p| p.parse().unwrap());
    let mut cmd = Command::new("sleep");
    cmd.arg("1");
    // SAFETY: open, pidfd_open and setns are async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(move || {
            let fd = match pidfd_of {
                Some(pid) => libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32,
                None => libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC),
            };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::setns(fd, nstype);
            Ok(())
        });
    }
    ChildGuard::new(cmd.stdout(Stdio::null()).spawn().unwrap())
}

#[test]
fn setns_by_nsfs_fd() {
    if !root_or_skip("setns_by_nsfs_fd") {
        return;
    }
    let trace = Trace::start(&[]);
    let t = target();
    let child = setns_child(&format!("/proc/{}/ns/net", t.pid()), libc::CLONE_NEWNET);
    let e = trace.wait_for(SEEN, |v| is(v, "setns", child.pid())).expect("setns event");
    assert_eq!(e["fd_kind"], "nsfs");
    assert_eq!(e["flags_text"], "CLONE_NEWNET");
    assert_eq!(e["result"], 0);
    let joined = e["joined"].as_array().unwrap();
    assert_eq!(joined.len(), 1, "{e}");
    assert_eq!(joined[0]["inode"], ns_inode(t.pid(), "net"));
    // The namespaces event after setns shows the joined net ns.
    let n = trace
        .wait_for(SEEN, |v| v["event"] == "namespaces" && v["cause"] == "setns" && v["pid"] == child.pid())
        .expect("namespaces event after setns");
    assert_eq!(n["namespaces"][0]["inode"], ns_inode(t.pid(), "net"));
}

#[test]
fn setns_by_pidfd_with_several_flags() {
    if !root_or_skip("setns_by_pidfd_with_several_flags") {
        return;
    }
    let trace = Trace::start(&[]);
    let t = target();
    let child = setns_child(&format!("pid:{}", t.pid()), libc::CLONE_NEWNET | libc::CLONE_NEWUTS);
    let e = trace.wait_for(SEEN, |v| is(v, "setns", child.pid())).expect("setns event");
    assert_eq!(e["fd_kind"], "pidfd");
    assert_eq!(e["flags_text"], "CLONE_NEWNET|CLONE_NEWUTS");
    assert_eq!(e["result"], 0);
    let joined: HashMap<String, u64> = e["joined"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["slot"].as_str().unwrap().to_string(), j["inode"].as_u64().unwrap()))
        .collect();
    assert_eq!(joined.get("net"), Some(&ns_inode(t.pid(), "net")), "{e}");
    assert_eq!(joined.get("uts"), Some(&ns_inode(t.pid(), "uts")), "{e}");
    assert_eq!(joined.len(), 2);
}

#[test]
fn failing_setns_reports_errno() {
    if !root_or_skip("failing_setns_reports_errno") {
        return;
    }
    let trace = Trace::start(&[]);
    let t = target();
    // A net namespace fd with nstype CLONE_NEWUTS: EINVAL.
    let child = setns_child(&format!("/proc/{}/ns/net", t.pid()), libc::CLONE_NEWUTS);
    let e = trace.wait_for(SEEN, |v| is(v, "setns", child.pid())).expect("setns event");
    assert_eq!(e["result"], -(libc::EINVAL as i64));
    assert_eq!(e["errno"], "EINVAL");
    assert!(e["joined"].as_array().unwrap().is_empty());
    assert!(
        trace
            .wait_for(Duration::from_millis(300), |v| v["event"] == "namespaces"
                && v["cause"] == "setns"
                && v["pid"] == child.pid())
            .is_none()
    );
}

/// A process that makes a namespace of type `name` (its CLONE_NEW* bit
/// `flag`), keeps it only by an open fd (it goes back to its old one),
/// prints the inode, closes the fd at a line on stdin and says "closed".
fn fd_holder(name: &str, flag: u32) -> String {
    format!(
        r#"
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
orig = os.open("/proc/self/ns/{name}", os.O_RDONLY)
assert libc.unshare({flag:#x}) == 0
fd = os.open("/proc/self/ns/{name}", os.O_RDONLY)
assert libc.setns(orig, {flag:#x}) == 0
print(os.fstat(fd).st_ino, flush=True)
sys.stdin.readline()
os.close(fd)
print("closed", flush=True)
while True: time.sleep(3600)
"#
    )
}

/// The death of a namespace kept only by an fd, once the fd is closed:
/// no task exits and no work item runs for it.
fn fd_held_namespace_is_destroyed(test: &str, name: &str, flag: u32, extra: &[&str]) {
    if !root_or_skip(test) {
        return;
    }
    let trace = Trace::start(extra);
    let (mut holder, inode) =
        spawn_ready(Command::new("python3").args(["-c", &fd_holder(name, flag)]).stdin(Stdio::piped()));
    let inode: u64 = inode.parse().unwrap();
    // Match the creator too: inodes are reused at once, so an earlier
    // namespace of another test may have had the same one.
    let create = trace
        .wait_for(SEEN, |v| {
            v["event"] == "create" && v["type"] == name && v["inode"] == inode && v["pid"] == holder.pid()
        })
        .unwrap_or_else(|| panic!("{test}: create of the fd-held {name} namespace"));
    // Still alive while the fd is open.
    assert!(trace.wait_for(Duration::from_millis(1500), |v| kernel().is_destroy_of(v, &create)).is_none());
    holder.send_line("close");
    assert_eq!(holder.next_line(), "closed");
    assert_destroyed(&trace, &create);
}

#[test]
fn netns_whose_last_holder_was_a_closed_fd_is_destroyed() {
    fd_held_namespace_is_destroyed(
        "netns_whose_last_holder_was_a_closed_fd_is_destroyed",
        "net",
        libc::CLONE_NEWNET as u32,
        &[],
    );
}

/// A uts namespace's death sends no hint (no exit, no work item): the
/// periodic check must see its list change, with the safety sweep an hour
/// away.
#[test]
fn a_closed_fd_ending_a_uts_namespace_is_seen_without_the_sweep() {
    // Where the lists count their changes (6.18), doctor says the check
    // reads every type's count: a check that read none would still find
    // the death below, by walking every list every second.
    let doctor = &kernel().doctor;
    let layout_618 = doctor["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["checks"].as_array().cloned().unwrap_or_default())
        .any(|c| c["name"] == "namespace tree" && c["detail"].as_str().is_some_and(|d| d.starts_with("6.18 layout")));
    if layout_618 {
        assert_eq!(
            doctor["change_check"]["status"], "ok",
            "the change check on a 6.18 kernel: {}",
            doctor["change_check"]
        );
    }
    fd_held_namespace_is_destroyed(
        "a_closed_fd_ending_a_uts_namespace_is_seen_without_the_sweep",
        "uts",
        libc::CLONE_NEWUTS as u32,
        &["--sweep", "3600"],
    );
}

#[test]
fn netns_whose_last_holder_was_a_bind_mount_is_destroyed() {
    if !root_or_skip("netns_whose_last_holder_was_a_bind_mount_is_destroyed") {
        return;
    }
    let trace = Trace::start(&[]);
    let name = unique("nstrace-trace");
    let _netns = tests::IpNetns::add(name.clone());
    let inode =
        std::fs::metadata(format!("/run/netns/{name}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let create = trace
        .wait_for(SEEN, |v| v["event"] == "create" && v["type"] == "net" && v["inode"] == inode && v["comm"] == "ip")
        .expect("create of the ip netns namespace");
    assert_eq!(create["comm"], "ip");
    sh(&format!("ip netns del {name}"));
    assert_destroyed(&trace, &create);
}

#[test]
fn storm_of_5000_namespaces_is_fully_accounted() {
    if !root_or_skip("storm_of_5000_namespaces_is_fully_accounted") {
        return;
    }
    let _storm = storm_lock();
    let trace = Trace::start(&["--event", "create,destroy,lost,resync"]);
    let pids = tests::storm_of_5000();
    // Every storm process is gone; the kernel frees their namespaces (ipc
    // ones after RCU grace periods, one by one) and nstrace reports each.
    // Wait while deaths keep arriving: a kernel that frees them one by one
    // (ipc before 6.18: an RCU grace period each) takes a while to drain.
    let k = kernel();
    let (mut undead, mut progress) = (usize::MAX, std::time::Instant::now());
    while progress.elapsed() < tests::scaled(Duration::from_secs(3)) {
        let now = undead_storm_namespaces(&trace.events(), &pids, k);
        if now == 0 {
            break;
        }
        if now < undead {
            (undead, progress) = (now, std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let events = trace.events();
    let lost: u64 = events.iter().filter(|v| v["event"] == "lost").map(|v| v["count"].as_u64().unwrap()).sum();
    let creates = storm_creates(&events, &pids);
    let undead = undead_storm_namespaces(&events, &pids, k);
    assert_eq!(undead, 0, "{undead} storm namespaces were created and never reported destroyed");
    if lost == 0 {
        assert_eq!(creates.len(), 5000, "every create reported when nothing was lost");
    } else {
        assert!(events.iter().any(|v| v["event"] == "resync"), "lost events trigger a resync");
        println!("storm: {lost} records lost and healed by resync; {} creates seen", creates.len());
    }
    // The final state equals a fresh snapshot: no storm namespace is alive
    // (checkable only where ids are never reused).
    if k.has_ns_ids {
        let created: HashSet<u64> = creates.iter().map(|v| v["id"].as_u64().unwrap()).collect();
        let rows = tests::ls_json(&[]);
        let alive: HashSet<u64> = rows.iter().filter_map(|r| r["id"].as_u64()).collect();
        assert!(created.is_disjoint(&alive), "a storm namespace is still listed");
    }
}

fn storm_creates<'a>(events: &'a [Value], pids: &HashSet<u64>) -> Vec<&'a Value> {
    events.iter().filter(|v| v["event"] == "create" && v["pid"].as_u64().is_some_and(|p| pids.contains(&p))).collect()
}

/// Storm namespaces created and not (yet) reported destroyed. Ids make
/// that a set difference; without them inodes are reused at once, so count
/// per (type, inode): as many deaths after the first birth as births.
fn undead_storm_namespaces(events: &[Value], pids: &HashSet<u64>, k: &tests::Kernel) -> usize {
    let key = |v: &Value| if k.has_ns_ids { json!(v["id"]) } else { json!([v["type"], v["inode"]]) };
    let mut births: HashMap<String, (usize, f64)> = HashMap::new();
    for c in storm_creates(events, pids) {
        let e = births.entry(key(c).to_string()).or_insert((0, f64::MAX));
        e.0 += 1;
        e.1 = e.1.min(c["time"].as_f64().unwrap());
    }
    let mut deaths: HashMap<String, usize> = HashMap::new();
    for d in events.iter().filter(|v| v["event"] == "destroy") {
        let k = key(d).to_string();
        if births.get(&k).is_some_and(|(_, first)| d["time"].as_f64().unwrap() >= *first) {
            *deaths.entry(k).or_default() += 1;
        }
    }
    births.iter().filter(|(k, (n, _))| deaths.get(*k).copied().unwrap_or(0) < *n).count()
}

/// nstrace's own threads, forks and execs are not traced: not in its
/// output, not fed to its store. (Its walk threads start while it runs:
/// with the filter gone, they show up here.)
#[test]
fn nstrace_never_traces_itself() {
    let test = "nstrace_never_traces_itself";
    if !root_or_skip(test) {
        return;
    }
    let trace = Trace::start(&["--event", "namespaces", "--walk-interval", "1"]);
    let own = trace.pid();
    std::thread::sleep(tests::scaled(Duration::from_secs(6)));
    // Others are traced meanwhile: a process the test starts now.
    let mut started = Command::new("true").spawn().unwrap();
    let child = started.id();
    started.wait().unwrap();
    trace
        .wait_for(Duration::from_secs(10), |e| e["event"] == "namespaces" && e["pid"] == child)
        .expect("the test's own fork traced");
    let mine: Vec<Value> = trace.events().into_iter().filter(|e| e["pid"] == own).collect();
    assert!(mine.is_empty(), "nstrace (pid {own}) traced itself: {mine:?}");
}

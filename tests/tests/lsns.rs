//! `nstrace ls` for lsns users: the same options, columns and answers as
//! util-linux's lsns on the same host state, for namespaces these tests make.

use std::process::Command;

use serde_json::Value;
use tests::{ChildGuard, children_of, eventually, nstrace, root_or_skip, sh, spawn_ready, unique};

/// The comparison of every row wants the host to itself: the other tests
/// here start and stop processes, and their nstrace runs would be counted
/// in the host's namespaces while lsns, before and after, sees none of them.
static HOST: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn host_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    HOST.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every column both print.
const SHARED: &str = "NS,TYPE,NPROCS,PID,PPID,UID,USER,NETNSID,NSFS,PNS,ONS,PATH,COMMAND";

/// lsns's answer (retried: util-linux 2.38 exits 1 without a word when a
/// process it reads exits under it, which other tests' processes do).
fn lsns(args: &[&str]) -> String {
    (0..5)
        .find_map(|_| {
            let o = Command::new("lsns").args(args).output().ok()?;
            o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
        })
        .unwrap_or_else(|| panic!("lsns {args:?} failed five times"))
}

/// nstrace's answer to the same arguments (a one-shot snapshot: the rows
/// and their lsns columns come from the kernel and /proc as lsns's do).
fn ours(args: &[&str]) -> String {
    let mut all = vec!["ls", "--no-service"];
    all.extend_from_slice(args);
    let (code, out, err) = nstrace(&all);
    assert_eq!(code, 0, "nstrace {all:?}: {err}");
    out
}

/// Every object of an lsns -J document, children included (lsns nests
/// them under their parent process's line without -l).
fn flatten(doc: &Value) -> Vec<Value> {
    fn walk(v: &Value, out: &mut Vec<Value>) {
        for n in v.as_array().into_iter().flatten() {
            let mut own = n.clone();
            if let Some(o) = own.as_object_mut() {
                o.remove("children");
            }
            out.push(own);
            walk(&n["children"], out);
        }
    }
    let mut out = Vec::new();
    walk(&doc["namespaces"], &mut out);
    out
}

fn by_ns(rows: &[Value], ns: u64) -> Option<&Value> {
    rows.iter().find(|r| r["ns"].as_u64() == Some(ns))
}

/// A process alone in new uts, ipc and net namespaces, and a named net
/// namespace (nsfs mount, an nsid assigned here) with a process in it.
struct Scene {
    _alone: ChildGuard,
    _in_named: ChildGuard,
    name: String,
    /// The nsid assigned here to the named namespace.
    nsid: u32,
    /// (type, inode) of each namespace the scene made.
    made: Vec<(&'static str, u64)>,
    alone_pid: u32,
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn scene() -> Scene {
    let (alone, _) =
        spawn_ready(Command::new("unshare").args(["-n", "-u", "-i", "sh", "-c", "echo ready; exec sleep infinity"]));
    let name = unique("nstrace-lsns");
    // Scenes run side by side: each its own nsid.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nsid = 700 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sh(&format!("ip netns add {name} && ip netns set {name} {nsid}"));
    let (in_named, _) =
        spawn_ready(Command::new("ip").args(["netns", "exec", &name, "sh", "-c", "echo ready; exec sleep infinity"]));
    let ino = |pid: u32, ty| tests::ns_inode(pid, ty);
    let made = vec![
        ("net", ino(alone.pid(), "net")),
        ("uts", ino(alone.pid(), "uts")),
        ("ipc", ino(alone.pid(), "ipc")),
        ("net", ino(in_named.pid(), "net")),
    ];
    let alone_pid = alone.pid();
    Scene { _alone: alone, _in_named: in_named, name, nsid, made, alone_pid }
}

#[test]
fn every_shared_column_agrees_with_lsns() {
    let _host = HOST.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !root_or_skip("every_shared_column_agrees_with_lsns") {
        return;
    }
    let s = scene();
    let theirs: Value = serde_json::from_str(&lsns(&["-J", "-l", "-o", SHARED])).unwrap();
    let mine: Value = serde_json::from_str(&ours(&["-J", "-l", "-o", SHARED])).unwrap();
    let (theirs, mine) = (flatten(&theirs), flatten(&mine));
    for (ty, ns) in &s.made {
        let t = by_ns(&theirs, *ns).unwrap_or_else(|| panic!("lsns does not list {ty} {ns}"));
        let m = by_ns(&mine, *ns).unwrap_or_else(|| panic!("nstrace does not list {ty} {ns}: {mine:?}"));
        assert_eq!(m, t, "{ty} {ns}: nstrace (left) and lsns (right) differ");
    }
    // The named one shows what lsns shows of an nsfs mount and an nsid.
    let named = by_ns(&mine, s.made[3].1).unwrap();
    assert_eq!(named["netnsid"], s.nsid.to_string(), "{named}");
    assert_eq!(named["nsfs"], format!("/run/netns/{}", s.name), "{named}");
    assert_eq!(by_ns(&mine, s.made[0].1).unwrap()["netnsid"], "unassigned");
    // Every namespace lsns lists, column for column, where nothing changed
    // while nstrace looked: the other tests' processes come and go, so a
    // row counts only when lsns printed it the same before and after.
    let after: Value = serde_json::from_str(&lsns(&["-J", "-l", "-o", SHARED])).unwrap();
    let after = flatten(&after);
    let mut compared = 0;
    let mut counts_to_recheck = Vec::new();
    for t in &theirs {
        let ns = t["ns"].as_u64().unwrap();
        let Some(a) = by_ns(&after, ns) else { continue };
        let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
        let stable = |k: &str| a[k] == t[k];
        if !keys.iter().filter(|k| k.as_str() != "nprocs").all(|k| stable(k)) {
            continue;
        }
        let m = by_ns(&mine, ns).unwrap_or_else(|| panic!("lsns lists {t} throughout, nstrace does not"));
        for k in keys.into_iter().filter(|k| k.as_str() != "nprocs") {
            assert_eq!(m[k], t[k], "{k} of {ns}: nstrace (left) and lsns (right) differ in {m} / {t}");
        }
        if stable("nprocs") && m["nprocs"] != t["nprocs"] {
            counts_to_recheck.push(ns);
        }
        compared += 1;
    }
    // The host's own eight at least, and the scene's.
    assert!(compared >= 8 + s.made.len(), "only {compared} of {} rows were stable", theirs.len());
    // A process can live and die between the two lsns runs (a kworker the
    // kernel starts and stops, another test's child): a count that differs
    // must agree in one of three more looks, lsns before and after each.
    for ns in counts_to_recheck {
        let mut last = (Value::Null, Value::Null);
        let agreed = (0..3).any(|_| {
            let count = |v: &Value| by_ns(&flatten(v), ns).map(|r| r["nprocs"].clone());
            let before = count(&serde_json::from_str(&lsns(&["-J", "-l", "-o", SHARED])).unwrap());
            let mine = count(&serde_json::from_str(&ours(&["-J", "-l", "-o", SHARED])).unwrap());
            let after = count(&serde_json::from_str(&lsns(&["-J", "-l", "-o", SHARED])).unwrap());
            last = (mine.clone().unwrap_or_default(), before.clone().unwrap_or_default());
            before == after && mine == before
        });
        assert!(
            agreed,
            "nprocs of {ns}: nstrace and lsns differed in four looks while lsns's count held (last: nstrace {}, \
             lsns {}); {}",
            last.0,
            last.1,
            pids_that_differ(ns)
        );
    }
}

/// The processes /proc shows in namespace `inode` (any type) against those
/// `nstrace ls --json` lists, each difference with its comm and state.
fn pids_that_differ(inode: u64) -> String {
    let in_ns = |pid: u32| {
        ["mnt", "net", "uts", "ipc", "pid", "user", "cgroup", "time"].iter().any(|t| {
            std::fs::read_link(format!("/proc/{pid}/ns/{t}"))
                .is_ok_and(|l| l.to_string_lossy().ends_with(&format!(":[{inode}]")))
        })
    };
    let proc_pids: std::collections::BTreeSet<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| in_ns(pid))
        .collect();
    let rows: Vec<Value> = serde_json::from_str(&ours(&["--json"])).unwrap();
    let listed: std::collections::BTreeSet<u32> = rows
        .iter()
        .filter(|r| r["inode"] == inode)
        .flat_map(|r| r["pids"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_u64().map(|p| p as u32))
        .collect();
    let describe = |pid: &u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let comm_state = stat
            .split_once(" (")
            .and_then(|(_, r)| r.rsplit_once(") ").map(|(c, s)| (c.to_string(), s.chars().next().unwrap_or('?'))));
        match comm_state {
            Some((comm, state)) => format!("{pid} {comm} [{state}]"),
            None => format!("{pid} (gone)"),
        }
    };
    let only_proc: Vec<String> = proc_pids.difference(&listed).map(describe).collect();
    let only_ours: Vec<String> = listed.difference(&proc_pids).map(describe).collect();
    format!(
        "/proc shows {} processes, nstrace lists {}; only in /proc: {only_proc:?}; only in nstrace: {only_ours:?}",
        proc_pids.len(),
        listed.len()
    )
}

#[test]
fn the_lsns_script_of_the_issue_gets_the_same_answer() {
    let _host = host_shared();
    if !root_or_skip("the_lsns_script_of_the_issue_gets_the_same_answer") {
        return;
    }
    let s = scene();
    let args = ["-J", "-o", "NS,TYPE,NPROCS,PID,USER,COMMAND"];
    let theirs: Value = serde_json::from_str(&lsns(&args)).unwrap();
    let mine: Value = serde_json::from_str(&ours(&args)).unwrap();
    assert!(mine["namespaces"].is_array(), "lsns's document shape: {mine}");
    let (theirs, mine) = (flatten(&theirs), flatten(&mine));
    for (ty, ns) in &s.made {
        let t = by_ns(&theirs, *ns).unwrap_or_else(|| panic!("lsns does not list {ty} {ns}"));
        assert_eq!(by_ns(&mine, *ns), Some(t), "{ty} {ns}");
    }
    // Keys in lsns's order.
    let keys: Vec<&String> = mine[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ns", "type", "nprocs", "pid", "user", "command"]);
}

#[test]
fn task_namespace_raw_and_heading_options_work_as_in_lsns() {
    let _host = host_shared();
    if !root_or_skip("task_namespace_raw_and_heading_options_work_as_in_lsns") {
        return;
    }
    let s = scene();
    let pid = s.alone_pid.to_string();
    // -p: the process's eight namespaces.
    let set = |text: String| {
        let mut v: Vec<String> = text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
        v.sort();
        v
    };
    let theirs = set(lsns(&["-p", &pid, "-l", "-n", "-o", "NS,TYPE"]));
    assert_eq!(theirs.len(), 8, "{theirs:?}");
    assert_eq!(set(ours(&["-p", &pid, "-l", "-n", "-o", "NS,TYPE"])), theirs);
    // <namespace>: its processes, lsns's columns for that form.
    let uts = s.made[1].1.to_string();
    let theirs = lsns(&[&uts, "-l", "-r"]);
    assert_eq!(ours(&[&uts, "-l", "-r"]), theirs);
    assert!(theirs.starts_with("PID PPID USER COMMAND\n") && theirs.contains("sleep\\x20infinity"), "{theirs}");
    // -r -n: raw lines with lsns's escapes, no heading.
    let args = ["-r", "-n", "-l", "-t", "uts", "-o", "NS,TYPE,NPROCS,PID,COMMAND"];
    let line = |text: &str| text.lines().find(|l| l.starts_with(&uts)).map(str::to_string);
    assert_eq!(line(&ours(&args)), line(&lsns(&args)));
    assert!(line(&ours(&args)).is_some());
    // A column lsns does not know is a clear error.
    let (code, _, err) = nstrace(&["ls", "--no-service", "-o", "NS,BOGUS"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("BOGUS") && err.contains("NETNSID"), "{err}");
}

#[test]
fn holders_in_a_pid_namespace_are_named_by_their_own_pid_too() {
    let _host = host_shared();
    if !root_or_skip("holders_in_a_pid_namespace_are_named_by_their_own_pid_too") {
        return;
    }
    let (unshare, _) = spawn_ready(Command::new("unshare").args([
        "--pid",
        "--fork",
        "--kill-child",
        "sh",
        "-c",
        "echo ready; exec sleep infinity",
    ]));
    let child = eventually(std::time::Duration::from_secs(5), "the child in the new pid namespace", || {
        children_of(unshare.pid()).first().copied()
    });
    // What the kernel says: its pid here, then in each nested namespace.
    let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap();
    let nspid: Vec<u32> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!((nspid.len(), nspid[0], nspid[1]), (2, child, 1), "{status}");
    let pid_ns = tests::ns_inode(child, "pid");
    let (code, out, err) = nstrace(&["why", "--json", "--no-service", &format!("/proc/{child}/ns/pid")]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let task = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "task" && r["pid"] == child)
        .unwrap_or_else(|| panic!("no task {child} in {v}"));
    assert_eq!(task["in_pid_ns"], serde_json::json!({"pid": nspid[1], "pid_ns": pid_ns}), "{task}");
    let (_, text, _) = nstrace(&["why", "--no-service", &format!("/proc/{child}/ns/pid")]);
    assert!(text.contains(&format!("process {child} (sleep; 1 in pid namespace {pid_ns}) is in it")), "{text}");
    // ls --json: each row names its contained holders' own pids.
    let rows = tests::ls_json(&["--no-service", "--type", "pid"]);
    let row = tests::find_row(&rows, "pid", pid_ns).unwrap_or_else(|| panic!("no row for {pid_ns}"));
    assert_eq!(row["in_pid_ns"][child.to_string()], serde_json::json!({"pid": 1, "pid_ns": pid_ns}), "{row}");
    let host = tests::find_row(&rows, "pid", tests::ns_inode(std::process::id(), "pid")).unwrap();
    assert!(host.get("in_pid_ns").is_none(), "our own pid namespace needs no translation: {host}");
    drop(unshare);
}

#[test]
fn owner_uid_names_who_made_the_owning_user_namespace() {
    let _host = host_shared();
    let test = "owner_uid_names_who_made_the_owning_user_namespace";
    if !root_or_skip(test) {
        return;
    }
    // nobody makes a user namespace and a net namespace it owns.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "unshare", "-U", "-n"]);
    cmd.args(["sh", "-c", "echo ready; exec sleep infinity"]);
    let child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let guard = ChildGuard::new(child);
    let ready = eventually(std::time::Duration::from_secs(5), "nobody's namespaces", || {
        let pid = guard.pid();
        let net = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
        let own = std::fs::metadata("/proc/self/ns/user").ok()?;
        let user = std::fs::metadata(format!("/proc/{pid}/ns/user")).ok()?;
        use std::os::unix::fs::MetadataExt;
        (user.ino() != own.ino()).then(|| (net.ino(), user.ino()))
    });
    let out = ours(&["-l", "-r", "-n", "-t", "user,net", "-o", "NS,UID,USER,OWNER-UID"]);
    for ns in [ready.0, ready.1] {
        let line = out.lines().find(|l| l.starts_with(&format!("{ns} "))).unwrap_or_else(|| panic!("{ns}: {out}"));
        assert_eq!(line, format!("{ns} 65534 nobody 65534"), "{out}");
    }
    // The host's namespaces are root's.
    let host = tests::ns_inode(std::process::id(), "net");
    assert!(out.lines().any(|l| l.starts_with(&format!("{host} ")) && l.ends_with(" 0")), "{out}");
}

#[test]
fn tree_takes_lsns_relations() {
    let _host = host_shared();
    if !root_or_skip("tree_takes_lsns_relations") {
        return;
    }
    let both = ours(&["--tree"]);
    assert!(both.contains("user namespace ownership:") && both.contains("pid namespace hierarchy:"), "{both}");
    let owner = ours(&["--tree=owner"]);
    assert!(owner.starts_with("user namespace ownership:") && !owner.contains("pid namespace hierarchy"), "{owner}");
    let parent = ours(&["-T=parent"]);
    assert!(parent.starts_with("pid namespace hierarchy:") && !parent.contains("ownership"), "{parent}");
    // process: lsns's form, as a process tree (lsns's own default).
    let process: Value = serde_json::from_str(&ours(&["-T=process", "-J"])).unwrap();
    assert!(process["namespaces"].as_array().is_some_and(|a| !a.is_empty()), "{process}");
    let (code, _, err) = nstrace(&["ls", "--no-service", "--tree=sideways"]);
    assert_eq!(code, 2, "{err}");
}

/// A zombie that is pid 1 of a new pid namespace, made by a thread of
/// ours that never lets it be reaped until dropped: the thread unshares
/// the pid namespace for its children, forks a child that exits at once,
/// and waits for the word to reap it.
struct ZombieInit {
    pid: u32,
    reap: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ZombieInit {
    fn make() -> ZombieInit {
        let (tell, pid) = std::sync::mpsc::channel();
        let (reap, reaped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // Only this thread's children go to the new pid namespace.
            // SAFETY: unshare(2) takes no pointers.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWPID) }, 0, "unshare(CLONE_NEWPID)");
            // SAFETY: the child only makes async-signal-safe calls before _exit.
            let child = unsafe { libc::fork() };
            if child == 0 {
                // SAFETY: _exit(2) ends the forked child at once.
                unsafe { libc::_exit(0) };
            }
            assert!(child > 0, "fork");
            tell.send(child as u32).unwrap();
            let _ = reaped.recv();
            // SAFETY: waitpid(2) on our own child; a null status pointer is allowed.
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        });
        ZombieInit { pid: pid.recv().unwrap(), reap: Some(reap), thread: Some(thread) }
    }
}

impl Drop for ZombieInit {
    fn drop(&mut self) {
        drop(self.reap.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_zombie_init_holds_its_pid_namespace_and_why_names_its_parent() {
    let _host = host_shared();
    let test = "a_zombie_init_holds_its_pid_namespace_and_why_names_its_parent";
    if !root_or_skip(test) {
        return;
    }
    let init = ZombieInit::make();
    let zombie = init.pid;
    let parent = std::process::id();
    eventually(std::time::Duration::from_secs(5), "the child to exit", || {
        let stat = std::fs::read_to_string(format!("/proc/{zombie}/stat")).unwrap_or_default();
        stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')).then_some(())
    });
    let pid_ns = tests::ns_inode(zombie, "pid");
    let target = pid_ns.to_string();
    let cols = ["-J", "-o", "NS,TYPE,NPROCS,PID,PPID", &target];
    let theirs: Value = serde_json::from_str(&lsns(&cols)).unwrap();
    let expected = serde_json::json!({"ns": pid_ns, "type": "pid", "nprocs": 1, "pid": zombie, "ppid": parent});
    assert_eq!(flatten(&theirs), vec![expected.clone()], "lsns counts the zombie");
    // The kernel's lists where this kernel has them (6.18+), and /proc.
    let tree_walk = tests::kernel().mechanisms["snapshot"] == "tree-walk";
    for source in ["kernel", "proc"].into_iter().filter(|s| tree_walk || *s == "proc") {
        let mine: Value = serde_json::from_str(&ours(&[
            "--source",
            source,
            "-J",
            "-l",
            "-o",
            "NS,TYPE,NPROCS,PID,PPID",
            "-t",
            "pid",
        ]))
        .unwrap();
        let row = flatten(&mine).into_iter().find(|r| r["ns"] == pid_ns);
        assert_eq!(row, Some(expected.clone()), "--source {source}");
    }
    let (code, text, err) = nstrace(&["why", "--no-service", &target]);
    assert_eq!(code, 0, "{err}");
    let named = format!("; 1 in pid namespace {pid_ns}; a zombie its parent {parent} has not reaped) is in it");
    assert!(text.contains(&format!("process {zombie} (")) && text.contains(&named), "{text}");
    assert!(text.contains(&format!("fix or stop process {parent}")), "{text}");
    drop(init);
    // Reaped: the namespace is gone.
    eventually(std::time::Duration::from_secs(5), "the namespace to go", || {
        let (_, out, _) = nstrace(&["ls", "--no-service", "-n", "-o", "NS", "-t", "pid"]);
        (!out.lines().any(|l| l.trim() == target)).then_some(())
    });
}

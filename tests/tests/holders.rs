//! Every holder, exactly: the holders /proc hides from a simple scan — an
//! nsfs fd opened through a bind-mount path, a thread that joined a
//! namespace on its own, a bind mount inside a mount namespace no task is
//! in — found by both snapshot sources, explained by `why`.

use std::{process::Command, time::Duration};

use serde_json::Value;
use tests::{Umount, eventually, find_row, ls_json, ns_inode, nstrace, root_or_skip, sh, spawn_ready, tempdir, unique};

fn holders_of<'a>(row: &'a Value, kind: &str) -> Vec<&'a Value> {
    row["holders"].as_array().unwrap().iter().filter(|h| h["kind"] == kind).collect()
}

/// The way CNI plugins and `ip netns exec` hold a namespace: an fd opened
/// through its bind-mount path (the fd's link then reads as that path, not
/// `net:[…]`), kept after `ip netns del` detached the mount (the link then
/// reads `/`). Both times the fd is a holder; afterwards the namespace is
/// fd-only, never "orphaned" by a kernel reference.
#[test]
fn an_fd_opened_through_a_bind_mount_path_holds_the_namespace() {
    let test = "an_fd_opened_through_a_bind_mount_path_holds_the_namespace";
    if !root_or_skip(test) {
        return;
    }
    let name = unique("nstrace-pathfd");
    let mut netns = Some(tests::IpNetns::add(name.clone()));
    let path = format!("/run/netns/{name}");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("stat the netns mount"));
    let script = "import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDONLY)\nprint(fd, flush=True)\nwhile True: time.sleep(3600)\n";
    let (holder, fd) = spawn_ready(Command::new("python3").args(["-c", script, &path]));
    let fd: u64 = fd.parse().expect("the fd number");
    let has_fd =
        |row: &Value| holders_of(row, "fd").iter().any(|h| h["pid"] == holder.pid() && h["fd"].as_u64() == Some(fd));
    for source in ["kernel", "proc"] {
        if source == "kernel" && tests::kernel().mechanisms["snapshot"] != "tree-walk" {
            continue;
        }
        let rows = ls_json(&["--source", source]);
        let row = find_row(&rows, "net", inode).unwrap_or_else(|| panic!("{source}: no row for {inode}"));
        assert!(has_fd(row) && !holders_of(row, "mount").is_empty(), "{source}: mount and fd: {row}");
    }
    drop(netns.take()); // ip netns del: the mount goes, the fd stays
    for source in ["kernel", "proc"] {
        if source == "kernel" && tests::kernel().mechanisms["snapshot"] != "tree-walk" {
            continue;
        }
        let rows = ls_json(&["--source", source]);
        let row = find_row(&rows, "net", inode).unwrap_or_else(|| panic!("{source}: no row for {inode}"));
        assert_eq!(row["state"], "fd-only", "{source}: {row}");
        assert!(has_fd(row), "{source}: the fd {fd} of {} holds it: {row}", holder.pid());
    }
    let (code, out, err) = nstrace(&["leaks", "--no-service", "--json", "--type", "net"]);
    assert_eq!(code, 1, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let leak = report["leaks"].as_array().unwrap().iter().find(|l| l["inode"] == inode).expect("our netns leaks");
    assert_eq!(leak["reasons"][0]["kind"], "fd", "{leak}");
    assert_eq!(leak["reasons"][0]["pid"], holder.pid(), "{leak}");
}

/// Python that runs a non-leader thread which `setns`es into the net
/// namespace at argv[1] (Go's `netns.Do`), or (argv[1] == "pid") unshares a
/// pid namespace and forks a sleeping child there; prints
/// "TID [CHILD]" when done and keeps the thread alive.
const THREAD_PY: &str = r#"
import ctypes, os, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
out = []
def run():
    if sys.argv[1] == "pid":
        if libc.unshare(0x20000000) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        child = os.fork()
        if child == 0:
            libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: dies with the test's keeper
            while True: time.sleep(3600)
        out.append(f"{threading.get_native_id()} {child}")
    else:
        fd = os.open(sys.argv[1], os.O_RDONLY)
        if libc.setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        os.close(fd)
        out.append(str(threading.get_native_id()))
    while True: time.sleep(3600)
t = threading.Thread(target=run, daemon=True)
t.start()
while not out:
    time.sleep(0.01)
print(out[0], flush=True)
while True: time.sleep(3600)
"#;

/// The sources to compare: the kernel's lists where this kernel has them, and /proc.
fn sources() -> Vec<&'static str> {
    if tests::kernel().mechanisms["snapshot"] == "tree-walk" { vec!["kernel", "proc"] } else { vec!["proc"] }
}

/// A thread other than the leader that joined a net namespace whose mount
/// is gone holds it: active, with the process and thread named (kernel and
/// /proc sources agree), never "orphaned".
#[test]
fn a_thread_in_a_net_namespace_holds_it() {
    if !root_or_skip("a_thread_in_a_net_namespace_holds_it") {
        return;
    }
    let name = unique("nstrace-thread");
    let netns = tests::IpNetns::add(name.clone());
    let path = format!("/run/netns/{name}");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("stat the netns mount"));
    let (holder, tid) = spawn_ready(Command::new("python3").args(["-c", THREAD_PY, &path]));
    let tid: u32 = tid.parse().expect("the thread id");
    assert_ne!(tid, holder.pid());
    drop(netns); // the mount goes; only the thread is in it
    for source in sources() {
        let rows = ls_json(&["--source", source]);
        let row = find_row(&rows, "net", inode).unwrap_or_else(|| panic!("{source}: no row for {inode}"));
        assert_eq!(row["state"], "active", "{source}: {row}");
        let tasks = holders_of(row, "task");
        assert!(
            tasks.iter().any(|h| h["pid"] == holder.pid() && h["tid"] == tid && h["hold"] == "member"),
            "{source}: thread {tid} of {}: {row}",
            holder.pid()
        );
    }
    let (code, out, _) = nstrace(&["why", "--no-service", &inode.to_string()]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("thread {tid} of process {} (python3) is in it", holder.pid())), "{out}");
}

/// A thread that unshared a pid namespace and forked into it holds it as
/// pid_for_children, with its tid (kernel and /proc sources agree).
#[test]
fn a_thread_holds_a_pid_namespace_for_its_children() {
    if !root_or_skip("a_thread_holds_a_pid_namespace_for_its_children") {
        return;
    }
    let (holder, line) = spawn_ready(Command::new("python3").args(["-c", THREAD_PY, "pid"]));
    let mut parts = line.split_whitespace().map(|p| p.parse::<u32>().expect("tid and child pid"));
    let (tid, child) = (parts.next().unwrap(), parts.next().unwrap());
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill(2) on a pid this test made.
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
    let _child = Kill(child);
    let inode = ns_inode(child, "pid");
    assert_ne!(inode, ns_inode(holder.pid(), "pid"), "the child is in a new pid namespace");
    for source in sources() {
        let rows = ls_json(&["--source", source]);
        let row = find_row(&rows, "pid", inode).unwrap_or_else(|| panic!("{source}: no row for {inode}"));
        let tasks = holders_of(row, "task");
        assert!(
            tasks.iter().any(|h| h["pid"] == holder.pid() && h["tid"] == tid && h["hold"] == "pid-for-children"),
            "{source}: thread {tid} of {} as pid_for_children: {row}",
            holder.pid()
        );
        assert!(tasks.iter().any(|h| h["pid"] == child && h["hold"] == "member"), "{source}: the child: {row}");
    }
}

/// Python whose second thread unshares argv[1] (CLONE_NEW* as a number)
/// and stays: it prints that thread's id.
const THREAD_UNSHARE_PY: &str = r#"
import ctypes, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
out = []
def run():
    if libc.unshare(int(sys.argv[1])) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    out.append(str(threading.get_native_id()))
    while True: time.sleep(3600)
threading.Thread(target=run, daemon=True).start()
while not out:
    time.sleep(0.01)
print(out[0], flush=True)
while True: time.sleep(3600)
"#;

/// Every type a thread can hold alone (not user: unshare(CLONE_NEWUSER)
/// wants a single-threaded process; pid_for_children has its own test): the thread, not its process, is the
/// holder, with its tid and how it holds it, from both sources.
#[test]
fn a_thread_alone_holds_a_namespace_of_every_type_it_can_unshare() {
    let test = "a_thread_alone_holds_a_namespace_of_every_type_it_can_unshare";
    if !root_or_skip(test) {
        return;
    }
    for (ty, flag, link, hold) in [
        ("mnt", libc::CLONE_NEWNS, "mnt", "member"),
        ("uts", libc::CLONE_NEWUTS, "uts", "member"),
        ("ipc", libc::CLONE_NEWIPC, "ipc", "member"),
        ("net", libc::CLONE_NEWNET, "net", "member"),
        ("cgroup", libc::CLONE_NEWCGROUP, "cgroup", "member"),
        ("time", libc::CLONE_NEWTIME, "time_for_children", "time-for-children"),
        // pid_for_children: /proc names it only once the thread forked, as
        // a_thread_holds_a_pid_namespace_for_its_children does.
    ] {
        if ty == "time" && !std::path::Path::new("/proc/self/ns/time").exists() {
            tests::skip(test, "no time namespaces (before 5.6): time skipped");
            continue;
        }
        let (holder, tid) = spawn_ready(Command::new("python3").args(["-c", THREAD_UNSHARE_PY, &flag.to_string()]));
        let tid: u32 = tid.parse().expect("the thread id");
        let pid = holder.pid();
        let inode = std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(format!("/proc/{pid}/task/{tid}/ns/{link}"))
                .unwrap_or_else(|e| panic!("{ty}: the thread's {link} link: {e}")),
        );
        assert_ne!(inode, ns_inode(pid, link), "{ty}: the leader is not in the thread's namespace");
        for source in sources() {
            let rows = ls_json(&["--source", source, "--type", ty]);
            let row = find_row(&rows, ty, inode).unwrap_or_else(|| panic!("{source}: no {ty} row for {inode}"));
            let tasks = holders_of(row, "task");
            assert!(
                tasks.iter().any(|h| h["pid"] == pid && h["tid"] == tid && h["hold"] == hold),
                "{source}: {ty}: thread {tid} of {pid} holds it as {hold}: {row}"
            );
            assert!(
                !tasks.iter().any(|h| h["pid"] == pid && h["tid"] != tid),
                "{source}: {ty}: only the thread, not its process: {row}"
            );
            assert_ne!(row["state"], "orphaned", "{source}: {ty}: {row}");
        }
    }
}

/// Whether listmount(2) lists every mount of another mount namespace by
/// id. It takes ids from 6.11, but in the 6.12 VM it listed only that
/// namespace's first mount (the copy of the root file system), not the bind
/// mount under it: checked to work on 6.18.
fn listmount_by_ns_id() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 18)
}

/// How a test keeps a mount namespace with no task alive.
enum MntNsHold {
    /// A python process with an fd on it.
    Fd,
    /// A bind mount of it (nsfs) in our mount namespace.
    Mount,
}

/// A process unshares a mount namespace, bind-mounts a netns there and
/// exits; an fd (or a bind mount) keeps that mount namespace. The netns is
/// held by the mount in a mount namespace no task is in: `why` says so,
/// names what holds the mount namespace, and its release command works.
fn mount_in_a_taskless_mount_namespace(test: &str, how: MntNsHold) {
    if !root_or_skip(test) {
        return;
    }
    if !listmount_by_ns_id() {
        tests::skip(
            test,
            "listmount(2) of another mount namespace lists all its mounts from Linux 6.18 (6.12: the first only)",
        );
        return;
    }
    let name = unique("nstrace-mntns");
    let netns = tests::IpNetns::add(name.clone());
    let path = format!("/run/netns/{name}");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("stat the netns mount"));
    let dir = tempdir();
    let pin = format!("{dir}/pin");
    std::fs::write(&pin, b"").unwrap();
    let script = format!("mount --bind {path} {pin} && echo mounted && exec sleep infinity");
    let (mounter, _) =
        spawn_ready(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]));
    let mnt_ns = ns_inode(mounter.pid(), "mnt");
    let own_ns = format!("/proc/{}/ns/mnt", mounter.pid());
    let hold = "import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDONLY)\nprint(fd, flush=True)\nwhile True: time.sleep(3600)\n";
    let mnt_pin = format!("{dir}/mntpin");
    let (_holder, held_by, entry) = match how {
        MntNsHold::Fd => {
            let (holder, fd) = spawn_ready(Command::new("python3").args(["-c", hold, &own_ns]));
            let (pid, entry) = (holder.pid(), format!("/proc/{}/fd/{fd}", holder.pid()));
            (Some(holder), format!("fd {fd} of process {pid}"), entry)
        }
        MntNsHold::Mount => {
            std::fs::write(&mnt_pin, b"").unwrap();
            sh(&format!("mount --bind {own_ns} {mnt_pin}"));
            (None, format!("the bind mount at {mnt_pin}"), mnt_pin.clone())
        }
    };
    let _umount = matches!(how, MntNsHold::Mount).then(|| Umount(mnt_pin.clone()));
    drop(mounter); // no task is in that mount namespace any more
    drop(netns); // nor is the netns mounted where tasks are
    let held = if matches!(how, MntNsHold::Fd) { "fd-only" } else { "mounted" };
    for source in sources() {
        let rows = ls_json(&["--source", source]);
        let row = find_row(&rows, "net", inode).unwrap_or_else(|| {
            // What nstrace tried, for the failure message.
            let out = tests::nstrace_command()
                .args(["ls", "--json", "--no-service", "--source", source])
                .env("RUST_LOG", "nstrace=trace")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let tried: Vec<&str> =
                err.lines().filter(|l| l.contains("mount namespace") || l.contains("statmount")).collect();
            panic!("{source}: no row for {inode}; nstrace said: {tried:#?}")
        });
        assert_eq!(row["state"], "mounted", "{source}: {row}");
        let mounts = holders_of(row, "mount");
        assert!(mounts.iter().any(|m| m["path"] == pin.as_str() && m["mnt_ns"] == mnt_ns), "{source}: {row}");
        let mnt = find_row(&rows, "mnt", mnt_ns).unwrap_or_else(|| panic!("{source}: no mnt row {mnt_ns}"));
        assert_eq!(mnt["state"], held, "{source}: {mnt}");
    }
    let (code, why, err) = nstrace(&["why", "--no-service", &inode.to_string()]);
    assert_eq!(code, 0, "{err}");
    let chain = format!("bind mount at {pin} in mount namespace {mnt_ns} (which no task is in, held by {held_by})");
    assert!(why.contains(&chain), "{why}");
    let release = format!("nsenter '--mount={entry}' umount {pin}");
    assert!(why.contains(&format!("{release}   [safe]")), "{why}");
    // The release command works: the netns goes.
    sh(&release);
    eventually(Duration::from_secs(10), "the netns to go", || {
        find_row(&ls_json(&["--no-service"]), "net", inode).is_none().then_some(())
    });
}

#[test]
fn a_mount_in_a_mount_namespace_held_by_an_fd_holds_the_namespace() {
    mount_in_a_taskless_mount_namespace(
        "a_mount_in_a_mount_namespace_held_by_an_fd_holds_the_namespace",
        MntNsHold::Fd,
    );
}

#[test]
fn a_mount_in_a_mount_namespace_held_by_a_bind_mount_holds_the_namespace() {
    mount_in_a_taskless_mount_namespace(
        "a_mount_in_a_mount_namespace_held_by_a_bind_mount_holds_the_namespace",
        MntNsHold::Mount,
    );
}

/// More open nsfs files than one walk run visits (5 processes with 15,000
/// fds each of one new uts namespace: 75,000 fds, a run stops after 65,536
/// steps, in the middle of a process's file table): the fd walk resumes
/// where it stopped, so every fd is a holder exactly once, as /proc lists
/// them.
#[test]
fn every_fd_is_found_when_the_fd_walk_takes_several_runs() {
    let test = "every_fd_is_found_when_the_fd_walk_takes_several_runs";
    if !root_or_skip(test) {
        return;
    }
    if tests::kernel().mechanisms["snapshot"] != "tree-walk" {
        tests::skip(test, "the fd walk runs with the kernel's namespace lists (6.18+)");
        return;
    }
    let per_process = fds_per_process(15_000);
    let processes = 75_000usize.div_ceil(per_process);
    let script = format!(
        "import os, resource, sys, time\n\
         hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
         fds = [os.open(sys.argv[1], os.O_RDONLY) for _ in range({n})]\n\
         print(os.readlink('/proc/self/ns/uts'), flush=True)\nwhile True: time.sleep(3600)\n",
        n = per_process
    );
    // (The holders sleep until the test ends and kills them: under emulation
    // on a busy host, reading 75,000 fds through /proc takes longer than any
    // fixed sleep could be sure to cover.)
    // One namespace of our own, entered by every holder: `unshare` keeps it
    // alive while the holders start, then exits.
    let (keeper, _) =
        spawn_ready(Command::new("unshare").args(["--uts", "sh", "-c", "echo ready; exec sleep infinity"]));
    let path = format!("/proc/{}/ns/uts", keeper.pid());
    let inode = ns_inode(keeper.pid(), "uts");
    let holders: Vec<_> =
        (0..processes).map(|_| spawn_ready(Command::new("python3").args(["-c", &script, &path])).0).collect();
    drop(keeper);
    let count = |source: &str| -> Vec<(u64, u64)> {
        let rows = ls_json(&["--source", source, "--type", "uts"]);
        let row = find_row(&rows, "uts", inode).unwrap_or_else(|| panic!("{source}: no row for {inode}"));
        let mut fds: Vec<(u64, u64)> =
            holders_of(row, "fd").iter().map(|h| (h["pid"].as_u64().unwrap(), h["fd"].as_u64().unwrap())).collect();
        fds.sort_unstable();
        fds
    };
    let kernel = count("kernel");
    // The kernel listing's fds come from the fd walk (its phase is timed),
    // not from /proc as where the walk does not load.
    let (code, _, err) = tests::nstrace(&["ls", "--json", "--source", "kernel", "--type", "uts", "--timings"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("timing walk tasks and fds:"), "the fd walk did not run: {err}");
    assert_eq!(kernel.len(), processes * per_process, "every fd once");
    for h in &holders {
        assert_eq!(kernel.iter().filter(|(p, _)| *p == h.pid() as u64).count(), per_process, "pid {}", h.pid());
    }
    assert_eq!(kernel, count("proc"), "the kernel's fds are /proc's");
}

/// More namespaces of one type than the walk ring holds at once (45,000
/// uts namespaces, each held by an fd; the 1 MiB ring takes ~10,000 rows):
/// the namespace walk resumes after the ring was drained, so the kernel
/// listing has every one (a walk that stopped after one run would leave the
/// rest silently missing).
#[test]
fn a_type_with_more_namespaces_than_the_ring_holds_is_listed_whole() {
    let test = "a_type_with_more_namespaces_than_the_ring_holds_is_listed_whole";
    if !root_or_skip(test) {
        return;
    }
    if tests::kernel().mechanisms["snapshot"] != "tree-walk" {
        tests::skip(test, "the namespace walk needs the kernel's namespace lists (6.18+)");
        return;
    }
    const NAMESPACES: usize = 45_000;
    let _limit = tests::RaisedSysctl::at_least("/proc/sys/user/max_uts_namespaces", NAMESPACES as u64 + 1_000);
    let per_process = fds_per_process(15_000);
    let processes = NAMESPACES.div_ceil(per_process);
    let script = format!(
        "import ctypes, os, resource, time\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
         inodes = []\n\
         for _ in range({n}):\n\
         \x20   assert libc.unshare(0x04000000) == 0, ctypes.get_errno()\n\
         \x20   fd = os.open('/proc/self/ns/uts', os.O_RDONLY)\n\
         \x20   inodes.append(os.fstat(fd).st_ino)\n\
         print(min(inodes), max(inodes), len(set(inodes)), flush=True)\nwhile True: time.sleep(3600)\n",
        n = per_process
    );
    let holders: Vec<_> = (0..processes).map(|_| spawn_ready(Command::new("python3").args(["-c", &script]))).collect();
    let mut held = std::collections::HashSet::new();
    for (h, _) in &holders {
        for entry in std::fs::read_dir(format!("/proc/{}/fd", h.pid())).unwrap().flatten() {
            if let Ok(link) = std::fs::read_link(entry.path())
                && let Some(ino) = link.to_str().and_then(|l| l.strip_prefix("uts:[")).and_then(|l| l.strip_suffix(']'))
            {
                held.insert(ino.parse::<u64>().unwrap());
            }
        }
    }
    assert_eq!(held.len(), processes * per_process, "the workload's namespaces");
    let rows = ls_json(&["--source", "kernel", "--type", "uts"]);
    let listed: std::collections::HashSet<u64> = rows.iter().filter_map(|r| r["inode"].as_u64()).collect();
    let missing: Vec<_> = held.difference(&listed).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} held namespaces missing, e.g. {missing:?}",
        held.len() - held.intersection(&listed).count(),
        held.len()
    );
}

/// How many fds one process of these tests may open: `wanted`, or what the
/// fd limit allows (raised to `wanted` where root may, as in the VMs).
fn fds_per_process(wanted: u64) -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain getrlimit/setrlimit on our own limits (children inherit).
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_max < wanted + 100 {
            let raised = libc::rlimit { rlim_cur: wanted + 100, rlim_max: wanted + 100 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_max.saturating_sub(100).min(wanted) as usize
}

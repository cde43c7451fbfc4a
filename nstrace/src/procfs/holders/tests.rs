use super::parse::unescape;
use super::*;
use std::process::{Child, Command};

#[test]
fn ns_links() {
    assert_eq!(parse_ns_link(b"net:[4026531840]"), Some((NsType::Net, 4026531840)));
    assert_eq!(parse_ns_link(b"cgroup:[1]"), Some((NsType::Cgroup, 1)));
    assert_eq!(parse_ns_link(b"pid_for_children:[7]"), Some((NsType::Pid, 7)));
    for bad in [
        &b""[..],
        b"net:[]",
        b"net:[12",
        b"net:[12]x",
        b"net:[-1]",
        b"nett:[1]",
        b"/dev/null",
        b"socket:[123]",
        b"anon_inode:[eventfd]",
        b"net:[99999999999999999999999]",
    ] {
        assert_eq!(parse_ns_link(bad), None, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn mountinfo_lines() {
    let l = b"612 28 0:4 net:[4026532301] /run/netns/a\\040b rw shared:5 master:1 - nsfs nsfs rw";
    let m = parse_mountinfo_line(l).unwrap();
    assert_eq!(m.mount_id, 612);
    assert_eq!(m.root, "net:[4026532301]");
    assert_eq!(m.mount_point, "/run/netns/a b");
    assert_eq!((m.fs_type.as_str(), m.source.as_str()), ("nsfs", "nsfs"));
    assert_eq!(m.peer_group, Some(5), "shared:5 (master:1 is where it receives from)");
    let l = b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw";
    let m = parse_mountinfo_line(l).unwrap();
    assert_eq!((m.mount_point.as_str(), m.fs_type.as_str(), m.peer_group), ("/", "ext4", None));
    assert_eq!(unescape(b"a\\011b\\012c\\134d\\x"), "a\tb\nc\\d\\x");
    assert_eq!(parse_mountinfo_line(b"27 1 254:0 / / rw shared:1"), None);
    assert_eq!(parse_mountinfo_line(b"x 1 254:0 / / rw - ext4 a b"), None);
    assert_eq!(parse_mountinfo_line(b""), None);
}

#[test]
fn cgroup_lines() {
    assert_eq!(parse_cgroup(b"0::/system.slice/a.service\n").as_deref(), Some("/system.slice/a.service"));
    let hybrid = b"9:name=systemd:/\n4:memory:/x\n0::/user.slice\n";
    assert_eq!(parse_cgroup(hybrid).as_deref(), Some("/user.slice"));
    assert_eq!(parse_cgroup(b"4:memory:/x:y\n1:cpu:/\n").as_deref(), Some("/x:y"));
    assert_eq!(parse_cgroup(b"garbage\n"), None);
    assert_eq!(parse_cgroup(b""), None);
}

#[test]
fn stat_lines() {
    let s = b"42 (a) (b) c) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 3 0 9 1 1\n";
    let st = parse_stat(s).unwrap();
    assert_eq!(st, Stat { comm: "a) (b) c".into(), ppid: 7, flags: 4194560, threads: 3 });
    assert_eq!(parse_stat(b"42 (x) S 7"), None);
    assert_eq!(parse_stat(b")("), None);
    assert_eq!(CPath::new().num(0).push(b"/ns").as_cstr(), c"0/ns");
    assert_eq!(SLOT_LINKS.map(|l| l.to_str().unwrap())[..8], NsType::ALL.map(|t| t.name()));
    assert_eq!(CPath::new().num(4294967295).as_cstr(), c"4294967295");
}

fn ns_inode(path: &str) -> u64 {
    let l = std::fs::read_link(path).unwrap();
    parse_ns_link(l.as_os_str().as_encoded_bytes()).unwrap().1
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        crate::test_skip("holders tests", "needs root");
    }
    root
}

#[test]
fn finds_own_process_and_fd() {
    let f = std::fs::File::open("/proc/self/ns/uts").unwrap();
    let fd = f.as_raw_fd();
    let me = std::process::id();
    let scan = scan_excluding(&[]).unwrap();
    let key = NsKey::new(NsType::Uts, ns_inode("/proc/self/ns/uts"));
    let hs = &scan.holders[&key];
    assert!(hs.iter().any(|h| matches!(h, Holder::Fd { pid, fd: n, .. } if *pid == me && *n == fd)));
    assert!(hs.iter().any(|h| matches!(h, Holder::Task { pid, hold: TaskHold::Member, .. } if *pid == me)));
    let info = &scan.processes[&me];
    assert!(info.threads >= 1 && !info.kernel_thread && info.cgroup.starts_with('/'));
    assert!(scan.mount_ns_via.contains_key(&ns_inode("/proc/self/ns/mnt")));
    assert!(!scan_excluding(&[me]).unwrap().processes.contains_key(&me));
}

struct NetnsGuard(String);
impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn finds_ip_netns_bind_mount() {
    if !root() {
        return;
    }
    let name = format!("nstrace-test-{}", std::process::id());
    let ok = Command::new("ip").args(["netns", "add", &name]).status().map(|s| s.success());
    if ok.ok() != Some(true) {
        crate::test_skip("finds_ip_netns_bind_mount", "ip netns add failed");
        return;
    }
    let _guard = NetnsGuard(name.clone());
    let path = format!("/run/netns/{name}");
    let inode = crate::procfs::nsfs::inode(crate::procfs::nsfs::open(path.as_ref()).unwrap()).unwrap();
    let scan = scan_excluding(&[]).unwrap();
    let hs = &scan.holders[&NsKey::new(NsType::Net, inode)];
    let host_mnt = ns_inode("/proc/self/ns/mnt");
    assert!(
        hs.iter().any(|h| matches!(h, Holder::Mount { path: p, mnt_ns, .. } if *p == path && *mnt_ns == host_mnt)),
        "{hs:?}"
    );
    assert!(scan.netns_names[&inode].contains(&name));
}

/// A thread that unshares its uts namespace: lsns would miss it.
#[test]
fn finds_thread_only_namespace() {
    if !root() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        // SAFETY: affects only this thread's nsproxy.
        let r = unsafe { libc::unshare(libc::CLONE_NEWUTS) };
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let ino = (r == 0).then(|| ns_inode("/proc/thread-self/ns/uts"));
        tx.send((tid, ino)).unwrap();
        let _ = done_rx.recv();
    });
    let (tid, ino) = rx.recv().unwrap();
    let scan = scan_excluding(&[]).unwrap();
    done_tx.send(()).unwrap();
    t.join().unwrap();
    let ino = ino.expect("unshare(CLONE_NEWUTS) in a thread");
    let key = NsKey::new(NsType::Uts, ino);
    let me = std::process::id();
    assert!(scan.holders[&key].iter().any(|h| matches!(h, Holder::Task { pid, .. } if *pid == me)));
    assert_eq!(scan.thread_tids.get(&key), Some(&tid));
}

/// `cargo test --release -p nstrace --lib procfs::holders::tests::bench -- --ignored --nocapture`
#[test]
#[ignore = "timing, not a check"]
fn bench() {
    let mut times = Vec::new();
    let mut n = (0, 0, 0);
    for _ in 0..7 {
        let t = std::time::Instant::now();
        let s = scan_excluding(&[]).unwrap();
        times.push(t.elapsed());
        n = (s.processes.len(), s.holders.len(), s.holders.values().map(Vec::len).sum::<usize>());
    }
    times.sort();
    eprintln!("scan: {} processes, {} namespaces, {} holders: min {:?} median {:?}", n.0, n.1, n.2, times[0], times[3]);
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `unshare --pid` without --fork leaves an unborn pid_for_children;
/// with --fork the parent holds the new pid ns only as pid_for_children.
#[test]
fn pid_for_children() {
    if !root() {
        return;
    }
    let unborn = Kill(Command::new("unshare").args(["--pid", "sleep", "30"]).spawn().unwrap());
    let forked = Kill(Command::new("unshare").args(["--pid", "--fork", "sleep", "30"]).spawn().unwrap());
    let (a, b) = (unborn.0.id(), forked.0.id());
    // Wait until a has exec'd sleep and b has unshared and forked (its
    // pid_for_children becomes readable and differs from its own).
    let ready = || {
        let comm = |p: u32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        let link = |n: &str| std::fs::read_link(format!("/proc/{b}/ns/{n}")).ok();
        comm(a).trim() == "sleep" && link("pid_for_children").is_some_and(|l| Some(l) != link("pid"))
    };
    for _ in 0..200 {
        if ready() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let scan = scan_excluding(&[]).unwrap();
    assert!(scan.unborn_pid_ns.contains(&a), "{:?}", scan.unborn_pid_ns);
    let pfc = ns_inode(&format!("/proc/{b}/ns/pid_for_children"));
    let hs = &scan.holders[&NsKey::new(NsType::Pid, pfc)];
    assert!(hs.iter().any(|h| matches!(h, Holder::Task { pid, hold: TaskHold::PidForChildren, .. } if *pid == b)));
    assert!(hs.iter().any(|h| matches!(h, Holder::Task { hold: TaskHold::Member, .. })), "{hs:?}");
}

#[test]
fn the_innermost_nspid_is_the_pid_a_process_sees_for_itself() {
    assert_eq!(nspid_innermost("Name:\tsh\nNSpid:\t30445\t1\n"), Some(1));
    assert_eq!(nspid_innermost("NSpid:\t812\n"), Some(812));
    assert_eq!(nspid_innermost("Name:\tsh\n"), None);
    // Our own process is in our pid namespace: nothing to translate.
    assert_eq!(pid_in_own_ns(std::process::id()), None);
}

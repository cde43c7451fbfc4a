//! Never hang: walks that always end beside other walkers,
//! waits for the walk lock that are bounded and name their holder, a
//! service that keeps answering scrapes and stops on SIGTERM whatever it
//! is doing.

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::TcpStream,
    os::fd::{FromRawFd, OwnedFd},
    process::{Child, Command, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{
    ChildGuard, RmDir, Trace, nstrace_bin, root_or_skip, scaled, service::Service, skip, spawn_ready, tempdir,
};

/// These tests share the host's walk pins and lock: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const PIN_ROOT: &str = tests::TEST_PIN_ROOT;
/// Every command here waits this long for the walk lock (the VMs' default is longer).
const LOCK_WAIT: (&str, &str) = ("NSTRACE_LOCK_WAIT", "3");

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pins (and so the lock and the ring) exist only where the tree walk runs.
fn tree_walk_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    if tests::kernel().mechanisms["snapshot"] != "tree-walk" {
        skip(test, "no kernel namespace lists to walk here (6.18+): nothing is pinned or locked");
        return false;
    }
    true
}

/// How a bounded run of nstrace ended.
struct Outcome {
    /// None: still running at the limit (killed).
    code: Option<i32>,
    out: String,
    err: String,
    took: Duration,
}

/// Runs `nstrace ARGS` and kills it if it has not ended within `limit`.
fn bounded(args: &[&str], limit: Duration) -> Outcome {
    let started = Instant::now();
    let mut child = tests::nstrace_command()
        .args(args)
        .env(LOCK_WAIT.0, LOCK_WAIT.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nstrace");
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status.code().unwrap_or(-1));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    Outcome { code, out: out.join().unwrap(), err: err.join().unwrap(), took }
}

/// (type, inode) of every row of `ls --json`.
fn keys(out: &str) -> HashSet<(String, u64)> {
    let rows: Vec<Value> = serde_json::from_str(out).unwrap_or_else(|e| panic!("ls --json ({e}): {out}"));
    rows.iter().map(|r| (r["type"].as_str().unwrap().to_string(), r["inode"].as_u64().unwrap())).collect()
}

fn in_vm() -> bool {
    scaled(Duration::from_secs(1)) > Duration::from_secs(1)
}

/// A uts namespace of the test's own, kept until the guard drops.
fn own_uts() -> (ChildGuard, u64) {
    let (keeper, inode) = spawn_ready(Command::new("unshare").args([
        "--uts",
        "sh",
        "-c",
        "stat -L -c %i /proc/self/ns/uts; exec sleep infinity",
    ]));
    (keeper, inode.parse().unwrap())
}

/// A long-running `nstrace live --plain`, its tables drained.
fn live_plain() -> ChildGuard {
    let mut child = tests::nstrace_command()
        .args(["live", "--plain", "--interval", "1"])
        .env(LOCK_WAIT.0, LOCK_WAIT.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn live --plain");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut stdout = child.stdout.take().unwrap();
    thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    tests::wait_for_line(&mut stderr, "live table", "nstrace live");
    thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    ChildGuard::new(child)
}

/// GET `path` from `addr`, answered whole within `limit`.
fn get_within(addr: &str, path: &str, limit: Duration) -> Result<(u16, String), String> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(limit)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("no whole answer within {limit:?}: {e}"))?;
    if started.elapsed() > limit {
        return Err(format!("answered after {:?}", started.elapsed()));
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

/// Sends SIGTERM and returns how long `child` took to exit (None: still
/// running after `limit`, then killed).
fn stop_within(child: &mut Child, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    // SAFETY: kill(2) takes no pointers; the pid is our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// One-shot runs beside long-running walkers (`trace`, `serve`, `live
/// --plain`), all sharing the pinned walk programs and rings: every run
/// ends with the test's namespace listed, the kernel listing misses
/// nothing /proc shows, and `trace --duration` still ends (a long-running
/// reader's stale ring position would wedge the one-shot runs after it,
/// spinning at 100% of a CPU: see nstrace/src/kernel/ring_pos.rs).
#[test]
fn one_shot_runs_beside_long_running_walkers_all_end() {
    let test = "one_shot_runs_beside_long_running_walkers_all_end";
    if !tree_walk_or_skip(test) {
        return;
    }
    let _serial = serial();
    let (_keeper, inode) = own_uts();
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let trace = Trace::start(&[]);
    let service = Service::start_env(&dir, &format!("{dir}/nstrace.db"), &[LOCK_WAIT]);
    let _live = live_plain();
    let runs = if in_vm() { 30 } else { 200 };
    for i in 1..=runs {
        let o = bounded(&["ls", "--no-service", "--json", "--type", "uts"], scaled(Duration::from_secs(10)));
        assert_eq!(o.code, Some(0), "{test}: run {i} of {runs} did not end well after {:?}: {}", o.took, o.err);
        assert!(keys(&o.out).contains(&("uts".into(), inode)), "{test}: run {i} lacks our uts {inode}");
        assert!(!o.err.contains("listing from /proc"), "{test}: run {i} could not walk: {}", o.err);
    }
    // Nothing /proc shows (before and after) is missing from the kernel's lists.
    let listing = |source: &str| {
        let o = bounded(&["ls", "--no-service", "--json", "--source", source], scaled(Duration::from_secs(20)));
        assert_eq!(o.code, Some(0), "ls --source {source}: {}", o.err);
        keys(&o.out)
    };
    let before = listing("proc");
    let kernel = listing("kernel");
    let after = listing("proc");
    let missing: Vec<_> = before.intersection(&after).filter(|k| !kernel.contains(k)).collect();
    assert!(missing.is_empty(), "{test}: in /proc but not in the kernel listing: {missing:?}");
    let o = bounded(&["trace", "--duration", "2"], scaled(Duration::from_secs(30)));
    assert_eq!(o.code, Some(0), "{test}: trace --duration 2 did not end within {:?}: {}", o.took, o.err);
    // The long-running ones are still well.
    assert!(trace.events().iter().all(|e| e["event"] != "lost"), "the tracer lost records");
    let (status, _) = get_within(&service.addr, "/healthz", scaled(Duration::from_secs(1))).unwrap();
    assert_eq!(status, 200, "{test}: serve is not healthy after the runs");
}

/// Two loops of one-shot runs, one in a mount namespace with its own
/// /run/nstrace (a container that mounts the host's bpffs but not its
/// /run, a chroot): they take turns all the same, because the lock is on
/// the pins in bpffs.
#[test]
fn runs_that_see_different_run_directories_still_take_turns() {
    let test = "runs_that_see_different_run_directories_still_take_turns";
    if !tree_walk_or_skip(test) {
        return;
    }
    let _serial = serial();
    let _trace = Trace::start(&[]);
    let limit = scaled(Duration::from_secs(10)).as_secs().to_string();
    let bin = nstrace_bin().display().to_string();
    let runs = if in_vm() { 8 } else { 25 };
    let script = format!(
        "for i in $(seq {runs}); do NSTRACE_LOCK_WAIT=3 timeout -k 1 {limit} {bin} ls --no-service >/dev/null \
         || echo \"run $i failed: $?\"; done; echo done"
    );
    let private = format!("mkdir -p /run/nstrace && mount -t tmpfs tmpfs /run/nstrace && {script}");
    let spawn = |cmd: &mut Command| cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let plain = spawn(Command::new("sh").envs(tests::private_env()).args(["-c", &script]));
    let own_run = spawn(Command::new("unshare").envs(tests::private_env()).args(["-m", "sh", "-c", &private]));
    for (who, child) in [("the host's loop", plain), ("the loop with its own /run/nstrace", own_run)] {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.trim_end().ends_with("done"), "{test}: {who}: {text}");
        assert!(!text.contains("failed"), "{test}: {who}: {text}");
    }
}

/// A walk ring a stale reader left behind (its consumer position moved
/// back by more than the ring holds, as a long-running reader of the old
/// design did): the next run settles it, says so, and lists everything;
/// the run after finds it clean.
#[test]
fn a_walk_ring_left_inconsistent_is_settled_by_the_next_run() {
    let test = "a_walk_ring_left_inconsistent_is_settled_by_the_next_run";
    if !tree_walk_or_skip(test) {
        return;
    }
    let _serial = serial();
    let (_keeper, inode) = own_uts();
    let debug = |_: ()| {
        let out = tests::nstrace_command()
            .args(["ls", "--no-service", "--json", "--type", "uts"])
            .env("RUST_LOG", "nstrace::kernel::pinned=debug")
            .env(LOCK_WAIT.0, LOCK_WAIT.1)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // The second run opens the pins the first made, and says where they are.
    debug(());
    let err = debug(());
    let dir = err
        .lines()
        .find_map(|l| l.split_once("walk pins in ").map(|(_, d)| d.trim().to_string()))
        .unwrap_or_else(|| panic!("{test}: no pin directory in {err}"));
    let ring = obj_get(&format!("{dir}/WALK"));
    let size = map_max_entries(&ring) as u64;
    let producer = position(&ring, 1, None);
    let stale = producer.wrapping_sub(size + 8);
    position(&ring, 0, Some(stale));

    let o = bounded(&["ls", "--no-service", "--json", "--type", "uts"], scaled(Duration::from_secs(10)));
    assert_eq!(o.code, Some(0), "{test}: the run after the damage did not end well after {:?}: {}", o.took, o.err);
    assert!(keys(&o.out).contains(&("uts".into(), inode)), "{test}: our uts {inode} is missing");
    assert!(o.err.contains("walk ring settled") && o.err.contains("Inconsistent"), "{test}: not said: {}", o.err);
    let o = bounded(&["ls", "--no-service", "--json", "--type", "uts"], scaled(Duration::from_secs(10)));
    assert_eq!(o.code, Some(0), "{}", o.err);
    assert!(!o.err.contains("settled"), "{test}: the ring was not left clean: {}", o.err);
}

/// BPF_OBJ_GET of a pinned map.
fn obj_get(path: &str) -> OwnedFd {
    let c = std::ffi::CString::new(path).unwrap();
    let mut attr = [0u64; 16];
    attr[0] = c.as_ptr() as u64;
    // SAFETY: `attr` is a zeroed bpf_attr, large enough for this command, alive for the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 7, attr.as_mut_ptr(), 128u32) };
    assert!(fd >= 0, "BPF_OBJ_GET {path}: {}", std::io::Error::last_os_error());
    // SAFETY: the kernel just gave us this fd, and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// `max_entries` of a map (BPF_OBJ_GET_INFO_BY_FD): a ring's data size.
fn map_max_entries(fd: &OwnedFd) -> u32 {
    use std::os::fd::AsRawFd;
    let mut info = [0u32; 32];
    let mut attr = [0u64; 16];
    attr[0] = fd.as_raw_fd() as u64 | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    // SAFETY: `attr` is a zeroed bpf_attr, large enough for this command, alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, 15, attr.as_mut_ptr(), 128u32) };
    assert_eq!(r, 0, "BPF_OBJ_GET_INFO_BY_FD: {}", std::io::Error::last_os_error());
    info[4]
}

/// Reads (and with `set`, writes) the position at the start of page
/// `page` of a ring map: 0 the consumer's, 1 the producer's.
fn position(fd: &OwnedFd, page: usize, set: Option<u64>) -> u64 {
    use std::os::fd::AsRawFd;
    let len = 4096;
    let prot = if set.is_some() { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
    let p =
        // SAFETY: maps one page of a map fd we own; MAP_FAILED is checked below.
        unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), (page * len) as i64) };
    assert_ne!(p, libc::MAP_FAILED, "mmap ring page {page}: {}", std::io::Error::last_os_error());
    // SAFETY: `p` is a mapped, page-aligned page that outlives this reference.
    let pos = unsafe { &*(p as *const std::sync::atomic::AtomicU64) };
    let value = pos.load(std::sync::atomic::Ordering::SeqCst);
    if let Some(v) = set {
        pos.store(v, std::sync::atomic::Ordering::SeqCst);
    }
    // SAFETY: unmaps exactly what mmap mapped above, no reference to it left.
    unsafe { libc::munmap(p, len) };
    value
}

/// A process holding the walk lock forever (and the lock file of older
/// builds): a one-shot `ls` answers from /proc within seconds and names
/// that process; `serve`, `trace` and `live --plain`, already running,
/// keep answering (scrapes within a second), report the trouble, and stop
/// on SIGTERM within 2 s.
#[test]
fn a_walk_lock_held_forever_is_named_and_hangs_nothing() {
    let test = "a_walk_lock_held_forever_is_named_and_hangs_nothing";
    if !tree_walk_or_skip(test) {
        return;
    }
    let _serial = serial();
    let (_keeper, inode) = own_uts();
    // The pins (and their root) exist; the long-running ones hold walkers over them.
    assert_eq!(bounded(&["ls", "--no-service"], scaled(Duration::from_secs(30))).code, Some(0));
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let mut service = Service::start_env(&dir, &format!("{dir}/nstrace.db"), &[LOCK_WAIT]);
    let mut trace = tests::nstrace_command()
        .args(["trace", "--format", "json"])
        .env(LOCK_WAIT.0, LOCK_WAIT.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut trace_err = std::io::BufReader::new(trace.stderr.take().unwrap());
    tests::wait_for_line(&mut trace_err, "tracing", "nstrace trace");
    thread::spawn(move || std::io::copy(&mut trace_err, &mut std::io::sink()));
    let mut live = live_plain();

    std::fs::create_dir_all("/run/nstrace").unwrap();
    // One process holds both: it dies with its guard, and so do its locks.
    let (holder, _) = spawn_ready(Command::new("python3").args([
        "-c",
        "import fcntl, os, sys, time\n\
         for path in sys.argv[1:]:\n\
         \x20   fd = os.open(path, os.O_RDONLY | (0 if os.path.isdir(path) else os.O_CREAT))\n\
         \x20   fcntl.flock(fd, fcntl.LOCK_EX)\n\
         print('locked', flush=True)\n\
         while True: time.sleep(3600)\n",
        PIN_ROOT,
        "/run/nstrace/walk.lock",
    ]));
    let pid = holder.pid();

    let o = bounded(&["ls", "--no-service", "--json", "--type", "uts"], scaled(Duration::from_secs(5)));
    assert_eq!(o.code, Some(0), "{test}: ls beside a held lock, after {:?}: {}", o.took, o.err);
    assert!(keys(&o.out).contains(&("uts".into(), inode)), "{test}: our uts {inode} is missing");
    assert!(o.err.contains(&format!("held by pid {pid} (python3)")), "{test}: the holder is not named: {}", o.err);
    assert!(o.err.contains("listing from /proc"), "{test}: where the answer came from is not said: {}", o.err);

    // The service keeps answering while its walks wait and fail. A quiet
    // host needs no walk (the lists' change counts say nothing changed):
    // a namespace made and ended each round makes one due.
    let second = scaled(Duration::from_secs(1));
    let mut said_degraded = false;
    for _ in 0..12 {
        let churn = Command::new("unshare").args(["--uts", "true"]).status().unwrap();
        assert!(churn.success(), "{test}: unshare --uts true failed");
        let (status, body) = get_within(&service.addr, "/metrics", second).unwrap_or_else(|e| panic!("{test}: {e}"));
        assert_eq!(status, 200);
        let (status, health) = get_within(&service.addr, "/healthz", second).unwrap_or_else(|e| panic!("{test}: {e}"));
        if status == 503 && health.contains("walk lock-busy") && failures(&body, "lock-busy") > 0.0 {
            said_degraded = true;
        }
        thread::sleep(Duration::from_millis(500));
    }
    assert!(said_degraded, "{test}: serve never reported the busy lock in /healthz and its metrics");
    let limit = scaled(Duration::from_secs(2));
    for (who, child) in [("serve", &mut service.child), ("trace", &mut trace), ("live --plain", live.child_mut())] {
        let took = stop_within(child, limit);
        assert!(took.is_some(), "{test}: {who} did not stop within {limit:?} of SIGTERM");
    }
    assert!(!std::path::Path::new(&service.socket()).exists(), "{test}: serve left its socket behind");
    drop(holder);
}

/// `nstrace_walk_failures_total{reason}` in a /metrics answer.
fn failures(metrics: &str, reason: &str) -> f64 {
    let series = format!("nstrace_walk_failures_total{{reason=\"{reason}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// `serve` with slow requests in flight (`leaks`, `why` and `ls` over
/// 2,000 namespaces (fewer where the fd limit is low), from four clients at once), one-shot walks racing its
/// own and namespaces being made: scrapes answered within a second, no
/// record lost, and SIGTERM ends it within 2 s.
#[test]
fn serve_answers_scrapes_and_stops_while_it_answers_requests() {
    let test = "serve_answers_scrapes_and_stops_while_it_answers_requests";
    // How serve's loop is built, not what a kernel does; under emulation
    // this load (clients, racing snapshots, churn) starves every thread of
    // the guest's two CPUs for seconds, so a one-second bound means nothing there.
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let _serial = serial();
    let dir = tempdir();
    let _rm = RmDir(dir.clone());
    let mut service = Service::start_env(&dir, &format!("{dir}/nstrace.db"), &[LOCK_WAIT]);
    // 2,000 uts namespaces held by fds of one process (fewer where the fd
    // limit is lower: 1,024 in the VMs).
    let (_many, _) = spawn_ready(Command::new("python3").args([
        "-c",
        "import ctypes, os, resource, time\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
         fds = []\n\
         for _ in range(min(2000, hard - 64)):\n\
         \x20   assert libc.unshare(0x04000000) == 0, ctypes.get_errno()\n\
         \x20   fds.append(os.open('/proc/self/ns/uts', os.O_RDONLY))\n\
         print(len(fds), flush=True)\n\
         while True: time.sleep(3600)\n",
    ]));
    let (_keeper, inode) = own_uts();
    // Its records reach serve a few ms after the kernel made it.
    tests::eventually(Duration::from_secs(10), "serve to see our uts namespace", || {
        (!service.why_json(&inode.to_string()).is_null()).then_some(())
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let socket = service.socket();
    let clients: Vec<_> = [&["leaks", "--json"][..], &["why", &inode.to_string()], &["ls", "--json"], &["leaks"]]
        .into_iter()
        .map(|args| {
            let (stop, socket) = (stop.clone(), socket.clone());
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            thread::spawn(move || {
                let mut asked = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let out = tests::nstrace_command().args(&args).env("NSTRACE_SOCKET", &socket).output().unwrap();
                    assert!(
                        out.status.code().is_some_and(|c| c <= 1),
                        "{args:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    asked += 1;
                }
                asked
            })
        })
        .collect();
    let racer = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let o = bounded(&["ls", "--no-service", "--type", "net"], scaled(Duration::from_secs(10)));
                assert!(o.code.is_some(), "a one-shot run beside serve did not end: {}", o.err);
            }
        })
    };
    let second = scaled(Duration::from_secs(1));
    for i in 0..10 {
        for _ in 0..20 {
            assert!(Command::new("unshare").args(["-u", "true"]).status().unwrap().success());
        }
        let (status, body) =
            get_within(&service.addr, "/metrics", second).unwrap_or_else(|e| panic!("{test}: scrape {i}: {e}"));
        assert_eq!(status, 200);
        assert!(body.contains("nstrace_events_lost_total 0"), "{test}: records were lost");
        thread::sleep(Duration::from_millis(200));
    }
    // Stop it while requests are in flight.
    let took = stop_within(&mut service.child, scaled(Duration::from_secs(2)));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let asked: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    racer.join().unwrap();
    assert!(took.is_some(), "{test}: serve did not stop within 2 s of SIGTERM with requests in flight");
    assert!(asked >= 4, "{test}: the clients were answered {asked} times");
}

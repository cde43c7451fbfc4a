//! Helpers for the root integration tests: find the binary, skip loudly
//! when not root, run `nstrace trace` in the background and wait for events.

pub mod cri;
pub mod exporter;
pub mod netns;
pub mod perf;
pub mod podman;
pub mod service;
mod trace;
pub mod userns;

pub use netns::{IpNetns, SocketHeldNetns};

pub use trace::Trace;

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::MetadataExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// True when running as root; otherwise prints why `test` is skipped.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(test, "needs root (eBPF programs and namespace creation)");
    false
}

/// Prints why a test skips, past the test harness's output capture (which
/// hides `println!` of passing tests), so a skip is never silent.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The nstrace binary under test (`NSTRACE_BIN`, else target/debug/nstrace).
pub fn nstrace_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NSTRACE_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/nstrace");
    assert!(p.is_file(), "{} missing: build it first (cargo xtask test does)", p.display());
    p
}

/// The bpffs directory where test runs keep the walk pins and their lock:
/// never the host's (`/sys/fs/bpf/nstrace`), so an nstrace the host runs
/// neither shares a walk with a test nor waits on one.
pub const TEST_PIN_ROOT: &str = "/sys/fs/bpf/nstrace-tests";

/// The environment every nstrace a test starts gets, so it is answered by
/// this build only: a socket path no service listens on (a test that wants
/// a service sets its own `NSTRACE_SOCKET` after this), a database path of
/// its own, and the test runs' pin root. Shell scripts that run nstrace get
/// it through `Command::envs`; tmux sessions through `-e`.
pub fn private_env() -> [(&'static str, String); 3] {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| format!("/tmp/nstrace-test-run-{}", std::process::id()));
    [
        ("NSTRACE_SOCKET", format!("{dir}/no-service.sock")),
        ("NSTRACE_DB", format!("{dir}/no-service.db")),
        ("NSTRACE_PIN_ROOT", TEST_PIN_ROOT.to_string()),
    ]
}

/// `nstrace` (this build) with [`private_env`].
pub fn nstrace_command() -> Command {
    let mut cmd = Command::new(nstrace_bin());
    cmd.envs(private_env());
    cmd
}

/// How long a one-shot nstrace run may take before the test calls it hung.
fn one_shot_deadline() -> Duration {
    scaled(Duration::from_secs(120))
}

/// Runs `cmd` to completion, or kills it and panics with what it printed
/// once it has run past a generous deadline: a run that hangs (a walk that
/// never ends, a lock never released) fails the test with a reason instead
/// of hanging the suite.
pub fn output_bounded(cmd: &mut Command) -> std::process::Output {
    use std::io::Read;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let pipe = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let (out, err) = (pipe(Box::new(child.stdout.take().unwrap())), pipe(Box::new(child.stderr.take().unwrap())));
    let deadline = Instant::now() + one_shot_deadline();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not end within {:?}; it printed: {}",
                one_shot_deadline(),
                String::from_utf8_lossy(&err)
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    std::process::Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

/// Runs nstrace to completion and returns (exit code, stdout, stderr).
pub fn nstrace(args: &[&str]) -> (i32, String, String) {
    let out = output_bounded(nstrace_command().args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Inode of `/proc/<pid>/ns/<ty>`.
pub fn ns_inode(pid: u32, ty: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{ty}")).expect("stat ns link").ino()
}

/// `nstrace ls --json [extra]` parsed; panics with stderr on failure.
pub fn ls_json(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["ls", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = nstrace(&args);
    assert_eq!(code, 0, "nstrace ls failed: {err}");
    serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|e| panic!("ls --json is not a JSON array ({e}): {out}"))
}

/// The row of type `ty` with nsfs inode `inode`, if listed.
pub fn find_row<'a>(rows: &'a [Value], ty: &str, inode: u64) -> Option<&'a Value> {
    rows.iter().find(|r| r["type"] == ty && r["inode"] == inode)
}

/// Kills and reaps a child when dropped, so a failed assertion leaves no
/// process (and so no namespace) behind.
pub struct ChildGuard {
    child: Child,
    /// Kept open so the child never writes to a closed pipe.
    _stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl ChildGuard {
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child, _stdout: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Writes a line to the child's stdin (spawned with a piped stdin).
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("child spawned without piped stdin");
        writeln!(stdin, "{line}").and_then(|_| stdin.flush()).expect("write to child");
    }

    /// The next line the child prints (spawned through [`spawn_ready`]).
    pub fn next_line(&mut self) -> String {
        let mut line = String::new();
        self._stdout.as_mut().expect("no stdout").read_line(&mut line).expect("read child line");
        line.trim().to_string()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` with piped stdout and waits for its first line (a readiness
/// signal from the child), up to a minute ([`scaled`]). The child is a
/// keeper: it lives until the returned guard is dropped (or the test
/// process dies: it gets SIGKILL then), so scripts end in `sleep infinity`,
/// never in a sleep that must outlast other work. Its stderr is echoed and,
/// when it dies or hangs before its first line, quoted in the panic.
pub fn spawn_ready(cmd: &mut Command) -> (ChildGuard, String) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn child");
    let who = format!("child {}", child.id());
    let said = echo_stderr(&mut child, who);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut stdout = stdout;
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let _ = tx.send((read.map(|n| n > 0 && line.ends_with('\n')), line, stdout));
    });
    let timeout = scaled(Duration::from_secs(60));
    let (ok, line, stdout) = match rx.recv_timeout(timeout) {
        Ok((Ok(true), line, stdout)) => (true, line, Some(stdout)),
        Ok((_, line, _)) => (false, line, None),
        Err(_) => (false, String::new(), None),
    };
    if !ok {
        let _ = child.kill();
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        // Let the echo thread take the last of stderr.
        thread::sleep(Duration::from_millis(100));
        let said = said.lock().unwrap().clone();
        panic!(
            "child {cmd:?} did not say it was ready within {timeout:?} (it printed {line:?}; {status}); its stderr: {said}"
        );
    }
    (ChildGuard { child, _stdout: stdout }, line.trim().to_string())
}

/// Echoes a child's stderr (prefixed by `who`, for the test's captured
/// output) and keeps its last 4 KiB for failure messages.
fn echo_stderr(child: &mut Child, who: String) -> Arc<Mutex<String>> {
    let kept = Arc::new(Mutex::new(String::new()));
    if let Some(stderr) = child.stderr.take() {
        let sink = kept.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{who}] {line}");
                let mut kept = sink.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
                if kept.len() > 4096 {
                    let cut = kept.len() - 4096;
                    let cut = (cut..kept.len()).find(|&i| kept.is_char_boundary(i)).unwrap_or(0);
                    kept.drain(..cut);
                }
            }
        });
    }
    kept
}

/// Children of `pid` (from /proc/PID/task/*/children).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Waits until `f` returns Some, or panics after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + scaled(timeout);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A unique name for test artefacts (netns names, temp dirs).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Runs a command and panics with its output when it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("spawn sh");
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Python that receives one fd over a unix socket (SCM_RIGHTS) at argv[1],
/// prints "listening", then the fd number, and keeps it open.
pub const FD_RECEIVER_PY: &str = r#"
import socket, sys, time, os
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1]); srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept()
msg, fds, flags, addr = socket.recv_fds(conn, 16, 1)
print(fds[0], flush=True)
while True: time.sleep(3600)
"#;

/// Python that prints the inode of its net namespace, sends an fd on it to
/// the socket at argv[1], then exits (closing its own copy).
pub const FD_SENDER_PY: &str = r#"
import socket, sys, os
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
print(os.fstat(fd).st_ino, flush=True)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
socket.send_fds(s, [b"x"], [fd])
os.close(fd)
s.close()
"#;

/// The workspace's root (deploy/, docs/ are read from there).
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Whether `cmd` is an executable file in a PATH directory.
pub fn have(cmd: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// A fresh directory under /tmp (removed by [`Umount`] or by the test).
pub fn tempdir() -> String {
    let dir = format!("/tmp/{}", unique("nstrace-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Unmounts a bind mount and removes its directory when dropped.
pub struct Umount(pub String);

impl Drop for Umount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(std::path::Path::new(&self.0).parent().unwrap());
    }
}

/// `d` stretched by `NSTRACE_TEST_TIME_SCALE` (set by `cargo xtask
/// vm-test`: under software emulation the kernel's own deferred work, such
/// as RCU grace periods before a namespace is freed, runs many times
/// slower). Timeouts only: nothing is asserted about speed.
pub fn scaled(d: Duration) -> Duration {
    let scale = std::env::var("NSTRACE_TEST_TIME_SCALE").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0);
    d.mul_f64(scale.max(1.0))
}

/// What `nstrace doctor --json` says about this kernel (run once per test binary).
pub struct Kernel {
    /// The default mechanism per job: "create", "destroy", "snapshot".
    pub mechanisms: Value,
    /// Namespaces have never-reused ids (6.18+: NS_GET_ID answers); before,
    /// they are known by type and inode only and every `id` is 0.
    pub has_ns_ids: bool,
    pub doctor: Value,
}

pub fn kernel() -> &'static Kernel {
    static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    KERNEL.get_or_init(|| {
        let (_, out, err) = nstrace(&["doctor", "--json"]);
        let doctor: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("doctor --json: {e}: {out}{err}"));
        let has_ns_ids = doctor["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["checks"].as_array().cloned().unwrap_or_default())
            .any(|c| c["name"] == "NS_GET_ID ioctl" && c["status"] == "ok");
        let mechanisms = doctor["mechanisms"].clone();
        eprintln!("kernel mechanisms: {mechanisms}");
        Kernel { mechanisms, has_ns_ids, doctor }
    })
}

/// Whether a create event has the cause the create mechanism `create`
/// gives when a task's `what` (fork, unshare) made the namespace: exact
/// creation hooks report it first, from the kernel function (kretprobes
/// cannot name user namespaces: those come from the task).
pub fn cause_matches(create: &str, event: &Value, what: &str) -> bool {
    match create {
        "fexit-ns-tree" => event["cause"] == "ns-tree-add",
        "fexit-constructors" => event["cause"] == "constructor",
        "kprobe-constructors" => event["cause"] == "constructor" || (event["type"] == "user" && event["cause"] == what),
        _ => event["cause"] == what,
    }
}

impl Kernel {
    /// Whether a create event has the cause the default create mechanism gives.
    pub fn cause_matches(&self, event: &Value, what: &'static str) -> bool {
        cause_matches(self.mechanisms["create"].as_str().unwrap_or_default(), event, what)
    }

    /// Whether `event` is about the namespace `reference` (a create event,
    /// an `ls --json` row or a {id, inode} pair): by id where the kernel
    /// has them, else by inode (inodes are reused at once, ids never).
    pub fn same_ns(&self, event: &Value, reference: &Value) -> bool {
        if self.has_ns_ids { event["id"] == reference["id"] } else { event["inode"] == reference["inode"] }
    }

    /// Whether `event` reports the death of the namespace `create` reported.
    /// Without ids an inode may name an earlier namespace: only a death
    /// after the creation counts.
    pub fn is_destroy_of(&self, event: &Value, create: &Value) -> bool {
        event["event"] == "destroy"
            && event["type"] == create["type"]
            && self.same_ns(event, create)
            && (self.has_ns_ids || event["time"].as_f64() >= create["time"].as_f64())
    }

    /// Whether creations are reported by a kernel function (then the
    /// creator is the task that called clone/unshare, not the new child).
    pub fn exact_create(&self) -> bool {
        matches!(
            self.mechanisms["create"].as_str(),
            Some("fexit-ns-tree" | "fexit-constructors" | "kprobe-constructors")
        )
    }
}

/// Removes a directory tree when dropped, so a failed test leaves no
/// `/tmp/nstrace-test-*` folder behind.
pub struct RmDir(pub String);

impl Drop for RmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether this runs inside `cargo xtask vm-test`'s guests (which set
/// `NSTRACE_TEST_TIME_SCALE` above 1).
pub fn in_vm() -> bool {
    std::env::var("NSTRACE_TEST_TIME_SCALE").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0) > 1.0
}

/// Whether this test should run here: false (with the reason printed) inside
/// `cargo xtask vm-test`'s guests for tests of behaviour that does not
/// depend on the kernel (command-line handling, output, exit status). The
/// host run covers those; under software emulation each costs a tracer
/// start-up of 10 s or more, and the VM budget goes to what kernels change.
pub fn kernel_independent(test: &str) -> bool {
    let in_vm = in_vm();
    if in_vm {
        skip(test, "kernel-independent behaviour, covered by the host run");
    }
    !in_vm
}

/// A storm of 5,000 namespaces: 2,500 children, each unsharing a uts and
/// an ipc namespace, then exiting. Returns the children's pids.
pub fn storm_of_5000() -> std::collections::HashSet<u64> {
    short_lived_namespaces(2500, libc::CLONE_NEWUTS | libc::CLONE_NEWIPC)
}

/// `n` children, one after another, each unsharing `flags` (CLONE_NEW*)
/// and exiting: namespaces that live a moment. Returns the children's pids.
pub fn short_lived_namespaces(n: usize, flags: libc::c_int) -> std::collections::HashSet<u64> {
    let mut pids = std::collections::HashSet::new();
    for _ in 0..n {
        // SAFETY: the child only makes async-signal-safe calls before _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: unshare(2) takes no pointers.
            unsafe {
                libc::unshare(flags);
                libc::_exit(0);
            }
        }
        assert!(pid > 0);
        pids.insert(pid as u64);
        // SAFETY: waitpid(2) on our own child; a null status pointer is allowed.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    pids
}

/// Reads `stderr` (echoing each line, prefixed by `who`) until a line
/// contains `ready`; panics if the program exits first. Returns that line.
pub fn wait_for_line(stderr: &mut impl BufRead, ready: &str, who: &str) -> String {
    let mut line = String::new();
    while !line.contains(ready) {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{who} exited before printing {ready:?}");
        eprint!("[{who}] {line}");
    }
    line
}

/// `nstrace ARGS` with piped stdout and stderr, once its stderr says
/// `ready`; the rest of its stderr is echoed (prefixed by `who`) as it comes.
pub fn nstrace_ready(args: &[&str], ready: &str, who: &str) -> Child {
    let mut child =
        nstrace_command().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn nstrace");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    wait_for_line(&mut stderr, ready, who);
    let who = who.to_string();
    thread::spawn(move || stderr.lines().map_while(Result::ok).for_each(|l| eprintln!("[{who}] {l}")));
    child
}

/// A sysctl raised for a test (never lowered), put back on drop.
pub struct RaisedSysctl {
    path: String,
    old: Option<String>,
}

impl RaisedSysctl {
    /// Raises `path` (a /proc/sys file holding a number) to `min` if below.
    pub fn at_least(path: &str, min: u64) -> RaisedSysctl {
        let old = std::fs::read_to_string(path).ok();
        let current = old.as_deref().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
        if current >= min {
            return RaisedSysctl { path: path.into(), old: None };
        }
        std::fs::write(path, min.to_string()).unwrap_or_else(|e| panic!("raising {path} to {min}: {e}"));
        RaisedSysctl { path: path.into(), old }
    }
}

impl Drop for RaisedSysctl {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = std::fs::write(&self.path, old.trim());
        }
    }
}

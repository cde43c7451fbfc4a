//! Helpers for the root integration tests: find the binary, skip loudly
//! when not root, run `nstrace trace` in the background and wait for events.

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
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    println!("SKIPPED {test}: needs root (eBPF programs and namespace creation)");
    eprintln!("SKIPPED {test}: needs root (eBPF programs and namespace creation)");
    false
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

/// Runs nstrace to completion and returns (exit code, stdout, stderr).
pub fn nstrace(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(nstrace_bin()).args(args).output().expect("spawn nstrace");
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

/// A background `nstrace trace --format json` collecting events.
pub struct Trace {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Trace {
    /// Starts the tracer and waits until its programs are attached.
    pub fn start(extra: &[&str]) -> Trace {
        let mut child = Command::new(nstrace_bin())
            .args(["trace", "--format", "json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nstrace trace");
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[nstrace] {line}");
                if line.contains("tracing") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => sink.lock().unwrap().push(v),
                    Err(e) => panic!("nstrace printed a line that is not JSON ({e}): {line}"),
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(30)).expect("nstrace trace did not become ready");
        Trace { child, events }
    }

    /// Waits up to `timeout` for an event matching `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.events.lock().unwrap().iter().find(|v| pred(v)) {
                return Some(v.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

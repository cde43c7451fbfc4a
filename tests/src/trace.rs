//! A background `nstrace trace --format json` for a test: started, waited
//! for until its programs are attached, its events collected.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{nstrace_command, scaled};

/// A background `nstrace trace --format json` collecting events.
pub struct Trace {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    /// The readiness line (names the mechanism per job).
    pub ready: String,
}

impl Trace {
    /// Starts the tracer and waits until its programs are attached.
    pub fn start(extra: &[&str]) -> Trace {
        Trace::try_start(extra).unwrap_or_else(|err| panic!("nstrace trace {extra:?} failed: {err}"))
    }

    /// [`Trace::start`], or what the tracer printed if it exited before it
    /// was ready (a forced mechanism the kernel lacks: no `doctor` run
    /// first, which under emulation costs as much as a start).
    pub fn try_start(extra: &[&str]) -> Result<Trace, String> {
        let mut child = nstrace_command()
            .args(["trace", "--format", "json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nstrace trace");
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut printed = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[nstrace] {line}");
                if line.contains("tracing") {
                    let _ = ready_tx.send(Ok(line.clone()));
                }
                printed.push_str(&line);
                printed.push('\n');
            }
            let _ = ready_tx.send(Err(printed));
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
        // Loading and verifying every program is slow under software emulation.
        match ready_rx.recv_timeout(scaled(Duration::from_secs(60))) {
            Ok(Ok(ready)) => Ok(Trace { child, events, ready }),
            Ok(Err(printed)) => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!("{status}: {printed}"))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err("it did not become ready".into())
            }
        }
    }

    /// Waits up to `timeout` ([`scaled`]) for an event matching `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + scaled(timeout);
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

    /// The tracer's own pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

//! A private `nstrace serve` for a test: its own database, socket and
//! metrics port, never the host's service.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;

use crate::nstrace_bin;

/// A running `nstrace serve` with its own database and socket.
pub struct Service {
    pub child: Child,
    pub dir: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// The metrics address.
    pub addr: String,
}

impl Service {
    pub fn start(dir: &str) -> Service {
        Service::start_with(dir, &format!("{dir}/db/nstrace.db"))
    }

    pub fn start_with(dir: &str, db: &str) -> Service {
        Service::start_env(dir, db, &[])
    }

    /// [`Service::start_with`] with extra environment variables.
    pub fn start_env(dir: &str, db: &str, env: &[(&str, &str)]) -> Service {
        let mut child = Command::new(nstrace_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db, "--socket", &format!("{dir}/nstrace.sock")])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nstrace serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[nstrace serve] {line}");
                if let Some(rest) = line.strip_prefix("nstrace: serving on http://")
                    && let Some((addr, _)) = rest.split_once("/metrics")
                {
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(crate::scaled(Duration::from_secs(60)))
            .unwrap_or_else(|_| panic!("nstrace serve did not start: {:?}", lines.lock().unwrap()));
        Service { child, dir: dir.into(), stderr: lines, addr }
    }

    pub fn socket(&self) -> String {
        format!("{}/nstrace.sock", self.dir)
    }

    /// Runs `nstrace ARGS` as a client of this service.
    pub fn ask(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(nstrace_bin()).args(args).env("NSTRACE_SOCKET", self.socket()).output().unwrap();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(!stderr.contains("one-shot snapshot"), "the service did not answer {args:?}: {stderr}");
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }

    /// `why --json TARGET` (Null until the service has seen it: its
    /// records reach it a few ms after the kernel made the namespace).
    pub fn why_json(&self, target: &str) -> Value {
        let (code, out, err) = self.ask(&["why", "--json", target]);
        if code == 2 && err.contains("which is not listed") {
            return Value::Null;
        }
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }

    pub fn http(&self, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A private `nstrace serve` for a test: its own database, socket and
//! metrics port, never the host's service.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;

use crate::nstrace_command;

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
        Service::start_full(dir, db, &[], env)
    }

    /// [`Service::start`] with extra `serve` options.
    pub fn start_args(dir: &str, args: &[&str]) -> Service {
        Service::start_full(dir, &format!("{dir}/db/nstrace.db"), args, &[])
    }

    /// `nstrace serve` on `dir`'s socket and the database `db`, with extra
    /// options and environment variables.
    pub fn start_full(dir: &str, db: &str, args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut child = nstrace_command()
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db, "--socket", &format!("{dir}/nstrace.sock")])
            .args(args)
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

    /// The database file of a service started by [`Service::start`].
    pub fn db(&self) -> String {
        format!("{}/db/nstrace.db", self.dir)
    }

    /// GET /metrics: the text.
    pub fn metrics(&self) -> String {
        let (status, body) = self.http("/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn socket(&self) -> String {
        format!("{}/nstrace.sock", self.dir)
    }

    /// Runs `nstrace ARGS` as a client of this service.
    pub fn ask(&self, args: &[&str]) -> (i32, String, String) {
        let out = nstrace_command().args(args).env("NSTRACE_SOCKET", self.socket()).output().unwrap();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(!stderr.contains("one-shot snapshot"), "the service did not answer {args:?}: {stderr}");
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }

    /// `why --json TARGET` (Null until the service has seen it: its
    /// records reach it a few ms after the kernel made the namespace).
    pub fn why_json(&self, target: &str) -> Value {
        let (code, out, err) = self.ask(&["why", "--json", target]);
        // Not seen yet: by path, or by id or inode.
        if code == 2 && (err.contains("which is not listed") || err.contains("no namespace with id or inode")) {
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

    /// `kill -9`, then a new service on the same directory and database.
    pub fn restart_after_kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (dir, db) = (self.dir.clone(), self.db());
        *self = Service::start_with(&dir, &db);
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; the exit status and everything serve printed.
    pub fn stop_and_output(self) -> (std::process::ExitStatus, Vec<String>) {
        let lines = self.stderr.clone();
        let status = self.stop();
        let printed = lines.lock().unwrap().clone();
        (status, printed)
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) takes no pointers; the pid is our own child.
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

/// The value of sample `name` whose labels include every `labels` pair,
/// from a Prometheus text page.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// Runs one query with the sqlite3 tool; its lines.
pub fn sqlite(db: &str, query: &str) -> Vec<String> {
    let out = std::process::Command::new("sqlite3").arg(db).arg(query).output().expect("sqlite3");
    assert!(out.status.success(), "sqlite3 {query}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

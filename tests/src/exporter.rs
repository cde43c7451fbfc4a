//! A running `nstrace export` and a plain HTTP/1.1 client for tests that
//! talk to it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use crate::nstrace_command;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Stops a child when dropped: SIGTERM, then SIGKILL after a grace period.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        // SAFETY: kill(2) takes no pointers; the pid is our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} ignored SIGTERM for {grace:?}; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(10));
    }
}

/// A running `nstrace export` on an ephemeral loopback port.
pub struct Exporter {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub stderr: std::sync::Arc<Mutex<Vec<String>>>,
    /// Its own database and socket, so tests run side by side.
    pub state: crate::RmDir,
}

impl Exporter {
    pub fn start(extra: &[&str]) -> Exporter {
        let state = format!("/tmp/{}", crate::unique("nstrace-test-export"));
        let mut child = nstrace_command()
            .args(["export", "--listen", "127.0.0.1:0"])
            .args(["--db", &format!("{state}/nstrace.db"), "--socket", &format!("{state}/nstrace.sock")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nstrace export");
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[nstrace export] {line}");
                if let Some(rest) = line.strip_prefix("nstrace: serving on http://")
                    && let Some((addr, _)) = rest.split_once("/metrics")
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("address in the readiness line"));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let proc = Proc { child, name: "nstrace export" };
        let addr = rx.recv_timeout(crate::scaled(Duration::from_secs(60))).unwrap_or_else(|_| {
            panic!("nstrace export did not print its address; stderr: {:?}", lines.lock().unwrap())
        });
        Exporter { proc, addr, stderr: lines, state: crate::RmDir(state) }
    }
}

/// One HTTP response, read until the server closed the connection.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    Reply { status, headers, body: body.to_string() }
}

/// Sends `request` as is and reads the whole answer.
pub fn raw_request(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

pub fn get(addr: SocketAddr, path: &str, extra_headers: &str) -> Reply {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra_headers}\r\n");
    parse_reply(&raw_request(addr, req.as_bytes()).unwrap_or_else(|e| panic!("GET {path}: {e}")))
}

/// The exporter still answers /healthz and /metrics.
pub fn assert_still_serving(addr: SocketAddr, after: &str) {
    let h = get(addr, "/healthz", "");
    assert_eq!(h.status, 200, "/healthz after {after}: {h:?}");
    let m = get(addr, "/metrics", "");
    assert_eq!(m.status, 200, "/metrics after {after}");
    assert!(m.body.contains("nstrace_namespaces{"), "/metrics after {after}: {}", m.body);
}

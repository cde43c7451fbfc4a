//! A service on the host's default socket while the host suites run.
//! Every test must be answered by the build under test with a socket,
//! database and pins of its own: this one stands for the
//! `nstrace serve` a user's node or a developer's machine runs, and must
//! receive no request.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context as _, bail};

/// Where `nstrace serve` listens unless told otherwise (remote.rs).
const DEFAULT_SOCKET: &str = "/run/nstrace/nstrace.sock";

pub struct Decoy {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Decoy {
    /// Starts the decoy, or says why not (another service already answers
    /// there: the tests must leave that one alone too, but its counts are
    /// not ours to read).
    pub fn start(bin: &Path) -> anyhow::Result<Option<Decoy>> {
        if std::os::unix::net::UnixStream::connect(DEFAULT_SOCKET).is_ok() {
            eprintln!(
                "xtask: a service already answers on {DEFAULT_SOCKET}: no decoy (the tests use their own sockets)"
            );
            return Ok(None);
        }
        let dir = std::env::temp_dir().join(format!("nstrace-decoy-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--socket", DEFAULT_SOCKET, "--db"])
            .arg(dir.join("nstrace.db"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the decoy service")?;
        let stderr = child.stderr.take().context("decoy stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) =
                    line.strip_prefix("nstrace: serving on http://").and_then(|r| r.split_once("/metrics"))
                {
                    let _ = tx.send(addr.0.to_string());
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(120)) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the decoy service on {DEFAULT_SOCKET} did not start");
        };
        eprintln!("xtask: decoy service on {DEFAULT_SOCKET} (metrics on {addr}): no test may talk to it");
        Ok(Some(Decoy { child, addr, dir }))
    }

    /// Stops it; an error when any request reached it.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let requests = self.requests();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        match requests? {
            0 => Ok(()),
            n => bail!(
                "{n} request(s) reached the service on {DEFAULT_SOCKET} during the host tests: a test was answered \
                 by a service that is not the build under test (give it tests::nstrace_command's environment)"
            ),
        }
    }

    fn requests(&self) -> anyhow::Result<u64> {
        let mut s = std::net::TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut page = String::new();
        s.read_to_string(&mut page)?;
        let counts: Vec<f64> = page
            .lines()
            .filter(|l| l.starts_with("nstrace_service_requests_total{"))
            .filter_map(|l| l.split_whitespace().last()?.parse().ok())
            .collect();
        if counts.is_empty() {
            bail!("the decoy's metrics have no nstrace_service_requests_total");
        }
        Ok(counts.iter().sum::<f64>() as u64)
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

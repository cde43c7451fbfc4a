//! `cargo xtask bench --only soak`: `nstrace serve` for a long while (30
//! minutes, or `NSTRACE_SOAK_MINUTES`) under a steady namespace churn,
//! with one-shot `ls` runs beside it killed at random moments mid-walk:
//! no run may hang, no scrape may wait, resident memory stays
//! flat, and at the end serve's table has every namespace /proc shows.

use std::{
    collections::HashSet,
    io::{Read, Write},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::json;

use crate::{
    bench::{Background, Report, nstrace_bin},
    bench_serve::cpu_seconds,
    workload,
};

/// A one-shot run that has not ended in this long is a hang.
const HANG: Duration = Duration::from_secs(10);

/// xorshift: random enough for kill moments, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// (type, inode) of every row of an `ls --json` answer.
fn keys(json: &[u8]) -> anyhow::Result<HashSet<(String, u64)>> {
    let rows: Vec<serde_json::Value> = serde_json::from_slice(json).context("ls --json")?;
    Ok(rows.iter().filter_map(|r| Some((r["type"].as_str()?.to_string(), r["inode"].as_u64()?))).collect())
}

/// GET /metrics; how long the answer took.
fn scrape(addr: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut page = Vec::new();
    s.read_to_end(&mut page)?;
    anyhow::ensure!(
        page.starts_with(b"HTTP/1.1 200"),
        "scrape: {}",
        String::from_utf8_lossy(&page[..page.len().min(80)])
    );
    Ok(started.elapsed())
}

pub fn soak(r: &mut Report) -> anyhow::Result<()> {
    let minutes: u64 = std::env::var("NSTRACE_SOAK_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(30);
    r.section(
        "Soak: `serve` under churn beside one-shot runs killed mid-walk",
        &format!(
            "{minutes} minutes of `nstrace serve` (release build, its own database and socket) while 50 fork + \
             unshare(CLONE_NEWUTS) + exit run every second (100 namespace operations a second) and a one-shot \
             `nstrace ls --no-service --json` starts every 0.3 s: four of five are SIGKILLed at a random moment \
             in their first 300 ms (mid-walk, lock held), the fifth must end within {} s. /metrics is scraped \
             every 5 s. At the end, every namespace `ls --source proc` lists before and after is looked for in \
             serve's own table (`ls --json` over its socket).",
            HANG.as_secs()
        ),
    );
    let dir = std::env::temp_dir().join(format!("nstrace-bench-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (db, sock) = (dir.join("nstrace.db").display().to_string(), dir.join("nstrace.sock").display().to_string());
    let serve = Background::start(&["serve", "--listen", "127.0.0.1:0", "--db", &db, "--socket", &sock], "serving on")?;
    let addr = serve.address().context("serve's address")?;
    let pid = serve.pid();
    let stop = Arc::new(AtomicBool::new(false));
    // Namespace operations so far: each unshare makes one, each exit ends one.
    let ops = Arc::new(AtomicU64::new(0));
    let churn = {
        let (stop, ops) = (stop.clone(), ops.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let made = workload::paced_unshare(50, 1, libc::CLONE_NEWUTS);
                ops.fetch_add(2 * made as u64, Ordering::Relaxed);
            }
        })
    };
    // Warmed up: the baseline memory is taken after the first minute.
    std::thread::sleep(Duration::from_secs(60.min(minutes * 60 / 4)));
    let (rss_start, cpu_start, started) = (rss_kib(pid), cpu_seconds(pid)?, Instant::now());
    let ops_start = ops.load(Ordering::Relaxed);
    // Resident memory every tenth of the soak: flat, or still growing?
    let mut rss_series = vec![rss_start];
    let sample_every = Duration::from_secs(minutes * 6).max(Duration::from_secs(5));
    let mut next_sample = started + sample_every;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let (mut killed, mut completed, mut hangs, mut slow_scrapes, mut scrapes) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut worst_scrape = Duration::ZERO;
    let mut last_scrape = Instant::now();
    let mut rss_max = rss_start;
    let end = started + Duration::from_secs(minutes * 60);
    let bin = nstrace_bin();
    while Instant::now() < end {
        let mut child = Command::new(&bin)
            .args(["ls", "--no-service", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        if rng.below(5) != 0 {
            std::thread::sleep(Duration::from_millis(rng.below(300)));
            let _ = child.kill();
            child.wait()?;
            killed += 1;
        } else {
            let t = Instant::now();
            loop {
                if child.try_wait()?.is_some() {
                    completed += 1;
                    break;
                }
                if t.elapsed() > HANG {
                    hangs += 1;
                    let _ = child.kill();
                    child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if last_scrape.elapsed() >= Duration::from_secs(5) {
            let took = scrape(&addr)?;
            scrapes += 1;
            worst_scrape = worst_scrape.max(took);
            if took > Duration::from_secs(1) {
                slow_scrapes += 1;
            }
            rss_max = rss_max.max(rss_kib(pid));
            last_scrape = Instant::now();
        }
        if Instant::now() >= next_sample {
            rss_series.push(rss_kib(pid));
            next_sample += sample_every;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let ops = ops.load(Ordering::Relaxed) - ops_start;
    let (rss_end, cpu) = (rss_kib(pid), cpu_seconds(pid)? - cpu_start);
    let secs = started.elapsed().as_secs_f64();
    rss_series.push(rss_end);
    stop.store(true, Ordering::Relaxed);
    churn.join().map_err(|_| anyhow::anyhow!("churn thread panicked"))?;
    // Settle: the last deaths reach serve within a few walks.
    std::thread::sleep(Duration::from_secs(3));
    let proc_listing = || -> anyhow::Result<HashSet<(String, u64)>> {
        keys(&Command::new(&bin).args(["ls", "--no-service", "--json", "--source", "proc"]).output()?.stdout)
    };
    let before = proc_listing()?;
    let served = keys(&Command::new(&bin).args(["ls", "--json", "--socket", &sock]).output()?.stdout)?;
    let after = proc_listing()?;
    let missing = before.intersection(&after).filter(|k| !served.contains(k)).count();
    let stopped = Instant::now();
    serve.stop()?;
    let stop_took = stopped.elapsed();
    let _ = std::fs::remove_dir_all(&dir);

    let growth = rss_end as f64 - rss_start as f64;
    r.md.push_str(&format!(
        "| figure | value |\n|---|---|\n\
         | soak length | {secs:.0} s |\n\
         | namespace operations | {ops} ({:.0}/s) |\n\
         | one-shot runs killed mid-walk | {killed} |\n\
         | one-shot runs that had to end | {completed} ended, **{hangs} hung** (over {} s) |\n\
         | scrapes | {scrapes}, {slow_scrapes} over 1 s, slowest {:.1} ms |\n\
         | serve's resident memory | {rss_start} KiB after warm-up, {rss_end} KiB at the end ({growth:+.0} KiB), at most {rss_max} KiB |\n\
         | resident memory every {} s (KiB) | {} |\n\
         | serve's CPU | {:.1} ms/s |\n\
         | namespaces /proc shows that serve's table lacks | **{missing}** |\n\
         | SIGTERM to exit | {:.0} ms |\n",
        ops as f64 / secs,
        HANG.as_secs(),
        worst_scrape.as_secs_f64() * 1e3,
        sample_every.as_secs(),
        rss_series.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
        cpu * 1e3 / secs,
        stop_took.as_secs_f64() * 1e3,
    ));
    r.json["soak"] = json!({
        "seconds": secs, "operations": ops, "killed": killed, "completed": completed, "hangs": hangs,
        "scrapes": scrapes, "slow_scrapes": slow_scrapes, "rss_start_kib": rss_start, "rss_end_kib": rss_end,
        "rss_max_kib": rss_max, "rss_series_kib": rss_series, "cpu_ms_per_s": cpu * 1e3 / secs, "missing": missing,
        "stop_ms": stop_took.as_secs_f64() * 1e3,
    });
    anyhow::ensure!(hangs == 0 && missing == 0, "soak: {hangs} hung runs, {missing} namespaces missing");
    Ok(())
}

//! The metrics endpoint under hostile load: real scrapes keep getting
//! answers while hundreds of clients trickle headers, and a thousand
//! clients at once get whole replies or a clean 503, with bounded memory.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use tests::exporter::{Exporter, assert_still_serving, get, parse_reply};
use tests::root_or_skip;

/// Threads here only move bytes.
fn small_thread(f: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    thread::Builder::new().stack_size(128 * 1024).spawn(f).unwrap()
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
    line.split_whitespace().next().unwrap().parse().unwrap()
}

/// The value of the `nstrace_http_connections_total{outcome}` series.
fn connections(addr: SocketAddr, outcome: &str) -> f64 {
    let m = get(addr, "/metrics", "");
    let series = format!("nstrace_http_connections_total{{outcome=\"{outcome}\"}} ");
    m.body
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in {}", m.body))
        .parse()
        .unwrap()
}

/// Clients that hold connections and connect again whenever they are cut
/// off: half send a request line, then one header line a second (never a
/// whole request), half ask once and then idle on the keep-alive; cut
/// off, each connects again a second later.
struct Tricklers {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
    connects: Arc<AtomicUsize>,
}

impl Tricklers {
    fn start(addr: SocketAddr, count: usize) -> Tricklers {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicUsize::new(0));
        let threads = (0..count)
            .map(|n| {
                let (stop, connects) = (stop.clone(), connects.clone());
                small_thread(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
                            thread::sleep(Duration::from_millis(100));
                            continue;
                        };
                        connects.fetch_add(1, Ordering::Relaxed);
                        let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
                        // Every other one asks once, then idles on its keep-alive connection.
                        let idler = n % 2 == 1;
                        let first: &[u8] =
                            if idler { b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" } else { b"GET /metrics HTTP/1.1\r\n" };
                        let mut ok = s.write_all(first).is_ok();
                        let mut b = [0u8; 4096];
                        if idler {
                            ok = ok && matches!(s.read(&mut b), Ok(n) if n > 0);
                        }
                        let mut line = 0;
                        while ok && !stop.load(Ordering::Relaxed) {
                            // Cut off (EOF or reset) shows as a read that does not time out.
                            ok = matches!(s.read(&mut b), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
                            line += 1;
                            ok = ok && (idler || s.write_all(format!("X-Slow-{n}-{line}: y\r\n").as_bytes()).is_ok());
                        }
                        // At their pace: a line, or a connection, a second
                        // (faster is a flood of requests, not slow clients).
                        thread::sleep(Duration::from_secs(1));
                    }
                })
            })
            .collect();
        Tricklers { stop, threads, connects }
    }
}

impl Drop for Tricklers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A scrape as Prometheus makes it, with a `timeout`: the status and
/// whether the body came whole (OpenMetrics ends with `# EOF`).
fn scrape(addr: SocketAddr, timeout: Duration) -> Result<(u16, bool), String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    let deadline = Instant::now() + timeout;
    s.set_read_timeout(Some(timeout)).unwrap();
    let accept = "Accept: application/openmetrics-text; version=1.0.0";
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{accept}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no whole answer within {timeout:?} ({} bytes)", raw.len()));
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read after {} bytes: {e}", raw.len())),
        }
    }
    if raw.is_empty() {
        return Err("closed without an answer".into());
    }
    let r = parse_reply(&raw);
    let whole = match r.status {
        200 => r.body.ends_with("# EOF\n"),
        503 => r.body.starts_with("busy:") && r.header("retry-after") == Some("1"),
        _ => false,
    };
    Ok((r.status, whole))
}

/// 300 connections arrive at once and send nothing (a port scan, a
/// client stampede after a network blip): scrapes right after them are
/// answered at once, because a connection takes a serving slot only when
/// its request starts to arrive (were the 64 slots to go to the first 64
/// silent ones until they time out, the first scrape would get a 503).
#[test]
fn a_burst_of_silent_connections_takes_no_slot_from_a_scrape() {
    let test = "a_burst_of_silent_connections_takes_no_slot_from_a_scrape";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let exporter = Exporter::start(&[]);
    let addr = exporter.addr;
    assert_still_serving(addr, "start");
    let silent: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    // Their accepts are queued before the scrapes' are.
    let timeout = tests::scaled(Duration::from_secs(1));
    let results: Vec<_> = (0..8).map(|_| scrape(addr, timeout)).collect();
    let answered = results.iter().filter(|r| matches!(r, Ok((200, true)))).count();
    drop(silent);
    assert_eq!(answered, 8, "{test}: scrapes right after 300 silent connections: {results:?}");
    assert_still_serving(addr, "300 silent connections");
}

#[test]
fn slow_clients_cannot_starve_real_scrapes() {
    let test = "slow_clients_cannot_starve_real_scrapes";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let exporter = Exporter::start(&[]);
    let addr = exporter.addr;
    assert_still_serving(addr, "start");
    // Five times the 64 slots, trickling headers or idling.
    let tricklers = Tricklers::start(addr, 320);
    thread::sleep(Duration::from_secs(3));
    let timeout = tests::scaled(Duration::from_secs(1));
    let mut answered = 0;
    let mut failures = Vec::new();
    for _ in 0..8 {
        match scrape(addr, timeout) {
            Ok((200, true)) => answered += 1,
            other => failures.push(format!("{other:?}")),
        }
        thread::sleep(Duration::from_millis(500));
    }
    let connects = tricklers.connects.load(Ordering::Relaxed);
    drop(tricklers);
    println!(
        "{test}: {answered} of 8 scrapes answered in {timeout:?} among 320 slow and idle clients ({connects} connects)"
    );
    assert_eq!(answered, 8, "scrapes that failed: {failures:?}");
    assert!(connections(addr, "evicted") > 0.0, "slow clients were evicted to make room");
    assert_still_serving(addr, "320 slow clients");
}

#[test]
fn a_thousand_scrapes_at_once_get_whole_replies_or_a_clean_503() {
    let test = "a_thousand_scrapes_at_once_get_whole_replies_or_a_clean_503";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let exporter = Exporter::start(&[]);
    let addr = exporter.addr;
    assert_still_serving(addr, "start");
    let pid = exporter.proc.child.id();
    let before = rss_kib(pid);
    let clients = 1000;
    let start = Arc::new(Barrier::new(clients));
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (start, outcomes) = (start.clone(), outcomes.clone());
            small_thread(move || {
                start.wait();
                let r = scrape(addr, Duration::from_secs(30));
                outcomes.lock().unwrap().push(r);
            })
        })
        .collect();
    let mut peak = before;
    while threads.iter().any(|t| !t.is_finished()) {
        peak = peak.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(20));
    }
    for t in threads {
        t.join().unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    let ok = outcomes.iter().filter(|o| matches!(o, Ok((200, true)))).count();
    let busy = outcomes.iter().filter(|o| matches!(o, Ok((503, true)))).count();
    let bad: Vec<_> = outcomes.iter().filter(|o| !matches!(o, Ok((200 | 503, true)))).take(5).collect();
    println!("{test}: {ok} whole replies, {busy} clean 503s; resident memory {before} KiB before, {peak} KiB at peak");
    assert!(
        bad.is_empty(),
        "{} of {clients} got neither a whole reply nor a clean 503, e.g. {bad:?}",
        clients - ok - busy
    );
    assert!(ok > 0, "some scrapes were served");
    // Bounded: 64 slots and 1,024 503s of at most 16 KiB buffers each, and
    // what the replies being written hold.
    assert!(peak - before < 96 * 1024, "resident memory grew from {before} KiB to {peak} KiB");
    assert_still_serving(addr, "a thousand scrapes at once");
}

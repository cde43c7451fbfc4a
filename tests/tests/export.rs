//! `nstrace export`: a real Prometheus scrapes it and sees namespaces come
//! and go; promtool accepts the exposition and the shipped alert rules; bad
//! clients get errors without disturbing the exporter.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::exporter::{Exporter, Proc, assert_still_serving, free_port, get, parse_reply, raw_request};
use tests::{have, nstrace, repo_root, root_or_skip, sh, unique};

/// The exporters load eBPF programs and the timing checks want a quiet
/// machine: run these tests one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when every command is installed; otherwise prints why `test` is skipped.
fn tools_or_skip(test: &str, cmds: &[&str]) -> bool {
    let missing: Vec<&str> = cmds.iter().copied().filter(|c| !have(c)).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{missing:?} not installed (Debian package prometheus; cargo xtask setup)");
    tests::skip(test, &msg);
    false
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real Prometheus server scraping one target every second.
struct Prometheus {
    proc: Proc,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = std::env::temp_dir().join(unique("nstrace-prom"));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = repo_root().join("deploy/prometheus/nstrace-rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: nstrace\n    static_configs:\n      - targets: ['{target}']\n",
            rules = rules.display()
        );
        std::fs::write(dir.join("prom.yml"), config).unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prom.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus { proc: Proc { child, name: "prometheus" }, addr, dir };
        let deadline = Instant::now() + tests::scaled(Duration::from_secs(60));
        loop {
            if let Ok(raw) = raw_request(addr, format!("GET /-/ready HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
                && parse_reply(&raw).status == 200
            {
                break;
            }
            if let Ok(Some(status)) = p.proc.child.try_wait() {
                panic!("prometheus exited ({status}): {}", p.log());
            }
            assert!(Instant::now() < deadline, "prometheus not ready after 60 s: {}", p.log());
            thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: the HTTP status and the JSON answer.
    fn query_raw(&self, expr: &str) -> (u16, Value) {
        let req = format!("GET /api/v1/query?query={} HTTP/1.0\r\nHost: {}\r\n\r\n", percent_encode(expr), self.addr);
        let reply = parse_reply(&raw_request(self.addr, req.as_bytes()).expect("query prometheus"));
        let v = serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("query {expr}: {e}: {}", reply.body));
        (reply.status, v)
    }

    /// The value of an instant query that returns at most one series.
    fn query(&self, expr: &str) -> Option<f64> {
        let (status, v) = self.query_raw(expr);
        assert_eq!(status, 200, "query {expr}: {v}");
        let result = v["data"]["result"].as_array().unwrap_or_else(|| panic!("query {expr}: {v}"));
        assert!(result.len() <= 1, "query {expr} returned several series: {v}");
        result.first().map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
    }

    /// Polls `expr` until `pred` holds on its value; panics after `timeout`.
    fn wait_for(&self, timeout: Duration, expr: &str, what: &str, pred: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + tests::scaled(timeout);
        let mut last = None;
        loop {
            last = self.query(expr).or(last);
            if let Some(v) = last
                && pred(v)
            {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {expr} is {last:?}");
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.proc.terminate(Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deletes the named network namespaces when dropped.
struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

#[test]
fn prometheus_sees_netns_created_and_destroyed() {
    let test = "prometheus_sees_netns_created_and_destroyed";
    if !root_or_skip(test) || !tools_or_skip(test, &["prometheus", "ip"]) {
        return;
    }
    let _serial = serial();
    let exporter = Exporter::start(&[]);
    let prom = Prometheus::start(exporter.addr);
    const T: Duration = Duration::from_secs(30);
    let created = r#"nstrace_namespaces_created_total{type="net"}"#;
    let destroyed = r#"nstrace_namespaces_destroyed_total{type="net"}"#;
    let mounted = r#"nstrace_namespaces{type="net",state="mounted"}"#;
    prom.wait_for(T, r#"up{job="nstrace"}"#, "the first successful scrape", |v| v == 1.0);
    let created0 = prom.wait_for(T, created, "the created counter", |_| true);
    let destroyed0 = prom.wait_for(T, destroyed, "the destroyed counter", |_| true);
    let mounted0 = prom.wait_for(T, mounted, "the mounted gauge", |_| true);

    const N: usize = 3;
    let names: Vec<String> = (0..N).map(|_| unique("nstrace-export")).collect();
    let mut netns = Netns(Vec::new());
    for n in &names {
        sh(&format!("ip netns add {n}"));
        netns.0.push(n.clone());
    }
    let c = prom.wait_for(T, created, "3 more net namespaces created", |v| v >= created0 + N as f64);
    assert_eq!(c - created0, N as f64, "created counter overshot (other net namespaces made meanwhile?)");
    prom.wait_for(T, mounted, "3 more mounted net namespaces", |v| v == mounted0 + N as f64);

    // The same namespaces in /namespaces, with their `ip netns` names.
    let rows: Value = serde_json::from_str(&get(exporter.addr, "/namespaces", "").body).expect("/namespaces is JSON");
    for n in &names {
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"].as_array().is_some_and(|a| a.contains(&n.as_str().into())))
            .unwrap_or_else(|| panic!("/namespaces has no row named {n}"));
        assert_eq!(row["type"], "net", "{row}");
        assert_eq!(row["state"], "mounted", "{row}");
    }

    for n in &names {
        sh(&format!("ip netns del {n}"));
    }
    netns.0.clear();
    let d = prom.wait_for(T, destroyed, "3 more net namespaces destroyed", |v| v >= destroyed0 + N as f64);
    assert_eq!(d - destroyed0, N as f64, "destroyed counter overshot (other net namespaces freed meanwhile?)");
    prom.wait_for(T, mounted, "the mounted gauge back to where it was", |v| v == mounted0);
    // The lifetimes of the three went into the histogram.
    prom.wait_for(T, r#"nstrace_namespace_lifetime_seconds_count{type="net"}"#, "3 lifetimes", |v| v >= N as f64);

    // Every query of the Grafana dashboard is valid PromQL and finds data.
    let dashboard = repo_root().join("deploy/grafana/nstrace-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&dashboard).unwrap()).expect("dashboard JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push((panel["title"].as_str().unwrap_or("?").to_string(), t["expr"].as_str().unwrap().to_string()));
        }
    }
    assert!(exprs.len() >= 10, "the dashboard has only {} queries", exprs.len());
    for (title, expr) in exprs {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m")
            .replace("$instance", ".*")
            .replace("$type", ".*");
        // Until it finds data: one scrape that timed out (1 s, under
        // emulation on a busy host) makes every series stale until the next.
        let deadline = std::time::Instant::now() + tests::scaled(T);
        loop {
            let (status, v) = prom.query_raw(&q);
            assert_eq!(status, 200, "dashboard panel {title:?}: {q}: {v}");
            if v["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "dashboard panel {title:?} shows nothing: {q}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[test]
fn promtool_accepts_metrics_and_rules() {
    let test = "promtool_accepts_metrics_and_rules";
    if !root_or_skip(test) || !tests::kernel_independent(test) || !tools_or_skip(test, &["promtool"]) {
        return;
    }
    let rules = repo_root().join("deploy/prometheus/nstrace-rules.yml");
    let out = Command::new("promtool").arg("check").arg("rules").arg(&rules).output().expect("spawn promtool");
    assert!(
        out.status.success(),
        "promtool check rules {}: {}{}",
        rules.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let _serial = serial();
    let exporter = Exporter::start(&[]);
    // OpenMetrics to a client that asks for it, as Prometheus does.
    let om = get(exporter.addr, "/metrics", "Accept: application/openmetrics-text; version=1.0.0\r\n");
    assert_eq!(om.status, 200);
    assert_eq!(om.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    assert!(om.body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    for family in ["nstrace_namespaces", "nstrace_build_info", "nstrace_leak_suspects", "nstrace_events_lost"] {
        assert!(om.body.contains(&format!("# TYPE {family} ")), "no {family} in {}", om.body);
    }
    // promtool (2.42) lints the classic text format only: what the exporter
    // answers by default (to curl, to a client that names no format), so
    // `curl … | promtool check metrics` passes.
    let text = get(exporter.addr, "/metrics", "");
    assert_eq!(text.status, 200);
    assert_eq!(text.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    promtool.stdin.take().unwrap().write_all(text.body.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}): {}{}\n--- scrape ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        text.body
    );
}

#[test]
fn bad_requests_do_not_disturb_the_exporter() {
    let test = "bad_requests_do_not_disturb_the_exporter";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let _serial = serial();
    let exporter = Exporter::start(&[]);
    let addr = exporter.addr;
    assert_still_serving(addr, "start");

    let r = get(addr, "/no/such/page", "");
    assert_eq!(r.status, 404, "{r:?}");
    assert_still_serving(addr, "a 404");

    let raw = raw_request(
        addr,
        format!("POST /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello")
            .as_bytes(),
    )
    .expect("POST");
    let r = parse_reply(&raw);
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("GET"));
    assert_still_serving(addr, "a POST");

    // 64 KiB of header: 431, or the connection is closed on us.
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    match raw_request(addr, big.as_bytes()) {
        Ok(raw) if raw.is_empty() => {}
        Ok(raw) => {
            let r = parse_reply(&raw);
            assert_eq!(r.status, 431, "{r:?}");
        }
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted),
            "64 KiB header: unexpected error {e}"
        ),
    }
    assert_still_serving(addr, "a 64 KiB header");

    // Half a request line, then nothing: dropped after the header-read timeout (5 s).
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    // Others are served meanwhile.
    assert_still_serving(addr, "a stalled client connected");
    let mut buf = [0u8; 1024];
    match slow.read(&mut buf) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the stalled client was not disconnected: {e} after {:?}", started.elapsed()),
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(15), "stalled client held for {waited:?}");
    assert!(waited > Duration::from_secs(3), "stalled client dropped after {waited:?}, before the 5 s timeout");
    assert_still_serving(addr, "a stalled client");
}

#[test]
fn remote_listen_needs_allow_remote() {
    let (code, _out, err) = nstrace(&["export", "--listen", "0.0.0.0:1"]);
    assert_eq!(code, 2, "stderr: {err}");
    assert!(err.contains("--allow-remote"), "stderr should name --allow-remote: {err}");
}

#[test]
fn sigterm_stops_the_exporter_cleanly() {
    let test = "sigterm_stops_the_exporter_cleanly";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let _serial = serial();
    let mut exporter = Exporter::start(&[]);
    assert_still_serving(exporter.addr, "start");
    let status = exporter.proc.terminate(Duration::from_secs(15)).expect("nstrace export ignored SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
    let stopped = tests::eventually(Duration::from_secs(5), "the stop message", || {
        exporter.stderr.lock().unwrap().iter().find(|l| l.contains("serve stopped")).cloned()
    });
    assert!(stopped.contains("lost") && stopped.contains("changes written"), "{stopped}");
    let socket = format!("{}/nstrace.sock", exporter.state.0);
    assert!(!std::path::Path::new(&socket).exists(), "{socket} left behind");
    assert!(std::path::Path::new(&format!("{}/nstrace.db", exporter.state.0)).exists(), "the database stays");
    assert!(TcpStream::connect_timeout(&exporter.addr, Duration::from_secs(1)).is_err(), "still listening after exit");
}

#[test]
fn per_container_labels_name_a_docker_cgroup() {
    let test = "per_container_labels_name_a_docker_cgroup";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let Some(base) = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|b| std::path::Path::new(&format!("{b}/cgroup.procs")).exists())
    else {
        tests::skip("per_container_labels_name_a_docker_cgroup", "no cgroup2 hierarchy mounted");
        return;
    };
    let _serial = serial();
    let id: String = (0..64).map(|i| char::from_digit((i * 5 + 1) % 16, 16).unwrap()).collect();
    let cg = format!("{base}/system.slice/docker-{id}.scope");
    std::fs::create_dir_all(&cg).unwrap();
    let mut child = Command::new("unshare")
        .args(["-n", "-u", "sh", "-c", "read x; exec sleep infinity"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(format!("{cg}/cgroup.procs"), child.id().to_string()).unwrap();
    use std::io::Write as _;
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let exporter = Exporter::start(&["--per-container", "--refresh", "0.5"]);
    let want = format!(r#"nstrace_container_namespaces{{runtime="docker",container="{id}",type="net"}} 1"#);
    let deadline = std::time::Instant::now() + tests::scaled(Duration::from_secs(20));
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        last = get(exporter.addr, "/metrics", "").body;
        if last.contains(&want) {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    let _ = child.kill();
    let _ = child.wait();
    thread::sleep(Duration::from_millis(100));
    let _ = std::fs::remove_dir(&cg);
    assert!(last.contains(&want), "no {want} in /metrics:\n{last}");
    assert!(last.contains(&format!(r#"container="{id}",type="uts"}} 1"#)), "{last}");
}

/// `--max-rows` bounds the table `/namespaces` serves.
#[test]
fn max_rows_bounds_the_served_table() {
    let test = "max_rows_bounds_the_served_table";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let _serial = serial();
    let all = tests::ls_json(&[]).len();
    assert!(all > 5, "this host has {all} namespaces: too few to test a cap of 5");
    let exporter = Exporter::start(&["--max-rows", "5"]);
    let rows: Value = serde_json::from_str(&get(exporter.addr, "/namespaces", "").body).expect("/namespaces is JSON");
    let n = rows.as_array().unwrap().len();
    assert!((1..=5).contains(&n), "--max-rows 5 served {n} rows");
}

//! `cargo xtask bench --only hooks`: the always-on cost of `nstrace export`
//! on a busy host. Per program, the kernel's own accounting
//! (`kernel.bpf_stats_enabled`, read with `bpftool prog show`): ns per run
//! and runs per operation; beside it the service's CPU time per operation.
//! With `--baseline`, an earlier binary runs the same workloads in the same
//! run.

use std::{collections::HashMap, process::Command};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::{
    bench::{Background, Report, nstrace_bin},
    bench_serve::cpu_seconds,
    workload,
};

/// Per program name: (runs, ns) so far, for the programs `pid` holds.
fn prog_stats(pid: u32) -> anyhow::Result<HashMap<String, (u64, u64)>> {
    let mut ids = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(info) = std::fs::read_to_string(fd?.path()) else { continue };
        if let Some(id) = info.lines().find_map(|l| l.strip_prefix("prog_id:")) {
            ids.insert(id.trim().parse::<u64>()?);
        }
    }
    let out = Command::new("bpftool").args(["-j", "prog", "show"]).output().context("bpftool")?;
    let progs: Value = serde_json::from_slice(&out.stdout).context("bpftool -j prog show")?;
    let mut by_name = HashMap::new();
    for p in progs.as_array().into_iter().flatten() {
        if !p["id"].as_u64().is_some_and(|id| ids.contains(&id)) {
            continue;
        }
        let name = p["name"].as_str().unwrap_or("?").to_string();
        let e = by_name.entry(name).or_insert((0, 0));
        e.0 += p["run_cnt"].as_u64().unwrap_or(0);
        e.1 += p["run_time_ns"].as_u64().unwrap_or(0);
    }
    Ok(by_name)
}

/// `kernel.bpf_stats_enabled` on while it lives, back to what it was after.
struct BpfStats(String);

impl BpfStats {
    fn enable() -> anyhow::Result<BpfStats> {
        let path = "/proc/sys/kernel/bpf_stats_enabled";
        let before = std::fs::read_to_string(path).context(path)?.trim().to_string();
        std::fs::write(path, "1").context(path)?;
        Ok(BpfStats(before))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.0);
    }
}

/// What one workload cost a running service.
struct Cost {
    /// Program name -> (runs per operation, ns per run).
    progs: Vec<(String, f64, f64)>,
    bpf_ns_per_op: f64,
    service_ns_per_op: f64,
}

/// Runs `work` (which does `ops` operations) under the service `bg`, whose
/// CPU when idle (periodic walks and refreshes) is `idle_per_s` ns a second.
fn measure(bg: &Background, ops: usize, idle_per_s: f64, work: &fn()) -> anyhow::Result<Cost> {
    let started = std::time::Instant::now();
    let (before, cpu_before) = (prog_stats(bg.pid())?, cpu_seconds(bg.pid())?);
    work();
    // The service's share of the work includes draining what it was sent.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (after, cpu_after) = (prog_stats(bg.pid())?, cpu_seconds(bg.pid())?);
    let mut progs: Vec<(String, f64, f64)> = after
        .iter()
        .filter_map(|(name, &(runs, ns))| {
            let (r0, n0) = before.get(name).copied().unwrap_or((0, 0));
            let runs = runs.checked_sub(r0)?;
            (runs > 0).then(|| (name.clone(), runs as f64 / ops as f64, (ns - n0) as f64 / runs as f64))
        })
        .collect();
    progs.sort_by(|a, b| (b.1 * b.2).total_cmp(&(a.1 * a.2)));
    let bpf_ns_per_op = progs.iter().map(|(_, per_op, ns)| per_op * ns).sum();
    let idle = idle_per_s * started.elapsed().as_secs_f64();
    let service_ns_per_op = ((cpu_after - cpu_before) * 1e9 - idle).max(0.0) / ops as f64;
    Ok(Cost { progs, bpf_ns_per_op, service_ns_per_op })
}

/// How long idle CPU is measured.
const IDLE_SECS: u64 = 30;

/// The service's CPU when nothing happens, in ns per second over
/// [`IDLE_SECS`]: `perf stat -e task-clock` on the process (every thread,
/// to the ns), else /proc's 10 ms ticks (0.33 ms a second at best).
pub(crate) fn idle_ns_per_s(bg: &Background) -> anyhow::Result<f64> {
    let secs = IDLE_SECS.to_string();
    let perf = Command::new("perf")
        .args(["stat", "-x", ",", "-e", "task-clock", "-p", &bg.pid().to_string(), "--", "sleep", &secs])
        .output();
    if let Ok(out) = perf
        && out.status.success()
    {
        // "5.55,msec,task-clock,..." on stderr.
        let text = String::from_utf8_lossy(&out.stderr);
        if let Some(ms) =
            text.lines().find(|l| l.contains("task-clock")).and_then(|l| l.split(',').next()?.parse::<f64>().ok())
        {
            return Ok(ms * 1e6 / IDLE_SECS as f64);
        }
    }
    let before = cpu_seconds(bg.pid())?;
    std::thread::sleep(std::time::Duration::from_secs(IDLE_SECS));
    Ok((cpu_seconds(bg.pid())? - before) * 1e9 / IDLE_SECS as f64)
}

fn start_export(bin: &std::path::Path, state: &str) -> anyhow::Result<Background> {
    let db = format!("{state}/nstrace.db");
    let socket = format!("{state}/nstrace.sock");
    let _ = std::fs::remove_dir_all(state);
    std::fs::create_dir_all(state)?;
    Background::start_bin(
        bin,
        &["export", "--listen", "127.0.0.1:0", "--db", &db, "--socket", &socket],
        "serving on http://",
    )
}

const FORKS: usize = 20_000;
const THREADS: usize = 20_000;
const UNSHARES: usize = 5_000;

/// The workloads: name, key in the JSON, operations, and the work.
type Workload = (&'static str, &'static str, usize, fn());

const WORKLOADS: [Workload; 3] = [
    ("plain fork + exit", "plain_fork", FORKS, || {
        workload::churn_fork(FORKS);
    }),
    ("thread create + exit (the floor: no read at all)", "thread", THREADS, || {
        workload::churn_threads(THREADS);
    }),
    ("fork + unshare(CLONE_NEWUTS) + exit", "unshare", UNSHARES, || {
        workload::churn_unshare(UNSHARES, libc::CLONE_NEWUTS);
    }),
];

pub(crate) fn hooks(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "Hook cost: what `nstrace export` costs a busy host",
        "`nstrace export` (the always-on service: database, metrics) runs while each workload below runs. \
         Per program: runs per operation and ns per run from the kernel's `bpf_stats_enabled` accounting \
         (`bpftool prog show`; the accounting itself adds two clock reads per run); the service's CPU (user + \
         system) per operation, less its idle CPU over the same time; its idle CPU over 30 s of nothing. Goals \
         (issue 39): idle < 1 ms of CPU a second; the slowest task hook on a plain fork < 100 ns per run; \
         < 3 µs of BPF and < 10 µs of service per fork + unshare + exit.",
    );
    let _stats = BpfStats::enable()?;
    let mut bins = vec![("this".to_string(), nstrace_bin())];
    if let Some(b) = r.baseline.clone() {
        bins.push((format!("baseline ({})", b.display()), b));
    }
    // Per binary: label, idle ns per second, a cost per workload.
    let mut rows: Vec<(String, f64, Vec<Cost>)> = Vec::new();
    workload::churn_fork(2000); // warm-up
    for (label, bin) in &bins {
        let bg = start_export(bin, "/tmp/nstrace-bench-hooks")?;
        let idle = idle_ns_per_s(&bg)?;
        let costs =
            WORKLOADS.iter().map(|(_, _, ops, work)| measure(&bg, *ops, idle, work)).collect::<Result<_, _>>()?;
        bg.stop()?;
        rows.push((label.clone(), idle, costs));
    }
    let mut json_rows: Vec<Value> =
        rows.iter().map(|(label, idle, _)| json!({"binary": label, "idle_ns_per_s": idle})).collect();
    for (i, (title, key, _, _)) in WORKLOADS.iter().enumerate() {
        r.md.push_str(&format!("**{title}**\n\n| binary | program | runs per op | ns per run |\n|---|---|---|---|\n"));
        for (label, _, costs) in &rows {
            for (name, per_op, ns) in &costs[i].progs {
                r.md.push_str(&format!("| {label} | {name} | {per_op:.2} | {ns:.0} |\n"));
            }
        }
        r.md.push_str(
            "\n| binary | BPF ns per op | service ns per op | service idle, ms of CPU a second |\n|---|---|---|---|\n",
        );
        for ((label, idle, costs), json_row) in rows.iter().zip(&mut json_rows) {
            let c = &costs[i];
            r.md.push_str(&format!(
                "| {label} | **{:.0}** | **{:.0}** | {:.2} |\n",
                c.bpf_ns_per_op,
                c.service_ns_per_op,
                idle / 1e6
            ));
            let programs: Vec<Value> = c
                .progs
                .iter()
                .map(|(n, per_op, ns)| json!({"name": n, "runs_per_op": per_op, "ns_per_run": ns}))
                .collect();
            json_row[*key] = json!({ "bpf_ns_per_op": c.bpf_ns_per_op, "service_ns_per_op": c.service_ns_per_op,
                "programs": programs });
        }
        r.md.push('\n');
    }
    r.json["hooks"] = json!(json_rows);
    Ok(())
}

/// Scrapes /metrics `SCRAPES` times one after the other: the median time
/// a scrape took and the service's CPU per scrape (less its idle share).
fn scrape_cost(bg: &Background, idle_share: f64) -> anyhow::Result<(f64, f64)> {
    use std::io::{Read as _, Write as _};
    const SCRAPES: usize = 200;
    let addr = bg.address().context("no http address in the ready line")?;
    let before = cpu_seconds(bg.pid())?;
    let started = std::time::Instant::now();
    let mut took = Vec::new();
    for _ in 0..SCRAPES {
        let t = std::time::Instant::now();
        let mut conn = std::net::TcpStream::connect(&addr)?;
        write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut page = Vec::new();
        conn.read_to_end(&mut page)?;
        anyhow::ensure!(page.starts_with(b"HTTP/1.0 200") || page.starts_with(b"HTTP/1.1 200"), "a scrape failed");
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu = cpu_seconds(bg.pid())? - before - idle_share * started.elapsed().as_secs_f64();
    took.sort_by(f64::total_cmp);
    Ok((took[SCRAPES / 2], (cpu * 1000.0 / SCRAPES as f64).max(0.0)))
}

/// Namespaces held open for [`busy_host`], and the churn rate beside them.
const LIVE: usize = 10_000;
const CHURN_PER_S: usize = 1_000;
const BUSY_SECS: u64 = 10;

/// A host that has many namespaces and makes more all the time: the
/// service's share of one CPU with 10,000 live namespaces, idle and under a
/// steady churn of 1,000 namespace operations a second.
pub(crate) fn busy_host(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "A busy host: 10,000 live namespaces and 1,000 namespace operations a second",
        "`nstrace export` runs while 10,000 uts and ipc namespaces are held open by fds; first idle, then \
         200 scrapes of /metrics one after the other, then while a steady churn makes and ends 1,000 \
         namespaces a second (fork + unshare(uts) + exit in steps of 10 ms). The service's CPU (user + system) \
         over each period. Goals (issue 39): idle < 1 ms of CPU a second, under 3% of one CPU during the churn.",
    );
    let mut bins = vec![("this".to_string(), nstrace_bin())];
    if let Some(b) = r.baseline.clone() {
        bins.push((format!("baseline ({})", b.display()), b));
    }
    r.md.push_str(
        "| binary | live namespaces | idle, ms of CPU a second | a /metrics scrape: ms, service CPU ms | during the churn, % of a CPU | ops done | service µs per op (less idle) |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for (label, bin) in &bins {
        let bg = start_export(bin, "/tmp/nstrace-bench-busy")?;
        let held = workload::Held::fds(LIVE)?;
        // Let the service take in the 10,000 creates and a periodic walk.
        std::thread::sleep(std::time::Duration::from_secs(20));
        let share = |from: f64, secs: f64| -> anyhow::Result<f64> { Ok((cpu_seconds(bg.pid())? - from) / secs) };
        let idle = idle_ns_per_s(&bg)? / 1e9;
        let (scrape_ms, scrape_cpu_ms) = scrape_cost(&bg, idle)?;
        let before = cpu_seconds(bg.pid())?;
        let started = std::time::Instant::now();
        let ops = workload::paced_unshare(CHURN_PER_S, BUSY_SECS, libc::CLONE_NEWUTS);
        let busy = share(before, started.elapsed().as_secs_f64())?;
        let live = bg.metric("nstrace_namespaces")?;
        drop(held);
        bg.stop()?;
        let per_op_us = (busy - idle).max(0.0) * started.elapsed().as_secs_f64() * 1e6 / ops as f64;
        r.md.push_str(&format!(
            "| {label} | {live:.0} | **{:.2}** | {scrape_ms:.1}, {scrape_cpu_ms:.1} | **{:.2}** | {ops} | {per_op_us:.1} |\n",
            idle * 1000.0,
            busy * 100.0
        ));
        rows.push(json!({"binary": label, "live_namespaces": live, "idle_cpu_percent": idle * 100.0,
            "scrape_ms": scrape_ms, "scrape_cpu_ms": scrape_cpu_ms,
            "churn_cpu_percent": busy * 100.0, "ops": ops, "service_us_per_op": per_op_us}));
    }
    r.md.push('\n');
    r.json["busy_host"] = json!(rows);
    Ok(())
}

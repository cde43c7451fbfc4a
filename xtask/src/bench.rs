//! `cargo xtask bench`: side-by-side measurements, written to
//! docs/benchmarks.md and docs/benchmarks.json. Every figure is a ratio or a
//! count from the same run (medians of several runs, with the spread).

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

mod report;

pub(crate) use report::Report;

use crate::{
    setup::{cargo, run, workspace_root},
    workload::{self, Held},
};

pub(crate) const RUNS: usize = 5;

pub(crate) struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub(crate) fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    Stats { median: v[v.len() / 2], min: v[0], max: v[v.len() - 1] }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs a command to completion with stdout captured; returns (time, stdout).
pub(crate) fn timed(cmd: &mut Command) -> anyhow::Result<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let out = cmd.stderr(Stdio::null()).output().with_context(|| format!("{cmd:?}"))?;
    let t = start.elapsed();
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    Ok((t, out.stdout))
}

pub(crate) fn nstrace_bin() -> PathBuf {
    workspace_root().join("target/release/nstrace")
}

/// A background nstrace (trace/export) that is stopped with SIGINT.
pub(crate) struct Background {
    child: Child,
    stderr: BufReader<std::process::ChildStderr>,
    /// The line it printed when ready (an export names its address there).
    ready_line: String,
}

impl Background {
    pub(crate) fn start(args: &[&str], ready: &str) -> anyhow::Result<Background> {
        Background::start_bin(&nstrace_bin(), args, ready)
    }

    pub(crate) fn start_bin(bin: &Path, args: &[&str], ready: &str) -> anyhow::Result<Background> {
        let mut child = Command::new(bin).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if stderr.read_line(&mut line)? == 0 {
                bail!("nstrace {args:?} exited before it was ready");
            }
            if line.contains(ready) {
                break;
            }
        }
        Ok(Background { child, stderr, ready_line: line })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The HTTP address an export or serve named in its ready line.
    pub(crate) fn address(&self) -> Option<String> {
        Some(self.ready_line.split("http://").nth(1)?.split(['/', ' ', '\n']).next()?.to_string())
    }

    /// An export's /metrics page.
    pub(crate) fn page(&self) -> anyhow::Result<String> {
        use std::io::Write as _;
        let addr = self.address().context("no http address in the ready line")?;
        let mut conn = std::net::TcpStream::connect(&addr)?;
        write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut page = String::new();
        conn.read_to_string(&mut page)?;
        Ok(page)
    }

    /// The sum of an export's samples of `metric`, from its /metrics page.
    pub(crate) fn metric(&self, metric: &str) -> anyhow::Result<f64> {
        Ok(self
            .page()?
            .lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(metric))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Stops it and returns the rest of its stderr.
    pub(crate) fn stop(mut self) -> anyhow::Result<String> {
        // SAFETY: kill(2) takes no pointers; the pid is our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest)?;
        self.child.wait()?;
        Ok(rest)
    }
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS")
}

/// A KiB figure (`VmRSS`, `VmHWM`, ...) of /proc/PID/status.
pub(crate) fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// One benchmark case: measures and appends to the report.
type Case = fn(&mut Report) -> anyhow::Result<()>;

pub fn bench(only: &[String], baseline: Option<PathBuf>) -> anyhow::Result<()> {
    let root = workspace_root();
    run(cargo().current_dir(&root).args(["build", "--release", "-p", "nstrace"]))?;
    let started = Instant::now();
    let mut report = Report::new()?;
    report.baseline = baseline;
    let cases: [(&str, Case); 11] = [
        ("snapshot", snapshot),
        ("overhead", overhead),
        ("hot_hooks", hot_hooks),
        ("throughput", throughput),
        ("memory", memory),
        ("serve", crate::bench_serve::serve),
        ("hooks", crate::bench_hooks::hooks),
        ("busy_host", crate::bench_hooks::busy_host),
        ("soak", crate::bench_soak::soak),
        ("teardown", crate::bench_teardown::teardown),
        ("perf_data", crate::bench_perf_data::perf_data),
    ];
    if let Some(bad) = only.iter().find(|o| !cases.iter().any(|(name, _)| name == o)) {
        bail!("no bench case {bad:?}; cases: {:?}", cases.map(|(name, _)| name));
    }
    let mut failed = Vec::new();
    for (name, case) in cases.into_iter().filter(|(name, _)| only.is_empty() || only.iter().any(|o| o == name)) {
        eprintln!("xtask: bench case {name}");
        let start = report.md.len();
        // A failed case is reported, and the others still run.
        if let Err(e) = case(&mut report) {
            eprintln!("xtask: bench case {name} failed: {e:#}");
            report.md.push_str(&format!("\n**Case `{name}` failed:** {e:#}\n"));
            report.json["failed"][name] = json!(format!("{e:#}"));
            failed.push(name);
        }
        let text = report.md[start..].to_string();
        report.cases.push((name, text));
    }
    report.write(&root.join("docs"), started.elapsed())?;
    if !failed.is_empty() {
        bail!("bench cases failed: {failed:?}");
    }
    Ok(())
}

pub(crate) fn count_json_array(bytes: &[u8], key: Option<&str>) -> usize {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let arr = match key {
        Some(k) => &v[k],
        None => &v,
    };
    arr.as_array().map(Vec::len).unwrap_or(0)
}

/// Case 1 (and 6): `nstrace ls --json` vs `lsns --json`, and where
/// nstrace's time goes (`ls --timings`).
fn snapshot(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "Snapshot: `nstrace ls --json` vs `lsns --json`",
        "Extra namespaces are held by processes, each in its own new uts and ipc namespaces, so lsns can see \
         them too. `found` counts rows each tool printed (nstrace also lists what lsns cannot see). Goal: lsns / \
         nstrace >= 10x at +2,000 and >= 25x at +10,000, with complete holders.",
    );
    r.md.push_str("| extra namespaces | nstrace ms | lsns ms | lsns / nstrace | nstrace found | lsns found |\n|---|---|---|---|---|---|\n");
    let mut rows = Vec::new();
    let mut phase_tables = Vec::new();
    let mut baseline_rows = Vec::new();
    let baseline = r.baseline.clone();
    for extra in [2_000usize, 10_000] {
        let held = Held::uts_ipc_processes(extra / 2)?;
        std::thread::sleep(Duration::from_millis(500));
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut found_ours, mut found_theirs) = (0, 0);
        // Warm caches for both, then alternate.
        timed(Command::new(nstrace_bin()).args(["ls", "--json"]))?;
        timed(Command::new("lsns").arg("--json"))?;
        for _ in 0..RUNS {
            let (t, out) = timed(Command::new(nstrace_bin()).args(["ls", "--json"]))?;
            ours.push(ms(t));
            found_ours = count_json_array(&out, None);
            let (t, out) = timed(Command::new("lsns").arg("--json"))?;
            theirs.push(ms(t));
            found_theirs = count_json_array(&out, Some("namespaces"));
        }
        phase_tables.push((extra, phases(RUNS)?));
        if let Some(b) = &baseline {
            // The earlier binary, same host state. In blocks, each after a
            // warm-up: a binary's first run replaces the other's pinned walk
            // programs with its own (loading them takes most of a second).
            let block = |bin: &Path| -> anyhow::Result<Vec<f64>> {
                timed(Command::new(bin).args(["ls", "--json"]))?;
                (0..RUNS).map(|_| Ok(ms(timed(Command::new(bin).args(["ls", "--json"]))?.0))).collect()
            };
            let before = block(b)?;
            let after = block(&nstrace_bin())?;
            baseline_rows.push((extra, stats(before), stats(after)));
        }
        drop(held);
        let (o, t) = (stats(ours), stats(theirs));
        let ratio = t.median / o.median;
        r.md.push_str(&format!(
            "| {extra} | {:.1} ({:.1}..{:.1}) | {:.1} ({:.1}..{:.1}) | {ratio:.1}x | {found_ours} | {found_theirs} |\n",
            o.median, o.min, o.max, t.median, t.min, t.max
        ));
        rows.push(json!({ "extra": extra, "nstrace_ms": o.median, "lsns_ms": t.median, "ratio": ratio,
            "nstrace_found": found_ours, "lsns_found": found_theirs }));
        // Namespaces of killed processes take a moment to be freed.
        std::thread::sleep(Duration::from_secs(2));
    }
    r.md.push_str(
        "\nWhere nstrace's time goes (`nstrace ls --json --timings`, medians of separate runs; the process's \
         start and exit are the difference to the wall time above):\n\n",
    );
    let names: Vec<String> =
        phase_tables.first().map(|(_, p)| p.iter().map(|(n, _)| n.clone()).collect()).unwrap_or_default();
    r.md.push_str(&format!(
        "| phase | {} |\n|---|{}\n",
        phase_tables.iter().map(|(e, _)| format!("+{e} ms")).collect::<Vec<_>>().join(" | "),
        "---|".repeat(phase_tables.len())
    ));
    for name in &names {
        let cells: Vec<String> = phase_tables
            .iter()
            .map(|(_, p)| p.iter().find(|(n, _)| n == name).map_or("-".into(), |(_, v)| format!("{v:.2}")))
            .collect();
        r.md.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
    }
    if let Some(b) = &baseline {
        r.md.push_str(&format!(
            "\nBefore and after, in the same run, with the same processes (`--baseline {}`):\n\n\
             | extra namespaces | before ms | after ms | before / after |\n|---|---|---|---|\n",
            b.display()
        ));
        for (extra, before, after) in &baseline_rows {
            r.md.push_str(&format!(
                "| {extra} | {:.1} ({:.1}..{:.1}) | {:.1} ({:.1}..{:.1}) | {:.1}x |\n",
                before.median,
                before.min,
                before.max,
                after.median,
                after.min,
                after.max,
                before.median / after.median
            ));
        }
    }
    r.json["snapshot"] = json!(rows);
    r.json["snapshot_phases"] = json!(phase_tables);
    Ok(())
}

/// Median time of each phase over `runs` runs of `ls --json --timings`.
fn phases(runs: usize) -> anyhow::Result<Vec<(String, f64)>> {
    let mut by_phase: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..runs {
        let out = Command::new(nstrace_bin()).args(["ls", "--json", "--timings"]).output()?;
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            let Some((name, value)) = line.strip_prefix("timing ").and_then(|l| l.rsplit_once(": ")) else {
                continue;
            };
            let Some(v) = value.strip_suffix(" ms").and_then(|v| v.parse::<f64>().ok()) else { continue };
            match by_phase.iter_mut().find(|(n, _)| n == name) {
                Some((_, vs)) => vs.push(v),
                None => by_phase.push((name.to_string(), vec![v])),
            }
        }
    }
    Ok(by_phase.into_iter().map(|(n, vs)| (n, stats(vs).median)).collect())
}

fn churn_mix() -> (Duration, usize) {
    let per_type = 150;
    let mut t = Duration::ZERO;
    let mut ops = 0;
    for flag in [
        libc::CLONE_NEWNET,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWCGROUP,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        0x80,
    ] {
        t += workload::churn_unshare(per_type, flag);
        ops += per_type;
    }
    t += workload::churn_clone3(300, (libc::CLONE_NEWPID | libc::CLONE_NEWNET) as u64);
    ops += 300;
    t += workload::churn_setns(500);
    ops += 2000;
    (t, ops)
}

/// This build and, with `--baseline`, the earlier one: (label, binary).
fn binaries(r: &Report) -> Vec<(String, PathBuf)> {
    let mut bins = vec![("with tracer".to_string(), nstrace_bin())];
    if let Some(b) = &r.baseline {
        bins.push((format!("with baseline tracer ({})", b.display()), b.clone()));
    }
    bins
}

/// Wall times (ms) of `work` alone and under each of `bins` started with
/// `args`, interleaved run by run: (label, stats) rows, "without" first.
fn with_and_without(
    bins: &[(String, PathBuf)],
    args: &[&[&str]],
    work: &dyn Fn() -> Duration,
) -> anyhow::Result<Vec<(String, Stats)>> {
    let mut rows: Vec<(String, Vec<f64>)> = vec![("without tracer".into(), Vec::new())];
    for (label, _) in bins {
        for a in args {
            let suffix = if a.contains(&"--no-syscall-events") { ", --no-syscall-events" } else { "" };
            rows.push((format!("{label}{suffix}"), Vec::new()));
        }
    }
    work(); // warm-up
    for _ in 0..RUNS {
        rows[0].1.push(ms(work()));
        let mut i = 1;
        for (_, bin) in bins {
            for a in args {
                let bg = Background::start_bin(bin, a, "tracing")?;
                rows[i].1.push(ms(work()));
                bg.stop()?;
                i += 1;
            }
        }
    }
    Ok(rows.into_iter().map(|(label, v)| (label, stats(v))).collect())
}

/// A table of `rows` with the time each adds over the first.
fn added_table(rows: &[(String, Stats)]) -> String {
    let base = rows[0].1.median;
    let mut md = String::from("| | wall ms | added |\n|---|---|---|\n");
    for (i, (label, s)) in rows.iter().enumerate() {
        let added = if i == 0 { String::new() } else { format!("**{:.2}%**", (s.median / base - 1.0) * 100.0) };
        md.push_str(&format!("| {label} | {:.1} ({:.1}..{:.1}) | {added} |\n", s.median, s.min, s.max));
    }
    md
}

/// Case 2: a namespace churn workload with and without `nstrace trace`.
fn overhead(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "Event overhead: namespace churn with and without `nstrace trace`",
        "Workload: fork + unshare of each type + exit (150 each), clone3(CLONE_NEWPID|CLONE_NEWNET) (300), \
         setns round-trips (2,000 calls). Tracer: `nstrace trace --format json > /dev/null` (and, with \
         `--baseline`, the earlier build, runs interleaved). Goal: < 2% added wall time.",
    );
    let ops = churn_mix().1;
    let rows = with_and_without(&binaries(r), &[&["trace", "--format", "json"]], &|| churn_mix().0)?;
    let (a, b) = (&rows[0].1, &rows[1].1);
    let added = (b.median / a.median - 1.0) * 100.0;
    let ns_per_op = (b.median - a.median) * 1e6 / ops as f64;
    r.md.push_str(&added_table(&rows));
    r.md.push_str(&format!("\nAbout {ns_per_op:.0} ns added per namespace operation ({ops} operations).\n"));
    r.json["overhead"] = json!({ "without_ms": a.median, "with_ms": b.median, "added_percent": added,
        "ns_per_op": ns_per_op, "ops": ops,
        "rows": rows.iter().map(|(l, s)| json!({"label": l, "median_ms": s.median})).collect::<Vec<_>>() });
    Ok(())
}

/// Case 3: kfree-heavy work with and without the tracer.
fn hot_hooks(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "Hot-hook cost: a kfree-heavy workload",
        "200,000 unix-socket open/close cycles with and without `nstrace trace`. nstrace attaches no \
         kfree/kmem_cache_free hooks on this kernel (deaths are confirmed by the tree walk). What remains is \
         the syscalls:* tracepoints for unshare/setns events: while any is attached, every syscall of every \
         task takes the tracing slow path; `--no-syscall-events` leaves them out. Goal: < 0.5%.",
    );
    let n = 200_000;
    let args: [&[&str]; 2] = [&["trace", "--format", "json"], &["trace", "--format", "json", "--no-syscall-events"]];
    let rows = with_and_without(&binaries(r), &args, &|| workload::churn_sockets(n))?;
    r.md.push_str(&added_table(&rows));
    let (a, b, c) = (rows[0].1.median, rows[1].1.median, rows[2].1.median);
    r.json["hot_hooks"] = json!({ "without_ms": a, "with_ms": b, "added_percent": (b / a - 1.0) * 100.0,
        "no_syscall_events_ms": c, "no_syscall_events_added_percent": (c / a - 1.0) * 100.0,
        "rows": rows.iter().map(|(l, s)| json!({"label": l, "median_ms": s.median})).collect::<Vec<_>>() });
    Ok(())
}

/// Parses "N records, N lost, ..." from trace's closing line.
fn lost_from(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.split(" records, ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// Case 4: the fastest creation rate; losses with the default and a tiny ring.
fn throughput(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "Throughput and loss",
        "5,000 fork + unshare(CLONE_NEWUTS) + exit as fast as this machine allows, traced into a JSON file. \
         Every unshare is either an `unshare` event or counted in the lost counter (`accounted` must equal 5,000).",
    );
    r.md.push_str(
        "| ring | rate (ns/s) | unshare events | lost records (all kinds) | accounted |\n|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for (label, ring) in [("default (4 MiB)", None), ("tiny (4 KiB)", Some("4096"))] {
        let out = std::env::temp_dir().join("nstrace-bench-trace.json");
        let file = std::fs::File::create(&out)?;
        let mut args = vec!["trace", "--format", "json", "--event", "unshare,lost"];
        if let Some(b) = ring {
            args.extend(["--ring-bytes", b]);
        }
        let mut child = Command::new(nstrace_bin()).args(&args).stdout(file).stderr(Stdio::piped()).spawn()?;
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line)?;
        let me = std::process::id();
        let t = workload::churn_unshare(5000, libc::CLONE_NEWUTS);
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: kill(2) takes no pointers; the pid is our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let mut rest = String::new();
        stderr.read_to_string(&mut rest)?;
        child.wait()?;
        let text = std::fs::read_to_string(&out)?;
        let mut unshare = 0u64;
        let mut lost_unshare = 0u64;
        for v in text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
            if v["event"] == "unshare" && v["comm"] == "xtask" && v["pid"] != me {
                unshare += 1;
            }
            if v["event"] == "lost" && v["kind"] == "unshare" {
                lost_unshare += v["count"].as_u64().unwrap_or(0);
            }
        }
        let lost_all = lost_from(&rest);
        let rate = 5000.0 / t.as_secs_f64();
        r.md.push_str(&format!("| {label} | {rate:.0} | {unshare} | {lost_all} | {} |\n", unshare + lost_unshare));
        rows.push(json!({ "ring": label, "rate_per_s": rate, "unshare_events": unshare,
            "lost_unshare": lost_unshare, "lost_all": lost_all, "accounted": unshare + lost_unshare }));
        let _ = std::fs::remove_file(&out);
    }
    r.json["throughput"] = json!(rows);
    Ok(())
}

/// Case 5: resident memory per tracked namespace.
fn memory(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "Memory per tracked namespace",
        "Resident memory of `nstrace live --plain` (the same store `export` and `serve` keep) after it has \
         taken in N extra uts and ipc namespaces held by open fds, minus its resident memory with none. \
         Sampled every 250 ms for 6 s after start-up, refreshes included: the **maximum** decides (goal \
         < 700 bytes per namespace), the median is shown beside it. With `--baseline`, an earlier binary \
         is measured in the same run, size by size.",
    );
    r.md.push_str(
        "| binary | namespaces | RSS KiB max (median) | base KiB max | per namespace, max (bytes) | per namespace, median |\n\
         |---|---|---|---|---|---|\n",
    );
    let measure = |bin: &Path| -> anyhow::Result<Stats> {
        let bg = Background::start_bin(bin, &["live", "--plain", "--interval", "1"], "live")?;
        std::thread::sleep(Duration::from_secs(2));
        let mut samples = Vec::new();
        for _ in 0..24 {
            samples.push(rss_kib(bg.pid())? as f64);
            std::thread::sleep(Duration::from_millis(250));
        }
        bg.stop()?;
        Ok(stats(samples))
    };
    let mut bins = vec![("this".to_string(), nstrace_bin())];
    if let Some(b) = &r.baseline {
        bins.push((format!("baseline ({})", b.display()), b.clone()));
    }
    let mut bases = Vec::new();
    for (_, bin) in &bins {
        match measure(bin) {
            Ok(b) => bases.push(b),
            Err(e) => {
                r.md.push_str(&format!("Not measured: {e}\n"));
                return Ok(());
            }
        }
    }
    let mut rows = Vec::new();
    for n in [20_000usize, 100_000] {
        let held = Held::fds(n)?;
        for ((label, bin), base) in bins.iter().zip(&bases) {
            let m = measure(bin)?;
            let per = |v: f64, b: f64| (v - b).max(0.0) * 1024.0 / n as f64;
            let (per_max, per_median) = (per(m.max, base.max), per(m.median, base.median));
            r.md.push_str(&format!(
                "| {label} | {n} | {:.0} ({:.0}) | {:.0} | **{per_max:.0}** | {per_median:.0} |\n",
                m.max, m.median, base.max
            ));
            rows.push(json!({ "binary": label, "namespaces": n, "rss_max_kib": m.max, "rss_median_kib": m.median,
                "base_max_kib": base.max, "bytes_per_ns_max": per_max, "bytes_per_ns_median": per_median }));
        }
        drop(held);
        std::thread::sleep(Duration::from_secs(3));
    }
    r.json["memory"] = json!(rows);
    Ok(())
}

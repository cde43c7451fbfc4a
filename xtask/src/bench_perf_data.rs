//! `cargo xtask bench --only perf_data`: what writing perf.data costs
//! (issue 41), against the text output doing the same work in the same
//! run: `nstrace trace --format text` of every event kind (to /dev/null)
//! and `nstrace trace --perf-data FILE`, both with every task's records, each tracing
//! 10,000 unshare(CLONE_NEWUTS) calls; the tracer's CPU time, its peak
//! memory and the file's size. Runs alternate.

use std::process::Command;

use anyhow::bail;
use serde_json::json;

use crate::{
    bench::{Background, Report, stats, status_kib},
    bench_serve::cpu_seconds,
};

const OPERATIONS: usize = 10_000;
const RUNS: usize = 3;
/// Every event kind: the text output of what the file holds.
const EVERY_KIND: &str = "create,dying,destroy,setns,unshare,clone,namespaces,exit,mount,refused,lost,resync";

/// One run: the tracer's CPU seconds and peak KiB for the workload.
fn run_once(args: &[&str]) -> anyhow::Result<(f64, u64)> {
    let tracer = Background::start(args, "tracing")?;
    let before = cpu_seconds(tracer.pid())?;
    let script = format!(
        "import ctypes\nlibc = ctypes.CDLL(None)\nfor _ in range({OPERATIONS}):\n    assert libc.unshare(0x04000000) == 0\n"
    );
    let out = Command::new("python3").args(["-c", &script]).output()?;
    if !out.status.success() {
        bail!("workload: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Until the tracer has drained its backlog: its CPU time stops growing.
    let mut last = cpu_seconds(tracer.pid())?;
    for _ in 0..60 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = cpu_seconds(tracer.pid())?;
        if now - last < 0.005 {
            break;
        }
        last = now;
    }
    let cpu = cpu_seconds(tracer.pid())? - before;
    let peak = status_kib(tracer.pid(), "VmHWM")?;
    tracer.stop()?;
    Ok((cpu, peak))
}

pub(crate) fn perf_data(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "perf.data output (issue 41)",
        "`nstrace trace --format text --event <every kind>` (stdout to /dev/null) vs `nstrace trace --perf-data \
         FILE` (no stdout): the same events, every task's fork, exec and exit included, each tracing 10,000 unshare(CLONE_NEWUTS) calls; runs \
         alternate. Tracer CPU time is from /proc/PID/stat (10 ms ticks), peak memory is VmHWM. Goal: the file \
         costs no more than the text.",
    );
    let dir = tempfile_dir()?;
    let file = format!("{dir}/bench.data");
    let (mut text, mut data, mut peaks) = (Vec::new(), Vec::new(), (0, 0));
    let mut size = 0;
    for _ in 0..RUNS {
        let (cpu, peak) = run_once(&["trace", "--format", "text", "--event", EVERY_KIND])?;
        text.push(cpu * 1e3);
        peaks.0 = peaks.0.max(peak);
        let (cpu, peak) = run_once(&["trace", "--perf-data", &file])?;
        data.push(cpu * 1e3);
        peaks.1 = peaks.1.max(peak);
        size = std::fs::metadata(&file)?.len();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (t, d) = (stats(text), stats(data));
    r.md.push_str("| output | tracer CPU ms (median, min–max) | peak RSS MiB | output size |\n|---|---|---|---|\n");
    r.md.push_str(&format!(
        "| `--format text` | {:.0} ({:.0}–{:.0}) | {:.1} | (stdout) |\n",
        t.median,
        t.min,
        t.max,
        peaks.0 as f64 / 1024.0
    ));
    r.md.push_str(&format!(
        "| `--perf-data` | {:.0} ({:.0}–{:.0}) | {:.1} | {:.1} MiB |\n",
        d.median,
        d.min,
        d.max,
        peaks.1 as f64 / 1024.0,
        size as f64 / 1048576.0
    ));
    r.md.push_str(&format!("\nperf.data / text CPU: **{:.2}**\n", d.median / t.median));
    r.json["perf_data"] = json!({
        "text_cpu_ms": t.median, "perf_data_cpu_ms": d.median, "ratio": d.median / t.median,
        "text_peak_kib": peaks.0, "perf_data_peak_kib": peaks.1, "file_bytes": size,
    });
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<String> {
    let out = Command::new("mktemp").args(["-d", "/tmp/nstrace-bench-XXXXXX"]).output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

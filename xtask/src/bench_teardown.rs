//! `cargo xtask bench --only teardown`: how long network namespaces take to
//! die here, as nstrace measures it (issue 40): N netns, each with a veth
//! pair and a TCP connection to itself closed, deleted in one `ip -batch`
//! under a running `nstrace export`; the teardown histogram, the peak of
//! the dying backlog, and the wall time from the deletion to the last death.

use std::{
    io::Write as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::bench::{Background, Report};

const SIZES: [usize; 2] = [500, 2_000];
const SOCKETS: &str = include_str!("../../tests/netns_sockets.py");

/// `ip -force -batch -` with `lines`, started (its input written).
fn spawn_ip_batch(lines: impl Iterator<Item = String>) -> anyhow::Result<std::process::Child> {
    let mut child =
        Command::new("ip").args(["-force", "-batch", "-"]).stdin(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    child.stdin.take().context("stdin")?.write_all(lines.collect::<Vec<_>>().join("\n").as_bytes())?;
    Ok(child)
}

/// `ip -force -batch -` with `lines`, to its end.
fn ip_batch(lines: impl Iterator<Item = String>) -> anyhow::Result<bool> {
    Ok(spawn_ip_batch(lines)?.wait()?.success())
}

/// The value of `name{...type="net"...}` (and `extra` label) on `page`.
fn net_sample(page: &str, name: &str, extra: Option<&str>) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains("type=\"net\""))
        .filter(|l| extra.is_none_or(|e| l.contains(e)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The teardown histogram's buckets (upper bound, cumulative count) on `page`.
fn buckets(page: &str) -> Vec<(f64, f64)> {
    page.lines()
        .filter(|l| l.starts_with("nstrace_namespace_teardown_seconds_bucket{") && l.contains("type=\"net\""))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The upper bound of the bucket holding quantile `q` of what `now` added to `before`.
fn quantile(before: &[(f64, f64)], now: &[(f64, f64)], q: f64) -> f64 {
    let total = now.last().map_or(0.0, |b| b.1) - before.last().map_or(0.0, |b| b.1);
    now.iter().zip(before).find(|((_, n), (_, b))| n - b >= q * total).map_or(f64::INFINITY, |((le, _), _)| *le)
}

/// One size: returns the report row.
fn measure(n: usize) -> anyhow::Result<Value> {
    let names: Vec<String> = (0..n).map(|i| format!("nstrace-td-{i}")).collect();
    let _ = ip_batch(names.iter().map(|x| format!("netns del {x}")));
    if !ip_batch(names.iter().map(|x| format!("netns add {x}")))? {
        bail!("ip netns add failed");
    }
    let veth = ip_batch(
        names.iter().enumerate().map(|(i, x)| format!("link add va{i} netns {x} type veth peer name vb{i} netns {x}")),
    )?;
    let py = Command::new("python3").arg("-c").arg(SOCKETS).args(&names).output()?;
    if !py.status.success() {
        bail!("sockets: {}", String::from_utf8_lossy(&py.stderr));
    }
    let state = "/tmp/nstrace-bench-teardown";
    let _ = std::fs::remove_dir_all(state);
    std::fs::create_dir_all(state)?;
    let (db, socket) = (format!("{state}/nstrace.db"), format!("{state}/nstrace.sock"));
    let bg = Background::start(
        &["export", "--listen", "127.0.0.1:0", "--db", &db, "--socket", &socket],
        "serving on http://",
    )?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while bg.metric("nstrace_namespaces")? < n as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = bg.page()?;
    let count0 = net_sample(&before, "nstrace_namespace_teardown_seconds_count", None);
    let sum0 = net_sample(&before, "nstrace_namespace_teardown_seconds_sum", None);
    // Scraped from the start of the deletion on: a batch can be torn down before `ip` returns.
    let deleted = Instant::now();
    let mut deleting = Some(spawn_ip_batch(names.iter().map(|x| format!("netns del {x}")))?);
    let mut peak = 0f64;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (wall, last) = loop {
        let page = bg.page()?;
        peak = peak.max(net_sample(&page, "nstrace_namespaces", Some("state=\"dying\"")));
        if deleting.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
            deleting = None;
        }
        let done = net_sample(&page, "nstrace_namespace_teardown_seconds_count", None) - count0 >= n as f64;
        if done || Instant::now() > deadline {
            break (deleted.elapsed().as_secs_f64(), page);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Some(mut c) = deleting {
        c.wait()?;
    }
    bg.stop()?;
    let count = net_sample(&last, "nstrace_namespace_teardown_seconds_count", None) - count0;
    let sum = net_sample(&last, "nstrace_namespace_teardown_seconds_sum", None) - sum0;
    let (b0, b1) = (buckets(&before), buckets(&last));
    Ok(json!({
        "netns": n, "veth": veth, "timed": count, "wall_s": wall, "mean_s": sum / count.max(1.0),
        "p50_le_s": quantile(&b0, &b1, 0.5), "p99_le_s": quantile(&b0, &b1, 0.99), "peak_dying": peak,
    }))
}

pub(crate) fn teardown(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "Network namespace teardown (issue 40)",
        "N network namespaces, each with a veth pair and a TCP connection to itself closed (TIME_WAIT sockets \
         to purge), deleted in one `ip -batch` while `nstrace export` runs. From its metrics: how many deaths \
         were timed (`nstrace_namespace_teardown_seconds_count`), their mean and the histogram buckets holding \
         the median and the 99th percentile, the peak of the dying backlog (`nstrace_namespaces{state=\"dying\"}`, \
         scraped every 50 ms), and the wall time from `ip netns del` to the last death.",
    );
    r.md.push_str(
        "| netns | veth pairs | deaths timed | wall, s | mean teardown, s | median ≤ s | p99 ≤ s | peak dying |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for n in SIZES {
        let v = measure(n)?;
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        r.md.push_str(&format!(
            "| {n} | {} | {:.0} | {:.2} | {:.3} | {} | {} | {:.0} |\n",
            if v["veth"] == true { "yes" } else { "no" },
            f("timed"),
            f("wall_s"),
            f("mean_s"),
            f("p50_le_s"),
            f("p99_le_s"),
            f("peak_dying")
        ));
        rows.push(v);
    }
    r.md.push('\n');
    r.json["teardown"] = json!(rows);
    Ok(())
}

//! `cargo xtask bench --only serve`: what the provenance database costs
//! (bytes per namespace, serve's CPU per namespace operation beside
//! `trace`'s), and the socket path against one-shot snapshots.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::json;

use crate::{
    bench::{Background, RUNS, Report, count_json_array, ms, nstrace_bin, stats, timed},
    workload::{self, Held},
};

/// CPU time (user + system) of `pid`, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').context("no comm in stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    Ok(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

fn sqlite(db: &str, sql: &str) -> anyhow::Result<f64> {
    let out = Command::new("sqlite3").args([db, sql]).output().context("sqlite3")?;
    String::from_utf8_lossy(&out.stdout).trim().parse().with_context(|| format!("{sql}: {out:?}"))
}

/// CPU seconds `tracer` spends while 5,000 namespaces are created and destroyed.
fn churn_cpu(tracer: &Background) -> anyhow::Result<f64> {
    let before = cpu_seconds(tracer.pid())?;
    workload::churn_unshare(5000, libc::CLONE_NEWUTS);
    // Deaths and database writes land within a few walks.
    std::thread::sleep(Duration::from_secs(3));
    Ok(cpu_seconds(tracer.pid())? - before)
}

pub fn serve(r: &mut Report) -> anyhow::Result<()> {
    r.section(
        "`nstrace serve`: the provenance database and the socket",
        "CPU: 5,000 fork + unshare(CLONE_NEWUTS) + exit (10,000 namespace operations: a create and a destroy \
         each), the CPU time (user + system) of `nstrace serve` (database on) and, in the same run, of \
         `nstrace trace --format json > /dev/null` (no database). Bytes: the database's pages over its rows \
         after that. Socket: `ls --json` and `why <inode>` answered by serve vs a one-shot snapshot \
         (`--no-service`) with 10,000 extra namespaces held by processes.",
    );
    let dir = std::env::temp_dir().join(format!("nstrace-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (db, sock) = (dir.join("nstrace.db"), dir.join("nstrace.sock"));
    let (db, sock) = (db.to_string_lossy().into_owned(), sock.to_string_lossy().into_owned());
    let serve_args = ["serve", "--listen", "127.0.0.1:0", "--db", &db, "--socket", &sock];

    let (mut with_db, mut without) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let bg = Background::start(&serve_args, "serving on")?;
        with_db.push(churn_cpu(&bg)? * 1e9 / 10_000.0);
        bg.stop()?;
        let bg = Background::start(&["trace", "--format", "json"], "tracing")?;
        without.push(churn_cpu(&bg)? * 1e9 / 10_000.0);
        bg.stop()?;
    }
    let (a, b) = (stats(with_db), stats(without));
    let db_rows = sqlite(&db, "SELECT count(*) FROM namespaces")?;
    let bytes = sqlite(&db, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")?;
    r.md.push_str(&format!(
        "| | CPU ns per namespace operation (medians of 3) |\n|---|---|\n\
         | `serve` (database on) | {:.0} ({:.0}..{:.0}) |\n| `trace` (no database) | {:.0} ({:.0}..{:.0}) |\n\n\
         serve / trace: **{:.2}x**. Database: {:.0} rows in {:.0} KiB: **{:.0} bytes per namespace**.\n\n",
        a.median,
        a.min,
        a.max,
        b.median,
        b.min,
        b.max,
        a.median / b.median,
        db_rows,
        bytes / 1024.0,
        bytes / db_rows
    ));

    let held = Held::processes(10_000 / 8)?;
    let bg = Background::start(&serve_args, "serving on")?;
    std::thread::sleep(Duration::from_secs(3));
    let client = |args: &[&str], service: bool| {
        let mut c = Command::new(nstrace_bin());
        c.args(args).env("NSTRACE_SOCKET", &sock);
        if !service {
            c.arg("--no-service");
        }
        c
    };
    let (_, listing) = timed(&mut client(&["ls", "--json"], true))?;
    let found = count_json_array(&listing, None);
    let rows: serde_json::Value = serde_json::from_slice(&listing)?;
    let inode =
        rows.as_array().and_then(|a| a.last()).and_then(|r| r["inode"].as_u64()).context("an inode")?.to_string();
    let mut table = String::from("| command | via serve ms | one-shot ms | one-shot / serve |\n|---|---|---|---|\n");
    let mut out = Vec::new();
    for (name, args) in [("ls --json", vec!["ls", "--json"]), ("why <inode>", vec!["why", inode.as_str()])] {
        let (mut via, mut oneshot) = (Vec::new(), Vec::new());
        timed(&mut client(&args, false))?;
        for _ in 0..RUNS {
            let t = Instant::now();
            timed(&mut client(&args, true))?;
            via.push(ms(t.elapsed()));
            oneshot.push(ms(timed(&mut client(&args, false))?.0));
        }
        let (v, o) = (stats(via), stats(oneshot));
        table.push_str(&format!(
            "| `{name}` | {:.1} ({:.1}..{:.1}) | {:.1} ({:.1}..{:.1}) | **{:.1}x** |\n",
            v.median,
            v.min,
            v.max,
            o.median,
            o.min,
            o.max,
            o.median / v.median
        ));
        out.push(
            json!({ "command": name, "serve_ms": v.median, "oneshot_ms": o.median, "ratio": o.median / v.median }),
        );
    }
    bg.stop()?;
    drop(held);
    r.md.push_str(&format!("With {found} namespaces listed:\n\n{table}"));
    r.json["serve"] = json!({ "cpu_ns_per_op_serve": a.median, "cpu_ns_per_op_trace": b.median,
        "db_rows": db_rows, "db_bytes": bytes, "bytes_per_namespace": bytes / db_rows, "socket": out });
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

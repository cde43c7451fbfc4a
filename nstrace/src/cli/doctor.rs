//! `nstrace doctor`: what this kernel lets nstrace do, and how.

use std::io::Write;

use serde::Serialize;

mod snapshot;

use crate::{
    chain::chain,
    error::exit,
    kernel::mechanism::Overrides,
    kernel::probe::{self, Report, Status},
    present::columns::Paint,
};

/// Probes the kernel and prints the report (text or pretty JSON). Returns
/// the exit code: 0 when nstrace can run here, 1 (a finding) otherwise.
pub fn run(json: bool, color: bool, forced: &Overrides, out: &mut impl Write) -> Result<i32, std::io::Error> {
    let mut report = probe::probe();
    if let Some(tracing) = report.sections.iter_mut().find(|s| s.title == "tracing") {
        tracing.checks.push(teardown_check());
    }
    if probe::fatal_reason(&report).is_none() {
        let (tree_walk, fd_walk, limits, changes, snapshot) = walk_checks();
        report.tree_walk = Some(tree_walk);
        report.fd_walk = fd_walk;
        report.limits = Some(limits);
        report.change_check = changes;
        report.snapshot_checks = snapshot;
    }
    report.mechanisms = probe::select_mechanisms(&report, forced);
    let fatal = probe::fatal_reason(&report);
    if json {
        write_json(&report, fatal.as_deref(), out)?;
    } else {
        write_text(&report, fatal.as_deref(), color, out)?;
    }
    Ok(if fatal.is_some() { exit::FINDINGS.into() } else { exit::OK.into() })
}

const LIMITS: &str = "namespace limits";

/// What `limits` says where the walk cannot read the kernel's counts.
fn limits_estimated(why: &str) -> probe::Check {
    probe::Check::new(
        LIMITS,
        Status::Missing,
        format!(
            "{why}: `nstrace limits` estimates counts from each namespace's owner (the charged uid is unknown) \
             and knows no limit below the host; refused creations are still explained from the kernel's own \
             counts, read at the refusal"
        ),
    )
}

/// Whether the walk read the kernel's charges: namespaces with a charged
/// uid, user namespaces with their limits.
fn limits_check(rows: &[nstrace_common::event::NsInfoRecord]) -> probe::Check {
    use nstrace_common::{event::UID_UNKNOWN, ns::NsType};
    let charged = rows.iter().filter(|r| r.charged_uid != UID_UNKNOWN).count();
    let users = rows.iter().filter(|r| r.ns_type == NsType::User as u32).count();
    let with_limits = rows
        .iter()
        .filter(|r| r.ns_type == NsType::User as u32)
        .filter(|r| r.limits.iter().any(|&l| l != nstrace_common::event::COUNT_UNKNOWN))
        .count();
    if with_limits == 0 {
        return limits_estimated("the walk read no user namespace's limits (BTF lacks ucounts or ucount_max)");
    }
    probe::Check::new(
        LIMITS,
        Status::Ok,
        format!(
            "the kernel's own counts (struct ucounts): {charged} of {} namespaces charged (the initial ones never \
             are), limits of {with_limits} of {users} user namespaces",
            rows.len()
        ),
    )
}

/// Whether network namespace teardown is tracked: the start and end of each
/// `cleanup_net` run can be hooked (kallsyms names it, BTF has
/// `work_struct.func`, the workqueue tracepoints exist).
fn teardown_check() -> probe::Check {
    const NAME: &str = "netns teardown";
    let untracked = "network namespaces are gone at their last reference, never `dying`";
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    let named = crate::kernel::tracefs::kallsyms_text_symbols(&kallsyms).any(|(a, n)| n == "cleanup_net" && a != 0);
    let func = crate::kernel::btf::Btf::from_sys_fs().map(|b| b.member_offset("work_struct", "func").is_ok());
    let tracepoints = ["workqueue_execute_start", "workqueue_execute_end"]
        .iter()
        .all(|t| std::path::Path::new(crate::kernel::tracefs::TRACEFS_DIR).join("events/workqueue").join(t).is_dir());
    match (named, func, tracepoints) {
        (true, Ok(true), true) => probe::Check::new(
            NAME,
            Status::Ok,
            "cleanup_net's start and end are hooked: a network namespace with no reference left is `dying` until \
             the run that tears it down ends (namespace_teardown_seconds, leaks --stuck-after)",
        ),
        (false, ..) => probe::Check::new(
            NAME,
            Status::Missing,
            format!("kallsyms does not name cleanup_net (root reads it; kptr_restrict): {untracked}"),
        ),
        (_, Ok(false), _) => {
            probe::Check::new(NAME, Status::Missing, format!("BTF has no work_struct.func: {untracked}"))
        }
        (_, Err(e), _) => probe::Check::new(NAME, Status::Error, format!("BTF: {}: {untracked}", chain(&e))),
        (_, _, false) => {
            probe::Check::new(NAME, Status::Missing, format!("no workqueue tracepoints in tracefs: {untracked}"))
        }
    }
}

const CHANGES: &str = "change check";

/// How the service learns that a list changed on a quiet host: the 6.18
/// lists' change counts (read after a walk noted their heads), or a walk
/// of every list each `--walk-interval`.
fn change_check(walker: &crate::kernel::walker::Walker) -> probe::Check {
    let started = std::time::Instant::now();
    match walker.change_counts() {
        Some(Ok(counts)) if counts.iter().all(Option::is_some) => probe::Check::new(
            CHANGES,
            Status::Ok,
            format!(
                "the lists' own change counts (6.18 struct ns_tree seqlocks), read in {} us: a quiet host costs \
                 no walk; a list is walked when it changed, every list each --sweep",
                started.elapsed().as_micros()
            ),
        ),
        Some(Ok(counts)) => probe::Check::new(
            CHANGES,
            Status::Error,
            format!(
                "the walk noted the heads of {} of 8 lists: the others are walked each --walk-interval",
                counts.iter().flatten().count()
            ),
        ),
        Some(Err(e)) => probe::Check::new(CHANGES, Status::Error, chain(&e)),
        None => probe::Check::new(
            CHANGES,
            Status::Missing,
            "the lists keep no per-type change count nstrace can read (6.18 only): the service walks every list \
             each --walk-interval, or only each --sweep where a destroy hook reports every death",
        ),
    }
}

/// The checks [`walk_checks`] makes: tree walk, fd walk, limits, change
/// check, and what else the snapshot shows.
type WalkChecks = (probe::Check, Option<probe::Check>, probe::Check, Option<probe::Check>, Vec<probe::Check>);

/// Loads our eBPF object and takes one whole snapshot as `ls` does: every
/// namespace list, then the task and fd walks, then the change check. The
/// fd walk's and change check's are None when the tree walk itself failed.
fn walk_checks() -> WalkChecks {
    const NAME: &str = "namespace tree walk";
    const FDS: &str = "fd walk";
    let walker = crate::kernel::loader::Tracer::load(&Default::default()).map_err(|e| chain(&e)).and_then(|mut t| {
        if !t.has_ns_tree() {
            return Err("kernel has no per-type namespace lists (needs 6.18+)".to_string());
        }
        crate::kernel::walker::Walker::load(&mut t).map_err(|e| chain(&e))
    });
    let mut walker = match walker {
        Ok(w) => w,
        Err(e) => {
            let sockets = vec![snapshot::sockets_check(false, false)];
            return (probe::Check::new(NAME, Status::Error, e.clone()), None, limits_estimated(&e), None, sockets);
        }
    };
    let (rows, mut stats) = match walker.walk_all() {
        Ok(found) => found,
        Err(e) => {
            let e = chain(&e);
            let sockets = vec![snapshot::sockets_check(false, false)];
            return (probe::Check::new(NAME, Status::Error, e.clone()), None, limits_estimated(&e), None, sockets);
        }
    };
    let limits = limits_check(&rows);
    let tree = probe::Check::new(
        NAME,
        Status::Ok,
        format!("{} namespaces in {} us ({} runs)", rows.len(), stats.micros, stats.runs),
    );
    let counted = rows.iter().any(|r| r.active != nstrace_common::event::ACTIVE_UNKNOWN);
    let mut snapshot = Vec::new();
    let fds = match walker.walk_tasks_and_fds(&mut stats) {
        Ok((tasks, Some(fds))) => {
            let sockets = fds.iter().filter(|f| f.via == nstrace_common::event::fd_via::SOCKET).count();
            snapshot.push(snapshot::sockets_check(stats.sockets_read, counted));
            let nsfs = fds.len() - sockets;
            let detail = format!(
                "{nsfs} nsfs fd(s) and {sockets} socket(s) of another netns in the file tables of {} processes",
                tasks.len()
            );
            probe::Check::new(FDS, Status::Ok, detail)
        }
        Ok((_, None)) => probe::Check::new(
            FDS,
            Status::Missing,
            "not loaded on this kernel (RUST_LOG=info says why): nsfs fds come from /proc",
        ),
        Err(e) => probe::Check::new(FDS, Status::Error, chain(&e)),
    };
    if snapshot.is_empty() {
        snapshot.push(snapshot::sockets_check(false, counted));
    }
    if counted {
        snapshot.push(snapshot::listns_check(&rows, &mut walker));
    }
    (tree, Some(fds), limits, Some(change_check(&walker)), snapshot)
}

/// JSON keeps the fatal reason inside the document so the output stays parseable.
pub fn write_json(report: &Report, fatal: Option<&str>, out: &mut impl Write) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Doc<'a> {
        #[serde(flatten)]
        report: &'a Report,
        fatal: Option<&'a str>,
    }
    serde_json::to_writer_pretty(&mut *out, &Doc { report, fatal })?;
    writeln!(out)
}

pub fn write_text(report: &Report, fatal: Option<&str>, color: bool, out: &mut impl Write) -> std::io::Result<()> {
    let checks = report
        .sections
        .iter()
        .flat_map(|s| &s.checks)
        .chain(&report.tree_walk)
        .chain(&report.fd_walk)
        .chain(&report.limits)
        .chain(&report.change_check)
        .chain(&report.snapshot_checks);
    let width = checks.map(|c| c.name.len()).max().unwrap_or(0);
    for section in &report.sections {
        writeln!(out, "{}", section.title)?;
        for c in &section.checks {
            writeln!(out, "  {}  {:<width$}  {}", marker(c.status, color), c.name, c.detail)?;
        }
    }
    if let Some(c) = &report.tree_walk {
        writeln!(out, "tree walk")?;
        let walk = std::iter::once(c).chain(&report.fd_walk).chain(&report.limits).chain(&report.change_check);
        for c in walk.chain(&report.snapshot_checks) {
            writeln!(out, "  {}  {:<width$}  {}", marker(c.status, color), c.name, c.detail)?;
        }
    }
    let m = &report.mechanisms;
    writeln!(out, "mechanisms")?;
    for (job, how) in [("events", &m.events), ("create", &m.create), ("destroy", &m.destroy), ("snapshot", &m.snapshot)]
    {
        if !how.is_empty() {
            writeln!(out, "  {job:<8}  {how}")?;
        }
    }
    if let Some(reason) = fatal {
        writeln!(out, "{}: {reason}", Paint::Red.apply(color, "nstrace cannot run"))?;
    }
    Ok(())
}

/// "ok ", "no ", "err" (three wide), green, yellow and red when coloured.
fn marker(s: Status, color: bool) -> String {
    let (text, paint) = match s {
        Status::Ok => ("ok ", Paint::Green),
        Status::Missing => ("no ", Paint::Yellow),
        Status::Error => ("err", Paint::Red),
    };
    paint.apply(color, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::probe::{Check, MechanismReport, Section};

    fn report() -> Report {
        Report {
            sections: vec![Section {
                title: "bpf".into(),
                checks: vec![
                    Check::new("prog tracepoint", Status::Ok, "loads"),
                    Check::new("prog tracing (fentry)", Status::Missing, "not loadable: EPERM"),
                ],
            }],
            mechanisms: MechanismReport {
                events: "tracepoints".into(),
                create: "tracepoints".into(),
                destroy: "tree-walk".into(),
                snapshot: "tree-walk".into(),
                error: None,
            },
            tree_walk: None,
            fd_walk: None,
            limits: None,
            change_check: None,
            snapshot_checks: Vec::new(),
        }
    }

    #[test]
    fn text_is_aligned_and_ends_with_reason() {
        let mut out = Vec::new();
        write_text(&report(), Some("no usable kernel BTF"), false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("  ok   prog tracepoint        loads\n"), "{text}");
        assert!(text.contains("  no   prog tracing (fentry)  not loadable: EPERM\n"), "{text}");
        assert!(text.contains("  events    tracepoints\n"), "{text}");
        assert_eq!(text.lines().last(), Some("nstrace cannot run: no usable kernel BTF"));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_marks_ok_green_missing_yellow_and_the_verdict_red() {
        let mut out = Vec::new();
        write_text(&report(), Some("no usable kernel BTF"), true, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("  \x1b[32mok \x1b[0m  prog tracepoint        loads\n"), "{text:?}");
        assert!(text.contains("  \x1b[33mno \x1b[0m  prog tracing (fentry)  not loadable: EPERM\n"), "{text:?}");
        assert_eq!(text.lines().last(), Some("\x1b[31mnstrace cannot run\x1b[0m: no usable kernel BTF"));
    }

    #[test]
    fn json_is_one_document() {
        let mut out = Vec::new();
        write_json(&report(), None, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["sections"][0]["checks"][1]["status"], "missing");
        assert_eq!(v["mechanisms"]["snapshot"], "tree-walk");
        assert!(v["fatal"].is_null() && v["tree_walk"].is_null());
    }
}

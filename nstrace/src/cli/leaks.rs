//! `nstrace leaks`: namespaces no task is in, grouped by type and by what
//! holds them, with the concrete holder. Exit status: 0 none, 1 leaks, 2 error.

use std::{
    collections::BTreeMap,
    io::{BufWriter, Write},
    time::Duration,
};

use nstrace_common::ns::NsType;
use serde::Serialize;

use crate::{
    cli::{ls::TypeArg, trace::parse_seconds},
    error::{Error, Result},
    explain::{Explainer, Reason},
    snapshot::{self, NsRow, NsState, Source},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only namespaces at least this old (seconds; a suffix "s" is allowed).
    /// Namespaces whose creation nstrace did not see count as old enough.
    #[arg(long, value_parser = parse_seconds)]
    pub min_age: Option<Duration>,
    /// Only these types.
    #[arg(long = "type", short = 't', value_enum, value_delimiter = ',')]
    pub types: Vec<TypeArg>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Force a snapshot source.
    #[arg(long, value_enum)]
    pub source: Option<Source>,
}

#[derive(Debug, Serialize)]
pub struct Leak {
    #[serde(flatten)]
    pub row: NsRow,
    /// Seconds since creation; null: created before nstrace started.
    pub age: Option<f64>,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Serialize)]
pub struct LeakReport {
    pub count: usize,
    pub by_type: BTreeMap<String, usize>,
    pub by_holder: BTreeMap<String, usize>,
    pub leaks: Vec<Leak>,
}

/// Namespaces with no task, with their reasons.
pub fn find(rows: &[NsRow], types: &[NsType]) -> LeakReport {
    let explainer = Explainer::new(rows);
    let mut leaks = Vec::new();
    for row in rows {
        if row.state == NsState::Active || (!types.is_empty() && !types.contains(&row.ns_type)) {
            continue;
        }
        leaks.push(Leak { row: row.clone(), age: None, reasons: explainer.reasons(row) });
    }
    let mut by_type = BTreeMap::new();
    let mut by_holder = BTreeMap::new();
    for l in &leaks {
        *by_type.entry(l.row.ns_type.name().to_string()).or_insert(0) += 1;
        for r in &l.reasons {
            *by_holder.entry(r.kind().to_string()).or_insert(0) += 1;
        }
    }
    LeakReport { count: leaks.len(), by_type, by_holder, leaks }
}

pub fn run(args: Args) -> Result<i32> {
    let snap = snapshot::take(args.source).map_err(|e| Error::Usage(e.to_string()))?;
    let types: Vec<NsType> = args.types.iter().map(|t| NsType::from(*t)).collect();
    let mut report = find(&snap.rows, &types);
    // One-shot: creation times are unknown, so every leak is "old enough".
    if let Some(min) = args.min_age {
        report.leaks.retain(|l| l.age.is_none_or(|a| a >= min.as_secs_f64()));
        report.count = report.leaks.len();
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from).and_then(|_| writeln!(out))
    } else {
        write_text(&mut out, &report, args.min_age)
    };
    written.and_then(|_| out.flush()).map_err(|e| Error::io("writing output", e))?;
    Ok(if report.count == 0 { 0 } else { 1 })
}

fn write_text(out: &mut impl Write, r: &LeakReport, min_age: Option<Duration>) -> std::io::Result<()> {
    let min = min_age.map(|d| format!(" older than {}s", d.as_secs_f64())).unwrap_or_default();
    if r.count == 0 {
        return writeln!(out, "no leaked namespaces: every namespace{min} has a task in it");
    }
    writeln!(out, "{} namespace(s) with no task{min}", r.count)?;
    let join = |m: &BTreeMap<String, usize>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    writeln!(out, "  by type:   {}", join(&r.by_type))?;
    writeln!(out, "  by holder: {}", join(&r.by_holder))?;
    for l in &r.leaks {
        let age = l.age.map(|a| format!("{a:.0}s")).unwrap_or_else(|| "created before nstrace started".into());
        let containers: Vec<String> = l.row.containers.iter().map(|c| c.short()).collect();
        writeln!(
            out,
            "\n{} {} id={} [{}] age: {age}{}",
            l.row.ns_type.name(),
            l.row.inode,
            l.row.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            l.row.state.name(),
            if containers.is_empty() { String::new() } else { format!(" containers: {}", containers.join(",")) }
        )?;
        for reason in &l.reasons {
            writeln!(out, "  held by {}", reason.describe())?;
        }
    }
    Ok(())
}

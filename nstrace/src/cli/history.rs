//! `nstrace history`: every namespace the provenance database remembers,
//! including those already gone, with creator, container, pins, lifetime.

use std::{io::Write, path::PathBuf, time::Duration};

use nstrace_common::ns::NsType;

use crate::{
    cli::ls::TypeArg,
    database::db::{Db, Entry, Query},
    error::{Error, Result},
    present::{provenance_text::creator_text, render::clock_time},
    time::UnixTime,
};

/// Where `serve` keeps its database unless told otherwise.
pub const DEFAULT_DB: &str = "/var/lib/nstrace/nstrace.db";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this type.
    #[arg(long = "type", short = 't', value_enum)]
    pub ns_type: Option<TypeArg>,
    /// Only namespaces of this container: created in it or seen in it (its name, or 4+ leading
    /// characters of its id).
    #[arg(long)]
    pub container: Option<String>,
    /// Only namespaces of this Kubernetes pod: its name, namespace/name, UID, or 4+ leading
    /// characters of its sandbox id.
    #[arg(long)]
    pub pod: Option<String>,
    /// Only namespaces alive during the last DURATION (30s, 5m, 2h, 1d).
    #[arg(long, value_parser = crate::cli::parse_duration)]
    pub since: Option<Duration>,
    /// Only namespaces still alive.
    #[arg(long, conflicts_with = "destroyed")]
    pub alive: bool,
    /// Only namespaces already destroyed.
    #[arg(long)]
    pub destroyed: bool,
    /// List refused namespace creations (ENOSPC, EUSERS) and why, instead of namespaces.
    #[arg(long, conflicts_with_all = ["ns_type", "container", "pod", "alive", "destroyed"])]
    pub refusals: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Most rows shown (newest first).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Without a service, read this database file (default /var/lib/nstrace/nstrace.db).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    pub service: crate::cli::ServiceArgs,
}

impl Args {
    fn query(&self) -> Query {
        let now = crate::time::Clock::unix_now();
        Query {
            ns_type: self.ns_type.map(NsType::from),
            container: self.container.clone(),
            pod: self.pod.clone(),
            since: self.since.map(|s| UnixTime::from_secs((now - s).as_secs().max(0.0))),
            alive: match (self.alive, self.destroyed) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            limit: self.limit,
        }
    }
}

pub fn run(args: Args) -> Result<i32> {
    if args.db.is_none() {
        // The service's socket and database are root's, as every other
        // command's kernel access is: the same error, the same exit code.
        crate::error::require_privileges()?;
        if let Some(code) = crate::cli::ask_service_or("history", &args.service, &[], "the database file directly")? {
            return Ok(code);
        }
    }
    let path = args.db.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DB));
    match std::fs::metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Usage(format!(
                "no provenance database at {}: `nstrace serve` records one (or pass --db PATH)",
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    }
    let db = Db::open_read_only(&path).map_err(|e| Error::failed_with("opening the provenance database", e))?;
    crate::cli::to_stdout(|out| answer(&args, &db, out))
}

/// The history `db` holds (the service's database, or a file read directly).
pub fn answer(args: &Args, db: &Db, out: &mut dyn Write) -> Result<i32> {
    if args.refusals {
        return answer_refusals(args, db, out);
    }
    let entries = db.history(&args.query()).map_err(|e| Error::failed_with("reading the provenance database", e))?;
    let mut out = out;
    let written =
        if args.json { crate::cli::write_json_pretty(&mut out, &entries) } else { write_text(&mut out, &entries) };
    written.map_err(|e| Error::io("writing output", e))?;
    Ok(0)
}

fn answer_refusals(args: &Args, db: &Db, out: &mut dyn Write) -> Result<i32> {
    let since = args.query().since;
    let rows = db.refusals(since, args.limit).map_err(|e| Error::failed_with("reading the provenance database", e))?;
    let mut out = out;
    let written = if args.json {
        crate::cli::write_json_pretty(&mut out, &rows)
    } else if rows.is_empty() {
        writeln!(out, "no refused namespace creations recorded")
    } else {
        rows.iter().try_for_each(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("?").to_string();
            let when = r["time"].as_f64().map(|t| clock_time(UnixTime::from_secs(t))).unwrap_or_default();
            writeln!(
                out,
                "{when} {}[{}] uid={} {} {}: {}",
                crate::present::escape::text(&s("comm")),
                r["pid"],
                r["uid"],
                s("syscall"),
                s("flags_text"),
                crate::present::escape::text(&s("text"))
            )
        })
    };
    written.map_err(|e| Error::io("writing output", e))?;
    Ok(0)
}

fn write_text(out: &mut impl Write, entries: &[Entry]) -> std::io::Result<()> {
    if entries.is_empty() {
        return writeln!(out, "no namespaces recorded match");
    }
    for e in entries {
        let r = &e.record;
        let when = |t: Option<UnixTime>| t.map(clock_time).unwrap_or_else(|| "-".into());
        let state = match (e.destroyed, &e.via) {
            (Some(t), via) => format!(
                "destroyed {} ({}) after {}",
                clock_time(t),
                via.map_or("?", |v| v.name()),
                e.lifetime.map(|l| format!("{l:.3}s")).unwrap_or_else(|| "an unknown time".into())
            ),
            (None, _) => "alive".into(),
        };
        writeln!(
            out,
            "{} {} id={} created {} (first seen {}), {state}",
            r.ns_type.name(),
            r.inode,
            r.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            when(r.created),
            clock_time(r.first_seen)
        )?;
        match &r.creator {
            Some(c) => writeln!(out, "  created by {}", creator_text(c))?,
            None => writeln!(out, "  created by: unknown (before nstrace serve watched)")?,
        }
        for p in &r.pins {
            writeln!(out, "  pinned by {}", crate::present::provenance_text::pin_text(p))?;
        }
    }
    Ok(())
}

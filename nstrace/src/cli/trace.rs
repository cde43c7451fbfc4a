//! `nstrace trace`: stream namespace events until Ctrl-C or `--duration`.

use std::{
    io::{BufWriter, Write},
    time::Duration,
};

use clap::ValueEnum;
use nstrace_common::ns::NsType;

use crate::{
    cli::ls::TypeArg,
    engine::{Engine, EngineOptions},
    error::{Error, Result},
    events::Event,
    present::{
        perf_data::PerfDataWriter,
        render::{event_perf, event_text},
    },
};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// One human-readable line per event.
    Text,
    /// JSON lines with stable field names.
    Json,
    /// `perf script` layout of PERF_RECORD_NAMESPACES records.
    Perf,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum EventArg {
    Create,
    Dying,
    Destroy,
    Setns,
    Unshare,
    Clone,
    Namespaces,
    Exit,
    Mount,
    Refused,
    Lost,
    Resync,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format on stdout (default: text; none with --perf-data
    /// unless given).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Also write the events to FILE as perf.data, which `perf script -i
    /// FILE` and `perf report -i FILE` read: every task's fork, exec and
    /// exit with its namespaces (as `perf record --namespaces`), and each
    /// lifecycle event as an `nstrace:<event>` tracepoint sample. Times are
    /// CLOCK_BOOTTIME (record with `perf record -k boottime` to merge).
    #[arg(long, value_name = "FILE")]
    pub perf_data: Option<std::path::PathBuf>,
    /// Stop after this long (10, 30s, 5m, ...; default: until Ctrl-C).
    #[arg(long, value_parser = parse_seconds)]
    pub duration: Option<Duration>,
    /// Only events about these processes.
    #[arg(long, value_delimiter = ',')]
    pub pid: Vec<u32>,
    /// Only events concerning these namespace types.
    #[arg(long = "type", short = 't', value_enum, value_delimiter = ',')]
    pub types: Vec<TypeArg>,
    /// Only these event kinds. A `namespaces` event comes for every fork
    /// and exec only when `namespaces` is named here (or with `--format
    /// perf` or `--perf-data`); otherwise only for a task whose namespaces
    /// changed. `exit` (every task's exit) comes only when named or with
    /// `--perf-data`.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub event: Vec<EventArg>,
    /// Only events of processes whose command is this.
    #[arg(long)]
    pub comm: Option<String>,
    #[command(flatten)]
    pub walk: crate::cli::WalkArgs,
    /// Do not attach the unshare/setns syscall tracepoints (they put every
    /// syscall on the host on the tracing slow path).
    #[arg(long)]
    pub no_syscall_events: bool,
    /// Size of the event ring buffer in bytes (a power of two, at least 4096).
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = parse_ring_bytes)]
    pub ring_bytes: u32,
    #[command(flatten)]
    pub mechanisms: crate::cli::MechanismArgs,
}

pub fn parse_ring_bytes(s: &str) -> std::result::Result<u32, String> {
    let v: u32 = s.parse().map_err(|_| format!("'{s}' is not a number of bytes"))?;
    if v < 4096 || !v.is_power_of_two() {
        return Err(format!("{v} must be a power of two of at least 4096"));
    }
    Ok(v)
}

/// A duration above zero, in the one syntax every option takes (plain
/// seconds as before, or 500ms, 30s, 5m, 2h, 1d: see [`crate::cli::parse_duration`]).
pub fn parse_seconds(s: &str) -> std::result::Result<Duration, String> {
    let d = crate::cli::parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("'{s}' must be more than zero"));
    }
    Ok(d)
}

impl Args {
    fn wants(&self, e: &Event) -> bool {
        let always = matches!(e, Event::Lost { .. } | Event::Resync { .. });
        if !self.event.is_empty() {
            let name = e.name();
            if !self.event.iter().any(|k| format!("{k:?}").eq_ignore_ascii_case(name)) {
                return false;
            }
        } else if always {
            return true;
        }
        if !self.pid.is_empty() && !e.pid().is_some_and(|p| self.pid.contains(&p)) {
            return false;
        }
        if let Some(c) = &self.comm
            && e.comm() != Some(c.as_str())
        {
            return false;
        }
        if !self.types.is_empty() {
            let types = e.types();
            if !self.types.iter().any(|t| types.contains(&NsType::from(*t))) {
                return false;
            }
        }
        true
    }
}

pub async fn run(args: Args) -> Result<i32> {
    crate::error::require_privileges()?;
    let opts = EngineOptions {
        walk_interval: args.walk.walk_interval,
        sweep_interval: args.walk.sweep,
        load: crate::kernel::loader::LoadOptions { events_ring_bytes: args.ring_bytes, ..Default::default() },
        syscall_events: !args.no_syscall_events,
        // perf --namespaces reports every new task; otherwise a `namespaces`
        // event only when a task's namespaces change, unless asked for.
        task_records: args.format == Some(Format::Perf)
            || args.perf_data.is_some()
            || args.event.iter().any(|e| matches!(e, EventArg::Namespaces | EventArg::Exit)),
        mechanisms: args.mechanisms.overrides()?,
        // The stream is the output; no per-namespace history to keep.
        store: crate::store::StoreOptions { history: 0, ..Default::default() },
    };
    let format = match (args.format, &args.perf_data) {
        (Some(f), _) => Some(f),
        (None, Some(_)) => None,
        (None, None) => Some(Format::Text),
    };
    // Created before the tracer starts: a path that cannot be written fails at once.
    let mut perf_file = match &args.perf_data {
        Some(path) => {
            let shown = crate::present::escape::text(&path.to_string_lossy()).into_owned();
            let file = std::fs::File::create(path).map_err(|e| Error::io(format!("creating {shown}"), e))?;
            Some((path.clone(), BufWriter::with_capacity(64 * 1024, file)))
        }
        None => None,
    };
    let mut engine = Engine::start(&opts)?;
    let mut perf = match perf_file.take() {
        Some((path, file)) => {
            let mut w = PerfDataWriter::start(file, *engine.store().clock())
                .and_then(|mut w| w.existing_tasks().map(|()| w))
                .map_err(|e| Error::io("writing perf.data", e))?;
            w.flush().map_err(|e| Error::io("writing perf.data", e))?;
            Some((path, w))
        }
        None => None,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    // Before the readiness line: `timeout`, systemd and Kubernetes stop with
    // SIGTERM, and the summary line is still due then.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("installing a SIGTERM handler", e))?;
    // Readiness on stderr, so scripts (and tests) can wait for it.
    let m = engine.mechanisms();
    eprintln!(
        "nstrace: tracing {} namespaces (create: {}, destroy: {}, snapshot: {}; Ctrl-C to stop)",
        engine.store().len(),
        m.create,
        m.destroy,
        m.snapshot
    );
    let mut events = Vec::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = sigterm.recv() => break,
            _ = sleep => break,
            r = engine.step(&mut events) => r?,
        }
        for e in events.drain(..).filter(|e| args.wants(e)) {
            if let Some((_, w)) = &mut perf {
                w.event(&e).map_err(|err| Error::io("writing perf.data", err))?;
            }
            let written = match format {
                None => Ok(()),
                Some(Format::Json) => {
                    serde_json::to_writer(&mut out, &e).map_err(std::io::Error::from).and_then(|_| out.write_all(b"\n"))
                }
                Some(Format::Text) => writeln!(out, "{}", event_text(&e)),
                Some(Format::Perf) => match event_perf(&e) {
                    Some(s) => writeln!(out, "{s}"),
                    None => Ok(()),
                },
            };
            match written {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
                Err(err) => return Err(Error::io("writing events", err)),
            }
        }
        match out.flush() {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
            Err(err) => return Err(Error::io("writing events", err)),
        }
        // Whole records reach the file each round: a killed trace leaves
        // one perf reads up to its last record.
        if let Some((_, w)) = &mut perf {
            w.flush().map_err(|err| Error::io("writing perf.data", err))?;
        }
    }
    if let Some((path, mut w)) = perf {
        w.flush().map_err(|err| Error::io("writing perf.data", err))?;
        let command =
            ["perf", "script", "-i"].map(String::from).into_iter().chain([path.to_string_lossy().into_owned()]);
        let command = crate::present::escape::text(&crate::present::advice::shell_line(&command.collect::<Vec<_>>()))
            .into_owned();
        eprintln!("nstrace: {} perf.data records written; read them with: {command}", w.records());
    }
    let s = &engine.stats;
    eprintln!("nstrace: {} records, {} lost, {} malformed, {} resyncs", s.records, s.lost, s.malformed, s.resyncs);
    Ok(0)
}

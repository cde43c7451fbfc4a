//! `nstrace trace`: stream namespace events until Ctrl-C or `--duration`.

use std::{
    io::{BufWriter, Write},
    time::Duration,
};

use clap::ValueEnum;
use nstrace_common::decode::Record;

use crate::{
    error::{Error, Result},
    loader::{LoadOptions, Tracer},
    render::event_json,
};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_parser = parse_seconds)]
    pub duration: Option<Duration>,
    /// Only events of these processes (tgid of the subject or the caller).
    #[arg(long, value_delimiter = ',')]
    pub pid: Vec<u32>,
}

pub fn parse_seconds(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

pub async fn run(args: Args) -> Result<i32> {
    let mut tracer = Tracer::load(&LoadOptions::default())?;
    tracer.attach_task_hooks()?;
    let mut events = tracer.events()?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let mut malformed = 0u64;
    // Announce readiness on stderr so scripts (and tests) can wait for it.
    eprintln!("nstrace: tracing (Ctrl-C to stop)");
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let mut write_err = None;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sleep => break,
            batch = events.next_batch(|item| match item {
                Ok(record) => {
                    if !matches_pid(&record, &args.pid) {
                        return;
                    }
                    let r = match args.format {
                        Format::Json => serde_json::to_writer(&mut out, &event_json(&record))
                            .map_err(std::io::Error::from)
                            .and_then(|_| out.write_all(b"\n")),
                        Format::Text => writeln!(out, "{}", crate::render::event_text(&record)),
                    };
                    if let Err(e) = r { write_err = Some(e); }
                }
                Err(e) => {
                    malformed += 1;
                    eprintln!("nstrace: malformed record skipped: {e}");
                }
            }) => { batch?; }
        }
        if let Some(e) = write_err {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(0);
            }
            return Err(Error::io("writing events", e));
        }
        out.flush().map_err(|e| Error::io("writing events", e))?;
    }
    out.flush().map_err(|e| Error::io("writing events", e))?;
    let lost = events.lost_counts()?;
    if !lost.is_empty() || malformed > 0 {
        eprintln!("nstrace: lost records {lost:?}, malformed {malformed}");
    }
    Ok(0)
}

fn matches_pid(record: &Record, pids: &[u32]) -> bool {
    if pids.is_empty() {
        return true;
    }
    match record {
        Record::Task(e) => pids.contains(&e.header.tgid) || pids.contains(&e.subject_tgid),
        _ => true,
    }
}

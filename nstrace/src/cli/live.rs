//! `nstrace live`: the live table, full-screen; or, when stdout is not a
//! terminal (or with `--plain`), a fresh snapshot table every interval.

use std::{
    io::{BufWriter, IsTerminal, Write},
    time::Duration,
};

use crossterm::event::Event as TermEvent;
use nstrace_common::ns::NsType;
use ratatui::{Terminal, backend::CrosstermBackend};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::{ls::TypeArg, trace::parse_seconds},
    engine::EngineOptions,
    error::{Error, Result},
    model::NsRow,
    monitor::{Monitor, MonitorOptions, Totals},
    present::tui::{
        InputThread, TerminalGuard,
        app::{App, RowState},
        ui,
    },
    present::{
        render::clock_time,
        table::{Extra, Layout, write_table_with},
    },
    store::StoreOptions,
    time::{Clock, UnixTime},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between screen refreshes and holder re-reads (1, 500ms, 5s, ...).
    #[arg(long, value_parser = parse_seconds, default_value = "1")]
    pub interval: Duration,
    /// Print a snapshot table every interval instead of the full-screen view
    /// (the default when stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
    #[command(flatten)]
    pub walk: crate::cli::WalkArgs,
    /// Most namespaces kept in memory; destroyed rows are evicted first.
    #[arg(long, default_value_t = 100_000)]
    pub max_rows: usize,
    /// Show only this namespace type at first (`t` cycles it).
    #[arg(long = "type", short = 't', value_enum)]
    pub type_filter: Option<TypeArg>,
    /// Show only this state at first (`S` cycles it).
    #[arg(long = "state", value_enum)]
    pub state_filter: Option<RowState>,
    /// With --plain: how each table fits the terminal and whether it is coloured.
    #[command(flatten)]
    pub term: crate::present::columns::TermArgs,
    #[command(flatten)]
    pub mechanisms: crate::cli::MechanismArgs,
    #[command(flatten)]
    pub service: crate::cli::ServiceArgs,
}

pub async fn run(args: Args) -> Result<i32> {
    crate::error::require_privileges()?;
    let opts = MonitorOptions {
        engine: EngineOptions {
            walk_interval: args.walk.walk_interval,
            sweep_interval: args.walk.sweep,
            mechanisms: args.mechanisms.overrides()?,
            store: StoreOptions { max_rows: args.max_rows, ..Default::default() },
            ..Default::default()
        },
        refresh: args.interval,
        ..Default::default()
    };
    let mut monitor = Monitor::start(opts)?;
    adopt_from_service(&mut monitor, &args.service);
    let mut app = App::new(args.type_filter.map(NsType::from), args.state_filter);
    let m = monitor.mechanisms();
    app.mechanisms = format!("create {} · destroy {} · snapshot {}", m.create, m.destroy, m.snapshot);
    if args.plain || !std::io::stdout().is_terminal() {
        let layout = Layout { width: args.term.width(), color: args.term.color.for_stdout() };
        run_plain(monitor, app, args.interval, layout).await
    } else {
        run_tui(monitor, app, args.interval).await
    }
}

/// Creation times and creators of namespaces older than this run, from
/// `nstrace serve` when one answers (AGE and CREATOR otherwise unknown).
fn adopt_from_service(monitor: &mut Monitor, service: &crate::cli::ServiceArgs) {
    if service.no_service {
        return;
    }
    let path = crate::remote::socket_path(service.socket.as_deref());
    let request = crate::remote::Request {
        version: crate::remote::VERSION,
        command: "history".into(),
        args: ["--alive", "--json", "--limit", "10000000"].map(String::from).to_vec(),
    };
    match crate::remote::call(&path, &request, Duration::from_secs(30)) {
        Ok(Some(reply)) if reply.exit == 0 => {
            let v: serde_json::Value = serde_json::from_str(&reply.stdout).unwrap_or_default();
            for (key, created, creator) in crate::database::remembered(&v) {
                monitor.adopt(key, created, creator, Vec::new(), Vec::new());
            }
        }
        Ok(Some(reply)) => log::warn!("nstrace serve on {}: {}", path.display(), reply.stderr.trim()),
        Ok(None) => eprintln!(
            "nstrace: no `nstrace serve` answers on {}: ages and creators of namespaces older than this view are unknown",
            path.display()
        ),
        Err(e) => log::warn!("{}", crate::chain::Chain(&e)),
    }
}

async fn run_tui(mut monitor: Monitor, mut app: App, interval: Duration) -> Result<i32> {
    app.load(&monitor);
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Error::io("installing a SIGTERM handler", e))?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // Nothing may write to the terminal behind ratatui's back.
    let log_level = log::max_level();
    log::set_max_level(log::LevelFilter::Off);
    let result = async {
        let guard = TerminalGuard::enter().map_err(|e| Error::io("setting up the terminal", e))?;
        // Buffered, so each frame reaches the terminal in one write.
        let backend = CrosstermBackend::new(BufWriter::with_capacity(1 << 16, std::io::stdout()));
        let mut terminal = Terminal::new(backend).map_err(|e| Error::io("setting up the terminal", e))?;
        let (input, mut keys) = InputThread::spawn().map_err(|e| Error::io("reading the terminal", e))?;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = true;
        let outcome = loop {
            if dirty {
                if let Err(e) = terminal.draw(|f| ui::draw(f, &mut app)) {
                    break Err(Error::io("drawing", e));
                }
                dirty = false;
            }
            tokio::select! {
                _ = &mut ctrl_c => break Ok(0),
                _ = sigterm.recv() => break Ok(0),
                r = monitor.step() => {
                    if let Err(e) = r {
                        break Err(e.into());
                    }
                }
                _ = tick.tick() => {
                    if !app.paused {
                        app.load(&monitor);
                    }
                    dirty = true;
                }
                ev = keys.recv() => match ev {
                    Some(Ok(TermEvent::Key(k))) => {
                        app.on_key(k);
                        if app.quit {
                            break Ok(0);
                        }
                        dirty = true;
                    }
                    Some(Ok(TermEvent::Resize(..))) => dirty = true,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Err(Error::io("reading the terminal", e)),
                    None => break Err(Error::failed("terminal input closed")),
                },
            }
        };
        drop(input);
        let _ = terminal.show_cursor();
        drop(terminal);
        drop(guard);
        outcome
    }
    .await;
    log::set_max_level(log_level);
    result
}

/// One header line: time, totals per type and state, rates, lost events,
/// and what the last holder refresh cost.
fn plain_header(now: UnixTime, t: &Totals, lost: u64, refresh_micros: u64) -> String {
    let types: Vec<String> = t.counts.by_type.iter().map(|(ty, n)| format!("{} {n}", ty.name())).collect();
    let states: Vec<String> = t.counts.by_state.iter().map(|(s, n)| format!("{} {n}", s.name())).collect();
    format!(
        "{} {} namespaces ({}) | {} | created {:.1}/s destroyed {:.1}/s | lost {} | refresh {:.1} ms",
        &clock_time(now)[..8],
        t.counts.live,
        types.join(", "),
        states.join(", "),
        t.created_rate,
        t.destroyed_rate,
        lost,
        refresh_micros as f64 / 1000.0
    )
}

async fn run_plain(mut monitor: Monitor, app: App, interval: Duration, layout: Layout) -> Result<i32> {
    // Readiness on stderr (stdout carries the tables), for scripts.
    // The handler before the readiness line: a SIGTERM right after it must not kill us.
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Error::io("installing a SIGTERM handler", e))?;
    eprintln!("nstrace: live table of {} namespaces, plain output every {:?}", monitor.len(), interval);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(0),
            _ = sigterm.recv() => return Ok(0),
            r = monitor.step() => { r?; }
            _ = tick.tick() => {
                // Destroyed rows only when asked for by the state filter.
                let want_destroyed = app.state_filter == Some(RowState::Destroyed);
                let now = monitor.clock().unix(Clock::now_boot_ns());
                let shown: Vec<_> =
                    monitor.rows().filter(|r| (r.destroyed.is_some() == want_destroyed) && app.matches(r)).collect();
                // AGE as the full-screen view shows it (the store's creation times).
                let ages: std::collections::HashMap<_, _> =
                    shown.iter().filter_map(|ns| Some((ns.row.key(), ns.age(now)?))).collect();
                let extra = Extra {
                    age: Box::new(move |r: &NsRow| ages.get(&r.key()).map(|a| crate::present::age::fine(Some(*a)))),
                    ..Extra::none()
                };
                let mut rows: Vec<&NsRow> = shown.iter().map(|ns| &ns.row).collect();
                rows.sort_by_key(|r| r.key());
                let header = plain_header(now, &monitor.totals(), monitor.stats().lost, monitor.refresh_micros);
                let written = writeln!(out, "{header}")
                    .and_then(|_| write_table_with(&mut out, &rows, &extra, layout))
                    .and_then(|_| writeln!(out))
                    .and_then(|_| out.flush());
                match written {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
                    Err(e) => return Err(Error::io("writing output", e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use nstrace_common::ns::NsType;

    use super::*;
    use crate::model::NsState;
    use crate::time::UnixTime;

    #[test]
    fn plain_header_has_time_totals_rates_and_lost() {
        let t = Totals {
            counts: crate::store::Counts {
                by_type: vec![(NsType::Net, 3), (NsType::Uts, 2)],
                by_state: vec![(NsState::Active, 4), (NsState::Mounted, 1)],
                live: 5,
                destroyed_shown: 0,
                evicted: 0,
            },
            created_rate: 0.5,
            destroyed_rate: 0.3,
        };
        assert_eq!(
            plain_header(UnixTime::from_secs(3661.5), &t, 7, 2500),
            "01:01:01 5 namespaces (net 3, uts 2) | active 4, mounted 1 | created 0.5/s destroyed 0.3/s | lost 7 | refresh 2.5 ms"
        );
    }
}

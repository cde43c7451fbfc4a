//! `nstrace export`: serve Prometheus metrics (and the live namespace list)
//! over HTTP until SIGTERM or SIGINT.
//!
//! One task owns the [`Monitor`]: it counts every event into [`Metrics`] at
//! once and republishes the gauges and the `/namespaces` rows at most every
//! [`PUBLISH_EVERY`] (and at least every walk). The HTTP server only reads
//! that shared state.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::trace::parse_seconds,
    engine::EngineOptions,
    error::{Error, Result},
    monitor::{Monitor, MonitorOptions},
    present::http::{self, Limits, Shared},
    present::metrics::Metrics,
    store::StoreOptions,
};

/// Gauges and `/namespaces` are rebuilt at most this often.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to serve on (IP:PORT).
    #[arg(long, default_value = "127.0.0.1:9764")]
    pub listen: SocketAddr,
    /// Allow a non-loopback --listen address. The endpoints have no
    /// authentication and /namespaces shows every process's command.
    #[arg(long)]
    pub allow_remote: bool,
    /// Seconds after which a namespace that no task uses counts as a leak suspect.
    #[arg(long, value_parser = parse_seconds, default_value = "300")]
    pub leak_age: Duration,
    /// Add nstrace_container_namespaces{runtime,container,type} (container
    /// ids as labels; capped by --per-container-cap).
    #[arg(long)]
    pub per_container: bool,
    /// Most containers labelled by --per-container; the rest are "other".
    #[arg(long, default_value_t = 100)]
    pub per_container_cap: usize,
    /// Seconds between tree walks that confirm deaths and heal lost events.
    #[arg(long, value_parser = parse_seconds, default_value = "1")]
    pub walk_interval: Duration,
    /// Most namespaces kept in memory; destroyed rows are evicted first.
    #[arg(long, default_value_t = 100_000)]
    pub max_rows: usize,
    /// Seconds between holder refreshes (/proc scan and task walk) that set states.
    #[arg(long, value_parser = parse_seconds, default_value = "1")]
    pub refresh: Duration,
    #[command(flatten)]
    pub mechanisms: crate::cli::MechanismArgs,
}

/// Refuses non-loopback addresses without `--allow-remote`.
pub fn check_listen(listen: SocketAddr, allow_remote: bool) -> Result<()> {
    if allow_remote || listen.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "refusing to listen on {listen}: not a loopback address, and /metrics and /namespaces have no \
         authentication; pass --allow-remote to serve other hosts (behind a firewall or network policy)"
    )))
}

pub async fn run(args: Args) -> Result<i32> {
    crate::error::require_privileges()?;
    check_listen(args.listen, args.allow_remote)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Error::io("installing a SIGTERM handler", e))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Error::io("installing a SIGINT handler", e))?;
    // Bind first: a busy port fails before the eBPF programs load.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::io(format!("listening on {}", args.listen), e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("reading the listening address", e))?;

    let opts = MonitorOptions {
        engine: EngineOptions {
            walk_interval: args.walk_interval,
            mechanisms: args.mechanisms.overrides()?,
            store: StoreOptions { max_rows: args.max_rows, ..Default::default() },
            ..Default::default()
        },
        refresh: args.refresh,
        ..Default::default()
    };
    let mut monitor = Monitor::start(opts)?;
    // Unhealthy when the monitor has been silent for many walks.
    let stale_after = (args.walk_interval.max(args.refresh) * 10).max(Duration::from_secs(30));
    let shared = Arc::new(Shared::new(
        if args.per_container {
            Metrics::new(args.leak_age).with_per_container(args.per_container_cap)
        } else {
            Metrics::new(args.leak_age)
        },
        stale_after,
    ));
    publish(&shared, &monitor);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(http::serve(listener, shared.clone(), Limits::default(), async move {
        let _ = stop_rx.await;
    }));
    eprintln!("nstrace: exporting on {}", http::metrics_url(addr));

    let mut last_publish = Instant::now();
    let outcome: Result<()> = loop {
        tokio::select! {
            _ = sigterm.recv() => break Ok(()),
            _ = sigint.recv() => break Ok(()),
            served = &mut server => {
                break Err(match served {
                    Ok(Ok(())) => Error::failed("the HTTP server stopped unexpectedly"),
                    Ok(Err(e)) => Error::io("serving HTTP", e),
                    Err(e) => Error::failed_with("the HTTP server task failed", e),
                });
            }
            stepped = monitor.step() => match stepped {
                Ok(events) => {
                    if !events.is_empty() {
                        shared.with_metrics(|m| events.iter().for_each(|e| m.observe(e)));
                    }
                    if last_publish.elapsed() >= PUBLISH_EVERY {
                        publish(&shared, &monitor);
                        last_publish = Instant::now();
                    }
                }
                Err(e) => break Err(e.into()),
            },
        }
    };
    let _ = stop_tx.send(());
    if !server.is_finished() {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("HTTP server: {e}"),
            Err(e) => log::warn!("HTTP server task: {e}"),
        }
    }
    let s = monitor.stats();
    eprintln!(
        "nstrace: export stopped; {} records, {} lost, {} malformed, {} resyncs",
        s.records, s.lost, s.malformed, s.resyncs
    );
    outcome.map(|()| 0)
}

/// Gauges, engine counters and the `/namespaces` rows from the monitor.
fn publish(shared: &Shared, monitor: &Monitor) {
    shared.with_metrics(|m| m.set_from_monitor(monitor));
    shared.publish_namespaces(monitor.ns_rows().into_iter().cloned().collect());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_addresses_need_allow_remote() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(check_listen(a("127.0.0.1:9764"), false).is_ok());
        assert!(check_listen(a("127.5.0.1:1"), false).is_ok());
        assert!(check_listen(a("[::1]:9764"), false).is_ok());
        assert!(check_listen(a("[::ffff:127.0.0.1]:9764"), false).is_ok());
        let err = check_listen(a("0.0.0.0:1"), false).unwrap_err().to_string();
        assert!(err.contains("--allow-remote"), "{err}");
        assert!(check_listen(a("[::]:9764"), false).is_err());
        assert!(check_listen(a("0.0.0.0:9764"), true).is_ok());
    }
}

//! The small HTTP/1.1 server behind `nstrace export` (hyper 1 + hyper-util).
//!
//! Routes (GET only; other methods get 405, other paths 404):
//! - `/metrics`: the [`Metrics`] exposition, OpenMetrics text by default, or
//!   the classic Prometheus text format for clients that only accept it;
//! - `/healthz`: 200 while the monitor keeps publishing and (serve) the
//!   provenance database takes writes, else 503 with the reason;
//! - `/namespaces`: the live rows as a JSON array (the `nstrace ls --json` document).
//!
//! Clients cannot hold the server hostage: headers must arrive within
//! [`Limits::header_read_timeout`] and fit [`Limits::max_header_size`], a
//! connection lives at most [`Limits::connection_time_limit`], and at most
//! [`Limits::max_connections`] hold a slot at once. When all are taken, a
//! new client takes the slot of the one that has waited longest for its
//! own request (a trickler, an idle keep-alive: [`conns`]); when every slot
//! is serving, it gets a clean 503 (at most [`Limits::max_rejecting`] at
//! once; beyond that it is closed at accept).

mod conns;

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};

use crate::{
    model::NsRow,
    present::metrics::{ConnectionLabel, Metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE},
};

/// Bounds on what one client may cost the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The request line and headers must arrive within this time.
    pub header_read_timeout: Duration,
    /// Largest request line plus headers; larger gets 431.
    pub max_header_size: usize,
    /// Largest read buffer per connection (hyper's minimum is 8 KiB).
    pub max_buf_size: usize,
    /// A connection is closed after this long, keep-alive or not.
    pub connection_time_limit: Duration,
    /// Connections holding a slot at once.
    pub max_connections: usize,
    /// A connection that has waited this long for its next request gives
    /// its slot to a new client when all are taken. Short: a real client's
    /// request arrives right behind its connection, and a crowd that keeps
    /// every slot younger than this (reconnecting max_connections /
    /// evict_after times a second) locks scrapes out.
    pub evict_after: Duration,
    /// 503 answers being written at once (to clients that came while every
    /// slot was serving); more are closed at accept.
    pub max_rejecting: usize,
    /// Connections that have sent nothing yet, held without a slot (a
    /// connection takes a slot once its request starts to arrive, so a
    /// crowd of silent ones never locks a scrape out); more are closed.
    pub max_silent: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            max_header_size: 8 * 1024,
            max_buf_size: 16 * 1024,
            connection_time_limit: Duration::from_secs(60),
            max_connections: 64,
            evict_after: Duration::from_millis(100),
            max_rejecting: 1024,
            max_silent: 4096,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What the server shows, written by the task that owns the monitor.
pub struct Shared {
    metrics: Mutex<Metrics>,
    namespaces: RwLock<Arc<Vec<NsRow>>>,
    /// A `/namespaces` client waits for fresh rows: every row is copied
    /// only when someone asks (docs/benchmarks.md: the service's CPU).
    rows_wanted: AtomicBool,
    rows_ready: tokio::sync::Notify,
    last_publish: Mutex<Instant>,
    /// `/healthz` fails when nothing was published for this long.
    stale_after: Duration,
    /// Why the service works only in part (the provenance database fails).
    degraded: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(metrics: Metrics, stale_after: Duration) -> Shared {
        Shared {
            metrics: Mutex::new(metrics),
            namespaces: RwLock::new(Arc::new(Vec::new())),
            rows_wanted: AtomicBool::new(false),
            rows_ready: tokio::sync::Notify::new(),
            last_publish: Mutex::new(Instant::now()),
            degraded: Mutex::new(None),
            stale_after,
        }
    }

    /// Runs `f` with the metrics locked (scrapes see all of its changes or none).
    pub fn with_metrics<T>(&self, f: impl FnOnce(&Metrics) -> T) -> T {
        f(&self.metrics.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Marks the state fresh (the monitor is alive and published).
    pub fn mark_fresh(&self) {
        *self.last_publish.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Whether a `/namespaces` client asked for rows since the last call.
    pub fn rows_wanted(&self) -> bool {
        self.rows_wanted.swap(false, Ordering::SeqCst)
    }

    /// Replaces the `/namespaces` rows and wakes the clients waiting for them.
    pub fn publish_namespaces(&self, rows: Vec<NsRow>) {
        *self.namespaces.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rows);
        self.rows_ready.notify_waiters();
    }

    /// Asks the monitor's owner for fresh rows and waits for them, at most
    /// `wait` (then the last rows published are served).
    pub async fn fresh_namespaces(&self, wait: Duration) -> Arc<Vec<NsRow>> {
        let ready = self.rows_ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        self.rows_wanted.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(wait, ready).await;
        self.namespaces()
    }

    pub fn namespaces(&self) -> Arc<Vec<NsRow>> {
        self.namespaces.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Time since the last publish.
    /// Makes `/healthz` fail with `why` (None: healthy again).
    pub fn set_degraded(&self, why: Option<String>) {
        *self.degraded.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    pub fn degraded(&self) -> Option<String> {
        self.degraded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn staleness(&self) -> Duration {
        self.last_publish.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

/// Serves `listener` until `shutdown` completes, then stops accepting, lets
/// requests in flight finish (up to [`Limits::shutdown_grace`]) and returns.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_size)
        .max_buf_size(limits.max_buf_size.max(8192))
        .max_headers(64)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let conns = conns::Conns::new(limits.max_connections, limits.evict_after);
    let rejecting = Arc::new(Semaphore::new(limits.max_rejecting));
    let silent = Arc::new(Semaphore::new(limits.max_silent));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    log::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(silent) = silent.clone().try_acquire_owned() else {
            shared.with_metrics(|m| m.count_connection(ConnectionLabel::dropped));
            log::debug!("closing connection from {peer}: too many connections that sent nothing");
            continue;
        };
        let ctx = Accepted {
            shared: shared.clone(),
            conns: conns.clone(),
            rejecting: rejecting.clone(),
            builder: builder.clone(),
            watcher: graceful.watcher(),
            limits: limits.clone(),
        };
        tokio::spawn(async move {
            // A slot only once the request starts to arrive (or the peer
            // closes): waiting costs a socket, not a slot. (A peek, not
            // `readable()`, which may wake before any byte is there.)
            let mut byte = [0u8; 1];
            let first = tokio::time::timeout(ctx.limits.header_read_timeout, stream.peek(&mut byte)).await;
            drop(silent);
            if matches!(first, Ok(Ok(_))) {
                ctx.serve(stream, peer);
            } else {
                log::debug!("connection from {peer} sent nothing within {:?}", ctx.limits.header_read_timeout);
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        log::warn!("shutdown: connections still open after {:?}; closing them", limits.shutdown_grace);
    }
    Ok(())
}

/// A connection that has started to send its request, and what serving it needs.
struct Accepted {
    shared: Arc<Shared>,
    conns: Arc<conns::Conns>,
    rejecting: Arc<Semaphore>,
    builder: http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    limits: Limits,
}

impl Accepted {
    /// Gives the connection a slot (or a 503) and serves it on a task of its own.
    fn serve(self, stream: TcpStream, peer: std::net::SocketAddr) {
        let shared = &self.shared;
        let conn = match self.conns.admit(Instant::now()) {
            conns::Admission::Slot { conn, evicted } => {
                shared.with_metrics(|m| {
                    m.count_connection(ConnectionLabel::accepted);
                    if evicted {
                        m.count_connection(ConnectionLabel::evicted);
                    }
                });
                Arc::new(conn)
            }
            conns::Admission::Full => {
                match self.rejecting.clone().try_acquire_owned() {
                    Ok(permit) => {
                        shared.with_metrics(|m| m.count_connection(ConnectionLabel::rejected));
                        tokio::spawn(reject(stream, self.builder.clone(), permit, self.limits.max_connections));
                    }
                    Err(_) => {
                        shared.with_metrics(|m| m.count_connection(ConnectionLabel::dropped));
                        log::debug!(
                            "closing connection from {peer}: every slot is serving and 503s are at their bound"
                        );
                    }
                }
                return;
            }
        };
        let shared = shared.clone();
        let serving = conn.clone();
        let service = service_fn(move |req| {
            let shared = shared.clone();
            // Busy until the reply's body is written out.
            let busy = serving.busy();
            async move {
                // Rows are copied for the clients that ask, when they ask.
                let rows = match req.uri().path() {
                    "/namespaces" => Some(shared.fresh_namespaces(Duration::from_secs(2)).await),
                    _ => None,
                };
                let reply = route(&shared, &req, rows);
                Ok::<_, Infallible>(reply.map(|body| conns::Tracked { body, _busy: Some(busy) }))
            }
        });
        let served = self.watcher.watch(self.builder.serve_connection(TokioIo::new(stream), service));
        let time_limit = self.limits.connection_time_limit;
        tokio::spawn(async move {
            tokio::select! {
                r = tokio::time::timeout(time_limit, served) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => log::debug!("connection from {peer}: {e}"),
                    Err(_) => log::debug!("connection from {peer} closed after {time_limit:?}"),
                },
                _ = conn.evicted() => log::debug!("connection from {peer} gave its slot to a new client"),
            }
        });
    }
}

/// Answers a client that came while every slot was serving: 503, then
/// close (its request is read first, so the answer is not lost to a reset).
async fn reject(stream: TcpStream, mut builder: http1::Builder, _permit: OwnedSemaphorePermit, slots: usize) {
    builder.keep_alive(false).header_read_timeout(Duration::from_secs(1));
    let service = service_fn(move |_req| async move {
        let mut r = reply(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            format!("busy: all {slots} connection slots are serving requests; retry\n"),
        );
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Ok::<_, Infallible>(r)
    });
    let _ = tokio::time::timeout(Duration::from_secs(3), builder.serve_connection(TokioIo::new(stream), service)).await;
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

/// `rows`: the fresh `/namespaces` rows, for that path.
fn route(shared: &Shared, req: &Request<Incoming>, rows: Option<Arc<Vec<NsRow>>>) -> Reply {
    let path = req.uri().path();
    if !matches!(path, "/" | "/metrics" | "/healthz" | "/namespaces") {
        return reply(StatusCode::NOT_FOUND, TEXT, "not found; try /metrics, /healthz or /namespaces\n");
    }
    if req.method() != Method::GET {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET is allowed\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    match path {
        "/metrics" => {
            if wants_classic_text(req.headers().get(header::ACCEPT)) {
                let body = shared.with_metrics(|m| m.encode_prometheus_text());
                reply(StatusCode::OK, PROMETHEUS_TEXT_CONTENT_TYPE, body)
            } else {
                let body = shared.with_metrics(|m| m.encode());
                reply(StatusCode::OK, OPENMETRICS_CONTENT_TYPE, body)
            }
        }
        "/healthz" => {
            let stale = shared.staleness();
            if stale <= shared.stale_after {
                match shared.degraded() {
                    None => reply(StatusCode::OK, TEXT, "ok\n"),
                    // Tracing and metrics go on; what fails is said.
                    Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("degraded: {why}\n")),
                }
            } else {
                let msg = format!("stale: the namespace monitor has not published for {}s\n", stale.as_secs());
                reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, msg)
            }
        }
        "/namespaces" => {
            let rows = rows.unwrap_or_else(|| shared.namespaces());
            match serde_json::to_vec(&*rows) {
                Ok(mut body) => {
                    body.push(b'\n');
                    reply(StatusCode::OK, "application/json", body)
                }
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("encoding namespaces: {e}\n")),
            }
        }
        _ => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<html><head><title>nstrace</title></head><body><h1>nstrace exporter</h1><ul>\
             <li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/namespaces\">/namespaces</a></li>\
             <li><a href=\"/healthz\">/healthz</a></li></ul></body></html>\n",
        ),
    }
}

/// OpenMetrics unless the client asks for the classic text format and does
/// not accept OpenMetrics (a missing Accept or `*/*` gets OpenMetrics).
fn wants_classic_text(accept: Option<&HeaderValue>) -> bool {
    // OpenMetrics only to a client that names it (Prometheus does); curl,
    // promtool and older scrapers get the classic text, where every counter
    // family's HELP names its `_total` samples.
    let Some(accept) = accept.and_then(|a| a.to_str().ok()) else { return true };
    !accept.to_ascii_lowercase().contains("application/openmetrics-text")
}

/// The URL printed for humans: `http://ADDR/metrics`.
pub fn metrics_url(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_to_a_client_that_asks_for_it() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        // curl (*/*) and a client that sends nothing: the classic text.
        assert!(wants_classic_text(None));
        assert!(wants_classic_text(Some(&h("*/*"))));
        // What Prometheus sends.
        assert!(!wants_classic_text(Some(&h(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
             text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ))));
        assert!(wants_classic_text(Some(&h("text/plain; version=0.0.4"))));
    }
}

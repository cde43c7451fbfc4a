//! `nstrace serve`: the long-running service. Traces every namespace, serves
//! Prometheus metrics (as `export` does), records provenance in an SQLite
//! database, and answers `ls`, `why`, `leaks` and `history` on a unix
//! socket (see [`crate::remote`]) from its store.

use std::{
    collections::HashMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{UnixListener, UnixStream},
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot},
};

use crate::{
    cli::{
        export::{self, check_listen},
        history::DEFAULT_DB,
    },
    database::{
        Change,
        db::Db,
        identity,
        writer::{Retention, Start, Writer},
    },
    engine::EngineOptions,
    error::{Error, Result, exit},
    events::DeathVia,
    events::Event,
    model::NsKey,
    monitor::{Freshness, Monitor, MonitorOptions},
    origin,
    present::{
        http::{self, Limits, Shared},
        metrics::Metrics,
    },
    remote::{self, DEFAULT_SOCKET, Reply, Request},
    store::StoreOptions,
};

/// Gauges and `/namespaces` are rebuilt at most this often.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// A client must send its request within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests answered at once (each on a blocking thread, from its own copy
/// of the store); more wait in the queue.
const MAX_ANSWERING: usize = 2;
/// Requests that wait for a fresh walk and holder re-read, at most.
const MAX_WAITING: usize = 64;
/// The most a request waits for them; it is answered from what is there then.
const FRESH_WAIT: Duration = Duration::from_secs(3);

/// How long a stopping service waits for the database (SIGTERM must end it
/// within 2 s whatever it is doing).
const STOP_FLUSH: Duration = Duration::from_millis(1200);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub export: export::HttpArgs,
    /// The provenance database (SQLite; read it with `nstrace history` or `sqlite3`).
    #[arg(long, env = "NSTRACE_DB", default_value = DEFAULT_DB)]
    pub db: PathBuf,
    /// The socket `ls`, `why`, `leaks` and `history` ask (mode 0600: root only).
    #[arg(long, env = "NSTRACE_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// How long destroyed namespaces stay in the database (30m, 12h, 7d, ...).
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "7d")]
    pub retain: Duration,
    /// Most rows in the database; the oldest destroyed ones go first.
    #[arg(long, default_value_t = 1_000_000)]
    pub db_max_rows: usize,
}

/// A request read from a client, and where its reply goes.
type Pending = (Request, oneshot::Sender<Reply>);

pub async fn run(args: Args) -> Result<i32> {
    crate::error::require_privileges()?;
    let ex = &args.export;
    check_listen(ex.listen, ex.allow_remote)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Error::io("installing a SIGTERM handler", e))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Error::io("installing a SIGINT handler", e))?;
    // Claim the socket and the database before loading anything: a second
    // serve fails at once.
    let socket = bind_socket(&args.socket)?;
    let _socket_file = RemoveOnDrop(args.socket.clone());
    let boot_id = boot_id();
    let (db, db_error, db_note) = match Db::open(&args.db, &boot_id) {
        Ok((db, note)) => (Some(db), None, note),
        Err(e @ crate::database::db::DbError::InUse { .. }) => return Err(Error::Usage(e.to_string())),
        Err(e) => {
            let error = crate::chain::Chain(&e).to_string();
            (None, Some(error.clone()), Some(format!("provenance database: {error}")))
        }
    };
    if let Some(note) = &db_note {
        eprintln!("nstrace: {note}");
    }
    let listener = tokio::net::TcpListener::bind(ex.listen)
        .await
        .map_err(|e| Error::io(format!("listening on {}", ex.listen), e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("reading the listening address", e))?;

    let opts = MonitorOptions {
        engine: EngineOptions {
            walk_interval: ex.walk.walk_interval,
            sweep_interval: ex.walk.sweep,
            mechanisms: ex.mechanisms.overrides()?,
            store: StoreOptions { max_rows: ex.max_rows, provenance: true, ..Default::default() },
            ..Default::default()
        },
        refresh: ex.refresh,
        sweep: ex.walk.sweep,
        ..Default::default()
    };
    let mut monitor = Monitor::start(opts)?;
    let retention = Retention { max_age: args.retain, max_rows: args.db_max_rows };
    let writer = Writer::start(
        match db {
            Some(mut db) => {
                let rowids = adopt(&mut db, &mut monitor)?;
                Start::Open(db, rowids)
            }
            // The writer says "provenance database: …" itself.
            None => Start::Retry { path: args.db.clone(), boot_id, error: db_error.unwrap_or_default() },
        },
        retention,
    );
    let mut cgroups = origin::CgroupNames::new(origin::cgroup2_mount());
    let mut names = crate::containers::names::ContainerNames::new("/");
    // Clients' history reads its own connection (WAL: readers never block the writer).
    let reader: Arc<std::sync::Mutex<Option<Db>>> = Arc::default();
    // Answers run here, off the loop that drains the ring and feeds /metrics.
    let mut answering = tokio::task::JoinSet::new();

    let stale_after = (ex.walk.walk_interval.max(ex.refresh) * 10).max(Duration::from_secs(30));
    let metrics = if ex.per_container {
        Metrics::new(ex.leak_age).with_per_container(ex.per_container_cap)
    } else {
        Metrics::new(ex.leak_age)
    };
    let shared = Arc::new(Shared::new(metrics.with_database(), stale_after));
    flush_provenance(&mut monitor, &writer, &mut names);
    let mut publisher = Publisher::default();
    publisher.publish(&shared, &monitor, &writer);

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut server = tokio::spawn(http::serve(listener, shared.clone(), Limits::default(), async move {
        let _ = stop_rx.await;
    }));
    let (request_tx, mut requests) = mpsc::channel::<Pending>(64);
    eprintln!(
        "nstrace: serving on {} and {}; provenance in {}",
        http::metrics_url(addr),
        args.socket.display(),
        args.db.display()
    );

    let mut last_publish = Instant::now();
    // Requests answered once the table is as fresh as they came (or at
    // their deadline), in arrival order.
    let mut waiting: std::collections::VecDeque<(Freshness, tokio::time::Instant, Pending)> = Default::default();
    let outcome: Result<()> = loop {
        // Those whose walk and re-read are done, or whose wait is over.
        while let Some((fresh, deadline, _)) = waiting.front()
            && (monitor.has(*fresh) || *deadline <= tokio::time::Instant::now())
        {
            let (_, _, (request, reply)) = waiting.pop_front().expect("a front entry");
            let job = Job::new(&request, &monitor, &writer, &reader, &args.db);
            answering.spawn_blocking(move || {
                let _ = reply.send(job.answer(&request));
            });
        }
        let next_deadline = waiting.front().map(|(_, d, _)| *d);
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
            accepted = socket.accept() => match accepted {
                Ok((stream, _)) => { tokio::spawn(serve_client(stream, request_tx.clone(), shared.clone())); }
                Err(e) => log::warn!("accepting on {}: {e}", args.socket.display()),
            },
            Some((request, reply)) = requests.recv(), if answering.len() < MAX_ANSWERING && waiting.len() < MAX_WAITING => {
                // The table answers: it is walked and its holders re-read
                // first, unless a re-read began under `refresh` ago (no
                // timer re-reads them on a quiet host).
                if wants_fresh_table(&request) && monitor.holders_age() >= ex.refresh {
                    waiting.push_back((monitor.want_fresh(), tokio::time::Instant::now() + FRESH_WAIT, (request, reply)));
                } else {
                    let job = Job::new(&request, &monitor, &writer, &reader, &args.db);
                    answering.spawn_blocking(move || {
                        let _ = reply.send(job.answer(&request));
                    });
                }
            }
            _ = tokio::time::sleep_until(next_deadline.unwrap_or_else(tokio::time::Instant::now)), if next_deadline.is_some() => {}
            Some(_) = answering.join_next(), if !answering.is_empty() => {}
            stepped = monitor.step() => match stepped {
                Ok(events) => {
                    if !events.is_empty() {
                        shared.with_metrics(|m| m.observe_all(&events, monitor.store()));
                        record_origins(&mut monitor, &mut cgroups, &mut names, &events);
                        let refusals: Vec<Change> = events
                            .iter()
                            .filter_map(crate::database::RefusalRow::of)
                            .map(|r| Change::Refused(Box::new(r)))
                            .collect();
                        if !refusals.is_empty() {
                            writer.send(refusals);
                        }
                    }
                    flush_provenance(&mut monitor, &writer, &mut names);
                    if last_publish.elapsed() >= PUBLISH_EVERY {
                        publisher.publish(&shared, &monitor, &writer);
                        last_publish = Instant::now();
                    }
                }
                Err(e) => break Err(e.into()),
            },
        }
    };
    let _ = stop_tx.send(());
    if !server.is_finished() {
        let _ = tokio::time::timeout(Duration::from_millis(300), server).await;
    }
    flush_provenance(&mut monitor, &writer, &mut names);
    let health = writer.health_handle();
    let written = writer.stop(STOP_FLUSH);
    let h = health.lock().map(|h| h.clone()).unwrap_or_default();
    let s = monitor.stats();
    eprintln!(
        "nstrace: serve stopped; {} records, {} lost, {} resyncs; database: {} changes written{}",
        s.records,
        s.lost,
        s.resyncs,
        h.written,
        match (&h.error, written) {
            (Some(e), _) => format!(", failing: {e}"),
            (None, false) => ", last changes not confirmed written".into(),
            (None, true) => String::new(),
        }
    );
    outcome.map(|()| 0)
}

/// Whether a request is answered from the live table (history reads the
/// database alone).
fn wants_fresh_table(request: &Request) -> bool {
    matches!(request.command.as_str(), "ls" | "why" | "leaks" | "limits")
}

/// Binds the service socket (mode 0600) after checking no other service
/// answers there; a stale socket file is replaced.
fn bind_socket(path: &Path) -> Result<UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(Error::Usage(format!(
            "another nstrace serve answers on {} (stop it, or give this one --socket and --db of its own)",
            path.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("removing the stale socket {}", path.display()), e));
        }
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::io(format!("binding {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("making {} private", path.display()), e))?;
    Ok(listener)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// This boot's id (namespaces' inodes are only meaningful within one boot).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Gives the store what the database remembers of namespaces still alive;
/// returns the row of each (by store key) and closes the rest.
fn adopt(db: &mut Db, monitor: &mut Monitor) -> Result<HashMap<crate::model::NsKey, i64>> {
    let fail = |e| Error::failed_with("reading the provenance database", e);
    let alive = db.alive().map_err(fail)?;
    let mut rowids = HashMap::new();
    let mut ended = Vec::new();
    let (mut adopted, mut gone, mut unproven) = (0, 0, 0);
    for a in alive {
        let r = a.record;
        let same = match monitor.store().get(r.key) {
            // Ids are never reused.
            Some(_) if r.id.is_some() => Some(true),
            // Before 6.18 an inode may have been reused while no serve ran:
            // only a pin whose nsfs inode kept its change time proves it.
            Some(ns) => Some(r.identity.is_some() && identity::of(ns) == r.identity),
            None => None,
        };
        match same {
            Some(true) => {
                monitor.adopt(r.key, r.created, r.creator, r.pins, r.containers);
                rowids.insert(r.key, a.rowid);
                adopted += 1;
            }
            Some(false) => {
                ended.push((a.rowid, DeathVia::IdentityUnknown));
                unproven += 1;
            }
            None => {
                ended.push((a.rowid, DeathVia::WhileNstraceWasDown));
                gone += 1;
            }
        }
    }
    db.close_unseen(&ended, crate::time::Clock::unix_now())
        .map_err(|e| Error::failed_with("writing the provenance database", e))?;
    if adopted + gone + unproven > 0 {
        eprintln!(
            "nstrace: provenance: {adopted} namespace(s) recorded by an earlier run are still alive and keep their \
             records; {gone} recorded one(s) ended while serve was not running (closed in the database as \
             while-nstrace-was-down; normal after a stop){}",
            if unproven > 0 {
                format!(
                    "; {unproven} whose inode is alive but could be a new namespace (no ids before 6.18, no pin \
                     to prove it): provenance unknown"
                )
            } else {
                String::new()
            }
        );
    }
    Ok(rowids)
}

/// Where each new namespace came from: the cgroup the create record names
/// (its container at creation time), and what /proc still shows of the
/// creator (it may have exited already).
fn record_origins(
    monitor: &mut Monitor,
    cgroups: &mut origin::CgroupNames,
    names: &mut crate::containers::names::ContainerNames,
    events: &[Event],
) {
    for e in events {
        if let Event::Create { ns_type, id, inode, pid, time, .. } = e
            && *pid != 0
        {
            let key = NsKey::new(*ns_type, *inode).with_id(Some(*id));
            let Some(mut known) = monitor.store().get(key).and_then(|ns| Some(ns.creator.as_ref()?.origin.clone()))
            else {
                continue;
            };
            if known.cgroup.is_none() {
                known.cgroup = known.cgroup_id.and_then(|id| cgroups.path(id, *time));
            }
            let mut o = origin::capture(Path::new("/proc"), *pid, &known);
            o.container = o.cgroup.as_deref().and_then(|c| names.container_of(c));
            monitor.set_origin(key, o);
        }
    }
}

/// Hands the store's provenance changes to the writer, naming the
/// containers seen in them first.
fn flush_provenance(monitor: &mut Monitor, writer: &Writer, names: &mut crate::containers::names::ContainerNames) {
    let mut changes = monitor.take_provenance(|c| Some(names.name(c)));
    if changes.is_empty() {
        return;
    }
    // Before 6.18: note each pinned namespace's nsfs change time.
    for c in &mut changes {
        if let Change::Upsert(r) = c
            && r.id.is_none()
            && !r.pins.is_empty()
        {
            r.identity = monitor.store().get(r.key).and_then(identity::of);
        }
    }
    writer.send(changes);
}

/// Publishes the metrics and health; the per-row gauges (a pass over every
/// row) only when the table may have changed (records read, walks done,
/// holders re-read; at most every [`ROWS_AFTER_CHANGE`]) or
/// [`ROWS_AT_LEAST_EVERY`] passed (ages grow on their own).
#[derive(Default)]
struct Publisher {
    /// Records, walks and holder re-reads counted at the last row pass.
    seen: Option<(u64, u64, u64)>,
    rows_at: Option<Instant>,
}

/// The per-row pass (a few ms at 10,000 namespaces) runs at most this often
/// while the table changes: under churn it would otherwise run at every
/// publish.
const ROWS_AFTER_CHANGE: Duration = Duration::from_secs(2);
/// The age gauges are at most this old on an idle host.
const ROWS_AT_LEAST_EVERY: Duration = Duration::from_secs(30);

impl Publisher {
    fn publish(&mut self, shared: &Shared, monitor: &Monitor, writer: &Writer) {
        let stats = monitor.stats();
        let now = (stats.records, stats.walks, monitor.generation());
        let changed = self.seen != Some(now);
        let rows = self.rows_at.is_none_or(|t| {
            let since = t.elapsed();
            (changed && since >= ROWS_AFTER_CHANGE) || since >= ROWS_AT_LEAST_EVERY
        });
        if rows {
            self.seen = Some(now);
            self.rows_at = Some(Instant::now());
        }
        publish(shared, monitor, writer, rows);
    }
}

fn publish(shared: &Shared, monitor: &Monitor, writer: &Writer, rows: bool) {
    let health = writer.health();
    shared.with_metrics(|m| {
        if rows {
            m.set_from_monitor(monitor);
        } else {
            m.set_engine_stats(monitor.stats());
        }
        m.set_database(&health);
        m.set_dying(monitor.store());
    });
    let mut degraded: Vec<String> = health.error.map(|e| format!("provenance database: {e}")).into_iter().collect();
    if let Some(t) = monitor.walk_trouble() {
        degraded.push(format!("walk {}: {} (answering from /proc meanwhile)", t.failure.name(), t.message));
    }
    shared.set_degraded((!degraded.is_empty()).then(|| degraded.join("; ")));
    if shared.rows_wanted() {
        shared.publish_namespaces(monitor.ns_rows().into_iter().cloned().collect());
    }
    shared.mark_fresh();
}

/// Reads one request and writes the reply the event loop made for it.
async fn serve_client(mut stream: UnixStream, requests: mpsc::Sender<Pending>, shared: Arc<Shared>) {
    let mut line = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buf = [0u8; 4096];
        while !line.contains(&b'\n') && line.len() <= remote::MAX_REQUEST {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => line.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let request = remote::read_request(&line[..]);
    let command = match (&read, &request) {
        (Ok(()), Ok(r)) => r.command.as_str(),
        _ => "invalid",
    };
    shared.with_metrics(|m| m.service_request(command));
    let reply = match (read, request) {
        (Err(_), _) => Reply::error(exit::USAGE, format!("no complete request within {}s", REQUEST_TIMEOUT.as_secs())),
        (Ok(()), Err(e)) => Reply::error(exit::USAGE, e),
        (Ok(()), Ok(request)) => {
            let (tx, rx) = oneshot::channel();
            match requests.send((request, tx)).await {
                Ok(()) => rx.await.unwrap_or_else(|_| Reply::error(exit::RUNTIME, "stopping")),
                Err(_) => Reply::error(exit::RUNTIME, "stopping"),
            }
        }
    };
    let mut text = serde_json::to_vec(&reply).unwrap_or_default();
    text.push(b'\n');
    let _ = stream.write_all(&text).await;
    let _ = stream.shutdown().await;
}

/// One request's answer, prepared on the event loop (a copy of the store
/// for `ls`, `why` and `leaks`; the database handles for `history`) and run
/// on a blocking thread.
struct Job {
    store: Option<crate::store::NsStore>,
    flusher: crate::database::writer::Flusher,
    reader: Arc<std::sync::Mutex<Option<Db>>>,
    db: PathBuf,
}

impl Job {
    fn new(
        request: &Request,
        monitor: &Monitor,
        writer: &Writer,
        reader: &Arc<std::sync::Mutex<Option<Db>>>,
        db: &Path,
    ) -> Job {
        let needs_store = matches!(request.command.as_str(), "ls" | "why" | "leaks" | "limits");
        Job {
            store: needs_store.then(|| monitor.store().copy_for_reading()),
            flusher: writer.flusher(),
            reader: reader.clone(),
            db: db.to_path_buf(),
        }
    }

    /// Runs the client's command against the store copy (or the database).
    fn answer(&self, request: &Request) -> Reply {
        let mut stdout = Vec::new();
        let argv = || std::iter::once(format!("nstrace {}", request.command)).chain(request.args.iter().cloned());
        let store = || self.store.as_ref().expect("copied for this command");
        let result = match request.command.as_str() {
            "ls" => LsCommand::try_parse_from(argv()).map(|c| crate::cli::ls::answer(&c.args, store(), &mut stdout)),
            "why" => WhyCommand::try_parse_from(argv()).map(|c| crate::cli::why::answer(&c.args, store(), &mut stdout)),
            "leaks" => {
                LeaksCommand::try_parse_from(argv()).map(|c| crate::cli::leaks::answer(&c.args, store(), &mut stdout))
            }
            "limits" => {
                LimitsCommand::try_parse_from(argv()).map(|c| crate::cli::limits::answer(&c.args, store(), &mut stdout))
            }
            "history" => HistoryCommand::try_parse_from(argv()).map(|c| {
                // What happened just now is in the file before it is read.
                self.flusher.flush(Duration::from_secs(2));
                let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
                if reader.is_none() {
                    *reader = Some(
                        Db::open_read_only(&self.db)
                            .map_err(|e| Error::failed_with("opening the provenance database", e))?,
                    );
                }
                crate::cli::history::answer(&c.args, reader.as_ref().expect("opened above"), &mut stdout)
            }),
            other => return Reply::error(exit::USAGE, format!("unknown command {other:?}")),
        };
        match result {
            Err(e) => Reply { exit: e.exit_code(), stdout: String::new(), stderr: e.render().to_string() },
            Ok(Ok(code)) => {
                Reply { exit: code, stdout: String::from_utf8_lossy(&stdout).into_owned(), stderr: String::new() }
            }
            Ok(Err(e)) => Reply {
                exit: e.exit_code().into(),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: format!("nstrace: {}\n", crate::chain::Chain(&e)),
            },
        }
    }
}

#[derive(Parser)]
struct LsCommand {
    #[command(flatten)]
    args: crate::cli::ls::Args,
}

#[derive(Parser)]
struct WhyCommand {
    #[command(flatten)]
    args: crate::cli::why::Args,
}

#[derive(Parser)]
struct LeaksCommand {
    #[command(flatten)]
    args: crate::cli::leaks::Args,
}

#[derive(Parser)]
struct LimitsCommand {
    #[command(flatten)]
    args: crate::cli::limits::Args,
}

#[derive(Parser)]
struct HistoryCommand {
    #[command(flatten)]
    args: crate::cli::history::Args,
}

//! The database writer: one thread owns the connection, takes batches of
//! [`Change`]s from the event loop and commits them together, so neither
//! disk latency nor a full or read-only filesystem ever stalls tracing.
//! A failed write keeps its changes and is retried; the failure shows in
//! [`Health`] (served on /healthz and as metrics).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{Change, db::Db};
use crate::time::UnixTime;

/// Changes are committed at least this often.
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// A failed commit or open is retried this often.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Pruning runs at least this often (sooner for a short `--retain`, and
/// whenever a tenth of `--db-max-rows` has been written since the last).
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Changes kept in memory while the database cannot be written; past it the
/// oldest are dropped (and counted).
const MAX_QUEUED: usize = 1_000_000;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Health {
    /// The last write (or open) failed and is being retried.
    pub failing: bool,
    pub error: Option<String>,
    /// Changes committed since start.
    pub written: u64,
    /// Commits that failed.
    pub failures: u64,
    /// Changes waiting to be written.
    pub queued: usize,
    /// Changes dropped because the queue was full.
    pub dropped: u64,
    /// Rows pruned (older than --retain, or past the row cap).
    pub pruned: u64,
    /// Bytes the database uses.
    pub bytes: u64,
}

/// How long rows are kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub max_age: Duration,
    pub max_rows: usize,
}

impl Retention {
    /// Whether a prune is due, `since` after the last one with `written`
    /// changes committed since: a row outlives `--retain` by at most a
    /// tenth of it (a second at least), and the table outgrows
    /// `--db-max-rows` by at most a tenth.
    fn prune_due(&self, since: Duration, written: usize) -> bool {
        since >= self.prune_every() || written >= (self.max_rows / 10).max(1)
    }

    /// The longest gap between prunes.
    fn prune_every(&self) -> Duration {
        PRUNE_EVERY.min(self.max_age / 10).max(Duration::from_secs(1))
    }
}

enum Msg {
    Changes(Vec<Change>),
    /// Commit everything queued, then answer.
    Flush(mpsc::Sender<()>),
}

pub struct Writer {
    tx: Option<mpsc::Sender<Msg>>,
    health: Arc<Mutex<Health>>,
    thread: Option<JoinHandle<()>>,
}

/// How the writer gets its database: already open, or opened (and
/// re-tried) on its thread.
pub enum Start {
    Open(Db, HashMap<crate::model::NsKey, i64>),
    Retry { path: PathBuf, boot_id: String, error: String },
}

impl Writer {
    pub fn start(start: Start, retention: Retention) -> Writer {
        let health = Arc::new(Mutex::new(Health::default()));
        let (tx, rx) = mpsc::channel();
        let h = health.clone();
        let thread = std::thread::Builder::new()
            .name("nstrace-db".into())
            .spawn(move || run(start, rx, h, retention))
            .expect("spawning the database thread");
        Writer { tx: Some(tx), health, thread: Some(thread) }
    }

    pub fn send(&self, changes: Vec<Change>) {
        if !changes.is_empty()
            && let Some(tx) = &self.tx
        {
            let _ = tx.send(Msg::Changes(changes));
        }
    }

    /// Waits (up to `timeout`) until everything sent so far is committed or failed.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.flusher().flush(timeout)
    }

    pub fn health(&self) -> Health {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// A handle that can wait for the queue from another thread (`history`
    /// answered off the event loop).
    pub fn flusher(&self) -> Flusher {
        Flusher { tx: self.tx.clone() }
    }

    /// Stops the writer: waits up to `timeout` for what is queued to be
    /// committed, then lets the thread go. A database that does not answer
    /// (a hung disk) cannot hold a stopping service; returns whether all
    /// was written.
    pub fn stop(mut self, timeout: Duration) -> bool {
        let written = self.flush(timeout);
        self.tx.take();
        if !written {
            // Detached: it ends when its write does, or with the process.
            self.thread.take();
        }
        written
    }

    pub fn health_handle(&self) -> Arc<Mutex<Health>> {
        self.health.clone()
    }
}

/// Waits for the writer's queue from any thread.
pub struct Flusher {
    tx: Option<mpsc::Sender<Msg>>,
}

impl Flusher {
    /// [`Writer::flush`].
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        match &self.tx {
            Some(tx) if tx.send(Msg::Flush(done)).is_ok() => wait.recv_timeout(timeout).is_ok(),
            _ => false,
        }
    }
}

impl Drop for Writer {
    /// Commits what is queued and stops the thread.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State {
    db: Option<Db>,
    rowids: HashMap<crate::model::NsKey, i64>,
    queue: Vec<Change>,
    reopen: Option<(PathBuf, String)>,
    health: Arc<Mutex<Health>>,
    retention: Retention,
    last_prune: Option<Instant>,
    /// Changes committed since the last prune.
    written_since_prune: usize,
}

fn run(start: Start, rx: mpsc::Receiver<Msg>, health: Arc<Mutex<Health>>, retention: Retention) {
    let mut s = State {
        db: None,
        rowids: HashMap::new(),
        queue: Vec::new(),
        reopen: None,
        health,
        retention,
        last_prune: None,
        written_since_prune: 0,
    };
    match start {
        Start::Open(db, rowids) => {
            s.db = Some(db);
            s.rowids = rowids;
        }
        Start::Retry { path, boot_id, error } => {
            s.fail(error);
            s.reopen = Some((path, boot_id));
        }
    }
    let mut last_try = Instant::now();
    loop {
        // With nothing queued the thread sleeps until a change comes or a
        // prune is due: an idle service wakes it for nothing.
        let wait = if s.failing() {
            RETRY_EVERY
        } else if s.queue.is_empty() && s.reopen.is_none() {
            s.retention.prune_every()
        } else {
            COMMIT_EVERY
        };
        match rx.recv_timeout(wait.saturating_sub(last_try.elapsed())) {
            Ok(Msg::Changes(c)) => {
                // The first change after a quiet spell starts the batch: it
                // is committed with what follows within COMMIT_EVERY.
                if s.queue.is_empty() && !s.failing() {
                    last_try = Instant::now();
                }
                s.enqueue(c);
                // Keep taking what is already there: one commit per burst.
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Changes(c) => s.enqueue(c),
                        Msg::Flush(done) => {
                            s.commit();
                            let _ = done.send(());
                        }
                    }
                }
            }
            Ok(Msg::Flush(done)) => {
                s.commit();
                last_try = Instant::now();
                let _ = done.send(());
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                s.commit();
                return;
            }
        }
        if last_try.elapsed() >= wait {
            s.commit();
            last_try = Instant::now();
        }
    }
}

impl State {
    fn failing(&self) -> bool {
        self.health.lock().is_ok_and(|h| h.failing)
    }

    fn fail(&mut self, error: String) {
        if let Ok(mut h) = self.health.lock() {
            if !h.failing || h.error.as_deref() != Some(&error) {
                log::warn!("provenance database: {error} (tracing goes on; retrying every {}s)", RETRY_EVERY.as_secs());
            }
            h.failing = true;
            h.error = Some(error);
            h.failures += 1;
            h.queued = self.queue.len();
        }
    }

    fn enqueue(&mut self, mut c: Vec<Change>) {
        self.queue.append(&mut c);
        if self.queue.len() > MAX_QUEUED {
            let over = self.queue.len() - MAX_QUEUED;
            self.queue.drain(..over);
            if let Ok(mut h) = self.health.lock() {
                h.dropped += over as u64;
            }
        }
    }

    fn commit(&mut self) {
        if self.db.is_none()
            && let Some((path, boot_id)) = &self.reopen
        {
            match Db::open(path, boot_id) {
                Ok((db, note)) => {
                    if let Some(note) = note {
                        log::warn!("{note}");
                    }
                    // Rows the file holds now (a file system repaired and
                    // mounted again may hold fewer than before): a death
                    // whose row is gone is written as a row of its own.
                    match db.alive() {
                        Ok(alive) => self.rowids = alive.into_iter().map(|a| (a.record.key, a.rowid)).collect(),
                        Err(e) => return self.fail(crate::chain::Chain(&e).to_string()),
                    }
                    self.db = Some(db);
                    self.reopen = None;
                }
                Err(e) => return self.fail(crate::chain::Chain(&e).to_string()),
            }
        }
        let Some(db) = self.db.as_mut() else { return };
        let n = self.queue.len();
        let result = if n == 0 { Ok(()) } else { db.apply(&self.queue, &mut self.rowids) };
        if let Err(e) = result {
            // Kept, and retried on a connection opened afresh: a file
            // system that went read-only mid-run comes back as a new mount.
            self.reopen = Some((db.path().to_path_buf(), db.boot_id().to_string()));
            self.db = None;
            return self.fail(crate::chain::Chain(&e).to_string());
        }
        self.queue.clear();
        self.written_since_prune += n;
        // Pruned after the write, so the row cap holds at the end of a burst.
        let mut pruned = 0;
        if self.last_prune.is_none_or(|t| self.retention.prune_due(t.elapsed(), self.written_since_prune)) {
            let before =
                UnixTime::from_secs((crate::time::Clock::unix_now() - self.retention.max_age).as_secs().max(0.0));
            match db.prune(before, self.retention.max_rows) {
                Ok(n) => pruned = n,
                Err(e) => log::warn!("pruning the provenance database: {}", crate::chain::Chain(&e)),
            }
            self.last_prune = Some(Instant::now());
            self.written_since_prune = 0;
        }
        let bytes = db.bytes().unwrap_or(0);
        if let Ok(mut h) = self.health.lock() {
            if h.failing {
                log::warn!("provenance database: writing again");
            }
            h.failing = false;
            h.error = None;
            h.written += n as u64;
            h.queued = 0;
            h.pruned += pruned as u64;
            h.bytes = bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prune_is_due_a_tenth_of_the_retention_or_a_tenth_of_the_rows_after_the_last() {
        let week = Retention { max_age: Duration::from_secs(7 * 86400), max_rows: 1_000_000 };
        assert!(!week.prune_due(Duration::from_secs(59), 99_999));
        assert!(week.prune_due(PRUNE_EVERY, 0), "every minute at least");
        assert!(week.prune_due(Duration::ZERO, 100_000), "a tenth of the row cap written");
        let short = Retention { max_age: Duration::from_secs(20), max_rows: 1_000_000 };
        assert!(!short.prune_due(Duration::from_millis(1900), 0));
        assert!(short.prune_due(Duration::from_secs(2), 0), "a tenth of --retain 20s");
        let tiny = Retention { max_age: Duration::from_secs(1), max_rows: 5 };
        assert!(!tiny.prune_due(Duration::from_millis(999), 0), "a second at least");
        assert!(tiny.prune_due(Duration::ZERO, 1), "a tenth of 5 rows is one");
    }
}

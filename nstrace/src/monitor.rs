//! The live table behind `nstrace live` and `nstrace export`: the engine's
//! events plus periodic full snapshots (holders from /proc and the kernel's
//! task list), with per-namespace history and a bounded memory footprint.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use nstrace_common::ns::NsType;
use serde::Serialize;

use crate::{
    engine::{Engine, EngineError, EngineOptions, EngineStats},
    events::{Clock, Event},
    holders,
    loader::known_key,
    model::NsKey,
    snapshot::{self, NsRow, NsState},
    table::Creator,
};

#[derive(Clone, Debug)]
pub struct MonitorOptions {
    pub engine: EngineOptions,
    /// How often holders are re-read from /proc and the task list.
    pub refresh: Duration,
    /// Events kept per namespace.
    pub history: usize,
    /// Events kept in the feed.
    pub feed: usize,
    /// Most rows kept; destroyed rows are evicted first, oldest first.
    pub max_rows: usize,
    /// How long a destroyed row stays visible.
    pub keep_destroyed: Duration,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            engine: EngineOptions::default(),
            refresh: Duration::from_secs(1),
            history: 16,
            feed: 1000,
            max_rows: 100_000,
            keep_destroyed: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("scanning /proc for holders: {0}")]
    Holders(#[from] holders::HoldersError),
    #[error("the /proc scan task failed: {0}")]
    ScanTask(String),
}

/// One namespace in the live table.
#[derive(Clone, Debug, Serialize)]
pub struct LiveNs {
    #[serde(flatten)]
    pub row: NsRow,
    /// Unix time of creation, when nstrace saw it.
    pub created: Option<f64>,
    /// Boxed: most namespaces predate nstrace and have none (saves bytes per row).
    pub creator: Option<Box<Creator>>,
    /// Unix time nstrace first saw it (its start, for older namespaces).
    pub first_seen: f64,
    /// Unix time of the last change seen.
    pub last_change: f64,
    /// Unix time of destruction (the row is kept for a while).
    pub destroyed: Option<f64>,
    #[serde(skip)]
    pub history: VecDeque<Event>,
}

impl LiveNs {
    pub fn key(&self) -> u64 {
        known_key(self.row.id.unwrap_or(0), self.row.ns_type as u32, self.row.inode as u32)
    }

    /// Seconds since creation, when known.
    pub fn age(&self, now: f64) -> Option<f64> {
        self.created.map(|c| (self.destroyed.unwrap_or(now) - c).max(0.0))
    }
}

/// Totals for a header line.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub by_type: Vec<(NsType, usize)>,
    pub by_state: Vec<(NsState, usize)>,
    pub live: usize,
    pub destroyed_shown: usize,
    /// Per second over the last 10 seconds.
    pub created_rate: f64,
    pub destroyed_rate: f64,
}

/// A holder scan running on a blocking thread, and when it started.
type PendingScan = (Instant, tokio::task::JoinHandle<Result<holders::HolderScan, holders::HoldersError>>);

pub struct Monitor {
    engine: Engine,
    opts: MonitorOptions,
    /// The /proc scan runs off the event loop so keys and events stay
    /// responsive while it reads thousands of /proc entries.
    scan: Option<PendingScan>,
    rows: HashMap<u64, LiveNs>,
    feed: VecDeque<Event>,
    last_refresh: Option<Instant>,
    /// (time, created, destroyed) of recent events for rates.
    recent: VecDeque<(f64, bool)>,
    pub refresh_micros: u64,
}

impl Monitor {
    pub fn start(opts: MonitorOptions) -> Result<Monitor, MonitorError> {
        let engine = Engine::start(&opts.engine)?;
        let mut m = Monitor {
            engine,
            opts,
            scan: None,
            rows: HashMap::new(),
            feed: VecDeque::new(),
            last_refresh: None,
            recent: VecDeque::new(),
            refresh_micros: 0,
        };
        m.refresh()?;
        Ok(m)
    }

    /// The mechanism per job (see [`crate::mechanism`]).
    pub fn mechanisms(&self) -> crate::mechanism::Mechanisms {
        self.engine.mechanisms()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.engine.stats
    }

    pub fn clock(&self) -> &Clock {
        self.engine.clock()
    }

    pub fn rows(&self) -> impl Iterator<Item = &LiveNs> {
        self.rows.values()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn feed(&self) -> &VecDeque<Event> {
        &self.feed
    }

    /// Waits for the next batch of events or a finished holder scan;
    /// starts a scan when one is due. Returns the new events (applied).
    pub async fn step(&mut self) -> Result<Vec<Event>, MonitorError> {
        let mut events = Vec::new();
        let scan_done = async {
            match self.scan.as_mut() {
                Some((_, handle)) => handle.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = self.engine.step(&mut events) => r?,
            done = scan_done => {
                let (started, _) = self.scan.take().expect("a scan was running");
                let scan = done.map_err(|e| MonitorError::ScanTask(e.to_string()))??;
                self.apply_scan(scan, started);
            }
        }
        for e in &events {
            self.apply(e);
        }
        if self.scan.is_none() && self.last_refresh.is_none_or(|t| t.elapsed() >= self.opts.refresh) {
            let started = Instant::now();
            let tasks = self.engine.task_source()?;
            let handle = tokio::task::spawn_blocking(move || tasks.scan());
            self.scan = Some((started, handle));
            // Counted from the start, so a slow scan does not pile up.
            self.last_refresh = Some(started);
        }
        Ok(events)
    }

    /// Re-reads holders and rebuilds every live row, synchronously.
    pub fn refresh(&mut self) -> Result<(), MonitorError> {
        let started = Instant::now();
        let scan = self.engine.task_source()?.scan()?;
        self.apply_scan(scan, started);
        Ok(())
    }

    /// Rebuilds every live row from the last walk and a holder scan.
    fn apply_scan(&mut self, scan: holders::HolderScan, started: Instant) {
        let fresh = snapshot::assemble(self.engine.last_walk(), scan);
        let now = self.clock().unix(Clock::now_boot_ns());
        let table = self.engine.table();
        let mut seen = std::collections::HashSet::with_capacity(fresh.len());
        for row in fresh {
            let key = known_key(row.id.unwrap_or(0), row.ns_type as u32, row.inode as u32);
            seen.insert(key);
            let entry = table.get(key);
            let created = entry.and_then(|e| e.created_ns).map(|ns| self.clock().unix(ns));
            let creator = entry.and_then(|e| e.creator.clone());
            match self.rows.get_mut(&key) {
                Some(live) => {
                    if live.row.state != row.state || live.row.tasks != row.tasks {
                        live.last_change = now;
                    }
                    live.row = row;
                    live.created = live.created.or(created);
                    live.creator = live.creator.take().or(creator);
                }
                None => {
                    self.rows.insert(
                        key,
                        LiveNs {
                            row,
                            created,
                            creator,
                            first_seen: created.unwrap_or(now),
                            last_change: now,
                            destroyed: None,
                            history: VecDeque::new(),
                        },
                    );
                }
            }
        }
        // Rows not in the walk any more are dead even if no event said so.
        for (key, live) in self.rows.iter_mut() {
            if live.destroyed.is_none() && !seen.contains(key) && table.get(*key).is_none() {
                live.destroyed = Some(now);
            }
        }
        self.evict(now);
        // A refresh allocates a fresh copy of every row; hand the freed
        // memory back so resident memory tracks the table, not the peak.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe {
            libc::malloc_trim(0);
        }
        self.last_refresh = Some(started);
        self.refresh_micros = started.elapsed().as_micros() as u64;
    }

    fn apply(&mut self, e: &Event) {
        let now = self.clock().unix(Clock::now_boot_ns());
        match e {
            Event::Create { time, ns_type, id, inode, owner, parent, level, pid, tid, comm, cause, flags, .. } => {
                self.recent.push_back((*time, true));
                let key = known_key(*id, *ns_type as u32, *inode as u32);
                let live = self.rows.entry(key).or_insert_with(|| LiveNs {
                    row: NsRow {
                        id: Some(*id),
                        state: if *pid != 0 { NsState::Active } else { NsState::Orphaned },
                        owner: owner.map(|o| o.inode),
                        parent: parent.map(|p| p.inode),
                        level: *level,
                        command: (!comm.is_empty()).then(|| comm.clone()),
                        ..NsRow::new(*ns_type, *inode)
                    },
                    created: Some(*time),
                    creator: (*pid != 0)
                        .then(|| Box::new(Creator { pid: *pid, tid: *tid, comm: comm.clone(), cause, flags: *flags })),
                    first_seen: *time,
                    last_change: *time,
                    destroyed: None,
                    history: VecDeque::new(),
                });
                push_bounded(&mut live.history, e.clone(), self.opts.history);
            }
            Event::Destroy { time, ns_type, id, inode, .. } => {
                self.recent.push_back((*time, false));
                let key = known_key(*id, *ns_type as u32, *inode as u32);
                if let Some(live) = self.rows.get_mut(&key) {
                    live.destroyed = Some(*time);
                    live.last_change = *time;
                    push_bounded(&mut live.history, e.clone(), self.opts.history);
                }
            }
            Event::Setns { joined: changes, .. } | Event::Unshare { new: changes, .. } => {
                for c in changes {
                    let key = known_key(c.id, c.ns_type as u32, c.inode as u32);
                    if let Some(live) = self.rows.get_mut(&key) {
                        live.last_change = now;
                        push_bounded(&mut live.history, e.clone(), self.opts.history);
                    }
                }
            }
            _ => {}
        }
        if !matches!(e, Event::Namespaces { .. }) {
            push_bounded(&mut self.feed, e.clone(), self.opts.feed);
        }
        while self.recent.front().is_some_and(|(t, _)| *t < now - 10.0) {
            self.recent.pop_front();
        }
    }

    fn evict(&mut self, now: f64) {
        evict(&mut self.rows, now, self.opts.keep_destroyed, self.opts.max_rows);
    }

    pub fn totals(&self) -> Totals {
        let now = self.clock().unix(Clock::now_boot_ns());
        let mut by_type: HashMap<NsType, usize> = HashMap::new();
        let mut by_state: HashMap<NsState, usize> = HashMap::new();
        let mut t = Totals::default();
        for r in self.rows.values() {
            if r.destroyed.is_some() {
                t.destroyed_shown += 1;
                continue;
            }
            t.live += 1;
            *by_type.entry(r.row.ns_type).or_default() += 1;
            *by_state.entry(r.row.state).or_default() += 1;
        }
        t.by_type = NsType::ALL.iter().map(|ty| (*ty, by_type.get(ty).copied().unwrap_or(0))).collect();
        let mut states: Vec<(NsState, usize)> = by_state.into_iter().collect();
        states.sort();
        t.by_state = states;
        let window = self.recent.iter().filter(|(time, _)| *time >= now - 10.0);
        let (c, d) = window.fold((0, 0), |(c, d), (_, created)| if *created { (c + 1, d) } else { (c, d + 1) });
        t.created_rate = c as f64 / 10.0;
        t.destroyed_rate = d as f64 / 10.0;
        t
    }

    /// The current rows as `ls --json` rows (live ones only).
    pub fn ns_rows(&self) -> Vec<&NsRow> {
        let mut rows: Vec<&NsRow> = self.rows.values().filter(|r| r.destroyed.is_none()).map(|r| &r.row).collect();
        rows.sort_by_key(|r| NsKey { ns_type: r.ns_type, inode: r.inode });
        rows
    }
}

/// Drops destroyed rows older than `keep`, then, over `max_rows`, destroyed
/// rows first (oldest first), then the rows that changed longest ago.
fn evict(rows: &mut HashMap<u64, LiveNs>, now: f64, keep: Duration, max_rows: usize) {
    let keep = keep.as_secs_f64();
    rows.retain(|_, r| r.destroyed.is_none_or(|d| now - d < keep));
    if rows.len() <= max_rows {
        return;
    }
    let mut order: Vec<(bool, f64, u64)> =
        rows.iter().map(|(k, r)| (r.destroyed.is_none(), r.destroyed.unwrap_or(r.last_change), *k)).collect();
    order.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let excess = rows.len() - max_rows;
    for (_, _, k) in order.into_iter().take(excess) {
        rows.remove(&k);
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    if cap == 0 {
        return;
    }
    while q.len() >= cap {
        q.pop_front();
    }
    q.push_back(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(inode: u64, last_change: f64, destroyed: Option<f64>) -> (u64, LiveNs) {
        let row = NsRow { id: Some(inode), ..NsRow::new(NsType::Net, inode) };
        let ns = LiveNs {
            row,
            created: None,
            creator: None,
            first_seen: 0.0,
            last_change,
            destroyed,
            history: VecDeque::new(),
        };
        (ns.key(), ns)
    }

    #[test]
    fn memory_cap_evicts_destroyed_rows_first_then_the_stalest() {
        let mut rows: HashMap<u64, LiveNs> = [
            live(1, 50.0, None),
            live(2, 10.0, None),
            live(3, 40.0, Some(90.0)),
            live(4, 40.0, Some(80.0)),
            live(5, 60.0, None),
        ]
        .into_iter()
        .collect();
        evict(&mut rows, 100.0, Duration::from_secs(60), 3);
        let mut left: Vec<u64> = rows.values().map(|r| r.row.inode).collect();
        left.sort();
        // Both destroyed rows went first.
        assert_eq!(left, vec![1, 2, 5]);
        evict(&mut rows, 100.0, Duration::from_secs(60), 2);
        let mut left: Vec<u64> = rows.values().map(|r| r.row.inode).collect();
        left.sort();
        // Then the row that changed longest ago.
        assert_eq!(left, vec![1, 5]);
    }

    #[test]
    fn destroyed_rows_expire() {
        let mut rows: HashMap<u64, LiveNs> = [live(1, 0.0, Some(10.0)), live(2, 0.0, Some(95.0))].into_iter().collect();
        evict(&mut rows, 100.0, Duration::from_secs(60), 100);
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn history_is_bounded() {
        let mut q = VecDeque::new();
        for i in 0..40 {
            push_bounded(&mut q, i, 16);
        }
        assert_eq!(q.len(), 16);
        assert_eq!(q.front(), Some(&24));
    }
}

//! The running tracer: loads and attaches every hook family, seeds the
//! table from a walk, then turns ring-buffer records and periodic walks into
//! [`Event`]s. Lost records are counted, reported and healed by a resync.

use std::{collections::HashMap, time::Duration};

use nstrace_common::{
    decode::{Record, StreamItemOwned},
    event::EventKind,
};

use crate::{
    events::{self, Clock, Event, NsIds},
    loader::{EventStream, KnownMap, LoadOptions, LoaderError, Tracer},
    snapshot::kernel::{WalkError, Walker},
    table::{NsEntry, Table},
};

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How often the tree walk confirms deaths and heals losses.
    pub walk_interval: Duration,
    pub load: LoadOptions,
    /// Attach the unshare/setns syscall tracepoints. While any syscalls:*
    /// tracepoint is attached every syscall of every task takes the
    /// tracing slow path (tens of ns each); without them unshare/setns are
    /// not reported, their namespaces still are (at the next fork, exec or
    /// walk).
    pub syscall_events: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { walk_interval: Duration::from_secs(1), load: LoadOptions::default(), syscall_events: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error("tree walk: {0}")]
    Walk(#[from] WalkError),
}

/// Counters a user (or the exporter) may want.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EngineStats {
    pub records: u64,
    pub malformed: u64,
    pub lost: u64,
    pub resyncs: u64,
    pub walks: u64,
}

pub struct Engine {
    _tracer: Tracer,
    walker: Walker,
    stream: EventStream,
    known: KnownMap,
    table: Table,
    clock: Clock,
    /// nsfs device number, for PERF_RECORD_NAMESPACES-style {dev, inode}.
    dev: u64,
    lost_seen: HashMap<EventKind, u64>,
    interval: tokio::time::Interval,
    /// The rows of the most recent walk (reused by snapshots).
    last_walk: Vec<nstrace_common::event::NsInfoRecord>,
    /// Whether the workqueue destroy-hint hook is attached.
    hints: bool,
    /// Ids of our own (host) namespaces: exits of tasks only in these
    /// cannot end a namespace, so they trigger no early walk.
    host_ids: std::collections::HashSet<u64>,
    /// When a hint asked for an early walk.
    walk_soon: Option<tokio::time::Instant>,
    last_walk_at: tokio::time::Instant,
    pub stats: EngineStats,
}

/// Shortest gap between hint-driven walks (bounds their cost under churn).
const HINT_WALK_GAP: Duration = Duration::from_millis(50);

fn host_namespace_ids() -> std::collections::HashSet<u64> {
    nstrace_common::ns::NsType::ALL
        .iter()
        .filter_map(|t| crate::nsfs::open(std::path::Path::new(&format!("/proc/self/ns/{}", t.name()))).ok())
        .filter_map(|fd| crate::nsfs::ns_id(&fd).ok())
        .collect()
}

impl Engine {
    /// Loads, attaches, seeds the table. Events from here on are reported.
    pub fn start(opts: &EngineOptions) -> Result<Engine, EngineError> {
        let mut tracer = Tracer::load(&opts.load)?;
        let mut walker = tracer.walker()?;
        let mut known = tracer.known()?;
        let stream = tracer.events()?;
        // Seed before attaching: everything that exists now is not "created".
        let (rows, _) = walker.walk_all()?;
        let last_walk = rows.clone();
        let mut table = Table::default();
        table.seed(&rows, Clock::now_boot_ns());
        for e in table.entries() {
            known.insert(e.key())?;
        }
        tracer.attach_task_hooks()?;
        if opts.syscall_events {
            tracer.attach_syscall_hooks()?;
        }
        let hints = tracer.attach_destroy_hints()?;
        let host_ids = host_namespace_ids();
        let dev = crate::nsfs::nsfs_dev().unwrap_or(0);
        let mut interval = tokio::time::interval(opts.walk_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Engine {
            _tracer: tracer,
            walker,
            stream,
            known,
            table,
            clock: Clock::new(),
            dev,
            lost_seen: HashMap::new(),
            interval,
            last_walk,
            hints,
            host_ids,
            walk_soon: None,
            last_walk_at: tokio::time::Instant::now(),
            stats: EngineStats::default(),
        })
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The rows of the most recent walk.
    pub fn last_walk(&self) -> &[nstrace_common::event::NsInfoRecord] {
        &self.last_walk
    }

    /// Every process and its namespace set, from the kernel's task list.
    pub fn walk_tasks(&mut self) -> Result<Vec<nstrace_common::event::TaskNsEvent>, EngineError> {
        let mut stats = crate::snapshot::kernel::WalkStats::default();
        Ok(self.walker.walk_tasks(&mut stats)?)
    }

    /// Whether deaths are hinted by the workqueue hook (see `doctor`).
    pub fn has_destroy_hints(&self) -> bool {
        self.hints
    }

    /// Waits for records, a due early walk or the next periodic walk, and
    /// appends the resulting events.
    pub async fn step(&mut self, out: &mut Vec<Event>) -> Result<(), EngineError> {
        let mut records = Vec::new();
        let soon = self.walk_soon;
        let early = async move {
            match soon {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            batch = self.stream.next_batch(|r| records.push(r)) => { batch?; }
            _ = early => {
                self.stream.drain(|r| records.push(r));
                self.handle(records, out);
                return self.reconcile(String::new(), out);
            }
            _ = self.interval.tick() => {
                self.stream.drain(|r| records.push(r));
                self.handle(records, out);
                let lost = self.check_lost(out)?;
                let reason = if lost > 0 { format!("{lost} records lost") } else { String::new() };
                return self.reconcile(reason, out);
            }
        }
        self.handle(records, out);
        Ok(())
    }

    /// Something may have died: walk soon (rate-limited).
    fn hint(&mut self) {
        if self.walk_soon.is_none() {
            let earliest = self.last_walk_at + HINT_WALK_GAP;
            // A little delay lets a burst of exits share one walk.
            let at = (tokio::time::Instant::now() + Duration::from_millis(5)).max(earliest);
            self.walk_soon = Some(at);
        }
    }

    fn handle(&mut self, records: Vec<StreamItemOwned>, out: &mut Vec<Event>) {
        for item in records {
            self.stats.records += 1;
            match item {
                Ok(Record::Task(t)) => {
                    if t.header.kind == EventKind::Exit as u32
                        && t.ns.iter().any(|n| n.id != 0 && !self.host_ids.contains(&n.id))
                    {
                        self.hint();
                    }
                    events::from_task(&t, &self.clock, self.dev, out)
                }
                Ok(Record::Syscall(s)) => {
                    // The namespaces left behind may have died.
                    if s.ret == 0 {
                        self.hint();
                    }
                    events::from_syscall(&s, &self.clock, self.dev, out)
                }
                Ok(Record::DestroyHint(_)) => self.hint(),
                Ok(Record::Create(c)) => {
                    if let Some(e) = self.table.on_create(&c) {
                        out.push(create_event(e, &self.clock, c.header.ts_ns));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.stats.malformed += 1;
                    log::warn!("malformed ring-buffer record skipped: {e}");
                }
            }
        }
    }

    /// Reports newly lost records; returns how many.
    fn check_lost(&mut self, out: &mut Vec<Event>) -> Result<u64, EngineError> {
        let mut new = 0;
        for (kind, total) in self.stream.lost_counts()? {
            let seen = self.lost_seen.entry(kind).or_insert(0);
            if total > *seen {
                let count = total - *seen;
                new += count;
                *seen = total;
                out.push(Event::Lost { time: self.clock.unix(Clock::now_boot_ns()), kind: kind.name(), count, total });
            }
        }
        self.stats.lost += new;
        Ok(new)
    }

    /// Walks every namespace list and makes the table match it. A non-empty
    /// `reason` makes this a reported resync.
    pub fn reconcile(&mut self, reason: String, out: &mut Vec<Event>) -> Result<(), EngineError> {
        let (rows, _) = self.walker.walk_all()?;
        self.stats.walks += 1;
        self.walk_soon = None;
        self.last_walk_at = tokio::time::Instant::now();
        let now = Clock::now_boot_ns();
        let r = self.table.reconcile(&rows, now);
        self.last_walk = rows;
        let time = self.clock.unix(now);
        for e in &r.created {
            let _ = self.known.insert(e.key());
            out.push(create_event(e, &self.clock, now));
        }
        for e in &r.destroyed {
            self.known.remove(e.key());
            out.push(Event::Destroy {
                time,
                ns_type: e.ns_type,
                id: e.id,
                inode: e.inode,
                lifetime: e.created_ns.map(|c| now.saturating_sub(c) as f64 / 1e9),
                creator_pid: e.creator.as_ref().map(|c| c.pid),
            });
        }
        if !reason.is_empty() {
            self.stats.resyncs += 1;
            out.push(Event::Resync {
                time,
                reason,
                namespaces: self.table.len(),
                created: r.created.len(),
                destroyed: r.destroyed.len(),
            });
        }
        Ok(())
    }
}

fn create_event(e: &NsEntry, clock: &Clock, ts: u64) -> Event {
    let (pid, tid, comm, cause, flags) = match &e.creator {
        Some(c) => (c.pid, c.tid, c.comm.clone(), c.cause, c.flags),
        None => (0, 0, String::new(), "walk", 0),
    };
    Event::Create {
        time: clock.unix(e.created_ns.unwrap_or(ts)),
        pid,
        tid,
        comm,
        ns_type: e.ns_type,
        id: e.id,
        inode: e.inode,
        owner: e.owner,
        parent: e.parent.map(|p: NsIds| p),
        level: e.level,
        cause,
        flags,
        flags_text: events::flags_text(flags),
    }
}

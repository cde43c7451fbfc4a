//! The running tracer: loads and attaches every hook family, seeds the
//! table from a walk, then turns ring-buffer records and periodic walks into
//! [`Event`]s. Lost records are counted, reported and healed by a resync.

use std::{collections::HashMap, time::Duration};

use nstrace_common::{
    decode::{Record, StreamItemOwned},
    event::{EventKind, NsInfoRecord, TaskNsEvent, destroy_via},
};

use crate::{
    events::{self, Clock, Event, NsIds},
    holders::{self, HolderScan, HoldersError},
    loader::{EventStream, KnownMap, LoadOptions, LoaderError, Tracer},
    mechanism::{self, Destroy, MechanismError, Mechanisms, Overrides, Snapshot},
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
    /// Mechanisms forced with `--mechanism` (the rest are picked by probing).
    pub mechanisms: Overrides,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            walk_interval: Duration::from_secs(1),
            load: LoadOptions::default(),
            syscall_events: true,
            mechanisms: Overrides::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error("tree walk: {0}")]
    Walk(#[from] WalkError),
    #[error(transparent)]
    Mechanism(#[from] MechanismError),
    #[error("/proc snapshot: {0}")]
    Proc(Box<crate::snapshot::SnapshotError>),
    #[error("/proc scan: {0}")]
    Holders(#[from] HoldersError),
}

impl From<crate::snapshot::SnapshotError> for EngineError {
    fn from(e: crate::snapshot::SnapshotError) -> Self {
        EngineError::Proc(Box::new(e))
    }
}

/// Where the engine's snapshots come from.
enum Source {
    Tree(Box<Walker>),
    Proc,
}

impl Source {
    /// `ids`: whether the hooks read ns_id (its offset is in BTF); when they
    /// cannot, ids from NS_GET_ID are dropped so both sides key namespaces
    /// the same way (type and inode).
    fn snapshot(&mut self, ids: bool) -> Result<Vec<NsInfoRecord>, EngineError> {
        match self {
            Source::Tree(w) => Ok(w.walk_all()?.0),
            Source::Proc => {
                let mut rows = crate::snapshot::proc_records()?;
                if !ids {
                    rows.iter_mut().for_each(|r| r.id = 0);
                }
                Ok(rows)
            }
        }
    }
}

/// How a holder scan learns every process's namespaces.
pub enum TaskSource {
    /// From the kernel's task list (tree walk kernels).
    Kernel(Vec<TaskNsEvent>),
    /// From /proc/PID/ns.
    Proc,
}

impl TaskSource {
    /// Scans /proc for holders (blocking).
    pub fn scan(self) -> Result<HolderScan, HoldersError> {
        let me = [std::process::id()];
        match self {
            TaskSource::Kernel(tasks) => holders::scan_with_kernel_tasks(&me, &tasks),
            TaskSource::Proc => holders::scan_excluding(&me),
        }
    }
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
    source: Source,
    mechanisms: Mechanisms,
    /// Whether the hooks read ns_id (see [`Source::snapshot`]).
    ids: bool,
    /// How long the last snapshot took (spaces out hint-driven ones).
    last_snapshot_cost: Duration,
    stream: EventStream,
    known: KnownMap,
    table: Table,
    clock: Clock,
    /// nsfs device number, for PERF_RECORD_NAMESPACES-style {dev, inode}.
    dev: u64,
    lost_seen: HashMap<EventKind, u64>,
    interval: tokio::time::Interval,
    /// The rows of the most recent walk (reused by snapshots).
    last_walk: Vec<NsInfoRecord>,
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
    /// Probes, loads, attaches, seeds the table. Events from here on are reported.
    pub fn start(opts: &EngineOptions) -> Result<Engine, EngineError> {
        let mechanisms = mechanism::select(&crate::probe::quick_facts(), &opts.mechanisms)?;
        log::info!(
            "mechanisms: create {}, destroy {}, snapshot {}",
            mechanisms.create,
            mechanisms.destroy,
            mechanisms.snapshot
        );
        let mut tracer = Tracer::load(&opts.load)?;
        let mut source = match mechanisms.snapshot {
            Snapshot::TreeWalk => Source::Tree(Box::new(tracer.walker()?)),
            Snapshot::Proc => Source::Proc,
        };
        let mut known = tracer.known()?;
        let stream = tracer.events()?;
        // Seed before attaching: everything that exists now is not "created".
        let started = std::time::Instant::now();
        let ids = tracer.config().offsets.ns_id != nstrace_common::config::ABSENT;
        let rows = source.snapshot(ids)?;
        let last_snapshot_cost = started.elapsed();
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
        tracer.attach_create(mechanisms.create)?;
        if !tracer.attach_destroy(mechanisms.destroy)? {
            log::info!("no destroy hook: deaths are seen at the next snapshot");
        }
        let host_ids = host_namespace_ids();
        let dev = crate::nsfs::nsfs_dev().unwrap_or(0);
        let mut interval = tokio::time::interval(opts.walk_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Engine {
            _tracer: tracer,
            source,
            mechanisms,
            ids,
            last_snapshot_cost,
            stream,
            known,
            table,
            clock: Clock::new(),
            dev,
            lost_seen: HashMap::new(),
            interval,
            last_walk,
            host_ids,
            walk_soon: None,
            last_walk_at: tokio::time::Instant::now(),
            stats: EngineStats::default(),
        })
    }

    /// The mechanism doing each job.
    pub fn mechanisms(&self) -> Mechanisms {
        self.mechanisms
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

    /// Where a holder scan gets every process's namespaces: the kernel's
    /// task list when the tree walk runs (it sees what /proc hides), else /proc.
    pub fn task_source(&mut self) -> Result<TaskSource, EngineError> {
        match &mut self.source {
            Source::Tree(w) => {
                let mut stats = crate::snapshot::kernel::WalkStats::default();
                Ok(TaskSource::Kernel(w.walk_tasks(&mut stats)?))
            }
            Source::Proc => Ok(TaskSource::Proc),
        }
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

    /// Something may have died: walk soon (rate-limited). Not needed when a
    /// kernel hook reports every death.
    fn hint(&mut self) {
        if self.mechanisms.destroy.is_exact_hook() {
            return;
        }
        if self.walk_soon.is_none() {
            // A /proc re-scan costs far more than a walk: keep them to at
            // most a third of the time.
            let gap = HINT_WALK_GAP.max(self.last_snapshot_cost * 2);
            let earliest = self.last_walk_at + gap;
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
                Ok(Record::Destroy(d)) => {
                    if let Some(e) = self.table.on_destroy(&d) {
                        // The hook forgot type+inode keys itself (an inode
                        // is reused at once; doing it here would race the
                        // new namespace's first sighting). Ids never are.
                        if e.id != 0 {
                            self.known.remove(e.key());
                        }
                        // The mechanism, as --mechanism and doctor name it.
                        let via = match (d.via, self.mechanisms.destroy) {
                            (destroy_via::NS_TREE_REMOVE, _) => Destroy::FentryNsTree,
                            (_, Destroy::KprobeFreeInum) => Destroy::KprobeFreeInum,
                            _ => Destroy::FentryFreeInum,
                        };
                        out.push(destroy_event(&e, &self.clock, d.header.ts_ns, via.name()));
                    }
                }
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
        let started = std::time::Instant::now();
        let rows = self.source.snapshot(self.ids)?;
        self.last_snapshot_cost = started.elapsed();
        self.stats.walks += 1;
        self.walk_soon = None;
        self.last_walk_at = tokio::time::Instant::now();
        let now = Clock::now_boot_ns();
        // A /proc snapshot misses namespaces only the kernel holds; when a
        // hook reports every death, only a resync after lost records may
        // take absence for death.
        let drop_missing = self.mechanisms.snapshot == Snapshot::TreeWalk
            || !self.mechanisms.destroy.is_exact_hook()
            || !reason.is_empty();
        let r = self.table.reconcile(&rows, now, drop_missing);
        self.last_walk = rows;
        let time = self.clock.unix(now);
        for e in &r.created {
            // Without ids, a free-inum hook forgets keys in the kernel; a
            // key put back from here could outlive its namespace and hide
            // the next one with that inode. Ids are never reused.
            if e.id != 0 || !self.mechanisms.destroy.is_exact_hook() {
                let _ = self.known.insert(e.key());
            }
            out.push(create_event(e, &self.clock, now));
        }
        let via = match self.mechanisms.snapshot {
            Snapshot::TreeWalk => Destroy::TreeWalk,
            Snapshot::Proc => Destroy::ProcRescan,
        }
        .name();
        for e in &r.destroyed {
            self.known.remove(e.key());
            out.push(destroy_event(e, &self.clock, now, via));
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

fn destroy_event(e: &NsEntry, clock: &Clock, now: u64, via: &'static str) -> Event {
    Event::Destroy {
        time: clock.unix(now),
        ns_type: e.ns_type,
        id: e.id,
        inode: e.inode,
        lifetime: e.created_ns.map(|c| now.saturating_sub(c) as f64 / 1e9),
        creator_pid: e.creator.as_ref().map(|c| c.pid),
        via,
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

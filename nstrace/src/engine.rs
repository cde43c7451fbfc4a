//! The running tracer: loads and attaches every hook family, seeds the
//! store from a snapshot, then feeds it ring-buffer records and periodic
//! snapshots, which it turns into [`Event`]s. The engine owns the one
//! [`NsStore`] and is its only writer: views read it, and what callers add
//! (holder scans, provenance) goes through the engine's methods in
//! `writes.rs`. Lost records are counted, reported and healed by a resync.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use nstrace_common::{
    decode::{Record, StreamItem},
    event::{EventKind, destroy_via},
    ns::NsTypeSet,
};

use crate::{
    events::{self, Event},
    kernel::loader::{KnownMap, LoadOptions, LoaderError, Tracer},
    kernel::mechanism::{self, Destroy, MechanismError, Mechanisms, Overrides, Snapshot},
    kernel::ring::EventStream,
    kernel::walker::{WalkError, WalkFailure, Walker},
    procfs::holders::HoldersError,
    store::{Coverage, NsStore, StoreOptions},
    time::Clock,
};

mod hints;
mod pace;
mod source;
mod walking;
mod writes;

use walking::{WalkPurpose, Walking};

pub use pace::periodic_gap;
use pace::{HINT_WALK_GAP, LOST_CHECK_GAP, destroy_work_types, host_namespace_ids, slot_types};
use source::{Snapshotter, Taken};
pub use source::{TaskSource, WalkTrouble};

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How often the kernel's lists are checked for deaths (and losses
    /// healed): a change check where the kernel has one (6.18 lists), which
    /// walks only the types whose lists changed; a walk of every type where
    /// it has none.
    pub walk_interval: Duration,
    /// How often every list is walked whatever the check says (a safety
    /// net; a destroy hook that reports every death needs nothing more).
    pub sweep_interval: Duration,
    pub load: LoadOptions,
    /// Attach the unshare/setns syscall tracepoints. While any syscalls:*
    /// tracepoint is attached every syscall of every task takes the
    /// tracing slow path (tens of ns each); without them unshare/setns are
    /// not reported, their namespaces still are (at the next fork, exec or
    /// walk).
    pub syscall_events: bool,
    /// A `namespaces` event for every fork and exec (otherwise only for
    /// those that change the task's namespaces: the hooks send no record
    /// for the rest).
    pub task_records: bool,
    /// Mechanisms forced with `--mechanism` (the rest are picked by probing).
    pub mechanisms: Overrides,
    /// What the store keeps (history, rows, destroyed records).
    pub store: StoreOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            walk_interval: Duration::from_secs(1),
            sweep_interval: DEFAULT_SWEEP,
            load: LoadOptions::default(),
            syscall_events: true,
            task_records: false,
            mechanisms: Overrides::default(),
            store: StoreOptions::default(),
        }
    }
}

/// The default safety sweep (see [`EngineOptions::sweep_interval`]).
pub const DEFAULT_SWEEP: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error("tree walk")]
    Walk(#[from] WalkError),
    #[error(transparent)]
    Mechanism(#[from] MechanismError),
    #[error("/proc snapshot")]
    Proc(#[source] Box<crate::snapshot::SnapshotError>),
    #[error("/proc scan")]
    Holders(#[from] HoldersError),
    #[error("the snapshot thread failed: {0}")]
    WalkTask(String),
}

impl From<crate::snapshot::SnapshotError> for EngineError {
    fn from(e: crate::snapshot::SnapshotError) -> Self {
        EngineError::Proc(Box::new(e))
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
    /// Walks that failed (and were answered from /proc), by why.
    pub walk_failures: BTreeMap<WalkFailure, u64>,
}

pub struct Engine {
    _tracer: Tracer,
    snapshotter: Snapshotter,
    mechanisms: Mechanisms,
    /// Whether the hooks read ns_id (see [`Snapshotter::take`]).
    ids: bool,
    /// How long the last snapshot took (spaces out hint-driven ones).
    last_snapshot_cost: Duration,
    stream: EventStream,
    known: KnownMap,
    store: NsStore,
    /// nsfs device number, for PERF_RECORD_NAMESPACES-style {dev, inode}.
    dev: u64,
    lost_seen: HashMap<EventKind, u64>,
    interval: tokio::time::Interval,
    /// Ids of our own (host) namespaces: exits of tasks only in these
    /// cannot end a namespace, so they trigger no early walk.
    host_ids: std::collections::HashSet<u64>,
    /// Our own mount namespace (inode): mount targets there can be resolved.
    own_mnt_ns: u64,
    /// Whether every task's exit is an event (asked for with task records).
    exit_events: bool,
    /// When a hint asked for an early walk, and of which types.
    walk_soon: Option<tokio::time::Instant>,
    /// A caller asked for a walk of every type (see [`Engine::request_walk`]).
    walk_asked: bool,
    hinted: NsTypeSet,
    /// Records drained and not yet handled (empty between steps).
    batch: Vec<StreamItem>,
    /// When the lost-record counters were last read, and whether records
    /// came since (a loss needs a full ring, and a full ring wakes us: with
    /// no record since the last check there is nothing to look for).
    last_lost_check: tokio::time::Instant,
    records_since_lost_check: bool,
    /// Each list's change count when its type was last walked (see
    /// `kernel::tree_watch`); None: walk before trusting a count.
    tree_seen: Option<crate::kernel::tree_watch::Counts>,
    /// When every list was last walked, and how often that must happen.
    last_sweep: tokio::time::Instant,
    sweep_interval: Duration,
    last_walk_at: tokio::time::Instant,
    /// The snapshot running off the event loop, if any.
    walking: Option<Walking>,
    /// Records that arrived while it ran: handled once it is applied (the
    /// snapshot is older than they are), at most [`MAX_HELD`].
    held: Vec<StreamItem>,
    /// Records not held (past [`MAX_HELD`]): lost, healed by a resync.
    dropped_while_walking: u64,
    /// The last walk failure, until a walk works again.
    trouble: Option<WalkTrouble>,
    pub stats: EngineStats,
}

impl Engine {
    /// Probes, loads, attaches, seeds the table. Events from here on are reported.
    pub fn start(opts: &EngineOptions) -> Result<Engine, EngineError> {
        let mechanisms = mechanism::select(&crate::kernel::probe::quick_facts(), &opts.mechanisms)?;
        log::info!(
            "mechanisms: create {}, destroy {}, snapshot {}",
            mechanisms.create,
            mechanisms.destroy,
            mechanisms.snapshot
        );
        let t = std::time::Instant::now();
        let creates_from_syscalls = mechanisms.create == crate::kernel::mechanism::Create::Tracepoints;
        let load = crate::kernel::loader::LoadOptions {
            creates_from_syscalls,
            // Without the syscall hooks, forks and execs are where an
            // unshare's namespaces are first seen.
            task_records: opts.task_records || (creates_from_syscalls && !opts.syscall_events),
            exact_destroy: mechanisms.destroy.is_exact_hook(),
            ..opts.load.clone()
        };
        let mut tracer = Tracer::load(&load)?;
        if let Err(e) = tracer.seed_own_set() {
            log::info!("hooks read every namespace's id: {}", crate::chain::Chain(&e));
        }
        let snapshotter = match mechanisms.snapshot {
            // The pinned walk programs when they can be used: loading and
            // verifying them is most of a start's cost.
            Snapshot::TreeWalk => {
                Snapshotter::Tree(Arc::new(Mutex::new(match crate::kernel::pinned::shared_walker() {
                    Ok(w) => w,
                    Err(e) => {
                        log::info!("walk programs not shared: {}", crate::chain::Chain(&e));
                        Walker::load(&mut tracer)?
                    }
                })))
            }
            Snapshot::Proc => Snapshotter::Proc,
            Snapshot::Listns => Snapshotter::Listns,
        };
        log::debug!("walk programs ready at {:?}", t.elapsed());
        let mut known = tracer.known()?;
        let stream = tracer.events()?;
        // Seed before attaching: everything that exists now is not "created".
        let started = std::time::Instant::now();
        let ids = tracer.config().offsets.ns_id != nstrace_common::config::ABSENT;
        let Taken { rows, scan, fell_back, .. } = snapshotter.take(ids, NsTypeSet::ALL)?;
        let last_snapshot_cost = started.elapsed();
        let now = Clock::now_boot_ns();
        let mut store = NsStore::new(Clock::new(), opts.store.clone());
        store.seed(&rows, now);
        if let Some(scan) = scan {
            store.apply_holders(scan, now, false);
        }
        log::debug!("snapshot of {} namespaces taken at {:?}", rows.len(), t.elapsed());
        for ns in store.live() {
            known.insert(ns.key())?;
        }
        // Under `--max-rows` from the start (KNOWN has every key: the
        // evicted stay tracked).
        store.evict(now);
        tracer.attach_task_hooks()?;
        if opts.syscall_events {
            tracer.attach_syscall_hooks()?;
            // The syscall hooks keep the fork gate's count: it can open.
            match tracer.open_fork_gate(crate::procfs::pending::pending_tasks) {
                Ok(n) => log::debug!("fork gate open ({n} pending tasks)"),
                Err(e) => log::warn!("every fork is checked: {}", crate::chain::Chain(&e)),
            }
            // Best effort: without it pins are recorded, not attributed.
            if let Err(e) = tracer.attach_mount_hooks() {
                log::warn!("bind mounts will not be attributed to their makers: {}", crate::chain::Chain(&e));
            }
        }
        log::debug!("task and syscall hooks attached at {:?}", t.elapsed());
        tracer.attach_create(mechanisms.create)?;
        let hinted = tracer.attach_destroy(mechanisms.destroy)?;
        if !hinted {
            log::info!("no destroy hook: deaths are seen at the next snapshot");
        }
        // Best effort: without them a network namespace is gone, not dying.
        let end_attached = hinted && !mechanisms.destroy.is_exact_hook();
        match tracer.attach_cleanup_hooks(end_attached) {
            Ok(tracked) => store.track_teardown(tracked),
            Err(e) => log::warn!("network namespace teardown is not tracked: {}", crate::chain::Chain(&e)),
        }
        log::debug!("create and destroy hooks attached at {:?}", t.elapsed());
        let host_ids = host_namespace_ids();
        let dev = crate::procfs::nsfs::nsfs_dev().unwrap_or(0);
        let mut interval = tokio::time::interval(opts.walk_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Engine {
            _tracer: tracer,
            snapshotter,
            mechanisms,
            ids,
            last_snapshot_cost,
            stream,
            known,
            store,
            dev,
            lost_seen: HashMap::new(),
            interval,
            host_ids,
            own_mnt_ns: crate::procfs::facts::own_ns(nstrace_common::ns::NsType::Mnt).unwrap_or(0),
            exit_events: opts.task_records,
            walk_soon: None,
            walk_asked: false,
            hinted: NsTypeSet::EMPTY,
            batch: Vec::new(),
            last_lost_check: tokio::time::Instant::now(),
            records_since_lost_check: false,
            tree_seen: None,
            last_sweep: tokio::time::Instant::now(),
            sweep_interval: opts.sweep_interval,
            last_walk_at: tokio::time::Instant::now(),
            walking: None,
            held: Vec::new(),
            dropped_while_walking: 0,
            trouble: None,
            stats: EngineStats::default(),
        }
        .noting(fell_back))
    }

    /// The mechanism doing each job.
    pub fn mechanisms(&self) -> Mechanisms {
        self.mechanisms
    }

    /// How long the last snapshot took (with /proc snapshots, that is the
    /// holder refresh too).
    pub fn last_snapshot_cost(&self) -> Duration {
        self.last_snapshot_cost
    }

    /// The one namespace store.
    pub fn store(&self) -> &NsStore {
        &self.store
    }

    pub fn clock(&self) -> &Clock {
        self.store.clock()
    }

    /// Whether holders come with each snapshot (/proc) rather than from a
    /// separate scan.
    pub fn task_source_is_snapshot(&self) -> bool {
        matches!(self.snapshotter, Snapshotter::Proc | Snapshotter::Listns)
    }

    /// Where a holder scan gets every process's namespaces: the kernel's
    /// task list when the tree walk runs (it sees what /proc hides). None
    /// with /proc snapshots: each one already brought the holders (one
    /// /proc pass per refresh, not two).
    pub fn task_source(&mut self) -> Option<TaskSource> {
        match &self.snapshotter {
            Snapshotter::Tree(w) => {
                let mnt_ids = self
                    .store
                    .live()
                    .filter(|n| n.row.ns_type == nstrace_common::ns::NsType::Mnt)
                    .filter_map(|n| Some((n.row.inode, n.row.id?)))
                    .collect();
                Some(TaskSource::Kernel { walker: w.clone(), mnt_ids })
            }
            Snapshotter::Proc | Snapshotter::Listns => None,
        }
    }

    /// The last walk failure, while walks fail (None once one works).
    pub fn walk_trouble(&self) -> Option<&WalkTrouble> {
        self.trouble.as_ref()
    }

    /// Counts how a walk went (a failure, or a success that clears the trouble).
    pub fn note_walk(&mut self, fell_back: Option<WalkTrouble>) {
        if let Some(t) = &fell_back {
            *self.stats.walk_failures.entry(t.failure).or_insert(0) += 1;
        }
        self.trouble = fell_back;
    }

    fn noting(mut self, fell_back: Option<WalkTrouble>) -> Engine {
        self.note_walk(fell_back);
        self
    }

    /// Waits for records, a due early walk or the next periodic walk, or
    /// for the running snapshot to finish, and appends the resulting
    /// events. Cancellation-safe: a snapshot runs on a blocking thread and
    /// is kept across steps, so the caller's other work (signals, requests,
    /// scrapes) never waits for a walk or a /proc scan.
    pub async fn step(&mut self, out: &mut Vec<Event>) -> Result<(), EngineError> {
        /// What ended the wait.
        #[expect(clippy::large_enum_variant, reason = "made once per step and matched at once: never stored")]
        enum Woke {
            Records,
            LostCheck,
            EarlyWalk,
            PeriodicWalk,
            Walked(Result<Taken, EngineError>),
        }
        // The batch buffer keeps its capacity from step to step: records are
        // large (docs/benchmarks.md: the service's CPU under churn).
        let mut records = std::mem::take(&mut self.batch);
        let idle = self.walking.is_none();
        let soon = if self.walk_asked { Some(tokio::time::Instant::now()) } else { self.walk_soon };
        let early = async move {
            match soon {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let walking = &mut self.walking;
        let walked = async move {
            match walking.as_mut() {
                Some(w) => (&mut w.handle).await,
                None => std::future::pending().await,
            }
        };
        // A loss is healed soon, not at the next periodic walk (which may be
        // a minute away); at most a fifth of the time goes to such resyncs.
        let lost_due = self.last_lost_check + LOST_CHECK_GAP.max(self.last_snapshot_cost * 4);
        let woke = tokio::select! {
            batch = self.stream.next_batch(|r| records.push(r)) => { batch.map(|_| Woke::Records) }
            _ = tokio::time::sleep_until(lost_due), if idle && self.records_since_lost_check => Ok(Woke::LostCheck),
            _ = early, if idle => Ok(Woke::EarlyWalk),
            _ = self.interval.tick(), if idle => Ok(Woke::PeriodicWalk),
            done = walked => Ok(Woke::Walked(done.unwrap_or_else(|e| Err(EngineError::WalkTask(e.to_string()))))),
        };
        if !matches!(woke, Ok(Woke::Records)) {
            self.stream.drain(|r| records.push(r));
        }
        let woke = woke?;
        if let Woke::Walked(taken) = woke {
            let walking = self.walking.take().expect("a snapshot was running");
            self.apply(walking, taken?, out);
            // What arrived meanwhile is newer than the snapshot.
            let mut held = std::mem::take(&mut self.held);
            self.handle(&mut held, out);
            self.held = held;
            self.handle(&mut records, out);
            self.batch = records;
            if self.dropped_while_walking > 0 {
                let dropped = std::mem::take(&mut self.dropped_while_walking);
                self.stats.lost += dropped;
                self.start_walk(WalkPurpose::Overflow { dropped }, NsTypeSet::ALL);
            }
            return Ok(());
        }
        if self.walking.is_some() {
            self.hold(&mut records);
            self.batch = records;
            return Ok(());
        }
        self.handle(&mut records, out);
        self.batch = records;
        match woke {
            Woke::Records | Woke::Walked(_) => {}
            Woke::LostCheck => {
                if let lost @ 1.. = self.check_lost(out)? {
                    self.start_walk(WalkPurpose::Resync { lost }, NsTypeSet::ALL);
                }
            }
            Woke::EarlyWalk => {
                let mut types = std::mem::take(&mut self.hinted);
                if std::mem::take(&mut self.walk_asked) {
                    types = NsTypeSet::ALL;
                }
                self.start_walk(WalkPurpose::Routine, types);
            }
            Woke::PeriodicWalk => {
                let lost = self.check_lost(out)?;
                let sweep_due = self.last_sweep.elapsed() >= periodic_gap(self.sweep_interval, self.store.len());
                let types = if lost > 0 || sweep_due { NsTypeSet::ALL } else { self.changed_types() };
                if types == NsTypeSet::ALL {
                    self.last_sweep = tokio::time::Instant::now();
                }
                if !types.is_empty() {
                    self.start_walk(WalkPurpose::after_loss(lost), types);
                }
                self.interval.reset_after(periodic_gap(self.interval.period(), self.store.len()));
            }
        }
        Ok(())
    }

    /// Asks for a walk of every type that starts from now (a caller wants
    /// the table as it is); returns the [`EngineStats::walks`] count that
    /// includes it.
    pub fn request_walk(&mut self) -> u64 {
        self.walk_asked = true;
        // A walk already running started before the ask.
        self.stats.walks + if self.walking.is_some() { 2 } else { 1 }
    }

    fn handle(&mut self, records: &mut Vec<StreamItem>, out: &mut Vec<Event>) {
        self.records_since_lost_check |= !records.is_empty();
        for item in records.drain(..) {
            self.stats.records += 1;
            let record = match item {
                Ok(record) => record,
                Err(e) => {
                    self.stats.malformed += 1;
                    log::warn!("malformed ring-buffer record skipped: {e}");
                    continue;
                }
            };
            match &record {
                Record::Task(t) if t.header.kind == EventKind::Exit as u32 => {
                    // What the task held outside the host namespaces.
                    let types = slot_types(|i| t.ns[i].id != 0 && !self.host_ids.contains(&t.ns[i].id));
                    self.hint(types);
                }
                // The namespaces left behind may have died.
                Record::Syscall(s) if s.ret == 0 => self.hint(slot_types(|i| s.before[i] != s.after[i])),
                Record::DestroyHint(h) => self.destroy_hint(h, out),
                Record::Destroy(d) => {
                    // The mechanism, as --mechanism and doctor name it.
                    let via = match (d.via, self.mechanisms.destroy) {
                        (destroy_via::NS_TREE_REMOVE, _) => Destroy::FentryNsTree,
                        (_, Destroy::KprobeFreeInum) => Destroy::KprobeFreeInum,
                        _ => Destroy::FentryFreeInum,
                    };
                    // The hook forgot type+inode keys itself (an inode is
                    // reused at once; doing it here would race the new
                    // namespace's first sighting). Ids never are.
                    if let Some(key) = self.store.on_destroy(d, via.into(), out)
                        && key.has_id()
                    {
                        self.known.remove(key);
                    }
                }
                Record::Create(c) => {
                    self.store.on_create(c, out);
                }
                _ => {}
            }
            let first = out.len();
            let own_mnt_ns = self.own_mnt_ns;
            let (clock, exits) = (self.store.clock(), self.exit_events);
            events::from_record(&record, clock, self.dev, exits, |m| resolve_target(m, own_mnt_ns), out);
            // A refusing caller usually still runs: its container, from its cgroup.
            for e in &mut out[first..] {
                if let Event::Refused { pid, container, .. } = e {
                    *container = caller_container(*pid);
                }
            }
            // What syscalls changed and mounts made, for the namespaces' records.
            for e in &out[first..] {
                self.store.note(e);
                self.store.on_mount(e);
            }
        }
    }

    /// Reports newly lost records; returns how many.
    fn check_lost(&mut self, out: &mut Vec<Event>) -> Result<u64, EngineError> {
        self.last_lost_check = tokio::time::Instant::now();
        self.records_since_lost_check = false;
        let mut new = 0;
        for (kind, total) in self.stream.lost_counts()? {
            let seen = self.lost_seen.entry(kind).or_insert(0);
            if total > *seen {
                let count = total - *seen;
                new += count;
                *seen = total;
                let time = self.store.clock().unix(Clock::now_boot_ns());
                out.push(Event::Lost { time, kind: kind.name(), count, total });
            }
        }
        self.stats.lost += new;
        if new > 0 {
            // A cleanup run's end may be among them.
            self.store.cleanup_records_lost(Clock::now_boot_ns(), out);
        }
        Ok(new)
    }
}

/// The container of process `pid`, from its cgroup (None: gone, or none).
fn caller_container(pid: u32) -> Option<String> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    crate::containers::from_cgroup(&crate::origin::unified_cgroup(&cgroup)?).map(|c| c.short())
}

/// The target of a bind mount with symlinks resolved (mountinfo shows
/// `/run/docker/netns/x` where dockerd asked for `/var/run/docker/netns/x`).
/// Only for mounts made in our own mount namespace; None when it is the
/// same or cannot be resolved.
fn resolve_target(m: &nstrace_common::event::MountEvent, own_mnt_ns: u64) -> Option<String> {
    let target = nstrace_common::decode::comm_str(&m.target);
    if u64::from(m.mnt_ns) != own_mnt_ns || !target.starts_with('/') {
        return None;
    }
    let resolved = std::fs::canonicalize(&target).ok()?.to_string_lossy().into_owned();
    (resolved != target).then_some(resolved)
}

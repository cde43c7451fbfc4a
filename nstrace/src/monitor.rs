//! The live table behind `nstrace live` and `nstrace export`: the engine
//! (which owns the one namespace store) plus periodic holder scans off the
//! event loop, the event feed and create/destroy rates. Views read the
//! engine's store through [`Monitor::store`].

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    engine::{Engine, EngineError, EngineOptions, EngineStats},
    events::Event,
    model::{Namespace, NsKey, NsRow},
    procfs::holders,
    store::{Counts, NsStore, push_bounded},
    time::{Clock, UnixTime},
};

/// The window the create and destroy rates are counted over.
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct MonitorOptions {
    pub engine: EngineOptions,
    /// Shortest gap between holder re-reads (the task list, fds, /proc),
    /// which run when an event says holders may have changed or a caller
    /// asks ([`Monitor::want_fresh_holders`]).
    pub refresh: Duration,
    /// Longest gap: a re-read runs this often even when nothing said so
    /// (what no hook sees: an nsfs file opened or closed while its
    /// namespace lives on, a bind mount unmounted). `live` re-reads every
    /// `refresh`; the service less often.
    pub sweep: Duration,
    /// Events kept in the feed.
    pub feed: usize,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            engine: EngineOptions::default(),
            refresh: Duration::from_secs(1),
            sweep: Duration::from_secs(1),
            feed: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Engine(Box<EngineError>),
    #[error("scanning /proc for holders")]
    Holders(#[from] holders::HoldersError),
    #[error("the /proc scan task failed")]
    ScanTask(#[source] tokio::task::JoinError),
}

impl From<EngineError> for MonitorError {
    fn from(e: EngineError) -> Self {
        MonitorError::Engine(Box::new(e))
    }
}

/// Totals for a header line: the store's counts plus event rates.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    #[serde(flatten)]
    pub counts: Counts,
    /// Per second over the last 10 seconds.
    pub created_rate: f64,
    pub destroyed_rate: f64,
}

/// What a caller waits for: the walk and holder re-read counts that
/// include its ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    walks: u64,
    holders: u64,
}

/// A holder scan (with the task and fd walks) running on a blocking
/// thread, and when it started.
type PendingScan = (Instant, tokio::task::JoinHandle<Result<ScanResult, holders::HoldersError>>);
type ScanResult = (holders::HolderScan, Option<crate::engine::WalkTrouble>);

pub struct Monitor {
    engine: Engine,
    opts: MonitorOptions,
    /// The /proc scan runs off the event loop so keys and events stay
    /// responsive while it reads thousands of /proc entries.
    scan: Option<PendingScan>,
    feed: VecDeque<Event>,
    last_refresh: Option<Instant>,
    /// An event since the last re-read may have changed holders.
    dirty: bool,
    /// A caller wants holders re-read now.
    asked: bool,
    /// Re-reads finished (callers wait for a later one).
    generation: u64,
    /// (time, created?) of recent create/destroy events, for rates.
    recent: VecDeque<(UnixTime, bool)>,
    pub refresh_micros: u64,
}

impl Monitor {
    pub fn start(opts: MonitorOptions) -> Result<Monitor, MonitorError> {
        let engine = Engine::start(&opts.engine)?;
        let mut m = Monitor {
            engine,
            opts,
            scan: None,
            feed: VecDeque::new(),
            last_refresh: None,
            dirty: false,
            asked: false,
            generation: 0,
            recent: VecDeque::new(),
            refresh_micros: 0,
        };
        m.refresh()?;
        Ok(m)
    }

    /// The mechanism per job (see [`crate::kernel::mechanism`]).
    pub fn mechanisms(&self) -> crate::kernel::mechanism::Mechanisms {
        self.engine.mechanisms()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.engine.stats
    }

    /// The last walk failure, while walks fail (answered from /proc meanwhile).
    pub fn walk_trouble(&self) -> Option<&crate::engine::WalkTrouble> {
        self.engine.walk_trouble()
    }

    pub fn clock(&self) -> &Clock {
        self.engine.clock()
    }

    /// The one namespace store.
    pub fn store(&self) -> &NsStore {
        self.engine.store()
    }

    /// Gives a live namespace the provenance only the caller knows (`serve`:
    /// its database; `live`: the service's answer); false when it is not live.
    pub fn adopt(
        &mut self,
        key: NsKey,
        created: Option<UnixTime>,
        creator: Option<crate::model::Creator>,
        pins: Vec<crate::model::Pin>,
        containers: Vec<crate::origin::ContainerRef>,
    ) -> bool {
        self.engine.adopt(key, created, creator, pins, containers)
    }

    /// Completes a creator's origin with what `serve` read from /proc.
    pub fn set_origin(&mut self, key: NsKey, origin: crate::origin::Origin) {
        self.engine.set_origin(key, origin);
    }

    /// The provenance changes since the last call, after naming (through
    /// `namer`: runtime state on disk) the containers seen in them.
    pub fn take_provenance(
        &mut self,
        namer: impl FnMut(&crate::origin::ContainerRef) -> Option<crate::containers::names::RuntimeNames>,
    ) -> Vec<crate::database::Change> {
        self.engine.take_provenance(namer)
    }

    /// Live, then recently destroyed records.
    pub fn rows(&self) -> impl Iterator<Item = &Namespace> {
        self.store().records()
    }

    /// Live namespaces tracked.
    pub fn len(&self) -> usize {
        self.store().counts().live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn feed(&self) -> &VecDeque<Event> {
        &self.feed
    }

    /// Waits for the next batch of events or a finished holder scan;
    /// starts a scan when one is due. Returns the new events (applied).
    pub async fn step(&mut self) -> Result<Vec<Event>, MonitorError> {
        // A caller may have asked since the last step.
        self.start_scan_if_due();
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
                let (scan, trouble) = done.map_err(MonitorError::ScanTask)??;
                self.engine.note_walk(trouble);
                self.apply_scan(scan, started);
            }
        }
        if !events.is_empty() {
            self.dirty = true;
            // One clock read per batch, not per event.
            let now = self.clock().unix(Clock::now_boot_ns());
            for e in &events {
                self.count(e, now);
            }
        }
        if self.engine.task_source_is_snapshot() {
            // /proc snapshots bring the holders: their cost is the refresh's.
            self.refresh_micros = self.engine.last_snapshot_cost().as_micros() as u64;
        }
        self.start_scan_if_due();
        Ok(events)
    }

    /// Starts a holder re-read off the event loop when one is due: asked
    /// for, or an event came and `refresh` has passed, or `sweep` has.
    fn start_scan_if_due(&mut self) {
        if self.scan.is_some() {
            return;
        }
        let live = self.engine.store().len();
        let since = self.last_refresh.map(|t| t.elapsed());
        let due = match since {
            None => true,
            Some(since) => {
                self.asked
                    || (self.dirty && since >= crate::engine::periodic_gap(self.opts.refresh, live))
                    || since >= crate::engine::periodic_gap(self.opts.sweep, live)
            }
        };
        if !due {
            return;
        }
        let started = Instant::now();
        // Counted from the start, so a slow scan does not pile up.
        self.last_refresh = Some(started);
        self.dirty = false;
        self.asked = false;
        if let Some(tasks) = self.engine.task_source() {
            let handle = tokio::task::spawn_blocking(move || tasks.scan());
            self.scan = Some((started, handle));
        }
    }

    /// Asks for a walk and a holder re-read that start from now (a caller
    /// wants the table as it is); [`Monitor::has`] says when both are done.
    pub fn want_fresh(&mut self) -> Freshness {
        let walks = self.engine.request_walk();
        // /proc snapshots bring the holders with the walk.
        let holders = if self.engine.task_source_is_snapshot() {
            0
        } else {
            self.asked = true;
            // A re-read already running started before the ask.
            self.generation + if self.scan.is_some() { 2 } else { 1 }
        };
        Freshness { walks, holders }
    }

    /// Whether the walk and re-read [`Monitor::want_fresh`] asked for are done.
    pub fn has(&self, f: Freshness) -> bool {
        self.engine.stats.walks >= f.walks && self.generation >= f.holders
    }

    /// Holder re-reads finished so far.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How long ago the last holder re-read started.
    pub fn holders_age(&self) -> Duration {
        self.last_refresh.map_or(Duration::MAX, |t| t.elapsed())
    }

    /// Re-reads holders into the store, synchronously.
    pub fn refresh(&mut self) -> Result<(), MonitorError> {
        let started = Instant::now();
        if let Some(tasks) = self.engine.task_source() {
            let (scan, trouble) = tasks.scan()?;
            self.engine.note_walk(trouble);
            self.apply_scan(scan, started);
        }
        self.last_refresh = Some(started);
        Ok(())
    }

    fn apply_scan(&mut self, scan: holders::HolderScan, started: Instant) {
        self.engine.apply_holders(scan, Clock::now_boot_ns());
        self.generation += 1;
        // A scan allocates every holder afresh; hand the freed memory back
        // so resident memory tracks the store, not the peak.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe {
            libc::malloc_trim(0);
        }
        self.refresh_micros = started.elapsed().as_micros() as u64;
    }

    /// Feeds the event pane and the rates (the store took the event in already).
    fn count(&mut self, e: &Event, now: UnixTime) {
        match e {
            Event::Create { time, .. } => self.recent.push_back((*time, true)),
            Event::Destroy { time, .. } => self.recent.push_back((*time, false)),
            _ => {}
        }
        if !matches!(e, Event::Namespaces { .. }) {
            push_bounded(&mut self.feed, e.clone(), self.opts.feed);
        }
        while self.recent.front().is_some_and(|(t, _)| *t < now - RATE_WINDOW) {
            self.recent.pop_front();
        }
    }

    pub fn totals(&self) -> Totals {
        let now = self.clock().unix(Clock::now_boot_ns());
        let counts = self.store().counts();
        let window = self.recent.iter().filter(|(time, _)| *time >= now - RATE_WINDOW);
        let (c, d) = window.fold((0, 0), |(c, d), (_, created)| if *created { (c + 1, d) } else { (c, d + 1) });
        let secs = RATE_WINDOW.as_secs_f64();
        Totals { counts, created_rate: c as f64 / secs, destroyed_rate: d as f64 / secs }
    }

    /// The live rows as `ls --json` rows.
    pub fn ns_rows(&self) -> Vec<&NsRow> {
        self.store().rows()
    }
}

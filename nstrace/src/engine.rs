//! The running tracer: loads and attaches every hook family, seeds the
//! table from a walk, then turns ring-buffer records and periodic walks into
//! [`Event`]s. Lost records are counted, reported and healed by a resync.

use std::{collections::HashMap, time::Duration};

use nstrace_common::{decode::{Record, StreamItemOwned}, event::EventKind};

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
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { walk_interval: Duration::from_secs(1), load: LoadOptions::default() }
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
    pub stats: EngineStats,
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
        tracer.attach_syscall_hooks()?;
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

    /// Waits for records or the next walk and appends the resulting events.
    pub async fn step(&mut self, out: &mut Vec<Event>) -> Result<(), EngineError> {
        let mut records = Vec::new();
        tokio::select! {
            batch = self.stream.next_batch(|r| records.push(r)) => { batch?; }
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

    fn handle(&mut self, records: Vec<StreamItemOwned>, out: &mut Vec<Event>) {
        for item in records {
            self.stats.records += 1;
            match item {
                Ok(Record::Task(t)) => events::from_task(&t, &self.clock, self.dev, out),
                Ok(Record::Syscall(s)) => events::from_syscall(&s, &self.clock, self.dev, out),
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
                out.push(Event::Lost {
                    time: self.clock.unix(Clock::now_boot_ns()),
                    kind: kind.name(),
                    count,
                    total,
                });
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

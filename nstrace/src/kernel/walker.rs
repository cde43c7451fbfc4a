//! The exact in-kernel snapshot: runs the `ns_walk` program with
//! BPF_PROG_TEST_RUN ([`WalkProgram::run`]) once per chunk, per namespace
//! type, and collects the rows it writes to the WALK ring buffer.

use std::{io, time::Instant};

use foldhash::{HashSet, HashSetExt};

use aya::maps::{Array, MapData, RingBuf};
use nstrace_common::{
    decode::{Record, decode},
    event::{
        EventKind, NsFdRecord, NsInfoRecord, TaskNsEvent, WALK_STATE_FDS, WALK_STATE_NS, WALK_STATE_TASKS, WalkState,
        walk_status,
    },
    ns::{NsType, ns_key},
};

use crate::kernel::{
    loader::{LoaderError, Tracer, WalkParts},
    test_run::WalkProgram,
};

/// Entries one walk run may visit.
const CHUNK: u32 = 1 << 16;
/// The status a run's state starts with: a program that wrote none (its
/// state entry unreachable) is an error, not a complete walk.
const NOT_REPORTED: u32 = walk_status::UNSUPPORTED;
/// Restarts of one type's walk before giving up (each means the namespace
/// under the cursor died between two runs).
const MAX_RESTARTS: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("loading the walk programs")]
    Load(#[from] LoaderError),
    #[error("BPF_PROG_TEST_RUN of the walk program")]
    TestRun(#[source] io::Error),
    #[error("walk state map")]
    Map(#[from] aya::maps::MapError),
    #[error("this kernel has no namespace lists the walk can read (needs 6.18+)")]
    Unsupported,
    #[error("no {0:?} namespace reachable from the walking task")]
    NoStart(NsType),
    #[error("the {ty:?} list (or the task list) kept changing under the walk ({restarts} restarts)")]
    Unstable { ty: NsType, restarts: u32 },
    #[error("walk program returned unknown status {0}")]
    BadStatus(u32),
}

/// Statistics of one full walk.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WalkStats {
    pub runs: u32,
    pub restarts: u32,
    pub malformed_records: u32,
    pub micros: u64,
}

/// Owns the walk programs and maps; safe to move into a task.
pub struct Walker {
    ns_prog: WalkProgram,
    task_prog: WalkProgram,
    /// The namespace and task walks report through the WALK ring.
    lane: Lane,
    /// The fd walk (where it loaded) has its own ring, so it can run beside
    /// the task walk.
    fds: Option<FdWalk>,
    /// The programs and maps are the pinned ones other processes use too:
    /// each walk takes their lock.
    shared: bool,
}

/// A ring buffer and a handle on the walk state map: what one walk at a
/// time reports through.
struct Lane {
    ring: RingBuf<MapData>,
    state: Array<MapData, WalkState>,
}

struct FdWalk {
    prog: WalkProgram,
    lane: Lane,
}

/// What one run of a walk program reported.
enum Run {
    Complete,
    More,
    Restart,
}

impl Walker {
    /// A walker over loaded programs and maps: fresh from
    /// [`Tracer::walk_parts`], or reopened from pins.
    pub fn new(parts: WalkParts) -> Walker {
        let WalkParts { ns_prog, task_prog, fd_prog, ring, state, fd_ring, fd_state } = parts;
        let fds = fd_prog.map(|prog| FdWalk { prog, lane: Lane { ring: fd_ring, state: fd_state } });
        Walker { ns_prog, task_prog, lane: Lane { ring, state }, fds, shared: false }
    }

    /// This walker's programs and maps are pinned and shared: every walk
    /// takes the lock (see `pinned::lock`).
    pub fn shared(mut self) -> Walker {
        self.shared = true;
        self
    }

    /// Loads the walk programs of `tracer` and takes their maps.
    pub fn load(tracer: &mut Tracer) -> Result<Walker, LoaderError> {
        Ok(Walker::new(tracer.walk_parts()?))
    }

    /// The lock a shared walker holds while it walks.
    fn lock(&self) -> Option<std::fs::File> {
        self.shared.then(crate::kernel::pinned::lock).flatten()
    }

    /// Every namespace of every type the kernel lists.
    pub fn walk_all(&mut self) -> Result<(Vec<NsInfoRecord>, WalkStats), WalkError> {
        let started = Instant::now();
        let _lock = self.lock();
        let mut stats = WalkStats::default();
        let mut rows = Vec::new();
        for ty in NsType::ALL {
            rows.extend(namespaces(&self.ns_prog, &mut self.lane, ty, &mut stats)?);
        }
        stats.micros = started.elapsed().as_micros() as u64;
        Ok((rows, stats))
    }

    /// Every namespace of one type.
    pub fn walk_type(&mut self, ty: NsType, stats: &mut WalkStats) -> Result<Vec<NsInfoRecord>, WalkError> {
        let _lock = self.lock();
        namespaces(&self.ns_prog, &mut self.lane, ty, stats)
    }

    /// Every process (thread-group leader) and its namespace set, from the
    /// kernel's task list, by pid; and every open nsfs file of every
    /// process, by pid then fd (None where the fd walk did not load or the
    /// kernel's BTF lacks what it reads: /proc is listed instead). The two
    /// walks run at once, the fd walk on a second thread: both wait on
    /// memory the task walk's cache does not hold, and the waits overlap.
    #[allow(clippy::type_complexity)]
    pub fn walk_tasks_and_fds(
        &mut self,
        stats: &mut WalkStats,
    ) -> Result<(Vec<TaskNsEvent>, Option<Vec<NsFdRecord>>), WalkError> {
        let _lock = self.lock();
        let Walker { task_prog, lane, fds, .. } = self;
        let (tasks, fds) = match fds {
            Some(fd_walk) => std::thread::scope(|scope| {
                let fd_side = scope.spawn(|| {
                    let mut fd_stats = WalkStats::default();
                    fd_list(fd_walk, &mut fd_stats).map(|fds| (fds, fd_stats))
                });
                let tasks = tasks(task_prog, lane, stats);
                (tasks, fd_side.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            }),
            None => (tasks(task_prog, lane, stats), Ok((None, WalkStats::default()))),
        };
        let tasks = tasks?;
        let (fds, fd_stats) = fds?;
        stats.add(&fd_stats);
        Ok((tasks, fds))
    }
}

impl WalkStats {
    fn add(&mut self, other: &WalkStats) {
        self.runs += other.runs;
        self.restarts += other.restarts;
        self.malformed_records += other.malformed_records;
    }
}

/// Every namespace of type `ty`.
fn namespaces(
    prog: &WalkProgram,
    lane: &mut Lane,
    ty: NsType,
    stats: &mut WalkStats,
) -> Result<Vec<NsInfoRecord>, WalkError> {
    let init = WalkState { ns_type: ty as u32, budget: CHUNK, status: NOT_REPORTED, ..Default::default() };
    walk_list(prog, lane, WALK_STATE_NS, init, ty, stats, |r| match r {
        Record::NsInfo(r) if r.ns_type == ty as u32 => Some((ns_key(r.id, r.ns_type, r.inum), r)),
        _ => None,
    })
}

/// Every process and its namespace set, by pid.
fn tasks(prog: &WalkProgram, lane: &mut Lane, stats: &mut WalkStats) -> Result<Vec<TaskNsEvent>, WalkError> {
    let init = WalkState { budget: CHUNK, status: NOT_REPORTED, ..Default::default() };
    let mut out = walk_list(prog, lane, WALK_STATE_TASKS, init, NsType::Pid, stats, |r| match r {
        Record::Task(t) if t.header.kind == EventKind::TaskInfo as u32 => Some((t.subject_tid as u64, t)),
        _ => None,
    })?;
    out.sort_by_key(|t| t.subject_tgid);
    Ok(out)
}

/// Every open nsfs file of every process (thread-group leaders' file
/// tables), by pid then fd; None where the kernel lacks what the walk reads.
fn fd_list(fd_walk: &mut FdWalk, stats: &mut WalkStats) -> Result<Option<Vec<NsFdRecord>>, WalkError> {
    let init = WalkState { budget: CHUNK, status: NOT_REPORTED, ..Default::default() };
    let found = walk_list(&fd_walk.prog, &mut fd_walk.lane, WALK_STATE_FDS, init, NsType::Pid, stats, |r| match r {
        Record::NsFd(f) => Some(((f.header.tgid as u64) << 32 | f.fd as u64, f)),
        _ => None,
    });
    let mut out = match found {
        Ok(out) => out,
        Err(WalkError::Unsupported) => return Ok(None),
        Err(e) => return Err(e),
    };
    out.sort_by_key(|f| (f.header.tgid, f.fd));
    Ok(Some(out))
}

/// Runs `prog` once, hands every record it wrote to `on_record`.
fn run_once(
    prog: &WalkProgram,
    lane: &mut Lane,
    state_index: u32,
    stats: &mut WalkStats,
    ty: NsType,
    mut on_record: impl FnMut(Record),
) -> Result<Run, WalkError> {
    prog.run().map_err(WalkError::TestRun)?;
    stats.runs += 1;
    let state = lane.state.get(&state_index, 0)?;
    log::trace!("walk run {}: status {}, {} records", stats.runs, state.status, state.emitted);
    // Drain before deciding: a MORE caused by a full ring resumes exactly
    // where the reservation failed.
    while let Some(item) = lane.ring.next() {
        match decode(&item) {
            Ok(r) => on_record(r),
            Err(_) => stats.malformed_records += 1,
        }
    }
    match state.status {
        walk_status::COMPLETE => Ok(Run::Complete),
        walk_status::MORE => Ok(Run::More),
        walk_status::RESTART => Ok(Run::Restart),
        walk_status::NO_START => Err(WalkError::NoStart(ty)),
        walk_status::UNSUPPORTED => Err(WalkError::Unsupported),
        other => Err(WalkError::BadStatus(other)),
    }
}

/// Runs a walk program until its circular list is complete: resumes after
/// MORE, starts over after RESTART (bounded), and stops early when a key
/// repeats (the start entry left the list and the walk came round again).
/// Returns the rows in list order, each once.
fn walk_list<T>(
    prog: &WalkProgram,
    lane: &mut Lane,
    state_index: u32,
    init: WalkState,
    ty: NsType,
    stats: &mut WalkStats,
    row: impl Fn(Record) -> Option<(u64, T)>,
) -> Result<Vec<T>, WalkError> {
    let mut restarts = 0;
    'restart: loop {
        lane.state.set(state_index, init, 0)?;
        // Keys only detect the wrap; rows stay in list order.
        let mut seen: HashSet<u64> = HashSet::new();
        let mut rows = Vec::new();
        loop {
            let mut wrapped = false;
            let run = run_once(prog, lane, state_index, stats, ty, |r| {
                if let Some((key, value)) = row(r) {
                    if seen.insert(key) {
                        rows.push(value);
                    } else {
                        wrapped = true;
                    }
                }
            })?;
            match run {
                Run::Complete => break,
                Run::More if wrapped => break,
                Run::More => continue,
                Run::Restart => {
                    restarts += 1;
                    stats.restarts += 1;
                    if restarts > MAX_RESTARTS {
                        return Err(WalkError::Unstable { ty, restarts });
                    }
                    continue 'restart;
                }
            }
        }
        lane.state.set(state_index, WalkState::default(), 0)?;
        return Ok(rows);
    }
}

//! The exact in-kernel snapshot: runs the walk programs with
//! BPF_PROG_TEST_RUN ([`WalkProgram::run`]) once per chunk (`ns_walk` per
//! namespace type, `task_walk` and `fd_walk` side by side) and collects the
//! rows they write to their ring buffers (WALK, WALK_FDS); each run's status
//! is in its walk state entry.

use std::{
    io,
    os::fd::AsFd,
    time::{Duration, Instant},
};

use foldhash::{HashSet, HashSetExt};

use aya::maps::{Array, MapData};
use nstrace_common::{
    decode::{Record, decode},
    event::{
        EventKind, NsFdRecord, NsInfoRecord, TaskNsEvent, WALK_STATE_FDS, WALK_STATE_NS, WALK_STATE_TASKS, WalkState,
        walk_flags, walk_status,
    },
    ns::NsType,
};

use crate::{
    kernel::{
        loader::{LoaderError, Tracer, WalkParts},
        pinned::{LockBusy, PinLock},
        ring_pos::{Mapped, Settled},
        test_run::WalkProgram,
    },
    model::NsKey,
};

/// Entries one walk run may visit.
const CHUNK: u32 = 1 << 16;
/// The status a run's state starts with: a program that wrote none (its
/// state entry unreachable) is an error, not a complete walk.
const NOT_REPORTED: u32 = walk_status::UNSUPPORTED;
/// Restarts of one type's walk before giving up (each means the namespace
/// under the cursor died between two runs).
const MAX_RESTARTS: u32 = 16;
/// Runs in a row that report MORE but neither write a row nor move the
/// walk's cursor: the walk cannot advance (a ring that will not take a
/// record), so it stops instead of spinning.
const MAX_IDLE_RUNS: u32 = 3;
/// Wall-clock budget of one walk (all lists, or the tasks and fds): a
/// backstop far above a healthy walk, even under emulation with 100,000
/// fds.
pub const WALK_BUDGET: Duration = Duration::from_secs(120);

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
    #[error("walk program reported unknown status {0}")]
    BadStatus(u32),
    #[error(transparent)]
    Busy(#[from] LockBusy),
    #[error("the {ty:?} walk made no progress in {runs} runs in a row (its ring takes no record)")]
    Stalled { ty: NsType, runs: u32 },
    #[error("the {ty:?} walk was still running after {}s, its budget", budget.as_secs())]
    OverBudget { ty: NsType, budget: Duration },
    #[error("settling the walk ring")]
    Ring(#[source] io::Error),
}

/// Why a walk failed, as a bounded label (`nstrace_walk_failures_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WalkFailure {
    /// Another process held the walk lock past the wait.
    LockBusy,
    /// A walk stopped advancing.
    Stalled,
    /// A walk ran past its wall-clock budget.
    OverBudget,
    /// A list kept changing under the walk.
    Unstable,
    /// Anything else (a bpf(2) or map error).
    Error,
}

impl WalkFailure {
    pub const ALL: [WalkFailure; 5] = [
        WalkFailure::LockBusy,
        WalkFailure::Stalled,
        WalkFailure::OverBudget,
        WalkFailure::Unstable,
        WalkFailure::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WalkFailure::LockBusy => "lock-busy",
            WalkFailure::Stalled => "stalled",
            WalkFailure::OverBudget => "over-budget",
            WalkFailure::Unstable => "unstable",
            WalkFailure::Error => "error",
        }
    }
}

impl WalkError {
    /// Whether this walk failed where another may work (the lock, a stall,
    /// the budget): a caller answers from /proc this time and walks again
    /// next time. The others mean the kernel cannot be walked at all.
    pub fn failure(&self) -> Option<WalkFailure> {
        match self {
            WalkError::Busy(_) => Some(WalkFailure::LockBusy),
            WalkError::Stalled { .. } => Some(WalkFailure::Stalled),
            WalkError::OverBudget { .. } => Some(WalkFailure::OverBudget),
            WalkError::Unstable { .. } => Some(WalkFailure::Unstable),
            WalkError::TestRun(_) | WalkError::Map(_) | WalkError::Ring(_) | WalkError::BadStatus(_) => {
                Some(WalkFailure::Error)
            }
            WalkError::Load(_) | WalkError::Unsupported | WalkError::NoStart(_) => None,
        }
    }
}

/// Statistics of one full walk.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WalkStats {
    pub runs: u32,
    pub restarts: u32,
    pub malformed_records: u32,
    /// Rings found with records left by another walker, or with positions
    /// no reader can leave: emptied before walking.
    pub rings_settled: u32,
    pub micros: u64,
    /// The fd walk read every socket's net namespace: the sockets that hold
    /// one are among its records (none need be opened to find them).
    pub sockets_read: bool,
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
    /// The change check (6.18 lists), which reads the list heads the
    /// namespace walk notes in the same object's map.
    watch: Option<crate::kernel::tree_watch::TreeWatcher>,
}

/// A ring buffer and a handle on the walk state map: what one walk at a
/// time reports through. The ring is mapped once (at the first walk) and
/// settled before each walk: its positions are read from the shared pages
/// every time, as other processes read the same pinned ring.
struct Lane {
    ring: MapData,
    /// The ring's data size in bytes.
    size: u64,
    mapped: Option<Mapped>,
    state: Array<MapData, WalkState>,
}

impl Lane {
    fn new(ring: MapData, state: Array<MapData, WalkState>) -> Lane {
        let size = ring.info().map(|i| i.max_entries() as u64).unwrap_or(u64::MAX);
        Lane { ring, size, mapped: None, state }
    }
}

/// A lane's ring (`ring`, `size` bytes), mapped into `mapped` at first use,
/// emptied of what another walker left (see [`ring_pos`]).
fn settled<'a>(
    ring: &MapData,
    size: u64,
    mapped: &'a mut Option<Mapped>,
    stats: &mut WalkStats,
) -> Result<&'a Mapped, WalkError> {
    let mapped = match mapped {
        Some(m) => m,
        slot => slot.insert(Mapped::new(ring.fd().as_fd(), size).map_err(WalkError::Ring)?),
    };
    match mapped.settle() {
        Settled::Clean => {}
        found => {
            stats.rings_settled += 1;
            log::warn!("walk ring settled before walking: {found:?}");
        }
    }
    Ok(mapped)
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
        let WalkParts { ns_prog, task_prog, fd_prog, ring, state, fd_ring, fd_state, watch } = parts;
        let fds = fd_prog.map(|prog| FdWalk { prog, lane: Lane::new(fd_ring, fd_state) });
        Walker { ns_prog, task_prog, lane: Lane::new(ring, state), fds, shared: false, watch }
    }

    /// Each type's list change count now (see [`crate::kernel::tree_watch`]);
    /// None where the kernel's lists have none. Needs no lock: whoever runs
    /// the check writes the same current counts.
    pub fn change_counts(&self) -> Option<Result<crate::kernel::tree_watch::Counts, LoaderError>> {
        self.watch.as_ref().map(|w| w.counts())
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

    /// The lock a shared walker holds while it walks (bounded wait).
    fn lock(&self) -> Result<Option<PinLock>, WalkError> {
        if !self.shared {
            return Ok(None);
        }
        Ok(crate::kernel::pinned::lock(crate::kernel::pinned::lock_wait())?)
    }

    /// Every namespace of every type the kernel lists.
    pub fn walk_all(&mut self) -> Result<(Vec<NsInfoRecord>, WalkStats), WalkError> {
        let started = Instant::now();
        let _lock = self.lock()?;
        let deadline = started + WALK_BUDGET;
        let mut stats = WalkStats::default();
        let mut rows = Vec::new();
        for ty in NsType::ALL {
            rows.extend(namespaces(&self.ns_prog, &mut self.lane, ty, &mut stats, deadline)?);
        }
        stats.micros = started.elapsed().as_micros() as u64;
        Ok((rows, stats))
    }

    /// Every namespace of the given types.
    pub fn walk_types(
        &mut self,
        types: impl IntoIterator<Item = NsType>,
        stats: &mut WalkStats,
    ) -> Result<Vec<NsInfoRecord>, WalkError> {
        let _lock = self.lock()?;
        let deadline = Instant::now() + WALK_BUDGET;
        let mut rows = Vec::new();
        for ty in types {
            rows.extend(namespaces(&self.ns_prog, &mut self.lane, ty, stats, deadline)?);
        }
        Ok(rows)
    }

    /// Every process (thread-group leader) and its namespace set, from the
    /// kernel's task list, by pid; and every open nsfs file of every
    /// process, by pid then fd (None where the fd walk did not load or the
    /// kernel's BTF lacks what it reads: /proc is listed instead). The two
    /// walks run at once, the fd walk on a second thread: both wait on
    /// memory the task walk's cache does not hold, and the waits overlap.
    pub fn walk_tasks_and_fds(
        &mut self,
        stats: &mut WalkStats,
    ) -> Result<(Vec<TaskNsEvent>, Option<Vec<NsFdRecord>>), WalkError> {
        let _lock = self.lock()?;
        let deadline = Instant::now() + WALK_BUDGET;
        let Walker { task_prog, lane, fds, .. } = self;
        let (tasks, fds) = match fds {
            Some(fd_walk) => std::thread::scope(|scope| {
                let fd_side = scope.spawn(|| {
                    let mut fd_stats = WalkStats::default();
                    fd_list(fd_walk, &mut fd_stats, deadline).map(|fds| (fds, fd_stats))
                });
                let tasks = tasks(task_prog, lane, stats, deadline);
                (tasks, fd_side.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            }),
            None => (tasks(task_prog, lane, stats, deadline), Ok((None, WalkStats::default()))),
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
        self.rings_settled += other.rings_settled;
        self.sockets_read |= other.sockets_read;
    }
}

/// Every namespace of type `ty`.
fn namespaces(
    prog: &WalkProgram,
    lane: &mut Lane,
    ty: NsType,
    stats: &mut WalkStats,
    deadline: Instant,
) -> Result<Vec<NsInfoRecord>, WalkError> {
    let init = WalkState { ns_type: ty as u32, budget: CHUNK, status: NOT_REPORTED, ..Default::default() };
    walk_list(prog, lane, WALK_STATE_NS, init, ty, stats, deadline, |r| match r {
        Record::NsInfo(r) if r.ns_type == ty as u32 => Some((NsKey::of_record(ty, r.id, r.inum), r)),
        _ => None,
    })
}

/// Every process and its namespace set, by pid.
fn tasks(
    prog: &WalkProgram,
    lane: &mut Lane,
    stats: &mut WalkStats,
    deadline: Instant,
) -> Result<Vec<TaskNsEvent>, WalkError> {
    let init = WalkState { budget: CHUNK, status: NOT_REPORTED, ..Default::default() };
    let mut out = walk_list(prog, lane, WALK_STATE_TASKS, init, NsType::Pid, stats, deadline, |r| match r {
        Record::Task(t) if t.header.kind == EventKind::TaskInfo as u32 => Some((t.subject_tid as u64, t)),
        _ => None,
    })?;
    out.sort_by_key(|t| t.subject_tgid);
    Ok(out)
}

/// Every open nsfs file of every process (thread-group leaders' file
/// tables), by pid then fd; None where the kernel lacks what the walk reads.
fn fd_list(
    fd_walk: &mut FdWalk,
    stats: &mut WalkStats,
    deadline: Instant,
) -> Result<Option<Vec<NsFdRecord>>, WalkError> {
    let init = WalkState { budget: CHUNK, status: NOT_REPORTED, ..Default::default() };
    let found =
        walk_list(&fd_walk.prog, &mut fd_walk.lane, WALK_STATE_FDS, init, NsType::Pid, stats, deadline, |r| match r {
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

/// Runs `prog` once, hands every record it wrote to `on_record`; returns
/// what the run reported and the state it left.
fn run_once(
    prog: &WalkProgram,
    ring: &Mapped,
    state_map: &Array<MapData, WalkState>,
    state_index: u32,
    stats: &mut WalkStats,
    ty: NsType,
    mut on_record: impl FnMut(Record),
) -> Result<(Run, WalkState), WalkError> {
    prog.run().map_err(WalkError::TestRun)?;
    stats.runs += 1;
    let state = state_map.get(&state_index, 0)?;
    stats.sockets_read |= state.flags & walk_flags::SOCKETS != 0;
    log::trace!("walk run {}: status {}, {} records", stats.runs, state.status, state.emitted);
    // Drain before deciding: a MORE caused by a full ring resumes exactly
    // where the reservation failed.
    ring.drain(|item| match decode(item) {
        Ok(r) => on_record(r),
        Err(_) => stats.malformed_records += 1,
    });
    let run = match state.status {
        walk_status::COMPLETE => Run::Complete,
        walk_status::MORE => Run::More,
        walk_status::RESTART => Run::Restart,
        walk_status::NO_START => return Err(WalkError::NoStart(ty)),
        walk_status::UNSUPPORTED => return Err(WalkError::Unsupported),
        other => return Err(WalkError::BadStatus(other)),
    };
    Ok((run, state))
}

/// Where a walk is: what must move between two runs for it to advance.
fn position(s: &WalkState) -> (u64, u64, u64, u32) {
    (s.start_node, s.cursor_node, s.cursor_id, s.resume_fd)
}

/// Runs a walk program until its circular list is complete: resumes after
/// MORE, starts over after RESTART (bounded), and stops early when a key
/// repeats (the start entry left the list and the walk came round again).
/// Every loop is bounded: [`MAX_IDLE_RUNS`] runs that do not advance end
/// it with [`WalkError::Stalled`], the `deadline` with
/// [`WalkError::OverBudget`]. Returns the rows in list order, each once.
#[expect(clippy::too_many_arguments, reason = "one walk's program, maps, cursor and budget, read in one place")]
fn walk_list<K: Eq + std::hash::Hash, T>(
    prog: &WalkProgram,
    lane: &mut Lane,
    state_index: u32,
    init: WalkState,
    ty: NsType,
    stats: &mut WalkStats,
    deadline: Instant,
    row: impl Fn(Record) -> Option<(K, T)>,
) -> Result<Vec<T>, WalkError> {
    let Lane { ring, size, mapped, state: state_map } = lane;
    let ring = settled(ring, *size, mapped, stats)?;
    let mut restarts = 0;
    'restart: loop {
        state_map.set(state_index, init, 0)?;
        // Keys only detect the wrap; rows stay in list order.
        let mut seen: HashSet<K> = HashSet::new();
        let mut rows = Vec::new();
        let mut at = position(&init);
        let mut idle = 0;
        loop {
            let mut wrapped = false;
            let before = rows.len();
            let (run, state) = run_once(prog, ring, state_map, state_index, stats, ty, |r| {
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
                Run::More => {
                    let now_at = position(&state);
                    if rows.len() == before && state.emitted == 0 && now_at == at {
                        idle += 1;
                        if idle >= MAX_IDLE_RUNS {
                            return Err(WalkError::Stalled { ty, runs: idle });
                        }
                    } else {
                        idle = 0;
                    }
                    at = now_at;
                    if Instant::now() > deadline {
                        return Err(WalkError::OverBudget { ty, budget: WALK_BUDGET });
                    }
                }
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
        state_map.set(state_index, WalkState::default(), 0)?;
        return Ok(rows);
    }
}

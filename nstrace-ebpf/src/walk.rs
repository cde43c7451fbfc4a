//! The namespace-tree walk (6.18+): every namespace of one type, read from
//! the kernel's own per-type list (`ns_common.ns_list_node`).
//!
//! Run on demand by user space with BPF_PROG_TEST_RUN (never attached). A
//! run walks at most `WalkState.budget` entries (capped at [`CHUNK`]) inside
//! the RCU read section the test-run provides, then saves a cursor; the
//! next run resumes after validating that the cursor's namespace is still
//! the one it was (same type and never-reused `ns_id`), and tells user space
//! to restart otherwise. The list head sits inside a static `struct
//! ns_tree`; it is skipped because the `ns_type` at its would-be
//! `ns_common` is not the expected `CLONE_NEW*` bit.
//!
//! Each run writes its status (see `walk_status`) and record count into
//! its `WalkState` entry: aya's `raw_tracepoint` wrapper returns 0 whatever
//! the program returns, so the return value cannot carry them.
//!
//! # Safety
//! The repeated `unsafe` here is one pattern: map values (the walk state,
//! ring reservations) through pointers from lookups or reservations checked
//! for null, valid until the program returns; `bpf_get_current_task` is
//! always valid in a program. Kernel memory is read only through
//! `read.rs`.

mod changes;
mod fds;

use aya_ebpf::{
    helpers::bpf_get_current_task,
    macros::{map, raw_tracepoint},
    maps::PerCpuArray,
    programs::RawTracePointContext,
};
use nstrace_common::{
    config::ABSENT,
    event::{
        ACTIVE_UNKNOWN, COUNT_UNKNOWN, EventKind, NsInfoRecord, NsRef, TaskNsEvent, UID_UNKNOWN, WALK_STATE_NS,
        WALK_STATE_TASKS, WalkState, walk_status,
    },
    ns::{NS_TYPES, NsType},
};

use crate::{
    hooks::task::{active_pid_ns, fill_task_event, read_task_set_reusing},
    loops::{fresh_step, run_loop, step_of},
    maps::{TASK_NS_SET, WALK, WALK_STATE, config},
    read::{header, ns_common_of, ns_common_off, ns_ref, owner_of, ptr_at, u32_at, u64_at},
};

/// Most entries one run visits.
pub(crate) const CHUNK: u32 = 1 << 16;

/// This CPU's namespace-walk run state.
#[map]
static NS_STEP: PerCpuArray<Step> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's task-walk run state.
#[map]
static TASK_STEP: PerCpuArray<TaskStep> = PerCpuArray::with_max_entries(1, 0);

#[raw_tracepoint]
pub fn ns_walk(_ctx: RawTracePointContext) -> i32 {
    let (status, emitted) = try_ns_walk();
    report(WALK_STATE_NS, status, emitted);
    0
}

/// Leaves a run's outcome where user space reads it.
#[inline(always)]
pub(crate) fn report(index: u32, status: u32, emitted: u32) {
    if let Some(state) = WALK_STATE.get_ptr_mut(index) {
        unsafe {
            (*state).status = status;
            (*state).emitted = emitted;
        }
    }
}

/// A namespace of type `ty` the calling task can reach.
#[inline(always)]
fn start_ns(ty: NsType) -> u64 {
    let task = unsafe { bpf_get_current_task() };
    let off = match ty {
        NsType::User => {
            let cred = ptr_at(task, config!(offsets.task_real_cred));
            return ptr_at(cred, config!(offsets.cred_user_ns));
        }
        NsType::Pid => return active_pid_ns(task),
        NsType::Net => config!(offsets.nsproxy_net),
        NsType::Uts => config!(offsets.nsproxy_uts),
        NsType::Ipc => config!(offsets.nsproxy_ipc),
        NsType::Mnt => config!(offsets.nsproxy_mnt),
        NsType::Cgroup => config!(offsets.nsproxy_cgroup),
        NsType::Time => config!(offsets.nsproxy_time),
    };
    ptr_at(ptr_at(task, config!(offsets.task_nsproxy)), off)
}

/// Whether the `ns_common` at `common` is a live namespace of the expected type.
#[inline(always)]
fn is_entry(common: u64, expected_flag: u32) -> bool {
    u32_at(common, config!(offsets.ns_type)) == expected_flag && u32_at(common, config!(offsets.ns_inum)) != 0
}

/// State of one run, shared with the per-entry callback (see [`run_loop`]).
#[repr(C)]
struct Step {
    /// Current position (may be the list head).
    pos: u64,
    /// Last node whose namespace was emitted (never the head): the cursor.
    cursor: u64,
    start: u64,
    list_off: u64,
    ty: u64,
    /// The last owner (and pid parent) read and its id/inode: most
    /// namespaces of a type share them, two reads each saved.
    owner: u64,
    owner_ref: NsRef,
    parent: u64,
    parent_ref: NsRef,
    expected: u32,
    emitted: u32,
    /// Set when the callback stops the loop.
    status: u32,
    _pad: u32,
}

/// Entries this run may visit: the state's budget, at most [`CHUNK`].
#[inline(always)]
pub(crate) fn budget(state: *const WalkState) -> u32 {
    match unsafe { (*state).budget } {
        0 => CHUNK,
        b => b.min(CHUNK),
    }
}

fn try_ns_walk() -> (u32, u32) {
    let Some(state) = WALK_STATE.get_ptr_mut(WALK_STATE_NS) else {
        return (walk_status::UNSUPPORTED, 0);
    };
    let ty = unsafe { (*state).ns_type } as usize;
    let list_off = config!(offsets.ns_list_node);
    if ty >= NS_TYPES || list_off == ABSENT || config!(offsets.ns_type) == ABSENT {
        return (walk_status::UNSUPPORTED, 0);
    }
    let Some(ns_type) = NsType::from_u32(ty as u32) else {
        return (walk_status::UNSUPPORTED, 0);
    };
    let expected = ns_type.clone_flag() as u32;
    let budget = budget(state);

    let mut node = unsafe { (*state).cursor_node };
    if node == 0 {
        let common = ns_common_of(start_ns(ns_type), ty);
        if common == 0 || !is_entry(common, expected) {
            return (walk_status::NO_START, 0);
        }
        node = common + list_off as u64;
        unsafe { (*state).start_node = node };
    } else {
        let common = node - list_off as u64;
        let id = u64_at(common, config!(offsets.ns_id));
        if !is_entry(common, expected) || id != unsafe { (*state).cursor_id } {
            reset(state);
            return (walk_status::RESTART, 0);
        }
    }
    let init = Step {
        pos: node,
        cursor: node,
        start: unsafe { (*state).start_node },
        list_off: list_off as u64,
        ty: ty as u64,
        owner: 0,
        owner_ref: NsRef::default(),
        parent: 0,
        parent_ref: NsRef::default(),
        expected,
        emitted: 0,
        status: walk_status::MORE,
        _pad: 0,
    };
    let Some(step) = fresh_step(&NS_STEP, init) else {
        return (walk_status::UNSUPPORTED, 0);
    };
    run_loop(budget, walk_step, step);
    match step.status {
        walk_status::MORE => {
            let id = u64_at(step.cursor - list_off as u64, config!(offsets.ns_id));
            save(state, step.cursor, id, step.emitted)
        }
        status => {
            reset(state);
            (status, step.emitted)
        }
    }
}

/// One list entry per call; returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn walk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let s = unsafe { step_of::<Step>(ctx) };
    let ty = (s.ty & 7) as usize;
    let next = ptr_at(s.pos, 0); // list_head.next
    if next == 0 {
        s.status = walk_status::RESTART;
        return 1;
    }
    let common = next - s.list_off;
    if next == s.start {
        // Back where we started: the start namespace is the last row.
        if emit(common, ty, s) {
            s.emitted += 1;
            s.status = walk_status::COMPLETE;
        }
        return 1;
    }
    if is_entry(common, s.expected) {
        if !emit(common, ty, s) {
            return 1;
        }
        s.emitted += 1;
        s.cursor = next;
    } else {
        changes::note_head(next, ty, s.expected);
    }
    // Entries and the list head alike: move on.
    s.pos = next;
    0
}

#[inline(always)]
pub(crate) fn reset(state: *mut WalkState) {
    unsafe {
        (*state).cursor_node = 0;
        (*state).cursor_id = 0;
        (*state).start_node = 0;
        (*state).resume_fd = 0;
    }
}

/// Saves where the next run resumes, with the id that proves the entry is
/// still the same then (ns_id for namespaces, pid for tasks).
#[inline(always)]
fn save(state: *mut WalkState, node: u64, id: u64, emitted: u32) -> (u32, u32) {
    unsafe {
        (*state).cursor_node = node;
        (*state).cursor_id = id;
    }
    (walk_status::MORE, emitted)
}

/// [`crate::hooks::create::lineage`], with the owner's and pid parent's id/inode from `s` when
/// they are the previous row's (the walk is one RCU read section: a
/// pointer cannot name another namespace within it).
#[inline(always)]
fn cached_lineage(ns: u64, ty: usize, s: &mut Step) -> (NsRef, NsRef, u32) {
    let owner = owner_of(ns, ty);
    if owner != s.owner {
        s.owner = owner;
        s.owner_ref = ns_ref(ns_common_of(owner, NsType::User as usize));
    }
    if ty == NsType::Pid as usize {
        let p = ptr_at(ns, config!(offsets.pid_ns_parent));
        if p != s.parent {
            s.parent = p;
            s.parent_ref = ns_ref(ns_common_of(p, ty));
        }
        (s.owner_ref, s.parent_ref, u32_at(ns, config!(offsets.pid_ns_level)))
    } else if ty == NsType::User as usize {
        (s.owner_ref, s.owner_ref, u32_at(ns, config!(offsets.user_ns_level)))
    } else {
        (s.owner_ref, NsRef::default(), 0)
    }
}

/// Writes one row; false when the ring buffer is full.
#[inline(always)]
fn emit(common: u64, ty: usize, s: &mut Step) -> bool {
    let Some(mut entry) = WALK.reserve::<NsInfoRecord>(0) else {
        // Not a loss: the run ends here and the next resumes at this entry.
        return false;
    };
    let ns = common - ns_common_off(ty) as u64;
    let (owner, parent, level) = cached_lineage(ns, ty, s);
    let me = ns_ref(common);
    let e = entry.as_mut_ptr();
    unsafe {
        (*e).header = header::<NsInfoRecord>(EventKind::NsInfo, 0, 0);
        (*e).ns_type = ty as u32;
        (*e).level = level;
        (*e).id = me.id;
        (*e).inum = me.inum;
        (*e).refcount = u32_at(common, config!(offsets.ns_ref));
        (*e).owner = owner;
        (*e).parent = parent;
        (*e).kaddr = common;
        (*e).active = match config!(offsets.ns_ref_active) {
            ABSENT => ACTIVE_UNKNOWN,
            off => u32_at(common, off),
        };
        fill_charge(&mut *e, ns, ty);
    }
    entry.submit(0);
    true
}

/// What the namespace is charged to (its `ucounts`: owner and the
/// creator's euid) and the kernel's counts there; for a user namespace all
/// types' counts and its own limits.
#[inline(always)]
fn fill_charge(e: &mut NsInfoRecord, ns: u64, ty: usize) {
    let ucounts = ptr_at(ns, ucounts_off(ty));
    e.charged = ucounts;
    e.charged_uid = if ucounts == 0 { UID_UNKNOWN } else { u32_at(ucounts, config!(offsets.ucounts_uid)) };
    e.charged_counts = [COUNT_UNKNOWN; NS_TYPES];
    e.limits = [COUNT_UNKNOWN; NS_TYPES];
    if ty == NsType::User as usize {
        let mut t = 0usize;
        while t < NS_TYPES {
            if ucounts != 0 {
                e.charged_counts[t] = u32_at(ucounts, config!(offsets.ucount_of[t]));
            }
            e.limits[t] = u32_at(ns, config!(offsets.ucount_max_of[t]));
            t += 1;
        }
    } else if ucounts != 0 && ty < NS_TYPES {
        e.charged_counts[ty] = u32_at(ucounts, config!(offsets.ucount_of[ty]));
    }
}

/// Offset of the `ucounts` pointer inside type `ty`'s struct.
#[inline(always)]
fn ucounts_off(ty: usize) -> u32 {
    if ty >= NS_TYPES {
        return ABSENT;
    }
    config!(offsets.ucounts_in[ty])
}

// ---------------------------------------------------------------------------
// The task-list walk: every process (thread-group leader) with its full
// namespace set, from `init_task.tasks` (a circular RCU list). /proc cannot
// show everything: a pid namespace that is only some task's
// pid_for_children is hidden there until its first process exists, and
// some tasks' /proc entries are unreadable even to root.

#[raw_tracepoint]
pub fn task_walk(_ctx: RawTracePointContext) -> i32 {
    let (status, emitted) = try_task_walk();
    report(WALK_STATE_TASKS, status, emitted);
    0
}

#[repr(C)]
struct TaskStep {
    pos: u64,
    cursor: u64,
    start: u64,
    list_off: u64,
    emitted: u32,
    status: u32,
    /// The scratch holds this run's previous task's set (see
    /// `read_task_set_reusing`); never across runs.
    reuse: u32,
    _pad: u32,
}

fn try_task_walk() -> (u32, u32) {
    let Some(state) = WALK_STATE.get_ptr_mut(WALK_STATE_TASKS) else {
        return (walk_status::UNSUPPORTED, 0);
    };
    let list_off = config!(offsets.task_tasks);
    let leader_off = config!(offsets.task_group_leader);
    if list_off == ABSENT || leader_off == ABSENT {
        return (walk_status::UNSUPPORTED, 0);
    }
    let budget = budget(state);
    let mut node = unsafe { (*state).cursor_node };
    if node == 0 {
        // `tasks` links thread-group leaders only.
        let leader = ptr_at(unsafe { bpf_get_current_task() }, leader_off);
        if leader == 0 {
            return (walk_status::NO_START, 0);
        }
        node = leader + list_off as u64;
        unsafe { (*state).start_node = node };
    } else {
        let task = node - list_off as u64;
        if u32_at(task, config!(offsets.task_pid)) as u64 != unsafe { (*state).cursor_id } {
            reset(state);
            return (walk_status::RESTART, 0);
        }
    }
    let init = TaskStep {
        pos: node,
        cursor: node,
        start: unsafe { (*state).start_node },
        list_off: list_off as u64,
        emitted: 0,
        status: walk_status::MORE,
        reuse: 0,
        _pad: 0,
    };
    let Some(step) = fresh_step(&TASK_STEP, init) else {
        return (walk_status::UNSUPPORTED, 0);
    };
    run_loop(budget, task_step, step);
    match step.status {
        walk_status::MORE => {
            let pid = u32_at(step.cursor - list_off as u64, config!(offsets.task_pid));
            save(state, step.cursor, pid as u64, step.emitted)
        }
        status => {
            reset(state);
            (status, step.emitted)
        }
    }
}

#[inline(never)]
unsafe extern "C" fn task_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let s = unsafe { step_of::<TaskStep>(ctx) };
    let next = ptr_at(s.pos, 0);
    if next == 0 {
        s.status = walk_status::RESTART;
        return 1;
    }
    if !emit_task(next - s.list_off, s.reuse != 0) {
        return 1;
    }
    s.reuse = 1;
    s.emitted += 1;
    if next == s.start {
        s.status = walk_status::COMPLETE;
        return 1;
    }
    s.cursor = next;
    s.pos = next;
    0
}

/// The id of the task's cgroup v2 cgroup (0 where unreadable); with
/// `reuse`, the previous task's when it has the same `css_set`.
#[inline(always)]
fn cgroup_id(task: u64, reuse: bool) -> u64 {
    let css_set = ptr_at(task, config!(offsets.task_cgroups));
    let Some(set) = TASK_NS_SET.get_ptr_mut(0) else { return 0 };
    let set = unsafe { &mut *set };
    if reuse && css_set == set.css_set {
        return set.cgroup_id;
    }
    let cgroup = ptr_at(css_set, config!(offsets.css_set_dfl_cgrp));
    let kn = ptr_at(cgroup, config!(offsets.cgroup_kn));
    set.css_set = css_set;
    set.cgroup_id = u64_at(kn, config!(offsets.kernfs_node_id));
    set.cgroup_id
}

#[inline(always)]
fn emit_task(task: u64, reuse: bool) -> bool {
    let Some(mut entry) = WALK.reserve::<TaskNsEvent>(0) else {
        // Not a loss: the run ends here and the next resumes at this entry.
        return false;
    };
    let Some(set) = read_task_set_reusing(task, reuse) else {
        entry.discard(0);
        return false;
    };
    let flags = u32_at(task, config!(offsets.task_flags));
    let e = entry.as_mut_ptr();
    fill_task_event(e, EventKind::TaskInfo, task, set, 0, 0, flags);
    let signal = ptr_at(task, config!(offsets.task_signal));
    unsafe { (*e).threads = if signal == 0 { 0 } else { u32_at(signal, config!(offsets.signal_nr_threads)) } };
    unsafe { (*e).cgroup_id = cgroup_id(task, reuse) };
    entry.submit(0);
    true
}

//! Task lifecycle: fork (task_newtask), exec and exit. These run for every
//! task on the host, so each first decides, in a few reads, whether the
//! task's namespace set changed (fork, exec) or a namespace may end
//! (exit); only then is the set read and a record sent, carrying the full
//! set (from `nsproxy`, `real_cred` and `thread_pid`).
//!
//! # Safety
//! Map values (the per-CPU task set, the dying marks, ring reservations)
//! through pointers from lookups or reservations checked for null, valid
//! until the program returns; `bpf_get_current_task` is always valid;
//! kernel memory (the nsproxy) only through `bpf_probe_read_kernel`.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

/// The kernel's `CLONE_THREAD`.
const CLONE_THREAD: u64 = 0x0001_0000;
use aya_ebpf::helpers::generated;
use nstrace_common::{
    config::{ABSENT, WORK_DESTROY_PID_NS, WORK_FREE_USER_NS, config_flags},
    event::{EventKind, NsRef, TaskNsEvent, create_cause},
    ns::{
        CLONE_NEW_MASK, NS_TYPES, NsType, PROC_TIME_INIT_INO, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN,
        TASK_NS_SLOTS,
    },
};

use crate::{
    hooks::{
        create::{ALL_SLOTS, known_key, report_new_namespaces},
        forkgate::{self, gate_closed},
    },
    maps::{EVENTS, KNOWN, OWN_SET, OwnSet, TASK_NS_SET, TaskNsSet, config, count_lost, wakeup_flags},
    read::{header, ns_common_of, ns_ref, ptr_at, read_comm, u32_at},
};

/// The active pid namespace of `task`: `task->thread_pid->numbers[level].ns`.
#[inline(always)]
pub fn active_pid_ns(task: u64) -> u64 {
    let pid = ptr_at(task, config!(offsets.task_thread_pid));
    if pid == 0 {
        return 0;
    }
    let level = u32_at(pid, config!(offsets.pid_level)) as u64;
    if level > 32 {
        return 0;
    }
    ptr_at(upid_at(pid, level), config!(offsets.upid_ns))
}

/// `&pid->numbers[level]`.
#[inline(always)]
fn upid_at(pid: u64, level: u64) -> u64 {
    pid + config!(offsets.pid_numbers) as u64 + level * config!(offsets.upid_size) as u64
}

/// Words of `struct nsproxy` read at once (72 bytes on 6.x; a probe read
/// costs about the same for 8 bytes or 128).
const NSPROXY_WORDS: usize = 16;

/// The field at byte `off` of an nsproxy read into `raw` (0 if ABSENT).
#[inline(always)]
fn nsproxy_field(raw: &[u64; NSPROXY_WORDS], off: u32) -> u64 {
    let word = off as usize / 8;
    if off == ABSENT || word >= NSPROXY_WORDS { 0 } else { raw[word] }
}

/// Pointers to the namespace structs of a task by slot, given its nsproxy,
/// user and pid namespaces: the nsproxy in one read into `raw`, field by
/// field if that read fails.
#[inline(always)]
pub fn task_ns_ptrs(nsproxy: u64, user_ns: u64, pid_ns: u64, raw: &mut [u64; NSPROXY_WORDS]) -> [u64; TASK_NS_SLOTS] {
    let size = config!(offsets.nsproxy_size);
    // A constant to the verifier: it keeps one of the two.
    let whole = size != ABSENT && (size as usize) <= NSPROXY_WORDS * 8;
    if whole {
        // Branch-free like every read: a failed one leaves zeroes.
        unsafe { generated::bpf_probe_read_kernel(raw.as_mut_ptr().cast(), size, nsproxy as *const core::ffi::c_void) };
    }
    let field = |off: u32| if whole { nsproxy_field(raw, off) } else { ptr_at(nsproxy, off) };
    [
        field(config!(offsets.nsproxy_net)),
        field(config!(offsets.nsproxy_uts)),
        field(config!(offsets.nsproxy_ipc)),
        pid_ns,
        user_ns,
        field(config!(offsets.nsproxy_mnt)),
        field(config!(offsets.nsproxy_cgroup)),
        field(config!(offsets.nsproxy_time)),
        field(config!(offsets.nsproxy_pid_for_children)),
        field(config!(offsets.nsproxy_time_for_children)),
    ]
}

/// Reads the namespace set of `task` once (struct pointers and id/inode
/// per slot) into per-CPU scratch, for the record and for the
/// first-sighting check alike. None only if the scratch map is missing.
#[inline(always)]
pub fn read_task_set(task: u64) -> Option<&'static TaskNsSet> {
    read_task_set_reusing(task, false)
}

/// [`read_task_set`] for a walk over many tasks inside one RCU read
/// section with preemption off (a test run): with `reuse`, a task whose
/// nsproxy, user and pid namespaces are the previous task's (still in the
/// scratch) gets that set without reading the rest. Most tasks share all
/// their namespaces: this takes two thirds of the task walk's reads away.
#[inline(always)]
pub fn read_task_set_reusing(task: u64, reuse: bool) -> Option<&'static TaskNsSet> {
    let set = TASK_NS_SET.get_ptr_mut(0)?;
    let set = unsafe { &mut *set };
    let nsproxy = ptr_at(task, config!(offsets.task_nsproxy));
    let cred = ptr_at(task, config!(offsets.task_real_cred));
    let user_ns = ptr_at(cred, config!(offsets.cred_user_ns));
    let pid_ns = active_pid_ns(task);
    if reuse
        && nsproxy == set.nsproxy
        && user_ns == set.ptrs[NsType::User as usize]
        && pid_ns == set.ptrs[NsType::Pid as usize]
    {
        return Some(set);
    }
    set.nsproxy = nsproxy;
    // The previous task's pointers stay in the map, not on the stack: the
    // hooks that inline this are near the 512-byte stack limit.
    set.prev_ptrs = set.ptrs;
    set.ptrs = task_ns_ptrs(nsproxy, user_ns, pid_ns, &mut set.nsproxy_raw);
    // Hooks only: the walk programs may be another object's (pinned), whose
    // own set nobody seeded for this process.
    let own = if reuse { None } else { own_set() };
    let mut i = 0;
    while i < NS_TYPES {
        // Slot by slot too: a task in its own uts namespace still shares
        // the other nine with the previous task (a read each saved).
        if !(reuse && set.ptrs[i] == set.prev_ptrs[i]) {
            set.refs[i] = match own {
                Some(own) if own.ptrs[i] == set.ptrs[i] => own.refs[i],
                _ => ns_ref(ns_common_of(set.ptrs[i], i)),
            };
        }
        i += 1;
    }
    // Nearly every task's namespaces for children are its own.
    set.refs[SLOT_PID_FOR_CHILDREN] = same_or_read(set, SLOT_PID_FOR_CHILDREN, NsType::Pid as usize, reuse);
    set.refs[SLOT_TIME_FOR_CHILDREN] = same_or_read(set, SLOT_TIME_FOR_CHILDREN, NsType::Time as usize, reuse);
    Some(set)
}

#[inline(always)]
pub fn is_self(tgid: u32) -> bool {
    tgid == config!(self_tgid)
}

#[inline(always)]
fn emit_task_event(kind: EventKind, task: u64, clone_flags: u32) -> Result<(), i64> {
    let flags = config!(flags);
    if flags & config_flags::READY == 0 {
        return Ok(());
    }
    // Decided before anything else is read: most tasks change nothing.
    let every = flags & config_flags::TASK_RECORDS != 0;
    let wanted = match kind {
        // The gate is kept whether or not every fork is a record.
        EventKind::Fork => !fork_kept_namespaces(task, clone_flags as u64) || every,
        EventKind::Exec => every || !exec_kept_namespaces(task),
        _ => every || (flags & config_flags::EXACT_DESTROY == 0 && exit_may_end_namespaces(task)),
    };
    if !wanted {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if is_self(tgid) {
        return Ok(());
    }
    let Some(set) = read_task_set(task) else { return Err(-1) };
    let cause = if kind == EventKind::Exec { create_cause::EXEC } else { create_cause::FORK };
    if kind != EventKind::Exit {
        report_new_namespaces(task, cause, clone_flags as u64, tgid, tid, ALL_SLOTS);
    } else {
        mark_dying(task, set);
    }
    let Some(mut entry) = EVENTS.reserve::<TaskNsEvent>(0) else {
        count_lost(kind as u32);
        return Err(-1);
    };
    fill_task_event(entry.as_mut_ptr(), kind, task, set, tgid, tid, clone_flags);
    entry.submit(wakeup_flags());
    Ok(())
}

/// nstrace's own namespace set, once seeded (see [`OwnSet`]).
#[inline(always)]
fn own_set() -> Option<&'static OwnSet> {
    let own = OWN_SET.get(0)?;
    (own.valid == 1).then_some(own)
}

/// Seeds [`OwnSet`] with the set of the calling task (user space runs this
/// in nstrace itself).
#[inline(always)]
pub fn seed_own_set() {
    let Some(set) = read_task_set(unsafe { bpf_get_current_task() }) else { return };
    let own = OwnSet { ptrs: set.ptrs, refs: set.refs, valid: 1 };
    let _ = OWN_SET.set(0, &own, 0);
}

/// Id and inode of the namespaces of `task` in the `slots` bit set only
/// (the rest of `out` is zeroed): an unshare's entry reads the one or two
/// it can change, not all ten.
#[inline(always)]
pub fn read_slots(task: u64, slots: u32, out: &mut [NsRef; TASK_NS_SLOTS]) {
    let nsproxy = ptr_at(task, config!(offsets.task_nsproxy));
    let own = own_set();
    let mut i = 0;
    while i < TASK_NS_SLOTS {
        out[i] = NsRef::default();
        if slots & (1 << i) != 0 {
            let ptr = match i {
                0 => ptr_at(nsproxy, config!(offsets.nsproxy_net)),
                1 => ptr_at(nsproxy, config!(offsets.nsproxy_uts)),
                2 => ptr_at(nsproxy, config!(offsets.nsproxy_ipc)),
                3 => active_pid_ns(task),
                4 => ptr_at(ptr_at(task, config!(offsets.task_real_cred)), config!(offsets.cred_user_ns)),
                5 => ptr_at(nsproxy, config!(offsets.nsproxy_mnt)),
                6 => ptr_at(nsproxy, config!(offsets.nsproxy_cgroup)),
                7 => ptr_at(nsproxy, config!(offsets.nsproxy_time)),
                8 => ptr_at(nsproxy, config!(offsets.nsproxy_pid_for_children)),
                _ => ptr_at(nsproxy, config!(offsets.nsproxy_time_for_children)),
            };
            let ty = match i {
                SLOT_PID_FOR_CHILDREN => NsType::Pid as usize,
                SLOT_TIME_FOR_CHILDREN => NsType::Time as usize,
                own => own,
            };
            out[i] = match own {
                Some(own) if own.ptrs[i] == ptr => own.refs[i],
                _ => ns_ref(ns_common_of(ptr, ty)),
            };
        }
        i += 1;
    }
}

/// The id and inode of `slot` (a "for children" slot): those of the task's
/// own namespace of the type (`own`) when it is the same struct, else the
/// previous task's when reusing and the pointer did not change, else read.
#[inline(always)]
fn same_or_read(set: &TaskNsSet, slot: usize, own: usize, reuse: bool) -> NsRef {
    if slot >= TASK_NS_SLOTS || own >= NS_TYPES {
        return NsRef::default();
    }
    if set.ptrs[slot] == set.ptrs[own] {
        return set.refs[own];
    }
    if reuse && set.ptrs[slot] == set.prev_ptrs[slot] {
        return set.refs[slot];
    }
    ns_ref(ns_common_of(set.ptrs[slot], own))
}

/// `pid->level` of a task's pid: its pid namespace's depth.
#[inline(always)]
fn pid_level(task: u64) -> u32 {
    u32_at(ptr_at(task, config!(offsets.task_thread_pid)), config!(offsets.pid_level))
}

/// Whether a fork's child has exactly its parent's namespaces. Without a
/// `CLONE_NEW*` flag the child shares the parent's nsproxy unless it
/// enters the time namespace for children; it enters the pid namespace
/// for children, which is the parent's own or a descendant (a deeper
/// level iff it differs); the user namespace changes only with
/// `CLONE_NEWUSER`. A thread shares all of them (the kernel refuses
/// `CLONE_THREAD` otherwise). Four reads, and none for a thread.
///
/// While no task is pending (see `hooks::forkgate`), a fork without a
/// `CLONE_NEW*` flag keeps them for certain: one array lookup, no read.
#[inline(always)]
fn fork_kept_namespaces(child: u64, clone_flags: u64) -> bool {
    let closed = gate_closed();
    let new = clone_flags & CLONE_NEW_MASK != 0;
    if closed || new {
        // A child of a pending task may be pending too: a thread, a
        // CLONE_VM child of one whose time namespace for children differs.
        forkgate::note(u32_at(child, config!(offsets.task_pid)), child);
    }
    if new {
        return false;
    }
    if !closed || clone_flags & CLONE_THREAD != 0 {
        return true;
    }
    let parent = unsafe { bpf_get_current_task() };
    let nsproxy = config!(offsets.task_nsproxy);
    ptr_at(child, nsproxy) == ptr_at(parent, nsproxy) && pid_level(child) == pid_level(parent)
}

/// Whether an exec left the task's namespaces as they were. The one change
/// exec makes is entering the time namespace for children (after
/// unshare(CLONE_NEWTIME)), done by this tracepoint: so whether the task
/// is in the initial time namespace, where nearly every task is.
#[inline(always)]
fn exec_kept_namespaces(task: u64) -> bool {
    let nsproxy = ptr_at(task, config!(offsets.task_nsproxy));
    let time = ns_common_of(ptr_at(nsproxy, config!(offsets.nsproxy_time)), NsType::Time as usize);
    u32_at(time, config!(offsets.ns_inum)) == PROC_TIME_INIT_INO
}

/// Whether a task's exit may end a namespace, for the hint walks and
/// [`mark_dying`] of mechanisms without a destroy hook: the last task of its
/// nsproxy. User and pid namespaces are not in the nsproxy; their deaths
/// finish in work items (`free_user_ns`, `destroy_pid_namespace_work`)
/// that send hints of their own, so only where the kernel has no such
/// work item: the last reference (its cred's) to its user namespace, or
/// the init of a pid namespace below the host's. Most exits take two reads.
#[inline(always)]
fn exit_may_end_namespaces(task: u64) -> bool {
    let nsproxy = ptr_at(task, config!(offsets.task_nsproxy));
    if nsproxy == 0 || u32_at(nsproxy, config!(offsets.nsproxy_count)) <= 1 {
        return true;
    }
    if config!(destroy_work_fns[WORK_FREE_USER_NS]) == 0 {
        let cred = ptr_at(task, config!(offsets.task_real_cred));
        let user = ns_common_of(ptr_at(cred, config!(offsets.cred_user_ns)), NsType::User as usize);
        if u32_at(user, config!(offsets.ns_ref)) <= 1 {
            return true;
        }
    }
    if config!(destroy_work_fns[WORK_DESTROY_PID_NS]) != 0 {
        return false;
    }
    let pid = ptr_at(task, config!(offsets.task_thread_pid));
    let level = u32_at(pid, config!(offsets.pid_level));
    if level == 0 || level > 32 {
        return false;
    }
    u32_at(upid_at(pid, level as u64), config!(offsets.upid_nr)) == 1
}

/// `KNOWN` value of a namespace whose last reference is going (see [`mark_dying`]).
pub const DYING: u64 = 1;

/// Before 6.18 (no ids) keys are type+inode, and a freed inode is soon
/// reused. When the last task of an nsproxy exits and a namespace in it has
/// no other reference, it dies now: its `KNOWN` entry becomes [`DYING`], so
/// the next namespace with that key is reported as new (even from the same
/// address) instead of taken for this one. Destroy hooks make this moot;
/// without one (`destroy=proc-rescan`) it is what tells the two apart.
#[inline(always)]
fn mark_dying(task: u64, set: &TaskNsSet) {
    let nsproxy = ptr_at(task, config!(offsets.task_nsproxy));
    if nsproxy == 0 || u32_at(nsproxy, config!(offsets.nsproxy_count)) != 1 {
        return;
    }
    let mut i = 0;
    while i < NS_TYPES {
        let ty = i;
        i += 1;
        // The types an nsproxy holds (not user: cred; not pid: struct pid).
        if ty == NsType::User as usize || ty == NsType::Pid as usize {
            continue;
        }
        let me = set.refs[ty];
        if me.id != 0 || me.inum == 0 {
            continue; // ids are never reused
        }
        if u32_at(ns_common_of(set.ptrs[ty], ty), config!(offsets.ns_ref)) != 1 {
            continue;
        }
        if let Some(v) = KNOWN.get_ptr_mut(&known_key(&me, ty)) {
            unsafe { *v = DYING };
        }
    }
}

/// Writes a whole [`TaskNsEvent`] about `task` into ring-buffer memory.
#[inline(always)]
pub fn fill_task_event(
    e: *mut TaskNsEvent,
    kind: EventKind,
    task: u64,
    set: &TaskNsSet,
    tgid: u32,
    tid: u32,
    flags: u32,
) {
    unsafe {
        (*e).header = header::<TaskNsEvent>(kind, tgid, tid);
        (*e).subject_tgid = u32_at(task, config!(offsets.task_tgid));
        (*e).subject_tid = u32_at(task, config!(offsets.task_pid));
        let parent = ptr_at(task, config!(offsets.task_real_parent));
        (*e).parent_tgid = u32_at(parent, config!(offsets.task_tgid));
        (*e).flags = flags;
        (*e).threads = 0;
        (*e)._reserved = 0;
        (*e).cgroup_id = 0;
        read_comm(task, &mut (*e).comm);
        (*e).ns = set.refs;
    }
}

// TP_PROTO(struct task_struct *task, u64 clone_flags)
#[raw_tracepoint(tracepoint = "task_newtask")]
pub fn task_newtask(ctx: RawTracePointContext) -> i32 {
    let task: u64 = ctx.arg(0);
    let flags: u64 = ctx.arg(1);
    let _ = emit_task_event(EventKind::Fork, task, flags as u32);
    let _ = ctx.as_ptr();
    0
}

// TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let task: u64 = ctx.arg(0);
    if gate_closed() {
        // Exec enters the time namespace for children, and a thread that
        // execs takes its leader's tid (`old_pid` was its own).
        let old_pid = ctx.arg::<u64>(1) as u32;
        forkgate::forget(old_pid);
        forkgate::note(bpf_get_current_pid_tgid() as u32, task);
    }
    let _ = emit_task_event(EventKind::Exec, task, 0);
    0
}

// TP_PROTO(struct task_struct *p, bool group_dead) (6.16+; older: just p)
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let task: u64 = ctx.arg(0);
    if gate_closed() {
        forkgate::forget(bpf_get_current_pid_tgid() as u32);
    }
    let _ = emit_task_event(EventKind::Exit, task, 0);
    0
}

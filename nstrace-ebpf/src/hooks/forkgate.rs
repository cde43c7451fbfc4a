//! The fork gate: a plain fork (no CLONE_NEW*) changes the child's
//! namespaces only when the forking task has a pid or time namespace
//! "for children" that is not its own (after its unshare or setns of
//! one), or shares the nsproxy of such a task. Such tasks are kept in
//! [`PENDING`] and counted in [`FORK_GATE`]; while the count is zero a fork
//! is decided with one array lookup and no kernel read.
//!
//! The count starts at [`GATE_UNKNOWN`] (user space writes it before the
//! hooks attach), so every fork is checked until user space has found the
//! tasks that were pending before it started and run [`fork_gate_seed`]
//! for each, then once to open the gate.
//!
//! # Safety
//! Map values through pointers from lookups checked for null, valid until
//! the program returns; kernel memory only through `read.rs`.

use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap},
    programs::RawTracePointContext,
};
use nstrace_common::config::{GATE_UNKNOWN, fork_gate_op};

use crate::{
    maps::config,
    read::{ptr_at, u32_at},
};

/// Index 0: tasks in [`PENDING`], plus [`GATE_UNKNOWN`] until seeded.
/// Index 1: 1 once the gate was opened (the open is done once).
#[map]
pub static FORK_GATE: Array<u64> = Array::with_max_entries(2, 0);

/// Tasks (by tid) whose forks may change namespaces without CLONE_NEW*.
#[map]
pub static PENDING: HashMap<u32, u32> = HashMap::with_max_entries(1 << 16, 0);

const BPF_NOEXIST: u64 = 1;

/// `*p += delta` as one BPF atomic add (other CPUs count too). The Rust
/// BPF target has no 64-bit atomics in `core`, so the instruction is
/// written out.
///
/// # Safety
/// `p` must point at a live, 8-byte aligned u64 (a map value).
#[inline(always)]
unsafe fn atomic_add(p: *mut u64, delta: u64) {
    unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) p, in(reg) delta) };
}

#[inline(always)]
fn add(index: u32, delta: u64) {
    if let Some(p) = FORK_GATE.get_ptr_mut(index) {
        // SAFETY: a live, 8-byte aligned map value.
        unsafe { atomic_add(p, delta) };
    }
}

/// Whether every fork must be checked (some task is pending, or the gate
/// was not seeded yet).
#[inline(always)]
pub fn gate_closed() -> bool {
    match FORK_GATE.get(0) {
        Some(&n) => n != 0,
        None => true,
    }
}

/// Whether `task`'s forks would change namespaces without CLONE_NEW*: its
/// time namespace for children is not its own, or its pid namespace for
/// children is deeper than its own.
#[inline(always)]
pub fn is_pending(task: u64) -> bool {
    let nsproxy = ptr_at(task, config!(offsets.task_nsproxy));
    if nsproxy == 0 {
        return false;
    }
    let time = ptr_at(nsproxy, config!(offsets.nsproxy_time));
    if time != ptr_at(nsproxy, config!(offsets.nsproxy_time_for_children)) {
        return true;
    }
    let for_children = ptr_at(nsproxy, config!(offsets.nsproxy_pid_for_children));
    let own = ptr_at(task, config!(offsets.task_thread_pid));
    u32_at(for_children, config!(offsets.pid_ns_level)) != u32_at(own, config!(offsets.pid_level))
}

/// Counts `tid` in or out after something that may change its state.
#[inline(always)]
pub fn note(tid: u32, task: u64) {
    if is_pending(task) {
        if PENDING.insert(&tid, &1, BPF_NOEXIST).is_ok() {
            add(0, 1);
        }
    } else {
        forget(tid);
    }
}

/// `tid` is gone (exit, or the old tid of an exec).
#[inline(always)]
pub fn forget(tid: u32) {
    if PENDING.remove(&tid).is_ok() {
        add(0, u64::MAX); // -1
    }
}

/// Run by user space (BPF_PROG_TEST_RUN) with arguments (op, tid): see
/// [`fork_gate_op`]. Never attached.
#[raw_tracepoint]
pub fn fork_gate_seed(ctx: RawTracePointContext) -> i32 {
    let op: u64 = ctx.arg(0);
    let tid = ctx.arg::<u64>(1) as u32;
    match op {
        fork_gate_op::ADD => {
            if PENDING.insert(&tid, &1, BPF_NOEXIST).is_ok() {
                add(0, 1);
            }
        }
        fork_gate_op::REMOVE => forget(tid),
        // User space runs it once, after every ADD; the mark makes a second
        // run (another user of the same maps) do nothing.
        fork_gate_op::OPEN => {
            if let Some(p) = FORK_GATE.get_ptr_mut(1)
                && unsafe { *p } == 0
            {
                unsafe { *p = 1 };
                add(0, GATE_UNKNOWN.wrapping_neg());
            }
        }
        fork_gate_op::SEED_OWN => crate::hooks::task::seed_own_set(),
        _ => {}
    }
    0
}

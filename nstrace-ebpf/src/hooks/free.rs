//! Destroy hints: the work functions that finish a namespace's death
//! (cleanup_net for net, free_user_ns, destroy_pid_namespace_work, free_ipc)
//! ran. User space then walks the lists at once, so deaths are reported in
//! milliseconds rather than at the next periodic walk; the walk stays the
//! judge of what died. Comparing one pointer against four keeps this hook
//! cheap on a hot tracepoint.
//!
//! `cleanup_net`'s start is hooked too: it takes every network namespace
//! queued for teardown at that moment, and its end is their death, so the
//! two bound each one's "dying" time (user space's `store::teardown`).
//!
//! # Safety
//! A ring reservation checked for null, written then submitted; kernel
//! memory only through `read.rs`.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext};
use nstrace_common::{
    config::{DESTROY_WORK_FNS, WORK_CLEANUP_NET},
    event::{DestroyHintEvent, EventKind, hint_phase},
};

use crate::{
    maps::{EVENTS, config, count_lost, wakeup_flags},
    read::header,
};

// TP_PROTO(struct work_struct *work, work_func_t function)
#[raw_tracepoint(tracepoint = "workqueue_execute_end")]
pub fn workqueue_execute_end(ctx: RawTracePointContext) -> i32 {
    let function: u64 = ctx.arg(1);
    let mut i = 0;
    while i < DESTROY_WORK_FNS {
        let f = config!(destroy_work_fns[i]);
        if f != 0 && f == function {
            emit(i as u32, hint_phase::END);
            break;
        }
        i += 1;
    }
    0
}

// TP_PROTO(struct work_struct *work) (6.1+; 6.x passes the function as the
// tracepoint's own field, not an argument: read it from the work item)
#[raw_tracepoint(tracepoint = "workqueue_execute_start")]
pub fn workqueue_execute_start(ctx: RawTracePointContext) -> i32 {
    let work: u64 = ctx.arg(0);
    let cleanup = config!(destroy_work_fns[WORK_CLEANUP_NET]);
    if cleanup != 0 && work_func(work) == cleanup {
        emit(WORK_CLEANUP_NET as u32, hint_phase::START);
    }
    0
}

/// `work->func`.
#[inline(always)]
fn work_func(work: u64) -> u64 {
    crate::read::ptr_at(work, config!(offsets.work_func))
}

#[inline(always)]
fn emit(which: u32, phase: u32) {
    let Some(mut entry) = EVENTS.reserve::<DestroyHintEvent>(0) else {
        count_lost(EventKind::DestroyHint as u32);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let e = entry.as_mut_ptr();
    unsafe {
        (*e).header = header::<DestroyHintEvent>(EventKind::DestroyHint, (pid_tgid >> 32) as u32, pid_tgid as u32);
        (*e).which = which;
        (*e).phase = phase;
    }
    entry.submit(wakeup_flags());
}

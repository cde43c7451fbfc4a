//! Destroy hints: the work functions that finish a namespace's death
//! (cleanup_net for net, free_user_ns, destroy_pid_namespace_work, free_ipc)
//! ran. User space then walks the lists at once, so deaths are reported in
//! milliseconds rather than at the next periodic walk; the walk stays the
//! judge of what died. Comparing one pointer against four keeps this hook
//! cheap on a hot tracepoint.
//!
//! # Safety
//! A ring reservation checked for null, written then submitted; kernel
//! memory only through `read.rs`.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext};
use nstrace_common::{
    config::DESTROY_WORK_FNS,
    event::{DestroyHintEvent, EventKind},
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
            emit(i as u32);
            break;
        }
        i += 1;
    }
    0
}

#[inline(always)]
fn emit(which: u32) {
    let Some(mut entry) = EVENTS.reserve::<DestroyHintEvent>(0) else {
        count_lost(EventKind::DestroyHint as u32);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let e = entry.as_mut_ptr();
    unsafe {
        (*e).header = header::<DestroyHintEvent>(EventKind::DestroyHint, (pid_tgid >> 32) as u32, pid_tgid as u32);
        (*e).which = which;
        (*e)._reserved = 0;
    }
    entry.submit(wakeup_flags());
}

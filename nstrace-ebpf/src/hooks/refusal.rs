//! Refused namespace creations: unshare(2), clone(2) and clone3(2) that fail
//! with ENOSPC or EUSERS. At the failure the caller's charge chain is read
//! as the kernel checks it (kernel/ucount.c `inc_ucount`): the caller's
//! `(user namespace, euid)` entry, then each ancestor user namespace with
//! the entry its child's owner holds there; per level every type's count
//! and that user namespace's `ucount_max`. User space finds the full level.
//!
//! clone/clone3 are hooked at their exit only: a plain fork pays one
//! argument read per run; the flags of a refused one are read then, from
//! the task's saved registers.
//!
//! # Safety
//! Tracepoint arguments through the context's bounded reads; user memory
//! (clone3's `struct clone_args`) and kernel memory only through probe
//! reads; ring reservations checked for null.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_task_btf,
        bpf_probe_read_user, generated::bpf_task_pt_regs,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use nstrace_common::{
    config::ABSENT,
    event::{CHARGE_LEVELS, COUNT_UNKNOWN, ChargeLevel, EventKind, RefusalEvent, UID_UNKNOWN, refused_syscall},
    ns::{CLONE_NEW_MASK, NS_TYPES, NsType},
};

use crate::{
    hooks::{syscalls::read_field, task::is_self},
    maps::{EVENTS, config, count_lost, wakeup_flags},
    read::{header, ns_common_of, ns_ref, ptr_at, read_comm, u32_at},
};

const ENOSPC: i64 = 28;
const EUSERS: i64 = 87;

/// Whether a syscall result is a refusal this module explains.
#[inline(always)]
pub fn is_refusal(ret: i64) -> bool {
    ret == -ENOSPC || ret == -EUSERS
}

/// Writes a [`RefusalEvent`] for the current task.
#[inline(never)]
pub fn report_refusal(syscall: u32, ret: i64, flags: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    let Some(mut entry) = EVENTS.reserve::<RefusalEvent>(0) else {
        count_lost(EventKind::Refused as u32);
        return;
    };
    let e = entry.as_mut_ptr();
    let task = unsafe { bpf_get_current_task() };
    let cred = ptr_at(task, config!(offsets.task_cred));
    let euid = u32_at(cred, config!(offsets.cred_euid));
    let nsproxy = ptr_at(task, config!(offsets.task_nsproxy));
    let pid_ns = ptr_at(nsproxy, config!(offsets.nsproxy_pid_for_children));
    unsafe {
        (*e).header = header::<RefusalEvent>(EventKind::Refused, tgid, tid);
        (*e).syscall = syscall;
        (*e).ret = ret as i32;
        (*e).flags = flags;
        (*e).euid = euid;
        (*e).pid_depth = u32_at(pid_ns, config!(offsets.pid_ns_level));
        (*e).cgroup_id = bpf_get_current_cgroup_id();
        read_comm(task, &mut (*e).comm);
        (*e)._reserved = 0;
    }
    // Level 0: the caller's own entry, `cred->ucounts`, is keyed by the
    // real uid; namespaces are charged to the euid. Where they differ the
    // euid's entry is not reachable, and level 0's counts stay unknown.
    let own = ptr_at(cred, config!(offsets.cred_ucounts));
    let mut charged = if u32_at(own, config!(offsets.ucounts_uid)) == euid { own } else { 0 };
    let mut user_ns = ptr_at(cred, config!(offsets.cred_user_ns));
    let mut uid = euid;
    let mut filled = 0u32;
    let mut i = 0usize;
    while i < CHARGE_LEVELS {
        if user_ns == 0 {
            break;
        }
        let level = unsafe { &mut (*e).levels[i] };
        fill_level(level, user_ns, charged, uid);
        filled += 1;
        // The next level: the parent, where this user namespace's own
        // entry (its owner's uid there) is charged.
        charged = ptr_at(user_ns, config!(offsets.ucounts_in[NsType::User as usize]));
        uid = if charged == 0 { UID_UNKNOWN } else { u32_at(charged, config!(offsets.ucounts_uid)) };
        user_ns = ptr_at(user_ns, config!(offsets.user_ns_parent));
        i += 1;
    }
    unsafe { (*e).level_count = filled };
    entry.submit(wakeup_flags());
}

#[inline(always)]
fn fill_level(level: &mut ChargeLevel, user_ns: u64, charged: u64, uid: u32) {
    level.user_ns = ns_ref(ns_common_of(user_ns, NsType::User as usize));
    level.uid = uid;
    level.depth = u32_at(user_ns, config!(offsets.user_ns_level));
    let mut t = 0usize;
    while t < NS_TYPES {
        level.counts[t] = if charged == 0 { COUNT_UNKNOWN } else { u32_at(charged, config!(offsets.ucount_of[t])) };
        level.limits[t] = u32_at(user_ns, config!(offsets.ucount_max_of[t]));
        t += 1;
    }
}

/// The flags a refused clone or clone3 asked for, read at its exit from
/// the task's saved user registers (`bpf_task_pt_regs`; the first
/// argument, at the `pt_regs` offset BTF gives): clone's flags, or clone3's
/// `struct clone_args *` whose first member is the flags. 0 where unknown.
#[inline(always)]
fn asked_flags(syscall: u32) -> u64 {
    let off = config!(offsets.pt_regs_arg0);
    if off == ABSENT {
        return 0;
    }
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as u64;
    let arg0 = ptr_at(regs, off);
    if syscall == refused_syscall::CLONE {
        return arg0 & CLONE_NEW_MASK;
    }
    if arg0 == 0 {
        return 0;
    }
    unsafe { bpf_probe_read_user(arg0 as *const u64) }.map_or(0, |f| f & CLONE_NEW_MASK)
}

/// A clone that failed with a refusal errno: reported with its flags. Only
/// the exit is hooked (runs twice per fork, parent and child): a plain
/// fork pays one argument read per run and nothing else.
#[inline(always)]
fn clone_exit(ctx: &TracePointContext, syscall: u32) {
    let ret = read_field(ctx, config!(tp_ret)) as i64;
    if !is_refusal(ret) || is_self((bpf_get_current_pid_tgid() >> 32) as u32) {
        return;
    }
    report_refusal(syscall, ret, asked_flags(syscall));
}

// SYSCALL_DEFINE5(clone, unsigned long, clone_flags, unsigned long, newsp, ...)
#[tracepoint(category = "syscalls", name = "sys_exit_clone")]
pub fn sys_exit_clone(ctx: TracePointContext) -> u32 {
    clone_exit(&ctx, refused_syscall::CLONE);
    0
}

// SYSCALL_DEFINE2(clone3, struct clone_args __user *, uargs, size_t, size);
#[tracepoint(category = "syscalls", name = "sys_exit_clone3")]
pub fn sys_exit_clone3(ctx: TracePointContext) -> u32 {
    clone_exit(&ctx, refused_syscall::CLONE3);
    let _ = ctx.as_ptr();
    0
}

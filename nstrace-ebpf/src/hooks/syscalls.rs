//! unshare(2) and setns(2): the arguments at entry, the result and the
//! caller's namespace set before and after at exit.
//!
//! # Safety
//! Tracepoint arguments are read at offsets from tracefs with the context's
//! own bounded reads; the in-flight entry is a map value from a lookup
//! checked for null, this task's alone between entry and exit; kernel
//! memory only through `read.rs`.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
};
use nstrace_common::{
    config::ABSENT,
    event::{EventKind, NsRef, SyscallNsEvent, create_cause, refused_syscall},
    ns::{NsType, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN, TASK_NS_SLOTS},
};

use crate::{
    hooks::{
        create::{ALL_SLOTS, report_new_namespaces},
        forkgate,
        refusal::{is_refusal, report_refusal},
        task::{is_self, read_slots, read_task_set},
    },
    maps::{EVENTS, INFLIGHT, Inflight, SCRATCH, config, count_lost, wakeup_flags},
    read::{header, ptr_at, read_comm, u32_at, u64_at},
};

/// The 8-byte field at `off` of a syscall tracepoint record (0 if ABSENT).
#[inline(always)]
pub fn read_field(ctx: &TracePointContext, off: u32) -> u64 {
    if off == ABSENT {
        return 0;
    }
    unsafe { ctx.read_at::<u64>(off as usize) }.unwrap_or(0)
}

/// Superblock magic of the caller's open file `fd` (nsfs or pidfs for setns).
#[inline(always)]
fn fd_magic(fd: i32) -> u32 {
    if fd < 0 {
        return 0;
    }
    let task = unsafe { bpf_get_current_task() };
    let files = ptr_at(task, config!(offsets.task_files));
    let fdt = ptr_at(files, config!(offsets.files_fdt));
    if fd as u32 >= u32_at(fdt, config!(offsets.fdtable_max_fds)) {
        return 0;
    }
    let fds = ptr_at(fdt, config!(offsets.fdtable_fd));
    if fds == 0 {
        return 0;
    }
    let file = ptr_at(fds + fd as u64 * 8, 0);
    let inode = ptr_at(file, config!(offsets.file_f_inode));
    let sb = ptr_at(inode, config!(offsets.inode_i_sb));
    u64_at(sb, config!(offsets.sb_s_magic)) as u32
}

/// The slots an unshare with `flags` can change: the types it names, the
/// pid and time ones "for children" (the caller's own stay).
#[inline(always)]
fn unshare_slots(flags: u64) -> u32 {
    let slot = |ty: NsType, slot: usize| if flags & ty.clone_flag() != 0 { 1u32 << slot } else { 0 };
    slot(NsType::Net, NsType::Net as usize)
        | slot(NsType::Uts, NsType::Uts as usize)
        | slot(NsType::Ipc, NsType::Ipc as usize)
        | slot(NsType::User, NsType::User as usize)
        | slot(NsType::Mnt, NsType::Mnt as usize)
        | slot(NsType::Cgroup, NsType::Cgroup as usize)
        | slot(NsType::Pid, SLOT_PID_FOR_CHILDREN)
        | slot(NsType::Time, SLOT_TIME_FOR_CHILDREN)
}

/// Saves the arguments and the namespace set before the call (of an
/// unshare, only the slots it can change).
#[inline(always)]
fn enter(fd: i32, flags: u64, slots: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_self((pid_tgid >> 32) as u32) {
        return;
    }
    let tid = pid_tgid as u32;
    // Built in per-CPU scratch: too big for the 512-byte stack.
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else { return };
    unsafe {
        (*scratch).fd = fd;
        (*scratch).fd_magic = fd_magic(fd);
        (*scratch).flags = flags;
        (*scratch).slots = slots;
        (*scratch)._reserved = 0;
        if slots == ALL_SLOTS {
            let Some(set) = read_task_set(bpf_get_current_task()) else { return };
            (*scratch).before = set.refs;
        } else {
            read_slots(bpf_get_current_task(), slots, &mut (*scratch).before);
        }
        let _ = INFLIGHT.insert(&tid, &*scratch, 0);
    }
}

#[inline(always)]
fn exit(ctx: &TracePointContext, kind: EventKind) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    let Some(inflight) = (unsafe { INFLIGHT.get(&tid) }) else { return };
    let inflight: *const Inflight = inflight;
    let ret = read_field(ctx, config!(tp_ret)) as i64;
    let task = unsafe { bpf_get_current_task() };
    let Some(set) = read_task_set(task) else { return };
    match EVENTS.reserve::<SyscallNsEvent>(0) {
        Some(mut entry) => {
            let e = entry.as_mut_ptr();
            unsafe {
                (*e).header = header::<SyscallNsEvent>(kind, tgid, tid);
                (*e).fd = (*inflight).fd;
                (*e).fd_magic = (*inflight).fd_magic;
                (*e).flags = (*inflight).flags;
                (*e).ret = ret;
                read_comm(task, &mut (*e).comm);
                (*e).before = (*inflight).before;
                (*e).after = set.refs;
                keep_unread(&mut (*e).before, &set.refs, (*inflight).slots);
            }
            entry.submit(wakeup_flags());
        }
        None => count_lost(kind as u32),
    }
    let flags = unsafe { (*inflight).flags };
    if kind == EventKind::Unshare && is_refusal(ret) {
        report_refusal(refused_syscall::UNSHARE, ret, flags);
    }
    // Only a pid or time namespace (for children) changes the fork gate:
    // unshare names them in its flags; setns may name none (an nsfs fd
    // of any type) or take a pidfd with several.
    if ret == 0 && (flags & FOR_CHILDREN != 0 || (kind == EventKind::Setns && flags == 0)) {
        forkgate::note(tid, task);
    }
    let changed = if ret == 0 {
        changed_slots(unsafe { &(*inflight).before }, &set.refs) & unsafe { (*inflight).slots }
    } else {
        0
    };
    let _ = INFLIGHT.remove(&tid);
    let cause = if kind == EventKind::Unshare { create_cause::UNSHARE } else { create_cause::SETNS };
    report_new_namespaces(task, cause, flags, tgid, tid, changed);
}

/// The slots of `before` not read at entry: the same as after the call.
#[inline(always)]
fn keep_unread(before: &mut [NsRef; TASK_NS_SLOTS], after: &[NsRef; TASK_NS_SLOTS], read: u32) {
    let mut i = 0;
    while i < TASK_NS_SLOTS {
        if read & (1 << i) == 0 {
            before[i] = after[i];
        }
        i += 1;
    }
}

/// CLONE_NEWPID | CLONE_NEWTIME: the namespaces a task has "for children".
const FOR_CHILDREN: u64 = 0x2000_0000 | 0x0000_0080;

/// Bit set of the slots whose namespace differs between `before` and `after`.
/// Without a branch per slot: the verifier would walk each combination.
#[inline(always)]
fn changed_slots(before: &[NsRef; TASK_NS_SLOTS], after: &[NsRef; TASK_NS_SLOTS]) -> u32 {
    let mut changed = 0;
    let mut i = 0;
    while i < TASK_NS_SLOTS {
        let differ = (before[i].id ^ after[i].id) | (before[i].inum ^ after[i].inum) as u64;
        // The top bit of d | -d is set exactly when d is not 0.
        changed |= (((differ | differ.wrapping_neg()) >> 63) as u32) << i;
        i += 1;
    }
    changed
}

// SYSCALL_DEFINE1(unshare, unsigned long, unshare_flags)
#[tracepoint(category = "syscalls", name = "sys_enter_unshare")]
pub fn sys_enter_unshare(ctx: TracePointContext) -> u32 {
    let flags = read_field(&ctx, config!(tp_arg0));
    enter(-1, flags, unshare_slots(flags));
    let _ = ctx.as_ptr();
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_unshare")]
pub fn sys_exit_unshare(ctx: TracePointContext) -> u32 {
    exit(&ctx, EventKind::Unshare);
    0
}

// SYSCALL_DEFINE2(setns, int, fd, int, flags)
#[tracepoint(category = "syscalls", name = "sys_enter_setns")]
pub fn sys_enter_setns(ctx: TracePointContext) -> u32 {
    let fd = read_field(&ctx, config!(tp_arg0)) as i32;
    let flags = read_field(&ctx, config!(tp_arg1)) as u32 as u64;
    // An nsfs fd or a pidfd may change any of them.
    enter(fd, flags, ALL_SLOTS);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_setns")]
pub fn sys_exit_setns(ctx: TracePointContext) -> u32 {
    exit(&ctx, EventKind::Setns);
    0
}

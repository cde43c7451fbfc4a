//! mount(2) with MS_BIND and move_mount(2): who made a mount, where. User
//! space matches these with the nsfs bind mounts a refresh finds, to say
//! who pinned a namespace (`ip netns add`, a CNI plugin, dockerd).
//!
//! # Safety
//! Tracepoint arguments are read at offsets from tracefs with the context's
//! own bounded reads; ring reservations are checked for null; user memory
//! (the mount path) only through `read.rs`.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, generated},
    macros::tracepoint,
    programs::TracePointContext,
};
use nstrace_common::{
    event::{EventKind, MountEvent, mount_syscall},
    ns::NsType,
};

use crate::{
    hooks::{syscalls::read_field, task::is_self},
    maps::{EVENTS, MOUNT_INFLIGHT, MOUNT_SCRATCH, config, count_lost, wakeup_flags},
    read::{header, ns_common_of, ptr_at, read_comm, u32_at},
};

/// MS_BIND: only bind mounts can pin a namespace file.
const MS_BIND: u64 = 4096;

/// Saves the target path of a call that may pin a namespace.
#[inline(always)]
fn enter(syscall: u32, flags: u64, target: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_self((pid_tgid >> 32) as u32) || target == 0 {
        return;
    }
    let Some(scratch) = MOUNT_SCRATCH.get_ptr_mut(0) else { return };
    unsafe {
        (*scratch).syscall = syscall;
        (*scratch).flags = flags;
        let dst = &mut (*scratch).target;
        if generated::bpf_probe_read_user_str(dst.as_mut_ptr().cast(), dst.len() as u32, target as *const _) < 0 {
            return;
        }
        let _ = MOUNT_INFLIGHT.insert(&(pid_tgid as u32), &*scratch, 0);
    }
}

/// Reports a call that succeeded.
#[inline(always)]
fn exit(ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    let Some(inflight) = MOUNT_INFLIGHT.get_ptr(&tid) else { return };
    let ret = read_field(ctx, config!(tp_ret)) as i64;
    if ret == 0 {
        match EVENTS.reserve::<MountEvent>(0) {
            Some(mut entry) => {
                let e = entry.as_mut_ptr();
                let task = unsafe { bpf_get_current_task() };
                let parent = ptr_at(task, config!(offsets.task_real_parent));
                let nsproxy = ptr_at(task, config!(offsets.task_nsproxy));
                let mnt = ns_common_of(ptr_at(nsproxy, config!(offsets.nsproxy_mnt)), NsType::Mnt as usize);
                unsafe {
                    (*e).header = header::<MountEvent>(EventKind::Mount, tgid, tid);
                    (*e).syscall = (*inflight).syscall;
                    (*e).flags = (*inflight).flags;
                    (*e).mnt_ns = u32_at(mnt, config!(offsets.ns_inum));
                    (*e).parent_tgid = u32_at(parent, config!(offsets.task_tgid));
                    (*e)._reserved = 0;
                    read_comm(task, &mut (*e).comm);
                    read_comm(parent, &mut (*e).parent_comm);
                    (*e).target = (*inflight).target;
                }
                entry.submit(wakeup_flags());
            }
            None => count_lost(EventKind::Mount as u32),
        }
    }
    let _ = MOUNT_INFLIGHT.remove(&tid);
}

// SYSCALL_DEFINE5(mount, char __user *, dev_name, char __user *, dir_name,
//                 char __user *, type, unsigned long, flags, void __user *, data)
#[tracepoint(category = "syscalls", name = "sys_enter_mount")]
pub fn sys_enter_mount(ctx: TracePointContext) -> u32 {
    let flags = read_field(&ctx, config!(tp_arg3));
    if flags & MS_BIND != 0 {
        enter(mount_syscall::MOUNT, flags, read_field(&ctx, config!(tp_arg1)));
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_mount")]
pub fn sys_exit_mount(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

// SYSCALL_DEFINE5(move_mount, int, from_dfd, const char __user *, from_pathname,
//                 int, to_dfd, const char __user *, to_pathname, unsigned int, flags)
#[tracepoint(category = "syscalls", name = "sys_enter_move_mount")]
pub fn sys_enter_move_mount(ctx: TracePointContext) -> u32 {
    enter(mount_syscall::MOVE_MOUNT, 0, read_field(&ctx, config!(tp_arg3)));
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_move_mount")]
pub fn sys_exit_move_mount(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

//! Kernel-function hooks: exact creation and destruction where the kernel
//! lets us attach to functions (fentry/fexit with BPF_PROG_TYPE_TRACING,
//! kprobes otherwise). User space loads only the programs of the selected
//! mechanism (see `nstrace doctor`):
//! - 6.18+: the namespace tree insert and remove, which every type goes
//!   through with type, ns_id and inode intact;
//! - older kernels: the per-type constructors (`copy_net_ns`, ...) for
//!   creation and `proc_free_inum` for destruction: every namespace type
//!   frees its inode number there when it dies (`ns_free_inum`), so one
//!   hook sees every death. It also sees procfs inodes; user space ignores
//!   inode numbers it does not know.
//!
//! # Safety
//! `bpf_get_current_task` is always valid in a program; ring reservations
//! are checked for null before they are written; kernel memory only
//! through `read.rs`.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_task},
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use nstrace_common::{
    event::{EventKind, NS_TYPE_UNKNOWN, NsDestroyEvent, NsRef, create_cause, destroy_via},
    ns::{NS_TYPES, NsType},
};

use crate::{
    hooks::create::{known_key, report_one},
    maps::{EVENTS, KNOWN, config, count_lost, wakeup_flags},
    read::{header, ns_common_of, ns_common_off, ns_ref, ptr_at, u32_at},
};

/// The largest errno an `ERR_PTR` encodes.
const MAX_ERRNO: u64 = 4095;

/// Type index of the `CLONE_NEW*` bit `flag`, or NS_TYPES.
#[inline(always)]
fn type_of_flag(flag: u32) -> usize {
    let mut i = 0;
    while i < NS_TYPES {
        if NsType::ALL[i].clone_flag() == flag as u64 {
            return i;
        }
        i += 1;
    }
    NS_TYPES
}

/// Reports the namespace struct `ns` of type `ty` a constructor returned
/// (the old one when its flag was not asked for: already known, so not
/// reported again). `new`: the flags asked for a new one, so a key `KNOWN`
/// holds names a dead namespace (see [`report_one`]).
#[inline(always)]
fn report_constructed(ns: u64, ty: usize, cause: u32, new: bool) {
    if ns == 0 || ns >= MAX_ERRNO.wrapping_neg() {
        return;
    }
    let me = ns_ref(ns_common_of(ns, ty));
    if me.inum == 0 {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let task = unsafe { bpf_get_current_task() };
    report_one(ns, ty, me, cause, 0, (pid_tgid >> 32) as u32, pid_tgid as u32, task, new);
}

#[inline(always)]
fn emit_destroy(ns_type: u32, inum: u32, id: u64, via: u32) {
    if inum == 0 {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<NsDestroyEvent>(0) else {
        count_lost(EventKind::Destroy as u32);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let e = entry.as_mut_ptr();
    unsafe {
        (*e).header = header::<NsDestroyEvent>(EventKind::Destroy, (pid_tgid >> 32) as u32, pid_tgid as u32);
        (*e).ns_type = ns_type;
        (*e).inum = inum;
        (*e).id = id;
        (*e).via = via;
        (*e)._reserved = 0;
    }
    entry.submit(wakeup_flags());
}

// ---- 6.18+: the namespace tree -----------------------------------------------

// 6.18: void __ns_tree_add_raw(struct ns_common *ns, struct ns_tree *ns_tree)
// 6.19+: void __ns_tree_add_raw(struct ns_common *ns, struct ns_tree_root *ns_tree)
// Only the namespace (argument 0) is read: the same on both.
#[fexit(function = "__ns_tree_add_raw")]
pub fn fexit_ns_tree_add(ctx: FExitContext) -> i32 {
    let common: u64 = ctx.arg(0);
    let ty = type_of_flag(u32_at(common, config!(offsets.ns_type)));
    let off = ns_common_off(ty);
    if common != 0 && off != nstrace_common::config::ABSENT {
        // Not `new`: a walk may list it between the add and this hook, and
        // its id key is never another namespace's.
        report_constructed(common - off as u64, ty, create_cause::NS_TREE_ADD, false);
    }
    0
}

// 6.18: void __ns_tree_remove(struct ns_common *ns, struct ns_tree *ns_tree)
// 6.19+: void __ns_tree_remove(struct ns_common *ns, struct ns_tree_root *ns_tree)
#[fentry(function = "__ns_tree_remove")]
pub fn fentry_ns_tree_remove(ctx: FEntryContext) -> i32 {
    let common: u64 = ctx.arg(0);
    let ty = type_of_flag(u32_at(common, config!(offsets.ns_type)));
    if ty < NS_TYPES {
        let me = ns_ref(common);
        let _ = KNOWN.remove(&known_key(&me, ty));
        emit_destroy(ty as u32, me.inum, me.id, destroy_via::NS_TREE_REMOVE);
    }
    0
}

// ---- every kernel: inode numbers ----------------------------------------------

/// A freed inode number may name a new namespace at once: forget it in
/// `KNOWN` now, in the kernel, or the new namespace's first sighting would
/// be taken for the old one's (user space learns of the death only at its
/// next drain). Before 6.18 keys are type+inode and the type is unknown
/// here, so every type's key goes; with ids, user space forgets the id.
#[inline(always)]
fn free_inum(inum: u32) {
    if inum == 0 {
        return;
    }
    let mut ty = 0;
    while ty < NS_TYPES {
        let key = known_key(&NsRef { id: 0, inum, _reserved: 0 }, ty);
        let _ = KNOWN.remove(&key);
        ty += 1;
    }
    emit_destroy(NS_TYPE_UNKNOWN, inum, 0, destroy_via::FREE_INUM);
}

// void proc_free_inum(unsigned int inum)
#[fentry(function = "proc_free_inum")]
pub fn fentry_free_inum(ctx: FEntryContext) -> i32 {
    let inum: u64 = ctx.arg(0);
    free_inum(inum as u32);
    0
}

// void proc_free_inum(unsigned int inum)
#[kprobe(function = "proc_free_inum")]
pub fn kprobe_free_inum(ctx: ProbeContext) -> u32 {
    let inum: u64 = ctx.arg(0).unwrap_or(0);
    free_inum(inum as u32);
    0
}

// ---- every kernel: per-type constructors ------------------------------------

/// fexit and kretprobe programs for a constructor with the prototype
/// `struct X *f(unsigned long flags, struct user_namespace *, struct X *old)`.
/// The program names, functions and types are those of
/// `nstrace_common::names::CONSTRUCTORS` (attribute macros take literals only).
macro_rules! constructor {
    ($fexit:ident, $kretprobe:ident, $func:literal, $ty:expr) => {
        #[fexit(function = $func)]
        pub fn $fexit(ctx: FExitContext) -> i32 {
            // fexit sees the arguments, then the return value.
            let flags: u64 = ctx.arg(0);
            let ns: u64 = ctx.arg(3);
            report_constructed(ns, $ty as usize, create_cause::CONSTRUCTOR, flags & $ty.clone_flag() != 0);
            0
        }

        #[kretprobe(function = $func)]
        pub fn $kretprobe(ctx: RetProbeContext) -> u32 {
            // (The flags are gone at return: a key user space declared
            // known just before this namespace took it is not seen through.)
            let ns: u64 = ctx.ret();
            report_constructed(ns, $ty as usize, create_cause::CONSTRUCTOR, false);
            0
        }
    };
}

// struct net *copy_net_ns(unsigned long flags, struct user_namespace *user_ns, struct net *old_net)
constructor!(fexit_copy_net_ns, kretprobe_copy_net_ns, "copy_net_ns", NsType::Net);
// struct uts_namespace *copy_utsname(unsigned long flags, struct user_namespace *user_ns, struct uts_namespace *old_ns)
constructor!(fexit_copy_utsname, kretprobe_copy_utsname, "copy_utsname", NsType::Uts);
// struct ipc_namespace *copy_ipcs(unsigned long flags, struct user_namespace *user_ns, struct ipc_namespace *ns)
constructor!(fexit_copy_ipcs, kretprobe_copy_ipcs, "copy_ipcs", NsType::Ipc);
// struct pid_namespace *copy_pid_ns(unsigned long flags, struct user_namespace *user_ns, struct pid_namespace *old_ns)
constructor!(fexit_copy_pid_ns, kretprobe_copy_pid_ns, "copy_pid_ns", NsType::Pid);
// struct cgroup_namespace *copy_cgroup_ns(unsigned long flags, struct user_namespace *user_ns, struct cgroup_namespace *old_ns)
constructor!(fexit_copy_cgroup_ns, kretprobe_copy_cgroup_ns, "copy_cgroup_ns", NsType::Cgroup);
// struct time_namespace *copy_time_ns(unsigned long flags, struct user_namespace *user_ns, struct time_namespace *old_ns)
constructor!(fexit_copy_time_ns, kretprobe_copy_time_ns, "copy_time_ns", NsType::Time);

// struct mnt_namespace *copy_mnt_ns(unsigned long flags, struct mnt_namespace *ns,
//                                   struct user_namespace *user_ns, struct fs_struct *new_fs)
#[fexit(function = "copy_mnt_ns")]
pub fn fexit_copy_mnt_ns(ctx: FExitContext) -> i32 {
    let flags: u64 = ctx.arg(0);
    let ns: u64 = ctx.arg(4);
    report_constructed(ns, NsType::Mnt as usize, create_cause::CONSTRUCTOR, flags & NsType::Mnt.clone_flag() != 0);
    0
}

#[kretprobe(function = "copy_mnt_ns")]
pub fn kretprobe_copy_mnt_ns(ctx: RetProbeContext) -> u32 {
    let ns: u64 = ctx.ret();
    report_constructed(ns, NsType::Mnt as usize, create_cause::CONSTRUCTOR, false);
    0
}

// int create_user_ns(struct cred *new): the new namespace is new->user_ns.
// (No kretprobe twin: the return value does not name the namespace; with
// kprobes a new user namespace is reported when a task is seen in it.)
#[fexit(function = "create_user_ns")]
pub fn fexit_create_user_ns(ctx: FExitContext) -> i32 {
    let cred: u64 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    if ret == 0 {
        let ns = ptr_at(cred, config!(offsets.cred_user_ns));
        report_constructed(ns, NsType::User as usize, create_cause::CONSTRUCTOR, true);
    }
    0
}

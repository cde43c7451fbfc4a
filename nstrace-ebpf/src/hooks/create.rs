//! First sightings of namespaces: every hook that sees a task's namespace
//! set after it may have changed (fork, exec, unshare, setns) reports the
//! namespaces not yet in `KNOWN`. User space seeds `KNOWN` with every
//! namespace a walk found before the hooks report, and removes dead ones.
//!
//! # Safety
//! Map values (`KNOWN`, the per-CPU task set, ring reservations) through
//! pointers from lookups or reservations checked for null, valid until the
//! program returns; kernel memory only through `read.rs`.

use nstrace_common::{
    config::config_flags,
    event::{EventKind, NsCreateEvent, NsRef, create_cause},
    ns::{NsType, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN, SLOT_TYPES, TASK_NS_SLOTS, ns_key},
};

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_task},
    macros::map,
    maps::PerCpuArray,
};

use crate::{
    loops::{fresh_step, run_loop, step_of},
    maps::{EVENTS, KNOWN, TASK_NS_SET, config, count_lost, wakeup_flags},
    read::{header, ns_common_of, ns_ref, owner_of, ptr_at, read_args, read_comm, u32_at},
};

/// BPF_NOEXIST: insert only if absent, so racing CPUs report once.
const BPF_NOEXIST: u64 = 1;

/// Key of a namespace in `KNOWN` ([`ns_key`], shared with user space).
#[inline(always)]
pub fn known_key(r: &NsRef, ty: usize) -> u64 {
    ns_key(r.id, ty as u32, r.inum)
}

/// Owner, parent and level of the namespace struct `ns` of type `ty`.
#[inline(always)]
pub fn lineage(ns: u64, ty: usize) -> (NsRef, NsRef, u32) {
    let owner = ns_ref(ns_common_of(owner_of(ns, ty), NsType::User as usize));
    if ty == NsType::Pid as usize {
        let p = ptr_at(ns, config!(offsets.pid_ns_parent));
        (owner, ns_ref(ns_common_of(p, ty)), u32_at(ns, config!(offsets.pid_ns_level)))
    } else if ty == NsType::User as usize {
        (owner, owner, u32_at(ns, config!(offsets.user_ns_level)))
    } else {
        (owner, NsRef::default(), 0)
    }
}

/// Whether slot `slot` of a task's namespace set holds a namespace that
/// `cause` with clone or unshare `flags` made (never when a constructor
/// hook reports creates: it has reported them already). A clone's child
/// gets each asked-for type as its own; unshare leaves the task's pid and
/// time namespaces and changes those for its children.
#[inline(always)]
fn made_by_flags(slot: usize, cause: u32, flags: u64) -> bool {
    if config!(flags) & config_flags::CREATES_FROM_SYSCALLS == 0 || slot >= TASK_NS_SLOTS {
        return false;
    }
    let ty = SLOT_TYPES[slot];
    if flags & ty.clone_flag() == 0 {
        return false;
    }
    let for_children = slot == SLOT_PID_FOR_CHILDREN || slot == SLOT_TIME_FOR_CHILDREN;
    match cause {
        create_cause::FORK => !for_children,
        create_cause::UNSHARE => match ty {
            NsType::Pid | NsType::Time => for_children,
            _ => true,
        },
        _ => false,
    }
}

/// One [`report_new_namespaces`] call's arguments, for its loop's callback.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ReportStep {
    task: u64,
    flags: u64,
    cause: u32,
    tgid: u32,
    tid: u32,
    /// Bit per slot to look at (see [`ALL_SLOTS`]).
    slots: u32,
}

/// Every slot of a task's namespace set.
pub const ALL_SLOTS: u32 = (1 << TASK_NS_SLOTS) - 1;

/// This CPU's [`ReportStep`].
#[map]
static REPORT_STEP: PerCpuArray<ReportStep> = PerCpuArray::with_max_entries(1, 0);

/// Reports each namespace of `task` (read into this CPU's `TASK_NS_SET`)
/// in the `slots` bit set not seen before (a syscall passes the slots it
/// changed: an unchanged one was looked at when the task got it). A
/// `bpf_loop` over the slots: unrolled, the ten inlined reports cost the
/// verifier 70,000 instructions per hook.
#[inline(always)]
pub fn report_new_namespaces(task: u64, cause: u32, flags: u64, tgid: u32, tid: u32, slots: u32) {
    if slots == 0 {
        return;
    }
    let init = ReportStep { task, flags, cause, tgid, tid, slots };
    let Some(step) = fresh_step(&REPORT_STEP, init) else { return };
    run_loop(TASK_NS_SLOTS as u32, report_slot, step);
}

unsafe extern "C" fn report_slot(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let s = unsafe { *step_of::<ReportStep>(ctx) };
    let slot = index as usize;
    if slot >= TASK_NS_SLOTS {
        return 1;
    }
    if s.slots & (1 << slot) == 0 {
        return 0;
    }
    let Some(set) = TASK_NS_SET.get_ptr(0) else { return 1 };
    let (ns, me) = unsafe { ((*set).ptrs[slot], (*set).refs[slot]) };
    if me.inum != 0 {
        let new = made_by_flags(slot, s.cause, s.flags);
        // SLOT_TYPES without a table load, which the verifier could not
        // bound (per-type offsets are indexed by the type).
        let ty = match slot {
            SLOT_PID_FOR_CHILDREN => NsType::Pid as usize,
            SLOT_TIME_FOR_CHILDREN => NsType::Time as usize,
            _ => slot,
        };
        report_one(ns, ty, me, s.cause, s.flags, s.tgid, s.tid, s.task, new);
    }
    0
}

/// Reports the namespace struct `ns` of type `ty` (id and inode `me`) if
/// no hook reported it before; `task` is the task it was seen in. `new`:
/// the flags of the call that made it say it is new, so a key `KNOWN`
/// holds names a dead namespace whose inode (and maybe memory) it took:
/// one whose last task's exit could not tell it died, or one user space
/// declared known from a snapshot and that died before a destroy hook was
/// attached.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn report_one(ns: u64, ty: usize, me: NsRef, cause: u32, flags: u64, tgid: u32, tid: u32, task: u64, new: bool) {
    let key = known_key(&me, ty);
    let mut cause = cause;
    if let Some(seen) = KNOWN.get_ptr_mut(&key) {
        // SAFETY: a live map value of this map's value type.
        let before = unsafe { *seen };
        if before == ns && !new {
            return; // already reported
        }
        unsafe { *seen = ns };
        if before == 0 && !new {
            return; // declared known by user space; now its struct is known
        }
        // Another struct under the same type+inode, or the key was marked
        // dying at its last task's exit (`hooks::task::DYING`: the new one
        // may even have the old one's address), or the same address with a
        // flag asking for a new namespace (a transient reference at the last
        // exit kept the key from being marked): the old namespace died and
        // a new one took its inode before user space heard of the death
        // (without a destroy hook, before 6.18). Report it as new.
        cause |= create_cause::REPLACED;
    } else if KNOWN.insert(&key, &ns, BPF_NOEXIST).is_err() {
        return; // another CPU reported it (or the map is full: the walk catches it)
    }
    let Some(mut entry) = EVENTS.reserve::<NsCreateEvent>(0) else {
        count_lost(EventKind::Create as u32);
        // Forget it so the next sighting reports it.
        let _ = KNOWN.remove(&key);
        return;
    };
    let (owner, parent, level) = lineage(ns, ty);
    let e = entry.as_mut_ptr();
    unsafe {
        (*e).header = header::<NsCreateEvent>(EventKind::Create, tgid, tid);
        (*e).ns_type = ty as u32;
        (*e).cause = cause;
        (*e).flags = flags;
        (*e).id = me.id;
        (*e).inum = me.inum;
        (*e).level = level;
        (*e).owner = owner;
        (*e).parent = parent;
        // Where it came from: the current task made it (for fork, the
        // parent; `task` is the child).
        let current = bpf_get_current_task();
        // unshare and setns: the caller, whose ids the hook has already.
        if task == current {
            (*e).subject_tgid = tgid;
            (*e).subject_tid = tid;
        } else {
            (*e).subject_tgid = u32_at(task, config!(offsets.task_tgid));
            (*e).subject_tid = u32_at(task, config!(offsets.task_pid));
        }
        read_comm(task, &mut (*e).comm);
        let parent = ptr_at(current, config!(offsets.task_real_parent));
        (*e).parent_tgid = u32_at(parent, config!(offsets.task_tgid));
        (*e)._reserved = 0;
        read_comm(parent, &mut (*e).parent_comm);
        (*e).cgroup_id = bpf_get_current_cgroup_id();
        read_args(current, &mut (*e).args);
    }
    entry.submit(wakeup_flags());
}

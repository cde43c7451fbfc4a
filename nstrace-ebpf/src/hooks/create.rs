//! First sightings of namespaces: every hook that sees a task's namespace
//! set after it may have changed (fork, exec, unshare, setns) reports the
//! namespaces not yet in `KNOWN`. User space seeds `KNOWN` with every
//! namespace a walk found before the hooks report, and removes dead ones.

use nstrace_common::{
    event::{EventKind, NsCreateEvent, NsRef, create_cause},
    config::config_flags,
    ns::{NS_TYPES, NsType, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN, SLOT_TYPES, TASK_NS_SLOTS, ns_key},
};

use aya_ebpf::helpers::{bpf_get_current_cgroup_id, bpf_get_current_task};

use crate::{
    maps::{EVENTS, KNOWN, TaskNsSet, config, count_lost, wakeup_flags},
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

/// Slots of a task's namespace set that `cause` with clone or unshare
/// `flags` filled with a new namespace, as bits (none unless creates are
/// first sightings: a constructor hook has already reported them). A
/// clone's child gets each asked-for type as its own; unshare leaves the
/// task's pid and time namespaces and changes those for its children.
#[inline(always)]
fn fresh_slots(cause: u32, flags: u64) -> u32 {
    if config!(flags) & config_flags::CREATES_FROM_SYSCALLS == 0
        || (cause != create_cause::FORK && cause != create_cause::UNSHARE)
    {
        return 0;
    }
    let mut bits = 0;
    let mut i = 0;
    while i < NS_TYPES {
        let ty = NsType::ALL[i];
        if flags & ty.clone_flag() != 0 {
            bits |= 1
                << match ty {
                    NsType::Pid if cause == create_cause::UNSHARE => SLOT_PID_FOR_CHILDREN,
                    NsType::Time if cause == create_cause::UNSHARE => SLOT_TIME_FOR_CHILDREN,
                    _ => i,
                };
        }
        i += 1;
    }
    bits
}

/// Reports each namespace of `task` (read into `set`) not seen before.
#[inline(always)]
pub fn report_new_namespaces(task: u64, set: &TaskNsSet, cause: u32, flags: u64, tgid: u32, tid: u32) {
    let fresh = fresh_slots(cause, flags);
    let mut i = 0;
    while i < TASK_NS_SLOTS {
        let ty = SLOT_TYPES[i] as usize;
        let ns = set.ptrs[i];
        let me = set.refs[i];
        let new = fresh & (1 << i) != 0;
        i += 1;
        if me.inum == 0 {
            continue;
        }
        report_one(ns, ty, me, cause, flags, tgid, tid, task, new);
    }
}

/// Reports the namespace struct `ns` of type `ty` (id and inode `me`) if
/// no hook reported it before; `task` is the task it was seen in. `new`:
/// the flags of the syscall that made it say it is new, so a key `KNOWN`
/// holds with this very struct address names a dead namespace whose
/// memory and inode it took.
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
        if before == 0 {
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
        (*e).subject_tgid = u32_at(task, config!(offsets.task_tgid));
        (*e).subject_tid = u32_at(task, config!(offsets.task_pid));
        read_comm(task, &mut (*e).comm);
        // Where it came from: the current task made it (for fork, the
        // parent; `task` is the child).
        let current = bpf_get_current_task();
        let parent = ptr_at(current, config!(offsets.task_real_parent));
        (*e).parent_tgid = u32_at(parent, config!(offsets.task_tgid));
        (*e)._reserved = 0;
        read_comm(parent, &mut (*e).parent_comm);
        (*e).cgroup_id = bpf_get_current_cgroup_id();
        read_args(current, &mut (*e).args);
    }
    entry.submit(wakeup_flags());
}

//! Ring-buffer record layouts.
//!
//! Every record starts with an [`EventHeader`]; its `kind` says which
//! payload follows and `size` repeats the record's full length so a decoder
//! can reject a record whose length does not match its kind.

use crate::ns::{NS_TYPES, TASK_NS_SLOTS};

/// Stable numeric ids of record kinds (part of the wire format).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A task was forked; the subject is the child.
    Fork = 1,
    /// A task called execve; the subject is the task.
    Exec = 2,
    /// A task exited; the subject is the task.
    Exit = 3,
    /// One namespace found by a tree walk.
    NsInfo = 4,
    // 5 stays unused: no record ends a walk run (a run reports its status
    // in its `WalkState` entry).
    /// One process found by the task-list walk (its namespace set).
    TaskInfo = 6,
    /// First sighting of a namespace by a hook.
    Create = 7,
    /// unshare(2) returned.
    Unshare = 8,
    /// setns(2) returned.
    Setns = 9,
    /// A work item that ends a namespace's life ran: walk soon.
    DestroyHint = 10,
    /// A namespace was freed (fentry/kprobe on a kernel free function).
    Destroy = 11,
    /// mount(2) with MS_BIND, or move_mount(2), succeeded (who pins what).
    Mount = 12,
    /// One open nsfs file found by the fd walk (a process holding a
    /// namespace by an fd).
    NsFd = 13,
    /// A namespace-creating syscall failed with ENOSPC or EUSERS: the
    /// caller's charge chain as the kernel held it then.
    Refused = 14,
}

/// Number of slots in the per-kind lost counter map (kinds are < this).
pub const MAX_EVENT_KIND: u32 = 16;

impl EventKind {
    pub const fn from_u32(v: u32) -> Option<EventKind> {
        Some(match v {
            1 => EventKind::Fork,
            2 => EventKind::Exec,
            3 => EventKind::Exit,
            4 => EventKind::NsInfo,
            6 => EventKind::TaskInfo,
            7 => EventKind::Create,
            8 => EventKind::Unshare,
            9 => EventKind::Setns,
            10 => EventKind::DestroyHint,
            11 => EventKind::Destroy,
            12 => EventKind::Mount,
            13 => EventKind::NsFd,
            14 => EventKind::Refused,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Fork => "fork",
            EventKind::Exec => "exec",
            EventKind::Exit => "exit",
            EventKind::NsInfo => "ns-info",
            EventKind::TaskInfo => "task-info",
            EventKind::Create => "create",
            EventKind::Unshare => "unshare",
            EventKind::Setns => "setns",
            EventKind::DestroyHint => "destroy-hint",
            EventKind::Destroy => "destroy",
            EventKind::Mount => "mount",
            EventKind::NsFd => "ns-fd",
            EventKind::Refused => "refused",
        }
    }
}

/// First bytes of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] as u32.
    pub kind: u32,
    /// Length of the whole record in bytes, header included.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()` at the event (CLOCK_BOOTTIME).
    pub ts_ns: u64,
    /// Process id (tgid) of the task that caused the event.
    pub tgid: u32,
    /// Thread id of the task that caused the event.
    pub tid: u32,
}

/// A reference to one namespace: its never-reused id (0 where the kernel
/// has none, before 6.18) and its nsfs inode number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NsRef {
    pub id: u64,
    pub inum: u32,
    pub _reserved: u32,
}

/// A task's full namespace set at fork, exec or exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskNsEvent {
    pub header: EventHeader,
    /// The task the namespace set belongs to (the child, for fork).
    pub subject_tgid: u32,
    pub subject_tid: u32,
    /// Parent process of the subject (for fork: the forking process).
    pub parent_tgid: u32,
    /// Fork: the clone flags (low 32 bits: every CLONE_NEW* bit lives
    /// there). Task-list walk: the task's `PF_*` flags. 0 otherwise.
    pub flags: u32,
    /// Task-list walk: the process's thread count (`signal->nr_threads`),
    /// so user space reads the threads of multi-threaded processes only.
    /// 0 otherwise, and where the kernel's BTF lacks the fields.
    pub threads: u32,
    pub _reserved: u32,
    /// Task-list walk: the id of the process's cgroup v2 cgroup
    /// (`cgroups->dfl_cgrp->kn->id`, the cgroup directory's inode), so
    /// user space reads one /proc/PID/cgroup per cgroup, not per process.
    /// 0 otherwise, and where the kernel's BTF lacks the fields.
    pub cgroup_id: u64,
    pub comm: [u8; 16],
    /// Indexed by [`crate::ns::NsType`], then the pid/time "for children"
    /// slots ([`crate::ns::SLOT_PID_FOR_CHILDREN`], ...).
    pub ns: [NsRef; TASK_NS_SLOTS],
}

/// One namespace as the kernel's list holds it (tree walk).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsInfoRecord {
    pub header: EventHeader,
    /// [`crate::ns::NsType`] as u32.
    pub ns_type: u32,
    /// Nesting level (pid and user namespaces; 0 otherwise).
    pub level: u32,
    pub id: u64,
    pub inum: u32,
    /// `ns_common.__ns_ref`.
    pub refcount: u32,
    /// Owning user namespace (for a user namespace: its parent).
    pub owner: NsRef,
    /// Parent namespace (pid and user namespaces).
    pub parent: NsRef,
    /// Kernel address of the `ns_common`, to match later frees.
    pub kaddr: u64,
    /// `ns_common.__ns_ref_active` (6.19+): tasks, fds and mounts using it;
    /// [`ACTIVE_UNKNOWN`] where the kernel has no such count.
    pub active: u32,
    /// The host uid this namespace is charged to (`ucounts->uid`: the
    /// creator's euid) in its owner; [`UID_UNKNOWN`] where unread.
    pub charged_uid: u32,
    /// Address of that `struct ucounts` (one per user namespace and uid).
    pub charged: u64,
    /// The kernel's counts in that `ucounts`, indexed by
    /// [`crate::ns::NsType`]: this type's always, all types for a user
    /// namespace (whose `ucounts` is the entry its owner holds in the
    /// parent, through which everything below it is charged).
    /// [`COUNT_UNKNOWN`] where unread.
    pub charged_counts: [u32; NS_TYPES],
    /// User namespaces: their `ucount_max` per type (the
    /// `/proc/sys/user/max_*_namespaces` seen inside them);
    /// [`COUNT_UNKNOWN`] otherwise.
    pub limits: [u32; NS_TYPES],
}

/// [`NsInfoRecord::charged_uid`] where the kernel's charge was not read.
pub const UID_UNKNOWN: u32 = u32::MAX;
/// A count or limit that was not read.
pub const COUNT_UNKNOWN: u32 = u32::MAX;

/// [`NsInfoRecord::active`] on kernels without `__ns_ref_active`.
pub const ACTIVE_UNKNOWN: u32 = u32::MAX;

/// What made a hook see a namespace first ([`NsCreateEvent::cause`]).
pub mod create_cause {
    pub const FORK: u32 = 1;
    pub const UNSHARE: u32 = 2;
    pub const SETNS: u32 = 3;
    pub const EXEC: u32 = 4;
    /// fexit on `__ns_tree_add_raw` (6.18+): the namespace joined its list.
    pub const NS_TREE_ADD: u32 = 5;
    /// fexit/kretprobe on a per-type constructor (`copy_net_ns`, ...).
    pub const CONSTRUCTOR: u32 = 6;
    /// Or'ed into a cause: the key (type+inode, before 6.18) named another
    /// namespace struct when this one was first seen, so that one is dead
    /// and its inode was reused before user space learned of the death.
    pub const REPLACED: u32 = 1 << 16;
    /// The cause without flag bits.
    pub const fn base(cause: u32) -> u32 {
        cause & (REPLACED - 1)
    }
}

/// First sighting of a namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsCreateEvent {
    pub header: EventHeader,
    /// [`crate::ns::NsType`] as u32.
    pub ns_type: u32,
    /// One of [`create_cause`].
    pub cause: u32,
    /// Clone flags (fork) or unshare flags (unshare); 0 otherwise.
    pub flags: u64,
    pub id: u64,
    pub inum: u32,
    pub level: u32,
    pub owner: NsRef,
    pub parent: NsRef,
    /// The task whose namespace set holds it (the child, for fork).
    pub subject_tgid: u32,
    pub subject_tid: u32,
    pub comm: [u8; 16],
    /// The creating (current) process's parent: tgid and comm.
    pub parent_tgid: u32,
    pub _reserved: u32,
    pub parent_comm: [u8; 16],
    /// The creating process's cgroup (v2) id: its cgroup directory's inode.
    pub cgroup_id: u64,
    /// The creating process's command line (arguments NUL-separated,
    /// truncated to [`CREATOR_ARGS`] bytes; NUL-padded).
    pub args: [u8; CREATOR_ARGS],
}

/// Bytes of a creator's command line a create record carries.
pub const CREATOR_ARGS: usize = 128;
/// Bytes of a mount target a mount record carries.
pub const MOUNT_TARGET: usize = 256;

/// Which syscall a [`MountEvent`] is about.
pub mod mount_syscall {
    pub const MOUNT: u32 = 1;
    pub const MOVE_MOUNT: u32 = 2;
}

/// A bind mount (mount(2) with MS_BIND) or move_mount(2) succeeded: what
/// was mounted where, by whom. User space matches it with the nsfs mounts
/// its next refresh finds, to say who pinned a namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountEvent {
    pub header: EventHeader,
    /// One of [`mount_syscall`].
    pub syscall: u32,
    /// The caller's mount namespace (inode).
    pub mnt_ns: u32,
    /// mount(2)'s flags, or move_mount(2)'s.
    pub flags: u64,
    pub parent_tgid: u32,
    pub _reserved: u32,
    pub comm: [u8; 16],
    pub parent_comm: [u8; 16],
    /// The target path as the caller passed it (NUL-terminated, truncated).
    pub target: [u8; MOUNT_TARGET],
}

/// unshare(2) or setns(2) returned: what was asked, what happened, and the
/// caller's namespace set before and after.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallNsEvent {
    pub header: EventHeader,
    /// setns: the fd argument (an nsfs fd or a pidfd); unshare: -1.
    pub fd: i32,
    /// setns: superblock magic of the fd's file (nsfs, pidfs); 0 if unknown.
    pub fd_magic: u32,
    /// unshare: the flags; setns: the nstype argument.
    pub flags: u64,
    /// Return value: 0, or a negative errno.
    pub ret: i64,
    pub comm: [u8; 16],
    pub before: [NsRef; TASK_NS_SLOTS],
    pub after: [NsRef; TASK_NS_SLOTS],
}

/// Levels of a refusal's charge chain a record carries: the caller's user
/// namespace and each ancestor (user namespaces nest at most 33 deep).
pub const CHARGE_LEVELS: usize = 34;

/// Which syscall a [`RefusalEvent`] is about.
pub mod refused_syscall {
    pub const UNSHARE: u32 = 1;
    pub const CLONE: u32 = 2;
    pub const CLONE3: u32 = 3;
}

/// One level of the chain a new namespace is charged along: the user
/// namespace, the host uid charged there, and per type the kernel's count
/// and that user namespace's limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChargeLevel {
    pub user_ns: NsRef,
    /// Host uid charged at this level ([`UID_UNKNOWN`]: the caller's
    /// euid differs from its uid, so its own entry was not reachable).
    pub uid: u32,
    /// Nesting level of `user_ns` (0: the host's).
    pub depth: u32,
    /// Indexed by [`crate::ns::NsType`]; [`COUNT_UNKNOWN`] where unread.
    pub counts: [u32; NS_TYPES],
    pub limits: [u32; NS_TYPES],
}

/// A namespace-creating syscall failed with ENOSPC or EUSERS
/// ([`EventKind::Refused`]): what was asked and, read at the failure, the
/// counts and limits at every level the kernel checks.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusalEvent {
    pub header: EventHeader,
    /// One of [`refused_syscall`].
    pub syscall: u32,
    /// The negative errno.
    pub ret: i32,
    /// The CLONE_NEW* flags asked for.
    pub flags: u64,
    /// The caller's euid (host uid).
    pub euid: u32,
    /// Nesting level of the pid namespace its children would get as parent
    /// (`pid_ns_for_children`).
    pub pid_depth: u32,
    /// The caller's cgroup (v2) id.
    pub cgroup_id: u64,
    pub comm: [u8; 16],
    /// Levels filled in `levels`, from the caller's user namespace up.
    pub level_count: u32,
    pub _reserved: u32,
    pub levels: [ChargeLevel; CHARGE_LEVELS],
}

/// A namespace-destroying work function ran ([`EventKind::DestroyHint`]),
/// or `cleanup_net` started ([`hint_phase::START`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestroyHintEvent {
    pub header: EventHeader,
    /// Index into `Config::destroy_work_fns`.
    pub which: u32,
    /// [`hint_phase`]: the work item ended, or (`cleanup_net` only) began.
    pub phase: u32,
}

/// [`DestroyHintEvent::phase`].
pub mod hint_phase {
    /// The work function returned: what it tore down is gone.
    pub const END: u32 = 0;
    /// `cleanup_net` is about to take every network namespace queued for
    /// teardown (its batch).
    pub const START: u32 = 1;
}

/// Which kernel function reported a death ([`NsDestroyEvent::via`]).
pub mod destroy_via {
    /// fentry on `__ns_tree_remove` (6.18+): type, id and inode known.
    pub const NS_TREE_REMOVE: u32 = 1;
    /// fentry/kprobe on `proc_free_inum`: only the inode is known (inode
    /// numbers of live namespaces are unique across types).
    pub const FREE_INUM: u32 = 2;
}

/// `ns_type` of a [`NsDestroyEvent`] whose type the hook cannot know.
pub const NS_TYPE_UNKNOWN: u32 = u32::MAX;

/// A namespace was freed ([`EventKind::Destroy`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsDestroyEvent {
    pub header: EventHeader,
    /// [`crate::ns::NsType`] as u32, or [`NS_TYPE_UNKNOWN`].
    pub ns_type: u32,
    pub inum: u32,
    /// ns_id (6.18+), else 0.
    pub id: u64,
    /// One of [`destroy_via`].
    pub via: u32,
    pub _reserved: u32,
}

/// Status of one walk run (`WalkState::status`).
pub mod walk_status {
    /// The list was walked round to its start.
    pub const COMPLETE: u32 = 0;
    /// The chunk budget ran out; call again to resume from the cursor.
    pub const MORE: u32 = 1;
    /// The cursor was no longer valid (its namespace died): start over.
    pub const RESTART: u32 = 2;
    /// No starting namespace of this type could be read.
    pub const NO_START: u32 = 3;
    /// The configuration lacks the fields a walk needs.
    pub const UNSUPPORTED: u32 = 4;
}

/// Index of the namespace walk's state in the walk state map.
pub const WALK_STATE_NS: u32 = 0;
/// Index of the task walk's state in the walk state map.
pub const WALK_STATE_TASKS: u32 = 1;
/// Index of the fd walk's state in the walk state map.
pub const WALK_STATE_FDS: u32 = 2;
/// Entries of the walk state map.
pub const WALK_STATES: u32 = 3;

/// One open nsfs file of a process (fd walk): which namespace it holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsFdRecord {
    /// `tgid`: the process whose file table holds the fd.
    pub header: EventHeader,
    pub fd: u32,
    /// The namespace's `CLONE_NEW*` flag, 0 where the kernel's `ns_common`
    /// has no type field (the inode, unique across types, still tells).
    pub ns_flag: u32,
    pub inum: u32,
    /// What the fd is: [`fd_via::NSFS`] (the namespace's own file) or
    /// [`fd_via::SOCKET`] (a socket in that net namespace, held by a
    /// process of another one).
    pub via: u32,
    /// ns_id (6.18+), else 0.
    pub id: u64,
    /// A socket's inode (`socket:[N]`); 0 for an nsfs file.
    pub socket_ino: u64,
}

/// [`NsFdRecord::via`] values.
pub mod fd_via {
    pub const NSFS: u32 = 0;
    pub const SOCKET: u32 = 1;
}

/// State shared between runs of one walk (chunked resumption): one entry
/// of the walk state map per walk ([`WALK_STATE_NS`], [`WALK_STATE_TASKS`],
/// [`WALK_STATE_FDS`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkState {
    /// [`crate::ns::NsType`] being walked.
    pub ns_type: u32,
    /// Maximum entries per run.
    pub budget: u32,
    /// Address of the list node the walk started from (0: start afresh).
    pub start_node: u64,
    /// Address of the list node to continue from (0: start afresh).
    pub cursor_node: u64,
    /// `ns_id` of the namespace at `cursor_node` (task walk: the task's
    /// pid), to validate it.
    pub cursor_id: u64,
    /// Fd walk: the first fd of the cursor's task still to look at.
    pub resume_fd: u32,
    /// What the last run reported ([`walk_status`]) and how many records it
    /// wrote. Written by every run: aya's `raw_tracepoint` wrapper returns 0
    /// whatever the program returns, so the return value cannot carry it.
    pub status: u32,
    pub emitted: u32,
    /// [`walk_flags`] the last run set.
    pub flags: u32,
}

/// [`WalkState::flags`] values.
pub mod walk_flags {
    /// The fd walk looked into every socket for its net namespace (the
    /// kernel's BTF had every field that takes).
    pub const SOCKETS: u32 = 1;
}

/// The 6.18 per-type namespace lists' change counts (see
/// `Config::offsets.ns_tree_seq`): the tree walk notes each list's head as
/// it passes it, the change check reads each noted list's count. A count
/// that moved since a walk means a namespace of that type was added or
/// removed; one that did not means the walk's rows still hold.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeWatch {
    /// Address of each type's list head (0: not seen yet).
    pub heads: [u64; NS_TYPES],
    /// Each type's change count at the last check (meaningless where the
    /// head is 0).
    pub seqs: [u32; NS_TYPES],
}

macro_rules! const_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $n);
    };
}
// Explicit sizes: a change here is a wire-format change.
const_size!(EventHeader, 24);
const_size!(NsRef, 16);
const_size!(TaskNsEvent, 24 + 16 + 8 + 8 + 16 + 16 * TASK_NS_SLOTS);
const_size!(NsFdRecord, 24 + 16 + 8 + 8);
const_size!(NsInfoRecord, 24 + 24 + 32 + 8 + 8 + 8 + 8 * NS_TYPES);
const_size!(ChargeLevel, 24 + 8 * NS_TYPES);
const_size!(RefusalEvent, 24 + 16 + 8 + 8 + 16 + 8 + (24 + 8 * NS_TYPES) * CHARGE_LEVELS);
const_size!(WalkState, 48);
const_size!(TreeWatch, 12 * NS_TYPES);
const_size!(DestroyHintEvent, 32);
const_size!(NsCreateEvent, 24 + 16 + 16 + 32 + 8 + 16 + 8 + 16 + 8 + CREATOR_ARGS);
const_size!(MountEvent, 24 + 8 + 8 + 8 + 32 + MOUNT_TARGET);
const_size!(SyscallNsEvent, 24 + 8 + 16 + 16 + 32 * TASK_NS_SLOTS);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: #[repr(C)] plain data with explicit padding and no pointers: any bytes are a valid value.
    unsafe impl aya::Pod for WalkState {}
    // SAFETY: #[repr(C)] plain data with explicit padding and no pointers: any bytes are a valid value.
    unsafe impl aya::Pod for NsFdRecord {}
    // SAFETY: #[repr(C)] plain data with explicit padding and no pointers: any bytes are a valid value.
    unsafe impl aya::Pod for NsRef {}
    // SAFETY: #[repr(C)] plain data with explicit padding and no pointers: any bytes are a valid value.
    unsafe impl aya::Pod for TreeWatch {}
}

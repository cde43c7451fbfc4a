//! Maps and the configuration global.
//!
//! # Safety
//! `CONFIG` is read with `read_volatile` (the loader fills it before the
//! programs load, so the compiler must not fold it); map values are used
//! only through pointers from lookups checked for null, and a per-CPU value
//! belongs to this CPU for the program's run.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use nstrace_common::{
    config::Config,
    event::{MAX_EVENT_KIND, NsRef, TreeWatch, WALK_STATES, WalkState},
    ns::TASK_NS_SLOTS,
};

/// Filled by user space before load (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
pub static CONFIG: Config = Config::empty();

/// Lifecycle and task events. User space may resize it before load.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Tree-walk records; drained by user space between walk runs. Small on
/// purpose: a full ring ends a run and the next resumes at the cursor,
/// while every one-shot snapshot maps (and unmaps) the whole ring twice.
#[map]
pub static WALK: RingBuf = RingBuf::with_byte_size(1024 * 1024, 0);

/// The fd walk's records: its own ring, so it can run beside the task walk
/// (nsfs fds are few; a full ring ends a run like WALK's).
#[map]
pub static WALK_FDS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Reserve failures per event kind.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_EVENT_KIND, 0);

/// State of the chunked walks (namespaces, tasks, fds), one entry each:
/// user space writes the budget and type; each run writes its cursor, its
/// status and how many records it wrote (the walk's only way to report).
#[map]
pub static WALK_STATE: Array<WalkState> = Array::with_max_entries(WALK_STATES, 0);

/// The per-type lists' heads and change counts (see `walk::changes`).
#[map]
pub static TREE_WATCH: Array<TreeWatch> = Array::with_max_entries(1, 0);

/// Reads one field of `CONFIG` so the compiler cannot fold the default in.
macro_rules! config {
    ($($field:tt)+) => {
        {
            #[allow(unused_unsafe)]
            let v = unsafe { core::ptr::read_volatile(&raw const $crate::maps::CONFIG.$($field)+) };
            v
        }
    };
}
pub(crate) use config;

/// Counts a record that could not be reserved.
#[inline(always)]
pub fn count_lost(kind: u32) {
    if let Some(p) = LOST.get_ptr_mut(kind) {
        unsafe { *p += 1 };
    }
    // Slot 0 (no kind) totals them: user space reads one slot to learn
    // that nothing was lost.
    if let Some(p) = LOST.get_ptr_mut(0) {
        unsafe { *p += 1 };
    }
}

/// Namespaces already reported as created (key: `hooks::create::known_key`),
/// to the address of their namespace struct (`struct net`, ..., not its
/// `ns_common`; 0: declared known by user space, struct not seen yet). The
/// hooks compare it to tell a new struct under a reused key; the destroy
/// hooks (`hooks::kernfn`) remove keys; the walks only read the kernel.
#[map]
pub static KNOWN: HashMap<u64, u64> = HashMap::with_max_entries(1 << 18, 0);

/// An unshare/setns call between entry and exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Inflight {
    pub fd: i32,
    pub fd_magic: u32,
    pub flags: u64,
    /// The slots `before` holds (an unshare reads only those its flags
    /// can change); the rest are taken from the set after the call.
    pub slots: u32,
    pub _reserved: u32,
    pub before: [NsRef; TASK_NS_SLOTS],
}

/// In-flight unshare/setns calls by thread id.
#[map]
pub static INFLIGHT: HashMap<u32, Inflight> = HashMap::with_max_entries(16384, 0);

/// Per-CPU staging for an [`Inflight`] value.
#[map]
pub static SCRATCH: PerCpuArray<Inflight> = PerCpuArray::with_max_entries(1, 0);

/// Ring-buffer data that makes a submit wake the reader at once.
const WAKE_BYTES: u64 = 512 * 1024;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;
/// Shortest gap between two submits that may wake the reader: user
/// space's `ring::DRAIN_EVERY`, whose recheck after each drain reads what
/// came in between.
const WAKE_GAP_NS: u64 = 50_000_000;

/// When a submit last asked the kernel to wake the reader.
#[map]
pub static LAST_WAKE: Array<u64> = Array::with_max_entries(1, 0);

/// Submit flags for EVENTS. Waking the reader costs the traced task an
/// interrupt and a wakeup (microseconds), so at most one submit per
/// [`WAKE_GAP_NS`] may wake it, and then only if the reader had caught up
/// (no flag: the kernel wakes it only when this record is the first unread
/// one); the rest are silent and read by the reader's recheck 50 ms after
/// each drain. A quiet ring costs the reader no timer, a lone record is
/// seen at once, and a filling ring wakes it whatever it is doing.
#[inline(always)]
pub fn wakeup_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA) > WAKE_BYTES {
        return BPF_RB_FORCE_WAKEUP;
    }
    let Some(last) = LAST_WAKE.get_ptr_mut(0) else { return 0 };
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    // A race between CPUs at worst lets two submits try to wake it.
    if now.wrapping_sub(unsafe { *last }) < WAKE_GAP_NS {
        return BPF_RB_NO_WAKEUP;
    }
    unsafe { *last = now };
    0
}

/// The namespace set of nstrace itself (seeded by user space, see
/// `hooks::forkgate`): pointers and id/inode per slot. While nstrace runs
/// these namespaces cannot die, so their structs cannot be reused for new
/// ones: a hook that finds one of these pointers in a task's set takes its
/// id and inode from here instead of reading them (most tasks on a host
/// are in the host's namespaces, which are nstrace's).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OwnSet {
    pub ptrs: [u64; TASK_NS_SLOTS],
    pub refs: [NsRef; TASK_NS_SLOTS],
    /// 1 once seeded.
    pub valid: u64,
}

#[map]
pub static OWN_SET: Array<OwnSet> = Array::with_max_entries(1, 0);

/// A task's namespace set, read once per hook: struct pointers (for owner
/// and parent lookups) and id/inode per slot.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TaskNsSet {
    pub ptrs: [u64; TASK_NS_SLOTS],
    /// The previous task's `ptrs` (walk reuse, slot by slot).
    pub prev_ptrs: [u64; TASK_NS_SLOTS],
    pub refs: [NsRef; TASK_NS_SLOTS],
    /// The `nsproxy` the set's pointers came from (walk reuse).
    pub nsproxy: u64,
    /// The last task's `css_set` and its cgroup v2 id (walk reuse).
    pub css_set: u64,
    pub cgroup_id: u64,
    /// The nsproxy as read (see `hooks::task::task_ns_ptrs`).
    pub nsproxy_raw: [u64; 16],
}

/// Per-CPU home of [`TaskNsSet`] (too big for the stack next to a record).
#[map]
pub static TASK_NS_SET: PerCpuArray<TaskNsSet> = PerCpuArray::with_max_entries(1, 0);

/// A mount/move_mount call between entry and exit: its flags and target.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MountInflight {
    pub syscall: u32,
    pub _reserved: u32,
    pub flags: u64,
    pub target: [u8; nstrace_common::event::MOUNT_TARGET],
}

/// In-flight bind mounts by thread id.
#[map]
pub static MOUNT_INFLIGHT: HashMap<u32, MountInflight> = HashMap::with_max_entries(4096, 0);

/// Per-CPU staging for a [`MountInflight`] value.
#[map]
pub static MOUNT_SCRATCH: PerCpuArray<MountInflight> = PerCpuArray::with_max_entries(1, 0);

//! Configuration handed to the eBPF programs as a read-only global.
//!
//! Struct offsets are read from the running kernel's BTF by user space; no
//! offset is compiled in. An offset of [`ABSENT`] means the field does not
//! exist on this kernel.

use crate::ns::NS_TYPES;

/// Marks a field the running kernel does not have.
pub const ABSENT: u32 = u32::MAX;

/// Byte offsets of the kernel fields the programs read.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    // struct task_struct
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_nsproxy: u32,
    pub task_real_cred: u32,
    pub task_thread_pid: u32,
    pub task_tasks: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_flags: u32,
    pub task_signal: u32,
    // struct signal_struct
    pub signal_nr_threads: u32,
    // struct cred
    pub cred_user_ns: u32,
    // struct nsproxy
    pub nsproxy_uts: u32,
    pub nsproxy_ipc: u32,
    pub nsproxy_mnt: u32,
    pub nsproxy_pid_for_children: u32,
    pub nsproxy_net: u32,
    pub nsproxy_time: u32,
    pub nsproxy_time_for_children: u32,
    pub nsproxy_cgroup: u32,
    // struct pid / struct upid
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    pub upid_ns: u32,
    pub upid_nr: u32,
    // struct ns_common
    pub ns_type: u32,
    pub ns_inum: u32,
    pub ns_ref: u32,
    /// `ns_id` (6.18+; [`ABSENT`] before).
    pub ns_id: u32,
    /// The per-type list node: `ns_list_node` (6.18),
    /// `ns_tree_node.ns_list_entry` (6.19+); [`ABSENT`] before.
    pub ns_list_node: u32,
    /// `__ns_ref_active` (6.19+; [`ABSENT`] before): tasks, fds and mounts
    /// using the namespace.
    pub ns_ref_active: u32,
    /// In the 6.18 `struct ns_tree` (one per type, static): the list head
    /// (`ns_list`), the change count of its seqlock
    /// (`ns_tree_lock.seqcount.seqcount.sequence`: +2 per add or remove) and
    /// `type`. [`ABSENT`] on other layouts: no cheap change check there.
    pub ns_tree_list: u32,
    pub ns_tree_seq: u32,
    pub ns_tree_type: u32,
    /// `work_struct.func`: which work item `workqueue_execute_start` runs.
    pub work_func: u32,
    /// Offset of the `struct ns_common ns` member inside each namespace
    /// struct, indexed by [`crate::ns::NsType`].
    pub ns_common_in: [u32; NS_TYPES],
    /// Offset of the owning `struct user_namespace *` inside each namespace
    /// struct (for user namespaces: `parent`), indexed by `NsType`.
    pub owner_in: [u32; NS_TYPES],
    pub pid_ns_parent: u32,
    pub pid_ns_level: u32,
    pub user_ns_parent: u32,
    pub user_ns_level: u32,
    // fd -> superblock magic (to tell an nsfs fd from a pidfd)
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    /// `fdtable.open_fds`: the bitmap the fd walk reads open fds from.
    pub fdtable_open_fds: u32,
    pub file_f_inode: u32,
    /// `inode.i_private`: an nsfs inode's `ns_common`.
    pub inode_i_private: u32,
    pub inode_i_sb: u32,
    pub sb_s_magic: u32,
    /// A socket file's net namespace, for the fd walk's socket holders:
    /// `file.private_data` (the `struct socket`), `socket.sk`,
    /// `sock.__sk_common.skc_net.net`, and `inode.i_ino` (the socket's inode).
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub sock_net: u32,
    pub inode_i_ino: u32,
    // a creator's command line: task_struct.mm, mm_struct.arg_start/arg_end
    pub task_mm: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `nsproxy.count`: 1 at a task's exit means its namespaces lose a reference.
    pub nsproxy_count: u32,
    /// `sizeof(struct nsproxy)`: its pointers are read in one go.
    pub nsproxy_size: u32,
    // a task's cgroup v2 id: task_struct.cgroups -> css_set.dfl_cgrp ->
    // cgroup.kn -> kernfs_node.id
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    // What a namespace is charged to (kernel/ucount.c): task_struct.cred ->
    // cred.euid and cred.ucounts; each namespace struct's `ucounts` ->
    // ucounts.ns, .uid and .ucount[UCOUNT_<TYPE>_NAMESPACES];
    // user_namespace.ucount_max[UCOUNT_<TYPE>_NAMESPACES].
    pub task_cred: u32,
    pub cred_euid: u32,
    pub cred_ucounts: u32,
    pub ucounts_ns: u32,
    pub ucounts_uid: u32,
    /// Offset of the `struct ucounts *ucounts` member inside each namespace
    /// struct, indexed by `NsType`.
    pub ucounts_in: [u32; NS_TYPES],
    /// Offset inside `struct ucounts` of each type's counter (`ucount[i]`,
    /// `i` from BTF's `enum ucount_type`), indexed by `NsType`.
    pub ucount_of: [u32; NS_TYPES],
    /// Offset inside `struct user_namespace` of each type's limit
    /// (`ucount_max[i]`), indexed by `NsType`.
    pub ucount_max_of: [u32; NS_TYPES],
    /// Offset in `struct pt_regs` of a syscall's first argument (x86_64:
    /// `di`): the flags of a refused clone, read at its exit.
    pub pt_regs_arg0: u32,
}

/// Everything the programs need besides offsets.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub offsets: KernelOffsets,
    /// Our own tgid: the programs skip events caused by the tracer itself.
    pub self_tgid: u32,
    /// Bit set of [`config_flags`].
    pub flags: u32,
    /// Offsets in `syscalls:sys_enter_*` records of the first and second
    /// argument (mount's target is the second), and in `sys_exit_*` records
    /// of `ret` (from tracefs formats).
    pub tp_arg0: u32,
    pub tp_arg1: u32,
    pub tp_ret: u32,
    /// Offset of the fourth argument (mount's flags, move_mount's to_pathname).
    pub tp_arg3: u32,
    /// Addresses (from kallsyms) of the work functions that finish a
    /// namespace's death: cleanup_net, free_user_ns,
    /// destroy_pid_namespace_work, free_ipc. 0 where unknown.
    pub destroy_work_fns: [u64; DESTROY_WORK_FNS],
}

/// Number of [`Config::destroy_work_fns`] slots.
pub const DESTROY_WORK_FNS: usize = 4;
/// Their kallsyms names, in slot order.
pub const DESTROY_WORK_FN_NAMES: [&str; DESTROY_WORK_FNS] =
    ["cleanup_net", "free_user_ns", "destroy_pid_namespace_work", "free_ipc"];
/// The namespace type each slot's work function finishes, in slot order.
pub const DESTROY_WORK_FN_TYPES: [crate::ns::NsType; DESTROY_WORK_FNS] =
    [crate::ns::NsType::Net, crate::ns::NsType::User, crate::ns::NsType::Pid, crate::ns::NsType::Ipc];
/// Slot of `cleanup_net`, whose start is hooked too (network namespace teardown).
pub const WORK_CLEANUP_NET: usize = 0;
/// Slots of [`DESTROY_WORK_FN_NAMES`] the task hooks look at.
pub const WORK_FREE_USER_NS: usize = 1;
pub const WORK_DESTROY_PID_NS: usize = 2;

/// The fork gate's count before user space seeded it: every fork is
/// checked while the count is not zero.
pub const GATE_UNKNOWN: u64 = 1 << 40;

/// What a run of the fork gate's seed program does (its first argument).
pub mod fork_gate_op {
    /// Count a task (the second argument, a tid) as pending.
    pub const ADD: u64 = 1;
    /// A task counted in is gone.
    pub const REMOVE: u64 = 2;
    /// Every pending task is counted: drop [`super::GATE_UNKNOWN`] (once).
    pub const OPEN: u64 = 3;
    /// Not the gate's: note the caller's (nstrace's own) namespace set, whose
    /// ids and inodes the hooks then take without reading them.
    pub const SEED_OWN: u64 = 4;
}

pub mod config_flags {
    /// Offsets were filled in; programs do nothing while this is clear.
    pub const READY: u32 = 1 << 0;
    /// The kernel has the per-type namespace lists (6.18+).
    pub const HAS_NS_TREE: u32 = 1 << 1;
    /// Creates are first sightings by the task and syscall hooks (no
    /// constructor hook): a namespace an unshare or clone flag asked for is
    /// new for certain, even under a key `KNOWN` already holds.
    pub const CREATES_FROM_SYSCALLS: u32 = 1 << 2;
    /// Every fork and exec is a record (`trace --event namespaces`, the
    /// perf layout); otherwise only those that change the task's
    /// namespace set are.
    pub const TASK_RECORDS: u32 = 1 << 3;
    /// A destroy hook reports every death: exits need no record (no hint
    /// walks, no `DYING` marks).
    pub const EXACT_DESTROY: u32 = 1 << 4;
}

impl KernelOffsets {
    pub const fn absent() -> Self {
        KernelOffsets {
            task_pid: ABSENT,
            task_tgid: ABSENT,
            task_comm: ABSENT,
            task_nsproxy: ABSENT,
            task_real_cred: ABSENT,
            task_thread_pid: ABSENT,
            task_tasks: ABSENT,
            task_real_parent: ABSENT,
            task_group_leader: ABSENT,
            task_flags: ABSENT,
            task_signal: ABSENT,
            signal_nr_threads: ABSENT,
            cred_user_ns: ABSENT,
            nsproxy_uts: ABSENT,
            nsproxy_ipc: ABSENT,
            nsproxy_mnt: ABSENT,
            nsproxy_pid_for_children: ABSENT,
            nsproxy_net: ABSENT,
            nsproxy_time: ABSENT,
            nsproxy_time_for_children: ABSENT,
            nsproxy_cgroup: ABSENT,
            pid_level: ABSENT,
            pid_numbers: ABSENT,
            upid_size: ABSENT,
            upid_ns: ABSENT,
            upid_nr: ABSENT,
            ns_type: ABSENT,
            ns_inum: ABSENT,
            ns_ref: ABSENT,
            ns_id: ABSENT,
            ns_list_node: ABSENT,
            ns_ref_active: ABSENT,
            ns_common_in: [ABSENT; NS_TYPES],
            owner_in: [ABSENT; NS_TYPES],
            pid_ns_parent: ABSENT,
            pid_ns_level: ABSENT,
            user_ns_parent: ABSENT,
            user_ns_level: ABSENT,
            task_files: ABSENT,
            files_fdt: ABSENT,
            fdtable_max_fds: ABSENT,
            fdtable_fd: ABSENT,
            fdtable_open_fds: ABSENT,
            file_f_inode: ABSENT,
            inode_i_private: ABSENT,
            inode_i_sb: ABSENT,
            sb_s_magic: ABSENT,
            file_private_data: ABSENT,
            socket_sk: ABSENT,
            sock_net: ABSENT,
            inode_i_ino: ABSENT,
            task_mm: ABSENT,
            mm_arg_start: ABSENT,
            mm_arg_end: ABSENT,
            nsproxy_count: ABSENT,
            nsproxy_size: ABSENT,
            task_cgroups: ABSENT,
            css_set_dfl_cgrp: ABSENT,
            cgroup_kn: ABSENT,
            kernfs_node_id: ABSENT,
            task_cred: ABSENT,
            cred_euid: ABSENT,
            cred_ucounts: ABSENT,
            ucounts_ns: ABSENT,
            ucounts_uid: ABSENT,
            ucounts_in: [ABSENT; NS_TYPES],
            ucount_of: [ABSENT; NS_TYPES],
            ucount_max_of: [ABSENT; NS_TYPES],
            pt_regs_arg0: ABSENT,
            ns_tree_list: ABSENT,
            ns_tree_seq: ABSENT,
            ns_tree_type: ABSENT,
            work_func: ABSENT,
        }
    }
}

impl Config {
    pub const fn empty() -> Self {
        Config {
            offsets: KernelOffsets::absent(),
            self_tgid: 0,
            flags: 0,
            tp_arg0: ABSENT,
            tp_arg1: ABSENT,
            tp_ret: ABSENT,
            tp_arg3: ABSENT,
            destroy_work_fns: [0; DESTROY_WORK_FNS],
        }
    }
}

// The u64 array must start 8-byte aligned: no implicit padding.
const _: () = assert!(core::mem::offset_of!(Config, destroy_work_fns) % 8 == 0);

#[cfg(feature = "user")]
// SAFETY: #[repr(C)] plain data with explicit padding and no pointers: any bytes are a valid value.
unsafe impl aya::Pod for Config {}

//! Types shared by the eBPF programs and user space.
//!
//! Everything here is `#[repr(C)]` with explicit widths and no implicit
//! padding, so the same bytes mean the same thing on both sides of the ring
//! buffer. The `user` feature adds decoding, `aya::Pod` impls and serde.
#![no_std]

#[cfg(feature = "user")]
extern crate std;

pub mod config;
pub mod event;
pub mod ns;

#[cfg(feature = "user")]
pub mod decode;

/// Names of maps and programs, shared so the loader never guesses a string.
pub mod names {
    use crate::ns::NsType;

    /// Ring buffer carrying lifecycle and task events.
    pub const EVENTS_MAP: &str = "EVENTS";
    /// Ring buffer carrying tree-walk records (kept apart so a large walk
    /// never makes lifecycle events drop).
    pub const WALK_MAP: &str = "WALK";
    /// Ring buffer of the fd walk's records (it runs beside the task walk).
    pub const WALK_FDS_MAP: &str = "WALK_FDS";
    /// Per-CPU array of ring-buffer reserve failures, indexed by event kind.
    pub const LOST_MAP: &str = "LOST";
    /// Array of walk states (cursor, status, records written), one entry
    /// per walk ([`crate::event::WALK_STATE_NS`] and the others).
    pub const WALK_STATE_MAP: &str = "WALK_STATE";
    /// Hash map of namespaces already reported: [`crate::ns::ns_key`] -> the
    /// address of the namespace's struct (0: user space declared it known
    /// and no hook has seen its struct yet).
    pub const KNOWN_MAP: &str = "KNOWN";
    /// Read-only global holding [`crate::config::Config`].
    pub const CONFIG_GLOBAL: &str = "CONFIG";

    pub const PROG_TASK_NEWTASK: &str = "task_newtask";
    pub const PROG_SCHED_PROCESS_EXEC: &str = "sched_process_exec";
    pub const PROG_SCHED_PROCESS_EXIT: &str = "sched_process_exit";
    pub const PROG_NS_WALK: &str = "ns_walk";
    pub const PROG_TASK_WALK: &str = "task_walk";
    pub const PROG_FD_WALK: &str = "fd_walk";
    /// Reads the per-type lists' change counts into [`TREE_WATCH_MAP`]
    /// (run by user space, never attached).
    pub const PROG_NS_CHANGES: &str = "ns_changes";
    /// One [`crate::event::TreeWatch`]: list heads the walk noted, counts read.
    pub const TREE_WATCH_MAP: &str = "TREE_WATCH";
    /// Seeds and opens the fork gate (run by user space, never attached).
    pub const PROG_FORK_GATE_SEED: &str = "fork_gate_seed";
    /// The fork gate's count (see the eBPF crate's `hooks::forkgate`).
    pub const FORK_GATE_MAP: &str = "FORK_GATE";
    pub const PROG_WORKQUEUE_EXECUTE_END: &str = "workqueue_execute_end";
    pub const PROG_WORKQUEUE_EXECUTE_START: &str = "workqueue_execute_start";
    pub const PROG_SYS_ENTER_UNSHARE: &str = "sys_enter_unshare";
    pub const PROG_SYS_EXIT_UNSHARE: &str = "sys_exit_unshare";
    pub const PROG_SYS_ENTER_SETNS: &str = "sys_enter_setns";
    pub const PROG_SYS_EXIT_SETNS: &str = "sys_exit_setns";
    pub const PROG_SYS_EXIT_CLONE: &str = "sys_exit_clone";
    pub const PROG_SYS_EXIT_CLONE3: &str = "sys_exit_clone3";
    pub const PROG_SYS_ENTER_MOUNT: &str = "sys_enter_mount";
    pub const PROG_SYS_EXIT_MOUNT: &str = "sys_exit_mount";
    pub const PROG_SYS_ENTER_MOVE_MOUNT: &str = "sys_enter_move_mount";
    pub const PROG_SYS_EXIT_MOVE_MOUNT: &str = "sys_exit_move_mount";

    /// A tracepoint a program attaches to: its tracefs category and event
    /// name. Raw tracepoints attach by the name alone; the category says
    /// where tracefs lists it (`events/<category>/<name>`), which is what
    /// `nstrace doctor` checks.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Tracepoint {
        pub program: &'static str,
        pub category: &'static str,
        pub name: &'static str,
    }

    /// Raw tracepoints of the task family (fork, exec, exit).
    pub const TASK_TRACEPOINTS: [Tracepoint; 3] = [
        Tracepoint { program: PROG_TASK_NEWTASK, category: "task", name: "task_newtask" },
        Tracepoint { program: PROG_SCHED_PROCESS_EXEC, category: "sched", name: "sched_process_exec" },
        Tracepoint { program: PROG_SCHED_PROCESS_EXIT, category: "sched", name: "sched_process_exit" },
    ];
    /// Syscall tracepoints of the unshare/setns family, and of clone/clone3
    /// for the creations they refuse (ENOSPC, EUSERS).
    pub const SYSCALL_TRACEPOINTS: [Tracepoint; 6] = [
        Tracepoint { program: PROG_SYS_ENTER_UNSHARE, category: "syscalls", name: "sys_enter_unshare" },
        Tracepoint { program: PROG_SYS_EXIT_UNSHARE, category: "syscalls", name: "sys_exit_unshare" },
        Tracepoint { program: PROG_SYS_ENTER_SETNS, category: "syscalls", name: "sys_enter_setns" },
        Tracepoint { program: PROG_SYS_EXIT_SETNS, category: "syscalls", name: "sys_exit_setns" },
        Tracepoint { program: PROG_SYS_EXIT_CLONE, category: "syscalls", name: "sys_exit_clone" },
        Tracepoint { program: PROG_SYS_EXIT_CLONE3, category: "syscalls", name: "sys_exit_clone3" },
    ];
    /// Syscall tracepoints of bind mounts (who pins a namespace).
    pub const MOUNT_TRACEPOINTS: [Tracepoint; 4] = [
        Tracepoint { program: PROG_SYS_ENTER_MOUNT, category: "syscalls", name: "sys_enter_mount" },
        Tracepoint { program: PROG_SYS_EXIT_MOUNT, category: "syscalls", name: "sys_exit_mount" },
        Tracepoint { program: PROG_SYS_ENTER_MOVE_MOUNT, category: "syscalls", name: "sys_enter_move_mount" },
        Tracepoint { program: PROG_SYS_EXIT_MOVE_MOUNT, category: "syscalls", name: "sys_exit_move_mount" },
    ];
    /// Raw tracepoint of the destroy hint (a namespace-destroying work item
    /// ran); attached only when kallsyms names such a work function.
    pub const DESTROY_HINT_TRACEPOINT: Tracepoint =
        Tracepoint { program: PROG_WORKQUEUE_EXECUTE_END, category: "workqueue", name: "workqueue_execute_end" };
    /// Raw tracepoint of a `cleanup_net` run's start (network namespace
    /// teardown); attached only when kallsyms names `cleanup_net`.
    pub const CLEANUP_START_TRACEPOINT: Tracepoint =
        Tracepoint { program: PROG_WORKQUEUE_EXECUTE_START, category: "workqueue", name: "workqueue_execute_start" };
    /// Every tracepoint nstrace attaches to, and nothing else.
    pub const TRACEPOINTS: [Tracepoint; 15] = [
        TASK_TRACEPOINTS[0],
        TASK_TRACEPOINTS[1],
        TASK_TRACEPOINTS[2],
        SYSCALL_TRACEPOINTS[0],
        SYSCALL_TRACEPOINTS[1],
        SYSCALL_TRACEPOINTS[2],
        SYSCALL_TRACEPOINTS[3],
        SYSCALL_TRACEPOINTS[4],
        SYSCALL_TRACEPOINTS[5],
        MOUNT_TRACEPOINTS[0],
        MOUNT_TRACEPOINTS[1],
        MOUNT_TRACEPOINTS[2],
        MOUNT_TRACEPOINTS[3],
        DESTROY_HINT_TRACEPOINT,
        CLEANUP_START_TRACEPOINT,
    ];

    // Kernel-function hooks (fentry/fexit where BPF_PROG_TYPE_TRACING
    // loads, kprobes elsewhere); each is loaded only when selected.
    pub const PROG_FEXIT_NS_TREE_ADD: &str = "fexit_ns_tree_add";
    pub const PROG_FENTRY_NS_TREE_REMOVE: &str = "fentry_ns_tree_remove";
    pub const PROG_FENTRY_FREE_INUM: &str = "fentry_free_inum";
    pub const PROG_KPROBE_FREE_INUM: &str = "kprobe_free_inum";
    pub const PROG_FEXIT_CREATE_USER_NS: &str = "fexit_create_user_ns";
    pub const PROG_FEXIT_COPY_MNT_NS: &str = "fexit_copy_mnt_ns";
    pub const PROG_KRETPROBE_COPY_MNT_NS: &str = "kretprobe_copy_mnt_ns";
    /// A per-type namespace constructor the kernel-function mechanisms hook:
    /// the kernel function, its fexit and kretprobe programs, and the type
    /// of namespace it makes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Constructor {
        pub function: &'static str,
        pub fexit: &'static str,
        pub kretprobe: &'static str,
        pub ns_type: NsType,
    }

    const fn constructor(
        function: &'static str,
        fexit: &'static str,
        kretprobe: &'static str,
        ns_type: NsType,
    ) -> Constructor {
        Constructor { function, fexit, kretprobe, ns_type }
    }

    /// Every per-type constructor (user namespaces have none of this shape:
    /// `create_user_ns` is hooked by fexit alone, [`PROG_FEXIT_CREATE_USER_NS`]).
    pub const CONSTRUCTORS: [Constructor; 7] = [
        constructor("copy_net_ns", "fexit_copy_net_ns", "kretprobe_copy_net_ns", NsType::Net),
        constructor("copy_utsname", "fexit_copy_utsname", "kretprobe_copy_utsname", NsType::Uts),
        constructor("copy_ipcs", "fexit_copy_ipcs", "kretprobe_copy_ipcs", NsType::Ipc),
        constructor("copy_pid_ns", "fexit_copy_pid_ns", "kretprobe_copy_pid_ns", NsType::Pid),
        constructor("copy_cgroup_ns", "fexit_copy_cgroup_ns", "kretprobe_copy_cgroup_ns", NsType::Cgroup),
        constructor("copy_time_ns", "fexit_copy_time_ns", "kretprobe_copy_time_ns", NsType::Time),
        constructor("copy_mnt_ns", PROG_FEXIT_COPY_MNT_NS, PROG_KRETPROBE_COPY_MNT_NS, NsType::Mnt),
    ];
}

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
    /// Ring buffer carrying lifecycle and task events.
    pub const EVENTS_MAP: &str = "EVENTS";
    /// Ring buffer carrying tree-walk records (kept apart so a large walk
    /// never makes lifecycle events drop).
    pub const WALK_MAP: &str = "WALK";
    /// Per-CPU array of ring-buffer reserve failures, indexed by event kind.
    pub const LOST_MAP: &str = "LOST";
    /// Walk cursor and status, one entry.
    pub const WALK_STATE_MAP: &str = "WALK_STATE";
    /// Hash map of namespaces already reported (ns_id -> 1).
    pub const KNOWN_MAP: &str = "KNOWN";
    /// In-flight unshare/setns calls, by thread id.
    pub const INFLIGHT_MAP: &str = "INFLIGHT";
    /// Read-only global holding [`crate::config::Config`].
    pub const CONFIG_GLOBAL: &str = "CONFIG";

    pub const PROG_TASK_NEWTASK: &str = "task_newtask";
    pub const PROG_SCHED_PROCESS_EXEC: &str = "sched_process_exec";
    pub const PROG_SCHED_PROCESS_EXIT: &str = "sched_process_exit";
    pub const PROG_NS_WALK: &str = "ns_walk";
    pub const PROG_TASK_WALK: &str = "task_walk";
    pub const PROG_WORKQUEUE_EXECUTE_END: &str = "workqueue_execute_end";
    pub const PROG_SYS_ENTER_UNSHARE: &str = "sys_enter_unshare";
    pub const PROG_SYS_EXIT_UNSHARE: &str = "sys_exit_unshare";
    pub const PROG_SYS_ENTER_SETNS: &str = "sys_enter_setns";
    pub const PROG_SYS_EXIT_SETNS: &str = "sys_exit_setns";
}

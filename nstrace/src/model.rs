//! The data model shared by snapshots, holders and renderers.

use nstrace_common::ns::NsType;
use serde::Serialize;

/// How a task holds a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum TaskHold {
    /// The task lives in it (`/proc/PID/ns/<type>`).
    Member,
    /// Only as `pid_for_children` (the task called unshare(CLONE_NEWPID) and
    /// has not forked yet).
    PidForChildren,
    /// Only as `time_for_children`.
    TimeForChildren,
}

/// One thing that keeps a namespace alive, as seen from /proc.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Holder {
    /// A process (thread group) whose tasks use the namespace.
    Task { pid: u32, comm: String, hold: TaskHold },
    /// An open nsfs file descriptor.
    Fd { pid: u32, fd: i32, comm: String },
    /// An nsfs bind mount.
    Mount {
        /// Mount point as seen inside the mount namespace that has it.
        path: String,
        /// Inode of the mount namespace the mount lives in.
        mnt_ns: u64,
        /// A process inside that mount namespace (its /proc/PID/root reaches the path).
        via_pid: u32,
    },
}

/// Identity of a live namespace: type plus nsfs inode. Inodes are reused
/// after a namespace dies, so a key is only meaningful at one moment; the
/// kernel's `ns_id` (6.18+) is the never-reused identity where known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NsKey {
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub inode: u64,
}

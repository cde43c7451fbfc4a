//! Before 6.18 namespaces have no ids, and a dead one's inode is soon
//! reused. While a mount or an fd pins a namespace, its nsfs inode (and so
//! the inode's change time, set when the kernel made it) stays the same;
//! a new namespace with the reused number gets a new one. `serve` keeps
//! that time so a restart never hands a dead namespace's provenance to a
//! new one.

use std::os::unix::fs::MetadataExt;

use crate::model::{Holder, Namespace};

/// The change time (ns since the epoch) of `ns`'s nsfs inode, read through
/// a pinning fd or mount; None when nothing pins it.
pub fn of(ns: &Namespace) -> Option<i64> {
    ns.row.holders.iter().find_map(|h| {
        let path = match h {
            Holder::Fd { pid, fd, .. } => format!("/proc/{pid}/fd/{fd}"),
            Holder::Mount { path, via_pid, .. } => format!("/proc/{via_pid}/root{path}"),
            Holder::Task { .. } | Holder::Socket { .. } => return None,
        };
        let m = std::fs::metadata(path).ok()?;
        (m.ino() == ns.row.inode).then(|| m.ctime() * 1_000_000_000 + m.ctime_nsec())
    })
}

//! What the commands need from /proc beyond the holder scan, read before
//! the views render so that they only read data: the reader's own
//! namespaces, which namespace a path or process names, and for `why` and
//! `leaks` ([`HolderFacts`]) the holders' pids in their own pid namespaces,
//! zombie parents, command lines and the sockets that pin net namespaces.
//! `ls -o`'s lsns columns have theirs in [`lsns`].
//!
//! Reads /proc/self/ns/*, /proc/PID/{status,stat,cmdline,comm,ns/*}, the
//! namespace files `why` is given, /run/netns and, through [`sockets`],
//! every process's socket fds. Writes nothing.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt,
};

use nstrace_common::ns::NsType;

use crate::{
    model::{Holder, NsRow, PidInNs},
    procfs::{
        holders,
        sockets::{self, SocketHolder},
    },
};

pub mod lsns;

/// The inode of the namespace of type `t` this process is in
/// (`/proc/self/ns/<type>`); None when it cannot be read.
pub fn own_ns(t: NsType) -> Option<u64> {
    std::fs::metadata(format!("/proc/self/ns/{}", t.name())).map(|m| m.ino()).ok()
}

/// Whether `ip netns` has a namespace named `name` (`/run/netns/NAME`).
pub fn ip_netns_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/run/netns/{name}")).exists()
}

/// Why a path names no namespace.
#[derive(Debug, thiserror::Error)]
pub enum NsFileError {
    #[error("no such file")]
    Stat(#[source] std::io::Error),
    #[error("cannot be opened")]
    Open(#[source] std::io::Error),
    #[error("not a namespace file (nsfs)")]
    NotNsfs,
}

/// The namespace a namespace file (`/proc/PID/ns/TYPE`, a bind mount, an
/// nsfs fd's link) refers to: its type and inode.
pub fn ns_file(path: &str) -> Result<(NsType, u64), NsFileError> {
    let ino = std::fs::metadata(path).map_err(NsFileError::Stat)?.ino();
    let fd = super::nsfs::open(std::path::Path::new(path)).map_err(NsFileError::Open)?;
    let ty = super::nsfs::ns_type(&fd).map_err(|_| NsFileError::NotNsfs)?;
    Ok((ty, ino))
}

/// The (type, inode) of each namespace process `pid` is in (lsns -p);
/// None when there is no such process.
pub fn namespaces_of(pid: u32) -> Option<Vec<(NsType, u64)>> {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    Some(
        NsType::ALL
            .into_iter()
            .filter_map(|t| Some((t, std::fs::metadata(format!("/proc/{pid}/ns/{}", t.name())).ok()?.ino())))
            .collect(),
    )
}

/// The member processes of `rows`' pid namespaces other than ours, with
/// their pids as their own pid namespaces see them: only those processes
/// need /proc/PID/status read.
pub fn pids_in_other_pid_ns(rows: &[&NsRow]) -> foldhash::HashMap<u32, PidInNs> {
    let own = own_ns(NsType::Pid).unwrap_or(0);
    rows.iter()
        .filter(|r| r.ns_type == NsType::Pid && r.inode != own)
        .flat_map(|r| lsns::member_pids(r))
        .filter_map(|pid| Some((pid, holders::pid_in_own_ns(pid)?)))
        .collect()
}

/// A process's command as /proc has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// Its arguments (`/proc/PID/cmdline`): empty for a kernel thread,
    /// None when unreadable.
    pub args: Option<Vec<String>>,
    /// Its comm (`/proc/PID/comm`, as read), read only when it has no
    /// arguments to show.
    pub comm: Option<String>,
}

impl Command {
    pub fn read(pid: u32) -> Command {
        let args = holders::cmdline(pid).ok();
        let comm = match &args {
            Some(a) if !a.is_empty() => None,
            _ => std::fs::read_to_string(format!("/proc/{pid}/comm")).ok(),
        };
        Command { args, comm }
    }
}

/// What /proc says of a task holder beyond the scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskFacts {
    /// Its pid as its own pid namespace sees it, when that is not ours.
    pub in_pid_ns: Option<PidInNs>,
    /// A zombie's parent, which has not reaped it.
    pub unreaped_by: Option<u32>,
}

/// What `why` and `leaks` need from /proc about the holders of the
/// namespaces they explain.
#[derive(Clone, Debug, Default)]
pub struct HolderFacts {
    /// The reader's mount namespace (inode): a bind mount there is a path
    /// the reader can use.
    pub own_mnt_ns: Option<u64>,
    /// The sockets that pin the explained net namespaces no task is in, by
    /// namespace inode.
    pub sockets: HashMap<u64, Vec<SocketHolder>>,
    /// Of each task holder, by pid.
    pub tasks: HashMap<u32, TaskFacts>,
    /// Of each fd and socket holder, by pid.
    pub commands: HashMap<u32, Command>,
}

impl HolderFacts {
    /// Reads what explaining `explained` takes. The /proc socket scan (not
    /// free, and on 6.19+ it makes an inactive namespace active while it
    /// looks) only when one of them is a net namespace no task is in and
    /// the kernel's fd walk has not already found its sockets
    /// (`sockets_walked`: they are among the rows' holders).
    pub fn gather(explained: &[&NsRow], sockets_walked: bool) -> HolderFacts {
        let taskless_net: HashSet<u64> = explained
            .iter()
            .filter(|r| !sockets_walked && r.ns_type == NsType::Net && r.tasks == 0)
            .map(|r| r.inode)
            .collect();
        let sockets = sockets::holders_of(&taskless_net);
        let mut tasks = HashMap::new();
        let mut commands = HashMap::new();
        for h in explained.iter().flat_map(|r| r.holders.iter()) {
            match h {
                Holder::Task { pid, .. } => {
                    tasks.entry(*pid).or_insert_with(|| TaskFacts {
                        in_pid_ns: holders::pid_in_own_ns(*pid),
                        unreaped_by: holders::zombie_parent(*pid),
                    });
                }
                Holder::Fd { pid, .. } | Holder::Socket { pid, .. } => {
                    commands.entry(*pid).or_insert_with(|| Command::read(*pid));
                }
                Holder::Mount { .. } => {}
            }
        }
        for s in sockets.values().flatten() {
            commands.entry(s.pid).or_insert_with(|| Command::read(s.pid));
        }
        HolderFacts { own_mnt_ns: own_ns(NsType::Mnt), sockets, tasks, commands }
    }
}

#[cfg(test)]
mod tests;

//! What lsns's columns (`nstrace ls -o ...`) need from /proc, read before
//! the listing is written and only for the columns asked for: which
//! process describes each namespace, NPROCS, the processes' parent, uid
//! and command, user names, and what an opened namespace says (its owner's
//! uid through nsfs ioctls, its NETNSID through rtnetlink).
//!
//! Reads /proc/self/ns/*, /proc/PID/{stat,cmdline,ns/*,fd/*}, nsfs bind
//! mounts and /etc/passwd; sends RTM_GETNSID. Writes nothing.

use std::{
    collections::{HashMap, HashSet},
    os::{fd::AsFd, unix::fs::MetadataExt},
};

use nstrace_common::ns::NsType;

use super::own_ns;
use crate::{
    model::{Holder, NsRow, TaskHold},
    procfs::{
        netnsid::{Netlink, NetnsId},
        nsfs,
    },
};

/// A namespace: its type and inode.
pub type NsId = (NsType, u64);

/// What /proc says of the process lsns names for a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcFacts {
    pub ppid: Option<u32>,
    pub uid: Option<u32>,
    /// Its command line, or (a kernel thread has none) its comm.
    pub command: Option<String>,
}

/// What an lsns-style listing shows from /proc; each part is filled by the
/// method of the same purpose, and empty until then.
#[derive(Clone, Debug, Default)]
pub struct LsnsFacts {
    /// The reader's mount namespace (0: unknown): NSFS paths are seen from it.
    pub own_mnt_ns: u64,
    /// The namespaces the reader is in (inodes): lsns counts itself in its own.
    pub own: Vec<u64>,
    /// Whether /proc/PID/ns of a process can be read (lsns counts only
    /// those); access is per process, so one link of it is checked.
    pub reachable: HashMap<u32, bool>,
    /// The process lsns describes each namespace through.
    pub lowest: HashMap<NsId, u32>,
    /// NPROCS of each namespace, as lsns counts it.
    pub nprocs: HashMap<NsId, usize>,
    pub procs: HashMap<u32, ProcFacts>,
    /// User names by uid.
    pub users: HashMap<u32, String>,
    /// NS_GET_OWNER_UID: of a user namespace itself, or of the one that
    /// owns a namespace of another type.
    pub owner_uids: HashMap<NsId, u32>,
    /// NETNSID of each net namespace (by inode) that could be opened.
    pub netnsids: HashMap<u64, NetnsId>,
}

/// The processes lsns counts for a namespace: those whose
/// `/proc/PID/ns/<type>` is it (not pid_for_children, not a thread alone).
pub fn member_pids(row: &NsRow) -> Vec<u32> {
    let mut pids: Vec<u32> = row
        .holders
        .iter()
        .filter_map(|h| match h {
            Holder::Task { pid, tid: None, hold: TaskHold::Member, .. } => Some(*pid),
            _ => None,
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn id(row: &NsRow) -> NsId {
    (row.ns_type, row.inode)
}

impl LsnsFacts {
    /// The reader's own namespaces.
    pub fn read_own(&mut self) {
        self.own_mnt_ns = own_ns(NsType::Mnt).unwrap_or(0);
        self.own = NsType::ALL.iter().filter_map(|t| own_ns(*t)).collect();
    }

    fn reach(&mut self, pid: u32, ty: NsType) -> bool {
        *self.reachable.entry(pid).or_insert_with(|| std::fs::metadata(format!("/proc/{pid}/ns/{}", ty.name())).is_ok())
    }

    /// The process each of `rows` is described through: its lowest member
    /// whose `/proc/PID/ns/<type>` can be reached (as lsns, which sees only
    /// those; some sandboxes hide pid 1's even from root, and a PATH that
    /// cannot be opened is of no use), else its lowest member.
    pub fn find_lowest(&mut self, rows: &[&NsRow]) {
        for row in rows {
            let members = member_pids(row);
            let reachable = members.iter().copied().find(|&p| self.reach(p, row.ns_type));
            if let Some(p) = reachable.or(members.first().copied()) {
                self.lowest.insert(id(row), p);
            }
        }
    }

    /// NPROCS of each of `rows` as lsns counts it: the members whose
    /// /proc/PID/ns links can be read (a sandbox can hide pid 1's even from
    /// root; the kernel walk still finds it), and the listing process
    /// itself in the namespaces it is in (lsns counts itself; nstrace
    /// leaves itself out of holders). Needs [`Self::read_own`] first.
    pub fn count_members(&mut self, rows: &[&NsRow]) {
        let me = std::process::id();
        for row in rows {
            let seen =
                member_pids(row).into_iter().filter(|&p| p != me).filter(|&p| self.reach(p, row.ns_type)).count();
            self.nprocs.insert(id(row), seen + usize::from(self.own.contains(&row.inode)));
        }
    }

    /// Parent, uid and command of each of `pids`.
    pub fn read_procs(&mut self, pids: impl IntoIterator<Item = u32>) {
        for pid in pids {
            self.procs.entry(pid).or_insert_with(|| read_proc(pid));
        }
    }

    /// User names by uid, from /etc/passwd.
    pub fn read_users(&mut self) {
        let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        self.users = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
            })
            .collect();
    }

    /// Opens each line's namespace (through the line's process first) and
    /// reads its owner's uid and, for a net namespace, its NETNSID, as
    /// asked. Needs [`Self::read_own`] first (bind mounts are tried too).
    pub fn open_namespaces<'r>(
        &mut self,
        lines: impl IntoIterator<Item = (&'r NsRow, Option<u32>)>,
        owner_uid: bool,
        netnsid: bool,
    ) {
        let mut netlink: Option<Option<Netlink>> = None;
        let mut done: HashSet<NsId> = HashSet::new();
        for (row, pid) in lines {
            if !done.insert(id(row)) {
                continue;
            }
            let Some(file) = open_ns(row, pid, self.own_mnt_ns) else { continue };
            if owner_uid {
                let uid = if row.ns_type == NsType::User {
                    nsfs::owner_uid(&file).ok()
                } else {
                    nsfs::owner(&file).ok().flatten().and_then(|user| nsfs::owner_uid(user).ok())
                };
                if let Some(uid) = uid {
                    self.owner_uids.insert(id(row), uid);
                }
            }
            if netnsid && row.ns_type == NsType::Net {
                let socket = netlink.get_or_insert_with(|| Netlink::open().ok());
                if let Some(nsid) = socket.as_ref().and_then(|s| s.nsid(file.as_fd()).ok()) {
                    self.netnsids.insert(row.inode, nsid);
                }
            }
        }
    }
}

fn read_proc(pid: u32) -> ProcFacts {
    let dir = format!("/proc/{pid}");
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok();
    let ppid = stat.as_deref().and_then(|s| s[s.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok());
    let uid = std::fs::metadata(&dir).ok().map(|m| m.uid());
    let cmdline = std::fs::read(format!("{dir}/cmdline")).ok().map(|b| {
        let args: Vec<String> =
            b.split(|&c| c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        args.join(" ")
    });
    // Kernel threads have no command line: lsns shows their comm.
    let command = cmdline.filter(|c| !c.is_empty()).or_else(|| {
        let s = stat.as_deref()?;
        Some(s[s.find('(')? + 1..s.rfind(')')?].to_string())
    });
    ProcFacts { ppid, uid, command }
}

/// The namespace opened through process `pid`, else any holder that
/// opens: a member, a task holding it for its children, an fd, a bind
/// mount in mount namespace `own_mnt_ns` (some sandboxes hide /proc/1/ns
/// even from root).
fn open_ns(row: &NsRow, pid: Option<u32>, own_mnt_ns: u64) -> Option<std::fs::File> {
    let ty = row.ns_type.name();
    let holders = row.holders.iter().filter_map(|h| match h {
        Holder::Task { pid, hold: TaskHold::PidForChildren, .. } => Some(format!("/proc/{pid}/ns/pid_for_children")),
        Holder::Task { pid, hold: TaskHold::TimeForChildren, .. } => Some(format!("/proc/{pid}/ns/time_for_children")),
        Holder::Task { pid, .. } => Some(format!("/proc/{pid}/ns/{ty}")),
        Holder::Fd { pid, fd, .. } => Some(format!("/proc/{pid}/fd/{fd}")),
        // A socket's /proc link opens the socket, not its namespace.
        Holder::Mount { .. } | Holder::Socket { .. } => None,
    });
    let mut mounts: Vec<&str> = row
        .holders
        .iter()
        .filter_map(|h| match h {
            Holder::Mount { path, mnt_ns, .. } if *mnt_ns == own_mnt_ns => Some(path.as_str()),
            _ => None,
        })
        .collect();
    mounts.dedup();
    let paths = pid
        .map(|p| format!("/proc/{p}/ns/{ty}"))
        .into_iter()
        .chain(holders)
        .chain(mounts.into_iter().map(str::to_string));
    // The inode is checked: a pid or fd may have been reused since.
    paths
        .into_iter()
        .filter_map(|p| std::fs::File::open(p).ok())
        .find(|f| nsfs::inode(f).is_ok_and(|ino| ino == row.inode))
}

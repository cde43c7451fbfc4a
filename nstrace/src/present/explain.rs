//! Why a namespace is alive: every holder, including the kernel references
//! /proc does not show (owned namespaces, sockets). What to do about each
//! is [`crate::present::advice`]. Shared by `nstrace leaks` and `nstrace why`.
//!
//! Reads the rows and what /proc said of their holders before
//! ([`HolderFacts`], gathered by the caller); does no I/O.

use std::collections::HashMap;

use nstrace_common::ns::NsType;
use serde::Serialize;

use crate::{
    model::{Holder, PidInNs, TaskHold},
    model::{NsRow, NsState},
    procfs::{
        facts::{Command, HolderFacts},
        sockets::SocketHolder,
    },
};

/// A namespace another one keeps alive through its owner/parent link.
#[derive(Clone, Debug, Serialize)]
pub struct Dependent {
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub inode: u64,
    pub state: NsState,
}

/// How to enter a mount namespace no task is in: a file that refers to it
/// (`nsenter --mount=PATH`), and what that file is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MntNsEntry {
    /// "/proc/70/fd/4", or a bind mount of the namespace in ours.
    pub path: String,
    /// "fd 4 of process 70", "the bind mount at /x".
    pub held_by: String,
}

/// One reason a namespace is alive.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    Task {
        pid: u32,
        /// A thread of the process, where only it (not its leader) holds it.
        #[serde(skip_serializing_if = "Option::is_none")]
        tid: Option<u32>,
        comm: String,
        hold: TaskHold,
        /// Its pid as its own pid namespace sees it, when that is not ours
        /// (a container's process: pid 30445 here is pid 1 there).
        #[serde(skip_serializing_if = "Option::is_none")]
        in_pid_ns: Option<PidInNs>,
        /// A zombie: the parent that has not reaped it (until it does, the
        /// zombie holds its pid and user namespaces).
        #[serde(skip_serializing_if = "Option::is_none")]
        unreaped_by: Option<u32>,
    },
    Fd {
        pid: u32,
        fd: i32,
        comm: String,
        cmdline: String,
    },
    Mount {
        path: String,
        mnt_ns: u64,
        /// A process in that mount namespace; 0 when no task is in it.
        via_pid: u32,
        #[serde(flatten)]
        stack: crate::model::MountStack,
        netns_name: Option<String>,
        /// For a mount namespace no task is in: what holds it, and how to
        /// enter it.
        #[serde(skip_serializing_if = "Option::is_none")]
        mnt_ns_entry: Option<MntNsEntry>,
    },
    Socket {
        pid: u32,
        fd: i32,
        comm: String,
        cmdline: String,
        socket: u64,
    },
    /// It owns (user ns) or parents (pid/user ns) namespaces that are alive.
    Owner {
        dependents: Vec<Dependent>,
    },
    /// Nothing nstrace can see holds it.
    KernelReference {
        hint: String,
    },
    /// No reference is left: the kernel is tearing it down (a network
    /// namespace queued for or inside `cleanup_net`).
    Teardown {
        stage: crate::model::TeardownStage,
        /// When it started dying.
        since: crate::time::UnixTime,
    },
}

impl Reason {
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Task { .. } => "task",
            Reason::Fd { .. } => "fd",
            Reason::Mount { .. } => "mount",
            Reason::Socket { .. } => "socket",
            Reason::Owner { .. } => "owner",
            Reason::KernelReference { .. } => "kernel-reference",
            Reason::Teardown { .. } => "teardown",
        }
    }

    /// A process that is in the namespace (not one holding it for children).
    pub fn is_member(&self) -> bool {
        matches!(self, Reason::Task { hold: TaskHold::Member, .. })
    }

    /// A zombie process in it (exited, its parent has not reaped it).
    pub fn is_zombie(&self) -> bool {
        matches!(self, Reason::Task { unreaped_by: Some(_), .. })
    }

    /// A short description of the holder.
    pub fn describe(&self) -> String {
        crate::present::escape::text(&self.describe_raw()).into_owned()
    }

    /// [`Self::describe`] before escaping.
    fn describe_raw(&self) -> String {
        match self {
            Reason::Task { pid, tid, comm, hold, in_pid_ns, unreaped_by } => {
                let mut there =
                    in_pid_ns.map(|p| format!("; {} in pid namespace {}", p.pid, p.pid_ns)).unwrap_or_default();
                if let Some(parent) = unreaped_by {
                    there += &format!("; a zombie its parent {parent} has not reaped");
                }
                let who = match tid {
                    Some(tid) => format!("thread {tid} of process {pid} ({comm}{there})"),
                    None => format!("process {pid} ({comm}{there})"),
                };
                match hold {
                    TaskHold::Member => format!("{who} is in it"),
                    TaskHold::PidForChildren => format!("{who} holds it as pid_for_children"),
                    TaskHold::TimeForChildren => format!("{who} holds it as time_for_children"),
                }
            }
            Reason::Fd { pid, fd, comm, cmdline } => format!("open fd {fd} of process {pid} ({comm}: {cmdline})"),
            Reason::Mount { path, mnt_ns, via_pid, stack, netns_name, mnt_ns_entry } => {
                let name = netns_name.as_ref().map(|n| format!(" (ip netns {n})")).unwrap_or_default();
                let stacked = match stack.stacked {
                    0 | 1 => String::new(),
                    n => format!(", {n} mounts stacked there"),
                };
                let peers = stack.peer_group.map(|g| format!(", shared peer group {g}")).unwrap_or_default();
                // Pid 2 (kthreadd) is in the initial mount namespace on every host.
                let which = match (via_pid, mnt_ns_entry) {
                    (2, _) => "the initial one".to_string(),
                    (0, Some(e)) => format!("which no task is in, held by {}", e.held_by),
                    (0, None) => "which no task is in".to_string(),
                    (pid, _) => format!("where pid {pid} is"),
                };
                format!("bind mount at {path}{name} in mount namespace {mnt_ns} ({which}{stacked}{peers})")
            }
            Reason::Socket { pid, fd, comm, cmdline, socket } => {
                format!("socket {socket} (fd {fd} of process {pid}, {comm}: {cmdline}) belongs to it")
            }
            Reason::Owner { dependents } => {
                let list: Vec<String> = dependents
                    .iter()
                    .map(|d| format!("{} {} [{}]", d.ns_type.name(), d.inode, d.state.name()))
                    .collect();
                format!("the live namespaces it owns or parents: {}", list.join(", "))
            }
            Reason::KernelReference { hint } => format!("kernel reference: {hint} ({CHECKED})"),
            Reason::Teardown { stage, since } => {
                let since = crate::present::render::clock_time(*since);
                match stage {
                    crate::model::TeardownStage::Queued => format!(
                        "nothing: no reference left since {since}; queued for the kernel's cleanup_net worker, \
                         which has not taken it yet (one run at a time: a run stuck on a device stalls every \
                         namespace queued behind it)"
                    ),
                    crate::model::TeardownStage::Cleanup => format!(
                        "nothing: no reference left since {since}; the kernel's cleanup_net worker is tearing it \
                         down (its devices, sockets and routes; a device whose references never drop stalls it)"
                    ),
                }
            }
        }
    }
}

/// What was ruled out before a kernel reference is named.
const CHECKED: &str = "no task, thread, nsfs fd, bind mount in any mount namespace, socket or owned namespace holds it";

fn kernel_hint(t: NsType) -> &'static str {
    match t {
        NsType::Net => {
            "sockets (including ones whose fd lives in a process of another net namespace), netlink or \
             tunnel devices, or a pending cleanup_net work item"
        }
        NsType::User => "credentials of files or keyrings opened in it, or owned namespaces",
        NsType::Pid => "struct pid references (pidfds, SCM_CREDENTIALS in flight) or zombie tasks",
        NsType::Mnt => "mounts propagated elsewhere or an open fd on a file inside it",
        _ => "an in-kernel reference (e.g. an nsproxy being torn down)",
    }
}

/// [`kernel_hint`], with what the kernel's active count (6.19+) adds: 0
/// confirms that no task, fd or mount uses it; more means users nstrace did
/// not find.
fn kernel_hint_for(row: &NsRow) -> String {
    let hint = kernel_hint(row.ns_type);
    match row.active_refs {
        Some(0) => format!("{hint}; the kernel's own count of tasks, fds, mounts and child namespaces using it is 0"),
        Some(n) => format!(
            "{hint}; but the kernel counts {n} active user(s) (tasks, fds, mounts or child namespaces) nstrace did not \
             find"
        ),
        None => hint.to_string(),
    }
}

/// Every reason each of `rows` is alive, keyed by (type, inode).
pub struct Explainer<'a> {
    rows: &'a [&'a NsRow],
    /// Gathered for the rows [`Self::reasons`] is asked about.
    facts: &'a HolderFacts,
    dependents: HashMap<u64, Vec<Dependent>>,
}

impl<'a> Explainer<'a> {
    /// Prepares reasons among `rows` (every row: owners, dependents and
    /// mount namespaces are looked up there), with `facts` gathered for the
    /// rows to explain.
    pub fn new(rows: &'a [&'a NsRow], facts: &'a HolderFacts) -> Explainer<'a> {
        let mut dependents: HashMap<u64, Vec<Dependent>> = HashMap::new();
        for r in rows {
            for up in [r.owner, if matches!(r.ns_type, NsType::Pid) { r.parent } else { None }].into_iter().flatten() {
                dependents.entry(up).or_default().push(Dependent {
                    ns_type: r.ns_type,
                    inode: r.inode,
                    state: r.state,
                });
            }
        }
        Explainer { rows, facts, dependents }
    }

    pub fn rows(&self) -> &'a [&'a NsRow] {
        self.rows
    }

    /// How to enter mount namespace `inode`: through an fd that holds it,
    /// else a bind mount of it in our own mount namespace.
    fn entry_of(&self, inode: u64) -> Option<MntNsEntry> {
        let row = self.rows.iter().find(|r| r.ns_type == NsType::Mnt && r.inode == inode)?;
        let own = self.facts.own_mnt_ns;
        let fd = row.holders.iter().find_map(|h| match h {
            Holder::Fd { pid, fd, .. } => {
                Some(MntNsEntry { path: format!("/proc/{pid}/fd/{fd}"), held_by: format!("fd {fd} of process {pid}") })
            }
            _ => None,
        });
        fd.or_else(|| {
            row.holders.iter().find_map(|h| match h {
                Holder::Mount { path, mnt_ns, .. } if Some(*mnt_ns) == own => {
                    Some(MntNsEntry { path: path.clone(), held_by: format!("the bind mount at {path}") })
                }
                _ => None,
            })
        })
    }

    pub fn reasons(&self, row: &NsRow) -> Vec<Reason> {
        // What held it is gone: its teardown is the one thing left.
        if let Some(d) = &row.dying {
            return vec![Reason::Teardown { stage: d.stage, since: d.since }];
        }
        let mut out = Vec::new();
        for h in &row.holders {
            out.push(match h {
                Holder::Task { pid, tid, comm, hold } => {
                    let facts = self.facts.tasks.get(pid).copied().unwrap_or_default();
                    Reason::Task {
                        pid: *pid,
                        tid: *tid,
                        comm: comm.to_string(),
                        hold: *hold,
                        in_pid_ns: facts.in_pid_ns,
                        unreaped_by: facts.unreaped_by,
                    }
                }
                Holder::Fd { pid, fd, comm } => {
                    Reason::Fd { pid: *pid, fd: *fd, comm: comm.to_string(), cmdline: self.cmdline(*pid) }
                }
                Holder::Socket { pid, fd, comm, socket } => Reason::Socket {
                    pid: *pid,
                    fd: *fd,
                    comm: comm.to_string(),
                    cmdline: self.cmdline(*pid),
                    socket: *socket,
                },
                Holder::Mount { path, mnt_ns, via_pid, stack } => Reason::Mount {
                    path: path.clone(),
                    mnt_ns: *mnt_ns,
                    via_pid: *via_pid,
                    stack: *stack,
                    netns_name: path
                        .strip_prefix("/run/netns/")
                        .filter(|_| row.ns_type == NsType::Net && *via_pid != 0)
                        .map(str::to_string),
                    mnt_ns_entry: if *via_pid == 0 { self.entry_of(*mnt_ns) } else { None },
                },
            });
        }
        if row.ns_type == NsType::Net {
            let walked = |s: &SocketHolder| {
                row.holders.iter().any(|h| matches!(h, Holder::Socket { pid, fd, .. } if *pid == s.pid && *fd == s.fd))
            };
            for s in self.facts.sockets.get(&row.inode).into_iter().flatten().filter(|s| !walked(s)) {
                out.push(Reason::Socket {
                    pid: s.pid,
                    fd: s.fd,
                    comm: s.comm.clone(),
                    cmdline: self.cmdline(s.pid),
                    socket: s.socket,
                });
            }
        }
        if matches!(row.ns_type, NsType::User | NsType::Pid)
            && let Some(d) = self.dependents.get(&row.inode)
        {
            out.push(Reason::Owner { dependents: d.clone() });
        }
        if out.is_empty() {
            out.push(Reason::KernelReference { hint: kernel_hint_for(row) });
        }
        out
    }

    /// A process's command line, or its comm in brackets.
    fn cmdline(&self, pid: u32) -> String {
        shown_cmdline(self.facts.commands.get(&pid))
    }
}

/// The arguments, or (kernel threads have none) the comm in brackets, as
/// ps does; "?" when neither could be read.
fn shown_cmdline(command: Option<&Command>) -> String {
    match command {
        Some(Command { args: Some(args), .. }) if !args.is_empty() => args.join(" "),
        _ => command.and_then(|c| c.comm.as_deref()).map(|c| format!("[{}]", c.trim())).unwrap_or_else(|| "?".into()),
    }
}

#[cfg(test)]
mod tests;

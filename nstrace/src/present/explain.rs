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
    procfs::facts::{Command, HolderFacts},
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
            Reason::Mount { path, mnt_ns, via_pid, netns_name, mnt_ns_entry } => {
                let name = netns_name.as_ref().map(|n| format!(" (ip netns {n})")).unwrap_or_default();
                // Pid 2 (kthreadd) is in the initial mount namespace on every host.
                let which = match (via_pid, mnt_ns_entry) {
                    (2, _) => "the initial one".to_string(),
                    (0, Some(e)) => format!("which no task is in, held by {}", e.held_by),
                    (0, None) => "which no task is in".to_string(),
                    (pid, _) => format!("where pid {pid} is"),
                };
                format!("bind mount at {path}{name} in mount namespace {mnt_ns} ({which})")
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
        Some(0) => format!("{hint}; the kernel's own count of tasks, fds and mounts using it is 0"),
        Some(n) => {
            format!("{hint}; but the kernel counts {n} active user(s) (tasks, fds or mounts) nstrace did not find")
        }
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
                Holder::Mount { path, mnt_ns, via_pid } => Reason::Mount {
                    path: path.clone(),
                    mnt_ns: *mnt_ns,
                    via_pid: *via_pid,
                    netns_name: path
                        .strip_prefix("/run/netns/")
                        .filter(|_| row.ns_type == NsType::Net && *via_pid != 0)
                        .map(str::to_string),
                    mnt_ns_entry: if *via_pid == 0 { self.entry_of(*mnt_ns) } else { None },
                },
            });
        }
        if row.ns_type == NsType::Net {
            for s in self.facts.sockets.get(&row.inode).into_iter().flatten() {
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
mod tests {
    use super::*;
    use crate::procfs::{facts::TaskFacts, sockets::SocketHolder};

    fn mount(mnt_ns: u64, netns_name: Option<&str>) -> Reason {
        Reason::Mount {
            path: "/run/netns/x".into(),
            mnt_ns,
            via_pid: 42,
            netns_name: netns_name.map(Into::into),
            mnt_ns_entry: None,
        }
    }

    #[test]
    fn descriptions_name_the_holder() {
        let fd = Reason::Fd { pid: 7, fd: 5, comm: "py".into(), cmdline: "python3 r.py".into() };
        assert_eq!(fd.describe(), "open fd 5 of process 7 (py: python3 r.py)");
        let pfc = Reason::Task {
            pid: 3,
            comm: "unshare".into(),
            hold: TaskHold::PidForChildren,
            tid: None,
            in_pid_ns: None,
            unreaped_by: None,
        };
        assert_eq!(pfc.describe(), "process 3 (unshare) holds it as pid_for_children");
        let tfc = Reason::Task {
            pid: 3,
            comm: "unshare".into(),
            hold: TaskHold::TimeForChildren,
            tid: None,
            in_pid_ns: None,
            unreaped_by: None,
        };
        assert_eq!(tfc.describe(), "process 3 (unshare) holds it as time_for_children");
        let member = Reason::Task {
            pid: 3,
            comm: "sh".into(),
            hold: TaskHold::Member,
            tid: None,
            in_pid_ns: None,
            unreaped_by: None,
        };
        assert_eq!(member.describe(), "process 3 (sh) is in it");
        let thread = Reason::Task {
            pid: 3,
            tid: Some(5),
            comm: "cni".into(),
            hold: TaskHold::Member,
            in_pid_ns: None,
            unreaped_by: None,
        };
        assert_eq!(thread.describe(), "thread 5 of process 3 (cni) is in it");
        let thread = Reason::Task {
            pid: 3,
            tid: Some(5),
            comm: "cni".into(),
            hold: TaskHold::PidForChildren,
            in_pid_ns: None,
            unreaped_by: None,
        };
        assert_eq!(thread.describe(), "thread 5 of process 3 (cni) holds it as pid_for_children");
        let contained = Reason::Task {
            pid: 30445,
            tid: None,
            comm: "sh".into(),
            hold: TaskHold::Member,
            in_pid_ns: Some(PidInNs { pid: 1, pid_ns: 4026532181 }),
            unreaped_by: None,
        };
        assert_eq!(contained.describe(), "process 30445 (sh; 1 in pid namespace 4026532181) is in it");
        let zombie = Reason::Task {
            pid: 30446,
            tid: None,
            comm: "init".into(),
            hold: TaskHold::Member,
            in_pid_ns: Some(PidInNs { pid: 1, pid_ns: 4026532182 }),
            unreaped_by: Some(30400),
        };
        assert_eq!(
            zombie.describe(),
            "process 30446 (init; 1 in pid namespace 4026532182; a zombie its parent 30400 has not reaped) is in it"
        );
        // A zombie is still a member (lsns counts it), but why advises on its parent.
        assert!(zombie.is_zombie() && zombie.is_member() && !member.is_zombie() && !contained.is_zombie());
        assert!(member.is_member() && !pfc.is_member() && !tfc.is_member() && !fd.is_member());
        assert_eq!(
            mount(2, Some("x")).describe(),
            "bind mount at /run/netns/x (ip netns x) in mount namespace 2 (where pid 42 is)"
        );
        let host = Reason::Mount { path: "/m".into(), mnt_ns: 3, via_pid: 2, netns_name: None, mnt_ns_entry: None };
        assert_eq!(host.describe(), "bind mount at /m in mount namespace 3 (the initial one)");
        let fd = Some(MntNsEntry { path: "/proc/70/fd/4".into(), held_by: "fd 4 of process 70".into() });
        let taskless = Reason::Mount { path: "/m".into(), mnt_ns: 3, via_pid: 0, netns_name: None, mnt_ns_entry: fd };
        assert_eq!(
            taskless.describe(),
            "bind mount at /m in mount namespace 3 (which no task is in, held by fd 4 of process 70)"
        );
        let unheld = Reason::Mount { path: "/m".into(), mnt_ns: 3, via_pid: 0, netns_name: None, mnt_ns_entry: None };
        assert_eq!(unheld.describe(), "bind mount at /m in mount namespace 3 (which no task is in)");
        let dep = Dependent { ns_type: NsType::Net, inode: 10, state: NsState::Mounted };
        assert_eq!(
            Reason::Owner { dependents: vec![dep] }.describe(),
            "the live namespaces it owns or parents: net 10 [mounted]"
        );
        assert_eq!(
            Reason::KernelReference { hint: "h".into() }.describe(),
            "kernel reference: h (no task, thread, nsfs fd, bind mount in any mount namespace, socket or owned \
             namespace holds it)"
        );
    }

    #[test]
    fn a_mount_in_a_taskless_mount_namespace_names_what_holds_it() {
        let own = 4026531841;
        let facts = HolderFacts { own_mnt_ns: Some(own), ..HolderFacts::default() };
        let mount = |path: &str, mnt_ns, via_pid| Holder::Mount { path: path.into(), mnt_ns, via_pid };
        let fd = Holder::Fd { pid: 70, fd: 4, comm: "py".into() };
        let net = |inode, mnt_ns| NsRow {
            holders: vec![mount("/run/netns/x", mnt_ns, 0)].into(),
            ..NsRow::new(NsType::Net, inode)
        };
        let by_fd = NsRow { holders: vec![mount("/elsewhere", own, 1), fd].into(), ..NsRow::new(NsType::Mnt, 5) };
        let by_mount = NsRow { holders: vec![mount("/x", own, 1)].into(), ..NsRow::new(NsType::Mnt, 6) };
        let foreign = NsRow { holders: vec![mount("/y", own + 1, 9)].into(), ..NsRow::new(NsType::Mnt, 7) };
        let (n5, n6, n7, n8) = (net(10, 5), net(11, 6), net(12, 7), net(13, 99));
        let rows = [&n5, &n6, &n7, &n8, &by_fd, &by_mount, &foreign];
        let e = Explainer::new(&rows, &facts);
        let entry = |row: &NsRow| match &e.reasons(row)[0] {
            Reason::Mount { mnt_ns_entry, netns_name, .. } => {
                assert_eq!(*netns_name, None, "not an `ip netns` name: no task sees that path");
                mnt_ns_entry.clone()
            }
            other => panic!("{other:?}"),
        };
        let fd_entry = MntNsEntry { path: "/proc/70/fd/4".into(), held_by: "fd 4 of process 70".into() };
        assert_eq!(entry(&n5), Some(fd_entry), "an fd first");
        assert_eq!(entry(&n6), Some(MntNsEntry { path: "/x".into(), held_by: "the bind mount at /x".into() }));
        assert_eq!(entry(&n7), None, "a bind mount in another mount namespace is not a path here");
        assert_eq!(entry(&n8), None, "an unlisted mount namespace");
        // A mount a task's mount namespace has: named, no entry needed.
        let tasked = NsRow { holders: vec![mount("/run/netns/x", 5, 42)].into(), ..NsRow::new(NsType::Net, 14) };
        let rows = [&tasked, &by_fd];
        let e = Explainer::new(&rows, &facts);
        let Reason::Mount { mnt_ns_entry, netns_name, .. } = &e.reasons(&tasked)[0] else { panic!() };
        assert_eq!((mnt_ns_entry.clone(), netns_name.as_deref()), (None, Some("x")));
    }

    #[test]
    fn reasons_from_holders_ownership_and_kernel_hints() {
        let mut user = NsRow::new(NsType::User, 100);
        user.state = NsState::Orphaned;
        let mut net = NsRow::new(NsType::Net, 10);
        net.owner = Some(100);
        net.state = NsState::Mounted;
        net.tasks = 1;
        net.holders = vec![Holder::Mount { path: "/run/netns/x".into(), mnt_ns: 1, via_pid: 1 }].into();
        let mut uts = NsRow::new(NsType::Uts, 11);
        uts.holders = vec![Holder::Mount { path: "/run/netns/y".into(), mnt_ns: 1, via_pid: 1 }].into();
        let (pid, mnt) = (NsRow::new(NsType::Pid, 12), NsRow::new(NsType::Mnt, 13));
        let rows = [&user, &net, &uts, &pid, &mnt];
        let facts = HolderFacts::default();
        let e = Explainer::new(&rows, &facts);
        assert_eq!(e.rows().len(), 5);
        let r = e.reasons(&user);
        assert_eq!(r.len(), 1);
        let Reason::Owner { dependents } = &r[0] else { panic!("{r:?}") };
        assert_eq!((dependents[0].ns_type, dependents[0].inode), (NsType::Net, 10));
        // A /run/netns mount names the ip netns only for a net namespace.
        let Reason::Mount { netns_name, .. } = &e.reasons(&net)[0] else { panic!() };
        assert_eq!(netns_name.as_deref(), Some("x"));
        let Reason::Mount { netns_name, .. } = &e.reasons(&uts)[0] else { panic!() };
        assert_eq!(netns_name, &None);
        for (row, word) in
            [(&pid, "struct pid"), (&mnt, "mounts propagated"), (&NsRow::new(NsType::Ipc, 14), "nsproxy")]
        {
            let r = e.reasons(row);
            let Reason::KernelReference { hint } = &r[0] else { panic!("{r:?}") };
            assert!(hint.contains(word), "{:?}: {hint}", row.ns_type);
        }
        assert!(kernel_hint(NsType::Net).contains("cleanup_net"));
        assert!(kernel_hint(NsType::User).contains("keyrings"));
    }

    #[test]
    fn the_kernels_active_count_confirms_or_contradicts_a_kernel_reference() {
        let row = |active| NsRow { active_refs: active, ..NsRow::new(NsType::Ipc, 20) };
        let (unknown, zero, two) = (row(None), row(Some(0)), row(Some(2)));
        let rows = [&unknown, &zero, &two];
        let facts = HolderFacts::default();
        let e = Explainer::new(&rows, &facts);
        let hint = |r: &NsRow| match &e.reasons(r)[0] {
            Reason::KernelReference { hint } => hint.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(hint(&unknown), kernel_hint(NsType::Ipc));
        assert!(hint(&zero).ends_with("using it is 0"), "{}", hint(&zero));
        assert!(hint(&two).contains("counts 2 active user(s)"), "{}", hint(&two));
    }

    #[test]
    fn kernel_threads_show_their_comm_in_brackets() {
        let command = |args: Option<Vec<&str>>, comm: Option<&str>| Command {
            args: args.map(|a| a.into_iter().map(String::from).collect()),
            comm: comm.map(String::from),
        };
        let kthreadd = Some("kthreadd\n");
        assert_eq!(shown_cmdline(Some(&command(Some(vec![]), kthreadd))), "[kthreadd]");
        assert_eq!(shown_cmdline(Some(&command(None, kthreadd))), "[kthreadd]", "unreadable cmdline");
        assert_eq!(shown_cmdline(Some(&command(Some(vec!["ip", "netns"]), None))), "ip netns");
        assert_eq!(shown_cmdline(Some(&command(None, None))), "?");
        assert_eq!(shown_cmdline(None), "?", "no such process");
    }

    #[test]
    fn holders_are_described_with_what_proc_said_of_them() {
        let task = Holder::Task { pid: 30445, tid: None, comm: "sh".into(), hold: TaskHold::Member };
        let fd = Holder::Fd { pid: 7, fd: 5, comm: "py".into() };
        let row = NsRow { holders: vec![task, fd].into(), ..NsRow::new(NsType::Uts, 10) };
        let in_pid_ns = Some(PidInNs { pid: 1, pid_ns: 4026532181 });
        let facts = HolderFacts {
            tasks: HashMap::from([(30445, TaskFacts { in_pid_ns, unreaped_by: Some(30400) })]),
            commands: HashMap::from([(7, Command { args: Some(vec!["python3".into(), "r.py".into()]), comm: None })]),
            ..HolderFacts::default()
        };
        let rows = [&row];
        let r = Explainer::new(&rows, &facts).reasons(&row);
        assert!(matches!(r[0], Reason::Task { in_pid_ns: Some(_), unreaped_by: Some(30400), .. }), "{r:?}");
        assert_eq!(r[1].describe(), "open fd 5 of process 7 (py: python3 r.py)");
    }

    #[test]
    fn sockets_pin_only_net_namespaces() {
        // A net and a uts namespace with the same inode number (types are
        // separate inode spaces): the socket scan's answer is about the net one.
        let (net, uts) = (NsRow::new(NsType::Net, 10), NsRow::new(NsType::Uts, 10));
        let rows = [&net, &uts];
        let holder = SocketHolder { pid: 4242, fd: 3, comm: "nstrace".into(), socket: 77 };
        let facts = HolderFacts { sockets: HashMap::from([(10, vec![holder])]), ..HolderFacts::default() };
        let e = Explainer::new(&rows, &facts);
        let r = e.reasons(&net);
        assert!(matches!(r[0], Reason::Socket { fd: 3, socket: 77, .. }), "{r:?}");
        let r = e.reasons(&uts);
        assert!(matches!(r[0], Reason::KernelReference { .. }), "{r:?}");
    }
}

//! Every holder of every namespace, discovered from /proc in one pass.
//!
//! Speed matters (this runs where lsns would): `readlinkat` on an O_PATH
//! fd of `/proc/PID/ns` instead of open+fstat, `getdents64` into reused
//! buffers, `/proc/PID/stat` for comm+ppid+thread count in one read,
//! mountinfo once per mount namespace, and the pid list split over cores.
//! What remains is kernel time: path lookup and ptrace checks per link.
//!
//! Exactness beyond lsns: lsns reads only `/proc/PID/ns`, but a thread can
//! `unshare`/`setns` on its own, so processes with more than one thread have
//! their threads' links read too. An nsfs fd opened through a bind-mount
//! path reads as that path (or `/` once the mount is gone), not `net:[…]`:
//! such links are checked against the nsfs mounts found, then stat'ed.
//! Mounts in a mount namespace no task is in come from listmount(2) and
//! statmount(2) (6.11+) where an fd of that namespace gives its id.
//! With the kernel's walks (6.18+, see `kernel.rs`), the task list gives
//! every process's namespaces and cgroup id, the fd walk every nsfs fd and
//! socket of another netns: /proc is read only for threads, mounts and one
//! cgroup file per cgroup. Blind spots: fds of a thread with its own fd
//! table (CLONE_FILES; only the leader's is read); mounts in a mount
//! namespace no task is in, before 6.11 or held by nothing we can open; a
//! `pid_for_children` namespace before its first process
//! ([`HolderScan::unborn_pid_ns`]).

use foldhash::{HashMap, HashMapExt, HashSet};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nstrace_common::ns::{NsType, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN, TASK_NS_SLOTS};

use crate::model::{Comm, Holder, MountStack, NsKey, TaskHold};
use crate::timings::Phases;

pub use kernel::KernelView;

/// Cheap per-process facts kept for container attribution and display.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcInfo {
    pub ppid: u32,
    pub comm: String,
    /// The cgroup v2 path (`0::<path>`), else the first hierarchy's path.
    pub cgroup: String,
    pub threads: u32,
    pub kernel_thread: bool,
}

/// Result of [`scan`].
#[derive(Debug, Default)]
pub struct HolderScan {
    /// Holders per namespace; tasks and fds in pid order, then mounts.
    pub holders: HashMap<NsKey, Vec<Holder>>,
    pub processes: HashMap<u32, ProcInfo>,
    /// `ip netns` names (mount points `/run/netns/<name>`) by net ns inode.
    pub netns_names: HashMap<u64, Vec<String>>,
    /// Namespaces held by some process only through a non-leader thread:
    /// a tid whose `/proc/TID/ns/<name>` opens it (the tgid's would not).
    pub thread_tids: HashMap<NsKey, u32>,
    /// Mount namespace inode -> the task whose mountinfo was read for it.
    pub mount_ns_via: HashMap<u64, u32>,
    /// Processes whose `pid_for_children` exists but has no process yet
    /// (after unshare(CLONE_NEWPID), before fork): the kernel refuses to
    /// name it, so its inode is unknown.
    pub unborn_pid_ns: Vec<u32>,
    /// Tasks that could not be read for lack of permission.
    pub denied: Vec<u32>,
    /// The kernel's fd walk read every socket's netns: socket holders are
    /// among `holders` (none need be opened with SIOCGSKNS to find them).
    pub sockets_walked: bool,
    /// Fds whose link is a path: an nsfs file opened through a bind mount
    /// reads so (see `path_fds`); resolved, then emptied, by the scan.
    path_fds: Vec<PathFd>,
    /// How long each phase of the scan took.
    pub phases: Vec<(&'static str, std::time::Duration)>,
}

/// An fd whose link reads as a path: (pid, fd, comm, link).
type PathFd = (u32, i32, Comm, Box<[u8]>);

/// What the kernel's task list says of a process: its `stat` facts, its
/// leader's namespace set (inodes by slot) and its cgroup v2 id (0: unknown).
#[derive(Clone, Debug)]
struct Known {
    stat: Stat,
    slots: [Option<u64>; TASK_NS_SLOTS],
    cgroup_id: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HoldersError {
    #[error("cannot open {path}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot list {path}")]
    List { path: PathBuf, source: io::Error },
}

/// Adds a holder. Most namespaces have one holder: a first push allocates
/// room for exactly one (a plain push reserves four, which at 100,000
/// namespaces is megabytes of a scan's peak).
fn push_holder(holders: &mut HashMap<NsKey, Vec<Holder>>, key: NsKey, h: Holder) {
    let list = holders.entry(key).or_default();
    if list.capacity() == 0 {
        list.reserve_exact(1);
    }
    list.push(h);
}

/// Scans every process except `exclude` (e.g. our own pid, whose scan fds
/// would otherwise show up).
pub fn scan_excluding(exclude: &[u32]) -> Result<HolderScan, HoldersError> {
    scan_with(exclude, None, &HashMap::new())
}

/// Like [`scan_excluding`], but with every process's namespace set already
/// known from the kernel's task list: the per-process namespace links are
/// not read (they are most of the cost), only mounts, one cgroup file per
/// cgroup, the fds when the fd walk did not run, and the threads of
/// multi-threaded processes (a thread may `setns` on its own: Go's
/// `netns.Do`), whose links are compared with their leader's.
pub fn scan_with_kernel(exclude: &[u32], view: KernelView<'_>) -> Result<HolderScan, HoldersError> {
    scan_with(exclude, Some(view), view.mnt_ids)
}

fn scan_with(
    exclude: &[u32],
    view: Option<KernelView<'_>>,
    mnt_ids: &HashMap<u64, u64>,
) -> Result<HolderScan, HoldersError> {
    let tasks = view.map(|v| v.tasks);
    let kernel_fds = view.and_then(|v| v.fds);
    let proc_fd = sys::open_at(None, c"/proc", libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|source| HoldersError::Open { path: "/proc".into(), source })?;
    let known: Option<HashMap<u32, Known>> = tasks.map(kernel::known);
    let mut phases = Phases::start();
    let mut scan = match &known {
        // The kernel's task list names every process: /proc is read only
        // where it adds something (threads; fds without the fd walk).
        Some(known) => {
            let mut scan = HolderScan::default();
            let pids = kernel::pids_to_read(known, exclude, kernel_fds.is_some(), &mut scan);
            scan.merge(scan_pids(proc_fd.as_fd(), &pids, Some(known), kernel_fds.is_some()));
            phases.mark("threads (/proc)");
            kernel::add_tasks(&mut scan, tasks.unwrap_or_default(), exclude);
            phases.mark("tasks");
            kernel::add_cgroups(proc_fd.as_fd(), &mut scan, known);
            phases.mark("cgroups");
            if let Some(fds) = kernel_fds {
                kernel::add_fds(&mut scan, fds, known, exclude);
                scan.sockets_walked = view.is_some_and(|v| v.sockets);
                phases.mark("fds");
            }
            scan
        }
        None => {
            let pids = list_pids(proc_fd.as_fd(), exclude)?;
            let scan = scan_pids(proc_fd.as_fd(), &pids, None, false);
            phases.mark("tasks and fds (/proc)");
            scan
        }
    };
    read_mounts(proc_fd.as_fd(), &mut scan);
    listmount::read_taskless_mounts(proc_fd.as_fd(), &mut scan, mnt_ids);
    path_fds::resolve(proc_fd.as_fd(), &mut scan);
    phases.mark("mounts");
    scan.phases = phases.into_list();
    Ok(scan)
}

/// Every pid in /proc but `exclude`.
fn list_pids(proc_fd: BorrowedFd<'_>, exclude: &[u32]) -> Result<Vec<u32>, HoldersError> {
    let mut pids = Vec::with_capacity(1024);
    let mut dents = Vec::with_capacity(DENTS_BUF);
    sys::for_each_dirent(proc_fd, &mut dents, |name| {
        if let Some(pid) = parse_u32(name.to_bytes())
            && !exclude.contains(&pid)
        {
            pids.push(pid);
        }
    })
    .map_err(|source| HoldersError::List { path: "/proc".into(), source })?;
    Ok(pids)
}

/// The arguments of a process (`/proc/PID/cmdline`), lossily decoded;
/// empty for kernel threads. Kept out of [`scan`] because few callers need it.
pub fn cmdline(pid: u32) -> io::Result<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    Ok(raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
}

/// Process `pid`'s pid as its own pid namespace sees it, and that
/// namespace's inode, when it is not our pid namespace (the last field of
/// `NSpid:` in /proc/PID/status differs from the first).
pub fn pid_in_own_ns(pid: u32) -> Option<crate::model::PidInNs> {
    use std::os::unix::fs::MetadataExt;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let own = nspid_innermost(&status)?;
    if own == pid {
        return None;
    }
    let pid_ns = std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok()?.ino();
    Some(crate::model::PidInNs { pid: own, pid_ns })
}

/// The parent of process `pid` when `pid` is a zombie (exited, not yet
/// reaped: it still holds its pid and user namespaces until the parent
/// waits for it).
pub fn zombie_parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    if parse::stat_state(&stat)? != b'Z' {
        return None;
    }
    parse::parse_stat(&stat).map(|s| s.ppid)
}

/// The innermost pid of a /proc/PID/status text's `NSpid:` line.
fn nspid_innermost(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

const DENTS_BUF: usize = 32 * 1024;
/// Pids per unit of work handed to a scanning thread.
const CHUNK: usize = 128;
const PF_KTHREAD: u64 = 0x0020_0000;

/// Name in `/proc/PID/ns/` per task slot, in nstrace-common's slot order.
const SLOT_LINKS: [&CStr; TASK_NS_SLOTS] =
    [c"net", c"uts", c"ipc", c"pid", c"user", c"mnt", c"cgroup", c"time", c"pid_for_children", c"time_for_children"];

/// Slots that can differ between threads of one process. The active pid,
/// user and time namespaces are per process (setns/unshare of user and
/// setns of time require a single-threaded caller; a task's active pid ns
/// never changes), so only the leader's are read.
const THREAD_SLOTS: [usize; 7] = [0, 1, 2, 5, 6, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN];

/// A task's holds: (namespace, how, inode) per slot; "for children" only
/// where it differs from the task's own namespace of that type.
fn slot_holds(slots: &[Option<u64>; TASK_NS_SLOTS]) -> impl Iterator<Item = (NsKey, TaskHold, u64)> + '_ {
    slots.iter().enumerate().filter_map(|(i, ino)| {
        let ino = (*ino)?;
        let own = match i {
            SLOT_PID_FOR_CHILDREN => slots[NsType::Pid as usize],
            SLOT_TIME_FOR_CHILDREN => slots[NsType::Time as usize],
            _ => None,
        };
        if own == Some(ino) {
            return None;
        }
        let (key, hold) = slot_key(i, ino);
        Some((key, hold, ino))
    })
}

fn slot_key(slot: usize, inode: u64) -> (NsKey, TaskHold) {
    let (ns_type, hold) = match slot {
        SLOT_PID_FOR_CHILDREN => (NsType::Pid, TaskHold::PidForChildren),
        SLOT_TIME_FOR_CHILDREN => (NsType::Time, TaskHold::TimeForChildren),
        s => (NsType::ALL[s], TaskHold::Member),
    };
    (NsKey::new(ns_type, inode), hold)
}

/// Splits the pid list into chunks claimed by up to one thread per core;
/// chunk results are merged in pid order so output is deterministic.
/// `known`: per-process facts from the kernel's task list; when given, the
/// namespace links and `stat` files are not read.
/// `fds_known`: the fd walk found every nsfs fd, so `fd` directories are
/// not listed.
fn scan_pids(
    proc_fd: BorrowedFd<'_>,
    pids: &[u32],
    known: Option<&HashMap<u32, Known>>,
    fds_known: bool,
) -> HolderScan {
    let chunks: Vec<&[u32]> = pids.chunks(CHUNK).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.len()).min(8);
    if threads <= 1 {
        let mut w = Worker::new(proc_fd, known, fds_known);
        pids.iter().for_each(|&p| w.scan_process(p));
        return w.out;
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<HolderScan>>> = Mutex::new((0..chunks.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut w = Worker::new(proc_fd, known, fds_known);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { break };
                    chunk.iter().for_each(|&p| w.scan_process(p));
                    let done = std::mem::take(&mut w.out);
                    // A poisoned lock means another worker panicked; the
                    // scope re-raises that panic anyway.
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(done);
                    }
                }
            });
        }
    });
    let mut all = HolderScan::default();
    for part in results.into_inner().unwrap_or_default().into_iter().flatten() {
        all.merge(part);
    }
    all
}

impl HolderScan {
    /// Appends a later chunk's results (first writer wins for the
    /// one-representative maps).
    fn merge(&mut self, other: HolderScan) {
        for (k, v) in other.holders {
            self.holders.entry(k).or_default().extend(v);
        }
        self.processes.extend(other.processes);
        for (k, v) in other.thread_tids {
            self.thread_tids.entry(k).or_insert(v);
        }
        for (k, v) in other.mount_ns_via {
            self.mount_ns_via.entry(k).or_insert(v);
        }
        self.unborn_pid_ns.extend(other.unborn_pid_ns);
        self.denied.extend(other.denied);
        self.path_fds.extend(other.path_fds);
    }
}

/// Per-thread scanning state; buffers are reused across processes.
struct Worker<'a> {
    proc_fd: BorrowedFd<'a>,
    file: Vec<u8>,
    dents: Vec<u8>,
    tids: Vec<u32>,
    link: [u8; 128],
    /// Task holds already recorded for the current process.
    added: Vec<(NsKey, TaskHold)>,
    current_pid: u32,
    /// Facts from the kernel's task list: when present, namespace links and
    /// `stat` are not read.
    known: Option<&'a HashMap<u32, Known>>,
    /// The fd walk ran: `fd` directories are not read.
    fds_known: bool,
    out: HolderScan,
}

/// The slots a zombie still has links for (`/proc/PID/ns/{pid,user}`).
const ZOMBIE_SLOTS: [usize; 2] = [NsType::Pid as usize, NsType::User as usize];

fn is_denied(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

impl<'a> Worker<'a> {
    fn new(proc_fd: BorrowedFd<'a>, known: Option<&'a HashMap<u32, Known>>, fds_known: bool) -> Self {
        Worker {
            known,
            fds_known,
            proc_fd,
            file: Vec::with_capacity(4096),
            dents: Vec::with_capacity(DENTS_BUF),
            tids: Vec::new(),
            link: [0; 128],
            added: Vec::new(),
            current_pid: 0,
            out: HolderScan::default(),
        }
    }

    /// Any failure means the process vanished (ENOENT/ESRCH) or is out of
    /// reach; it is skipped, denials are recorded.
    fn scan_process(&mut self, pid: u32) {
        if let Err(e) = self.try_scan_process(pid)
            && is_denied(&e)
        {
            self.out.denied.push(pid);
        }
    }

    // Paths are looked up from the /proc fd ("PID/stat") and the links from
    // an O_PATH fd on "PID/ns": path walking and pid_revalidate of each
    // component dominate kernel time, so every link is a one-component
    // lookup.
    fn try_scan_process(&mut self, pid: u32) -> io::Result<()> {
        self.current_pid = pid;
        let proc_fd = self.proc_fd;
        let at = |name: &[u8]| {
            let mut p = CPath::new();
            p.num(pid).push(name);
            p
        };
        // The kernel's task list already gave comm, ppid, flags, threads and
        // the leader's namespaces.
        let known = self.known.and_then(|k| k.get(&pid));
        let stat = match known {
            Some(k) => k.stat.clone(),
            None => {
                sys::read_small(proc_fd, at(b"/stat").as_cstr(), &mut self.file)?;
                let Some(stat) = parse_stat(&self.file) else {
                    return Ok(());
                };
                stat
            }
        };
        let comm: Comm = stat.comm.as_str().into();
        // With a cgroup id, one process per cgroup is read (`kernel::add_cgroups`).
        let cgroup = match known.is_some_and(|k| k.cgroup_id != 0) {
            true => String::new(),
            false => read_cgroup(proc_fd, pid, &mut self.file),
        };

        // The leader's links. Failure on the first means a zombie (or gone)
        // leader: its threads may still be alive, so go on to them.
        self.added.clear();
        let all: [usize; TASK_NS_SLOTS] = std::array::from_fn(|i| i);
        let links = if self.known.is_none() {
            self.read_links(at(b"/ns").as_cstr(), &all)
        } else {
            Err(io::Error::other("skipped"))
        };
        let leader = match (links, known) {
            (Ok(slots), _) => {
                self.add_slots(pid, &comm, &slots, None);
                Some(slots)
            }
            // The kernel gave the leader's set (added as holders later, by
            // `add_kernel_tasks`): threads count only where they differ.
            (Err(_), Some(k)) => {
                self.note_slots(&k.slots);
                Some(k.slots)
            }
            (Err(e), None) => {
                if is_denied(&e) {
                    self.out.denied.push(pid);
                } else if let Ok(slots) = self.read_links(at(b"/ns").as_cstr(), &ZOMBIE_SLOTS) {
                    // A zombie: no nsproxy, but its struct pid and cred
                    // still hold its pid and user namespaces (lsns counts
                    // it, and an unreaped pid-namespace init is a leak).
                    self.add_slots(pid, &comm, &slots, None);
                }
                None
            }
        };
        if stat.threads > 1 {
            self.scan_threads(pid, at(b"/task").as_cstr(), &comm, leader);
        }
        if stat.flags & PF_KTHREAD == 0 && !self.fds_known {
            self.scan_fds(pid, at(b"/fd").as_cstr(), &comm);
        }
        self.out.processes.insert(
            pid,
            ProcInfo {
                ppid: stat.ppid,
                comm: comm.to_string(),
                cgroup,
                threads: stat.threads,
                kernel_thread: stat.flags & PF_KTHREAD != 0,
            },
        );
        Ok(())
    }

    /// Reads the `wanted` links of an ns directory (`ns_dir` relative to the
    /// /proc fd: "PID/ns" or "PID/task/TID/ns"). Fails if the directory or
    /// the first link fails: the task is gone, a zombie (no nsproxy) or out
    /// of reach.
    fn read_links(&mut self, ns_dir: &CStr, wanted: &[usize]) -> io::Result<[Option<u64>; TASK_NS_SLOTS]> {
        let dir = sys::open_at(Some(self.proc_fd), ns_dir, libc::O_PATH | libc::O_DIRECTORY)?;
        let mut slots = [None; TASK_NS_SLOTS];
        let mut pfc_missing = false;
        for (n, &i) in wanted.iter().enumerate() {
            match sys::readlink_at(dir.as_fd(), SLOT_LINKS[i], &mut self.link) {
                Ok(l) => slots[i] = parse_ns_link(l).map(|(_, ino)| ino),
                Err(e) if n == 0 => return Err(e),
                Err(e) => pfc_missing |= i == SLOT_PID_FOR_CHILDREN && e.raw_os_error() == Some(libc::ENOENT),
            }
        }
        // pid_for_children is ENOENT both for an unborn pid namespace and for
        // a task that exited meanwhile; it is the former if the task still
        // has namespaces.
        if pfc_missing
            && sys::readlink_at(dir.as_fd(), SLOT_LINKS[wanted[0]], &mut self.link).is_ok()
            && self.out.unborn_pid_ns.last() != Some(&self.current_pid)
        {
            self.out.unborn_pid_ns.push(self.current_pid);
        }
        Ok(slots)
    }

    /// Marks a task's holds as recorded without recording them (the
    /// kernel's task list gives the leader's).
    fn note_slots(&mut self, slots: &[Option<u64>; TASK_NS_SLOTS]) {
        for (key, hold, _) in slot_holds(slots) {
            if !self.added.contains(&(key, hold)) {
                self.added.push((key, hold));
            }
        }
    }

    /// Records one task's slots as holders of process `pid`, once each;
    /// `tid` is set when the task is not the leader.
    fn add_slots(&mut self, pid: u32, comm: &Comm, slots: &[Option<u64>; TASK_NS_SLOTS], tid: Option<u32>) {
        for (key, hold, ino) in slot_holds(slots) {
            if self.added.contains(&(key, hold)) {
                continue;
            }
            self.added.push((key, hold));
            let h = Holder::Task { pid, comm: comm.clone(), hold, tid };
            push_holder(&mut self.out.holders, key, h);
            if let Some(tid) = tid {
                self.out.thread_tids.entry(key).or_insert(tid);
            }
            if key.ns_type == NsType::Mnt {
                self.out.mount_ns_via.entry(ino).or_insert(tid.unwrap_or(pid));
            }
        }
    }

    fn scan_threads(&mut self, pid: u32, task_dir: &CStr, comm: &Comm, leader: Option<[Option<u64>; TASK_NS_SLOTS]>) {
        let Ok(dir) = sys::open_at(Some(self.proc_fd), task_dir, libc::O_RDONLY | libc::O_DIRECTORY) else {
            return;
        };
        let mut tids = std::mem::take(&mut self.tids);
        tids.clear();
        let listed = sys::for_each_dirent(dir.as_fd(), &mut self.dents, |n| {
            tids.extend(parse_u32(n.to_bytes()).filter(|&t| t != pid))
        });
        // With a zombie leader nothing is known yet: read every slot.
        let all: [usize; TASK_NS_SLOTS] = std::array::from_fn(|i| i);
        let wanted: &[usize] = if leader.is_some() { &THREAD_SLOTS } else { &all };
        if listed.is_err() {
            tids.clear();
        }
        for &tid in &tids {
            let mut p = CPath::new();
            p.num(pid).push(b"/task/").num(tid).push(b"/ns");
            let Ok(mut slots) = self.read_links(p.as_cstr(), wanted) else {
                continue;
            };
            // Per-process slots (see THREAD_SLOTS) are the leader's.
            if let Some(l) = leader {
                for t in [NsType::Pid, NsType::User, NsType::Time] {
                    slots[t as usize] = l[t as usize];
                }
            }
            self.add_slots(pid, comm, &slots, Some(tid));
        }
        self.tids = tids;
    }

    fn scan_fds(&mut self, pid: u32, fd_dir: &CStr, comm: &Comm) {
        let Ok(dir) = sys::open_at(Some(self.proc_fd), fd_dir, libc::O_RDONLY | libc::O_DIRECTORY) else {
            return;
        };
        let (link, out) = (&mut self.link, &mut self.out);
        let _ = sys::for_each_dirent(dir.as_fd(), &mut self.dents, |name| {
            let Some(fd) = parse_u32(name.to_bytes()) else {
                return;
            };
            let Ok(l) = sys::readlink_at(dir.as_fd(), name, link) else {
                return;
            };
            if let Some((ns_type, inode)) = parse_ns_link(l) {
                let h = Holder::Fd { pid, fd: fd as i32, comm: comm.clone() };
                push_holder(&mut out.holders, NsKey::new(ns_type, inode), h);
            } else if l.first() == Some(&b'/') {
                out.path_fds.push((pid, fd as i32, comm.clone(), l.into()));
            }
        });
    }
}

/// A process's cgroup path from `/proc/PID/cgroup` (empty when unreadable).
fn read_cgroup(proc_fd: BorrowedFd<'_>, pid: u32, buf: &mut Vec<u8>) -> String {
    let mut p = CPath::new();
    p.num(pid).push(b"/cgroup");
    match sys::read_small(proc_fd, p.as_cstr(), buf) {
        Ok(()) => parse_cgroup(buf).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

mod kernel;
pub mod listmount;
mod mounts;
mod parse;
mod path_fds;
mod sys;
#[cfg(test)]
mod tests;

use mounts::read_mounts;
pub use parse::{MountLine, Stat, parse_cgroup, parse_mountinfo_line, parse_ns_link, parse_stat};
use parse::{contains, parse_u32};
use sys::CPath;

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
//! their threads' links read too. Known blind spots: nsfs fds in a thread
//! that unshared its fd table (CLONE_FILES) are not seen (only the leader's
//! table is read); mounts inside a mount namespace that no task is in cannot
//! be listed; a `pid_for_children` namespace before its first process is
//! unnamed in /proc (reported in [`HolderScan::unborn_pid_ns`]).

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nstrace_common::{
    event::TaskNsEvent,
    ns::{NsType, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN, TASK_NS_SLOTS},
};

use crate::model::{Holder, NsKey, TaskHold};

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
}

#[derive(Debug, thiserror::Error)]
pub enum HoldersError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot list {path}: {source}")]
    List { path: PathBuf, source: io::Error },
}

/// Scans every process, including ourselves.
pub fn scan() -> Result<HolderScan, HoldersError> {
    scan_excluding(&[])
}

/// Scans every process except `exclude` (e.g. our own pid, whose scan fds
/// would otherwise show up).
pub fn scan_excluding(exclude: &[u32]) -> Result<HolderScan, HoldersError> {
    scan_with(exclude, None)
}

/// Like [`scan_excluding`], but with every process's namespace set already
/// known from the kernel's task list: the per-process namespace links are
/// not read (they are most of the cost), only fds, mounts and cgroups.
/// Threads whose namespaces differ from their leader's are not seen then.
pub fn scan_with_kernel_tasks(exclude: &[u32], tasks: &[TaskNsEvent]) -> Result<HolderScan, HoldersError> {
    scan_with(exclude, Some(tasks))
}

fn scan_with(exclude: &[u32], tasks: Option<&[TaskNsEvent]>) -> Result<HolderScan, HoldersError> {
    let proc_fd = sys::open_at(None, c"/proc", libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|source| HoldersError::Open { path: "/proc".into(), source })?;
    let mut pids = Vec::with_capacity(1024);
    let mut dents = Vec::with_capacity(DENTS_BUF);
    sys::for_each_dirent(proc_fd.as_fd(), &mut dents, |name| {
        if let Some(pid) = parse_u32(name.to_bytes())
            && !exclude.contains(&pid)
        {
            pids.push(pid);
        }
    })
    .map_err(|source| HoldersError::List { path: "/proc".into(), source })?;

    let known: Option<HashMap<u32, Stat>> = tasks.map(|tasks| {
        tasks
            .iter()
            .map(|t| {
                let end = t.comm.iter().position(|&b| b == 0).unwrap_or(t.comm.len());
                let comm = String::from_utf8_lossy(&t.comm[..end]).into_owned();
                (t.subject_tgid, Stat { comm, ppid: t.parent_tgid, flags: t.flags as u64, threads: 1 })
            })
            .collect()
    });
    let mut scan = scan_pids(proc_fd.as_fd(), &pids, known.as_ref());
    if let Some(tasks) = tasks {
        add_kernel_tasks(&mut scan, tasks, exclude);
    }
    read_mounts(proc_fd.as_fd(), &mut scan);
    Ok(scan)
}

/// Adds what the kernel's task list shows: every process's namespaces as
/// task holders (including tasks whose /proc entries are unreadable, and
/// pid namespaces that are only some task's pid_for_children before its
/// first child exists, which /proc cannot name), and one process per mount
/// namespace for reading its mounts.
pub fn add_kernel_tasks(scan: &mut HolderScan, tasks: &[TaskNsEvent], exclude: &[u32]) {
    for t in tasks {
        let pid = t.subject_tgid;
        if pid == 0 || exclude.contains(&pid) {
            continue;
        }
        let end = t.comm.iter().position(|&b| b == 0).unwrap_or(t.comm.len());
        let comm = String::from_utf8_lossy(&t.comm[..end]).into_owned();
        let mut add = |ns_type: NsType, inum: u32, hold: TaskHold| {
            if inum == 0 {
                return;
            }
            let list = scan.holders.entry(NsKey { ns_type, inode: inum as u64 }).or_default();
            if !list.iter().any(|h| matches!(h, Holder::Task { pid: p, .. } if *p == pid)) {
                list.push(Holder::Task { pid, comm: comm.clone(), hold });
            }
        };
        for ty in NsType::ALL {
            add(ty, t.ns[ty as usize].inum, TaskHold::Member);
        }
        let pfc = t.ns[SLOT_PID_FOR_CHILDREN].inum;
        if pfc != t.ns[NsType::Pid as usize].inum {
            add(NsType::Pid, pfc, TaskHold::PidForChildren);
        }
        let tfc = t.ns[SLOT_TIME_FOR_CHILDREN].inum;
        if tfc != t.ns[NsType::Time as usize].inum {
            add(NsType::Time, tfc, TaskHold::TimeForChildren);
        }
        let mnt = t.ns[NsType::Mnt as usize].inum as u64;
        if mnt != 0 {
            scan.mount_ns_via.entry(mnt).or_insert(pid);
        }
    }
}

/// The arguments of a process (`/proc/PID/cmdline`), lossily decoded;
/// empty for kernel threads. Kept out of [`scan`] because few callers need it.
pub fn cmdline(pid: u32) -> io::Result<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    Ok(raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
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

fn slot_key(slot: usize, inode: u64) -> (NsKey, TaskHold) {
    let (ns_type, hold) = match slot {
        SLOT_PID_FOR_CHILDREN => (NsType::Pid, TaskHold::PidForChildren),
        SLOT_TIME_FOR_CHILDREN => (NsType::Time, TaskHold::TimeForChildren),
        s => (NsType::ALL[s], TaskHold::Member),
    };
    (NsKey { ns_type, inode }, hold)
}

/// Splits the pid list into chunks claimed by up to one thread per core;
/// chunk results are merged in pid order so output is deterministic.
/// `known`: per-process facts from the kernel's task list; when given, the
/// namespace links and `stat` files are not read.
fn scan_pids(proc_fd: BorrowedFd<'_>, pids: &[u32], known: Option<&HashMap<u32, Stat>>) -> HolderScan {
    let chunks: Vec<&[u32]> = pids.chunks(CHUNK).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.len()).min(8);
    if threads <= 1 {
        let mut w = Worker::new(proc_fd, known);
        pids.iter().for_each(|&p| w.scan_process(p));
        return w.out;
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<HolderScan>>> = Mutex::new((0..chunks.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut w = Worker::new(proc_fd, known);
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
    known: Option<&'a HashMap<u32, Stat>>,
    out: HolderScan,
}

fn is_denied(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

impl<'a> Worker<'a> {
    fn new(proc_fd: BorrowedFd<'a>, known: Option<&'a HashMap<u32, Stat>>) -> Self {
        Worker {
            known,
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
        // The kernel's task list already gave comm, ppid and flags.
        let stat = match self.known.and_then(|k| k.get(&pid)) {
            Some(s) => s.clone(),
            None => {
                sys::read_small(proc_fd, at(b"/stat").as_cstr(), &mut self.file)?;
                let Some(stat) = parse_stat(&self.file) else {
                    return Ok(());
                };
                stat
            }
        };
        let comm = stat.comm;
        let cgroup = match sys::read_small(proc_fd, at(b"/cgroup").as_cstr(), &mut self.file) {
            Ok(()) => parse_cgroup(&self.file).unwrap_or_default(),
            Err(_) => String::new(),
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
        let leader = match links {
            Ok(slots) => {
                self.add_slots(pid, &comm, &slots, None);
                Some(slots)
            }
            Err(e) => {
                if is_denied(&e) {
                    self.out.denied.push(pid);
                }
                None
            }
        };
        if stat.threads > 1 && self.known.is_none() {
            self.scan_threads(pid, at(b"/task").as_cstr(), &comm, leader);
        }
        if stat.flags & PF_KTHREAD == 0 {
            self.scan_fds(pid, at(b"/fd").as_cstr(), &comm);
        }
        self.out.processes.insert(
            pid,
            ProcInfo {
                ppid: stat.ppid,
                comm,
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

    /// Records one task's slots as holders of process `pid`, once each;
    /// `tid` is set when the task is not the leader.
    fn add_slots(&mut self, pid: u32, comm: &str, slots: &[Option<u64>; TASK_NS_SLOTS], tid: Option<u32>) {
        for (i, ino) in slots.iter().enumerate() {
            let Some(ino) = *ino else { continue };
            // "for children" only counts where it differs from the task's own.
            let own = match i {
                SLOT_PID_FOR_CHILDREN => slots[NsType::Pid as usize],
                SLOT_TIME_FOR_CHILDREN => slots[NsType::Time as usize],
                _ => None,
            };
            if own == Some(ino) {
                continue;
            }
            let (key, hold) = slot_key(i, ino);
            if self.added.contains(&(key, hold)) {
                continue;
            }
            self.added.push((key, hold));
            let h = Holder::Task { pid, comm: comm.to_owned(), hold };
            self.out.holders.entry(key).or_default().push(h);
            if let Some(tid) = tid {
                self.out.thread_tids.entry(key).or_insert(tid);
            }
            if key.ns_type == NsType::Mnt {
                self.out.mount_ns_via.entry(ino).or_insert(tid.unwrap_or(pid));
            }
        }
    }

    fn scan_threads(&mut self, pid: u32, task_dir: &CStr, comm: &str, leader: Option<[Option<u64>; TASK_NS_SLOTS]>) {
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

    fn scan_fds(&mut self, pid: u32, fd_dir: &CStr, comm: &str) {
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
                let h = Holder::Fd { pid, fd: fd as i32, comm: comm.to_owned() };
                out.holders.entry(NsKey { ns_type, inode }).or_default().push(h);
            }
        });
    }
}

/// Reads mountinfo once per mount namespace and records nsfs bind mounts.
fn read_mounts(proc_fd: BorrowedFd<'_>, scan: &mut HolderScan) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut link = [0u8; 128];
    let mut seen: HashSet<(NsKey, u64, String)> = HashSet::new();
    let mut found: Vec<(NsKey, Holder)> = Vec::new();
    let mut mnt_list: Vec<(u64, u32)> = scan.mount_ns_via.iter().map(|(&k, &v)| (k, v)).collect();
    mnt_list.sort_unstable();
    for (mnt_ns, first) in mnt_list {
        // Fall back to other members if the first one has exited or moved.
        let key = NsKey { ns_type: NsType::Mnt, inode: mnt_ns };
        let others = scan.holders.get(&key).into_iter().flatten().filter_map(|h| match h {
            Holder::Task { pid, hold: TaskHold::Member, .. } if *pid != first => Some(*pid),
            _ => None,
        });
        let mut via = None;
        for pid in std::iter::once(first).chain(others).take(8) {
            let mut p = CPath::new();
            if sys::read_at(proc_fd, p.num(pid).push(b"/mountinfo").as_cstr(), &mut buf).is_err() {
                continue;
            }
            // Re-check the namespace after reading: a setns in between
            // would attribute the mounts to the wrong namespace.
            let mut p = CPath::new();
            let now = sys::readlink_at(proc_fd, p.num(pid).push(b"/ns/mnt").as_cstr(), &mut link);
            if now.ok().and_then(parse_ns_link).map(|(_, i)| i) == Some(mnt_ns) {
                via = Some(pid);
                break;
            }
        }
        let Some(via_pid) = via else {
            scan.mount_ns_via.remove(&mnt_ns);
            continue;
        };
        scan.mount_ns_via.insert(mnt_ns, via_pid);
        for line in buf.split(|&b| b == b'\n') {
            if !contains(line, b" - nsfs ") {
                continue;
            }
            let Some(m) = parse_mountinfo_line(line) else {
                continue;
            };
            let Some((ns_type, inode)) = parse_ns_link(m.root.as_bytes()) else {
                continue;
            };
            let key = NsKey { ns_type, inode };
            if !seen.insert((key, mnt_ns, m.mount_point.clone())) {
                continue; // the same path mounted over itself
            }
            if ns_type == NsType::Net
                && let Some(name) = netns_name(&m.mount_point)
            {
                let names = scan.netns_names.entry(inode).or_default();
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
            found.push((key, Holder::Mount { path: m.mount_point, mnt_ns, via_pid }));
        }
    }
    for (key, h) in found {
        scan.holders.entry(key).or_default().push(h);
    }
}

fn netns_name(mount_point: &str) -> Option<&str> {
    let name = mount_point.strip_prefix("/run/netns/")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    u32::try_from(n).ok()
}

/// Parses an nsfs link or dentry name, `net:[4026531840]`. The
/// `*_for_children` spellings are accepted too (older kernels named the
/// dentry after the /proc entry it was first opened through).
pub fn parse_ns_link(link: &[u8]) -> Option<(NsType, u64)> {
    let open = link.iter().position(|&b| b == b':')?;
    let (name, rest) = link.split_at(open);
    let digits = rest.strip_prefix(b":[")?.strip_suffix(b"]")?;
    let ns_type = match name {
        b"pid_for_children" => NsType::Pid,
        b"time_for_children" => NsType::Time,
        n => *NsType::ALL.iter().find(|t| t.name().as_bytes() == n)?,
    };
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let inode = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((ns_type, inode))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub ppid: u32,
    pub flags: u64,
    pub threads: u32,
}

/// Parses `/proc/PID/stat`. comm may hold spaces and parentheses, so the
/// fields start after the *last* `)`.
pub fn parse_stat(s: &[u8]) -> Option<Stat> {
    let open = s.iter().position(|&b| b == b'(')?;
    let close = s.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = String::from_utf8_lossy(&s[open + 1..close]).into_owned();
    let mut f = s[close + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty());
    // After comm: state(0) ppid(1) pgrp session tty tpgid flags(6) ...
    // num_threads is field 20 of the file, index 17 here.
    let num = |f: Option<&[u8]>| f.and_then(|f| std::str::from_utf8(f).ok()?.trim().parse::<u64>().ok());
    let ppid = num(f.nth(1))? as u32;
    let flags = num(f.nth(4))?;
    let threads = num(f.nth(10))? as u32;
    Some(Stat { comm, ppid, flags, threads })
}

/// The cgroup v2 entry (`0::/path`) of `/proc/PID/cgroup`, else the path
/// of the first line (v1-only hosts).
pub fn parse_cgroup(s: &[u8]) -> Option<String> {
    let lines = s.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let mut first = None;
    for line in lines {
        let mut parts = line.splitn(3, |&b| b == b':');
        let (Some(id), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == b"0" && ctl.is_empty() {
            return Some(String::from_utf8_lossy(path).into_owned());
        }
        first.get_or_insert(path);
    }
    first.map(|p| String::from_utf8_lossy(p).into_owned())
}

/// The fields of a mountinfo line that holder discovery needs.
#[derive(Debug, PartialEq, Eq)]
pub struct MountLine {
    pub mount_id: u32,
    /// Root of the mount within its filesystem; for nsfs, `net:[...]`.
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
}

/// Parses one `/proc/PID/mountinfo` line: `id parent maj:min root point
/// opts [optional fields...] - fstype source superopts`.
pub fn parse_mountinfo_line(line: &[u8]) -> Option<MountLine> {
    let mut f = line.split(|&b| b == b' ');
    let mount_id = parse_u32(f.next()?)?;
    let _parent = f.next()?;
    let _dev = f.next()?;
    let root = unescape(f.next()?);
    let mount_point = unescape(f.next()?);
    let _opts = f.next()?;
    // Zero or more optional fields end at a lone "-".
    f.by_ref().find(|x| *x == b"-")?;
    let fs_type = unescape(f.next()?);
    let source = unescape(f.next()?);
    Some(MountLine { mount_id, root, mount_point, fs_type, source })
}

/// Undoes the kernel's octal escapes (`\040` space, `\011`, `\012`, `\134`).
fn unescape(s: &[u8]) -> String {
    if !s.contains(&b'\\') {
        return String::from_utf8_lossy(s).into_owned();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = s.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (s[i], oct) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A short NUL-terminated relative path built on the stack ("1234/ns/net").
struct CPath {
    buf: [u8; 64],
    len: usize,
}

impl CPath {
    fn new() -> Self {
        CPath { buf: [0; 64], len: 0 }
    }

    fn push(&mut self, s: &[u8]) -> &mut Self {
        // Our paths are at most ~35 bytes; anything longer is cut and the
        // syscall simply fails.
        let n = s.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }

    fn num(&mut self, n: u32) -> &mut Self {
        let mut tmp = [0u8; 10];
        let mut i = tmp.len();
        let mut n = n;
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&tmp[i..])
    }

    fn as_cstr(&mut self) -> &CStr {
        self.buf[self.len] = 0;
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }
}

/// Raw syscalls over borrowed fds and C strings, so the hot loop allocates
/// nothing.
mod sys {
    use super::*;

    fn cvt(r: libc::c_long) -> io::Result<usize> {
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
    }

    pub fn open_at(dir: Option<BorrowedFd<'_>>, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
        let dfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
        // SAFETY: path is NUL-terminated; the returned fd is new and ours.
        let fd = cvt(unsafe { libc::openat(dfd, path.as_ptr(), flags | libc::O_CLOEXEC) } as libc::c_long)?;
        // SAFETY: see above.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }

    /// The link target, or an error if it did not fit (never a prefix).
    pub fn readlink_at<'b>(dir: BorrowedFd<'_>, path: &CStr, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
        // SAFETY: buf is writable for buf.len() bytes.
        let n = cvt(unsafe { libc::readlinkat(dir.as_raw_fd(), path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
            as libc::c_long)?;
        if n >= buf.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        Ok(&buf[..n])
    }

    /// Replaces `buf` with the whole file.
    pub fn read_at(dir: BorrowedFd<'_>, path: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
        let fd = open_at(Some(dir), path, libc::O_RDONLY)?;
        buf.clear();
        loop {
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(buf.capacity().max(4096));
            }
            let spare = buf.capacity() - buf.len();
            // SAFETY: reading into the vector's spare capacity.
            let n =
                cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().add(buf.len()).cast(), spare) }
                    as libc::c_long)?;
            if n == 0 {
                return Ok(());
            }
            // SAFETY: the kernel initialised n more bytes.
            unsafe { buf.set_len(buf.len() + n) };
        }
    }

    /// Like read_at for single-record seq files (`stat`, `cgroup`): they
    /// hand over their whole text in one read when it fits, so a short read
    /// is the end and the EOF read is saved.
    pub fn read_small(dir: BorrowedFd<'_>, path: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
        let fd = open_at(Some(dir), path, libc::O_RDONLY)?;
        buf.clear();
        buf.reserve(4096);
        loop {
            let spare = buf.capacity() - buf.len();
            // SAFETY: reading into the vector's spare capacity.
            let n =
                cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().add(buf.len()).cast(), spare) }
                    as libc::c_long)?;
            // SAFETY: the kernel initialised n more bytes.
            unsafe { buf.set_len(buf.len() + n) };
            if n < spare {
                return Ok(());
            }
            buf.reserve(buf.capacity());
        }
    }

    /// Calls `f` with each entry name except `.` and `..`. Only for /proc
    /// directories: their readdir stops early only when the buffer is full,
    /// so a batch leaving room for another entry was the last one.
    pub fn for_each_dirent(dir: BorrowedFd<'_>, buf: &mut Vec<u8>, mut f: impl FnMut(&CStr)) -> io::Result<()> {
        buf.clear();
        buf.reserve(DENTS_BUF);
        loop {
            // SAFETY: the buffer is writable for its capacity.
            let n =
                cvt(unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.capacity()) })?;
            if n == 0 {
                return Ok(());
            }
            // SAFETY: the kernel initialised n bytes.
            unsafe { buf.set_len(n) };
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
            let mut off = 0;
            while off + 19 < n {
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                if reclen == 0 || off + reclen > n {
                    break;
                }
                if let Ok(name) = CStr::from_bytes_until_nul(&buf[off + 19..off + reclen])
                    && name != c"."
                    && name != c".."
                {
                    f(name);
                }
                off += reclen;
            }
            buf.clear();
            // The largest entry: 19-byte header + 255-byte name + NUL, aligned.
            if n + 280 <= buf.capacity() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    #[test]
    fn ns_links() {
        assert_eq!(parse_ns_link(b"net:[4026531840]"), Some((NsType::Net, 4026531840)));
        assert_eq!(parse_ns_link(b"cgroup:[1]"), Some((NsType::Cgroup, 1)));
        assert_eq!(parse_ns_link(b"pid_for_children:[7]"), Some((NsType::Pid, 7)));
        for bad in [
            &b""[..],
            b"net:[]",
            b"net:[12",
            b"net:[12]x",
            b"net:[-1]",
            b"nett:[1]",
            b"/dev/null",
            b"socket:[123]",
            b"anon_inode:[eventfd]",
            b"net:[99999999999999999999999]",
        ] {
            assert_eq!(parse_ns_link(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn mountinfo_lines() {
        let l = b"612 28 0:4 net:[4026532301] /run/netns/a\\040b rw shared:5 master:1 - nsfs nsfs rw";
        let m = parse_mountinfo_line(l).unwrap();
        assert_eq!(m.mount_id, 612);
        assert_eq!(m.root, "net:[4026532301]");
        assert_eq!(m.mount_point, "/run/netns/a b");
        assert_eq!((m.fs_type.as_str(), m.source.as_str()), ("nsfs", "nsfs"));
        let l = b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw";
        let m = parse_mountinfo_line(l).unwrap();
        assert_eq!((m.mount_point.as_str(), m.fs_type.as_str()), ("/", "ext4"));
        assert_eq!(unescape(b"a\\011b\\012c\\134d\\x"), "a\tb\nc\\d\\x");
        assert_eq!(parse_mountinfo_line(b"27 1 254:0 / / rw shared:1"), None);
        assert_eq!(parse_mountinfo_line(b"x 1 254:0 / / rw - ext4 a b"), None);
        assert_eq!(parse_mountinfo_line(b""), None);
    }

    #[test]
    fn cgroup_lines() {
        assert_eq!(parse_cgroup(b"0::/system.slice/a.service\n").as_deref(), Some("/system.slice/a.service"));
        let hybrid = b"9:name=systemd:/\n4:memory:/x\n0::/user.slice\n";
        assert_eq!(parse_cgroup(hybrid).as_deref(), Some("/user.slice"));
        assert_eq!(parse_cgroup(b"4:memory:/x:y\n1:cpu:/\n").as_deref(), Some("/x:y"));
        assert_eq!(parse_cgroup(b"garbage\n"), None);
        assert_eq!(parse_cgroup(b""), None);
    }

    #[test]
    fn stat_lines() {
        let s = b"42 (a) (b) c) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 3 0 9 1 1\n";
        let st = parse_stat(s).unwrap();
        assert_eq!(st, Stat { comm: "a) (b) c".into(), ppid: 7, flags: 4194560, threads: 3 });
        assert_eq!(parse_stat(b"42 (x) S 7"), None);
        assert_eq!(parse_stat(b")("), None);
        assert_eq!(CPath::new().num(0).push(b"/ns").as_cstr(), c"0/ns");
        assert_eq!(SLOT_LINKS.map(|l| l.to_str().unwrap())[..8], NsType::ALL.map(|t| t.name()));
        assert_eq!(CPath::new().num(4294967295).as_cstr(), c"4294967295");
    }

    fn ns_inode(path: &str) -> u64 {
        let l = std::fs::read_link(path).unwrap();
        parse_ns_link(l.as_os_str().as_encoded_bytes()).unwrap().1
    }

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            eprintln!("skipped: needs root");
        }
        root
    }

    #[test]
    fn finds_own_process_and_fd() {
        let f = std::fs::File::open("/proc/self/ns/uts").unwrap();
        let fd = f.as_raw_fd();
        let me = std::process::id();
        let scan = scan().unwrap();
        let key = NsKey { ns_type: NsType::Uts, inode: ns_inode("/proc/self/ns/uts") };
        let hs = &scan.holders[&key];
        assert!(hs.iter().any(|h| matches!(h, Holder::Fd { pid, fd: n, .. } if *pid == me && *n == fd)));
        assert!(hs.iter().any(|h| matches!(h, Holder::Task { pid, hold: TaskHold::Member, .. } if *pid == me)));
        let info = &scan.processes[&me];
        assert!(info.threads >= 1 && !info.kernel_thread && info.cgroup.starts_with('/'));
        assert!(scan.mount_ns_via.contains_key(&ns_inode("/proc/self/ns/mnt")));
        assert!(!scan_excluding(&[me]).unwrap().processes.contains_key(&me));
    }

    struct NetnsGuard(String);
    impl Drop for NetnsGuard {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    #[test]
    fn finds_ip_netns_bind_mount() {
        if !root() {
            return;
        }
        let name = format!("nstrace-test-{}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status().map(|s| s.success());
        if ok.ok() != Some(true) {
            eprintln!("skipped: ip netns add failed");
            return;
        }
        let _guard = NetnsGuard(name.clone());
        let path = format!("/run/netns/{name}");
        let inode = crate::nsfs::inode(crate::nsfs::open(path.as_ref()).unwrap()).unwrap();
        let scan = scan().unwrap();
        let hs = &scan.holders[&NsKey { ns_type: NsType::Net, inode }];
        let host_mnt = ns_inode("/proc/self/ns/mnt");
        assert!(
            hs.iter().any(|h| matches!(h, Holder::Mount { path: p, mnt_ns, .. } if *p == path && *mnt_ns == host_mnt)),
            "{hs:?}"
        );
        assert!(scan.netns_names[&inode].contains(&name));
    }

    /// A thread that unshares its uts namespace: lsns would miss it.
    #[test]
    fn finds_thread_only_namespace() {
        if !root() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: affects only this thread's nsproxy.
            let r = unsafe { libc::unshare(libc::CLONE_NEWUTS) };
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as u32;
            let ino = (r == 0).then(|| ns_inode("/proc/thread-self/ns/uts"));
            tx.send((tid, ino)).unwrap();
            let _ = done_rx.recv();
        });
        let (tid, ino) = rx.recv().unwrap();
        let scan = scan().unwrap();
        done_tx.send(()).unwrap();
        t.join().unwrap();
        let ino = ino.expect("unshare(CLONE_NEWUTS) in a thread");
        let key = NsKey { ns_type: NsType::Uts, inode: ino };
        let me = std::process::id();
        assert!(scan.holders[&key].iter().any(|h| matches!(h, Holder::Task { pid, .. } if *pid == me)));
        assert_eq!(scan.thread_tids.get(&key), Some(&tid));
    }

    /// `cargo test --release -p nstrace --lib holders::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, not a check"]
    fn bench() {
        let mut times = Vec::new();
        let mut n = (0, 0, 0);
        for _ in 0..7 {
            let t = std::time::Instant::now();
            let s = scan().unwrap();
            times.push(t.elapsed());
            n = (s.processes.len(), s.holders.len(), s.holders.values().map(Vec::len).sum::<usize>());
        }
        times.sort();
        eprintln!(
            "scan: {} processes, {} namespaces, {} holders: min {:?} median {:?}",
            n.0, n.1, n.2, times[0], times[3]
        );
        let s = scan().unwrap();
        let t = std::time::Instant::now();
        let rows = crate::snapshot::proc::snapshot(&s).unwrap();
        eprintln!("proc snapshot of {} rows: {:?}", rows.len(), t.elapsed());
        if let Ok(path) = std::env::var("NSTRACE_DUMP") {
            let lines: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!("{} {} {}", r.key.inode, r.key.ns_type.name(), s.holders.get(&r.key).map_or(0, Vec::len))
                })
                .collect();
            std::fs::write(path, lines.join("\n")).unwrap();
        }
    }

    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `unshare --pid` without --fork leaves an unborn pid_for_children;
    /// with --fork the parent holds the new pid ns only as pid_for_children.
    #[test]
    fn pid_for_children() {
        if !root() {
            return;
        }
        let unborn = Kill(Command::new("unshare").args(["--pid", "sleep", "30"]).spawn().unwrap());
        let forked = Kill(Command::new("unshare").args(["--pid", "--fork", "sleep", "30"]).spawn().unwrap());
        let (a, b) = (unborn.0.id(), forked.0.id());
        // Wait until a has exec'd sleep and b has unshared and forked (its
        // pid_for_children becomes readable and differs from its own).
        let ready = || {
            let comm = |p: u32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let link = |n: &str| std::fs::read_link(format!("/proc/{b}/ns/{n}")).ok();
            comm(a).trim() == "sleep" && link("pid_for_children").is_some_and(|l| Some(l) != link("pid"))
        };
        for _ in 0..200 {
            if ready() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let scan = scan().unwrap();
        assert!(scan.unborn_pid_ns.contains(&a), "{:?}", scan.unborn_pid_ns);
        let pfc = ns_inode(&format!("/proc/{b}/ns/pid_for_children"));
        let hs = &scan.holders[&NsKey { ns_type: NsType::Pid, inode: pfc }];
        assert!(hs.iter().any(|h| matches!(h, Holder::Task { pid, hold: TaskHold::PidForChildren, .. } if *pid == b)));
        assert!(hs.iter().any(|h| matches!(h, Holder::Task { hold: TaskHold::Member, .. })), "{hs:?}");
    }
}

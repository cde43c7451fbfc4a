//! Holders from what the kernel's walks say: every process's namespace set
//! (task walk), every open nsfs file (fd walk) and every process's cgroup
//! id, so /proc is read only for threads, mounts and one cgroup file per
//! cgroup.

use foldhash::{HashMap, HashMapExt};
use std::os::fd::BorrowedFd;

use nstrace_common::{
    decode::comm_str,
    event::{NsFdRecord, TaskNsEvent, fd_via},
    ns::{NsType, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN},
};

use super::{HolderScan, Known, PF_KTHREAD, ProcInfo, Stat, push_holder, read_cgroup};
use crate::model::{Comm, Holder, NsKey, TaskHold};

/// What the kernel's walks say of processes: every process's namespace
/// set (task walk) and, where the fd walk ran, every open nsfs file.
#[derive(Clone, Copy, Debug)]
pub struct KernelView<'a> {
    pub tasks: &'a [TaskNsEvent],
    pub fds: Option<&'a [NsFdRecord]>,
    /// Whether that fd walk also looked into sockets (the kernel's BTF has
    /// every field it takes).
    pub sockets: bool,
    /// Every mount namespace the kernel's list has (inode -> id), for the
    /// mounts of those no task is in.
    pub mnt_ids: &'a HashMap<u64, u64>,
}

/// Per-process facts from the task walk, by pid.
pub(super) fn known(tasks: &[TaskNsEvent]) -> HashMap<u32, Known> {
    tasks
        .iter()
        .map(|t| {
            let comm = comm_str(&t.comm);
            // 0: a kernel whose BTF lacks signal->nr_threads: threads unread.
            let stat = Stat { comm, ppid: t.parent_tgid, flags: t.flags as u64, threads: t.threads.max(1) };
            let slots = std::array::from_fn(|i| (t.ns[i].inum != 0).then_some(u64::from(t.ns[i].inum)));
            (t.subject_tgid, Known { stat, slots, cgroup_id: t.cgroup_id })
        })
        .collect()
}

/// Records every process the task list has (but `exclude`) in
/// `scan.processes`, and returns, in pid order, those /proc must still be
/// read for: multi-threaded processes (their threads' namespaces), and
/// every process when the fd walk did not run (`fds_known` false).
pub(super) fn pids_to_read(
    known: &HashMap<u32, Known>,
    exclude: &[u32],
    fds_known: bool,
    scan: &mut HolderScan,
) -> Vec<u32> {
    let mut pids = Vec::new();
    for (&pid, k) in known {
        if pid == 0 || exclude.contains(&pid) {
            continue;
        }
        let kernel_thread = k.stat.flags & PF_KTHREAD != 0;
        if k.stat.threads > 1 || (!fds_known && !kernel_thread) {
            pids.push(pid);
        }
        let info = ProcInfo {
            ppid: k.stat.ppid,
            comm: k.stat.comm.clone(),
            cgroup: String::new(),
            threads: k.stat.threads,
            kernel_thread,
        };
        scan.processes.insert(pid, info);
    }
    pids.sort_unstable();
    pids
}

/// Adds what the kernel's task list shows: every process's namespaces as
/// task holders (including tasks whose /proc entries are unreadable, and
/// pid namespaces that are only some task's pid_for_children before its
/// first child exists, which /proc cannot name), and one process per mount
/// namespace for reading its mounts.
pub(super) fn add_tasks(scan: &mut HolderScan, tasks: &[TaskNsEvent], exclude: &[u32]) {
    // Only holders found before (by /proc: threads) can repeat a task's;
    // checking the ones added here too would be quadratic in a shared
    // namespace's task count.
    let before: HashMap<NsKey, usize> = scan.holders.iter().map(|(k, v)| (*k, v.len())).collect();
    for t in tasks {
        let pid = t.subject_tgid;
        if pid == 0 || exclude.contains(&pid) {
            continue;
        }
        let comm: Comm = comm_str(&t.comm).into();
        let mut add = |ns_type: NsType, inum: u32, hold: TaskHold| {
            if inum == 0 {
                return;
            }
            let key = NsKey::new(ns_type, u64::from(inum));
            let earlier = before.get(&key).copied().unwrap_or(0);
            let held = earlier > 0
                && scan.holders.get(&key).is_some_and(|list| {
                    list[..earlier].iter().any(|h| matches!(h, Holder::Task { pid: p, .. } if *p == pid))
                });
            if !held {
                push_holder(&mut scan.holders, key, Holder::Task { pid, comm: comm.clone(), hold, tid: None });
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
        let mnt = u64::from(t.ns[NsType::Mnt as usize].inum);
        if mnt != 0 {
            scan.mount_ns_via.entry(mnt).or_insert(pid);
        }
    }
}

/// Adds the fd walk's nsfs files as fd holders (an fd opened through a
/// bind-mount path included: the kernel sees the nsfs file itself) and its
/// sockets of other net namespaces as socket holders.
pub(super) fn add_fds(scan: &mut HolderScan, fds: &[NsFdRecord], known: &HashMap<u32, Known>, exclude: &[u32]) {
    let mut comm: Option<(u32, Comm)> = None;
    for f in fds {
        let pid = f.header.tgid;
        let Some(ns_type) = NsType::from_clone_flag(f.ns_flag as u64) else {
            continue;
        };
        if exclude.contains(&pid) || f.inum == 0 {
            continue;
        }
        // Records come by pid: one Comm per process.
        let c = match &comm {
            Some((p, c)) if *p == pid => c.clone(),
            _ => {
                let c: Comm = known.get(&pid).map_or("", |k| k.stat.comm.as_str()).into();
                comm = Some((pid, c.clone()));
                c
            }
        };
        let key = NsKey::new(ns_type, u64::from(f.inum));
        let holder = match f.via {
            fd_via::SOCKET if ns_type == NsType::Net => {
                Holder::Socket { pid, fd: f.fd as i32, comm: c, socket: f.socket_ino }
            }
            fd_via::NSFS => Holder::Fd { pid, fd: f.fd as i32, comm: c },
            _ => continue,
        };
        push_holder(&mut scan.holders, key, holder);
    }
}

/// Whether a `/proc/PID/cgroup` file has the cgroup v2 line (`0::`), the
/// one [`super::parse_cgroup`] takes: then every process with the same
/// cgroup v2 id has the same path (v2 only and hybrid hosts). On a v1-only
/// host the path comes from a v1 hierarchy, which the id says nothing of.
pub(super) fn has_v2_line(file: &[u8]) -> bool {
    file.split(|&b| b == b'\n').any(|l| l.starts_with(b"0::"))
}

/// Fills the cgroup path of the processes the scan left without one (those
/// with a cgroup id): one `/proc/PID/cgroup` per cgroup id, by its first
/// readable process; each process's own file on a v1-only host.
pub(super) fn add_cgroups(proc_fd: BorrowedFd<'_>, scan: &mut HolderScan, known: &HashMap<u32, Known>) {
    let mut by_id: HashMap<u64, Vec<u32>> = HashMap::new();
    for (pid, k) in known {
        if k.cgroup_id != 0 && scan.processes.contains_key(pid) {
            by_id.entry(k.cgroup_id).or_default().push(*pid);
        }
    }
    let mut buf = Vec::with_capacity(4096);
    for (_, mut pids) in by_id {
        pids.sort_unstable();
        let mut shared = None;
        for &pid in &pids {
            let path = read_cgroup(proc_fd, pid, &mut buf);
            if !buf.is_empty() {
                shared = Some((path, has_v2_line(&buf)));
                break;
            }
        }
        for pid in pids {
            let path = match &shared {
                Some((path, true)) => path.clone(),
                _ => read_cgroup(proc_fd, pid, &mut buf),
            };
            if let Some(p) = scan.processes.get_mut(&pid) {
                p.cgroup = path;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use nstrace_common::event::{EventHeader, EventKind, NsRef};
    use nstrace_common::ns::TASK_NS_SLOTS;

    use super::*;

    fn task(pid: u32, comm: &str, inums: [u32; TASK_NS_SLOTS], threads: u32, flags: u32) -> TaskNsEvent {
        let mut c = [0u8; 16];
        c[..comm.len()].copy_from_slice(comm.as_bytes());
        TaskNsEvent {
            header: EventHeader { kind: EventKind::TaskInfo as u32, size: 0, ts_ns: 0, tgid: 0, tid: 0 },
            subject_tgid: pid,
            subject_tid: pid,
            parent_tgid: 1,
            flags,
            threads,
            _reserved: 0,
            cgroup_id: 7,
            comm: c,
            ns: inums.map(|inum| NsRef { id: 0, inum, _reserved: 0 }),
        }
    }

    fn fd(pid: u32, fd: u32, flag: u64, inum: u32) -> NsFdRecord {
        NsFdRecord {
            header: EventHeader { kind: EventKind::NsFd as u32, size: 56, ts_ns: 0, tgid: pid, tid: 0 },
            fd,
            ns_flag: flag as u32,
            inum,
            via: fd_via::NSFS,
            id: 0,
            socket_ino: 0,
        }
    }

    fn socket(pid: u32, fd: u32, flag: u64, inum: u32, socket_ino: u64) -> NsFdRecord {
        NsFdRecord { via: fd_via::SOCKET, socket_ino, ..super::tests::fd(pid, fd, flag, inum) }
    }

    const HOST: [u32; TASK_NS_SLOTS] = [10, 11, 12, 13, 14, 15, 16, 17, 13, 17];

    #[test]
    fn the_v2_line_decides_whether_a_cgroup_id_names_the_path() {
        assert!(has_v2_line(b"0::/system.slice/docker-abc.scope\n"));
        assert!(has_v2_line(b"12:pids:/\n1:name=systemd:/x\n0::/user.slice\n"));
        assert!(!has_v2_line(b"12:pids:/docker/abc\n1:cpu:/docker/abc\n"));
        assert!(!has_v2_line(b""));
    }

    #[test]
    fn only_multi_threaded_processes_are_read_when_the_fd_walk_ran() {
        let tasks = [
            task(1, "init", HOST, 1, 0),
            task(2, "kthreadd", HOST, 1, PF_KTHREAD as u32),
            task(30, "go", HOST, 4, 0),
            task(40, "nstrace", HOST, 1, 0),
        ];
        let known = known(&tasks);
        let mut scan = HolderScan::default();
        assert_eq!(pids_to_read(&known, &[40], true, &mut scan), [30]);
        let mut listed: Vec<u32> = scan.processes.keys().copied().collect();
        listed.sort_unstable();
        assert_eq!(listed, [1, 2, 30], "every process but the excluded one is known");
        assert!(scan.processes[&2].kernel_thread);
        assert_eq!(scan.processes[&30].threads, 4);
        // Without the fd walk every user process's fd directory is read.
        let mut scan = HolderScan::default();
        assert_eq!(pids_to_read(&known, &[40], false, &mut scan), [1, 30]);
    }

    #[test]
    fn fd_records_become_fd_holders_with_their_process_command() {
        let known = known(&[task(5, "holder", HOST, 1, 0), task(6, "nstrace", HOST, 1, 0)]);
        let uts = NsType::Uts.clone_flag();
        let fds = [fd(5, 3, uts, 900), fd(5, 4, uts, 900), fd(5, 9, 0, 901), fd(6, 3, uts, 900), fd(5, 7, uts, 0)];
        let mut scan = HolderScan::default();
        add_fds(&mut scan, &fds, &known, &[6]);
        let key = NsKey::new(NsType::Uts, 900);
        let got: Vec<(u32, i32, String)> = scan.holders[&key]
            .iter()
            .map(|h| match h {
                Holder::Fd { pid, fd, comm } => (*pid, *fd, comm.to_string()),
                other => panic!("not an fd holder: {other:?}"),
            })
            .collect();
        assert_eq!(got, [(5, 3, "holder".to_string()), (5, 4, "holder".to_string())]);
        assert_eq!(scan.holders.len(), 1, "no type, no inode or an excluded pid: no holder");
    }

    #[test]
    fn socket_records_become_socket_holders_of_net_namespaces_only() {
        let known = known(&[task(5, "holder", HOST, 1, 0)]);
        let (net, uts) = (NsType::Net.clone_flag(), NsType::Uts.clone_flag());
        let fds = [socket(5, 3, net, 900, 77), fd(5, 4, net, 900), socket(5, 6, uts, 901, 78)];
        let mut scan = HolderScan::default();
        add_fds(&mut scan, &fds, &known, &[]);
        assert_eq!(
            scan.holders[&NsKey::new(NsType::Net, 900)],
            [
                Holder::Socket { pid: 5, fd: 3, comm: "holder".into(), socket: 77 },
                Holder::Fd { pid: 5, fd: 4, comm: "holder".into() }
            ]
        );
        assert!(!scan.holders.contains_key(&NsKey::new(NsType::Uts, 901)), "a socket holds only a net namespace");
        let row = {
            let mut r = crate::model::NsRow::new(NsType::Net, 900);
            r.holders = vec![Holder::Socket { pid: 5, fd: 3, comm: "holder".into(), socket: 77 }].into();
            r
        };
        assert_eq!(crate::model::NsState::of(&row.holders), crate::model::NsState::Orphaned, "no task, fd or mount");
    }

    #[test]
    fn a_task_already_found_through_a_thread_is_not_added_twice() {
        let mut scan = HolderScan::default();
        let key = NsKey::new(NsType::Net, 10);
        let thread = Holder::Task { pid: 30, comm: "go".into(), hold: TaskHold::Member, tid: Some(31) };
        push_holder(&mut scan.holders, key, thread);
        add_tasks(&mut scan, &[task(30, "go", HOST, 2, 0), task(1, "init", HOST, 1, 0)], &[]);
        let pids: Vec<(u32, Option<u32>)> = scan.holders[&key]
            .iter()
            .map(|h| match h {
                Holder::Task { pid, tid, .. } => (*pid, *tid),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(pids, [(30, Some(31)), (1, None)]);
        // Every other namespace of both: one holder per process.
        let uts = NsKey::new(NsType::Uts, 11);
        assert_eq!(scan.holders[&uts].len(), 2);
        assert_eq!(scan.mount_ns_via[&15], 30);
    }
}

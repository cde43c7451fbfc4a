//! Fallback snapshot for kernels without the in-kernel namespace tree: the
//! lsns method. Every namespace that a task, fd or nsfs mount points at,
//! plus owners and parents reached through nsfs ioctls (user namespaces
//! and pid ancestors that no process is in any more).

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nstrace_common::ns::NsType;

use crate::model::{Holder, NsKey, TaskHold};
use crate::procfs::holders::HolderScan;
use crate::procfs::nsfs;

/// One namespace as seen from /proc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcNs {
    pub key: NsKey,
    /// `NS_GET_ID` (6.18+); None on older kernels or when no fd could be
    /// opened (the namespace died after the holder scan).
    pub id: Option<u64>,
    /// Inode of the owning user namespace (for a user ns: its parent).
    pub owner: Option<u64>,
    /// Inode of the parent (pid and user namespaces only).
    pub parent: Option<u64>,
    /// No task, fd or mount holds it: reached only as an owner or parent,
    /// so it has no holders of its own.
    pub reached_only_via_ioctl: bool,
}

/// Why the /proc scan of namespaces failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcScanError {
    #[error("cannot stat nsfs through /proc/self/ns/net")]
    Nsfs(#[source] io::Error),
}

/// Builds one row per namespace: holder keys first (sorted), then those
/// reached only by ioctl (sorted). Work is spread over the cores: each
/// namespace costs two opens and several ioctls.
pub fn snapshot(scan: &HolderScan) -> Result<Vec<ProcNs>, ProcScanError> {
    let dev = nsfs::nsfs_dev().map_err(ProcScanError::Nsfs)?;
    let mut keys: Vec<NsKey> = scan.holders.keys().copied().collect();
    keys.sort_unstable();
    let known = Mutex::new(keys.iter().copied().collect::<HashSet<NsKey>>());
    let chunks: Vec<&[NsKey]> = keys.chunks(256).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.len()).min(8);
    let next = AtomicUsize::new(0);
    let parts = Mutex::new(Vec::new());
    let work = || {
        while let Some(chunk) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
            let part = walk(scan, chunk, dev, &known);
            parts.lock().unwrap_or_else(|e| e.into_inner()).push(part);
        }
    };
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|s| (0..threads).for_each(|_| drop(s.spawn(work))));
    }
    let mut parts = parts.into_inner().unwrap_or_else(|e| e.into_inner());
    // Net namespaces only a socket holds (its process lives elsewhere):
    // no /proc link names them.
    let mut by_socket = Vec::new();
    for (inode, fd) in crate::procfs::sockets::netns_of_sockets() {
        let key = NsKey::new(NsType::Net, inode);
        if known.lock().unwrap_or_else(|e| e.into_inner()).insert(key) {
            expand(key, Some(fd), dev, &known, &mut by_socket);
        }
    }
    parts.push((Vec::new(), by_socket));
    parts.sort_unstable_by_key(|(rows, _)| rows.first().map(|r: &ProcNs| r.key));
    let (mut rows, mut extra): (Vec<ProcNs>, Vec<ProcNs>) = (Vec::with_capacity(keys.len()), Vec::new());
    for (r, e) in parts {
        rows.extend(r);
        extra.extend(e);
    }
    extra.sort_unstable_by_key(|r| r.key);
    rows.extend(extra);
    Ok(rows)
}

/// Rows for `keys` (in order) and for the namespaces first reached from
/// them by ioctl. One namespace is open at a time (plus its ancestor
/// chain), so 10,000 namespaces never hit RLIMIT_NOFILE.
fn walk(scan: &HolderScan, keys: &[NsKey], dev: u64, known: &Mutex<HashSet<NsKey>>) -> (Vec<ProcNs>, Vec<ProcNs>) {
    let (mut rows, mut extra) = (Vec::with_capacity(keys.len()), Vec::new());
    for &key in keys {
        let fd = open_key(scan, key, dev);
        let mut stack = Vec::new();
        let row = describe(key, fd.as_ref(), false, dev, |k, fd| {
            if known.lock().unwrap_or_else(|e| e.into_inner()).insert(k) {
                stack.push((k, fd));
            }
        });
        rows.push(row);
        for (k, fd) in stack {
            expand(k, Some(fd), dev, known, &mut extra);
        }
    }
    (rows, extra)
}

/// Describes `key` (reached by ioctl or socket, not by a holder) into
/// `out`, then every owner and parent first reached from it.
fn expand(key: NsKey, fd: Option<OwnedFd>, dev: u64, known: &Mutex<HashSet<NsKey>>, out: &mut Vec<ProcNs>) {
    let mut stack = vec![(key, fd)];
    while let Some((key, fd)) = stack.pop() {
        let row = describe(key, fd.as_ref(), true, dev, |k, fd| {
            if known.lock().unwrap_or_else(|e| e.into_inner()).insert(k) {
                stack.push((k, Some(fd)));
            }
        });
        out.push(row);
    }
}

/// Reads id, owner and parent; hands newly seen owner/parent fds to `found`.
fn describe(
    key: NsKey,
    fd: Option<&OwnedFd>,
    via_ioctl: bool,
    dev: u64,
    mut found: impl FnMut(NsKey, OwnedFd),
) -> ProcNs {
    let mut row = ProcNs { key, id: None, owner: None, parent: None, reached_only_via_ioctl: via_ioctl };
    let Some(fd) = fd else { return row };
    row.id = nsfs::ns_id(fd).ok();
    // Errors here (EPERM: out of our reach) just leave the field empty.
    let mut follow = |r: io::Result<Option<OwnedFd>>, t: NsType| -> Option<u64> {
        let fd = r.ok()??;
        let (d, inode) = nsfs::dev_ino(&fd).ok()?;
        (d == dev).then_some(())?;
        found(NsKey::new(t, inode), fd);
        Some(inode)
    };
    row.owner = follow(nsfs::owner(fd), NsType::User);
    row.parent = match key.ns_type {
        // A user namespace's owner is its parent.
        NsType::User => row.owner,
        NsType::Pid => follow(nsfs::parent(fd), NsType::Pid),
        _ => None,
    };
    row
}

/// Opens the namespace through one of its holders, checking that the fd
/// really is that namespace (inodes are reused, processes move).
fn open_key(scan: &HolderScan, key: NsKey, dev: u64) -> Option<OwnedFd> {
    let name = key.ns_type.name();
    let for_children = match key.ns_type {
        NsType::Pid => "pid_for_children",
        NsType::Time => "time_for_children",
        _ => name,
    };
    let holders = scan.holders.get(&key).map(Vec::as_slice).unwrap_or_default();
    // Held only by a thread: the tgid's links would show the leader's.
    let thread = scan
        .thread_tids
        .get(&key)
        .into_iter()
        .flat_map(|tid| [format!("/proc/{tid}/ns/{name}"), format!("/proc/{tid}/ns/{for_children}")]);
    let paths = holders.iter().filter_map(|h| match h {
        Holder::Task { pid, hold: TaskHold::Member, .. } => Some(format!("/proc/{pid}/ns/{name}")),
        Holder::Task { pid, .. } => Some(format!("/proc/{pid}/ns/{for_children}")),
        Holder::Fd { pid, fd, .. } => Some(format!("/proc/{pid}/fd/{fd}")),
        Holder::Mount { path, via_pid, .. } => Some(format!("/proc/{via_pid}/root{path}")),
        // Its /proc link opens the socket, not the namespace.
        Holder::Socket { .. } => None,
    });
    // A few tries are enough: holders were alive a moment ago.
    thread.chain(paths).take(6).find_map(|p| {
        let fd = nsfs::open(Path::new(&p)).ok()?;
        (nsfs::dev_ino(&fd).ok()? == (dev, key.inode)).then_some(fd)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn inode(path: &str) -> u64 {
        nsfs::inode(nsfs::open(Path::new(path)).unwrap()).unwrap()
    }

    /// Our net namespace's owner is found; in the init user namespace (as on
    /// the test machines; /proc/1 itself may be unreadable in sandboxes) that
    /// is the init user ns, which has no parent.
    #[test]
    fn reaches_owner_of_host_net() {
        let scan = crate::procfs::holders::scan_excluding(&[]).unwrap();
        let rows = snapshot(&scan).unwrap();
        let net = NsKey::new(NsType::Net, inode("/proc/self/ns/net"));
        let user = inode("/proc/self/ns/user");
        let row = rows.iter().find(|r| r.key == net).expect("our net ns");
        assert_eq!(row.owner, Some(user));
        assert!(!row.reached_only_via_ioctl);
        let urow = rows.iter().find(|r| r.key == NsKey::new(NsType::User, user)).unwrap();
        const USER_NS_INIT_INO: u64 = 0xEFFF_FFFD;
        if user == USER_NS_INIT_INO {
            assert_eq!(urow.parent, None);
            assert!(urow.id.is_some(), "NS_GET_ID on 6.18+");
        } else {
            crate::test_skip(
                "reaches_owner_of_host_net",
                "not in the init user namespace; init-specific checks skipped",
            );
        }
        let keys: HashSet<NsKey> = rows.iter().map(|r| r.key).collect();
        assert_eq!(keys.len(), rows.len(), "one row per namespace");
    }

    /// A net namespace kept only by our fd, whose owning user namespace no
    /// process is in: the user namespace is found by NS_GET_USERNS alone.
    #[test]
    fn reaches_orphan_owner() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            crate::test_skip("reaches_orphan_owner", "needs root");
            return;
        }
        let mut child = Command::new("unshare").args(["--user", "--net", "sleep", "30"]).spawn().unwrap();
        let pid = child.id();
        let mine = inode("/proc/self/ns/user");
        let mut net_fd = None;
        for _ in 0..200 {
            let user = nsfs::open(Path::new(&format!("/proc/{pid}/ns/user"))).ok();
            if user.and_then(|u| nsfs::inode(u).ok()).is_some_and(|u| u != mine) {
                net_fd = nsfs::open(Path::new(&format!("/proc/{pid}/ns/net"))).ok();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let user_ino = inode(&format!("/proc/{pid}/ns/user"));
        let _ = child.kill();
        let _ = child.wait();
        let net_fd = net_fd.expect("child entered its namespaces");
        let net = NsKey::new(NsType::Net, nsfs::inode(&net_fd).unwrap());

        let rows = snapshot(&crate::procfs::holders::scan_excluding(&[]).unwrap()).unwrap();
        let row = rows.iter().find(|r| r.key == net).expect("net ns held by our fd");
        assert_eq!(row.owner, Some(user_ino));
        let urow = rows.iter().find(|r| r.key.inode == user_ino).expect("orphan user ns");
        assert!(urow.reached_only_via_ioctl);
        assert_eq!(urow.key.ns_type, NsType::User);
        assert_eq!(urow.parent, Some(mine));
        drop(net_fd);
    }
}

//! Sockets that pin network namespaces. A socket keeps its net namespace
//! alive even when the process holding the socket lives in another one;
//! /proc shows no link from the socket to that namespace, so nstrace
//! borrows each candidate socket (pidfd_getfd) and asks the kernel
//! (SIOCGSKNS) which namespace it belongs to.

use std::{
    collections::{HashMap, HashSet},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use serde::Serialize;

/// A socket fd in some process, pinning a net namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SocketHolder {
    pub pid: u32,
    pub fd: i32,
    pub comm: String,
    /// The socket's inode ("socket:[N]").
    pub socket: u64,
}

const SIOCGSKNS: libc::c_ulong = 0x894C;

fn borrow_fd(pidfd: &OwnedFd, fd: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; a non-negative result is a new fd we own.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    // SAFETY: the kernel just gave us this fd, and nothing else owns it.
    (r >= 0).then(|| unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// The net namespace of a socket, as an nsfs fd and its inode.
fn netns_of_socket(sock: &OwnedFd) -> Option<(OwnedFd, u64)> {
    // SAFETY: SIOCGSKNS takes no argument and returns a new fd.
    let ns = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSKNS as _) };
    if ns < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this fd, and nothing else owns it.
    let ns = unsafe { OwnedFd::from_raw_fd(ns) };
    // SAFETY: a plain C struct, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a valid out-pointer.
    (unsafe { libc::fstat(ns.as_raw_fd(), &mut st) } == 0).then_some((ns, st.st_ino))
}

/// Calls `f(pid, fd, socket inode, netns fd, netns inode)` for every socket
/// fd of every process but ours.
fn for_each_socket(mut f: impl FnMut(u32, i32, u64, OwnedFd, u64)) {
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else { return };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        let mut pidfd: Option<OwnedFd> = None;
        for entry in fds.flatten() {
            let Ok(link) = std::fs::read_link(entry.path()) else { continue };
            let Some(inode) = link.to_str().and_then(|l| l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
            else {
                continue;
            };
            let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            if pidfd.is_none() {
                // SAFETY: plain syscall; a non-negative result is an fd we own.
                let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
                if r < 0 {
                    break;
                }
                // SAFETY: the kernel just gave us this fd, and nothing else owns it.
                pidfd = Some(unsafe { OwnedFd::from_raw_fd(r as i32) });
            }
            let Some(sock) = borrow_fd(pidfd.as_ref().unwrap(), fd) else { continue };
            if let Some((ns, ns_inode)) = netns_of_socket(&sock) {
                f(pid, fd, inode, ns, ns_inode);
            }
        }
    }
}

/// Sockets, in any process, that belong to one of `netns` (inodes).
pub fn holders_of(netns: &HashSet<u64>) -> HashMap<u64, Vec<SocketHolder>> {
    let mut out: HashMap<u64, Vec<SocketHolder>> = HashMap::new();
    if netns.is_empty() {
        return out;
    }
    for_each_socket(|pid, fd, socket, _, ns| {
        if netns.contains(&ns) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            out.entry(ns).or_default().push(SocketHolder { pid, fd, comm: comm.trim().into(), socket });
        }
    });
    out
}

/// Every net namespace some socket belongs to, with an nsfs fd for each
/// (for the /proc snapshot: a namespace held only by a socket in a process
/// that lives elsewhere has no /proc link at all).
pub fn netns_of_sockets() -> HashMap<u64, OwnedFd> {
    let mut out = HashMap::new();
    for_each_socket(|_, _, _, ns, inode| {
        out.entry(inode).or_insert(ns);
    });
    out
}

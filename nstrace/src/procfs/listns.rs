//! listns(2) (6.19+): every namespace the kernel lists, by id, each opened
//! by an nsfs file handle holding only its id (6.19+ accepts a zero type and
//! inode) for the NS_GET_* ioctls. listns does not list a net namespace held
//! only by a socket; those come from the sockets themselves (SIOCGSKNS).
//! A snapshot mechanism where the eBPF walk cannot run, and a cross-check of
//! it where it can (`--source listns`).

use std::collections::HashSet;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use nstrace_common::ns::NsType;

use crate::procfs::nsfs;

/// listns(2): syscall numbers above 424 are shared by all architectures but alpha.
pub const SYS_LISTNS: libc::c_long = 470;
/// `FD_NSFS_ROOT`: the directory fd open_by_handle_at takes for nsfs handles.
const FD_NSFS_ROOT: libc::c_int = -10003;
/// `FILEID_NSFS`.
const FILEID_NSFS: libc::c_int = 0xf1;
/// Ids asked for per call.
const BATCH: usize = 1024;

/// `struct ns_id_req` (32 bytes).
#[repr(C)]
struct NsIdReq {
    size: u32,
    spare: u32,
    /// Resume after this id (0: from the start).
    ns_id: u64,
    /// `CLONE_NEW*` mask of the types wanted.
    ns_type: u32,
    spare2: u32,
    /// Only namespaces owned by this user namespace (0: any).
    user_ns_id: u64,
}

/// `struct file_handle` with an nsfs payload: `{ u64 ns_id; u32 ns_type; u32 inum }`.
#[repr(C)]
struct NsHandle {
    handle_bytes: u32,
    handle_type: libc::c_int,
    ns_id: u64,
    ns_type: u32,
    inum: u32,
}

fn all_types_mask() -> u32 {
    NsType::ALL.iter().map(|t| t.clone_flag() as u32).fold(0, |a, b| a | b)
}

/// Every namespace id the kernel lists, ascending (ENOSYS before 6.19).
pub fn ids() -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    let mut buf = vec![0u64; BATCH];
    let mut after = 0;
    loop {
        let req = NsIdReq { size: 32, spare: 0, ns_id: after, ns_type: all_types_mask(), spare2: 0, user_ns_id: 0 };
        // SAFETY: req is a valid ns_id_req; buf has room for BATCH ids.
        let n = unsafe { libc::syscall(SYS_LISTNS, &req as *const NsIdReq, buf.as_mut_ptr(), BATCH, 0u32) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        out.extend_from_slice(&buf[..n]);
        match buf[..n].last() {
            Some(&last) if n == BATCH => after = last,
            _ => return Ok(out),
        }
    }
}

/// Opens the namespace with this id (ESTALE once it is gone).
pub fn open(id: u64) -> io::Result<OwnedFd> {
    let handle = NsHandle { handle_bytes: 16, handle_type: FILEID_NSFS, ns_id: id, ns_type: 0, inum: 0 };
    // SAFETY: a valid file handle; a non-negative result is a new fd we own.
    let fd =
        unsafe { libc::syscall(libc::SYS_open_by_handle_at, FD_NSFS_ROOT, &handle as *const NsHandle, libc::O_RDONLY) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel installed a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// One namespace as listns and the NS_GET_* ioctls describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedNs {
    pub id: u64,
    pub ns_type: NsType,
    pub inode: u64,
    /// Inode of the owning user namespace (for a user namespace: its parent).
    pub owner: Option<u64>,
    /// Inode of the parent (pid and user namespaces).
    pub parent: Option<u64>,
}

fn describe(fd: &OwnedFd, id: u64) -> io::Result<ListedNs> {
    let ns_type = nsfs::ns_type(fd)?;
    let inode_of = |f: io::Result<Option<OwnedFd>>| f.ok().flatten().and_then(|f| nsfs::inode(&f).ok());
    let parent = if matches!(ns_type, NsType::Pid | NsType::User) { inode_of(nsfs::parent(fd)) } else { None };
    Ok(ListedNs { id, ns_type, inode: nsfs::inode(fd)?, owner: inode_of(nsfs::owner(fd)), parent })
}

/// Every namespace listns lists, plus the net namespaces only sockets hold.
/// Namespaces that die while being read are left out.
pub fn list() -> io::Result<Vec<ListedNs>> {
    let mut out: Vec<ListedNs> = ids()?.into_iter().filter_map(|id| describe(&open(id).ok()?, id).ok()).collect();
    let listed: HashSet<u64> = out.iter().filter(|n| n.ns_type == NsType::Net).map(|n| n.inode).collect();
    for (inode, fd) in crate::procfs::sockets::netns_of_sockets() {
        if !listed.contains(&inode)
            && let Ok(n) = describe(&fd, nsfs::ns_id(&fd).unwrap_or(0))
        {
            out.push(n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_kernels_32_bytes_and_the_handle_16_after_its_header() {
        assert_eq!(size_of::<NsIdReq>(), 32);
        assert_eq!(size_of::<NsHandle>(), 8 + 16);
        assert_eq!(all_types_mask().count_ones(), 8);
    }

    /// On this kernel: listns lists our own namespaces (6.19+), or is absent.
    #[test]
    fn our_own_namespaces_are_listed_where_listns_exists() {
        match ids() {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                eprintln!("SKIPPED our_own_namespaces_are_listed_where_listns_exists: no listns(2) (kernel < 6.19)");
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                eprintln!("SKIPPED our_own_namespaces_are_listed_where_listns_exists: not privileged");
            }
            Err(e) => panic!("listns: {e}"),
            Ok(ids) => {
                let fd = nsfs::open(std::path::Path::new("/proc/self/ns/net")).unwrap();
                let id = nsfs::ns_id(&fd).unwrap();
                assert!(ids.contains(&id), "our net namespace {id} in {} ids", ids.len());
                let opened = open(id).unwrap();
                assert_eq!(nsfs::inode(&opened).unwrap(), nsfs::inode(&fd).unwrap());
                let me = list().unwrap().into_iter().find(|n| n.id == id).expect("described");
                assert_eq!((me.ns_type, me.inode), (NsType::Net, nsfs::inode(&fd).unwrap()));
            }
        }
    }
}

//! Thin wrappers over the nsfs ioctls (`include/uapi/linux/nsfs.h`).
//!
//! Every function takes any fd that refers to a namespace: one opened from
//! `/proc/PID/ns/<name>`, an inherited nsfs fd, or an nsfs bind mount.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use nstrace_common::ns::NsType;

const NSIO: libc::c_ulong = 0xb7;

/// `_IO(type, nr)`: no direction, no size.
const fn io(nr: libc::c_ulong) -> libc::c_ulong {
    (NSIO << 8) | nr
}

/// `_IOR(type, nr, T)` for an 8-byte T: direction read (2) in bits 30..32,
/// size in bits 16..30.
const fn ior_u64(nr: libc::c_ulong) -> libc::c_ulong {
    (2 << 30) | (8 << 16) | (NSIO << 8) | nr
}

pub const NS_GET_USERNS: libc::c_ulong = io(1);
pub const NS_GET_PARENT: libc::c_ulong = io(2);
pub const NS_GET_NSTYPE: libc::c_ulong = io(3);
pub const NS_GET_OWNER_UID: libc::c_ulong = io(4);
/// `_IOR(NSIO, 13, __u64)`, added in 6.18 (checked against the uapi header:
/// 0x8008b70d). The id is unique for the life of the boot, unlike inodes.
pub const NS_GET_ID: libc::c_ulong = ior_u64(13);

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Opens a namespace file (`/proc/PID/ns/net`, a bind mount, ...) read-only.
pub fn open(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: c is a valid NUL-terminated string.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The kernel's never-reused namespace id (`NS_GET_ID`, 6.18+).
pub fn ns_id(fd: impl AsFd) -> io::Result<u64> {
    let mut id: u64 = 0;
    // SAFETY: NS_GET_ID writes one u64 through the pointer.
    cvt(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), NS_GET_ID, &mut id) })?;
    Ok(id)
}

/// An ioctl that returns a new fd; EPERM means the target namespace lies
/// outside the caller's user namespace (or does not exist: the init user
/// namespace has no owner, the init pid namespace no parent).
fn get_fd(fd: impl AsFd, req: libc::c_ulong) -> io::Result<Option<OwnedFd>> {
    // SAFETY: these ioctls take no argument and return a new fd.
    match cvt(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), req) }) {
        // SAFETY: the kernel installed a fresh fd that we now own.
        Ok(new) => Ok(Some(unsafe { OwnedFd::from_raw_fd(new) })),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The user namespace that owns this namespace (for a user namespace: its
/// parent). `None` when out of reach (EPERM).
pub fn owner(fd: impl AsFd) -> io::Result<Option<OwnedFd>> {
    get_fd(fd, NS_GET_USERNS)
}

/// The parent of a pid or user namespace. `None` when out of reach (EPERM);
/// EINVAL for the non-hierarchical types.
pub fn parent(fd: impl AsFd) -> io::Result<Option<OwnedFd>> {
    get_fd(fd, NS_GET_PARENT)
}

/// The namespace's type, from the `CLONE_NEW*` value the kernel returns.
pub fn ns_type(fd: impl AsFd) -> io::Result<NsType> {
    // SAFETY: NS_GET_NSTYPE takes no argument.
    let flag = cvt(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), NS_GET_NSTYPE) })?;
    NsType::from_clone_flag(flag as u64)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unknown namespace type {flag:#x}")))
}

/// Owner uid of a user namespace, as seen from the caller's user namespace.
pub fn owner_uid(fd: impl AsFd) -> io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer.
    cvt(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), NS_GET_OWNER_UID, &mut uid) })?;
    Ok(uid)
}

/// (st_dev, st_ino) of the fd. st_dev is the kernel's `new_encode_dev`
/// value on 64-bit, the same encoding perf uses in PERF_RECORD_NAMESPACES.
pub fn dev_ino(fd: impl AsFd) -> io::Result<(u64, u64)> {
    // SAFETY: zeroed stat is a valid out-parameter for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is valid for the call; st is writable.
    cvt(unsafe { libc::fstat(fd.as_fd().as_raw_fd(), &mut st) })?;
    Ok((st.st_dev, st.st_ino))
}

/// The nsfs inode number, i.e. the number in `net:[4026531840]`.
pub fn inode(fd: impl AsFd) -> io::Result<u64> {
    dev_ino(fd).map(|(_, ino)| ino)
}

/// st_dev of the nsfs superblock (one per boot), for matching the dev
/// numbers of PERF_RECORD_NAMESPACES. Cached after the first success.
pub fn nsfs_dev() -> io::Result<u64> {
    static DEV: OnceLock<u64> = OnceLock::new();
    if let Some(d) = DEV.get() {
        return Ok(*d);
    }
    let (dev, _) = dev_ino(open(Path::new("/proc/self/ns/net"))?)?;
    Ok(*DEV.get_or_init(|| dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_ns(t: NsType) -> OwnedFd {
        open(Path::new(&format!("/proc/self/ns/{}", t.name()))).unwrap()
    }

    #[test]
    fn ioctl_numbers_match_uapi() {
        assert_eq!(NS_GET_USERNS, 0xb701);
        assert_eq!(NS_GET_OWNER_UID, 0xb704);
        assert_eq!(NS_GET_ID, 0x8008_b70d);
    }

    #[test]
    fn types_and_inodes_of_self() {
        let dev = nsfs_dev().unwrap();
        for t in NsType::ALL {
            let fd = self_ns(t);
            assert_eq!(ns_type(&fd).unwrap(), t);
            let (d, ino) = dev_ino(&fd).unwrap();
            assert_eq!(d, dev, "{t:?} lives on nsfs");
            let link = std::fs::read_link(format!("/proc/self/ns/{}", t.name())).unwrap();
            assert_eq!(link.to_str().unwrap(), format!("{}:[{ino}]", t.name()));
        }
    }

    #[test]
    fn ids_owner_and_parent() {
        let net = self_ns(NsType::Net);
        match ns_id(&net) {
            Ok(id) => assert!(id > 0),
            Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
                crate::test_skip("ids_owner_and_parent", "ns_id: kernel before 6.18")
            }
            Err(e) => panic!("{e}"),
        }
        let user = self_ns(NsType::User);
        let owner = owner(&net).unwrap().expect("our own user ns is in reach");
        assert_eq!(inode(&owner).unwrap(), inode(&user).unwrap());
        assert_eq!(ns_type(&owner).unwrap(), NsType::User);
        // net is not hierarchical.
        assert_eq!(parent(&net).unwrap_err().raw_os_error(), Some(libc::EINVAL));
        // Walking user parents ends in None (init user ns), never an error.
        let mut cur = user;
        for _ in 0..40 {
            match parent(&cur).unwrap() {
                Some(p) => cur = p,
                None => return,
            }
        }
        panic!("user namespace chain too deep");
    }

    #[test]
    fn owner_uid_of_user_ns() {
        assert!(owner_uid(self_ns(NsType::User)).is_ok());
        // Not a user namespace.
        assert!(owner_uid(self_ns(NsType::Net)).is_err());
    }
}

//! A network namespace's id as the network subsystem numbers it from the
//! reader's network namespace (lsns's NETNSID): rtnetlink RTM_GETNSID
//! with the namespace given by an fd (NETNSA_FD).

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

const RTM_NEWNSID: u16 = 88;
const RTM_GETNSID: u16 = 90;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;
const NLMSG_ERROR: u16 = 2;

/// What the network subsystem says of one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetnsId {
    /// An id the reader's namespace has assigned it (`ip netns set`, or a
    /// veth peer seen from here).
    Assigned(i32),
    /// None assigned (NETNSA_NSID_NOT_ASSIGNED, -1).
    Unassigned,
}

/// A NETLINK_ROUTE socket, one per listing.
pub struct Netlink(OwnedFd);

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the fd is owned at once.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor nobody else owns.
        Ok(Netlink(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The id of the network namespace `ns` (an nsfs fd).
    pub fn nsid(&self, ns: BorrowedFd<'_>) -> io::Result<NetnsId> {
        let request = request(ns.as_raw_fd() as u32);
        // SAFETY: the buffer outlives the call; the kernel copies it.
        let sent = unsafe { libc::send(self.0.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut reply = [0u8; 256];
        // SAFETY: the kernel writes at most reply.len() bytes.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        parse_reply(&reply[..n as usize])
    }
}

/// nlmsghdr (16 bytes), rtgenmsg padded to 4, one NETNSA_FD attribute.
fn request(fd: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(28);
    m.extend_from_slice(&28u32.to_ne_bytes());
    m.extend_from_slice(&RTM_GETNSID.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&NETNSA_FD.to_ne_bytes());
    m.extend_from_slice(&fd.to_ne_bytes());
    m
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RTM_GETNSID reply: {what}"))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The NETNSA_NSID of an RTM_NEWNSID reply, or the error an NLMSG_ERROR
/// carries.
fn parse_reply(b: &[u8]) -> io::Result<NetnsId> {
    let len = i32_at(b, 0).ok_or_else(|| bad("short"))? as usize;
    let kind = u16_at(b, 4).ok_or_else(|| bad("short"))?;
    if len > b.len() || len < 16 {
        return Err(bad("length out of range"));
    }
    if kind == NLMSG_ERROR {
        let errno = i32_at(b, 16).ok_or_else(|| bad("short error"))?;
        return Err(io::Error::from_raw_os_error(-errno));
    }
    if kind != RTM_NEWNSID {
        return Err(bad("unexpected message type"));
    }
    // Attributes follow the header and the padded rtgenmsg.
    let mut at = 20;
    while at + 4 <= len {
        let attr_len = u16_at(b, at).ok_or_else(|| bad("short attribute"))? as usize;
        let attr_type = u16_at(b, at + 2).ok_or_else(|| bad("short attribute"))?;
        if attr_len < 4 {
            return Err(bad("attribute length"));
        }
        if attr_type == NETNSA_NSID {
            let id = i32_at(b, at + 4).ok_or_else(|| bad("short NETNSA_NSID"))?;
            return Ok(if id < 0 { NetnsId::Unassigned } else { NetnsId::Assigned(id) });
        }
        at += attr_len.next_multiple_of(4);
    }
    Err(bad("no NETNSA_NSID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(kind: u16, attrs: &[(u16, i32)]) -> Vec<u8> {
        let len = 20 + attrs.len() * 8;
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0; 4]);
        for (t, v) in attrs {
            m.extend_from_slice(&8u16.to_ne_bytes());
            m.extend_from_slice(&t.to_ne_bytes());
            m.extend_from_slice(&v.to_ne_bytes());
        }
        m
    }

    #[test]
    fn replies_are_decoded_with_size_checks() {
        assert_eq!(parse_reply(&reply(RTM_NEWNSID, &[(NETNSA_NSID, 3)])).unwrap(), NetnsId::Assigned(3));
        assert_eq!(parse_reply(&reply(RTM_NEWNSID, &[(7, 9), (NETNSA_NSID, -1)])).unwrap(), NetnsId::Unassigned);
        assert!(parse_reply(&reply(RTM_NEWNSID, &[(7, 9)])).is_err());
        let mut err = reply(NLMSG_ERROR, &[]);
        err[16..20].copy_from_slice(&(-libc::EBADF).to_ne_bytes());
        assert_eq!(parse_reply(&err).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert!(parse_reply(&[1, 2, 3]).is_err());
        let mut long = reply(RTM_NEWNSID, &[(NETNSA_NSID, 1)]);
        long[0] = 200;
        assert!(parse_reply(&long).is_err(), "a length past the data");
        assert_eq!(request(5).len(), 28);
    }

    #[test]
    fn our_own_network_namespace_answers() {
        // SAFETY: geteuid(2) takes no arguments and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to ask for a namespace id");
            return;
        }
        let own = std::fs::File::open("/proc/self/ns/net").unwrap();
        let id = Netlink::open().unwrap().nsid(std::os::fd::AsFd::as_fd(&own)).unwrap();
        // Our own namespace has no id in itself unless one was set.
        assert!(matches!(id, NetnsId::Unassigned | NetnsId::Assigned(_)), "{id:?}");
    }
}

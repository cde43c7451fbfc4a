//! A network namespace's id as the network subsystem numbers it from the
//! reader's network namespace (lsns's NETNSID): rtnetlink RTM_GETNSID
//! with the namespace given by an fd (NETNSA_FD).

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    RouteNetlinkMessage,
    nsid::{NsidAttribute, NsidMessage},
};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

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
pub struct Netlink(Socket);

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        Ok(Netlink(Socket::new(NETLINK_ROUTE)?))
    }

    /// The id of the network namespace `ns` (an nsfs fd).
    pub fn nsid(&self, ns: BorrowedFd<'_>) -> io::Result<NetnsId> {
        self.0.send(&request(ns.as_raw_fd() as u32), 0)?;
        let (reply, _) = self.0.recv_from_full()?;
        parse_reply(&reply)
    }
}

/// RTM_GETNSID for the namespace open as `fd` (NETNSA_FD).
fn request(fd: u32) -> Vec<u8> {
    let mut nsid = NsidMessage::default();
    nsid.attributes.push(NsidAttribute::Fd(fd));
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = 1;
    let mut message = NetlinkMessage::new(header, RouteNetlinkMessage::GetNsId(nsid).into());
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    buf
}

fn bad(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RTM_GETNSID reply: {what}"))
}

/// The NETNSA_NSID of an RTM_NEWNSID reply, or the error an NLMSG_ERROR
/// carries.
fn parse_reply(b: &[u8]) -> io::Result<NetnsId> {
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(b).map_err(bad)?;
    match reply.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => m
            .attributes
            .iter()
            .find_map(|a| match a {
                NsidAttribute::Id(id) => Some(if *id < 0 { NetnsId::Unassigned } else { NetnsId::Assigned(*id) }),
                _ => None,
            })
            .ok_or_else(|| bad("no NETNSA_NSID")),
        NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
        _ => Err(bad("unexpected message type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTM_NEWNSID: u16 = 88;
    const NETNSA_NSID: u16 = 1;
    const NLMSG_ERROR: u16 = 2;

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

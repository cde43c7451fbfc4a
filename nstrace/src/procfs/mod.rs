//! The /proc side: holders (tasks, threads, nsfs fds, bind mounts), sockets
//! that pin net namespaces, nsfs ioctls, the lsns-style namespace list,
//! listns(2), and the facts the views show beyond the holders ([`facts`]:
//! read before rendering, so that views do no I/O).
//! Reads /proc, nsfs files, /run/netns and /etc/passwd and asks the kernel
//! through ioctls, netlink and listns; writes nothing. Uses no eBPF, store
//! or view code.

pub mod facts;
pub mod holders;
pub mod kmsg;
pub mod listns;
pub mod namespaces;
pub mod netnsid;
pub mod nsfs;
pub mod pending;
pub mod sockets;
pub mod userns;

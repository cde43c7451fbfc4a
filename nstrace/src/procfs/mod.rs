//! The /proc side: holders (tasks, threads, nsfs fds, bind mounts), sockets
//! that pin net namespaces, nsfs ioctls, the lsns-style namespace list and
//! listns(2).
//! Knows nothing of eBPF, the store or any view.

pub mod holders;
pub mod listns;
pub mod namespaces;
pub mod netnsid;
pub mod nsfs;
pub mod sockets;

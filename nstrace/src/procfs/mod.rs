//! The /proc side: holders (tasks, threads, nsfs fds, bind mounts), sockets
//! that pin net namespaces, nsfs ioctls, and the lsns-style namespace list.
//! Knows nothing of eBPF, the store or any view.

pub mod holders;
pub mod namespaces;
pub mod nsfs;
pub mod sockets;

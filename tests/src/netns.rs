//! Network namespaces a test makes: by `ip netns`, and one only a socket keeps.

use std::process::{Command, Stdio};

use crate::{ChildGuard, sh, spawn_ready};

/// An `ip netns` name, deleted when dropped (also when the test fails or
/// already deleted it).
pub struct IpNetns(pub String);

impl IpNetns {
    pub fn add(name: String) -> IpNetns {
        sh(&format!("ip netns add {name}"));
        IpNetns(name)
    }
}

impl Drop for IpNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).stderr(Stdio::null()).status();
    }
}

/// A network namespace only a socket keeps: made with `ip netns add`, a
/// socket opened in it by a python process that then goes back to the
/// host's netns and lets go of everything else, and the mount deleted.
/// A line on the holder's stdin closes the socket ("closed" comes back).
pub struct SocketHeldNetns {
    pub holder: ChildGuard,
    pub inode: u64,
    /// The socket's fd in the holder.
    pub fd: i32,
}

impl SocketHeldNetns {
    pub fn new(name: String) -> SocketHeldNetns {
        let netns = IpNetns::add(name.clone());
        let script = r#"
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
home = os.open("/proc/self/ns/net", os.O_RDONLY)
there = os.open(sys.argv[1], os.O_RDONLY)
assert libc.setns(there, 0x40000000) == 0
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
assert libc.setns(home, 0x40000000) == 0
os.close(there); os.close(home)
print(os.stat(sys.argv[1]).st_ino, s.fileno(), flush=True)
sys.stdin.readline()
s.close()
print("closed", flush=True)
sys.stdin.readline()
"#;
        let (holder, first) = spawn_ready(
            Command::new("python3").args(["-c", script, &format!("/run/netns/{name}")]).stdin(Stdio::piped()),
        );
        let (inode, fd) = first.split_once(' ').expect("inode and fd");
        drop(netns); // ip netns del: the socket is the last reference
        SocketHeldNetns { holder, inode: inode.parse().unwrap(), fd: fd.parse().unwrap() }
    }

    /// Closes the socket: the namespace's last reference.
    pub fn close(&mut self) {
        self.holder.send_line("");
        assert_eq!(self.holder.next_line(), "closed");
    }
}

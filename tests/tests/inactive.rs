//! Inactive namespaces (6.19+, issue 40): a namespace the kernel counts no
//! task, nsfs file, mount or child namespace of (`__ns_ref_active` 0) is
//! alive but inactive, and `listns(2)` leaves it out. nstrace reports it
//! so, names what keeps it, and looking does not make it active again: the
//! kernel's own activation path (`__ns_ref_active_get`) is watched with a
//! kprobe event filtered on the namespace's inode while nstrace looks, then
//! while the test itself does what the /proc way does (SIOCGSKNS), which
//! must show up there. Skipped, with the reason, before 6.19.

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
};

use serde_json::Value;
use tests::{find_row, ls_json, nstrace, root_or_skip, skip, unique};

/// listns(2) (x86_64 and every architecture but alpha).
const SYS_LISTNS: libc::c_long = 470;
/// `SIOCGSKNS`: a socket's net namespace, as a new nsfs fd.
const SIOCGSKNS: libc::c_ulong = 0x894C;

/// Every namespace id listns(2) lists; None without listns.
fn listns_ids() -> Option<Vec<u64>> {
    #[repr(C)]
    struct Req {
        size: u32,
        spare: u32,
        ns_id: u64,
        ns_type: u32,
        spare2: u32,
        user_ns_id: u64,
    }
    let mut out = Vec::new();
    let mut buf = vec![0u64; 1024];
    loop {
        let req =
            Req { size: 32, spare: 0, ns_id: out.last().copied().unwrap_or(0), ns_type: 0, spare2: 0, user_ns_id: 0 };
        // SAFETY: a valid ns_id_req and room for buf.len() ids.
        let n = unsafe { libc::syscall(SYS_LISTNS, &req as *const Req, buf.as_mut_ptr(), buf.len(), 0u32) };
        if n < 0 {
            return None;
        }
        out.extend_from_slice(&buf[..n as usize]);
        if (n as usize) < buf.len() {
            return Some(out);
        }
    }
}

/// A kprobe event on `__ns_ref_active_get` (a namespace becoming active),
/// enabled in a private tracefs instance with a filter on one inode.
struct ActivationWatch {
    tracefs: PathBuf,
    group: String,
    instance: PathBuf,
}

impl ActivationWatch {
    fn new(inode: u64) -> Result<ActivationWatch, String> {
        let tracefs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("kprobe_events").exists())
            .ok_or("no tracefs with kprobe_events")?;
        let group = format!("nstrace_test_{}", std::process::id());
        // The argument by name and member: kprobe events with BTF arguments.
        let define = format!("p:{group}/active_get __ns_ref_active_get inum=ns->inum:u32\n");
        append(&tracefs.join("kprobe_events"), &define)
            .map_err(|e| format!("cannot define a kprobe event on __ns_ref_active_get with BTF arguments: {e}"))?;
        let watch = ActivationWatch { instance: tracefs.join("instances").join(&group), tracefs, group };
        std::fs::create_dir(&watch.instance).map_err(|e| format!("tracefs instance: {e}"))?;
        let event = watch.instance.join("events").join(&watch.group).join("active_get");
        std::fs::write(event.join("filter"), format!("inum == {inode}")).map_err(|e| format!("filter: {e}"))?;
        std::fs::write(event.join("enable"), "1").map_err(|e| format!("enable: {e}"))?;
        Ok(watch)
    }

    /// Activations seen so far.
    fn hits(&self) -> usize {
        let trace = std::fs::read_to_string(self.instance.join("trace")).unwrap_or_default();
        trace.lines().filter(|l| !l.starts_with('#') && l.contains("active_get")).count()
    }
}

impl Drop for ActivationWatch {
    fn drop(&mut self) {
        let event = self.instance.join("events").join(&self.group).join("active_get");
        let _ = std::fs::write(event.join("enable"), "0");
        let _ = std::fs::remove_dir(&self.instance);
        let _ = append(&self.tracefs.join("kprobe_events"), &format!("-:{}/active_get\n", self.group));
    }
}

fn append(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(path)?.write_all(line.as_bytes())
}

/// What the /proc way does to find a socket's namespace: borrow the socket
/// (pidfd_getfd) and ask (SIOCGSKNS); returns the namespace's inode.
fn siocgskns(pid: u32, fd: i32) -> u64 {
    // SAFETY: plain syscalls; non-negative results are new fds we own.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let sock = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
        assert!(sock >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        let sock = OwnedFd::from_raw_fd(sock as i32);
        let ns = libc::ioctl(sock.as_raw_fd(), SIOCGSKNS as _);
        assert!(ns >= 0, "SIOCGSKNS: {}", std::io::Error::last_os_error());
        let ns = std::fs::File::from(OwnedFd::from_raw_fd(ns));
        std::os::unix::fs::MetadataExt::ino(&ns.metadata().unwrap())
    }
}

/// Test 3 of the issue: a netns only a socket keeps (its process in the
/// host's netns) is reported inactive with the socket named; listns does
/// not list it before or after; `ls`, `why` and `leaks` do not activate
/// it; doctor's listns check agrees with the kernel's active counts.
#[test]
fn a_socket_held_netns_is_inactive_and_looking_does_not_activate_it() {
    let test = "a_socket_held_netns_is_inactive_and_looking_does_not_activate_it";
    if !root_or_skip(test) {
        return;
    }
    if listns_ids().is_none() {
        skip(test, "no listns(2) or active counts on this kernel (6.19+)");
        return;
    }
    let held = tests::SocketHeldNetns::new(unique("inact"));
    let inode = held.inode;
    let watch = ActivationWatch::new(inode);
    if let Err(why) = &watch {
        skip(test, &format!("activations are not watched ({why}); the rest is checked"));
    }

    let rows = ls_json(&["-t", "net"]);
    let row = find_row(&rows, "net", inode).unwrap_or_else(|| panic!("the socket's netns {inode} is not listed"));
    assert_eq!(row["state"], "inactive", "{row}");
    assert_eq!(row["active_refs"], 0, "{row}");
    let holders = row["holders"].as_array().unwrap();
    let socket = holders.iter().find(|h| h["kind"] == "socket").unwrap_or_else(|| panic!("no socket holder: {row}"));
    assert_eq!((socket["pid"].as_u64(), socket["fd"].as_i64()), (Some(held.holder.pid().into()), Some(held.fd.into())));
    let id = row["id"].as_u64().expect("an id (6.18+)");
    assert!(!listns_ids().unwrap().contains(&id), "listns lists inactive netns {id} before nstrace looked");

    let (code, why, err) = nstrace(&["why", &inode.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(why.contains("state:     inactive"), "{why}");
    assert!(why.contains(&format!("fd {} of process {}", held.fd, held.holder.pid())), "why names the socket: {why}");
    let (_, leaks, err) = nstrace(&["leaks", "--json"]);
    let leaks: Value = serde_json::from_str(&leaks).unwrap_or_else(|e| panic!("leaks --json ({e}): {err}"));
    assert!(leaks.to_string().contains(&inode.to_string()), "leaks lists the inactive netns: {leaks}");
    let (_, doctor, _) = nstrace(&["doctor", "--json"]);
    let doctor: Value = serde_json::from_str(&doctor).unwrap();
    let check = |name: &str| -> Value {
        doctor["snapshot_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(check("socket holders")["status"], "ok", "{doctor}");
    assert_eq!(check("listns vs active")["status"], "ok", "{doctor}");

    assert!(!listns_ids().unwrap().contains(&id), "listns lists netns {id} after nstrace looked");
    if let Ok(watch) = &watch {
        assert_eq!(watch.hits(), 0, "nstrace made netns {inode} active while it looked");
        // What lsns and the /proc way do makes it active: the watch sees it.
        assert_eq!(siocgskns(held.holder.pid(), held.fd), inode);
        assert!(watch.hits() > 0, "SIOCGSKNS activated netns {inode}, but the watch saw nothing: it cannot fail");
    }
}

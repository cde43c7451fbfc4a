//! What `limits` needs where the namespace-tree walk reads no charges
//! (before 6.18): each user namespace's owner uid (`NS_GET_OWNER_UID`) and
//! its limits, `/proc/sys/user/max_*_namespaces` as seen inside it (the
//! files show the limits of the reader's user namespace), read by `cat`
//! started inside it (`setns` between fork and exec).

use std::{
    collections::HashMap,
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nstrace_common::ns::{NS_TYPES, NsType};

use super::nsfs;

/// Per type, indexed by `NsType`.
pub type Limits = [Option<u32>; NS_TYPES];

/// Owner uids and limits of user namespaces, by inode.
#[derive(Clone, Debug, Default)]
pub struct UserNsFacts {
    pub owner_uid: HashMap<u64, u32>,
    pub limits: HashMap<u64, Limits>,
    /// Inodes of the host's initial net and mount namespaces (those
    /// nstrace runs in, when it runs in the initial user namespace): never
    /// charged, though their inodes are not fixed.
    pub initial: Vec<u64>,
}

/// How long one namespace's `cat` may take before it is killed.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

fn sysctl_path(t: NsType) -> String {
    format!("/proc/sys/user/max_{}_namespaces", t.name())
}

/// The numbers `cat` printed, one file a line, in `NsType` order.
fn parse(text: &str) -> Limits {
    let mut out = [None; NS_TYPES];
    for (slot, line) in out.iter_mut().zip(text.lines()) {
        *slot = line.trim().parse().ok();
    }
    out
}

/// The limits inside the user namespace `fd` refers to.
fn limits_inside(fd: &OwnedFd) -> Option<Limits> {
    let raw = fd.as_raw_fd();
    let mut cmd = Command::new("cat");
    cmd.args(NsType::ALL.map(sysctl_path)).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    // SAFETY: only setns(2) runs between fork and exec (async-signal-safe);
    // the fd stays open in the parent until the child is reaped.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::setns(raw, libc::CLONE_NEWUSER) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < READ_TIMEOUT => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut text).ok()?;
    Some(parse(&text))
}

/// Facts of the user namespaces `users` names (inode, a path to it: an
/// nsfs file) and of their ancestors (reached by `NS_GET_PARENT`: one
/// without a process of its own still has its limits read); the one
/// nstrace runs in is read directly.
pub fn gather(users: &[(u64, PathBuf)]) -> UserNsFacts {
    let mut facts = UserNsFacts::default();
    let own = nsfs::open(Path::new("/proc/self/ns/user")).ok().and_then(|f| nsfs::inode(f).ok());
    // PROC_USER_INIT_INO: nstrace runs in the initial user namespace.
    if own == Some(0xEFFF_FFFD) {
        for t in ["net", "mnt"] {
            if let Some(inode) =
                nsfs::open(Path::new(&format!("/proc/self/ns/{t}"))).ok().and_then(|f| nsfs::inode(f).ok())
            {
                facts.initial.push(inode);
            }
        }
    }
    for (inode, path) in users {
        let Ok(fd) = nsfs::open(path) else { continue };
        if nsfs::inode(&fd).ok() != Some(*inode) {
            continue;
        }
        // Up to the host's (or the first one already read): 33 levels at most.
        let mut at = Some(fd);
        for _ in 0..40 {
            let Some(fd) = at.take() else { break };
            let Ok(inode) = nsfs::inode(&fd) else { break };
            if facts.limits.contains_key(&inode) {
                break;
            }
            read_one(&mut facts, inode, &fd, own);
            at = nsfs::parent(&fd).ok().flatten();
        }
    }
    facts
}

fn read_one(facts: &mut UserNsFacts, inode: u64, fd: &OwnedFd, own: Option<u64>) {
    if let Ok(uid) = nsfs::owner_uid(fd) {
        facts.owner_uid.insert(inode, uid);
    }
    let limits = if Some(inode) == own {
        let read = |t: NsType| std::fs::read_to_string(sysctl_path(t)).ok()?.trim().parse().ok();
        Some(NsType::ALL.map(read))
    } else {
        limits_inside(fd)
    };
    if let Some(l) = limits {
        facts.limits.insert(inode, l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cats_output_is_read_in_type_order() {
        let l = parse("10\n20\nbad\n40\n");
        assert_eq!(l[..5], [Some(10), Some(20), None, Some(40), None]);
    }

    /// Our own user namespace's limits are the files we read ourselves.
    #[test]
    fn own_limits_and_owner() {
        let own = nsfs::open(Path::new("/proc/self/ns/user")).unwrap();
        let inode = nsfs::inode(&own).unwrap();
        let f = gather(&[(inode, "/proc/self/ns/user".into())]);
        let uts: u32 = std::fs::read_to_string("/proc/sys/user/max_uts_namespaces").unwrap().trim().parse().unwrap();
        assert_eq!(f.limits[&inode][NsType::Uts as usize], Some(uts));
    }
}

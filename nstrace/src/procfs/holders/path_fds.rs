//! nsfs fds opened through a bind-mount path (`ip netns exec`, CNI
//! plugins opening `/run/netns/NAME`, Go's `netns.GetFromPath`): their
//! `/proc/PID/fd` link reads as that path, or as `/` once the mount was
//! detached (`ip netns del` while the fd stays open), never `net:[…]`.
//! Missing them would call the namespace orphaned, a false leak.

use super::*;

/// Adds the fds among `scan.path_fds` that are nsfs files as fd holders:
/// only links equal to an nsfs mount point found in some mount namespace,
/// or `/`, are looked at (a stat each; an open and NS_GET_NSTYPE for the
/// few that are nsfs).
pub(super) fn resolve(proc_fd: BorrowedFd<'_>, scan: &mut HolderScan) {
    let candidates = std::mem::take(&mut scan.path_fds);
    if candidates.is_empty() {
        return;
    }
    let targets: HashSet<&[u8]> = scan
        .holders
        .values()
        .flatten()
        .filter_map(|h| match h {
            Holder::Mount { path, .. } => Some(path.as_bytes()),
            _ => None,
        })
        .collect();
    let wanted: Vec<PathFd> =
        candidates.into_iter().filter(|(.., link)| &**link == b"/" || targets.contains(&**link)).collect();
    let Ok(nsfs_dev) = crate::procfs::nsfs::nsfs_dev() else { return };
    let mut found = Vec::new();
    for (pid, fd, comm, _) in wanted {
        let mut p = CPath::new();
        p.num(pid).push(b"/fd/").num(fd as u32);
        // Only nsfs files are opened (NS_GET_NSTYPE below would refuse the
        // others too; this spares opening a directory or a file).
        match sys::stat_at(proc_fd, p.as_cstr()) {
            Ok((dev, _)) if dev == nsfs_dev => {}
            _ => continue,
        }
        // Open the nsfs file itself (not O_PATH: the ioctl needs a real fd).
        let Ok(file) = sys::open_at(Some(proc_fd), p.as_cstr(), libc::O_RDONLY) else { continue };
        let (Ok((_, inode)), Ok(ns_type)) = (crate::procfs::nsfs::dev_ino(&file), crate::procfs::nsfs::ns_type(&file))
        else {
            continue;
        };
        found.push((NsKey::new(ns_type, inode), Holder::Fd { pid, fd, comm }));
    }
    for (key, h) in found {
        insert_in_order(scan.holders.entry(key).or_default(), h);
    }
}

/// Puts `h` among a namespace's holders where the scan would have: tasks
/// and fds in pid order, mounts last; never twice.
fn insert_in_order(list: &mut Vec<Holder>, h: Holder) {
    if list.contains(&h) {
        return;
    }
    let Holder::Fd { pid, .. } = &h else { return list.push(h) };
    let at = list
        .iter()
        .position(|x| match x {
            Holder::Mount { .. } => true,
            Holder::Task { pid: p, .. } | Holder::Fd { pid: p, .. } | Holder::Socket { pid: p, .. } => p > pid,
        })
        .unwrap_or(list.len());
    list.insert(at, h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_fd_goes_before_mounts_and_in_pid_order_once() {
        let task = |pid| Holder::Task { pid, comm: "sh".into(), hold: TaskHold::Member, tid: None };
        let fd = |pid, fd| Holder::Fd { pid, fd, comm: "py".into() };
        let mount = Holder::Mount { path: "/run/netns/x".into(), mnt_ns: 1, via_pid: 1, stack: Default::default() };
        let mut list = vec![task(5), fd(9, 3), mount.clone()];
        insert_in_order(&mut list, fd(7, 4));
        assert_eq!(list, [task(5), fd(7, 4), fd(9, 3), mount.clone()]);
        insert_in_order(&mut list, fd(7, 4));
        assert_eq!(list.len(), 4, "never twice");
        insert_in_order(&mut list, fd(20, 1));
        assert_eq!(list, [task(5), fd(7, 4), fd(9, 3), fd(20, 1), mount.clone()]);
        let mut empty = Vec::new();
        insert_in_order(&mut empty, fd(1, 1));
        assert_eq!(empty, [fd(1, 1)]);
        // After the same process's task entry, as the scan lists them.
        let mut same = vec![task(7), mount.clone()];
        insert_in_order(&mut same, fd(7, 4));
        assert_eq!(same, [task(7), fd(7, 4), mount]);
    }

    /// Our own fd on a netns opened through a bind mount of it, found once
    /// the mount is known (this process's scan is the real /proc).
    #[test]
    fn an_fd_opened_by_path_is_resolved_to_its_namespace() {
        let dir = std::env::temp_dir().join(format!("nstrace-pathfd-{}", std::process::id()));
        std::fs::write(&dir, b"").unwrap();
        let target = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        // SAFETY: plain mount(2) with NUL-terminated strings.
        let mounted = unsafe {
            libc::mount(
                c"/proc/self/ns/uts".as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        } == 0;
        if !mounted {
            crate::test_skip("an_fd_opened_by_path_is_resolved_to_its_namespace", "bind mounts need root");
            std::fs::remove_file(&dir).ok();
            return;
        }
        let file = std::fs::File::open(&dir).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let inode = crate::procfs::nsfs::inode(&file).unwrap();
        let proc_fd = sys::open_at(None, c"/proc", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
        let me = std::process::id();
        let mut scan = HolderScan::default();
        let link: Box<[u8]> = dir.to_str().unwrap().as_bytes().into();
        scan.path_fds.push((me, fd, "test".into(), link.clone()));
        // Not an nsfs mount anyone listed: left alone.
        resolve(proc_fd.as_fd(), &mut scan);
        assert!(scan.holders.is_empty());
        let key = NsKey::new(NsType::Uts, inode);
        scan.holders.insert(
            key,
            vec![Holder::Mount {
                path: dir.to_str().unwrap().into(),
                mnt_ns: 1,
                via_pid: me,
                stack: Default::default(),
            }],
        );
        scan.path_fds.push((me, fd, "test".into(), link));
        resolve(proc_fd.as_fd(), &mut scan);
        // SAFETY: umount2 of our own mount.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        std::fs::remove_file(&dir).ok();
        assert_eq!(scan.holders[&key][0], Holder::Fd { pid: me, fd, comm: "test".into() }, "{:?}", scan.holders);
        assert!(scan.path_fds.is_empty());
    }
}

//! nsfs bind mounts: one mountinfo read per mount namespace.

use super::*;

/// Reads mountinfo once per mount namespace and records nsfs bind mounts.
pub(super) fn read_mounts(proc_fd: BorrowedFd<'_>, scan: &mut HolderScan) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut link = [0u8; 128];
    // (namespace, mount namespace, mount point) -> its entry in `found`.
    let mut seen: HashMap<(NsKey, u64, String), usize> = HashMap::new();
    let mut found: Vec<(NsKey, Holder)> = Vec::new();
    let mut mnt_list: Vec<(u64, u32)> = scan.mount_ns_via.iter().map(|(&k, &v)| (k, v)).collect();
    mnt_list.sort_unstable();
    for (mnt_ns, first) in mnt_list {
        // Fall back to other members if the first one has exited or moved.
        let key = NsKey::new(NsType::Mnt, mnt_ns);
        let others = scan.holders.get(&key).into_iter().flatten().filter_map(|h| match h {
            Holder::Task { pid, hold: TaskHold::Member, .. } if *pid != first => Some(*pid),
            _ => None,
        });
        let mut via = None;
        for pid in std::iter::once(first).chain(others).take(8) {
            let mut p = CPath::new();
            if sys::read_at(proc_fd, p.num(pid).push(b"/mountinfo").as_cstr(), &mut buf).is_err() {
                continue;
            }
            // Re-check the namespace after reading: a setns in between
            // would attribute the mounts to the wrong namespace.
            let mut p = CPath::new();
            let now = sys::readlink_at(proc_fd, p.num(pid).push(b"/ns/mnt").as_cstr(), &mut link);
            if now.ok().and_then(parse_ns_link).map(|(_, i)| i) == Some(mnt_ns) {
                via = Some(pid);
                break;
            }
        }
        let Some(via_pid) = via else {
            scan.mount_ns_via.remove(&mnt_ns);
            continue;
        };
        scan.mount_ns_via.insert(mnt_ns, via_pid);
        for line in buf.split(|&b| b == b'\n') {
            if !contains(line, b" - nsfs ") {
                continue;
            }
            let Some(m) = parse_mountinfo_line(line) else {
                continue;
            };
            let Some((ns_type, inode)) = parse_ns_link(m.root.as_bytes()) else {
                continue;
            };
            let key = NsKey::new(ns_type, inode);
            if let Some(&at) = seen.get(&(key, mnt_ns, m.mount_point.clone())) {
                // The same namespace mounted again over the same point.
                if let (_, Holder::Mount { stack, .. }) = &mut found[at] {
                    stack.stacked += 1;
                    stack.peer_group = stack.peer_group.or(m.peer_group);
                }
                continue;
            }
            seen.insert((key, mnt_ns, m.mount_point.clone()), found.len());
            if ns_type == NsType::Net
                && let Some(name) = netns_name(&m.mount_point)
            {
                let names = scan.netns_names.entry(inode).or_default();
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
            let stack = MountStack { stacked: 1, peer_group: m.peer_group };
            found.push((key, Holder::Mount { path: m.mount_point, mnt_ns, via_pid, stack }));
        }
    }
    for (key, h) in found {
        scan.holders.entry(key).or_default().push(h);
    }
}

fn netns_name(mount_point: &str) -> Option<&str> {
    let name = mount_point.strip_prefix("/run/netns/")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

//! nsfs bind mounts inside mount namespaces no task is in, which no
//! `/proc/PID/mountinfo` shows: listmount(2) and statmount(2) with the mount
//! namespace's id (6.11+; the id from NS_GET_ID, 6.18+, NS_GET_MNTNS_ID,
//! 6.11+, or NS_MNT_GET_INFO, 6.12+, on an fd of the namespace). Older
//! kernels: not reachable. On 6.12 (Debian's, in our VM) listmount of
//! another namespace gave only its first mount, not the mounts below it.

use super::*;

const SYS_STATMOUNT: libc::c_long = 457;
const SYS_LISTMOUNT: libc::c_long = 458;
/// `LSMT_ROOT`: list from the namespace's root mount.
const LSMT_ROOT: u64 = u64::MAX;
const STATMOUNT_MNT_ROOT: u64 = 0x08;
/// Mounts listed per namespace at most.
const MAX_MOUNTS: usize = 100_000;
const STATMOUNT_MNT_POINT: u64 = 0x10;
const STATMOUNT_FS_TYPE: u64 = 0x20;
/// `struct statmount`: the string offsets, then `str[]` at byte 512.
const SM_FS_TYPE: usize = 36;
const SM_MNT_ROOT: usize = 104;
const SM_MNT_POINT: usize = 108;
const SM_STR: usize = 512;
/// NS_GET_MNTNS_ID: `_IOR(0xb7, 5, __u64)` (6.11+).
const NS_GET_MNTNS_ID: libc::c_ulong = (2 << 30) | (8 << 16) | (0xb7 << 8) | 5;
/// NS_MNT_GET_INFO: `_IOR(0xb7, 10, struct mnt_ns_info)` (16 bytes, 6.12+).
const NS_MNT_GET_INFO: libc::c_ulong = (2 << 30) | (16 << 16) | (0xb7 << 8) | 10;

/// `struct mnt_id_req`, version 1 (32 bytes).
#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
    mnt_ns_id: u64,
}

/// One nsfs bind mount: where, and which namespace it pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsfsMount {
    pub mount_point: String,
    pub key: NsKey,
}

/// The id of the mount namespace `fd` refers to (NS_GET_ID, else
/// NS_GET_MNTNS_ID, else NS_MNT_GET_INFO).
pub fn mnt_ns_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    if let Ok(id) = crate::procfs::nsfs::ns_id(fd) {
        return Ok(id);
    }
    let mut id = 0u64;
    // SAFETY: NS_GET_MNTNS_ID writes one u64.
    if unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_MNTNS_ID, &mut id) } == 0 {
        return Ok(id);
    }
    let mut info = [0u64; 2];
    info[0] = 16; // size (u32), nr_mounts (u32) = 0
    // SAFETY: NS_MNT_GET_INFO reads the size and writes 16 bytes.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_MNT_GET_INFO, info.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[1])
}

/// The nsfs bind mounts of the mount namespace with id `mnt_ns_id`.
pub fn nsfs_mounts(mnt_ns_id: u64) -> io::Result<Vec<NsfsMount>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    let ids = list(mnt_ns_id)?;
    log::debug!("listmount of mount namespace id {mnt_ns_id}: {} mounts", ids.len());
    for mnt_id in ids {
        let req = MntIdReq {
            size: 32,
            spare: 0,
            mnt_id,
            param: STATMOUNT_MNT_ROOT | STATMOUNT_MNT_POINT | STATMOUNT_FS_TYPE,
            mnt_ns_id,
        };
        loop {
            // SAFETY: req is a valid mnt_id_req; buf is writable for its length.
            let r = unsafe { libc::syscall(SYS_STATMOUNT, &req, buf.as_mut_ptr(), buf.len(), 0) };
            if r == 0 {
                break;
            }
            match io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::EOVERFLOW) && buf.len() < 1 << 20 => {
                    buf.resize(buf.len() * 4, 0);
                }
                // Unmounted meanwhile.
                e if e.raw_os_error() == Some(libc::ENOENT) => break,
                e => return Err(e),
            }
        }
        match parse_statmount(&buf) {
            Some(m) => out.push(m),
            None => log::trace!("statmount {mnt_id}: {:?}", summary(&buf)),
        }
    }
    Ok(out)
}

/// Every mount id of the namespace. Before 6.14 or so listmount(2) lists
/// a mount's direct children only (later kernels list the whole subtree),
/// so the tree is walked breadth-first, each id once.
fn list(mnt_ns_id: u64) -> io::Result<Vec<u64>> {
    let mut ids = children(mnt_ns_id, LSMT_ROOT)?;
    let mut seen: HashSet<u64> = ids.iter().copied().collect();
    let mut next = 0;
    // Bounded: a namespace with more mounts than this is listed in part.
    while next < ids.len() && ids.len() < MAX_MOUNTS {
        let below = children(mnt_ns_id, ids[next]).unwrap_or_else(|e| {
            log::trace!("listmount below mount {} of mount namespace id {mnt_ns_id}: {e}", ids[next]);
            Vec::new()
        });
        ids.extend(below.into_iter().filter(|id| seen.insert(*id)));
        next += 1;
    }
    Ok(ids)
}

/// Mounts listmount(2) gives below `mnt_id` (in several calls if many).
fn children(mnt_ns_id: u64, mnt_id: u64) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    let mut chunk = [0u64; 512];
    let mut last = 0;
    loop {
        let req = MntIdReq { size: 32, spare: 0, mnt_id, param: last, mnt_ns_id };
        // SAFETY: req is a valid mnt_id_req; chunk is writable for its length.
        let n = unsafe { libc::syscall(SYS_LISTMOUNT, &req, chunk.as_mut_ptr(), chunk.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = &chunk[..n as usize];
        ids.extend_from_slice(got);
        match got.last() {
            Some(&l) if got.len() == chunk.len() => last = l,
            _ => return Ok(ids),
        }
    }
}

/// The mask and the three strings of a `struct statmount` buffer, for logs.
fn summary(buf: &[u8]) -> String {
    let mask = buf.get(8..16).map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default())).unwrap_or(0);
    let string = |off: usize| -> String {
        let Some(o) = buf.get(off..off + 4).map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default())) else {
            return "?".into();
        };
        let rest = buf.get(SM_STR + o as usize..).unwrap_or_default();
        String::from_utf8_lossy(&rest[..rest.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned()
    };
    format!(
        "mask {mask:#x} fs {:?} root {:?} point {:?}",
        string(SM_FS_TYPE),
        string(SM_MNT_ROOT),
        string(SM_MNT_POINT)
    )
}

/// An nsfs mount from a `struct statmount` buffer; None for other file systems.
fn parse_statmount(buf: &[u8]) -> Option<NsfsMount> {
    let u32_at = |off: usize| Some(u32::from_ne_bytes(buf.get(off..off + 4)?.try_into().ok()?) as usize);
    let string = |off: usize| {
        let start = SM_STR + u32_at(off)?;
        let rest = buf.get(start..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    };
    if string(SM_FS_TYPE)? != "nsfs" {
        return None;
    }
    let (ns_type, inode) = parse_ns_link(string(SM_MNT_ROOT)?.as_bytes())?;
    Some(NsfsMount { mount_point: string(SM_MNT_POINT)?.to_string(), key: NsKey::new(ns_type, inode) })
}

/// Adds the nsfs bind mounts of mount namespaces no task is in as mount
/// holders with no `via_pid`: those the kernel's namespace list names
/// (`ids`: inode -> id, every mount namespace the walk saw) and those an fd
/// or a reachable bind mount holds (the id asked of it); again for mount
/// namespaces those mounts reveal, a few rounds deep.
pub(super) fn read_taskless_mounts(proc_fd: BorrowedFd<'_>, scan: &mut HolderScan, ids: &HashMap<u64, u64>) {
    let mut done: HashSet<u64> = scan.mount_ns_via.keys().copied().collect();
    let mut listed: Vec<(u64, u64)> =
        ids.iter().filter(|(ino, _)| !done.contains(ino)).map(|(&i, &d)| (i, d)).collect();
    listed.sort_unstable();
    for (inode, id) in listed {
        done.insert(inode);
        add_mounts_of(scan, inode, id);
    }
    for _round in 0..4 {
        // A way to open each: an fd ("PID/fd/N"), or a bind mount a task
        // reaches ("PID/root/PATH").
        let todo: Vec<(u64, Vec<u8>)> = scan
            .holders
            .iter()
            .filter(|(k, _)| k.ns_type == NsType::Mnt && !done.contains(&k.inode))
            .filter_map(|(k, list)| {
                list.iter().find_map(|h| match h {
                    Holder::Fd { pid, fd, .. } => Some((k.inode, format!("{pid}/fd/{fd}").into_bytes())),
                    Holder::Mount { path, via_pid, .. } if *via_pid != 0 => {
                        Some((k.inode, format!("{via_pid}/root{path}").into_bytes()))
                    }
                    _ => None,
                })
            })
            .collect();
        if todo.is_empty() {
            return;
        }
        for (inode, path) in todo {
            done.insert(inode);
            let Ok(path) = std::ffi::CString::new(path) else { continue };
            let Ok(file) = sys::open_at(Some(proc_fd), &path, libc::O_RDONLY) else { continue };
            match mnt_ns_id(file.as_fd()) {
                Ok(id) => add_mounts_of(scan, inode, id),
                Err(e) => log::debug!("the id of mount namespace {inode}: {e}"),
            }
        }
    }
}

/// The nsfs mounts of mount namespace `inode` (id `id`) as its holders' holders.
fn add_mounts_of(scan: &mut HolderScan, inode: u64, id: u64) {
    let mounts = match nsfs_mounts(id) {
        Ok(m) => m,
        Err(e) => {
            log::debug!("listmount/statmount of mount namespace {inode} (id {id}): {e}");
            return;
        }
    };
    log::debug!("mount namespace {inode} (id {id}) no task is in: {} nsfs mounts", mounts.len());
    for m in mounts {
        let h = Holder::Mount { path: m.mount_point, mnt_ns: inode, via_pid: 0, stack: Default::default() };
        let list = scan.holders.entry(m.key).or_default();
        if !list.contains(&h) {
            list.push(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statmount_buf(fs_type: &str, root: &str, point: &str) -> Vec<u8> {
        let mut buf = vec![0u8; SM_STR];
        let mut strings = Vec::new();
        let mut put = |off: usize, s: &str, buf: &mut Vec<u8>| {
            buf[off..off + 4].copy_from_slice(&(strings.len() as u32).to_ne_bytes());
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
        };
        put(SM_FS_TYPE, fs_type, &mut buf);
        put(SM_MNT_ROOT, root, &mut buf);
        put(SM_MNT_POINT, point, &mut buf);
        buf.extend_from_slice(&strings);
        buf
    }

    #[test]
    fn statmount_buffers_are_read_for_nsfs_mounts_only() {
        let m = parse_statmount(&statmount_buf("nsfs", "net:[4026532290]", "/run/netns/x")).unwrap();
        assert_eq!(m.mount_point, "/run/netns/x");
        assert_eq!(m.key, NsKey::new(NsType::Net, 4026532290));
        assert_eq!(parse_statmount(&statmount_buf("tmpfs", "/", "/tmp")), None);
        assert_eq!(parse_statmount(&statmount_buf("nsfs", "garbage", "/x")), None);
        assert_eq!(parse_statmount(&[0u8; 100]), None, "short buffer");
        let mut cut = statmount_buf("nsfs", "net:[1]", "/x");
        cut.truncate(cut.len() - 1);
        assert_eq!(parse_statmount(&cut), None, "no terminating NUL");
    }

    #[test]
    fn the_ioctl_numbers_are_the_kernels() {
        assert_eq!(NS_MNT_GET_INFO, 0x8010_b70a);
        assert_eq!(NS_GET_MNTNS_ID, 0x8008_b705);
    }
}

//! Raw syscalls over borrowed fds and C strings, so the hot loop allocates
//! nothing.

/// A short NUL-terminated relative path built on the stack ("1234/ns/net").
pub(super) struct CPath {
    buf: [u8; 64],
    len: usize,
}

impl CPath {
    pub(super) fn new() -> Self {
        CPath { buf: [0; 64], len: 0 }
    }

    pub(super) fn push(&mut self, s: &[u8]) -> &mut Self {
        // Our paths are at most ~35 bytes; anything longer is cut and the
        // syscall simply fails.
        let n = s.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }

    pub(super) fn num(&mut self, n: u32) -> &mut Self {
        let mut tmp = [0u8; 10];
        let mut i = tmp.len();
        let mut n = n;
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&tmp[i..])
    }

    pub(super) fn as_cstr(&mut self) -> &CStr {
        self.buf[self.len] = 0;
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }
}

use super::*;

fn cvt(r: libc::c_long) -> io::Result<usize> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
}

pub fn open_at(dir: Option<BorrowedFd<'_>>, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let dfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: path is NUL-terminated; the returned fd is new and ours.
    let fd = cvt(unsafe { libc::openat(dfd, path.as_ptr(), flags | libc::O_CLOEXEC) } as libc::c_long)?;
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// (st_dev, st_ino) of what `path` (followed, magic links too) names.
pub fn stat_at(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<(u64, u64)> {
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated; st is writable.
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), path.as_ptr(), &mut st, 0) } as libc::c_long)?;
    Ok((st.st_dev, st.st_ino))
}

/// The link target, or an error if it did not fit (never a prefix).
pub fn readlink_at<'b>(dir: BorrowedFd<'_>, path: &CStr, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
    // SAFETY: buf is writable for buf.len() bytes.
    let n =
        cvt(unsafe { libc::readlinkat(dir.as_raw_fd(), path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
            as libc::c_long)?;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    Ok(&buf[..n])
}

/// Replaces `buf` with the whole file.
pub fn read_at(dir: BorrowedFd<'_>, path: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
    let fd = open_at(Some(dir), path, libc::O_RDONLY)?;
    buf.clear();
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.capacity().max(4096));
        }
        let spare = buf.capacity() - buf.len();
        // SAFETY: reading into the vector's spare capacity.
        let n =
            cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().add(buf.len()).cast(), spare) } as libc::c_long)?;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the kernel initialised n more bytes.
        unsafe { buf.set_len(buf.len() + n) };
    }
}

/// Like read_at for single-record seq files (`stat`, `cgroup`): they
/// hand over their whole text in one read when it fits, so a short read
/// is the end and the EOF read is saved.
pub fn read_small(dir: BorrowedFd<'_>, path: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
    let fd = open_at(Some(dir), path, libc::O_RDONLY)?;
    buf.clear();
    buf.reserve(4096);
    loop {
        let spare = buf.capacity() - buf.len();
        // SAFETY: reading into the vector's spare capacity.
        let n =
            cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().add(buf.len()).cast(), spare) } as libc::c_long)?;
        // SAFETY: the kernel initialised n more bytes.
        unsafe { buf.set_len(buf.len() + n) };
        if n < spare {
            return Ok(());
        }
        buf.reserve(buf.capacity());
    }
}

/// Calls `f` with each entry name except `.` and `..`. Only for /proc
/// directories: their readdir stops early only when the buffer is full,
/// so a batch leaving room for another entry was the last one.
pub fn for_each_dirent(dir: BorrowedFd<'_>, buf: &mut Vec<u8>, mut f: impl FnMut(&CStr)) -> io::Result<()> {
    buf.clear();
    buf.reserve(DENTS_BUF);
    loop {
        // SAFETY: the buffer is writable for its capacity.
        let n = cvt(unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.capacity()) })?;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the kernel initialised n bytes.
        unsafe { buf.set_len(n) };
        // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
        let mut off = 0;
        while off + 19 < n {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n {
                break;
            }
            if let Ok(name) = CStr::from_bytes_until_nul(&buf[off + 19..off + reclen])
                && name != c"."
                && name != c".."
            {
                f(name);
            }
            off += reclen;
        }
        buf.clear();
        // The largest entry: 19-byte header + 255-byte name + NUL, aligned.
        if n + 280 <= buf.capacity() {
            return Ok(());
        }
    }
}

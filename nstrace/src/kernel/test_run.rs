//! A walk program run on demand: a loaded `raw_tracepoint` program held by
//! its fd and run with BPF_PROG_TEST_RUN, zeroed arguments, no data.
//!
//! Plain bpf(2) calls rather than aya's `RawTracePoint::from_pin`: aya
//! probes the kernel's BPF features (nine BTF and five program loads)
//! the first time it describes a program, which is most of a one-shot
//! snapshot's start on a quiet host, and a walk needs none of them.

use std::{
    ffi::CString,
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use aya::programs::{ProgramError, RawTracePoint};

const BPF_OBJ_GET: libc::c_int = 7;
const BPF_PROG_TEST_RUN: libc::c_int = 10;
/// `union bpf_attr` is 144 bytes on 6.x; the kernel accepts a shorter
/// one when the fields past its end are zero, and needs the command's
/// fields only.
const ATTR_SIZE: usize = 128;

/// Arguments of a raw tracepoint: the walk programs read none, but the
/// test run wants a context of whole u64s.
const RAW_TP_ARGS: usize = 1;

/// A loaded walk program.
#[derive(Debug)]
pub struct WalkProgram {
    fd: OwnedFd,
}

/// `union bpf_attr` for BPF_OBJ_GET.
#[repr(C)]
#[derive(Default)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: [u32; 27],
}

/// `union bpf_attr` for BPF_PROG_TEST_RUN.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: [u32; 13],
}

/// bpf(2) with a command's attribute struct (ATTR_SIZE bytes, zero past
/// the command's fields).
fn bpf<A>(cmd: libc::c_int, attr: &mut A) -> io::Result<libc::c_long> {
    const { assert!(std::mem::size_of::<A>() == ATTR_SIZE) };
    // SAFETY: `attr` is a bpf_attr of ATTR_SIZE bytes that outlives the
    // call; pointers in it point at live buffers.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), ATTR_SIZE as libc::c_uint) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

impl WalkProgram {
    /// The program pinned at `path` (BPF_OBJ_GET).
    pub fn from_pin(path: &Path) -> io::Result<WalkProgram> {
        let path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
        let mut attr = ObjGetAttr { pathname: path.as_ptr() as u64, ..Default::default() };
        let fd = bpf(BPF_OBJ_GET, &mut attr)?;
        // SAFETY: a new fd the kernel just handed us.
        Ok(WalkProgram { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) } })
    }

    /// The program aya loaded (its fd duplicated: the walk outlives the
    /// loader's handle on it).
    pub fn from_loaded(prog: &RawTracePoint) -> Result<WalkProgram, ProgramError> {
        let fd = prog.fd()?.as_fd().try_clone_to_owned().map_err(ProgramError::IOError)?;
        Ok(WalkProgram { fd })
    }

    /// One BPF_PROG_TEST_RUN with zeroed raw-tracepoint arguments; the
    /// program's outcome is in the maps it writes.
    pub fn run(&self) -> io::Result<()> {
        let args = [0u64; RAW_TP_ARGS];
        let mut attr = TestRunAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            ctx_size_in: std::mem::size_of_val(&args) as u32,
            ctx_in: args.as_ptr() as u64,
            ..Default::default()
        };
        bpf(BPF_PROG_TEST_RUN, &mut attr)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    /// The fields sit where include/uapi/linux/bpf.h puts them.
    #[test]
    fn attributes_match_the_uapi_layout() {
        assert_eq!((offset_of!(ObjGetAttr, bpf_fd), offset_of!(ObjGetAttr, path_fd)), (8, 16));
        assert_eq!(offset_of!(TestRunAttr, data_in), 16);
        assert_eq!(offset_of!(TestRunAttr, repeat), 32);
        assert_eq!(offset_of!(TestRunAttr, ctx_size_in), 40);
        assert_eq!(offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(offset_of!(TestRunAttr, flags), 64);
        assert_eq!(offset_of!(TestRunAttr, batch_size), 72);
    }

    #[test]
    fn a_missing_pin_is_an_error_not_a_program() {
        let e = WalkProgram::from_pin(Path::new("/nonexistent/nstrace/ns_walk")).unwrap_err();
        assert!(matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EPERM | libc::ENOSYS)), "{e}");
    }
}

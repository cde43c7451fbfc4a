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
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::Path,
};

use aya::programs::{ProgramError, RawTracePoint};

use crate::kernel::sys_bpf::{bpf, bpf_cmd, bpf_fd, zeroed_attr};

/// Arguments of a raw tracepoint: the walk programs read none, but the
/// test run wants a context of whole u64s.
const RAW_TP_ARGS: usize = 1;

/// A loaded walk program.
#[derive(Debug)]
pub struct WalkProgram {
    fd: OwnedFd,
}

impl WalkProgram {
    /// The program pinned at `path` (BPF_OBJ_GET).
    pub fn from_pin(path: &Path) -> io::Result<WalkProgram> {
        let path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
        let mut attr = zeroed_attr();
        attr.__bindgen_anon_4.pathname = path.as_ptr() as u64;
        Ok(WalkProgram { fd: bpf_fd(bpf_cmd::BPF_OBJ_GET, &mut attr)? })
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
        self.run_with(&[0u64; RAW_TP_ARGS])
    }

    /// One BPF_PROG_TEST_RUN with these raw-tracepoint arguments.
    pub fn run_with(&self, args: &[u64]) -> io::Result<()> {
        let mut attr = zeroed_attr();
        attr.test.prog_fd = self.fd.as_raw_fd() as u32;
        attr.test.ctx_size_in = std::mem::size_of_val(args) as u32;
        attr.test.ctx_in = args.as_ptr() as u64;
        bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pin_is_an_error_not_a_program() {
        let e = WalkProgram::from_pin(Path::new("/nonexistent/nstrace/ns_walk")).unwrap_err();
        assert!(matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EPERM | libc::ENOSYS)), "{e}");
    }
}

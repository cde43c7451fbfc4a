//! The few bpf(2) calls nstrace makes itself (see `test_run` and the
//! fentry probe for why not aya's), with the kernel's own `union bpf_attr`
//! as aya generates it (`aya_obj::generated`).

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd},
};

pub use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type};

/// An all-zero `bpf_attr`: the kernel wants every field past a command's
/// own zero, and a command's unused fields zero too.
pub fn zeroed_attr() -> bpf_attr {
    // SAFETY: `bpf_attr` is a C union of integers, arrays of integers and
    // structs of those: all zeroes is a valid value of it.
    unsafe { std::mem::zeroed() }
}

/// bpf(2) for a command that answers with a new file descriptor.
pub fn bpf_fd(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: on success such a command returns a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// bpf(2): the whole union is passed (the kernel accepts one longer than
/// its own when the bytes past its end are zero).
pub fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid bpf_attr of the size passed that outlives
    // the call; the pointers the caller put in it point at live buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_int,
            std::ptr::from_mut(attr),
            size_of::<bpf_attr>() as libc::c_uint,
        )
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

//! Reading kernel memory at offsets found in BTF.
//!
//! # Safety
//! Kernel and user memory is read only through `bpf_probe_read_kernel` and
//! `bpf_probe_read_user`: a bad address gives an error (the value stays
//! zero), never a fault. Offsets come from BTF, never from this crate.

use aya_ebpf::helpers::{bpf_ktime_get_boot_ns, bpf_probe_read_kernel_buf, generated};
use nstrace_common::{
    config::ABSENT,
    event::{EventHeader, NsRef},
    ns::NS_TYPES,
};

use crate::maps::config;

// Reads are branch-free on purpose: the helper zeroes its destination when
// the address is bad (a NULL base included), and every branch here would be
// multiplied across the many reads of one program, which makes verification
// slow. `off == ABSENT` costs nothing: offsets live in a frozen read-only
// map, so the verifier knows them and drops the dead branch.

#[inline(always)]
pub fn ptr_at(base: u64, off: u32) -> u64 {
    if off == ABSENT {
        return 0;
    }
    let mut v: u64 = 0;
    unsafe { generated::bpf_probe_read_kernel((&raw mut v).cast(), 8, (base + off as u64) as *const _) };
    v
}

#[inline(always)]
pub fn u32_at(base: u64, off: u32) -> u32 {
    if off == ABSENT {
        return 0;
    }
    let mut v: u32 = 0;
    unsafe { generated::bpf_probe_read_kernel((&raw mut v).cast(), 4, (base + off as u64) as *const _) };
    v
}

#[inline(always)]
pub fn u64_at(base: u64, off: u32) -> u64 {
    ptr_at(base, off)
}

/// Offset of `struct ns_common ns` inside the struct of type `ty`.
#[inline(always)]
pub fn ns_common_off(ty: usize) -> u32 {
    if ty >= NS_TYPES {
        return ABSENT;
    }
    config!(offsets.ns_common_in[ty])
}

/// Offset of the owning user namespace pointer inside type `ty`'s struct.
#[inline(always)]
pub fn owner_off(ty: usize) -> u32 {
    if ty >= NS_TYPES {
        return ABSENT;
    }
    config!(offsets.owner_in[ty])
}

/// `&ns->ns` for a namespace struct pointer of type `ty`.
#[inline(always)]
pub fn ns_common_of(ns: u64, ty: usize) -> u64 {
    let off = ns_common_off(ty);
    if ns == 0 || off == ABSENT { 0 } else { ns + off as u64 }
}

/// Id and inode of the namespace whose `ns_common` is at `common`.
#[inline(always)]
pub fn ns_ref(common: u64) -> NsRef {
    if common == 0 {
        return NsRef::default();
    }
    let (id, inum) = (config!(offsets.ns_id), config!(offsets.ns_inum));
    // 6.18 and 7.x put ns_id 8 bytes after inum: one read for both (each
    // read of a hot hook is most of its cost).
    if id != ABSENT && inum != ABSENT && id == inum + 8 {
        let mut pair = [0u64; 2];
        unsafe { generated::bpf_probe_read_kernel(pair.as_mut_ptr().cast(), 16, (common + inum as u64) as *const _) };
        return NsRef { id: pair[1], inum: pair[0] as u32, _reserved: 0 };
    }
    NsRef { id: u64_at(common, id), inum: u32_at(common, inum), _reserved: 0 }
}

/// The owning user namespace of a namespace struct of type `ty`.
#[inline(always)]
pub fn owner_of(ns: u64, ty: usize) -> u64 {
    ptr_at(ns, owner_off(ty))
}

/// `task->comm` into `out` (zeroed when unreadable).
#[inline(always)]
pub fn read_comm(task: u64, out: &mut [u8; 16]) {
    *out = [0; 16];
    let off = config!(offsets.task_comm);
    if task != 0 && off != ABSENT {
        let _ = unsafe { bpf_probe_read_kernel_buf((task + off as u64) as *const u8, out) };
    }
}

/// A record header stamped now.
#[inline(always)]
pub fn header<T>(kind: nstrace_common::event::EventKind, tgid: u32, tid: u32) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        size: core::mem::size_of::<T>() as u32,
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
        tgid,
        tid,
    }
}

/// The command line of `task` (the current task: its memory is the one
/// user-space reads reach), NUL-separated, truncated, NUL-padded.
#[inline(always)]
pub fn read_args(task: u64, out: &mut [u8; nstrace_common::event::CREATOR_ARGS]) {
    const MAX: u64 = nstrace_common::event::CREATOR_ARGS as u64;
    *out = [0; nstrace_common::event::CREATOR_ARGS];
    let mm = ptr_at(task, config!(offsets.task_mm));
    let start = ptr_at(mm, config!(offsets.mm_arg_start));
    let end = ptr_at(mm, config!(offsets.mm_arg_end));
    if start == 0 || end <= start {
        return;
    }
    let len = if end - start > MAX { MAX } else { end - start };
    unsafe { generated::bpf_probe_read_user(out.as_mut_ptr().cast(), len as u32, start as *const _) };
}

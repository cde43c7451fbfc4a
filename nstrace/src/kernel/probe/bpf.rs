//! Program-type and map-type probes. aya's feature probes
//! ([`is_program_supported`], [`is_map_supported`]) load a trivial program
//! or create a tiny map and close it at once. Only the fentry probe, which
//! must name the kernel function nstrace hooks, is a raw bpf(2) call.

use aya::{
    maps::MapType,
    programs::{ProgramError, ProgramType},
    sys::{SyscallError, is_map_supported, is_program_supported},
};

use super::*;
use crate::kernel::sys_bpf::{bpf_attach_type, bpf_cmd, bpf_fd, bpf_prog_type, zeroed_attr};

pub(super) const PROG_TYPE_TRACEPOINT: ProgramType = ProgramType::TracePoint;
pub(super) const PROG_TYPE_RAW_TRACEPOINT: ProgramType = ProgramType::RawTracePoint;

/// aya's probes answer `Ok(false)` when the kernel rejects the type itself
/// (EINVAL, or E2BIG for `bpf_attr` fields it predates): reported as EINVAL.
fn supported<E>(probe: Result<bool, E>, errno_of: impl Fn(&E) -> i32) -> Result<(), i32> {
    match probe {
        Ok(true) => Ok(()),
        Ok(false) => Err(libc::EINVAL),
        Err(e) => Err(errno_of(&e)),
    }
}

fn syscall_errno(e: &SyscallError) -> i32 {
    e.io_error.raw_os_error().unwrap_or(0)
}

fn program_errno(e: &ProgramError) -> i32 {
    match e {
        ProgramError::SyscallError(e) => syscall_errno(e),
        ProgramError::LoadError { io_error, .. } | ProgramError::IOError(io_error) => {
            io_error.raw_os_error().unwrap_or(0)
        }
        _ => 0,
    }
}

pub(super) fn check_bpf_syscall() -> Check {
    match supported(is_map_supported(MapType::Array), syscall_errno) {
        Ok(()) => Check::new(names::BPF, Status::Ok, "creates maps"),
        Err(libc::ENOSYS) => Check::new(names::BPF, Status::Missing, "ENOSYS (CONFIG_BPF_SYSCALL=n)"),
        Err(e) => Check::new(names::BPF, Status::Error, errno_name(e)),
    }
}

/// Whether a trivial `prog_type` program loads: aya's probe, or, with an
/// attach target (only TRACING is probed with one), [`load_fentry`].
pub(super) fn check_prog(
    name: &str,
    prog_type: ProgramType,
    expected_attach_type: u32,
    attach_btf_id: u32,
    what: String,
) -> Check {
    let loads = match (prog_type, attach_btf_id) {
        (_, 0) => supported(is_program_supported(prog_type), program_errno),
        (ProgramType::Tracing, id) => load_fentry(expected_attach_type, id),
        _ => Err(libc::EINVAL),
    };
    match loads {
        Ok(()) => Check::new(name, Status::Ok, format!("loads{what}")),
        Err(e) => Check::new(name, Status::Missing, format!("not loadable: {}{what}", errno_name(e))),
    }
}

pub(super) fn check_tracing(btf: Option<&Btf>) -> Check {
    let target = btf.and_then(|b| FENTRY_TARGETS.iter().find_map(|f| Some((*f, b.func_id(f)?))));
    match target {
        Some((func, id)) => {
            check_prog(names::PROG_TRACING, ProgramType::Tracing, TRACE_FENTRY, id, format!(" (fentry on {func})"))
        }
        None => Check::new(names::PROG_TRACING, Status::Error, "no attach target in BTF"),
    }
}

pub(super) fn check_ringbuf() -> Check {
    match supported(is_map_supported(MapType::RingBuf), syscall_errno) {
        Ok(()) => Check::new(names::RINGBUF, Status::Ok, "creates BPF_MAP_TYPE_RINGBUF"),
        Err(e) => Check::new(names::RINGBUF, Status::Missing, format!("not creatable: {}", errno_name(e))),
    }
}

// ---- the fentry probe, by hand ---------------------------------------------
//
// Why not aya 0.14.0:
// - `aya::sys::is_program_supported(ProgramType::Tracing)` always aims at
//   `bpf_fentry_test1`; it cannot be told the function nstrace hooks (the
//   question here is whether fentry on `__ns_tree_add_raw`/`proc_free_inum`
//   loads), it also attaches a trampoline there, and when that function is
//   not in BTF it answers true from the verifier log without loading anything.
// - `aya::programs::FEntry::load(fn_name, &btf)` takes a target, but only for
//   a program of a loaded object (`aya::Ebpf`): probing that way would load
//   nstrace's whole object, maps and all.
// - aya's trivial-program loader (`sys::with_trivial_prog`, `sys::bpf_prog_load`)
//   is `pub(super)`/`pub(crate)`.

const PROG_TYPE_TRACING: u32 = bpf_prog_type::BPF_PROG_TYPE_TRACING as u32;
const TRACE_FENTRY: u32 = bpf_attach_type::BPF_TRACE_FENTRY as u32;

/// Loads `r0 = 0; exit` as a TRACING program attached to the vmlinux BTF
/// function `attach_btf_id`; the fd is closed at once.
fn load_fentry(expected_attach_type: u32, attach_btf_id: u32) -> Result<(), i32> {
    // struct bpf_insn is {code, regs, off, imm}: bytes, so endian-neutral.
    let insns: [[u8; 8]; 2] = [
        [0xb7, 0, 0, 0, 0, 0, 0, 0], // BPF_ALU64 | BPF_MOV | BPF_K: r0 = 0
        [0x95, 0, 0, 0, 0, 0, 0, 0], // BPF_JMP | BPF_EXIT
    ];
    let license = c"GPL";
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_3.prog_type = PROG_TYPE_TRACING;
    attr.__bindgen_anon_3.insn_cnt = insns.len() as u32;
    attr.__bindgen_anon_3.insns = insns.as_ptr() as u64;
    attr.__bindgen_anon_3.license = license.as_ptr() as u64;
    attr.__bindgen_anon_3.expected_attach_type = expected_attach_type;
    attr.__bindgen_anon_3.attach_btf_id = attach_btf_id;
    let mut name = [0; 16];
    for (to, from) in name.iter_mut().zip(b"nstrace_probe") {
        *to = *from as libc::c_char;
    }
    attr.__bindgen_anon_3.prog_name = name;
    // Dropping the new fd closes it.
    bpf_fd(bpf_cmd::BPF_PROG_LOAD, &mut attr).map(drop).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// Lifts RLIMIT_MEMLOCK: kernels before 5.11 charge BPF memory to it and
/// would otherwise fail the probes with EPERM.
pub(super) fn raise_memlock() {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: lim is a valid rlimit; failure is harmless (checks will say why).
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
}

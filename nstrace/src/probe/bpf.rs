//! Program-type and map-type probes through raw bpf(2) calls: tiny
//! programs and maps are loaded and closed at once.

use super::*;

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_PROG_LOAD: libc::c_int = 5;
const MAP_TYPE_ARRAY: u32 = 2;
const MAP_TYPE_RINGBUF: u32 = 27;
pub(super) const PROG_TYPE_TRACEPOINT: u32 = 5;
pub(super) const PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const PROG_TYPE_TRACING: u32 = 26;
const TRACE_FENTRY: u32 = 24;

/// `union bpf_attr` for BPF_MAP_CREATE, zero-padded to 128 bytes.
#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    _rest: [u8; 112],
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `attach_btf_id`, zero-padded.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    _rest: [u8; 16],
}

const _: () = assert!(size_of::<MapCreateAttr>() == 128 && size_of::<ProgLoadAttr>() == 128);

fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> Result<OwnedFd, i32> {
    // SAFETY: attr is one of the #[repr(C)] bpf_attr layouts above, fully
    // initialised; every pointer inside it outlives this call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>() as libc::c_uint) };
    if r < 0 {
        return Err(errno());
    }
    // SAFETY: on success BPF_MAP_CREATE/BPF_PROG_LOAD return a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

fn map_create(map_type: u32, key_size: u32, value_size: u32, max_entries: u32) -> Result<OwnedFd, i32> {
    let mut attr = MapCreateAttr { map_type, key_size, value_size, max_entries, _rest: [0; 112] };
    sys_bpf(BPF_MAP_CREATE, &mut attr)
}

/// Loads `r0 = 0; exit` as the given program type; the fd is closed at once.
fn prog_load(prog_type: u32, expected_attach_type: u32, attach_btf_id: u32) -> Result<(), i32> {
    // struct bpf_insn is {code, regs, off, imm}: bytes, so endian-neutral.
    let insns: [[u8; 8]; 2] = [
        [0xb7, 0, 0, 0, 0, 0, 0, 0], // BPF_ALU64 | BPF_MOV | BPF_K: r0 = 0
        [0x95, 0, 0, 0, 0, 0, 0, 0], // BPF_JMP | BPF_EXIT
    ];
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: *b"nstrace_probe\0\0\0",
        prog_ifindex: 0,
        expected_attach_type,
        prog_btf_fd: 0,
        func_info_rec_size: 0,
        func_info: 0,
        func_info_cnt: 0,
        line_info_rec_size: 0,
        line_info: 0,
        line_info_cnt: 0,
        attach_btf_id,
        _rest: [0; 16],
    };
    sys_bpf(BPF_PROG_LOAD, &mut attr).map(drop)
}

pub(super) fn check_bpf_syscall() -> Check {
    match map_create(MAP_TYPE_ARRAY, 4, 4, 1) {
        Ok(_) => Check::new(names::BPF, Status::Ok, "creates maps"),
        Err(libc::ENOSYS) => Check::new(names::BPF, Status::Missing, "ENOSYS (CONFIG_BPF_SYSCALL=n)"),
        Err(e) => Check::new(names::BPF, Status::Error, errno_name(e)),
    }
}

pub(super) fn check_prog(name: &str, prog_type: u32, attach_type: u32, btf_id: u32, what: String) -> Check {
    match prog_load(prog_type, attach_type, btf_id) {
        Ok(()) => Check::new(name, Status::Ok, format!("loads{what}")),
        Err(e) => Check::new(name, Status::Missing, format!("not loadable: {}{what}", errno_name(e))),
    }
}

pub(super) fn check_tracing(btf: Option<&Btf>) -> Check {
    let target = btf.and_then(|b| FENTRY_TARGETS.iter().find_map(|f| Some((*f, b.func_id(f)?))));
    match target {
        Some((func, id)) => {
            check_prog(names::PROG_TRACING, PROG_TYPE_TRACING, TRACE_FENTRY, id, format!(" (fentry on {func})"))
        }
        None => Check::new(names::PROG_TRACING, Status::Error, "no attach target in BTF"),
    }
}

pub(super) fn check_ringbuf() -> Check {
    // Ring buffer size must be a power-of-two multiple of the page size.
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    match map_create(MAP_TYPE_RINGBUF, 0, 0, page) {
        Ok(_) => Check::new(names::RINGBUF, Status::Ok, "creates BPF_MAP_TYPE_RINGBUF"),
        Err(e) => Check::new(names::RINGBUF, Status::Missing, format!("not creatable: {}", errno_name(e))),
    }
}

/// Lifts RLIMIT_MEMLOCK: kernels before 5.11 charge BPF memory to it and
/// would otherwise fail the probes with EPERM.
pub(super) fn raise_memlock() {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: lim is a valid rlimit; failure is harmless (checks will say why).
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
}

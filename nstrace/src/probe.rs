//! The kernel capability probe behind `nstrace doctor`.
//!
//! Every check asks the running kernel directly (a syscall, a file in
//! /sys or /proc, a tiny program load) rather than trusting the version
//! number: distributions backport and configure features differently.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde::Serialize;

use crate::btf::{Btf, BtfError};
use crate::btf_offsets;

/// Check names; [`select_mechanisms`] and [`fatal_reason`] look checks up by
/// these, so they are stable.
pub mod names {
    pub const ROOT: &str = "root";
    pub const CAPS: &str = "capabilities";
    pub const LOCKDOWN: &str = "lockdown";
    pub const KERNEL: &str = "kernel release";
    pub const BTF: &str = "vmlinux BTF";
    pub const OFFSETS: &str = "struct offsets";
    pub const NS_TREE: &str = "namespace tree";
    pub const BPF: &str = "bpf() syscall";
    pub const PROG_TP: &str = "prog tracepoint";
    pub const PROG_RAW_TP: &str = "prog raw_tracepoint";
    pub const PROG_TRACING: &str = "prog tracing (fentry)";
    pub const RINGBUF: &str = "ring buffer map";
    pub const TRACEFS: &str = "tracefs";
    pub const KPROBES: &str = "kprobes";
    /// Prefix of the per-tracepoint checks ("tracepoint sched/sched_process_fork").
    pub const TP_PREFIX: &str = "tracepoint ";
    pub const NS_GET_ID: &str = "NS_GET_ID ioctl";
    pub const NSFS_HANDLES: &str = "nsfs file handles";
    pub const LISTNS: &str = "listns(2)";
}

/// Tracepoints nstrace attaches to (category/name under tracefs `events/`).
pub const TRACEPOINTS: &[&str] = &[
    "sched/sched_process_fork",
    "sched/sched_process_exec",
    "sched/sched_process_exit",
    "task/task_newtask",
    "syscalls/sys_enter_setns",
    "syscalls/sys_exit_setns",
    "syscalls/sys_enter_unshare",
    "syscalls/sys_exit_unshare",
    "syscalls/sys_enter_clone",
    "syscalls/sys_exit_clone",
    "syscalls/sys_enter_clone3",
    "syscalls/sys_exit_clone3",
    "kmem/kfree",
    "kmem/kmem_cache_free",
    "workqueue/workqueue_activate_work",
    "workqueue/workqueue_execute_end",
];

const TRACEFS_DIR: &str = "/sys/kernel/tracing";
const TRACEFS_DIR_C: &CStr = c"/sys/kernel/tracing";
/// fentry targets, best first: the 6.18+ namespace tree insert, then the
/// function every unshare/clone with CLONE_NEW* goes through.
const FENTRY_TARGETS: [&str; 2] = ["__ns_tree_add_raw", "create_new_namespaces"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, status: Status, detail: impl Into<String>) -> Check {
        Check { name: name.to_owned(), status, detail: detail.into() }
    }
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Section {
    pub title: String,
    pub checks: Vec<Check>,
}

/// What nstrace will use for each job on this kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mechanisms {
    /// "fentry", "tracepoints", "kprobes" or "none".
    pub events: String,
    /// "tree-walk", "listns" or "proc".
    pub snapshot: String,
    /// "tree-walk reconcile" or "proc re-scan".
    pub destroy: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub sections: Vec<Section>,
    pub mechanisms: Mechanisms,
    /// Result of running the eBPF tree walk once; filled in by the loader,
    /// [`probe`] leaves it `None`.
    pub tree_walk: Option<Check>,
}

impl Report {
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.sections.iter().flat_map(|s| &s.checks).find(|c| c.name == name)
    }
    fn ok(&self, name: &str) -> bool {
        self.check(name).is_some_and(Check::is_ok)
    }
}

/// Runs every probe. Side effect: mounts tracefs if it is not mounted.
pub fn probe() -> Report {
    raise_memlock();
    let btf = Btf::from_sys_fs();
    let offsets = btf.as_ref().ok().map(btf_offsets::kernel_offsets);

    let privileges = vec![check_root(), check_caps(), check_lockdown()];

    let mut kernel = vec![check_release()];
    kernel.push(match &btf {
        Ok(b) => Check::new(names::BTF, Status::Ok, format!("{} types", b.type_count())),
        Err(BtfError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Check::new(names::BTF, Status::Missing, "/sys/kernel/btf/vmlinux absent (CONFIG_DEBUG_INFO_BTF=n)")
        }
        Err(e) => Check::new(names::BTF, Status::Error, e.to_string()),
    });
    kernel.push(match &offsets {
        Some(Ok(_)) => Check::new(names::OFFSETS, Status::Ok, "every required member found"),
        Some(Err(e)) => Check::new(names::OFFSETS, Status::Error, e.to_string()),
        None => Check::new(names::OFFSETS, Status::Error, "no BTF"),
    });
    kernel.push(match &offsets {
        Some(Ok(o)) if btf_offsets::has_ns_tree(o) => {
            Check::new(names::NS_TREE, Status::Ok, "ns_common has ns_id, ns_type, ns_list_node")
        }
        Some(Ok(_)) => {
            Check::new(names::NS_TREE, Status::Missing, "ns_common lacks ns_id/ns_list_node (kernel < 6.18)")
        }
        _ => Check::new(names::NS_TREE, Status::Error, "no struct offsets"),
    });

    let bpf = vec![
        check_bpf_syscall(),
        check_prog(names::PROG_TP, PROG_TYPE_TRACEPOINT, 0, 0, String::new()),
        check_prog(names::PROG_RAW_TP, PROG_TYPE_RAW_TRACEPOINT, 0, 0, String::new()),
        check_tracing(btf.as_ref().ok()),
        check_ringbuf(),
    ];

    let tracefs = check_tracefs();
    let tracefs_ok = tracefs.is_ok();
    let mut tracing = vec![tracefs, check_kprobes(tracefs_ok)];
    tracing.extend(TRACEPOINTS.iter().map(|tp| check_tracepoint(tp, tracefs_ok)));

    let ns_api = vec![check_ns_get_id(), check_nsfs_handles(), check_listns()];

    let section = |title: &str, checks| Section { title: title.to_owned(), checks };
    let mut report = Report {
        sections: vec![
            section("privileges", privileges),
            section("kernel", kernel),
            section("bpf", bpf),
            section("tracing", tracing),
            section("namespace interfaces", ns_api),
        ],
        mechanisms: Mechanisms { events: String::new(), snapshot: String::new(), destroy: String::new() },
        tree_walk: None,
    };
    report.mechanisms = select_mechanisms(&report);
    report
}

/// Picks a mechanism per job from the checks (pure; call again after
/// filling in `tree_walk`).
pub fn select_mechanisms(r: &Report) -> Mechanisms {
    let ns_tree = r.ok(names::NS_TREE);
    // The syscall/sched/task tracepoints carry creation and entry; the
    // kmem/workqueue ones are only destroy hints.
    let core_tps = TRACEPOINTS
        .iter()
        .filter(|tp| !tp.starts_with("kmem/") && !tp.starts_with("workqueue/"))
        .all(|tp| r.ok(&format!("{}{tp}", names::TP_PREFIX)));
    let tracepoints = r.ok(names::PROG_TP) && core_tps;
    let kprobes = r.ok(names::KPROBES);
    // Without the tree walk to reconcile, kprobes on the per-type free
    // functions see every destroy, which tracepoints cannot.
    let events = if r.ok(names::PROG_TRACING) {
        "fentry"
    } else if kprobes && !ns_tree {
        "kprobes"
    } else if tracepoints {
        "tracepoints"
    } else if kprobes {
        "kprobes"
    } else {
        "none"
    };
    let walk_ok = r.tree_walk.as_ref().is_none_or(Check::is_ok);
    let tree_walk = ns_tree && r.ok(names::PROG_RAW_TP) && walk_ok;
    let snapshot = if tree_walk {
        "tree-walk"
    } else if r.ok(names::LISTNS) {
        "listns"
    } else {
        "proc"
    };
    let destroy = if tree_walk { "tree-walk reconcile" } else { "proc re-scan" };
    Mechanisms { events: events.into(), snapshot: snapshot.into(), destroy: destroy.into() }
}

/// One line saying why nstrace cannot run at all, or None.
pub fn fatal_reason(r: &Report) -> Option<String> {
    let failed = |name: &str| match r.check(name) {
        Some(c) if c.is_ok() => None,
        Some(c) => Some(c.detail.clone()),
        None => Some("not checked".to_owned()),
    };
    // In order: the first failure is the most fundamental.
    let fatal_checks =
        [names::ROOT, names::CAPS, names::LOCKDOWN, names::BTF, names::OFFSETS, names::BPF, names::RINGBUF];
    for name in fatal_checks {
        let Some(d) = failed(name) else { continue };
        return Some(match name {
            names::ROOT => format!("not running as root ({d})"),
            names::CAPS => format!("need CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN (have: {d})"),
            names::LOCKDOWN => format!("kernel lockdown forbids BPF kernel reads ({d})"),
            names::BTF => format!("no usable kernel BTF ({d})"),
            names::BPF => format!("bpf() unusable ({d})"),
            names::RINGBUF => format!("no ring buffer maps ({d})"),
            _ => d,
        });
    }
    if r.mechanisms.events == "none" {
        return Some("no way to attach programs: neither fentry, tracepoints nor kprobes work".into());
    }
    None
}

// ---- privileges ------------------------------------------------------------

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn check_root() -> Check {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let status = if euid == 0 { Status::Ok } else { Status::Missing };
    Check::new(names::ROOT, status, format!("euid {euid}"))
}

/// The effective capability mask from /proc/self/status text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Verdict on an effective capability mask: CAP_BPF+CAP_PERFMON, or
/// CAP_SYS_ADMIN (which implies both on kernels before 5.8).
pub fn caps_check(cap_eff: u64) -> Check {
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    let list: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")]
        .iter()
        .map(|&(bit, name)| if has(bit) { name } else { "" })
        .filter(|n| !n.is_empty())
        .collect();
    let enough = (has(CAP_BPF) && has(CAP_PERFMON)) || has(CAP_SYS_ADMIN);
    let detail = if list.is_empty() { "none".into() } else { list.join(" ") };
    let status = if enough { Status::Ok } else { Status::Missing };
    Check::new(names::CAPS, status, detail)
}

fn check_caps() -> Check {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => match parse_cap_eff(&s) {
            Some(mask) => caps_check(mask),
            None => Check::new(names::CAPS, Status::Error, "no CapEff line in /proc/self/status"),
        },
        Err(e) => Check::new(names::CAPS, Status::Error, format!("/proc/self/status: {e}")),
    }
}

/// The active mode from /sys/kernel/security/lockdown ("none [integrity] confidentiality").
pub fn parse_lockdown(text: &str) -> Option<&str> {
    let start = text.find('[')? + 1;
    let len = text[start..].find(']')?;
    Some(&text[start..start + len])
}

/// "confidentiality" blocks bpf_probe_read_kernel; the other modes allow it.
pub fn lockdown_check(file: Option<&str>) -> Check {
    let Some(text) = file else {
        return Check::new(names::LOCKDOWN, Status::Ok, "none (securityfs lockdown not present)");
    };
    match parse_lockdown(text) {
        Some(mode @ "confidentiality") => {
            Check::new(names::LOCKDOWN, Status::Error, format!("{mode}: BPF may not read kernel memory"))
        }
        Some(mode) => Check::new(names::LOCKDOWN, Status::Ok, mode),
        None => Check::new(names::LOCKDOWN, Status::Error, format!("cannot parse {:?}", text.trim())),
    }
}

fn check_lockdown() -> Check {
    match std::fs::read_to_string("/sys/kernel/security/lockdown") {
        Ok(s) => lockdown_check(Some(&s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => lockdown_check(None),
        Err(e) => Check::new(names::LOCKDOWN, Status::Error, format!("/sys/kernel/security/lockdown: {e}")),
    }
}

// ---- kernel ----------------------------------------------------------------

fn check_release() -> Check {
    match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        Ok(r) => Check::new(names::KERNEL, Status::Ok, format!("{} ({})", r.trim(), std::env::consts::ARCH)),
        Err(e) => Check::new(names::KERNEL, Status::Error, e.to_string()),
    }
}

// ---- bpf -------------------------------------------------------------------

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_PROG_LOAD: libc::c_int = 5;
const MAP_TYPE_ARRAY: u32 = 2;
const MAP_TYPE_RINGBUF: u32 = 27;
const PROG_TYPE_TRACEPOINT: u32 = 5;
const PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
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

fn check_bpf_syscall() -> Check {
    match map_create(MAP_TYPE_ARRAY, 4, 4, 1) {
        Ok(_) => Check::new(names::BPF, Status::Ok, "creates maps"),
        Err(libc::ENOSYS) => Check::new(names::BPF, Status::Missing, "ENOSYS (CONFIG_BPF_SYSCALL=n)"),
        Err(e) => Check::new(names::BPF, Status::Error, errno_name(e)),
    }
}

fn check_prog(name: &str, prog_type: u32, attach_type: u32, btf_id: u32, what: String) -> Check {
    match prog_load(prog_type, attach_type, btf_id) {
        Ok(()) => Check::new(name, Status::Ok, format!("loads{what}")),
        Err(e) => Check::new(name, Status::Missing, format!("not loadable: {}{what}", errno_name(e))),
    }
}

fn check_tracing(btf: Option<&Btf>) -> Check {
    let target = btf.and_then(|b| FENTRY_TARGETS.iter().find_map(|f| Some((*f, b.func_id(f)?))));
    match target {
        Some((func, id)) => {
            check_prog(names::PROG_TRACING, PROG_TYPE_TRACING, TRACE_FENTRY, id, format!(" (fentry on {func})"))
        }
        None => Check::new(names::PROG_TRACING, Status::Error, "no attach target in BTF"),
    }
}

fn check_ringbuf() -> Check {
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
fn raise_memlock() {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: lim is a valid rlimit; failure is harmless (checks will say why).
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
}

// ---- tracing ---------------------------------------------------------------

fn check_tracefs() -> Check {
    let events = Path::new(TRACEFS_DIR).join("events");
    if events.is_dir() {
        return Check::new(names::TRACEFS, Status::Ok, format!("mounted at {TRACEFS_DIR}"));
    }
    if is_tracefs(TRACEFS_DIR_C) {
        let why = std::fs::metadata(&events).map_or_else(|e| e.to_string(), |_| "not a directory".into());
        return Check::new(names::TRACEFS, Status::Error, format!("mounted, but {}: {why}", events.display()));
    }
    let src = c"tracefs";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let r = unsafe { libc::mount(src.as_ptr(), TRACEFS_DIR_C.as_ptr(), src.as_ptr(), 0, std::ptr::null()) };
    if r != 0 {
        let e = errno();
        return Check::new(names::TRACEFS, Status::Error, format!("not mounted, mount failed: {}", errno_name(e)));
    }
    if events.is_dir() {
        Check::new(names::TRACEFS, Status::Ok, format!("was not mounted; mounted it at {TRACEFS_DIR}"))
    } else {
        Check::new(names::TRACEFS, Status::Error, format!("mounted at {TRACEFS_DIR} but it has no events/"))
    }
}

const TRACEFS_MAGIC: libc::c_long = 0x7472_6163;

fn is_tracefs(path: &CStr) -> bool {
    // SAFETY: an all-zero statfs is valid; statfs fills it in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated and st is writable.
    let r = unsafe { libc::statfs(path.as_ptr(), &mut st) };
    r == 0 && st.f_type as libc::c_long == TRACEFS_MAGIC
}

fn check_kprobes(tracefs_ok: bool) -> Check {
    if !tracefs_ok {
        return Check::new(names::KPROBES, Status::Error, "tracefs unavailable");
    }
    if Path::new(TRACEFS_DIR).join("kprobe_events").exists() {
        Check::new(names::KPROBES, Status::Ok, "kprobe_events present")
    } else {
        Check::new(names::KPROBES, Status::Missing, "no kprobe_events (CONFIG_KPROBES=n)")
    }
}

fn check_tracepoint(tp: &str, tracefs_ok: bool) -> Check {
    let name = format!("{}{tp}", names::TP_PREFIX);
    if !tracefs_ok {
        return Check::new(&name, Status::Error, "tracefs unavailable");
    }
    if Path::new(TRACEFS_DIR).join("events").join(tp).is_dir() {
        Check::new(&name, Status::Ok, "present")
    } else {
        Check::new(&name, Status::Missing, "absent")
    }
}

// ---- namespace interfaces --------------------------------------------------

/// `_IOR(NSIO, 13, __u64)`. (`_IO(0xb7, 13)` is refused with ENOTTY.)
const NS_GET_ID: libc::c_ulong = 0x8008_b70d;
/// listns(2), 6.19+. Syscall numbers above 424 are shared by all
/// architectures but alpha.
const SYS_LISTNS: libc::c_long = 470;
/// FILEID_NSFS: the handle type nsfs hands out.
const FILEID_NSFS: i32 = 0xf1;

fn check_ns_get_id() -> Check {
    let f = match File::open("/proc/self/ns/net") {
        Ok(f) => f,
        Err(e) => {
            return Check::new(names::NS_GET_ID, Status::Error, format!("/proc/self/ns/net: {e}"));
        }
    };
    let mut id: u64 = 0;
    // SAFETY: NS_GET_ID writes one u64 through the pointer.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_ID, &mut id as *mut u64) };
    match r {
        0 => Check::new(names::NS_GET_ID, Status::Ok, format!("works (our net namespace has id {id})")),
        _ => match errno() {
            libc::ENOTTY => Check::new(names::NS_GET_ID, Status::Missing, "ENOTTY (kernel < 6.18)"),
            e => Check::new(names::NS_GET_ID, Status::Error, errno_name(e)),
        },
    }
}

#[repr(C)]
struct FileHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; 128],
}

/// Asks nsfs itself (an open namespace fd with AT_EMPTY_PATH): calling
/// name_to_handle_at on the /proc/self/ns/net path without
/// AT_SYMLINK_FOLLOW asks procfs about its symlink, which fails with
/// EOPNOTSUPP even when nsfs supports handles.
fn check_nsfs_handles() -> Check {
    let f = match File::open("/proc/self/ns/net") {
        Ok(f) => f,
        Err(e) => {
            return Check::new(names::NSFS_HANDLES, Status::Error, format!("/proc/self/ns/net: {e}"));
        }
    };
    let mut h = FileHandle { handle_bytes: 128, handle_type: 0, f_handle: [0; 128] };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: h has room for handle_bytes bytes of handle; path is "".
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            f.as_raw_fd(),
            c"".as_ptr(),
            &mut h as *mut FileHandle,
            &mut mount_id as *mut libc::c_int,
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        let kind = if h.handle_type == FILEID_NSFS { " (FILEID_NSFS)" } else { "" };
        return Check::new(
            names::NSFS_HANDLES,
            Status::Ok,
            format!("supported: handle type {:#x}{kind}, {} bytes", h.handle_type, h.handle_bytes),
        );
    }
    match errno() {
        libc::EOPNOTSUPP => Check::new(names::NSFS_HANDLES, Status::Missing, "EOPNOTSUPP (kernel < 6.18)"),
        e => Check::new(names::NSFS_HANDLES, Status::Error, errno_name(e)),
    }
}

fn check_listns() -> Check {
    // SAFETY: with NULL pointers listns can only fail (EFAULT/EINVAL); an
    // old kernel answers ENOSYS.
    let r = unsafe { libc::syscall(SYS_LISTNS, 0usize, 0usize, 0usize, 0u32) };
    match (r, errno()) {
        (r, _) if r >= 0 => Check::new(names::LISTNS, Status::Ok, "present"),
        (_, libc::ENOSYS) => Check::new(names::LISTNS, Status::Missing, "ENOSYS (kernel < 6.19)"),
        (_, e) => Check::new(names::LISTNS, Status::Ok, format!("present ({} on a NULL request)", errno_name(e))),
    }
}

// ---- helpers ---------------------------------------------------------------

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Symbolic name of the errnos these probes meet.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::E2BIG => "E2BIG",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno {e}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_parsing() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\nCapBnd:\t0\n";
        let mask = parse_cap_eff(status).unwrap();
        assert_eq!(mask, 0x1fffeffffff);
        assert!(caps_check(mask).is_ok());
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
        assert_eq!(parse_cap_eff("Name: x\n"), None);
        assert!(caps_check(1 << CAP_SYS_ADMIN).is_ok());
        assert!(caps_check((1 << CAP_BPF) | (1 << CAP_PERFMON)).is_ok());
        let c = caps_check(1 << CAP_BPF);
        assert_eq!((c.status, c.detail.as_str()), (Status::Missing, "CAP_BPF"));
        assert_eq!(caps_check(0).status, Status::Missing);
    }

    #[test]
    fn lockdown_parsing() {
        assert_eq!(parse_lockdown("none [integrity] confidentiality\n"), Some("integrity"));
        assert_eq!(parse_lockdown("[none] integrity confidentiality"), Some("none"));
        assert_eq!(parse_lockdown("garbage"), None);
        assert!(lockdown_check(Some("none [integrity] confidentiality")).is_ok());
        assert_eq!(lockdown_check(Some("none integrity [confidentiality]")).status, Status::Error);
        let absent = lockdown_check(None);
        assert!(absent.is_ok());
        assert_eq!(absent.detail, "none (securityfs lockdown not present)");
    }

    /// A report as this project's 6.18 machine produces it.
    fn synthetic(fail: &[&str]) -> Report {
        let mut names = vec![
            names::ROOT,
            names::CAPS,
            names::LOCKDOWN,
            names::BTF,
            names::OFFSETS,
            names::NS_TREE,
            names::BPF,
            names::PROG_TP,
            names::PROG_RAW_TP,
            names::PROG_TRACING,
            names::RINGBUF,
            names::KPROBES,
            names::LISTNS,
        ];
        let tps: Vec<String> = TRACEPOINTS.iter().map(|t| format!("{}{t}", names::TP_PREFIX)).collect();
        names.extend(tps.iter().map(String::as_str));
        let checks = names
            .iter()
            .map(|n| {
                let bad = fail.contains(n);
                Check::new(n, if bad { Status::Missing } else { Status::Ok }, if bad { "EPERM" } else { "" })
            })
            .collect();
        let mut r = Report {
            sections: vec![Section { title: "all".into(), checks }],
            mechanisms: Mechanisms { events: String::new(), snapshot: String::new(), destroy: String::new() },
            tree_walk: None,
        };
        r.mechanisms = select_mechanisms(&r);
        r
    }

    fn mech(r: &Report) -> (&str, &str, &str) {
        (&r.mechanisms.events, &r.mechanisms.snapshot, &r.mechanisms.destroy)
    }

    #[test]
    fn mechanisms_on_this_kernel() {
        let r = synthetic(&[names::PROG_TRACING, names::KPROBES, names::LISTNS]);
        assert_eq!(mech(&r), ("tracepoints", "tree-walk", "tree-walk reconcile"));
        assert_eq!(fatal_reason(&r), None);
    }

    #[test]
    fn mechanisms_elsewhere() {
        assert_eq!(mech(&synthetic(&[])), ("fentry", "tree-walk", "tree-walk reconcile"));
        // Pre-6.18 with kprobes: kprobes catch destroys tracepoints miss.
        let old = synthetic(&[names::PROG_TRACING, names::NS_TREE, names::LISTNS]);
        assert_eq!(mech(&old), ("kprobes", "proc", "proc re-scan"));
        // 6.19 without a usable raw tracepoint: listns for snapshots.
        let r = synthetic(&[names::PROG_TRACING, names::PROG_RAW_TP]);
        assert_eq!(mech(&r), ("tracepoints", "listns", "proc re-scan"));
        let missing_tp = format!("{}syscalls/sys_enter_setns", names::TP_PREFIX);
        let r = synthetic(&[names::PROG_TRACING, names::KPROBES, &missing_tp]);
        assert_eq!(r.mechanisms.events, "none");
        assert!(fatal_reason(&r).unwrap().contains("no way to attach"));
        // A tree walk that failed when run demotes the snapshot.
        let mut r = synthetic(&[names::PROG_TRACING, names::LISTNS]);
        r.tree_walk = Some(Check::new("tree walk", Status::Error, "EINVAL"));
        assert_eq!(select_mechanisms(&r).snapshot, "proc");
    }

    #[test]
    fn fatal_reasons() {
        let r = synthetic(&[names::ROOT]);
        assert!(fatal_reason(&r).unwrap().starts_with("not running as root"));
        let r = synthetic(&[names::BTF]);
        assert!(fatal_reason(&r).unwrap().contains("BTF"));
        let r = synthetic(&[names::BPF]);
        assert!(fatal_reason(&r).unwrap().starts_with("bpf() unusable"));
        let r = synthetic(&[names::CAPS]);
        assert!(fatal_reason(&r).unwrap().starts_with("need CAP_BPF"));
        let r = synthetic(&[names::OFFSETS]);
        assert_eq!(fatal_reason(&r).unwrap(), "EPERM");
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::EPERM), "EPERM");
        assert_eq!(errno_name(libc::EOPNOTSUPP), "EOPNOTSUPP");
        assert_eq!(errno_name(9999), "errno 9999");
    }

    /// Runs the real probe; meaningful as root on a 6.18 kernel, harmless elsewhere.
    #[test]
    fn real_probe_is_consistent() {
        let r = probe();
        for s in &r.sections {
            for c in &s.checks {
                eprintln!("{:<40} {:?} {}", c.name, c.status, c.detail);
            }
        }
        eprintln!("{:?} fatal: {:?}", r.mechanisms, fatal_reason(&r));
        assert_eq!(r.sections.iter().map(|s| s.checks.len()).sum::<usize>(), 12 + 2 + TRACEPOINTS.len() + 3);
        assert!(r.tree_walk.is_none());
        assert_eq!(r.mechanisms, select_mechanisms(&r));
    }
}

//! The kernel capability probe behind `nstrace doctor`.
//!
//! Every check asks the running kernel directly (a syscall, a file in
//! /sys or /proc, a tiny program load) rather than trusting the version
//! number: distributions backport and configure features differently.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use serde::Serialize;

use nstrace_common::names::{SYSCALL_TRACEPOINTS, TASK_TRACEPOINTS, Tracepoint};

use crate::chain::chain;
use crate::kernel::btf::{Btf, BtfError};
use crate::kernel::btf_offsets;
use crate::kernel::mechanism::{self, Facts, HOOKED_FUNCTIONS, Overrides};

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
    /// Prefix of the per-tracepoint checks ("tracepoint sched/sched_process_exec").
    pub const TP_PREFIX: &str = "tracepoint ";
    pub const NS_GET_ID: &str = "NS_GET_ID ioctl";
    pub const NSFS_HANDLES: &str = "nsfs file handles";
    pub const LISTNS: &str = "listns(2)";
    /// Prefix of the per-function checks ("function proc_free_inum").
    pub const FN_PREFIX: &str = "function ";
}

/// Tracepoints nstrace attaches to, and nothing else: the lists the loader
/// and the eBPF programs share.
pub use nstrace_common::names::TRACEPOINTS;

/// A tracepoint's place under tracefs `events/`: "category/name".
pub fn tracefs_path(tp: &Tracepoint) -> String {
    format!("{}/{}", tp.category, tp.name)
}

/// Name of the doctor check of one tracepoint ("tracepoint task/task_newtask").
pub fn tracepoint_check_name(tp: &Tracepoint) -> String {
    format!("{}{}", names::TP_PREFIX, tracefs_path(tp))
}

use crate::kernel::tracefs::TRACEFS_DIR;
/// fentry targets for the TRACING check, best first: the 6.18+ namespace
/// tree insert, then the function every namespace frees its inode with.
const FENTRY_TARGETS: [&str; 2] = ["__ns_tree_add_raw", "proc_free_inum"];

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

/// What `doctor` reports nstrace will use for each job on this kernel, by
/// name ([`crate::kernel::mechanism::Mechanisms`] is the choice itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MechanismReport {
    /// Task and syscall events (fork, exec, exit, unshare, setns):
    /// "tracepoints" or "none".
    pub events: String,
    /// See [`crate::kernel::mechanism`]; empty when `error` says why none could be picked.
    pub create: String,
    pub destroy: String,
    pub snapshot: String,
    /// Set when a forced mechanism cannot run here.
    pub error: Option<String>,
}

impl MechanismReport {
    fn empty() -> MechanismReport {
        MechanismReport {
            events: String::new(),
            create: String::new(),
            destroy: String::new(),
            snapshot: String::new(),
            error: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub sections: Vec<Section>,
    pub mechanisms: MechanismReport,
    /// Result of running the eBPF tree walk once; filled in by the loader,
    /// [`probe`] leaves it `None`.
    pub tree_walk: Option<Check>,
    /// Whether the fd walk (nsfs files from every file table) loaded and
    /// ran beside the task walk; without it fds come from /proc.
    pub fd_walk: Option<Check>,
    /// How `limits` counts namespaces against their limits: the kernel's own
    /// `struct ucounts` read by the walk, or derived (estimated).
    pub limits: Option<Check>,
    /// How a quiet host is checked for changes (see `kernel::tree_watch`).
    pub change_check: Option<Check>,
    /// What else a snapshot shows: how sockets that hold a net namespace
    /// are found, and (6.19+) listns(2) against the walk's active counts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshot_checks: Vec<Check>,
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
        Err(e) => Check::new(names::BTF, Status::Error, chain(e)),
    });
    kernel.push(match &offsets {
        Some(Ok(_)) => Check::new(names::OFFSETS, Status::Ok, "every required member found"),
        Some(Err(e)) => Check::new(names::OFFSETS, Status::Error, chain(e)),
        None => Check::new(names::OFFSETS, Status::Error, "no BTF"),
    });
    kernel.push(match &offsets {
        Some(Ok(o)) => match btf_offsets::ns_tree_layout(o) {
            Some(layout) => Check::new(names::NS_TREE, Status::Ok, layout),
            None if o.ns_id != nstrace_common::config::ABSENT => Check::new(
                names::NS_TREE,
                Status::Missing,
                "ns_common has ns_id but neither ns_list_node (6.18) nor ns_tree_node.ns_list_entry (6.19+): \
                 a layout nstrace does not know, not walked (/proc is used)",
            ),
            None => Check::new(names::NS_TREE, Status::Missing, "ns_common lacks ns_id/ns_list_node (kernel < 6.18)"),
        },
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
    let functions = check_functions(btf.as_ref().ok());

    let section = |title: &str, checks| Section { title: title.to_owned(), checks };
    let mut report = Report {
        sections: vec![
            section("privileges", privileges),
            section("kernel", kernel),
            section("bpf", bpf),
            section("tracing", tracing),
            section("namespace interfaces", ns_api),
            section("kernel functions", functions),
        ],
        mechanisms: MechanismReport::empty(),
        tree_walk: None,
        change_check: None,
        fd_walk: None,
        limits: None,
        snapshot_checks: Vec::new(),
    };
    report.mechanisms = select_mechanisms(&report, &Overrides::default());
    report
}

/// One check per kernel function a mechanism hooks: hookable when it is a
/// traced text symbol (not inlined, not notrace) and, for fentry, in BTF.
fn check_functions(btf: Option<&Btf>) -> Vec<Check> {
    let traceable = crate::kernel::tracefs::traceable_functions();
    HOOKED_FUNCTIONS
        .iter()
        .map(|f| {
            let name = format!("{}{f}", names::FN_PREFIX);
            let in_btf = btf.is_some_and(|b| b.func_id(f).is_some());
            match (&traceable, in_btf) {
                (Ok((set, source)), true) if set.contains(*f) => {
                    Check::new(&name, Status::Ok, format!("in BTF and {source}"))
                }
                (Ok((_, source)), true) => {
                    Check::new(&name, Status::Missing, format!("in BTF, not in {source} (inlined or notrace)"))
                }
                (Ok(_), false) => Check::new(&name, Status::Missing, "not in BTF (absent on this kernel or inlined)"),
                (Err(e), _) => Check::new(&name, Status::Error, e.clone()),
            }
        })
        .collect()
}

/// The facts mechanism selection depends on, probed directly (what
/// [`probe`] checks for them, without the rest of the report).
pub fn quick_facts() -> Facts {
    raise_memlock();
    let btf = Btf::from_sys_fs().ok();
    let ns_tree =
        btf.as_ref().and_then(|b| btf_offsets::kernel_offsets(b).ok()).is_some_and(|o| btf_offsets::has_ns_tree(&o));
    let tracefs_ok = check_tracefs().is_ok();
    let fns = check_functions(btf.as_ref());
    Facts {
        tracing: check_tracing(btf.as_ref()).is_ok(),
        kprobes: check_kprobes(tracefs_ok).is_ok(),
        tree_walk: ns_tree,
        listns: listns_answers(),
        functions: HOOKED_FUNCTIONS.iter().zip(&fns).filter(|(_, c)| c.is_ok()).map(|(f, _)| f.to_string()).collect(),
    }
}

/// The facts mechanism selection depends on, from the checks.
pub fn facts(r: &Report) -> Facts {
    let walk_ok = r.tree_walk.as_ref().is_none_or(Check::is_ok);
    Facts {
        tracing: r.ok(names::PROG_TRACING),
        kprobes: r.ok(names::KPROBES),
        tree_walk: r.ok(names::NS_TREE) && r.ok(names::PROG_RAW_TP) && walk_ok,
        listns: r.ok(names::LISTNS),
        functions: HOOKED_FUNCTIONS
            .iter()
            .filter(|f| r.ok(&format!("{}{f}", names::FN_PREFIX)))
            .map(|f| f.to_string())
            .collect(),
    }
}

/// Picks a mechanism per job from the checks (pure; call again after
/// filling in `tree_walk`), honouring forced ones.
pub fn select_mechanisms(r: &Report, forced: &Overrides) -> MechanismReport {
    // The task and syscall tracepoints carry task events; the workqueue one
    // is only a destroy hint (attached when kallsyms names a work function).
    let core_tps = TASK_TRACEPOINTS.iter().chain(&SYSCALL_TRACEPOINTS).all(|tp| r.ok(&tracepoint_check_name(tp)));
    let events = if r.ok(names::PROG_RAW_TP) && r.ok(names::PROG_TP) && core_tps { "tracepoints" } else { "none" };
    let mut m = MechanismReport { events: events.into(), ..MechanismReport::empty() };
    match mechanism::select(&facts(r), forced) {
        Ok(sel) => {
            m.create = sel.create.to_string();
            m.destroy = sel.destroy.to_string();
            m.snapshot = sel.snapshot.to_string();
        }
        Err(e) => m.error = Some(e.to_string()),
    }
    m
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
        return Some("no way to attach programs: raw tracepoints or a core tracepoint are unusable".into());
    }
    if let Some(e) = &r.mechanisms.error {
        return Some(e.clone());
    }
    None
}

// ---- privileges ------------------------------------------------------------

const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_PTRACE: u32 = 19;
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

/// The capabilities a complete answer needs that `status` (the text of
/// /proc/self/status) does not show in CapEff: CAP_SYS_ADMIN (eBPF on
/// every kernel, nsfs ioctls, other mount namespaces) and CAP_SYS_PTRACE
/// (other users' fds and namespace links).
pub fn missing_privileges(status: &str) -> Vec<&'static str> {
    let Some(eff) = parse_cap_eff(status) else { return vec!["a readable CapEff"] };
    [(CAP_SYS_ADMIN, "CAP_SYS_ADMIN"), (CAP_SYS_PTRACE, "CAP_SYS_PTRACE")]
        .into_iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
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

// ---- tracing ---------------------------------------------------------------

fn check_tracefs() -> Check {
    if Path::new(TRACEFS_DIR).join("events").is_dir() {
        return Check::new(names::TRACEFS, Status::Ok, format!("mounted at {TRACEFS_DIR}"));
    }
    match crate::kernel::tracefs::ensure_mounted() {
        Ok(()) => Check::new(names::TRACEFS, Status::Ok, format!("was not mounted; mounted it at {TRACEFS_DIR}")),
        Err(e) => Check::new(names::TRACEFS, Status::Error, chain(&e)),
    }
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

fn check_tracepoint(tp: &Tracepoint, tracefs_ok: bool) -> Check {
    let name = tracepoint_check_name(tp);
    if !tracefs_ok {
        return Check::new(&name, Status::Error, "tracefs unavailable");
    }
    if Path::new(TRACEFS_DIR).join("events").join(tracefs_path(tp)).is_dir() {
        Check::new(&name, Status::Ok, "present")
    } else {
        Check::new(&name, Status::Missing, "absent")
    }
}

// ---- namespace interfaces --------------------------------------------------

/// listns(2), 6.19+. Syscall numbers above 424 are shared by all
/// architectures but alpha.
const SYS_LISTNS: libc::c_long = crate::procfs::listns::SYS_LISTNS;
/// FILEID_NSFS: the handle type nsfs hands out.
const FILEID_NSFS: i32 = 0xf1;

fn check_ns_get_id() -> Check {
    let fd = match crate::procfs::nsfs::open(Path::new("/proc/self/ns/net")) {
        Ok(fd) => fd,
        Err(e) => return Check::new(names::NS_GET_ID, Status::Error, format!("/proc/self/ns/net: {e}")),
    };
    match crate::procfs::nsfs::ns_id(&fd) {
        Ok(id) => Check::new(names::NS_GET_ID, Status::Ok, format!("works (our net namespace has id {id})")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
            Check::new(names::NS_GET_ID, Status::Missing, "ENOTTY (kernel < 6.18)")
        }
        Err(e) => Check::new(names::NS_GET_ID, Status::Error, errno_name(e.raw_os_error().unwrap_or(0))),
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

/// Whether listns(2) exists (anything but ENOSYS to a NULL request).
fn listns_answers() -> bool {
    check_listns().is_ok()
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

mod bpf;
#[cfg(test)]
mod tests;

use bpf::{
    PROG_TYPE_RAW_TRACEPOINT, PROG_TYPE_TRACEPOINT, check_bpf_syscall, check_prog, check_ringbuf, check_tracing,
    raise_memlock,
};

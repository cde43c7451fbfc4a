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

/// A report as this project's 6.18 machine produces it, minus `fail`.
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
    let tps: Vec<String> = TRACEPOINTS.iter().map(tracepoint_check_name).collect();
    names.extend(tps.iter().map(String::as_str));
    let fns: Vec<String> = HOOKED_FUNCTIONS.iter().map(|f| format!("{}{f}", names::FN_PREFIX)).collect();
    names.extend(fns.iter().map(String::as_str));
    let checks = names
        .iter()
        .map(|n| {
            let bad = fail.contains(n);
            Check::new(n, if bad { Status::Missing } else { Status::Ok }, if bad { "EPERM" } else { "" })
        })
        .collect();
    let mut r = Report {
        sections: vec![Section { title: "all".into(), checks }],
        mechanisms: MechanismReport::empty(),
        tree_walk: None,
        change_check: None,
        fd_walk: None,
        limits: None,
        snapshot_checks: Vec::new(),
    };
    r.mechanisms = select_mechanisms(&r, &Overrides::default());
    r
}

fn mech(r: &Report) -> (&str, &str, &str) {
    (&r.mechanisms.create, &r.mechanisms.destroy, &r.mechanisms.snapshot)
}

#[test]
fn mechanisms_on_this_kernel() {
    let r = synthetic(&[names::PROG_TRACING, names::KPROBES, names::LISTNS]);
    assert_eq!(mech(&r), ("tracepoints", "tree-walk", "tree-walk"));
    assert_eq!(r.mechanisms.events, "tracepoints");
    assert_eq!(fatal_reason(&r), None);
}

#[test]
fn mechanisms_elsewhere() {
    assert_eq!(mech(&synthetic(&[])), ("fexit-ns-tree", "fentry-ns-tree", "tree-walk"));
    // Before 6.18 (no tree, no tree functions, no listns) with kprobes only.
    let fn_check = |f: &str| format!("{}{f}", names::FN_PREFIX);
    let (add, remove) = (fn_check("__ns_tree_add_raw"), fn_check("__ns_tree_remove"));
    let old = synthetic(&[names::PROG_TRACING, names::NS_TREE, names::LISTNS, &add, &remove]);
    assert_eq!(mech(&old), ("kprobe-constructors", "kprobe-free-inum", "proc"));
    let old = synthetic(&[names::NS_TREE, names::LISTNS, &add, &remove]);
    assert_eq!(mech(&old), ("fexit-constructors", "fentry-free-inum", "proc"));
    let bare = synthetic(&[names::PROG_TRACING, names::KPROBES, names::NS_TREE, names::LISTNS]);
    assert_eq!(mech(&bare), ("tracepoints", "proc-rescan", "proc"));
    // A 6.19+ kernel whose namespace-list layout nstrace does not know: listns.
    let unknown_layout = synthetic(&[names::NS_TREE]);
    assert_eq!(mech(&unknown_layout), ("fexit-ns-tree", "fentry-ns-tree", "listns"));
    let missing_tp = format!("{}syscalls/sys_enter_setns", names::TP_PREFIX);
    let r = synthetic(&[names::PROG_TRACING, names::KPROBES, &missing_tp]);
    assert_eq!(r.mechanisms.events, "none");
    assert!(fatal_reason(&r).unwrap().contains("no way to attach"));
    // A tree walk that failed when run demotes the snapshot.
    let mut r = synthetic(&[names::PROG_TRACING, names::KPROBES, names::LISTNS]);
    r.tree_walk = Some(Check::new("tree walk", Status::Error, "EINVAL"));
    assert_eq!(mech(&Report { mechanisms: select_mechanisms(&r, &Overrides::default()), ..r }).2, "proc");
    let mut r = synthetic(&[names::PROG_TRACING, names::KPROBES]);
    r.tree_walk = Some(Check::new("tree walk", Status::Error, "EINVAL"));
    assert_eq!(mech(&Report { mechanisms: select_mechanisms(&r, &Overrides::default()), ..r }).2, "listns");
}

#[test]
fn forced_mechanism_that_cannot_run_is_fatal() {
    let mut r = synthetic(&[names::PROG_TRACING, names::KPROBES]);
    let forced = Overrides::parse(&["destroy=kprobe-free-inum".into()]).unwrap();
    r.mechanisms = select_mechanisms(&r, &forced);
    assert!(
        fatal_reason(&r).unwrap().contains("kprobe-free-inum for destroy is not available on this kernel: no kprobes")
    );
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

/// The destroy hint is optional: without its tracepoint nstrace still
/// traces (deaths are seen by the walk).
#[test]
fn destroy_hint_tracepoint_is_not_required() {
    let hint = tracepoint_check_name(&nstrace_common::names::DESTROY_HINT_TRACEPOINT);
    let r = synthetic(&[names::PROG_TRACING, names::KPROBES, &hint]);
    assert_eq!(r.mechanisms.events, "tracepoints");
    assert_eq!(fatal_reason(&r), None);
}

/// Names of the programs' attach targets in an eBPF object: sections
/// `raw_tp/NAME` and `tracepoint/CATEGORY/NAME`, as "NAME" and
/// "CATEGORY/NAME" (relocation sections repeat them).
fn object_tracepoints(obj: &[u8]) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for s in obj.split(|&b| b == 0) {
        let Ok(s) = std::str::from_utf8(s) else { continue };
        let s = s.strip_prefix(".rel").unwrap_or(s);
        if let Some(name) = s.strip_prefix("raw_tp/").or_else(|| s.strip_prefix("tracepoint/")) {
            out.insert(name.to_owned());
        }
    }
    out
}

/// The tracepoints doctor checks are exactly those the eBPF programs
/// attach to (raw tracepoints by name, syscall tracepoints by category and
/// name); none is required that nstrace never attaches.
#[test]
fn doctor_checks_exactly_the_attached_tracepoints() {
    let obj = crate::kernel::loader::EBPF_OBJECT;
    if obj.is_empty() {
        crate::test_skip("doctor_checks_exactly_the_attached_tracepoints", "built without the eBPF object");
        return;
    }
    let attached = object_tracepoints(obj);
    assert!(attached.contains("task_newtask") && attached.contains("syscalls/sys_enter_setns"), "{attached:?}");
    let checked: std::collections::BTreeSet<String> = synthetic(&[])
        .sections
        .iter()
        .flat_map(|s| &s.checks)
        .filter_map(|c| c.name.strip_prefix(names::TP_PREFIX))
        .map(|path| match path.split_once('/') {
            Some(("syscalls", _)) => path.to_owned(),
            // Raw tracepoints attach by name; tracefs files them under a category.
            Some((_, name)) => name.to_owned(),
            None => path.to_owned(),
        })
        .collect();
    assert_eq!(checked, attached);
}

/// Runs the real probe and checks what it says against the kernel, asked
/// independently here (not through the probe's own code).
#[test]
fn real_probe_matches_the_kernel() {
    use std::os::fd::AsRawFd;
    let r = probe();
    let status = |name: &str| {
        r.sections
            .iter()
            .flat_map(|s| &s.checks)
            .find(|c| c.name == name)
            .map(|c| c.status)
            .unwrap_or_else(|| panic!("doctor has no check {name:?}"))
    };
    let ok = |b: bool| if b { Status::Ok } else { Status::Missing };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert_eq!(status(names::ROOT) == Status::Ok, root, "root");
    assert_eq!(status(names::BTF) == Status::Ok, std::path::Path::new("/sys/kernel/btf/vmlinux").exists(), "BTF");
    // NS_GET_ID = _IOR(0xb7, 13, u64).
    let net = std::fs::File::open("/proc/self/ns/net").unwrap();
    let mut id = 0u64;
    // SAFETY: a valid fd and a u64 to write to.
    let has_ids = unsafe { libc::ioctl(net.as_raw_fd(), 0x8008_b70d, &mut id) } == 0;
    assert_eq!(status(names::NS_GET_ID), ok(has_ids), "NS_GET_ID");
    // listns(2): a null request is EFAULT/EINVAL where the syscall exists.
    // SAFETY: a null request pointer is rejected by the kernel, never dereferenced.
    let rc = unsafe { libc::syscall(470, 0usize, 0usize, 0usize, 0u32) };
    let enosys = rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS);
    assert_eq!(status(names::LISTNS) == Status::Ok, !enosys, "listns");
    let kprobes = std::path::Path::new("/sys/kernel/tracing/kprobe_events").exists()
        || std::path::Path::new("/sys/kernel/debug/tracing/kprobe_events").exists();
    if kprobes {
        assert_eq!(status(names::KPROBES), Status::Ok, "kprobe_events exists");
    }
    assert_eq!(
        r.sections.iter().map(|s| s.checks.len()).sum::<usize>(),
        12 + 2 + TRACEPOINTS.len() + 3 + HOOKED_FUNCTIONS.len()
    );
    assert!(r.tree_walk.is_none());
    assert_eq!(r.mechanisms, select_mechanisms(&r, &Overrides::default()));
}

/// aya's probe answers "unsupported" without an errno: reported as EINVAL.
#[test]
fn unsupported_program_type_is_einval() {
    let c = check_prog("prog x", aya::programs::ProgramType::Unspecified, 0, 0, String::new());
    assert_eq!((c.status, c.detail.as_str()), (Status::Missing, "not loadable: EINVAL"));
    let c = check_prog("prog x", PROG_TYPE_TRACEPOINT, 0, 1, " (with a target)".into());
    assert_eq!(c.detail, "not loadable: EINVAL (with a target)");
}

#[test]
fn privileges_needed_for_a_complete_answer() {
    let status = |eff: u64| format!("Name:\tx\nCapEff:\t{eff:016x}\n");
    assert!(missing_privileges(&status(0x1ff_ffff_ffff)).is_empty(), "root");
    assert_eq!(missing_privileges(&status(0)), ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
    assert_eq!(missing_privileges(&status(1 << CAP_SYS_ADMIN)), ["CAP_SYS_PTRACE"]);
    assert_eq!(missing_privileges(&status(1 << CAP_SYS_PTRACE)), ["CAP_SYS_ADMIN"]);
    assert_eq!(missing_privileges("Name:\tx\n"), ["a readable CapEff"]);
}

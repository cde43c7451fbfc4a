//! Builds and runs nstrace and the test suites.

use std::process::Command;

use crate::{
    setup::{cargo, is_root, run, workspace_root},
    vm::{self, Suites},
};

pub fn run_nstrace(args: &[String]) -> anyhow::Result<()> {
    run(cargo().current_dir(workspace_root()).args(["build", "--release", "-p", "nstrace"]))?;
    let bin = workspace_root().join("target/release/nstrace");
    let args: Vec<String> = if args.is_empty() { vec!["live".into()] } else { args.to_vec() };
    let mut cmd = Command::new(&bin);
    cmd.args(&args);
    if !is_root() {
        eprintln!("xtask: nstrace needs root; running it under sudo");
        cmd = Command::new("sudo");
        cmd.arg(&bin).args(&args);
    }
    run(&mut cmd)
}

/// Regenerates docs/man/ (stale pages of removed subcommands go too).
pub fn man_pages() -> anyhow::Result<()> {
    let root = workspace_root();
    run(cargo().current_dir(&root).args(["build", "-p", "nstrace", "--bins"]))?;
    let dir = root.join("docs/man");
    if dir.exists() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "1") {
                std::fs::remove_file(path)?;
            }
        }
    }
    run(Command::new(root.join("target/debug/nstrace")).args(["man-pages", "--dir"]).arg(&dir))
}

/// The kernels `cargo xtask test` also runs the integration tests on, and
/// the suites each runs: the one place this split is written. Three VMs
/// share 2 cores and a VM is one host thread, so the suites are split to
/// even out their times and keep the whole run under 30 minutes (the times
/// are in docs/benchmarks.md, "The test run's VMs"): 6.1 and 6.12 pick the
/// same mechanisms and share the engine's suites; 7.3 (the 6.19+ layout)
/// runs those of the new snapshot and hooks. `holders` runs on 6.1 (the
/// /proc scan, printing why the listmount and walk cases skip) and on 7.3
/// (the task and fd walks, listmount by `mnt_ns_id`); `lsns` on 7.3 only,
/// the newest kernel; `limits` on 6.12 (derived counts) and 7.3 (the kernel's
/// own, and a host limit root may lower there); `inactive` on 7.3 (6.19+);
/// `perf_data` (perf 6.1 reading nstrace's file) on 6.12 (it passed on 7.3
/// too; the 7.3 VM is the longest). `cargo xtask vm-test --kernel K` runs
/// every suite on K.
const VM_KERNELS: &[(&str, Suites)] = &[
    ("6.1", Suites::Only(&["foundation", "mechanisms", "ls", "leaks", "serve", "holders"])),
    ("6.12", Suites::AllBut(&["leaks", "serve", "ls", "lsns", "holders", "dying", "inactive"])),
    (
        "7.3",
        Suites::Only(&["foundation", "mechanisms", "listns", "ls", "lsns", "holders", "limits", "dying", "inactive"]),
    ),
];

/// Unit and root integration tests on this kernel, then (unless `host_only`) the integration
/// tests in a VM per [`VM_KERNELS`]; arguments after `--` also go to the test binaries there.
pub fn test(args: &[String], host_only: bool) -> anyhow::Result<()> {
    let root = workspace_root();
    // The integration tests drive the real binary.
    run(cargo().current_dir(&root).args(["build", "-p", "nstrace", "--bins"]))?;
    if !is_root() {
        eprintln!("xtask: not root: root integration tests will print why they skip");
    }
    let bin = root.join("target/debug/nstrace");
    let decoy = if is_root() { crate::decoy::Decoy::start(&bin)? } else { None };
    let mut host = run(cargo()
        .current_dir(&root)
        .args(["test", "--workspace", "--exclude", "nstrace-ebpf"])
        .args(args)
        .env("NSTRACE_BIN", &bin));
    if let Some(decoy) = decoy {
        host = host.and(decoy.finish());
    }
    // The test runs' walk pins (tests::TEST_PIN_ROOT) go with them.
    let _ = std::fs::remove_dir_all("/sys/fs/bpf/nstrace-tests");
    if host_only {
        return host;
    }
    if let Err(e) = &host {
        eprintln!("xtask: host tests failed ({e:#}); running the VM tests anyway");
    }
    let mut opts = vm::Options::new(VM_KERNELS.iter().map(|(k, _)| k.to_string()).collect());
    opts.suites = VM_KERNELS.iter().map(|(k, suites)| (k.to_string(), *suites)).collect();
    opts.test_args = args.iter().skip_while(|a| *a != "--").skip(1).cloned().collect();
    let vms = vm::vm_test(&opts);
    host.and(vms)
}

//! Builds and runs nstrace and the test suites.

use std::process::Command;

use crate::setup::{cargo, is_root, run, workspace_root};

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

pub fn test(args: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    // The integration tests drive the real binary.
    run(cargo().current_dir(&root).args(["build", "-p", "nstrace", "--bins"]))?;
    if !is_root() {
        eprintln!("xtask: not root: root integration tests will print why they skip");
    }
    run(cargo()
        .current_dir(&root)
        .args(["test", "--workspace", "--exclude", "nstrace-ebpf"])
        .args(args)
        .env("NSTRACE_BIN", root.join("target/debug/nstrace")))
}

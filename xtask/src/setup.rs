//! Bootstraps a fresh machine: rust-src, bpf-linker built against the LLVM
//! library inside the Rust toolchain, and the Debian packages tests use.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// The bpf-linker release that builds against Rust 1.95's LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages the tests drive: (command to look for, package).
const PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("lsns", "util-linux"),
    ("unshare", "util-linux"),
    ("tmux", "tmux"),
    ("mount", "mount"),
    // `nstrace export` tests: a real Prometheus scrapes it; promtool lints.
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    // The `perf` text format is compared with perf's own (perf record --namespaces).
    ("perf", "linux-perf"),
    // Fd holders in the tests are Python processes (SCM_RIGHTS).
    ("python3", "python3"),
    // `nstrace serve` tests read its database with the sqlite3 tool, as users do.
    ("sqlite3", "sqlite3"),
    // `cargo xtask bench --only hooks` reads each program's run time with it.
    ("bpftool", "bpftool"),
    // A real Docker for the container-leak test (started by the test itself).
    ("dockerd", "docker.io"),
    // Kubernetes nodes without a kubelet: a private containerd's CRI plugin with a CNI bridge,
    // driven by the tests' CRI client (k8s-cri, whose build runs protoc); cc builds the static
    // pause program.
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("/usr/lib/cni/bridge", "containernetworking-plugins"),
    ("protoc", "protobuf-compiler"),
    // podman (rootful) for the podman leak test.
    ("podman", "podman"),
    ("cc", "gcc"),
    ("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"),
    // `nstrace completions zsh|fish`: the scripts are loaded by the real shells; systemd-analyze
    // verifies the unit.
    ("zsh", "zsh"),
    ("fish", "fish"),
    ("systemd-analyze", "systemd"),
    // `cargo xtask vm-test`: qemu, a static busybox for the initramfs, modprobe/depmod to find
    // the modules that mount the host root, xz to unpack them, apt-get download for kernels.
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("busybox", "busybox-static"),
    // 6.19–7.1 guests boot from an ext4 root image (no 9p module for them).
    ("mke2fs", "e2fsprogs"),
    ("modprobe", "kmod"),
    ("depmod", "kmod"),
    ("xz", "xz-utils"),
    ("zstd", "zstd"),
    ("dpkg-deb", "dpkg"),
    ("timeout", "coreutils"),
];

/// What building and testing need: the toolchain, then every package the
/// tests drive.
pub fn setup() -> anyhow::Result<()> {
    build_only()?;
    ensure_packages()?;
    Ok(())
}

/// What building (and so running) nstrace needs, and no more: rust-src and
/// bpf-linker. `cargo xtask run` installs no test tools (docker, qemu,
/// prometheus, shells).
pub fn build_only() -> anyhow::Result<()> {
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    Ok(())
}

pub fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--installed"]))?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rust-src"]))
}

fn cargo_bin_dir() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

fn ensure_bpf_linker() -> anyhow::Result<()> {
    let linker = cargo_bin_dir().join("bpf-linker");
    if let Ok(v) = output(Command::new(&linker).arg("--version"))
        && v.contains(BPF_LINKER_VERSION)
    {
        return Ok(());
    }
    let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let llvm = fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("libLLVM.so.") || (name.starts_with("libLLVM-") && name.ends_with(".so"))
        })
        .with_context(|| format!("no libLLVM in {}: is this a rustup toolchain?", lib_dir.display()))?;
    // bpf-linker's build looks for <prefix>/lib/libLLVM.so.
    let prefix = workspace_root().join("target/llvm-prefix");
    fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)
        .with_context(|| format!("linking {} to {}", link.display(), llvm.display()))?;
    run(cargo()
        .args(["install", "bpf-linker", "--locked", "--version", BPF_LINKER_VERSION])
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_PREFIX", &prefix))
}

fn have(cmd: &str) -> bool {
    env::var_os("PATH").map(|p| env::split_paths(&p).any(|d| d.join(cmd).is_file())).unwrap_or(false)
        || ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].iter().any(|d| Path::new(d).join(cmd).is_file())
}

fn ensure_packages() -> anyhow::Result<()> {
    let mut missing: Vec<&str> = PACKAGES.iter().filter(|(c, _)| !have(c)).map(|(_, p)| *p).collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        eprintln!("xtask: not root, cannot install {missing:?}; tests needing them will skip");
        return Ok(());
    }
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

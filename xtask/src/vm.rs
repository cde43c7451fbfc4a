//! `cargo xtask vm-test`: boots other kernels under qemu (TCG) with the
//! host's root filesystem as the guest's (read-only over 9p, with a tmpfs
//! overlay, virtme-ng style) and runs the root integration tests inside.

mod initramfs;
mod kernel;
mod report;
mod rootdisk;

use std::{
    env, fs,
    io::{BufRead, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::setup::{cargo, run, workspace_root};
use initramfs::MARK;
use report::Report;

pub struct Options {
    pub kernels: Vec<String>,
    /// `--test-threads` for each test binary inside the guest.
    pub test_threads: u32,
    /// Whole-VM limit: boot, doctor and every test binary.
    pub timeout: Duration,
    /// Limit for one test binary inside the guest.
    pub binary_timeout: Duration,
    pub cpus: u32,
    pub memory_mib: u32,
    /// Boot all kernels at once instead of one after the other.
    pub parallel: bool,
    /// One host thread per vCPU (MTTCG) rather than all vCPUs on one. Off by default: with it,
    /// guests crashed while BPF trampolines were attached and detached (an int3 oops in a
    /// just-patched function on 6.12, both CPUs in a soft lockup on 6.1) and never without.
    pub mttcg: bool,
    /// Extra arguments for every test binary (e.g. a test name filter).
    pub test_args: Vec<String>,
    /// The suites (test binaries) to run on a kernel, by its label; every
    /// suite on a kernel not named here.
    pub suites: Vec<(String, Suites)>,
    /// Only these suites, on every kernel (`vm-test --suite`).
    pub only_suites: Vec<String>,
}

impl Options {
    pub fn new(kernels: Vec<String>) -> Options {
        Options {
            kernels,
            test_threads: 2,
            // Far above a whole VM's run and its longest binary (docs/benchmarks.md, "The test
            // run's VMs"): this only catches a hung guest.
            timeout: Duration::from_secs(40 * 60),
            binary_timeout: Duration::from_secs(15 * 60),
            cpus: 2,
            memory_mib: 4096,
            // With one host thread per VM, two VMs on 2 cores take as long as one.
            parallel: true,
            mttcg: false,
            test_args: Vec::new(),
            suites: Vec::new(),
            only_suites: Vec::new(),
        }
    }

    /// Whether suite `name` runs on the kernel labelled `kernel`.
    fn runs(&self, kernel: &str, name: &str) -> bool {
        if !self.only_suites.is_empty() {
            return self.only_suites.iter().any(|s| s == name);
        }
        match self.suites.iter().find(|(k, _)| k == kernel) {
            None => true,
            Some((_, Suites::Only(only))) => only.contains(&name),
            Some((_, Suites::AllBut(left))) => !left.contains(&name),
        }
    }
}

/// Which suites a kernel runs.
#[derive(Clone, Copy, Debug)]
pub enum Suites {
    Only(&'static [&'static str]),
    /// Every suite but these (a new suite runs here without being named).
    AllBut(&'static [&'static str]),
}

/// What the guest runs, built on the host and copied to target/vm/stage so a
/// concurrent `cargo build` cannot change it under the guest's feet.
struct Staged {
    nstrace: PathBuf,
    tests: Vec<(String, PathBuf)>,
}

pub fn vm_test(opts: &Options) -> anyhow::Result<()> {
    if opts.kernels.is_empty() {
        bail!("no kernel: give --kernel 6.1, --kernel 6.12, a .deb or a bzImage");
    }
    check_static_busybox()?;
    let root = workspace_root();
    let cache = root.join("target/vm");
    let _lock = lock(&cache)?;
    let staged = build_and_stage(&root, &cache.join("stage"))?;
    let prepared: Vec<(&String, anyhow::Result<kernel::Kernel>)> =
        opts.kernels.iter().map(|spec| (spec, kernel::prepare(spec, &cache))).collect();
    let runs = cache.join("run");
    let boot_one = |k: kernel::Kernel| boot(&k, &staged, opts, &runs).unwrap_or_else(|e| Report::failed(&k.label, &e));
    let reports: Vec<Report> = thread::scope(|s| {
        let pending: Vec<_> = prepared
            .into_iter()
            .map(|k| {
                let job = move || match k {
                    (_, Ok(k)) => boot_one(k),
                    (spec, Err(e)) => Report::failed(spec, &e.context(format!("kernel {spec}"))),
                };
                if opts.parallel { Err(s.spawn(job)) } else { Ok(job()) }
            })
            .collect();
        pending.into_iter().map(|p| p.unwrap_or_else(|h| h.join().expect("a VM thread panicked"))).collect()
    });
    eprintln!();
    let mut failed = Vec::new();
    for r in &reports {
        eprint!("{}", r.summary());
        if !r.passed() {
            failed.push(r.label.clone());
        }
    }
    if !failed.is_empty() {
        bail!("vm-test failed on {}", failed.join(", "));
    }
    Ok(())
}

/// Serialises vm-test runs of this checkout: they share target/vm/stage and target/vm/run.
fn lock(cache: &Path) -> anyhow::Result<fs::File> {
    use std::os::fd::AsRawFd as _;
    fs::create_dir_all(cache)?;
    let file = fs::File::create(cache.join(".lock"))?;
    // SAFETY: flock on a file descriptor we own; the lock goes when the file is dropped.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!("xtask: another vm-test is running in this checkout; waiting for it");
        // SAFETY: flock(2) on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("locking {}: {}", cache.join(".lock").display(), std::io::Error::last_os_error());
        }
    }
    Ok(file)
}

/// The initramfs runs busybox before any library is reachable.
fn check_static_busybox() -> anyhow::Result<()> {
    let elf = fs::read("/bin/busybox").context("no /bin/busybox: apt-get install busybox-static")?;
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into()?) as usize;
    let interp =
        (0..u16_at(0x38)).any(|i| elf.get(phoff + i * u16_at(0x36)..).and_then(|p| p.get(..4)) == Some(&[3, 0, 0, 0]));
    if interp {
        bail!("/bin/busybox is dynamically linked: apt-get install busybox-static");
    }
    Ok(())
}

fn build_and_stage(root: &Path, stage: &Path) -> anyhow::Result<Staged> {
    run(cargo().current_dir(root).args(["build", "-p", "nstrace", "--bins"]))?;
    let mut cmd = cargo();
    cmd.current_dir(root).args(["test", "--no-run", "-p", "tests", "--message-format=json"]);
    eprintln!("xtask: running {cmd:?}");
    let out = cmd.stderr(Stdio::inherit()).output().context("spawning cargo test --no-run")?;
    if !out.status.success() {
        bail!("cargo test --no-run -p tests failed: {}", out.status);
    }
    let mut built = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let is_test = v["reason"] == "compiler-artifact"
            && v["profile"]["test"] == true
            && v["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(exe), Some(name)) = (is_test, v["executable"].as_str(), v["target"]["name"].as_str()) {
            built.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    if built.is_empty() {
        bail!("cargo test --no-run -p tests reported no test executables");
    }
    built.sort();
    fs::create_dir_all(stage)?;
    let copy = |from: &Path, name: &str| -> anyhow::Result<PathBuf> {
        let (to, tmp) = (stage.join(name), stage.join(format!(".{name}.tmp")));
        fs::copy(from, &tmp).with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
        fs::rename(&tmp, &to)?;
        Ok(to)
    };
    let nstrace = copy(&root.join("target/debug/nstrace"), "nstrace")?;
    let tests = built.iter().map(|(n, exe)| Ok((n.clone(), copy(exe, n)?))).collect::<anyhow::Result<_>>()?;
    Ok(Staged { nstrace, tests })
}

/// Single-quotes `s` for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script the guest's PID 1 (the host's /bin/sh) runs after switch_root.
fn guest_script(kernel: &str, staged: &Staged, opts: &Options) -> String {
    let mut path: Vec<String> = env::var("PATH").unwrap_or_default().split(':').map(String::from).collect();
    for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        if !path.iter().any(|p| p == d) {
            path.push(d.into());
        }
    }
    let tests_dir = workspace_root().join("tests");
    let mut s = format!(
        // Software emulation runs the kernel's deferred work (RCU grace
        // periods before namespaces are freed) many times slower: the
        // tests stretch their timeouts by this factor; a one-shot run there
        // waits longer for the walk lock than on a host (10 s of verifier
        // while another test's run loads the pins is ordinary there).
        "export PATH={} HOME=/root TERM=xterm LANG=C.UTF-8 NSTRACE_TEST_TIME_SCALE=10 NSTRACE_LOCK_WAIT=30 NSTRACE_BIN={}\nM={}\n",
        quote(&path.join(":")),
        quote(&staged.nstrace.display().to_string()),
        quote(MARK)
    );
    // RUST_LOG on the host reaches nstrace in the guest (debugging a kernel).
    if let Ok(level) = env::var("RUST_LOG") {
        s.push_str(&format!("export RUST_LOG={}\n", quote(&level)));
    }
    s.push_str(
        r#"mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
ln -sf /proc/self/fd /dev/fd
mount -t tmpfs -o mode=755 tmpfs /run
# The overlay root already makes /tmp writable; a tmpfs there would hide a
# workspace cloned under /tmp (as CI may do).
[ -w /tmp ] || mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t securityfs securityfs /sys/kernel/security
hostname nstrace-vm
ip link set lo up
echo "$M uname $(uname -r)"
echo "$M up $(cut -d' ' -f1 /proc/uptime)"
echo "$M begin doctor"
"$NSTRACE_BIN" doctor 2>&1
echo "$M end doctor rc=$?"
"#,
    );
    s.push_str(&format!("cd {}\n", quote(&tests_dir.display().to_string())));
    let args: String = opts.test_args.iter().map(|a| format!(" {}", quote(a))).collect();
    for (name, exe) in &staged.tests {
        if !opts.runs(kernel, name) {
            s.push_str(&format!("echo \"$M skip test {name}: not chosen for this kernel\"\n"));
            continue;
        }
        s.push_str(&format!(
            "echo \"$M begin test {name}\"\ntimeout -k 10 {} {} --test-threads={} --color=never --show-output{args} 2>&1\n\
             echo \"$M end test {name} rc=$?\"\n",
            opts.binary_timeout.as_secs(),
            quote(&exe.display().to_string()),
            opts.test_threads,
        ));
    }
    // reboot(2) at once: sysrq's power-off is asynchronous and shuts 9p down under the shell.
    s.push_str("echo \"$M done\"\n/bin/busybox poweroff -f || echo o > /proc/sysrq-trigger\nread -r _\n");
    s
}

/// Kernel warnings and stack dumps reach the console (loglevel 5, not quiet); a soft lockup
/// (a CPU stuck for 60 s) panics, and a panic reboots, which ends qemu (`-no-reboot`).
const CMDLINE: &str =
    "console=ttyS0 loglevel=5 panic=-1 softlockup_panic=1 watchdog_thresh=30 rdinit=/init mitigations=off";

/// Boots `k`, streams its console to stderr and parses the guest's report.
fn boot(k: &kernel::Kernel, staged: &Staged, opts: &Options, runs: &Path) -> anyhow::Result<Report> {
    let safe: String = k.label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    let dir = runs.join(safe);
    fs::create_dir_all(&dir)?;
    let script = dir.join("guest.sh");
    fs::write(&script, guest_script(&k.label, staged, opts))?;
    let initrd = dir.join("initramfs.cpio");
    fs::write(&initrd, initramfs::build(&k.modules, &script.display().to_string(), k.disk_root)?)?;
    let root_image = dir.join("root.img");
    if k.disk_root {
        eprintln!("xtask: {}: no 9p module for this kernel; making its root image", k.label);
        let stage = staged.nstrace.parent().context("the stage directory")?.to_path_buf();
        // The workspace files tests read (the tests directory, deploy/, docs/).
        let ws = workspace_root();
        let extra = [ws.join("tests"), ws.join("deploy"), ws.join("docs"), stage, script.clone()];
        rootdisk::build(&root_image, &extra)?;
    }
    let mut log = fs::File::create(dir.join("console.log"))?;
    let mut cmd = Command::new("qemu-system-x86_64");
    let accel = if opts.mttcg { "tcg,thread=multi" } else { "tcg,thread=single" };
    cmd.args(["-accel", accel, "-cpu", "max", "-smp", &opts.cpus.to_string()])
        .args(["-m", &format!("{}M", opts.memory_mib)])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(&k.image)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(CMDLINE);
    if k.disk_root {
        cmd.arg("-drive")
            .arg(format!("file={},if=none,id=root,format=raw", root_image.display()))
            .args(["-device", "nvme,drive=root,serial=nstrace-root"]);
    } else {
        cmd.arg("-virtfs").arg(format!(
            "local,path=/,mount_tag={},security_model=none,readonly=on,multidevs=remap",
            initramfs::ROOT_TAG
        ));
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    eprintln!("xtask: booting {} ({}) under qemu (TCG)", k.label, k.origin);
    eprintln!("xtask: running {cmd:?}");
    let start = Instant::now();
    let mut child = cmd.spawn().context("spawning qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_string();
            if tx.send(line).is_err() {
                break;
            }
            buf.clear();
        }
    });
    let mut report = Report::new(&k.label, &k.origin, opts.test_threads);
    let deadline = start + opts.timeout;
    let prefix = format!("[vm {}] ", k.label);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let _ = writeln!(log, "[{:8.3}] {line}", start.elapsed().as_secs_f64());
                eprintln!("{prefix}{line}");
                report.line(start.elapsed(), &line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                eprintln!("xtask: {} still running after {:?}: killing qemu", k.label, opts.timeout);
                report.timed_out = true;
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait()?;
    report.total = start.elapsed();
    if !status.success() && !report.timed_out {
        report.errors.push(format!("qemu exited with {status}"));
    }
    eprintln!(
        "xtask: {} finished in {:.1}s; console log (with host seconds) in {}",
        k.label,
        report.total.as_secs_f64(),
        dir.join("console.log").display()
    );
    Ok(report)
}

#[cfg(test)]
mod suite_tests {
    use super::*;

    #[test]
    fn each_kernel_runs_its_chosen_suites() {
        let mut o = Options::new(vec!["6.1".into(), "6.12".into(), "7.3".into()]);
        o.suites = vec![("6.1".into(), Suites::Only(&["ls"])), ("6.12".into(), Suites::AllBut(&["serve"]))];
        assert!(o.runs("6.1", "ls") && !o.runs("6.1", "serve"));
        assert!(o.runs("6.12", "ls") && o.runs("6.12", "a_new_suite") && !o.runs("6.12", "serve"));
        assert!(o.runs("7.3", "serve"), "a kernel not named runs every suite");
        o.only_suites = vec!["mechanisms".into()];
        assert!(o.runs("7.3", "mechanisms") && !o.runs("7.3", "serve") && !o.runs("6.1", "ls"), "--suite wins");
    }
}

//! Rootful podman with the test's own storage, run directory and network
//! configuration: an internal bridge network (no NAT or firewall rules,
//! no traffic) named like podman's default, so containers get the
//! `netns-…` mount podman makes on the host. Everything it made is torn
//! down when the guard drops, also when the test fails.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use crate::{eventually, scaled, sh};

pub const IMAGE: &str = "localhost/nstrace-test-busybox:1";
/// The private network's bridge (deleted when the guard drops).
pub const BRIDGE: &str = "nstpm0";

/// Why this host cannot run the podman tests, if it cannot.
pub fn unavailable() -> Option<String> {
    if !crate::have("podman") {
        return Some("podman is not installed (cargo xtask setup installs it)".into());
    }
    if crate::in_vm() {
        return Some(
            "container runtimes are tested on the host run only (the VMs run a read-only copy of the host root)".into(),
        );
    }
    if Path::new(&format!("/sys/class/net/{BRIDGE}")).exists() {
        return Some(format!("a bridge named {BRIDGE} already exists: another podman test is running"));
    }
    None
}

/// The podman this test drives; its containers, mounts and network go when dropped.
pub struct Podman {
    pub dir: String,
    /// /run/netns entries before the start (the ones after are podman's).
    netns_before: Vec<String>,
}

fn netns_files() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().to_string_lossy().into_owned())
        .collect()
}

impl Podman {
    /// podman with its state under `dir` and a busybox image imported.
    pub fn start(dir: &str) -> Podman {
        std::fs::create_dir_all(format!("{dir}/net")).unwrap();
        // podman's default network name, on a bridge and subnet of the test's own.
        let network = serde_json::json!({
            "name": "podman", "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
            "driver": "bridge", "network_interface": BRIDGE, "created": "2026-01-01T00:00:00Z",
            "subnets": [{"subnet": "10.214.0.0/24", "gateway": "10.214.0.1"}],
            "ipv6_enabled": false, "internal": true, "dns_enabled": false,
            "ipam_options": {"driver": "host-local"},
        });
        std::fs::write(format!("{dir}/net/podman.json"), network.to_string()).unwrap();
        let me = Podman { dir: dir.into(), netns_before: netns_files() };
        let rootfs = format!("{dir}/rootfs");
        sh(&format!(
            "mkdir -p {rootfs}/bin && cp /bin/busybox {rootfs}/bin/ && ln -sf busybox {rootfs}/bin/sleep && ln -sf busybox {rootfs}/bin/sh"
        ));
        let import = format!("tar -C {rootfs} -c . | {} import - {IMAGE} >/dev/null", me.command_line());
        sh(&import);
        me
    }

    /// The podman command line with this test's state directories.
    pub fn command_line(&self) -> String {
        let d = &self.dir;
        format!(
            "podman --root {d}/storage --runroot {d}/run --cgroup-manager cgroupfs --events-backend file \
             --network-config-dir {d}/net --tmpdir {d}/tmp"
        )
    }

    /// Runs podman with `args`; its stdout, trimmed (panics on failure).
    pub fn run(&self, args: &[&str]) -> String {
        let line = self.command_line();
        let mut words = line.split_whitespace();
        let out = Command::new(words.next().unwrap()).args(words).args(args).output().expect("podman");
        assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `podman run -d` of a busybox sleep named `name`: its id. This kind
    /// of machine lacks CAP_SYS_RESOURCE: the limits are given, not raised.
    pub fn run_sleeper(&self, name: &str) -> String {
        let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"];
        self.run(&[&["run", "-d", "--name", name][..], &limits, &[IMAGE, "/bin/sleep", "2147483647"]].concat())
    }

    /// SIGKILL to conmon and the container's processes: podman leaves its netns mounted.
    pub fn kill_container(&self, id: &str) {
        let pid: i32 = self.run(&["inspect", "-f", "{{.State.Pid}}", id]).parse().unwrap();
        let conmon = Command::new("pgrep").args(["-f", "--", &format!("conmon .*-c {id}")]).output().unwrap();
        let mut victims: Vec<i32> =
            String::from_utf8_lossy(&conmon.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect();
        victims.push(pid);
        for v in &victims {
            // SAFETY: kill(2) takes no pointers; each pid is of this test's container.
            unsafe { libc::kill(*v, libc::SIGKILL) };
        }
        eventually(scaled(Duration::from_secs(10)), "the container's processes gone", || {
            victims.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()).then_some(())
        });
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let line = self.command_line();
        let dir = &self.dir;
        let _ = Command::new("sh").arg("-c").arg(format!("{line} rm -af -t 0")).output();
        // conmon and containers of this test's podman (their command lines name its directories).
        let left = Command::new("pgrep").args(["-f", "--", &format!("{dir}/")]).output();
        let left: Vec<i32> = left
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default();
        for pid in &left {
            // SAFETY: kill(2) takes no pointers; the pid's command line names this test's directory.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        // Reaped too (bounded; never a panic in Drop): a zombie shows its cgroup to later tests.
        let deadline = std::time::Instant::now() + scaled(Duration::from_secs(20));
        while left.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for m in $(awk '{{print $5}}' /proc/self/mountinfo | grep '^{dir}/' | sort -r); do umount -l \"$m\"; done; \
                 ip link del {BRIDGE}"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for f in netns_files() {
            if !self.netns_before.contains(&f) {
                let _ = Command::new("umount").arg(&f).stderr(Stdio::null()).status();
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

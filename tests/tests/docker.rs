//! A real Docker (Debian's docker.io), started by the test: a container's
//! namespaces carry its id and name, and after dockerd, containerd, the
//! shim and the container are killed with SIGKILL, `leaks` names the netns
//! left mounted under /run/docker/netns: whose container it was, who made
//! and pinned it, and how old it is. Containers run with `--network none`
//! (no traffic to the bridge's addresses); the image is imported from a
//! local busybox root filesystem (no registry).

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tests::{RmDir, eventually, nstrace_bin, root_or_skip, sh, skip};

const SOCK: &str = "/run/nstrace-test-docker.sock";
const IMAGE: &str = "nstrace-test-busybox:latest";

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").arg("-H").arg(format!("unix://{SOCK}")).args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn pids_of(pattern: &str) -> Vec<i32> {
    let out = Command::new("pgrep").args(["-f", pattern]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Kills every process of the Docker this test started and unmounts what
/// they left, even when the test fails.
struct DockerGuard;

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let patterns = [SOCK, "containerd-shim", "/var/run/docker/containerd/containerd.toml"];
        for pattern in patterns {
            for pid in pids_of(pattern) {
                // SAFETY: kill(2) takes no pointers; the pid is our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // Gone (and reaped) before the next test looks for a running dockerd.
        let deadline = std::time::Instant::now() + tests::scaled(Duration::from_secs(10));
        loop {
            let left: Vec<i32> = patterns.iter().chain(&["dockerd"]).flat_map(|p| pids_of(p)).collect();
            if left.is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            // Ours (dockerd is this test's child): reap them.
            for pid in left {
                // SAFETY: waitpid(2) on our own child; a null status pointer is allowed.
                let _ = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("sh")
            .args(["-c", "for m in /run/docker/netns/*; do umount \"$m\" 2>/dev/null; rm -f \"$m\"; done"])
            .status();
    }
}

/// `nstrace serve` with its own database and socket.
struct Serve {
    child: std::process::Child,
    socket: String,
}

impl Serve {
    fn ask(&self, args: &[&str]) -> (i32, String) {
        let out = tests::nstrace_command().args(args).env("NSTRACE_SOCKET", &self.socket).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("one-shot snapshot"), "the service did not answer: {err}");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tests here start and kill their own dockerd: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a Docker can be started here; prints why not.
fn docker_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    if tests::in_vm() {
        skip(test, "Docker is tested on the host run only (the VMs run a read-only copy of the host root)");
        return false;
    }
    if Command::new("dockerd").arg("--version").output().is_err() {
        skip(test, "dockerd is not installed (cargo xtask setup installs docker.io)");
        return false;
    }
    if !pids_of("dockerd").is_empty() {
        skip(test, "a dockerd is already running on this host: the test kills the one it starts, not yours");
        return false;
    }
    true
}

/// A dockerd on [`SOCK`] with no bridge and no iptables rules, logging
/// into `dir`; answering when this returns.
fn start_dockerd(dir: &str) -> std::process::Child {
    let log = std::fs::File::create(format!("{dir}/dockerd.log")).unwrap();
    let dockerd = Command::new("dockerd")
        .args(["-H", &format!("unix://{SOCK}"), "--bridge", "none", "--iptables=false", "--ip6tables=false"])
        .args(["--pidfile", &format!("{dir}/dockerd.pid")])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start dockerd");
    eventually(Duration::from_secs(60), "dockerd answering", || {
        let ok = Command::new("docker").args(["-H", &format!("unix://{SOCK}"), "version"]).output().ok()?;
        ok.status.success().then_some(())
    });
    dockerd
}

#[test]
fn a_killed_docker_leaks_a_netns_that_leaks_names() {
    let test = "a_killed_docker_leaks_a_netns_that_leaks_names";
    let _serial = serial();
    if !docker_or_skip(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let socket = format!("{dir}/nstrace.sock");
    let mut child = tests::nstrace_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &format!("{dir}/nstrace.db"), "--socket", &socket])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready once it says so: its hooks are attached (the socket exists earlier).
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    tests::wait_for_line(&mut stderr, "serving on", "nstrace serve");
    std::thread::spawn(move || {
        for l in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            eprintln!("[nstrace serve] {l}");
        }
    });
    let serve = Serve { child, socket };

    let _guard = DockerGuard;
    let mut dockerd = start_dockerd(&dir);
    // An image from a local root filesystem: static busybox.
    let rootfs = format!("{dir}/rootfs");
    std::fs::create_dir_all(format!("{rootfs}/bin")).unwrap();
    std::fs::copy("/bin/busybox", format!("{rootfs}/bin/busybox")).unwrap();
    sh(&format!("tar -C {rootfs} -c . | docker -H unix://{SOCK} import - {IMAGE} >/dev/null"));
    let name = format!("nstrace-test-{}", std::process::id());
    let id = docker(&["run", "-d", "--name", &name, "--network", "none", IMAGE, "/bin/busybox", "sleep", "600"]);
    let pid: u32 = docker(&["inspect", "-f", "{{.State.Pid}}", &id]).parse().unwrap();
    let sandbox = docker(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", &id]);
    let netns = tests::ns_inode(pid, "net");

    // While it runs: its namespaces name the container.
    let why = eventually(Duration::from_secs(15), "the container's netns named", || {
        let (code, out) = serve.ask(&["why", "--json", &format!("/proc/{pid}/ns/net")]);
        let why: Value = (code == 0).then(|| serde_json::from_str(&out).unwrap())?;
        let seen = why["seen_in"].as_array()?.iter().any(|c| c["id"] == id.as_str() && c["name"] == name.as_str());
        seen.then_some(why)
    });
    assert_eq!(why["namespace"]["inode"], netns);
    // `why` takes the container's name (its net namespace by default) or id.
    for target in [name.as_str(), &id[..12]] {
        let (code, out) = serve.ask(&["why", "--json", target]);
        assert_eq!(code, 0, "why {target}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["namespace"]["inode"], netns, "why {target}");
        assert!(v["release"][0]["command"].is_null(), "in use by the container: no command: {v}");
    }
    let (_, out) = serve.ask(&["why", "--json", "--type", "uts", &name]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["namespace"]["type"], "uts");
    let (_, ls) = serve.ask(&["ls", "--json", "--type", "uts"]);
    let rows: Vec<Value> = serde_json::from_str(&ls).unwrap();
    let uts = tests::ns_inode(pid, "uts");
    let row = rows.iter().find(|r| r["inode"] == uts).expect("the container's uts namespace");
    assert!(row["containers"].as_array().unwrap().iter().any(|c| c["id"] == id.as_str()), "{row}");

    // Kill everything: dockerd, containerd, the shim, the container.
    let mut victims = vec![dockerd.id() as i32, pid as i32];
    victims.extend(pids_of("/var/run/docker/containerd/containerd.toml"));
    victims.extend(pids_of(&format!("containerd-shim.*{id}")));
    for v in &victims {
        // SAFETY: kill(2) takes no pointers; the pid is our own child.
        unsafe { libc::kill(*v, libc::SIGKILL) };
    }
    let _ = dockerd.wait();
    eventually(Duration::from_secs(10), "the container process gone", || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });

    // The netns stays mounted under /run/docker/netns: a leak, with its story.
    let sandbox_path = sandbox.replace("/var/run/", "/run/");
    let leak = eventually(Duration::from_secs(15), "the docker netns reported as a leak", || {
        let (code, out) = serve.ask(&["leaks", "--json", "--type", "net"]);
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(code, if report["count"] == 0 { 0 } else { 1 }, "leaks exits 1 when it finds any");
        report["leaks"].as_array()?.iter().find(|l| l["inode"] == netns && l["state"] == "mounted").cloned()
    });
    assert!(
        leak["seen_in"].as_array().unwrap().iter().any(|c| c["id"] == id.as_str() && c["name"] == name.as_str()),
        "{leak}"
    );
    let pin = leak["pins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["target"] == sandbox_path.as_str())
        .unwrap_or_else(|| panic!("{leak}"));
    // dockerd (or its re-executed helper, `exe`, child of dockerd) bind-mounted it.
    assert!(pin["by"].as_str().is_some_and(|b| b.contains("dockerd[")), "pinned by dockerd: {pin}");
    assert_eq!(pin["attribution"], "mount-syscall", "{pin}");
    // runc made the container's namespaces, inside the container's cgroup.
    let creator = &leak["creator"];
    assert!(creator["comm"].as_str().is_some_and(|c| c.starts_with("runc")), "made by runc: {leak}");
    assert_eq!(creator["container"]["id"], id.as_str(), "{creator}");
    assert_eq!(creator["container"]["name"], name.as_str(), "{creator}");
    assert!(leak["age"].as_f64().is_some_and(|a| a > 0.0), "{leak}");
    // The fix is the runtime's own command first.
    let fix =
        leak["fix"].as_array().unwrap().iter().find(|f| f["command"].is_string()).unwrap_or_else(|| panic!("{leak}"));
    assert_eq!(fix["command"], format!("docker rm -f {name}"), "{leak}");
    assert_eq!(fix["safe"], true);
    let (_, text) = serve.ask(&["leaks", "--type", "net"]);
    assert!(
        text.contains(&format!("({name})")) && text.contains("pinned by mount") && text.contains("dockerd["),
        "{text}"
    );
}

#[test]
fn the_image_lists_the_hosts_namespaces_from_a_privileged_container() {
    let test = "the_image_lists_the_hosts_namespaces_from_a_privileged_container";
    let _serial = serial();
    if !docker_or_skip(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let _guard = DockerGuard;
    let mut dockerd = start_dockerd(&dir);
    // Built as users build it (deploy/Containerfile, from scratch), with the binary under test.
    let tag = "nstrace-test-image:latest";
    let root = tests::repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["run", "-q", "-p", "xtask", "--", "image", "--tag", tag, "--docker-host", &format!("unix://{SOCK}")])
        .arg("--binary")
        .arg(nstrace_bin())
        .status()
        .unwrap();
    assert!(status.success(), "cargo xtask image failed: {status}");
    // A namespace only the host's mount namespace names.
    let name = tests::unique("nstrace-image");
    sh(&format!("ip netns add {name}"));
    let _netns = NetnsGuard(name.clone());
    let named = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(format!("/run/netns/{name}")).unwrap());
    // What the DaemonSet gives it: privileged, the host's pid namespace, BTF.
    let run = |privilege: &[&str]| {
        let mut args = vec!["run", "--rm", "--pid", "host", "--network", "none"];
        args.extend_from_slice(privilege);
        args.extend_from_slice(&["-v", "/sys/kernel/btf:/sys/kernel/btf:ro", tag, "ls", "--json", "--no-service"]);
        Command::new("docker").arg("-H").arg(format!("unix://{SOCK}")).args(&args).output().unwrap()
    };
    let mut ran = run(&["--privileged"]);
    let err = String::from_utf8_lossy(&ran.stderr).into_owned();
    if !ran.status.success() && err.contains("unable to apply caps") {
        // A sandboxed host whose own bounding set lacks a capability
        // (CAP_SYS_RESOURCE here) cannot give a container all of them.
        println!(
            "{test}: --privileged needs capabilities this host lacks ({}); running with those nstrace uses",
            err.trim()
        );
        ran = run(&[
            "--cap-add=SYS_ADMIN",
            "--cap-add=SYS_PTRACE",
            "--cap-add=DAC_READ_SEARCH",
            "--cap-add=DAC_OVERRIDE",
            "--cap-add=NET_ADMIN",
            "--security-opt=seccomp=unconfined",
            "--security-opt=apparmor=unconfined",
            "--security-opt=systempaths=unconfined",
        ]);
    }
    assert!(ran.status.success(), "ls --json in the image: {}", String::from_utf8_lossy(&ran.stderr));
    let out = String::from_utf8_lossy(&ran.stdout).into_owned();
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("ls --json in the image: {e}: {out}"));
    let has = |ty: &str, inode: u64| rows.iter().any(|r| r["type"] == ty && r["inode"] == inode);
    for ty in ["net", "mnt", "pid", "user", "uts", "ipc", "cgroup"] {
        let host = tests::ns_inode(std::process::id(), ty);
        assert!(has(ty, host), "the host's {ty} namespace {host} is not listed from the container");
    }
    assert!(has("net", named), "the host's named netns {name} ({named}) is not listed from the container");
    let row = rows.iter().find(|r| r["type"] == "net" && r["inode"] == named).unwrap();
    assert!(row["names"].as_array().is_some_and(|n| n.iter().any(|n| n == name.as_str())), "{row}");
    let _ = dockerd.kill();
    let _ = dockerd.wait();
}

/// Deletes an `ip netns` when dropped.
struct NetnsGuard(String);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

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
        for pattern in [SOCK, "containerd-shim", "/var/run/docker/containerd/containerd.toml"] {
            for pid in pids_of(pattern) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
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
        let out = Command::new(nstrace_bin()).args(args).env("NSTRACE_SOCKET", &self.socket).output().unwrap();
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

#[test]
fn a_killed_docker_leaks_a_netns_that_leaks_names() {
    let test = "a_killed_docker_leaks_a_netns_that_leaks_names";
    if !root_or_skip(test) {
        return;
    }
    if std::env::var("NSTRACE_TEST_TIME_SCALE").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0) > 1.0 {
        skip(test, "Docker is tested on the host run only (the VMs run a read-only copy of the host root)");
        return;
    }
    if Command::new("dockerd").arg("--version").output().is_err() {
        skip(test, "dockerd is not installed (cargo xtask setup installs docker.io)");
        return;
    }
    if !pids_of("dockerd").is_empty() {
        skip(test, "a dockerd is already running on this host: the test kills the one it starts, not yours");
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let socket = format!("{dir}/nstrace.sock");
    let mut child = Command::new(nstrace_bin())
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
    let log = std::fs::File::create(format!("{dir}/dockerd.log")).unwrap();
    let mut dockerd = Command::new("dockerd")
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

//! `nstrace leaks` / `why` / container attribution / `diff` on real leak shapes.

use std::{process::Command, time::Duration};

use serde_json::Value;
use tests::{
    FD_RECEIVER_PY, FD_SENDER_PY, Trace, Umount, ls_json, ns_inode, nstrace, root_or_skip, sh, spawn_ready, tempdir,
    unique,
};

/// `nstrace leaks --json` → (exit code, report).
fn leaks() -> (i32, Value) {
    leaks_from(&[])
}

fn leaks_from(extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["leaks", "--json"];
    args.extend(extra);
    let (code, out, err) = nstrace(&args);
    assert!(code == 0 || code == 1, "leaks failed ({code}): {err}");
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}")))
}

fn leak<'a>(report: &'a Value, ty: &str, inode: u64) -> Option<&'a Value> {
    report["leaks"].as_array().unwrap().iter().find(|l| l["type"] == ty && l["inode"] == inode)
}

fn reasons<'a>(l: &'a Value, kind: &str) -> Vec<&'a Value> {
    l["reasons"].as_array().unwrap().iter().filter(|r| r["kind"] == kind).collect()
}

#[test]
fn netns_kept_by_a_bind_mount_after_its_process_exited() {
    if !root_or_skip("netns_kept_by_a_bind_mount_after_its_process_exited") {
        return;
    }
    let dir = tempdir();
    let target = format!("{dir}/netns");
    std::fs::write(&target, b"").unwrap();
    let (p, _) = spawn_ready(Command::new("unshare").args(["-n", "sh", "-c", "echo ready; exec sleep infinity"]));
    let net = ns_inode(p.pid(), "net");
    sh(&format!("mount --bind /proc/{}/ns/net {target}", p.pid()));
    let _umount = Umount(target.clone());
    drop(p);
    let (code, report) = leaks();
    assert_eq!(code, 1, "leaks found → exit 1");
    let l = leak(&report, "net", net).expect("the mounted netns is a leak");
    assert_eq!(l["state"], "mounted");
    let m = reasons(l, "mount");
    assert_eq!(m.len(), 1, "{l}");
    assert_eq!(m[0]["path"], target.as_str());
    assert!(report["by_type"]["net"].as_u64().unwrap() >= 1);
    assert!(report["by_holder"]["mount"].as_u64().unwrap() >= 1);
}

#[test]
fn netns_kept_only_by_a_passed_fd() {
    if !root_or_skip("netns_kept_only_by_a_passed_fd") {
        return;
    }
    let dir = tempdir();
    let _rm = tests::RmDir(dir.clone());
    let sock = format!("{dir}/sock");
    let (mut receiver, _) = spawn_ready(Command::new("python3").args(["-c", FD_RECEIVER_PY, &sock]));
    let out = Command::new("unshare").args(["-n", "python3", "-c", FD_SENDER_PY, &sock]).output().unwrap();
    assert!(out.status.success());
    let net: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let fd: i64 = receiver.next_line().parse().unwrap();
    let (_, report) = leaks();
    let l = leak(&report, "net", net).expect("the fd-held netns is a leak");
    assert_eq!(l["state"], "fd-only");
    let f = reasons(l, "fd");
    assert_eq!(f.len(), 1, "{l}");
    assert_eq!(f[0]["pid"], receiver.pid());
    assert_eq!(f[0]["fd"], fd);
    assert!(f[0]["cmdline"].as_str().unwrap().contains("python3"), "{l}");
}

#[test]
fn user_ns_kept_only_as_owner_of_a_mounted_netns() {
    if !root_or_skip("user_ns_kept_only_as_owner_of_a_mounted_netns") {
        return;
    }
    let dir = tempdir();
    let target = format!("{dir}/netns");
    std::fs::write(&target, b"").unwrap();
    let (p, _) = spawn_ready(Command::new("unshare").args(["-U", "-n", "sh", "-c", "echo ready; exec sleep infinity"]));
    let (user, net) = (ns_inode(p.pid(), "user"), ns_inode(p.pid(), "net"));
    sh(&format!("mount --bind /proc/{}/ns/net {target}", p.pid()));
    let _umount = Umount(target.clone());
    drop(p);
    std::thread::sleep(Duration::from_millis(200));
    let (_, report) = leaks();
    let l = leak(&report, "user", user).expect("the owning user ns is a leak");
    assert_eq!(l["state"], "orphaned");
    let o = reasons(l, "owner");
    assert_eq!(o.len(), 1, "{l}");
    let deps = o[0]["dependents"].as_array().unwrap();
    assert!(deps.iter().any(|d| d["type"] == "net" && d["inode"] == net && d["state"] == "mounted"), "{l}");
    assert!(reasons(l, "kernel-reference").is_empty());
}

const SOCKET_PINNER: &str = r#"
import ctypes, os, socket, time
libc = ctypes.CDLL(None, use_errno=True)
home = os.open("/proc/self/ns/net", os.O_RDONLY)
assert libc.unshare(0x40000000) == 0
print(os.stat("/proc/self/ns/net").st_ino, flush=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
assert libc.setns(home, 0x40000000) == 0
os.close(home)
print(s.fileno(), flush=True)
while True: time.sleep(3600)
"#;

#[test]
fn netns_kept_only_by_a_socket_in_another_netns() {
    if !root_or_skip("netns_kept_only_by_a_socket_in_another_netns") {
        return;
    }
    let (mut p, net) = spawn_ready(Command::new("python3").args(["-c", SOCKET_PINNER]));
    let net: u64 = net.parse().unwrap();
    let fd: i64 = p.next_line().parse().unwrap();
    assert_ne!(ns_inode(p.pid(), "net"), net, "the process went back to its own netns");
    // /proc has no link to it: the /proc source finds it through the socket.
    for source in ["kernel", "proc"] {
        if source == "kernel" && !tests::kernel().has_ns_ids {
            continue;
        }
        let (_, report) = leaks_from(&["--source", source]);
        let l = leak(&report, "net", net).unwrap_or_else(|| {
            // What the listing had of it, for the failure message.
            let rows = tests::ls_json(&["--source", source, "--type", "net"]);
            panic!("{source}: the socket-pinned netns {net} is a leak; ls has {:?}", tests::find_row(&rows, "net", net))
        });
        assert_eq!(l["state"], "orphaned");
        let s = reasons(l, "socket");
        assert_eq!(s.len(), 1, "{source}: {l}");
        assert_eq!(s[0]["pid"], p.pid());
        assert_eq!(s[0]["fd"], fd);
    }
}

#[test]
fn docker_named_cgroup_is_attributed() {
    let test = "docker_named_cgroup_is_attributed";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|b| std::path::Path::new(&format!("{b}/cgroup.procs")).exists());
    let Some(base) = base else {
        tests::skip("docker_named_cgroup_is_attributed", "no cgroup2 hierarchy mounted");
        return;
    };
    let id: String = (0..64).map(|i| char::from_digit((i * 7 + 3) % 16, 16).unwrap()).collect();
    let cg = format!("{base}/system.slice/docker-{id}.scope");
    std::fs::create_dir_all(&cg).unwrap();
    struct Rmdir(String);
    impl Drop for Rmdir {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(100));
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _rm = Rmdir(cg.clone());
    // The child waits on stdin until it has been moved into the cgroup.
    let (mut p, _) = {
        let mut cmd = Command::new("unshare");
        cmd.args(["-n", "sh", "-c", "echo ready; read x; exec sleep infinity"]).stdin(std::process::Stdio::piped());
        spawn_ready(&mut cmd)
    };
    std::fs::write(format!("{cg}/cgroup.procs"), p.pid().to_string()).unwrap();
    p.send_line("go");
    std::thread::sleep(Duration::from_millis(200));
    let net = ns_inode(p.pid(), "net");
    let rows = ls_json(&["--type", "net"]);
    let row = tests::find_row(&rows, "net", net).expect("row");
    let containers = row["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{row}");
    assert_eq!(containers[0]["runtime"], "docker");
    assert_eq!(containers[0]["id"], id.as_str());
    // And `why` names the container too.
    let (code, out, err) = nstrace(&["why", &format!("/proc/{}/ns/net", p.pid())]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("container: docker {id}")), "{out}");
    // The host's user namespace, which this "container" shares with every
    // host process, is not claimed for it: the host's and which container
    // shares it, and `why` says so.
    let user = ns_inode(p.pid(), "user");
    assert_eq!(user, ns_inode(std::process::id(), "user"));
    let (code, out, err) = nstrace(&["ls", "--no-service", "-l", "-r", "-n", "-t", "user,net", "-o", "NS,CONTAINER"]);
    assert_eq!(code, 0, "{err}");
    let cell = |ns: u64| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{ns} ")))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{out}"))
    };
    assert_eq!(cell(user), format!("host+docker:{}", &id[..12]), "{out}");
    assert_eq!(cell(net), format!("docker:{}", &id[..12]));
    let (_, why_user, _) = nstrace(&["why", "--no-service", &format!("/proc/{}/ns/user", p.pid())]);
    assert!(why_user.contains("shared:    by 1 container and "), "{why_user}");
}

#[test]
fn why_prints_the_fix_and_running_it_releases_the_netns() {
    if !root_or_skip("why_prints_the_fix_and_running_it_releases_the_netns") {
        return;
    }
    let trace = Trace::start(&["--event", "create,destroy"]);
    let name = unique("nstrace-why");
    let _netns = tests::IpNetns::add(name.clone());
    let path = format!("/run/netns/{name}");
    let inode = std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let create = trace
        .wait_for(Duration::from_secs(5), |v| v["event"] == "create" && v["inode"] == inode && v["comm"] == "ip")
        .expect("create event");
    let (code, out, err) = nstrace(&["why", &path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("state:     mounted"), "{out}");
    // An `ip netns` mount: the fix is ip's own command, safe to run as-is.
    let line = out.lines().map(str::trim).find(|l| l.starts_with("ip netns del ")).expect("an ip netns del command");
    assert!(line.contains("[safe]"), "{line}");
    let cmd = line.split("   [").next().unwrap().trim();
    assert_eq!(cmd, format!("ip netns del {name}"));
    sh(cmd);
    let (_, report) = leaks();
    assert!(leak(&report, "net", inode).is_none(), "still listed after umount");
    trace
        .wait_for(Duration::from_secs(3), |v| tests::kernel().is_destroy_of(v, &create))
        .expect("destroy event after umount");
}

#[test]
fn diff_of_two_snapshots() {
    if !root_or_skip("diff_of_two_snapshots") || !tests::kernel_independent("diff_of_two_snapshots") {
        return;
    }
    let dir = tempdir();
    struct RmDir(String);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = RmDir(dir.clone());
    let (a, b) = (format!("{dir}/a.json"), format!("{dir}/b.json"));
    std::fs::write(&a, nstrace(&["ls", "--json"]).1).unwrap();
    let name = unique("nstrace-diff");
    let _netns = tests::IpNetns::add(name.clone());
    let inode = std::fs::metadata(format!("/run/netns/{name}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    std::fs::write(&b, nstrace(&["ls", "--json"]).1).unwrap();
    sh(&format!("ip netns del {name}"));
    let inode = inode.expect("stat of the ip netns mount");
    let (code, out, err) = nstrace(&["diff", "--json", &a, &b]);
    assert_eq!(code, 1, "differences exit 1, as diff(1): {err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    let ours: Vec<&Value> = d["appeared"].as_array().unwrap().iter().filter(|r| r["inode"] == inode).collect();
    assert_eq!(ours.len(), 1, "our netns {inode} appeared once: {d}");
    assert_eq!((&ours[0]["type"], &ours[0]["state"]), (&Value::from("net"), &Value::from("mounted")));
    // And the reverse: it disappeared.
    let (_, out, _) = nstrace(&["diff", "--json", &b, &a]);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert!(
        r["disappeared"].as_array().unwrap().iter().any(|r| r["inode"] == inode && r["names"][0] == name.as_str()),
        "gone, and still named {name}: {r}"
    );
    assert_eq!(nstrace(&["diff", &a, &a]).0, 0, "a snapshot does not differ from itself");
    // A reader that goes away early is not an error (no broken-pipe panic).
    // (The reader closes its end at once, so the first write fails with EPIPE.)
    let script = format!(
        "{} diff {a} {b} | {{ exec 0<&-; sleep 0.5; }}; echo ${{PIPESTATUS[0]}}",
        tests::nstrace_bin().display()
    );
    let piped = std::process::Command::new("bash").envs(tests::private_env()).args(["-c", &script]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&piped.stdout).trim(),
        "1",
        "diff into a closed pipe: {}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let (code, _, err) = nstrace(&["diff", &a, "/nonexistent.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.json"), "{err}");
}

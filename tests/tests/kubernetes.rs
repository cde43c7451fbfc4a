//! Kubernetes nodes for real: a private containerd with its CRI plugin and a
//! CNI bridge, driven by a CRI client as the kubelet drives it (there is no
//! kubelet here: the tests are the kubelet). Every namespace of a pod
//! sandbox and of its containers names the pod; after the runtime dies the
//! `cni-…` netns it leaves mounted is a leak that still names its pod.

use std::time::Duration;

use serde_json::Value;
use tests::{
    RmDir,
    cri::{Containerd, Pod},
    eventually, root_or_skip,
    service::Service,
    skip,
};

/// The tests here start and kill their own containerd: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A node for one test: its own `nstrace serve` and containerd, one at a
/// time; None (with the reason printed) where they cannot run.
/// Fields drop in this order: the runtime first, the directory last.
struct Node {
    containerd: Containerd,
    service: Service,
    _rm: RmDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

fn node(test: &str) -> Option<Node> {
    let serial = serial();
    if !root_or_skip(test) {
        return None;
    }
    if let Some(why) = tests::cri::unavailable() {
        skip(test, &why);
        return None;
    }
    let dir = tests::tempdir();
    let rm = RmDir(dir.clone());
    let service = Service::start(&dir);
    let containerd = Containerd::start(&format!("{dir}/containerd"));
    Some(Node { containerd, service, _rm: rm, _serial: serial })
}

fn pod(name: &str) -> Pod {
    let n = std::process::id();
    Pod {
        namespace: "shop".into(),
        name: format!("{name}-{n}"),
        uid: format!("5e1f00d2-7c3a-4b8e-9d10-{:012x}", n as u64 * 7919),
    }
}

/// The pod entries (`seen_in`) of a `ls --json` row: the containers of
/// `sandbox` seen in that namespace.
fn pod_entries<'a>(row: &'a Value, sandbox: &str) -> Vec<&'a Value> {
    row["seen_in"].as_array().map(|a| a.iter().filter(|c| c["sandbox"] == sandbox).collect()).unwrap_or_default()
}

#[test]
fn a_pod_names_its_namespaces() {
    let Some(mut node) = node("a_pod_names_its_namespaces") else { return };
    let (containerd, service) = (&node.containerd, &node.service);
    let pod = pod("web");
    let sandbox = containerd.run_pod(&pod);
    let app = containerd.run_sleeper(&sandbox, &pod, "app");
    let pause_pid = containerd.sandbox_pid(&sandbox);
    let app_pid = containerd.container_pid(&app);
    let full_name = format!("{}/{}", pod.namespace, pod.name);

    // The sandbox's net, ipc, uts, pid and mount namespaces and the
    // container's own mount namespace (it shares the others): each names
    // the pod (namespace/name, UID), the sandbox and the container.
    let wanted = [
        (pause_pid, "net", &sandbox),
        (pause_pid, "ipc", &sandbox),
        (pause_pid, "uts", &sandbox),
        (pause_pid, "pid", &sandbox),
        (pause_pid, "mnt", &sandbox),
        (app_pid, "mnt", &app),
    ];
    let all_named = |service: &Service| {
        let (code, out, _) = service.ask(&["ls", "--json"]);
        let rows: Vec<Value> = (code == 0).then(|| serde_json::from_str(&out).unwrap())?;
        let named = wanted.iter().all(|(pid, ty, container)| {
            tests::find_row(&rows, ty, tests::ns_inode(*pid, ty)).is_some_and(|r| {
                pod_entries(r, &sandbox).iter().any(|c| c["id"] == container.as_str() && !c["pod"].is_null())
            })
        });
        named.then_some(rows)
    };
    let rows = eventually(Duration::from_secs(30), "every pod namespace named in ls --json", || all_named(service));
    for (pid, ty, container) in wanted {
        let row = tests::find_row(&rows, ty, tests::ns_inode(pid, ty)).unwrap();
        let c = pod_entries(row, &sandbox).into_iter().find(|c| c["id"] == container.as_str()).unwrap();
        assert_eq!(
            (c["runtime"].as_str(), c["pod"].as_str(), c["pod_uid"].as_str()),
            (Some("containerd"), Some(full_name.as_str()), Some(pod.uid.as_str())),
            "{ty} of {pid}: {row}"
        );
        if container == &app {
            assert_eq!(c["name"], "app", "the container's name: {row}");
        }
    }
    // The host's namespaces (the test's own) are not claimed for the pod.
    for ty in ["net", "ipc", "uts", "pid", "mnt", "cgroup", "user", "time"] {
        let row = tests::find_row(&rows, ty, tests::ns_inode(std::process::id(), ty)).expect("the host namespace");
        assert!(pod_entries(row, &sandbox).is_empty(), "the host's {ty} namespace claimed for the pod: {row}");
    }

    // `ls -o pod,runtime` (lsns's JSON form): the pod's namespaces name it, the host's do not.
    let (code, out, err) = service.ask(&["ls", "-J", "-o", "ns,type,pod,runtime"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let cell = |pid: u32, ty: &str| {
        let ns = tests::ns_inode(pid, ty);
        let line = doc["namespaces"].as_array().unwrap().iter().find(|l| l["ns"] == ns && l["type"] == ty).cloned();
        line.map(|l| (l["pod"].clone(), l["runtime"].clone())).unwrap_or_default()
    };
    for ty in ["net", "ipc", "uts", "pid", "mnt"] {
        assert_eq!(cell(pause_pid, ty), (Value::from(full_name.clone()), Value::from("containerd")), "{ty}: {out}");
        assert_eq!(cell(std::process::id(), ty), (Value::Null, Value::Null), "the host's {ty}: {out}");
    }

    // `why` takes the pod as namespace/name, its name, or a sandbox id prefix:
    // its net namespace by default.
    let netns = tests::ns_inode(pause_pid, "net");
    for target in [full_name.as_str(), pod.name.as_str(), &sandbox[..12]] {
        let (code, out, err) = service.ask(&["why", "--json", target]);
        assert_eq!(code, 0, "why {target}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (v["namespace"]["type"].as_str(), v["namespace"]["inode"].as_u64()),
            (Some("net"), Some(netns)),
            "why {target}"
        );
    }
    let (code, out, _) = service.ask(&["why", "--json", "--type", "uts", &full_name]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["namespace"]["inode"], tests::ns_inode(pause_pid, "uts"));

    // kill -9 the service while the pod runs and start it again on its
    // database: the pod is still named.
    node.service.restart_after_kill9();
    eventually(Duration::from_secs(30), "every pod namespace named after a restart", || all_named(&node.service));
}

#[test]
fn a_killed_runtime_leaks_a_cni_netns_that_names_its_pod() {
    let Some(mut node) = node("a_killed_runtime_leaks_a_cni_netns_that_names_its_pod") else { return };
    let service = &node.service;
    let containerd = &mut node.containerd;
    let pod = pod("leaky");
    let sandbox = containerd.run_pod(&pod);
    let pause_pid = containerd.sandbox_pid(&sandbox);
    let netns = tests::ns_inode(pause_pid, "net");
    eventually(Duration::from_secs(30), "the pod's netns named", || {
        let v = service.why_json(&format!("/proc/{pause_pid}/ns/net"));
        v["seen_in"].as_array()?.iter().any(|c| c["sandbox"] == sandbox.as_str() && !c["pod"].is_null()).then_some(())
    });
    containerd.kill_everything();
    let leak = eventually(Duration::from_secs(30), "the leaked cni netns in leaks", || {
        let (_, out, _) = service.ask(&["leaks", "--json", "--min-age", "0"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        v["leaks"].as_array()?.iter().find(|l| l["inode"] == netns).cloned()
    });
    // The leak names its pod, sandbox, creator and pinner, and what to run.
    let cni = leak["names"][0].as_str().expect("an ip netns name").to_string();
    assert!(cni.starts_with("cni-"), "{leak}");
    let seen = leak["seen_in"].as_array().unwrap().iter().find(|c| c["sandbox"] == sandbox.as_str()).expect("the pod");
    assert_eq!(
        (seen["pod"].as_str(), seen["pod_uid"].as_str()),
        (Some(format!("{}/{}", pod.namespace, pod.name).as_str()), Some(pod.uid.as_str())),
        "{leak}"
    );
    assert_eq!(leak["creator"]["comm"], "containerd", "{leak}");
    assert!(leak["age"].as_f64().is_some(), "seen created: its age is known: {leak}");
    let pin = &leak["pins"][0];
    assert_eq!(pin["target"], format!("/run/netns/{cni}"), "{leak}");
    assert!(pin["by"].as_str().is_some_and(|b| b.starts_with("containerd[")), "{leak}");
    let fix = &leak["fix"][0];
    assert_eq!(
        (fix["command"].as_str(), fix["safe"].as_bool()),
        (Some(format!("crictl rmp -f {sandbox}").as_str()), Some(false))
    );
    let by_hand = format!("umount /run/netns/{cni} && rm /run/netns/{cni}");
    assert!(fix["note"].as_str().is_some_and(|n| n.ends_with(&by_hand)), "{fix}");
    let (_, text, _) = service.ask(&["leaks", "--min-age", "0"]);
    eprintln!("nstrace leaks --min-age 0:\n{text}");
    assert!(text.contains(&format!("pod {}/{}", pod.namespace, pod.name)), "{text}");
    assert!(text.contains(&format!("\n  by pod:    {}/{} 1", pod.namespace, pod.name)), "grouped by pod: {text}");
    assert_eq!(leak["pod"], format!("{}/{}", pod.namespace, pod.name), "{leak}");

    // The runtime is gone: the exact unmount and removal release it.
    tests::sh(&by_hand);
    eventually(Duration::from_secs(30), "the leak gone", || {
        let (_, out, _) = service.ask(&["leaks", "--json", "--min-age", "0"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (!v["leaks"].as_array()?.iter().any(|l| l["inode"] == netns)).then_some(())
    });
    // The pod's history keeps it, by name, namespace/name, UID or sandbox id.
    for target in
        [pod.name.clone(), format!("{}/{}", pod.namespace, pod.name), pod.uid.clone(), sandbox[..12].to_string()]
    {
        let (code, out, err) = service.ask(&["history", "--json", "--pod", &target]);
        assert_eq!(code, 0, "history --pod {target}: {err}");
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        assert!(rows.iter().any(|r| r["inode"] == netns && r["type"] == "net"), "history --pod {target}: {out}");
    }
}

/// The kubelet deletes a pod while a container given the host's /run/netns
/// with shared propagation has mounted the pod's netns again: the mount
/// came back to the host, two are stacked, and containerd's removal fails
/// with EBUSY. `why` names the peer mount namespace and its process and
/// gives the command that unmounts every copy.
#[test]
fn a_pod_whose_netns_a_shared_peer_mounted_again_cannot_be_removed_and_why_says_why() {
    let test = "a_pod_whose_netns_a_shared_peer_mounted_again_cannot_be_removed_and_why_says_why";
    let Some(node) = node(test) else { return };
    let containerd = &node.containerd;
    let pod = pod("stuck");
    let sandbox = containerd.run_pod(&pod);
    let pause_pid = containerd.sandbox_pid(&sandbox);
    let netns = tests::ns_inode(pause_pid, "net");
    let path = std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == netns))
        .expect("the pod's cni netns file")
        .to_string_lossy()
        .into_owned();
    if !tests::sh("findmnt -n -o PROPAGATION /run/netns").contains("shared") {
        skip(test, "/run/netns is not a shared mount here");
        return;
    }
    let script = format!("mount --bind {path} {path} && echo ready && exec sleep infinity");
    let (peer, _) = tests::spawn_ready(std::process::Command::new("unshare").args([
        "-m",
        "--propagation",
        "unchanged",
        "sh",
        "-c",
        &script,
    ]));
    let refused = containerd.remove_pod(&sandbox).expect_err("containerd removes a netns mounted twice");
    assert!(refused.contains("device or resource busy"), "{refused}");

    let (code, out, err) = tests::nstrace(&["why", "--json", "--no-service", &path]);
    assert_eq!(code, 0, "{err}");
    let why: Value = serde_json::from_str(&out).unwrap();
    let reasons = why["reasons"].as_array().unwrap();
    let peer_mnt = tests::ns_inode(peer.pid(), "mnt");
    let there = reasons.iter().position(|r| r["kind"] == "mount" && r["mnt_ns"] == peer_mnt).expect("the peer's mount");
    assert_eq!(reasons[there]["via_pid"], peer.pid(), "{why}");
    let fix = why["release"].as_array().unwrap().iter().find(|f| f["argv"].is_array()).expect("a command").clone();
    let argv: Vec<String> = fix["argv"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().into()).collect();
    let ran = std::process::Command::new(&argv[0]).args(&argv[1..]).status().unwrap();
    assert!(ran.success(), "{argv:?}");
    assert!(!std::path::Path::new(&path).exists(), "{argv:?} released {path}: {why}");
    // Now the kubelet's retry succeeds.
    containerd.remove_pod(&sandbox).expect("the pod removed once its netns is released");
    drop(peer);
}

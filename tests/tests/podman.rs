//! Rootful podman, started with the test's own state: a container's
//! namespaces carry its id and name; podman makes the container's netns on
//! the host (`/run/netns/netns-…`) before the container exists, so the
//! netns is the container's because the container was seen in it. After
//! conmon and the container are killed, `leaks` names the mounted netns
//! with its container, creator and pinner, and advises `podman rm -f`,
//! which (run with the test's flags) releases it.

use std::time::Duration;

use serde_json::Value;
use tests::{RmDir, eventually, podman::Podman, root_or_skip, service::Service, skip};

fn podman_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    if let Some(why) = tests::podman::unavailable() {
        skip(test, &why);
        return false;
    }
    true
}

#[test]
fn a_killed_podman_container_leaks_a_netns_that_names_it() {
    let test = "a_killed_podman_container_leaks_a_netns_that_names_it";
    if !podman_or_skip(test) {
        return;
    }
    let dir = tests::tempdir();
    let _rm = RmDir(dir.clone());
    let service = Service::start(&dir);
    let podman = Podman::start(&format!("{dir}/podman"));
    let name = format!("leaky-{}", std::process::id());
    let id = podman.run_sleeper(&name);
    let pid: u32 = podman.run(&["inspect", "-f", "{{.State.Pid}}", &id]).parse().unwrap();
    let netns_path = podman.run(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", &id]);
    assert!(netns_path.starts_with("/run/netns/netns-"), "podman's netns: {netns_path}");
    let netns = tests::ns_inode(pid, "net");

    // While it runs: its netns (made by podman on the host) and its own
    // namespaces name the container.
    let named = |v: &Value| {
        v["seen_in"].as_array().is_some_and(|a| a.iter().any(|c| c["id"] == id.as_str() && c["name"] == name.as_str()))
    };
    for ty in ["net", "uts", "ipc", "mnt", "pid"] {
        eventually(Duration::from_secs(30), &format!("the container's {ty} namespace named"), || {
            named(&service.why_json(&format!("/proc/{pid}/ns/{ty}"))).then_some(())
        });
    }
    let (code, out, err) = service.ask(&["why", "--json", &name]);
    assert_eq!(code, 0, "why {name}: {err}");
    let why: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(why["namespace"]["inode"], netns, "why NAME: its net namespace");
    let (_, out, _) = service.ask(&["ls", "-J", "-o", "ns,type,runtime"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let line = doc["namespaces"].as_array().unwrap().iter().find(|l| l["ns"] == netns).cloned().unwrap();
    assert_eq!(line["runtime"], "podman", "{line}");

    // Kill conmon and the container: podman's netns mount stays.
    podman.kill_container(&id);
    let leak = eventually(Duration::from_secs(30), "the leaked netns in leaks", || {
        let (_, out, _) = service.ask(&["leaks", "--json", "--min-age", "0"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        v["leaks"].as_array()?.iter().find(|l| l["inode"] == netns).cloned()
    });
    assert!(named(&leak), "the leak names the container: {leak}");
    assert_eq!(leak["creator"]["comm"], "podman", "podman made it: {leak}");
    assert_eq!(leak["pins"][0]["target"], netns_path.as_str(), "{leak}");
    assert!(leak["pins"][0]["by"].as_str().is_some_and(|b| b.starts_with("podman[")), "{leak}");
    let fix = &leak["fix"][0];
    assert_eq!(
        (fix["command"].as_str(), fix["safe"].as_bool()),
        (Some(format!("podman rm -f {name}").as_str()), Some(false)),
        "{fix}"
    );
    assert!(
        fix["note"].as_str().is_some_and(|n| n.ends_with(&format!("umount {netns_path} && rm {netns_path}"))),
        "{fix}"
    );
    // History finds it by the container's name: it was seen in it, not made in it.
    let (_, out, _) = service.ask(&["history", "--json", "--container", &name]);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(rows.iter().any(|r| r["inode"] == netns && r["type"] == "net"), "history --container {name}: {out}");

    // The advice, with this test's podman: the leak is gone.
    podman.run(&["rm", "-f", &name]);
    eventually(Duration::from_secs(30), "the leak gone after podman rm -f", || {
        let (_, out, _) = service.ask(&["leaks", "--json", "--min-age", "0"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (!v["leaks"].as_array()?.iter().any(|l| l["inode"] == netns)).then_some(())
    });
    assert!(!std::path::Path::new(&netns_path).exists(), "podman rm -f removed {netns_path}");
}

//! What `why` and `leaks` tell a user to do, and the names `why` accepts:
//! no advice against processes still using a namespace or against system
//! processes; the fix per leak; `ip netns` names and *_for_children paths;
//! every command piped into `head -1` ends quietly.

use std::process::{Command, Stdio};

use serde_json::Value;
use tests::{ChildGuard, IpNetns, nstrace, nstrace_bin, root_or_skip, spawn_ready, unique};

fn why_json(target: &str) -> Value {
    let (code, out, err) = nstrace(&["why", "--json", "--no-service", target]);
    assert_eq!(code, 0, "why {target}: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_initial_namespaces_get_no_kill_or_gdb_advice() {
    let test = "the_initial_namespaces_get_no_kill_or_gdb_advice";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    for ty in ["net", "mnt", "pid", "user"] {
        let v = why_json(&format!("/proc/self/ns/{ty}"));
        let release = v["release"].as_array().unwrap();
        assert!(!release.is_empty());
        for a in release {
            assert!(a["command"].is_null(), "{ty}: {a}");
            assert!(a["note"].as_str().unwrap().contains("not a leak"), "{ty}: {a}");
        }
        let (_, text, _) = nstrace(&["why", "--no-service", &format!("/proc/self/ns/{ty}")]);
        assert!(!text.contains("kill ") && !text.contains("gdb "), "{ty}: {text}");
        assert!(text.contains("to release it: nothing to do (in use by"), "{ty}: {text}");
        // Dozens of processes: the first 10, then a count; --all lists each.
        // The count of the same snapshot: "in use by N processes".
        let members: usize = text
            .split("in use by ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{ty}: {text}"));
        if members > 10 {
            assert_eq!(text.matches(") is in it\n").count(), 10, "{ty}: {text}");
            assert!(text.contains(&format!("... and {} more processes in it", members - 10)), "{ty}: {text}");
            let (_, all, _) = nstrace(&["why", "--no-service", "--all", &format!("/proc/self/ns/{ty}")]);
            let listed = all.matches(") is in it\n").count();
            // Processes come and go between the two runs.
            assert!(listed.abs_diff(members) <= 5 && listed > 10, "{ty}: {members} vs {listed}\n{all}");
        }
    }
}

#[test]
fn why_takes_an_ip_netns_name_and_leaks_prints_the_fix() {
    let test = "why_takes_an_ip_netns_name_and_leaks_prints_the_fix";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let name = unique("nstrace-advice");
    let _netns = IpNetns::add(name.clone());
    let inode =
        std::fs::metadata(format!("/run/netns/{name}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let v = why_json(&name);
    assert_eq!(v["namespace"]["inode"], inode);
    assert_eq!(v["release"][0]["command"], format!("ip netns del {name}"));
    assert_eq!(v["release"][0]["safe"], true);
    // leaks: the fix per leak, inline and in the one-line form.
    let (code, out, _) = nstrace(&["leaks", "--json", "--no-service", "--type", "net"]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&out).unwrap();
    let leak = report["leaks"].as_array().unwrap().iter().find(|l| l["inode"] == inode).expect("listed");
    assert_eq!(leak["fix"][0]["command"], format!("ip netns del {name}"));
    let (_, text, _) = nstrace(&["leaks", "--no-service", "--type", "net"]);
    assert!(text.contains(&format!("    fix: ip netns del {name}   [safe]")), "{text}");
    let (code, compact, _) = nstrace(&["leaks", "--compact", "--no-service", "--type", "net"]);
    assert_eq!(code, 1);
    let line = compact.lines().find(|l| l.starts_with(&format!("net {inode} "))).unwrap_or_else(|| panic!("{compact}"));
    assert!(line.contains(" mounted ") && line.ends_with(&format!("-> ip netns del {name} [safe]")), "{line}");
    for l in compact.lines() {
        assert!(l.contains(" age=") && l.contains(" -> "), "one leak per line: {l}");
    }
    // An unknown name is a usage error that says what was tried.
    let (code, _, err) = nstrace(&["why", "--no-service", "no-such-thing-anywhere"]);
    assert_eq!(code, 2);
    assert!(err.contains("ip netns") && err.contains("container"), "{err}");
}

#[test]
fn why_takes_a_pid_for_children_path_before_the_first_child() {
    let test = "why_takes_a_pid_for_children_path_before_the_first_child";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    // unshare(CLONE_NEWPID) without a fork: the new pid namespace is only
    // the shell's pid_for_children, which /proc cannot open yet.
    let (guard, pid): (ChildGuard, String) =
        spawn_ready(Command::new("unshare").args(["--pid", "sh", "-c", "echo $$; read _"]).stdin(Stdio::piped()));
    let path = format!("/proc/{pid}/ns/pid_for_children");
    let v = why_json(&path);
    assert_eq!(v["namespace"]["type"], "pid");
    let holders = v["namespace"]["holders"].as_array().unwrap();
    assert!(
        holders.iter().any(|h| h["pid"].as_u64() == pid.parse::<u64>().ok() && h["hold"] == "pid-for-children"),
        "{holders:?}"
    );
    drop(guard);
}

#[test]
fn every_command_piped_into_head_ends_quietly() {
    let test = "every_command_piped_into_head_ends_quietly";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let bin = nstrace_bin();
    let bin = bin.display();
    // The reader closes its end at once: the first write fails with EPIPE.
    for (cmd, status) in [
        ("ls --no-service", "0"),
        ("ls --json --no-service", "0"),
        ("why --json --no-service /proc/self/ns/net", "0"),
        ("leaks --no-service --min-age 0", "[01]"),
        ("doctor", "[01]"),
    ] {
        let script = format!("{bin} {cmd} | {{ exec 0<&-; sleep 0.5; }}; echo ${{PIPESTATUS[0]}}");
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let code = stdout.trim();
        assert!(
            if status == "[01]" { code == "0" || code == "1" } else { code == status },
            "{cmd}: exit {code}, stderr {stderr}"
        );
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{cmd}: {stderr}");
    }
}

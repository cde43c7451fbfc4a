//! listns(2) (6.19+) as a snapshot source: it lists what the kernel's own
//! lists hold for tasks, fds and mounts, and with the sockets' net
//! namespaces (SIOCGSKNS) it also has a netns only a socket keeps, which
//! listns itself leaves out. Skipped, with the reason, before 6.19. (The
//! tracer on a listns snapshot: `mechanisms::listns_snapshot`.)

use std::{collections::BTreeMap, process::Command};

use serde_json::Value;
use tests::{find_row, ls_json, nstrace, root_or_skip, spawn_ready, unique};

fn listns_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let (code, _, err) = nstrace(&["ls", "--json", "--source", "listns", "--type", "uts"]);
    if code != 0 && err.contains("listns(2) is not available") {
        tests::skip(test, "no listns(2) on this kernel (6.19+)");
        return false;
    }
    assert_eq!(code, 0, "ls --source listns: {err}");
    true
}

fn key(r: &Value) -> (String, u64) {
    (r["type"].as_str().unwrap().to_string(), r["inode"].as_u64().unwrap())
}

/// Every namespace in two /proc listings (it lived from the first to the
/// second) is in the listns listing taken between them, with the same id,
/// owner and parent; listns lists nothing /proc or the walk do not know
/// (but what died before the walk could see it).
#[test]
fn listns_lists_what_proc_reaches_with_the_same_ids_and_owners() {
    let test = "listns_lists_what_proc_reaches_with_the_same_ids_and_owners";
    if !listns_or_skip(test) {
        return;
    }
    let (p1, l, p2) =
        (ls_json(&["--source", "proc"]), ls_json(&["--source", "listns"]), ls_json(&["--source", "proc"]));
    let listed: BTreeMap<(String, u64), Value> = l.iter().map(|r| (key(r), r.clone())).collect();
    let later: std::collections::HashSet<_> = p2.iter().map(key).collect();
    let mut compared = 0;
    for p in p1.iter().filter(|r| later.contains(&key(r))) {
        let k = key(p);
        let lr = listed.get(&k).unwrap_or_else(|| panic!("{k:?} reached through /proc but not listed by listns: {p}"));
        for field in ["id", "owner", "parent", "level"] {
            assert_eq!(lr[field], p[field], "{k:?}: {field} differs: listns {lr} vs /proc {p}");
        }
        compared += 1;
    }
    assert!(compared > 5, "compared {compared} namespaces");
    if tests::kernel().mechanisms["snapshot"] == "tree-walk" {
        let walked: std::collections::HashSet<_> = ls_json(&["--source", "kernel"]).iter().map(key).collect();
        // Still there after the walk (the other tests here make and drop
        // namespaces: one born after p1 and gone before the walk is no miss).
        let after: std::collections::HashSet<_> = ls_json(&["--source", "proc"]).iter().map(key).collect();
        let earlier: std::collections::HashSet<_> = p1.iter().map(key).collect();
        for k in listed.keys() {
            assert!(
                walked.contains(k) || earlier.contains(k) || !after.contains(k),
                "{k:?} listed by listns, alive after the walk, but not walked"
            );
        }
    }
}

/// A netns whose only holder is a socket (its process lives in another
/// netns, the bind mount is gone): listns leaves it out, the sockets' own
/// namespaces (SIOCGSKNS) bring it back, held by that socket.
#[test]
fn a_netns_only_a_socket_holds_is_listed() {
    let test = "a_netns_only_a_socket_holds_is_listed";
    if !listns_or_skip(test) {
        return;
    }
    let held = tests::SocketHeldNetns::new(unique("nstrace-sock"));
    let (inode, holder) = (held.inode, &held.holder);
    let rows = ls_json(&["--source", "listns", "--type", "net"]);
    let row = find_row(&rows, "net", inode).unwrap_or_else(|| panic!("the socket's netns {inode} is not listed"));
    let holders = row["holders"].as_array().unwrap();
    assert!(holders.iter().all(|h| h["kind"] == "socket"), "no task, fd or mount holds it: {row}");
    let (code, out, err) = nstrace(&["why", "--no-service", &inode.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("socket") && out.contains(&holder.pid().to_string()), "why names the socket: {out}");
}

/// A net namespace a process unshared is in both listings, the walk's and
/// listns's (on failure, the walk's own trace shows how far it went).
#[test]
fn a_new_netns_is_in_both_the_walk_and_listns() {
    let test = "a_new_netns_is_in_both_the_walk_and_listns";
    if !listns_or_skip(test) {
        return;
    }
    if tests::kernel().mechanisms["snapshot"] != "tree-walk" {
        tests::skip(test, "no tree walk on this kernel");
        return;
    }
    let (sleeper, inode) = spawn_ready(Command::new("unshare").args([
        "--net",
        "sh",
        "-c",
        "stat -L -c %i /proc/self/ns/net; exec sleep infinity",
    ]));
    let inode: u64 = inode.parse().unwrap();
    let out = tests::nstrace_command()
        .args(["ls", "--json", "--source", "kernel", "--type", "net"])
        .env("RUST_LOG", "nstrace::kernel::walker=trace")
        .output()
        .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let walked: Vec<u64> = rows.iter().filter_map(|r| r["inode"].as_u64()).collect();
    assert!(
        walked.contains(&inode),
        "the walk did not list netns {inode} of pid {}: it listed {walked:?}; {}",
        sleeper.pid(),
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = ls_json(&["--source", "listns", "--type", "net"]);
    assert!(find_row(&listed, "net", inode).is_some(), "listns did not list netns {inode}");
}

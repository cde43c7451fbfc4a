//! `nstrace ls`: every namespace shape has its row, state and holders.

use std::{collections::HashSet, process::Command, time::Duration};

use serde_json::Value;
use tests::{
    ChildGuard, FD_RECEIVER_PY, FD_SENDER_PY, Umount, children_of, eventually, find_row, ls_json, ns_inode, nstrace,
    root_or_skip, sh, spawn_ready, tempdir, unique,
};

const TYPES: [&str; 8] = ["net", "uts", "ipc", "pid", "user", "mnt", "cgroup", "time"];

fn holders_of<'a>(row: &'a Value, kind: &str) -> Vec<&'a Value> {
    row["holders"].as_array().unwrap().iter().filter(|h| h["kind"] == kind).collect()
}

#[test]
fn each_type_with_a_live_task_is_active() {
    if !root_or_skip("each_type_with_a_live_task_is_active") {
        return;
    }
    // unshare forks sleep into new namespaces of all eight types.
    let unshare = ChildGuard::new(
        Command::new("unshare")
            .args(["-U", "-p", "-f", "--kill-child", "-T", "-n", "-u", "-i", "-m", "-C", "sleep", "infinity"])
            .spawn()
            .expect("spawn unshare"),
    );
    let sleeper =
        eventually(Duration::from_secs(5), "the forked sleep", || children_of(unshare.pid()).into_iter().next());
    // Let exec finish so /proc shows the final namespaces.
    eventually(Duration::from_secs(5), "sleep to exec", || {
        std::fs::read_to_string(format!("/proc/{sleeper}/comm")).ok().filter(|c| c.trim() == "sleep")
    });
    let rows = ls_json(&[]);
    for ty in TYPES {
        let inode = ns_inode(sleeper, ty);
        assert_ne!(inode, ns_inode(1.max(std::process::id()), ty), "{ty} should be new");
        let row = find_row(&rows, ty, inode).unwrap_or_else(|| panic!("no {ty} row for inode {inode}"));
        assert_eq!(row["state"], "active", "{ty}: {row}");
        assert!(row["pids"].as_array().unwrap().contains(&sleeper.into()), "{ty} row lacks pid {sleeper}: {row}");
        if tests::kernel().has_ns_ids {
            assert!(row["id"].as_u64().is_some_and(|id| id > 0), "{ty} row has an ns_id: {row}");
        }
        if ty != "user" {
            assert_eq!(row["owner"], ns_inode(sleeper, "user"), "{ty} is owned by the new user ns");
        }
    }
    let user = find_row(&rows, "user", ns_inode(sleeper, "user")).unwrap();
    assert_eq!(user["parent"], ns_inode(std::process::id(), "user"));
    assert_eq!(user["level"], 1);
    let pid = find_row(&rows, "pid", ns_inode(sleeper, "pid")).unwrap();
    assert_eq!(pid["parent"], ns_inode(std::process::id(), "pid"));
}

#[test]
fn netns_held_only_by_ip_netns_is_mounted() {
    if !root_or_skip("netns_held_only_by_ip_netns_is_mounted") {
        return;
    }
    let name = unique("nstrace-ls");
    sh(&format!("ip netns add {name}"));
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(name.clone());
    let path = format!("/run/netns/{name}");
    let inode = std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let rows = ls_json(&["--type", "net"]);
    let row = find_row(&rows, "net", inode).unwrap_or_else(|| panic!("no row for {path}"));
    assert_eq!(row["state"], "mounted", "{row}");
    assert_eq!(row["tasks"], 0);
    let mounts = holders_of(row, "mount");
    assert!(mounts.iter().any(|m| m["path"] == path.as_str()), "mount holder {path} missing: {row}");
    assert!(row["names"].as_array().unwrap().contains(&name.clone().into()));
    // The filter by inode returns exactly that row.
    let only = ls_json(&["--inode", &inode.to_string()]);
    assert_eq!(only.len(), 1);
}

#[test]
fn netns_held_only_by_a_passed_fd_is_fd_only() {
    if !root_or_skip("netns_held_only_by_a_passed_fd_is_fd_only") {
        return;
    }
    let dir = tempdir();
    let _rm = tests::RmDir(dir.clone());
    let sock = format!("{dir}/sock");
    let (receiver, _) = spawn_ready(Command::new("python3").args(["-c", FD_RECEIVER_PY, &sock]));
    let out = Command::new("unshare").args(["-n", "python3", "-c", FD_SENDER_PY, &sock]).output().unwrap();
    assert!(out.status.success(), "sender failed: {}", String::from_utf8_lossy(&out.stderr));
    let inode: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // The receiver holds it as some fd: find which, as the kernel sees it.
    let fd = eventually(Duration::from_secs(5), "the receiver's fd", || {
        std::fs::read_dir(format!("/proc/{}/fd", receiver.pid())).ok()?.flatten().find_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            (link.to_string_lossy() == format!("net:[{inode}]"))
                .then(|| e.file_name().to_string_lossy().parse::<i64>().unwrap())
        })
    });
    let rows = ls_json(&[]);
    let row = find_row(&rows, "net", inode).unwrap_or_else(|| panic!("no row for net {inode}"));
    assert_eq!(row["state"], "fd-only", "{row}");
    assert_eq!(row["tasks"], 0);
    let fds = holders_of(row, "fd");
    assert_eq!(fds.len(), 1, "{row}");
    assert_eq!(fds[0]["pid"], receiver.pid());
    assert_eq!(fds[0]["fd"], fd);
    drop(receiver);
}

const FOR_CHILDREN: &str = r#"
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
# CLONE_NEWPID | CLONE_NEWTIME: both only take effect for children.
if libc.unshare(0x20000000 | 0x80) != 0:
    raise OSError(ctypes.get_errno(), "unshare")
print("ready", flush=True)
sys.stdin.readline()
if os.fork() == 0:
    libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: dies with the test's keeper
    while True: time.sleep(3600)
print("forked", flush=True)
while True: time.sleep(3600)
"#;

#[test]
fn pid_and_time_ns_only_for_children_are_active() {
    if !root_or_skip("pid_and_time_ns_only_for_children_are_active") {
        return;
    }
    let (mut proc_, _) =
        spawn_ready(Command::new("python3").args(["-c", FOR_CHILDREN]).stdin(std::process::Stdio::piped()));
    let pid = proc_.pid();
    let mut rows = ls_json(&[]);
    let held_for_children = |rows: &[Value], ty: &str, hold: &str| -> Value {
        let found: Vec<&Value> = rows
            .iter()
            .filter(|r| r["type"] == ty)
            .filter(|r| holders_of(r, "task").iter().any(|h| h["pid"] == pid && h["hold"] == hold))
            .collect();
        assert_eq!(found.len(), 1, "exactly one {ty} ns held by {pid} as {hold}: {found:?}");
        found[0].clone()
    };
    // Before 6.18 only /proc can be read, and it cannot name a pid
    // namespace before its first process: look again after a fork there.
    let tree = tests::kernel().has_ns_ids;
    if !tree {
        tests::skip(
            "pid_and_time_ns_only_for_children_are_active (pid part before the fork)",
            "no namespace tree walk on this kernel; /proc hides a pid_for_children namespace with no process",
        );
        proc_.send_line("fork");
        assert_eq!(proc_.next_line(), "forked");
        rows = ls_json(&[]);
    }
    let pid_row = held_for_children(&rows, "pid", "pid-for-children");
    let time_row = held_for_children(&rows, "time", "time-for-children");
    for row in [&pid_row, &time_row] {
        assert_eq!(row["state"], "active", "{row}");
        assert!(row["tasks"].as_u64() >= Some(1), "{row}");
    }
    assert_ne!(pid_row["inode"], ns_inode(pid, "pid"), "a new pid ns, not the task's own");
    assert_eq!(pid_row["parent"], ns_inode(pid, "pid"), "its parent is the task's pid ns");
    assert_eq!(pid_row["level"], 1);
    // /proc shows time_for_children at once; pid_for_children only once the
    // namespace has its first process: fork one and compare.
    assert_eq!(time_row["inode"], ns_inode(pid, "time_for_children"));
    if tree {
        proc_.send_line("fork");
        assert_eq!(proc_.next_line(), "forked");
    }
    assert_eq!(pid_row["inode"], ns_inode(pid, "pid_for_children"));
}

#[test]
fn user_ns_owning_a_mounted_netns_is_orphaned() {
    if !root_or_skip("user_ns_owning_a_mounted_netns_is_orphaned") {
        return;
    }
    let dir = tempdir();
    let target = format!("{dir}/netns");
    std::fs::write(&target, b"").unwrap();
    let (proc_, _) =
        spawn_ready(Command::new("unshare").args(["-U", "-n", "sh", "-c", "echo ready; exec sleep infinity"]));
    let pid = proc_.pid();
    let (user, net) = (ns_inode(pid, "user"), ns_inode(pid, "net"));
    sh(&format!("mount --bind /proc/{pid}/ns/net {target}"));
    let _umount = Umount(target.clone());
    drop(proc_); // every task in the namespaces exits
    let rows = eventually(Duration::from_secs(5), "the user ns to lose its task", || {
        let rows = ls_json(&[]);
        find_row(&rows, "user", user).filter(|r| r["tasks"] == 0)?;
        Some(rows)
    });
    let urow = find_row(&rows, "user", user).unwrap();
    assert_eq!(urow["state"], "orphaned", "{urow}");
    assert!(urow["holders"].as_array().unwrap().is_empty(), "{urow}");
    let nrow = find_row(&rows, "net", net).unwrap_or_else(|| panic!("no row for the mounted net ns"));
    assert_eq!(nrow["state"], "mounted", "{nrow}");
    assert_eq!(nrow["owner"], user, "net ns owner link");
    assert!(holders_of(nrow, "mount").iter().any(|m| m["path"] == target.as_str()), "{nrow}");
}

#[test]
fn every_namespace_lsns_reports_is_listed() {
    if !root_or_skip("every_namespace_lsns_reports_is_listed") {
        return;
    }
    let lsns = || -> HashSet<(String, u64)> {
        // lsns (util-linux 2.38) exits 1 without a word when a process it
        // is reading exits under it, which the other tests' processes do:
        // retry the peer, a few times.
        let out = (0..5)
            .find_map(|_| {
                let o = std::process::Command::new("lsns").args(["--json", "-o", "NS,TYPE"]).output().ok()?;
                o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
            })
            .unwrap_or_else(|| sh("lsns --json -o NS,TYPE"));
        let v: Value = serde_json::from_str(&out).unwrap();
        v["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["type"].as_str().unwrap().to_string(), n["ns"].as_u64().unwrap()))
            .collect()
    };
    let before = lsns();
    let rows = ls_json(&[]);
    let after = lsns();
    let ours: HashSet<(String, u64)> =
        rows.iter().map(|r| (r["type"].as_str().unwrap().to_string(), r["inode"].as_u64().unwrap())).collect();
    // Namespaces present before and after nstrace ran were alive while it did.
    let stable: Vec<_> = before.intersection(&after).collect();
    assert!(!stable.is_empty());
    for ns in stable {
        assert!(ours.contains(ns), "lsns lists {ns:?}, nstrace ls does not");
    }
}

#[test]
fn bad_filters_and_unknown_ids_are_clear_errors() {
    let test = "bad_filters_and_unknown_ids_are_clear_errors";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let (code, _, err) = nstrace(&["ls", "--type", "bogus"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'bogus'"), "{err}");
    let (code, _, err) = nstrace(&["ls", "--id", "18446744073709551615"]);
    assert_ne!(code, 0);
    assert!(err.contains("no namespace with id 18446744073709551615"), "{err}");
    let (code, _, err) = nstrace(&["ls", "--state", "zombie"]);
    assert_eq!(code, 2);
    assert!(err.contains("zombie"), "{err}");
}

#[test]
fn proc_source_agrees_with_kernel_source_on_live_namespaces() {
    if !root_or_skip("proc_source_agrees_with_kernel_source_on_live_namespaces") {
        return;
    }
    if !tests::kernel().has_ns_ids {
        tests::skip(
            "proc_source_agrees_with_kernel_source_on_live_namespaces",
            "no kernel source here (the tree walk needs 6.18+)",
        );
        return;
    }
    // Twice each, so namespaces other tests create or destroy meanwhile
    // (present in one listing of a source only) are left out.
    let (k1, p1, k2, p2) = (
        ls_json(&["--source", "kernel"]),
        ls_json(&["--source", "proc"]),
        ls_json(&["--source", "kernel"]),
        ls_json(&["--source", "proc"]),
    );
    let host_net = ns_inode(std::process::id(), "net");
    for rows in [&k1, &p1] {
        let row = find_row(rows, "net", host_net).expect("host net ns listed");
        assert_eq!(row["state"], "active");
        assert_eq!(row["owner"], ns_inode(std::process::id(), "user"));
    }
    let key = |r: &Value| (r["type"].as_str().unwrap().to_string(), r["inode"].as_u64().unwrap());
    let stable = |a: &[Value], b: &[Value]| -> std::collections::BTreeMap<(String, u64), Value> {
        let b: std::collections::HashSet<_> = b.iter().map(key).collect();
        a.iter().filter(|r| b.contains(&key(r))).map(|r| (key(r), r.clone())).collect()
    };
    // A namespace in both /proc listings lived from p1 to p2, so the kernel
    // listing taken between them (k2) must have it. (Comparing with k1 too
    // would flag one another test made between k1 and p1.)
    let kernel: std::collections::BTreeMap<(String, u64), Value> = k2.iter().map(|r| (key(r), r.clone())).collect();
    let proc_ = stable(&p1, &p2);
    // /proc lists what tasks, fds and mounts reach; the kernel lists all of
    // that and more (namespaces only the kernel holds): every /proc row is
    // in the kernel's list, with the same id, state, owner and parent.
    // (Task counts differ by design: the kernel also sees pid 1, whose
    // /proc entries are unreadable here.)
    let mut compared = 0;
    for (k, p) in &proc_ {
        let kr = kernel.get(k).unwrap_or_else(|| panic!("{k:?} listed by /proc but not by the kernel: {p}"));
        // Only rows that did not change while the four listings ran.
        let same_in_both = |rows: &[Value], field: &str, v: &Value| rows.iter().any(|r| key(r) == *k && r[field] == *v);
        for field in ["id", "state", "owner", "parent"] {
            if !same_in_both(&k2, field, &kr[field]) || !same_in_both(&p2, field, &p[field]) {
                continue;
            }
            assert_eq!(kr[field], p[field], "{k:?}: {field} differs between the kernel and /proc: {kr} vs {p}");
        }
        compared += 1;
    }
    assert!(compared > 5 && compared == proc_.len(), "compared {compared} of {} /proc rows", proc_.len());
}

/// The table fits the terminal's width (COLUMNS here, as lsns reads it):
/// long text is cut with "…", numbers never; piped without COLUMNS it is
/// whole; colour only on request (or on a terminal without NO_COLOR).
#[test]
fn table_fits_the_terminal_and_colours_only_when_asked() {
    let test = "table_fits_the_terminal_and_colours_only_when_asked";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    // A name long enough that the row cannot fit 80 columns whole.
    let name = format!("{}-{}", unique("nstrace-wide"), "x".repeat(50));
    let _netns = tests::IpNetns::add(name.clone());
    let inode = ns_inode_of_path(&format!("/run/netns/{name}"));
    let ls = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = tests::nstrace_command();
        c.args(["ls", "--no-service"]).args(args).env_remove("COLUMNS").env_remove("NO_COLOR");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run nstrace ls");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let narrow = ls(&[("COLUMNS", "80")], &[]);
    for line in narrow.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}\n{narrow}");
    }
    let header: Vec<&str> = narrow.lines().next().unwrap().split_whitespace().collect();
    for h in ["INODE", "TYPE", "STATE", "TASKS", "HOLDERS", "NAME", "COMMAND"] {
        assert!(header.contains(&h), "{h} kept at 80 columns: {header:?}");
    }
    let row = narrow
        .lines()
        .find(|l| l.split_whitespace().any(|c| c == inode.to_string()))
        .unwrap_or_else(|| panic!("our netns {inode} with its whole inode:\n{narrow}"));
    assert!(row.contains(" mounted ") && row.contains('…') && !row.contains(&name), "{row}");
    // Piped, no COLUMNS: nothing is cut.
    let wide = ls(&[], &[]);
    assert!(wide.lines().any(|l| l.contains(&name) && l.contains(&inode.to_string())), "{wide}");
    assert!(!wide.contains('\x1b'), "no colour into a pipe");
    // -u wins over COLUMNS, as lsns -u.
    assert!(ls(&[("COLUMNS", "80")], &["-u"]).contains(&name));
    // Colour on request; NO_COLOR does not override the flag, only auto.
    let coloured = ls(&[("NO_COLOR", "1")], &["--color=always"]);
    assert!(coloured.contains("\x1b[36mmounted\x1b[0m"), "{coloured}");
    assert!(coloured.contains("\x1b[32mactive\x1b[0m"), "{coloured}");
    assert!(!ls(&[], &["--color=never"]).contains('\x1b'));
}

fn ns_inode_of_path(path: &str) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).expect("stat"))
}

/// Where the kernel's lists are walked, the fd walk loads and runs beside
/// the task walk (else nsfs fds would come from /proc: still right, but the
/// slow way, and nothing else would say so).
#[test]
fn the_fd_walk_runs_wherever_the_tree_walk_does() {
    let test = "the_fd_walk_runs_wherever_the_tree_walk_does";
    if !root_or_skip(test) {
        return;
    }
    let kernel = tests::kernel();
    if kernel.mechanisms["snapshot"] != "tree-walk" {
        tests::skip(test, "no namespace tree walk on this kernel (6.18+)");
        return;
    }
    let fd_walk = &kernel.doctor["fd_walk"];
    assert_eq!(fd_walk["status"], "ok", "doctor: {fd_walk}");
    let (code, _, err) = nstrace(&["ls", "--json", "--timings", "--source", "kernel"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("timing walk tasks and fds:"), "the fd walk did not run: {err}");
}

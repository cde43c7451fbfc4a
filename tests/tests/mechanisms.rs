//! Every mechanism this kernel supports, forced one set at a time with
//! `--mechanism`: each must report the creation and the death of a
//! namespace of every type, saying which mechanism saw the death. Sets the
//! kernel cannot run are skipped with doctor's reason.

use std::{collections::HashMap, process::Command, time::Duration};

use serde_json::Value;
use tests::{Trace, cause_matches, kernel, nstrace, root_or_skip, skip};

const TYPES: [&str; 8] = ["net", "uts", "ipc", "pid", "user", "mnt", "cgroup", "time"];

/// Whether doctor accepts `forced` on this kernel; prints why not.
/// A tracer with the mechanisms `forced`, or None (the reason printed)
/// when the kernel lacks one of them.
fn forced_trace(test: &str, forced: &[&str]) -> Option<Trace> {
    let mut args = Vec::new();
    for f in forced {
        args.extend(["--mechanism", f]);
    }
    match Trace::try_start(&args) {
        Ok(trace) => Some(trace),
        Err(why) if why.contains("is not available on this kernel") => {
            let line = why.lines().rev().find(|l| l.contains("not available")).unwrap_or(&why);
            skip(test, line.rsplit("nstrace: ").next().unwrap_or(line));
            None
        }
        Err(why) => panic!("{test}: nstrace trace {args:?} failed: {why}"),
    }
}

/// Traces with `forced`, makes one namespace of each type with a single
/// unshare(1), and checks the create and destroy events.
fn exercise(test: &str, forced: &[&str]) {
    if !root_or_skip(test) {
        return;
    }
    let k = kernel();
    let Some(trace) = forced_trace(test, forced) else { return };
    // The tracer names its mechanisms; they are the forced ones, and the
    // defaults are doctor's.
    let mut expected: HashMap<&str, String> = ["create", "destroy", "snapshot"]
        .iter()
        .map(|job| (*job, k.mechanisms[*job].as_str().unwrap_or_default().to_owned()))
        .collect();
    for f in forced {
        let (job, name) = f.split_once('=').unwrap();
        expected.insert(job, name.to_owned());
    }
    if forced.contains(&"snapshot=proc") && !forced.iter().any(|f| f.starts_with("destroy=")) {
        // /proc snapshots cannot confirm deaths the way the tree walk does.
        if expected["destroy"] == "tree-walk" {
            expected.insert("destroy", "proc-rescan".into());
        }
    }
    for job in ["create", "destroy", "snapshot"] {
        assert!(trace.ready.contains(&format!("{job}: {}", expected[job])), "{job}: {expected:?} vs {}", trace.ready);
    }
    println!("{test}: {}", trace.ready);

    // Measured by the test: the namespaces live through the 1 s sleep, so
    // none may be reported dead before a second after this.
    let spawned = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut child = Command::new("unshare")
        .args(["--net", "--uts", "--ipc", "--pid", "--fork", "--user", "--mount", "--cgroup", "--time"])
        .args(["sleep", "1"])
        .spawn()
        .expect("spawn unshare");
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "unshare of all eight types failed");

    let mut created: HashMap<String, Value> = HashMap::new();
    let deadline = std::time::Instant::now() + tests::scaled(Duration::from_secs(10));
    while created.len() < TYPES.len() && std::time::Instant::now() < deadline {
        for e in trace.events() {
            if e["event"] == "create" && e["pid"] == pid {
                created.entry(e["type"].as_str().unwrap().to_owned()).or_insert(e);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for ty in TYPES {
        let c = created.get(ty).unwrap_or_else(|| panic!("{test}: no create event for the new {ty} namespace"));
        assert!(
            cause_matches(&expected["create"], c, "unshare"),
            "{test}: cause of {c} (create {})",
            expected["create"]
        );
        assert!(c["inode"].as_u64().unwrap() > 0);
        assert_eq!(c["comm"], "unshare");
        if k.has_ns_ids {
            assert!(c["id"].as_u64().unwrap() > 0, "{c}");
        }
    }
    // Every one dies once `sleep` and unshare have exited (net and user
    // namespaces are freed from a workqueue, a little later), and not
    // before: they lived a second.
    for ty in TYPES {
        let c = &created[ty];
        let d = trace
            .wait_for(Duration::from_secs(10), |v| v["event"] == "destroy" && v["type"] == ty && k.same_ns(v, c))
            .unwrap_or_else(|| panic!("{test}: the {ty} namespace {c} was not reported destroyed within 10 s"));
        assert_eq!(d["via"], expected["destroy"].as_str(), "{test}: {d}");
        // Not dead before the 1 s sleep ended. (Not "after wait() returned":
        // an exact hook sees the free during the exit itself, which under TCG
        // is tens of ms before the reaper wakes.) Without ids and without a
        // destroy hook, a death is only seen by inode at the next /proc
        // re-scan, and an inode another test's namespace freed and ours
        // reused within one re-scan cannot be told apart (README): no timing
        // claim is made there.
        if k.has_ns_ids || expected["destroy"] != "proc-rescan" {
            let died = d["time"].as_f64().unwrap();
            assert!(
                died >= spawned + 1.0,
                "{test}: {ty} reported dead {:.3} s into its 1 s sleep: {d}",
                died - spawned
            );
            assert!(d["lifetime"].as_f64().is_some_and(|l| l >= 0.9), "{test}: it lived at least the 1 s sleep: {d}");
        }
        assert_eq!(d["creator_pid"], pid, "{d}");
    }
}

#[test]
fn default_mechanisms() {
    exercise("default_mechanisms", &[]);
}

#[test]
fn proc_rescan_fallback() {
    exercise("proc_rescan_fallback", &["create=tracepoints", "destroy=proc-rescan", "snapshot=proc"]);
}

/// The uts inode of a short-lived `unshare --uts`.
fn short_lived_uts() -> u64 {
    let child = Command::new("unshare").args(["--uts", "readlink", "/proc/self/ns/uts"]).output().expect("unshare");
    let link = String::from_utf8_lossy(&child.stdout).trim().to_owned();
    let inode = link.strip_prefix("uts:[").and_then(|l| l.strip_suffix(']')).and_then(|n| n.parse().ok());
    inode.unwrap_or_else(|| panic!("readlink printed {link:?}"))
}

/// Two uts namespaces one after the other, the first one's last task
/// exiting while an fd to it is open (as a `readlink` of /proc/PID/ns or a
/// `/proc` scan holds one for a moment), so the exit hook cannot tell it
/// dies there; the fd is closed at once after. All on one CPU, so that the
/// second namespace is likely to take the first one's memory as well as
/// its inode. Returns both inodes.
fn uts_outliving_its_task_then_another() -> (u64, u64) {
    let script = r#"
        ours=$(readlink /proc/self/ns/uts)
        unshare --uts sleep 0.5 & pid=$!
        while [ "$(readlink /proc/$pid/ns/uts)" = "$ours" ]; do :; done
        exec 3</proc/$pid/ns/uts
        wait $pid
        readlink /proc/self/fd/3
        exec 3<&-
        unshare --uts readlink /proc/self/ns/uts
    "#;
    let out = Command::new("taskset").args(["-c", "0", "sh", "-c", script]).output().expect("taskset");
    let text = String::from_utf8_lossy(&out.stdout);
    let inodes: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uts:[").and_then(|l| l.strip_suffix(']')).and_then(|n| n.parse().ok()))
        .collect();
    assert_eq!(inodes.len(), 2, "the script printed {text:?} {}", String::from_utf8_lossy(&out.stderr));
    (inodes[0], inodes[1])
}

fn two_short_lived_uts() -> (u64, u64) {
    (short_lived_uts(), short_lived_uts())
}

/// Before 6.18, without a destroy hook, keys are type+inode and a death is
/// seen at the next /proc re-scan (1 s). A namespace that takes a dead
/// one's inode (and even its memory) before that must still be reported as
/// created, and the dead one as destroyed.
fn reused_inode_is_reported(test: &str, two_namespaces: fn() -> (u64, u64)) {
    let forced = ["create=tracepoints", "destroy=proc-rescan", "snapshot=proc"];
    if !root_or_skip(test) {
        return;
    }
    if kernel().has_ns_ids {
        skip(test, "namespaces have ids on this kernel: keys are never reused");
        return;
    }
    let Some(trace) = forced_trace(test, &forced) else { return };
    for _ in 0..5 {
        let (first, second) = two_namespaces();
        if first != second {
            continue; // the kernel handed out another inode: try again
        }
        let creates = |trace: &Trace| {
            trace
                .events()
                .into_iter()
                .filter(|e| e["event"] == "create" && e["type"] == "uts" && e["inode"] == first)
                .count()
        };
        let deadline = std::time::Instant::now() + tests::scaled(Duration::from_secs(5));
        while creates(&trace) < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // (At least: another test's namespace may take the inode next.)
        assert!(creates(&trace) >= 2, "{test}: two namespaces had inode {first}: {:?}", trace.events());
        let d = trace
            .wait_for(Duration::from_secs(5), |e| e["event"] == "destroy" && e["type"] == "uts" && e["inode"] == first);
        assert!(d.is_some(), "{test}: the first namespace with inode {first} was not reported destroyed");
        return;
    }
    skip(test, "the kernel never reused an inode at once in 5 tries");
}

#[test]
fn proc_rescan_sees_a_reused_inode_at_once() {
    reused_inode_is_reported("proc_rescan_sees_a_reused_inode_at_once", two_short_lived_uts);
}

#[test]
fn a_reused_inode_is_seen_when_a_reference_outlived_the_last_task() {
    reused_inode_is_reported(
        "a_reused_inode_is_seen_when_a_reference_outlived_the_last_task",
        uts_outliving_its_task_then_another,
    );
}

#[test]
fn tree_walk() {
    exercise("tree_walk", &["create=tracepoints", "destroy=tree-walk", "snapshot=tree-walk"]);
}

/// listns(2) as the snapshot (6.19+): the table is seeded from it and every
/// create and death is still reported by the hooks.
#[test]
fn listns_snapshot() {
    exercise("listns_snapshot", &["snapshot=listns"]);
}

#[test]
fn fentry_on_the_namespace_tree() {
    exercise("fentry_on_the_namespace_tree", &["create=fexit-ns-tree", "destroy=fentry-ns-tree"]);
}

#[test]
fn fentry_on_constructors_and_free_inum() {
    exercise("fentry_on_constructors_and_free_inum", &["create=fexit-constructors", "destroy=fentry-free-inum"]);
}

#[test]
fn kprobes_on_constructors_and_free_inum() {
    exercise("kprobes_on_constructors_and_free_inum", &["create=kprobe-constructors", "destroy=kprobe-free-inum"]);
}

#[test]
fn forced_mechanism_the_kernel_lacks_is_a_clear_error() {
    if !root_or_skip("forced_mechanism_the_kernel_lacks_is_a_clear_error") {
        return;
    }
    // Some mechanism is often missing: the tree (before 6.18) or fentry
    // and kprobes (this project's 6.18 machines). Which, from the doctor
    // report the suite already has (a doctor run per guess would cost a
    // tracer start each under emulation); the tracer has the last word.
    let doctor = &kernel().doctor;
    let ok = |check: &str| {
        let mut checks =
            doctor["sections"].as_array().into_iter().flatten().flat_map(|s| s["checks"].as_array()).flatten();
        checks.any(|c| c["name"] == check && c["status"] == "ok")
    };
    let candidates = [
        ("snapshot=tree-walk", doctor["tree_walk"]["status"] == "ok"),
        ("create=fexit-ns-tree", ok("prog tracing (fentry)") && ok("function __ns_tree_add_raw")),
        ("destroy=kprobe-free-inum", ok("kprobes")),
    ];
    let Some((missing, _)) = candidates.iter().find(|(_, present)| !present) else {
        skip("forced_mechanism_the_kernel_lacks_is_a_clear_error", "this kernel has every mechanism");
        return;
    };
    let (code, _, err) = nstrace(&["trace", "--duration", "1", "--mechanism", missing]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not available on this kernel"), "{err}");
    let (code, _, err) = nstrace(&["trace", "--duration", "1", "--mechanism", "destroy=magic"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("destroy mechanisms are"), "{err}");
}

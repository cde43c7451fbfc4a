//! `nstrace trace --format perf` against Debian's perf itself: the same
//! PERF_RECORD_NAMESPACES, field by field.

use std::{os::unix::fs::MetadataExt, process::Command, time::Duration};

use tests::{RmDir, perf::parse_perf, root_or_skip, scaled, tempdir};

/// `nstrace trace --format perf` against perf itself, on the same unshare:
/// every field both print agrees. The differences, by design (see
/// docs/testing.md): nstrace appends the time namespace (index 7, so its
/// nr_namespaces is 8), prints no cpu column, and its timestamp is Unix
/// time where perf's is the perf clock.
#[test]
fn perf_format_matches_perf_script() {
    if !root_or_skip("perf_format_matches_perf_script") || !tests::kernel_independent("perf_format_matches_perf_script")
    {
        return;
    }
    let perf_works = Command::new("perf").arg("version").output().is_ok_and(|o| o.status.success());
    if !perf_works {
        tests::skip("perf_format_matches_perf_script", "perf (linux-perf) does not run on this kernel");
        return;
    }
    let trace =
        tests::nstrace_ready(&["trace", "--format", "perf", "--event", "namespaces"], "tracing", "nstrace trace");
    let dir = RmDir(tempdir());
    let data = format!("{}/perf.data", dir.0);
    let rec = Command::new("perf")
        .args(["record", "-q", "--namespaces", "-e", "sched:sched_process_exec", "-o", &data, "--"])
        .args(["unshare", "--uts", "--ipc", "sh", "-c", "exec sleep 0.2"])
        .output()
        .unwrap();
    assert!(rec.status.success(), "perf record: {}", String::from_utf8_lossy(&rec.stderr));
    std::thread::sleep(scaled(Duration::from_millis(300)));
    // SAFETY: kill(2) takes no pointers; the pid is our own child.
    unsafe { libc::kill(trace.id() as i32, libc::SIGINT) };
    let out = trace.wait_with_output().unwrap();
    let ours = parse_perf(&String::from_utf8_lossy(&out.stdout));
    let script = Command::new("perf").args(["script", "-i", &data, "--show-namespace-events"]).output().unwrap();
    let theirs = parse_perf(&String::from_utf8_lossy(&script.stdout));
    // perf's record of the unshare: the one whose uts is not the host's.
    let host_uts = std::fs::metadata("/proc/self/ns/uts").unwrap().ino();
    let unshared = theirs
        .iter()
        .find(|r| r.comm == "unshare" && r.namespaces.iter().any(|n| n.1 == "uts" && n.3 != host_uts))
        .unwrap_or_else(|| panic!("perf recorded no unshare namespaces event: {theirs:?}"));
    let mine = ours
        .iter()
        .find(|r| {
            r.pid == unshared.pid && r.comm == "unshare" && r.namespaces.iter().any(|n| n.1 == "uts" && n.3 != host_uts)
        })
        .unwrap_or_else(|| panic!("nstrace printed no record for pid {} after its unshare: {ours:?}", unshared.pid));
    assert_eq!((mine.pid, mine.tid, &mine.comm), (unshared.pid, unshared.tid, &unshared.comm));
    assert_eq!(unshared.namespaces.len(), 7, "perf prints seven namespaces");
    assert_eq!(mine.namespaces.len(), 8, "nstrace prints perf's seven and time");
    assert_eq!(&mine.namespaces[..7], &unshared.namespaces[..], "index, type, dev and inode of each namespace");
    assert_eq!(mine.namespaces[7].1, "time");
}

//! Tasks whose plain forks change namespaces: those whose pid or time
//! namespace "for children" is not their own (after an unshare or setns of
//! one). The fork gate (eBPF `hooks::forkgate`) is seeded with them.

use std::path::Path;

/// Whether the task at `/proc/PID/task/TID` (`dir`) is pending: its
/// `pid_for_children` or `time_for_children` link differs from its own
/// (or cannot be read while its own can: a pid namespace with no process
/// yet has no name in /proc).
fn is_pending(dir: &Path) -> bool {
    let link = |name: &str| std::fs::read_link(dir.join("ns").join(name)).ok();
    let differs = |own: &str, children: &str| match (link(own), link(children)) {
        (Some(a), Some(b)) => a != b,
        (Some(_), None) => true,
        (None, _) => false,
    };
    differs("pid", "pid_for_children") || differs("time", "time_for_children")
}

/// Every pending task (thread ids), from /proc. Bounded by the tasks
/// /proc lists; a task that goes meanwhile is skipped.
pub fn pending_tasks() -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if is_pending(&t.path()) {
                out.push(tid);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test process has its own pid and time namespaces for children.
    #[test]
    fn a_task_in_its_own_namespaces_is_not_pending() {
        let me = std::process::id();
        assert!(!is_pending(Path::new(&format!("/proc/{me}/task/{me}"))));
        assert!(!pending_tasks().contains(&me));
    }
}

//! Who made a namespace: the creating process's executable, command line
//! and cgroup, and the container (with its name) that cgroup belongs to.
//! Read from /proc at the moment the create record arrives: a process that
//! exits first leaves only what the kernel record carried (pid, comm).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{model::Process, time::UnixTime};

/// A container as a user names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    pub runtime: crate::containers::Runtime,
    pub id: String,
    /// The runtime's name for it (docker's `--name`, the Kubernetes container name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Kubernetes pod as namespace/name, when determinable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The pod sandbox's id (CRI), the same for every container of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

impl ContainerRef {
    /// "docker:3f2a9c1b7d4e (web)".
    pub fn short(&self) -> String {
        let id: String = self.id.chars().take(12).collect();
        match &self.name {
            Some(n) => format!("{}:{id} ({n})", self.runtime),
            None => format!("{}:{id}", self.runtime),
        }
    }

    /// Whether `needle` names this container: its name, a prefix of its id,
    /// its pod (`name` or `namespace/name`) or a prefix of its sandbox id.
    pub fn matches(&self, needle: &str) -> bool {
        let prefix_of = |id: &str| needle.len() >= 4 && id.starts_with(needle);
        self.name.as_deref() == Some(needle)
            || prefix_of(&self.id)
            || self.sandbox.as_deref().is_some_and(prefix_of)
            || self.pod.as_deref().is_some_and(|p| p == needle || p.split_once('/').is_some_and(|(_, n)| n == needle))
    }
}

/// The Kubernetes pod (namespace/name, else its UID) of the first of
/// `containers` in one: the container that made a namespace, then those
/// seen in it.
pub fn pod_of<'a>(containers: impl IntoIterator<Item = &'a ContainerRef>) -> Option<String> {
    containers.into_iter().find_map(|c| c.pod.clone().or_else(|| c.pod_uid.clone()))
}

/// What /proc said about the creating process when the record arrived.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// The parent process (a script that ran `ip netns add`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Process>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRef>,
    /// The creator's cgroup id from the create record, to find its cgroup
    /// (and container) after it exited.
    #[serde(skip)]
    pub cgroup_id: Option<u64>,
}

impl Origin {
    /// What the create record itself carries: the command line (arguments
    /// NUL-separated), the parent, the cgroup id.
    pub fn from_record(args: &[u8], parent_pid: u32, parent_comm: &str, cgroup_id: u64) -> Origin {
        let mut cmdline = args
            .split(|&c| c == 0)
            .filter(|a| !a.is_empty())
            .map(String::from_utf8_lossy)
            .collect::<Vec<_>>()
            .join(" ");
        // The record holds the first bytes of the arguments: a buffer that
        // ends inside an argument was cut, and says so.
        if args.last().is_some_and(|&b| b != 0) {
            cmdline.push('…');
        }
        Origin {
            cmdline: (!cmdline.is_empty()).then_some(cmdline),
            parent: (parent_pid != 0).then(|| Process::new(parent_comm, parent_pid)),
            cgroup_id: (cgroup_id != 0).then_some(cgroup_id),
            ..Default::default()
        }
    }

    /// Fills what this origin lacks from `later` (read from /proc after the record).
    pub fn complete(&mut self, later: Origin) {
        self.exe = self.exe.take().or(later.exe);
        self.cmdline = self.cmdline.take().or(later.cmdline);
        self.parent = self.parent.take().or(later.parent);
        self.cgroup = self.cgroup.take().or(later.cgroup);
        self.container = self.container.take().or(later.container);
    }
}

/// Cgroup (v2) paths by cgroup id (the inode of the cgroup's directory),
/// read from the cgroup2 mount, and read again when an id is asked for
/// that was in use after the last read.
#[derive(Debug)]
pub struct CgroupNames {
    root: PathBuf,
    by_id: HashMap<u64, String>,
    /// When it was last read.
    scanned: UnixTime,
}

impl CgroupNames {
    pub fn new(root: impl Into<PathBuf>) -> CgroupNames {
        CgroupNames { root: root.into(), by_id: HashMap::new(), scanned: UnixTime::from_secs(f64::NEG_INFINITY) }
    }

    /// The path of cgroup `id`, which some process was in at `when`: a
    /// cgroup made since the last read is found by reading again.
    pub fn path(&mut self, id: u64, when: UnixTime) -> Option<String> {
        if !self.by_id.contains_key(&id) && when >= self.scanned {
            self.scanned = crate::time::Clock::unix_now();
            self.by_id = scan_cgroups(&self.root);
        }
        self.by_id.get(&id).cloned()
    }
}

/// Where the cgroup2 (unified) hierarchy is mounted: /sys/fs/cgroup on
/// unified hosts, /sys/fs/cgroup/unified on hybrid ones (cgroup ids are
/// inode numbers there).
pub fn cgroup2_mount() -> PathBuf {
    std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|m| cgroup2_in(&m))
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
}

fn cgroup2_in(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
    })
}

fn scan_cgroups(root: &Path) -> HashMap<u64, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = HashMap::new();
    let mut queue = std::collections::VecDeque::from([root.to_path_buf()]);
    while let Some(dir) = queue.pop_front() {
        if out.len() > 200_000 {
            break;
        }
        if let (Ok(m), Ok(rel)) = (std::fs::metadata(&dir), dir.strip_prefix(root)) {
            out.insert(m.ino(), format!("/{}", rel.to_string_lossy()));
        }
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                queue.push_back(e.path());
            }
        }
    }
    out
}

/// Reads from /proc (`proc`) what `known` (what the create record carried)
/// lacks of the origin of `pid`: the record has no executable, and may lack
/// the command line (a kernel thread, a hook without it), the parent or the
/// cgroup. Each file read is a path walk through a new /proc/PID, so nothing
/// known is read again. The container is left for
/// [`ContainerNames`](crate::containers::names::ContainerNames);
/// missing pieces stay `None`.
pub fn capture(proc: &Path, pid: u32, known: &Origin) -> Origin {
    let dir = proc.join(pid.to_string());
    let exe = std::fs::read_link(dir.join("exe")).ok().map(|p| p.to_string_lossy().into_owned());
    let cmdline = known.cmdline.clone().or_else(|| {
        std::fs::read(dir.join("cmdline"))
            .ok()
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|a| !a.is_empty())
                    .map(String::from_utf8_lossy)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|c| !c.is_empty())
    });
    let parent = known.parent.clone().or_else(|| {
        let ppid = parent_of(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
        let comm = std::fs::read_to_string(proc.join(ppid.to_string()).join("comm")).ok()?;
        Some(Process::new(comm.trim(), ppid))
    });
    let cgroup = known
        .cgroup
        .clone()
        .or_else(|| std::fs::read_to_string(dir.join("cgroup")).ok().and_then(|c| unified_cgroup(&c)));
    Origin { exe, cmdline, parent, cgroup, container: None, cgroup_id: known.cgroup_id }
}

/// The parent pid from /proc/PID/stat (after the parenthesised comm).
fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The cgroup v2 path ("0::/system.slice/docker-<id>.scope"), else the
/// last v1 line's path.
pub(crate) fn unified_cgroup(text: &str) -> Option<String> {
    let paths: Vec<&str> = text.lines().filter_map(|l| l.splitn(3, ':').nth(2)).collect();
    text.lines().find_map(|l| l.strip_prefix("0::")).or_else(|| paths.last().copied()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_after_a_comm_with_spaces_and_parens() {
        assert_eq!(parent_of("42 (my (odd) name) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn unified_cgroup_path_wins() {
        assert_eq!(unified_cgroup("0::/system.slice/x.scope\n").as_deref(), Some("/system.slice/x.scope"));
        assert_eq!(unified_cgroup("12:cpu:/docker/a\n1:name=systemd:/docker/b\n").as_deref(), Some("/docker/b"));
        assert_eq!(unified_cgroup(""), None);
    }

    #[test]
    fn origin_from_a_create_record_then_completed() {
        let mut o = Origin::from_record(b"ip\0netns\0add\0blue\0\0\0", 800, "sh", 1234);
        assert_eq!(
            (o.cmdline.as_deref(), o.parent.as_ref().map(ToString::to_string).as_deref(), o.cgroup_id),
            (Some("ip netns add blue"), Some("sh[800]"), Some(1234))
        );
        assert_eq!(Origin::from_record(&[0; 8], 0, "", 0), Origin::default());
        o.complete(Origin { exe: Some("/usr/bin/ip".into()), cmdline: Some("other".into()), ..Default::default() });
        assert_eq!(
            (o.exe.as_deref(), o.cmdline.as_deref()),
            (Some("/usr/bin/ip"), Some("ip netns add blue")),
            "the record's own wins"
        );
    }

    #[test]
    fn the_cgroup2_mount_of_hybrid_and_unified_hosts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(cgroup2_in(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(cgroup2_in("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(cgroup2_in("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn cgroup_found_by_its_directory_inode() {
        use std::os::unix::fs::MetadataExt;
        let root = std::env::temp_dir().join(format!("nstrace-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(root.join("system.slice/docker-x.scope")).unwrap();
        let id = std::fs::metadata(root.join("system.slice/docker-x.scope")).unwrap().ino();
        let now = crate::time::Clock::unix_now;
        let mut names = CgroupNames::new(&root);
        assert_eq!(names.path(id, now()).as_deref(), Some("/system.slice/docker-x.scope"));
        let before = now() - std::time::Duration::from_secs(10);
        assert_eq!(names.path(1, before), None, "in use before the last read: not read again");
        // A cgroup made since the last read is found by reading again.
        std::fs::create_dir_all(root.join("late")).unwrap();
        let late = std::fs::metadata(root.join("late")).unwrap().ino();
        assert_eq!(names.path(late, before), None, "asked about an earlier time: not read again");
        assert_eq!(names.path(late, now()).as_deref(), Some("/late"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn capture_of_this_process() {
        let o = capture(Path::new("/proc"), std::process::id(), &Origin::default());
        assert!(o.exe.as_deref().is_some_and(|e| e.contains("nstrace")), "{o:?}");
        assert!(o.cmdline.is_some() && o.parent.is_some() && o.cgroup.is_some(), "{o:?}");
        assert_eq!(capture(Path::new("/proc"), u32::MAX, &Origin::default()), Origin::default());
        // What the record carried is kept, not read again; the executable is read.
        let known = Origin {
            cmdline: Some("from the record".into()),
            parent: Some("sh[1]".parse().unwrap()),
            cgroup: Some("/named".into()),
            cgroup_id: Some(7),
            ..Default::default()
        };
        let o = capture(Path::new("/proc"), std::process::id(), &known);
        assert_eq!(o, Origin { exe: o.exe.clone(), ..known.clone() });
        assert!(o.exe.is_some(), "{o:?}");
    }
}

//! Who made a namespace: the creating process's executable, command line
//! and cgroup, and the container (with its name) that cgroup belongs to.
//! Read from /proc at the moment the create record arrives: a process that
//! exits first leaves only what the kernel record carried (pid, comm).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::containers;

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

/// What a runtime's own records say of a container: its name and, in a
/// Kubernetes pod, the pod (namespace/name), its UID and sandbox id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeNames {
    pub name: Option<String>,
    pub pod: Option<String>,
    pub pod_uid: Option<String>,
    pub sandbox: Option<String>,
}

impl RuntimeNames {
    fn found(&self) -> bool {
        self.name.is_some() || self.pod.is_some() || self.sandbox.is_some()
    }

    /// Fills what `c` lacks; true if it learnt anything.
    pub fn fill(self, c: &mut ContainerRef) -> bool {
        let before = (c.name.is_some(), c.pod.is_some(), c.pod_uid.is_some(), c.sandbox.is_some());
        c.name = c.name.take().or(self.name);
        c.pod = c.pod.take().or(self.pod);
        c.pod_uid = c.pod_uid.take().or(self.pod_uid);
        c.sandbox = c.sandbox.take().or(self.sandbox);
        before != (c.name.is_some(), c.pod.is_some(), c.pod_uid.is_some(), c.sandbox.is_some())
    }
}

/// What /proc said about the creating process when the record arrived.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// The parent process, "comm[pid]" (a script that ran `ip netns add`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
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
            parent: (parent_pid != 0).then(|| format!("{parent_comm}[{parent_pid}]")),
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
    /// Unix time of the last read.
    scanned: f64,
}

impl CgroupNames {
    pub fn new(root: impl Into<PathBuf>) -> CgroupNames {
        CgroupNames { root: root.into(), by_id: HashMap::new(), scanned: f64::NEG_INFINITY }
    }

    /// The path of cgroup `id`, which some process was in at `when` (Unix
    /// time): a cgroup made since the last read is found by reading again.
    pub fn path(&mut self, id: u64, when: f64) -> Option<String> {
        if !self.by_id.contains_key(&id) && when >= self.scanned {
            self.scanned = crate::events::Clock::unix_now();
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
/// known is read again. The container is left for [`ContainerNames`];
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
        Some(format!("{}[{ppid}]", comm.trim()))
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
fn unified_cgroup(text: &str) -> Option<String> {
    let paths: Vec<&str> = text.lines().filter_map(|l| l.splitn(3, ':').nth(2)).collect();
    text.lines().find_map(|l| l.strip_prefix("0::")).or_else(|| paths.last().copied()).map(str::to_string)
}

/// Containers named from the runtimes' state under `root` (`/`), each read
/// once: a container keeps its name, and a namespace churn inside one
/// container would otherwise read its config for every namespace.
pub struct ContainerNames {
    root: PathBuf,
    /// (runtime, id) -> names; only found names are kept (a runtime may
    /// write its state after the container's first namespaces).
    known: HashMap<(containers::Runtime, String), RuntimeNames>,
    /// containerd's task directories (`<state>/io.containerd.runtime.v2.task/<namespace>`)
    /// found through its running shims: a containerd with its own `--state`
    /// (Docker's, a test's) keeps its bundles there.
    task_dirs: Vec<PathBuf>,
}

impl ContainerNames {
    pub fn new(root: impl Into<PathBuf>) -> ContainerNames {
        ContainerNames { root: root.into(), known: HashMap::new(), task_dirs: Vec::new() }
    }

    /// The container of a cgroup path, with its name and pod.
    pub fn container_of(&mut self, cgroup: &str) -> Option<ContainerRef> {
        let c = containers::from_cgroup(cgroup)?;
        let mut r =
            ContainerRef { runtime: c.runtime, id: c.id.clone(), pod_uid: c.pod_uid.clone(), ..Default::default() };
        self.name(&r).fill(&mut r);
        Some(r)
    }

    /// What the runtime's records say of container `c`.
    pub fn name(&mut self, c: &ContainerRef) -> RuntimeNames {
        let key = (c.runtime, c.id.clone());
        if let Some(known) = self.known.get(&key) {
            return known.clone();
        }
        let mut found = names_of(&self.root, &self.task_dirs, c);
        if !found.found() && matches!(c.runtime, containers::Runtime::Containerd) {
            // A bundle of a containerd not seen before: look at its shims again.
            let dirs = shim_task_dirs(&self.root.join("proc"));
            if dirs != self.task_dirs {
                self.task_dirs = dirs;
                found = names_of(&self.root, &self.task_dirs, c);
            }
        }
        if found.found() {
            if self.known.len() >= 10_000 {
                self.known.clear();
            }
            self.known.insert(key, found.clone());
        }
        found
    }
}

/// Most containerd task directories remembered (one per containerd and namespace).
const MAX_TASK_DIRS: usize = 64;

/// The task directories of running containerd shims: a shim's working
/// directory is the bundle of the task it was started for, and the other
/// bundles of that containerd namespace are its siblings.
fn shim_task_dirs(proc: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(proc).into_iter().flatten().flatten() {
        let pid = entry.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("containerd-shim") {
            continue;
        }
        if let Some(dir) =
            std::fs::read_link(entry.path().join("cwd")).ok().and_then(|b| b.parent().map(Path::to_path_buf))
            && !dirs.contains(&dir)
            && dirs.len() < MAX_TASK_DIRS
        {
            dirs.push(dir);
        }
    }
    dirs.sort();
    dirs
}

/// What the runtime's state on disk says of container `c`: Docker's
/// config.v2.json, the OCI bundle's Kubernetes annotations (containerd,
/// CRI-O, podman; bundles in the default places and in `task_dirs`),
/// kubelet's pod log directories.
fn names_of(root: &Path, task_dirs: &[PathBuf], c: &ContainerRef) -> RuntimeNames {
    let mut names = RuntimeNames::default();
    use crate::containers::Runtime;
    match c.runtime {
        Runtime::Docker => {
            let config = root.join("var/lib/docker/containers").join(&c.id).join("config.v2.json");
            names.name = std::fs::read_to_string(config).ok().and_then(|t| docker_name(&t));
        }
        Runtime::Containerd | Runtime::CriO | Runtime::Podman => {
            let default_dirs = [
                root.join("run/containerd/io.containerd.runtime.v2.task/k8s.io"),
                root.join("var/lib/containers/storage/overlay-containers"),
            ];
            let bundles = default_dirs.iter().chain(task_dirs).map(|d| {
                let dir = d.join(&c.id);
                if d.ends_with("overlay-containers") {
                    dir.join("userdata/config.json")
                } else {
                    dir.join("config.json")
                }
            });
            for bundle in bundles {
                if let Some(found) = std::fs::read_to_string(bundle).ok().and_then(|t| oci_names(&t)) {
                    names = found;
                    break;
                }
            }
        }
        _ => {}
    }
    if names.pod.is_none()
        && let Some(uid) = c.pod_uid.as_ref().or(names.pod_uid.as_ref())
    {
        names.pod = pod_from_log_dirs(&root.join("var/log/pods"), uid);
    }
    names
}

/// Docker's container name ("/web" in config.v2.json → "web").
fn docker_name(config: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(config).ok()?;
    Some(v["Name"].as_str()?.trim_start_matches('/').to_string()).filter(|n| !n.is_empty())
}

/// Container name, pod (namespace/name), pod UID and sandbox id from an OCI
/// bundle's annotations (containerd's CRI plugin, CRI-O).
fn oci_names(config: &str) -> Option<RuntimeNames> {
    let v: serde_json::Value = serde_json::from_str(config).ok()?;
    let a = v.get("annotations")?;
    let get = |keys: &[&str]| keys.iter().find_map(|k| a[*k].as_str().map(str::to_string));
    let name = get(&["io.kubernetes.cri.container-name", "io.kubernetes.container.name"]);
    let ns = get(&["io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"]);
    let pod = get(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]);
    let pod_uid = get(&["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"]);
    let sandbox = get(&["io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID"]);
    Some(RuntimeNames { name, pod: ns.zip(pod).map(|(ns, pod)| format!("{ns}/{pod}")), pod_uid, sandbox })
}

/// "namespace/name" from kubelet's /var/log/pods/<namespace>_<name>_<uid>.
fn pod_from_log_dirs(dir: &Path, uid: &str) -> Option<String> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| pod_from_log_dir(&e.file_name().to_string_lossy(), uid))
}

fn pod_from_log_dir(name: &str, uid: &str) -> Option<String> {
    let rest = name.strip_suffix(uid)?.strip_suffix('_')?;
    let (ns, pod) = rest.split_once('_')?;
    Some(format!("{ns}/{pod}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef";

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
    fn docker_container_named_from_its_config() {
        let root = std::env::temp_dir().join(format!("nstrace-origin-{}", std::process::id()));
        let dir = root.join("var/lib/docker/containers").join(ID);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.v2.json"), r#"{"ID":"x","Name":"/web"}"#).unwrap();
        let c = ContainerNames::new(&root).container_of(&format!("/system.slice/docker-{ID}.scope")).unwrap();
        assert_eq!(
            (c.runtime, c.id.as_str(), c.name.as_deref()),
            (crate::containers::Runtime::Docker, ID, Some("web"))
        );
        assert_eq!(c.short(), "docker:3f2a9c1b7d4e (web)");
        assert!(c.matches("web") && c.matches("3f2a9c") && !c.matches("3f2") && !c.matches("db"));
        // A container whose state is gone keeps its id, without a name.
        std::fs::remove_dir_all(&root).unwrap();
        let mut names = ContainerNames::new(&root);
        let c = names.container_of(&format!("/docker/{ID}")).unwrap();
        assert_eq!((c.short(), c.name), ("docker:3f2a9c1b7d4e".to_string(), None));
        assert_eq!(names.container_of("/user.slice/session-1.scope"), None);
        // A found name is kept: the config read once serves every later namespace.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.v2.json"), r#"{"ID":"x","Name":"/web"}"#).unwrap();
        assert_eq!(names.container_of(&format!("/docker/{ID}")).unwrap().name.as_deref(), Some("web"));
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(names.container_of(&format!("/docker/{ID}")).unwrap().name.as_deref(), Some("web"));
    }

    #[test]
    fn kubernetes_names_from_annotations_and_log_dirs() {
        let config = r#"{"annotations":{"io.kubernetes.cri.container-name":"app",
            "io.kubernetes.cri.sandbox-namespace":"prod","io.kubernetes.cri.sandbox-name":"web-7d9"}}"#;
        let names = oci_names(config).unwrap();
        assert_eq!((names.name.as_deref(), names.pod.as_deref()), (Some("app"), Some("prod/web-7d9")));
        assert_eq!(oci_names(r#"{"annotations":{}}"#), Some(RuntimeNames::default()));
        assert_eq!(oci_names("{}"), None);
        let uid = "0b1c2d3e-aaaa-bbbb-cccc-123456789abc";
        assert_eq!(
            pod_from_log_dir(&format!("kube-system_coredns-5d78c_{uid}"), uid).as_deref(),
            Some("kube-system/coredns-5d78c")
        );
        assert_eq!(pod_from_log_dir("kube-system_coredns_other", uid), None);
        assert_eq!(docker_name(r#"{"Name":"/"}"#), None);
    }

    #[test]
    fn a_cri_container_named_from_a_bundle_beside_its_shims() {
        let root = std::env::temp_dir().join(format!("nstrace-cri-{}", std::process::id()));
        let tasks = root.join("private-state/io.containerd.runtime.v2.task/k8s.io");
        std::fs::create_dir_all(tasks.join(ID)).unwrap();
        std::fs::write(
            tasks.join(ID).join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"5ab1e",
                "io.kubernetes.cri.sandbox-name":"web","io.kubernetes.cri.sandbox-namespace":"shop",
                "io.kubernetes.cri.sandbox-uid":"u-1"}}"#,
        )
        .unwrap();
        let c = ContainerRef { runtime: crate::containers::Runtime::Containerd, id: ID.into(), ..Default::default() };
        assert_eq!(names_of(&root, &[], &c), RuntimeNames::default(), "not in the default state dir");
        let mut c2 = c.clone();
        assert!(names_of(&root, &[tasks.clone()], &c).fill(&mut c2));
        assert_eq!(
            (c2.pod.as_deref(), c2.pod_uid.as_deref(), c2.sandbox.as_deref()),
            (Some("shop/web"), Some("u-1"), Some("5ab1e"))
        );
        // `why` takes the pod's name, namespace/name, or a prefix of its sandbox id.
        assert!(c2.matches("web") && c2.matches("shop/web") && c2.matches("5ab1e"));
        assert!(!c2.matches("shop") && !c2.matches("other/web") && !c.matches("web"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn shims_found_by_their_comm_and_working_directory() {
        // A fake /proc: one shim (comm containerd-shim-runc-v2, cwd a bundle), one other process.
        let root = std::env::temp_dir().join(format!("nstrace-shims-{}", std::process::id()));
        let bundle = root.join("state/io.containerd.runtime.v2.task/k8s.io/abc");
        std::fs::create_dir_all(&bundle).unwrap();
        for (pid, comm) in [("10", "containerd-shim-runc-v2\n"), ("11", "bash\n")] {
            std::fs::create_dir_all(root.join("proc").join(pid)).unwrap();
            std::fs::write(root.join("proc").join(pid).join("comm"), comm).unwrap();
            std::os::unix::fs::symlink(&bundle, root.join("proc").join(pid).join("cwd")).unwrap();
        }
        assert_eq!(shim_task_dirs(&root.join("proc")), [root.join("state/io.containerd.runtime.v2.task/k8s.io")]);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn origin_from_a_create_record_then_completed() {
        let mut o = Origin::from_record(b"ip\0netns\0add\0blue\0\0\0", 800, "sh", 1234);
        assert_eq!(
            (o.cmdline.as_deref(), o.parent.as_deref(), o.cgroup_id),
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
        let now = crate::events::Clock::unix_now;
        let mut names = CgroupNames::new(&root);
        assert_eq!(names.path(id, now()).as_deref(), Some("/system.slice/docker-x.scope"));
        let before = now() - 10.0;
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
            parent: Some("sh[1]".into()),
            cgroup: Some("/named".into()),
            cgroup_id: Some(7),
            ..Default::default()
        };
        let o = capture(Path::new("/proc"), std::process::id(), &known);
        assert_eq!(o, Origin { exe: o.exe.clone(), ..known.clone() });
        assert!(o.exe.is_some(), "{o:?}");
    }
}

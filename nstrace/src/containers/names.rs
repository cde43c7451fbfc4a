//! Containers named from what their runtime records on disk: Docker's
//! config.v2.json, the OCI bundle's Kubernetes annotations (containerd's
//! CRI plugin, CRI-O), podman's containers.json, kubelet's pod log
//! directories. A runtime with its own state directory (Docker's
//! containerd, a test's) is found through its running helpers: a
//! containerd shim works in its task's bundle, conmon is told its bundle.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use crate::{containers, origin::ContainerRef};

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

/// Containers named from the runtimes' state under `root` (`/`), each read
/// once: a container keeps its name, and a namespace churn inside one
/// container would otherwise read its config for every namespace.
pub struct ContainerNames {
    root: PathBuf,
    /// (runtime, id) -> names; only found names are kept (a runtime may
    /// write its state after the container's first namespaces).
    known: HashMap<(containers::Runtime, String), RuntimeNames>,
    /// State directories found through the runtimes' running helpers.
    dirs: StateDirs,
}

/// Where runtimes with their own state directories keep it, found through
/// their running helpers (the default places are always looked at).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateDirs {
    /// containerd task directories (`<state>/io.containerd.runtime.v2.task/<namespace>`):
    /// a shim's working directory is the bundle of its task; the other
    /// bundles of that containerd namespace are its siblings.
    pub containerd: Vec<PathBuf>,
    /// podman's `<root>/overlay-containers`, with `containers.json` (ids and
    /// names) and a `<id>/userdata` bundle per container: conmon is told the bundle (`-b`).
    pub podman: Vec<PathBuf>,
}

/// Most state directories remembered per runtime (one per containerd
/// namespace or podman root).
const MAX_STATE_DIRS: usize = 64;

impl StateDirs {
    /// From the running containerd shims and conmons in `proc`.
    pub fn of_helpers(proc: &Path) -> StateDirs {
        let mut dirs = StateDirs::default();
        for entry in std::fs::read_dir(proc).into_iter().flatten().flatten() {
            if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let (found, list) = if comm.starts_with("containerd-shim") {
                let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
                (cwd.and_then(|b| b.parent().map(Path::to_path_buf)), &mut dirs.containerd)
            } else if comm.trim_end() == "conmon" {
                let bundle = std::fs::read(entry.path().join("cmdline")).ok().and_then(|c| conmon_bundle(&c));
                (bundle.and_then(|b| b.parent()?.parent().map(Path::to_path_buf)), &mut dirs.podman)
            } else {
                continue;
            };
            if let Some(dir) = found
                && !list.contains(&dir)
                && list.len() < MAX_STATE_DIRS
            {
                list.push(dir);
            }
        }
        dirs.containerd.sort();
        dirs.podman.sort();
        dirs
    }
}

/// The bundle conmon was started for (its `-b`/`--bundle` argument).
fn conmon_bundle(cmdline: &[u8]) -> Option<PathBuf> {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let at = args.iter().position(|a| *a == b"-b" || *a == b"--bundle")?;
    let bundle = std::str::from_utf8(args.get(at + 1)?).ok()?;
    Some(PathBuf::from(bundle))
}

impl ContainerNames {
    pub fn new(root: impl Into<PathBuf>) -> ContainerNames {
        ContainerNames { root: root.into(), known: HashMap::new(), dirs: StateDirs::default() }
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
        let mut found = names_of(&self.root, &self.dirs, c);
        if !found.found() && matches!(c.runtime, containers::Runtime::Containerd | containers::Runtime::Podman) {
            // The state of a runtime not seen before: look at its helpers again.
            let dirs = StateDirs::of_helpers(&self.root.join("proc"));
            if dirs != self.dirs {
                self.dirs = dirs;
                found = names_of(&self.root, &self.dirs, c);
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

/// What the runtime's state on disk says of container `c`: Docker's
/// config.v2.json, the OCI bundle's Kubernetes annotations (containerd,
/// CRI-O, podman), podman's containers.json, kubelet's pod log
/// directories; in the default places and in `dirs`.
fn names_of(root: &Path, dirs: &StateDirs, c: &ContainerRef) -> RuntimeNames {
    let mut names = RuntimeNames::default();
    use crate::containers::Runtime;
    let podman_default = root.join("var/lib/containers/storage/overlay-containers");
    match c.runtime {
        Runtime::Docker => {
            let config = root.join("var/lib/docker/containers").join(&c.id).join("config.v2.json");
            names.name = std::fs::read_to_string(config).ok().and_then(|t| docker_name(&t));
        }
        Runtime::Containerd | Runtime::CriO => {
            let tasks = [root.join("run/containerd/io.containerd.runtime.v2.task/k8s.io")];
            let bundles = tasks.iter().chain(&dirs.containerd).map(|d| d.join(&c.id).join("config.json"));
            let crio = podman_default.join(&c.id).join("userdata/config.json");
            for bundle in bundles.chain([crio]) {
                if let Some(found) = std::fs::read_to_string(bundle).ok().and_then(|t| oci_names(&t)) {
                    names = found;
                    break;
                }
            }
        }
        Runtime::Podman => {
            for dir in std::iter::once(&podman_default).chain(&dirs.podman) {
                let bundle = dir.join(&c.id).join("userdata/config.json");
                let Some(found) = std::fs::read_to_string(bundle).ok().and_then(|t| oci_names(&t)) else {
                    continue;
                };
                names = found;
                let listed = std::fs::read_to_string(dir.join("containers.json")).ok();
                names.name = names.name.or_else(|| listed.and_then(|l| podman_name(&l, &c.id)));
                break;
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

/// A container's first name in podman's containers.json (c/storage's list:
/// `[{"id": …, "names": […]}, …]`).
fn podman_name(list: &str, id: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(list).ok()?;
    let c = v.as_array()?.iter().find(|c| c["id"] == id)?;
    c["names"].as_array()?.first()?.as_str().map(str::to_string)
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
        // A second one is kept too (the cache is not one entry deep).
        let other = "9".repeat(64);
        let other_dir = root.join("var/lib/docker/containers").join(&other);
        std::fs::create_dir_all(&other_dir).unwrap();
        std::fs::write(other_dir.join("config.v2.json"), r#"{"Name":"/db"}"#).unwrap();
        assert_eq!(names.container_of(&format!("/docker/{other}")).unwrap().name.as_deref(), Some("db"));
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(names.container_of(&format!("/docker/{ID}")).unwrap().name.as_deref(), Some("web"));
        assert_eq!(names.container_of(&format!("/docker/{other}")).unwrap().name.as_deref(), Some("db"));
    }

    #[test]
    fn a_pod_alone_or_a_sandbox_alone_is_a_found_name() {
        let pod = RuntimeNames { pod: Some("shop/web".into()), ..Default::default() };
        let sandbox = RuntimeNames { sandbox: Some("5ab1e".into()), ..Default::default() };
        assert!(pod.found() && sandbox.found() && !RuntimeNames::default().found());
    }

    #[test]
    fn a_kubepods_cgroup_keeps_its_pod_uid_and_the_log_dirs_name_the_pod() {
        let root = std::env::temp_dir().join(format!("nstrace-logdirs-{}", std::process::id()));
        let uid = "0f7e1c9a-1b2c-4d5e-8f90-a1b2c3d4e5f6";
        std::fs::create_dir_all(root.join("var/log/pods").join(format!("shop_web-1_{uid}"))).unwrap();
        let mut names = ContainerNames::new(&root);
        let c = names.container_of(&format!("/kubepods/besteffort/pod{uid}/{ID}")).unwrap();
        assert_eq!((c.pod_uid.as_deref(), c.pod.as_deref()), (Some(uid), Some("shop/web-1")), "{c:?}");
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A containerd with its own state directory: its bundles are found
    /// through the fake /proc's shim only after the default places failed.
    #[test]
    fn an_unknown_containerd_bundle_is_found_by_looking_at_the_shims_again() {
        let root = std::env::temp_dir().join(format!("nstrace-rescan-{}", std::process::id()));
        let tasks = root.join("private/io.containerd.runtime.v2.task/k8s.io");
        std::fs::create_dir_all(tasks.join(ID)).unwrap();
        let annotations = r#"{"annotations":{"io.kubernetes.cri.container-name":"app"}}"#;
        std::fs::write(tasks.join(ID).join("config.json"), annotations).unwrap();
        let shim = root.join("proc/77");
        std::fs::create_dir_all(&shim).unwrap();
        std::fs::write(shim.join("comm"), "containerd-shim-runc-v2\n").unwrap();
        std::os::unix::fs::symlink(tasks.join(ID), shim.join("cwd")).unwrap();
        let mut names = ContainerNames::new(&root);
        let c = ContainerRef { runtime: crate::containers::Runtime::Containerd, id: ID.into(), ..Default::default() };
        assert_eq!(names.name(&c).name.as_deref(), Some("app"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn at_most_so_many_state_directories_are_kept() {
        let root = std::env::temp_dir().join(format!("nstrace-manyshims-{}", std::process::id()));
        for n in 0..=MAX_STATE_DIRS {
            let shim = root.join("proc").join(n.to_string());
            std::fs::create_dir_all(&shim).unwrap();
            std::fs::write(shim.join("comm"), "containerd-shim-runc-v2\n").unwrap();
            let bundle = root.join(format!("state{n}/tasks/k8s.io/x"));
            std::fs::create_dir_all(&bundle).unwrap();
            std::os::unix::fs::symlink(&bundle, shim.join("cwd")).unwrap();
        }
        assert_eq!(StateDirs::of_helpers(&root.join("proc")).containerd.len(), MAX_STATE_DIRS);
        std::fs::remove_dir_all(root).unwrap();
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
        assert_eq!(names_of(&root, &StateDirs::default(), &c), RuntimeNames::default(), "not in the default state dir");
        let mut c2 = c.clone();
        assert!(
            names_of(&root, &StateDirs { containerd: vec![tasks.clone()], ..Default::default() }, &c).fill(&mut c2)
        );
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
    fn runtime_helpers_say_where_their_state_is() {
        // A fake /proc: a containerd shim (its cwd a bundle), a conmon (told
        // its bundle), and a process that is neither.
        let root = std::env::temp_dir().join(format!("nstrace-helpers-{}", std::process::id()));
        let bundle = root.join("state/io.containerd.runtime.v2.task/k8s.io/abc");
        std::fs::create_dir_all(&bundle).unwrap();
        let podman = root.join("storage/overlay-containers");
        std::fs::create_dir_all(podman.join(ID).join("userdata")).unwrap();
        let userdata = podman.join(ID).join("userdata");
        let conmon_args = format!("/usr/bin/conmon\0--api-version\01\0-c\0{ID}\0-b\0{}\0-p\0/x\0", userdata.display());
        for (pid, comm, cmdline) in [
            ("10", "containerd-shim-runc-v2\n", "containerd-shim-runc-v2\0-id\0abc\0"),
            ("11", "conmon\n", conmon_args.as_str()),
            ("12", "bash\n", "bash\0"),
        ] {
            let dir = root.join("proc").join(pid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), comm).unwrap();
            std::fs::write(dir.join("cmdline"), cmdline).unwrap();
            std::os::unix::fs::symlink(&bundle, dir.join("cwd")).unwrap();
        }
        let dirs = StateDirs::of_helpers(&root.join("proc"));
        assert_eq!(dirs.containerd, [root.join("state/io.containerd.runtime.v2.task/k8s.io")]);
        assert_eq!(dirs.podman, std::slice::from_ref(&podman));
        // podman's name for it: from containers.json beside the bundles.
        std::fs::write(userdata.join("config.json"), r#"{"annotations":{"io.container.manager":"libpod"}}"#).unwrap();
        std::fs::write(
            podman.join("containers.json"),
            format!(r#"[{{"id":"other","names":["x"]}},{{"id":"{ID}","names":["leaky"]}}]"#),
        )
        .unwrap();
        let c = ContainerRef { runtime: crate::containers::Runtime::Podman, id: ID.into(), ..Default::default() };
        assert_eq!(names_of(&root, &dirs, &c).name.as_deref(), Some("leaky"));
        assert_eq!(names_of(&root, &StateDirs::default(), &c), RuntimeNames::default());
        assert_eq!(podman_name("not json", ID), None);
        std::fs::remove_dir_all(root).unwrap();
    }
}

//! A private containerd with its CRI plugin and a CNI bridge, driven the way
//! the kubelet drives it: a real CRI client (`k8s-cri`, tonic) over the
//! containerd socket. Everything it runs lives under the test's own scratch
//! directory (root, state, socket, runc root, CNI config and IPAM); what
//! the runtime writes outside it (the `cni-…` netns files, the CNI result
//! cache, shim sockets, the bridge) is removed when the guard drops, also
//! when the test fails. Images come from local files: a static pause
//! program and a static busybox, packed as OCI layouts and imported with
//! `ctr images import` (no registry). No traffic is sent anywhere.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_cri::v1::{self as cri, runtime_service_client::RuntimeServiceClient};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{eventually, scaled, sh};

/// The CNI bridge the private network uses (deleted when the guard drops).
pub const BRIDGE: &str = "crit0";
pub const PAUSE_IMAGE: &str = "localhost/nstrace-test-pause:1";
pub const BUSYBOX_IMAGE: &str = "localhost/nstrace-test-busybox:1";

const CONFIG: &str = include_str!("../fixtures/cri/containerd.toml");
const CONFLIST: &str = include_str!("../fixtures/cri/10-crit.conflist");
const PAUSE_C: &str = include_str!("../fixtures/cri/pause.c");

/// A pod as the kubelet describes it to the runtime.
#[derive(Clone, Debug)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The containerd this test started; everything it made is torn down on drop.
pub struct Containerd {
    pub dir: String,
    child: Option<Child>,
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    /// Shim sockets (/run/containerd/s) and CNI netns files
    /// (/var/run/netns/cni-*) present before the start: the ones that
    /// appear after are this containerd's.
    before: Vec<String>,
}

/// Why this host cannot run the CRI tests, if it cannot.
pub fn unavailable() -> Option<String> {
    for (what, path) in [
        ("containerd", "/usr/bin/containerd"),
        ("ctr", "/usr/bin/ctr"),
        ("runc", "/usr/sbin/runc"),
        ("the CNI bridge plugin (containernetworking-plugins)", "/usr/lib/cni/bridge"),
        ("a static busybox (busybox-static)", "/bin/busybox"),
    ] {
        if !Path::new(path).exists() {
            return Some(format!("{what} is not installed ({path}; cargo xtask setup installs it)"));
        }
    }
    if crate::in_vm() {
        return Some(
            "container runtimes are tested on the host run only (the VMs run a read-only copy of the host root)".into(),
        );
    }
    if Path::new(&format!("/sys/class/net/{BRIDGE}")).exists() {
        return Some(format!("a bridge named {BRIDGE} already exists: another CRI test is running"));
    }
    None
}

fn pids_matching(pattern: &str) -> Vec<i32> {
    let out = Command::new("pgrep").args(["-f", "--", pattern]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Shim sockets and CNI netns files: what the runtime leaves outside the test's directory.
fn runtime_files() -> Vec<String> {
    ["/run/containerd/s", "/var/run/netns"]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| !p.starts_with("/var/run/netns/") || p.starts_with("/var/run/netns/cni-"))
        .collect()
}

impl Containerd {
    /// Starts containerd in `dir` and imports the pause and busybox images;
    /// answering CRI requests when this returns.
    pub fn start(dir: &str) -> Containerd {
        let subst = |t: &str| t.replace("@DIR@", dir);
        std::fs::create_dir_all(format!("{dir}/cni-conf")).unwrap();
        std::fs::write(format!("{dir}/containerd.toml"), subst(CONFIG)).unwrap();
        std::fs::write(format!("{dir}/cni-conf/10-crit.conflist"), subst(CONFLIST)).unwrap();
        let before = runtime_files();
        let log = std::fs::File::create(format!("{dir}/containerd.log")).unwrap();
        let child = Command::new("containerd")
            .args(["--config", &format!("{dir}/containerd.toml")])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let socket = format!("{dir}/containerd.sock");
        eventually(scaled(Duration::from_secs(60)), "containerd's socket", || {
            Path::new(&socket).exists().then_some(())
        });
        let channel = rt
            .block_on(Endpoint::try_from("http://[::]").unwrap().connect_with_connector(tower::service_fn(
                move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                            tokio::net::UnixStream::connect(socket).await?,
                        ))
                    }
                },
            )))
            .expect("connect to containerd's CRI");
        let me =
            Containerd { dir: dir.into(), child: Some(child), rt, client: RuntimeServiceClient::new(channel), before };
        eventually(scaled(Duration::from_secs(60)), "the CRI plugin answering", || {
            let mut c = me.client.clone();
            me.rt.block_on(c.version(cri::VersionRequest::default())).ok().map(|_| ())
        });
        me.import_images();
        me
    }

    fn ctr(&self, args: &str) -> String {
        sh(&format!("ctr -a {}/containerd.sock -n k8s.io {args}", self.dir))
    }

    /// The pause program (static C) and a static busybox, as OCI image
    /// layouts, imported into the CRI's image store.
    fn import_images(&self) {
        let dir = &self.dir;
        std::fs::write(format!("{dir}/pause.c"), PAUSE_C).unwrap();
        sh(&format!("mkdir -p {dir}/pause-root && cc -static -O2 -o {dir}/pause-root/pause {dir}/pause.c"));
        pack_image(&format!("{dir}/pause-root"), &["/pause"], PAUSE_IMAGE, &format!("{dir}/pause.tar"));
        sh(&format!(
            "mkdir -p {dir}/busybox-root/bin && cp /bin/busybox {dir}/busybox-root/bin/ && ln -sf busybox {dir}/busybox-root/bin/sh && ln -sf busybox {dir}/busybox-root/bin/sleep"
        ));
        pack_image(&format!("{dir}/busybox-root"), &["/bin/sh"], BUSYBOX_IMAGE, &format!("{dir}/busybox.tar"));
        for tar in ["pause", "busybox"] {
            self.ctr(&format!("images import {dir}/{tar}.tar"));
        }
    }

    fn call<T>(&self, what: &str, f: impl AsyncFnOnce(RuntimeServiceClient<Channel>) -> Result<T, tonic::Status>) -> T {
        let client = self.client.clone();
        self.rt
            .block_on(async { tokio::time::timeout(scaled(Duration::from_secs(120)), f(client)).await })
            .unwrap_or_else(|_| panic!("CRI {what}: no answer within 2 minutes"))
            .unwrap_or_else(|e| panic!("CRI {what}: {e}; containerd's log: {}", self.log_tail()))
    }

    /// The last lines containerd logged (for failure messages).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(format!("{}/containerd.log", self.dir)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn sandbox_config(&self, pod: &Pod) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                namespace: pod.namespace.clone(),
                attempt: 0,
            }),
            hostname: pod.name.clone(),
            log_directory: format!("{}/pod-logs/{}_{}_{}", self.dir, pod.namespace, pod.name, pod.uid),
            linux: Some(cri::LinuxPodSandboxConfig {
                // As the kubelet's cgroupfs driver names a BestEffort pod's cgroup.
                cgroup_parent: format!("/kubepods/besteffort/pod{}", pod.uid),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox: the sandbox id.
    pub fn run_pod(&self, pod: &Pod) -> String {
        let config = self.sandbox_config(pod);
        std::fs::create_dir_all(&config.log_directory).unwrap();
        let req = cri::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        self.call("RunPodSandbox", async |mut c| c.run_pod_sandbox(req).await).into_inner().pod_sandbox_id
    }

    /// CreateContainer + StartContainer of a busybox `sleep` in the pod: the container id.
    pub fn run_sleeper(&self, sandbox: &str, pod: &Pod, name: &str) -> String {
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: BUSYBOX_IMAGE.into(), ..Default::default() }),
            command: vec!["/bin/sleep".into(), "2147483647".into()],
            log_path: format!("{name}/0.log"),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(cri::NamespaceOption::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(config),
            sandbox_config: Some(self.sandbox_config(pod)),
        };
        let id = self.call("CreateContainer", async |mut c| c.create_container(req).await).into_inner().container_id;
        let req = cri::StartContainerRequest { container_id: id.clone() };
        self.call("StartContainer", async |mut c| c.start_container(req).await);
        id
    }

    /// The pid of a sandbox's pause process (PodSandboxStatus, verbose).
    pub fn sandbox_pid(&self, sandbox: &str) -> u32 {
        let req = cri::PodSandboxStatusRequest { pod_sandbox_id: sandbox.into(), verbose: true };
        let status = self.call("PodSandboxStatus", async |mut c| c.pod_sandbox_status(req).await).into_inner();
        let info: serde_json::Value = serde_json::from_str(status.info.get("info").expect("verbose info")).unwrap();
        info["pid"].as_u64().expect("sandbox pid") as u32
    }

    /// The pid of a container's first process (ContainerStatus, verbose).
    pub fn container_pid(&self, id: &str) -> u32 {
        let req = cri::ContainerStatusRequest { container_id: id.into(), verbose: true };
        let status = self.call("ContainerStatus", async |mut c| c.container_status(req).await).into_inner();
        let info: serde_json::Value = serde_json::from_str(status.info.get("info").expect("verbose info")).unwrap();
        info["pid"].as_u64().expect("container pid") as u32
    }

    /// StopPodSandbox + RemovePodSandbox, what the kubelet does when a pod
    /// is deleted: the runtime's error, if it refused.
    pub fn remove_pod(&self, sandbox: &str) -> Result<(), String> {
        let client = self.client.clone();
        let id = sandbox.to_string();
        let done = self.rt.block_on(async move {
            let mut c = client;
            let stop = cri::StopPodSandboxRequest { pod_sandbox_id: id.clone() };
            c.stop_pod_sandbox(stop).await?;
            c.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id }).await
        });
        done.map(|_| ()).map_err(|e| e.message().to_string())
    }

    /// SIGKILL to containerd, every shim it started and their containers:
    /// the runtime dies without cleaning up (the leak users report).
    pub fn kill_everything(&mut self) {
        let mut victims: Vec<i32> = pids_matching(&format!("-address {}/containerd.sock", self.dir));
        for shim in victims.clone() {
            victims.extend(crate::children_of(shim as u32).into_iter().map(|p| p as i32));
        }
        if let Some(c) = &self.child {
            victims.push(c.id() as i32);
        }
        for v in &victims {
            // SAFETY: kill(2) takes no pointers; each pid is of this test's runtime.
            unsafe { libc::kill(*v, libc::SIGKILL) };
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        // Gone, not only dead: a zombie still shows its pod's cgroup to the
        // next test's holder scans (orphans are reaped by pid 1). Bounded,
        // and never a panic (this runs in Drop).
        let deadline = std::time::Instant::now() + scaled(Duration::from_secs(20));
        while victims.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.kill_everything();
        let dir = &self.dir;
        // The netns files CNI made for this containerd's pods and the shims'
        // sockets; the CNI result cache of its network, the bridge, mounts under dir.
        for f in runtime_files() {
            if !self.before.contains(&f) {
                let _ = Command::new("umount").arg(&f).stderr(Stdio::null()).status();
                let _ = std::fs::remove_file(f);
            }
        }
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "rm -f /var/lib/cni/results/critest-*; \
                 ip link del {BRIDGE} 2>/dev/null; \
                 for m in $(awk '{{print $5}}' /proc/self/mountinfo | grep '^{dir}/' | sort -r); do umount -l \"$m\"; done"
            ))
            .stderr(Stdio::null())
            .status();
    }
}

/// Packs the root filesystem `root` as an OCI image layout tar named `name`
/// (one uncompressed layer) at `out`.
fn pack_image(root: &str, entrypoint: &[&str], name: &str, out: &str) {
    let layout = format!("{out}.d");
    let blobs = format!("{layout}/blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let layer = format!("{layout}/layer.tar");
    sh(&format!("tar --owner=0 --group=0 --mtime=@0 -C {root} -cf {layer} ."));
    let put = |data: &[u8]| -> (String, usize) {
        let tmp = format!("{layout}/blob.tmp");
        std::fs::write(&tmp, data).unwrap();
        let digest = sh(&format!("sha256sum {tmp} | cut -d' ' -f1")).trim().to_string();
        std::fs::rename(&tmp, format!("{blobs}/{digest}")).unwrap();
        (format!("sha256:{digest}"), data.len())
    };
    let (layer_digest, layer_size) = put(&std::fs::read(&layer).unwrap());
    std::fs::remove_file(&layer).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": entrypoint, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
    let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(format!("{layout}/index.json"), index.to_string()).unwrap();
    std::fs::write(format!("{layout}/oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    sh(&format!("tar -C {layout} -cf {out} oci-layout index.json blobs"));
}

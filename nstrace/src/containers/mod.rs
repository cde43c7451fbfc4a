//! Container attribution from cgroup paths (cgroup v2 `0::/...` lines, or
//! any v1 hierarchy path): docker, containerd/CRI (Kubernetes pods), CRI-O,
//! podman, systemd-nspawn and LXC.

use serde::{Deserialize, Serialize};

pub mod names;

/// The container runtime a cgroup path names: the same kebab-case names in
/// the JSON, the text, the metrics' labels and the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[derive(strum::IntoStaticStr, strum::EnumIter, strum::EnumString, strum::Display)]
#[strum(serialize_all = "kebab-case")]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
    Nspawn,
    Lxc,
    /// Read back from a database row naming a runtime this build does not know.
    #[default]
    Unknown,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// A name read back from the database.
    pub fn of_name(name: &str) -> Runtime {
        name.parse().unwrap_or(Runtime::Unknown)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Container {
    pub runtime: Runtime,
    /// Container id (64 hex digits) or machine/container name.
    pub id: String,
    /// Kubernetes pod UID, when the path has one (as `ContainerRef::pod_uid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

impl Container {
    /// Short form for tables: runtime:first 12 of the id.
    pub fn short(&self) -> String {
        let id: String = self.id.chars().take(12).collect();
        format!("{}:{id}", self.runtime)
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The pod UID in `kubepods-besteffort-pod<uid>.slice` or `pod<uid>`.
fn pod_of(path: &str) -> Option<String> {
    path.split('/').find_map(|seg| {
        let seg = seg.strip_suffix(".slice").unwrap_or(seg);
        let uid = seg.rsplit_once("-pod").map(|(_, u)| u).or_else(|| seg.strip_prefix("pod"))?;
        (uid.len() >= 32).then(|| uid.replace('_', "-"))
    })
}

/// The container a cgroup path belongs to, if any.
pub fn from_cgroup(path: &str) -> Option<Container> {
    let pod = pod_of(path);
    // Innermost match wins: nested cgroups end in the container's own scope.
    for seg in path.split('/').rev() {
        let scope = seg.strip_suffix(".scope").unwrap_or(seg);
        for (prefix, runtime) in [
            ("docker-", Runtime::Docker),
            ("cri-containerd-", Runtime::Containerd),
            ("crio-", Runtime::CriO),
            ("libpod-", Runtime::Podman),
        ] {
            if let Some(id) = scope.strip_prefix(prefix)
                && is_hex64(id)
            {
                return Some(Container { runtime, id: id.into(), pod_uid: pod.clone() });
            }
        }
        if let Some(name) = scope.strip_prefix("machine-").filter(|_| seg.ends_with(".scope")) {
            // systemd escapes '-' in machine names as \x2d.
            return Some(Container { runtime: Runtime::Nspawn, id: name.replace("\\x2d", "-"), pod_uid: None });
        }
        if is_hex64(seg) {
            // cgroupfs driver: /docker/<id>, /kubepods/.../pod<uid>/<id>
            // containerd's own grouping is its namespace: /k8s.io/<id> for CRI pods.
            let runtime = if path.contains("/docker/") {
                Runtime::Docker
            } else if pod.is_some() || path.contains("/k8s.io/") {
                Runtime::Containerd
            } else {
                Runtime::Docker
            };
            return Some(Container { runtime, id: seg.into(), pod_uid: pod.clone() });
        }
    }
    // LXC: /lxc.payload.<name>/... or /lxc/<name>/...
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    while let Some(seg) = segs.next() {
        if let Some(name) = seg.strip_prefix("lxc.payload.") {
            return Some(Container { runtime: Runtime::Lxc, id: name.into(), pod_uid: None });
        }
        if seg == "lxc"
            && let Some(name) = segs.next()
        {
            return Some(Container { runtime: Runtime::Lxc, id: name.into(), pod_uid: None });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c2e7d9a0b3c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";

    #[test]
    fn docker_systemd_and_cgroupfs() {
        let c = from_cgroup(&format!("/system.slice/docker-{ID}.scope")).unwrap();
        assert_eq!((c.runtime, c.id.as_str(), c.pod_uid.as_deref()), (Runtime::Docker, ID, None));
        assert_eq!(from_cgroup(&format!("/docker/{ID}")).unwrap().runtime, Runtime::Docker);
        assert_eq!(c.short(), "docker:4f1c2e7d9a0b");
    }

    #[test]
    fn kubernetes_containerd_and_crio() {
        let p = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f7e1c9a_1b2c_4d5e_8f90_a1b2c3d4e5f6.slice/cri-containerd-{ID}.scope"
        );
        let c = from_cgroup(&p).unwrap();
        assert_eq!(c.runtime, Runtime::Containerd);
        assert_eq!(c.pod_uid.as_deref(), Some("0f7e1c9a-1b2c-4d5e-8f90-a1b2c3d4e5f6"));
        let c = from_cgroup(&format!(
            "/kubepods.slice/kubepods-pod0f7e1c9a_1b2c_4d5e_8f90_a1b2c3d4e5f6.slice/crio-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(c.runtime, Runtime::CriO);
        let c = from_cgroup(&format!("/kubepods/besteffort/pod0f7e1c9a-1b2c-4d5e-8f90-a1b2c3d4e5f6/{ID}")).unwrap();
        assert_eq!((c.runtime, c.pod_uid.is_some()), (Runtime::Containerd, true));
        // A CRI sandbox with no cgroup parent: containerd's namespace names the group.
        assert_eq!(from_cgroup(&format!("/k8s.io/{ID}")).unwrap().runtime, Runtime::Containerd);
    }

    #[test]
    fn podman_nspawn_lxc() {
        assert_eq!(
            from_cgroup(&format!("/machine.slice/libpod-{ID}.scope/container")).unwrap().runtime,
            Runtime::Podman
        );
        let c = from_cgroup("/machine.slice/machine-my\\x2dbox.scope/payload").unwrap();
        assert_eq!((c.runtime, c.id.as_str()), (Runtime::Nspawn, "my-box"));
        assert_eq!(from_cgroup("/lxc.payload.web1/init.scope").unwrap().id, "web1");
        assert_eq!(from_cgroup("/lxc/web2/x").unwrap().id, "web2");
    }

    #[test]
    fn host_paths_are_not_containers() {
        for p in [
            "/",
            "/init.scope",
            "/user.slice/user-0.slice/session-1.scope",
            "/system.slice/docker.service",
            "/docker-x.scope",
        ] {
            assert_eq!(from_cgroup(p), None, "{p}");
        }
    }
}

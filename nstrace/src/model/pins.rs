//! What a namespace's record remembers besides its row: who pinned it
//! (mounts, fds, `ip netns` names; kept after release) and the containers
//! seen in it.

use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use super::{Holder, PinMaker, Process};
use crate::{containers::Container, origin::ContainerRef, time::UnixTime};

/// What keeps a namespace alive besides its tasks, as first seen: a bind
/// mount, an open fd or an `ip netns` name. Kept after release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    /// mount, fd.
    pub kind: PinKind,
    /// The mount point, or "PID:FD".
    pub target: String,
    /// Mount namespace of a mount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mnt_ns: Option<u64>,
    /// The process that made it: the fd's owner; for a mount the process
    /// whose mount(2) call made it, when a hook saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<PinMaker>,
    /// How `by` is known.
    pub attribution: Attribution,
    /// When it was first seen.
    pub since: UnixTime,
    /// When it was gone, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<UnixTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinKind {
    Mount,
    Fd,
}

/// How a pin's maker is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[derive(strum::IntoStaticStr, strum::EnumIter, strum::EnumString, strum::Display)]
#[strum(serialize_all = "kebab-case")]
pub enum Attribution {
    /// The process that holds the fd.
    FdOwner,
    /// The mount hook saw the process's mount(2) or move_mount(2).
    MountSyscall,
    /// A mount first noticed by a refresh: its maker was not seen.
    Unknown,
}

impl Attribution {
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// A name read back from the database.
    pub fn of_name(name: &str) -> Attribution {
        name.parse().unwrap_or(Attribution::Unknown)
    }
}

impl PinKind {
    pub fn name(self) -> &'static str {
        match self {
            PinKind::Mount => "mount",
            PinKind::Fd => "fd",
        }
    }
}

/// Containers whose tasks were seen in a namespace while it lived (a
/// leaked netns keeps no task to say whose it was). One word, and no
/// allocation, when none (most namespaces).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct SeenIn(ThinVec<ContainerRef>);

impl SeenIn {
    /// Most containers kept per namespace.
    pub const CAP: usize = 16;

    pub fn iter(&self) -> impl Iterator<Item = &ContainerRef> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds the containers not seen before; true if any was.
    pub fn note(&mut self, containers: &[Container]) -> bool {
        let mut changed = false;
        for c in containers {
            if self.iter().any(|s| s.runtime == c.runtime && s.id == c.id) || self.iter().count() >= Self::CAP {
                continue;
            }
            let r =
                ContainerRef { runtime: c.runtime, id: c.id.clone(), pod_uid: c.pod_uid.clone(), ..Default::default() };
            self.0.push(r);
            changed = true;
        }
        changed
    }

    /// Names the containers that have no name yet; true if any got one.
    pub fn name(
        &mut self,
        mut namer: impl FnMut(&ContainerRef) -> Option<crate::containers::names::RuntimeNames>,
    ) -> bool {
        let mut changed = false;
        for c in self.0.iter_mut().filter(|c| c.name.is_none()) {
            if let Some(names) = namer(c) {
                changed |= names.fill(c);
            }
        }
        changed
    }

    /// Adopts what an earlier run saw (the database).
    pub fn adopt(&mut self, remembered: Vec<ContainerRef>) {
        for r in remembered {
            if !self.iter().any(|s| s.runtime == r.runtime && s.id == r.id) {
                self.0.push(r);
            }
        }
    }
}

/// A namespace's pins, oldest first. Most namespaces have none: one word,
/// no allocation.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Pins(ThinVec<Pin>);

impl Pins {
    /// Most pins kept per namespace (older released ones go first).
    pub const CAP: usize = 32;

    pub fn iter(&self) -> impl Iterator<Item = &Pin> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Makes the pins match the current non-task `holders` at `now`: new
    /// ones are added, missing ones marked released. True if any changed.
    pub fn update(&mut self, holders: &[Holder], now: UnixTime) -> bool {
        let current: Vec<(PinKind, String, Option<u64>, Option<PinMaker>)> = holders
            .iter()
            .filter_map(|h| match h {
                // A socket is no pin a user made: it goes with its process.
                Holder::Task { .. } | Holder::Socket { .. } => None,
                Holder::Fd { pid, fd, comm } => {
                    Some((PinKind::Fd, format!("{pid}:{fd}"), None, Some(Process::new(&**comm, *pid).into())))
                }
                Holder::Mount { path, mnt_ns, .. } => Some((PinKind::Mount, path.clone(), Some(*mnt_ns), None)),
            })
            .collect();
        if current.is_empty() && self.0.is_empty() {
            return false;
        }
        let mut changed = false;
        let pins = &mut self.0;
        for p in pins.iter_mut().filter(|p| p.released.is_none()) {
            if !current.iter().any(|(k, t, m, _)| *k == p.kind && *t == p.target && *m == p.mnt_ns) {
                p.released = Some(now);
                changed = true;
            }
        }
        for (kind, target, mnt_ns, by) in current {
            let known =
                pins.iter().any(|p| p.released.is_none() && p.kind == kind && p.target == target && p.mnt_ns == mnt_ns);
            if !known {
                let attribution = if by.is_some() { Attribution::FdOwner } else { Attribution::Unknown };
                pins.push(Pin { kind, target, mnt_ns, by, attribution, since: now, released: None });
                changed = true;
            }
        }
        while pins.len() > Self::CAP {
            let i = pins.iter().position(|p| p.released.is_some()).unwrap_or(0);
            pins.remove(i);
        }
        changed
    }

    /// Adopts pins remembered elsewhere (the database, after a restart):
    /// they replace the same live pins this run found (keeping who made
    /// them and since when); pins only this run knows stay.
    pub fn adopt(&mut self, remembered: Vec<Pin>) {
        if remembered.is_empty() {
            return;
        }
        let same = |a: &Pin, b: &Pin| a.kind == b.kind && a.target == b.target && a.mnt_ns == b.mnt_ns;
        let mut pins: ThinVec<Pin> = remembered.into_iter().collect();
        for p in self.iter() {
            if !pins.iter().any(|r| r.released.is_none() && p.released.is_none() && same(r, p)) {
                pins.push(p.clone());
            }
        }
        self.0 = pins;
    }

    /// Marks every live pin released at `at` (the namespace died); true if any was.
    pub fn release_all(&mut self, at: UnixTime) -> bool {
        let mut any = false;
        for p in self.0.iter_mut().filter(|p| p.released.is_none()) {
            p.released = Some(at);
            any = true;
        }
        any
    }

    /// Attributes the live mount pin at `target` in `mnt_ns` to `by`.
    pub fn attribute(&mut self, target: &str, mnt_ns: u64, by: PinMaker, attribution: Attribution) -> bool {
        let Some(p) = self.0.iter_mut().find(|p| {
            p.kind == PinKind::Mount && p.released.is_none() && p.target == target && p.mnt_ns == Some(mnt_ns)
        }) else {
            return false;
        };
        p.by = Some(by);
        p.attribution = attribution;
        true
    }
}

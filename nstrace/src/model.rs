//! The data model: one [`Namespace`] record per namespace, its holders and
//! state. Shared by snapshots, the store and every view; no I/O here.

use std::collections::VecDeque;

use nstrace_common::ns::NsType;
use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use crate::{
    containers::Container,
    events::Event,
    origin::{ContainerRef, Origin},
    time::UnixTime,
};

mod charge;
mod dying;
mod key;
mod process;
pub use self::{
    charge::{Charge, UserNsCharges},
    dying::{Dying, TeardownStage},
    key::NsKey,
    process::{NotAProcess, PinMaker, Process},
};

/// How a task holds a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum TaskHold {
    /// The task lives in it (`/proc/PID/ns/<type>`).
    Member,
    /// Only as `pid_for_children` (the task called unshare(CLONE_NEWPID) and
    /// has not forked yet).
    PidForChildren,
    /// Only as `time_for_children`.
    TimeForChildren,
}

/// A pid as the process's own pid namespace sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PidInNs {
    pub pid: u32,
    /// The inode of that pid namespace.
    pub pid_ns: u64,
}

/// A process's command name, shared by every holder of that process (one
/// process can hold thousands of namespaces by fd).
pub type Comm = std::sync::Arc<str>;

/// One thing that keeps a namespace alive, as seen from /proc.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Holder {
    /// A process (thread group) whose tasks use the namespace; `tid` names
    /// the thread when only a thread other than the leader does.
    Task {
        pid: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        tid: Option<u32>,
        comm: Comm,
        hold: TaskHold,
    },
    /// An open nsfs file descriptor.
    Fd { pid: u32, fd: i32, comm: Comm },
    /// An nsfs bind mount.
    Mount {
        /// Mount point as seen inside the mount namespace that has it.
        path: String,
        /// Inode of the mount namespace the mount lives in.
        mnt_ns: u64,
        /// A process inside that mount namespace (its /proc/PID/root reaches the path).
        via_pid: u32,
        #[serde(flatten)]
        stack: MountStack,
    },
}

/// How a bind mount sits at its mount point: how many mounts of the same
/// mount namespace are stacked there (unlinking the path fails with EBUSY
/// until every one is unmounted: `ip netns del` unmounts only the top one),
/// and its shared peer group (an unmount propagates to the group's mounts
/// in other mount namespaces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct MountStack {
    /// Mounts of this namespace at this point in this mount namespace.
    #[serde(skip_serializing_if = "MountStack::single")]
    pub stacked: u32,
    /// mountinfo's `shared:N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_group: Option<u32>,
}

impl Default for MountStack {
    fn default() -> MountStack {
        MountStack { stacked: 1, peer_group: None }
    }
}

impl MountStack {
    fn single(n: &u32) -> bool {
        *n <= 1
    }
}

/// Why a namespace is alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NsState {
    /// Some task uses it (incl. as pid_for_children / time_for_children).
    Active,
    /// No task; pinned by an nsfs bind mount.
    Mounted,
    /// No task, no mount; an open nsfs fd holds it.
    FdOnly,
    /// Alive in the kernel, but no task, fd or mount holds it: kernel
    /// references (an owned namespace, a socket, ...).
    Orphaned,
    /// No reference left; the kernel's teardown has not finished (a network
    /// namespace queued for or inside `cleanup_net`).
    Dying,
}

impl NsState {
    pub fn name(self) -> &'static str {
        match self {
            NsState::Active => "active",
            NsState::Mounted => "mounted",
            NsState::FdOnly => "fd-only",
            NsState::Orphaned => "orphaned",
            NsState::Dying => "dying",
        }
    }

    pub fn of(holders: &[Holder]) -> NsState {
        let has = |f: fn(&Holder) -> bool| holders.iter().any(f);
        if has(|h| matches!(h, Holder::Task { .. })) {
            NsState::Active
        } else if has(|h| matches!(h, Holder::Mount { .. })) {
            NsState::Mounted
        } else if has(|h| matches!(h, Holder::Fd { .. })) {
            NsState::FdOnly
        } else {
            NsState::Orphaned
        }
    }
}

/// What a snapshot shows of one namespace: the `ls --json` and
/// `/namespaces` row (field names are a stable interface). Lists are boxed
/// slices and the command a boxed str: exact-size, two words each, as one
/// is kept per namespace (100,000s of them).
#[derive(Clone, Debug, Serialize)]
pub struct NsRow {
    /// The kernel's never-reused namespace id (6.18+ or NS_GET_ID).
    pub id: Option<u64>,
    pub inode: u64,
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub state: NsState,
    /// Number of processes holding it as a task.
    pub tasks: u32,
    pub pids: Box<[u32]>,
    pub holders: Box<[Holder]>,
    /// `ns_common.__ns_ref` (kernel source only).
    pub refcount: Option<u32>,
    /// `ns_common.__ns_ref_active` (6.19+, kernel source): the tasks, fds
    /// and mounts using it as the kernel counts them; 0 is the kernel's own
    /// word that nothing but kernel references keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_refs: Option<u32>,
    /// Inode of the owning user namespace (for user namespaces: the parent).
    pub owner: Option<u64>,
    /// Inode of the parent namespace (pid and user namespaces).
    pub parent: Option<u64>,
    /// Nesting level (pid and user namespaces).
    pub level: Option<u32>,
    /// `ip netns` names.
    pub names: Box<[String]>,
    /// Command of the first task.
    pub command: Option<Box<str>>,
    /// Containers whose tasks use it (from their cgroup paths).
    pub containers: Box<[Container]>,
    /// Its processes outside any container (the host's): a namespace the
    /// host shares with containers belongs to none of them.
    pub host_tasks: u32,
    /// The host uid the kernel charges it to (the creator's euid), where
    /// read (6.18+ walk).
    /// (`Charge::UNKNOWN` where not read: no Option, the row stays small.)
    #[serde(rename = "charged_uid", serialize_with = "charge_uid", skip_serializing_if = "Charge::is_unknown")]
    pub charge: Charge,
    /// User namespaces: their entry's counts in the parent and their limits.
    #[serde(skip)]
    pub user_charges: Option<Box<UserNsCharges>>,
    /// Set while it is dying (state `dying`). Boxed: rarely set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dying: Option<Box<Dying>>,
}

fn charge_uid<S: serde::Serializer>(c: &Charge, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(c.uid)
}

impl NsRow {
    /// A row with nothing known but its identity (state: orphaned).
    pub fn new(ns_type: NsType, inode: u64) -> NsRow {
        NsRow {
            id: None,
            inode,
            ns_type,
            state: NsState::Orphaned,
            tasks: 0,
            pids: Box::default(),
            holders: Box::default(),
            refcount: None,
            active_refs: None,
            owner: None,
            parent: None,
            level: None,
            names: Box::default(),
            command: None,
            containers: Box::default(),
            host_tasks: 0,
            charge: Charge::UNKNOWN,
            user_charges: None,
            dying: None,
        }
    }

    /// The container this namespace belongs to by its tasks: the one
    /// container every task in it is in. None when no task is in a
    /// container, or when it is shared (see [`NsRow::shared_by`]).
    pub fn sole_container(&self) -> Option<&Container> {
        match &*self.containers {
            [only] if self.host_tasks == 0 => Some(only),
            _ => None,
        }
    }

    /// How many containers share it, when it is shared: by several
    /// containers, or by the host and containers (the host's own user,
    /// cgroup or time namespace, used by a container too).
    pub fn shared_by(&self) -> Option<usize> {
        (self.containers.len() > 1 || (self.host_tasks > 0 && !self.containers.is_empty()))
            .then_some(self.containers.len())
    }

    /// What the kernel charges it to, where the walk read it.
    pub fn charged(&self) -> Option<Charge> {
        (!self.charge.is_unknown()).then_some(self.charge)
    }

    /// Its key, with its id where known.
    pub fn key(&self) -> NsKey {
        NsKey::new(self.ns_type, self.inode).with_id(self.id)
    }
}

/// Who made a namespace, when a hook saw it happen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Creator {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cause: crate::events::Cause,
    pub flags: u64,
    /// Executable, command line, cgroup and container, read from /proc
    /// when the record arrived (`serve` and `live` only).
    #[serde(flatten)]
    pub origin: Origin,
}

impl Creator {
    /// The creating process (its thread group).
    pub fn process(&self) -> Process {
        Process::new(&*self.comm, self.pid)
    }
}

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
                Holder::Task { .. } => None,
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

/// Everything nstrace knows of one namespace: the snapshot row plus what
/// only events tell (creation, creator, changes, death). The store owns
/// these; views read them.
#[derive(Clone, Debug, Serialize)]
pub struct Namespace {
    #[serde(flatten)]
    pub row: NsRow,
    /// When it was created, if nstrace saw it.
    pub created: Option<UnixTime>,
    /// Boxed: most namespaces predate nstrace and have none (saves bytes per row).
    pub creator: Option<Box<Creator>>,
    /// When nstrace first saw it (its start, for older namespaces).
    pub first_seen: UnixTime,
    /// When the last change seen happened.
    pub last_change: UnixTime,
    /// When it was destroyed (the record is kept for a while).
    pub destroyed: Option<UnixTime>,
    /// The latest events about it, oldest first (bounded by the store).
    #[serde(skip)]
    pub history: History,
    /// Mounts and fds that pinned it, with who and when.
    #[serde(skip_serializing_if = "Pins::is_empty")]
    pub pins: Pins,
    /// Containers whose tasks were seen in it, named where the runtime says.
    #[serde(skip_serializing_if = "SeenIn::is_empty")]
    pub seen_in: SeenIn,
}

/// A namespace's latest events, oldest first. Most namespaces have none,
/// so an empty history costs one word.
// Boxed: an empty VecDeque is four words, `None` one; thin-vec has no ring buffer.
#[expect(clippy::box_collection, reason = "None is one word; most namespaces have none")]
#[derive(Clone, Debug, Default)]
pub struct History(Option<Box<VecDeque<Event>>>);

impl History {
    /// Appends `e`, keeping at most `cap` events (the newest).
    pub fn push(&mut self, e: Event, cap: usize) {
        if cap == 0 {
            return;
        }
        let q = self.0.get_or_insert_with(Default::default);
        while q.len() >= cap {
            q.pop_front();
        }
        q.push_back(e);
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Event> {
        self.0.as_deref().into_iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn back(&self) -> Option<&Event> {
        self.0.as_ref()?.back()
    }
}

impl Namespace {
    /// A namespace first seen at `now`, with nothing known of its creation.
    pub fn seen(row: NsRow, now: UnixTime) -> Namespace {
        Namespace {
            row,
            created: None,
            creator: None,
            first_seen: now,
            last_change: now,
            destroyed: None,
            history: History::default(),
            pins: Pins::default(),
            seen_in: SeenIn::default(),
        }
    }

    pub fn key(&self) -> NsKey {
        self.row.key()
    }

    /// Seconds since creation (until death), when known.
    pub fn age(&self, now: UnixTime) -> Option<f64> {
        self.created.map(|c| (self.destroyed.unwrap_or(now) - c).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_its_lists_one_word_each() {
        let word = size_of::<usize>();
        assert_eq!((size_of::<SeenIn>(), size_of::<Pins>(), size_of::<History>()), (word, word, word));
        // 256 before the kernel's charge (8 bytes), a user namespace's limits
        // and a dying one's teardown (boxed: 8 each).
        assert_eq!(size_of::<Namespace>(), 280);
    }
}

//! The data model: one [`Namespace`] record per namespace, its holders and
//! state. Shared by snapshots, the store and every view; no I/O here.

use std::collections::VecDeque;

use nstrace_common::ns::NsType;
use serde::Serialize;

use crate::{containers::Container, events::Event, origin::Origin, time::UnixTime};

mod charge;
mod dying;
mod key;
mod pins;
mod process;
pub use self::{
    charge::{Charge, UserNsCharges},
    dying::{Dying, TeardownStage},
    key::NsKey,
    pins::{Attribution, Pin, PinKind, Pins, SeenIn},
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
    /// A socket of this net namespace, open in a process of another one
    /// (read in the kernel by the fd walk). It keeps the namespace alive
    /// but is no task, fd or mount: the state stays orphaned/inactive.
    Socket {
        pid: u32,
        fd: i32,
        comm: Comm,
        /// The socket's inode (`socket:[N]` in /proc/PID/fd).
        socket: u64,
    },
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
    /// Orphaned, and the kernel (6.19+) agrees: its count of the tasks,
    /// nsfs files, mounts and child namespaces using it is 0, so `listns(2)`
    /// leaves it out. A socket, a cred or another kernel reference keeps it.
    Inactive,
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
            NsState::Inactive => "inactive",
            NsState::Dying => "dying",
        }
    }

    pub const ALL: [NsState; 6] =
        [NsState::Active, NsState::Mounted, NsState::FdOnly, NsState::Orphaned, NsState::Inactive, NsState::Dying];

    /// The state of a live namespace with these `holders` and the kernel's
    /// active count (6.19+; None before), which tells an inactive
    /// namespace from an orphaned one the kernel still counts users of.
    pub fn of_live(holders: &[Holder], active_refs: Option<u32>) -> NsState {
        match NsState::of(holders) {
            NsState::Orphaned if active_refs == Some(0) => NsState::Inactive,
            state => state,
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

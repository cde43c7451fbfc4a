//! The events nstrace reports to users, built from decoded records.

use nstrace_common::{
    event::{NsRef, create_cause},
    ns::{CLONE_NEW_MASK, NsType, SLOT_NAMES, SLOT_TYPES, TASK_NS_SLOTS},
};
use serde::Serialize;

use crate::time::UnixTime;

/// A namespace named by id and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NsIds {
    pub id: u64,
    pub inode: u64,
}

impl NsIds {
    pub fn of(r: &NsRef) -> Option<NsIds> {
        (r.inum != 0).then_some(NsIds { id: r.id, inode: u64::from(r.inum) })
    }
}

/// One namespace of a task in a `namespaces` event ({dev, inode}, as perf).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PerfNs {
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub dev: u64,
    pub inode: u64,
}

/// A namespace a syscall moved the caller into.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NsChange {
    #[serde(rename = "type")]
    pub ns_type: NsType,
    /// Which slot changed: the type name, or pid_for_children / time_for_children.
    pub slot: &'static str,
    pub id: u64,
    pub inode: u64,
}

/// Everything `nstrace trace` can print. Field names are stable.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    Create {
        time: UnixTime,
        pid: u32,
        tid: u32,
        comm: String,
        #[serde(rename = "type")]
        ns_type: NsType,
        id: u64,
        inode: u64,
        owner: Option<NsIds>,
        parent: Option<NsIds>,
        level: Option<u32>,
        /// fork, unshare, setns, exec, or walk (first seen by the periodic walk).
        cause: Cause,
        flags: u64,
        flags_text: CloneFlags,
    },
    Destroy {
        time: UnixTime,
        #[serde(rename = "type")]
        ns_type: NsType,
        id: u64,
        inode: u64,
        /// Seconds from creation, when nstrace saw it created.
        lifetime: Option<f64>,
        creator_pid: Option<u32>,
        /// The mechanism that saw it die (a kernel hook, or the walk or
        /// /proc re-scan that no longer found it).
        via: DeathVia,
        /// Seconds it was dying: from its last reference to the end of the
        /// kernel's teardown (network namespaces, where tracked).
        #[serde(skip_serializing_if = "Option::is_none")]
        teardown: Option<f64>,
    },
    /// Its last reference went; the kernel's teardown has not finished (a
    /// network namespace queued for or inside `cleanup_net`).
    Dying {
        time: UnixTime,
        #[serde(rename = "type")]
        ns_type: NsType,
        id: u64,
        inode: u64,
        /// queued (for the kernel's cleanup worker) or cleanup (taken by a run).
        stage: crate::model::TeardownStage,
    },
    Setns {
        time: UnixTime,
        pid: u32,
        tid: u32,
        comm: String,
        fd: i32,
        /// nsfs, pidfd, or unknown.
        fd_kind: &'static str,
        flags: u64,
        flags_text: CloneFlags,
        result: i64,
        errno: Option<&'static str>,
        joined: Vec<NsChange>,
    },
    Unshare {
        time: UnixTime,
        pid: u32,
        tid: u32,
        comm: String,
        flags: u64,
        flags_text: CloneFlags,
        result: i64,
        errno: Option<&'static str>,
        new: Vec<NsChange>,
    },
    Clone {
        time: UnixTime,
        pid: u32,
        tid: u32,
        comm: String,
        child_pid: u32,
        child_tid: u32,
        flags: u64,
        flags_text: CloneFlags,
        types: Vec<NsType>,
    },
    Namespaces {
        time: UnixTime,
        pid: u32,
        tid: u32,
        comm: String,
        /// fork, exec, setns or unshare.
        cause: Cause,
        namespaces: Vec<PerfNs>,
        /// For a fork: the forking process and thread (perf's FORK record).
        #[serde(skip)]
        forked_by: Option<(u32, u32)>,
    },
    /// A task exited (only when every task is reported: `trace --perf-data`
    /// or `--event exit`).
    Exit {
        time: UnixTime,
        pid: u32,
        tid: u32,
        comm: String,
        parent_pid: u32,
    },
    /// A bind mount (or move_mount) was made: it may pin a namespace.
    Mount {
        time: UnixTime,
        pid: u32,
        tid: u32,
        comm: String,
        parent_pid: u32,
        parent_comm: String,
        /// mount or move_mount.
        syscall: &'static str,
        flags: u64,
        /// The caller's mount namespace (inode).
        mnt_ns: u64,
        /// The target as the caller passed it.
        target: String,
        /// The target with symlinks resolved, when nstrace could (and it differs).
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// A namespace-creating syscall failed with ENOSPC or EUSERS, and why.
    Refused {
        time: UnixTime,
        pid: u32,
        tid: u32,
        comm: String,
        /// The caller's euid (host uid): what the kernel charges.
        uid: u32,
        /// unshare, clone or clone3.
        syscall: &'static str,
        flags: u64,
        flags_text: CloneFlags,
        errno: &'static str,
        /// The types asked for.
        types: Vec<NsType>,
        reason: crate::refusal::RefusalReason,
        /// The reason in words.
        text: String,
        /// What lists the namespaces that count against the full level.
        #[serde(skip_serializing_if = "Option::is_none")]
        explain: Option<String>,
        /// The caller's container (from its cgroup, read when the record arrived).
        #[serde(skip_serializing_if = "Option::is_none")]
        container: Option<String>,
    },
    Lost {
        time: UnixTime,
        /// The record kind that could not be reserved.
        kind: &'static str,
        /// Newly lost since the last report.
        count: u64,
        total: u64,
    },
    Resync {
        time: UnixTime,
        reason: String,
        namespaces: usize,
        created: usize,
        destroyed: usize,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Create { .. } => "create",
            Event::Destroy { .. } => "destroy",
            Event::Dying { .. } => "dying",
            Event::Setns { .. } => "setns",
            Event::Unshare { .. } => "unshare",
            Event::Clone { .. } => "clone",
            Event::Namespaces { .. } => "namespaces",
            Event::Exit { .. } => "exit",
            Event::Mount { .. } => "mount",
            Event::Refused { .. } => "refused",
            Event::Lost { .. } => "lost",
            Event::Resync { .. } => "resync",
        }
    }

    pub fn time(&self) -> Option<UnixTime> {
        Some(match self {
            Event::Create { time, .. }
            | Event::Destroy { time, .. }
            | Event::Dying { time, .. }
            | Event::Setns { time, .. }
            | Event::Unshare { time, .. }
            | Event::Clone { time, .. }
            | Event::Namespaces { time, .. }
            | Event::Exit { time, .. }
            | Event::Mount { time, .. }
            | Event::Refused { time, .. }
            | Event::Lost { time, .. }
            | Event::Resync { time, .. } => *time,
        })
    }

    /// The process and thread the event is about, when there is one.
    pub fn pid_tid(&self) -> Option<(u32, u32)> {
        match self {
            Event::Create { pid, tid, .. }
            | Event::Setns { pid, tid, .. }
            | Event::Unshare { pid, tid, .. }
            | Event::Clone { pid, tid, .. }
            | Event::Mount { pid, tid, .. }
            | Event::Namespaces { pid, tid, .. }
            | Event::Refused { pid, tid, .. }
            | Event::Exit { pid, tid, .. } => Some((*pid, *tid)),
            _ => None,
        }
    }

    /// The process the event is about, when there is one.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Event::Create { pid, .. }
            | Event::Setns { pid, .. }
            | Event::Unshare { pid, .. }
            | Event::Clone { pid, .. }
            | Event::Mount { pid, .. }
            | Event::Refused { pid, .. }
            | Event::Exit { pid, .. }
            | Event::Namespaces { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    pub fn comm(&self) -> Option<&str> {
        match self {
            Event::Create { comm, .. }
            | Event::Setns { comm, .. }
            | Event::Unshare { comm, .. }
            | Event::Clone { comm, .. }
            | Event::Mount { comm, .. }
            | Event::Refused { comm, .. }
            | Event::Exit { comm, .. }
            | Event::Namespaces { comm, .. } => Some(comm),
            _ => None,
        }
    }

    /// Namespace types the event concerns (empty: not type-specific).
    pub fn types(&self) -> Vec<NsType> {
        match self {
            Event::Create { ns_type, .. } | Event::Destroy { ns_type, .. } | Event::Dying { ns_type, .. } => {
                vec![*ns_type]
            }
            Event::Setns { joined, flags, .. } => {
                let mut t: Vec<NsType> = joined.iter().map(|c| c.ns_type).collect();
                t.extend(types_in_flags(*flags));
                t
            }
            Event::Unshare { flags, .. } | Event::Clone { flags, .. } | Event::Refused { flags, .. } => {
                types_in_flags(*flags)
            }
            Event::Namespaces { .. } => NsType::ALL.to_vec(),
            Event::Lost { .. } | Event::Resync { .. } | Event::Mount { .. } | Event::Exit { .. } => Vec::new(),
        }
    }
}

/// Namespace types whose CLONE_NEW* bit is set in `flags`.
pub fn types_in_flags(flags: u64) -> Vec<NsType> {
    NsType::ALL.into_iter().filter(|t| flags & t.clone_flag() != 0).collect()
}

/// "CLONE_NEWNET|CLONE_NEWUTS" (only the namespace bits; others as hex).
pub fn flags_text(flags: u64) -> String {
    CloneFlags(flags).to_string()
}

/// Clone flags that print as [`flags_text`] does, built only when printed
/// or serialized: most events are never shown as text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloneFlags(pub u64);

impl std::fmt::Display for CloneFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut std::fmt::Formatter<'_>| {
            let s = if first { "" } else { "|" };
            first = false;
            f.write_str(s)
        };
        for t in NsType::ALL.into_iter().filter(|t| self.0 & t.clone_flag() != 0) {
            sep(f)?;
            match t {
                NsType::Mnt => f.write_str("CLONE_NEWNS")?,
                other => write!(f, "CLONE_NEW{}", other.name().to_uppercase())?,
            }
        }
        let rest = self.0 & !CLONE_NEW_MASK;
        if rest != 0 {
            sep(f)?;
            write!(f, "{rest:#x}")?;
        }
        if self.0 == 0 { f.write_str("0") } else { Ok(()) }
    }
}

impl Serialize for CloneFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a namespace came to be (a create event's, a creator's `cause`), or
/// what made a task report its namespaces (a `namespaces` event's): the
/// same kebab-case names in the JSON, the text and the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[derive(strum::IntoStaticStr, strum::EnumIter, strum::EnumString, strum::Display)]
#[strum(serialize_all = "kebab-case")]
pub enum Cause {
    Fork,
    Unshare,
    Setns,
    Exec,
    /// The 6.18+ namespace tree hook saw it added (the syscall may say how later).
    NsTreeAdd,
    /// A namespace constructor's hook saw it made (the syscall may say how later).
    Constructor,
    /// First seen by a walk or snapshot: its creation was not seen.
    Walk,
    /// Read back from a database row that names no cause nstrace knows.
    Unknown,
}

impl Cause {
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The cause a create record carries (`create_cause`).
    pub fn of_record(cause: u32) -> Cause {
        match create_cause::base(cause) {
            create_cause::FORK => Cause::Fork,
            create_cause::UNSHARE => Cause::Unshare,
            create_cause::SETNS => Cause::Setns,
            create_cause::EXEC => Cause::Exec,
            create_cause::NS_TREE_ADD => Cause::NsTreeAdd,
            create_cause::CONSTRUCTOR => Cause::Constructor,
            _ => Cause::Unknown,
        }
    }

    /// A name read back (the database, a service's JSON).
    pub fn of_name(name: &str) -> Cause {
        name.parse().unwrap_or(Cause::Unknown)
    }

    /// A kernel hook saw the namespace made before the syscall that asked
    /// for it could say how: that syscall's event names the real cause.
    pub fn awaits_syscall(self) -> bool {
        matches!(self, Cause::Constructor | Cause::NsTreeAdd)
    }
}

/// How a namespace's death was seen: the destroy mechanism that saw it
/// (as `--mechanism` and `doctor` name it), or why a restarted `serve`
/// closed its row. The same names in the JSON, the text and the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[derive(strum::IntoStaticStr, strum::EnumIter, strum::EnumString, strum::Display)]
#[strum(serialize_all = "kebab-case")]
pub enum DeathVia {
    FentryNsTree,
    FentryFreeInum,
    KprobeFreeInum,
    TreeWalk,
    ProcRescan,
    /// The listns(2) snapshot no longer listed it.
    Listns,
    /// `serve` was not running when it died: found gone at the restart.
    WhileNstraceWasDown,
    /// Recorded in an earlier boot.
    Reboot,
    /// Before 6.18, nothing proved the inode alive at a restart was the
    /// same namespace: its row was closed, a new one opened.
    IdentityUnknown,
    /// A create record for its inode arrived while it was still listed:
    /// the inode was freed and reused before its death was seen.
    InodeReused,
}

impl DeathVia {
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// A name read back from the database (None: none, or one this build does not know).
    pub fn of_name(name: &str) -> Option<DeathVia> {
        name.parse().ok()
    }
}

impl From<crate::kernel::mechanism::Destroy> for DeathVia {
    fn from(d: crate::kernel::mechanism::Destroy) -> DeathVia {
        use crate::kernel::mechanism::Destroy;
        match d {
            Destroy::FentryNsTree => DeathVia::FentryNsTree,
            Destroy::FentryFreeInum => DeathVia::FentryFreeInum,
            Destroy::KprobeFreeInum => DeathVia::KprobeFreeInum,
            Destroy::TreeWalk => DeathVia::TreeWalk,
            Destroy::ProcRescan => DeathVia::ProcRescan,
        }
    }
}

pub fn errno_name(ret: i64) -> Option<&'static str> {
    if ret >= 0 {
        return None;
    }
    Some(match -ret as i32 {
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EUSERS => "EUSERS",
        libc::ENOSPC => "ENOSPC",
        libc::ESRCH => "ESRCH",
        libc::EAGAIN => "EAGAIN",
        libc::ENOSYS => "ENOSYS",
        _ => "E?",
    })
}

use nstrace_common::ns::NSFS_MAGIC;
const PIDFS_MAGIC: u32 = 0x5049_4446;
/// Before pidfs (6.9), pidfds lived on the anonymous-inode filesystem.
const ANON_INODE_FS_MAGIC: u32 = 0x0904_1934;

pub fn fd_kind(magic: u32) -> &'static str {
    match magic {
        NSFS_MAGIC => "nsfs",
        PIDFS_MAGIC | ANON_INODE_FS_MAGIC => "pidfd",
        _ => "unknown",
    }
}

/// Slots whose namespace differs between `before` and `after`.
pub fn changes(before: &[NsRef; TASK_NS_SLOTS], after: &[NsRef; TASK_NS_SLOTS]) -> Vec<NsChange> {
    (0..TASK_NS_SLOTS)
        .filter(|&i| after[i].inum != 0 && (before[i].inum, before[i].id) != (after[i].inum, after[i].id))
        .map(|i| NsChange {
            ns_type: SLOT_TYPES[i],
            slot: SLOT_NAMES[i],
            id: after[i].id,
            inode: u64::from(after[i].inum),
        })
        .collect()
}

/// perf's order (net, uts, ipc, pid, user, mnt, cgroup) plus time.
pub fn perf_namespaces(ns: &[NsRef; TASK_NS_SLOTS], dev: u64) -> Vec<PerfNs> {
    NsType::ALL.into_iter().map(|t| PerfNs { ns_type: t, dev, inode: u64::from(ns[t as usize].inum) }).collect()
}

mod build;
pub use build::from_record;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names() {
        assert_eq!(flags_text(0x4000_0000 | 0x0400_0000), "CLONE_NEWNET|CLONE_NEWUTS");
        assert_eq!(flags_text(0x0002_0000), "CLONE_NEWNS");
        assert_eq!(flags_text(0x11), "0x11");
        assert_eq!(flags_text(0), "0");
        assert_eq!(flags_text(0x0002_0000 | 0x11), "CLONE_NEWNS|0x11");
        assert_eq!(serde_json::to_value(CloneFlags(0x0400_0000)).unwrap(), "CLONE_NEWUTS");
        assert_eq!(types_in_flags(0x80 | 0x2000_0000), vec![NsType::Pid, NsType::Time]);
    }

    #[test]
    fn changes_name_slots() {
        let mut before = [NsRef::default(); TASK_NS_SLOTS];
        before[0] = NsRef { id: 3, inum: 10, _reserved: 0 };
        let mut after = before;
        after[0] = NsRef { id: 9, inum: 11, _reserved: 0 };
        after[8] = NsRef { id: 12, inum: 13, _reserved: 0 };
        let c = changes(&before, &after);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].slot, c[0].id), ("net", 9));
        assert_eq!((c[1].ns_type, c[1].slot), (NsType::Pid, "pid_for_children"));
    }

    #[test]
    fn fd_kinds() {
        assert_eq!(fd_kind(0x6e73_6673), "nsfs");
        assert_eq!(fd_kind(0x5049_4446), "pidfd");
        assert_eq!(fd_kind(0), "unknown");
    }
}

#[cfg(test)]
mod domain_word_tests {
    use strum::IntoEnumIterator;

    /// Each domain word has one name, the same in the JSON (serde), the
    /// text and the database (`name`/`of_name`).
    fn one_name_each<T: IntoEnumIterator + serde::Serialize + Copy + PartialEq + std::fmt::Debug>(
        name: impl Fn(T) -> &'static str,
        back: impl Fn(&str) -> Option<T>,
    ) {
        for v in T::iter() {
            assert_eq!(serde_json::to_value(v).unwrap(), name(v), "{v:?}");
            assert_eq!(back(name(v)), Some(v), "{v:?}");
        }
    }

    #[test]
    fn domain_words_have_one_name_each() {
        use super::{Cause, DeathVia};
        use crate::{containers::Runtime, model::Attribution};
        one_name_each(Cause::name, |n| Some(Cause::of_name(n)));
        one_name_each(DeathVia::name, DeathVia::of_name);
        one_name_each(Attribution::name, |n| Some(Attribution::of_name(n)));
        one_name_each(Runtime::name, |n| Some(Runtime::of_name(n)));
        assert_eq!(Runtime::CriO.name(), "cri-o");
        assert_eq!(DeathVia::WhileNstraceWasDown.to_string(), "while-nstrace-was-down");
        assert_eq!((Cause::of_name("bogus"), DeathVia::of_name("bogus")), (Cause::Unknown, None));
    }
}

#[cfg(test)]
mod exit_tests {
    use nstrace_common::{
        decode::Record,
        event::{EventHeader, EventKind, TaskNsEvent},
    };

    use super::*;

    /// An exit record is an `exit` event only when exits are asked for
    /// (otherwise it is one that may end namespaces: a hint, no event).
    #[test]
    fn an_exit_is_an_event_only_when_asked_for() {
        let t = TaskNsEvent {
            header: EventHeader { kind: EventKind::Exit as u32, size: 0, ts_ns: 5, tgid: 42, tid: 43 },
            subject_tgid: 42,
            subject_tid: 43,
            parent_tgid: 1,
            flags: 0,
            threads: 0,
            _reserved: 0,
            cgroup_id: 0,
            comm: *b"sleep\0\0\0\0\0\0\0\0\0\0\0",
            ns: [NsRef::default(); TASK_NS_SLOTS],
        };
        let clock = crate::time::Clock::with_offset(0.0);
        let events = |exits| {
            let mut out = Vec::new();
            from_record(&Record::Task(t), &clock, 4, exits, |_| None, &mut out);
            out
        };
        assert!(events(false).is_empty());
        match &events(true)[..] {
            [Event::Exit { pid: 42, tid: 43, parent_pid: 1, comm, .. }] => assert_eq!(comm, "sleep"),
            other => panic!("{other:?}"),
        }
    }
}

//! Namespace types with stable numeric ids.

/// The eight namespace types. The numbering follows perf's
/// `PERF_RECORD_NAMESPACES` index order (net, uts, ipc, pid, user, mnt,
/// cgroup) with time appended; it is part of the wire format.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "user", serde(rename_all = "lowercase"))]
pub enum NsType {
    Net = 0,
    Uts = 1,
    Ipc = 2,
    Pid = 3,
    User = 4,
    Mnt = 5,
    Cgroup = 6,
    Time = 7,
}

/// Number of namespace types.
pub const NS_TYPES: usize = 8;

impl NsType {
    pub const ALL: [NsType; NS_TYPES] =
        [NsType::Net, NsType::Uts, NsType::Ipc, NsType::Pid, NsType::User, NsType::Mnt, NsType::Cgroup, NsType::Time];

    pub const fn from_u32(v: u32) -> Option<NsType> {
        Some(match v {
            0 => NsType::Net,
            1 => NsType::Uts,
            2 => NsType::Ipc,
            3 => NsType::Pid,
            4 => NsType::User,
            5 => NsType::Mnt,
            6 => NsType::Cgroup,
            7 => NsType::Time,
            _ => return None,
        })
    }

    /// The `CLONE_NEW*` bit the kernel stores in `ns_common.ns_type`.
    pub const fn clone_flag(self) -> u64 {
        match self {
            NsType::Net => 0x4000_0000,
            NsType::Uts => 0x0400_0000,
            NsType::Ipc => 0x0800_0000,
            NsType::Pid => 0x2000_0000,
            NsType::User => 0x1000_0000,
            NsType::Mnt => 0x0002_0000,
            NsType::Cgroup => 0x0200_0000,
            NsType::Time => 0x0000_0080,
        }
    }

    pub const fn from_clone_flag(flag: u64) -> Option<NsType> {
        let mut i = 0;
        while i < NS_TYPES {
            if Self::ALL[i].clone_flag() == flag {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// Name as used by `/proc/PID/ns/<name>` and `lsns`.
    pub const fn name(self) -> &'static str {
        match self {
            NsType::Net => "net",
            NsType::Uts => "uts",
            NsType::Ipc => "ipc",
            NsType::Pid => "pid",
            NsType::User => "user",
            NsType::Mnt => "mnt",
            NsType::Cgroup => "cgroup",
            NsType::Time => "time",
        }
    }
}

/// A set of namespace types (a bit per [`NsType`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsTypeSet(u8);

impl NsTypeSet {
    pub const EMPTY: NsTypeSet = NsTypeSet(0);
    pub const ALL: NsTypeSet = NsTypeSet(0xff);

    pub const fn of(ty: NsType) -> NsTypeSet {
        NsTypeSet(1 << ty as u8)
    }

    pub const fn with(self, ty: NsType) -> NsTypeSet {
        NsTypeSet(self.0 | 1 << ty as u8)
    }

    pub const fn union(self, other: NsTypeSet) -> NsTypeSet {
        NsTypeSet(self.0 | other.0)
    }

    pub const fn contains(self, ty: NsType) -> bool {
        self.0 & 1 << ty as u8 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = NsType> {
        NsType::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

/// Inode of the initial time namespace (the kernel's `PROC_TIME_INIT_INO`,
/// include/linux/proc_ns.h: fixed since time namespaces came in 5.6).
pub const PROC_TIME_INIT_INO: u32 = 0xEFFF_FFFA;

/// All `CLONE_NEW*` bits together.
pub const CLONE_NEW_MASK: u64 =
    0x4000_0000 | 0x0400_0000 | 0x0800_0000 | 0x2000_0000 | 0x1000_0000 | 0x0002_0000 | 0x0200_0000 | 0x0000_0080;

/// Slots of a task's namespace set, as carried in [`crate::event::TaskNsEvent`].
/// The first eight are indexed by [`NsType`] (the task's own namespaces;
/// pid is the task's active pid namespace, time its active time namespace),
/// followed by the two "for children" namespaces of `nsproxy`.
pub const SLOT_PID_FOR_CHILDREN: usize = 8;
pub const SLOT_TIME_FOR_CHILDREN: usize = 9;
pub const TASK_NS_SLOTS: usize = 10;

/// Namespace type of each slot of a task's namespace set: [`NsType::ALL`],
/// then the pid and time "for children" slots.
pub const SLOT_TYPES: [NsType; TASK_NS_SLOTS] = {
    let mut t = [NsType::Pid; TASK_NS_SLOTS];
    let mut i = 0;
    while i < NS_TYPES {
        t[i] = NsType::ALL[i];
        i += 1;
    }
    t[SLOT_PID_FOR_CHILDREN] = NsType::Pid;
    t[SLOT_TIME_FOR_CHILDREN] = NsType::Time;
    t
};

/// Name of each slot (as in /proc/PID/ns/).
pub const SLOT_NAMES: [&str; TASK_NS_SLOTS] = {
    let mut n = [""; TASK_NS_SLOTS];
    let mut i = 0;
    while i < NS_TYPES {
        n[i] = NsType::ALL[i].name();
        i += 1;
    }
    n[SLOT_PID_FOR_CHILDREN] = "pid_for_children";
    n[SLOT_TIME_FOR_CHILDREN] = "time_for_children";
    n
};

/// The one identity of a namespace, on both sides of the ring buffer: its
/// `ns_id` where the kernel has ids (6.18+, never reused), else its type and
/// nsfs inode with the top bit set (inodes are reused at once, so such a key
/// names a namespace only while it lives). `ns_type` is an [`NsType`] index.
#[inline(always)]
pub const fn ns_key(id: u64, ns_type: u32, inum: u32) -> u64 {
    if id != 0 { id } else { (1 << 63) | ((ns_type as u64) << 32) | inum as u64 }
}

/// Whether a [`ns_key`] is a never-reused ns_id (not a type+inode key).
#[inline(always)]
pub const fn key_has_id(key: u64) -> bool {
    key & (1 << 63) == 0
}

/// `NSFS_MAGIC` (include/uapi/linux/magic.h): the superblock magic of
/// nsfs, the filesystem of `/proc/PID/ns/*` files.
pub const NSFS_MAGIC: u32 = 0x6e73_6673;
/// `SOCKFS_MAGIC`: the superblock magic of sockets' inodes (the fd walk's
/// socket holders).
pub const SOCKFS_MAGIC: u32 = 0x534F_434B;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_named_as_proc_names_the_links() {
        assert_eq!(
            SLOT_NAMES,
            ["net", "uts", "ipc", "pid", "user", "mnt", "cgroup", "time", "pid_for_children", "time_for_children"]
        );
    }

    #[test]
    fn keys_prefer_ids_and_keep_types_apart_without_them() {
        assert_eq!(ns_key(42, NsType::Net as u32, 7), 42);
        let net = ns_key(0, NsType::Net as u32, 7);
        let uts = ns_key(0, NsType::Uts as u32, 7);
        assert_ne!(net, uts);
        assert_ne!(net, ns_key(0, NsType::Net as u32, 8));
        // Never collides with a real id (ids are small counters).
        assert!(!key_has_id(net) && !key_has_id(uts) && key_has_id(42));
    }
}

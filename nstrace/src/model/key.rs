//! [`NsKey`]: how user space names a namespace, in the store, the holder
//! scans, the engine and the provenance database alike.

use std::num::NonZeroU64;

use nstrace_common::ns::{NsType, ns_key};
use serde::Serialize;

/// A namespace: its type and nsfs inode, with the kernel's never-reused
/// `ns_id` where known (6.18+, or NS_GET_ID). Inodes are reused at once
/// after a namespace dies, so a key without an id names a namespace only
/// at one moment. /proc knows no ids: its keys (the holder scans') have
/// none, and a record is found there by [`NsKey::without_id`].
///
/// Records carry 32-bit inodes and 0 for "no id"; they become keys here,
/// once, as they are decoded ([`NsKey::of_record`]), and go back only for
/// the eBPF side's map ([`NsKey::wire`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NsKey {
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub inode: u64,
    #[serde(skip)]
    id: Option<NonZeroU64>,
}

impl NsKey {
    /// A namespace known by type and inode only.
    pub const fn new(ns_type: NsType, inode: u64) -> NsKey {
        NsKey { ns_type, inode, id: None }
    }

    /// The same namespace with its kernel id (`None` keeps none).
    pub fn with_id(self, id: Option<u64>) -> NsKey {
        NsKey { id: id.and_then(NonZeroU64::new), ..self }
    }

    /// A record's namespace: its id (0: none) and 32-bit inode.
    pub fn of_record(ns_type: NsType, id: u64, inum: u32) -> NsKey {
        NsKey::new(ns_type, u64::from(inum)).with_id(Some(id))
    }

    pub fn id(self) -> Option<u64> {
        self.id.map(NonZeroU64::get)
    }

    /// Whether the key carries the never-reused id (not type+inode alone).
    pub fn has_id(self) -> bool {
        self.id.is_some()
    }

    /// The key as /proc knows it (type+inode).
    pub fn without_id(self) -> NsKey {
        NsKey { id: None, ..self }
    }

    /// The inode as records carry it: nsfs inodes are 32-bit (`proc_inum`).
    pub fn inum(self) -> u32 {
        u32::try_from(self.inode).unwrap_or(u32::MAX)
    }

    /// The key of the eBPF side's map of known namespaces ([`ns_key`]).
    pub fn wire(self) -> u64 {
        ns_key(self.id().unwrap_or(0), self.ns_type as u32, self.inum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reaches_the_wire_as_the_ebpf_side_keys_it() {
        let plain = NsKey::of_record(NsType::Uts, 0, 7);
        assert_eq!((plain.id(), plain.inode, plain.has_id()), (None, 7, false));
        assert_eq!(plain.wire(), ns_key(0, NsType::Uts as u32, 7));
        let with_id = NsKey::of_record(NsType::Uts, 42, 7);
        assert_eq!((with_id.wire(), with_id.without_id()), (42, plain));
        assert_ne!(with_id, plain, "an id names the namespace for good");
        // The store keeps one per namespace in each of its maps.
        assert_eq!(size_of::<NsKey>(), 24);
    }
}

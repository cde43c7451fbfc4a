//! What the kernel charges a namespace to (kernel/ucount.c): every
//! namespace counts against its creator's euid in its owning user
//! namespace, and against each ancestor user namespace through the uid
//! that owns the child on the path. The tree walk (6.18+) reads the
//! kernel's own `struct ucounts`; elsewhere these stay unknown.

use nstrace_common::{
    event::{COUNT_UNKNOWN, NsInfoRecord, UID_UNKNOWN},
    ns::{NS_TYPES, NsType},
};
use serde::Serialize;

/// One namespace's charge: the host uid and the kernel's count of its type
/// in that (owner, uid) entry when the record was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Charge {
    /// The host uid charged: the creator's euid.
    pub uid: u32,
    /// The kernel's count of this namespace's type in its entry
    /// ([`COUNT_UNKNOWN`]: not read): a sentinel, not an Option, to keep
    /// the row small (one per namespace).
    #[serde(skip)]
    pub kernel_count: u32,
}

impl Charge {
    /// Not read (before 6.18, or from /proc).
    pub const UNKNOWN: Charge = Charge { uid: UID_UNKNOWN, kernel_count: COUNT_UNKNOWN };

    pub fn is_unknown(&self) -> bool {
        self.uid == UID_UNKNOWN
    }

    /// The kernel's count of this namespace's type in its entry, if read.
    pub fn count(&self) -> Option<u32> {
        known(self.kernel_count)
    }
}

/// A user namespace's own entry in its parent (held by its owner's uid):
/// the kernel's count per type of everything charged through it, and the
/// limits inside it (`/proc/sys/user/max_*_namespaces` there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserNsCharges {
    pub counts: [Option<u32>; NS_TYPES],
    pub limits: [Option<u32>; NS_TYPES],
}

impl UserNsCharges {
    pub fn count(&self, t: NsType) -> Option<u32> {
        self.counts[t as usize]
    }

    pub fn limit(&self, t: NsType) -> Option<u32> {
        self.limits[t as usize]
    }
}

fn known(v: u32) -> Option<u32> {
    (v != COUNT_UNKNOWN).then_some(v)
}

impl Charge {
    /// The charge a snapshot record carries (None: not read).
    pub fn of_record(r: &NsInfoRecord, ty: NsType) -> Option<Charge> {
        (r.charged_uid != UID_UNKNOWN && r.charged != 0)
            .then(|| Charge { uid: r.charged_uid, kernel_count: r.charged_counts[ty as usize] })
    }
}

impl UserNsCharges {
    /// A user namespace record's counts and limits (None: not read).
    pub fn of_record(r: &NsInfoRecord) -> Option<Box<UserNsCharges>> {
        let limits = r.limits.map(known);
        limits
            .iter()
            .any(Option::is_some)
            .then(|| Box::new(UserNsCharges { counts: r.charged_counts.map(known), limits }))
    }
}

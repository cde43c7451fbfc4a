//! Namespace limits (`/proc/sys/user/max_*_namespaces`) and what counts
//! against them, from the store: one [`Level`] per user namespace, charged
//! host uid and type, with the kernel's own count where the walk read it
//! (6.18+) and the count derived from each namespace's owner chain and
//! charged uid. Read-only over the store; views render the result.
//!
//! The kernel (kernel/ucount.c `inc_ucount`) charges a new namespace to
//! `(owner, creator's euid)` and then, for each user namespace `U` on the
//! way up, to `(U's parent, U's owner uid)`; it refuses at the first level
//! whose count would pass that user namespace's limit.

use std::collections::HashMap;

use nstrace_common::ns::NsType;
use serde::Serialize;

use crate::{
    model::{Namespace, NsKey},
    procfs::userns::UserNsFacts,
    store::NsStore,
};

/// Deepest user namespace chain followed (the kernel allows 33 levels).
const MAX_CHAIN: usize = 40;

/// How the counts were obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountSource {
    /// The kernel's own `struct ucounts`, read by the tree walk (6.18+).
    Kernel,
    /// Derived from the namespaces nstrace sees (an estimate): the
    /// creator's euid was not read, so each namespace is taken to be
    /// charged to the owner uid of its owning user namespace.
    Derived,
}

/// One (user namespace, host uid, type): how many namespaces count against
/// that user namespace's limit for that uid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Level {
    /// Inode of the user namespace whose limit applies.
    pub user_ns: u64,
    pub user_ns_id: Option<u64>,
    /// Its nesting level (0: the host's).
    pub depth: Option<u32>,
    /// The host uid charged there; null where unknown.
    pub uid: Option<u32>,
    #[serde(rename = "type")]
    pub ns_type: NsType,
    /// The kernel's count, or the derived one where the kernel's is unknown.
    pub used: u32,
    /// Its limit there; null where unknown.
    pub limit: Option<u32>,
    /// `limit - used`; null where the limit is unknown.
    pub headroom: Option<i64>,
    pub kernel_used: Option<u32>,
    pub derived_used: u32,
    /// The namespaces counted here (derived), directly or through a user
    /// namespace below.
    #[serde(skip)]
    pub members: Vec<NsKey>,
}

impl Level {
    /// The `/proc/sys/user` file that sets this level's limit.
    pub fn sysctl(&self) -> String {
        sysctl_name(self.ns_type)
    }
}

/// `max_uts_namespaces` and the like.
pub fn sysctl_name(t: NsType) -> String {
    format!("max_{}_namespaces", t.name())
}

#[derive(Clone, Debug, Serialize)]
pub struct Deepest {
    pub user: u32,
    pub pid: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChargeTable {
    pub counts: CountSource,
    /// Closest to full first.
    pub levels: Vec<Level>,
    pub deepest: Deepest,
}

type LevelKey = (u64, Option<u32>, NsType);

/// The initial namespaces are never charged; where charges were not read,
/// the ones with a fixed inode (`PROC_*_INIT_INO`) are left out by it,
/// and the net and mount namespaces `facts` says are the host's.
fn initial(inode: u64, facts: &UserNsFacts) -> bool {
    (0xEFFF_FFFA..=0xEFFF_FFFF).contains(&inode) || facts.initial.contains(&inode)
}

/// The charge table of `store`'s live namespaces, from the kernel's
/// charges where the walk read them.
pub fn table(store: &NsStore) -> ChargeTable {
    table_with(store, &UserNsFacts::default())
}

/// [`table`], with owner uids and limits read from /proc (`facts`) for a
/// store whose walk read no charges (before 6.18).
pub fn table_with(store: &NsStore, facts: &UserNsFacts) -> ChargeTable {
    let users: HashMap<u64, &Namespace> =
        store.live().filter(|ns| ns.row.ns_type == NsType::User).map(|ns| (ns.row.inode, ns)).collect();
    let exact = store.live().any(|ns| ns.row.charged().is_some());
    let mut derived: HashMap<LevelKey, Vec<NsKey>> = HashMap::new();
    let mut kernel: HashMap<LevelKey, u32> = HashMap::new();
    for ns in store.live() {
        let row = &ns.row;
        let charged = match (exact, row.charged()) {
            (true, None) => continue,
            (false, _) if initial(row.inode, facts) => continue,
            _ => row.charged(),
        };
        let Some(owner) = row.owner else { continue };
        let uid0 = match charged {
            Some(c) => Some(c.uid),
            None => facts.owner_uid.get(&owner).copied(),
        };
        let level0 = (owner, uid0, row.ns_type);
        if let Some(count) = charged.and_then(|c| c.count()) {
            kernel.insert(level0, count);
        }
        if let Some(counts) = row.user_charges.as_deref()
            && let Some(c) = charged
        {
            for t in NsType::ALL {
                if let Some(n) = counts.count(t).filter(|&n| n > 0) {
                    kernel.insert((owner, Some(c.uid), t), n);
                }
            }
        }
        derived.entry(level0).or_default().push(row.key());
        // Up the owner chain: each user namespace's own entry in its parent.
        let mut at = owner;
        for _ in 0..MAX_CHAIN {
            let Some(user) = users.get(&at) else { break };
            let Some(parent) = user.row.owner else { break };
            let uid = match user.row.charged() {
                Some(c) => Some(c.uid),
                None if exact => break,
                None => facts.owner_uid.get(&at).copied(),
            };
            derived.entry((parent, uid, row.ns_type)).or_default().push(row.key());
            at = parent;
        }
    }
    let mut keys: Vec<LevelKey> = derived.keys().chain(kernel.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut levels: Vec<Level> = keys
        .into_iter()
        .map(|key @ (user_ns, uid, ns_type)| {
            let members = derived.remove(&key).unwrap_or_default();
            let user = users.get(&user_ns);
            let kernel_used = if exact { Some(kernel.get(&key).copied().unwrap_or(0)) } else { None };
            let derived_used = u32::try_from(members.len()).unwrap_or(u32::MAX);
            let used = kernel_used.unwrap_or(derived_used);
            let limit = user
                .and_then(|u| u.row.user_charges.as_deref())
                .and_then(|c| c.limit(ns_type))
                .or_else(|| facts.limits.get(&user_ns).and_then(|l| l[ns_type as usize]));
            Level {
                user_ns,
                user_ns_id: user.and_then(|u| u.row.id),
                depth: user.and_then(|u| u.row.level),
                uid,
                ns_type,
                used,
                limit,
                headroom: limit.map(|l| i64::from(l) - i64::from(used)),
                kernel_used,
                derived_used,
                members,
            }
        })
        .filter(|l| l.used > 0 || l.derived_used > 0)
        .collect();
    levels.sort_by_key(|l| (l.headroom.is_none(), l.headroom, std::cmp::Reverse(l.used), l.user_ns, l.uid));
    let deepest = |t: NsType| store.live().filter(|ns| ns.row.ns_type == t).filter_map(|ns| ns.row.level).max();
    ChargeTable {
        counts: if exact { CountSource::Kernel } else { CountSource::Derived },
        levels,
        deepest: Deepest { user: deepest(NsType::User).unwrap_or(0), pid: deepest(NsType::Pid).unwrap_or(0) },
    }
}

/// Which level a headroom figure is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LimitLevel {
    /// The host's user namespace: its limit minus the most-charged uid's count.
    Host,
    /// The fullest level below the host.
    Nested,
}

/// Headroom per type at the host's user namespace (every type whose limit
/// the walk read, charged or not) and at the fullest level below it.
pub fn headroom(store: &NsStore, table: &ChargeTable) -> Vec<(NsType, LimitLevel, i64)> {
    let mut out: HashMap<(NsType, LimitLevel), i64> = HashMap::new();
    let host = store.live().find(|ns| ns.row.ns_type == NsType::User && ns.row.level == Some(0));
    if let Some(limits) = host.and_then(|h| h.row.user_charges.as_deref()) {
        for t in NsType::ALL {
            if let Some(l) = limits.limit(t) {
                out.insert((t, LimitLevel::Host), i64::from(l));
            }
        }
    }
    for l in &table.levels {
        let (Some(h), Some(depth)) = (l.headroom, l.depth) else { continue };
        let level = if depth == 0 { LimitLevel::Host } else { LimitLevel::Nested };
        let e = out.entry((l.ns_type, level)).or_insert(h);
        *e = (*e).min(h);
    }
    let mut v: Vec<(NsType, LimitLevel, i64)> = out.into_iter().map(|((t, level), h)| (t, level, h)).collect();
    v.sort_unstable_by_key(|&(t, level, _)| (t as u32, level));
    v
}

#[cfg(test)]
mod tests;

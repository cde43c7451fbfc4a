//! Why the kernel refused to create a namespace (ENOSPC, EUSERS): the
//! first limit reached along the caller's charge chain, in the order the
//! kernel checks (the user namespace first, then mnt, uts, ipc, pid,
//! cgroup, time, net: kernel/nsproxy.c `create_new_namespaces`), or the
//! nesting depth of user and pid namespaces.

use nstrace_common::{
    event::{COUNT_UNKNOWN, RefusalEvent, UID_UNKNOWN},
    ns::NsType,
};
use serde::Serialize;

use crate::{charges::sysctl_name, events::types_in_flags};

/// The order in which the kernel makes (and charges) the namespaces one
/// call asks for.
const CHECK_ORDER: [NsType; 8] =
    [NsType::User, NsType::Mnt, NsType::Uts, NsType::Ipc, NsType::Pid, NsType::Cgroup, NsType::Time, NsType::Net];

/// Deepest user namespace the kernel makes (`create_user_ns`: a parent
/// deeper than 32 is refused) and deepest pid namespace (`MAX_PID_NS_LEVEL`).
pub const MAX_USER_DEPTH: u32 = 33;
pub const MAX_PID_DEPTH: u32 = 32;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RefusalReason {
    /// A `max_<type>_namespaces` reached at one level of the chain.
    Limit {
        #[serde(rename = "type")]
        ns_type: NsType,
        /// Inode of the user namespace whose limit it is.
        user_ns: u64,
        user_ns_id: Option<u64>,
        depth: u32,
        /// The host uid charged at that level.
        uid: Option<u32>,
        used: u32,
        limit: u32,
        sysctl: String,
    },
    /// User or pid namespaces nested as deep as the kernel allows.
    Depth {
        #[serde(rename = "type")]
        ns_type: NsType,
        depth: u32,
        max: u32,
    },
    /// No limit was reached: copying the caller's mounts for a new mount
    /// namespace would pass `/proc/sys/fs/mount-max`.
    MountMax,
    /// No limit was full when read (one was freed in between, or the
    /// counts could not be read on this kernel).
    Unknown,
}

impl RefusalReason {
    /// The reason of a refusal record.
    pub fn of(e: &RefusalEvent) -> RefusalReason {
        // Flags unknown (a clone's, where the registers could not be read):
        // every type is checked, in the kernel's order.
        let asked = match types_in_flags(e.flags) {
            t if t.is_empty() => NsType::ALL.to_vec(),
            t => t,
        };
        let levels = &e.levels[..(e.level_count as usize).min(e.levels.len())];
        let caller_depth = levels.first().map_or(0, |l| l.depth);
        for t in CHECK_ORDER.into_iter().filter(|t| asked.contains(t)) {
            match t {
                NsType::User if caller_depth >= MAX_USER_DEPTH => {
                    return RefusalReason::Depth { ns_type: t, depth: caller_depth, max: MAX_USER_DEPTH };
                }
                NsType::Pid if e.pid_depth >= MAX_PID_DEPTH => {
                    return RefusalReason::Depth { ns_type: t, depth: e.pid_depth, max: MAX_PID_DEPTH };
                }
                _ => {}
            }
            let i = t as usize;
            let full = levels
                .iter()
                .find(|l| l.counts[i] != COUNT_UNKNOWN && l.limits[i] != COUNT_UNKNOWN && l.counts[i] >= l.limits[i]);
            if let Some(l) = full {
                return RefusalReason::Limit {
                    ns_type: t,
                    user_ns: u64::from(l.user_ns.inum),
                    user_ns_id: (l.user_ns.id != 0).then_some(l.user_ns.id),
                    depth: l.depth,
                    uid: (l.uid != UID_UNKNOWN).then_some(l.uid),
                    used: l.counts[i],
                    limit: l.limits[i],
                    sysctl: sysctl_name(t),
                };
            }
        }
        if asked.contains(&NsType::Mnt) && e.ret == -28 {
            return RefusalReason::MountMax;
        }
        RefusalReason::Unknown
    }

    /// The reason in words, e.g. `max_uts_namespaces = 2 in user namespace
    /// 4026532100 (depth 1), uid 0 there has 2`.
    pub fn text(&self) -> String {
        match self {
            RefusalReason::Limit { user_ns, depth, uid, used, limit, sysctl, .. } => {
                let uid = uid.map_or_else(|| "the caller's uid".to_string(), |u| format!("uid {u}"));
                let host = if *depth == 0 { ", the host's" } else { "" };
                format!("{sysctl} = {limit} in user namespace {user_ns} (depth {depth}{host}), {uid} there has {used}")
            }
            RefusalReason::Depth { ns_type, depth, max } => format!(
                "nesting depth: {} namespaces nest at most {max} deep, and the new one would be below depth {depth}",
                ns_type.name()
            ),
            RefusalReason::MountMax => {
                "no namespace limit was full: copying the caller's mounts would pass /proc/sys/fs/mount-max".into()
            }
            RefusalReason::Unknown => {
                "no namespace limit was full when read (freed since, or not readable on this kernel)".into()
            }
        }
    }

    /// The command that lists what counts against the full level.
    pub fn explain_command(&self) -> Option<String> {
        let RefusalReason::Limit { ns_type, user_ns, uid, .. } = self else { return None };
        let uid = uid.map(|u| format!(" --uid {u}")).unwrap_or_default();
        Some(format!("nstrace limits --explain --user-ns {user_ns} --type {}{uid}", ns_type.name()))
    }

    /// The type the reason is about (None: not one type).
    pub fn ns_type(&self) -> Option<NsType> {
        match self {
            RefusalReason::Limit { ns_type, .. } | RefusalReason::Depth { ns_type, .. } => Some(*ns_type),
            RefusalReason::MountMax => Some(NsType::Mnt),
            RefusalReason::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests;

//! What a snapshot shows beyond the walks: how the sockets that hold a net
//! namespace are found, and (6.19+) whether listns(2) lists exactly the
//! namespaces the kernel counts as active.

use std::collections::{HashMap, HashSet};

use nstrace_common::{
    event::{ACTIVE_UNKNOWN, NsInfoRecord},
    ns::NsType,
};

use crate::{
    chain::chain,
    kernel::{
        probe::{Check, Status},
        walker::Walker,
    },
};

const SOCKETS: &str = "socket holders";
const LISTNS: &str = "listns vs active";

/// How sockets that keep a net namespace alive are found: read in the
/// kernel by the fd walk (`read`), or opened through /proc (SIOCGSKNS),
/// which on a kernel with active counts (`counted`, 6.19+) re-activates
/// an inactive namespace while nstrace looks.
pub(super) fn sockets_check(read: bool, counted: bool) -> Check {
    if read {
        return Check::new(
            SOCKETS,
            Status::Ok,
            "read in the kernel by the fd walk (each socket's own net namespace): no socket or namespace is \
             opened to find them",
        );
    }
    let effect = if counted {
        "; on this kernel that makes an inactive net namespace active while nstrace looks (listns(2) lists it \
         meanwhile): the observer changes what it observes"
    } else {
        ""
    };
    Check::new(
        SOCKETS,
        Status::Missing,
        format!(
            "the fd walk cannot read sockets here: `why` and `leaks` borrow each socket (pidfd_getfd) and ask \
             its namespace (SIOCGSKNS){effect}"
        ),
    )
}

/// listns(2) lists the active namespaces: every namespace the kernel counts
/// a user of, none it counts none of. Compared on the namespaces two walks
/// (before and after the listing) agree on, so a namespace that came,
/// went or changed meanwhile is no mismatch.
pub(super) fn listns_check(before: &[NsInfoRecord], walker: &mut Walker) -> Check {
    let listed: HashSet<u64> = match crate::procfs::listns::ids() {
        Ok(ids) => ids.into_iter().collect(),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            return Check::new(LISTNS, Status::Missing, "no listns(2) on this kernel (6.19+)");
        }
        Err(e) => return Check::new(LISTNS, Status::Error, format!("listns(2): {e}")),
    };
    let after = match walker.walk_all() {
        Ok((rows, _)) => rows,
        Err(e) => return Check::new(LISTNS, Status::Error, format!("second walk: {}", chain(&e))),
    };
    let comparison = compare(before, &after, &listed);
    if comparison.wrong.is_empty() {
        return Check::new(
            LISTNS,
            Status::Ok,
            format!(
                "listns(2) lists {} ids: of {} namespaces walked before and after it, every active one is listed \
                 and the {} inactive ones are not",
                listed.len(),
                comparison.compared,
                comparison.inactive
            ),
        );
    }
    let shown: Vec<&str> = comparison.wrong.iter().take(5).map(String::as_str).collect();
    Check::new(
        LISTNS,
        Status::Error,
        format!(
            "{} of {} namespaces differ from the kernel's active counts: {}",
            comparison.wrong.len(),
            comparison.compared,
            shown.join(", ")
        ),
    )
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Comparison {
    compared: usize,
    inactive: usize,
    /// "net 4026532000 (inactive, listed)".
    wrong: Vec<String>,
}

fn compare(before: &[NsInfoRecord], after: &[NsInfoRecord], listed: &HashSet<u64>) -> Comparison {
    let active = |r: &NsInfoRecord| (r.id != 0 && r.active != ACTIVE_UNKNOWN).then_some((r.id, r.active > 0));
    let first: HashMap<u64, bool> = before.iter().filter_map(active).collect();
    let mut out = Comparison::default();
    for r in after {
        let Some((id, is_active)) = active(r) else { continue };
        if first.get(&id) != Some(&is_active) {
            continue;
        }
        out.compared += 1;
        out.inactive += usize::from(!is_active);
        let is_listed = listed.contains(&id);
        if is_listed != is_active {
            let ty = NsType::from_u32(r.ns_type).map_or("?", NsType::name);
            let (a, l) =
                (if is_active { "active" } else { "inactive" }, if is_listed { "listed" } else { "not listed" });
            out.wrong.push(format!("{ty} {} ({a}, {l})", r.inum));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, active: u32) -> NsInfoRecord {
        NsInfoRecord { active, ..crate::store::tests::walk_row(NsType::Net, id, id as u32 + 1000, 1) }
    }

    #[test]
    fn listns_must_list_exactly_the_active_namespaces_both_walks_agree_on() {
        let before = [row(1, 3), row(2, 0), row(3, 1), row(4, 0), row(5, 1), row(6, ACTIVE_UNKNOWN)];
        // 4 became active between the walks: not compared; 7 is new: not compared.
        let after = [row(1, 3), row(2, 0), row(3, 1), row(4, 1), row(5, 2), row(6, ACTIVE_UNKNOWN), row(7, 0)];
        let listed: HashSet<u64> = [1, 2, 4].into();
        let c = compare(&before, &after, &listed);
        assert_eq!((c.compared, c.inactive), (4, 1));
        assert_eq!(
            c.wrong,
            ["net 1002 (inactive, listed)", "net 1003 (active, not listed)", "net 1005 (active, not listed)"]
        );
        let right: HashSet<u64> = [1, 3, 5].into();
        assert!(compare(&before, &after, &right).wrong.is_empty());
    }
}

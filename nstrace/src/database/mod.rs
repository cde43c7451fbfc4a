//! The provenance database: who created each namespace, from which
//! container, who pinned it and when, kept by `nstrace serve` in SQLite so
//! it outlives the processes (and nstrace runs) that saw it happen.

use nstrace_common::ns::NsType;
use serde::{Deserialize, Serialize};

use crate::{
    model::{Creator, Namespace, NsKey, Pin},
    time::UnixTime,
};

pub mod db;
pub mod identity;
pub mod writer;

/// What the database keeps of one namespace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NsProvenance {
    /// The store's key.
    #[serde(skip)]
    pub key: NsKey,
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub inode: u64,
    pub id: Option<u64>,
    /// When it was created, if a hook saw it.
    pub created: Option<UnixTime>,
    pub first_seen: UnixTime,
    pub creator: Option<Creator>,
    pub owner: Option<u64>,
    pub parent: Option<u64>,
    pub pins: Vec<Pin>,
    /// Containers whose tasks were seen in it.
    pub containers: Vec<crate::origin::ContainerRef>,
    /// Before 6.18 (no ids): the change time of the namespace's nsfs inode
    /// while a mount or fd pins it, so a restart can tell it from a new
    /// namespace that took its inode (see [`db::Db::alive`]).
    #[serde(skip)]
    pub identity: Option<i64>,
}

impl NsProvenance {
    pub fn of(ns: &Namespace) -> NsProvenance {
        NsProvenance {
            key: ns.key(),
            ns_type: ns.row.ns_type,
            inode: ns.row.inode,
            id: ns.row.id,
            created: ns.created,
            first_seen: ns.first_seen,
            creator: ns.creator.as_deref().cloned(),
            owner: ns.row.owner,
            parent: ns.row.parent,
            pins: ns.pins.iter().cloned().collect(),
            containers: ns.seen_in.iter().cloned().collect(),
            identity: None,
        }
    }
}

/// How a namespace's death was seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Death {
    pub at: UnixTime,
    /// Seconds from creation, when known.
    pub lifetime: Option<f64>,
    /// None: not known how (a death told without its mechanism).
    pub via: Option<crate::events::DeathVia>,
}

/// One change for the database, in the order the store saw them.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The namespace's provenance as it is now (insert or update).
    Upsert(Box<NsProvenance>),
    /// The namespace `key` died.
    Died { key: NsKey, death: Death },
    /// The kernel refused to create a namespace (a `refused` event).
    Refused(Box<RefusalRow>),
}

/// What the database keeps of one refused namespace creation.
#[derive(Clone, Debug, PartialEq)]
pub struct RefusalRow {
    pub at: UnixTime,
    pub pid: u32,
    pub uid: u32,
    /// The `refused` event as `trace --format json` prints it.
    pub event: String,
}

impl RefusalRow {
    /// The row of a `refused` event (None for other events).
    pub fn of(e: &crate::events::Event) -> Option<RefusalRow> {
        let crate::events::Event::Refused { time, pid, uid, .. } = e else { return None };
        Some(RefusalRow { at: *time, pid: *pid, uid: *uid, event: serde_json::to_string(e).ok()? })
    }
}

impl Change {
    /// The store key of the namespace changed (None: no namespace's).
    pub fn key(&self) -> Option<NsKey> {
        match self {
            Change::Upsert(r) => Some(r.key),
            Change::Died { key, .. } => Some(*key),
            Change::Refused(_) => None,
        }
    }
}

/// What a service's `history --alive --json` says of each live namespace:
/// (store key, creation time, creator). Entries it cannot read are skipped.
pub fn remembered(history: &serde_json::Value) -> Vec<(NsKey, Option<UnixTime>, Option<Creator>)> {
    let Some(rows) = history.as_array() else { return Vec::new() };
    rows.iter()
        .filter_map(|r| {
            let ns_type: NsType = serde_json::from_value(r["type"].clone()).ok()?;
            let inode = r["inode"].as_u64()?;
            let id = r["id"].as_u64();
            let c = &r["creator"];
            let creator = c["pid"].as_u64().map(|pid| Creator {
                pid: pid as u32,
                tid: c["tid"].as_u64().unwrap_or(pid) as u32,
                comm: c["comm"].as_str().unwrap_or_default().to_string(),
                cause: crate::events::Cause::of_name(c["cause"].as_str().unwrap_or_default()),
                flags: c["flags"].as_u64().unwrap_or(0),
                origin: serde_json::from_value(c.clone()).unwrap_or_default(),
            });
            let key = NsKey::new(ns_type, inode).with_id(id);
            Some((key, r["created"].as_f64().map(UnixTime::from_secs), creator))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_reads_what_history_prints() {
        let v = serde_json::json!([
            {"type": "net", "inode": 10, "id": 7, "created": 5.5, "creator": {"pid": 3, "tid": 4, "comm": "ip",
              "cause": "unshare", "flags": 1073741824, "cmdline": "ip netns add x", "parent": "sh[2]"}},
            {"type": "uts", "inode": 11, "id": null, "created": null, "creator": null},
            {"type": "bogus", "inode": 12},
        ]);
        let r = remembered(&v);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!((r[0].0, r[0].1), (NsKey::new(NsType::Net, 10).with_id(Some(7)), Some(UnixTime::from_secs(5.5))));
        let c = r[0].2.as_ref().unwrap();
        assert_eq!(
            (c.pid, c.tid, c.comm.as_str(), c.cause, c.flags),
            (3, 4, "ip", crate::events::Cause::Unshare, 1 << 30)
        );
        assert_eq!(
            (c.origin.cmdline.as_deref(), c.origin.parent.as_ref().map(ToString::to_string).as_deref()),
            (Some("ip netns add x"), Some("sh[2]"))
        );
        assert_eq!((r[1].0, r[1].1, r[1].2.is_none()), (NsKey::new(NsType::Uts, 11), None, true));
        assert!(remembered(&serde_json::json!({})).is_empty());
    }
}

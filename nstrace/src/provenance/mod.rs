//! Provenance: who created each namespace, from which container, who
//! pinned it and when, kept by `nstrace serve` in an SQLite database so it
//! outlives the processes (and nstrace runs) that saw it happen.

pub mod origin;

use nstrace_common::ns::NsType;
use serde::{Deserialize, Serialize};

use crate::model::{Creator, Namespace, Pin};

pub mod db;
pub mod identity;
pub mod writer;

/// What the database keeps of one namespace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// The store's key ([`nstrace_common::ns::ns_key`]).
    #[serde(skip)]
    pub key: u64,
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub inode: u64,
    pub id: Option<u64>,
    /// Unix time of creation, when a hook saw it.
    pub created: Option<f64>,
    pub first_seen: f64,
    pub creator: Option<Creator>,
    pub owner: Option<u64>,
    pub parent: Option<u64>,
    pub pins: Vec<Pin>,
    /// Before 6.18 (no ids): the change time of the namespace's nsfs inode
    /// while a mount or fd pins it, so a restart can tell it from a new
    /// namespace that took its inode (see [`db::Db::alive`]).
    #[serde(skip)]
    pub identity: Option<i64>,
}

impl Record {
    pub fn of(ns: &Namespace) -> Record {
        Record {
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
            identity: None,
        }
    }
}

/// How a namespace's death was seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Death {
    pub at: f64,
    pub lifetime: Option<f64>,
    pub via: String,
}

/// One change for the database, in the order the store saw them.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The namespace's provenance as it is now (insert or update).
    Upsert(Record),
    /// The namespace `key` died.
    Died { key: u64, ns_type: NsType, inode: u64, id: Option<u64>, death: Death },
}

//! The store's provenance journal: which records changed since the
//! database last heard of them (only kept when `serve` asks for it).

use foldhash::HashSet;

use crate::{
    database::{Change, Death, NsProvenance},
    model::{Namespace, NsKey},
};

#[derive(Debug, Default)]
pub struct Journal {
    enabled: bool,
    /// Live keys whose provenance changed.
    dirty: HashSet<NsKey>,
    /// Deaths (preceded by their last update), in order.
    log: Vec<Change>,
}

impl Journal {
    pub fn new(enabled: bool) -> Journal {
        Journal { enabled, ..Default::default() }
    }

    /// The namespace `key` was created, adopted or its provenance changed.
    pub fn touch(&mut self, key: NsKey) {
        if self.enabled {
            self.dirty.insert(key);
        }
    }

    /// `ns` died: its last state first if the database has not seen it.
    pub fn died(&mut self, ns: Option<&Namespace>, key: NsKey, death: Death) {
        if !self.enabled {
            return;
        }
        if self.dirty.remove(&key)
            && let Some(ns) = ns
        {
            self.log.push(Change::Upsert(Box::new(NsProvenance::of(ns))));
        }
        self.log.push(Change::Died { key, death });
    }

    /// Live keys whose provenance changed since the last [`Journal::take`].
    pub fn dirty_keys(&self) -> Vec<NsKey> {
        self.dirty.iter().copied().collect()
    }

    /// Every change since the last call, oldest first.
    pub fn take(&mut self, live: impl Fn(NsKey) -> Option<NsProvenance>) -> Vec<Change> {
        let mut out = std::mem::take(&mut self.log);
        out.extend(self.dirty.drain().filter_map(live).map(|r| Change::Upsert(Box::new(r))));
        out
    }
}

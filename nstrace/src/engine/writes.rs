//! What the engine's callers may write into its store: holder scans it
//! does not run itself (the monitor's, off the event loop) and the
//! provenance only a caller knows (`serve`'s database, `live`'s service).
//! Every other write comes from the engine's own records and snapshots;
//! no caller gets the store mutably.

use super::Engine;
use crate::{
    database::Change,
    model::{Creator, NsKey, Pin},
    origin::{ContainerRef, Origin},
    procfs::holders::HolderScan,
    time::{BootNs, UnixTime},
};

impl Engine {
    /// Applies a holder scan taken at `now` to the live records, then
    /// evicts what the store no longer keeps.
    pub fn apply_holders(&mut self, scan: HolderScan, now: BootNs) {
        self.store.apply_holders(scan, now, false);
        self.store.evict(now);
    }

    /// Gives live namespace `key` what an earlier run knew of it; false
    /// when it is not live.
    pub fn adopt(
        &mut self,
        key: NsKey,
        created: Option<UnixTime>,
        creator: Option<Creator>,
        pins: Vec<Pin>,
        containers: Vec<ContainerRef>,
    ) -> bool {
        self.store.adopt(key, created, creator, pins, containers)
    }

    /// Completes a creator's origin with what the caller read from /proc.
    pub fn set_origin(&mut self, key: NsKey, origin: Origin) {
        self.store.set_origin(key, origin);
    }

    /// The provenance changes since the last call, after naming (through
    /// `namer`) the containers seen in them.
    pub fn take_provenance(
        &mut self,
        namer: impl FnMut(&ContainerRef) -> Option<crate::containers::names::RuntimeNames>,
    ) -> Vec<Change> {
        self.store.name_containers(namer);
        self.store.take_provenance()
    }
}

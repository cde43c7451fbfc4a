//! A namespace between its last reference and the end of its teardown
//! (network namespaces: `cleanup_net`; see `store::teardown`).

use serde::Serialize;

use crate::time::{BootNs, UnixTime};

/// Where a dying namespace's teardown is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TeardownStage {
    /// Queued for the kernel's cleanup worker, which has not taken it yet
    /// (a run in progress took the ones queued before it).
    Queued,
    /// Taken by a cleanup run that has not ended.
    Cleanup,
}

impl TeardownStage {
    pub fn name(self) -> &'static str {
        match self {
            TeardownStage::Queued => "queued",
            TeardownStage::Cleanup => "cleanup",
        }
    }
}

/// Since when a namespace is dying, and where its teardown is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Dying {
    /// When its last reference went, as near as nstrace can tell: the
    /// walk that found it with none left, or the cleanup run that took it
    /// (whichever came first; never before it was last seen alive).
    pub since: UnixTime,
    pub stage: TeardownStage,
    #[serde(skip)]
    pub since_boot: BootNs,
    /// Missing from a walk with no cleanup run seen to explain it (its
    /// records may still be on their way): gone at the next walk that
    /// still finds none.
    #[serde(skip)]
    pub unexplained: bool,
    /// The mechanism that found it gone (its `destroy` event's `via`).
    #[serde(skip)]
    pub via: crate::events::DeathVia,
}

impl Dying {
    /// Seconds it has been dying at `now`.
    pub fn age(&self, now: UnixTime) -> f64 {
        (now - self.since).max(0.0)
    }
}

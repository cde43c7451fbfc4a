//! Recent deaths, so late hook records do not revive a reaped namespace.

use std::collections::VecDeque;

use foldhash::HashMap;

use crate::{model::NsKey, time::BootNs};

/// Keys of the most recent deaths with their time, so
/// a late create record of a namespace already reaped does not revive it.
/// Before 6.18 keys are type+inode and inodes are reused at once, so only
/// records older than the death are stale.
#[derive(Clone, Debug, Default)]
pub(super) struct RecentDeaths {
    pub(super) order: VecDeque<NsKey>,
    at: HashMap<NsKey, BootNs>,
}

const RECENT_DEATHS: usize = 4096;

impl RecentDeaths {
    pub(super) fn remember(&mut self, key: NsKey, died: BootNs) {
        if self.at.insert(key, died).is_none() {
            if self.order.len() == RECENT_DEATHS
                && let Some(old) = self.order.pop_front()
            {
                self.at.remove(&old);
            }
            self.order.push_back(key);
        }
    }

    /// Whether a record stamped `ts` is about a namespace that died since.
    pub(super) fn is_stale(&self, key: NsKey, ts: BootNs) -> bool {
        self.at.get(&key).is_some_and(|&died| ts <= died)
    }
}

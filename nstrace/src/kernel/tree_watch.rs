//! The change check (6.18 layout): one run of `ns_changes` reads each
//! per-type namespace list's change count, so a quiet host is checked
//! without walking any list (see the eBPF crate's `walk::changes`).

use aya::maps::{Array, MapData};
use nstrace_common::{
    event::TreeWatch,
    names,
    ns::{NS_TYPES, NsType, NsTypeSet},
};

use crate::kernel::{loader::LoaderError, test_run::WalkProgram};

/// Each type's list change count; None until a walk has passed the list's
/// head (or where the count cannot be read).
pub type Counts = [Option<u32>; NS_TYPES];

/// The loaded `ns_changes` program and the map it shares with the walk.
pub struct TreeWatcher {
    prog: WalkProgram,
    map: Array<MapData, TreeWatch>,
}

impl TreeWatcher {
    pub(crate) fn new(prog: WalkProgram, map: Array<MapData, TreeWatch>) -> TreeWatcher {
        TreeWatcher { prog, map }
    }

    /// Every list's change count now: one program run and one map read.
    pub fn counts(&self) -> Result<Counts, LoaderError> {
        let name = names::TREE_WATCH_MAP;
        self.prog.run().map_err(|e| LoaderError::Map { name, source: aya::maps::MapError::IoError(e) })?;
        let watch = self.map.get(&0, 0).map_err(|source| LoaderError::Map { name, source })?;
        Ok(counts_of(&watch))
    }
}

fn counts_of(watch: &TreeWatch) -> Counts {
    std::array::from_fn(|i| (watch.heads[i] != 0).then_some(watch.seqs[i]))
}

/// The types whose lists may have changed between two readings: a count
/// that moved, is odd (a writer was inside), or is not known on either side.
pub fn changed(before: &Counts, now: &Counts) -> NsTypeSet {
    NsType::ALL.iter().fold(NsTypeSet::EMPTY, |set, &t| {
        let i = t as usize;
        match (before[i], now[i]) {
            (Some(b), Some(n)) if b == n && n % 2 == 0 => set,
            _ => set.with(t),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_moved_odd_or_unknown_count_is_a_change() {
        let mut before: Counts = [Some(4); NS_TYPES];
        let mut now = before;
        assert_eq!(changed(&before, &now), NsTypeSet::EMPTY);
        now[NsType::Net as usize] = Some(6);
        now[NsType::Uts as usize] = Some(5);
        before[NsType::Time as usize] = None;
        now[NsType::Ipc as usize] = None;
        let set = changed(&before, &now);
        let expect = [NsType::Net, NsType::Uts, NsType::Time, NsType::Ipc];
        for t in NsType::ALL {
            assert_eq!(set.contains(t), expect.contains(&t), "{t:?}");
        }
    }

    #[test]
    fn a_head_not_seen_has_no_count() {
        let mut w = TreeWatch::default();
        w.heads[NsType::Mnt as usize] = 0xffff_8880_0000_1000;
        w.seqs[NsType::Mnt as usize] = 8;
        w.seqs[NsType::Net as usize] = 8;
        let c = counts_of(&w);
        assert_eq!(c[NsType::Mnt as usize], Some(8));
        assert_eq!(c[NsType::Net as usize], None);
    }
}

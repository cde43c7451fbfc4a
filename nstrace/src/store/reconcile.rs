//! Reconciling the table with a snapshot: what hooks did not report is
//! added after one snapshot's grace, what a complete snapshot no longer
//! lists is destroyed.

use foldhash::HashMap;

use nstrace_common::{
    event::NsInfoRecord,
    ns::{NsType, NsTypeSet, ns_key},
};

use super::{
    Coverage, NsStore, Pending, Reconciled,
    build::{create_event, row_of},
    refcount_of,
};
use crate::{
    events::{Event, NsIds},
    model::Namespace,
};

impl NsStore {
    /// Makes the live records equal to a fresh snapshot: adds what they
    /// lack (after one snapshot's grace, see [`Pending`]) and, with a
    /// complete snapshot, destroys what it no longer lists or lists with no
    /// reference left. `via` names the mechanism for destroy events.
    pub fn reconcile(
        &mut self,
        records: &[NsInfoRecord],
        now: u64,
        coverage: Coverage,
        via: crate::events::DeathVia,
        out: &mut Vec<Event>,
    ) -> Reconciled {
        self.reconcile_types(records, NsTypeSet::ALL, now, coverage, via, out)
    }

    /// [`NsStore::reconcile`] with a snapshot of the namespaces of `types`
    /// only (a walk of the lists a hint named): the others stay as they are.
    pub fn reconcile_types(
        &mut self,
        records: &[NsInfoRecord],
        types: NsTypeSet,
        now: u64,
        coverage: Coverage,
        via: crate::events::DeathVia,
        out: &mut Vec<Event>,
    ) -> Reconciled {
        let complete = coverage != Coverage::Partial;
        let mut result = Reconciled::default();
        // Sorted keys, not a map: the snapshot can hold 100,000s of rows and
        // this is the reconcile's only per-row allocation (8 bytes each).
        let mut alive: Vec<u64> =
            records.iter().filter(|r| r.refcount > 0).map(|r| ns_key(r.id, r.ns_type, r.inum)).collect();
        alive.sort_unstable();
        alive.dedup();
        let is_alive = |key: &u64| alive.binary_search(key).is_ok();
        let at = self.clock.unix(now);
        let mut waiting: HashMap<u64, Pending> =
            self.pending.extract_if(|_, p| types.contains(p.ns.row.ns_type)).collect();
        for r in records.iter().filter(|r| r.refcount > 0) {
            let key = ns_key(r.id, r.ns_type, r.inum);
            if let Some(ns) = self.live.get_mut(&key) {
                if let Some(rc) = refcount_of(r) {
                    ns.row.refcount = Some(rc);
                }
                // Hooks do not see owner changes; the snapshot is exact.
                if r.owner.inum != 0 {
                    ns.row.owner = Some(r.owner.inum as u64);
                }
            } else if self.evicted.contains_key(&key) || self.pending.contains_key(&key) {
            } else if let Some(p) = waiting.remove(&key) {
                self.promote(p, now, out);
                result.created.push(key);
            } else if let Some(row) = row_of(r) {
                let tree = matches!(row.ns_type, NsType::Pid | NsType::User);
                let ns = Namespace { created: Some(at), ..Namespace::seen(row, at) };
                let parent = if tree { NsIds::of(&r.parent) } else { None };
                self.pending.insert(key, Pending { ns, owner: NsIds::of(&r.owner), parent });
            }
        }
        // Pending ones that died unreported were still real: report both,
        // unless absence proves nothing (then drop them quietly).
        if complete {
            for (key, p) in waiting {
                self.promote(p, now, out);
                result.created.push(key);
            }
            let live = self.live.iter().map(|(k, n)| (k, n.row.ns_type));
            let evicted = self.evicted.iter().map(|(k, e)| (k, e.ns_type));
            let dead: Vec<u64> =
                live.chain(evicted).filter(|(k, ty)| types.contains(*ty) && !is_alive(k)).map(|(k, _)| *k).collect();
            // Those of the other types wait for a walk of theirs.
            let (live, evicted) = (&self.live, &self.evicted);
            let missed_before: HashMap<u64, u64> = self
                .missing
                .extract_if(|k, _| {
                    let ty = live.get(k).map(|n| n.row.ns_type).or_else(|| evicted.get(k).map(|e| e.ns_type));
                    ty.is_none_or(|ty| types.contains(ty))
                })
                .collect();
            for key in dead {
                let died = match (coverage, missed_before.get(&key)) {
                    (Coverage::BesideDestroyHook, None) => {
                        self.missing.insert(key, now);
                        continue;
                    }
                    (Coverage::BesideDestroyHook, Some(&first)) => first,
                    _ => now,
                };
                if self.destroy(key, died, via, out).is_some() {
                    result.destroyed.push(key);
                }
            }
        }
        result
    }

    fn promote(&mut self, p: Pending, now: u64, out: &mut Vec<Event>) {
        let mut ns = p.ns;
        let event = create_event(&ns, p.owner, p.parent, now, &self.clock);
        ns.history.push(event.clone(), self.opts.history);
        out.push(event);
        self.insert(ns);
    }
}

//! Reconciling the table with a snapshot: what hooks did not report is
//! added after one snapshot's grace, what a complete snapshot no longer
//! lists is destroyed.

use foldhash::HashMap;

use nstrace_common::{
    event::NsInfoRecord,
    ns::{NsType, NsTypeSet},
};

use super::{
    Coverage, NsStore, Pending, Reconciled,
    build::{create_event, key_of, row_of},
    refcount_of,
    teardown::Gone,
};
use crate::{
    events::{Event, NsIds},
    model::{Charge, Namespace, NsKey, UserNsCharges},
    time::BootNs,
};

impl NsStore {
    /// Makes the live records equal to a fresh snapshot: adds what they
    /// lack (after one snapshot's grace, see [`Pending`]) and, with a
    /// complete snapshot, destroys what it no longer lists or lists with no
    /// reference left. `via` names the mechanism for destroy events.
    pub fn reconcile(
        &mut self,
        records: &[NsInfoRecord],
        now: BootNs,
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
        now: BootNs,
        coverage: Coverage,
        via: crate::events::DeathVia,
        out: &mut Vec<Event>,
    ) -> Reconciled {
        let complete = coverage != Coverage::Partial;
        let mut result = Reconciled::default();
        // Sorted keys, not a map: the snapshot can hold 100,000s of rows and
        // this is the reconcile's only per-row allocation.
        let mut alive: Vec<NsKey> = records.iter().filter(|r| r.refcount > 0).filter_map(key_of).collect();
        alive.sort_unstable();
        alive.dedup();
        let is_alive = |key: &NsKey| alive.binary_search(key).is_ok();
        let at = self.clock.unix(now);
        let mut waiting: HashMap<NsKey, Pending> =
            self.pending.extract_if(|_, p| types.contains(p.ns.row.ns_type)).collect();
        for r in records.iter().filter(|r| r.refcount > 0) {
            let Some(key) = key_of(r) else { continue };
            if let Some(ns) = self.live.get_mut(&key) {
                if let Some(rc) = refcount_of(r) {
                    ns.row.refcount = Some(rc);
                }
                // Hooks do not see owner changes; the snapshot is exact.
                if r.owner.inum != 0 {
                    ns.row.owner = Some(u64::from(r.owner.inum));
                }
                // The kernel's counts move with every creation and death.
                if let Some(charge) = Charge::of_record(r, key.ns_type) {
                    ns.row.charge = charge;
                }
                if key.ns_type == NsType::User
                    && let Some(charges) = UserNsCharges::of_record(r)
                {
                    ns.row.user_charges = Some(charges);
                }
            } else if self.evicted.contains(&key) || self.pending.contains_key(&key) {
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
            let dead: Vec<NsKey> = (self.live.keys().chain(&self.evicted))
                .filter(|k| types.contains(k.ns_type) && !is_alive(k))
                .copied()
                .collect();
            // Those of the other types wait for a walk of theirs.
            let (live, evicted) = (&self.live, &self.evicted);
            let missed_before: HashMap<NsKey, BootNs> = self
                .missing
                .extract_if(|k, _| !(live.contains_key(k) || evicted.contains(k)) || types.contains(k.ns_type))
                .collect();
            // Network namespaces: dying until the cleanup run that took them ends.
            let previous_walk = self.cleanups.last_walk;
            if types.contains(NsType::Net) {
                self.cleanups.last_walk = Some(now);
            }
            let no_reference: Vec<NsKey> = records
                .iter()
                .filter(|r| r.refcount == 0)
                .filter_map(key_of)
                .filter(|k| k.ns_type == NsType::Net)
                .collect();
            for key in dead {
                let how = if no_reference.contains(&key) { Gone::NoReference } else { Gone::Missing { previous_walk } };
                // Dying is gone for the caller (no reference left).
                if self.net_gone(key, now, how, via, out) {
                    result.destroyed.push(key);
                    continue;
                }
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

    fn promote(&mut self, p: Pending, now: BootNs, out: &mut Vec<Event>) {
        let mut ns = p.ns;
        let event = create_event(&ns, p.owner, p.parent, now, &self.clock);
        ns.history.push(event.clone(), self.opts.history);
        out.push(event);
        self.insert(ns);
    }
}

//! Where the engine's snapshots and holder scans come from: the kernel's
//! lists through the shared walker, or /proc; a walk that fails this time
//! is answered from /proc and said so (run on blocking threads).

use std::sync::{Arc, Mutex};

use nstrace_common::{event::NsInfoRecord, ns::NsTypeSet};

use super::EngineError;
use crate::{
    kernel::walker::{WalkFailure, Walker},
    procfs::holders::{self, HolderScan, HoldersError},
};

/// What takes the engine's snapshots: the chosen snapshot mechanism with
/// what it needs (the tree walk's walker). Cheap to clone: a snapshot runs
/// on a blocking thread with its own handle (the walker is shared with the
/// holder scans, one walk at a time).
#[derive(Clone)]
pub(super) enum Snapshotter {
    Tree(Arc<Mutex<Walker>>),
    Proc,
    Listns,
}

/// A walk that failed this time (the lock, a stall, the budget) and how
/// it was answered instead.
#[derive(Clone, Debug)]
pub struct WalkTrouble {
    pub failure: WalkFailure,
    /// The error, for health and logs.
    pub message: String,
}

/// What a snapshot brought back.
pub(super) struct Taken {
    pub(super) rows: Vec<NsInfoRecord>,
    /// With /proc: the holders the same pass found.
    pub(super) scan: Option<HolderScan>,
    /// The types the rows cover.
    pub(super) types: NsTypeSet,
    /// The tree walk failed and /proc answered: absence proves nothing then.
    pub(super) fell_back: Option<WalkTrouble>,
}

impl Snapshotter {
    /// The namespaces of `types` (all of them but with the tree walk), and
    /// with /proc the holders found by the same pass. Blocking. `ids`:
    /// whether the hooks read ns_id (its offset is in BTF); when they
    /// cannot, ids from NS_GET_ID are dropped so both sides key namespaces
    /// the same way (type and inode). A tree walk that fails where the next
    /// may work is answered from /proc this time.
    pub(super) fn take(&self, ids: bool, types: NsTypeSet) -> Result<Taken, EngineError> {
        let from_proc = |listns: bool| -> Result<(Vec<NsInfoRecord>, HolderScan), EngineError> {
            let (mut rows, scan) =
                if listns { crate::snapshot::listns_records()? } else { crate::snapshot::proc_records()? };
            if !ids {
                rows.iter_mut().for_each(|r| r.id = 0);
            }
            Ok((rows, scan))
        };
        match self {
            Snapshotter::Tree(w) => {
                let walked = {
                    let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                    if types == NsTypeSet::ALL {
                        w.walk_all().map(|(rows, _)| rows)
                    } else {
                        w.walk_types(types.iter(), &mut Default::default())
                    }
                };
                match walked {
                    Ok(rows) => Ok(Taken { rows, scan: None, types, fell_back: None }),
                    Err(e) => {
                        let Some(failure) = e.failure() else { return Err(e.into()) };
                        let message = crate::chain::chain(&e);
                        log::warn!("tree walk failed ({message}); this refresh comes from /proc");
                        let (rows, scan) = from_proc(false)?;
                        let fell_back = Some(WalkTrouble { failure, message });
                        Ok(Taken { rows, scan: Some(scan), types: NsTypeSet::ALL, fell_back })
                    }
                }
            }
            Snapshotter::Proc | Snapshotter::Listns => {
                let (rows, scan) = from_proc(matches!(self, Snapshotter::Listns))?;
                Ok(Taken { rows, scan: Some(scan), types: NsTypeSet::ALL, fell_back: None })
            }
        }
    }
}

/// How a holder scan learns every process's namespaces.
pub enum TaskSource {
    /// From the kernel's task list (tree walk kernels) and, where the fd
    /// walk runs, every open nsfs file; with every mount namespace's id
    /// (inode -> id) for the mounts of those no task is in.
    Kernel { walker: Arc<Mutex<Walker>>, mnt_ids: foldhash::HashMap<u64, u64> },
    /// From /proc/PID/ns.
    Proc,
}

impl TaskSource {
    /// Walks the tasks and fds (where the kernel is walked) and scans /proc
    /// for the rest of the holders (blocking). A walk that fails this time
    /// is answered from /proc alone, and said so.
    pub fn scan(self) -> Result<(HolderScan, Option<WalkTrouble>), HoldersError> {
        let me = [std::process::id()];
        match self {
            TaskSource::Kernel { walker, mnt_ids } => {
                let mut stats = crate::kernel::walker::WalkStats::default();
                let walked = {
                    let mut w = walker.lock().unwrap_or_else(|e| e.into_inner());
                    w.walk_tasks_and_fds(&mut stats)
                };
                match walked {
                    Ok((tasks, fds)) => {
                        let sockets = stats.sockets_read;
                        let view =
                            holders::KernelView { tasks: &tasks, fds: fds.as_deref(), sockets, mnt_ids: &mnt_ids };
                        Ok((holders::scan_with_kernel(&me, view)?, None))
                    }
                    Err(e) => {
                        let failure = e.failure().unwrap_or(WalkFailure::Error);
                        let message = crate::chain::chain(&e);
                        log::warn!("task walk failed ({message}); holders come from /proc this time");
                        Ok((holders::scan_excluding(&me)?, Some(WalkTrouble { failure, message })))
                    }
                }
            }
            TaskSource::Proc => Ok((holders::scan_excluding(&me)?, None)),
        }
    }
}

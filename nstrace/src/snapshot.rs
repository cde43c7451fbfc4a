//! Snapshots of every namespace on the host: the kernel's own lists (the
//! tree walk, 6.18+) or, on older kernels, the lsns method over /proc;
//! joined with the holders found in /proc.

use foldhash::HashMap;

use nstrace_common::event::NsInfoRecord;
use serde::Serialize;

use crate::{
    kernel::{loader::LoaderError, pinned, walker},
    procfs::holders::{self, HolderScan, HoldersError},
    procfs::namespaces,
    store::{NsStore, REFCOUNT_UNKNOWN},
    time::Clock,
    timings::Phases,
};

/// Where the list of namespaces comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The kernel's per-type namespace lists, read by the eBPF tree walk.
    Kernel,
    /// /proc (tasks, fds, nsfs mounts) plus NS_GET_USERNS/NS_GET_PARENT.
    Proc,
    /// listns(2) (6.19+) plus the sockets' net namespaces, each opened by
    /// id for NS_GET_*; holders from /proc.
    Listns,
}

use crate::model::NsRow;

/// A one-shot snapshot, as a store: what `ls`, `why` and `leaks` read
/// when no service answers.
#[derive(Debug)]
pub struct OneShot {
    pub source: Source,
    pub store: NsStore,
    /// Walk statistics (kernel source).
    pub walk: Option<walker::WalkStats>,
    /// How long each phase took.
    pub phases: Vec<(&'static str, std::time::Duration)>,
}

impl OneShot {
    /// The live rows, by type and inode.
    pub fn rows(&self) -> Vec<&NsRow> {
        self.store.rows()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("kernel snapshot")]
    Loader(#[from] LoaderError),
    #[error("kernel snapshot")]
    Walk(#[from] walker::WalkError),
    #[error("scanning /proc")]
    Holders(#[from] HoldersError),
    #[error("proc snapshot")]
    Proc(#[from] namespaces::ProcScanError),
    #[error("listns(2) snapshot")]
    Listns(#[source] std::io::Error),
    #[error("listns(2) is not available on this kernel (it needs 6.19+)")]
    NoListns,
    /// Both sources failed: the /proc error is the cause, the kernel one is
    /// in the message (an error has one chain).
    #[error("neither source works on this kernel (kernel walk: {kernel})")]
    NoSource {
        kernel: String,
        #[source]
        proc: Box<SnapshotError>,
    },
}

/// Takes a snapshot from `source`, or the best source available.
pub fn take(source: Option<Source>) -> Result<OneShot, SnapshotError> {
    match source {
        Some(Source::Kernel) => take_kernel(),
        Some(Source::Proc) => take_proc(),
        Some(Source::Listns) => take_listns(),
        None => match take_kernel() {
            Ok(s) => Ok(s),
            Err(kernel_err) => {
                let kernel = crate::chain::chain(&kernel_err);
                if kernel_err.walk_failure().is_some() {
                    // Not the kernel's lack: this walk failed, the next may not. Said, not hidden.
                    eprintln!("nstrace: the kernel walk failed this time ({kernel}); listing from /proc");
                } else {
                    log::info!("kernel snapshot unavailable ({kernel}); using /proc");
                }
                take_proc().map_err(|proc_err| SnapshotError::NoSource { kernel, proc: Box::new(proc_err) })
            }
        },
    }
}

impl SnapshotError {
    /// Why a kernel walk failed where the next may work (see [`walker::WalkError::failure`]).
    pub fn walk_failure(&self) -> Option<walker::WalkFailure> {
        match self {
            SnapshotError::Walk(e) => e.failure(),
            _ => None,
        }
    }
}

/// The tree walk, then the holders.
pub fn take_kernel() -> Result<OneShot, SnapshotError> {
    let taken = walk_kernel();
    if let Err(SnapshotError::Walk(walker::WalkError::Stalled { .. })) = &taken {
        // Whatever stalled it is in the pins: the next run loads afresh.
        pinned::discard();
    }
    taken
}

fn walk_kernel() -> Result<OneShot, SnapshotError> {
    let mut phases = Phases::start();
    // Held while walking: one-shot runs share the pinned walk maps.
    let (mut walker, _lock) = pinned::walker()?;
    phases.mark("load walk programs");
    let (records, mut stats) = walker.walk_all()?;
    phases.mark("walk namespaces");
    let (tasks, fds) = walker.walk_tasks_and_fds(&mut stats)?;
    phases.mark(if fds.is_some() { "walk tasks and fds" } else { "walk tasks (fds from /proc)" });
    let mnt_ids = mount_ns_ids(&records);
    let sockets = stats.sockets_read;
    let view = holders::KernelView { tasks: &tasks, fds: fds.as_deref(), sockets, mnt_ids: &mnt_ids };
    let scan = holders::scan_with_kernel(&[std::process::id()], view)?;
    phases.extend(&scan.phases);
    let store = NsStore::from_snapshot(&records, scan, Clock::new(), Clock::now_boot_ns());
    phases.mark("store");
    Ok(OneShot { source: Source::Kernel, store, walk: Some(stats), phases: phases.into_list() })
}

/// Every mount namespace's id by inode (for listmount).
fn mount_ns_ids(records: &[NsInfoRecord]) -> HashMap<u64, u64> {
    records
        .iter()
        .filter(|r| r.ns_type == nstrace_common::ns::NsType::Mnt as u32 && r.id != 0)
        .map(|r| (u64::from(r.inum), r.id))
        .collect()
}

/// The lsns method plus nsfs ioctls.
pub fn take_proc() -> Result<OneShot, SnapshotError> {
    let started = std::time::Instant::now();
    let (records, scan) = proc_records()?;
    // The scan's phases ran inside; the rest is the lsns method's own pass.
    let scanned: std::time::Duration = scan.phases.iter().map(|(_, d)| *d).sum();
    let mut phases = Phases::start();
    phases.extend(&scan.phases);
    phases.extend(&[("namespaces (/proc)", started.elapsed().saturating_sub(scanned))]);
    let store = NsStore::from_snapshot(&records, scan, Clock::new(), Clock::now_boot_ns());
    phases.mark("store");
    Ok(OneShot { source: Source::Proc, store, walk: None, phases: phases.into_list() })
}

/// Nesting levels of pid and user namespaces from their parent links.
struct Levels(HashMap<u64, u64>);

impl Levels {
    fn of(found: &[namespaces::ProcNs]) -> Levels {
        Levels(found.iter().filter_map(|p| Some((p.key.inode, p.parent?))).collect())
    }

    fn level(&self, mut inode: u64) -> u32 {
        let mut n = 0;
        // User and pid namespaces nest at most 32 deep; a cycle would be a bug.
        while let Some(&p) = self.0.get(&inode)
            && n < 64
        {
            n += 1;
            inode = p;
        }
        n
    }
}

/// listns(2), then the holders from /proc.
pub fn take_listns() -> Result<OneShot, SnapshotError> {
    let mut phases = Phases::start();
    let (records, scan) = listns_records()?;
    phases.extend(&scan.phases);
    let store = NsStore::from_snapshot(&records, scan, Clock::new(), Clock::now_boot_ns());
    phases.mark("store");
    Ok(OneShot { source: Source::Listns, store, walk: None, phases: phases.into_list() })
}

/// Every namespace listns(2) lists (and the sockets' net namespaces) as
/// records, and the holders /proc shows.
pub fn listns_records() -> Result<(Vec<NsInfoRecord>, HolderScan), SnapshotError> {
    let listed = crate::procfs::listns::list().map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => SnapshotError::NoListns,
        _ => SnapshotError::Listns(e),
    })?;
    let found: Vec<namespaces::ProcNs> = listed
        .into_iter()
        .map(|n| namespaces::ProcNs {
            key: crate::model::NsKey::new(n.ns_type, n.inode),
            id: (n.id != 0).then_some(n.id),
            owner: n.owner,
            parent: n.parent,
            reached_only_via_ioctl: false,
        })
        .collect();
    let scan = holders::scan_excluding(&[std::process::id()])?;
    Ok((records_of(&found), scan))
}

/// The lsns method as namespace records (refcounts unknown, levels from the
/// parent chains) and the holders the same /proc pass found.
pub fn proc_records() -> Result<(Vec<NsInfoRecord>, HolderScan), SnapshotError> {
    let scan = holders::scan_excluding(&[std::process::id()])?;
    let found = namespaces::snapshot(&scan)?;
    Ok((records_of(&found), scan))
}

/// Snapshot records of namespaces found outside the kernel walk (refcounts
/// unknown, levels from the parent chains).
fn records_of(found: &[namespaces::ProcNs]) -> Vec<NsInfoRecord> {
    use nstrace_common::{
        event::{ACTIVE_UNKNOWN, COUNT_UNKNOWN, EventHeader, EventKind, NsRef, UID_UNKNOWN},
        ns::NS_TYPES,
    };
    let levels = Levels::of(found);
    let nsref = |inode: Option<u64>| NsRef { id: 0, inum: inode.unwrap_or(0) as u32, _reserved: 0 };
    found
        .iter()
        .map(|p| NsInfoRecord {
            header: EventHeader {
                kind: EventKind::NsInfo as u32,
                size: size_of::<NsInfoRecord>() as u32,
                ts_ns: 0,
                tgid: 0,
                tid: 0,
            },
            ns_type: p.key.ns_type as u32,
            level: levels.level(p.key.inode),
            id: p.id.unwrap_or(0),
            inum: p.key.inum(),
            refcount: REFCOUNT_UNKNOWN,
            owner: nsref(p.owner),
            parent: nsref(p.parent),
            kaddr: 0,
            active: ACTIVE_UNKNOWN,
            charged_uid: UID_UNKNOWN,
            charged: 0,
            charged_counts: [COUNT_UNKNOWN; NS_TYPES],
            limits: [COUNT_UNKNOWN; NS_TYPES],
        })
        .collect()
}

//! Snapshots of every namespace on the host: the kernel's own lists (the
//! tree walk, 6.18+) or, on older kernels, the lsns method over /proc;
//! joined with the holders found in /proc.

pub mod kernel;
pub mod pinned;
pub mod proc;

use std::collections::{BTreeMap, HashMap};

use nstrace_common::{event::NsInfoRecord, ns::NsType};
use serde::Serialize;

use crate::{
    containers::Container,
    holders::{self, HolderScan, HoldersError},
    loader::LoaderError,
    model::{Holder, NsKey},
};

/// Where the list of namespaces comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The kernel's per-type namespace lists, read by the eBPF tree walk.
    Kernel,
    /// /proc (tasks, fds, nsfs mounts) plus NS_GET_USERNS/NS_GET_PARENT.
    Proc,
}

/// Why a namespace is alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NsState {
    /// Some task uses it (incl. as pid_for_children / time_for_children).
    Active,
    /// No task; pinned by an nsfs bind mount.
    Mounted,
    /// No task, no mount; an open nsfs fd holds it.
    FdOnly,
    /// Alive in the kernel, but no task, fd or mount holds it: kernel
    /// references (an owned namespace, a socket, ...).
    Orphaned,
}

impl NsState {
    pub fn name(self) -> &'static str {
        match self {
            NsState::Active => "active",
            NsState::Mounted => "mounted",
            NsState::FdOnly => "fd-only",
            NsState::Orphaned => "orphaned",
        }
    }

    pub fn of(holders: &[Holder]) -> NsState {
        let has = |f: fn(&Holder) -> bool| holders.iter().any(f);
        if has(|h| matches!(h, Holder::Task { .. })) {
            NsState::Active
        } else if has(|h| matches!(h, Holder::Mount { .. })) {
            NsState::Mounted
        } else if has(|h| matches!(h, Holder::Fd { .. })) {
            NsState::FdOnly
        } else {
            NsState::Orphaned
        }
    }
}

/// One namespace with everything known about it.
#[derive(Clone, Debug, Serialize)]
pub struct NsRow {
    /// The kernel's never-reused namespace id (6.18+ or NS_GET_ID).
    pub id: Option<u64>,
    pub inode: u64,
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub state: NsState,
    /// Number of processes holding it as a task.
    pub tasks: usize,
    pub pids: Vec<u32>,
    pub holders: Vec<Holder>,
    /// `ns_common.__ns_ref` (kernel source only).
    pub refcount: Option<u32>,
    /// Inode of the owning user namespace (for user namespaces: the parent).
    pub owner: Option<u64>,
    /// Inode of the parent namespace (pid and user namespaces).
    pub parent: Option<u64>,
    /// Nesting level (pid and user namespaces).
    pub level: Option<u32>,
    /// `ip netns` names.
    pub names: Vec<String>,
    /// Command of the first task.
    pub command: Option<String>,
    /// Containers whose tasks use it (from their cgroup paths).
    pub containers: Vec<Container>,
}

impl NsRow {
    /// A row with nothing known but its identity (state: orphaned).
    pub fn new(ns_type: NsType, inode: u64) -> NsRow {
        bare_row(NsKey { ns_type, inode })
    }

    pub fn key(&self) -> NsKey {
        NsKey { ns_type: self.ns_type, inode: self.inode }
    }
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub source: Source,
    pub rows: Vec<NsRow>,
    /// Walk statistics (kernel source).
    pub walk: Option<kernel::WalkStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("kernel snapshot: {0}")]
    Loader(#[from] LoaderError),
    #[error("kernel snapshot: {0}")]
    Walk(#[from] kernel::WalkError),
    #[error("scanning /proc: {0}")]
    Holders(#[from] HoldersError),
    #[error("proc snapshot: {0}")]
    Proc(#[from] proc::SnapshotError),
    #[error("neither source works on this kernel: kernel walk: {kernel}; /proc: {proc}")]
    NoSource { kernel: String, proc: String },
}

/// Takes a snapshot from `source`, or the best source available.
pub fn take(source: Option<Source>) -> Result<Snapshot, SnapshotError> {
    match source {
        Some(Source::Kernel) => take_kernel(),
        Some(Source::Proc) => take_proc(),
        None => match take_kernel() {
            Ok(s) => Ok(s),
            Err(kernel_err) => {
                log::info!("kernel snapshot unavailable ({kernel_err}); using /proc");
                take_proc().map_err(|proc_err| SnapshotError::NoSource {
                    kernel: kernel_err.to_string(),
                    proc: proc_err.to_string(),
                })
            }
        },
    }
}

/// The tree walk, then the holders.
pub fn take_kernel() -> Result<Snapshot, SnapshotError> {
    let t = std::time::Instant::now();
    // Held while walking: one-shot runs share the pinned walk maps.
    let (mut walker, _lock) = pinned::walker()?;
    log::debug!("walk programs ready at {:?}", t.elapsed());
    let (records, mut stats) = walker.walk_all()?;
    let tasks = walker.walk_tasks(&mut stats)?;
    log::debug!("walks done at {:?}", t.elapsed());
    let scan = holders::scan_with_kernel_tasks(&[std::process::id()], &tasks)?;
    log::debug!("/proc scan done at {:?}", t.elapsed());
    let rows = assemble(&records, scan);
    log::debug!("rows assembled at {:?}", t.elapsed());
    Ok(Snapshot { source: Source::Kernel, rows, walk: Some(stats) })
}

/// Rows from a namespace walk and a holder scan (see
/// [`holders::scan_with_kernel_tasks`]).
pub fn assemble(records: &[NsInfoRecord], scan: HolderScan) -> Vec<NsRow> {
    let mut rows: BTreeMap<NsKey, NsRow> = BTreeMap::new();
    for r in records.iter().filter(|r| r.refcount > 0) {
        let Some(ns_type) = NsType::from_u32(r.ns_type) else { continue };
        let key = NsKey { ns_type, inode: r.inum as u64 };
        let tree = matches!(ns_type, NsType::Pid | NsType::User);
        rows.insert(
            key,
            NsRow {
                id: (r.id != 0).then_some(r.id),
                refcount: crate::table::refcount_of(r),
                owner: (r.owner.inum != 0).then_some(r.owner.inum as u64),
                parent: (tree && r.parent.inum != 0).then_some(r.parent.inum as u64),
                level: tree.then_some(r.level),
                ..bare_row(key)
            },
        );
    }
    // Namespaces created after the walk but seen by the scan still get a row.
    for key in scan.holders.keys() {
        rows.entry(*key).or_insert_with(|| bare_row(*key));
    }
    attach_holders(rows, scan)
}

/// The lsns method plus nsfs ioctls.
pub fn take_proc() -> Result<Snapshot, SnapshotError> {
    let scan = holders::scan_excluding(&[std::process::id()])?;
    let mut rows: BTreeMap<NsKey, NsRow> = BTreeMap::new();
    let found = proc::snapshot(&scan)?;
    let levels = Levels::of(&found);
    for p in found {
        let tree = matches!(p.key.ns_type, NsType::Pid | NsType::User);
        rows.insert(
            p.key,
            NsRow {
                id: p.id,
                owner: p.owner,
                parent: if tree { p.parent } else { None },
                level: tree.then(|| levels.level(p.key.inode)),
                ..bare_row(p.key)
            },
        );
    }
    let rows = attach_holders(rows, scan);
    Ok(Snapshot { source: Source::Proc, rows, walk: None })
}

/// Nesting levels of pid and user namespaces from their parent links.
struct Levels(HashMap<u64, u64>);

impl Levels {
    fn of(found: &[proc::ProcNs]) -> Levels {
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

/// The lsns method as namespace records, for the engine on kernels without
/// the tree walk: refcounts unknown, levels from the parent chains.
pub fn proc_records() -> Result<Vec<NsInfoRecord>, SnapshotError> {
    use nstrace_common::event::{EventHeader, EventKind, NsRef};
    let scan = holders::scan_excluding(&[std::process::id()])?;
    let found = proc::snapshot(&scan)?;
    let levels = Levels::of(&found);
    let nsref = |inode: Option<u64>| NsRef { id: 0, inum: inode.unwrap_or(0) as u32, _reserved: 0 };
    Ok(found
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
            inum: p.key.inode as u32,
            refcount: crate::table::REFCOUNT_UNKNOWN,
            owner: nsref(p.owner),
            parent: nsref(p.parent),
            kaddr: 0,
        })
        .collect())
}

fn bare_row(key: NsKey) -> NsRow {
    NsRow {
        id: None,
        inode: key.inode,
        ns_type: key.ns_type,
        state: NsState::Orphaned,
        tasks: 0,
        pids: Vec::new(),
        holders: Vec::new(),
        refcount: None,
        owner: None,
        parent: None,
        level: None,
        names: Vec::new(),
        command: None,
        containers: Vec::new(),
    }
}

fn attach_holders(mut rows: BTreeMap<NsKey, NsRow>, mut scan: HolderScan) -> Vec<NsRow> {
    for (key, row) in rows.iter_mut() {
        // Moved, not cloned: at 100,000 namespaces a copy is megabytes.
        let holders = scan.holders.remove(key).unwrap_or_default();
        let mut pids: Vec<u32> = holders
            .iter()
            .filter_map(|h| match h {
                Holder::Task { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        row.command = pids.first().and_then(|first| {
            holders.iter().find_map(|h| match h {
                Holder::Task { pid, comm, .. } if pid == first => Some(comm.clone()),
                _ => None,
            })
        });
        let mut containers: Vec<Container> = pids
            .iter()
            .filter_map(|p| scan.processes.get(p))
            .filter_map(|p| crate::containers::from_cgroup(&p.cgroup))
            .collect();
        containers.sort();
        containers.dedup();
        row.containers = containers;
        row.tasks = pids.len();
        row.pids = pids;
        row.state = NsState::of(&holders);
        row.holders = holders;
        if key.ns_type == NsType::Net {
            row.names = scan.netns_names.remove(&key.inode).unwrap_or_default();
        }
    }
    rows.into_values().collect()
}

/// Rows by inode, for lookups.
pub fn by_inode(rows: &[NsRow]) -> HashMap<u64, &NsRow> {
    rows.iter().map(|r| (r.inode, r)).collect()
}

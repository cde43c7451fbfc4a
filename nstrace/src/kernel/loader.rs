//! Loads the eBPF object, fills its configuration from BTF, attaches hook
//! families and hands out their ring buffers.

use std::{io, os::fd::AsFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf},
    programs::{FEntry, FExit, KProbe, ProgramError, RawTracePoint, TracePoint},
};
use nstrace_common::{
    config::{Config, config_flags},
    names,
};

use crate::{
    kernel::btf::{Btf, BtfError},
    kernel::btf_offsets::{OffsetsError, has_ns_tree, kernel_offsets},
    kernel::mechanism::{Create, Destroy},
    kernel::ring::EventStream,
    kernel::test_run::WalkProgram,
    model::NsKey,
};

/// The eBPF object built by build.rs (empty when built without bpf-linker).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nstrace"));
/// A hash of [`EBPF_OBJECT`], computed by build.rs.
pub const EBPF_OBJECT_KEY: &str = include_str!(concat!(env!("OUT_DIR"), "/nstrace.key"));

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(
        "this nstrace binary was built without its eBPF programs (bpf-linker was missing or AYA_BUILD_SKIP was set); run `cargo xtask setup` and rebuild"
    )]
    NoPrograms,
    #[error("reading kernel BTF")]
    Btf(#[from] BtfError),
    #[error("finding kernel struct offsets in BTF")]
    Offsets(#[from] OffsetsError),
    #[error("loading the eBPF object")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("program {name}")]
    Program { name: &'static str, source: ProgramError },
    #[error("map {name}")]
    Map { name: &'static str, source: aya::maps::MapError },
    #[error("attaching {name} to raw tracepoint {tracepoint}")]
    Attach { name: &'static str, tracepoint: &'static str, source: ProgramError },
    #[error("attaching {name} to kernel function {function}")]
    AttachFunction { name: &'static str, function: &'static str, source: ProgramError },
    #[error("reading kernel BTF for fentry/fexit")]
    AyaBtf(#[from] aya::BtfError),
    #[error("pinning {name}")]
    Pin { name: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("syscall tracepoints")]
    Tracefs(#[from] crate::kernel::tracefs::TracefsError),
    #[error("polling the ring buffer")]
    Io(#[from] io::Error),
}

/// Options for [`Tracer::load`].
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Size of the event ring buffer in bytes (a power of two, multiple of the page size).
    pub events_ring_bytes: u32,
    /// Capacity of the map of known namespaces.
    pub known_entries: u32,
    /// The create mechanism is the task and syscall tracepoints
    /// ([`config_flags::CREATES_FROM_SYSCALLS`]).
    pub creates_from_syscalls: bool,
    /// A record for every fork and exec ([`config_flags::TASK_RECORDS`]).
    pub task_records: bool,
    /// The destroy mechanism is an exact hook ([`config_flags::EXACT_DESTROY`]).
    pub exact_destroy: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            events_ring_bytes: 4 * 1024 * 1024,
            known_entries: 1 << 18,
            creates_from_syscalls: false,
            task_records: false,
            exact_destroy: false,
        }
    }
}

impl LoadOptions {
    /// For one-shot snapshots: the event maps are never used, so they are
    /// made as small as the kernel allows (creating them is most of the cost
    /// of loading).
    pub fn snapshot_only() -> LoadOptions {
        LoadOptions { events_ring_bytes: 4096, known_entries: 1, ..LoadOptions::default() }
    }
}

/// Loads program `name` of type `$kind` (FEntry or FExit: same API, no
/// shared trait) against kernel function `function` and attaches it.
macro_rules! attach_btf_traced {
    ($tracer:expr, $kind:ty, $name:expr, $function:expr) => {{
        let (name, function) = ($name, $function);
        $tracer.parse_aya_btf()?;
        let btf = $tracer.aya_btf.as_ref().expect("parsed above");
        let prog = $tracer.ebpf.program_mut(name).ok_or(LoaderError::MissingProgram(name))?;
        let prog: &mut $kind = prog.try_into().map_err(|source| LoaderError::Program { name, source })?;
        prog.load(function, btf).map_err(|source| LoaderError::Program { name, source })?;
        prog.attach().map_err(|source| LoaderError::AttachFunction { name, function, source })?;
        Ok(())
    }};
}

/// The loaded eBPF object and what was learned while loading it.
pub struct Tracer {
    ebpf: Ebpf,
    config: Config,
    aya_btf: Option<aya::Btf>,
}

impl Tracer {
    /// Reads offsets from BTF and loads the object (no program attached yet).
    pub fn load(opts: &LoadOptions) -> Result<Tracer, LoaderError> {
        if EBPF_OBJECT.is_empty() {
            return Err(LoaderError::NoPrograms);
        }
        let t = std::time::Instant::now();
        let btf = Btf::from_sys_fs()?;
        let offsets = kernel_offsets(&btf)?;
        log::debug!("BTF offsets in {:?}", t.elapsed());
        let mut flags = config_flags::READY;
        if has_ns_tree(&offsets) {
            flags |= config_flags::HAS_NS_TREE;
        }
        if opts.creates_from_syscalls {
            flags |= config_flags::CREATES_FROM_SYSCALLS;
        }
        if opts.task_records {
            flags |= config_flags::TASK_RECORDS;
        }
        if opts.exact_destroy {
            flags |= config_flags::EXACT_DESTROY;
        }
        let (tp_arg0, tp_arg1, tp_ret) = syscall_record_offsets();
        let tp_arg3 = mount_record_offset(tp_arg1);
        let config = Config {
            offsets,
            self_tgid: std::process::id(),
            flags,
            tp_arg0,
            tp_arg1,
            tp_ret,
            tp_arg3,
            destroy_work_fns: destroy_work_fns(),
        };
        let ebpf = EbpfLoader::new()
            // Rust eBPF has no CO-RE relocations (offsets come from our own
            // BTF reading), so aya need not parse the kernel's BTF again.
            .btf(None)
            .override_global(names::CONFIG_GLOBAL, &config, true)
            .map_max_entries(names::EVENTS_MAP, opts.events_ring_bytes)
            .map_max_entries(names::KNOWN_MAP, opts.known_entries)
            .load(EBPF_OBJECT)?;
        log::debug!("object loaded at {:?}", t.elapsed());
        let mut tracer = Tracer { ebpf, config, aya_btf: None };
        tracer.close_fork_gate()?;
        Ok(tracer)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the kernel has per-type namespace lists the walk can read.
    pub fn has_ns_tree(&self) -> bool {
        self.config.flags & config_flags::HAS_NS_TREE != 0
    }

    fn raw_tracepoint(&mut self, name: &'static str) -> Result<&mut RawTracePoint, LoaderError> {
        let prog = self.ebpf.program_mut(name).ok_or(LoaderError::MissingProgram(name))?;
        prog.try_into().map_err(|source| LoaderError::Program { name, source })
    }

    /// Loads and attaches the task lifecycle family (fork, exec, exit).
    pub fn attach_task_hooks(&mut self) -> Result<(), LoaderError> {
        for tp in names::TASK_TRACEPOINTS {
            let (name, tracepoint) = (tp.program, tp.name);
            let prog = self.raw_tracepoint(name)?;
            prog.load().map_err(|source| LoaderError::Program { name, source })?;
            prog.attach(tracepoint).map_err(|source| LoaderError::Attach { name, tracepoint, source })?;
        }
        Ok(())
    }

    /// Loads and attaches the unshare/setns family (syscall tracepoints).
    pub fn attach_syscall_hooks(&mut self) -> Result<(), LoaderError> {
        if self.config.tp_ret == nstrace_common::config::ABSENT {
            return Err(LoaderError::Tracefs(syscall_record_error()));
        }
        self.attach_tracepoints(&names::SYSCALL_TRACEPOINTS)
    }

    /// Every fork is checked until [`Tracer::open_fork_gate`] (see the
    /// eBPF crate's `hooks::forkgate`): written before any hook attaches.
    fn close_fork_gate(&mut self) -> Result<(), LoaderError> {
        let name = names::FORK_GATE_MAP;
        let map = self.ebpf.map_mut(name).ok_or(LoaderError::MissingMap(name))?;
        let mut gate: Array<_, u64> = Array::try_from(map).map_err(|source| LoaderError::Map { name, source })?;
        gate.set(0, nstrace_common::config::GATE_UNKNOWN, 0).map_err(|source| LoaderError::Map { name, source })
    }

    /// Counts the tasks that were pending before the hooks attached (their
    /// forks may change namespaces without CLONE_NEW*; `pending`, from
    /// /proc), then opens the fork gate: from here a plain fork is decided
    /// with no kernel read while no task is pending. Call after the task
    /// and syscall hooks are attached (they keep the count from then on).
    pub fn open_fork_gate(&mut self, pending: impl Fn() -> Vec<u32>) -> Result<usize, LoaderError> {
        use nstrace_common::config::fork_gate_op;
        let seed = self.seed_program()?;
        let tids = pending();
        for &tid in &tids {
            seed.run_with(&[fork_gate_op::ADD, u64::from(tid)])?;
        }
        // One that went between the scan and its count would stay counted.
        for &tid in &tids {
            if !std::path::Path::new(&format!("/proc/{tid}")).exists() {
                seed.run_with(&[fork_gate_op::REMOVE, u64::from(tid)])?;
            }
        }
        seed.run_with(&[fork_gate_op::OPEN, 0])?;
        Ok(tids.len())
    }

    /// Tells the hooks nstrace's own namespace set (they take those
    /// namespaces' ids and inodes without reading them: see the eBPF
    /// crate's `maps::OwnSet`). Run in nstrace itself, before the hooks
    /// attach.
    pub fn seed_own_set(&mut self) -> Result<(), LoaderError> {
        self.seed_program()?.run_with(&[nstrace_common::config::fork_gate_op::SEED_OWN, 0])?;
        Ok(())
    }

    /// The seed program (fork gate, own set), loaded at its first use.
    fn seed_program(&mut self) -> Result<crate::kernel::test_run::WalkProgram, LoaderError> {
        let name = names::PROG_FORK_GATE_SEED;
        let prog = self.raw_tracepoint(name)?;
        if prog.fd().is_err() {
            prog.load().map_err(|source| LoaderError::Program { name, source })?;
        }
        crate::kernel::test_run::WalkProgram::from_loaded(prog).map_err(|source| LoaderError::Program { name, source })
    }

    /// Loads and attaches (classic) tracepoint programs.
    fn attach_tracepoints(&mut self, tracepoints: &[names::Tracepoint]) -> Result<(), LoaderError> {
        for tp in tracepoints {
            let name = tp.program;
            let prog = self.ebpf.program_mut(name).ok_or(LoaderError::MissingProgram(name))?;
            let prog: &mut TracePoint = prog.try_into().map_err(|source| LoaderError::Program { name, source })?;
            prog.load().map_err(|source| LoaderError::Program { name, source })?;
            prog.attach(tp.category, tp.name).map_err(|source| LoaderError::Attach {
                name,
                tracepoint: tp.name,
                source,
            })?;
        }
        Ok(())
    }

    /// Loads and attaches the bind-mount family (mount/move_mount syscall
    /// tracepoints), which says who pinned a namespace.
    pub fn attach_mount_hooks(&mut self) -> Result<(), LoaderError> {
        if self.config.tp_arg3 == nstrace_common::config::ABSENT {
            return Err(LoaderError::Tracefs(crate::kernel::tracefs::TracefsError::NoField {
                event: "syscalls/sys_enter_mount, sys_enter_move_mount".into(),
                field: "dir_name, flags, to_pathname at the expected offsets".into(),
            }));
        }
        self.attach_tracepoints(&names::MOUNT_TRACEPOINTS)
    }

    /// Attaches the destroy-hint hook (workqueue_execute_end) when kallsyms
    /// names at least one namespace-destroying work function. Returns
    /// whether it is attached.
    fn attach_destroy_hints(&mut self) -> Result<bool, LoaderError> {
        if self.config.destroy_work_fns.iter().all(|&f| f == 0) {
            return Ok(false);
        }
        self.attach_raw(names::PROG_WORKQUEUE_EXECUTE_END, "workqueue_execute_end")?;
        Ok(true)
    }

    /// Attaches the hooks that bound a network namespace's teardown: the
    /// start of each `cleanup_net` run (workqueue_execute_start) and its end
    /// (the destroy hint, attached here too where an exact destroy hook
    /// made it unnecessary). Returns whether teardown is tracked: kallsyms
    /// names `cleanup_net` and both attach.
    pub fn attach_cleanup_hooks(&mut self, end_attached: bool) -> Result<bool, LoaderError> {
        use nstrace_common::config::WORK_CLEANUP_NET;
        if self.config.destroy_work_fns[WORK_CLEANUP_NET] == 0
            || self.config.offsets.work_func == nstrace_common::config::ABSENT
        {
            return Ok(false);
        }
        if !end_attached {
            self.attach_raw(names::PROG_WORKQUEUE_EXECUTE_END, "workqueue_execute_end")?;
        }
        self.attach_raw(names::PROG_WORKQUEUE_EXECUTE_START, "workqueue_execute_start")?;
        Ok(true)
    }

    fn attach_raw(&mut self, name: &'static str, tracepoint: &'static str) -> Result<(), LoaderError> {
        let prog = self.raw_tracepoint(name)?;
        prog.load().map_err(|source| LoaderError::Program { name, source })?;
        prog.attach(tracepoint).map_err(|source| LoaderError::Attach { name, tracepoint, source })?;
        Ok(())
    }

    /// Loads and attaches the programs of a creation mechanism (none for
    /// `tracepoints`: the task and syscall hooks report first sightings).
    pub fn attach_create(&mut self, m: Create) -> Result<(), LoaderError> {
        use nstrace_common::names::*;
        match m {
            Create::Tracepoints => Ok(()),
            Create::FexitNsTree => self.attach_fexit(PROG_FEXIT_NS_TREE_ADD, "__ns_tree_add_raw"),
            Create::FexitConstructors => {
                for c in CONSTRUCTORS {
                    self.attach_fexit(c.fexit, c.function)?;
                }
                self.attach_fexit(PROG_FEXIT_CREATE_USER_NS, "create_user_ns")
            }
            Create::KprobeConstructors => {
                for c in CONSTRUCTORS {
                    self.attach_kprobe(c.kretprobe, c.function)?;
                }
                Ok(())
            }
        }
    }

    /// Loads and attaches the programs of a destruction mechanism. The
    /// walk-based ones only get the workqueue hint (when kallsyms names a
    /// destroying work function); returns whether a hook is attached.
    pub fn attach_destroy(&mut self, m: Destroy) -> Result<bool, LoaderError> {
        use nstrace_common::names::*;
        match m {
            Destroy::FentryNsTree => self.attach_fentry(PROG_FENTRY_NS_TREE_REMOVE, "__ns_tree_remove").map(|()| true),
            Destroy::FentryFreeInum => self.attach_fentry(PROG_FENTRY_FREE_INUM, "proc_free_inum").map(|()| true),
            Destroy::KprobeFreeInum => self.attach_kprobe(PROG_KPROBE_FREE_INUM, "proc_free_inum").map(|()| true),
            Destroy::TreeWalk | Destroy::ProcRescan => self.attach_destroy_hints(),
        }
    }

    /// aya's own parse of the kernel BTF, which fentry/fexit loads need
    /// (parsed once, on first use).
    fn parse_aya_btf(&mut self) -> Result<(), LoaderError> {
        if self.aya_btf.is_none() {
            self.aya_btf = Some(aya::Btf::from_sys_fs()?);
        }
        Ok(())
    }

    fn attach_fentry(&mut self, name: &'static str, function: &'static str) -> Result<(), LoaderError> {
        attach_btf_traced!(self, FEntry, name, function)
    }

    fn attach_fexit(&mut self, name: &'static str, function: &'static str) -> Result<(), LoaderError> {
        attach_btf_traced!(self, FExit, name, function)
    }

    fn attach_kprobe(&mut self, name: &'static str, function: &'static str) -> Result<(), LoaderError> {
        let prog = self.ebpf.program_mut(name).ok_or(LoaderError::MissingProgram(name))?;
        let prog: &mut KProbe = prog.try_into().map_err(|source| LoaderError::Program { name, source })?;
        prog.load().map_err(|source| LoaderError::Program { name, source })?;
        prog.attach(function, 0).map_err(|source| LoaderError::AttachFunction { name, function, source })?;
        Ok(())
    }

    /// The map of namespaces already reported as created.
    pub fn known(&mut self) -> Result<KnownMap, LoaderError> {
        let name = names::KNOWN_MAP;
        let map = self.ebpf.take_map(name).ok_or(LoaderError::MissingMap(name))?;
        Ok(KnownMap(HashMap::try_from(map).map_err(|source| LoaderError::Map { name, source })?))
    }

    /// Loads a program that is only ever run with BPF_PROG_TEST_RUN and
    /// returns an owned handle to it (aya's object keeps its own).
    fn load_for_test_run(&mut self, name: &'static str) -> Result<WalkProgram, LoaderError> {
        let err = |source| LoaderError::Program { name, source };
        let prog = self.raw_tracepoint(name)?;
        prog.load().map_err(err)?;
        WalkProgram::from_loaded(prog).map_err(err)
    }

    /// Pins the walk maps under `dir` (before [`Tracer::walker`] takes them).
    pub fn pin_walk_maps(&self, dir: &std::path::Path) -> Result<(), LoaderError> {
        for name in [names::WALK_MAP, names::WALK_FDS_MAP, names::WALK_STATE_MAP, names::TREE_WATCH_MAP] {
            let map = self.ebpf.map(name).ok_or(LoaderError::MissingMap(name))?;
            map.pin(dir.join(name)).map_err(|e| LoaderError::Pin { name, source: Box::new(e) })?;
        }
        Ok(())
    }

    /// Pins the (loaded) walk programs under `dir`.
    pub fn pin_walk_programs(&mut self, dir: &std::path::Path) -> Result<(), LoaderError> {
        let fds = self.ebpf.program(names::PROG_FD_WALK).is_some_and(|p| p.fd().is_ok());
        let fds = fds.then_some(names::PROG_FD_WALK);
        let watch = self.ebpf.program(names::PROG_NS_CHANGES).is_some_and(|p| p.fd().is_ok());
        let watch = watch.then_some(names::PROG_NS_CHANGES);
        for name in [names::PROG_NS_WALK, names::PROG_TASK_WALK].into_iter().chain(fds).chain(watch) {
            self.raw_tracepoint(name)?
                .pin(dir.join(name))
                .map_err(|e| LoaderError::Pin { name, source: Box::new(e) })?;
        }
        Ok(())
    }

    /// Loads the walk programs (namespaces, tasks) and takes their maps
    pub fn walk_parts(&mut self) -> Result<WalkParts, LoaderError> {
        let ns_prog = self.load_for_test_run(names::PROG_NS_WALK)?;
        let task_prog = self.load_for_test_run(names::PROG_TASK_WALK)?;
        // Without it, holders by fd come from /proc: a kernel the fd walk
        // does not verify on still gets the rest of the snapshot.
        let fd_prog = match self.load_for_test_run(names::PROG_FD_WALK) {
            Ok(p) => Some(p),
            Err(e) => {
                log::info!("fd walk unavailable, fds from /proc: {}", crate::chain::Chain(&e));
                None
            }
        };
        let ring = self.take_ring_data(names::WALK_MAP)?;
        let fd_ring = self.take_ring_data(names::WALK_FDS_MAP)?;
        let name = names::WALK_STATE_MAP;
        let state_map = self.ebpf.take_map(name).ok_or(LoaderError::MissingMap(name))?;
        let err = |source| LoaderError::Map { name, source };
        let Map::Array(data) = &state_map else {
            return Err(err(aya::maps::MapError::InvalidMapType { map_type: 0 }));
        };
        // A second handle for the fd walk's thread.
        let second = data.fd().as_fd().try_clone_to_owned().map_err(|e| err(aya::maps::MapError::IoError(e)))?;
        let fd_state = Array::try_from(Map::Array(MapData::from_fd(second).map_err(err)?)).map_err(err)?;
        let state = Array::try_from(state_map).map_err(err)?;
        let watch = self.tree_watcher()?;
        Ok(WalkParts { ns_prog, task_prog, fd_prog, ring, state, fd_ring, fd_state, watch })
    }

    /// The change check, where the kernel has the 6.18 per-type lists
    /// (None elsewhere: walks then run on a timer). Takes the map the
    /// namespace walk notes list heads in.
    fn tree_watcher(&mut self) -> Result<Option<crate::kernel::tree_watch::TreeWatcher>, LoaderError> {
        let o = &self.config.offsets;
        let absent = nstrace_common::config::ABSENT;
        if [o.ns_tree_list, o.ns_tree_seq, o.ns_tree_type].contains(&absent) {
            return Ok(None);
        }
        let prog = self.load_for_test_run(names::PROG_NS_CHANGES)?;
        let name = names::TREE_WATCH_MAP;
        let map = self.ebpf.take_map(name).ok_or(LoaderError::MissingMap(name))?;
        let map = Array::try_from(map).map_err(|source| LoaderError::Map { name, source })?;
        Ok(Some(crate::kernel::tree_watch::TreeWatcher::new(prog, map)))
    }

    fn take_ring_data(&mut self, name: &'static str) -> Result<MapData, LoaderError> {
        match self.ebpf.take_map(name).ok_or(LoaderError::MissingMap(name))? {
            Map::RingBuf(data) => Ok(data),
            _ => Err(LoaderError::Map { name, source: aya::maps::MapError::InvalidMapType { map_type: 0 } }),
        }
    }

    fn take_ring(&mut self, name: &'static str) -> Result<RingBuf<MapData>, LoaderError> {
        let map = self.ebpf.take_map(name).ok_or(LoaderError::MissingMap(name))?;
        RingBuf::try_from(map).map_err(|source| LoaderError::Map { name, source })
    }

    /// The lifecycle event stream (takes the ring buffer: call once).
    pub fn events(&mut self) -> Result<EventStream, LoaderError> {
        let ring = self.take_ring(names::EVENTS_MAP)?;
        let lost_map = self.ebpf.take_map(names::LOST_MAP).ok_or(LoaderError::MissingMap(names::LOST_MAP))?;
        let lost =
            PerCpuArray::try_from(lost_map).map_err(|source| LoaderError::Map { name: names::LOST_MAP, source })?;
        EventStream::new(ring, lost)
    }
}

/// Offsets of arg0/arg1 in sys_enter_* and of ret in sys_exit_* records,
/// read from tracefs; ABSENT when tracefs or the tracepoints are missing.
fn syscall_record_offsets() -> (u32, u32, u32) {
    use crate::kernel::tracefs::field_offset;
    use nstrace_common::config::ABSENT;
    let read = || -> Result<(u32, u32, u32), crate::kernel::tracefs::TracefsError> {
        let unshare = field_offset("syscalls", "sys_enter_unshare", "unshare_flags")?;
        let fd = field_offset("syscalls", "sys_enter_setns", "fd")?;
        let flags = field_offset("syscalls", "sys_enter_setns", "flags")?;
        let ret = field_offset("syscalls", "sys_exit_setns", "ret")?;
        let ret2 = field_offset("syscalls", "sys_exit_unshare", "ret")?;
        if unshare != fd || ret != ret2 {
            // The programs share one offset per argument position.
            return Err(crate::kernel::tracefs::TracefsError::NoField {
                event: "syscalls/*".into(),
                field: "arguments at matching offsets".into(),
            });
        }
        Ok((fd, flags, ret))
    };
    read().unwrap_or((ABSENT, ABSENT, ABSENT))
}

/// Offset of the fourth argument in mount/move_mount entry records (ABSENT
/// when the layout is not the one the programs assume: the second argument
/// at `arg1`, mount's flags and move_mount's to_pathname at one offset).
fn mount_record_offset(arg1: u32) -> u32 {
    use crate::kernel::tracefs::field_offset;
    let read = || -> Option<u32> {
        let dir = field_offset("syscalls", "sys_enter_mount", "dir_name").ok()?;
        let flags = field_offset("syscalls", "sys_enter_mount", "flags").ok()?;
        let to = field_offset("syscalls", "sys_enter_move_mount", "to_pathname").ok()?;
        field_offset("syscalls", "sys_exit_mount", "ret").ok()?;
        (dir == arg1 && flags == to).then_some(flags)
    };
    read().unwrap_or(nstrace_common::config::ABSENT)
}

fn syscall_record_error() -> crate::kernel::tracefs::TracefsError {
    crate::kernel::tracefs::field_offset("syscalls", "sys_exit_setns", "ret")
        .and_then(|_| crate::kernel::tracefs::field_offset("syscalls", "sys_enter_unshare", "unshare_flags"))
        .err()
        .unwrap_or(crate::kernel::tracefs::TracefsError::NoTracepoint("syscalls/sys_*_setns".into()))
}

/// Addresses of the namespace-destroying work functions, from kallsyms.
fn destroy_work_fns() -> [u64; nstrace_common::config::DESTROY_WORK_FNS] {
    use nstrace_common::config::DESTROY_WORK_FN_NAMES;
    let mut out = [0u64; nstrace_common::config::DESTROY_WORK_FNS];
    let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else { return out };
    for (addr, name) in crate::kernel::tracefs::kallsyms_text_symbols(&text) {
        if let Some(i) = DESTROY_WORK_FN_NAMES.iter().position(|n| *n == name) {
            out[i] = addr;
        }
    }
    out
}

/// Namespaces the hooks have reported (or user space declared known).
pub struct KnownMap(HashMap<MapData, u64, u64>);

/// BPF_NOEXIST: a key a hook already reported keeps its struct address.
const BPF_NOEXIST: u64 = 1;

impl KnownMap {
    /// Marks namespaces as known so the hooks do not report them (value 0:
    /// struct not known; the first hook to see the namespace fills it in).
    pub fn insert(&mut self, key: NsKey) -> Result<(), LoaderError> {
        match self.0.insert(key.wire(), 0, BPF_NOEXIST) {
            Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(|source| LoaderError::Map { name: names::KNOWN_MAP, source }),
        }
    }

    /// Forgets a dead namespace (keeps the map bounded).
    pub fn remove(&mut self, key: NsKey) {
        let _ = self.0.remove(&key.wire());
    }
}

/// The loaded walk programs and their maps, for a walker.
pub struct WalkParts {
    pub ns_prog: WalkProgram,
    pub task_prog: WalkProgram,
    /// The fd walk, where it loaded.
    pub fd_prog: Option<WalkProgram>,
    /// The walk ring (a reader is made per walk: see `ring_pos`).
    pub ring: MapData,
    pub state: Array<MapData, nstrace_common::event::WalkState>,
    /// The fd walk's ring, and its own handle on the state map.
    pub fd_ring: MapData,
    pub fd_state: Array<MapData, nstrace_common::event::WalkState>,
    /// The change check, where the kernel's lists have one.
    pub watch: Option<crate::kernel::tree_watch::TreeWatcher>,
}

//! Keeps the snapshot programs loaded between runs: the first `nstrace ls`
//! (or leaks, why) of a boot loads the walk programs and pins them and their
//! maps in bpffs; later runs open the pins and skip reading BTF, loading
//! the object and verifying the programs (most of a snapshot's cost on a
//! quiet host). Pins are keyed by the eBPF object and the boot, so a new
//! binary or a reboot loads afresh; older pins are removed then. Runs share
//! the walk maps, so a lock file serialises them.

use std::{
    fs::File,
    hash::{Hash, Hasher},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use aya::maps::{Array, Map, MapData, RingBuf};
use nstrace_common::names;

use crate::{
    kernel::loader::{EBPF_OBJECT, EBPF_OBJECT_KEY, LoadOptions, LoaderError, Tracer, WalkParts},
    kernel::test_run::WalkProgram,
    kernel::walker::{WalkError, Walker},
};

const BPFFS: &str = "/sys/fs/bpf";
/// Beside the service's socket: a container running nstrace (the
/// DaemonSet) mounts the host's /run/nstrace and /sys/fs/bpf, so it and
/// the host's own runs share the pins and this lock.
const LOCK_DIR: &str = "/run/nstrace";
const LOCK: &str = "/run/nstrace/walk.lock";

fn key() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    EBPF_OBJECT_KEY.hash(&mut h);
    boot.trim().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn ensure_bpffs() -> bool {
    let magic_ok = |p: &str| {
        let c = std::ffi::CString::new(p).unwrap_or_default();
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid path and out-pointer.
        unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as u32 == 0xcafe_4a11 }
    };
    if magic_ok(BPFFS) {
        return true;
    }
    // SAFETY: valid NUL-terminated strings; data may be NULL.
    let r = unsafe { libc::mount(c"bpf".as_ptr(), c"/sys/fs/bpf".as_ptr(), c"bpf".as_ptr(), 0, std::ptr::null()) };
    r == 0 && magic_ok(BPFFS)
}

/// Removes pins of other binaries or boots.
fn remove_stale(root: &Path, keep: &str) {
    let Ok(dirs) = std::fs::read_dir(root) else { return };
    for d in dirs.flatten() {
        if d.file_name().to_str() != Some(keep) {
            if let Ok(files) = std::fs::read_dir(d.path()) {
                files.flatten().for_each(|f| {
                    let _ = std::fs::remove_file(f.path());
                });
            }
            let _ = std::fs::remove_dir(d.path());
        }
    }
}

fn open_pins(dir: &Path) -> Result<Walker, LoaderError> {
    let prog = |name: &'static str| {
        WalkProgram::from_pin(&dir.join(name))
            .map_err(|source| LoaderError::Program { name, source: aya::programs::ProgramError::IOError(source) })
    };
    let map =
        |name: &'static str| MapData::from_pin(dir.join(name)).map_err(|source| LoaderError::Map { name, source });
    let ring = RingBuf::try_from(Map::RingBuf(map(names::WALK_MAP)?))
        .map_err(|source| LoaderError::Map { name: names::WALK_MAP, source })?;
    let state_handle = || {
        Array::try_from(Map::Array(map(names::WALK_STATE_MAP)?))
            .map_err(|source| LoaderError::Map { name: names::WALK_STATE_MAP, source })
    };
    let (state, fd_state) = (state_handle()?, state_handle()?);
    let fd_ring = RingBuf::try_from(Map::RingBuf(map(names::WALK_FDS_MAP)?))
        .map_err(|source| LoaderError::Map { name: names::WALK_FDS_MAP, source })?;
    let (ns_prog, task_prog) = (prog(names::PROG_NS_WALK)?, prog(names::PROG_TASK_WALK)?);
    // Pinned only where it loaded.
    let fd_prog = prog(names::PROG_FD_WALK).ok();
    Ok(Walker::new(WalkParts { ns_prog, task_prog, fd_prog, ring, state, fd_ring, fd_state }))
}

/// The lock every user of the pinned walk maps holds while it walks
/// (blocks until the holder is done; None when /run is not writable).
pub fn lock() -> Option<File> {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(LOCK_DIR);
    let lock = File::options().create(true).truncate(false).write(true).open(LOCK).ok();
    if let Some(f) = &lock {
        // SAFETY: a valid fd; blocks until other snapshot runs finish.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    }
    lock
}

/// A walker over the pinned programs for a long-running process (`trace`,
/// `live`, `export`, `serve`): it loads them only when no pin exists (the
/// verifier's cost, seconds under emulation, is paid once per boot), and
/// it takes [`lock`] for each walk itself ([`Walker::shared`]).
pub fn shared_walker() -> Result<Walker, WalkError> {
    let (walker, _lock) = walker()?;
    Ok(walker.shared())
}

/// A walker for a one-shot snapshot, from pins when possible, plus the lock
/// that must be held while it walks.
pub fn walker() -> Result<(Walker, Option<File>), WalkError> {
    let lock = lock();
    let root = PathBuf::from(BPFFS).join("nstrace");
    let key = key();
    let dir = root.join(&key);
    if !EBPF_OBJECT.is_empty() && ensure_bpffs() {
        if let Ok(w) = open_pins(&dir) {
            return Ok((w, lock));
        }
        remove_stale(&root, &key);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut tracer = Tracer::load(&LoadOptions::snapshot_only())?;
    if !tracer.has_ns_tree() {
        return Err(WalkError::Unsupported);
    }
    let pinnable = ensure_bpffs() && std::fs::create_dir_all(&dir).is_ok();
    if pinnable && let Err(e) = tracer.pin_walk_maps(&dir) {
        log::info!("not caching the walk programs: {}", crate::chain::Chain(&e));
    }
    let walker = Walker::load(&mut tracer)?;
    if pinnable && let Err(e) = tracer.pin_walk_programs(&dir) {
        log::info!("not caching the walk programs: {}", crate::chain::Chain(&e));
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok((walker, lock))
}

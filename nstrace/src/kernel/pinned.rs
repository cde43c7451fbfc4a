//! Keeps the snapshot programs loaded between runs: the first `nstrace ls`
//! (or leaks, why) of a boot loads the walk programs and pins them and their
//! maps in bpffs; later runs open the pins and skip reading BTF, loading
//! the object and verifying the programs (most of a snapshot's cost on a
//! quiet host). Pins are keyed by the eBPF object and the boot, so a new
//! binary or a reboot loads afresh; older pins are removed then.
//!
//! Runs share the walk maps, so they take turns: the lock is an flock on
//! the pin root itself (`/sys/fs/bpf/nstrace`), so every process that can
//! open the pins takes the same lock wherever its /run is (a container, a
//! chroot). The wait for it is bounded ([`lock_wait`]); past it the caller
//! is told who holds it ([`LockBusy`]) and answers from /proc.

use std::{
    fs::File,
    hash::{Hash, Hasher},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::maps::{Array, Map, MapData};
use nstrace_common::names;

use crate::{
    kernel::loader::{EBPF_OBJECT, EBPF_OBJECT_KEY, LoadOptions, LoaderError, Tracer, WalkParts},
    kernel::test_run::WalkProgram,
    kernel::walker::{WalkError, Walker},
};

const BPFFS: &str = "/sys/fs/bpf";
/// The pin root: every key's pins live below it, and it is the lock.
const PIN_ROOT: &str = "/sys/fs/bpf/nstrace";
/// How the pins are shared. Part of the key: builds that share them
/// differently (another lock, or readers that keep their own ring
/// positions) never open each other's pins.
const PIN_PROTOCOL: &str = "flock-pin-root, settle-ring-per-walk";
/// How long a run waits for the walk lock by default.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// The pin root in use: `NSTRACE_PIN_ROOT` (a directory in bpffs, so a
/// test run or a second installation keeps pins and lock of its own), else
/// [`PIN_ROOT`].
pub fn pin_root() -> PathBuf {
    match std::env::var_os("NSTRACE_PIN_ROOT").map(PathBuf::from) {
        Some(root) if root.starts_with(BPFFS) && root != Path::new(BPFFS) => root,
        Some(root) => {
            log::warn!("NSTRACE_PIN_ROOT={} is not a directory below {BPFFS}: using {PIN_ROOT}", root.display());
            PathBuf::from(PIN_ROOT)
        }
        None => PathBuf::from(PIN_ROOT),
    }
}

fn key() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    EBPF_OBJECT_KEY.hash(&mut h);
    PIN_PROTOCOL.hash(&mut h);
    boot.trim().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn ensure_bpffs() -> bool {
    const BPF_FS_MAGIC: u32 = 0xcafe_4a11;
    let magic_ok = |p: &str| rustix::fs::statfs(p).is_ok_and(|st| st.f_type as u32 == BPF_FS_MAGIC);
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
    let ring = map(names::WALK_MAP)?;
    let state_handle = || {
        Array::try_from(Map::Array(map(names::WALK_STATE_MAP)?))
            .map_err(|source| LoaderError::Map { name: names::WALK_STATE_MAP, source })
    };
    let (state, fd_state) = (state_handle()?, state_handle()?);
    let fd_ring = map(names::WALK_FDS_MAP)?;
    let (ns_prog, task_prog) = (prog(names::PROG_NS_WALK)?, prog(names::PROG_TASK_WALK)?);
    // Pinned only where it loaded.
    let fd_prog = prog(names::PROG_FD_WALK).ok();
    // Pinned only where the kernel's lists have a change count.
    let watch = match (prog(names::PROG_NS_CHANGES), map(names::TREE_WATCH_MAP)) {
        (Ok(p), Ok(m)) => Some(crate::kernel::tree_watch::TreeWatcher::new(
            p,
            Array::try_from(Map::Array(m))
                .map_err(|source| LoaderError::Map { name: names::TREE_WATCH_MAP, source })?,
        )),
        _ => None,
    };
    Ok(Walker::new(WalkParts { ns_prog, task_prog, fd_prog, ring, state, fd_ring, fd_state, watch }))
}

/// The walk lock, held until dropped.
#[derive(Debug)]
pub struct PinLock(#[expect(dead_code, reason = "held for its flock, released on drop")] File);

/// The walk lock was held by another process for the whole wait.
#[derive(Debug, thiserror::Error)]
#[error(
    "the walk lock ({}) is held by {} and was not released within {:.1}s",
    root.display(),
    holder.as_ref().map_or_else(|| "another process".to_string(), |h| h.to_string()),
    waited.as_secs_f64()
)]
pub struct LockBusy {
    pub root: PathBuf,
    pub holder: Option<LockHolder>,
    pub waited: Duration,
}

/// Who holds a lock, from /proc/locks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    pub comm: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.comm.is_empty() {
            // flock(1) and the like: the lock lives on in a child that inherited it.
            return write!(f, "pid {} (no longer running: a process it started holds it)", self.pid);
        }
        // comm is the process's to set: escaped.
        write!(f, "pid {} ({})", self.pid, self.comm.escape_debug())
    }
}

/// How long to wait for the walk lock: `NSTRACE_LOCK_WAIT` (seconds) or 3 s.
pub fn lock_wait() -> Duration {
    std::env::var("NSTRACE_LOCK_WAIT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(LOCK_WAIT, |s| Duration::from_secs_f64(s.min(3600.0)))
}

/// Takes the walk lock: an flock on the pin root, waiting at most `wait`.
/// None when there is no bpffs to pin in (nothing is shared then).
pub fn lock(wait: Duration) -> Result<Option<PinLock>, LockBusy> {
    if !ensure_bpffs() {
        return Ok(None);
    }
    let root = pin_root();
    let _ = std::fs::create_dir_all(&root);
    let Ok(dir) = File::open(&root) else { return Ok(None) };
    let started = Instant::now();
    loop {
        let err = match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(PinLock(dir))),
            Err(e) => std::io::Error::from(e),
        };
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.raw_os_error() != Some(libc::EINTR) {
            // A file system without flock: nothing to take turns on.
            log::info!("no walk lock on {}: {err}", root.display());
            return Ok(None);
        }
        if started.elapsed() >= wait {
            let holder = dir.metadata().ok().and_then(|m| lock_holder(&read_locks(), m.dev(), m.ino()));
            return Err(LockBusy { root, holder, waited: started.elapsed() });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_locks() -> String {
    std::fs::read_to_string("/proc/locks").unwrap_or_default()
}

/// The process holding an flock on the file (`dev`, `ino`), from the text
/// of /proc/locks (`1: FLOCK  ADVISORY  WRITE 26540 00:28:16710 0 EOF`;
/// waiters' lines carry `->`).
fn lock_holder(locks: &str, dev: u64, ino: u64) -> Option<LockHolder> {
    let want = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    locks.lines().filter(|l| !l.contains("->")).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&"FLOCK") || f.get(5) != Some(&want.as_str()) {
            return None;
        }
        let pid: u32 = f.get(4)?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim_end().to_string();
        Some(LockHolder { pid, comm })
    })
}

/// Removes this build's pins (a walk over them stalled): the next run
/// loads and pins afresh. Runs that have them open keep their own copy.
pub fn discard() {
    let dir = pin_root().join(key());
    log::warn!("discarding the walk pins in {}: a walk over them stalled", dir.display());
    let _ = std::fs::remove_dir_all(&dir);
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
/// that must be held while it walks (waited for at most [`lock_wait`]).
pub fn walker() -> Result<(Walker, Option<PinLock>), WalkError> {
    let lock = lock(lock_wait())?;
    let root = pin_root();
    let key = key();
    let dir = root.join(&key);
    if !EBPF_OBJECT.is_empty() && ensure_bpffs() {
        if let Ok(w) = open_pins(&dir) {
            log::debug!("walk pins in {}", dir.display());
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
    } else if pinnable {
        log::debug!("walk pins in {} (new)", dir.display());
    }
    Ok((walker, lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKS: &str = "1: FLOCK  ADVISORY  WRITE 26540 00:28:16710 0 EOF\n\
                         1: -> FLOCK  ADVISORY  WRITE 26999 00:28:16710 0 EOF\n\
                         2: FLOCK  ADVISORY  WRITE 26006 fe:00:10011258 0 EOF\n\
                         3: POSIX  ADVISORY  WRITE 26007 00:28:16711 0 EOF\n";

    #[test]
    fn the_holder_is_the_flock_on_that_device_and_inode_not_a_waiter() {
        let dev = libc::makedev(0, 0x28);
        assert_eq!(lock_holder(LOCKS, dev, 16710).map(|h| h.pid), Some(26540));
        assert_eq!(lock_holder(LOCKS, libc::makedev(0xfe, 0), 10011258).map(|h| h.pid), Some(26006));
        // A POSIX lock is not ours; another inode is not ours.
        assert_eq!(lock_holder(LOCKS, dev, 16711), None);
        assert_eq!(lock_holder(LOCKS, dev, 1), None);
    }
}

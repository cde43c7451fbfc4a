//! The event ring: reads the hooks' records as they come (woken by a
//! record after a quiet spell, then batched for up to [`DRAIN_EVERY`],
//! rechecked [`DRAIN_EVERY`] after each drain that found records, or woken
//! at once when the ring fills) and decodes each in
//! the one decoder (`nstrace_common::decode`); counts the records the
//! hooks could not reserve room for.

use aya::maps::{MapData, PerCpuArray, RingBuf};
use nstrace_common::{
    decode::StreamItem,
    event::{EventKind, MAX_EVENT_KIND},
    names,
};

use crate::kernel::loader::LoaderError;

/// The shortest gap between two drains, and the recheck after a drain that
/// found records: the hooks let at most one record per 50 ms wake the
/// reader (see the eBPF crate's `maps::wakeup_flags`), which waits until
/// this long after its last drain so a burst is read in one batch; the
/// recheck reads records that came silently since. The most an event waits
/// before user space sees it; a quiet ring costs no timer at all.
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Reads decoded records from the event ring buffer.
pub struct EventStream {
    ring: tokio::io::unix::AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
    /// The total (slot 0) when the per-kind counts were last read, and them.
    lost_seen: (u64, Vec<(EventKind, u64)>),
    /// When the ring was last drained.
    last_drain: tokio::time::Instant,
    /// Set by a drain that found records: look again then, whether or not
    /// a record woke us (the hooks submit most records silently).
    recheck: Option<tokio::time::Instant>,
}

impl EventStream {
    /// The stream over the events ring and the per-kind lost counters.
    pub(super) fn new(ring: RingBuf<MapData>, lost: PerCpuArray<MapData, u64>) -> Result<EventStream, LoaderError> {
        // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd,
        // so the fd stays open for as long as it is registered.
        let ring = unsafe { tokio::io::unix::AsyncFd::register(ring) }
            .map_err(|e| LoaderError::Io(std::io::Error::other(e.to_string())))?;
        Ok(EventStream {
            ring,
            lost,
            lost_seen: (0, Vec::new()),
            last_drain: tokio::time::Instant::now(),
            recheck: None,
        })
    }

    /// Waits until records are available (the programs wake the reader
    /// with the first record after a drain, or when the ring fills up),
    /// lets a burst gather until [`DRAIN_EVERY`] after the last drain, then
    /// hands every available record to `f`. Cancellation-safe: records stay
    /// in the ring until they are handed over.
    pub async fn next_batch(&mut self, mut f: impl FnMut(StreamItem)) -> Result<usize, LoaderError> {
        loop {
            let recheck = self.recheck;
            let woken = tokio::select! {
                guard = self.ring.readable_mut() => Some(guard?),
                _ = tokio::time::sleep_until(recheck.unwrap_or_else(tokio::time::Instant::now)), if recheck.is_some() => None,
            };
            let rechecked = woken.is_none();
            let n = match woken {
                Some(mut guard) => {
                    tokio::time::sleep_until(self.last_drain + DRAIN_EVERY).await;
                    let n = Self::read_all(guard.get_inner_mut(), &mut f);
                    // A record submitted after the loop above woke the ring
                    // again: readiness from that later wakeup survives this.
                    guard.clear_ready();
                    n
                }
                None => Self::read_all(self.ring.get_mut(), &mut f),
            };
            self.drained(n, rechecked);
            if n > 0 {
                return Ok(n);
            }
        }
    }

    fn read_all(ring: &mut RingBuf<MapData>, f: &mut impl FnMut(StreamItem)) -> usize {
        let mut n = 0;
        while let Some(item) = ring.next() {
            f(nstrace_common::decode::decode(&item));
            n += 1;
        }
        n
    }

    /// Notes a drain that read `n` records: a recheck follows one that
    /// found some; only a recheck that found none ends the rechecks (a
    /// silent record may still come within 50 ms of the last wakeup).
    fn drained(&mut self, n: usize, rechecked: bool) {
        let now = tokio::time::Instant::now();
        self.last_drain = now;
        if n > 0 {
            self.recheck = Some(now + DRAIN_EVERY);
        } else if rechecked {
            self.recheck = None;
        }
    }

    /// Hands every record available right now to `f`, without waiting.
    pub fn drain(&mut self, mut f: impl FnMut(StreamItem)) -> usize {
        let n = Self::read_all(self.ring.get_mut(), &mut f);
        self.drained(n, false);
        n
    }

    /// Ring-buffer reserve failures so far, per event kind (summed over
    /// CPUs). One map read while the total (slot 0) has not moved.
    pub fn lost_counts(&mut self) -> Result<Vec<(EventKind, u64)>, LoaderError> {
        let read = |kind: u32| -> Result<u64, LoaderError> {
            let values =
                self.lost.get(&kind, 0).map_err(|source| LoaderError::Map { name: names::LOST_MAP, source })?;
            Ok(values.iter().sum())
        };
        let total = read(0)?;
        if total == self.lost_seen.0 {
            return Ok(self.lost_seen.1.clone());
        }
        let mut out = Vec::new();
        for kind in 1..MAX_EVENT_KIND {
            let total = read(kind)?;
            if let (Some(kind), true) = (EventKind::from_u32(kind), total > 0) {
                out.push((kind, total));
            }
        }
        self.lost_seen = (total, out.clone());
        Ok(out)
    }
}

//! The event ring: reads the hooks' records as they come (woken by the
//! first record after a drain, then batched for up to [`DRAIN_EVERY`], or
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

/// The shortest gap between two drains: the first record after a drain
/// wakes the reader, which waits until this long after the last drain so
/// a burst is read in one batch (and wakes it once). The most an event
/// waits before user space sees it; a quiet ring costs no wakeup at all.
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Reads decoded records from the event ring buffer.
pub struct EventStream {
    ring: tokio::io::unix::AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
    /// The total (slot 0) when the per-kind counts were last read, and them.
    lost_seen: (u64, Vec<(EventKind, u64)>),
    /// When the ring was last drained.
    last_drain: tokio::time::Instant,
}

impl EventStream {
    /// The stream over the events ring and the per-kind lost counters.
    pub(super) fn new(ring: RingBuf<MapData>, lost: PerCpuArray<MapData, u64>) -> Result<EventStream, LoaderError> {
        // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd,
        // so the fd stays open for as long as it is registered.
        let ring = unsafe { tokio::io::unix::AsyncFd::register(ring) }
            .map_err(|e| LoaderError::Io(std::io::Error::other(e.to_string())))?;
        Ok(EventStream { ring, lost, lost_seen: (0, Vec::new()), last_drain: tokio::time::Instant::now() })
    }

    /// Waits until records are available (the programs wake the reader
    /// with the first record after a drain, or when the ring fills up),
    /// lets a burst gather until [`DRAIN_EVERY`] after the last drain, then
    /// hands every available record to `f`. Cancellation-safe: records stay
    /// in the ring until they are handed over.
    pub async fn next_batch(&mut self, mut f: impl FnMut(StreamItem)) -> Result<usize, LoaderError> {
        loop {
            let mut guard = self.ring.readable_mut().await?;
            tokio::time::sleep_until(self.last_drain + DRAIN_EVERY).await;
            let ring = guard.get_inner_mut();
            let mut n = 0;
            while let Some(item) = ring.next() {
                f(nstrace_common::decode::decode(&item));
                n += 1;
            }
            // A record submitted after the loop above woke the ring again:
            // readiness from that later wakeup survives this clear.
            guard.clear_ready();
            self.last_drain = tokio::time::Instant::now();
            if n > 0 {
                return Ok(n);
            }
        }
    }

    /// Hands every record available right now to `f`, without waiting.
    pub fn drain(&mut self, mut f: impl FnMut(StreamItem)) -> usize {
        self.last_drain = tokio::time::Instant::now();
        let ring = self.ring.get_mut();
        let mut n = 0;
        while let Some(item) = ring.next() {
            f(nstrace_common::decode::decode(&item));
            n += 1;
        }
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

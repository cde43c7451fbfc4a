//! The consumer and producer positions of a BPF ring buffer, read (and the
//! consumer's moved) through mappings of our own.
//!
//! aya's `RingBuf` copies the consumer position when it is made and writes
//! its copy back after each record: right for a ring one process reads,
//! wrong for the pinned walk rings every nstrace run of the boot reads in
//! turn. A reader whose copy is stale moves the shared position *back*; the
//! kernel then sees a ring fuller than it is, refuses every reservation,
//! and a walk that resumes on MORE spins. So each walk starts
//! here, under the pin lock: whatever is left in the ring is not ours (a
//! crashed or killed walker's), the consumer position is set to the
//! producer's, and a fresh `RingBuf` is made over the settled ring.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
    sync::atomic::{AtomicU64, Ordering},
};

/// What a ring looked like before it was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Empty: consumer and producer positions equal.
    Clean,
    /// Records another walker left unread (`bytes` of them): discarded.
    Leftover { bytes: u64 },
    /// Positions no reader of a ring of this size can leave: the consumer
    /// ahead of the producer, or behind by more than the ring holds.
    /// Repaired the same way.
    Inconsistent { consumer: u64, producer: u64 },
}

/// One page of the ring map mapped shared.
struct Page {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Page {
    fn map(fd: BorrowedFd<'_>, writable: bool, offset: usize) -> io::Result<Page> {
        let len = page_size();
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: a fresh shared mapping of a ring buffer map's metadata
        // page (the kernel allows page 0 writable, page 1 read-only).
        let ptr =
            unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), offset as i64) };
        if ptr == libc::MAP_FAILED { Err(io::Error::last_os_error()) } else { Ok(Page { ptr, len }) }
    }

    /// The position at the start of the page (an `unsigned long`).
    fn position(&self) -> &AtomicU64 {
        // SAFETY: the page is mapped, page-aligned and outlives the borrow.
        unsafe { &*(self.ptr as *const AtomicU64) }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as usize
}

/// Empties the ring `fd` (of `size` data bytes) by moving its consumer
/// position to the producer's; says what it found. Call with the ring's
/// lock held and no reader of it open in this process.
pub fn settle(fd: BorrowedFd<'_>, size: u64) -> io::Result<Settled> {
    let consumer_page = Page::map(fd, true, 0)?;
    let producer_page = Page::map(fd, false, page_size())?;
    let producer = producer_page.position().load(Ordering::Acquire);
    let consumer = consumer_page.position().load(Ordering::Acquire);
    let found = classify(consumer, producer, size);
    if found != Settled::Clean {
        consumer_page.position().store(producer, Ordering::Release);
    }
    Ok(found)
}

/// Moves the consumer position of ring `fd` to `consumer` (tests: to put a
/// ring in the state a stale reader leaves).
pub fn set_consumer(fd: BorrowedFd<'_>, consumer: u64) -> io::Result<()> {
    Page::map(fd, true, 0)?.position().store(consumer, Ordering::Release);
    Ok(())
}

fn classify(consumer: u64, producer: u64, size: u64) -> Settled {
    if consumer == producer {
        Settled::Clean
    } else if consumer > producer || producer - consumer > size {
        Settled::Inconsistent { consumer, producer }
    } else {
        Settled::Leftover { bytes: producer - consumer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_classified_by_what_a_reader_can_leave() {
        assert_eq!(classify(64, 64, 4096), Settled::Clean);
        assert_eq!(classify(0, 64, 4096), Settled::Leftover { bytes: 64 });
        assert_eq!(classify(0, 4096, 4096), Settled::Leftover { bytes: 4096 });
        // A stale reader wrote its old position back: more than the ring holds behind.
        assert_eq!(classify(8, 4112, 4096), Settled::Inconsistent { consumer: 8, producer: 4112 });
        // Or moved it past what was ever written.
        assert_eq!(classify(128, 64, 4096), Settled::Inconsistent { consumer: 128, producer: 64 });
    }
}

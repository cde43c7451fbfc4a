//! A walk ring read through mappings of our own ([`Mapped`]).
//!
//! aya's `RingBuf` copies the consumer position when it is made and writes
//! its copy back after each record: right for a ring one process reads,
//! wrong for the pinned walk rings every nstrace run of the boot reads in
//! turn. A reader whose copy is stale moves the shared position *back*; the
//! kernel then sees a ring fuller than it is, refuses every reservation,
//! and a walk that resumes on MORE spins. So the reader here keeps no
//! position: each walk starts under the pin lock by settling the ring
//! (whatever is left is not ours: a crashed or killed walker's; the
//! consumer position is set to the producer's), and every record read
//! moves the shared position itself.

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

/// A ring mapped once and read for the life of a walker: a walk settles it
/// (its consumer position moved to the producer's, under the lock) and reads its records through the
/// same mappings, so a walk maps and unmaps nothing (mapping the 1 MiB ring
/// for every walk was a tenth of the service's CPU under churn). The
/// consumer position is read from the shared page at every step, never
/// kept: other processes read the same pinned ring between our walks.
pub struct Mapped {
    consumer: Page,
    /// The producer page, then the data pages mapped twice (the kernel's
    /// layout: a record that wraps reads as one piece).
    producer_and_data: Page,
    size: u64,
}

// SAFETY: the mappings are plain shared memory owned by this value; the
// positions are atomics, records are read through shared references.
unsafe impl Send for Mapped {}

/// `struct bpf_ringbuf_hdr`: the record length's flag bits and its size.
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR_SIZE: u64 = 8;

impl Mapped {
    /// Maps ring `fd` of `size` data bytes (a power of two).
    pub fn new(fd: BorrowedFd<'_>, size: u64) -> io::Result<Mapped> {
        let consumer = Page::map(fd, true, 0)?;
        let len = page_size() + 2 * size as usize;
        // SAFETY: a fresh read-only shared mapping of the ring's producer
        // page and its data pages (mapped twice by the kernel).
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd(), page_size() as i64)
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { consumer, producer_and_data: Page { ptr, len }, size })
    }

    /// Empties the ring by moving its consumer position to the
    /// producer's; says what it found. Call with the ring's lock held.
    pub fn settle(&self) -> Settled {
        let producer = self.producer_and_data.position().load(Ordering::Acquire);
        let consumer = self.consumer.position().load(Ordering::Acquire);
        let found = classify(consumer, producer, self.size);
        if found != Settled::Clean {
            self.consumer.position().store(producer, Ordering::Release);
        }
        found
    }

    /// Hands every committed record to `f` (discarded ones are skipped) and
    /// moves the consumer position past it; returns how many.
    pub fn drain(&self, mut f: impl FnMut(&[u8])) -> usize {
        let data = self.producer_and_data.ptr as usize + page_size();
        let mask = self.size - 1;
        let mut n = 0;
        loop {
            let consumer = self.consumer.position().load(Ordering::Acquire);
            let producer = self.producer_and_data.position().load(Ordering::Acquire);
            if consumer >= producer || producer - consumer > self.size {
                return n;
            }
            let at = data + (consumer & mask) as usize;
            // SAFETY: `at` is inside the first copy of the data pages; the
            // header is 8-byte aligned (records are padded to 8 bytes).
            let word = unsafe { &*(at as *const std::sync::atomic::AtomicU32) }.load(Ordering::Acquire);
            let Some(Record { len, next }) = record_at(word, consumer, self.size) else { return n };
            if let Some(len) = len {
                // SAFETY: a committed record of `len` bytes after its header;
                // the second copy of the data pages covers a wrap.
                f(unsafe { std::slice::from_raw_parts((at + HDR_SIZE as usize) as *const u8, len as usize) });
                n += 1;
            }
            self.consumer.position().store(next, Ordering::Release);
        }
    }
}

/// What the header word `word` at position `consumer` says.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    /// The record's length, None when it was discarded.
    len: Option<u64>,
    /// The consumer position after it (records are padded to 8 bytes).
    next: u64,
}

/// The record whose header word is `word`, at `consumer` in a ring of
/// `size` data bytes; None while it is being written, or when the word is
/// not a header a producer writes (a length past the ring).
fn record_at(word: u32, consumer: u64, size: u64) -> Option<Record> {
    if word & BUSY_BIT != 0 {
        return None;
    }
    let len = u64::from(word & !(BUSY_BIT | DISCARD_BIT));
    if len + HDR_SIZE > size {
        return None;
    }
    let next = consumer + (len + HDR_SIZE).next_multiple_of(8);
    Some(Record { len: (word & DISCARD_BIT == 0).then_some(len), next })
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
        // A whole ring's worth behind, not more: still records to throw away.
        assert_eq!(classify(4096, 8192, 4096), Settled::Leftover { bytes: 4096 });
        assert_eq!(classify(4096, 8193, 4096), Settled::Inconsistent { consumer: 4096, producer: 8193 });
    }

    #[test]
    fn records_are_read_whole_padded_to_8_bytes_and_never_while_busy() {
        // A committed 44-byte record at 64: 8 bytes of header, padded to 56.
        assert_eq!(record_at(44, 64, 4096), Some(Record { len: Some(44), next: 64 + 56 }));
        assert_eq!(record_at(48, 64, 4096), Some(Record { len: Some(48), next: 64 + 56 }));
        // Discarded: skipped, the position still moves past it.
        assert_eq!(record_at(DISCARD_BIT | 44, 64, 4096), Some(Record { len: None, next: 64 + 56 }));
        // Being written: nothing to read yet.
        assert_eq!(record_at(BUSY_BIT | 44, 64, 4096), None);
        // The largest record the ring holds, and one byte more.
        assert_eq!(record_at(4088, 0, 4096), Some(Record { len: Some(4088), next: 4096 }));
        assert_eq!(record_at(4089, 0, 4096), None);
    }
}

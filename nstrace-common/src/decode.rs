//! The one place ring-buffer records are decoded (user space only).

use core::mem::size_of;

use crate::event::{
    DestroyHintEvent, EventHeader, EventKind, MountEvent, NsCreateEvent, NsDestroyEvent, NsFdRecord, NsInfoRecord,
    RefusalEvent, SyscallNsEvent, TaskNsEvent,
};

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Task(TaskNsEvent),
    NsInfo(NsInfoRecord),
    Create(NsCreateEvent),
    Syscall(SyscallNsEvent),
    DestroyHint(DestroyHintEvent),
    Destroy(NsDestroyEvent),
    Mount(MountEvent),
    NsFd(NsFdRecord),
    /// Boxed: three kilobytes, and rare; every other record stays small.
    Refused(std::boxed::Box<RefusalEvent>),
}

impl Record {
    pub fn header(&self) -> &EventHeader {
        match self {
            Record::Task(e) => &e.header,
            Record::NsInfo(e) => &e.header,
            Record::Create(e) => &e.header,
            Record::Syscall(e) => &e.header,
            Record::DestroyHint(e) => &e.header,
            Record::Destroy(e) => &e.header,
            Record::Mount(e) => &e.header,
            Record::NsFd(e) => &e.header,
            Record::Refused(e) => &e.header,
        }
    }

    pub fn kind(&self) -> EventKind {
        // Only records with a known kind are ever constructed.
        EventKind::from_u32(self.header().kind).unwrap_or(EventKind::Fork)
    }
}

/// One item of a record stream: a decoded record, or why its bytes were rejected.
pub type StreamItem = Result<Record, DecodeError>;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {got} bytes is shorter than the {need}-byte header")]
    TruncatedHeader { got: usize, need: usize },
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u32 },
    #[error("{kind:?} record claims {claimed} bytes, expected {expected}")]
    SizeField { kind: EventKind, claimed: u32, expected: usize },
    #[error("{kind:?} record is {got} bytes, expected {expected}")]
    Truncated { kind: EventKind, got: usize, expected: usize },
    #[error("{kind:?} record is {got} bytes, expected {expected}")]
    Oversized { kind: EventKind, got: usize, expected: usize },
}

fn read<T: Copy>(bytes: &[u8]) -> T {
    debug_assert!(bytes.len() >= size_of::<T>());
    // SAFETY: the caller checked the length; the record types are plain
    // integers and arrays, valid for any bit pattern; read_unaligned copes
    // with the ring buffer's 8-byte (not type) alignment.
    unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
}

fn checked<T: Copy>(bytes: &[u8], kind: EventKind, header: &EventHeader) -> Result<T, DecodeError> {
    let expected = size_of::<T>();
    if header.size as usize != expected {
        return Err(DecodeError::SizeField { kind, claimed: header.size, expected });
    }
    if bytes.len() < expected {
        return Err(DecodeError::Truncated { kind, got: bytes.len(), expected });
    }
    // The kernel's ring buffer rounds each record up to 8 bytes. aya hands
    // out exactly the reserved length, and every record kind is a multiple
    // of 8 bytes anyway, but a reader that passed the rounded length must
    // not be refused; anything beyond that is not a record of this kind.
    if bytes.len() > expected.next_multiple_of(8) {
        return Err(DecodeError::Oversized { kind, got: bytes.len(), expected });
    }
    Ok(read::<T>(bytes))
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let need = size_of::<EventHeader>();
    if bytes.len() < need {
        return Err(DecodeError::TruncatedHeader { got: bytes.len(), need });
    }
    let header: EventHeader = read(bytes);
    let kind = EventKind::from_u32(header.kind).ok_or(DecodeError::UnknownKind { kind: header.kind })?;
    Ok(match kind {
        EventKind::Fork | EventKind::Exec | EventKind::Exit | EventKind::TaskInfo => {
            Record::Task(checked(bytes, kind, &header)?)
        }
        EventKind::NsInfo => Record::NsInfo(checked(bytes, kind, &header)?),
        EventKind::Create => Record::Create(checked(bytes, kind, &header)?),
        EventKind::Unshare | EventKind::Setns => Record::Syscall(checked(bytes, kind, &header)?),
        EventKind::DestroyHint => Record::DestroyHint(checked(bytes, kind, &header)?),
        EventKind::Destroy => Record::Destroy(checked(bytes, kind, &header)?),
        EventKind::Mount => Record::Mount(checked(bytes, kind, &header)?),
        EventKind::NsFd => Record::NsFd(checked(bytes, kind, &header)?),
        EventKind::Refused => Record::Refused(std::boxed::Box::new(checked(bytes, kind, &header)?)),
    })
}

/// A kernel `comm` (task name, NUL-padded) as text, lossily decoded.
pub fn comm_str(comm: &[u8]) -> std::string::String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    std::string::String::from_utf8_lossy(&comm[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::event::NsRef;

    fn as_bytes<T: Copy>(v: &T) -> Vec<u8> {
        let p = (v as *const T).cast::<u8>();
        // SAFETY: `v` is a live T, read as its size_of::<T>() bytes.
        unsafe { core::slice::from_raw_parts(p, size_of::<T>()) }.to_vec()
    }

    fn task_event() -> TaskNsEvent {
        TaskNsEvent {
            header: EventHeader {
                kind: EventKind::Fork as u32,
                size: size_of::<TaskNsEvent>() as u32,
                ts_ns: 42,
                tgid: 10,
                tid: 11,
            },
            subject_tgid: 12,
            subject_tid: 12,
            parent_tgid: 10,
            flags: 0,
            threads: 0,
            _reserved: 0,
            cgroup_id: 0,
            comm: *b"unshare\0\0\0\0\0\0\0\0\0",
            ns: [NsRef { id: 7, inum: 4026531840, _reserved: 0 }; 10],
        }
    }

    #[test]
    fn a_refusal_round_trips_boxed_and_a_short_one_is_refused() {
        use crate::event::{CHARGE_LEVELS, COUNT_UNKNOWN, ChargeLevel, RefusalEvent};
        let level = ChargeLevel {
            user_ns: NsRef { id: 9, inum: 4026532100, _reserved: 0 },
            uid: 0,
            depth: 1,
            counts: [2; 8],
            limits: [COUNT_UNKNOWN; 8],
        };
        let rec = RefusalEvent {
            header: EventHeader {
                kind: EventKind::Refused as u32,
                size: size_of::<RefusalEvent>() as u32,
                ts_ns: 5,
                tgid: 70,
                tid: 71,
            },
            syscall: crate::event::refused_syscall::UNSHARE,
            ret: -28,
            flags: 0x0400_0000,
            euid: 0,
            pid_depth: 0,
            cgroup_id: 0,
            comm: *b"unshare\0\0\0\0\0\0\0\0\0",
            level_count: 2,
            _reserved: 0,
            levels: [level; CHARGE_LEVELS],
        };
        let bytes = as_bytes(&rec);
        assert_eq!(decode(&bytes), Ok(Record::Refused(std::boxed::Box::new(rec))));
        let short = bytes.len() - 8;
        assert_eq!(
            decode(&bytes[..short]),
            Err(DecodeError::Truncated { kind: EventKind::Refused, got: short, expected: bytes.len() })
        );
    }

    #[test]
    fn round_trip() {
        let ev = task_event();
        assert_eq!(decode(&as_bytes(&ev)), Ok(Record::Task(ev)));
    }

    #[test]
    fn an_fd_record_round_trips_and_a_short_one_is_refused() {
        let rec = NsFdRecord {
            header: EventHeader {
                kind: EventKind::NsFd as u32,
                size: size_of::<NsFdRecord>() as u32,
                ts_ns: 0,
                tgid: 77,
                tid: 0,
            },
            fd: 5,
            ns_flag: 0x4000_0000,
            inum: 4026532000,
            via: crate::event::fd_via::SOCKET,
            id: 9,
            socket_ino: 123_456,
        };
        let bytes = as_bytes(&rec);
        assert_eq!(decode(&bytes), Ok(Record::NsFd(rec)));
        assert_eq!(decode(&bytes[..48]), Err(DecodeError::Truncated { kind: EventKind::NsFd, got: 48, expected: 56 }));
    }

    /// A record whose size is not a multiple of 8 may arrive padded up to
    /// the next multiple of 8 (the ring buffer's granule), and only that far.
    /// Every record kind today is a multiple of 8 bytes, so this uses a
    /// 28-byte record (header and a u32) through the same size checks.
    #[test]
    fn ring_buffer_padding_is_accepted() {
        type Odd = [u8; 28];
        let header =
            EventHeader { kind: EventKind::Fork as u32, size: size_of::<Odd>() as u32, ts_ns: 1, tgid: 2, tid: 3 };
        let mut record = as_bytes(&header);
        record.extend_from_slice(&7u32.to_ne_bytes());
        assert_eq!(record.len(), 28);
        let kind = EventKind::Fork;
        assert_eq!(checked::<Odd>(&record, kind, &header).as_ref().map(|r| &r[..]), Ok(&record[..]));
        for pad in 1..=4 {
            let mut padded = record.clone();
            padded.resize(28 + pad, 0);
            let got = checked::<Odd>(&padded, kind, &header);
            assert_eq!(got.as_ref().map(|r| &r[..]), Ok(&record[..]), "{pad} bytes of padding");
        }
        let mut too_long = record.clone();
        too_long.resize(33, 0);
        assert_eq!(
            checked::<Odd>(&too_long, kind, &header),
            Err(DecodeError::Oversized { kind, got: 33, expected: 28 })
        );
        assert_eq!(
            checked::<Odd>(&record[..27], kind, &header),
            Err(DecodeError::Truncated { kind, got: 27, expected: 28 })
        );
    }

    /// Every real record kind is a multiple of 8 bytes, so the ring buffer
    /// adds no padding to it: a single byte more is not a record.
    #[test]
    fn real_records_take_no_padding() {
        let mut bytes = as_bytes(&task_event());
        assert_eq!(bytes.len() % 8, 0);
        bytes.push(0);
        assert!(matches!(decode(&bytes), Err(DecodeError::Oversized { .. })));
    }

    #[test]
    fn truncated_records_are_errors() {
        let bytes = as_bytes(&task_event());
        let header = size_of::<EventHeader>();
        for len in 0..bytes.len() {
            let err = decode(&bytes[..len]).unwrap_err();
            // Shorter than a header: nothing is known. From a whole header
            // on, the error names the record kind that was cut.
            if len < header {
                assert_eq!(err, DecodeError::TruncatedHeader { got: len, need: header }, "len {len}");
            } else {
                let expected = bytes.len();
                assert_eq!(err, DecodeError::Truncated { kind: EventKind::Fork, got: len, expected }, "len {len}");
            }
        }
    }

    #[test]
    fn comm_is_cut_at_the_first_nul() {
        assert_eq!(comm_str(b"unshare\0\0\0\0\0\0\0\0\0"), "unshare");
        assert_eq!(comm_str(b"a\0b"), "a");
        assert_eq!(comm_str(b"0123456789abcdef"), "0123456789abcdef", "no NUL: all 16 bytes");
        assert_eq!(comm_str(b"\0rest"), "");
        assert_eq!(comm_str(b"caf\xc3\xa9\0"), "caf\u{e9}");
    }

    #[test]
    fn oversized_records_are_errors() {
        let mut bytes = as_bytes(&task_event());
        bytes.extend_from_slice(&[0u8; 64]);
        assert!(matches!(decode(&bytes), Err(DecodeError::Oversized { .. })));
    }

    #[test]
    fn wrong_size_field_is_an_error() {
        let mut ev = task_event();
        ev.header.size = 8;
        assert!(matches!(decode(&as_bytes(&ev)), Err(DecodeError::SizeField { claimed: 8, .. })));
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let mut ev = task_event();
        ev.header.kind = 999;
        assert_eq!(decode(&as_bytes(&ev)), Err(DecodeError::UnknownKind { kind: 999 }));
    }

    #[test]
    fn garbage_never_panics() {
        // A small deterministic generator: xorshift.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 300) as usize;
            let mut bytes = vec![0u8; len];
            for b in bytes.iter_mut() {
                *b = next() as u8;
            }
            // Make some records plausible so deeper checks run too.
            if len >= 8 && next() % 2 == 0 {
                bytes[0..4].copy_from_slice(&((next() % 6) as u32).to_ne_bytes());
                bytes[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
            }
            let _ = decode(&bytes);
        }
    }
}

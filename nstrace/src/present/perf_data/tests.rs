use super::*;
use crate::{events::NsChange, time::UnixTime};

/// Splits a stream after the pipe header into (type, misc, record bytes).
fn records(bytes: &[u8]) -> Vec<(u32, u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let kind = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let misc = u16::from_le_bytes(bytes[at + 4..at + 6].try_into().unwrap());
        let size = u16::from_le_bytes(bytes[at + 6..at + 8].try_into().unwrap()) as usize;
        assert!(size >= 8 && size.is_multiple_of(8), "record {kind} at {at}: size {size}");
        out.push((kind, misc, bytes[at..at + size].to_vec()));
        at += size;
        if kind == RECORD_HEADER_TRACING_DATA {
            // The data follows the record, its padded size in the record.
            at += u32::from_le_bytes(bytes[at - 8..at - 4].try_into().unwrap()) as usize;
        }
    }
    assert_eq!(at, bytes.len(), "no partial record");
    out
}

fn u32_at(r: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(r[at..at + 4].try_into().unwrap())
}

fn u64_at(r: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(r[at..at + 8].try_into().unwrap())
}

fn clock() -> Clock {
    Clock::with_offset(1_000_000.0)
}

fn stream(events: &[Event]) -> Vec<u8> {
    let mut w = PerfDataWriter::start(Vec::new(), clock()).unwrap();
    for e in events {
        w.event(e).unwrap();
    }
    w.into_inner()
}

#[test]
fn the_stream_starts_with_the_pipe_header_the_attrs_then_the_tracing_data() {
    let bytes = stream(&[]);
    assert_eq!(&bytes[..8], b"PERFILE2");
    assert_eq!(u64_at(&bytes, 8), 16);
    let recs = records(&bytes[16..]);
    let kinds: Vec<u32> = recs.iter().map(|r| r.0).collect();
    assert_eq!(kinds[..KINDS.len()], [RECORD_HEADER_ATTR; KINDS.len()]);
    assert_eq!(kinds[KINDS.len()..], [RECORD_HEADER_TRACING_DATA], "formats after the attrs (perf names them then)");
    for (i, (_, _, r)) in recs[..KINDS.len()].iter().enumerate() {
        assert_eq!(r.len(), 8 + 128 + 8);
        assert_eq!((u32_at(r, 8), u32_at(r, 12)), (PERF_TYPE_TRACEPOINT, 128));
        assert_eq!(u64_at(r, 16), FIRST_TRACEPOINT_ID + i as u64, "config: the format's ID");
        assert_eq!(u64_at(r, 32), SAMPLE_TYPE);
        assert_eq!(u64_at(r, 48) & SAMPLE_ID_ALL, SAMPLE_ID_ALL);
        assert_eq!(u64_at(r, 136), i as u64 + 1, "the sample id");
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("\x17\x08\x44tracing0.6\0"));
    assert!(text.contains("name: unshare\nID: 9004\n"), "{text}");
}

#[test]
fn a_fork_is_fork_comm_and_namespaces_records_with_perfs_seven_in_its_order() {
    let namespaces: Vec<PerfNs> =
        NsType::ALL.iter().map(|t| PerfNs { ns_type: *t, dev: 4, inode: 0xf000_0000 + *t as u64 }).collect();
    let fork = Event::Namespaces {
        time: UnixTime::from_secs(1_000_012.5),
        pid: 42,
        tid: 43,
        comm: "bash".into(),
        cause: Cause::Fork,
        namespaces,
        forked_by: Some((41, 40)),
    };
    let bytes = stream(&[fork]);
    let recs = records(&bytes[16..]);
    let tail = &recs[KINDS.len() + 1..];
    assert_eq!(tail.iter().map(|r| r.0).collect::<Vec<_>>(), [RECORD_FORK, RECORD_COMM, RECORD_NAMESPACES]);
    let f = &tail[0].2;
    assert_eq!([u32_at(f, 8), u32_at(f, 12), u32_at(f, 16), u32_at(f, 20)], [42, 41, 43, 40], "pid, ppid, tid, ptid");
    assert_eq!(u64_at(f, 24), 12_500_000_000, "boot time in ns");
    let c = &tail[1].2;
    assert_eq!(&c[16..24], b"bash\0\0\0\0");
    let n = &tail[2].2;
    assert_eq!(n.len(), 8 + 16 + 7 * 16 + 32);
    assert_eq!(u64_at(n, 16), 7, "perf's seven: no time namespace");
    let inodes: Vec<u64> = (0..7).map(|i| u64_at(n, 24 + 16 * i + 8)).collect();
    let perf_order = [NsType::Net, NsType::Uts, NsType::Ipc, NsType::Pid, NsType::User, NsType::Mnt, NsType::Cgroup];
    assert_eq!(inodes, perf_order.map(|t| 0xf000_0000 + t as u64));
    // The trailer: pid, tid, time, cpu, id.
    let t = &n[n.len() - 32..];
    assert_eq!((u32_at(t, 0), u32_at(t, 4), u64_at(t, 8), u64_at(t, 24)), (42, 43, 12_500_000_000, 1));
}

#[test]
fn an_unshare_is_one_sample_per_new_namespace_with_its_fields_in_the_raw_data() {
    let change = |ns_type, inode| NsChange { ns_type, slot: ns_type.name(), id: inode - 100, inode };
    let unshare = Event::Unshare {
        time: UnixTime::from_secs(1_000_001.0),
        pid: 7,
        tid: 8,
        comm: "unshare".into(),
        flags: 0x4400_0000,
        flags_text: crate::events::CloneFlags(0x4400_0000),
        result: 0,
        errno: None,
        new: vec![change(NsType::Net, 4026532001), change(NsType::Uts, 4026532002)],
    };
    let bytes = stream(&[unshare]);
    let recs = records(&bytes[16..]);
    let samples: Vec<&Vec<u8>> = recs.iter().filter(|r| r.0 == RECORD_SAMPLE).map(|r| &r.2).collect();
    assert_eq!(samples.len(), 2);
    for (s, (ty, inode)) in samples.iter().zip([("net", 4026532001u64), ("uts", 4026532002)]) {
        assert_eq!(u64_at(s, 8), 5, "unshare's sample id");
        assert_eq!((u32_at(s, 16), u32_at(s, 20), u64_at(s, 24)), (7, 8, 1_000_000_000));
        let raw_size = u32_at(s, 48) as usize;
        assert_eq!((raw_size + 4) % 8, 0);
        let raw = &s[52..52 + raw_size];
        assert_eq!(u16::from_le_bytes([raw[0], raw[1]]), 9004, "common_type: the format's ID");
        assert_eq!(&raw[8..8 + ty.len()], ty.as_bytes());
        assert_eq!((u64_at(raw, 16), u64_at(raw, 24)), (inode - 100, inode));
        let loc = u32_at(raw, DETAIL_LOC_AT);
        let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
        assert_eq!(off, DETAIL_AT);
        let detail = std::str::from_utf8(&raw[off..off + len - 1]).unwrap();
        assert!(detail.starts_with("unshare[7/8] flags=CLONE_NEWNET|CLONE_NEWUTS"), "{detail}");
        assert_eq!(raw[off + len - 1], 0);
    }
}

#[test]
fn a_long_detail_is_cut_on_a_character_boundary() {
    let detail = "é".repeat(DETAIL_MAX);
    let raw = raw_fields(9000, 1, None, 0, 0, &detail);
    let loc = u32_at(&raw, DETAIL_LOC_AT);
    let len = (loc >> 16) as usize;
    assert!(len <= DETAIL_MAX + 1);
    assert!(std::str::from_utf8(&raw[DETAIL_AT..DETAIL_AT + len - 1]).is_ok());
    assert_eq!(&raw[8..10], b"-\0", "no type");
}

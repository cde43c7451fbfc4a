//! `trace --perf-data FILE`: events as a perf.data file `perf script` and
//! `perf report` read. The pipe format (what `perf record -o -` writes) is
//! used for a file too: it is complete after every record, so it streams
//! with bounded memory and a killed writer leaves a file perf reads up to
//! its last whole record. Layout (perf 6.1's reader, little-endian, every
//! record a multiple of 8 bytes):
//! - the 16-byte pipe header;
//! - one `PERF_RECORD_HEADER_ATTR` per nstrace event kind, a tracepoint-type
//!   attr (`config` = the event's id in the tracing data) with samples of
//!   IDENTIFIER|TID|TIME|CPU|PERIOD|RAW and `sample_id_all`;
//! - `PERF_RECORD_HEADER_TRACING_DATA` with a format per event kind (system
//!   `nstrace`), so perf names them `nstrace:create`, ... and prints their
//!   fields; it must follow the attrs;
//! - then per event: COMM/FORK/EXIT/NAMESPACES records for tasks (perf's
//!   seven namespaces; the time namespace has no index in perf) and a
//!   SAMPLE per lifecycle event (one per namespace an unshare or setns
//!   changed).
//!
//! Times are CLOCK_BOOTTIME nanoseconds (`perf record -k boottime` records
//! on the same clock). perf sorts events by time when it reads them.

use std::io::{self, Write};

use nstrace_common::ns::NsType;

use crate::{
    events::{Cause, Event, PerfNs},
    time::Clock,
};

const PIPE_MAGIC: &[u8; 8] = b"PERFILE2";
const ATTR_SIZE: u32 = 128;
const PERF_TYPE_TRACEPOINT: u32 = 2;
const SAMPLE_TYPE: u64 = (1 << 16) | (1 << 1) | (1 << 2) | (1 << 7) | (1 << 8) | (1 << 10);
const SAMPLE_ID_ALL: u64 = 1 << 18;
/// `exclude_kernel`: no kernel samples, so `perf report` looks for no
/// kernel maps (and does not warn that kallsyms was restricted).
const EXCLUDE_KERNEL: u64 = 1 << 5;

const RECORD_COMM: u32 = 3;
const RECORD_EXIT: u32 = 4;
const RECORD_FORK: u32 = 7;
const RECORD_SAMPLE: u32 = 9;
const RECORD_NAMESPACES: u32 = 16;
const RECORD_HEADER_ATTR: u32 = 64;
const RECORD_HEADER_TRACING_DATA: u32 = 66;
const MISC_USER: u16 = 2;
const MISC_COMM_EXEC: u16 = 1 << 13;

/// perf's namespace indexes (`NET_NS_INDEX` ...): the order of its seven.
const PERF_ORDER: [NsType; 7] =
    [NsType::Net, NsType::Uts, NsType::Ipc, NsType::Pid, NsType::User, NsType::Mnt, NsType::Cgroup];

/// The event kinds written as samples, in attr order; each one's sample id
/// is its index + 1 and its tracepoint id [`FIRST_TRACEPOINT_ID`] + index.
const KINDS: [&str; 10] =
    ["create", "dying", "destroy", "setns", "unshare", "clone", "mount", "refused", "lost", "resync"];
const FIRST_TRACEPOINT_ID: u64 = 9000;

/// Writes events to `out` as a pipe-format perf.data stream.
pub struct PerfDataWriter<W: Write> {
    out: W,
    clock: Clock,
    records: u64,
    buf: Vec<u8>,
}

impl<W: Write> PerfDataWriter<W> {
    /// Writes the header, the attrs and the tracing data.
    pub fn start(mut out: W, clock: Clock) -> io::Result<PerfDataWriter<W>> {
        let mut buf = Vec::with_capacity(8192);
        buf.extend_from_slice(PIPE_MAGIC);
        buf.extend_from_slice(&16u64.to_le_bytes());
        for i in 0..KINDS.len() {
            attr_record(&mut buf, FIRST_TRACEPOINT_ID + i as u64, i as u64 + 1);
        }
        tracing_data_record(&mut buf);
        out.write_all(&buf)?;
        buf.clear();
        Ok(PerfDataWriter { out, clock, records: 0, buf })
    }

    /// A COMM record (time 0: perf takes it before everything else) for
    /// every thread alive now, as `perf record` synthesizes them: a sample
    /// of a process that started before the trace then shows its name.
    pub fn existing_tasks(&mut self) -> io::Result<()> {
        let numbers = |dir: &str| -> Vec<u32> {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        };
        for pid in numbers("/proc") {
            for tid in numbers(&format!("/proc/{pid}/task")) {
                let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")) else { continue };
                self.buf.clear();
                comm_record(&mut self.buf, comm.trim_end_matches('\n'), 0, &Sample { pid, tid, time: 0 });
                self.out.write_all(&self.buf)?;
                self.records += 1;
            }
        }
        Ok(())
    }

    /// Records written after the header.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes the records `e` stands for (none for some kinds).
    pub fn event(&mut self, e: &Event) -> io::Result<()> {
        self.buf.clear();
        self.records += encode(&mut self.buf, e, &self.clock);
        self.out.write_all(&self.buf)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Appends the records for `e`; returns how many.
fn encode(buf: &mut Vec<u8>, e: &Event, clock: &Clock) -> u64 {
    let time = e.time().map_or(0, |t| clock.boot_ns(t));
    match e {
        Event::Namespaces { pid, tid, comm, cause, namespaces, forked_by, .. } => {
            let id = Sample { pid: *pid, tid: *tid, time };
            let mut n = 0;
            if let (Cause::Fork, Some((ppid, ptid))) = (cause, forked_by) {
                task_record(buf, RECORD_FORK, [*pid, *ppid, *tid, *ptid], &id);
                n += 1;
            }
            if matches!(cause, Cause::Fork | Cause::Exec) {
                let misc = if *cause == Cause::Exec { MISC_COMM_EXEC } else { 0 };
                comm_record(buf, comm, misc, &id);
                n += 1;
            }
            namespaces_record(buf, namespaces, &id);
            n + 1
        }
        Event::Exit { pid, tid, parent_pid, .. } => {
            task_record(
                buf,
                RECORD_EXIT,
                [*pid, *parent_pid, *tid, *parent_pid],
                &Sample { pid: *pid, tid: *tid, time },
            );
            1
        }
        _ => {
            let Some(kind) = KINDS.iter().position(|k| *k == e.name()) else { return 0 };
            // Kernel work (a destroy, a lost record) is pid 0's, as perf shows it.
            let (pid, tid) = e.pid_tid().unwrap_or((0, 0));
            let detail = crate::present::render::event_detail(e);
            let rows = sample_rows(e);
            for (ns_type, id, inode) in &rows {
                // The text's own "net   id=N inode=M" is in the sample's fields already.
                let ids = format!("id={id} inode={inode}");
                let detail = ns_type
                    .and_then(|t| detail.strip_prefix(t.name()))
                    .and_then(|rest| rest.trim_start().strip_prefix(&ids))
                    .map_or(&detail[..], str::trim_start);
                let raw = raw_fields(FIRST_TRACEPOINT_ID + kind as u64, pid, *ns_type, *id, *inode, detail);
                sample_record(buf, kind as u64 + 1, &Sample { pid, tid, time }, &raw);
            }
            rows.len() as u64
        }
    }
}

/// (type, id, inode) per sample of a lifecycle event: one per namespace
/// an unshare or setns changed, else one.
fn sample_rows(e: &Event) -> Vec<(Option<NsType>, u64, u64)> {
    match e {
        Event::Create { ns_type, id, inode, .. }
        | Event::Destroy { ns_type, id, inode, .. }
        | Event::Dying { ns_type, id, inode, .. } => vec![(Some(*ns_type), *id, *inode)],
        Event::Setns { joined: c, .. } | Event::Unshare { new: c, .. } if !c.is_empty() => {
            c.iter().map(|c| (Some(c.ns_type), c.id, c.inode)).collect()
        }
        _ => vec![(None, 0, 0)],
    }
}

/// The task a sample or a task record is about, and when.
struct Sample {
    pid: u32,
    tid: u32,
    time: u64,
}

fn header(buf: &mut Vec<u8>, kind: u32, misc: u16, size: usize) {
    debug_assert!(size.is_multiple_of(8) && size <= u16::MAX as usize);
    buf.extend_from_slice(&kind.to_le_bytes());
    buf.extend_from_slice(&misc.to_le_bytes());
    buf.extend_from_slice(&(size as u16).to_le_bytes());
}

fn u32s(buf: &mut Vec<u8>, v: &[u32]) {
    v.iter().for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
}

fn u64s(buf: &mut Vec<u8>, v: &[u64]) {
    v.iter().for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
}

/// The `sample_id_all` trailer of a non-sample record: pid, tid, time,
/// cpu, id (the first attr's: every attr has the same layout).
const TRAILER: usize = 32;
fn trailer(buf: &mut Vec<u8>, s: &Sample) {
    u32s(buf, &[s.pid, s.tid]);
    u64s(buf, &[s.time]);
    u32s(buf, &[0, 0]);
    u64s(buf, &[1]);
}

fn attr_record(buf: &mut Vec<u8>, config: u64, id: u64) {
    header(buf, RECORD_HEADER_ATTR, 0, 8 + ATTR_SIZE as usize + 8);
    let start = buf.len();
    u32s(buf, &[PERF_TYPE_TRACEPOINT, ATTR_SIZE]);
    // config, sample_period, sample_type, read_format, flag bits
    u64s(buf, &[config, 1, SAMPLE_TYPE, 0, SAMPLE_ID_ALL | EXCLUDE_KERNEL]);
    buf.resize(start + ATTR_SIZE as usize, 0);
    u64s(buf, &[id]);
}

/// FORK or EXIT: pid, ppid, tid, ptid, time.
fn task_record(buf: &mut Vec<u8>, kind: u32, ids: [u32; 4], s: &Sample) {
    header(buf, kind, 0, 8 + 24 + TRAILER);
    u32s(buf, &ids);
    u64s(buf, &[s.time]);
    trailer(buf, s);
}

fn comm_record(buf: &mut Vec<u8>, comm: &str, misc: u16, s: &Sample) {
    // The kernel's comm is at most 15 bytes; NUL-terminated, padded to 8.
    let name = &comm.as_bytes()[..comm.len().min(15)];
    let padded = (name.len() + 1).next_multiple_of(8);
    header(buf, RECORD_COMM, misc, 8 + 8 + padded + TRAILER);
    u32s(buf, &[s.pid, s.tid]);
    buf.extend_from_slice(name);
    buf.resize(buf.len() + padded - name.len(), 0);
    trailer(buf, s);
}

fn namespaces_record(buf: &mut Vec<u8>, namespaces: &[PerfNs], s: &Sample) {
    header(buf, RECORD_NAMESPACES, 0, 8 + 16 + 16 * PERF_ORDER.len() + TRAILER);
    u32s(buf, &[s.pid, s.tid]);
    u64s(buf, &[PERF_ORDER.len() as u64]);
    for t in PERF_ORDER {
        let n = namespaces.iter().find(|n| n.ns_type == t);
        u64s(buf, &[n.map_or(0, |n| n.dev), n.map_or(0, |n| n.inode)]);
    }
    trailer(buf, s);
}

fn sample_record(buf: &mut Vec<u8>, id: u64, s: &Sample, raw: &[u8]) {
    // As the kernel does: the u32 size plus the data end on an 8-byte boundary.
    let raw_size = (raw.len() + 4).next_multiple_of(8) - 4;
    header(buf, RECORD_SAMPLE, MISC_USER, 8 + 40 + 4 + raw_size);
    u64s(buf, &[id]);
    u32s(buf, &[s.pid, s.tid]);
    u64s(buf, &[s.time]);
    u32s(buf, &[0, 0]);
    u64s(buf, &[1]);
    u32s(buf, &[raw_size as u32]);
    buf.extend_from_slice(raw);
    buf.resize(buf.len() + raw_size - raw.len(), 0);
}

/// Offset of the `detail` field (a `__data_loc`: u32 length << 16 |
/// offset) and of its text, right after it.
const DETAIL_LOC_AT: usize = 32;
const DETAIL_AT: usize = DETAIL_LOC_AT + 4;
/// Longest detail kept (perf's `__data_loc` length is 16 bits).
const DETAIL_MAX: usize = 1024;

/// The raw tracepoint data of one sample, as [`format`] describes it.
fn raw_fields(common_type: u64, pid: u32, ns_type: Option<NsType>, id: u64, inode: u64, detail: &str) -> Vec<u8> {
    let mut raw = Vec::with_capacity(DETAIL_AT + detail.len() + 1);
    raw.extend_from_slice(&(common_type as u16).to_le_bytes());
    raw.extend_from_slice(&[0, 0]);
    raw.extend_from_slice(&(pid as i32).to_le_bytes());
    let mut name = [0u8; 8];
    let type_name = ns_type.map_or("-", NsType::name);
    name[..type_name.len()].copy_from_slice(type_name.as_bytes());
    raw.extend_from_slice(&name);
    raw.extend_from_slice(&id.to_le_bytes());
    raw.extend_from_slice(&inode.to_le_bytes());
    let mut text = &detail.as_bytes()[..detail.len().min(DETAIL_MAX)];
    while std::str::from_utf8(text).is_err() {
        text = &text[..text.len() - 1];
    }
    let len = text.len() + 1;
    raw.extend_from_slice(&((len as u32) << 16 | DETAIL_AT as u32).to_le_bytes());
    debug_assert_eq!(raw.len(), DETAIL_AT);
    raw.extend_from_slice(text);
    raw.push(0);
    raw
}

/// The format text of event `name` (the layout [`raw_fields`] writes).
fn format(name: &str, id: u64) -> String {
    format!(
        "name: {name}\nID: {id}\nformat:\n\
         \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
         \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
         \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
         \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
         \tfield:char ns_type[8];\toffset:8;\tsize:8;\tsigned:0;\n\
         \tfield:unsigned long long ns_id;\toffset:16;\tsize:8;\tsigned:0;\n\
         \tfield:unsigned long long inode;\toffset:24;\tsize:8;\tsigned:0;\n\
         \tfield:__data_loc char[] detail;\toffset:{DETAIL_LOC_AT};\tsize:4;\tsigned:0;\n\n\
         print fmt: \"type=%s id=%llu inode=%llu %s\", REC->ns_type, REC->ns_id, REC->inode, __get_str(detail)\n"
    )
}

/// The kernel's ring-buffer page and event headers as tracefs prints them
/// (perf parses the page header's field sizes).
const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\
                           \tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\
                           \tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\
                           \tfield: char data;\toffset:16;\tsize:4080;\tsigned:1;\n";
const HEADER_EVENT: &str = "# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\
                            \tarray       :   32 bits\n\n\tpadding     : type == 29\n\ttime_extend : type == 30\n\
                            \ttime_stamp : type == 31\n\tdata max type_len  == 28\n";

/// The tracing data perf reads formats from (trace-event-read.c, version 0.6).
fn tracing_data() -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&[23, 8, 68]);
    d.extend_from_slice(b"tracing0.6\0");
    d.extend_from_slice(&[0, 8]); // little-endian, sizeof(long)
    d.extend_from_slice(&4096u32.to_le_bytes());
    for (name, text) in [("header_page", HEADER_PAGE), ("header_event", HEADER_EVENT)] {
        d.extend_from_slice(name.as_bytes());
        d.push(0);
        d.extend_from_slice(&(text.len() as u64).to_le_bytes());
        d.extend_from_slice(text.as_bytes());
    }
    d.extend_from_slice(&0u32.to_le_bytes()); // no ftrace formats
    d.extend_from_slice(&1u32.to_le_bytes()); // one system
    d.extend_from_slice(b"nstrace\0");
    d.extend_from_slice(&(KINDS.len() as u32).to_le_bytes());
    for (i, name) in KINDS.iter().enumerate() {
        let f = format(name, FIRST_TRACEPOINT_ID + i as u64);
        d.extend_from_slice(&(f.len() as u64).to_le_bytes());
        d.extend_from_slice(f.as_bytes());
    }
    d.extend_from_slice(&0u32.to_le_bytes()); // kallsyms
    d.extend_from_slice(&0u32.to_le_bytes()); // printk formats
    d.extend_from_slice(&0u64.to_le_bytes()); // saved cmdlines
    d
}

/// The tracing-data record: its header, then the data (outside the
/// record's size), padded to 8 bytes.
fn tracing_data_record(buf: &mut Vec<u8>) {
    let data = tracing_data();
    let padded = data.len().next_multiple_of(8);
    header(buf, RECORD_HEADER_TRACING_DATA, 0, 16);
    u32s(buf, &[padded as u32, 0]);
    buf.extend_from_slice(&data);
    buf.resize(buf.len() + padded - data.len(), 0);
}

#[cfg(test)]
mod tests;

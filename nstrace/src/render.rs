//! Rendering of records and rows as JSON values and text lines.

use nstrace_common::{
    decode::Record,
    event::{EventKind, NsRef, TaskNsEvent},
    ns::{NsType, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN},
};
use serde_json::{Map, Value, json};

/// A NUL-padded kernel `comm` as text.
pub fn comm_str(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

fn ns_ref_json(r: &NsRef) -> Value {
    json!({ "id": r.id, "inode": r.inum })
}

/// The task's namespace set, keyed by type name (plus the for-children ones).
pub fn task_ns_json(e: &TaskNsEvent) -> Value {
    let mut m = Map::new();
    for ty in NsType::ALL {
        m.insert(ty.name().into(), ns_ref_json(&e.ns[ty as usize]));
    }
    m.insert("pid_for_children".into(), ns_ref_json(&e.ns[SLOT_PID_FOR_CHILDREN]));
    m.insert("time_for_children".into(), ns_ref_json(&e.ns[SLOT_TIME_FOR_CHILDREN]));
    Value::Object(m)
}

/// Seconds since boot (CLOCK_BOOTTIME) of a record timestamp.
pub fn boot_secs(ts_ns: u64) -> f64 {
    ts_ns as f64 / 1e9
}

pub fn event_json(record: &Record) -> Value {
    match record {
        Record::Task(e) => {
            let kind = EventKind::from_u32(e.header.kind).map(|k| k.name()).unwrap_or("?");
            json!({
                "event": if e.header.kind == EventKind::Exit as u32 { "exit" } else { "namespaces" },
                "cause": kind,
                "time": boot_secs(e.header.ts_ns),
                "pid": e.subject_tgid,
                "tid": e.subject_tid,
                "ppid": e.parent_tgid,
                "caller_pid": e.header.tgid,
                "caller_tid": e.header.tid,
                "comm": comm_str(&e.comm),
                "clone_flags": e.clone_flags,
                "namespaces": task_ns_json(e),
            })
        }
        Record::NsInfo(r) => json!({
            "event": "ns-info",
            "type": NsType::from_u32(r.ns_type).map(|t| t.name()).unwrap_or("?"),
            "id": r.id,
            "inode": r.inum,
            "refcount": r.refcount,
        }),
        Record::WalkDone(w) => json!({ "event": "walk-done", "status": w.status }),
    }
}

pub fn event_text(record: &Record) -> String {
    match record {
        Record::Task(e) => {
            let kind = EventKind::from_u32(e.header.kind).map(|k| k.name()).unwrap_or("?");
            let mut s = format!(
                "{:>14.6} {:<5} pid={} tid={} comm={}",
                boot_secs(e.header.ts_ns),
                kind,
                e.subject_tgid,
                e.subject_tid,
                comm_str(&e.comm)
            );
            for ty in NsType::ALL {
                s.push_str(&format!(" {}={}", ty.name(), e.ns[ty as usize].inum));
            }
            s
        }
        other => event_json(other).to_string(),
    }
}

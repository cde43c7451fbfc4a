//! `ls --json`'s hot path: a row's [`NsRow`] fields and its task holders
//! written straight into the buffer, byte for byte as serde_json writes
//! them (a test compares the two on every kind of value). serde's
//! per-token calls were most of the output's time at 10,000 namespaces:
//! every key went through string escaping, every holder through an
//! internally tagged enum. Anything rarer (other holders, containers,
//! netns names, the provenance fields) still goes through serde.

use std::io;

use serde::Serialize;

use crate::model::{Holder, NsRow, TaskHold};

/// Appends the fields of `row` as they follow `{`.
pub fn ns_row_fields(row: &NsRow, buf: &mut Vec<u8>) -> io::Result<()> {
    key(buf, "id", true);
    opt_num(buf, row.id);
    key(buf, "inode", false);
    num(buf, row.inode);
    key(buf, "type", false);
    plain_str(buf, row.ns_type.name());
    key(buf, "state", false);
    plain_str(buf, row.state.name());
    key(buf, "tasks", false);
    num(buf, row.tasks);
    key(buf, "pids", false);
    buf.push(b'[');
    for (i, pid) in row.pids.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        num(buf, *pid);
    }
    buf.push(b']');
    key(buf, "holders", false);
    holders(&row.holders, buf)?;
    key(buf, "refcount", false);
    opt_num(buf, row.refcount);
    if let Some(active) = row.active_refs {
        key(buf, "active_refs", false);
        num(buf, active);
    }
    key(buf, "owner", false);
    opt_num(buf, row.owner);
    key(buf, "parent", false);
    opt_num(buf, row.parent);
    key(buf, "level", false);
    opt_num(buf, row.level);
    key(buf, "names", false);
    value(buf, &row.names)?;
    key(buf, "command", false);
    match &row.command {
        Some(c) => string(buf, c)?,
        None => buf.extend_from_slice(b"null"),
    }
    key(buf, "containers", false);
    value(buf, &row.containers)?;
    key(buf, "host_tasks", false);
    num(buf, row.host_tasks);
    if !row.charge.is_unknown() {
        key(buf, "charged_uid", false);
        num(buf, row.charge.uid);
    }
    if let Some(dying) = &row.dying {
        field(buf, "dying", dying)?;
    }
    Ok(())
}

/// Appends a further field of the row, its value through serde.
pub fn field(buf: &mut Vec<u8>, name: &str, v: &impl Serialize) -> io::Result<()> {
    key(buf, name, false);
    value(buf, v)
}

/// `,` unless first, then `"name":`.
fn key(buf: &mut Vec<u8>, name: &str, first: bool) {
    if !first {
        buf.push(b',');
    }
    plain_str(buf, name);
    buf.push(b':');
}

/// The holders list, task holders by hand.
fn holders(list: &[Holder], buf: &mut Vec<u8>) -> io::Result<()> {
    buf.push(b'[');
    for (i, h) in list.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        match h {
            Holder::Task { pid, tid, comm, hold } => {
                buf.extend_from_slice(b"{\"kind\":\"task\",\"pid\":");
                num(buf, *pid);
                if let Some(tid) = tid {
                    buf.extend_from_slice(b",\"tid\":");
                    num(buf, *tid);
                }
                buf.extend_from_slice(b",\"comm\":");
                string(buf, comm)?;
                buf.extend_from_slice(b",\"hold\":");
                plain_str(buf, hold_name(*hold));
                buf.push(b'}');
            }
            other => value(buf, other)?,
        }
    }
    buf.push(b']');
    Ok(())
}

fn hold_name(hold: TaskHold) -> &'static str {
    match hold {
        TaskHold::Member => "member",
        TaskHold::PidForChildren => "pid-for-children",
        TaskHold::TimeForChildren => "time-for-children",
    }
}

/// A value through serde.
fn value(buf: &mut Vec<u8>, v: &(impl Serialize + ?Sized)) -> io::Result<()> {
    serde_json::to_writer(&mut *buf, v).map_err(io::Error::from)
}

fn num(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn opt_num(buf: &mut Vec<u8>, n: Option<impl itoa::Integer>) {
    match n {
        Some(n) => num(buf, n),
        None => buf.extend_from_slice(b"null"),
    }
}

/// A string known to need no escaping (names of this program's own).
fn plain_str(buf: &mut Vec<u8>, s: &str) {
    debug_assert!(!needs_escape(s));
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
}

/// Any string: as is when nothing in it needs escaping, else serde's escapes.
fn string(buf: &mut Vec<u8>, s: &str) -> io::Result<()> {
    if needs_escape(s) {
        return value(buf, s);
    }
    plain_str(buf, s);
    Ok(())
}

fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

//! Decoded records into events: the one place it happens.

use nstrace_common::{
    decode::{Record, comm_str},
    event::{EventKind, MountEvent, RefusalEvent, SyscallNsEvent, TaskNsEvent, mount_syscall, refused_syscall},
    ns::CLONE_NEW_MASK,
};

use super::*;
use crate::time::{BootNs, Clock};

/// The one place a decoded record becomes events: `clone`/`namespaces`
/// for a task record, `unshare`/`setns` then `namespaces` for a syscall
/// record, `mount` for a mount record. Create and destroy records become
/// events in the store, which knows what they add to and end; other
/// records (walk rows, destroy hints) are not events. `mount_path`
/// resolves a mount's target (see [`Event::Mount`]'s `path`). A task's
/// exit is an `exit` event only with `exits` (asked for: otherwise the
/// exit records that come are the ones that may end namespaces).
pub fn from_record(
    record: &Record,
    clock: &Clock,
    dev: u64,
    exits: bool,
    mount_path: impl FnOnce(&MountEvent) -> Option<String>,
    out: &mut Vec<Event>,
) {
    match record {
        Record::Task(t) => from_task(t, clock, dev, exits, out),
        Record::Syscall(s) => from_syscall(s, clock, dev, out),
        Record::Mount(m) => out.push(from_mount(m, clock, mount_path(m))),
        Record::Refused(r) => out.push(from_refusal(r, clock)),
        _ => {}
    }
}

fn from_refusal(e: &RefusalEvent, clock: &Clock) -> Event {
    let reason = crate::refusal::RefusalReason::of(e);
    Event::Refused {
        time: clock.unix(BootNs::from_nanos(e.header.ts_ns)),
        pid: e.header.tgid,
        tid: e.header.tid,
        comm: comm_str(&e.comm),
        uid: e.euid,
        syscall: match e.syscall {
            refused_syscall::CLONE => "clone",
            refused_syscall::CLONE3 => "clone3",
            _ => "unshare",
        },
        flags: e.flags,
        flags_text: CloneFlags(e.flags),
        errno: errno_name(i64::from(e.ret)).unwrap_or("E?"),
        types: types_in_flags(e.flags),
        text: reason.text(),
        explain: reason.explain_command(),
        reason,
        container: None,
    }
}

/// Events a task record stands for: `namespaces` (fork, exec) and `clone`.
fn from_task(e: &TaskNsEvent, clock: &Clock, dev: u64, exits: bool, out: &mut Vec<Event>) {
    let time = clock.unix(BootNs::from_nanos(e.header.ts_ns));
    let comm = comm_str(&e.comm);
    let cause = match EventKind::from_u32(e.header.kind) {
        Some(EventKind::Fork) => Cause::Fork,
        Some(EventKind::Exec) => Cause::Exec,
        Some(EventKind::Exit) if exits => {
            let (pid, tid, parent_pid) = (e.header.tgid, e.header.tid, e.parent_tgid);
            return out.push(Event::Exit { time, pid, tid, comm, parent_pid });
        }
        _ => return,
    };
    let flags = e.flags as u64;
    if cause == Cause::Fork && flags & CLONE_NEW_MASK != 0 {
        out.push(Event::Clone {
            time,
            pid: e.header.tgid,
            tid: e.header.tid,
            comm: comm.clone(),
            child_pid: e.subject_tgid,
            child_tid: e.subject_tid,
            flags,
            flags_text: CloneFlags(flags),
            types: types_in_flags(flags),
        });
    }
    out.push(Event::Namespaces {
        time,
        pid: e.subject_tgid,
        tid: e.subject_tid,
        comm,
        cause,
        namespaces: perf_namespaces(&e.ns, dev),
        forked_by: (cause == Cause::Fork).then_some((e.header.tgid, e.header.tid)),
    });
}

/// A mount record as an event; `path` is the target with symlinks resolved.
fn from_mount(e: &MountEvent, clock: &Clock, path: Option<String>) -> Event {
    Event::Mount {
        time: clock.unix(BootNs::from_nanos(e.header.ts_ns)),
        pid: e.header.tgid,
        tid: e.header.tid,
        comm: comm_str(&e.comm),
        parent_pid: e.parent_tgid,
        parent_comm: comm_str(&e.parent_comm),
        syscall: if e.syscall == mount_syscall::MOVE_MOUNT { "move_mount" } else { "mount" },
        flags: e.flags,
        mnt_ns: u64::from(e.mnt_ns),
        target: comm_str(&e.target),
        path,
    }
}

/// Events a syscall record stands for: `unshare`/`setns`, then `namespaces`.
fn from_syscall(e: &SyscallNsEvent, clock: &Clock, dev: u64, out: &mut Vec<Event>) {
    let time = clock.unix(BootNs::from_nanos(e.header.ts_ns));
    let comm = comm_str(&e.comm);
    let (pid, tid) = (e.header.tgid, e.header.tid);
    let changed = changes(&e.before, &e.after);
    let unshare = e.header.kind == EventKind::Unshare as u32;
    out.push(if unshare {
        Event::Unshare {
            time,
            pid,
            tid,
            comm: comm.clone(),
            flags: e.flags,
            flags_text: CloneFlags(e.flags),
            result: e.ret,
            errno: errno_name(e.ret),
            new: changed,
        }
    } else {
        Event::Setns {
            time,
            pid,
            tid,
            comm: comm.clone(),
            fd: e.fd,
            fd_kind: fd_kind(e.fd_magic),
            flags: e.flags,
            flags_text: CloneFlags(e.flags),
            result: e.ret,
            errno: errno_name(e.ret),
            joined: changed,
        }
    });
    if e.ret == 0 {
        out.push(Event::Namespaces {
            time,
            pid,
            tid,
            comm,
            cause: if unshare { Cause::Unshare } else { Cause::Setns },
            namespaces: perf_namespaces(&e.after, dev),
            forked_by: None,
        });
    }
}

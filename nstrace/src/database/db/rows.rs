//! Rows of the `namespaces` table as [`NsProvenance`]s and back.

use nstrace_common::ns::NsType;
use rusqlite::params;

use crate::{
    database::{Death, NsProvenance},
    model::{Creator, NsKey, PinMaker, Process},
    origin::{ContainerRef, Origin},
    time::UnixTime,
};

pub(super) const COLUMNS: &str = "rowid, type, inode, ns_id, created_at, first_seen, creator_pid, creator_tid, creator_comm, cause, \
    flags, exe, cmdline, parent_process, cgroup, container_runtime, container_id, container_name, pod, pod_uid, \
    owner_inode, parent_inode, identity, containers";
pub(super) const COLUMN_COUNT: usize = 24;

/// A new row for `r`, already dead when `death` is given (a namespace born
/// and gone within one batch is written once).
pub(super) fn insert(
    tx: &rusqlite::Transaction<'_>,
    boot_id: &str,
    r: &NsProvenance,
    death: Option<&Death>,
) -> Result<i64, rusqlite::Error> {
    // Cached: a churn writes thousands of rows a second, and parsing the
    // statement each time cost more than running it.
    let mut stmt = tx.prepare_cached(
        "INSERT INTO namespaces(boot_id, type, inode, ns_id, first_seen, created_at, creator_pid, creator_tid,
         creator_comm, cause, flags, exe, cmdline, parent_process, cgroup, container_runtime, container_id,
         container_name, pod, pod_uid, owner_inode, parent_inode, identity, containers, destroyed_at, lifetime,
         destroyed_via)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
         ?23, ?24, ?25, ?26, ?27)",
    )?;
    let v = Values::of(r);
    stmt.execute(params![
        boot_id,
        r.ns_type.name(),
        r.inode as i64,
        r.id.map(|i| i as i64),
        r.first_seen,
        v.created,
        v.pid,
        v.tid,
        v.comm,
        v.cause,
        v.flags,
        v.exe,
        v.cmdline,
        v.parent,
        v.cgroup,
        v.runtime,
        v.container_id,
        v.container_name,
        v.pod,
        v.pod_uid,
        v.owner,
        v.parent_ns,
        r.identity,
        v.containers,
        death.map(|d| d.at),
        death.and_then(|d| d.lifetime),
        death.and_then(|d| d.via.map(crate::events::DeathVia::name)),
    ])?;
    Ok(tx.last_insert_rowid())
}

/// Times are REAL columns of Unix seconds.
impl rusqlite::ToSql for UnixTime {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_secs().into())
    }
}

impl rusqlite::types::FromSql for UnixTime {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<UnixTime> {
        f64::column_result(v).map(UnixTime::from_secs)
    }
}

/// Processes are TEXT columns, "comm[pid]" as shown.
macro_rules! as_text {
    ($t:ty) => {
        impl rusqlite::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.to_string().into())
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<$t> {
                String::column_result(v)?.parse().map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

as_text!(Process);
as_text!(PinMaker);

/// A record's columns as SQL values (shared by insert and update).
struct Values<'a> {
    created: Option<UnixTime>,
    pid: Option<u32>,
    tid: Option<u32>,
    comm: Option<&'a str>,
    cause: Option<&'a str>,
    flags: Option<i64>,
    exe: Option<&'a str>,
    cmdline: Option<&'a str>,
    parent: Option<&'a Process>,
    cgroup: Option<&'a str>,
    runtime: Option<&'a str>,
    container_id: Option<&'a str>,
    container_name: Option<&'a str>,
    pod: Option<&'a str>,
    pod_uid: Option<&'a str>,
    owner: Option<i64>,
    parent_ns: Option<i64>,
    containers: Option<String>,
}

impl<'a> Values<'a> {
    fn of(r: &'a NsProvenance) -> Values<'a> {
        let c = r.creator.as_ref();
        let o = c.map(|c| &c.origin);
        let k = o.and_then(|o| o.container.as_ref());
        Values {
            created: r.created,
            pid: c.map(|c| c.pid),
            tid: c.map(|c| c.tid),
            comm: c.map(|c| c.comm.as_str()),
            cause: c.map(|c| c.cause.name()),
            flags: c.map(|c| c.flags as i64),
            exe: o.and_then(|o| o.exe.as_deref()),
            cmdline: o.and_then(|o| o.cmdline.as_deref()),
            parent: o.and_then(|o| o.parent.as_ref()),
            cgroup: o.and_then(|o| o.cgroup.as_deref()),
            runtime: k.map(|k| k.runtime.name()),
            container_id: k.map(|k| k.id.as_str()),
            container_name: k.and_then(|k| k.name.as_deref()),
            pod: k.and_then(|k| k.pod.as_deref()),
            pod_uid: k.and_then(|k| k.pod_uid.as_deref()),
            owner: r.owner.map(|i| i as i64),
            parent_ns: r.parent.map(|i| i as i64),
            containers: (!r.containers.is_empty()).then(|| serde_json::to_string(&r.containers).unwrap_or_default()),
        }
    }
}

pub(super) fn update(tx: &rusqlite::Transaction<'_>, rowid: i64, r: &NsProvenance) -> Result<(), rusqlite::Error> {
    let mut stmt = tx.prepare_cached(
        "UPDATE namespaces SET created_at = ?2, creator_pid = ?3, creator_tid = ?4, creator_comm = ?5, cause = ?6,
         flags = ?7, exe = ?8, cmdline = ?9, parent_process = ?10, cgroup = ?11, container_runtime = ?12,
         container_id = ?13, container_name = ?14, pod = ?15, pod_uid = ?16, owner_inode = ?17, parent_inode = ?18,
         identity = coalesce(?19, identity), first_seen = min(first_seen, ?20), containers = ?21 WHERE rowid = ?1",
    )?;
    let v = Values::of(r);
    stmt.execute(params![
        rowid,
        v.created,
        v.pid,
        v.tid,
        v.comm,
        v.cause,
        v.flags,
        v.exe,
        v.cmdline,
        v.parent,
        v.cgroup,
        v.runtime,
        v.container_id,
        v.container_name,
        v.pod,
        v.pod_uid,
        v.owner,
        v.parent_ns,
        r.identity,
        r.first_seen,
        v.containers,
    ])?;
    Ok(())
}

pub(super) fn record_of(row: &rusqlite::Row<'_>) -> Result<NsProvenance, rusqlite::Error> {
    let ns_type: String = row.get(1)?;
    let ns_type = NsType::ALL.into_iter().find(|t| t.name() == ns_type).unwrap_or(NsType::Net);
    let inode = row.get::<_, i64>(2)? as u64;
    let id = row.get::<_, Option<i64>>(3)?.map(|i| i as u64);
    let creator = match row.get::<_, Option<u32>>(6)? {
        Some(pid) => {
            let runtime: Option<String> = row.get(15)?;
            let container = match runtime {
                Some(runtime) => Some(ContainerRef {
                    runtime: crate::containers::Runtime::of_name(&runtime),
                    id: row.get::<_, Option<String>>(16)?.unwrap_or_default(),
                    name: row.get(17)?,
                    pod: row.get(18)?,
                    pod_uid: row.get(19)?,
                    // Not a column: a creator's sandbox is the pod's, which `containers` keeps.
                    sandbox: None,
                }),
                None => None,
            };
            Some(Creator {
                pid,
                tid: row.get::<_, Option<u32>>(7)?.unwrap_or(pid),
                comm: row.get::<_, Option<String>>(8)?.unwrap_or_default(),
                cause: crate::events::Cause::of_name(&row.get::<_, Option<String>>(9)?.unwrap_or_default()),
                flags: row.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
                origin: Origin {
                    exe: row.get(11)?,
                    cmdline: row.get(12)?,
                    parent: row.get(13)?,
                    cgroup: row.get(14)?,
                    container,
                    cgroup_id: None,
                },
            })
        }
        None => None,
    };
    Ok(NsProvenance {
        key: NsKey::new(ns_type, inode).with_id(id),
        ns_type,
        inode,
        id,
        created: row.get(4)?,
        first_seen: row.get(5)?,
        creator,
        owner: row.get::<_, Option<i64>>(20)?.map(|i| i as u64),
        parent: row.get::<_, Option<i64>>(21)?.map(|i| i as u64),
        pins: Vec::new(),
        identity: row.get(22)?,
        containers: row.get::<_, Option<String>>(23)?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
    })
}

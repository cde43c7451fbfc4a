//! The provenance database: one SQLite file (WAL), written by one writer
//! thread, readable with the `sqlite3` tool. Tables (README documents them):
//! `meta` (schema version), `namespaces` (one row per namespace per boot:
//! creation, creator, container, death) and `pins` (mounts and fds that
//! held it, with who and when).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use nstrace_common::ns::NsType;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use self::rows::{COLUMN_COUNT, COLUMNS, insert, record_of, update};
use super::{Change, NsProvenance};
use crate::{
    model::{Pin, PinKind},
    time::UnixTime,
};

/// Bumped with each migration in [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = 2;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE namespaces (
    rowid INTEGER PRIMARY KEY,
    boot_id TEXT NOT NULL,
    type TEXT NOT NULL,
    inode INTEGER NOT NULL,
    ns_id INTEGER,
    created_at REAL,
    first_seen REAL NOT NULL,
    creator_pid INTEGER, creator_tid INTEGER, creator_comm TEXT, cause TEXT, flags INTEGER,
    exe TEXT, cmdline TEXT, parent_process TEXT, cgroup TEXT,
    container_runtime TEXT, container_id TEXT, container_name TEXT, pod TEXT, pod_uid TEXT,
    owner_inode INTEGER, parent_inode INTEGER,
    containers TEXT,
    identity INTEGER,
    destroyed_at REAL, lifetime REAL, destroyed_via TEXT
);
CREATE INDEX namespaces_alive ON namespaces(boot_id, type, inode) WHERE destroyed_at IS NULL;
CREATE INDEX namespaces_id ON namespaces(ns_id);
CREATE INDEX namespaces_destroyed ON namespaces(destroyed_at);
CREATE INDEX namespaces_container ON namespaces(container_id);
CREATE TABLE pins (
    ns INTEGER NOT NULL REFERENCES namespaces(rowid) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    mnt_ns INTEGER,
    made_by TEXT,
    attribution TEXT NOT NULL,
    since REAL NOT NULL,
    released REAL
);
CREATE INDEX pins_ns ON pins(ns);
",
    "
CREATE TABLE refusals (
    boot_id TEXT NOT NULL,
    at REAL NOT NULL,
    pid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX refusals_at ON refusals(at);
",
];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{what} {path}")]
    Sqlite { what: &'static str, path: PathBuf, source: rusqlite::Error },
    #[error("creating {path}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("{path} was written by a newer nstrace (schema {found}, this one knows {SCHEMA_VERSION})")]
    TooNew { path: PathBuf, found: i64 },
    #[error("{path} is in use by another nstrace serve")]
    InUse { path: PathBuf },
}

/// A namespace the database holds as alive.
#[derive(Clone, Debug, PartialEq)]
pub struct Alive {
    pub rowid: i64,
    pub record: NsProvenance,
}

/// Binds `value` to every `?1x` placeholder just appended to `sql` (one
/// numbered parameter, however often the clause repeats it).
fn bind(sql: &mut String, args: &mut Vec<rusqlite::types::Value>, value: &str) {
    args.push(value.to_string().into());
    *sql = sql.replace("?1x", &format!("?{}", args.len()));
}

/// What `history` selects.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub ns_type: Option<NsType>,
    /// A container id prefix or name: the creator's container, or one seen in it.
    pub container: Option<String>,
    /// A pod: its name, namespace/name, UID, or a sandbox id prefix.
    pub pod: Option<String>,
    /// Namespaces alive at or after it.
    pub since: Option<UnixTime>,
    pub alive: Option<bool>,
    pub limit: usize,
}

/// One namespace as `history` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub record: NsProvenance,
    pub boot_id: String,
    pub destroyed: Option<UnixTime>,
    pub lifetime: Option<f64>,
    pub via: Option<crate::events::DeathVia>,
}

pub struct Db {
    conn: Connection,
    path: PathBuf,
    boot_id: String,
    /// A writer's exclusive flock on the file, held while the connection
    /// is: a writer that lets go of a failed file system (to retry on it
    /// repaired) lets go of the lock too.
    _lock: Option<std::fs::File>,
}

impl Db {
    /// Opens (creating it and its directory, mode 0700) the database for
    /// writing. A file SQLite cannot read as a database is renamed to
    /// `<path>.corrupt-<unix time>` and a new one created; the returned
    /// string says so.
    pub fn open(path: &Path, boot_id: &str) -> Result<(Db, Option<String>), DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| DbError::Dir { path: dir.into(), source })?;
        }
        match Db::open_rw(path, boot_id) {
            Ok(db) => Ok((db, None)),
            Err(DbError::Sqlite { source, .. }) if is_corrupt(&source) => {
                let now = crate::time::Clock::unix_now().as_secs() as u64;
                let aside = PathBuf::from(format!("{}.corrupt-{now}", path.display()));
                std::fs::rename(path, &aside).map_err(|source| DbError::Dir { path: aside.clone(), source })?;
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                let db = Db::open_rw(path, boot_id)?;
                Ok((
                    db,
                    Some(format!(
                        "{} was not a readable database ({source}); moved it to {}",
                        path.display(),
                        aside.display()
                    )),
                ))
            }
            Err(e) => Err(e),
        }
    }

    fn open_rw(path: &Path, boot_id: &str) -> Result<Db, DbError> {
        let err = |what| move |source| DbError::Sqlite { what, path: path.into(), source };
        let conn = Connection::open(path).map_err(err("opening"))?;
        let lock = std::fs::File::open(path).map_err(|source| DbError::Dir { path: path.into(), source })?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(DbError::InUse { path: path.into() });
        }
        // quick_check reads every page: a damaged file fails here, not mid-run.
        let ok: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(err("checking"))?;
        if ok != "ok" {
            return Err(DbError::Sqlite {
                what: "checking",
                path: path.into(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(ok),
                ),
            });
        }
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=2000;",
        )
        .map_err(err("configuring"))?;
        let mut db = Db { conn, path: path.into(), boot_id: boot_id.into(), _lock: Some(lock) };
        db.migrate()?;
        Ok(db)
    }

    /// Opens an existing database read-only (clients without a service).
    pub fn open_read_only(path: &Path) -> Result<Db, DbError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|source| DbError::Sqlite { what: "opening", path: path.into(), source })?;
        Ok(Db { conn, path: path.into(), boot_id: String::new(), _lock: None })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The boot whose namespaces this connection records.
    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    fn err(&self, what: &'static str) -> impl Fn(rusqlite::Error) -> DbError + '_ {
        move |source| DbError::Sqlite { what, path: self.path.clone(), source }
    }

    fn migrate(&mut self) -> Result<(), DbError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err("reading the schema version of"))?;
        if version > SCHEMA_VERSION {
            return Err(DbError::TooNew { path: self.path.clone(), found: version });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(|source| DbError::Sqlite {
                what: "migrating",
                path: self.path.clone(),
                source,
            })?;
            tx.execute_batch(sql).map_err(|source| DbError::Sqlite {
                what: "migrating",
                path: self.path.clone(),
                source,
            })?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(|source| DbError::Sqlite {
                what: "migrating",
                path: self.path.clone(),
                source,
            })?;
            tx.commit().map_err(|source| DbError::Sqlite { what: "migrating", path: self.path.clone(), source })?;
        }
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )
            .map_err(self.err("writing"))?;
        Ok(())
    }

    /// Writes `changes` in one transaction. `rowids` maps the store's keys
    /// of live namespaces to their rows (the writer keeps it).
    pub fn apply(&mut self, changes: &[Change], rowids: &mut HashMap<crate::model::NsKey, i64>) -> Result<(), DbError> {
        let path = self.path.clone();
        let err = |source| DbError::Sqlite { what: "writing to", path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        // Row mappings made or dropped in this transaction: undone if it fails.
        let mut made = Vec::new();
        let mut dropped = Vec::new();
        // For each change, the index of the next change of the same
        // namespace: a new namespace whose next change is its death is
        // written once, dead (churn makes many that live a few ms).
        let mut next_of_key = HashMap::new();
        let mut next = vec![None; changes.len()];
        for (i, c) in changes.iter().enumerate().rev() {
            if let Some(key) = c.key() {
                next[i] = next_of_key.insert(key, i);
            }
        }
        let mut written_dead = vec![false; changes.len()];
        let result = (|| -> Result<(), rusqlite::Error> {
            for (i, c) in changes.iter().enumerate() {
                match c {
                    Change::Upsert(r) => {
                        let rowid = match rowids.get(&r.key) {
                            Some(&rowid) => {
                                update(&tx, rowid, r)?;
                                tx.prepare_cached("DELETE FROM pins WHERE ns = ?1")?.execute(params![rowid])?;
                                rowid
                            }
                            None => {
                                let death = next[i].and_then(|j| match &changes[j] {
                                    Change::Died { death, .. } => Some((j, death)),
                                    Change::Upsert(_) | Change::Refused(_) => None,
                                });
                                let rowid = insert(&tx, &self.boot_id, r, death.map(|(_, d)| d))?;
                                match death {
                                    Some((j, _)) => written_dead[j] = true,
                                    None => {
                                        rowids.insert(r.key, rowid);
                                        made.push(r.key);
                                    }
                                }
                                rowid
                            }
                        };
                        let mut pin = tx.prepare_cached(
                            "INSERT INTO pins(ns, kind, target, mnt_ns, made_by, attribution, since, released)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        )?;
                        for p in &r.pins {
                            pin.execute(params![
                                rowid,
                                p.kind.name(),
                                p.target,
                                p.mnt_ns.map(|m| m as i64),
                                p.by,
                                p.attribution.name(),
                                p.since,
                                p.released
                            ])?;
                        }
                    }
                    Change::Refused(r) => {
                        tx.prepare_cached(
                            "INSERT INTO refusals(boot_id, at, pid, uid, event) VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![self.boot_id, r.at, r.pid, r.uid, r.event])?;
                    }
                    Change::Died { .. } if written_dead[i] => {}
                    Change::Died { key, death } => match rowids.remove(key) {
                        Some(rowid) => {
                            dropped.push((*key, rowid));
                            tx.prepare_cached(
                                "UPDATE namespaces SET destroyed_at = ?2, lifetime = ?3, destroyed_via = ?4 \
                                 WHERE rowid = ?1",
                            )?
                            .execute(params![
                                rowid,
                                death.at,
                                death.lifetime,
                                death.via.map(crate::events::DeathVia::name)
                            ])?;
                        }
                        // Never recorded alive (evicted, or older than this run's records).
                        None => {
                            let r = NsProvenance {
                                key: *key,
                                ns_type: key.ns_type,
                                inode: key.inode,
                                id: key.id(),
                                created: None,
                                first_seen: death.at,
                                creator: None,
                                owner: None,
                                parent: None,
                                pins: Vec::new(),
                                containers: Vec::new(),
                                identity: None,
                            };
                            insert(&tx, &self.boot_id, &r, Some(death))?;
                        }
                    },
                }
            }
            Ok(())
        })();
        let result = result.and_then(|()| tx.commit());
        result.map_err(|source| {
            for k in &made {
                rowids.remove(k);
            }
            rowids.extend(dropped);
            DbError::Sqlite { what: "writing to", path: self.path.clone(), source }
        })
    }

    /// Namespaces of this boot the database holds as alive.
    pub fn alive(&self) -> Result<Vec<Alive>, DbError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM namespaces WHERE boot_id = ?1 AND destroyed_at IS NULL"))
            .map_err(self.err("reading"))?;
        let rows = stmt
            .query_map(params![self.boot_id], |row| Ok(Alive { rowid: row.get(0)?, record: record_of(row)? }))
            .map_err(self.err("reading"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading"))?;
        let mut out = Vec::with_capacity(rows.len());
        for mut a in rows {
            a.record.pins = self.pins(a.rowid)?;
            out.push(a);
        }
        Ok(out)
    }

    fn pins(&self, rowid: i64) -> Result<Vec<Pin>, DbError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, target, mnt_ns, made_by, attribution, since, released FROM pins WHERE ns = ?1 ORDER BY since")
            .map_err(self.err("reading"))?;
        stmt.query_map(params![rowid], |r| {
            let kind: String = r.get(0)?;
            Ok(Pin {
                kind: if kind == "fd" { PinKind::Fd } else { PinKind::Mount },
                target: r.get(1)?,
                mnt_ns: r.get::<_, Option<i64>>(2)?.map(|m| m as u64),
                by: r.get(3)?,
                attribution: crate::model::Attribution::of_name(&r.get::<_, String>(4)?),
                since: r.get(5)?,
                released: r.get(6)?,
            })
        })
        .map_err(self.err("reading"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(self.err("reading"))
    }

    /// Ends the rows that were alive when the last run stopped and cannot
    /// go on, each with its reason (`while-nstrace-was-down`: gone now;
    /// `identity-unknown`: its type and inode are alive but nothing proves
    /// it is the same namespace, which starts a new row), and those of an
    /// earlier boot (`reboot`), at `at`.
    pub fn close_unseen(&mut self, rowids: &[(i64, crate::events::DeathVia)], at: UnixTime) -> Result<usize, DbError> {
        let tx = self.conn.transaction().map_err(|source| DbError::Sqlite {
            what: "writing to",
            path: self.path.clone(),
            source,
        })?;
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare("UPDATE namespaces SET destroyed_at = ?2, destroyed_via = ?3 WHERE rowid = ?1")
                .map_err(|source| DbError::Sqlite { what: "writing to", path: self.path.clone(), source })?;
            for (r, via) in rowids {
                n += stmt.execute(params![r, at, via.name()]).map_err(|source| DbError::Sqlite {
                    what: "writing to",
                    path: self.path.clone(),
                    source,
                })?;
            }
            n += tx
                .execute(
                    "UPDATE namespaces SET destroyed_at = ?2, destroyed_via = ?3 WHERE boot_id != ?1 AND destroyed_at IS NULL",
                    params![self.boot_id, at, crate::events::DeathVia::Reboot.name()],
                )
                .map_err(|source| DbError::Sqlite { what: "writing to", path: self.path.clone(), source })?;
        }
        tx.commit().map_err(|source| DbError::Sqlite { what: "writing to", path: self.path.clone(), source })?;
        Ok(n)
    }

    /// Deletes namespaces destroyed before `before`, then the
    /// oldest destroyed ones past `max_rows` rows. Returns how many went.
    pub fn prune(&mut self, before: UnixTime, max_rows: usize) -> Result<usize, DbError> {
        let mut n = self
            .conn
            .execute("DELETE FROM namespaces WHERE destroyed_at IS NOT NULL AND destroyed_at < ?1", params![before])
            .map_err(self.err("pruning"))?;
        n += self.conn.execute("DELETE FROM refusals WHERE at < ?1", params![before]).map_err(self.err("pruning"))?;
        n += self
            .conn
            .execute(
                "DELETE FROM refusals WHERE rowid IN (SELECT rowid FROM refusals ORDER BY at DESC LIMIT -1 OFFSET ?1)",
                params![max_rows as i64],
            )
            .map_err(self.err("pruning"))?;
        let total: i64 =
            self.conn.query_row("SELECT count(*) FROM namespaces", [], |r| r.get(0)).map_err(self.err("pruning"))?;
        let excess = total - max_rows as i64;
        if excess > 0 {
            n += self
                .conn
                .execute(
                    "DELETE FROM namespaces WHERE rowid IN (SELECT rowid FROM namespaces WHERE destroyed_at IS NOT NULL
                     ORDER BY destroyed_at LIMIT ?1)",
                    params![excess],
                )
                .map_err(self.err("pruning"))?;
        }
        Ok(n)
    }

    /// Namespaces matching `q`, newest first.
    pub fn history(&self, q: &Query) -> Result<Vec<Entry>, DbError> {
        let mut sql =
            format!("SELECT {COLUMNS}, boot_id, destroyed_at, lifetime, destroyed_via FROM namespaces WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(t) = q.ns_type {
            sql.push_str(" AND type = ?");
            args.push(t.name().to_string().into());
        }
        // Prefixes compared with substr, not LIKE: a name may hold `_` or `%`.
        if let Some(c) = &q.container {
            sql.push_str(
                " AND (container_name = ?1x OR (length(?1x) >= 4 AND substr(container_id, 1, length(?1x)) = ?1x) \
                 OR EXISTS (SELECT 1 FROM json_each(coalesce(containers, '[]')) AS seen \
                   WHERE seen.value ->> '$.name' = ?1x \
                      OR (length(?1x) >= 4 AND substr(seen.value ->> '$.id', 1, length(?1x)) = ?1x)))",
            );
            bind(&mut sql, &mut args, c);
        }
        if let Some(p) = &q.pod {
            sql.push_str(
                " AND (pod = ?1x OR substr(pod, -length(?1x) - 1) = '/' || ?1x OR pod_uid = ?1x \
                 OR EXISTS (SELECT 1 FROM json_each(coalesce(containers, '[]')) AS seen \
                   WHERE seen.value ->> '$.pod' = ?1x OR substr(seen.value ->> '$.pod', -length(?1x) - 1) = '/' || ?1x \
                      OR seen.value ->> '$.pod_uid' = ?1x \
                      OR (length(?1x) >= 4 AND substr(seen.value ->> '$.sandbox', 1, length(?1x)) = ?1x)))",
            );
            bind(&mut sql, &mut args, p);
        }
        if let Some(since) = q.since {
            sql.push_str(" AND (destroyed_at IS NULL OR destroyed_at >= ?)");
            args.push(since.as_secs().into());
        }
        match q.alive {
            Some(true) => sql.push_str(" AND destroyed_at IS NULL"),
            Some(false) => sql.push_str(" AND destroyed_at IS NOT NULL"),
            None => {}
        }
        sql.push_str(" ORDER BY coalesce(created_at, first_seen) DESC, rowid DESC LIMIT ?");
        args.push((q.limit.max(1) as i64).into());
        let mut stmt = self.conn.prepare(&sql).map_err(self.err("reading"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    Entry {
                        record: record_of(row)?,
                        boot_id: row.get(COLUMN_COUNT)?,
                        destroyed: row.get(COLUMN_COUNT + 1)?,
                        lifetime: row.get(COLUMN_COUNT + 2)?,
                        via: row
                            .get::<_, Option<String>>(COLUMN_COUNT + 3)?
                            .as_deref()
                            .and_then(crate::events::DeathVia::of_name),
                    },
                ))
            })
            .map_err(self.err("reading"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading"))?;
        let mut out = Vec::with_capacity(rows.len());
        for (rowid, mut e) in rows {
            e.record.pins = self.pins(rowid)?;
            out.push(e);
        }
        Ok(out)
    }

    /// `PRAGMA integrity_check`'s verdict ("ok" when healthy).
    pub fn integrity(&self) -> Result<String, DbError> {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(self.err("checking"))
    }

    /// The size of the database in bytes (pages in use).
    pub fn bytes(&self) -> Result<u64, DbError> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0)).map_err(self.err("reading"))?;
        let size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(self.err("reading"))?;
        Ok((pages * size) as u64)
    }

    /// Looks up a row by its never-reused id, or by type and inode (this boot, alive first).
    pub fn find(&self, ns_type: NsType, inode: u64, id: Option<u64>) -> Result<Option<NsProvenance>, DbError> {
        let (sql, args): (String, Vec<rusqlite::types::Value>) = match id {
            Some(id) => (
                format!("SELECT {COLUMNS} FROM namespaces WHERE ns_id = ?1 ORDER BY rowid DESC LIMIT 1"),
                vec![(id as i64).into()],
            ),
            None => (
                format!(
                    "SELECT {COLUMNS} FROM namespaces WHERE boot_id = ?1 AND type = ?2 AND inode = ?3 ORDER BY destroyed_at IS NOT NULL, rowid DESC LIMIT 1"
                ),
                vec![self.boot_id.clone().into(), ns_type.name().to_string().into(), (inode as i64).into()],
            ),
        };
        let found = self
            .conn
            .query_row(&sql, rusqlite::params_from_iter(args), |row| Ok((row.get::<_, i64>(0)?, record_of(row)?)))
            .optional()
            .map_err(self.err("reading"))?;
        match found {
            Some((rowid, mut r)) => {
                r.pins = self.pins(rowid)?;
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

mod refusals;
mod rows;
#[cfg(test)]
mod tests;

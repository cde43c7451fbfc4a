//! The `refusals` table: refused namespace creations, as the events
//! `trace --format json` printed them.

use rusqlite::params;

use super::{Db, DbError};
use crate::time::UnixTime;

impl Db {
    /// Refused namespace creations (the events as JSON), newest first.
    pub fn refusals(&self, since: Option<UnixTime>, limit: usize) -> Result<Vec<serde_json::Value>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT event FROM refusals WHERE at >= ?1 ORDER BY at DESC LIMIT ?2")
            .map_err(self.err("reading"))?;
        let since = since.unwrap_or(UnixTime::from_secs(0.0));
        let rows =
            stmt.query_map(params![since, limit as i64], |r| r.get::<_, String>(0)).map_err(self.err("reading"))?;
        let mut out = Vec::new();
        for row in rows {
            let text = row.map_err(self.err("reading"))?;
            // A row this build cannot parse is shown as text, not dropped.
            out.push(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)));
        }
        Ok(out)
    }
}

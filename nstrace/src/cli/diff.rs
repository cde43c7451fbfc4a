//! `nstrace diff a.json b.json`: what appeared, disappeared and changed
//! state between two `nstrace ls --json` snapshots.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The earlier `nstrace ls --json` output.
    pub before: std::path::PathBuf,
    /// The later one.
    pub after: std::path::PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

type Key = (String, String);

/// Rows keyed by (type, id) where ids exist (never reused), else (type, inode).
fn load(path: &std::path::Path) -> Result<BTreeMap<Key, Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::input(format!("reading {}", path.display()), e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::input(format!("{} is not an `nstrace ls --json` document", path.display()), e))?;
    let rows =
        v.as_array().ok_or_else(|| Error::Usage(format!("{} is not a JSON array of namespaces", path.display())))?;
    let mut out = BTreeMap::new();
    for r in rows {
        let ty = r["type"].as_str().unwrap_or("?").to_string();
        let id = match (&r["id"], &r["inode"]) {
            (Value::Number(id), _) => format!("id:{id}"),
            (_, Value::Number(ino)) => format!("inode:{ino}"),
            _ => return Err(Error::Usage(format!("{}: a row has neither id nor inode", path.display()))),
        };
        out.insert((ty, id), r.clone());
    }
    Ok(out)
}

pub fn diff(a: &BTreeMap<Key, Value>, b: &BTreeMap<Key, Value>) -> Value {
    let brief = |r: &Value| {
        serde_json::json!({ "type": r["type"], "id": r["id"], "inode": r["inode"], "state": r["state"],
            "tasks": r["tasks"], "command": r["command"] })
    };
    let appeared: Vec<Value> = b.iter().filter(|(k, _)| !a.contains_key(*k)).map(|(_, r)| brief(r)).collect();
    let disappeared: Vec<Value> = a.iter().filter(|(k, _)| !b.contains_key(*k)).map(|(_, r)| brief(r)).collect();
    let changed: Vec<Value> = a
        .iter()
        .filter_map(|(k, ra)| {
            let rb = b.get(k)?;
            (ra["state"] != rb["state"] || ra["tasks"] != rb["tasks"]).then(|| {
                serde_json::json!({ "type": ra["type"], "id": ra["id"], "inode": ra["inode"],
                    "state": { "before": ra["state"], "after": rb["state"] },
                    "tasks": { "before": ra["tasks"], "after": rb["tasks"] } })
            })
        })
        .collect();
    serde_json::json!({ "appeared": appeared, "disappeared": disappeared, "changed": changed })
}

pub fn run(args: Args) -> Result<i32> {
    let (a, b) = (load(&args.before)?, load(&args.after)?);
    let d = diff(&a, &b);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
        return Ok(0);
    }
    let line = |v: &Value| {
        format!(
            "{} {} id={} [{}] {}",
            v["type"].as_str().unwrap_or("?"),
            v["inode"],
            v["id"],
            v["state"].as_str().unwrap_or("?"),
            v["command"].as_str().unwrap_or("-")
        )
    };
    for (title, sign) in [("appeared", "+"), ("disappeared", "-")] {
        for v in d[title].as_array().into_iter().flatten() {
            println!("{sign} {}", line(v));
        }
    }
    for v in d["changed"].as_array().into_iter().flatten() {
        println!(
            "~ {} {} id={} state {} -> {}, tasks {} -> {}",
            v["type"].as_str().unwrap_or("?"),
            v["inode"],
            v["id"],
            v["state"]["before"].as_str().unwrap_or("?"),
            v["state"]["after"].as_str().unwrap_or("?"),
            v["tasks"]["before"],
            v["tasks"]["after"]
        );
    }
    let n = |k: &str| d[k].as_array().map(Vec::len).unwrap_or(0);
    println!("{} appeared, {} disappeared, {} changed", n("appeared"), n("disappeared"), n("changed"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: Value) -> BTreeMap<Key, Value> {
        let dir =
            std::env::temp_dir().join(format!("nstrace-diff-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::write(&dir, v.to_string()).unwrap();
        let r = load(&dir).unwrap();
        std::fs::remove_file(dir).ok();
        r
    }

    #[test]
    fn appeared_disappeared_changed() {
        let a = rows(serde_json::json!([
            {"type": "net", "id": 3, "inode": 10, "state": "active", "tasks": 5},
            {"type": "net", "id": 7, "inode": 11, "state": "active", "tasks": 1},
            {"type": "uts", "id": 8, "inode": 12, "state": "active", "tasks": 1}
        ]));
        let b = rows(serde_json::json!([
            {"type": "net", "id": 3, "inode": 10, "state": "active", "tasks": 5},
            {"type": "net", "id": 7, "inode": 11, "state": "mounted", "tasks": 0},
            {"type": "uts", "id": 9, "inode": 12, "state": "active", "tasks": 1}
        ]));
        let d = diff(&a, &b);
        assert_eq!(d["appeared"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(d["appeared"][0]["id"], 9, "a reused inode with a new id is a new namespace");
        assert_eq!(d["disappeared"][0]["id"], 8);
        assert_eq!(d["changed"][0]["state"]["after"], "mounted");
    }

    #[test]
    fn rows_without_ids_match_by_type_and_inode() {
        // Before 6.18 ls prints `"id": null`: rows are matched by inode.
        let a = rows(serde_json::json!([
            {"type": "net", "id": null, "inode": 10, "state": "active", "tasks": 5},
            {"type": "uts", "id": null, "inode": 10, "state": "active", "tasks": 1}
        ]));
        assert_eq!(a.len(), 2, "same inode, two types: two namespaces");
        let b = rows(serde_json::json!([
            {"type": "net", "id": null, "inode": 10, "state": "active", "tasks": 6}
        ]));
        let d = diff(&a, &b);
        assert_eq!(d["disappeared"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(d["disappeared"][0]["type"], "uts");
        assert!(d["appeared"].as_array().unwrap().is_empty(), "{d}");
        // Only the task count changed: still a change.
        assert_eq!(d["changed"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(
            (d["changed"][0]["tasks"]["before"].as_u64(), d["changed"][0]["tasks"]["after"].as_u64()),
            (Some(5), Some(6))
        );
    }
}

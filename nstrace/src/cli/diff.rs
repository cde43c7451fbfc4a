//! `nstrace diff a.json b.json`: what appeared, disappeared and changed
//! state between two `nstrace ls --json` snapshots.

use std::{collections::BTreeMap, io::Write};

use serde_json::Value;

use crate::error::{Error, Result, exit};

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

/// Exit 0 when the snapshots hold the same namespaces in the same states,
/// 1 when something appeared, disappeared or changed (as diff(1) does).
pub fn run(args: Args) -> Result<i32> {
    let (a, b) = (load(&args.before)?, load(&args.after)?);
    let d = diff(&a, &b);
    let code = i32::from(if differences(&d) == 0 { exit::OK } else { exit::FINDINGS });
    // A reader that went away early changes nothing about the answer.
    crate::cli::to_stdout(|mut out| {
        write_report(&d, args.json, &mut out).map(|()| code).map_err(|e| Error::io("writing the report", e))
    })?;
    Ok(code)
}

/// How many namespaces appeared, disappeared or changed.
fn differences(d: &Value) -> usize {
    ["appeared", "disappeared", "changed"].iter().map(|k| d[*k].as_array().map_or(0, Vec::len)).sum()
}

fn write_report(d: &Value, json: bool, w: &mut impl Write) -> std::io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *w, d)?;
        return writeln!(w);
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
            writeln!(w, "{sign} {}", line(v))?;
        }
    }
    for v in d["changed"].as_array().into_iter().flatten() {
        writeln!(
            w,
            "~ {} {} id={} state {} -> {}, tasks {} -> {}",
            v["type"].as_str().unwrap_or("?"),
            v["inode"],
            v["id"],
            v["state"]["before"].as_str().unwrap_or("?"),
            v["state"]["after"].as_str().unwrap_or("?"),
            v["tasks"]["before"],
            v["tasks"]["after"]
        )?;
    }
    let n = |k: &str| d[k].as_array().map(Vec::len).unwrap_or(0);
    writeln!(w, "{} appeared, {} disappeared, {} changed", n("appeared"), n("disappeared"), n("changed"))
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

    fn report(d: &Value, json: bool) -> String {
        let mut out = Vec::new();
        write_report(d, json, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn report_lists_each_difference_and_the_totals() {
        let a = rows(serde_json::json!([
            {"type": "net", "id": 7, "inode": 11, "state": "active", "tasks": 1, "command": "sleep"},
            {"type": "uts", "id": 8, "inode": 12, "state": "active", "tasks": 1, "command": "sh"}
        ]));
        let b = rows(serde_json::json!([
            {"type": "net", "id": 7, "inode": 11, "state": "mounted", "tasks": 0, "command": null},
            {"type": "ipc", "id": 9, "inode": 13, "state": "fd-only", "tasks": 0, "command": null}
        ]));
        let d = diff(&a, &b);
        assert_eq!(differences(&d), 3);
        assert_eq!(
            report(&d, false),
            "+ ipc 13 id=9 [fd-only] -\n\
             - uts 12 id=8 [active] sh\n\
             ~ net 11 id=7 state active -> mounted, tasks 1 -> 0\n\
             1 appeared, 1 disappeared, 1 changed\n"
        );
        let json: Value = serde_json::from_str(&report(&d, true)).unwrap();
        assert_eq!(json, d);
        assert_eq!(differences(&diff(&a, &a)), 0);
        assert_eq!(report(&diff(&a, &a), false), "0 appeared, 0 disappeared, 0 changed\n");
    }

    #[test]
    fn exit_status_says_whether_anything_differs() {
        let dir = std::env::temp_dir().join(format!("nstrace-diff-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.json"), dir.join("b.json"));
        std::fs::write(&a, r#"[{"type":"net","id":1,"inode":10,"state":"active","tasks":1}]"#).unwrap();
        std::fs::write(&b, r#"[{"type":"net","id":1,"inode":10,"state":"active","tasks":2}]"#).unwrap();
        let run_on = |before: &std::path::Path, after: &std::path::Path| {
            run(Args { before: before.into(), after: after.into(), json: true }).unwrap()
        };
        assert_eq!(run_on(&a, &a), 0, "identical snapshots");
        assert_eq!(run_on(&a, &b), 1, "a task count changed");
        std::fs::remove_dir_all(dir).ok();
    }
}

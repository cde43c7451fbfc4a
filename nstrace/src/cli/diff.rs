//! `nstrace diff a.json b.json`: what appeared, disappeared and changed
//! state between two `nstrace ls --json` snapshots.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
};

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
    /// Report task-count changes too (by default a namespace has changed
    /// when its state, its holders other than tasks or its names did).
    #[arg(long)]
    pub all: bool,
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

/// A row's holders other than tasks, as text: "fd 12:3", "mount /run/netns/x in mnt 4026531841".
fn pinning_holders(r: &Value) -> BTreeSet<String> {
    r["holders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| match h["kind"].as_str()? {
            "fd" => Some(format!("fd {}:{}", h["pid"], h["fd"])),
            "mount" => Some(format!("mount {} in mnt {}", h["path"].as_str().unwrap_or("?"), h["mnt_ns"])),
            _ => None,
        })
        .collect()
}

fn names(r: &Value) -> Vec<Value> {
    r["names"].as_array().cloned().unwrap_or_default()
}

/// What differs between two snapshots. A namespace has changed when its
/// state, its holders other than tasks, or its `ip netns` names did; with
/// `all`, when its task count did too.
pub fn diff(a: &BTreeMap<Key, Value>, b: &BTreeMap<Key, Value>, all: bool) -> Value {
    // Names and containers travel with each row, so a namespace that is
    // gone is still recognisable.
    let brief = |r: &Value| {
        serde_json::json!({ "type": r["type"], "id": r["id"], "inode": r["inode"], "state": r["state"],
            "tasks": r["tasks"], "command": r["command"], "names": names(r),
            "containers": r["containers"].as_array().cloned().unwrap_or_default() })
    };
    let appeared: Vec<Value> = b.iter().filter(|(k, _)| !a.contains_key(*k)).map(|(_, r)| brief(r)).collect();
    let disappeared: Vec<Value> = a.iter().filter(|(k, _)| !b.contains_key(*k)).map(|(_, r)| brief(r)).collect();
    let changed: Vec<Value> = a
        .iter()
        .filter_map(|(k, ra)| {
            let rb = b.get(k)?;
            let (ha, hb) = (pinning_holders(ra), pinning_holders(rb));
            let gained: Vec<&String> = hb.difference(&ha).collect();
            let lost: Vec<&String> = ha.difference(&hb).collect();
            let meaningful = ra["state"] != rb["state"] || ha != hb || names(ra) != names(rb);
            (meaningful || (all && ra["tasks"] != rb["tasks"])).then(|| {
                serde_json::json!({ "type": ra["type"], "id": ra["id"], "inode": ra["inode"],
                    "names": { "before": names(ra), "after": names(rb) },
                    "state": { "before": ra["state"], "after": rb["state"] },
                    "tasks": { "before": ra["tasks"], "after": rb["tasks"] },
                    "holders": { "gained": gained, "lost": lost } })
            })
        })
        .collect();
    serde_json::json!({ "appeared": appeared, "disappeared": disappeared, "changed": changed })
}

/// Exit 0 when the snapshots hold the same namespaces in the same states,
/// 1 when something appeared, disappeared or changed (as diff(1) does).
pub fn run(args: Args) -> Result<i32> {
    let (a, b) = (load(&args.before)?, load(&args.after)?);
    let d = diff(&a, &b, args.all);
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

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_string)).collect()
}

fn write_report(d: &Value, json: bool, w: &mut impl Write) -> std::io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *w, d)?;
        return writeln!(w);
    }
    let head = |v: &Value, names: &Value| {
        let names = strings(names);
        let named = if names.is_empty() { String::new() } else { format!(" (netns {})", names.join(",")) };
        format!("{} {} id={}{named}", v["type"].as_str().unwrap_or("?"), v["inode"], v["id"])
    };
    for (title, sign) in [("appeared", "+"), ("disappeared", "-")] {
        for v in d[title].as_array().into_iter().flatten() {
            let containers: Vec<String> = v["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("{}:{}", c["runtime"].as_str().unwrap_or("?"), c["id"].as_str().unwrap_or("?")))
                .collect();
            let containers = if containers.is_empty() { String::new() } else { format!(" [{}]", containers.join(",")) };
            writeln!(
                w,
                "{sign} {} [{}] {}{containers}",
                head(v, &v["names"]),
                v["state"].as_str().unwrap_or("?"),
                v["command"].as_str().unwrap_or("-")
            )?;
        }
    }
    for v in d["changed"].as_array().into_iter().flatten() {
        let mut parts = Vec::new();
        let (sb, sa) = (&v["state"]["before"], &v["state"]["after"]);
        if sb != sa {
            parts.push(format!("state {} -> {}", sb.as_str().unwrap_or("?"), sa.as_str().unwrap_or("?")));
        }
        for (what, sign) in [("gained", "+"), ("lost", "-")] {
            for h in strings(&v["holders"][what]) {
                parts.push(format!("{sign}{h}"));
            }
        }
        let (nb, na) = (strings(&v["names"]["before"]), strings(&v["names"]["after"]));
        if nb != na {
            parts.push(format!("netns names [{}] -> [{}]", nb.join(","), na.join(",")));
        }
        let (tb, ta) = (&v["tasks"]["before"], &v["tasks"]["after"]);
        if tb != ta {
            parts.push(format!("tasks {tb} -> {ta}"));
        }
        let names = if na.is_empty() { &v["names"]["before"] } else { &v["names"]["after"] };
        writeln!(w, "~ {} {}", head(v, names), parts.join(", "))?;
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
        let d = diff(&a, &b, false);
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
        let d = diff(&a, &b, false);
        assert_eq!(d["disappeared"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(d["disappeared"][0]["type"], "uts");
        assert!(d["appeared"].as_array().unwrap().is_empty(), "{d}");
        // Only the task count changed: not a change, unless --all.
        assert!(d["changed"].as_array().unwrap().is_empty(), "{d}");
        let d = diff(&a, &b, true);
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
        let d = diff(&a, &b, false);
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
        assert_eq!(differences(&diff(&a, &a, true)), 0);
        assert_eq!(report(&diff(&a, &a, true), false), "0 appeared, 0 disappeared, 0 changed\n");
    }

    #[test]
    fn exit_status_says_whether_anything_differs() {
        let dir = std::env::temp_dir().join(format!("nstrace-diff-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.json"), dir.join("b.json"));
        std::fs::write(&a, r#"[{"type":"net","id":1,"inode":10,"state":"active","tasks":1}]"#).unwrap();
        std::fs::write(&b, r#"[{"type":"net","id":1,"inode":10,"state":"active","tasks":2}]"#).unwrap();
        let run_on = |before: &std::path::Path, after: &std::path::Path| {
            run(Args { before: before.into(), after: after.into(), json: true, all: false }).unwrap()
        };
        assert_eq!(run_on(&a, &a), 0, "identical snapshots");
        assert_eq!(run_on(&a, &b), 0, "only a task count changed");
        let all = run(Args { before: a.clone(), after: b.clone(), json: true, all: true }).unwrap();
        assert_eq!(all, 1, "--all: a task count changed");
        std::fs::write(&b, r#"[{"type":"net","id":1,"inode":10,"state":"fd-only","tasks":0}]"#).unwrap();
        assert_eq!(run_on(&a, &b), 1, "the state changed");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn holders_and_names_are_changes_and_removed_rows_keep_their_names() {
        let mount = serde_json::json!({"kind": "mount", "path": "/run/netns/x", "mnt_ns": 5, "via_pid": 1});
        let fd = serde_json::json!({"kind": "fd", "pid": 12, "fd": 3, "comm": "sleep"});
        let task = serde_json::json!({"kind": "task", "pid": 12, "comm": "sleep", "hold": "member"});
        let a = rows(serde_json::json!([
            {"type": "net", "id": 1, "inode": 10, "state": "mounted", "tasks": 0, "holders": [mount], "names": ["x"]},
            {"type": "net", "id": 2, "inode": 11, "state": "mounted", "tasks": 0, "holders": [mount], "names": ["gone"],
             "containers": [{"runtime": "docker", "id": "abc"}]},
            {"type": "uts", "id": 3, "inode": 12, "state": "active", "tasks": 1, "holders": [task]}
        ]));
        let b = rows(serde_json::json!([
            {"type": "net", "id": 1, "inode": 10, "state": "mounted", "tasks": 0, "holders": [mount, fd], "names": ["y"]},
            {"type": "uts", "id": 3, "inode": 12, "state": "active", "tasks": 1,
             "holders": [{"kind": "task", "pid": 13, "comm": "sh", "hold": "member"}]}
        ]));
        let d = diff(&a, &b, false);
        assert_eq!(d["changed"].as_array().unwrap().len(), 1, "a different task is not a change: {d}");
        assert_eq!(d["changed"][0]["holders"]["gained"], serde_json::json!(["fd 12:3"]));
        assert_eq!(d["changed"][0]["holders"]["lost"], serde_json::json!([]));
        assert_eq!(
            report(&d, false),
            "- net 11 id=2 (netns gone) [mounted] - [docker:abc]\n\
             ~ net 10 id=1 (netns y) +fd 12:3, netns names [x] -> [y]\n\
             0 appeared, 1 disappeared, 1 changed\n"
        );
        // A mount that moved to another mount namespace is a change.
        let moved = serde_json::json!({"kind": "mount", "path": "/run/netns/x", "mnt_ns": 6, "via_pid": 1});
        let c = rows(serde_json::json!([
            {"type": "net", "id": 1, "inode": 10, "state": "mounted", "tasks": 0, "holders": [moved], "names": ["x"]}
        ]));
        let d = diff(&a, &c, false);
        assert_eq!(
            d["changed"][0]["holders"],
            serde_json::json!({"gained": ["mount /run/netns/x in mnt 6"], "lost": ["mount /run/netns/x in mnt 5"]})
        );
    }
}

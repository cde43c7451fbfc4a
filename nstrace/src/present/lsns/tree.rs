//! lsns's process tree: each line under the latest line of its process's
//! parent, drawn before COMMAND in tables and nested as "children" in JSON.

use std::collections::HashMap;

use super::{Cells, Line};

/// lsns's process tree (its default without `-l`): a line goes under the
/// latest line before it whose process is its process's parent. None for a
/// top-level line.
pub(super) fn process_tree(lines: &[Line<'_>], cells: &Cells<'_>) -> Vec<Option<usize>> {
    let mut latest: HashMap<u32, usize> = HashMap::new();
    let mut parents = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let parent = line.pid.and_then(|p| cells.proc(p).ppid).and_then(|pp| latest.get(&pp).copied());
        parents.push(parent);
        if let Some(p) = line.pid {
            latest.insert(p, i);
        }
    }
    parents
}

/// The tree art before each line's COMMAND ("├─", "└─", "│ " per level).
pub(super) fn tree_prefixes(parents: &[Option<usize>]) -> Vec<String> {
    let n = parents.len();
    // Whether line i is its parent's last child.
    let mut last = vec![true; n];
    let mut seen_child: HashMap<Option<usize>, usize> = HashMap::new();
    for (i, p) in parents.iter().enumerate() {
        if let Some(prev) = seen_child.insert(*p, i) {
            last[prev] = false;
        }
    }
    (0..n)
        .map(|i| {
            let Some(_) = parents[i] else { return String::new() };
            let mut parts = vec![if last[i] { "└─" } else { "├─" }];
            let mut up = parents[i];
            while let Some(a) = up {
                if parents[a].is_none() {
                    break;
                }
                parts.push(if last[a] { "  " } else { "│ " });
                up = parents[a];
            }
            parts.reverse();
            parts.concat()
        })
        .collect()
}

/// JSON objects nested as `parents` says: children under "children".
pub(super) fn nest(
    objects: Vec<serde_json::Map<String, serde_json::Value>>,
    parents: &[Option<usize>],
) -> Vec<serde_json::Value> {
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); objects.len()];
    let mut top = Vec::new();
    for (i, p) in parents.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => top.push(i),
        }
    }
    let mut slots: Vec<Option<serde_json::Map<String, serde_json::Value>>> = objects.into_iter().map(Some).collect();
    fn build(
        i: usize,
        slots: &mut [Option<serde_json::Map<String, serde_json::Value>>],
        children: &[Vec<usize>],
    ) -> serde_json::Value {
        let mut m = slots[i].take().unwrap_or_default();
        if !children[i].is_empty() {
            let kids: Vec<serde_json::Value> = children[i].iter().map(|&c| build(c, slots, children)).collect();
            m.insert("children".into(), kids.into());
        }
        serde_json::Value::Object(m)
    }
    top.into_iter().map(|i| build(i, &mut slots, &children)).collect()
}

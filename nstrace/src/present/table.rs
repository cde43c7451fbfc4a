//! Tables and trees of namespace rows, shared by `ls`, `live --plain` and
//! the TUI.

use std::io::Write;

use nstrace_common::ns::NsType;

use crate::model::{Holder, NsRow};

/// Which rows a tree shows.
pub type Filter<'a> = dyn Fn(&NsRow) -> bool + 'a;

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The holders other than tasks, shortly: "fd 123:4", "mount /run/netns/x", "+2".
pub fn holders_summary(row: &NsRow) -> String {
    let mut parts: Vec<String> = row
        .holders
        .iter()
        .filter_map(|h| match h {
            Holder::Task { .. } => None,
            Holder::Fd { pid, fd, .. } => Some(format!("fd {pid}:{fd}")),
            Holder::Mount { path, .. } => Some(format!("mount {path}")),
        })
        .collect();
    if parts.len() > 2 {
        let more = parts.len() - 2;
        parts.truncate(2);
        parts.push(format!("+{more}"));
    }
    if parts.is_empty() { "-".into() } else { parts.join(",") }
}

/// The COMMAND cell of `ls` and `live`: the first task's command, then
/// `ip netns` names and containers ("ip [netns blue] [docker:abcdef123456]").
pub fn command_text(r: &NsRow) -> String {
    let mut command = r.command.as_deref().unwrap_or("-").to_string();
    if !r.names.is_empty() {
        command = format!("{command} [netns {}]", r.names.join(","));
    }
    if !r.containers.is_empty() {
        let c: Vec<String> = r.containers.iter().map(|c| c.short()).collect();
        command = format!("{command} [{}]", c.join(","));
    }
    command
}

/// What a table shows beyond a row's own fields: the AGE cell (from the
/// store's record) and extra columns (`ls -o`), placed before COMMAND.
pub struct Extra<'a> {
    pub age: AgeCell<'a>,
    pub columns: Vec<(&'static str, Cell<'a>)>,
}

/// The AGE cell for a row (None: "-").
pub type AgeCell<'a> = Box<dyn Fn(&NsRow) -> Option<String> + 'a>;

/// One extra column's cell for a row.
pub type Cell<'a> = Box<dyn Fn(&NsRow) -> String + 'a>;

impl Extra<'_> {
    /// Nothing beyond the row (AGE "-").
    pub fn none() -> Extra<'static> {
        Extra { age: Box::new(|_| None), columns: Vec::new() }
    }
}

/// The table's cells for one row.
fn table_cells(r: &NsRow, extra: &Extra<'_>) -> Vec<String> {
    let mut cells = vec![
        opt(r.id),
        r.inode.to_string(),
        r.ns_type.name().into(),
        r.state.name().into(),
        r.tasks.to_string(),
        holders_summary(r),
        opt(r.owner),
        opt(r.parent),
        (extra.age)(r).unwrap_or_else(|| "-".into()),
    ];
    cells.extend(extra.columns.iter().map(|(_, cell)| cell(r)));
    cells.push(command_text(r));
    cells
}

/// Writes the aligned table. Cells are formatted twice (once to size the
/// columns, once to write) rather than kept: at 100,000 rows a kept copy
/// is tens of megabytes, and `live --plain` prints one every interval.
pub fn write_table(out: &mut impl Write, rows: &[&NsRow]) -> std::io::Result<()> {
    write_table_with(out, rows, &Extra::none())
}

/// [`write_table`] with the AGE cell and extra columns of `extra`.
pub fn write_table_with(out: &mut impl Write, rows: &[&NsRow], extra: &Extra<'_>) -> std::io::Result<()> {
    let mut header = vec!["ID", "INODE", "TYPE", "STATE", "TASKS", "HOLDERS", "OWNER", "PARENT", "AGE"];
    header.extend(extra.columns.iter().map(|(h, _)| *h));
    header.push("COMMAND");
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(table_cells(r, extra)) {
            *w = (*w).max(c.len());
        }
    }
    let line = |out: &mut dyn Write, cols: &[&str]| -> std::io::Result<()> {
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                writeln!(out, "{c}")?;
            } else if i < 2 || i == 4 {
                write!(out, "{c:>w$} ", w = widths[i])?;
            } else {
                write!(out, "{c:<w$} ", w = widths[i])?;
            }
        }
        Ok(())
    };
    line(out, &header)?;
    for r in rows {
        let cells = table_cells(r, extra);
        let cols: Vec<&str> = cells.iter().map(String::as_str).collect();
        line(out, &cols)?;
    }
    Ok(())
}

/// An age as people read it: 42s, 17m, 5h, 3d.
pub fn human_age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn describe(r: &NsRow) -> String {
    let mut s = format!("{} {} [{}]", r.ns_type.name(), r.inode, r.state.name());
    if let Some(id) = r.id {
        s.push_str(&format!(" id={id}"));
    }
    if r.tasks > 0 {
        s.push_str(&format!(" tasks={} ({})", r.tasks, r.command.as_deref().unwrap_or("?")));
    }
    let other = holders_summary(r);
    if other != "-" {
        s.push_str(&format!(" held-by: {other}"));
    }
    if !r.names.is_empty() {
        s.push_str(&format!(" netns={}", r.names.join(",")));
    }
    s
}

/// The user-namespace ownership tree (every namespace under its owner),
/// then the pid-namespace hierarchy. `filter` picks the rows of the
/// ownership tree; a user namespace is also shown when a row below it is,
/// so the tree stays connected. The pid hierarchy shows every pid row.
pub fn write_tree(out: &mut impl Write, rows: &[&NsRow], filter: &Filter<'_>) -> std::io::Result<()> {
    use std::collections::{BTreeMap, HashSet};
    let users: HashSet<u64> = rows.iter().filter(|r| r.ns_type == NsType::User).map(|r| r.inode).collect();
    let mut children: BTreeMap<u64, Vec<&NsRow>> = BTreeMap::new();
    let mut roots = Vec::new();
    for r in rows {
        match r.owner {
            Some(o) if users.contains(&o) => children.entry(o).or_default().push(r),
            _ => roots.push(r),
        }
    }
    // Keep users first among siblings so subtrees read top-down.
    for list in children.values_mut() {
        list.sort_by_key(|r| (r.ns_type != NsType::User, r.ns_type, r.inode));
    }
    fn shown(r: &NsRow, children: &BTreeMap<u64, Vec<&NsRow>>, filter: &Filter<'_>) -> bool {
        filter(r)
            || (r.ns_type == NsType::User
                && children.get(&r.inode).is_some_and(|c| c.iter().any(|c| shown(c, children, filter))))
    }
    fn walk(
        out: &mut impl Write,
        r: &NsRow,
        prefix: &str,
        last: bool,
        children: &BTreeMap<u64, Vec<&NsRow>>,
        filter: &Filter<'_>,
        depth: usize,
    ) -> std::io::Result<()> {
        let branch = if depth == 0 {
            ""
        } else if last {
            "`- "
        } else {
            "|- "
        };
        writeln!(out, "{prefix}{branch}{}", describe(r))?;
        if r.ns_type != NsType::User || depth > 64 {
            return Ok(());
        }
        let kids: Vec<&&NsRow> = children
            .get(&r.inode)
            .map(|c| c.iter().filter(|c| shown(c, children, filter)).collect())
            .unwrap_or_default();
        let next_prefix =
            if depth == 0 { prefix.to_string() } else { format!("{prefix}{}", if last { "   " } else { "|  " }) };
        for (i, k) in kids.iter().enumerate() {
            walk(out, k, &next_prefix, i + 1 == kids.len(), children, filter, depth + 1)?;
        }
        Ok(())
    }
    writeln!(out, "user namespace ownership:")?;
    for r in roots.iter().filter(|r| shown(r, &children, filter)) {
        walk(out, r, "  ", true, &children, filter, 0)?;
    }
    // pid hierarchy
    let pids: Vec<&NsRow> = rows.iter().copied().filter(|r| r.ns_type == NsType::Pid).collect();
    let pid_set: HashSet<u64> = pids.iter().map(|r| r.inode).collect();
    writeln!(out, "\npid namespace hierarchy:")?;
    fn pid_walk(out: &mut impl Write, r: &NsRow, pids: &[&NsRow], depth: usize) -> std::io::Result<()> {
        writeln!(out, "  {}{}", "   ".repeat(depth), describe(r))?;
        if depth > 40 {
            return Ok(());
        }
        for k in pids.iter().filter(|k| k.parent == Some(r.inode)) {
            pid_walk(out, k, pids, depth + 1)?;
        }
        Ok(())
    }
    for r in pids.iter().filter(|r| r.parent.is_none_or(|p| !pid_set.contains(&p))) {
        pid_walk(out, r, &pids, 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

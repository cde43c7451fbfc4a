//! Tables and trees of namespace rows, shared by `ls`, `live --plain` and
//! the TUI.

use std::io::Write;

use nstrace_common::ns::NsType;

use crate::{
    model::{Holder, NsRow},
    present::columns::{Col, Give, Paint, cell_width, fit, write_line},
};

/// Which rows a tree shows.
pub type Filter<'a> = dyn Fn(&NsRow) -> bool + 'a;

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The holders other than tasks, shortly: "fd 123:4", "mount /run/netns/x",
/// "+2". A mount seen in several mount namespaces (propagated copies) is one
/// entry that says in how many: "mount /run/netns/x (3 mnt ns)".
pub fn holders_summary(row: &NsRow) -> String {
    crate::present::escape::text(&holders_summary_raw(row)).into_owned()
}

/// [`holders_summary`] before escaping.
fn holders_summary_raw(row: &NsRow) -> String {
    // (text, mount namespaces) in the order first seen.
    let mut parts: Vec<(String, usize)> = Vec::new();
    for h in &row.holders {
        let text = match h {
            Holder::Task { .. } => continue,
            Holder::Fd { pid, fd, .. } => format!("fd {pid}:{fd}"),
            Holder::Socket { pid, fd, .. } => format!("socket {pid}:{fd}"),
            Holder::Mount { path, .. } => format!("mount {path}"),
        };
        match parts.iter_mut().find(|(t, _)| *t == text) {
            Some((_, n)) => *n += 1,
            None => parts.push((text, 1)),
        }
    }
    let mut parts: Vec<String> =
        parts.into_iter().map(|(text, n)| if n > 1 { format!("{text} ({n} mnt ns)") } else { text }).collect();
    if parts.len() > 2 {
        let more = parts.len() - 2;
        parts.truncate(2);
        parts.push(format!("+{more}"));
    }
    if parts.is_empty() { "-".into() } else { parts.join(",") }
}

/// The NAME cell: the `ip netns` names of a net namespace.
pub fn name_text(r: &NsRow) -> String {
    crate::present::escape::text(&name_text_raw(r)).into_owned()
}

/// [`name_text`] before escaping.
fn name_text_raw(r: &NsRow) -> String {
    if r.names.is_empty() { "-".into() } else { r.names.join(",") }
}

/// The CONTAINER cell from the row alone: the container all its tasks are
/// in, or "shared by N containers" (with the host, or among themselves:
/// never one of them for all).
pub fn container_text(r: &NsRow) -> String {
    crate::present::escape::text(&container_text_raw(r)).into_owned()
}

/// [`container_text`] before escaping.
fn container_text_raw(r: &NsRow) -> String {
    match (r.sole_container(), r.shared_by()) {
        (Some(c), _) => c.short(),
        // The host's own namespace that one container uses too: which one.
        (None, Some(1)) => format!("host+{}", r.containers[0].short()),
        (None, Some(n)) => format!("shared by {n} containers"),
        (None, None) => "-".into(),
    }
}

/// The COMMAND cell: the command of the namespace's first task.
pub fn command_text(r: &NsRow) -> String {
    crate::present::escape::text(&command_text_raw(r)).into_owned()
}

/// [`command_text`] before escaping.
fn command_text_raw(r: &NsRow) -> String {
    r.command.as_deref().unwrap_or("-").to_string()
}

/// What a table shows beyond a row's own fields: the AGE and CONTAINER
/// cells (from the store's record) and extra columns (`ls -o`), placed
/// before NAME.
pub struct Extra<'a> {
    pub age: AgeCell<'a>,
    pub container: Cell<'a>,
    pub columns: Vec<(&'static str, Cell<'a>)>,
}

/// The AGE cell for a row (None: "-").
pub type AgeCell<'a> = Box<dyn Fn(&NsRow) -> Option<String> + 'a>;

/// One extra column's cell for a row.
pub type Cell<'a> = Box<dyn Fn(&NsRow) -> String + 'a>;

impl Extra<'_> {
    /// Nothing beyond the row (AGE "-").
    pub fn none() -> Extra<'static> {
        Extra { age: Box::new(|_| None), container: Box::new(container_text), columns: Vec::new() }
    }
}

/// How the table goes out: the width to fit (None: as wide as it takes)
/// and whether to colour the states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub width: Option<usize>,
    pub color: bool,
}

/// Index of the STATE column (coloured).
const STATE: usize = 3;

/// The table's columns, with how each gives way in a narrow terminal:
/// text is cut first; then AGE, PARENT, OWNER and ID are left out, in
/// that order; INODE, TYPE, STATE and TASKS are always whole.
fn table_columns(extra: &Extra<'_>) -> Vec<Col> {
    let mut cols = vec![
        Col::right("ID", Give::Drop(2)),
        Col::right("INODE", Give::Keep),
        Col::left("TYPE", Give::Keep),
        Col::left("STATE", Give::Keep),
        Col::right("TASKS", Give::Keep),
        Col::left("HOLDERS", Give::Truncate(10)),
        Col::left("OWNER", Give::Drop(3)),
        Col::left("PARENT", Give::Drop(4)),
        Col::left("AGE", Give::Drop(5)),
    ];
    cols.extend(extra.columns.iter().map(|(h, _)| Col::left(h, Give::Truncate(8))));
    cols.extend([
        Col::left("NAME", Give::Truncate(6)),
        Col::left("CONTAINER", Give::Truncate(10)),
        Col::left("COMMAND", Give::Truncate(8)),
    ]);
    cols
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
    cells.extend([name_text(r), (extra.container)(r), command_text(r)]);
    cells
}

/// Writes the aligned table. Cells are formatted twice (once to size the
/// columns, once to write) rather than kept: at 100,000 rows a kept copy
/// is tens of megabytes, and `live --plain` prints one every interval.
pub fn write_table(out: &mut impl Write, rows: &[&NsRow]) -> std::io::Result<()> {
    write_table_with(out, rows, &Extra::none(), Layout::default())
}

/// [`write_table`] with the cells of `extra`, fitted and coloured as `layout` says.
pub fn write_table_with(
    out: &mut impl Write,
    rows: &[&NsRow],
    extra: &Extra<'_>,
    layout: Layout,
) -> std::io::Result<()> {
    let cols = table_columns(extra);
    let header: Vec<String> = cols.iter().map(|c| c.header.to_string()).collect();
    let mut natural: Vec<usize> = header.iter().map(|h| cell_width(h)).collect();
    let mut empty = vec![true; cols.len()];
    for r in rows {
        for (i, c) in table_cells(r, extra).into_iter().enumerate() {
            natural[i] = natural[i].max(cell_width(&c));
            empty[i] &= c == "-";
        }
    }
    let widths = fit(&cols, &natural, &empty, layout.width);
    let plain = |_: usize, s: &str| s.to_string();
    let bold = |_: usize, s: &str| Paint::Bold.apply(layout.color, s);
    write_line(out, &cols, &widths, &header, &bold)?;
    let state = |i: usize, s: &str| match Paint::of_state(s) {
        Some(p) if i == STATE => p.apply(layout.color, s),
        _ => s.to_string(),
    };
    let paint: &dyn Fn(usize, &str) -> String = if layout.color { &state } else { &plain };
    for r in rows {
        write_line(out, &cols, &widths, &table_cells(r, extra), paint)?;
    }
    Ok(())
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
    write_trees(out, rows, filter, true, true)
}

/// [`write_tree`], with the ownership tree (`owner`), the pid hierarchy
/// (`parent`) or both (lsns's `-T owner` and `-T parent`).
pub fn write_trees(
    out: &mut impl Write,
    rows: &[&NsRow],
    filter: &Filter<'_>,
    owner: bool,
    parent: bool,
) -> std::io::Result<()> {
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
    if owner {
        writeln!(out, "user namespace ownership:")?;
        for r in roots.iter().filter(|r| shown(r, &children, filter)) {
            walk(out, r, "  ", true, &children, filter, 0)?;
        }
    }
    if !parent {
        return Ok(());
    }
    // pid hierarchy
    let pids: Vec<&NsRow> = rows.iter().copied().filter(|r| r.ns_type == NsType::Pid).collect();
    let pid_set: HashSet<u64> = pids.iter().map(|r| r.inode).collect();
    writeln!(out, "{}pid namespace hierarchy:", if owner { "\n" } else { "" })?;
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

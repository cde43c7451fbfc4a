//! lsns's columns and output forms for `nstrace ls` (`-o`, `--output-all`,
//! `-n`, `-r`, `-J`): a script written for util-linux's lsns reads the same
//! answer from nstrace, with nstrace's own columns after lsns's.
//!
//! Reads the store and what /proc said before the listing
//! ([`LsnsFacts`], gathered by the caller for the columns asked); does
//! no I/O but writing the listing to the writer it is given.

use std::io::Write;

use self::tree::{nest, process_tree, tree_prefixes};
use crate::{
    model::{Holder, Namespace, NsRow},
    present::{
        columns::{Col, Give, cell_width, fit, write_line},
        table::{container_text, holders_summary},
    },
    procfs::{
        facts::lsns::{LsnsFacts, ProcFacts},
        netnsid::NetnsId,
    },
    store::NsStore,
};

/// A column: lsns's thirteen (same names and meaning), then nstrace's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LsCol {
    Ns,
    Type,
    Path,
    Nprocs,
    Pid,
    Ppid,
    Command,
    Uid,
    User,
    Netnsid,
    Nsfs,
    Pns,
    Ons,
    Id,
    State,
    Holders,
    Age,
    OwnerUid,
    Created,
    Creator,
    Container,
    PinnedBy,
    Pod,
    Runtime,
}

impl LsCol {
    /// Whether the column's value comes from the namespace's lowest
    /// process (lsns's PID and what it says of that process).
    pub fn describes_a_process(self) -> bool {
        matches!(
            self,
            LsCol::Path
                | LsCol::Pid
                | LsCol::Ppid
                | LsCol::Command
                | LsCol::Uid
                | LsCol::User
                | LsCol::Netnsid
                | LsCol::OwnerUid
        )
    }

    pub const ALL: [LsCol; 24] = [
        LsCol::Ns,
        LsCol::Type,
        LsCol::Path,
        LsCol::Nprocs,
        LsCol::Pid,
        LsCol::Ppid,
        LsCol::Command,
        LsCol::Uid,
        LsCol::User,
        LsCol::Netnsid,
        LsCol::Nsfs,
        LsCol::Pns,
        LsCol::Ons,
        LsCol::Id,
        LsCol::State,
        LsCol::Holders,
        LsCol::Age,
        LsCol::OwnerUid,
        LsCol::Created,
        LsCol::Creator,
        LsCol::Container,
        LsCol::PinnedBy,
        LsCol::Pod,
        LsCol::Runtime,
    ];

    /// lsns's default columns.
    pub const LSNS_DEFAULT: [LsCol; 6] =
        [LsCol::Ns, LsCol::Type, LsCol::Nprocs, LsCol::Pid, LsCol::User, LsCol::Command];

    pub fn header(self) -> &'static str {
        match self {
            LsCol::Ns => "NS",
            LsCol::Type => "TYPE",
            LsCol::Path => "PATH",
            LsCol::Nprocs => "NPROCS",
            LsCol::Pid => "PID",
            LsCol::Ppid => "PPID",
            LsCol::Command => "COMMAND",
            LsCol::Uid => "UID",
            LsCol::User => "USER",
            LsCol::Netnsid => "NETNSID",
            LsCol::Nsfs => "NSFS",
            LsCol::Pns => "PNS",
            LsCol::Ons => "ONS",
            LsCol::Id => "ID",
            LsCol::State => "STATE",
            LsCol::Holders => "HOLDERS",
            LsCol::Age => "AGE",
            LsCol::OwnerUid => "OWNER-UID",
            LsCol::Created => "CREATED",
            LsCol::Creator => "CREATOR",
            LsCol::Container => "CONTAINER",
            LsCol::PinnedBy => "PINNED-BY",
            LsCol::Pod => "POD",
            LsCol::Runtime => "RUNTIME",
        }
    }

    /// The key in `-J` output: the header in lower case, as lsns does.
    pub fn json_key(self) -> String {
        self.header().to_ascii_lowercase()
    }

    /// A column by name, in any case ("pinned-by" or "pinned_by").
    pub fn from_name(name: &str) -> Option<LsCol> {
        let name = name.trim().replace('_', "-");
        LsCol::ALL.into_iter().find(|c| c.header().eq_ignore_ascii_case(&name))
    }

    /// Numbers are right-aligned in tables and numbers in JSON.
    fn numeric(self) -> bool {
        matches!(
            self,
            LsCol::Ns
                | LsCol::Nprocs
                | LsCol::Pid
                | LsCol::Ppid
                | LsCol::Uid
                | LsCol::Pns
                | LsCol::Ons
                | LsCol::Id
                | LsCol::OwnerUid
        )
    }

    /// How the column gives way in a narrow terminal.
    fn give(self) -> Give {
        match self {
            LsCol::Command
            | LsCol::Path
            | LsCol::Nsfs
            | LsCol::Holders
            | LsCol::Container
            | LsCol::PinnedBy
            | LsCol::Pod => Give::Truncate(8),
            LsCol::Creator | LsCol::User => Give::Truncate(6),
            _ => Give::Keep,
        }
    }
}

/// What `-o LIST` asks for: lsns's meaning, `+LIST` extends the default
/// columns, a plain list replaces them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputSpec {
    Extend(Vec<LsCol>),
    Exactly(Vec<LsCol>),
}

/// Parses `-o`'s list; an unknown name is an error that lists the known ones.
pub fn parse_output(list: &str) -> Result<OutputSpec, String> {
    let (extend, names) = match list.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, list),
    };
    let cols = names
        .split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|n| {
            LsCol::from_name(n).ok_or_else(|| {
                let known: Vec<&str> = LsCol::ALL.iter().map(|c| c.header()).collect();
                format!("unknown column {n:?}; columns: {}", known.join(","))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if cols.is_empty() {
        return Err("no column named in -o".into());
    }
    Ok(if extend { OutputSpec::Extend(cols) } else { OutputSpec::Exactly(cols) })
}

/// One cell's value: lsns prints numbers, text, or nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Num(i64),
    Real(f64),
    Text(String),
    Null,
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Num(n) => n.to_string(),
            Value::Real(r) => format!("{r:.3}"),
            Value::Text(t) => crate::present::escape::text(t).into_owned(),
            Value::Null => String::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Value::Num(n) => (*n).into(),
            Value::Real(r) => (*r).into(),
            Value::Text(t) => t.as_str().into(),
            Value::Null => serde_json::Value::Null,
        }
    }
}

/// What a listing's columns need read from /proc first (the caller reads
/// it into [`LsnsFacts`]); nothing for the columns that come from the
/// store and the holders alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The reader's own namespaces ([`LsnsFacts::read_own`]).
    pub own: bool,
    /// The process each line describes ([`LsnsFacts::find_lowest`]).
    pub lowest: bool,
    pub nprocs: bool,
    /// The lines' processes' parent, uid and command.
    pub procs: bool,
    pub users: bool,
    pub owner_uid: bool,
    pub netnsid: bool,
}

impl Needs {
    pub fn of(cols: &[LsCol]) -> Needs {
        let any = |f: fn(&LsCol) -> bool| cols.iter().any(f);
        Needs {
            own: any(|c| matches!(c, LsCol::Nsfs | LsCol::Nprocs | LsCol::OwnerUid | LsCol::Netnsid)),
            lowest: any(|c| c.describes_a_process()),
            nprocs: cols.contains(&LsCol::Nprocs),
            // COMMAND also draws the process tree (each line's parent).
            procs: any(|c| matches!(c, LsCol::Ppid | LsCol::Command | LsCol::Uid | LsCol::User)),
            users: cols.contains(&LsCol::User),
            owner_uid: cols.contains(&LsCol::OwnerUid),
            netnsid: cols.contains(&LsCol::Netnsid),
        }
    }
}

/// One output line: a namespace, described through process `pid` (its
/// lowest member, or one member per line for lsns's `<namespace>` form).
#[derive(Clone, Copy, Debug)]
pub struct Line<'r> {
    pub row: &'r NsRow,
    pub pid: Option<u32>,
}

impl<'r> Line<'r> {
    /// A namespace's line, through the process [`LsnsFacts::find_lowest`]
    /// chose (none when it was not asked: no column describes a process).
    pub fn of(row: &'r NsRow, facts: &LsnsFacts) -> Line<'r> {
        Line { row, pid: facts.lowest.get(&(row.ns_type, row.inode)).copied() }
    }

    /// A line for a column that describes no process (nstrace's own table
    /// asks for AGE and CONTAINER on every row).
    fn bare(row: &'r NsRow) -> Line<'r> {
        Line { row, pid: None }
    }
}

/// Cells of every column for the rows of one listing, from the store and
/// from what /proc said before the listing ([`LsnsFacts`]).
pub struct Cells<'a> {
    store: &'a NsStore,
    /// Unix time of the listing (AGE).
    now: crate::time::UnixTime,
    facts: &'a LsnsFacts,
}

impl<'a> Cells<'a> {
    pub fn new(store: &'a NsStore, now: crate::time::UnixTime, facts: &'a LsnsFacts) -> Cells<'a> {
        Cells { store, now, facts }
    }

    pub(super) fn proc(&self, pid: u32) -> ProcFacts {
        self.facts.procs.get(&pid).cloned().unwrap_or_default()
    }

    fn record(&self, row: &NsRow) -> Option<&'a Namespace> {
        self.store.find(row.ns_type, row.inode)
    }

    /// The nsfs mount points of `row` in the reader's mount namespace.
    fn nsfs_paths<'r>(&self, row: &'r NsRow) -> Vec<&'r str> {
        let mut paths: Vec<&str> = row
            .holders
            .iter()
            .filter_map(|h| match h {
                Holder::Mount { path, mnt_ns, .. } if *mnt_ns == self.facts.own_mnt_ns => Some(path.as_str()),
                _ => None,
            })
            .collect();
        paths.dedup();
        paths
    }

    fn netnsid(&self, row: &NsRow) -> Value {
        if row.ns_type != nstrace_common::ns::NsType::Net {
            return Value::Null;
        }
        match self.facts.netnsids.get(&row.inode) {
            // A text column in lsns (its JSON too): "7", or "unassigned".
            Some(NetnsId::Assigned(id)) => Value::Text(id.to_string()),
            Some(NetnsId::Unassigned) => Value::Text("unassigned".into()),
            None => Value::Null,
        }
    }

    /// The value of `col` for `line`.
    pub fn value(&self, col: LsCol, line: Line<'_>) -> Value {
        let row = line.row;
        let lowest = || line.pid;
        let text = |s: Option<String>| s.map_or(Value::Null, Value::Text);
        match col {
            LsCol::Ns => Value::Num(row.inode as i64),
            LsCol::Type => Value::Text(row.ns_type.name().into()),
            LsCol::Path => text(lowest().map(|p| format!("/proc/{p}/ns/{}", row.ns_type.name()))),
            LsCol::Nprocs => Value::Num(self.facts.nprocs.get(&(row.ns_type, row.inode)).copied().unwrap_or(0) as i64),
            LsCol::Pid => lowest().map_or(Value::Null, |p| Value::Num(p as i64)),
            LsCol::Ppid => lowest().and_then(|p| self.proc(p).ppid).map_or(Value::Null, |p| Value::Num(p as i64)),
            LsCol::Command => text(lowest().and_then(|p| self.proc(p).command)),
            LsCol::Uid => lowest().and_then(|p| self.proc(p).uid).map_or(Value::Null, |u| Value::Num(u as i64)),
            LsCol::User => text(
                lowest()
                    .and_then(|p| self.proc(p).uid)
                    .map(|u| self.facts.users.get(&u).cloned().unwrap_or_else(|| u.to_string())),
            ),
            LsCol::Netnsid => self.netnsid(row),
            LsCol::Nsfs => {
                let paths = self.nsfs_paths(row);
                if paths.is_empty() { Value::Null } else { Value::Text(paths.join("\n")) }
            }
            LsCol::Pns => Value::Num(row.parent.unwrap_or(0) as i64),
            LsCol::Ons => Value::Num(row.owner.unwrap_or(0) as i64),
            LsCol::Id => row.id.map_or(Value::Null, |id| Value::Num(id as i64)),
            LsCol::OwnerUid => {
                self.facts.owner_uids.get(&(row.ns_type, row.inode)).map_or(Value::Null, |u| Value::Num(*u as i64))
            }
            LsCol::State => Value::Text(row.state.name().into()),
            LsCol::Holders => match holders_summary(row).as_str() {
                "-" => Value::Null,
                s => Value::Text(s.into()),
            },
            LsCol::Age => self.record(row).and_then(|n| n.age(self.now)).map_or(Value::Null, Value::Real),
            LsCol::Created => {
                self.record(row).and_then(|n| n.created).map_or(Value::Null, |t| Value::Real(t.as_secs()))
            }
            LsCol::Creator => text(self.record(row).and_then(|n| n.creator.as_ref()).map(|c| c.process().to_string())),
            // The container that made it (the service's provenance), else
            // the one all its tasks are in, else "shared by N containers";
            // a namespace no task uses: the containers that used it.
            LsCol::Container => {
                let record = self.record(row);
                let creator = record.and_then(|n| n.creator.as_ref()?.origin.container.as_ref());
                text(match (creator, container_text(row).as_str()) {
                    (Some(c), _) => Some(c.short()),
                    (None, "-") => record.and_then(|n| n.seen_in.iter().next()).map(|c| c.short()),
                    (None, live) => Some(live.to_string()),
                })
            }
            LsCol::PinnedBy => text(
                self.record(row)
                    .and_then(|n| n.pins.iter().find(|p| p.released.is_none())?.by.as_ref().map(ToString::to_string)),
            ),
            // The Kubernetes pod (namespace/name, else its UID) of the
            // container that made it or was seen in it; a namespace the host
            // shares with a pod is not the pod's.
            LsCol::Pod => text(self.record(row).and_then(|n| {
                let creator = n.creator.as_ref().and_then(|c| c.origin.container.as_ref());
                crate::origin::pod_of(creator.into_iter().chain(n.seen_in.iter()))
            })),
            // The runtime of that container, else of the one container all its tasks are in.
            LsCol::Runtime => {
                let record = self.record(row);
                let attributed = record
                    .and_then(|n| {
                        n.creator.as_ref().and_then(|c| c.origin.container.as_ref()).or(n.seen_in.iter().next())
                    })
                    .map(|c| c.runtime);
                text(attributed.or(row.sole_container().map(|c| c.runtime)).map(|r| r.name().to_string()))
            }
        }
    }

    /// The cell text of `col` in nstrace's own table ("-" for nothing).
    pub fn table_text(&self, col: LsCol, row: &NsRow) -> String {
        let line = if col.describes_a_process() { Line::of(row, self.facts) } else { Line::bare(row) };
        match (col, self.value(col, line)) {
            (_, Value::Null) => "-".into(),
            (LsCol::Age, Value::Real(secs)) => crate::present::age::coarse(secs),
            (LsCol::Created, Value::Real(at)) => {
                crate::present::render::clock_time(crate::time::UnixTime::from_secs(at))
            }
            (_, v) => v.text().replace('\n', ","),
        }
    }
}

/// How an lsns-style listing goes out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Form {
    pub headings: bool,
    /// Flat (`-l`), not lsns's process tree.
    pub list: bool,
    pub raw: bool,
    pub json: bool,
    /// Fit in this width (None: as wide as it takes).
    pub width: Option<usize>,
}

/// lsns's raw form: a cell's blanks, backslashes and every byte that is not
/// printable ASCII as \xHH, so every line splits on spaces into the same
/// fields.
pub fn raw_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b == b' ' || b == b'\\' || !(0x21..0x7f).contains(&b) {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Writes `lines` with `cols` as lsns would: a table, raw lines, or
/// `{"namespaces": [...]}` (-J); as a process tree unless `form.list`
/// (lsns draws it on COMMAND, so only when COMMAND is shown).
pub fn write(
    out: &mut dyn Write,
    lines: &[Line<'_>],
    cols: &[LsCol],
    cells: &Cells<'_>,
    form: Form,
) -> std::io::Result<()> {
    let values: Vec<Vec<Value>> = lines.iter().map(|l| cols.iter().map(|c| cells.value(*c, *l)).collect()).collect();
    let tree = !form.list && cols.contains(&LsCol::Command);
    let parents = if tree { process_tree(lines, cells) } else { vec![None; lines.len()] };
    if form.json {
        let objects: Vec<serde_json::Map<String, serde_json::Value>> =
            values.iter().map(|vals| cols.iter().zip(vals).map(|(c, v)| (c.json_key(), v.json())).collect()).collect();
        let doc = serde_json::json!({ "namespaces": nest(objects, &parents) });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        return writeln!(out);
    }
    let header: Vec<String> = cols.iter().map(|c| c.header().to_string()).collect();
    let prefixes = tree_prefixes(&parents);
    // Multi-line cells (NSFS) on one line, comma-separated (as lsns -W).
    let texts: Vec<Vec<String>> = values
        .iter()
        .zip(&prefixes)
        .map(|(vals, prefix)| {
            cols.iter()
                .zip(vals)
                .map(|(c, v)| {
                    let text = v.text().replace('\n', ",");
                    if *c == LsCol::Command { format!("{prefix}{text}") } else { text }
                })
                .collect()
        })
        .collect();
    if form.raw {
        if form.headings {
            writeln!(out, "{}", header.join(" "))?;
        }
        for t in &texts {
            let line: Vec<String> = t.iter().map(|c| raw_escape(c)).collect();
            writeln!(out, "{}", line.join(" "))?;
        }
        return Ok(());
    }
    let table_cols: Vec<Col> = cols
        .iter()
        .map(|c| if c.numeric() { Col::right(c.header(), c.give()) } else { Col::left(c.header(), c.give()) })
        .collect();
    let mut natural: Vec<usize> = header.iter().map(|h| cell_width(h)).collect();
    for t in &texts {
        for (i, c) in t.iter().enumerate() {
            natural[i] = natural[i].max(cell_width(c));
        }
    }
    let widths = fit(&table_cols, &natural, &vec![false; cols.len()], form.width);
    let plain = |_: usize, s: &str| s.to_string();
    if form.headings {
        write_line(out, &table_cols, &widths, &header, &plain)?;
    }
    for t in &texts {
        write_line(out, &table_cols, &widths, t, &plain)?;
    }
    Ok(())
}

mod tree;

#[cfg(test)]
mod tests;

//! `nstrace ls`: every namespace on the host, with its state and holders.

use std::io::Write;

use nstrace_common::ns::NsType;

use crate::{
    error::{Error, Result},
    model::{Creator, Holder, PidInNs, Pin},
    model::{NsRow, NsState},
    origin::ContainerRef,
    present::{
        columns::TermArgs,
        lsns::{self, Cells, Line, LsCol, OutputSpec},
        table::{Extra, Layout, write_table_with, write_trees},
    },
    procfs::facts::{
        self,
        lsns::{LsnsFacts, member_pids},
    },
    snapshot::Source,
    store::NsStore,
};

/// A namespace type on the command line: the names (and order) of
/// [`NsType::ALL`], so the CLI has no list of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeArg(pub NsType);

impl clap::ValueEnum for TypeArg {
    fn value_variants<'a>() -> &'a [Self] {
        const ALL: [TypeArg; NsType::ALL.len()] = {
            let mut out = [TypeArg(NsType::Net); NsType::ALL.len()];
            let mut i = 0;
            while i < out.len() {
                out[i] = TypeArg(NsType::ALL[i]);
                i += 1;
            }
            out
        };
        &ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name()))
    }
}

impl From<TypeArg> for NsType {
    fn from(t: TypeArg) -> NsType {
        t.0
    }
}

/// `--tree`'s relations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TreeArg {
    /// Ownership and the pid hierarchy.
    Both,
    /// Which user namespace owns which namespace.
    Owner,
    /// Parent and child pid namespaces.
    Parent,
    /// lsns's form, each namespace under its lowest process's parent's.
    Process,
}

/// A row of `ls --json`: the row, plus what the store knows of it.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    #[serde(flatten)]
    row: &'a NsRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<crate::time::UnixTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    age: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    creator: Option<&'a Creator>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pins: Vec<&'a Pin>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    seen_in: Vec<&'a ContainerRef>,
    /// Pid -> its pid in its own pid namespace, for the task holders in
    /// another pid namespace than ours (a container's pid 1).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    in_pid_ns: std::collections::BTreeMap<u32, PidInNs>,
}

impl JsonRow<'_> {
    /// This row as serde_json writes it, the namespace's own fields by
    /// `present::json::fast`.
    fn write(&self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        use crate::present::json::fast::{field, ns_row_fields};
        buf.push(b'{');
        ns_row_fields(self.row, buf)?;
        if let Some(created) = self.created {
            field(buf, "created", &created)?;
        }
        if let Some(age) = self.age {
            field(buf, "age", &age)?;
        }
        if let Some(creator) = self.creator {
            field(buf, "creator", creator)?;
        }
        if !self.pins.is_empty() {
            field(buf, "pins", &self.pins)?;
        }
        if !self.seen_in.is_empty() {
            field(buf, "seen_in", &self.seen_in)?;
        }
        if !self.in_pid_ns.is_empty() {
            field(buf, "in_pid_ns", &self.in_pid_ns)?;
        }
        buf.push(b'}');
        Ok(())
    }
}

#[derive(Debug, Default, clap::Args)]
pub struct Filter {
    /// Only these types (comma-separated).
    #[arg(long = "type", short = 't', value_enum, value_delimiter = ',')]
    pub types: Vec<TypeArg>,
    /// Only these states (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub state: Vec<NsState>,
    /// Only the namespace with this kernel id (ns_id).
    #[arg(long)]
    pub id: Option<u64>,
    /// Only the namespace with this nsfs inode.
    #[arg(long)]
    pub inode: Option<u64>,
}

impl Filter {
    pub fn matches(&self, row: &NsRow) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| NsType::from(*t) == row.ns_type))
            && (self.state.is_empty() || self.state.contains(&row.state))
            && self.id.is_none_or(|id| row.id == Some(id))
            && self.inode.is_none_or(|ino| row.inode == ino)
    }

    /// Rows passing the filter; an error when an id or inode matches nothing.
    pub fn apply<'a>(&self, rows: Vec<&'a NsRow>) -> Result<Vec<&'a NsRow>> {
        let all_len = rows.len();
        let out: Vec<&NsRow> = rows.into_iter().filter(|r| self.matches(r)).collect();
        if out.is_empty() && all_len > 0 {
            if let Some(id) = self.id {
                return Err(Error::Usage(format!("no namespace with id {id} exists (see `nstrace ls`)")));
            }
            if let Some(ino) = self.inode {
                return Err(Error::Usage(format!("no namespace with inode {ino} exists (see `nstrace ls`)")));
            }
        }
        Ok(out)
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub filter: Filter,
    /// Only the namespace with this inode, as lsns's positional argument.
    #[arg(value_name = "NAMESPACE")]
    pub namespace: Option<u64>,
    /// Print nstrace's rows as a JSON array (every field, holders in full).
    #[arg(long, conflicts_with_all = ["tree", "lsns_json", "raw"])]
    pub json: bool,
    /// Print the user-namespace ownership tree and the pid-namespace
    /// hierarchy; as lsns -T: `--tree=owner` the first, `--tree=parent` the
    /// second, `--tree=process` lsns's form as a process tree.
    #[arg(short = 'T', long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "both")]
    pub tree: Option<TreeArg>,
    /// Columns, as lsns -o: LIST replaces the columns (lsns's form), +LIST
    /// adds them to nstrace's table. lsns's NS, TYPE, PATH, NPROCS, PID,
    /// PPID, COMMAND, UID, USER, NETNSID, NSFS, PNS, ONS; nstrace's ID, STATE,
    /// HOLDERS, AGE, and from `nstrace serve` CREATED, CREATOR, CONTAINER,
    /// PINNED-BY, POD (a Kubernetes pod's namespace/name), RUNTIME.
    #[arg(long, short = 'o', value_name = "LIST", value_parser = parse_output)]
    pub output: Option<OutputSpec>,
    /// Every column (lsns's, then nstrace's), in lsns's form.
    #[arg(long)]
    pub output_all: bool,
    /// lsns's JSON: {"namespaces": [...]} with the columns' names as keys.
    #[arg(short = 'J', long = "lsns-json")]
    pub lsns_json: bool,
    /// lsns's form without the heading line.
    #[arg(short = 'n', long = "noheadings")]
    pub no_headings: bool,
    /// lsns's raw form: cells separated by one space, blanks as \x20.
    #[arg(short = 'r', long)]
    pub raw: bool,
    /// lsns's list form (the form nstrace always prints; accepted for scripts).
    #[arg(short = 'l', long)]
    pub list: bool,
    /// Do not use multi-line cells (accepted for scripts: NSFS paths are
    /// always comma-separated on one line in tables).
    #[arg(short = 'W', long = "nowrap")]
    pub no_wrap: bool,
    /// Only the namespaces of this process (as lsns -p), in lsns's form.
    #[arg(short = 'p', long = "task", value_name = "PID", conflicts_with = "namespace")]
    pub task: Option<u32>,
    /// Force a one-shot snapshot from this source (default: ask `nstrace
    /// serve`, else the kernel's lists when available, else /proc).
    #[arg(long, value_enum)]
    pub source: Option<Source>,
    /// Print how long each phase of a one-shot snapshot took (walks, /proc,
    /// store, output) to stderr.
    #[arg(long)]
    pub timings: bool,
    #[command(flatten)]
    pub term: TermArgs,
    #[command(flatten)]
    pub service: crate::cli::ServiceArgs,
}

pub fn run(args: Args) -> Result<i32> {
    crate::cli::from_service_or_snapshot("ls", &args.service, args.source, &args.term.service_args(), |snap| {
        let mut phases = crate::timings::Phases::start();
        phases.extend(&snap.phases);
        let code = crate::cli::to_stdout(|out| answer(&args, &snap.store, out))?;
        phases.mark("output");
        if args.timings {
            let _ = crate::timings::write(&mut std::io::stderr().lock(), phases.list());
        }
        // The process ends next: freeing every record one by one would only
        // add to the wall time (it grows with the namespaces listed).
        std::mem::forget(snap);
        Ok(code)
    })
}

fn parse_output(list: &str) -> std::result::Result<OutputSpec, String> {
    lsns::parse_output(list)
}

/// The columns of lsns's form, when the arguments ask for it: `-o LIST`,
/// `--output-all`, or any of lsns's form options (lsns's default columns,
/// plus those `-o +LIST` adds). None: nstrace's own table.
fn lsns_columns(args: &Args) -> Option<Vec<LsCol>> {
    if args.output_all {
        return Some(LsCol::ALL.to_vec());
    }
    // lsns's defaults: a namespace's processes for `<namespace>`; NETNSID
    // and NSFS with `-t net`.
    let defaults: Vec<LsCol> = if args.namespace.is_some() {
        vec![LsCol::Pid, LsCol::Ppid, LsCol::User, LsCol::Command]
    } else if args.filter.types == [TypeArg(NsType::Net)] {
        let mut d = LsCol::LSNS_DEFAULT.to_vec();
        d.splice(5..5, [LsCol::Netnsid, LsCol::Nsfs]);
        d
    } else {
        LsCol::LSNS_DEFAULT.to_vec()
    };
    let lsns_form = args.tree == Some(TreeArg::Process)
        || args.lsns_json
        || args.no_headings
        || args.raw
        || args.list
        || args.no_wrap
        || args.task.is_some()
        || args.namespace.is_some();
    match &args.output {
        Some(OutputSpec::Exactly(cols)) => Some(cols.clone()),
        Some(OutputSpec::Extend(more)) if lsns_form => Some([&defaults[..], more].concat()),
        _ => lsns_form.then_some(defaults),
    }
}

/// What `cols` show of `rows` from /proc, read before the listing is
/// written, and the lines: one per row, through the process lsns describes
/// it by, or with `every_member` (lsns's `<namespace>` form) one per member.
fn lsns_lines<'r>(rows: &[&'r NsRow], cols: &[LsCol], every_member: bool) -> (Vec<Line<'r>>, LsnsFacts) {
    let needs = lsns::Needs::of(cols);
    let mut facts = LsnsFacts::default();
    if needs.own {
        facts.read_own();
    }
    if needs.nprocs {
        facts.count_members(rows);
    }
    let lines: Vec<Line> = if every_member {
        rows.iter().flat_map(|row| member_pids(row).into_iter().map(|pid| Line { row, pid: Some(pid) })).collect()
    } else {
        if needs.lowest {
            facts.find_lowest(rows);
        }
        rows.iter().map(|row| Line::of(row, &facts)).collect()
    };
    if needs.procs {
        facts.read_procs(lines.iter().filter_map(|l| l.pid));
    }
    if needs.users {
        facts.read_users();
    }
    if needs.owner_uid || needs.netnsid {
        facts.open_namespaces(lines.iter().map(|l| (l.row, l.pid)), needs.owner_uid, needs.netnsid);
    }
    (lines, facts)
}

/// The listing of `store`'s live namespaces (a snapshot's, or the service's).
pub fn answer(args: &Args, store: &NsStore, out: &mut dyn Write) -> Result<i32> {
    let all = store.rows();
    let mut rows = args.filter.apply(all.clone())?;
    if let Some(inode) = args.namespace {
        rows.retain(|r| r.inode == inode);
        if rows.is_empty() {
            return Err(Error::Usage(format!("no namespace with inode {inode} exists (see `nstrace ls`)")));
        }
    }
    if let Some(pid) = args.task {
        let theirs = facts::namespaces_of(pid).ok_or_else(|| Error::Usage(format!("no process with pid {pid}")))?;
        rows.retain(|r| theirs.contains(&(r.ns_type, r.inode)));
    }
    let now = crate::time::Clock::unix_now();
    let record = |r: &NsRow| store.find(r.ns_type, r.inode);
    let mut out = out;
    let written = if args.json {
        let contained = facts::pids_in_other_pid_ns(&all);
        let rows: Vec<JsonRow> = rows
            .iter()
            .map(|row| {
                let ns = record(row);
                JsonRow {
                    row,
                    created: ns.and_then(|n| n.created),
                    age: ns.and_then(|n| n.age(now)),
                    creator: ns.and_then(|n| n.creator.as_deref()),
                    pins: ns.map(|n| n.pins.iter().collect()).unwrap_or_default(),
                    seen_in: ns.map(|n| n.seen_in.iter().collect()).unwrap_or_default(),
                    // Most hosts run nothing in another pid namespace.
                    in_pid_ns: if contained.is_empty() {
                        Default::default()
                    } else {
                        row.holders
                            .iter()
                            .filter_map(|h| match h {
                                Holder::Task { pid, .. } => Some((*pid, *contained.get(pid)?)),
                                _ => None,
                            })
                            .collect()
                    },
                }
            })
            .collect();
        crate::present::json::write_rows(&rows, |r| 4 + r.row.holders.len(), JsonRow::write, out)
    } else if let Some(tree) = args.tree.filter(|t| *t != TreeArg::Process && !args.lsns_json && !args.raw) {
        let (owner, parent) = (tree != TreeArg::Parent, tree != TreeArg::Owner);
        write_trees(&mut out, &all, &|r: &NsRow| args.filter.matches(r), owner, parent)
    } else if let Some(cols) = lsns_columns(args) {
        // lsns lists by namespace inode; `<namespace>`: its processes.
        rows.sort_by_key(|r| (r.inode, r.ns_type));
        let (lines, facts) = lsns_lines(&rows, &cols, args.namespace.is_some());
        let cells = Cells::new(store, now, &facts);
        let form = lsns::Form {
            headings: !args.no_headings,
            list: args.list,
            raw: args.raw,
            json: args.lsns_json,
            width: args.term.width(),
        };
        lsns::write(out, &lines, &cols, &cells, form)
    } else {
        let more = match &args.output {
            Some(OutputSpec::Extend(more)) => more.clone(),
            _ => Vec::new(),
        };
        let (_, facts) = lsns_lines(&rows, &more, false);
        let cells = &Cells::new(store, now, &facts);
        let extra = Extra {
            age: Box::new(move |r: &NsRow| Some(cells.table_text(LsCol::Age, r)).filter(|a| a != "-")),
            container: Box::new(move |r: &NsRow| cells.table_text(LsCol::Container, r)),
            columns: more
                .into_iter()
                .filter(|c| !matches!(c, LsCol::Container | LsCol::Age))
                .map(|c| {
                    let cell: Box<dyn Fn(&NsRow) -> String> = Box::new(move |r: &NsRow| cells.table_text(c, r));
                    (c.header(), cell)
                })
                .collect(),
        };
        let layout = Layout { width: args.term.width(), color: args.term.color.for_stdout() };
        write_table_with(&mut out, &rows, &extra, layout)
    };
    written.map_err(|e| Error::io("writing output", e))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UnixTime;
    use crate::{
        containers::Container,
        model::{Holder, NsState, PidInNs, Pin, PinKind, TaskHold},
    };

    fn serde_text(row: &JsonRow) -> String {
        let mut buf = Vec::new();
        crate::present::json::serde_row(row, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn fast_text(row: &JsonRow) -> String {
        let mut buf = Vec::new();
        row.write(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// The hand-written row is the serde row, byte for byte, for every kind
    /// of value a row has (`ls --json`'s layout is an interface).
    #[test]
    fn the_fast_row_writer_writes_what_serde_writes() {
        let mut full = NsRow::new(NsType::Pid, 4026531836);
        full.id = Some(12);
        full.state = NsState::Active;
        full.tasks = 2;
        full.pids = vec![1, 300].into();
        full.holders = vec![
            Holder::Task { pid: 1, tid: None, comm: "init".into(), hold: TaskHold::Member },
            Holder::Task { pid: 300, tid: Some(301), comm: "we\"ird\tname\\".into(), hold: TaskHold::PidForChildren },
            Holder::Task { pid: 302, tid: None, comm: "ünï".into(), hold: TaskHold::TimeForChildren },
            // One reason to escape each: a quote, a control character, a backslash.
            Holder::Task { pid: 303, tid: None, comm: "a\"b".into(), hold: TaskHold::Member },
            Holder::Task { pid: 304, tid: None, comm: "c\u{1}d".into(), hold: TaskHold::Member },
            Holder::Task { pid: 305, tid: None, comm: "e\\f".into(), hold: TaskHold::Member },
            Holder::Fd { pid: 7, fd: 3, comm: "ip".into() },
            Holder::Mount {
                path: "/run/netns/a \"b\"".into(),
                mnt_ns: 4026531841,
                via_pid: 1,
                stack: Default::default(),
            },
        ]
        .into();
        full.refcount = Some(5);
        full.active_refs = Some(3);
        full.owner = Some(4026531837);
        full.parent = Some(4026531835);
        full.level = Some(1);
        full.names = vec!["blue".into(), "re\"d".into()].into();
        full.command = Some("bash\n".into());
        full.containers = vec![Container {
            runtime: crate::containers::Runtime::Docker,
            id: "ab12".into(),
            pod_uid: Some("p-1".into()),
        }]
        .into();
        full.host_tasks = 1;
        full.charge = crate::model::Charge { uid: 1000, ..crate::model::Charge::UNKNOWN };
        full.dying = Some(Box::new(crate::model::Dying {
            since: UnixTime::from_secs(1_764_000_001.5),
            stage: crate::model::TeardownStage::Cleanup,
            since_boot: crate::time::BootNs::from_nanos(5),
            unexplained: false,
            via: crate::events::DeathVia::TreeWalk,
        }));
        let creator = Creator {
            pid: 9,
            tid: 10,
            comm: "unshare".into(),
            cause: crate::events::Cause::Unshare,
            flags: 0x2000_0000,
            origin: Default::default(),
        };
        let pin = Pin {
            kind: PinKind::Mount,
            target: "/run/netns/blue".into(),
            mnt_ns: Some(4026531841),
            by: Some("ip[77]".parse().unwrap()),
            attribution: crate::model::Attribution::MountSyscall,
            since: UnixTime::from_secs(1.5),
            released: None,
        };
        let rich = JsonRow {
            row: &full,
            created: Some(UnixTime::from_secs(1_764_000_000.25)),
            age: Some(3.5),
            creator: Some(&creator),
            pins: vec![&pin],
            seen_in: Vec::new(),
            in_pid_ns: [(300, PidInNs { pid: 1, pid_ns: 4026532000 })].into(),
        };
        assert_eq!(fast_text(&rich), serde_text(&rich));

        let bare = NsRow::new(NsType::Uts, 4026532001);
        let plain = JsonRow {
            row: &bare,
            created: None,
            age: None,
            creator: None,
            pins: Vec::new(),
            seen_in: Vec::new(),
            in_pid_ns: Default::default(),
        };
        assert_eq!(fast_text(&plain), serde_text(&plain));
        for ty in NsType::ALL {
            for state in NsState::ALL {
                let mut row = NsRow::new(ty, 1);
                row.state = state;
                let json = JsonRow {
                    row: &row,
                    created: None,
                    age: None,
                    creator: None,
                    pins: Vec::new(),
                    seen_in: Vec::new(),
                    in_pid_ns: Default::default(),
                };
                assert_eq!(fast_text(&json), serde_text(&json), "{ty:?} {state:?}");
            }
        }
    }
}

//! `nstrace ls`: every namespace on the host, with its state and holders.

use std::io::Write;

use nstrace_common::ns::NsType;

use crate::{
    error::{Error, Result},
    model::{Creator, Namespace, Pin},
    origin::ContainerRef,
    present::{
        columns::TermArgs,
        table::{Extra, Layout, container_text, human_age, write_table_with, write_tree},
    },
    snapshot::{self, NsRow, NsState, Source},
    store::NsStore,
};

/// Namespace type names accepted on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TypeArg {
    Net,
    Uts,
    Ipc,
    Pid,
    User,
    Mnt,
    Cgroup,
    Time,
}

impl From<TypeArg> for NsType {
    fn from(t: TypeArg) -> NsType {
        match t {
            TypeArg::Net => NsType::Net,
            TypeArg::Uts => NsType::Uts,
            TypeArg::Ipc => NsType::Ipc,
            TypeArg::Pid => NsType::Pid,
            TypeArg::User => NsType::User,
            TypeArg::Mnt => NsType::Mnt,
            TypeArg::Cgroup => NsType::Cgroup,
            TypeArg::Time => NsType::Time,
        }
    }
}

/// Columns `-o` adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Column {
    /// When it was made (UTC).
    Created,
    /// Who made it: comm[pid].
    Creator,
    /// The container it was made in (or that used it): a default column now,
    /// accepted for scripts that name it.
    Container,
    /// Who made the mount or holds the fd that pins it.
    PinnedBy,
}

impl Column {
    fn header(self) -> &'static str {
        match self {
            Column::Created => "CREATED",
            Column::Creator => "CREATOR",
            Column::Container => "CONTAINER",
            Column::PinnedBy => "PINNED-BY",
        }
    }

    fn cell(self, ns: Option<&Namespace>) -> String {
        let Some(ns) = ns else { return "-".into() };
        let cell = match self {
            Column::Created => ns.created.map(crate::present::render::clock_time),
            Column::Creator => ns.creator.as_ref().map(|c| format!("{}[{}]", c.comm, c.pid)),
            Column::Container => ns
                .creator
                .as_ref()
                .and_then(|c| c.origin.container.as_ref())
                .or_else(|| ns.seen_in.iter().next())
                .map(|c| c.short()),
            Column::PinnedBy => ns.pins.iter().find(|p| p.released.is_none()).and_then(|p| p.by.clone()),
        };
        cell.unwrap_or_else(|| "-".into())
    }
}

/// A row of `ls --json`: the row, plus what the store knows of it.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    #[serde(flatten)]
    row: &'a NsRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    age: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    creator: Option<&'a Creator>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pins: Vec<&'a Pin>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    seen_in: Vec<&'a ContainerRef>,
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
    /// Print a JSON array instead of a table.
    #[arg(long, conflicts_with = "tree")]
    pub json: bool,
    /// Print the user-namespace ownership tree and the pid-namespace hierarchy.
    #[arg(long)]
    pub tree: bool,
    /// Add columns (comma-separated) from what `nstrace serve` remembers.
    #[arg(long, short = 'o', value_enum, value_delimiter = ',')]
    pub output: Vec<Column>,
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
    // First: the service's socket is root's too, and a snapshot needs it.
    crate::error::require_privileges()?;
    if args.source.is_none()
        && let Some(code) = crate::cli::ask_service("ls", &args.service, &args.term.service_args())?
    {
        return Ok(code);
    }
    let snap = snapshot::take(args.source)?;
    let mut phases = crate::timings::Phases::start();
    phases.extend(&snap.phases);
    let code = crate::cli::to_stdout(|out| answer(&args, &snap.store, out))?;
    phases.mark("output");
    if args.timings {
        let _ = crate::timings::write(&mut std::io::stderr().lock(), phases.list());
    }
    // The process ends next: freeing every record one by one would only
    // add to the wall time (milliseconds at 10,000 namespaces).
    std::mem::forget(snap);
    Ok(code)
}

/// The listing of `store`'s live namespaces (a snapshot's, or the service's).
pub fn answer(args: &Args, store: &NsStore, out: &mut dyn Write) -> Result<i32> {
    let all = store.rows();
    let rows = args.filter.apply(all.clone())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let record = |r: &NsRow| store.find(r.ns_type, r.inode);
    let mut out = out;
    let written = if args.json {
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
                }
            })
            .collect();
        crate::present::json::to_vec_rows(&rows).and_then(|bytes| out.write_all(&bytes))
    } else if args.tree {
        write_tree(&mut out, &all, &|r: &NsRow| args.filter.matches(r))
    } else {
        let extra = Extra {
            age: Box::new(|r: &NsRow| record(r).and_then(|n| n.age(now)).map(human_age)),
            container: Box::new(|r: &NsRow| match container_text(r).as_str() {
                "-" => Column::Container.cell(record(r)),
                live => live.to_string(),
            }),
            columns: args
                .output
                .iter()
                .filter(|c| **c != Column::Container)
                .map(|c| {
                    let c = *c;
                    let cell: Box<dyn Fn(&NsRow) -> String> = Box::new(move |r: &NsRow| c.cell(record(r)));
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

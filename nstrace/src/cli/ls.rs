//! `nstrace ls`: every namespace on the host, with its state and holders.

use std::io::Write;

use nstrace_common::ns::NsType;

use crate::{
    error::{Error, Result},
    present::table::{write_table, write_tree},
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
    /// Force a one-shot snapshot from this source (default: ask `nstrace
    /// serve`, else the kernel's lists when available, else /proc).
    #[arg(long, value_enum)]
    pub source: Option<Source>,
    #[command(flatten)]
    pub service: crate::cli::ServiceArgs,
}

pub fn run(args: Args) -> Result<i32> {
    if args.source.is_none()
        && let Some(code) = crate::cli::ask_service("ls", &args.service)?
    {
        return Ok(code);
    }
    crate::error::require_privileges()?;
    let snap = snapshot::take(args.source)?;
    crate::cli::to_stdout(|out| answer(&args, &snap.store, out))
}

/// The listing of `store`'s live namespaces (a snapshot's, or the service's).
pub fn answer(args: &Args, store: &NsStore, out: &mut dyn Write) -> Result<i32> {
    let all = store.rows();
    let rows = args.filter.apply(all.clone())?;
    let mut out = out;
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &rows).map_err(std::io::Error::from).and_then(|_| writeln!(out))
    } else if args.tree {
        write_tree(&mut out, &all, &|r: &NsRow| args.filter.matches(r))
    } else {
        write_table(&mut out, &rows)
    };
    written.map_err(|e| Error::io("writing output", e))?;
    Ok(0)
}

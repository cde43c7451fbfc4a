//! `nstrace limits`: the namespace limits (`/proc/sys/user/max_*_namespaces`)
//! of every user namespace, per charged uid and type: how many namespaces
//! count against each, the limit and the headroom, closest to full first.
//! `--explain` lists the namespaces counted at each level with their holders
//! and the advice that frees them. Exit status: 0, or 1 when a level is full.

use std::io::Write;

use nstrace_common::ns::NsType;
use serde::Serialize;

use crate::{
    charges::{ChargeTable, CountSource, Deepest, Level},
    cli::{leaks::Leak, ls::TypeArg},
    error::{Error, Result, exit},
    model::NsRow,
    present::escape::text as esc,
    procfs::facts::HolderFacts,
    snapshot::Source,
    store::NsStore,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only levels charged to this host uid.
    #[arg(long)]
    pub uid: Option<u32>,
    /// Only the levels of this user namespace (its inode, as a refusal names it).
    #[arg(long, value_name = "INODE")]
    pub user_ns: Option<u64>,
    /// Only these types.
    #[arg(long = "type", short = 't', value_enum, value_delimiter = ',')]
    pub types: Vec<TypeArg>,
    /// List the namespaces counted at each level, with their holders and
    /// what frees them.
    #[arg(long)]
    pub explain: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Force a one-shot snapshot from this source (default: ask `nstrace serve` first).
    #[arg(long, value_enum)]
    pub source: Option<Source>,
    #[command(flatten)]
    pub service: crate::cli::ServiceArgs,
}

/// One level with the namespaces counted there: rows, or with `--explain`
/// leak-style entries (reasons and fixes).
#[derive(Debug, Serialize)]
struct LevelReport<'a> {
    #[serde(flatten)]
    level: &'a Level,
    sysctl: String,
    /// For a full level: how to raise its limit (a command, never run).
    #[serde(skip_serializing_if = "Option::is_none")]
    raise: Option<String>,
    namespaces: Members<'a>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Members<'a> {
    Rows(Vec<&'a NsRow>),
    Explained(Vec<Leak>),
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    counts: CountSource,
    /// How the counts were obtained, in words.
    counts_text: &'static str,
    levels: Vec<LevelReport<'a>>,
    deepest: &'a Deepest,
}

pub fn run(args: Args) -> Result<i32> {
    crate::cli::from_service_or_snapshot("limits", &args.service, args.source, &[], |snap| {
        crate::cli::to_stdout(|out| answer(&args, &snap.store, out))
    })
}

fn counts_text(c: CountSource) -> &'static str {
    match c {
        CountSource::Kernel => "the kernel's own counts (struct ucounts, read by the namespace-tree walk)",
        CountSource::Derived => {
            "estimated: derived from the namespaces seen (the kernel's own counts come with the namespace-tree walk, \
             6.18+); each is taken to be charged to the owner uid of its user namespace (the \
             creator's euid is not readable here); limits read inside each user namespace (through a process in it or below it)"
        }
    }
}

/// The limits of `store`'s namespaces (a snapshot's, or the service's).
pub fn answer(args: &Args, store: &NsStore, out: &mut dyn Write) -> Result<i32> {
    let types: Vec<NsType> = args.types.iter().map(|t| NsType::from(*t)).collect();
    let table: ChargeTable = match store.live().any(|ns| ns.row.charged().is_some()) {
        true => crate::charges::table(store),
        false => crate::charges::table_with(store, &crate::procfs::userns::gather(&user_namespaces(store))),
    };
    let wanted = |l: &&Level| {
        (types.is_empty() || types.contains(&l.ns_type))
            && args.uid.is_none_or(|u| l.uid == Some(u))
            && args.user_ns.is_none_or(|u| l.user_ns == u)
    };
    let levels: Vec<&Level> = table.levels.iter().filter(wanted).collect();
    let rows = store.rows();
    let members = |l: &Level| -> Vec<&NsRow> {
        l.members.iter().filter_map(|k| store.find(k.ns_type, k.inode)).map(|ns| &ns.row).collect()
    };
    let reports: Vec<LevelReport> = levels
        .iter()
        .map(|l| {
            let counted = members(l);
            let namespaces = if args.explain {
                let facts = HolderFacts::gather(&counted, store.sockets_walked());
                let mut leaks = crate::cli::leaks::candidates(&rows, &counted, &facts);
                crate::cli::leaks::enrich(store, &facts, &mut leaks);
                Members::Explained(leaks)
            } else {
                Members::Rows(counted)
            };
            let raise = l.headroom.is_some_and(|h| h <= 0).then(|| raise_command(store, l)).flatten();
            LevelReport { level: l, sysctl: l.sysctl(), raise, namespaces }
        })
        .collect();
    let report = Report {
        counts: table.counts,
        counts_text: counts_text(table.counts),
        levels: reports,
        deepest: &table.deepest,
    };
    let mut out = out;
    let written =
        if args.json { crate::cli::write_json_pretty(&mut out, &report) } else { write_text(&mut out, &report) };
    written.map_err(|e| Error::io("writing output", e))?;
    let full = report.levels.iter().any(|l| l.level.headroom.is_some_and(|h| h <= 0));
    Ok(if full { exit::FINDINGS } else { exit::OK }.into())
}

/// How to raise a level's limit: `sysctl` on the host; inside a user
/// namespace, as its root through one of its processes (None: none runs).
fn raise_command(store: &NsStore, l: &Level) -> Option<String> {
    let to = l.limit? + 16;
    if l.depth == Some(0) {
        return Some(format!("sysctl -w user.{}={to}", l.sysctl()));
    }
    let user = store.find(NsType::User, l.user_ns)?;
    let pid = user.row.pids.first()?;
    let script = format!("echo {to} > /proc/sys/user/{}", l.sysctl());
    let argv = ["nsenter", "--user", "--target", &pid.to_string(), "sh", "-c", &script].map(String::from);
    Some(crate::present::advice::shell_line(&argv))
}

/// Each live user namespace with a path to it (a process in it).
fn user_namespaces(store: &NsStore) -> Vec<(u64, std::path::PathBuf)> {
    store
        .live()
        .filter(|ns| ns.row.ns_type == NsType::User)
        .filter_map(|ns| Some((ns.row.inode, format!("/proc/{}/ns/user", ns.row.pids.first()?).into())))
        .collect()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

fn write_text(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(out, "counts: {}", r.counts_text)?;
    if r.levels.is_empty() {
        writeln!(out, "no namespace counts against a limit here")?;
    } else {
        writeln!(
            out,
            "{:<12} {:>5} {:>10} {:<6} {:>6} {:>10} {:>9}",
            "USER-NS", "DEPTH", "UID", "TYPE", "USED", "LIMIT", "HEADROOM"
        )?;
    }
    for l in &r.levels {
        let lv = l.level;
        let full =
            if lv.headroom.is_some_and(|h| h <= 0) { format!("  FULL: {} reached", l.sysctl) } else { String::new() };
        writeln!(
            out,
            "{:<12} {:>5} {:>10} {:<6} {:>6} {:>10} {:>9}{full}",
            lv.user_ns,
            opt(lv.depth),
            opt(lv.uid),
            lv.ns_type.name(),
            lv.used,
            opt(lv.limit),
            opt(lv.headroom)
        )?;
        if let Some(cmd) = &l.raise {
            writeln!(
                out,
                "    to make room: free one of the namespaces counted here, or raise the limit: {}",
                esc(cmd)
            )?;
        }
        if let Some(k) = lv.kernel_used.filter(|&k| k != lv.derived_used) {
            writeln!(
                out,
                "    the kernel counts {k}, nstrace sees {} (a namespace still being torn down counts until it is freed)",
                lv.derived_used
            )?;
        }
        if let Members::Explained(leaks) = &l.namespaces {
            for m in leaks {
                writeln!(out, "    {} {} [{}]", m.row.ns_type.name(), m.row.inode, m.row.state.name())?;
                if let Some(c) = &m.creator {
                    writeln!(out, "      created by {}", esc(&crate::present::provenance_text::creator_text(c)))?;
                }
                for (reason, fix) in m.reasons.iter().zip(&m.fix) {
                    writeln!(out, "      held by: {}", esc(&reason.describe()))?;
                    writeln!(out, "        fix: {}", fix.text())?;
                }
            }
        }
    }
    writeln!(out, "deepest nesting: user namespaces {}, pid namespaces {}", r.deepest.user, r.deepest.pid)?;
    Ok(())
}

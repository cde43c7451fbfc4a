//! `nstrace why <id|inode|/proc/PID/ns/TYPE|path>`: one namespace explained,
//! with the commands that would release each holder (never run).

use std::{io::Write, os::unix::fs::MetadataExt};

use crate::{
    error::{Error, Result},
    present::explain::Explainer,
    snapshot::{self, NsRow, Source},
    store::NsStore,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A namespace id, an nsfs inode, /proc/PID/ns/TYPE, or a bind-mount path.
    pub target: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Force a one-shot snapshot from this source (default: ask `nstrace serve` first).
    #[arg(long, value_enum)]
    pub source: Option<Source>,
    #[command(flatten)]
    pub service: crate::cli::ServiceArgs,
}

/// Finds the row `target` names.
pub fn resolve<'a>(rows: &[&'a NsRow], target: &str) -> Result<&'a NsRow> {
    if let Ok(n) = target.parse::<u64>() {
        // Ids are small; inodes are large: try the id first, then the inode.
        return rows
            .iter()
            .copied()
            .find(|r| r.id == Some(n))
            .or_else(|| rows.iter().copied().find(|r| r.inode == n))
            .ok_or_else(|| Error::Usage(format!("no namespace with id or inode {n} exists (see `nstrace ls`)")));
    }
    let meta = std::fs::metadata(target).map_err(|e| Error::input(format!("cannot open {target}"), e))?;
    let fd = crate::procfs::nsfs::open(std::path::Path::new(target))
        .map_err(|e| Error::input(format!("opening {target}"), e))?;
    let ty = crate::procfs::nsfs::ns_type(&fd)
        .map_err(|_| Error::Usage(format!("{target} is not a namespace file (nsfs)")))?;
    rows.iter().copied().find(|r| r.inode == meta.ino() && r.ns_type == ty).ok_or_else(|| {
        Error::Usage(format!("{target} names {} namespace {} which is not listed", ty.name(), meta.ino()))
    })
}

fn chain(rows: &[&NsRow], start: &NsRow) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = start.owner;
    let mut depth = 0;
    while let Some(inode) = cur {
        let Some(u) = rows.iter().find(|r| r.inode == inode && r.ns_type == nstrace_common::ns::NsType::User) else {
            out.push(format!("user {inode} (not listed)"));
            break;
        };
        out.push(format!(
            "user {} id={} [{}] level {}",
            u.inode,
            u.id.unwrap_or(0),
            u.state.name(),
            u.level.unwrap_or(0)
        ));
        cur = u.owner;
        depth += 1;
        if depth > 40 {
            break;
        }
    }
    out
}

/// What `why` says when nstrace did not see a namespace created.
const UNKNOWN_CREATION: &str = "unknown (nstrace was not tracing when it was created)";

pub fn run(args: Args) -> Result<i32> {
    if args.source.is_none()
        && let Some(code) = crate::cli::ask_service("why", &args.service)?
    {
        return Ok(code);
    }
    crate::error::require_privileges()?;
    let snap = snapshot::take(args.source)?;
    crate::cli::to_stdout(|out| answer(&args, &snap.store, out))
}

/// One namespace of `store` explained (a snapshot's, or the service's).
pub fn answer(args: &Args, store: &NsStore, out: &mut dyn Write) -> Result<i32> {
    let rows = store.rows();
    let row = resolve(&rows, &args.target)?;
    let explainer = Explainer::new(&rows);
    let reasons = explainer.reasons(row);
    // What events taught the store (nothing, for a one-shot snapshot).
    let record = store.find(row.ns_type, row.inode);
    let created = record.and_then(|r| r.created);
    let creator = record.and_then(|r| r.creator.as_deref());
    let history: Vec<&crate::events::Event> = record.map(|r| r.history.iter().collect()).unwrap_or_default();
    let pins: Vec<&crate::model::Pin> = record.map(|r| r.pins.iter().collect()).unwrap_or_default();
    let seen_in: Vec<&crate::provenance::origin::ContainerRef> =
        record.map(|r| r.seen_in.iter().collect()).unwrap_or_default();
    let own_mnt = std::fs::metadata("/proc/self/ns/mnt").map(|m| m.ino()).unwrap_or(0);
    let mut out = out;
    let written = if args.json {
        let release: Vec<String> = reasons.iter().map(|r| r.release(own_mnt)).collect();
        let doc = serde_json::json!({
            "namespace": row,
            "owner_chain": chain(&rows, row),
            "reasons": reasons,
            "release": release,
            "created": created,
            "creator": creator,
            "provenance": if creator.is_some() { "seen" } else { UNKNOWN_CREATION },
            "pins": pins,
            "seen_in": seen_in,
            "history": history,
        });
        serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from).and_then(|_| writeln!(out))
    } else {
        (|| -> std::io::Result<()> {
            writeln!(
                out,
                "{} namespace {} (id {})",
                row.ns_type.name(),
                row.inode,
                row.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into())
            )?;
            writeln!(out, "  state:     {}", row.state.name())?;
            if let Some(r) = row.refcount {
                writeln!(out, "  refcount:  {r}")?;
            }
            if !row.names.is_empty() {
                writeln!(out, "  ip netns:  {}", row.names.join(", "))?;
            }
            for c in &row.containers {
                writeln!(
                    out,
                    "  container: {} {}{}",
                    c.runtime,
                    c.id,
                    c.pod.as_ref().map(|p| format!(" (pod {p})")).unwrap_or_default()
                )?;
            }
            if let Some(p) = row.parent {
                writeln!(out, "  parent:    {} {p} (level {})", row.ns_type.name(), row.level.unwrap_or(0))?;
            }
            let chain = chain(&rows, row);
            if !chain.is_empty() {
                writeln!(out, "  owners:    {}", chain.join(" <- "))?;
            }
            match (created, creator) {
                (Some(t), Some(c)) => writeln!(
                    out,
                    "  created:   {} by {}",
                    crate::present::render::clock_time(t),
                    crate::present::provenance::creator_text(c)
                )?,
                (Some(t), None) => writeln!(
                    out,
                    "  created:   {} (first seen; creator unknown)",
                    crate::present::render::clock_time(t)
                )?,
                _ => writeln!(out, "  created:   {UNKNOWN_CREATION}")?,
            }
            for c in &seen_in {
                writeln!(out, "  seen in:   {}", crate::present::provenance::container_text(c))?;
            }
            for p in &pins {
                writeln!(out, "  pinned:    {}", crate::present::provenance::pin_text(p))?;
            }
            for e in &history {
                writeln!(out, "  history:   {}", crate::present::render::event_text(e))?;
            }
            writeln!(out, "\nkept alive by:")?;
            for r in &reasons {
                writeln!(out, "  - {}", r.describe())?;
            }
            writeln!(out, "\nto release it (not run):")?;
            for r in &reasons {
                writeln!(out, "  {}", r.release(own_mnt))?;
            }
            Ok(())
        })()
    };
    written.map_err(|e| Error::io("writing output", e))?;
    Ok(0)
}

//! `nstrace why <id|inode|/proc/PID/ns/TYPE|path|netns name|container>`: one
//! namespace explained, with what would release each holder (never run).

use crate::present::escape::text as esc;
use std::io::Write;

use nstrace_common::ns::NsType;

use crate::{
    error::{Error, Result},
    model::NsRow,
    model::{Holder, NsState, TaskHold},
    origin::ContainerRef,
    present::advice,
    present::explain::Explainer,
    procfs::facts::{self, HolderFacts, NsFileError},
    snapshot::Source,
    store::NsStore,
};

/// Processes in the namespace listed before "... and N more".
const MEMBERS_SHOWN: usize = 10;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A namespace id, an nsfs inode, /proc/PID/ns/TYPE (pid_for_children and
    /// time_for_children too), a bind-mount path, an `ip netns` name, or a
    /// container's name or id.
    pub target: String,
    /// With a container: which of its namespaces (default net).
    #[arg(long = "type", short = 't', value_enum)]
    pub ns_type: Option<crate::cli::ls::TypeArg>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// List every process in it (by default the first 10, then a count).
    #[arg(long)]
    pub all: bool,
    /// Force a one-shot snapshot from this source (default: ask `nstrace serve` first).
    #[arg(long, value_enum)]
    pub source: Option<Source>,
    #[command(flatten)]
    pub service: crate::cli::ServiceArgs,
}

/// Finds the row `target` names: an id or inode; a path to a namespace file
/// (/proc/PID/ns/TYPE, *_for_children included, or a bind mount); an `ip
/// netns` name; a container's name or id (its namespace of type `ns_type`,
/// net by default).
pub fn resolve<'a>(store: &NsStore, rows: &[&'a NsRow], target: &str, ns_type: Option<NsType>) -> Result<&'a NsRow> {
    if target.trim().is_empty() {
        return Err(Error::Usage(
            "no target: give a namespace id or inode, a /proc/PID/ns/TYPE or bind-mount path, an `ip netns` name \
             or a container"
                .into(),
        ));
    }
    let netns = format!("/run/netns/{target}");
    let named = !target.contains('/') && facts::ip_netns_exists(target);
    if let Ok(n) = target.parse::<u64>() {
        // Ids are small; inodes are large: try the id first, then the inode.
        let of_type = |r: &&&NsRow| ns_type.is_none_or(|t| r.ns_type == t);
        let by_number = rows
            .iter()
            .filter(of_type)
            .copied()
            .find(|r| r.id == Some(n))
            .or_else(|| rows.iter().filter(of_type).copied().find(|r| r.inode == n));
        return match (by_number, named) {
            (Some(r), true) => Err(Error::Usage(format!(
                "{n} is ambiguous: {} namespace {} has id or inode {n}, and `ip netns` {n} is {netns}; \
                 say `nstrace why {}` for the first or `nstrace why {netns}` for the second",
                r.ns_type.name(),
                r.inode,
                r.inode,
            ))),
            (Some(r), false) => Ok(r),
            (None, true) => resolve_path(rows, &netns),
            // A container id prefix can be all digits.
            (None, false) => in_container(store, rows, target, ns_type).ok_or_else(|| {
                Error::Usage(match ns_type {
                    Some(t) => format!("no {} namespace with id or inode {n} exists (see `nstrace ls`)", t.name()),
                    None => format!("no namespace with id or inode {n} exists (see `nstrace ls`)"),
                })
            }),
        };
    }
    // A relative path that does not exist is a pod's `namespace/name`.
    if target.starts_with('/') || (target.contains('/') && std::path::Path::new(target).exists()) {
        return resolve_path(rows, target);
    }
    if named {
        return resolve_path(rows, &netns);
    }
    in_container(store, rows, target, ns_type).ok_or_else(|| {
        Error::Usage(format!(
            "{target:?} is not a namespace id or inode, a path, an `ip netns` name, or a container or pod with a {} namespace \
             (see `nstrace ls`)",
            ns_type.unwrap_or(NsType::Net).name()
        ))
    })
}

/// The namespace of type `ns_type` (net by default) of the container or pod
/// `target` names (a name, or an id prefix of 4 or more characters).
fn in_container<'a>(store: &NsStore, rows: &[&'a NsRow], target: &str, ns_type: Option<NsType>) -> Option<&'a NsRow> {
    let ns_type = ns_type.unwrap_or(NsType::Net);
    let of_container = |r: &&&NsRow| {
        r.ns_type == ns_type
            && (r.containers.iter().any(|c| target.len() >= 4 && c.id.starts_with(target))
                || store.find(r.ns_type, r.inode).is_some_and(|ns| ns.seen_in.iter().any(|c| c.matches(target))))
    };
    // A container's process (or one of its threads, runc's while it starts)
    // can be in the host's namespace: the namespace nstrace itself is in is
    // the last choice, then the one with the fewest tasks.
    let own = facts::own_ns(ns_type);
    let mut found: Vec<&NsRow> = rows.iter().filter(of_container).copied().collect();
    found.sort_by_key(|r| (Some(r.inode) == own, r.tasks));
    found.first().copied()
}

/// How long `row` has been dying and where its teardown is, with what the
/// kernel's cleanup worker is doing (`status`), as of `now`.
fn dying_text(row: &NsRow, status: &crate::store::TeardownStatus, now: crate::time::UnixTime) -> Option<String> {
    use crate::{model::TeardownStage, present::render::clock_time};
    let d = row.dying.as_ref()?;
    let worker = match status.running_since {
        Some(t) => {
            format!("the cleanup_net worker has been running since {} ({:.1} s)", clock_time(t), (now - t).max(0.0))
        }
        None => "the cleanup_net worker is idle".to_string(),
    };
    let stage = match d.stage {
        TeardownStage::Queued => "queued for cleanup_net",
        TeardownStage::Cleanup => "taken by a cleanup_net run",
    };
    Some(format!("for {:.1} s (since {}), {stage}; {worker}", d.age(now), clock_time(d.since)))
}

fn resolve_path<'a>(rows: &[&'a NsRow], target: &str) -> Result<&'a NsRow> {
    // /proc/PID/ns/pid_for_children names nothing until PID's first child
    // exists: the holder scan knows the namespace.
    let named = facts::ns_file(target);
    if let Some((pid, hold)) = for_children(target)
        && matches!(named, Err(NsFileError::Stat(_)))
    {
        return rows
            .iter()
            .copied()
            .find(|r| {
                r.holders.iter().any(|h| matches!(h, Holder::Task { pid: p, hold: h, .. } if *p == pid && *h == hold))
            })
            .ok_or_else(|| {
                Error::Usage(format!("process {pid} holds no namespace as {}", target.rsplit('/').next().unwrap_or("")))
            });
    }
    let (ty, ino) = named.map_err(|e| match e {
        NsFileError::Stat(e) => Error::input(format!("cannot open {target}"), e),
        NsFileError::Open(e) => Error::input(format!("opening {target}"), e),
        NsFileError::NotNsfs => Error::Usage(format!("{target} is not a namespace file (nsfs)")),
    })?;
    rows.iter()
        .copied()
        .find(|r| r.inode == ino && r.ns_type == ty)
        .ok_or_else(|| Error::Usage(format!("{target} names {} namespace {ino} which is not listed", ty.name())))
}

/// (PID, hold) of "/proc/PID/ns/pid_for_children" or ".../time_for_children".
fn for_children(path: &str) -> Option<(u32, TaskHold)> {
    let rest = path.strip_prefix("/proc/")?;
    let (pid, file) = rest.split_once("/ns/")?;
    let hold = match file {
        "pid_for_children" => TaskHold::PidForChildren,
        "time_for_children" => TaskHold::TimeForChildren,
        _ => return None,
    };
    Some((pid.parse().ok()?, hold))
}

fn chain(rows: &[&NsRow], start: &NsRow) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = start.owner;
    let mut depth = 0;
    while let Some(inode) = cur {
        let Some(u) = rows.iter().find(|r| r.inode == inode && r.ns_type == NsType::User) else {
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
    crate::cli::from_service_or_snapshot("why", &args.service, args.source, &[], |snap| {
        crate::cli::to_stdout(|out| answer(&args, &snap.store, out))
    })
}

/// One namespace of `store` explained (a snapshot's, or the service's).
pub fn answer(args: &Args, store: &NsStore, out: &mut dyn Write) -> Result<i32> {
    let rows = store.rows();
    let row = resolve(store, &rows, &args.target, args.ns_type.map(NsType::from))?;
    let facts = HolderFacts::gather(&[row], store.sockets_walked());
    let explainer = Explainer::new(&rows, &facts);
    let reasons = explainer.reasons(row);
    // What events taught the store (nothing, for a one-shot snapshot).
    let record = store.find(row.ns_type, row.inode);
    let created = record.and_then(|r| r.created);
    let creator = record.and_then(|r| r.creator.as_deref());
    let history: Vec<&crate::events::Event> = record.map(|r| r.history.iter().collect()).unwrap_or_default();
    let pins: Vec<&crate::model::Pin> = record.map(|r| r.pins.iter().collect()).unwrap_or_default();
    let seen_in: Vec<&crate::origin::ContainerRef> = record.map(|r| r.seen_in.iter().collect()).unwrap_or_default();
    let own_mnt = facts.own_mnt_ns.unwrap_or(0);
    let seen: Vec<ContainerRef> = seen_in.iter().map(|c| (*c).clone()).collect();
    let containers = advice::known_containers(row, &seen);
    // Zombies are counted in but use nothing: their parents get advice.
    let zombies = reasons.iter().filter(|r| r.is_member() && r.is_zombie()).count() as u32;
    let own_peer_groups = advice::own_peer_groups(&reasons, own_mnt);
    let ctx = advice::Context {
        own_mnt_ns: own_mnt,
        tasks: row.tasks.saturating_sub(zombies),
        containers: &containers,
        own_peer_groups: &own_peer_groups,
    };
    let release: Vec<advice::Advice> = reasons.iter().map(|r| advice::advise(r, &ctx)).collect();
    // A dying netns's teardown (or the run it is queued behind) may wait on
    // a device whose references do not drop: only the kernel log names it.
    let device_waits = match &row.dying {
        Some(d) if row.ns_type == NsType::Net => {
            crate::procfs::kmsg::device_waits(d.age(crate::time::Clock::unix_now()) + 1.0)
        }
        _ => Vec::new(),
    };
    let mut out = out;
    let written = if args.json {
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
            "teardown": store.teardown_status(),
            "device_waits": device_waits,
        });
        crate::cli::write_json_pretty(&mut out, &doc)
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
            if row.state == NsState::Inactive {
                writeln!(
                    out,
                    "  inactive:  the kernel counts no task, fd, mount or child namespace using it (listns(2) leaves \
                     it out); only what is listed below keeps it"
                )?;
            }
            if let Some(line) = dying_text(row, &store.teardown_status(), crate::time::Clock::unix_now()) {
                writeln!(out, "  dying:     {line}")?;
            }
            for w in &device_waits {
                writeln!(
                    out,
                    "  waits on:  device {dev}, usage count {n} (kernel log: \"unregister_netdevice: waiting for {dev} \
                     to become free\", {m} time(s), last {ago:.1} s ago)",
                    dev = esc(&w.device),
                    n = w.usage,
                    m = w.messages,
                    ago = w.last_seconds_ago
                )?;
            }
            if let Some(r) = row.refcount {
                writeln!(out, "  refcount:  {r}")?;
            }
            if !row.names.is_empty() {
                writeln!(out, "  ip netns:  {}", esc(&row.names.join(", ")))?;
            }
            if let Some(n) = row.shared_by() {
                let host = match row.host_tasks {
                    0 => String::new(),
                    h => format!(" and {h} host process{}", if h == 1 { "" } else { "es" }),
                };
                // Which ones: their lines follow ("container: ...").
                writeln!(out, "  shared:    by {n} container{}{host} (listed below)", if n == 1 { "" } else { "s" })?;
            }
            for c in &row.containers {
                let pod = c.pod_uid.as_ref().map(|p| format!(" (pod uid {p})")).unwrap_or_default();
                writeln!(out, "  container: {} {}", c.runtime, esc(&format!("{}{pod}", c.id)))?;
            }
            if let Some(p) = row.parent {
                writeln!(out, "  parent:    {} {p} (level {})", row.ns_type.name(), row.level.unwrap_or(0))?;
            }
            let chain = chain(&rows, row);
            if !chain.is_empty() {
                writeln!(out, "  owners:    {}", esc(&chain.join(" <- ")))?;
            }
            match (created, creator) {
                (Some(t), Some(c)) => writeln!(
                    out,
                    "  created:   {} by {}",
                    crate::present::render::clock_time(t),
                    esc(&crate::present::provenance_text::creator_text(c))
                )?,
                (Some(t), None) => writeln!(
                    out,
                    "  created:   {} (first seen; creator unknown)",
                    crate::present::render::clock_time(t)
                )?,
                _ => writeln!(out, "  created:   {UNKNOWN_CREATION}")?,
            }
            for c in &seen_in {
                writeln!(out, "  seen in:   {}", esc(&crate::present::provenance_text::container_text(c)))?;
            }
            for p in &pins {
                writeln!(out, "  pinned:    {}", esc(&crate::present::provenance_text::pin_text(p)))?;
            }
            for e in &history {
                writeln!(out, "  history:   {}", esc(&crate::present::render::event_text(e)))?;
            }
            writeln!(out, "\nkept alive by:")?;
            let members = reasons.iter().filter(|r| r.is_member()).count();
            let mut shown = 0;
            for r in &reasons {
                if r.is_member() {
                    shown += 1;
                    if shown > MEMBERS_SHOWN && !args.all {
                        continue;
                    }
                }
                writeln!(out, "  - {}", esc(&r.describe()))?;
            }
            if members > MEMBERS_SHOWN && !args.all {
                writeln!(out, "  - ... and {} more processes in it (`--all` lists them)", members - MEMBERS_SHOWN)?;
            }
            if ctx.tasks > 0 {
                let in_use = reasons.iter().zip(&release).find(|(r, _)| !r.is_zombie());
                writeln!(out, "\nto release it: nothing to do ({})", esc(in_use.map_or("", |(_, a)| a.note.as_str())))?;
                for (_, a) in reasons.iter().zip(&release).filter(|(r, _)| r.is_zombie()) {
                    writeln!(out, "  {}", a.text())?;
                }
            } else {
                writeln!(out, "\nto release it (nstrace runs nothing; [safe]: only releases this namespace's pin):")?;
                for a in &release {
                    writeln!(out, "  {}", a.text())?;
                }
            }
            Ok(())
        })()
    };
    written.map_err(|e| Error::io("writing output", e))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::{Container, Runtime};

    fn in_pod(ns_type: NsType, inode: u64, id: &str) -> NsRow {
        let containers = vec![Container { runtime: Runtime::of_name("containerd"), id: id.into(), pod_uid: None }];
        NsRow { containers: containers.into(), tasks: 1, ..NsRow::new(ns_type, inode) }
    }

    #[test]
    fn an_all_digit_container_id_prefix_names_its_container() {
        // CI drew sandbox 434680916734…: `why 434680916734` said no such namespace.
        let store = NsStore::new(Default::default(), Default::default());
        let rows = [
            NsRow { id: Some(12), ..NsRow::new(NsType::Net, 4026531840) },
            in_pod(NsType::Net, 4026532900, "434680916734beef"),
            in_pod(NsType::Uts, 4026532901, "434680916734beef"),
        ];
        let refs: Vec<&NsRow> = rows.iter().collect();
        let found = |target: &str, ty: Option<NsType>| resolve(&store, &refs, target, ty).map(|r| r.inode);
        assert_eq!(found("434680916734", None).unwrap(), 4026532900);
        assert_eq!(found("434680916734", Some(NsType::Uts)).unwrap(), 4026532901);
        // A namespace id or inode still comes first.
        assert_eq!(found("12", None).unwrap(), 4026531840);
        assert_eq!(found("4026532901", None).unwrap(), 4026532901);
        // A number that names nothing says so.
        let err = found("99999", None).unwrap_err().to_string();
        assert!(err.contains("no namespace with id or inode 99999"), "{err}");
        let err = found("4346", Some(NsType::Pid)).unwrap_err().to_string();
        assert!(err.contains("no pid namespace with id or inode 4346"), "{err}");
    }
}

#[cfg(test)]
mod dying_tests {
    use super::*;
    use crate::{
        model::{Dying, TeardownStage},
        store::TeardownStatus,
        time::{BootNs, UnixTime},
    };

    #[test]
    fn a_dying_namespace_says_for_how_long_and_what_the_worker_does() {
        let mut row = NsRow::new(NsType::Net, 4026532900);
        let status = TeardownStatus { tracked: true, running_since: Some(UnixTime::from_secs(995.0)), runs: 3 };
        let now = UnixTime::from_secs(1000.0);
        assert_eq!(dying_text(&row, &status, now), None);
        row.dying = Some(Box::new(Dying {
            since: UnixTime::from_secs(990.0),
            stage: TeardownStage::Cleanup,
            since_boot: BootNs::from_nanos(1),
            unexplained: false,
            via: crate::events::DeathVia::TreeWalk,
        }));
        let text = dying_text(&row, &status, now).unwrap();
        assert!(text.starts_with("for 10.0 s (since "), "{text}");
        assert!(text.contains("taken by a cleanup_net run; the cleanup_net worker has been running since"), "{text}");
        assert!(text.ends_with("(5.0 s)"), "{text}");
        let idle = TeardownStatus { running_since: None, ..status };
        assert!(dying_text(&row, &idle, now).unwrap().ends_with("the cleanup_net worker is idle"));
    }
}

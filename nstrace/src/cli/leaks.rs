//! `nstrace leaks`: namespaces no task is in, grouped by type and by what
//! holds them, with the concrete holder. Exit status: 0 none, 1 leaks, 2
//! usage error, 3 runtime failure.

use crate::present::escape::text as esc;
use std::{collections::BTreeMap, io::Write, time::Duration};

use nstrace_common::ns::NsType;
use serde::Serialize;

use crate::{
    cli::ls::TypeArg,
    error::{Error, Result, exit},
    model::{Creator, Pin},
    model::{NsRow, NsState},
    origin::ContainerRef,
    present::{
        advice::{self, Advice},
        explain::{Explainer, Reason},
    },
    procfs::facts::HolderFacts,
    snapshot::Source,
    store::NsStore,
    time::UnixTime,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only namespaces at least this old (0, 30s, 5m, 2h, 1d). Ages come
    /// from `nstrace serve`; namespaces whose creation it did not see (all,
    /// for a one-shot snapshot) are kept and reported as of unknown age.
    #[arg(long, value_parser = crate::cli::parse_duration)]
    pub min_age: Option<Duration>,
    /// A dying namespace (no reference left, the kernel's teardown not
    /// finished) is listed as stuck once it has been dying this long (0:
    /// every dying one).
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "1m")]
    pub stuck_after: Duration,
    /// Only these types.
    #[arg(long = "type", short = 't', value_enum, value_delimiter = ',')]
    pub types: Vec<TypeArg>,
    /// Print JSON.
    #[arg(long, conflicts_with = "compact")]
    pub json: bool,
    /// One line per leak: type, inode, state, age, holder and the fix.
    #[arg(long)]
    pub compact: bool,
    /// Force a one-shot snapshot from this source (default: ask `nstrace serve` first).
    #[arg(long, value_enum)]
    pub source: Option<Source>,
    #[command(flatten)]
    pub service: crate::cli::ServiceArgs,
}

#[derive(Debug, Serialize)]
pub struct Leak {
    #[serde(flatten)]
    pub row: NsRow,
    /// When it was created; null: nstrace did not see it created.
    pub created: Option<UnixTime>,
    /// Seconds since creation; null: unknown (nstrace did not see it created).
    pub age: Option<f64>,
    /// Seconds it has been dying (state `dying`): listed because its
    /// teardown is stuck (see `--stuck-after`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dying_for: Option<f64>,
    /// Who created it, and from which container (from `nstrace serve`).
    pub creator: Option<Creator>,
    /// Mounts and fds that pinned it, with who and when (from `nstrace serve`).
    pub pins: Vec<Pin>,
    /// Containers whose tasks were in it while it lived (from `nstrace serve`).
    pub seen_in: Vec<ContainerRef>,
    /// The Kubernetes pod (namespace/name, else UID) it belonged to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub reasons: Vec<Reason>,
    /// What to do about each reason, in the same order (never run by nstrace).
    pub fix: Vec<Advice>,
}

#[derive(Debug, Serialize)]
pub struct LeakReport {
    pub count: usize,
    pub by_type: BTreeMap<String, usize>,
    pub by_holder: BTreeMap<String, usize>,
    /// Leaks per Kubernetes pod (only those of a pod).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_pod: BTreeMap<String, usize>,
    /// `--min-age` in seconds; null when not given.
    pub min_age: Option<f64>,
    /// Leaks in this report whose age is unknown (with `--min-age`: kept,
    /// since they may be old enough).
    pub unknown_age: usize,
    /// What the report cannot tell, in words.
    pub notes: Vec<String>,
    pub leaks: Vec<Leak>,
}

/// The namespaces with no task among `rows` (of `types`; every type when
/// empty), as of `now`: a dying one only once it has been dying for
/// `stuck_after` (before that the kernel is tearing it down, as it should).
pub fn taskless<'a>(rows: &[&'a NsRow], types: &[NsType], stuck_after: Duration, now: UnixTime) -> Vec<&'a NsRow> {
    let stuck = |row: &NsRow| row.dying.as_ref().is_none_or(|d| d.age(now) >= stuck_after.as_secs_f64());
    rows.iter()
        .filter(|row| row.state != NsState::Active && (types.is_empty() || types.contains(&row.ns_type)))
        .filter(|row| stuck(row))
        .copied()
        .collect()
}

/// `leaking` (among `rows`) with their reasons, from `facts` gathered for
/// them. Creation times are left unknown: a one-shot snapshot does not know
/// them.
pub fn candidates(rows: &[&NsRow], leaking: &[&NsRow], facts: &HolderFacts) -> Vec<Leak> {
    let explainer = Explainer::new(rows, facts);
    leaking
        .iter()
        .map(|row| Leak {
            row: (*row).clone(),
            created: None,
            age: None,
            dying_for: None,
            creator: None,
            pins: Vec::new(),
            seen_in: Vec::new(),
            pod: None,
            reasons: explainer.reasons(row),
            fix: Vec::new(),
        })
        .collect()
}

/// The report on `leaks` as of `now`: each leak's age from
/// its creation time where known; with `min_age`, only the leaks at least
/// that old, plus those whose age is unknown (kept, counted and noted).
pub fn report(leaks: Vec<Leak>, min_age: Option<Duration>, now: UnixTime) -> LeakReport {
    let min = min_age.map(|d| d.as_secs_f64());
    let leaks: Vec<Leak> = leaks
        .into_iter()
        .map(|l| Leak {
            age: l.created.map(|c| (now - c).max(0.0)),
            dying_for: l.row.dying.as_ref().map(|d| d.age(now)),
            ..l
        })
        .filter(|l| match (min, l.age) {
            (Some(min), Some(age)) => age >= min,
            _ => true,
        })
        .collect();
    let mut leaks = leaks;
    // A pod's leaks together (pods first, by name); the rest in their order.
    leaks.sort_by(|a, b| (a.pod.is_none(), &a.pod).cmp(&(b.pod.is_none(), &b.pod)));
    let mut by_type = BTreeMap::new();
    let mut by_holder = BTreeMap::new();
    let mut by_pod = BTreeMap::new();
    for l in &leaks {
        if let Some(pod) = &l.pod {
            *by_pod.entry(pod.clone()).or_insert(0) += 1;
        }
        *by_type.entry(l.row.ns_type.name().to_string()).or_insert(0) += 1;
        for r in &l.reasons {
            *by_holder.entry(r.kind().to_string()).or_insert(0) += 1;
        }
    }
    let unknown_age = leaks.iter().filter(|l| l.age.is_none()).count();
    let mut notes = Vec::new();
    if min.is_some() && unknown_age > 0 {
        let (n, them) = if unknown_age == 1 { ("leak", "it") } else { ("leaks", "them") };
        notes.push(format!("{unknown_age} {n} of unknown age kept: nstrace did not see {them} created"));
    }
    LeakReport { count: leaks.len(), by_type, by_holder, by_pod, min_age: min, unknown_age, notes, leaks }
}

/// What the store knows of each of `leaks` (creation, creator, pins,
/// containers, pod; none for a one-shot snapshot: then --min-age keeps
/// every leak, and says so), and the advice for each reason.
pub fn enrich(store: &NsStore, facts: &HolderFacts, leaks: &mut [Leak]) {
    let own_mnt_ns = facts.own_mnt_ns.unwrap_or(0);
    for l in leaks {
        if let Some(ns) = store.find(l.row.ns_type, l.row.inode) {
            l.created = ns.created;
            l.creator = ns.creator.as_deref().cloned();
            l.pins = ns.pins.iter().cloned().collect();
            l.seen_in = ns.seen_in.iter().cloned().collect();
            let creator = l.creator.as_ref().and_then(|c| c.origin.container.as_ref());
            l.pod = crate::origin::pod_of(creator.into_iter().chain(&l.seen_in));
        }
        let containers = advice::known_containers(&l.row, &l.seen_in);
        let own_peer_groups = advice::own_peer_groups(&l.reasons, own_mnt_ns);
        let ctx = advice::Context {
            own_mnt_ns,
            tasks: l.row.tasks,
            containers: &containers,
            own_peer_groups: &own_peer_groups,
        };
        l.fix = l.reasons.iter().map(|r| advice::advise(r, &ctx)).collect();
    }
}

pub fn run(args: Args) -> Result<i32> {
    crate::cli::from_service_or_snapshot("leaks", &args.service, args.source, &[], |snap| {
        crate::cli::to_stdout(|out| answer(&args, &snap.store, out))
    })
}

/// The leaks among `store`'s namespaces (a snapshot's, or the service's).
pub fn answer(args: &Args, store: &NsStore, out: &mut dyn Write) -> Result<i32> {
    let types: Vec<NsType> = args.types.iter().map(|t| NsType::from(*t)).collect();
    let rows = store.rows();
    let now = crate::time::Clock::unix_now();
    let leaking = taskless(&rows, &types, args.stuck_after, now);
    let facts = HolderFacts::gather(&leaking, store.sockets_walked());
    let mut leaks = candidates(&rows, &leaking, &facts);
    enrich(store, &facts, &mut leaks);
    let report = report(leaks, args.min_age, now);
    let mut out = out;
    let written = if args.json {
        crate::cli::write_json_pretty(&mut out, &report)
    } else if args.compact {
        write_compact(&mut out, &report)
    } else {
        write_text(&mut out, &report)
    };
    written.map_err(|e| Error::io("writing output", e))?;
    Ok(exit_status(&report).into())
}

/// 0 when the report lists no leak, 1 when it lists any.
pub fn exit_status(report: &LeakReport) -> u8 {
    if report.count == 0 { exit::OK } else { exit::FINDINGS }
}

fn write_text(out: &mut impl Write, r: &LeakReport) -> std::io::Result<()> {
    let min = match r.min_age {
        Some(m) if r.unknown_age > 0 => format!(" at least {m}s old or of unknown age"),
        Some(m) => format!(" at least {m}s old"),
        None => String::new(),
    };
    if r.count == 0 {
        return writeln!(out, "no leaked namespaces: every namespace{min} has a task in it");
    }
    writeln!(out, "{} namespace(s) with no task{min}", r.count)?;
    for note in &r.notes {
        writeln!(out, "  note: {}", esc(note))?;
    }
    let join = |m: &BTreeMap<String, usize>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    writeln!(out, "  by type:   {}", join(&r.by_type))?;
    writeln!(out, "  by holder: {}", join(&r.by_holder))?;
    if !r.by_pod.is_empty() {
        writeln!(out, "  by pod:    {}", esc(&join(&r.by_pod)))?;
    }
    for l in &r.leaks {
        let age = l.age.map(crate::present::age::coarse).unwrap_or_else(|| "unknown (not seen created)".into());
        let containers: Vec<String> = match crate::present::table::container_text(&l.row).as_str() {
            "-" => Vec::new(),
            text => vec![text.to_string()],
        };
        let dying = l.dying_for.map(|s| format!(" (stuck: dying for {})", crate::present::age::coarse(s)));
        writeln!(
            out,
            "\n{} {} id={} [{}{}] age: {age}{}",
            l.row.ns_type.name(),
            l.row.inode,
            l.row.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            l.row.state.name(),
            dying.unwrap_or_default(),
            if containers.is_empty() { String::new() } else { format!(" containers: {}", esc(&containers.join(","))) }
        )?;
        if let Some(c) = &l.creator {
            writeln!(out, "  created by {}", esc(&crate::present::provenance_text::creator_text(c)))?;
        }
        for c in &l.seen_in {
            writeln!(out, "  seen in container {}", esc(&crate::present::provenance_text::container_text(c)))?;
        }
        for p in l.pins.iter().filter(|p| p.released.is_none()) {
            writeln!(out, "  pinned by {}", esc(&crate::present::provenance_text::pin_text(p)))?;
        }
        for (reason, fix) in l.reasons.iter().zip(&l.fix) {
            let label = if matches!(reason, Reason::Teardown { .. }) { "held by" } else { "kept alive by" };
            writeln!(out, "  {label}: {}", esc(&reason.describe()))?;
            writeln!(out, "    fix: {}", fix.text())?;
        }
    }
    Ok(())
}

/// One line per leak: "net 4026532178 id=5 mounted age=3600s mount /run/netns/x -> ip netns del x [safe]".
fn write_compact(out: &mut impl Write, r: &LeakReport) -> std::io::Result<()> {
    for l in &r.leaks {
        let holder = l.reasons.first().map(|r| r.kind()).unwrap_or("-");
        let target = l.reasons.first().and_then(|r| match r {
            Reason::Mount { path, .. } => Some(path.clone()),
            Reason::Fd { pid, fd, .. } | Reason::Socket { pid, fd, .. } => Some(format!("{pid}:{fd}")),
            _ => None,
        });
        let fix = l.fix.first().map(|a| match &a.command {
            Some(c) => format!("{c} [{}]", if a.safe { "safe" } else { "check first" }),
            None => "-".into(),
        });
        writeln!(
            out,
            "{} {} id={} {} age={} {holder}{} -> {}",
            l.row.ns_type.name(),
            l.row.inode,
            l.row.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            l.row.state.name(),
            l.age.map(|a| format!("{a:.0}s")).unwrap_or_else(|| "?".into()),
            esc(&target.map(|t| format!(" {t}")).unwrap_or_default()),
            esc(&fix.unwrap_or_else(|| "-".into()))
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_000_000.0;

    fn leak(ns_type: NsType, inode: u64, created: Option<f64>) -> Leak {
        Leak {
            row: NsRow::new(ns_type, inode),
            created: created.map(UnixTime::from_secs),
            age: None,
            dying_for: None,
            creator: None,
            pins: Vec::new(),
            seen_in: Vec::new(),
            pod: None,
            reasons: vec![Reason::KernelReference { hint: "test".into() }],
            fix: Vec::new(),
        }
    }

    fn leaks() -> Vec<Leak> {
        vec![
            leak(NsType::Net, 1, Some(NOW - 100.0)),
            leak(NsType::Uts, 2, Some(NOW - 10.0)),
            leak(NsType::Net, 3, None),
            leak(NsType::Ipc, 4, Some(NOW - 60.0)),
        ]
    }

    fn inodes(r: &LeakReport) -> Vec<u64> {
        r.leaks.iter().map(|l| l.row.inode).collect()
    }

    #[test]
    fn min_age_keeps_old_and_unknown_ages() {
        let r = report(leaks(), Some(Duration::from_secs(60)), UnixTime::from_secs(NOW));
        assert_eq!(inodes(&r), [1, 3, 4], "the 10 s old one goes; unknown age is kept");
        assert_eq!(r.count, 3);
        assert_eq!(r.leaks[0].age, Some(100.0));
        assert_eq!(r.leaks[1].age, None);
        assert_eq!(r.unknown_age, 1);
        assert_eq!(r.notes, ["1 leak of unknown age kept: nstrace did not see it created"]);
        // The summaries count what is left.
        assert_eq!(r.by_type.get("net"), Some(&2));
        assert_eq!(r.by_type.get("uts"), None);
        assert_eq!(r.by_holder.get("kernel-reference"), Some(&3));
        assert_eq!(r.min_age, Some(60.0));
    }

    #[test]
    fn without_min_age_every_leak_is_kept_with_its_age() {
        let r = report(leaks(), None, UnixTime::from_secs(NOW));
        assert_eq!(inodes(&r), [1, 2, 3, 4]);
        assert_eq!(r.leaks[1].age, Some(10.0));
        assert_eq!((r.unknown_age, r.notes.len(), r.min_age), (1, 0, None));
    }

    #[test]
    fn a_pods_leaks_come_together_and_are_counted_by_pod() {
        let mut l = leaks();
        l[1].pod = Some("shop/web".into());
        l[3].pod = Some("shop/web".into());
        l[2].pod = Some("kube-system/dns".into());
        let r = report(l, None, UnixTime::from_secs(NOW));
        assert_eq!(inodes(&r), [3, 2, 4, 1], "pods by name, then the rest in order");
        assert_eq!(r.by_pod, [("kube-system/dns".to_string(), 1), ("shop/web".to_string(), 2)].into());
        let mut text = Vec::new();
        write_text(&mut text, &r).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("\n  by pod:    kube-system/dns 1, shop/web 2\n"), "{text}");
        assert!(report(leaks(), None, UnixTime::from_secs(NOW)).by_pod.is_empty());
    }

    #[test]
    fn min_age_above_every_known_age_keeps_only_unknown_ones() {
        let r = report(leaks(), Some(Duration::from_secs(1000)), UnixTime::from_secs(NOW));
        assert_eq!(inodes(&r), [3]);
        let r = report(
            vec![leak(NsType::Net, 1, Some(NOW - 5.0))],
            Some(Duration::from_secs(60)),
            UnixTime::from_secs(NOW),
        );
        assert_eq!((r.count, r.unknown_age), (0, 0));
        assert!(r.notes.is_empty());
    }

    #[test]
    fn unknown_ages_are_marked_in_text_and_json() {
        let r = report(leaks(), Some(Duration::from_secs(60)), UnixTime::from_secs(NOW));
        let mut text = Vec::new();
        write_text(&mut text, &r).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("3 namespace(s) with no task at least 60s old or of unknown age\n"), "{text}");
        assert!(text.contains("  note: 1 leak of unknown age kept: nstrace did not see it created\n"), "{text}");
        assert!(text.contains("net 3 id=- [orphaned] age: unknown"), "{text}");
        assert!(text.contains("net 1 id=- [orphaned] age: 1m"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["leaks"][1]["age"].is_null(), "{json}");
        assert_eq!(json["leaks"][0]["age"], 100.0);
        assert_eq!(json["unknown_age"], 1);
        assert_eq!(json["notes"][0], "1 leak of unknown age kept: nstrace did not see it created");
    }

    #[test]
    fn exit_status_is_zero_only_without_leaks() {
        let none = report(Vec::new(), None, UnixTime::from_secs(NOW));
        assert_eq!(exit_status(&none), 0);
        let mut out = Vec::new();
        write_text(&mut out, &none).unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("no leaked namespaces"));
        assert_eq!(exit_status(&report(leaks(), None, UnixTime::from_secs(NOW))), 1);
        // Filtered down to none: 0 again.
        assert_eq!(
            exit_status(&report(
                vec![leak(NsType::Net, 9, Some(NOW - 1.0))],
                Some(Duration::from_secs(60)),
                UnixTime::from_secs(NOW)
            )),
            0
        );
    }
}

//! The metrics `nstrace export` serves: one [`Metrics`] owns a
//! prometheus-client [`Registry`] with every family under the `nstrace_`
//! prefix. Labels take values from small enums only (namespace type, state,
//! syscall result), so the number of series is fixed: no per-namespace,
//! per-process or per-command labels.

use std::{
    fmt::Write as _,
    sync::atomic::AtomicU64,
    time::{Duration, Instant},
};

use nstrace_common::ns::NsType;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

use crate::{
    engine::EngineStats,
    events::{Clock, Event, types_in_flags},
    monitor::{LiveNs, Monitor},
    snapshot::NsState,
};

/// Content type of [`Metrics::encode`] (OpenMetrics text).
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`Metrics::encode_prometheus_text`] (the classic format).
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the lifetime histogram: 100 ms to a week.
const LIFETIME_BUCKETS: [f64; 14] =
    [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6.0 * 3600.0, 86400.0, 3.0 * 86400.0, 7.0 * 86400.0];

/// A namespace type as a label value (`type="net"`, ...).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum TypeLabel {
    net,
    uts,
    ipc,
    pid,
    user,
    mnt,
    cgroup,
    time,
}

impl From<NsType> for TypeLabel {
    fn from(t: NsType) -> TypeLabel {
        match t {
            NsType::Net => TypeLabel::net,
            NsType::Uts => TypeLabel::uts,
            NsType::Ipc => TypeLabel::ipc,
            NsType::Pid => TypeLabel::pid,
            NsType::User => TypeLabel::user,
            NsType::Mnt => TypeLabel::mnt,
            NsType::Cgroup => TypeLabel::cgroup,
            NsType::Time => TypeLabel::time,
        }
    }
}

/// A syscall's outcome as a label value.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ResultLabel {
    ok,
    error,
}

impl ResultLabel {
    fn of(ret: i64) -> ResultLabel {
        if ret < 0 { ResultLabel::error } else { ResultLabel::ok }
    }
}

/// States are labelled with the names `nstrace ls` prints (`fd-only`, ...),
/// which the derive (variant identifiers verbatim) cannot spell.
impl EncodeLabelValue for NsState {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.name())
    }
}

const STATES: [NsState; 4] = [NsState::Active, NsState::Mounted, NsState::FdOnly, NsState::Orphaned];
const RESULTS: [ResultLabel; 2] = [ResultLabel::ok, ResultLabel::error];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub r#type: TypeLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeStateLabels {
    pub r#type: TypeLabel,
    pub state: NsState,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: ResultLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeResultLabels {
    pub r#type: TypeLabel,
    pub result: ResultLabel,
}

/// Labels of the opt-in per-container gauge (`export --per-container`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabels {
    pub runtime: String,
    pub container: String,
    pub r#type: TypeLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    kernel: String,
}

type GaugeF64 = Gauge<f64, AtomicU64>;

/// What the gauges need to know of one row of the live table.
#[derive(Clone, Copy, Debug)]
pub struct RowFacts {
    pub ns_type: NsType,
    pub state: NsState,
    /// Unix times, as in [`LiveNs`].
    pub created: Option<f64>,
    pub first_seen: f64,
    pub destroyed: Option<f64>,
}

impl RowFacts {
    pub fn of(r: &LiveNs) -> RowFacts {
        RowFacts {
            ns_type: r.row.ns_type,
            state: r.row.state,
            created: r.created,
            first_seen: r.first_seen,
            destroyed: r.destroyed,
        }
    }
}

/// Every metric `nstrace export` serves, registered in one registry.
pub struct Metrics {
    registry: Registry,
    namespaces: Family<TypeStateLabels, Gauge>,
    created: Family<TypeLabels, Counter>,
    destroyed: Family<TypeLabels, Counter>,
    setns: Family<ResultLabels, Counter>,
    unshare: Family<ResultLabels, Counter>,
    setns_namespaces: Family<TypeResultLabels, Counter>,
    unshare_namespaces: Family<TypeResultLabels, Counter>,
    lifetime: Family<TypeLabels, Histogram, fn() -> Histogram>,
    orphaned_age: Family<TypeLabels, GaugeF64>,
    leak_suspects: Family<TypeLabels, Gauge>,
    events_lost: Counter,
    resyncs: Counter,
    records: Counter,
    malformed: Counter,
    walks: Counter,
    scrape_duration: GaugeF64,
    refresh_duration: GaugeF64,
    leak_age: f64,
    /// Live namespaces per container (opt-in), and the most containers
    /// labelled; the rest are summed under container="other".
    per_container: Option<(Family<ContainerLabels, Gauge>, usize)>,
}

fn lifetime_histogram() -> Histogram {
    Histogram::new(LIFETIME_BUCKETS)
}

impl Metrics {
    /// `leak_age`: a namespace without tasks older than this is a leak suspect.
    pub fn new(leak_age: Duration) -> Metrics {
        let mut registry = Registry::with_prefix("nstrace");
        let m = Metrics {
            namespaces: Family::default(),
            created: Family::default(),
            destroyed: Family::default(),
            setns: Family::default(),
            unshare: Family::default(),
            setns_namespaces: Family::default(),
            unshare_namespaces: Family::default(),
            lifetime: Family::new_with_constructor(lifetime_histogram as fn() -> Histogram),
            orphaned_age: Family::default(),
            leak_suspects: Family::default(),
            events_lost: Counter::default(),
            resyncs: Counter::default(),
            records: Counter::default(),
            malformed: Counter::default(),
            walks: Counter::default(),
            scrape_duration: GaugeF64::default(),
            refresh_duration: GaugeF64::default(),
            leak_age: leak_age.as_secs_f64(),
            per_container: None,
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "namespaces",
            "Namespaces alive on the host, by type and state (active: a task uses it; mounted: only an nsfs \
             bind mount; fd-only: only an open fd; orphaned: only kernel references)",
            m.namespaces.clone(),
        );
        r.register("namespaces_created", "Namespaces created since the exporter started", m.created.clone());
        r.register("namespaces_destroyed", "Namespaces destroyed since the exporter started", m.destroyed.clone());
        r.register("setns", "setns(2) calls, by result", m.setns.clone());
        r.register("unshare", "unshare(2) calls, by result", m.unshare.clone());
        r.register(
            "setns_namespaces",
            "setns(2) calls per namespace type they concern (from the nstype/pidfd flags, else the namespaces joined)",
            m.setns_namespaces.clone(),
        );
        r.register(
            "unshare_namespaces",
            "unshare(2) calls per namespace type named in their CLONE_NEW* flags",
            m.unshare_namespaces.clone(),
        );
        r.register_with_unit(
            "namespace_lifetime",
            "Lifetime of destroyed namespaces whose creation nstrace saw",
            Unit::Seconds,
            m.lifetime.clone(),
        );
        r.register_with_unit(
            "orphaned_namespace_age",
            "Age of the oldest live namespace that no task uses (0: none); counted from its creation, or from \
             when nstrace first saw it",
            Unit::Seconds,
            m.orphaned_age.clone(),
        );
        r.register(
            "leak_suspects",
            "Live namespaces that no task uses and that are older than the exporter's --leak-age",
            m.leak_suspects.clone(),
        );
        r.register("events_lost", "Ring-buffer records lost (healed by a resync walk)", m.events_lost.clone());
        r.register("resyncs", "Full resyncs after lost records", m.resyncs.clone());
        r.register("records", "Ring-buffer records read", m.records.clone());
        r.register("malformed_records", "Ring-buffer records that could not be decoded", m.malformed.clone());
        r.register("walks", "Namespace tree walks", m.walks.clone());
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").into(), kernel: kernel_release() })
            .set(1);
        r.register("build_info", "nstrace version and the running kernel (always 1)", build);
        r.register_with_unit(
            "scrape_duration",
            "Time taken to encode the previous scrape of /metrics",
            Unit::Seconds,
            m.scrape_duration.clone(),
        );
        r.register_with_unit(
            "refresh_duration",
            "Time taken by the last holder refresh (/proc scan and task walk)",
            Unit::Seconds,
            m.refresh_duration.clone(),
        );
        let m = Metrics { registry, ..m };
        m.init_series();
        m
    }

    /// Creates every label combination at zero, so each series exists from
    /// the first scrape (rate() and increase() need the starting point).
    fn init_series(&self) {
        for ty in NsType::ALL.map(TypeLabel::from) {
            let t = TypeLabels { r#type: ty };
            let _ = self.created.get_or_create(&t);
            let _ = self.destroyed.get_or_create(&t);
            let _ = self.lifetime.get_or_create(&t);
            let _ = self.orphaned_age.get_or_create(&t);
            let _ = self.leak_suspects.get_or_create(&t);
            for state in STATES {
                let _ = self.namespaces.get_or_create(&TypeStateLabels { r#type: ty, state });
            }
            for result in RESULTS {
                let _ = self.setns_namespaces.get_or_create(&TypeResultLabels { r#type: ty, result });
                let _ = self.unshare_namespaces.get_or_create(&TypeResultLabels { r#type: ty, result });
            }
        }
        for result in RESULTS {
            let _ = self.setns.get_or_create(&ResultLabels { result });
            let _ = self.unshare.get_or_create(&ResultLabels { result });
        }
    }

    /// Counts one event (creates, destroys, setns and unshare calls).
    pub fn observe(&self, e: &Event) {
        match e {
            Event::Create { ns_type, .. } => {
                self.created.get_or_create(&TypeLabels { r#type: (*ns_type).into() }).inc();
            }
            Event::Destroy { ns_type, lifetime, .. } => {
                let t = TypeLabels { r#type: (*ns_type).into() };
                self.destroyed.get_or_create(&t).inc();
                if let Some(l) = lifetime.filter(|l| l.is_finite() && *l >= 0.0) {
                    self.lifetime.get_or_create(&t).observe(l);
                }
            }
            Event::Setns { flags, result, joined, .. } => {
                let result = ResultLabel::of(*result);
                self.setns.get_or_create(&ResultLabels { result }).inc();
                // nstype 0 with an nsfs fd names no type: use what was joined.
                let mut types = types_in_flags(*flags);
                if types.is_empty() {
                    types = joined.iter().map(|c| c.ns_type).collect();
                    types.sort_by_key(|t| *t as u32);
                    types.dedup();
                }
                for t in types {
                    self.setns_namespaces.get_or_create(&TypeResultLabels { r#type: t.into(), result }).inc();
                }
            }
            Event::Unshare { flags, result, .. } => {
                let result = ResultLabel::of(*result);
                self.unshare.get_or_create(&ResultLabels { result }).inc();
                for t in types_in_flags(*flags) {
                    self.unshare_namespaces.get_or_create(&TypeResultLabels { r#type: t.into(), result }).inc();
                }
            }
            _ => {}
        }
    }

    /// Adds `nstrace_container_namespaces{runtime,container,type}`: live
    /// namespaces used by each container's tasks, for at most `cap`
    /// containers (the label set stays bounded; the rest count as "other").
    pub fn with_per_container(mut self, cap: usize) -> Metrics {
        let family: Family<ContainerLabels, Gauge> = Family::default();
        self.registry.register(
            "container_namespaces",
            "Live namespaces used by each container's tasks (opt-in with --per-container, capped)",
            family.clone(),
        );
        self.per_container = Some((family, cap));
        self
    }

    /// The per-container gauge from live rows (a no-op unless enabled).
    pub fn set_containers<'a>(&self, rows: impl IntoIterator<Item = &'a LiveNs>) {
        let Some((family, cap)) = &self.per_container else { return };
        let mut counts: std::collections::HashMap<(String, String, TypeLabel), i64> = Default::default();
        let mut seen: std::collections::BTreeSet<(String, String)> = Default::default();
        for r in rows.into_iter().filter(|r| r.destroyed.is_none()) {
            for c in &r.row.containers {
                let mut key = (c.runtime.to_string(), c.id.clone());
                if !seen.contains(&key) {
                    if seen.len() >= *cap {
                        key = ("other".into(), "other".into());
                    } else {
                        seen.insert(key.clone());
                    }
                }
                *counts.entry((key.0, key.1, TypeLabel::from(r.row.ns_type))).or_insert(0) += 1;
            }
        }
        // Containers that are gone must not linger as stale series.
        family.clear();
        for ((runtime, container, t), n) in counts {
            family.get_or_create(&ContainerLabels { runtime, container, r#type: t }).set(n);
        }
    }

    /// Sets the gauges and engine counters from the monitor's live table.
    pub fn set_from_monitor(&self, monitor: &Monitor) {
        let now = monitor.clock().unix(Clock::now_boot_ns());
        self.set_from_rows(monitor.rows().map(RowFacts::of), now);
        self.set_containers(monitor.rows());
        self.set_engine_stats(monitor.stats());
        self.refresh_duration.set(monitor.refresh_micros as f64 / 1e6);
    }

    /// The per-type/state gauges from live rows (destroyed rows are skipped);
    /// `now` is Unix time.
    pub fn set_from_rows(&self, rows: impl IntoIterator<Item = RowFacts>, now: f64) {
        const N: usize = NsType::ALL.len();
        let mut counts = [[0i64; STATES.len()]; N];
        let mut oldest = [0f64; N];
        let mut suspects = [0i64; N];
        for r in rows.into_iter().filter(|r| r.destroyed.is_none()) {
            let ty = r.ns_type as usize;
            if ty >= N {
                continue;
            }
            let state = STATES.iter().position(|s| *s == r.state).unwrap_or(STATES.len() - 1);
            counts[ty][state] += 1;
            if r.state != NsState::Active {
                let age = (now - r.created.unwrap_or(r.first_seen)).max(0.0);
                oldest[ty] = oldest[ty].max(age);
                if age > self.leak_age {
                    suspects[ty] += 1;
                }
            }
        }
        for (i, ty) in NsType::ALL.into_iter().enumerate() {
            let t = TypeLabel::from(ty);
            for (j, state) in STATES.into_iter().enumerate() {
                self.namespaces.get_or_create(&TypeStateLabels { r#type: t, state }).set(counts[i][j]);
            }
            self.orphaned_age.get_or_create(&TypeLabels { r#type: t }).set(oldest[i]);
            self.leak_suspects.get_or_create(&TypeLabels { r#type: t }).set(suspects[i]);
        }
    }

    /// Engine counters (monotonic in the engine; copied forward here).
    pub fn set_engine_stats(&self, s: &EngineStats) {
        let catch_up = |c: &Counter, v: u64| {
            let have = c.get();
            if v > have {
                c.inc_by(v - have);
            }
        };
        catch_up(&self.events_lost, s.lost);
        catch_up(&self.resyncs, s.resyncs);
        catch_up(&self.records, s.records);
        catch_up(&self.malformed, s.malformed);
        catch_up(&self.walks, s.walks);
    }

    /// The OpenMetrics text exposition (ends with `# EOF`). Records how long
    /// encoding took in `nstrace_scrape_duration_seconds` (seen next scrape).
    pub fn encode(&self) -> String {
        let started = Instant::now();
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; an encoder error would be a bug.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            log::error!("encoding metrics: {e}");
        }
        self.scrape_duration.set(started.elapsed().as_secs_f64());
        out
    }

    /// The same samples in the classic Prometheus text format 0.0.4, for
    /// clients that do not accept OpenMetrics (promtool, older scrapers).
    pub fn encode_prometheus_text(&self) -> String {
        openmetrics_to_prometheus_text(&self.encode())
    }
}

/// Rewrites an OpenMetrics exposition from prometheus-client into text
/// format 0.0.4: counter families are named after their `_total` samples,
/// `# UNIT` and `# EOF` lines are dropped. (Nothing here emits exemplars,
/// `_created` samples or info/stateset families.)
pub fn openmetrics_to_prometheus_text(om: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, "counter")) = rest.split_once(' ')
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find(|p| line.starts_with(p));
        if let Some(prefix) = meta {
            let rest = &line[prefix.len()..];
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                let _ = writeln!(out, "{prefix}{name}_total {tail}");
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `uname -r`.
fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    release.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NsChange;

    fn create(ns_type: NsType, inode: u64) -> Event {
        Event::Create {
            time: 1000.0,
            pid: 42,
            tid: 42,
            comm: "ip".into(),
            ns_type,
            id: inode,
            inode,
            owner: None,
            parent: None,
            level: None,
            cause: "unshare",
            flags: ns_type.clone_flag(),
            flags_text: String::new(),
        }
    }

    fn in_container(ns_type: NsType, inode: u64, id: &str) -> LiveNs {
        let mut row = crate::snapshot::NsRow::new(ns_type, inode);
        row.containers = vec![crate::containers::Container { runtime: "docker", id: id.into(), pod: None }];
        LiveNs {
            row,
            created: None,
            creator: None,
            first_seen: 0.0,
            last_change: 0.0,
            destroyed: None,
            history: Default::default(),
        }
    }

    #[test]
    fn per_container_gauge_is_opt_in_and_capped() {
        let rows = [
            in_container(NsType::Net, 1, "aaa"),
            in_container(NsType::Uts, 2, "aaa"),
            in_container(NsType::Net, 3, "bbb"),
            in_container(NsType::Net, 4, "ccc"),
        ];
        let plain = Metrics::new(Duration::from_secs(300));
        plain.set_containers(rows.iter());
        assert!(!plain.encode().contains("container_namespaces"), "off by default");
        let m = Metrics::new(Duration::from_secs(300)).with_per_container(2);
        m.set_containers(rows.iter());
        let text = m.encode();
        let series: Vec<&str> = text.lines().filter(|l| l.starts_with("nstrace_container_namespaces{")).collect();
        assert_eq!(series.len(), 4, "{text}");
        assert!(
            text.contains(r#"nstrace_container_namespaces{runtime="docker",container="aaa",type="net"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"container="other",type="net"} 1"#), "the third container is folded: {text}");
        // Gone containers do not linger.
        m.set_containers(rows[..1].iter());
        assert_eq!(m.encode().lines().filter(|l| l.starts_with("nstrace_container_namespaces{")).count(), 1);
    }

    fn live(ns_type: NsType, state: NsState, created: Option<f64>, first_seen: f64) -> RowFacts {
        RowFacts { ns_type, state, created, first_seen, destroyed: None }
    }

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
    }

    #[test]
    fn fresh_registry_has_every_family_at_zero() {
        let m = Metrics::new(Duration::from_secs(300));
        let text = m.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for family in [
            "# TYPE nstrace_namespaces gauge",
            "# TYPE nstrace_namespaces_created counter",
            "# TYPE nstrace_namespaces_destroyed counter",
            "# TYPE nstrace_setns counter",
            "# TYPE nstrace_unshare counter",
            "# TYPE nstrace_setns_namespaces counter",
            "# TYPE nstrace_unshare_namespaces counter",
            "# TYPE nstrace_namespace_lifetime_seconds histogram",
            "# TYPE nstrace_orphaned_namespace_age_seconds gauge",
            "# TYPE nstrace_leak_suspects gauge",
            "# TYPE nstrace_events_lost counter",
            "# TYPE nstrace_resyncs counter",
            "# TYPE nstrace_build_info gauge",
            "# TYPE nstrace_scrape_duration_seconds gauge",
            "# TYPE nstrace_refresh_duration_seconds gauge",
        ] {
            assert!(text.contains(family), "missing {family:?} in\n{text}");
        }
        assert_eq!(sample(&text, r#"nstrace_namespaces_created_total{type="net"}"#), Some("0"));
        assert_eq!(sample(&text, r#"nstrace_namespaces{type="mnt",state="fd-only"}"#), Some("0"));
        assert_eq!(sample(&text, r#"nstrace_setns_total{result="error"}"#), Some("0"));
        assert_eq!(sample(&text, "nstrace_events_lost_total"), Some("0"));
        let build = text.lines().find(|l| l.starts_with("nstrace_build_info{")).expect("build_info sample");
        assert!(build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))) && build.ends_with(" 1"));
    }

    #[test]
    fn events_are_counted_by_type_and_result() {
        let m = Metrics::new(Duration::from_secs(300));
        for i in 0..3 {
            m.observe(&create(NsType::Net, 100 + i));
        }
        m.observe(&create(NsType::User, 200));
        m.observe(&Event::Destroy {
            time: 1001.0,
            ns_type: NsType::Net,
            id: 100,
            inode: 100,
            lifetime: Some(2.5),
            creator_pid: Some(42),
        });
        m.observe(&Event::Destroy {
            time: 1001.0,
            ns_type: NsType::Net,
            id: 101,
            inode: 101,
            lifetime: None,
            creator_pid: None,
        });
        m.observe(&Event::Unshare {
            time: 1.0,
            pid: 1,
            tid: 1,
            comm: "unshare".into(),
            flags: NsType::Net.clone_flag() | NsType::Uts.clone_flag(),
            flags_text: String::new(),
            result: 0,
            errno: None,
            new: Vec::new(),
        });
        m.observe(&Event::Unshare {
            time: 1.0,
            pid: 1,
            tid: 1,
            comm: "unshare".into(),
            flags: NsType::User.clone_flag(),
            flags_text: String::new(),
            result: -1,
            errno: Some("EPERM"),
            new: Vec::new(),
        });
        // nstype 0: the type comes from what was joined.
        m.observe(&Event::Setns {
            time: 1.0,
            pid: 1,
            tid: 1,
            comm: "nsenter".into(),
            fd: 3,
            fd_kind: "nsfs",
            flags: 0,
            flags_text: "0".into(),
            result: 0,
            errno: None,
            joined: vec![NsChange { ns_type: NsType::Mnt, slot: "mnt", id: 5, inode: 5 }],
        });
        let text = m.encode();
        let s = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}")).to_string();
        assert_eq!(s(r#"nstrace_namespaces_created_total{type="net"}"#), "3");
        assert_eq!(s(r#"nstrace_namespaces_created_total{type="user"}"#), "1");
        assert_eq!(s(r#"nstrace_namespaces_destroyed_total{type="net"}"#), "2");
        assert_eq!(s(r#"nstrace_namespace_lifetime_seconds_count{type="net"}"#), "1");
        assert_eq!(s(r#"nstrace_namespace_lifetime_seconds_sum{type="net"}"#), "2.5");
        assert_eq!(s(r#"nstrace_namespace_lifetime_seconds_bucket{le="1.0",type="net"}"#), "0");
        assert_eq!(s(r#"nstrace_namespace_lifetime_seconds_bucket{le="5.0",type="net"}"#), "1");
        assert_eq!(s(r#"nstrace_unshare_total{result="ok"}"#), "1");
        assert_eq!(s(r#"nstrace_unshare_total{result="error"}"#), "1");
        assert_eq!(s(r#"nstrace_unshare_namespaces_total{type="net",result="ok"}"#), "1");
        assert_eq!(s(r#"nstrace_unshare_namespaces_total{type="uts",result="ok"}"#), "1");
        assert_eq!(s(r#"nstrace_unshare_namespaces_total{type="user",result="error"}"#), "1");
        assert_eq!(s(r#"nstrace_setns_total{result="ok"}"#), "1");
        assert_eq!(s(r#"nstrace_setns_namespaces_total{type="mnt",result="ok"}"#), "1");
    }

    #[test]
    fn gauges_follow_rows_and_flag_old_orphans() {
        let m = Metrics::new(Duration::from_secs(300));
        let now = 10_000.0;
        let mut dead = live(NsType::Net, NsState::Mounted, Some(0.0), 0.0);
        dead.destroyed = Some(9_000.0);
        let rows = [
            live(NsType::Net, NsState::Active, Some(100.0), 100.0),
            live(NsType::Net, NsState::Mounted, Some(now - 1000.0), now - 1000.0),
            live(NsType::Net, NsState::Mounted, None, now - 10.0),
            live(NsType::Pid, NsState::FdOnly, None, now - 400.0),
            dead,
        ];
        m.set_from_rows(rows, now);
        m.set_engine_stats(&EngineStats { records: 10, malformed: 0, lost: 4, resyncs: 1, walks: 7 });
        let text = m.encode();
        let s = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}")).to_string();
        assert_eq!(s(r#"nstrace_namespaces{type="net",state="active"}"#), "1");
        assert_eq!(s(r#"nstrace_namespaces{type="net",state="mounted"}"#), "2");
        assert_eq!(s(r#"nstrace_namespaces{type="pid",state="fd-only"}"#), "1");
        assert_eq!(s(r#"nstrace_orphaned_namespace_age_seconds{type="net"}"#), "1000.0");
        assert_eq!(s(r#"nstrace_orphaned_namespace_age_seconds{type="pid"}"#), "400.0");
        assert_eq!(s(r#"nstrace_orphaned_namespace_age_seconds{type="uts"}"#), "0.0");
        assert_eq!(s(r#"nstrace_leak_suspects{type="net"}"#), "1");
        assert_eq!(s(r#"nstrace_leak_suspects{type="pid"}"#), "1");
        assert_eq!(s("nstrace_events_lost_total"), "4");
        assert_eq!(s("nstrace_resyncs_total"), "1");
        // The rows go away: gauges drop back to zero, counters stay.
        m.set_from_rows([], now);
        m.set_engine_stats(&EngineStats { records: 10, malformed: 0, lost: 4, resyncs: 1, walks: 8 });
        let text = m.encode();
        assert_eq!(sample(&text, r#"nstrace_namespaces{type="net",state="mounted"}"#), Some("0"));
        assert_eq!(sample(&text, r#"nstrace_leak_suspects{type="net"}"#), Some("0"));
        assert_eq!(sample(&text, "nstrace_events_lost_total"), Some("4"));
        assert_eq!(sample(&text, "nstrace_walks_total"), Some("8"));
    }

    #[test]
    fn classic_text_names_counter_families_with_total() {
        let m = Metrics::new(Duration::from_secs(300));
        let text = m.encode_prometheus_text();
        assert!(text.contains("# TYPE nstrace_namespaces_created_total counter\n"), "{text}");
        assert!(text.contains("# HELP nstrace_namespaces_created_total "), "{text}");
        assert!(text.contains("# TYPE nstrace_namespaces gauge\n"), "{text}");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
    }
}

//! The metrics `nstrace export` serves: one [`Metrics`] owns a
//! prometheus-client [`Registry`] with every family under the `nstrace_`
//! prefix. Labels take values from small enums only (namespace type, state,
//! syscall result), so the number of series is fixed: no per-namespace,
//! per-process or per-command labels.

use std::{
    sync::atomic::AtomicU64,
    time::{Duration, Instant},
};

use nstrace_common::ns::NsType;
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

use crate::{
    engine::EngineStats,
    events::{Event, types_in_flags},
    kernel::walker::WalkFailure,
    model::Namespace,
    model::NsState,
    monitor::Monitor,
    time::{Clock, UnixTime},
};

/// Content type of [`Metrics::encode`] (OpenMetrics text).
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`Metrics::encode_prometheus_text`] (the classic format).
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the lifetime histogram: 100 ms to a week.
const LIFETIME_BUCKETS: [f64; 14] =
    [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6.0 * 3600.0, 86400.0, 3.0 * 86400.0, 7.0 * 86400.0];

/// Upper bounds (seconds) of the teardown histogram: 1 ms to 10 minutes
/// (the kernel warns of a stuck device after 10 s).
const TEARDOWN_BUCKETS: [f64; 15] =
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0];

type GaugeF64 = Gauge<f64, AtomicU64>;

/// How often the limit headroom gauges are recomputed from the table.
const LIMITS_EVERY: Duration = Duration::from_secs(2);

/// What the gauges need to know of one row of the live table.
#[derive(Clone, Copy, Debug)]
pub struct RowFacts {
    pub ns_type: NsType,
    pub state: NsState,
    /// As in [`Namespace`].
    pub created: Option<UnixTime>,
    pub first_seen: UnixTime,
    pub destroyed: Option<UnixTime>,
    /// Since when it is dying (state `dying`).
    pub dying_since: Option<UnixTime>,
    /// The runtime of the container that made it, else of the first seen in it.
    pub runtime: Option<crate::containers::Runtime>,
}

impl RowFacts {
    pub fn of(r: &Namespace) -> RowFacts {
        let creator = r.creator.as_ref().and_then(|c| c.origin.container.as_ref());
        RowFacts {
            ns_type: r.row.ns_type,
            state: r.row.state,
            created: r.created,
            first_seen: r.first_seen,
            destroyed: r.destroyed,
            dying_since: r.row.dying.as_ref().map(|d| d.since),
            runtime: creator.or(r.seen_in.iter().next()).map(|c| c.runtime),
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
    teardown: Family<TypeLabels, Histogram, fn() -> Histogram>,
    dying_age: Family<TypeLabels, GaugeF64>,
    orphaned_age: Family<TypeLabels, GaugeF64>,
    leak_suspects: Family<TypeLabels, Gauge>,
    leak_suspects_by_runtime: Family<TypeRuntimeLabels, Gauge>,
    limit_headroom: Family<TypeLimitLevelLabels, Gauge>,
    /// When the headroom was last computed: at most every
    /// [`LIMITS_EVERY`], as it walks every row.
    limits_at: std::sync::Mutex<Option<std::time::Instant>>,
    refusals: Family<TypeRefusalLabels, Counter>,
    events_lost: Counter,
    resyncs: Counter,
    records: Counter,
    malformed: Counter,
    walks: Counter,
    walk_failures: Family<WalkFailureLabels, Counter>,
    connections: Family<ConnectionLabels, Counter>,
    scrape_duration: GaugeF64,
    refresh_duration: GaugeF64,
    leak_age: f64,
    /// Live namespaces per container (opt-in), and the most containers
    /// labelled; the rest are summed under container="other".
    per_container: Option<(Family<ContainerLabels, Gauge>, usize)>,
    /// `serve`'s provenance database.
    database: Option<database::DatabaseMetrics>,
}

fn lifetime_histogram() -> Histogram {
    Histogram::new(LIFETIME_BUCKETS)
}

fn teardown_histogram() -> Histogram {
    Histogram::new(TEARDOWN_BUCKETS)
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
            teardown: Family::new_with_constructor(teardown_histogram as fn() -> Histogram),
            dying_age: Family::default(),
            orphaned_age: Family::default(),
            leak_suspects: Family::default(),
            leak_suspects_by_runtime: Family::default(),
            limit_headroom: Family::default(),
            limits_at: std::sync::Mutex::new(None),
            refusals: Family::default(),
            events_lost: Counter::default(),
            resyncs: Counter::default(),
            records: Counter::default(),
            malformed: Counter::default(),
            walks: Counter::default(),
            walk_failures: Family::default(),
            connections: Family::default(),
            scrape_duration: GaugeF64::default(),
            refresh_duration: GaugeF64::default(),
            leak_age: leak_age.as_secs_f64(),
            per_container: None,
            database: None,
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "namespaces",
            "Namespaces alive on the host, by type and state (active: a task uses it; mounted: only an nsfs \
             bind mount; fd-only: only an open fd; orphaned: only kernel references; inactive: orphaned and \
             the kernel (6.19+) counts no user; dying: its teardown is running)",
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
            "namespace_teardown",
            "Time from a namespace's last reference to the end of the kernel's teardown (network namespaces: \
             queued for and torn down by cleanup_net), where nstrace tracks it",
            Unit::Seconds,
            m.teardown.clone(),
        );
        r.register_with_unit(
            "dying_namespace_age",
            "How long the oldest dying namespace (no reference left, teardown not finished) has been dying (0: none)",
            Unit::Seconds,
            m.dying_age.clone(),
        );
        r.register_with_unit(
            "taskless_namespace_age",
            "Age of the oldest live namespace that no task uses: mounted, fd-only, orphaned or inactive (0: none); counted \
             from its creation, or from when nstrace first saw it",
            Unit::Seconds,
            m.orphaned_age.clone(),
        );
        // The old name said less than it measured (not only the orphaned
        // state): kept, the same series, until dashboards have moved.
        r.register_with_unit(
            "orphaned_namespace_age",
            "Deprecated: the same as nstrace_taskless_namespace_age_seconds (every namespace no task uses, not \
             only orphaned ones); to be removed",
            Unit::Seconds,
            m.orphaned_age.clone(),
        );
        r.register(
            "leak_suspects",
            "Live namespaces that no task uses and that are older than the exporter's --leak-age",
            m.leak_suspects.clone(),
        );
        r.register(
            "leak_suspects_by_runtime",
            "nstrace_leak_suspects by the runtime of the container that made or used each one (none: no container)",
            m.leak_suspects_by_runtime.clone(),
        );
        r.register(
            "namespace_limit_headroom",
            "Namespaces that can still be made before /proc/sys/user/max_<type>_namespaces refuses (ENOSPC), by \
             type and level (host: the host's user namespace, for its most-charged uid; nested: the fullest \
             level below it); from the kernel's own counts (6.18+)",
            m.limit_headroom.clone(),
        );
        r.register(
            "namespace_refusals",
            "Namespace creations the kernel refused (ENOSPC, EUSERS), by type and reason (limit: a \
             max_<type>_namespaces was reached; depth: user or pid namespaces nested too deep; mount_max: \
             /proc/sys/fs/mount-max; unknown)",
            m.refusals.clone(),
        );
        r.register("events_lost", "Ring-buffer records lost (healed by a resync walk)", m.events_lost.clone());
        r.register("resyncs", "Full resyncs after lost records", m.resyncs.clone());
        r.register("records", "Ring-buffer records read", m.records.clone());
        r.register("malformed_records", "Ring-buffer records that could not be decoded", m.malformed.clone());
        r.register("walks", "Namespace tree walks", m.walks.clone());
        for reason in WalkFailure::ALL {
            let _ = m.walk_failures.get_or_create(&WalkFailureLabels { reason });
        }
        r.register(
            "walk_failures",
            "Kernel walks that failed and were answered from /proc instead, by reason (lock-busy: another \
             process held the walk lock past the wait; stalled: a walk stopped advancing; over-budget: a walk \
             ran past its time; unstable: a list kept changing; error: a bpf(2) or map error)",
            m.walk_failures.clone(),
        );
        r.register(
            "http_connections",
            "Connections to the metrics endpoint, by what became of them (evicted: a slow or idle client gave \
             its slot to a new one; rejected: answered 503 while every slot was serving)",
            m.connections.clone(),
        );
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
            let _ = self.teardown.get_or_create(&t);
            let _ = self.dying_age.get_or_create(&t);
            let _ = self.orphaned_age.get_or_create(&t);
            let _ = self.leak_suspects.get_or_create(&t);
            for runtime in RuntimeLabel::all() {
                let _ = self.leak_suspects_by_runtime.get_or_create(&TypeRuntimeLabels { r#type: ty, runtime });
            }
            for state in STATES {
                let _ = self.namespaces.get_or_create(&TypeStateLabels { r#type: ty, state });
            }
            for result in RESULTS {
                let _ = self.setns_namespaces.get_or_create(&TypeResultLabels { r#type: ty, result });
                let _ = self.unshare_namespaces.get_or_create(&TypeResultLabels { r#type: ty, result });
            }
        }
        for outcome in CONNECTION_OUTCOMES {
            let _ = self.connections.get_or_create(&ConnectionLabels { outcome });
        }
        for result in RESULTS {
            let _ = self.setns.get_or_create(&ResultLabels { result });
            let _ = self.unshare.get_or_create(&ResultLabels { result });
        }
    }

    /// Counts one connection to the metrics endpoint.
    pub fn count_connection(&self, outcome: ConnectionLabel) {
        self.connections.get_or_create(&ConnectionLabels { outcome }).inc();
    }

    /// Counts a step's events; the dying backlog at once when one began or
    /// ended (a teardown can be over before the next publish).
    pub fn observe_all(&self, events: &[Event], store: &crate::store::NsStore) {
        events.iter().for_each(|e| self.observe(e));
        if events.iter().any(|e| matches!(e, Event::Dying { .. } | Event::Destroy { teardown: Some(_), .. })) {
            self.set_dying(store);
        }
    }

    /// Counts one event (creates, destroys, setns and unshare calls).
    pub fn observe(&self, e: &Event) {
        match e {
            Event::Create { ns_type, .. } => {
                self.created.get_or_create(&TypeLabels { r#type: (*ns_type).into() }).inc();
            }
            Event::Destroy { ns_type, lifetime, teardown, .. } => {
                let t = TypeLabels { r#type: (*ns_type).into() };
                self.destroyed.get_or_create(&t).inc();
                if let Some(l) = lifetime.filter(|l| l.is_finite() && *l >= 0.0) {
                    self.lifetime.get_or_create(&t).observe(l);
                }
                if let Some(s) = teardown.filter(|s| s.is_finite() && *s >= 0.0) {
                    self.teardown.get_or_create(&t).observe(s);
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
            Event::Refused { reason, types, .. } => {
                let t = reason.ns_type().or_else(|| types.first().copied()).unwrap_or(NsType::User);
                let labels = TypeRefusalLabels { r#type: t.into(), reason: RefusalLabel::of(reason) };
                self.refusals.get_or_create(&labels).inc();
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

    /// Adds the provenance database's health (`serve`).
    pub fn with_database(mut self) -> Metrics {
        self.database = Some(database::DatabaseMetrics::register(&mut self.registry));
        self
    }

    /// Counts a request on serve's socket (a no-op unless enabled).
    pub fn service_request(&self, command: &str) {
        if let Some(d) = &self.database {
            d.request(database::RequestLabel::of(command));
        }
    }

    /// The database gauges (a no-op unless enabled).
    pub fn set_database(&self, health: &crate::database::writer::Health) {
        if let Some(d) = &self.database {
            d.set(health);
        }
    }

    /// The per-container gauge from live rows (a no-op unless enabled).
    pub fn set_containers<'a>(&self, rows: impl IntoIterator<Item = &'a Namespace>) {
        let Some((family, cap)) = &self.per_container else { return };
        let mut counts: std::collections::HashMap<(String, String, TypeLabel), i64> = Default::default();
        let mut seen: std::collections::BTreeSet<(String, String)> = Default::default();
        for r in rows.into_iter().filter(|r| r.destroyed.is_none()) {
            // A namespace the host or other containers share is no one
            // container's (the host's user namespace is in every one).
            if let Some(c) = r.row.sole_container() {
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
        let mut at = self.limits_at.lock().unwrap_or_else(|e| e.into_inner());
        if at.is_none_or(|t| t.elapsed() >= LIMITS_EVERY) {
            *at = Some(std::time::Instant::now());
            self.set_limits(monitor.store());
        }
        self.set_containers(monitor.rows());
        self.set_engine_stats(monitor.stats());
        self.refresh_duration.set(monitor.refresh_micros as f64 / 1e6);
    }

    /// The headroom gauges from the store's charges (none where the walk
    /// reads no limits: before 6.18).
    pub fn set_limits(&self, store: &crate::store::NsStore) {
        let table = crate::charges::table(store);
        self.limit_headroom.clear();
        for (t, level, h) in crate::charges::headroom(store, &table) {
            let labels = TypeLimitLevelLabels { r#type: t.into(), level: LimitLevelLabel(level) };
            self.limit_headroom.get_or_create(&labels).set(h);
        }
    }

    /// The per-type/state gauges from live rows (destroyed rows are skipped).
    pub fn set_from_rows(&self, rows: impl IntoIterator<Item = RowFacts>, now: UnixTime) {
        const N: usize = NsType::ALL.len();
        let mut counts = [[0i64; STATES.len()]; N];
        let mut oldest = [0f64; N];
        let mut dying = [0f64; N];
        let mut suspects = [0i64; N];
        let mut by_runtime: std::collections::HashMap<(usize, RuntimeLabel), i64> = Default::default();
        for r in rows.into_iter().filter(|r| r.destroyed.is_none()) {
            let ty = r.ns_type as usize;
            if ty >= N {
                continue;
            }
            let state = STATES.iter().position(|s| *s == r.state).unwrap_or(STATES.len() - 1);
            counts[ty][state] += 1;
            if let Some(since) = r.dying_since {
                // Not a leak: the kernel is tearing it down (`leaks` says when that is stuck).
                dying[ty] = dying[ty].max((now - since).max(0.0));
            } else if r.state != NsState::Active {
                let age = (now - r.created.unwrap_or(r.first_seen)).max(0.0);
                oldest[ty] = oldest[ty].max(age);
                if age > self.leak_age {
                    suspects[ty] += 1;
                    *by_runtime.entry((ty, RuntimeLabel(r.runtime))).or_insert(0) += 1;
                }
            }
        }
        for (i, ty) in NsType::ALL.into_iter().enumerate() {
            let t = TypeLabel::from(ty);
            for (j, state) in STATES.into_iter().enumerate() {
                self.namespaces.get_or_create(&TypeStateLabels { r#type: t, state }).set(counts[i][j]);
            }
            self.orphaned_age.get_or_create(&TypeLabels { r#type: t }).set(oldest[i]);
            self.dying_age.get_or_create(&TypeLabels { r#type: t }).set(dying[i]);
            self.leak_suspects.get_or_create(&TypeLabels { r#type: t }).set(suspects[i]);
            for runtime in RuntimeLabel::all() {
                let n = by_runtime.get(&(i, runtime)).copied().unwrap_or(0);
                self.leak_suspects_by_runtime.get_or_create(&TypeRuntimeLabels { r#type: t, runtime }).set(n);
            }
        }
    }

    /// The dying backlog gauges from the dying namespaces alone (each
    /// publish: a teardown can be over before the next per-row pass).
    pub fn set_dying(&self, store: &crate::store::NsStore) {
        const N: usize = NsType::ALL.len();
        let now = store.clock().unix(Clock::now_boot_ns());
        let (mut count, mut oldest) = ([0i64; N], [0f64; N]);
        for (ty, since) in store.dying_backlog() {
            let i = ty as usize;
            if i < N {
                count[i] += 1;
                oldest[i] = oldest[i].max((now - since).max(0.0));
            }
        }
        for (i, ty) in NsType::ALL.into_iter().enumerate() {
            let t = TypeLabel::from(ty);
            self.namespaces.get_or_create(&TypeStateLabels { r#type: t, state: NsState::Dying }).set(count[i]);
            self.dying_age.get_or_create(&TypeLabels { r#type: t }).set(oldest[i]);
        }
    }

    /// Engine counters (monotonic in the engine; copied forward here).
    pub fn set_engine_stats(&self, s: &EngineStats) {
        catch_up(&self.events_lost, s.lost);
        catch_up(&self.resyncs, s.resyncs);
        catch_up(&self.records, s.records);
        catch_up(&self.malformed, s.malformed);
        catch_up(&self.walks, s.walks);
        for (reason, n) in &s.walk_failures {
            catch_up(&self.walk_failures.get_or_create(&WalkFailureLabels { reason: *reason }), *n);
        }
    }

    /// The OpenMetrics text exposition (ends with `# EOF`), from
    /// prometheus-client's `encoding::text::encode`.
    pub fn encode(&self) -> String {
        self.encode_with(prometheus_client::encoding::text::encode)
    }

    /// The same samples in the classic Prometheus text format 0.0.4 (counter
    /// families named `*_total`, no `# UNIT`, no `# EOF`), for clients that do
    /// not accept OpenMetrics (promtool, older scrapers), from
    /// prometheus-client's `encoding::prometheus_text::encode`.
    pub fn encode_prometheus_text(&self) -> String {
        self.encode_with(prometheus_client::encoding::prometheus_text::encode)
    }

    /// Runs one of prometheus-client's encoders over the registry and
    /// records how long it took in `nstrace_scrape_duration_seconds` (seen
    /// next scrape).
    fn encode_with(&self, encode: fn(&mut String, &Registry) -> std::fmt::Result) -> String {
        let started = Instant::now();
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; an encoder error would be a bug.
        if let Err(e) = encode(&mut out, &self.registry) {
            log::error!("encoding metrics: {e}");
        }
        self.scrape_duration.set(started.elapsed().as_secs_f64());
        out
    }
}

/// `uname -r`.
fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid utsname for uname(2) to fill.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    release.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests;

mod database;
mod labels;

pub use labels::*;

/// Raises counter `c` to `total` (a running total kept elsewhere).
pub(crate) fn catch_up(c: &Counter, total: u64) {
    let have = c.get();
    if total > have {
        c.inc_by(total - have);
    }
}

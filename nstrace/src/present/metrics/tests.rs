use super::*;
use crate::events::NsChange;
use crate::time::UnixTime;

fn create(ns_type: NsType, inode: u64) -> Event {
    Event::Create {
        time: UnixTime::from_secs(1000.0),
        pid: 42,
        tid: 42,
        comm: "ip".into(),
        ns_type,
        id: inode,
        inode,
        owner: None,
        parent: None,
        level: None,
        cause: crate::events::Cause::Unshare,
        flags: ns_type.clone_flag(),
        flags_text: Default::default(),
    }
}

fn in_container(ns_type: NsType, inode: u64, id: &str) -> Namespace {
    let mut row = crate::model::NsRow::new(ns_type, inode);
    row.containers = vec![crate::containers::Container {
        runtime: crate::containers::Runtime::Docker,
        id: id.into(),
        pod_uid: None,
    }]
    .into();
    Namespace {
        row,
        created: None,
        creator: None,
        first_seen: UnixTime::from_secs(0.0),
        last_change: UnixTime::from_secs(0.0),
        destroyed: None,
        history: Default::default(),
        pins: Default::default(),
        seen_in: Default::default(),
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
    assert!(text.contains(r#"nstrace_container_namespaces{runtime="docker",container="aaa",type="net"} 1"#), "{text}");
    assert!(text.contains(r#"container="other",type="net"} 1"#), "the third container is folded: {text}");
    // Gone containers do not linger.
    m.set_containers(rows[..1].iter());
    assert_eq!(m.encode().lines().filter(|l| l.starts_with("nstrace_container_namespaces{")).count(), 1);
}

fn live(ns_type: NsType, state: NsState, created: Option<f64>, first_seen: f64) -> RowFacts {
    RowFacts {
        ns_type,
        state,
        created: created.map(UnixTime::from_secs),
        first_seen: UnixTime::from_secs(first_seen),
        destroyed: None,
        dying_since: None,
        runtime: None,
    }
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
        "# TYPE nstrace_taskless_namespace_age_seconds gauge",
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
        time: UnixTime::from_secs(1001.0),
        ns_type: NsType::Net,
        id: 100,
        inode: 100,
        lifetime: Some(2.5),
        creator_pid: Some(42),
        via: crate::events::DeathVia::TreeWalk,
        teardown: None,
    });
    m.observe(&Event::Destroy {
        time: UnixTime::from_secs(1001.0),
        ns_type: NsType::Net,
        id: 101,
        inode: 101,
        lifetime: None,
        creator_pid: None,
        via: crate::events::DeathVia::ProcRescan,
        teardown: None,
    });
    m.observe(&Event::Unshare {
        time: UnixTime::from_secs(1.0),
        pid: 1,
        tid: 1,
        comm: "unshare".into(),
        flags: NsType::Net.clone_flag() | NsType::Uts.clone_flag(),
        flags_text: Default::default(),
        result: 0,
        errno: None,
        new: Vec::new(),
    });
    m.observe(&Event::Unshare {
        time: UnixTime::from_secs(1.0),
        pid: 1,
        tid: 1,
        comm: "unshare".into(),
        flags: NsType::User.clone_flag(),
        flags_text: Default::default(),
        result: -1,
        errno: Some("EPERM"),
        new: Vec::new(),
    });
    // nstype 0: the type comes from what was joined.
    m.observe(&Event::Setns {
        time: UnixTime::from_secs(1.0),
        pid: 1,
        tid: 1,
        comm: "nsenter".into(),
        fd: 3,
        fd_kind: "nsfs",
        flags: 0,
        flags_text: crate::events::CloneFlags(0),
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
    dead.destroyed = Some(UnixTime::from_secs(9_000.0));
    let rows = [
        live(NsType::Net, NsState::Active, Some(100.0), 100.0),
        live(NsType::Net, NsState::Mounted, Some(now - 1000.0), now - 1000.0),
        live(NsType::Net, NsState::Mounted, None, now - 10.0),
        RowFacts {
            runtime: Some(crate::containers::Runtime::Podman),
            ..live(NsType::Pid, NsState::FdOnly, None, now - 400.0)
        },
        dead,
    ];
    m.set_from_rows(rows, UnixTime::from_secs(now));
    let failures = [(crate::kernel::walker::WalkFailure::LockBusy, 2)].into_iter().collect();
    m.set_engine_stats(&EngineStats {
        records: 10,
        malformed: 0,
        lost: 4,
        resyncs: 1,
        walks: 7,
        walk_failures: failures,
    });
    let text = m.encode();
    let s = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}")).to_string();
    assert_eq!(s(r#"nstrace_namespaces{type="net",state="active"}"#), "1");
    assert_eq!(s(r#"nstrace_namespaces{type="net",state="mounted"}"#), "2");
    assert_eq!(s(r#"nstrace_namespaces{type="pid",state="fd-only"}"#), "1");
    // Mounted and fd-only namespaces count: no task uses them. The name says so.
    assert_eq!(s(r#"nstrace_taskless_namespace_age_seconds{type="net"}"#), "1000.0");
    assert_eq!(s(r#"nstrace_orphaned_namespace_age_seconds{type="net"}"#), "1000.0", "the old name, deprecated");
    assert_eq!(s(r#"nstrace_orphaned_namespace_age_seconds{type="pid"}"#), "400.0");
    assert_eq!(s(r#"nstrace_orphaned_namespace_age_seconds{type="uts"}"#), "0.0");
    assert_eq!(s(r#"nstrace_leak_suspects{type="net"}"#), "1");
    assert_eq!(s(r#"nstrace_leak_suspects{type="pid"}"#), "1");
    // By the runtime whose container made or used it; every runtime a series.
    assert_eq!(s(r#"nstrace_leak_suspects_by_runtime{type="net",runtime="none"}"#), "1");
    assert_eq!(s(r#"nstrace_leak_suspects_by_runtime{type="pid",runtime="podman"}"#), "1");
    assert_eq!(s(r#"nstrace_leak_suspects_by_runtime{type="pid",runtime="none"}"#), "0");
    assert_eq!(s(r#"nstrace_leak_suspects_by_runtime{type="net",runtime="containerd"}"#), "0");
    assert_eq!(s("nstrace_events_lost_total"), "4");
    assert_eq!(s("nstrace_resyncs_total"), "1");
    // Every reason is a series from the start, each counted under its own name.
    assert_eq!(s(r#"nstrace_walk_failures_total{reason="lock-busy"}"#), "2");
    assert_eq!(s(r#"nstrace_walk_failures_total{reason="stalled"}"#), "0");
    // The rows go away: gauges drop back to zero, counters stay.
    m.set_from_rows([], UnixTime::from_secs(now));
    m.set_engine_stats(&EngineStats { records: 10, malformed: 0, lost: 4, resyncs: 1, walks: 8, ..Default::default() });
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

#[test]
fn lifetimes_are_bucketed_from_100_ms_to_a_week() {
    let m = Metrics::new(Duration::from_secs(300));
    let text = m.encode_prometheus_text();
    let bounds: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(r#"nstrace_namespace_lifetime_seconds_bucket{type="net","#))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        bounds,
        ["0.1", "0.5", "1", "5", "10", "30", "60", "300", "900", "3600", "21600", "86400", "259200", "604800", "+Inf"],
        "{text}"
    );
}

#[test]
fn service_requests_are_counted_by_command_and_the_rest_as_invalid() {
    let m = Metrics::new(Duration::from_secs(300)).with_database();
    for command in ["ls", "why", "why", "leaks", "history", "trace", ""] {
        m.service_request(command);
    }
    let text = m.encode_prometheus_text();
    let count = |c: &str| sample(&text, &format!(r#"nstrace_service_requests_total{{command="{c}"}}"#));
    assert_eq!(
        ["ls", "why", "leaks", "history", "invalid"].map(count),
        [Some("1"), Some("2"), Some("1"), Some("1"), Some("2")],
        "{text}"
    );
}

#[test]
fn a_lifetime_that_is_not_a_duration_is_counted_as_a_death_but_not_observed() {
    let m = Metrics::new(Duration::from_secs(300));
    for (i, lifetime) in [Some(-1.0), Some(f64::NAN), Some(f64::INFINITY), Some(2.0)].into_iter().enumerate() {
        m.observe(&Event::Destroy {
            time: UnixTime::from_secs(1001.0),
            ns_type: NsType::Ipc,
            id: 0,
            inode: 500 + i as u64,
            lifetime,
            creator_pid: None,
            via: crate::events::DeathVia::TreeWalk,
            teardown: None,
        });
    }
    let text = m.encode_prometheus_text();
    assert_eq!(sample(&text, r#"nstrace_namespaces_destroyed_total{type="ipc"}"#), Some("4"));
    assert_eq!(sample(&text, r#"nstrace_namespace_lifetime_seconds_count{type="ipc"}"#), Some("1"), "{text}");
    assert_eq!(sample(&text, r#"nstrace_namespace_lifetime_seconds_sum{type="ipc"}"#), Some("2.0"), "{text}");
}

/// A refusal is counted by type and reason; the headroom gauges follow the
/// store's charges: the host's limit minus its most-charged uid, and the
/// fullest level below.
#[test]
fn refusals_are_counted_and_headroom_follows_the_charges() {
    use crate::refusal::RefusalReason;
    let m = Metrics::new(Duration::from_secs(300));
    let reason = RefusalReason::Limit {
        ns_type: NsType::Uts,
        user_ns: 4_026_532_100,
        user_ns_id: None,
        depth: 1,
        uid: Some(0),
        used: 2,
        limit: 2,
        sysctl: "max_uts_namespaces".into(),
    };
    m.observe(&Event::Refused {
        time: UnixTime::from_secs(1.0),
        pid: 7,
        tid: 7,
        comm: "unshare".into(),
        uid: 0,
        syscall: "unshare",
        flags: NsType::Uts.clone_flag(),
        flags_text: crate::events::CloneFlags(0x0400_0000),
        errno: "ENOSPC",
        types: vec![NsType::Uts],
        text: reason.text(),
        explain: reason.explain_command(),
        reason,
        container: None,
    });
    let text = m.encode();
    assert_eq!(sample(&text, r#"nstrace_namespace_refusals_total{type="uts",reason="limit"}"#), Some("1"), "{text}");

    use nstrace_common::event::NsInfoRecord;
    let user = |inum: u32, parent: u32, level: u32, limit: u32, uts: u32| -> NsInfoRecord {
        let mut r = crate::store::tests::walk_row(NsType::User, u64::from(inum), inum, 2);
        (r.owner.inum, r.parent.inum, r.level) = (parent, parent, level);
        if parent != 0 {
            (r.charged, r.charged_uid) = (1, 0);
        }
        r.limits = [limit; 8];
        r.charged_counts = [0; 8];
        r.charged_counts[NsType::Uts as usize] = uts;
        r
    };
    let mut uts = crate::store::tests::walk_row(NsType::Uts, 9, 900, 1);
    uts.owner.inum = 200;
    (uts.charged, uts.charged_uid) = (2, 0);
    uts.charged_counts[NsType::Uts as usize] = 1;
    let store = crate::store::NsStore::from_snapshot(
        &[user(100, 0, 0, 50, 0), user(200, 100, 1, 4, 1), uts],
        Default::default(),
        crate::time::Clock::with_offset(0.0),
        crate::time::BootNs::from_nanos(1),
    );
    m.set_limits(&store);
    let text = m.encode();
    let headroom = |t: &str, level: &str| {
        sample(&text, &format!(r#"nstrace_namespace_limit_headroom{{type="{t}",level="{level}"}}"#)).map(String::from)
    };
    assert_eq!(headroom("uts", "nested").as_deref(), Some("3"), "limit 4, one used: {text}");
    assert_eq!(headroom("uts", "host").as_deref(), Some("49"), "limit 50, one used by uid 0 there: {text}");
    assert_eq!(headroom("net", "host").as_deref(), Some("50"), "nothing charged: {text}");
    assert_eq!(headroom("net", "nested"), None, "no nested net level: {text}");
}

#[test]
fn a_dying_namespace_is_counted_aged_and_timed_but_no_leak_suspect() {
    let m = Metrics::new(Duration::from_secs(60));
    let dying =
        RowFacts { dying_since: Some(UnixTime::from_secs(900.0)), ..live(NsType::Net, NsState::Dying, None, 10.0) };
    m.set_from_rows([dying, live(NsType::Net, NsState::Orphaned, None, 10.0)], UnixTime::from_secs(1000.0));
    let text = m.encode();
    assert_eq!(sample(&text, r#"nstrace_namespaces{type="net",state="dying"}"#), Some("1"), "{text}");
    assert_eq!(sample(&text, r#"nstrace_dying_namespace_age_seconds{type="net"}"#), Some("100.0"), "{text}");
    assert_eq!(sample(&text, r#"nstrace_leak_suspects{type="net"}"#), Some("1"), "only the orphaned one: {text}");
    m.observe(&Event::Destroy {
        time: UnixTime::from_secs(1001.0),
        ns_type: NsType::Net,
        id: 9,
        inode: 4026532999,
        lifetime: None,
        creator_pid: None,
        via: crate::events::DeathVia::TreeWalk,
        teardown: Some(0.3),
    });
    let text = m.encode();
    assert_eq!(sample(&text, r#"nstrace_namespace_teardown_seconds_count{type="net"}"#), Some("1"), "{text}");
    assert_eq!(sample(&text, r#"nstrace_namespace_teardown_seconds_sum{type="net"}"#), Some("0.3"), "{text}");
    assert_eq!(
        sample(&text, r#"nstrace_namespace_teardown_seconds_bucket{le="0.25",type="net"}"#),
        Some("0"),
        "{text}"
    );
    assert_eq!(sample(&text, r#"nstrace_namespace_teardown_seconds_bucket{le="0.5",type="net"}"#), Some("1"), "{text}");
}

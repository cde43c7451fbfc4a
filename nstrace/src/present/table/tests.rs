use nstrace_common::ns::NsType;

use super::*;
use crate::{containers::Container, model::NsState};

fn task(pid: u32) -> Holder {
    Holder::Task { pid, comm: "sh".into(), hold: crate::model::TaskHold::Member, tid: None }
}

fn fd(pid: u32, fd: i32) -> Holder {
    Holder::Fd { pid, fd, comm: "sh".into() }
}

fn mount(path: &str) -> Holder {
    mount_in(path, 1)
}

fn mount_in(path: &str, mnt_ns: u64) -> Holder {
    Holder::Mount { path: path.into(), mnt_ns, via_pid: 1, stack: Default::default() }
}

fn row(ns_type: NsType, inode: u64, owner: Option<u64>) -> NsRow {
    NsRow { owner, ..NsRow::new(ns_type, inode) }
}

fn pid_row(inode: u64, parent: Option<u64>) -> NsRow {
    NsRow { parent, ..NsRow::new(NsType::Pid, inode) }
}

fn container(runtime: &'static str, id: &str) -> Container {
    Container { runtime: crate::containers::Runtime::of_name(runtime), id: id.into(), pod_uid: None }
}

fn table(rows: &[NsRow]) -> String {
    let refs: Vec<&NsRow> = rows.iter().collect();
    let mut out = Vec::new();
    write_table(&mut out, &refs).unwrap();
    String::from_utf8(out).unwrap()
}

fn tree(rows: &[NsRow], filter: &Filter<'_>) -> String {
    let refs: Vec<&NsRow> = rows.iter().collect();
    let mut out = Vec::new();
    write_tree(&mut out, &refs, filter).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn holders_summary_skips_tasks_and_folds_the_rest() {
    let with = |holders: Vec<Holder>| holders_summary(&NsRow { holders: holders.into(), ..NsRow::new(NsType::Net, 1) });
    assert_eq!(with(vec![]), "-");
    assert_eq!(with(vec![task(1), task(2)]), "-");
    assert_eq!(with(vec![task(1), fd(12, 3)]), "fd 12:3");
    assert_eq!(with(vec![fd(12, 3), task(1), mount("/run/netns/a")]), "fd 12:3,mount /run/netns/a");
    assert_eq!(with(vec![fd(12, 3), mount("/m"), fd(13, 4)]), "fd 12:3,mount /m,+1");
    assert_eq!(with(vec![fd(1, 3), fd(2, 3), fd(3, 3), fd(4, 3), fd(5, 3)]), "fd 1:3,fd 2:3,+3");
}

#[test]
fn a_mount_seen_in_several_mount_namespaces_is_one_entry() {
    let with = |holders: Vec<Holder>| holders_summary(&NsRow { holders: holders.into(), ..NsRow::new(NsType::Net, 1) });
    let x = "/run/netns/x";
    assert_eq!(with(vec![mount_in(x, 1), mount_in(x, 2), mount_in(x, 3)]), "mount /run/netns/x (3 mnt ns)");
    assert_eq!(
        with(vec![fd(9, 4), mount_in(x, 1), mount_in("/y", 1), mount_in(x, 2)]),
        "fd 9:4,mount /run/netns/x (2 mnt ns),+1",
        "in the order first seen"
    );
}

#[test]
fn name_container_and_command_are_apart() {
    let r = NsRow::new(NsType::Net, 1);
    assert_eq!((name_text(&r), container_text(&r), command_text(&r)), ("-".into(), "-".into(), "-".into()));
    let r = NsRow {
        command: Some("ip".into()),
        names: vec!["blue".to_string(), "red".to_string()].into(),
        containers: vec![container("docker", "abcdef1234567890"), container("lxc", "web")].into(),
        ..r
    };
    assert_eq!(command_text(&r), "ip");
    assert_eq!(name_text(&r), "blue,red");
    assert_eq!(container_text(&r), "shared by 2 containers", "two containers share it: it is neither's");
}

#[test]
fn a_namespace_the_host_shares_with_a_container_is_not_the_containers() {
    let web = container("docker", "abcdef1234567890");
    let only = NsRow { containers: vec![web.clone()].into(), ..NsRow::new(NsType::Uts, 1) };
    assert_eq!(
        (container_text(&only), only.sole_container(), only.shared_by()),
        ("docker:abcdef123456".into(), Some(&web), None)
    );
    // The host's user namespace: ~90 host processes and one container's.
    let host = NsRow { host_tasks: 90, ..only.clone() };
    assert_eq!(
        (container_text(&host), host.sole_container(), host.shared_by()),
        ("host+docker:abcdef123456".into(), None, Some(1)),
        "which container shares the host's namespace, named"
    );
    let plain = NsRow { host_tasks: 90, ..NsRow::new(NsType::User, 2) };
    assert_eq!((container_text(&plain), plain.shared_by()), ("-".into(), None));
}

fn sample_table() -> [NsRow; 3] {
    let net = NsRow {
        id: Some(12345),
        state: NsState::Active,
        tasks: 3,
        holders: vec![task(1), fd(77, 4)].into(),
        owner: Some(4026531837),
        command: Some("systemd".into()),
        names: vec!["blue".to_string()].into(),
        containers: vec![container("docker", "abcdef1234567890")].into(),
        ..NsRow::new(NsType::Net, 4026531840)
    };
    let user = NsRow::new(NsType::User, 4026531837);
    let pid = NsRow {
        id: Some(7),
        state: NsState::Mounted,
        tasks: 12,
        holders: vec![mount("/run/p")].into(),
        owner: Some(4026531837),
        parent: Some(4026531836),
        command: Some("sh".into()),
        ..NsRow::new(NsType::Pid, 4026532000)
    };
    [net, user, pid]
}

#[test]
fn table_aligns_columns() {
    assert_eq!(table(&[]), "ID INODE TYPE STATE TASKS HOLDERS OWNER PARENT AGE NAME CONTAINER COMMAND\n");
    let expected = concat!(
        "   ID      INODE TYPE STATE    TASKS HOLDERS      OWNER      PARENT     AGE NAME CONTAINER           COMMAND\n",
        "12345 4026531840 net  active       3 fd 77:4      4026531837 -          -   blue docker:abcdef123456 systemd\n",
        "    - 4026531837 user orphaned     0 -            -          -          -   -    -                   -\n",
        "    7 4026532000 pid  mounted     12 mount /run/p 4026531837 4026531836 -   -    -                   sh\n",
    );
    assert_eq!(table(&sample_table()), expected);
}

fn fitted(rows: &[NsRow], layout: Layout) -> String {
    let refs: Vec<&NsRow> = rows.iter().collect();
    let mut out = Vec::new();
    write_table_with(&mut out, &refs, &Extra::none(), layout).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_narrow_terminal_cuts_text_then_leaves_out_age_parent_owner_id() {
    let mut rows = sample_table().to_vec();
    rows[0].command = Some("a-very-long-command-line-of-a-daemon --with --many --flags".into());
    for width in [120, 100, 80, 72, 66, 40] {
        let text = fitted(&rows, Layout { width: Some(width), color: false });
        for line in text.lines().filter(|_| width >= 66) {
            assert!(line.chars().count() <= width, "{width}: {line:?}\n{text}");
        }
        // Numbers are never cut: every inode is whole.
        for inode in ["4026531840", "4026531837", "4026532000"] {
            assert!(text.contains(inode), "{width}: {text}");
        }
    }
    let at_80 = fitted(&rows, Layout { width: Some(80), color: false });
    let header: Vec<&str> = at_80.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "INODE", "TYPE", "STATE", "TASKS", "HOLDERS", "NAME", "CONTAINER", "COMMAND"], "{at_80}");
    assert!(at_80.contains("a-very-l…") || at_80.contains("a-very-long"), "{at_80}");
    let at_66 = fitted(&rows, Layout { width: Some(66), color: false });
    let header: Vec<&str> = at_66.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["INODE", "TYPE", "STATE", "TASKS", "HOLDERS", "NAME", "CONTAINER", "COMMAND"], "{at_66}");
    assert!(at_66.contains("docker:ab… a-very-…"), "{at_66}");
    // Without a width nothing is cut.
    assert!(fitted(&rows, Layout::default()).contains("--many --flags\n"));
}

#[test]
fn colour_paints_states_and_the_header_only() {
    let text = fitted(&sample_table(), Layout { width: None, color: true });
    assert!(text.starts_with("   \x1b[1mID\x1b[0m "), "{text:?}");
    assert!(text.contains("\x1b[32mactive\x1b[0m   "), "{text:?}");
    assert!(text.contains("\x1b[31morphaned\x1b[0m "), "{text:?}");
    assert!(text.contains("\x1b[36mmounted\x1b[0m  "), "{text:?}");
    let plain = fitted(&sample_table(), Layout::default());
    assert!(!plain.contains('\x1b'));
    // Colour does not move a column: without escapes the text is the same.
    let stripped = text.replace("\x1b[0m", "").replace("\x1b[1m", "").replace("\x1b[32m", "");
    let stripped = stripped.replace("\x1b[31m", "").replace("\x1b[36m", "");
    assert_eq!(stripped, plain);
}

/// An ownership tree: user 1000 owns users 2000 and 3000; 2000 owns user
/// 4000, a pid and a mnt namespace; 4000 owns a pid namespace; 3000 (the
/// last child of 1000) owns two nets and the root pid namespace. Plus roots
/// whose owner is unknown, and pid 9900 whose parent is unknown.
fn sample() -> Vec<NsRow> {
    vec![
        NsRow { parent: Some(9000), ..row(NsType::Pid, 9500, Some(4000)) },
        NsRow {
            tasks: 0,
            holders: vec![mount("/run/netns/blue")].into(),
            names: vec!["blue".to_string()].into(),
            state: NsState::Mounted,
            ..row(NsType::Net, 5000, Some(3000))
        },
        row(NsType::User, 3000, Some(1000)),
        row(NsType::Mnt, 7000, Some(2000)),
        NsRow {
            id: Some(1),
            state: NsState::Active,
            tasks: 2,
            command: Some("systemd".into()),
            holders: vec![task(1), fd(1, 5)].into(),
            ..row(NsType::User, 1000, None)
        },
        NsRow { parent: Some(8000), ..row(NsType::Pid, 9000, Some(2000)) },
        NsRow { tasks: 1, state: NsState::Active, ..row(NsType::Net, 6000, Some(3000)) },
        row(NsType::User, 2000, Some(1000)),
        row(NsType::Net, 7500, Some(424242)),
        row(NsType::User, 4000, Some(2000)),
        row(NsType::Pid, 8000, Some(3000)),
        row(NsType::User, 11000, Some(55)),
        NsRow { parent: Some(1), ..row(NsType::Pid, 9900, None) },
    ]
}

const PIDS: &str = "
pid namespace hierarchy:
  pid 8000 [orphaned]
     pid 9000 [orphaned]
        pid 9500 [orphaned]
  pid 9900 [orphaned]
";

#[test]
fn tree_nests_rows_under_their_owners() {
    let expected = "\
user namespace ownership:
  user 1000 [active] id=1 tasks=2 (systemd) held-by: fd 1:5
  |- user 2000 [orphaned]
  |  |- user 4000 [orphaned]
  |  |  `- pid 9500 [orphaned]
  |  |- pid 9000 [orphaned]
  |  `- mnt 7000 [orphaned]
  `- user 3000 [orphaned]
     |- net 5000 [mounted] held-by: mount /run/netns/blue netns=blue
     |- net 6000 [active] tasks=1 (?)
     `- pid 8000 [orphaned]
  net 7500 [orphaned]
  user 11000 [orphaned]
  pid 9900 [orphaned]
";
    assert_eq!(tree(&sample(), &|_| true), format!("{expected}{PIDS}"));
}

#[test]
fn filtered_tree_keeps_the_owners_of_shown_rows() {
    let expected = "\
user namespace ownership:
  user 1000 [active] id=1 tasks=2 (systemd) held-by: fd 1:5
  `- user 2000 [orphaned]
     `- user 4000 [orphaned]
        `- pid 9500 [orphaned]
";
    assert_eq!(tree(&sample(), &|r| r.inode == 9500), format!("{expected}{PIDS}"));
    let expected = "\
user namespace ownership:
  user 1000 [active] id=1 tasks=2 (systemd) held-by: fd 1:5
  `- user 3000 [orphaned]
     `- net 6000 [active] tasks=1 (?)
  net 7500 [orphaned]
";
    assert_eq!(tree(&sample(), &|r| r.ns_type == NsType::Net && r.inode != 5000), format!("{expected}{PIDS}"));
}

#[test]
fn user_tree_stops_below_depth_64() {
    // A chain of 70 user namespaces, each owned by the previous one.
    let rows: Vec<NsRow> =
        (0..70u64).map(|i| row(NsType::User, 100 + i, if i == 0 { None } else { Some(99 + i) })).collect();
    let out = tree(&rows, &|_| true);
    let lines: Vec<&str> = out.lines().collect();
    // Header, depths 0..=65, blank line, pid header.
    assert_eq!(lines.len(), 1 + 66 + 2, "{out}");
    assert_eq!(lines[1], "  user 100 [orphaned]");
    assert_eq!(lines[2], "  `- user 101 [orphaned]");
    assert_eq!(lines[3], "     `- user 102 [orphaned]");
    assert_eq!(lines[66], format!("  {}`- user 165 [orphaned]", "   ".repeat(64)));
    assert_eq!(lines[67], "");
}

#[test]
fn pid_tree_stops_below_depth_40() {
    // A chain of 45 pid namespaces, each the parent of the next.
    let rows: Vec<NsRow> = (0..45u64).map(|i| pid_row(100 + i, if i == 0 { None } else { Some(99 + i) })).collect();
    let out = tree(&rows, &|_| false);
    let lines: Vec<&str> = out.lines().collect();
    // User header, blank line, pid header, depths 0..=41.
    assert_eq!(lines.len(), 3 + 42, "{out}");
    assert_eq!(lines[..4], ["user namespace ownership:", "", "pid namespace hierarchy:", "  pid 100 [orphaned]"]);
    assert_eq!(lines[4], "     pid 101 [orphaned]");
    assert_eq!(lines[44], format!("  {}pid 141 [orphaned]", "   ".repeat(41)));
}

#[test]
fn ages_read_like_people_say_them() {
    for (secs, text) in [
        (0.0, "0s"),
        (59.9, "59s"),
        (60.0, "1m"),
        (3599.0, "59m"),
        (3600.0, "1h"),
        (86_399.0, "23h"),
        (86_400.0, "1d"),
        (-5.0, "0s"),
    ] {
        assert_eq!(crate::present::age::coarse(secs), text, "{secs}");
    }
}

#[test]
fn extra_columns_go_before_command_and_age_is_filled() {
    let mut r = NsRow::new(NsType::Net, 10);
    r.command = Some("ip".into());
    let rows = [&r];
    let extra = Extra {
        age: Box::new(|_| Some("5m".into())),
        container: Box::new(|_| "docker:0123".into()),
        columns: vec![("CREATOR", Box::new(|_: &NsRow| "ip[7]".to_string()) as Box<dyn Fn(&NsRow) -> String>)],
    };
    let mut out = Vec::new();
    write_table_with(&mut out, &rows, &extra, Layout::default()).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "ID INODE TYPE STATE    TASKS HOLDERS OWNER PARENT AGE CREATOR NAME CONTAINER   COMMAND\n \
         -    10 net  orphaned     0 -       -     -      5m  ip[7]   -    docker:0123 ip\n"
    );
}

#[test]
fn an_empty_column_gives_way_before_any_text_is_cut() {
    let mut rows = sample_table().to_vec();
    for r in &mut rows {
        r.containers = Box::default();
    }
    let whole = fitted(&rows, Layout::default());
    let width = whole.lines().map(|l| l.chars().count()).max().unwrap();
    let text = fitted(&rows, Layout { width: Some(width - 5), color: false });
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "INODE", "TYPE", "STATE", "TASKS", "HOLDERS", "OWNER", "PARENT", "AGE", "NAME", "COMMAND"],
        "CONTAINER (all '-') went, nothing else:\n{text}"
    );
    assert!(!text.contains('…'), "{text}");
}

#[test]
fn only_the_state_column_is_coloured() {
    // A command and a netns name that read like states stay plain.
    let mut rows = sample_table().to_vec();
    rows[0].command = Some("orphaned".into());
    rows[0].names = vec!["active".to_string()].into();
    let text = fitted(&rows, Layout { width: None, color: true });
    let line = text.lines().nth(1).unwrap();
    assert_eq!(line.matches('\x1b').count(), 2, "only STATE painted: {line:?}");
    assert!(line.ends_with(" orphaned"), "{line:?}");
}

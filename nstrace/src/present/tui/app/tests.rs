use super::*;
use crate::time::UnixTime;
use crate::{
    containers::Container,
    model::Creator,
    model::NsRow,
    model::TaskHold,
    present::table::{command_text, container_text, name_text},
};

const NOW: f64 = 1_000_000.0;

fn ns(ty: NsType, inode: u64, state: NsState, tasks: usize, created: Option<f64>) -> Namespace {
    Namespace {
        row: NsRow { id: Some(inode + 1000), state, tasks: tasks as u32, ..NsRow::new(ty, inode) },
        created: created.map(UnixTime::from_secs),
        creator: None,
        first_seen: UnixTime::from_secs(created.unwrap_or(NOW - 100.0)),
        last_change: UnixTime::from_secs(NOW),
        destroyed: None,
        history: Default::default(),
        pins: Default::default(),
        seen_in: Default::default(),
    }
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        app.on_key(key(c));
    }
}

fn sample() -> App {
    let mut net = ns(NsType::Net, 10, NsState::Mounted, 0, Some(NOW - 5.0));
    net.row.names = vec!["blue".into()].into();
    net.row.holders =
        vec![Holder::Mount { path: "/run/netns/blue".into(), mnt_ns: 1, via_pid: 1, stack: Default::default() }].into();
    let mut uts = ns(NsType::Uts, 20, NsState::Active, 1, Some(NOW - 1.0));
    uts.row.command = Some("sleep".into());
    uts.row.holders = vec![Holder::Task { pid: 7, comm: "sleep".into(), hold: TaskHold::Member, tid: None }].into();
    let mut init_net = ns(NsType::Net, 30, NsState::Active, 90, None);
    init_net.row.command = Some("systemd".into());
    init_net.row.containers = vec![Container {
        runtime: crate::containers::Runtime::Docker,
        id: "ab".repeat(32),
        pod_uid: Some("0123-pod-uid".into()),
    }]
    .into();
    init_net.row.holders = vec![Holder::Fd { pid: 99, fd: 4, comm: "containerd".into() }].into();
    let mut dead = ns(NsType::Ipc, 40, NsState::Active, 0, Some(NOW - 30.0));
    dead.destroyed = Some(UnixTime::from_secs(NOW - 2.0));
    let pid = ns(NsType::Pid, 50, NsState::Orphaned, 3, None);
    let mut app = App::default();
    app.set_view(View {
        rows: vec![pid, dead, init_net, uts, net],
        now: UnixTime::from_secs(NOW),
        ..Default::default()
    });
    app
}

fn inodes(app: &App) -> Vec<u64> {
    app.visible().map(|r| r.row.inode).collect()
}

#[test]
fn default_sort_is_youngest_first_unknown_ages_last() {
    let app = sample();
    // The destroyed ipc 40 (30 s old) comes after every live row.
    assert_eq!(inodes(&app), vec![20, 10, 30, 50, 40]);
    assert_eq!(app.selected().unwrap().row.inode, 20);
}

#[test]
fn s_cycles_sort_keys_and_r_reverses() {
    let mut app = sample();
    app.on_key(key('s'));
    assert_eq!(app.sort, SortKey::Type);
    assert_eq!(inodes(&app), vec![10, 30, 20, 50, 40]);
    app.on_key(key('s'));
    assert_eq!(app.sort, SortKey::State);
    // active (net 30, uts 20), mounted, orphaned, destroyed last
    assert_eq!(inodes(&app), vec![30, 20, 10, 50, 40]);
    app.on_key(key('s'));
    assert_eq!(app.sort, SortKey::Tasks);
    assert_eq!(inodes(&app), vec![30, 50, 20, 10, 40]);
    app.on_key(key('r'));
    assert_eq!(inodes(&app), vec![10, 20, 50, 30, 40], "reversed, destroyed still last");
    app.on_key(key('s'));
    assert_eq!(app.sort, SortKey::Age);
}

#[test]
fn t_cycles_type_filter_through_every_type_and_back() {
    let mut app = sample();
    assert_eq!(app.type_filter, None);
    app.on_key(key('t'));
    assert_eq!(app.type_filter, Some(NsType::Net));
    assert_eq!(inodes(&app), vec![10, 30]);
    assert!(app.filter_text().starts_with("type=net "));
    let mut seen = vec![NsType::Net];
    for _ in 0..7 {
        app.on_key(key('t'));
        seen.push(app.type_filter.unwrap());
    }
    assert_eq!(seen, NsType::ALL.to_vec());
    app.on_key(key('t'));
    assert_eq!(app.type_filter, None);
    assert_eq!(app.visible_len(), 5);
}

#[test]
fn big_s_cycles_state_filter_including_destroyed() {
    let mut app = sample();
    app.on_key(key('S'));
    assert_eq!(app.state_filter, Some(RowState::Active));
    assert_eq!(inodes(&app), vec![20, 30]);
    app.on_key(key('S'));
    assert_eq!(inodes(&app), vec![10]);
    app.on_key(key('S'));
    assert_eq!(app.state_filter, Some(RowState::FdOnly));
    assert_eq!(app.visible_len(), 0);
    assert!(app.selected().is_none());
    app.on_key(key('S'));
    assert_eq!(inodes(&app), vec![50]);
    app.on_key(key('S'));
    assert_eq!(app.state_filter, Some(RowState::Inactive));
    assert_eq!(app.visible_len(), 0);
    app.on_key(key('S'));
    assert_eq!(app.state_filter, Some(RowState::Dying));
    assert_eq!(app.visible_len(), 0);
    app.on_key(key('S'));
    assert_eq!(app.state_filter, Some(RowState::Destroyed));
    assert_eq!(inodes(&app), vec![40]);
    app.on_key(key('S'));
    assert_eq!(app.state_filter, None);
}

#[test]
fn search_types_text_enter_applies_esc_cancels() {
    let mut app = sample();
    app.on_key(key('/'));
    typed(&mut app, "blux");
    app.on_key(code(KeyCode::Backspace));
    app.on_key(key('e'));
    assert_eq!(app.input.as_deref(), Some("blue"));
    // Keys typed into the search do not act as commands.
    assert!(!app.quit);
    assert_eq!(inodes(&app), vec![10], "applied as typed");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.input, None);
    assert_eq!(app.search, "blue");
    assert_eq!(inodes(&app), vec![10]);
    assert_eq!(app.selected().unwrap().row.inode, 10);
    // Esc while typing puts back the search from before `/`.
    app.on_key(key('/'));
    typed(&mut app, "zzz");
    assert_eq!(app.visible_len(), 0);
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.input, None);
    assert_eq!(app.search, "blue");
    assert_eq!(inodes(&app), vec![10]);
    // Esc outside the prompt clears the search.
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.search, "");
    assert_eq!(app.visible_len(), 5);
}

#[test]
fn search_covers_command_names_holder_comms_and_numbers() {
    let app = sample();
    let find = |s: &str| -> Vec<u64> {
        let mut v: Vec<u64> = app.view.rows.iter().filter(|r| search_matches(r, s)).map(|r| r.row.inode).collect();
        v.sort();
        v
    };
    assert_eq!(find("SLEEP"), vec![20]);
    assert_eq!(find("blue"), vec![10]);
    assert_eq!(find("containerd"), vec![30], "fd holder's comm");
    assert_eq!(find("/run/netns"), vec![10], "mount path");
    assert_eq!(find("docker:abab"), vec![30], "container");
    assert_eq!(find("pod-uid"), vec![30], "pod");
    assert_eq!(find("30"), vec![30], "inode (exact)");
    assert_eq!(find("1050"), vec![50], "id (exact)");
    assert_eq!(find(""), vec![10, 20, 30, 40, 50]);
}

#[test]
fn enter_toggles_detail_q_quits_help_swallows_keys() {
    let mut app = sample();
    app.on_key(code(KeyCode::Enter));
    assert!(app.detail);
    app.on_key(code(KeyCode::Enter));
    assert!(!app.detail);
    app.on_key(key('?'));
    assert!(app.help);
    app.on_key(key('t'));
    assert!(!app.help, "any key closes help");
    assert_eq!(app.type_filter, None, "and does nothing else");
    app.on_key(key('p'));
    assert!(app.paused);
    app.on_key(key('q'));
    assert!(app.quit);
    let mut app = sample();
    app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit, "Ctrl-C quits in raw mode");
}

#[test]
fn detail_needs_a_selection() {
    let mut app = App::default();
    app.on_key(code(KeyCode::Enter));
    assert!(!app.detail);
}

#[test]
fn movement_and_paging_clamp_and_scroll() {
    let mut app = sample();
    app.set_page(2);
    app.on_key(key('j'));
    app.on_key(code(KeyCode::Down));
    assert_eq!(app.cursor, 2);
    assert_eq!(app.offset, 1);
    app.on_key(code(KeyCode::PageDown));
    assert_eq!(app.cursor, 4);
    app.on_key(code(KeyCode::Down));
    assert_eq!(app.cursor, 4, "clamped at the end");
    assert_eq!(app.offset, 3);
    app.on_key(code(KeyCode::PageUp));
    app.on_key(key('k'));
    assert_eq!(app.cursor, 1);
    app.on_key(code(KeyCode::Up));
    app.on_key(code(KeyCode::Up));
    assert_eq!((app.cursor, app.offset), (0, 0));
    app.on_key(key('G'));
    assert_eq!(app.selected().unwrap().row.inode, 40, "the destroyed row is last");
    app.on_key(key('g'));
    assert_eq!(app.selected().unwrap().row.inode, 20);
}

#[test]
fn selection_follows_the_namespace_across_refreshes() {
    let mut app = sample();
    app.on_key(key('j'));
    assert_eq!(app.selected().unwrap().row.inode, 10);
    // A new, younger namespace appears at the top.
    let mut rows = app.view.rows.clone();
    rows.push(ns(NsType::Mnt, 60, NsState::Active, 1, Some(NOW - 0.5)));
    app.set_view(View { rows, now: UnixTime::from_secs(NOW), ..Default::default() });
    assert_eq!(inodes(&app)[0], 60);
    assert_eq!(app.selected().unwrap().row.inode, 10);
    // The selected one goes away: the cursor stays at its place.
    let rows: Vec<Namespace> = app.view.rows.iter().filter(|r| r.row.inode != 10).cloned().collect();
    app.set_view(View { rows, now: UnixTime::from_secs(NOW), ..Default::default() });
    assert_eq!(app.cursor, 2);
    assert_eq!(app.selected().unwrap().row.inode, 30);
}

#[test]
fn owner_and_parent_chains_walk_to_the_root() {
    let mut root = ns(NsType::User, 1, NsState::Active, 100, None);
    root.row.command = Some("systemd".into());
    let mut mid = ns(NsType::User, 2, NsState::Active, 1, None);
    mid.row.owner = Some(1);
    mid.row.parent = Some(1);
    let mut leaf = ns(NsType::User, 3, NsState::Active, 1, None);
    leaf.row.owner = Some(2);
    leaf.row.parent = Some(2);
    let mut net = ns(NsType::Net, 4, NsState::Active, 1, None);
    net.row.owner = Some(3);
    let mut pid_root = ns(NsType::Pid, 5, NsState::Active, 1, None);
    pid_root.row.owner = Some(1);
    let mut pid = ns(NsType::Pid, 6, NsState::Active, 1, None);
    pid.row.owner = Some(3);
    pid.row.parent = Some(5);
    let mut lost = ns(NsType::Uts, 7, NsState::Active, 1, None);
    lost.row.owner = Some(999);
    let mut app = App::default();
    app.set_view(View {
        rows: vec![root, mid, leaf, net.clone(), pid_root, pid.clone(), lost.clone()],
        now: UnixTime::from_secs(NOW),
        ..Default::default()
    });
    let inos = |c: Vec<(u64, Option<&Namespace>)>| c.into_iter().map(|(i, r)| (i, r.is_some())).collect::<Vec<_>>();
    assert_eq!(inos(app.owner_chain(&net)), vec![(3, true), (2, true), (1, true)]);
    assert_eq!(inos(app.parent_chain(&pid)), vec![(5, true)]);
    assert_eq!(inos(app.owner_chain(&lost)), vec![(999, false)]);
    assert!(app.parent_chain(&net).is_empty());
}

#[test]
fn chains_stop_on_loops() {
    let mut a = ns(NsType::User, 1, NsState::Active, 1, None);
    a.row.owner = Some(2);
    let mut b = ns(NsType::User, 2, NsState::Active, 1, None);
    b.row.owner = Some(1);
    let mut app = App::default();
    app.set_view(View { rows: vec![a.clone(), b], now: UnixTime::from_secs(NOW), ..Default::default() });
    assert_eq!(app.owner_chain(&a).len(), 2);
}

#[test]
fn initial_filters_and_texts() {
    let mut app = App::new(Some(NsType::Uts), Some(RowState::Active));
    let s = sample();
    app.set_view(s.view.clone());
    assert_eq!(inodes(&app), vec![20]);
    assert_eq!(app.filter_text(), "type=uts state=active search=-");
    assert_eq!(app.sort_text(), "age");
    app.on_key(key('c'));
    assert_eq!(app.visible_len(), 5);
}

#[test]
fn ages_and_commands() {
    assert_eq!(crate::present::age::fine(None), "-");
    assert_eq!(crate::present::age::fine(Some(42.7)), "42s");
    assert_eq!(crate::present::age::fine(Some(187.0)), "3m07s");
    assert_eq!(crate::present::age::fine(Some(7500.0)), "2h05m");
    assert_eq!(crate::present::age::fine(Some(3.0 * 86_400.0 + 4.0 * 3600.0)), "3d04h");
    let app = sample();
    let net = app.lookup(NsType::Net, 10).unwrap();
    assert_eq!((command_text(&net.row), name_text(&net.row)), ("-".into(), "blue".into()));
    let init = &app.lookup(NsType::Net, 30).unwrap().row;
    assert_eq!((command_text(init), container_text(init)), ("systemd".into(), "docker:abababababab".into()));
    let mut with_creator = net.clone();
    with_creator.creator = Some(Box::new(Creator {
        pid: 1,
        tid: 1,
        comm: "ip".into(),
        cause: crate::events::Cause::Unshare,
        flags: 0,
        origin: Default::default(),
    }));
    assert!(search_matches(&with_creator, "ip"));
}

#[test]
fn a_live_row_wins_over_a_destroyed_one_with_its_inode() {
    // The kernel reused inode 10: a destroyed net 10 and a live one.
    let mut dead = ns(NsType::Net, 10, NsState::Active, 0, Some(NOW - 50.0));
    dead.destroyed = Some(UnixTime::from_secs(NOW - 20.0));
    let live = ns(NsType::Net, 10, NsState::Mounted, 0, Some(NOW - 5.0));
    for rows in [vec![dead.clone(), live.clone()], vec![live.clone(), dead.clone()]] {
        let mut app = App::default();
        app.set_view(View { rows, now: UnixTime::from_secs(NOW), ..Default::default() });
        let found = app.lookup(NsType::Net, 10).unwrap();
        assert!(found.destroyed.is_none(), "the live one, in either order");
    }
    // Only a destroyed one: it is found.
    let mut app = App::default();
    app.set_view(View { rows: vec![dead], now: UnixTime::from_secs(NOW), ..Default::default() });
    assert!(app.lookup(NsType::Net, 10).unwrap().destroyed.is_some());
}

#[test]
fn a_filter_that_hides_the_selection_puts_the_cursor_on_top() {
    let mut app = sample();
    app.on_key(key('G'));
    assert_eq!(app.cursor, 4);
    // type=net: the selected ipc row is gone; the cursor goes to the top.
    app.on_key(key('t'));
    assert_eq!(app.type_filter, Some(NsType::Net));
    assert_eq!((app.cursor, app.selected().unwrap().row.inode), (0, 10));
    // A refresh without the selected row keeps the cursor's place instead.
    app.on_key(key('c'));
    app.on_key(key('G'));
    let rows: Vec<Namespace> = app.view.rows.iter().filter(|r| r.row.inode != 40).cloned().collect();
    app.set_view(View { rows, now: UnixTime::from_secs(NOW), ..Default::default() });
    assert_eq!(app.cursor, 3, "clamped to the last row, not sent to the top");
}

#[test]
fn q_in_the_help_quits_any_other_key_closes_it() {
    let mut app = sample();
    app.on_key(key('?'));
    assert!(app.help);
    app.on_key(key('s'));
    assert!(!app.help && !app.quit);
    assert_eq!(app.sort, SortKey::Age, "the key only closed the help");
    app.on_key(key('?'));
    app.on_key(key('q'));
    assert!(app.quit);
}

#[test]
fn search_matches_the_command_alone() {
    let mut lone = ns(NsType::Uts, 70, NsState::Active, 1, None);
    lone.row.command = Some("xyzzy".into());
    assert!(search_matches(&lone, "XYZ"), "the command, case-insensitive, with no holder or name");
    assert!(!search_matches(&lone, "plugh"));
}

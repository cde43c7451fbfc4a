//! The drawing at the sizes people use, on ratatui's test backend.

use crate::time::UnixTime;
use nstrace_common::ns::NsType;
use ratatui::{Terminal, backend::TestBackend};

use super::*;
use crate::{
    model::{NsRow, NsState},
    monitor::Totals,
    present::tui::app::View,
    store::Counts,
};

const NOW: f64 = 1_000_000.0;

fn ns(ty: NsType, inode: u64, state: NsState, tasks: u32) -> Namespace {
    Namespace {
        row: NsRow { id: Some(inode - 4026531000), state, tasks, ..NsRow::new(ty, inode) },
        created: Some(UnixTime::from_secs(NOW - 5.0)),
        creator: None,
        first_seen: UnixTime::from_secs(NOW - 5.0),
        last_change: UnixTime::from_secs(NOW),
        destroyed: None,
        history: Default::default(),
        pins: Default::default(),
        seen_in: Default::default(),
    }
}

fn app() -> App {
    let mut net = ns(NsType::Net, 4026532301, NsState::Mounted, 0);
    net.row.names = vec!["a-rather-long-netns-name".into()].into();
    net.row.owner = Some(4026531837);
    net.row.holders = vec![Holder::Mount {
        path: "/run/netns/a-rather-long-netns-name".into(),
        mnt_ns: 1,
        via_pid: 1,
        stack: Default::default(),
    }]
    .into();
    let mut uts = ns(NsType::Uts, 4026532302, NsState::Active, 1);
    uts.row.command = Some("a-long-command-name-for-a-daemon".into());
    uts.row.owner = Some(4026531837);
    let totals = Totals {
        counts: Counts {
            by_type: vec![(NsType::Net, 1), (NsType::Uts, 1)],
            by_state: vec![(NsState::Active, 1), (NsState::Mounted, 1)],
            live: 2,
            destroyed_shown: 0,
            evicted: 0,
        },
        created_rate: 0.0,
        destroyed_rate: 0.0,
    };
    let mut app = App::default();
    app.mechanisms = "create fexit-ns-tree · destroy fentry-ns-tree · snapshot tree-walk".into();
    app.set_view(View { rows: vec![net, uts], totals, now: UnixTime::from_secs(NOW), lost: 3, ..Default::default() });
    app
}

fn screen(app: &mut App, width: u16, height: u16) -> Vec<String> {
    let mut term = Terminal::new(TestBackend::new(width, height)).unwrap();
    term.draw(|f| draw(f, app)).unwrap();
    let buf = term.backend().buffer().clone();
    (0..height)
        .map(|y| (0..width).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>().trim_end().to_string())
        .collect()
}

#[test]
fn at_80_columns_the_header_keeps_what_matters_and_numbers_stay_whole() {
    let mut app = app();
    app.paused = true;
    let lines = screen(&mut app, 80, 24);
    let all = lines.join("\n");
    assert!(lines[0].starts_with("nstrace live │ PAUSED │ 2 namespaces"), "{all}");
    assert!(!lines[0].contains("fexit-ns-tree"), "the mechanisms go first in a narrow window:\n{all}");
    assert!(lines[1].contains("lost 3") && lines[1].contains("type=all state=all search=-"), "{all}");
    for inode in ["4026532301", "4026532302"] {
        assert!(all.contains(inode), "{inode} whole:\n{all}");
    }
    assert!(all.contains(" a-rathe… "), "long text is cut visibly:\n{all}");
    let header = lines.iter().find(|l| l.contains("INODE")).unwrap();
    for h in ["INODE", "TYPE", "STATE", "TASKS", "HOLDERS", "NAME", "COMMAND"] {
        assert!(header.contains(h), "{h} in {header}");
    }
    assert!(!header.contains("CONTAINER"), "an empty column gives way first: {header}");
}

#[test]
fn a_wide_window_shows_everything_uncut() {
    let mut app = app();
    let lines = screen(&mut app, 200, 24);
    let all = lines.join("\n");
    assert!(lines[0].contains("create fexit-ns-tree · destroy fentry-ns-tree"), "{all}");
    assert!(!lines[0].contains("PAUSED"), "{all}");
    assert!(all.contains("a-rather-long-netns-name") && all.contains("a-long-command-name-for-a-daemon"), "{all}");
    assert!(!all.contains('…'), "{all}");
    let header = lines.iter().find(|l| l.contains("INODE")).unwrap();
    assert!(header.contains("OWNER") && header.contains("ID") && header.contains("AGE"), "{header}");
}

/// The keys' help fits an 80-column terminal inside its frame, and is the
/// text `live --help` shows (one text, two places).
#[test]
fn the_keys_help_fits_80_columns() {
    let help = crate::present::tui::KEYS_HELP;
    for line in help.lines() {
        assert!(line.chars().count() <= 76, "{} columns: {line:?}", line.chars().count());
    }
    assert!(help.starts_with("Keys:\n") && help.contains("  ?           this help"), "{help}");
}

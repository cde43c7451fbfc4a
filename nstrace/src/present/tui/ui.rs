//! Drawing of `nstrace live`: header, table, detail pane, event feed,
//! footer and the help overlay. No state changes here besides telling the
//! app how many table rows fit.

use crate::present::escape::text as esc;
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Row, Table, TableState, Wrap},
};

use super::app::{App, RowState};
use crate::{
    model::Namespace,
    model::{Holder, TaskHold},
    present::columns::{Col, Give, cell_width, clip, fit, fit_segments},
    present::render::{clock_time, event_text},
    present::table::{command_text, container_text, holders_summary, name_text},
};

/// The table's columns; in a narrow window text is cut first, then OWNER,
/// ID and AGE are left out (numbers are never cut).
const COLUMNS: [Col; 11] = [
    Col::right("ID", Give::Drop(2)),
    Col::right("INODE", Give::Keep),
    Col::left("TYPE", Give::Keep),
    Col::left("STATE", Give::Keep),
    Col::right("TASKS", Give::Keep),
    Col::left("HOLDERS", Give::Truncate(10)),
    Col::left("OWNER", Give::Drop(3)),
    Col::left("AGE", Give::Drop(1)),
    Col::left("NAME", Give::Truncate(6)),
    Col::left("CONTAINER", Give::Truncate(10)),
    Col::left("COMMAND", Give::Truncate(8)),
];

/// Tasks listed in the detail pane before "... N more".
const DETAIL_TASKS: usize = 20;

pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let feed_height = (area.height / 5).clamp(3, 12);
    let [header, main, feed, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(feed_height),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(f, app, header);
    let (table_area, detail_area) = if app.detail {
        let split = if main.width >= 150 {
            Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).split(main)
        } else {
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).split(main)
        };
        (split[0], Some(split[1]))
    } else {
        (main, None)
    };
    // Borders (2) and the column header (1).
    app.set_page(table_area.height.saturating_sub(3) as usize);
    draw_table(f, app, table_area);
    if let Some(d) = detail_area {
        draw_detail(f, app, d);
    }
    draw_feed(f, app, feed);
    draw_footer(f, app, footer);
    if app.help {
        draw_help(f, area);
    }
}

/// The separator between header segments: narrower in a narrow window.
fn sep(wide: bool) -> Span<'static> {
    Span::styled(if wide { "  │  " } else { " │ " }, Style::default().fg(Color::DarkGray))
}

/// One header line from segments ranked by how soon they may go (0: never;
/// higher ranks first): what does not fit in `width` is left out whole,
/// never cut in the middle of a number.
fn header_line(segments: Vec<(u8, Vec<Span<'static>>)>, width: usize) -> Line<'static> {
    let wide = width >= 120;
    let widths: Vec<usize> =
        segments.iter().map(|(_, spans)| spans.iter().map(|s| cell_width(&s.content)).sum()).collect();
    let ranks: Vec<u8> = segments.iter().map(|(r, _)| *r).collect();
    let keep = fit_segments(&widths, &ranks, cell_width(&sep(wide).content), width);
    let mut line = Vec::new();
    for ((_, spans), kept) in segments.into_iter().zip(keep) {
        if kept {
            if !line.is_empty() {
                line.push(sep(wide));
            }
            line.extend(spans);
        }
    }
    Line::from(line)
}

fn draw_header(f: &mut Frame, app: &App, area: Rect) {
    let v = &app.view;
    let t = &v.totals;
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut count = vec![Span::styled(format!("{} namespaces", t.counts.live), bold)];
    if t.counts.destroyed_shown > 0 {
        count.push(Span::raw(format!(" (+{} destroyed)", t.counts.destroyed_shown)));
    }
    let mut l1 = vec![(0, vec![Span::styled("nstrace live", bold.fg(Color::Cyan))])];
    if app.paused {
        l1.push((0, vec![Span::styled("PAUSED", bold.fg(Color::Black).bg(Color::Yellow))]));
    }
    let types: Vec<String> = t.counts.by_type.iter().map(|(ty, n)| format!("{} {n}", ty.name())).collect();
    l1.extend([
        (0, count),
        (2, vec![Span::raw(types.join("  "))]),
        (4, vec![Span::raw(app.mechanisms.clone())]),
        (3, vec![Span::raw(format!("refresh {:.1} ms", v.refresh_micros as f64 / 1000.0))]),
    ]);
    let states: Vec<String> = t.counts.by_state.iter().map(|(s, n)| format!("{} {n}", s.name())).collect();
    let lost_style = if v.lost > 0 { bold.fg(Color::Red) } else { Style::default() };
    let l2 = vec![
        (2, vec![Span::raw(states.join("  "))]),
        (3, vec![Span::raw(format!("created {:.1}/s  destroyed {:.1}/s", t.created_rate, t.destroyed_rate))]),
        (0, vec![Span::styled(format!("lost {}", v.lost), lost_style)]),
        (1, vec![Span::raw(format!("sort: {}", app.sort_text()))]),
        (0, vec![Span::raw(app.filter_text())]),
    ];
    let width = area.width as usize;
    f.render_widget(Paragraph::new(vec![header_line(l1, width), header_line(l2, width)]), area);
}

fn cells(ns: &Namespace, now: crate::time::UnixTime) -> [String; 11] {
    let r = &ns.row;
    [
        r.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
        r.inode.to_string(),
        r.ns_type.name().into(),
        RowState::of(ns).name().into(),
        r.tasks.to_string(),
        holders_summary(r),
        r.owner.map(|o| o.to_string()).unwrap_or_else(|| "-".into()),
        crate::present::age::fine(ns.age(now)),
        name_text(r),
        container_text(r),
        command_text(r),
    ]
}

fn draw_table(f: &mut Frame, app: &App, area: Rect) {
    let page = app.page;
    let now = app.view.now;
    let shown: Vec<(&Namespace, [String; 11])> =
        app.visible().skip(app.offset).take(page).map(|ns| (ns, cells(ns, now))).collect();
    let mut natural: [usize; 11] = COLUMNS.map(|c| cell_width(c.header));
    let mut empty = [true; 11];
    for (_, c) in &shown {
        for (i, s) in c.iter().enumerate() {
            natural[i] = natural[i].max(cell_width(s));
            empty[i] &= s == "-";
        }
    }
    // Inside the borders.
    let widths = fit(&COLUMNS, &natural, &empty, Some(area.width.saturating_sub(2) as usize));
    let kept: Vec<(usize, usize)> = widths.iter().enumerate().filter_map(|(i, w)| w.map(|w| (i, w))).collect();
    let constraints: Vec<Constraint> = kept
        .iter()
        .enumerate()
        .map(|(n, &(_, w))| if n + 1 == kept.len() { Constraint::Fill(1) } else { Constraint::Length(w as u16) })
        .collect();
    let row_of = |c: &[String; 11]| -> Row<'static> {
        Row::new(kept.iter().map(|&(i, w)| clip(&c[i], w).into_owned()).collect::<Vec<_>>())
    };
    let rows = shown.iter().map(|(ns, c)| {
        let row = row_of(c);
        match RowState::of(ns) {
            RowState::Destroyed => row.style(Style::default().fg(Color::DarkGray).add_modifier(Modifier::DIM)),
            RowState::Orphaned | RowState::Inactive => row.style(Style::default().fg(Color::Yellow)),
            RowState::Dying => row.style(Style::default().fg(Color::Magenta)),
            _ => row,
        }
    });
    let header = Row::new(kept.iter().map(|&(i, _)| COLUMNS[i].header).collect::<Vec<_>>());
    let title = format!(
        " namespaces: {} shown{} ",
        app.visible_len(),
        if app.visible_len() > page {
            format!(", {}-{}", app.offset + 1, (app.offset + page).min(app.visible_len()))
        } else {
            String::new()
        }
    );
    let table = Table::new(rows, constraints)
        .header(header.style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)))
        .block(Block::bordered().title(title))
        .column_spacing(1)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default();
    if app.visible_len() > 0 {
        state.select(Some(app.cursor.saturating_sub(app.offset)));
    }
    f.render_stateful_widget(table, area, &mut state);
}

fn chain_text(chain: &[(u64, Option<&Namespace>)], ty: &str) -> String {
    let mut parts: Vec<String> = chain
        .iter()
        .map(|(inode, row)| match row {
            Some(r) => format!(
                "{ty} {inode} [{}]{}",
                RowState::of(r).name(),
                r.row.command.as_deref().map(|c| format!(" {}", esc(c))).unwrap_or_default()
            ),
            None => format!("{ty} {inode} (not listed)"),
        })
        .collect();
    if chain.last().is_some_and(|(_, r)| r.is_some()) {
        parts.push("root".into());
    }
    parts.join(" → ")
}

fn detail_lines<'a>(app: &App, ns: &Namespace) -> Vec<Line<'a>> {
    let r = &ns.row;
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{} {}", r.ns_type.name(), r.inode), bold),
        Span::raw(format!(
            "  id {}  [{}]",
            r.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            RowState::of(ns).name()
        )),
    ])];
    let mut facts = Vec::new();
    if let Some(rc) = r.refcount {
        facts.push(format!("refcount {rc}"));
    }
    if let Some(l) = r.level {
        facts.push(format!("level {l}"));
    }
    facts.push(format!("tasks {}", r.tasks));
    facts.push(format!("age {}", crate::present::age::fine(ns.age(app.view.now))));
    if let Some(d) = &r.dying {
        facts.push(format!("dying {} ({})", crate::present::age::fine(Some(d.age(app.view.now))), d.stage.name()));
    }
    if !r.names.is_empty() {
        facts.push(format!("ip netns {}", esc(&r.names.join(","))));
    }
    out.push(Line::from(facts.join("  ")));
    if let Some(n) = r.shared_by() {
        out.push(Line::from(format!("shared by {n} container(s) and {} host process(es)", r.host_tasks)));
    }
    for c in &r.containers {
        let pod = c.pod_uid.as_deref().map(|p| format!(" (pod uid {p})")).unwrap_or_default();
        out.push(Line::from(esc(&format!("container {} {}{pod}", c.runtime, c.id)).into_owned()));
    }
    match (&ns.created, &ns.creator) {
        (Some(t), Some(c)) => out.push(Line::from(format!(
            "created {} by {}[{}] via {}{}",
            clock_time(*t),
            esc(&c.comm),
            c.pid,
            c.cause,
            if c.flags != 0 { format!(" ({})", crate::events::flags_text(c.flags)) } else { String::new() }
        ))),
        (Some(t), None) => out.push(Line::from(format!("created {} (creator unknown)", clock_time(*t)))),
        _ => out.push(Line::from(format!("created before nstrace started (first seen {})", clock_time(ns.first_seen)))),
    }
    if let Some(d) = ns.destroyed {
        out.push(Line::styled(format!("destroyed {}", clock_time(d)), Style::default().fg(Color::Red)));
    }
    out.push(Line::from(""));
    out.push(Line::styled("holders:", bold));
    let mut n_tasks = 0;
    let mut extra_tasks = 0;
    for h in r.holders.iter().filter(|h| !matches!(h, Holder::Task { .. })) {
        out.push(Line::from(match h {
            Holder::Fd { pid, fd, comm } => format!("  fd    {pid}:{fd} ({})", esc(comm)),
            Holder::Socket { pid, fd, comm, socket } => {
                format!("  socket {pid}:{fd} ({}) socket:[{socket}]", esc(comm))
            }
            Holder::Mount { path, mnt_ns, via_pid, .. } => {
                format!("  mount {} (mnt ns {mnt_ns}, via pid {via_pid})", esc(path))
            }
            Holder::Task { .. } => unreachable!(),
        }));
    }
    for h in &r.holders {
        if let Holder::Task { pid, comm, hold, .. } = h {
            if n_tasks >= DETAIL_TASKS {
                extra_tasks += 1;
                continue;
            }
            n_tasks += 1;
            let hold = match hold {
                TaskHold::Member => "member",
                TaskHold::PidForChildren => "pid_for_children",
                TaskHold::TimeForChildren => "time_for_children",
            };
            out.push(Line::from(format!("  task  {pid} {} ({hold})", esc(comm))));
        }
    }
    if extra_tasks > 0 {
        out.push(Line::from(format!("  ... {extra_tasks} more tasks")));
    }
    if r.holders.is_empty() {
        out.push(Line::from("  none seen (kernel references only)"));
    }
    out.push(Line::from(""));
    let owners = app.owner_chain(ns);
    out.push(Line::from(vec![
        Span::styled("owner:  ", bold),
        Span::raw(if owners.is_empty() { "- (root)".to_string() } else { chain_text(&owners, "user") }),
    ]));
    let parents = app.parent_chain(ns);
    if !parents.is_empty() || r.level.is_some() {
        out.push(Line::from(vec![
            Span::styled("parent: ", bold),
            Span::raw(if parents.is_empty() { "- (root)".to_string() } else { chain_text(&parents, r.ns_type.name()) }),
        ]));
    }
    out.push(Line::from(""));
    out.push(Line::styled("recent events:", bold));
    if ns.history.is_empty() {
        out.push(Line::from("  none seen"));
    }
    for e in ns.history.iter() {
        out.push(Line::from(format!("  {}", event_text(e))));
    }
    out
}

fn draw_detail(f: &mut Frame, app: &App, area: Rect) {
    let lines = match app.selected() {
        Some(ns) => detail_lines(app, ns),
        None => vec![Line::from("no namespace selected")],
    };
    let p = Paragraph::new(lines).block(Block::bordered().title(" detail (Enter closes) ")).wrap(Wrap { trim: false });
    f.render_widget(p, area);
}

fn draw_feed(f: &mut Frame, app: &App, area: Rect) {
    let room = area.height.saturating_sub(2) as usize;
    let feed = &app.view.feed;
    let lines: Vec<Line> = feed[feed.len().saturating_sub(room)..].iter().map(|s| Line::from(s.as_str())).collect();
    let p = Paragraph::new(lines).block(Block::bordered().title(" events (newest last) "));
    f.render_widget(p, area);
}

fn draw_footer(f: &mut Frame, app: &App, area: Rect) {
    let key = Style::default().fg(Color::Black).bg(Color::Cyan);
    let line = match &app.input {
        Some(text) => Line::from(vec![
            Span::styled("/", key),
            Span::raw(format!("{text}▏")),
            Span::styled("  Enter", key),
            Span::raw(" keep "),
            Span::styled("Esc", key),
            Span::raw(" cancel"),
        ]),
        None => {
            let mut spans = Vec::new();
            for (k, what) in [
                ("q", "quit"),
                ("/", "search"),
                ("s", "sort"),
                ("t", "type"),
                ("S", "state"),
                ("Enter", "detail"),
                ("p", "pause"),
                ("?", "help"),
                ("↑↓ j k PgUp PgDn", "move"),
            ] {
                spans.push(Span::styled(k, key));
                spans.push(Span::raw(format!(" {what}  ")));
            }
            Line::from(spans)
        }
    };
    f.render_widget(Paragraph::new(line), area);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let text: Vec<&str> = crate::present::tui::KEYS_HELP.lines().skip(1).collect();
    let width = (text.iter().map(|l| l.chars().count()).max().unwrap_or(40) as u16 + 4).min(area.width);
    let height = (text.len() as u16 + 2).min(area.height);
    let popup = area.centered(Constraint::Length(width), Constraint::Length(height));
    f.render_widget(Clear, popup);
    let p = Paragraph::new(text.iter().map(|l| Line::from(*l)).collect::<Vec<_>>())
        .block(Block::bordered().title(" nstrace live: keys "));
    f.render_widget(p, popup);
}

#[cfg(test)]
mod tests;

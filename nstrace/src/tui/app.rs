//! Everything `nstrace live` shows and every key it understands, as plain
//! state: no terminal here, so key handling, filtering and sorting are
//! unit-tested.

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use nstrace_common::ns::NsType;

use crate::{
    events::Clock,
    model::Holder,
    monitor::{LiveNs, Monitor, Totals},
    render::event_text,
    snapshot::NsState,
};

/// What the hooks and walks are: shown in the header.
pub const MECHANISM: &str = "tracepoints + tree walk";

/// Feed lines kept for the event pane.
const FEED_LINES: usize = 500;

/// Longest owner/parent chain followed (guards against loops).
const MAX_CHAIN: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Newest first; namespaces created before nstrace started last.
    Age,
    Type,
    State,
    /// Most tasks first.
    Tasks,
}

impl SortKey {
    pub const ALL: [SortKey; 4] = [SortKey::Age, SortKey::Type, SortKey::State, SortKey::Tasks];

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Age => "age",
            SortKey::Type => "type",
            SortKey::State => "state",
            SortKey::Tasks => "tasks",
        }
    }

    fn next(self) -> SortKey {
        let i = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[(i + 1) % SortKey::ALL.len()]
    }
}

/// A row's state as the table shows it: the snapshot state, or destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum RowState {
    Active,
    Mounted,
    FdOnly,
    Orphaned,
    /// Gone from the kernel; kept on screen for a while.
    Destroyed,
}

impl RowState {
    pub const ALL: [RowState; 5] =
        [RowState::Active, RowState::Mounted, RowState::FdOnly, RowState::Orphaned, RowState::Destroyed];

    pub fn of(ns: &LiveNs) -> RowState {
        if ns.destroyed.is_some() {
            return RowState::Destroyed;
        }
        match ns.row.state {
            NsState::Active => RowState::Active,
            NsState::Mounted => RowState::Mounted,
            NsState::FdOnly => RowState::FdOnly,
            NsState::Orphaned => RowState::Orphaned,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RowState::Active => "active",
            RowState::Mounted => "mounted",
            RowState::FdOnly => "fd-only",
            RowState::Orphaned => "orphaned",
            RowState::Destroyed => "destroyed",
        }
    }
}

/// Cycles all → first → ... → last → all.
fn cycle<T: Copy + PartialEq>(cur: Option<T>, all: &[T]) -> Option<T> {
    match cur {
        None => all.first().copied(),
        Some(c) => all.iter().position(|x| *x == c).and_then(|i| all.get(i + 1)).copied(),
    }
}

/// The data on screen (frozen while paused).
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Every row the monitor has, live and recently destroyed.
    pub rows: Vec<LiveNs>,
    /// Rendered event lines, oldest first.
    pub feed: Vec<String>,
    pub totals: Totals,
    pub lost: u64,
    pub refresh_micros: u64,
    /// Unix time the view was taken.
    pub now: f64,
}

/// All UI state of `nstrace live`.
#[derive(Debug)]
pub struct App {
    pub view: View,
    pub sort: SortKey,
    /// Reverse the sort's natural order.
    pub reverse: bool,
    pub type_filter: Option<NsType>,
    pub state_filter: Option<RowState>,
    /// The applied search (case-insensitive substring).
    pub search: String,
    /// Search text being typed (`/` ... Enter), if any.
    pub input: Option<String>,
    pub detail: bool,
    pub help: bool,
    pub paused: bool,
    pub quit: bool,
    /// Index into `visible` of the cursor.
    pub cursor: usize,
    /// First visible row of the table.
    pub offset: usize,
    /// Rows the table can show at once (set by the drawing code).
    pub page: usize,
    /// Key of the selected namespace, kept across refreshes.
    selected: Option<u64>,
    /// Indices into `view.rows` of the rows shown, in order.
    visible: Vec<usize>,
    /// (type, inode) -> index into `view.rows` (live rows win over destroyed ones).
    by_inode: HashMap<(NsType, u64), usize>,
}

impl Default for App {
    fn default() -> Self {
        App::new(None, None)
    }
}

impl App {
    pub fn new(type_filter: Option<NsType>, state_filter: Option<RowState>) -> App {
        App {
            view: View::default(),
            sort: SortKey::Age,
            reverse: false,
            type_filter,
            state_filter,
            search: String::new(),
            input: None,
            detail: false,
            help: false,
            paused: false,
            quit: false,
            cursor: 0,
            offset: 0,
            page: 20,
            selected: None,
            visible: Vec::new(),
            by_inode: HashMap::new(),
        }
    }

    /// Takes a fresh view from the monitor (callers skip this while paused).
    pub fn load(&mut self, m: &Monitor) {
        let feed = m.feed();
        let skip = feed.len().saturating_sub(FEED_LINES);
        let view = View {
            rows: m.rows().cloned().collect(),
            feed: feed.iter().skip(skip).map(event_text).collect(),
            totals: m.totals(),
            lost: m.stats().lost,
            refresh_micros: m.refresh_micros,
            now: m.clock().unix(Clock::now_boot_ns()),
        };
        self.set_view(view);
    }

    /// Replaces the data on screen, keeping the selection when it is still shown.
    pub fn set_view(&mut self, view: View) {
        self.view = view;
        self.by_inode.clear();
        for (i, r) in self.view.rows.iter().enumerate() {
            let k = (r.row.ns_type, r.row.inode);
            match self.by_inode.get(&k) {
                Some(&j) if self.view.rows[j].destroyed.is_none() => {}
                _ => {
                    self.by_inode.insert(k, i);
                }
            }
        }
        self.refilter(false);
    }

    /// Whether `ns` passes the type, state and search filters.
    pub fn matches(&self, ns: &LiveNs) -> bool {
        self.type_filter.is_none_or(|t| ns.row.ns_type == t)
            && self.state_filter.is_none_or(|s| RowState::of(ns) == s)
            && search_matches(ns, &self.search)
    }

    /// Recomputes the shown rows. The selected namespace stays selected when
    /// it is still shown; otherwise the cursor goes to the top (`reset`) or
    /// stays where it was.
    fn refilter(&mut self, reset: bool) {
        let mut vis: Vec<usize> = (0..self.view.rows.len()).filter(|&i| self.matches(&self.view.rows[i])).collect();
        let rows = &self.view.rows;
        let (sort, now) = (self.sort, self.view.now);
        vis.sort_by(|&a, &b| compare(&rows[a], &rows[b], sort, now));
        if self.reverse {
            vis.reverse();
        }
        self.visible = vis;
        let found = self.selected.and_then(|k| self.visible.iter().position(|&i| self.view.rows[i].key() == k));
        self.cursor = match found {
            Some(i) => i,
            None if reset => 0,
            None => self.cursor.min(self.visible.len().saturating_sub(1)),
        };
        self.sync_selection();
    }

    fn sync_selection(&mut self) {
        if self.visible.is_empty() {
            self.cursor = 0;
            self.offset = 0;
            // `selected` is kept so the row is picked again if it comes back.
            return;
        }
        self.cursor = self.cursor.min(self.visible.len() - 1);
        self.selected = Some(self.view.rows[self.visible[self.cursor]].key());
        self.scroll();
    }

    /// Keeps the cursor inside the visible page.
    fn scroll(&mut self) {
        let page = self.page.max(1);
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + page {
            self.offset = self.cursor + 1 - page;
        }
        let max_offset = self.visible.len().saturating_sub(page);
        self.offset = self.offset.min(max_offset);
    }

    /// Sets the number of table rows on screen (from the layout).
    pub fn set_page(&mut self, page: usize) {
        self.page = page.max(1);
        self.scroll();
    }

    /// The rows shown, in order.
    pub fn visible(&self) -> impl ExactSizeIterator<Item = &LiveNs> {
        self.visible.iter().map(|&i| &self.view.rows[i])
    }

    pub fn visible_len(&self) -> usize {
        self.visible.len()
    }

    /// The namespace under the cursor.
    pub fn selected(&self) -> Option<&LiveNs> {
        self.visible.get(self.cursor).map(|&i| &self.view.rows[i])
    }

    /// A row by type and inode (for owner/parent lookups).
    pub fn lookup(&self, ns_type: NsType, inode: u64) -> Option<&LiveNs> {
        self.by_inode.get(&(ns_type, inode)).map(|&i| &self.view.rows[i])
    }

    /// The owning user namespaces of `ns`, nearest first. Each entry is the
    /// inode and the row when listed; the walk stops at the root (no owner)
    /// or at an inode not in the table.
    pub fn owner_chain(&self, ns: &LiveNs) -> Vec<(u64, Option<&LiveNs>)> {
        self.chain(ns.row.owner, NsType::User, |r| r.row.owner)
    }

    /// The parent namespaces (pid and user namespaces), nearest first.
    pub fn parent_chain(&self, ns: &LiveNs) -> Vec<(u64, Option<&LiveNs>)> {
        self.chain(ns.row.parent, ns.row.ns_type, |r| r.row.parent)
    }

    fn chain(&self, first: Option<u64>, ty: NsType, up: fn(&LiveNs) -> Option<u64>) -> Vec<(u64, Option<&LiveNs>)> {
        let mut out = Vec::new();
        let mut next = first;
        while let Some(inode) = next {
            if out.len() >= MAX_CHAIN || out.iter().any(|(i, _)| *i == inode) {
                break;
            }
            let row = self.lookup(ty, inode);
            out.push((inode, row));
            next = row.and_then(up);
        }
        out
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.kind != KeyEventKind::Press {
            return;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d'))
        {
            self.quit = true;
            return;
        }
        if let Some(input) = self.input.as_mut() {
            match key.code {
                KeyCode::Enter => {
                    self.search = self.input.take().unwrap_or_default();
                    self.refilter(true);
                }
                KeyCode::Esc => self.input = None,
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Char(c) => input.push(c),
                _ => {}
            }
            return;
        }
        if self.help {
            match key.code {
                KeyCode::Char('q') => self.quit = true,
                _ => self.help = false,
            }
            return;
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('/') => self.input = Some(String::new()),
            KeyCode::Char('?') | KeyCode::F(1) => self.help = true,
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.refilter(false);
            }
            KeyCode::Char('r') => {
                self.reverse = !self.reverse;
                self.refilter(false);
            }
            KeyCode::Char('t') => {
                self.type_filter = cycle(self.type_filter, &NsType::ALL);
                self.refilter(true);
            }
            KeyCode::Char('S') => {
                self.state_filter = cycle(self.state_filter, &RowState::ALL);
                self.refilter(true);
            }
            KeyCode::Char('c') => {
                // Clear every filter.
                self.type_filter = None;
                self.state_filter = None;
                self.search.clear();
                self.refilter(false);
            }
            KeyCode::Char('p') | KeyCode::Char(' ') => self.paused = !self.paused,
            KeyCode::Enter => self.detail = !self.detail && self.selected().is_some(),
            KeyCode::Esc => {
                if self.detail {
                    self.detail = false;
                } else if !self.search.is_empty() {
                    self.search.clear();
                    self.refilter(false);
                }
            }
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::PageUp => self.move_by(-(self.page.max(1) as isize)),
            KeyCode::PageDown => self.move_by(self.page.max(1) as isize),
            KeyCode::Home | KeyCode::Char('g') => self.move_to(0),
            KeyCode::End | KeyCode::Char('G') => self.move_to(usize::MAX),
            _ => {}
        }
    }

    fn move_by(&mut self, delta: isize) {
        let target = self.cursor.saturating_add_signed(delta);
        self.move_to(target);
    }

    fn move_to(&mut self, index: usize) {
        if self.visible.is_empty() {
            return;
        }
        self.cursor = index.min(self.visible.len() - 1);
        self.sync_selection();
    }

    /// "type=net state=all search=foo" for the header.
    pub fn filter_text(&self) -> String {
        format!(
            "type={} state={} search={}",
            self.type_filter.map(|t| t.name()).unwrap_or("all"),
            self.state_filter.map(|s| s.name()).unwrap_or("all"),
            if self.search.is_empty() { "-" } else { &self.search }
        )
    }

    pub fn sort_text(&self) -> String {
        format!("{}{}", self.sort.name(), if self.reverse { " (reversed)" } else { "" })
    }
}

/// Case-insensitive match of the command, ip-netns names, holders' comms,
/// mount paths, containers (runtime:id, id, pod), the creator's comm, and
/// the id or inode (exactly).
pub fn search_matches(ns: &LiveNs, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let needle = needle.to_lowercase();
    let has = |s: &str| s.to_lowercase().contains(&needle);
    let row = &ns.row;
    row.command.as_deref().is_some_and(has)
        || row.names.iter().any(|n| has(n))
        || row.holders.iter().any(|h| match h {
            Holder::Task { comm, .. } | Holder::Fd { comm, .. } => has(comm),
            Holder::Mount { path, .. } => has(path),
        })
        || row.containers.iter().any(|c| has(&c.short()) || has(&c.id) || c.pod.as_deref().is_some_and(has))
        || ns.creator.as_ref().is_some_and(|c| has(&c.comm))
        || row.inode.to_string() == needle
        || row.id.is_some_and(|id| id.to_string() == needle)
}

fn compare(a: &LiveNs, b: &LiveNs, sort: SortKey, now: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let tie = || (a.row.ns_type, a.row.inode, a.row.id).cmp(&(b.row.ns_type, b.row.inode, b.row.id));
    match sort {
        SortKey::Age => {
            // Known ages, youngest first, then the unknown ones.
            match (a.age(now), b.age(now)) {
                (Some(x), Some(y)) => x.total_cmp(&y).then_with(tie),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => tie(),
            }
        }
        SortKey::Type => tie(),
        SortKey::State => RowState::of(a).cmp(&RowState::of(b)).then_with(tie),
        SortKey::Tasks => b.row.tasks.cmp(&a.row.tasks).then_with(tie),
    }
}

/// "42s", "3m07s", "2h05m", "3d04h"; "-" when unknown.
pub fn format_age(age: Option<f64>) -> String {
    let Some(a) = age else { return "-".into() };
    let s = a.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// The COMMAND cell: the first task's command plus ip-netns names and
/// containers.
pub fn command_text(ns: &LiveNs) -> String {
    let r = &ns.row;
    let mut s = r.command.clone().unwrap_or_else(|| "-".into());
    if !r.names.is_empty() {
        s = format!("{s} [netns {}]", r.names.join(","));
    }
    if !r.containers.is_empty() {
        let c: Vec<String> = r.containers.iter().map(|c| c.short()).collect();
        s = format!("{s} [{}]", c.join(","));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::{containers::Container, model::TaskHold, snapshot::NsRow, table::Creator};

    const NOW: f64 = 1_000_000.0;

    fn ns(ty: NsType, inode: u64, state: NsState, tasks: usize, created: Option<f64>) -> LiveNs {
        LiveNs {
            row: NsRow { id: Some(inode + 1000), state, tasks, ..NsRow::new(ty, inode) },
            created,
            creator: None,
            first_seen: created.unwrap_or(NOW - 100.0),
            last_change: NOW,
            destroyed: None,
            history: VecDeque::new(),
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
        net.row.names = vec!["blue".into()];
        net.row.holders = vec![Holder::Mount { path: "/run/netns/blue".into(), mnt_ns: 1, via_pid: 1 }];
        let mut uts = ns(NsType::Uts, 20, NsState::Active, 1, Some(NOW - 1.0));
        uts.row.command = Some("sleep".into());
        uts.row.holders = vec![Holder::Task { pid: 7, comm: "sleep".into(), hold: TaskHold::Member }];
        let mut init_net = ns(NsType::Net, 30, NsState::Active, 90, None);
        init_net.row.command = Some("systemd".into());
        init_net.row.containers =
            vec![Container { runtime: "docker", id: "ab".repeat(32), pod: Some("0123-pod-uid".into()) }];
        init_net.row.holders = vec![Holder::Fd { pid: 99, fd: 4, comm: "containerd".into() }];
        let mut dead = ns(NsType::Ipc, 40, NsState::Active, 0, Some(NOW - 30.0));
        dead.destroyed = Some(NOW - 2.0);
        let pid = ns(NsType::Pid, 50, NsState::Orphaned, 3, None);
        let mut app = App::default();
        app.set_view(View { rows: vec![pid, dead, init_net, uts, net], now: NOW, ..Default::default() });
        app
    }

    fn inodes(app: &App) -> Vec<u64> {
        app.visible().map(|r| r.row.inode).collect()
    }

    #[test]
    fn default_sort_is_youngest_first_unknown_ages_last() {
        let app = sample();
        assert_eq!(inodes(&app), vec![20, 10, 40, 30, 50]);
        assert_eq!(app.selected().unwrap().row.inode, 20);
    }

    #[test]
    fn s_cycles_sort_keys_and_r_reverses() {
        let mut app = sample();
        app.on_key(key('s'));
        assert_eq!(app.sort, SortKey::Type);
        assert_eq!(inodes(&app), vec![10, 30, 20, 40, 50]);
        app.on_key(key('s'));
        assert_eq!(app.sort, SortKey::State);
        // active (net 30, uts 20), mounted, orphaned, destroyed last
        assert_eq!(inodes(&app), vec![30, 20, 10, 50, 40]);
        app.on_key(key('s'));
        assert_eq!(app.sort, SortKey::Tasks);
        assert_eq!(inodes(&app), vec![30, 50, 20, 10, 40]);
        app.on_key(key('r'));
        assert_eq!(inodes(&app), vec![40, 10, 20, 50, 30]);
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
        assert_eq!(app.visible_len(), 5, "not applied before Enter");
        app.on_key(code(KeyCode::Enter));
        assert_eq!(app.input, None);
        assert_eq!(app.search, "blue");
        assert_eq!(inodes(&app), vec![10]);
        assert_eq!(app.selected().unwrap().row.inode, 10);
        // Esc while typing leaves the applied search alone.
        app.on_key(key('/'));
        typed(&mut app, "sleep");
        app.on_key(code(KeyCode::Esc));
        assert_eq!(app.input, None);
        assert_eq!(app.search, "blue");
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
        assert_eq!(app.selected().unwrap().row.inode, 50);
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
        app.set_view(View { rows, now: NOW, ..Default::default() });
        assert_eq!(inodes(&app)[0], 60);
        assert_eq!(app.selected().unwrap().row.inode, 10);
        // The selected one goes away: the cursor stays at its place.
        let rows: Vec<LiveNs> = app.view.rows.iter().filter(|r| r.row.inode != 10).cloned().collect();
        app.set_view(View { rows, now: NOW, ..Default::default() });
        assert_eq!(app.cursor, 2);
        assert_eq!(app.selected().unwrap().row.inode, 40);
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
            now: NOW,
            ..Default::default()
        });
        let inos = |c: Vec<(u64, Option<&LiveNs>)>| c.into_iter().map(|(i, r)| (i, r.is_some())).collect::<Vec<_>>();
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
        app.set_view(View { rows: vec![a.clone(), b], now: NOW, ..Default::default() });
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
        assert_eq!(format_age(None), "-");
        assert_eq!(format_age(Some(42.7)), "42s");
        assert_eq!(format_age(Some(187.0)), "3m07s");
        assert_eq!(format_age(Some(7500.0)), "2h05m");
        assert_eq!(format_age(Some(3.0 * 86_400.0 + 4.0 * 3600.0)), "3d04h");
        let app = sample();
        let net = app.lookup(NsType::Net, 10).unwrap();
        assert_eq!(command_text(net), "- [netns blue]");
        assert_eq!(command_text(app.lookup(NsType::Net, 30).unwrap()), "systemd [docker:abababababab]");
        let mut with_creator = net.clone();
        with_creator.creator =
            Some(Box::new(Creator { pid: 1, tid: 1, comm: "ip".into(), cause: "unshare", flags: 0 }));
        assert!(search_matches(&with_creator, "ip"));
    }
}

//! Everything `nstrace live` shows and every key it understands, as plain
//! state: no terminal here, so key handling, filtering and sorting are
//! unit-tested.

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use nstrace_common::ns::NsType;

use crate::{
    model::Holder,
    model::Namespace,
    model::NsState,
    monitor::{Monitor, Totals},
    present::render::event_text,
    time::Clock,
};

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
    /// Orphaned, and the kernel's active count (6.19+) is 0.
    Inactive,
    /// No reference left, the kernel's teardown not finished.
    Dying,
    /// Gone from the kernel; kept on screen for a while.
    Destroyed,
}

impl RowState {
    pub const ALL: [RowState; 7] = [
        RowState::Active,
        RowState::Mounted,
        RowState::FdOnly,
        RowState::Orphaned,
        RowState::Inactive,
        RowState::Dying,
        RowState::Destroyed,
    ];

    pub fn of(ns: &Namespace) -> RowState {
        if ns.destroyed.is_some() {
            return RowState::Destroyed;
        }
        match ns.row.state {
            NsState::Active => RowState::Active,
            NsState::Mounted => RowState::Mounted,
            NsState::FdOnly => RowState::FdOnly,
            NsState::Orphaned => RowState::Orphaned,
            NsState::Inactive => RowState::Inactive,
            NsState::Dying => RowState::Dying,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RowState::Active => "active",
            RowState::Mounted => "mounted",
            RowState::FdOnly => "fd-only",
            RowState::Orphaned => "orphaned",
            RowState::Inactive => "inactive",
            RowState::Dying => "dying",
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
    pub rows: Vec<Namespace>,
    /// Rendered event lines, oldest first.
    pub feed: Vec<String>,
    pub totals: Totals,
    pub lost: u64,
    pub refresh_micros: u64,
    /// Unix time the view was taken.
    pub now: crate::time::UnixTime,
}

/// All UI state of `nstrace live`.
#[derive(Debug)]
pub struct App {
    pub view: View,
    /// The mechanism per job, for the header.
    pub mechanisms: String,
    pub sort: SortKey,
    /// Reverse the sort's natural order.
    pub reverse: bool,
    pub type_filter: Option<NsType>,
    pub state_filter: Option<RowState>,
    /// The applied search (case-insensitive substring).
    pub search: String,
    /// Search text being typed (`/` ... Enter), if any; applied as typed.
    pub input: Option<String>,
    /// The search before `/`, restored by Esc.
    search_before: String,
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
    selected: Option<crate::model::NsKey>,
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
            mechanisms: String::new(),
            sort: SortKey::Age,
            reverse: false,
            type_filter,
            state_filter,
            search: String::new(),
            input: None,
            search_before: String::new(),
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
    pub fn matches(&self, ns: &Namespace) -> bool {
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
        // Destroyed rows after every live one, whatever the sort: a burst
        // of deaths must not push the live namespaces off the screen.
        vis.sort_by_key(|&i| rows[i].destroyed.is_some());
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
    pub fn visible(&self) -> impl ExactSizeIterator<Item = &Namespace> {
        self.visible.iter().map(|&i| &self.view.rows[i])
    }

    pub fn visible_len(&self) -> usize {
        self.visible.len()
    }

    /// The namespace under the cursor.
    pub fn selected(&self) -> Option<&Namespace> {
        self.visible.get(self.cursor).map(|&i| &self.view.rows[i])
    }

    /// A row by type and inode (for owner/parent lookups).
    pub fn lookup(&self, ns_type: NsType, inode: u64) -> Option<&Namespace> {
        self.by_inode.get(&(ns_type, inode)).map(|&i| &self.view.rows[i])
    }

    /// The owning user namespaces of `ns`, nearest first. Each entry is the
    /// inode and the row when listed; the walk stops at the root (no owner)
    /// or at an inode not in the table.
    pub fn owner_chain(&self, ns: &Namespace) -> Vec<(u64, Option<&Namespace>)> {
        self.chain(ns.row.owner, NsType::User, |r| r.row.owner)
    }

    /// The parent namespaces (pid and user namespaces), nearest first.
    pub fn parent_chain(&self, ns: &Namespace) -> Vec<(u64, Option<&Namespace>)> {
        self.chain(ns.row.parent, ns.row.ns_type, |r| r.row.parent)
    }

    fn chain(
        &self,
        first: Option<u64>,
        ty: NsType,
        up: fn(&Namespace) -> Option<u64>,
    ) -> Vec<(u64, Option<&Namespace>)> {
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
            // Incremental: the table follows every key typed.
            match key.code {
                KeyCode::Enter => self.input = None,
                KeyCode::Esc => {
                    self.input = None;
                    self.search = std::mem::take(&mut self.search_before);
                    self.refilter(false);
                }
                KeyCode::Backspace => {
                    input.pop();
                    self.search = input.clone();
                    self.refilter(true);
                }
                KeyCode::Char(c) => {
                    input.push(c);
                    self.search = input.clone();
                    self.refilter(true);
                }
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
            KeyCode::Char('/') => {
                self.search_before = self.search.clone();
                self.input = Some(String::new());
            }
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
        // sync_selection clamps it to the last row.
        self.cursor = index;
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
pub fn search_matches(ns: &Namespace, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let needle = needle.to_lowercase();
    let has = |s: &str| s.to_lowercase().contains(&needle);
    let row = &ns.row;
    row.command.as_deref().is_some_and(has)
        || row.names.iter().any(|n| has(n))
        || row.holders.iter().any(|h| match h {
            Holder::Task { comm, .. } | Holder::Fd { comm, .. } | Holder::Socket { comm, .. } => has(comm),
            Holder::Mount { path, .. } => has(path),
        })
        || row.containers.iter().any(|c| has(&c.short()) || has(&c.id) || c.pod_uid.as_deref().is_some_and(has))
        || ns.creator.as_ref().is_some_and(|c| has(&c.comm))
        || row.inode.to_string() == needle
        || row.id.is_some_and(|id| id.to_string() == needle)
}

fn compare(a: &Namespace, b: &Namespace, sort: SortKey, now: crate::time::UnixTime) -> std::cmp::Ordering {
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

#[cfg(test)]
mod tests;

//! Fitting a table into the terminal, and colour: shared by `ls`,
//! `live` (plain and full-screen) and `doctor`. lsns's habit: text cells
//! are truncated with "…" before anything else gives way; here columns of
//! less use are then left out, in a fixed order, so numbers are never cut.

use std::io::IsTerminal;

/// How a column gives way when the table is wider than the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Give {
    /// Always shown in full (numbers, types, states).
    Keep,
    /// Text cut to no fewer than this many characters, ending in "…".
    Truncate(usize),
    /// Left out when truncating is not enough; higher ranks go first.
    Drop(u8),
}

/// One column: header, alignment, and how it gives way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Col {
    pub header: &'static str,
    pub right: bool,
    pub give: Give,
}

impl Col {
    pub const fn left(header: &'static str, give: Give) -> Col {
        Col { header, right: false, give }
    }

    pub const fn right(header: &'static str, give: Give) -> Col {
        Col { header, right: true, give }
    }
}

/// Columns a cell takes on a terminal: a CJK character (a netns or
/// container name may hold them) takes two, a combining mark none.
pub fn cell_width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// The width of each column in `width` characters (columns are one space
/// apart); `None` for a column left out. `natural` is each column's widest
/// cell, header included; `empty` says which columns hold nothing ("-" in
/// every row). Without a width, or when the table fits, every column keeps
/// its natural width. Otherwise empty columns that may give way are left
/// out first, then text is cut, then droppable columns go by rank.
pub fn fit(cols: &[Col], natural: &[usize], empty: &[bool], width: Option<usize>) -> Vec<Option<usize>> {
    let mut w: Vec<Option<usize>> = natural.iter().map(|n| Some(*n)).collect();
    let Some(width) = width else { return w };
    let total = |w: &[Option<usize>]| {
        let shown: Vec<usize> = w.iter().flatten().copied().collect();
        shown.iter().sum::<usize>() + shown.len().saturating_sub(1)
    };
    // 1. Columns with nothing in them (that may give way) go first, last first.
    for i in (0..cols.len()).rev() {
        if total(&w) <= width {
            break;
        }
        if cols[i].give != Give::Keep && empty.get(i).copied().unwrap_or(false) {
            w[i] = None;
        }
    }
    // 2. Cut the widest truncatable cell, one character at a time.
    let mut excess = total(&w).saturating_sub(width);
    while excess > 0 {
        let widest = (0..cols.len())
            .filter_map(|i| match (cols[i].give, w[i]) {
                (Give::Truncate(min), Some(cur)) if cur > min.max(cell_width(cols[i].header)) => Some((cur, i)),
                _ => None,
            })
            .max_by_key(|&(cur, i)| (cur, std::cmp::Reverse(i)));
        let Some((_, i)) = widest else { break };
        w[i] = w[i].map(|c| c - 1);
        excess -= 1;
    }
    // 3. Leave out droppable columns, highest rank first.
    let mut droppable: Vec<(u8, usize)> = (0..cols.len())
        .filter_map(|i| match cols[i].give {
            Give::Drop(rank) => Some((rank, i)),
            _ => None,
        })
        .collect();
    droppable.sort_by_key(|&(rank, i)| (std::cmp::Reverse(rank), i));
    for (_, i) in droppable {
        if total(&w) <= width {
            break;
        }
        w[i] = None;
    }
    // 4. Room freed by a dropped column goes back to cut ones, last first.
    let mut spare = width.saturating_sub(total(&w));
    for i in (0..cols.len()).rev() {
        if let (Some(cur), Give::Truncate(_)) = (w[i], cols[i].give) {
            let back = natural[i].saturating_sub(cur).min(spare);
            w[i] = Some(cur + back);
            spare -= back;
        }
    }
    w
}

/// Which of a line's segments (their `widths` and `ranks`: 0 always kept,
/// higher ranks left out first) fit in `width` with `sep` characters
/// between neighbours.
pub fn fit_segments(widths: &[usize], ranks: &[u8], sep: usize, width: usize) -> Vec<bool> {
    let mut keep = vec![true; widths.len()];
    let total = |keep: &[bool]| {
        let shown: Vec<usize> = (0..widths.len()).filter(|&i| keep[i]).map(|i| widths[i]).collect();
        shown.iter().sum::<usize>() + sep * shown.len().saturating_sub(1)
    };
    let mut order: Vec<usize> = (0..widths.len()).filter(|&i| ranks[i] > 0).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(ranks[i]), std::cmp::Reverse(i)));
    for i in order {
        if total(&keep) <= width {
            break;
        }
        keep[i] = false;
    }
    keep
}

/// `s` in at most `width` characters: cut with a trailing "…" when longer.
pub fn clip(s: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if cell_width(s) <= width {
        return s.into();
    }
    if width == 0 {
        return "".into();
    }
    // Whole characters while they fit, leaving one column for the "…".
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out.into()
}

/// Writes one line of cells in the fitted widths, each cell painted by
/// `paint` (after padding is measured, so escapes do not shift columns).
pub fn write_line(
    out: &mut dyn std::io::Write,
    cols: &[Col],
    widths: &[Option<usize>],
    cells: &[String],
    paint: &dyn Fn(usize, &str) -> String,
) -> std::io::Result<()> {
    let shown: Vec<usize> = (0..cols.len()).filter(|&i| widths[i].is_some()).collect();
    let mut line = String::new();
    for (n, &i) in shown.iter().enumerate() {
        let w = widths[i].unwrap_or(0);
        let text = clip(&cells[i], w);
        let pad = " ".repeat(w.saturating_sub(cell_width(&text)));
        let painted = paint(i, &text);
        let last = n + 1 == shown.len();
        match (cols[i].right, last) {
            (true, _) => line.push_str(&format!("{pad}{painted}")),
            (false, true) => line.push_str(&painted),
            (false, false) => line.push_str(&format!("{painted}{pad}")),
        }
        if !last {
            line.push(' ');
        }
    }
    writeln!(out, "{line}")
}

/// `--color`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM is dumb.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour, for output to a terminal or not (`tty`), with
    /// the environment's NO_COLOR and TERM (as the NO_COLOR convention
    /// says, a flag given on the command line wins over NO_COLOR).
    pub fn enabled(self, tty: bool, no_color: Option<&str>, term: Option<&str>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && no_color.is_none_or(str::is_empty) && term != Some("dumb"),
        }
    }

    /// [`ColorChoice::enabled`] for this process's stdout and environment.
    pub fn for_stdout(self) -> bool {
        let no_color = std::env::var("NO_COLOR").ok();
        let term = std::env::var("TERM").ok();
        self.enabled(std::io::stdout().is_terminal(), no_color.as_deref(), term.as_deref())
    }
}

/// The few colours nstrace uses, as ANSI SGR codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    Green,
    Red,
    Yellow,
    Cyan,
    Dim,
    Bold,
}

impl Paint {
    fn sgr(self) -> &'static str {
        match self {
            Paint::Green => "32",
            Paint::Red => "31",
            Paint::Yellow => "33",
            Paint::Cyan => "36",
            Paint::Dim => "2",
            Paint::Bold => "1",
        }
    }

    /// `text` in this colour when `on`, else `text` as it is.
    pub fn apply(self, on: bool, text: &str) -> String {
        if on && !text.is_empty() { format!("\x1b[{}m{text}\x1b[0m", self.sgr()) } else { text.to_string() }
    }

    /// The colour of a state name: in use green, pinned cyan, fd-only
    /// yellow, orphaned red, destroyed dim.
    pub fn of_state(state: &str) -> Option<Paint> {
        match state {
            "active" => Some(Paint::Green),
            "mounted" => Some(Paint::Cyan),
            "fd-only" => Some(Paint::Yellow),
            "orphaned" | "inactive" => Some(Paint::Red),
            "destroyed" => Some(Paint::Dim),
            _ => None,
        }
    }
}

/// How a table goes to the terminal: `--color`, `--width`, `-u`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TermArgs {
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t, value_name = "WHEN", overrides_with = "color")]
    pub color: ColorChoice,
    /// Fit the table in this many columns (0: no limit). Default: the
    /// terminal's width or $COLUMNS; no limit when piped.
    #[arg(long, value_name = "COLS", overrides_with = "width")]
    pub width: Option<usize>,
    /// Do not truncate or leave out columns (as lsns -u).
    #[arg(long = "notruncate", short = 'u')]
    pub no_truncate: bool,
}

impl TermArgs {
    /// The width to fit in: `--width` (0: none), else $COLUMNS, else the
    /// terminal's when stdout is one; none with `-u` or when piped.
    pub fn width(&self) -> Option<usize> {
        let columns = std::env::var("COLUMNS").ok();
        let terminal = || {
            std::io::stdout()
                .is_terminal()
                .then(crossterm::terminal::size)
                .and_then(Result::ok)
                .map(|(w, _)| w as usize)
        };
        resolve_width(self.no_truncate, self.width, columns.as_deref(), terminal)
    }

    /// The terminal decisions, made where the terminal is, as arguments
    /// for the service that writes the table ("--color=never", "--width=80");
    /// given last, they win over the same flags typed before them.
    pub fn service_args(&self) -> Vec<String> {
        let on = self.color.for_stdout();
        let mut out = vec![format!("--color={}", if on { "always" } else { "never" })];
        if !self.no_truncate {
            out.push(format!("--width={}", self.width().unwrap_or(0)));
        }
        out
    }
}

/// [`TermArgs::width`] from its inputs.
pub fn resolve_width(
    no_truncate: bool,
    flag: Option<usize>,
    columns: Option<&str>,
    terminal: impl FnOnce() -> Option<usize>,
) -> Option<usize> {
    if no_truncate {
        return None;
    }
    if let Some(w) = flag {
        return (w > 0).then_some(w);
    }
    match columns.and_then(|c| c.trim().parse::<usize>().ok()) {
        Some(w) if w > 0 => Some(w),
        _ => terminal(),
    }
}

#[cfg(test)]
mod tests;

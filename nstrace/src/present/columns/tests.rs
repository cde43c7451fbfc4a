use super::*;

const COLS: [Col; 5] = [
    Col::right("INODE", Give::Keep),
    Col::left("STATE", Give::Keep),
    Col::left("OWNER", Give::Drop(1)),
    Col::left("HOLDERS", Give::Truncate(9)),
    Col::left("COMMAND", Give::Truncate(8)),
];

fn total(w: &[Option<usize>]) -> usize {
    let shown: Vec<usize> = w.iter().flatten().copied().collect();
    shown.iter().sum::<usize>() + shown.len() - 1
}

#[test]
fn a_table_that_fits_keeps_its_widths() {
    let natural = [10, 8, 10, 12, 20];
    let all = natural.map(Some).to_vec();
    assert_eq!(fit(&COLS, &natural, &[], None), all);
    assert_eq!(fit(&COLS, &natural, &[], Some(64)), all, "64 = 60 + 4 spaces: fits exactly");
}

#[test]
fn text_is_cut_widest_first_before_any_column_goes() {
    let natural = [10, 8, 10, 12, 20];
    // 10 too wide: COMMAND (20) loses 8 first, down to HOLDERS' 12, then both.
    let w = fit(&COLS, &natural, &[], Some(54));
    assert_eq!(w, [Some(10), Some(8), Some(10), Some(11), Some(11)]);
    assert_eq!(total(&w), 54);
    let w = fit(&COLS, &natural, &[], Some(50));
    assert_eq!(w, [Some(10), Some(8), Some(10), Some(9), Some(9)]);
    assert_eq!(total(&w), 50);
}

#[test]
fn columns_are_dropped_when_cutting_is_not_enough_and_text_gets_room_back() {
    let natural = [10, 8, 10, 12, 20];
    // Minimums: 10+8+10+9+8 + 4 = 49. At 45 OWNER goes, and its 11 go back
    // to the cut text, COMMAND first.
    let w = fit(&COLS, &natural, &[], Some(45));
    assert_eq!(w, [Some(10), Some(8), None, Some(9), Some(15)]);
    assert_eq!(total(&w), 45);
    // Narrower than the columns that never give way: they stay whole.
    let w = fit(&COLS, &natural, &[], Some(10));
    assert_eq!(w, [Some(10), Some(8), None, Some(9), Some(8)]);
}

#[test]
fn empty_columns_go_before_droppable_ones_but_kept_ones_stay() {
    let natural = [10, 8, 10, 12, 20];
    // HOLDERS is all "-": it goes before OWNER; STATE never goes.
    let empty = [false, true, false, true, false];
    let w = fit(&COLS, &natural, &empty, Some(45));
    assert_eq!(w, [Some(10), Some(8), Some(10), None, Some(14)]);
    assert_eq!(total(&w), 45);
    // Empty columns stay when the table fits.
    assert_eq!(fit(&COLS, &natural, &empty, Some(64)), natural.map(Some));
    // A droppable empty column goes as an empty one, before the ranks.
    let cols = [Col::left("A", Give::Drop(1)), Col::left("B", Give::Drop(2)), Col::left("C", Give::Keep)];
    assert_eq!(fit(&cols, &[5, 5, 5], &[true, false, false], Some(11)), [None, Some(5), Some(5)]);
}

#[test]
fn drop_ranks_go_highest_first() {
    let cols = [Col::left("A", Give::Drop(1)), Col::left("B", Give::Drop(2)), Col::left("C", Give::Keep)];
    assert_eq!(fit(&cols, &[5, 5, 5], &[], Some(11)), [Some(5), None, Some(5)]);
    assert_eq!(fit(&cols, &[5, 5, 5], &[], Some(5)), [None, None, Some(5)]);
}

#[test]
fn a_header_is_never_cut() {
    let cols = [Col::left("CONTAINER", Give::Truncate(3))];
    assert_eq!(fit(&cols, &[30], &[], Some(4)), [Some(9)]);
}

#[test]
fn clip_marks_what_it_cut() {
    assert_eq!(clip("abcdef", 6), "abcdef");
    assert_eq!(clip("abcdefg", 6), "abcde…");
    assert_eq!(clip("äöüäöüä", 3), "äö…");
    assert_eq!(clip("abc", 0), "");
}

#[test]
fn wide_characters_take_two_columns() {
    // An `ip netns` name in Chinese: six characters, twelve columns.
    assert_eq!(cell_width("网络命名空间"), 12);
    assert_eq!(cell_width("e\u{301}"), 1, "a combining accent takes none");
    assert_eq!(clip("网络命名空间", 12), "网络命名空间");
    assert_eq!(clip("网络命名空间", 7), "网络命…");
    assert_eq!(cell_width(&clip("网络命名空间", 6)), 5, "never wider than asked");
    let cols = [Col::left("NAME", Give::Truncate(3)), Col::left("STATE", Give::Keep)];
    let mut out = Vec::new();
    write_line(&mut out, &cols, &[Some(8), Some(6)], &["网络命名空间".into(), "active".into()], &|_, s| s.into())
        .unwrap();
    let line = String::from_utf8(out).unwrap();
    assert_eq!(line, "网络命…  active\n", "padded to 8 columns");
    assert_eq!(cell_width(line.trim_end()), 15, "8 + 1 + 6 columns");
}

#[test]
fn lines_pad_before_painting() {
    let cols = [Col::right("N", Give::Keep), Col::left("STATE", Give::Keep), Col::left("CMD", Give::Truncate(3))];
    let widths = [Some(3), Some(8), Some(5)];
    let cells = ["7".to_string(), "active".to_string(), "systemd".to_string()];
    let mut out = Vec::new();
    write_line(&mut out, &cols, &widths, &cells, &|_, s| s.to_string()).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "  7 active   syst…\n");
    let mut out = Vec::new();
    let paint = |i: usize, s: &str| Paint::Green.apply(i == 1, s);
    write_line(&mut out, &cols, &widths, &cells, &paint).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "  7 \x1b[32mactive\x1b[0m   syst…\n");
    // A left-out column leaves no gap.
    let mut out = Vec::new();
    write_line(&mut out, &cols, &[Some(1), None, Some(7)], &cells, &|_, s| s.to_string()).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "7 systemd\n");
}

#[test]
fn colour_follows_the_flag_then_no_color_then_the_terminal() {
    use ColorChoice::*;
    assert!(Always.enabled(false, Some("1"), Some("dumb")), "the flag wins over NO_COLOR");
    assert!(!Never.enabled(true, None, Some("xterm")));
    assert!(Auto.enabled(true, None, Some("xterm")));
    assert!(Auto.enabled(true, Some(""), None), "an empty NO_COLOR does not count");
    assert!(!Auto.enabled(true, Some("1"), Some("xterm")));
    assert!(!Auto.enabled(false, None, Some("xterm")), "not on a pipe");
    assert!(!Auto.enabled(true, None, Some("dumb")));
}

#[test]
fn paint_wraps_in_sgr_only_when_on() {
    assert_eq!(Paint::Red.apply(true, "orphaned"), "\x1b[31morphaned\x1b[0m");
    assert_eq!(Paint::Red.apply(false, "orphaned"), "orphaned");
    assert_eq!(Paint::Red.apply(true, ""), "");
    assert_eq!(Paint::of_state("active"), Some(Paint::Green));
    assert_eq!(Paint::of_state("mounted"), Some(Paint::Cyan));
    assert_eq!(Paint::of_state("fd-only"), Some(Paint::Yellow));
    assert_eq!(Paint::of_state("orphaned"), Some(Paint::Red));
    assert_eq!(Paint::of_state("destroyed"), Some(Paint::Dim));
    assert_eq!(Paint::of_state("x"), None);
    for p in [Paint::Green, Paint::Red, Paint::Yellow, Paint::Cyan, Paint::Dim, Paint::Bold] {
        assert!(p.apply(true, "x").starts_with("\x1b["), "{p:?}");
    }
    assert_ne!(Paint::Dim.apply(true, "x"), Paint::Bold.apply(true, "x"));
}

#[test]
fn width_comes_from_the_flag_then_columns_then_the_terminal() {
    let tty = || Some(100);
    let piped = || None;
    assert_eq!(resolve_width(false, Some(60), Some("80"), tty), Some(60));
    assert_eq!(resolve_width(false, Some(0), Some("80"), tty), None, "--width 0: no limit");
    assert_eq!(resolve_width(false, None, Some("80"), piped), Some(80), "COLUMNS counts even when piped");
    assert_eq!(resolve_width(false, None, Some("x"), tty), Some(100));
    assert_eq!(resolve_width(false, None, Some("0"), tty), Some(100));
    assert_eq!(resolve_width(false, None, None, tty), Some(100));
    assert_eq!(resolve_width(false, None, None, piped), None);
    assert_eq!(resolve_width(true, Some(60), Some("80"), tty), None, "-u: never cut");
}

#[test]
fn the_service_gets_the_clients_decisions() {
    let args = TermArgs { color: ColorChoice::Never, width: Some(72), no_truncate: false };
    assert_eq!(args.service_args(), ["--color=never", "--width=72"]);
    let args = TermArgs { color: ColorChoice::Always, width: None, no_truncate: true };
    assert_eq!(args.service_args(), ["--color=always"]);
    let args = TermArgs { color: ColorChoice::Never, width: Some(0), no_truncate: false };
    assert_eq!(args.service_args(), ["--color=never", "--width=0"]);
}

#[test]
fn flags_given_again_win() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        term: TermArgs,
    }
    let cli = Cli::try_parse_from(["x", "--color", "auto", "--width", "9", "--color=never", "--width=0"]).unwrap();
    assert_eq!((cli.term.color, cli.term.width), (ColorChoice::Never, Some(0)));
}

#[test]
fn header_segments_go_by_rank_and_whole() {
    // "nstrace live │ PAUSED │ 12 namespaces │ net 3 uts 9 │ create fexit…"
    let widths = [12, 6, 13, 11, 40];
    let ranks = [0, 0, 0, 2, 4];
    assert_eq!(fit_segments(&widths, &ranks, 3, 200), [true; 5]);
    assert_eq!(fit_segments(&widths, &ranks, 3, 81), [true, true, true, true, false]);
    assert_eq!(fit_segments(&widths, &ranks, 3, 60), [true, true, true, true, false]);
    assert_eq!(fit_segments(&widths, &ranks, 3, 50), [true, true, true, false, false]);
    assert_eq!(fit_segments(&widths, &ranks, 3, 10), [true, true, true, false, false], "rank 0 stays");
    // Equal ranks: the later one goes first.
    assert_eq!(fit_segments(&[5, 5, 5], &[1, 1, 0], 1, 11), [true, false, true]);
}

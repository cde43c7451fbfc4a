//! Answers a new user can trust: the same privilege error from
//! every command, names that could mean two namespaces said to be
//! ambiguous, no target given said so.

use std::process::Command;

use tests::{IpNetns, nstrace, nstrace_bin, root_or_skip, unique};

/// `history` as nobody: the privilege error every other command gives
/// (exit 3), not "no provenance database" (the file exists; its directory
/// is root's) and no word of a one-shot snapshot it never takes.
#[test]
fn history_as_nobody_is_a_privilege_error() {
    let test = "history_as_nobody_is_a_privilege_error";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let run = |cmd: &str| {
        let out = Command::new("setpriv")
            .envs(tests::private_env())
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(nstrace_bin())
            .arg(cmd)
            .output()
            .expect("setpriv");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ls_code, ls_err) = run("ls");
    let (code, err) = run("history");
    assert_eq!(code, Some(3), "{test}: {err}");
    assert_eq!(code, ls_code, "{test}: history and ls differ: {err} / {ls_err}");
    assert!(!err.contains("no provenance database") && !err.contains("one-shot"), "{test}: {err}");
    assert!(err.contains("uid 65534") || err.contains("root"), "{test}: says why: {err}");
}

/// `why 5` where `ip netns` 5 exists and a namespace has id (or inode) 5:
/// ambiguous, both named, and how to say either; `--type` is honoured with
/// a number; an empty target is an error about the target, not a path.
#[test]
fn a_number_that_is_also_a_netns_name_is_ambiguous() {
    let test = "a_number_that_is_also_a_netns_name_is_ambiguous";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    // The initial namespaces have ids 1-8 where there are ids (6.18+);
    // elsewhere a number that is an inode: the initial uts namespace's.
    let number = if tests::kernel().has_ns_ids { "5".to_string() } else { tests::ns_inode(1, "uts").to_string() };
    let name = unique("n");
    let _plain = IpNetns::add(name.clone());
    let netns = IpNetns(number.clone());
    if std::path::Path::new(&format!("/run/netns/{number}")).exists() {
        tests::skip(test, &format!("an `ip netns` named {number} exists already"));
        std::mem::forget(netns);
        return;
    }
    tests::sh(&format!("ip netns add {number}"));
    let (code, _, err) = nstrace(&["why", "--no-service", &number]);
    assert_eq!(code, 2, "{test}: {err}");
    assert!(err.contains("ambiguous") && err.contains(&format!("/run/netns/{number}")), "{test}: {err}");
    // Either one, said unambiguously, works.
    let (code, out, err) = nstrace(&["why", "--no-service", &format!("/run/netns/{number}")]);
    assert_eq!(code, 0, "{test}: {err}");
    assert!(out.starts_with("net namespace "), "{out}");
    drop(netns);
    let (code, _, err) = nstrace(&["why", "--no-service", &number]);
    assert_eq!(code, 0, "{test}: once the netns is gone the number is the namespace's: {err}");
    // --type with a number: a namespace of another type is not it.
    let other = if tests::kernel().has_ns_ids { "ipc" } else { "net" };
    let (code, _, err) = nstrace(&["why", "--no-service", "--type", other, &number]);
    assert_eq!(code, 2, "{test}: --type {other} {number}: {err}");
    assert!(err.contains(&format!("no {other} namespace with id or inode {number}")), "{test}: {err}");
    let (code, _, err) = nstrace(&["why", "--no-service", ""]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no target") && !err.contains("/run/netns/"), "{test}: {err}");
}

/// Terminal columns a line takes: CJK characters take two.
fn columns(line: &str) -> usize {
    line.chars()
        .map(|c| {
            if ('\u{1100}'..='\u{115f}').contains(&c)
                || ('\u{2e80}'..='\u{a4cf}').contains(&c)
                || ('\u{ac00}'..='\u{d7a3}').contains(&c)
                || ('\u{f900}'..='\u{faff}').contains(&c)
                || ('\u{ff00}'..='\u{ff60}').contains(&c)
            {
                2
            } else {
                1
            }
        })
        .sum()
}

/// An `ip netns` name in Chinese keeps `ls` within the terminal: each of its
/// characters takes two columns, and the table is fitted to columns, not
/// characters.
#[test]
fn a_wide_netns_name_keeps_ls_within_80_columns() {
    let test = "a_wide_netns_name_keeps_ls_within_80_columns";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let name = format!("网络命名空间测试{}", unique("-"));
    let _netns = IpNetns::add(name.clone());
    // A process in it with a long command line: its row fills the width.
    let (_keeper, _) = tests::spawn_ready(Command::new("ip").args([
        "netns",
        "exec",
        &name,
        "python3",
        "-c",
        "print('ready', flush=True)\nimport time\nwhile True: time.sleep(3600)",
        "a-long-argument-so-the-command-column-is-cut-to-fit-the-terminal-width",
    ]));
    for args in [
        &["ls", "--no-service"][..],
        &["ls", "--no-service", "-o", "+creator,pinned-by"],
        &["ls", "--no-service", "-t", "net"],
    ] {
        let out = tests::output_bounded(tests::nstrace_command().args(args).env("COLUMNS", "80"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("网络"), "{args:?}: the name is shown: {text}");
        for line in text.lines() {
            assert!(columns(line) <= 80, "{args:?}: {} columns: {line}", columns(line));
        }
    }
}

//! `nstrace live`: the full-screen view, driven through tmux like a person
//! would: new namespaces show up with the right type and state, the type
//! filter, search and detail pane work, and `q` leaves a usable terminal.

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use tests::{ChildGuard, eventually, ns_inode, nstrace_bin, root_or_skip, unique};

/// The header's mechanism text: present exactly while the TUI is drawn.
/// The header names the mechanism per job; only the layout is fixed.
const HEADER: &str = " · destroy ";
const SHOW: Duration = Duration::from_secs(20);

/// A tmux server of its own (private socket) with one 200x50 session
/// running `sh`; killed when dropped.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn start() -> Tmux {
        let socket = unique("nstrace-live-sock");
        let session = unique("nstrace-live");
        let t = Tmux { socket, session };
        let status = t
            .cmd()
            .args(["new-session", "-d", "-s", &t.session, "-x", "200", "-y", "50"])
            .arg("env PS1='live-test$ ' TERM=xterm-256color sh")
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        // The server (started by the first command) hands them to the shell.
        c.envs(tests::private_env()).args(["-L", &self.socket]);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run tmux");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", &self.session, "-l", text]);
    }

    /// Presses named keys (Enter, Escape, ...).
    fn press(&self, key: &str) {
        self.run(&["send-keys", "-t", &self.session, key]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", &self.session])
    }

    fn format(&self, f: &str) -> String {
        self.run(&["display-message", "-p", "-t", &self.session, f]).trim().to_string()
    }

    /// Polls the screen until `pred` holds; panics with the last screen.
    fn wait_screen(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + tests::scaled(timeout);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{s}");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// An `ip netns` name, deleted when dropped.
struct Netns(String);

impl Netns {
    fn add(name: String) -> Netns {
        let st = Command::new("ip").args(["netns", "add", &name]).status().expect("run ip");
        assert!(st.success(), "ip netns add {name}");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn tmux_available() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// The table's data rows: the lines between its column header and its
/// bottom border, cut at the table's right border (the detail pane may
/// follow), as whitespace-separated cells.
fn table_rows(screen: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut inside = false;
    for line in screen.lines() {
        if !inside {
            inside = line.contains("INODE") && line.contains("TYPE") && line.contains("STATE");
            continue;
        }
        let Some(body) = line.strip_prefix('│') else { break };
        let body = body.split('│').next().unwrap_or("");
        let cells: Vec<String> = body.split_whitespace().map(String::from).collect();
        if !cells.is_empty() {
            rows.push(cells);
        }
    }
    rows
}

/// The header's filter text, e.g. "type=net".
fn header_has(screen: &str, text: &str) -> bool {
    screen.lines().take(2).any(|l| l.contains(text))
}

/// The type filter the header shows ("all", "net", ...).
fn type_filter(screen: &str) -> Option<String> {
    let line = screen.lines().nth(1)?;
    let rest = &line[line.find("type=")? + "type=".len()..];
    Some(rest.split_whitespace().next()?.to_string())
}

/// A table row: ID INODE TYPE STATE TASKS ... COMMAND; matched by inode and type.
fn row_with<'a>(rows: &'a [Vec<String>], inode: u64, ty: &str) -> Option<&'a Vec<String>> {
    rows.iter().find(|r| r.len() > 4 && r[1] == inode.to_string() && r[2] == ty)
}

/// Applies a search through the prompt: `/`, the text, Enter.
fn search(t: &Tmux, text: &str) {
    t.type_text("/");
    t.wait_screen("the search prompt", SHOW, |s| s.lines().last().is_some_and(|l| l.starts_with('/')));
    t.type_text(text);
    t.press("Enter");
    t.wait_screen(&format!("search={text} in the header"), SHOW, |s| header_has(s, &format!("search={text}")));
}

#[test]
fn live_view_shows_filters_details_and_restores_the_terminal() {
    let test = "live_view_shows_filters_details_and_restores_the_terminal";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    if !tmux_available() {
        tests::skip(test, "tmux is not installed");
        return;
    }
    let tmux = Tmux::start();
    tmux.wait_screen("the shell prompt", SHOW, |s| s.contains("live-test$"));
    tmux.type_text(&format!("{} live; echo EXIT=$?", nstrace_bin().display()));
    tmux.press("Enter");
    let screen = tmux.wait_screen("the live header", SHOW, |s| header_has(s, HEADER));
    let m = &tests::kernel().mechanisms;
    let named = format!(
        "create {} · destroy {} · snapshot {}",
        m["create"].as_str().unwrap(),
        m["destroy"].as_str().unwrap(),
        m["snapshot"].as_str().unwrap()
    );
    assert!(header_has(&screen, &named), "the header names doctor's mechanisms ({named}):\n{screen}");
    assert!(screen.starts_with("nstrace live"), "{screen}");
    assert!(header_has(&screen, "lost 0"), "{screen}");
    assert_eq!(tmux.format("#{alternate_on}"), "1", "the TUI uses the alternate screen");

    // A mounted net namespace and a uts namespace held by a task.
    let netns = Netns::add(unique("nstlive"));
    let net_inode = std::fs::metadata(format!("/run/netns/{}", netns.0))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("stat /run/netns/<name>");
    let sleeper = ChildGuard::new(
        Command::new("unshare").args(["-u", "sleep", "infinity"]).spawn().expect("spawn unshare -u sleep"),
    );
    let my_uts = ns_inode(std::process::id(), "uts");
    let uts_inode = eventually(Duration::from_secs(5), "the new uts namespace", || {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", sleeper.pid())).ok()?;
        let ino = ns_inode(sleeper.pid(), "uts");
        (comm.trim() == "sleep" && ino != my_uts).then_some(ino)
    });

    // Both rows show up with their type and state. Other tests may create
    // namespaces too, so each row is looked for through the search (the
    // inode matches exactly).
    search(&tmux, &uts_inode.to_string());
    let s = tmux.wait_screen("the uts row (active, sleep)", SHOW, |s| {
        row_with(&table_rows(s), uts_inode, "uts").is_some_and(|r| r[3] == "active" && r.last().unwrap() == "sleep")
    });
    println!("uts row found:\n{s}");
    search(&tmux, &netns.0);
    tmux.wait_screen("the netns row (mounted, named)", SHOW, |s| {
        row_with(&table_rows(s), net_inode, "net").is_some_and(|r| r[3] == "mounted" && r.contains(&netns.0))
    });

    // Esc (outside the prompt) clears the search.
    tmux.press("Escape");
    tmux.wait_screen("the search cleared", SHOW, |s| header_has(s, "search=-"));

    // `t` cycles the type filter: all -> net.
    let mut seen = Vec::new();
    loop {
        let current = type_filter(&tmux.screen()).expect("a type filter in the header");
        if current == "net" {
            break;
        }
        assert!(seen.len() < 9, "t never reached type=net: {seen:?}");
        seen.push(current.clone());
        tmux.type_text("t");
        tmux.wait_screen("the type filter to change", SHOW, |s| type_filter(s).is_some_and(|t| t != current));
    }
    assert_eq!(seen, ["all"], "all -> net");
    thread::sleep(Duration::from_millis(300));
    let s = tmux.screen();
    let rows = table_rows(&s);
    assert!(!rows.is_empty(), "no rows with the net filter:\n{s}");
    for r in &rows {
        assert_eq!(r[2], "net", "a non-net row under type=net: {r:?}\n{s}");
    }

    // Select the netns row through the search; Enter opens its detail pane.
    search(&tmux, &netns.0);
    let s = tmux.wait_screen("a single netns row", SHOW, |s| {
        let rows = table_rows(s);
        rows.len() == 1 && row_with(&rows, net_inode, "net").is_some()
    });
    assert!(header_has(&s, "type=net "), "{s}");
    tmux.press("Enter");
    let mount = format!("mount /run/netns/{} (mnt ns", netns.0);
    let s =
        tmux.wait_screen("the detail pane with the mount path", SHOW, |s| s.contains("detail") && s.contains(&mount));
    assert!(s.contains("holders:"), "{s}");
    assert!(s.contains("owner:"), "{s}");
    assert!(s.contains(&format!("net {net_inode}")), "{s}");
    println!("detail pane:\n{s}");

    // p pauses, and the header says so; in an 80-column window the header
    // keeps PAUSED, the counts, lost and the filters, and the row keeps its
    // whole inode, state and name (text is cut with "…", columns left out).
    tmux.press("Escape");
    tmux.type_text("p");
    tmux.wait_screen("PAUSED in the header", SHOW, |s| header_has(s, "PAUSED"));
    tmux.run(&["resize-window", "-t", &tmux.session, "-x", "80", "-y", "30"]);
    let s = tmux.wait_screen("the view redrawn in 80 columns", SHOW, |s| {
        s.lines().next().is_some_and(|l| l.contains("PAUSED") && l.contains("namespaces"))
            && s.lines().any(|l| l.starts_with('└') && l.chars().count() == 80)
    });
    let line2 = s.lines().nth(1).unwrap_or("");
    assert!(line2.contains("lost ") && line2.contains("search=") && line2.contains("type=net"), "{s}");
    let rows = table_rows(&s);
    let row = rows.iter().find(|r| r.iter().any(|c| c == &net_inode.to_string()));
    assert!(
        row.is_some_and(|r| r.contains(&"mounted".to_string()) && r.contains(&"net".to_string())),
        "the netns row with its whole inode {net_inode}, type and state at 80 columns:\n{s}"
    );
    assert!(s.lines().any(|l| l.contains("INODE") && l.contains("STATE") && l.contains("TASKS")), "{s}");
    tmux.type_text("p");
    tmux.wait_screen("PAUSED gone", SHOW, |s| !header_has(s, "PAUSED") && header_has(s, "namespaces"));

    // q quits with status 0 and gives the terminal back.
    tmux.type_text("q");
    let s = tmux.wait_screen("the exit status", SHOW, |s| s.lines().any(|l| l.starts_with("EXIT=")));
    assert!(s.lines().any(|l| l == "EXIT=0"), "nstrace live did not exit 0:\n{s}");
    assert!(!s.contains(HEADER), "the TUI is still on screen:\n{s}");
    assert!(s.lines().rfind(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("live-test$")), "{s}");
    assert_eq!(tmux.format("#{alternate_on}"), "0", "alternate screen left");
    assert_eq!(tmux.format("#{cursor_flag}"), "1", "cursor shown again");
    // The shell reads lines again: raw mode is off.
    tmux.type_text("echo cooked-$((40+2))");
    tmux.press("Enter");
    tmux.wait_screen("the shell to answer", SHOW, |s| s.contains("cooked-42"));
    drop(sleeper);
}

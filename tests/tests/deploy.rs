//! What ships for deployment: the systemd unit, shell completions and man
//! pages.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use tests::{have, nstrace, nstrace_bin, repo_root, root_or_skip};

/// The unit's `ExecStart=` words.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart= line");
    line.split_whitespace().map(str::to_string).collect()
}

/// Starts `nstrace serve ARGS`, waits for its readiness line, stops it with
/// SIGTERM; returns that line and how it exited.
fn serve_until_ready(args: &[String], whose: &str) -> (String, std::process::ExitStatus) {
    let mut child =
        tests::nstrace_command().arg("serve").args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let ready = loop {
        match rx.recv_timeout(tests::scaled(Duration::from_secs(60))) {
            Ok(line) if line.starts_with("nstrace: serving on") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    // SAFETY: kill(2) takes no pointers; the pid is our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let ready = ready.unwrap_or_else(|| panic!("serve with {whose} arguments {args:?} did not start: {seen:?}"));
    (ready, status)
}

#[test]
fn the_systemd_unit_runs_serve_with_systemds_directories() {
    let test = "the_systemd_unit_runs_serve_with_systemds_directories";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let unit = std::fs::read_to_string(repo_root().join("deploy/systemd/nstrace.service")).unwrap();
    for line in ["StateDirectory=nstrace", "RuntimeDirectory=nstrace"] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let words = exec_start(&unit);
    assert_eq!(words[..2], ["/usr/local/bin/nstrace", "serve"], "{words:?}");

    if have("systemd-analyze") {
        // verify wants the binary where ExecStart says: point it at ours.
        let dir = tests::tempdir();
        let _cleanup = tests::RmDir(dir.clone());
        let path = format!("{dir}/nstrace.service");
        std::fs::write(&path, unit.replace("/usr/local/bin/nstrace", nstrace_bin().to_str().unwrap())).unwrap();
        let out = Command::new("systemd-analyze").args(["verify", &path]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "systemd-analyze verify: {stderr}");
        let about_it: Vec<&str> = stderr.lines().filter(|l| l.contains("nstrace.service")).collect();
        assert!(about_it.is_empty(), "systemd-analyze verify warns: {about_it:?}");
    } else {
        tests::skip(test, "systemd-analyze not installed: the unit's syntax is not verified (its command line is)");
    }

    // Its command line runs, with the directories systemd would make.
    let state = tests::tempdir();
    let runtime = tests::tempdir();
    let _cleanup = (tests::RmDir(state.clone()), tests::RmDir(runtime.clone()));
    let args: Vec<String> = words[2..]
        .iter()
        .map(|w| w.replace("${STATE_DIRECTORY}", &state).replace("${RUNTIME_DIRECTORY}", &runtime))
        .map(|w| if w == "127.0.0.1:9764" { "127.0.0.1:0".to_string() } else { w })
        .collect();
    let (ready, status) = serve_until_ready(&args, "the unit's");
    assert!(
        ready.contains(&format!("{state}/nstrace.db")) && ready.contains(&format!("{runtime}/nstrace.sock")),
        "{ready}"
    );
    assert!(Path::new(&format!("{state}/nstrace.db")).exists());
    assert!(status.success(), "serve stopped with {status} on SIGTERM");
    // The socket goes with the service.
    assert!(!Path::new(&format!("{runtime}/nstrace.sock")).exists());
}

/// What bash offers for the last of `words` (the one being completed).
fn bash_completes(words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let words = words.join(" ");
    let script = format!(
        "source <('{bin}' completions bash) || exit 9\n\
         COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n\
         COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n\
         _nstrace nstrace \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bin = nstrace_bin().display()
    );
    let out = Command::new("bash").envs(tests::private_env()).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn completions_complete_subcommands_and_options_in_each_shell() {
    let test = "completions_complete_subcommands_and_options_in_each_shell";
    if !tests::kernel_independent(test) {
        return;
    }
    let offered = bash_completes(&["nstrace", "l"]);
    for sub in ["ls", "leaks", "live"] {
        assert!(offered.contains(&sub.to_string()), "bash offers {offered:?} for `nstrace l`");
    }
    assert!(!offered.iter().any(|w| w == "why"), "{offered:?}");
    let offered = bash_completes(&["nstrace", "ls", "--ty"]);
    assert_eq!(offered, ["--type"], "bash after `nstrace ls --ty`");
    let offered = bash_completes(&["nstrace", "ls", "--source", ""]);
    assert_eq!(offered, ["kernel", "proc", "listns"].map(String::from), "bash after `nstrace ls --source`");
    // zsh and fish load theirs without an error (and define the completion).
    for (shell, check) in [
        ("zsh", "autoload -Uz compinit && compinit -u && source /dev/stdin && (( $+functions[_nstrace] ))"),
        ("fish", "source - && complete -C'nstrace l' | string match -q -r '^ls'"),
    ] {
        if !have(shell) {
            tests::skip(
                test,
                &format!("{shell} not installed (cargo xtask setup installs it): its script is not loaded"),
            );
            continue;
        }
        let (code, script, err) = nstrace(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        let mut child =
            Command::new(shell).args(["-c", check]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (code, _, err) = nstrace(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {err}");
}

#[test]
fn the_man_pages_in_docs_are_current() {
    let test = "the_man_pages_in_docs_are_current";
    if !tests::kernel_independent(test) {
        return;
    }
    let dir = tests::tempdir();
    let _cleanup = tests::RmDir(dir.clone());
    let (code, _, err) = nstrace(&["man-pages", "--dir", &dir]);
    assert_eq!(code, 0, "{err}");
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".1"))
            .collect();
        v.sort();
        v
    };
    let shipped = repo_root().join("docs/man");
    let fresh = names(Path::new(&dir));
    assert_eq!(names(&shipped), fresh, "docs/man/ is stale: run `cargo xtask man`");
    for sub in ["ls", "why", "leaks", "serve", "completions"] {
        assert!(fresh.contains(&format!("nstrace-{sub}.1")), "no page for {sub}: {fresh:?}");
    }
    for name in &fresh {
        let (a, b) = (std::fs::read(shipped.join(name)).unwrap(), std::fs::read(Path::new(&dir).join(name)).unwrap());
        assert!(a == b, "docs/man/{name} is stale: run `cargo xtask man`");
    }
    // man renders them (where man-db is installed).
    if have("man") {
        let out = Command::new("man").args(["-l", "-P", "cat"]).arg(shipped.join("nstrace-ls.1")).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--lsns-json"), "man -l nstrace-ls.1: {text}");
    }
}

#[test]
fn the_daemonset_runs_the_image_xtask_builds_with_what_serve_needs() {
    let test = "the_daemonset_runs_the_image_xtask_builds_with_what_serve_needs";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let yaml = std::fs::read_to_string(repo_root().join("deploy/kubernetes/nstrace-daemonset.yaml")).unwrap();
    let (_, version, _) = nstrace(&["--version"]);
    let version = version.split_whitespace().nth(1).unwrap().to_string();
    // `cargo xtask image`'s default tag.
    assert!(
        yaml.contains(&format!("image: nstrace:{version}\n")),
        "the DaemonSet runs another image than nstrace:{version}"
    );
    let containerfile = std::fs::read_to_string(repo_root().join("deploy/Containerfile")).unwrap();
    assert!(containerfile.contains("FROM scratch"), "the image needs no registry");
    assert!(yaml.contains("hostPID: true"));
    // Every host path serve uses is mounted.
    for path in
        ["/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/bpf", "/run/netns", "/run/nstrace", "/var/lib/nstrace"]
    {
        assert!(yaml.contains(&format!("mountPath: {path}\n")), "the DaemonSet does not mount {path}");
        assert!(yaml.contains(&format!("path: {path}\n")), "the DaemonSet has no hostPath {path}");
    }
    // Its arguments start serve (paths under a temporary root, loopback).
    let args: Vec<&str> = yaml
        .lines()
        .skip_while(|l| l.trim() != "- serve")
        .skip(1)
        .map(str::trim)
        .take_while(|l| l.starts_with("- ") || l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("- "))
        .collect();
    assert!(args.contains(&"--allow-remote"), "{args:?}");
    let root = tests::tempdir();
    let _cleanup = tests::RmDir(root.clone());
    let args: Vec<String> =
        args.iter().map(|a| a.replace("=/", &format!("={root}/")).replace("0.0.0.0:9764", "127.0.0.1:0")).collect();
    let (ready, status) = serve_until_ready(&args, "the DaemonSet's");
    assert!(ready.contains(&format!("{root}/var/lib/nstrace/nstrace.db")), "{ready}");
    assert!(status.success(), "serve stopped with {status} on SIGTERM");
}

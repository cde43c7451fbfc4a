//! What ships for deployment: the systemd unit, shell completions and man
//! pages.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use tests::{nstrace_bin, root_or_skip};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

/// The unit's `ExecStart=` words.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart= line");
    line.split_whitespace().map(str::to_string).collect()
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
    let mut child = Command::new(nstrace_bin())
        .arg("serve")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard_pid = child.id();
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
    unsafe { libc::kill(guard_pid as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let ready = ready.unwrap_or_else(|| panic!("serve with the unit's arguments {args:?} did not start: {seen:?}"));
    assert!(
        ready.contains(&format!("{state}/nstrace.db")) && ready.contains(&format!("{runtime}/nstrace.sock")),
        "{ready}"
    );
    assert!(Path::new(&format!("{state}/nstrace.db")).exists());
    assert!(status.success(), "serve stopped with {status} on SIGTERM");
    // The socket is gone with the service (systemd removes the directory).
    assert!(!Path::new(&format!("{runtime}/nstrace.sock")).exists());
}

//! What `why` and `leaks` tell a user to do, and the names `why` accepts:
//! no advice against processes still using a namespace or against system
//! processes; the fix per leak; `ip netns` names and *_for_children paths;
//! every command piped into `head -1` ends quietly.

use std::process::{Command, Stdio};

use serde_json::Value;
use tests::{ChildGuard, IpNetns, nstrace, nstrace_bin, root_or_skip, spawn_ready, unique};

fn why_json(target: &str) -> Value {
    let (code, out, err) = nstrace(&["why", "--json", "--no-service", target]);
    assert_eq!(code, 0, "why {target}: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_initial_namespaces_get_no_kill_or_gdb_advice() {
    let test = "the_initial_namespaces_get_no_kill_or_gdb_advice";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    for ty in ["net", "mnt", "pid", "user"] {
        let v = why_json(&format!("/proc/self/ns/{ty}"));
        let release = v["release"].as_array().unwrap();
        assert!(!release.is_empty());
        for a in release {
            assert!(a["command"].is_null(), "{ty}: {a}");
            assert!(a["note"].as_str().unwrap().contains("not a leak"), "{ty}: {a}");
        }
        let (_, text, _) = nstrace(&["why", "--no-service", &format!("/proc/self/ns/{ty}")]);
        assert!(!text.contains("kill ") && !text.contains("gdb "), "{ty}: {text}");
        assert!(text.contains("to release it: nothing to do (in use by"), "{ty}: {text}");
        // Dozens of processes: the first 10, then a count; --all lists each.
        // The count of the same snapshot: "in use by N processes".
        let members: usize = text
            .split("in use by ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{ty}: {text}"));
        if members > 10 {
            assert_eq!(text.matches(") is in it\n").count(), 10, "{ty}: {text}");
            assert!(text.contains(&format!("... and {} more processes in it", members - 10)), "{ty}: {text}");
            let (_, all, _) = nstrace(&["why", "--no-service", "--all", &format!("/proc/self/ns/{ty}")]);
            let listed = all.matches(") is in it\n").count();
            // Processes come and go between the two runs.
            assert!(listed.abs_diff(members) <= 5 && listed > 10, "{ty}: {members} vs {listed}\n{all}");
        }
    }
}

#[test]
fn why_takes_an_ip_netns_name_and_leaks_prints_the_fix() {
    let test = "why_takes_an_ip_netns_name_and_leaks_prints_the_fix";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let name = unique("nstrace-advice");
    let _netns = IpNetns::add(name.clone());
    let inode =
        std::fs::metadata(format!("/run/netns/{name}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let v = why_json(&name);
    assert_eq!(v["namespace"]["inode"], inode);
    assert_eq!(v["release"][0]["command"], format!("ip netns del {name}"));
    assert_eq!(v["release"][0]["safe"], true);
    // leaks: the fix per leak, inline and in the one-line form.
    let (code, out, _) = nstrace(&["leaks", "--json", "--no-service", "--type", "net"]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&out).unwrap();
    let leak = report["leaks"].as_array().unwrap().iter().find(|l| l["inode"] == inode).expect("listed");
    assert_eq!(leak["fix"][0]["command"], format!("ip netns del {name}"));
    let (_, text, _) = nstrace(&["leaks", "--no-service", "--type", "net"]);
    assert!(text.contains(&format!("    fix: ip netns del {name}   [safe]")), "{text}");
    let (code, compact, _) = nstrace(&["leaks", "--compact", "--no-service", "--type", "net"]);
    assert_eq!(code, 1);
    let line = compact.lines().find(|l| l.starts_with(&format!("net {inode} "))).unwrap_or_else(|| panic!("{compact}"));
    assert!(line.contains(" mounted ") && line.ends_with(&format!("-> ip netns del {name} [safe]")), "{line}");
    for l in compact.lines() {
        assert!(l.contains(" age=") && l.contains(" -> "), "one leak per line: {l}");
    }
    // An unknown name is a usage error that says what was tried.
    let (code, _, err) = nstrace(&["why", "--no-service", "no-such-thing-anywhere"]);
    assert_eq!(code, 2);
    assert!(err.contains("ip netns") && err.contains("container"), "{err}");
}

#[test]
fn why_takes_a_pid_for_children_path_before_the_first_child() {
    let test = "why_takes_a_pid_for_children_path_before_the_first_child";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    // unshare(CLONE_NEWPID) without a fork: the new pid namespace is only
    // the shell's pid_for_children, which /proc cannot open yet.
    let (guard, pid): (ChildGuard, String) =
        spawn_ready(Command::new("unshare").args(["--pid", "sh", "-c", "echo $$; read _"]).stdin(Stdio::piped()));
    let path = format!("/proc/{pid}/ns/pid_for_children");
    let v = why_json(&path);
    assert_eq!(v["namespace"]["type"], "pid");
    let holders = v["namespace"]["holders"].as_array().unwrap();
    assert!(
        holders.iter().any(|h| h["pid"].as_u64() == pid.parse::<u64>().ok() && h["hold"] == "pid-for-children"),
        "{holders:?}"
    );
    drop(guard);
}

#[test]
fn every_command_piped_into_head_ends_quietly() {
    let test = "every_command_piped_into_head_ends_quietly";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let bin = nstrace_bin();
    let bin = bin.display();
    // The reader closes its end at once: the first write fails with EPIPE.
    for (cmd, status) in [
        ("ls --no-service", "0"),
        ("ls --json --no-service", "0"),
        ("why --json --no-service /proc/self/ns/net", "0"),
        ("leaks --no-service --min-age 0", "[01]"),
        ("doctor", "[01]"),
    ] {
        let script = format!("{bin} {cmd} | {{ exec 0<&-; sleep 0.5; }}; echo ${{PIPESTATUS[0]}}");
        let out = Command::new("bash").envs(tests::private_env()).args(["-c", &script]).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let code = stdout.trim();
        assert!(
            if status == "[01]" { code == "0" || code == "1" } else { code == status },
            "{cmd}: exit {code}, stderr {stderr}"
        );
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{cmd}: {stderr}");
    }
}

/// A bind mount at a path a hostile process chose: the advice quotes it
/// (and says check first), JSON carries the exact words, and the quoted
/// command run by a shell unmounts exactly that path and runs nothing else.
#[test]
fn a_hostile_mount_path_is_quoted_and_unmounts_only_itself() {
    let test = "a_hostile_mount_path_is_quoted_and_unmounts_only_itself";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let scratch = tests::tempdir();
    let _rm = tests::RmDir(scratch.clone());
    let path = format!("{scratch}/my ns;$(touch PWNED)");
    std::fs::write(&path, "").unwrap();
    let (keeper, _) = spawn_ready(Command::new("unshare").args(["-n", "sh", "-c", "echo ready; exec sleep infinity"]));
    let netns = format!("/proc/{}/ns/net", keeper.pid());
    let inode = std::fs::metadata(&netns).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    assert!(Command::new("mount").args(["--bind", &netns, &path]).status().unwrap().success());
    let _umount = tests::Umount(path.clone());
    drop(keeper);
    let mounted = || std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains("my\\040ns;$(touch\\040PWNED)");
    assert!(mounted());

    let (_, out, err) = nstrace(&["leaks", "--json", "--no-service"]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let leak = report["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["inode"] == inode || l["row"]["inode"] == inode)
        .unwrap_or_else(|| panic!("{test}: no leak for net {inode}: {out}"));
    let fix = leak["fix"].as_array().unwrap().iter().find(|f| f["argv"].is_array()).expect("a command");
    assert_eq!(fix["argv"], serde_json::json!(["umount", path]), "{fix}");
    assert_eq!(fix["command"], format!("umount '{path}'"), "{fix}");
    assert_eq!(fix["safe"], false, "odd characters: check first: {fix}");
    let (_, text, _) = nstrace(&["leaks", "--no-service"]);
    assert!(text.contains(&format!("fix: umount '{path}'   [check first]")), "{text}");

    let command = fix["command"].as_str().unwrap();
    let ran = Command::new("sh").args(["-c", command]).current_dir(&scratch).status().unwrap();
    assert!(ran.success(), "{command}");
    assert!(!mounted(), "{test}: the mount is still there after {command}");
    assert!(!std::path::Path::new(&format!("{scratch}/PWNED")).exists(), "{test}: the path's $(…) ran");
    assert!(!std::path::Path::new("PWNED").exists(), "{test}: the path's $(…) ran");
}

/// A holder whose command line carries escape sequences and a newline that
/// imitates nstrace's own output: text shows them escaped, on one line;
/// JSON keeps the exact argument.
#[test]
fn a_hostile_command_line_cannot_forge_output() {
    let test = "a_hostile_command_line_cannot_forge_output";
    if !root_or_skip(test) || !tests::kernel_independent(test) {
        return;
    }
    let hostile = "\u{1b}[31mRED\nkept alive by: FAKE LINE\u{1b}[0m";
    let (keeper, _) = spawn_ready(Command::new("unshare").args(["-n", "sh", "-c", "echo ready; exec sleep infinity"]));
    let netns = format!("/proc/{}/ns/net", keeper.pid());
    let inode = std::fs::metadata(&netns).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let (_holder, uts) = spawn_ready(Command::new("python3").args([
        "-c",
        // It holds the net namespace by an fd, and is the one process of a
        // uts namespace of its own, named with an escape and a newline
        // too (PR_SET_NAME: `ls` shows its comm).
        "import ctypes, os, sys, time\n\
         fd = os.open(sys.argv[1], os.O_RDONLY)\n\
         libc = ctypes.CDLL(None)\n\
         assert libc.unshare(0x04000000) == 0\n\
         libc.prctl(15, b'\\x1b[31mRED\\nFAKE', 0, 0, 0)\n\
         print(os.readlink('/proc/self/ns/uts'), flush=True)\n\
         while True: time.sleep(3600)\n",
        &netns,
        hostile,
    ]));
    drop(keeper);
    let target = inode.to_string();
    let uts = uts.trim_start_matches("uts:[").trim_end_matches(']').to_string();
    let wide = ["ls", "--no-service", "--type", "uts", "--width", "400"];
    for args in [&["why", "--no-service", &target][..], &["leaks", "--no-service"], &wide] {
        let (code, text, err) = nstrace(args);
        assert!(code <= 1, "{args:?}: {err}");
        assert!(!text.contains('\u{1b}'), "{test}: {args:?} printed a raw ESC:\n{text}");
        assert!(!text.lines().any(|l| l.trim_start().starts_with("kept alive by: FAKE")), "{test}: {args:?}:\n{text}");
        if args[0] == "ls" {
            let row =
                text.lines().find(|l| l.contains(&uts)).unwrap_or_else(|| panic!("{test}: no uts {uts}:\n{text}"));
            assert!(row.ends_with("\\x1b[31mRED\\x0aFAKE"), "{test}: the comm is not shown escaped: {row}");
        } else {
            assert!(text.contains("\\x1b[31mRED\\x0akept alive by: FAKE LINE\\x1b[0m"), "{test}: {args:?}:\n{text}");
        }
    }
    let v = why_json(&target);
    assert!(v.to_string().contains(&serde_json::to_string(hostile).unwrap()[1..]), "JSON keeps the exact value: {v}");
}

/// `ip netns del` fails with EBUSY while a shared peer mount namespace (a
/// container given `/run/netns` with rshared propagation) has mounted the
/// netns again on top: the mount propagates back and two are stacked on
/// the host. `why` says so, names the peer and its process, gives the
/// command that unstacks it (the peer's copy goes with it), and after the
/// failed `ip netns del` it is `ip netns del` again.
#[test]
fn a_netns_mounted_again_by_a_shared_peer_gets_advice_that_unstacks_it() {
    let test = "a_netns_mounted_again_by_a_shared_peer_gets_advice_that_unstacks_it";
    if !root_or_skip(test) {
        return;
    }
    let (a, b) = (unique("nstrace-stack-a"), unique("nstrace-stack-b"));
    let _guards = [IpNetns::add(a.clone()), IpNetns::add(b.clone())];
    let propagation = tests::sh("findmnt -n -o PROPAGATION /run/netns");
    if !propagation.contains("shared") {
        tests::skip(test, &format!("/run/netns is not a shared mount here ({})", propagation.trim()));
        return;
    }
    // The peer: a mount namespace that shares /run/netns's peer group and
    // mounts each netns again over itself.
    let script = format!(
        "mount --bind /run/netns/{a} /run/netns/{a} && mount --bind /run/netns/{b} /run/netns/{b} && echo ready && exec sleep infinity"
    );
    let (peer, _) =
        spawn_ready(Command::new("unshare").args(["-m", "--propagation", "unchanged", "sh", "-c", &script]));
    let host_mounts = |name: &str| {
        let needle = format!(" /run/netns/{name} ");
        std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(&needle)).count()
    };
    assert_eq!(host_mounts(&a), 2, "propagated back from the peer: two stacked");

    // While two are stacked: why says so and gives the command that unmounts every one.
    let why = why_json(&format!("/run/netns/{a}"));
    let reasons = why["reasons"].as_array().unwrap();
    let release = why["release"].as_array().unwrap();
    let own_mnt = tests::ns_inode(std::process::id(), "mnt");
    let peer_mnt = tests::ns_inode(peer.pid(), "mnt");
    let at = |mnt: u64| reasons.iter().position(|r| r["kind"] == "mount" && r["mnt_ns"] == mnt);
    let (here, there) = (at(own_mnt).expect("the host's mount"), at(peer_mnt).expect("the peer's mount"));
    assert_eq!(reasons[here]["stacked"], 2, "{why}");
    assert_eq!(reasons[here]["peer_group"], reasons[there]["peer_group"], "peers: {why}");
    assert_eq!(reasons[there]["via_pid"], peer.pid(), "the peer's process: {why}");
    assert!(release[there]["command"].is_null(), "the peer's copy goes with ours: {why}");
    let argv: Vec<String> =
        release[here]["argv"].as_array().expect("a command").iter().map(|w| w.as_str().unwrap().into()).collect();
    assert_eq!(release[here]["safe"], false, "a shell loop is checked first: {why}");
    let (_, text, _) = nstrace(&["why", "--no-service", &format!("/run/netns/{a}")]);
    assert!(text.contains("2 mounts stacked there"), "{text}");
    let ran = Command::new(&argv[0]).args(&argv[1..]).status().unwrap();
    assert!(ran.success(), "{argv:?}");
    assert_eq!(host_mounts(&a), 0, "{argv:?} unmounted every one");
    assert!(!std::path::Path::new(&format!("/run/netns/{a}")).exists(), "and removed the file");
    let peer_has = |name: &str| {
        std::fs::read_to_string(format!("/proc/{}/mountinfo", peer.pid()))
            .unwrap()
            .contains(&format!("/run/netns/{name} "))
    };
    assert!(!peer_has(&a), "the peer's copies went with the host's");

    // The kernel's own answer: `ip netns del` unmounts one, then unlink fails with EBUSY.
    let del = Command::new("ip").args(["netns", "del", &b]).output().unwrap();
    assert!(!del.status.success(), "ip netns del with two stacked mounts");
    assert!(String::from_utf8_lossy(&del.stderr).contains("Device or resource busy"), "{del:?}");
    // One left (and its peer): now `ip netns del` does it.
    let why = why_json(&format!("/run/netns/{b}"));
    let release = why["release"].as_array().unwrap();
    let fix = release.iter().find(|f| f["command"].is_string()).expect("a command");
    assert_eq!(
        (fix["command"].as_str(), fix["safe"].as_bool()),
        (Some(format!("ip netns del {b}").as_str()), Some(true)),
        "{why}"
    );
    assert_eq!(release.iter().filter(|f| f["command"].is_string()).count(), 1, "the peer needs nothing: {why}");
    assert!(Command::new("ip").args(["netns", "del", &b]).status().unwrap().success());
    assert!(!peer_has(&b), "the peer's copy went with it");
    drop(peer);
}

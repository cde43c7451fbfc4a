use super::{lsns::*, *};
use crate::model::TaskHold;

fn me() -> u32 {
    std::process::id()
}

#[test]
fn command_of_a_process() {
    let c = Command::read(me());
    let args = c.args.expect("our own cmdline reads");
    assert!(args.join(" ").contains("nstrace"), "{args:?}");
    assert_eq!(c.comm, None, "a process with arguments: its comm is not read");
    assert_eq!(Command::read(u32::MAX), Command::default(), "no such process");
}

#[test]
fn own_namespaces_and_a_process_set() {
    let mine = namespaces_of(me()).unwrap();
    assert_eq!(mine.iter().find(|(t, _)| *t == NsType::Net).map(|(_, i)| *i), own_ns(NsType::Net));
    assert!(own_ns(NsType::Mnt).is_some());
    assert_eq!(namespaces_of(u32::MAX), None);
}

#[test]
fn holder_facts_of_our_own_process() {
    let comm: crate::model::Comm = "test".into();
    let row = NsRow {
        holders: vec![
            Holder::Task { pid: me(), tid: None, comm: comm.clone(), hold: TaskHold::Member },
            Holder::Fd { pid: me(), fd: 0, comm },
        ]
        .into(),
        tasks: 1,
        ..NsRow::new(NsType::Uts, 1)
    };
    let facts = HolderFacts::gather(&[&row], false);
    assert_eq!(facts.own_mnt_ns, own_ns(NsType::Mnt));
    assert!(facts.sockets.is_empty(), "no taskless net namespace: no socket scan");
    assert_eq!(facts.tasks.get(&me()), Some(&TaskFacts::default()), "in our pid namespace, not a zombie");
    assert_eq!(facts.commands.get(&me()), Some(&Command::read(me())));
}

/// Once the kernel's fd walk has read the sockets, a taskless netns's
/// socket holders are in its row: nothing opens a socket to find them
/// again (SIOCGSKNS would make an inactive namespace active on 6.19+), and
/// the socket holder's command is read like an fd holder's.
#[test]
fn walked_sockets_are_not_looked_for_again() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: borrowing another process's socket takes root");
        return;
    }
    use std::io::BufRead;
    let script = "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nprint(s.fileno(), flush=True)\ntime.sleep(60)";
    let Ok(mut child) =
        std::process::Command::new("python3").args(["-c", script]).stdout(std::process::Stdio::piped()).spawn()
    else {
        eprintln!("skipped: no python3 to hold a socket");
        return;
    };
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let (pid, fd): (u32, i32) = (child.id(), line.trim().parse().unwrap());
    let own_net = std::fs::metadata("/proc/self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let row = NsRow {
        holders: vec![Holder::Socket { pid, fd, comm: "python3".into(), socket: 1 }].into(),
        ..NsRow::new(NsType::Net, own_net)
    };
    let scanned = HolderFacts::gather(&[&row], false);
    let walked = HolderFacts::gather(&[&row], true);
    child.kill().ok();
    child.wait().ok();
    assert!(
        scanned.sockets.get(&own_net).is_some_and(|l| l.iter().any(|s| s.pid == pid && s.fd == fd)),
        "not walked: /proc finds the socket: {:?}",
        scanned.sockets
    );
    assert!(walked.sockets.is_empty(), "walked: no /proc socket scan: {:?}", walked.sockets);
    assert!(walked.commands.contains_key(&pid), "the socket holder's command is read");
}

#[test]
fn lsns_counts_the_processes_that_live_in_it() {
    let comm: crate::model::Comm = "sh".into();
    let task = |pid, tid, hold| Holder::Task { pid, tid, comm: comm.clone(), hold };
    let row = NsRow {
        holders: vec![
            task(300, None, TaskHold::Member),
            task(42, None, TaskHold::Member),
            task(42, None, TaskHold::Member),
            // Only as pid_for_children, or only a thread: not in lsns's count.
            task(7, None, TaskHold::PidForChildren),
            task(9, Some(10), TaskHold::Member),
            Holder::Fd { pid: 5, fd: 3, comm: comm.clone() },
        ]
        .into(),
        ..NsRow::new(NsType::Net, 4026532000)
    };
    assert_eq!(member_pids(&row), [42, 300]);
}

#[test]
fn lsns_facts_of_our_own_net_namespace() {
    // Our own process is a member: every per-process fact reads through
    // it, and the namespace opens for OWNER-UID and NETNSID.
    let own_net = own_ns(NsType::Net).unwrap();
    let comm: crate::model::Comm = "test".into();
    let row = NsRow {
        holders: vec![Holder::Task { pid: me(), tid: None, comm, hold: TaskHold::Member }].into(),
        ..NsRow::new(NsType::Net, own_net)
    };
    let mut facts = LsnsFacts::default();
    facts.read_own();
    assert!(facts.own_mnt_ns != 0 && facts.own.contains(&own_net));
    facts.find_lowest(&[&row]);
    assert_eq!(facts.lowest.get(&(NsType::Net, own_net)), Some(&me()));
    facts.count_members(&[&row]);
    assert_eq!(facts.nprocs.get(&(NsType::Net, own_net)), Some(&1), "ourselves, once");
    facts.read_procs([me()]);
    let p = &facts.procs[&me()];
    assert!(p.ppid.is_some() && p.uid.is_some(), "{p:?}");
    assert!(p.command.as_deref().is_some_and(|c| c.contains("nstrace")), "{p:?}");
    facts.read_users();
    assert_eq!(facts.users.get(&0).map(String::as_str), Some("root"));
    facts.open_namespaces([(&row, Some(me()))], true, true);
    assert!(facts.owner_uids.contains_key(&(NsType::Net, own_net)));
    assert!(facts.netnsids.contains_key(&own_net));
}

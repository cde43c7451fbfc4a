use super::*;
use crate::procfs::{facts::TaskFacts, sockets::SocketHolder};

fn mount(mnt_ns: u64, netns_name: Option<&str>) -> Reason {
    Reason::Mount {
        path: "/run/netns/x".into(),
        mnt_ns,
        via_pid: 42,
        stack: Default::default(),
        netns_name: netns_name.map(Into::into),
        mnt_ns_entry: None,
    }
}

#[test]
fn descriptions_name_the_holder() {
    let fd = Reason::Fd { pid: 7, fd: 5, comm: "py".into(), cmdline: "python3 r.py".into() };
    assert_eq!(fd.describe(), "open fd 5 of process 7 (py: python3 r.py)");
    let pfc = Reason::Task {
        pid: 3,
        comm: "unshare".into(),
        hold: TaskHold::PidForChildren,
        tid: None,
        in_pid_ns: None,
        unreaped_by: None,
    };
    assert_eq!(pfc.describe(), "process 3 (unshare) holds it as pid_for_children");
    let tfc = Reason::Task {
        pid: 3,
        comm: "unshare".into(),
        hold: TaskHold::TimeForChildren,
        tid: None,
        in_pid_ns: None,
        unreaped_by: None,
    };
    assert_eq!(tfc.describe(), "process 3 (unshare) holds it as time_for_children");
    let member = Reason::Task {
        pid: 3,
        comm: "sh".into(),
        hold: TaskHold::Member,
        tid: None,
        in_pid_ns: None,
        unreaped_by: None,
    };
    assert_eq!(member.describe(), "process 3 (sh) is in it");
    let thread = Reason::Task {
        pid: 3,
        tid: Some(5),
        comm: "cni".into(),
        hold: TaskHold::Member,
        in_pid_ns: None,
        unreaped_by: None,
    };
    assert_eq!(thread.describe(), "thread 5 of process 3 (cni) is in it");
    let thread = Reason::Task {
        pid: 3,
        tid: Some(5),
        comm: "cni".into(),
        hold: TaskHold::PidForChildren,
        in_pid_ns: None,
        unreaped_by: None,
    };
    assert_eq!(thread.describe(), "thread 5 of process 3 (cni) holds it as pid_for_children");
    let contained = Reason::Task {
        pid: 30445,
        tid: None,
        comm: "sh".into(),
        hold: TaskHold::Member,
        in_pid_ns: Some(PidInNs { pid: 1, pid_ns: 4026532181 }),
        unreaped_by: None,
    };
    assert_eq!(contained.describe(), "process 30445 (sh; 1 in pid namespace 4026532181) is in it");
    let zombie = Reason::Task {
        pid: 30446,
        tid: None,
        comm: "init".into(),
        hold: TaskHold::Member,
        in_pid_ns: Some(PidInNs { pid: 1, pid_ns: 4026532182 }),
        unreaped_by: Some(30400),
    };
    assert_eq!(
        zombie.describe(),
        "process 30446 (init; 1 in pid namespace 4026532182; a zombie its parent 30400 has not reaped) is in it"
    );
    // A zombie is still a member (lsns counts it), but why advises on its parent.
    assert!(zombie.is_zombie() && zombie.is_member() && !member.is_zombie() && !contained.is_zombie());
    assert!(member.is_member() && !pfc.is_member() && !tfc.is_member() && !fd.is_member());
    assert_eq!(
        mount(2, Some("x")).describe(),
        "bind mount at /run/netns/x (ip netns x) in mount namespace 2 (where pid 42 is)"
    );
    let host = Reason::Mount {
        path: "/m".into(),
        mnt_ns: 3,
        via_pid: 2,
        stack: Default::default(),
        netns_name: None,
        mnt_ns_entry: None,
    };
    assert_eq!(host.describe(), "bind mount at /m in mount namespace 3 (the initial one)");
    let fd = Some(MntNsEntry { path: "/proc/70/fd/4".into(), held_by: "fd 4 of process 70".into() });
    let taskless = Reason::Mount {
        path: "/m".into(),
        mnt_ns: 3,
        via_pid: 0,
        stack: Default::default(),
        netns_name: None,
        mnt_ns_entry: fd,
    };
    assert_eq!(
        taskless.describe(),
        "bind mount at /m in mount namespace 3 (which no task is in, held by fd 4 of process 70)"
    );
    let unheld = Reason::Mount {
        path: "/m".into(),
        mnt_ns: 3,
        via_pid: 0,
        stack: Default::default(),
        netns_name: None,
        mnt_ns_entry: None,
    };
    assert_eq!(unheld.describe(), "bind mount at /m in mount namespace 3 (which no task is in)");
    let dep = Dependent { ns_type: NsType::Net, inode: 10, state: NsState::Mounted };
    assert_eq!(
        Reason::Owner { dependents: vec![dep] }.describe(),
        "the live namespaces it owns or parents: net 10 [mounted]"
    );
    assert_eq!(
        Reason::KernelReference { hint: "h".into() }.describe(),
        "kernel reference: h (no task, thread, nsfs fd, bind mount in any mount namespace, socket or owned \
         namespace holds it)"
    );
}

#[test]
fn a_mount_in_a_taskless_mount_namespace_names_what_holds_it() {
    let own = 4026531841;
    let facts = HolderFacts { own_mnt_ns: Some(own), ..HolderFacts::default() };
    let mount =
        |path: &str, mnt_ns, via_pid| Holder::Mount { path: path.into(), mnt_ns, via_pid, stack: Default::default() };
    let fd = Holder::Fd { pid: 70, fd: 4, comm: "py".into() };
    let net = |inode, mnt_ns| NsRow {
        holders: vec![mount("/run/netns/x", mnt_ns, 0)].into(),
        ..NsRow::new(NsType::Net, inode)
    };
    let by_fd = NsRow { holders: vec![mount("/elsewhere", own, 1), fd].into(), ..NsRow::new(NsType::Mnt, 5) };
    let by_mount = NsRow { holders: vec![mount("/x", own, 1)].into(), ..NsRow::new(NsType::Mnt, 6) };
    let foreign = NsRow { holders: vec![mount("/y", own + 1, 9)].into(), ..NsRow::new(NsType::Mnt, 7) };
    let (n5, n6, n7, n8) = (net(10, 5), net(11, 6), net(12, 7), net(13, 99));
    let rows = [&n5, &n6, &n7, &n8, &by_fd, &by_mount, &foreign];
    let e = Explainer::new(&rows, &facts);
    let entry = |row: &NsRow| match &e.reasons(row)[0] {
        Reason::Mount { mnt_ns_entry, netns_name, .. } => {
            assert_eq!(*netns_name, None, "not an `ip netns` name: no task sees that path");
            mnt_ns_entry.clone()
        }
        other => panic!("{other:?}"),
    };
    let fd_entry = MntNsEntry { path: "/proc/70/fd/4".into(), held_by: "fd 4 of process 70".into() };
    assert_eq!(entry(&n5), Some(fd_entry), "an fd first");
    assert_eq!(entry(&n6), Some(MntNsEntry { path: "/x".into(), held_by: "the bind mount at /x".into() }));
    assert_eq!(entry(&n7), None, "a bind mount in another mount namespace is not a path here");
    assert_eq!(entry(&n8), None, "an unlisted mount namespace");
    // A mount a task's mount namespace has: named, no entry needed.
    let tasked = NsRow { holders: vec![mount("/run/netns/x", 5, 42)].into(), ..NsRow::new(NsType::Net, 14) };
    let rows = [&tasked, &by_fd];
    let e = Explainer::new(&rows, &facts);
    let Reason::Mount { mnt_ns_entry, netns_name, .. } = &e.reasons(&tasked)[0] else { panic!() };
    assert_eq!((mnt_ns_entry.clone(), netns_name.as_deref()), (None, Some("x")));
}

#[test]
fn reasons_from_holders_ownership_and_kernel_hints() {
    let mut user = NsRow::new(NsType::User, 100);
    user.state = NsState::Orphaned;
    let mut net = NsRow::new(NsType::Net, 10);
    net.owner = Some(100);
    net.state = NsState::Mounted;
    net.tasks = 1;
    net.holders =
        vec![Holder::Mount { path: "/run/netns/x".into(), mnt_ns: 1, via_pid: 1, stack: Default::default() }].into();
    let mut uts = NsRow::new(NsType::Uts, 11);
    uts.holders =
        vec![Holder::Mount { path: "/run/netns/y".into(), mnt_ns: 1, via_pid: 1, stack: Default::default() }].into();
    let (pid, mnt) = (NsRow::new(NsType::Pid, 12), NsRow::new(NsType::Mnt, 13));
    let rows = [&user, &net, &uts, &pid, &mnt];
    let facts = HolderFacts::default();
    let e = Explainer::new(&rows, &facts);
    assert_eq!(e.rows().len(), 5);
    let r = e.reasons(&user);
    assert_eq!(r.len(), 1);
    let Reason::Owner { dependents } = &r[0] else { panic!("{r:?}") };
    assert_eq!((dependents[0].ns_type, dependents[0].inode), (NsType::Net, 10));
    // A /run/netns mount names the ip netns only for a net namespace.
    let Reason::Mount { netns_name, .. } = &e.reasons(&net)[0] else { panic!() };
    assert_eq!(netns_name.as_deref(), Some("x"));
    let Reason::Mount { netns_name, .. } = &e.reasons(&uts)[0] else { panic!() };
    assert_eq!(netns_name, &None);
    for (row, word) in [(&pid, "struct pid"), (&mnt, "mounts propagated"), (&NsRow::new(NsType::Ipc, 14), "nsproxy")] {
        let r = e.reasons(row);
        let Reason::KernelReference { hint } = &r[0] else { panic!("{r:?}") };
        assert!(hint.contains(word), "{:?}: {hint}", row.ns_type);
    }
    assert!(kernel_hint(NsType::Net).contains("cleanup_net"));
    assert!(kernel_hint(NsType::User).contains("keyrings"));
}

#[test]
fn the_kernels_active_count_confirms_or_contradicts_a_kernel_reference() {
    let row = |active| NsRow { active_refs: active, ..NsRow::new(NsType::Ipc, 20) };
    let (unknown, zero, two) = (row(None), row(Some(0)), row(Some(2)));
    let rows = [&unknown, &zero, &two];
    let facts = HolderFacts::default();
    let e = Explainer::new(&rows, &facts);
    let hint = |r: &NsRow| match &e.reasons(r)[0] {
        Reason::KernelReference { hint } => hint.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(hint(&unknown), kernel_hint(NsType::Ipc));
    assert!(hint(&zero).ends_with("using it is 0"), "{}", hint(&zero));
    assert!(hint(&two).contains("counts 2 active user(s)"), "{}", hint(&two));
}

#[test]
fn kernel_threads_show_their_comm_in_brackets() {
    let command = |args: Option<Vec<&str>>, comm: Option<&str>| Command {
        args: args.map(|a| a.into_iter().map(String::from).collect()),
        comm: comm.map(String::from),
    };
    let kthreadd = Some("kthreadd\n");
    assert_eq!(shown_cmdline(Some(&command(Some(vec![]), kthreadd))), "[kthreadd]");
    assert_eq!(shown_cmdline(Some(&command(None, kthreadd))), "[kthreadd]", "unreadable cmdline");
    assert_eq!(shown_cmdline(Some(&command(Some(vec!["ip", "netns"]), None))), "ip netns");
    assert_eq!(shown_cmdline(Some(&command(None, None))), "?");
    assert_eq!(shown_cmdline(None), "?", "no such process");
}

#[test]
fn holders_are_described_with_what_proc_said_of_them() {
    let task = Holder::Task { pid: 30445, tid: None, comm: "sh".into(), hold: TaskHold::Member };
    let fd = Holder::Fd { pid: 7, fd: 5, comm: "py".into() };
    let row = NsRow { holders: vec![task, fd].into(), ..NsRow::new(NsType::Uts, 10) };
    let in_pid_ns = Some(PidInNs { pid: 1, pid_ns: 4026532181 });
    let facts = HolderFacts {
        tasks: HashMap::from([(30445, TaskFacts { in_pid_ns, unreaped_by: Some(30400) })]),
        commands: HashMap::from([(7, Command { args: Some(vec!["python3".into(), "r.py".into()]), comm: None })]),
        ..HolderFacts::default()
    };
    let rows = [&row];
    let r = Explainer::new(&rows, &facts).reasons(&row);
    assert!(matches!(r[0], Reason::Task { in_pid_ns: Some(_), unreaped_by: Some(30400), .. }), "{r:?}");
    assert_eq!(r[1].describe(), "open fd 5 of process 7 (py: python3 r.py)");
}

#[test]
fn sockets_pin_only_net_namespaces() {
    // A net and a uts namespace with the same inode number (types are
    // separate inode spaces): the socket scan's answer is about the net one.
    let (net, uts) = (NsRow::new(NsType::Net, 10), NsRow::new(NsType::Uts, 10));
    let rows = [&net, &uts];
    let holder = SocketHolder { pid: 4242, fd: 3, comm: "nstrace".into(), socket: 77 };
    let facts = HolderFacts { sockets: HashMap::from([(10, vec![holder])]), ..HolderFacts::default() };
    let e = Explainer::new(&rows, &facts);
    let r = e.reasons(&net);
    assert!(matches!(r[0], Reason::Socket { fd: 3, socket: 77, .. }), "{r:?}");
    let r = e.reasons(&uts);
    assert!(matches!(r[0], Reason::KernelReference { .. }), "{r:?}");
}

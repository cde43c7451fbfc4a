//! What to do about each holder of a namespace: a command to run (never
//! run by nstrace), whether it is safe to run as-is, and what to know.
//! Never advice that harms the host: nothing against pid 1, kernel threads
//! or system daemons, nothing for a namespace its processes still use, and
//! the runtime's own command for what a runtime made.

use serde::Serialize;

use crate::{
    model::NsRow,
    origin::ContainerRef,
    present::explain::{MntNsEntry, Reason},
};

/// One piece of advice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Advice {
    /// The command to run, quoted for a POSIX shell (what to paste); None
    /// when nothing should be run.
    pub command: Option<String>,
    /// The same command as words, exactly (what a program would exec).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// Whether the command only releases this namespace's pin and has no
    /// word that needed quoting (runnable as-is).
    pub safe: bool,
    /// What else to know.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Builds a command from words.
fn words<const N: usize>(w: [&str; N]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// `argv` quoted for a POSIX shell, each word with `shlex` (a NUL, which
/// no path or name holds, is shown escaped: such a line cannot be pasted).
pub fn shell_line(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str))
        .unwrap_or_else(|_| argv.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(" "))
}

/// A word a shell reads as itself, with nothing a reader could misjudge:
/// letters, digits and `_./:@%+=,-`.
fn plain_word(w: &str) -> bool {
    !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b"_./:@%+=,-".contains(&b))
}

impl Advice {
    /// Advice to run `argv`; anything odd in a word makes it "check first".
    fn run(argv: Vec<String>, safe: bool, note: impl Into<String>) -> Advice {
        let safe = safe && argv.iter().all(|w| plain_word(w));
        Advice { command: Some(shell_line(&argv)), argv: Some(argv), safe, note: note.into() }
    }

    fn none(note: impl Into<String>) -> Advice {
        Advice { command: None, argv: None, safe: false, note: note.into() }
    }

    /// One line: "umount /x   [safe] # note", or "(nothing to run) note";
    /// escaped for the terminal.
    pub fn text(&self) -> String {
        let note = if self.note.is_empty() { String::new() } else { format!("   # {}", self.note) };
        let line = match &self.command {
            Some(c) => format!("{c}   [{}]{note}", if self.safe { "safe" } else { "check first" }),
            None => format!("(nothing to run){note}"),
        };
        crate::present::escape::text(&line).into_owned()
    }
}

/// What the advice depends on besides the holder.
#[derive(Clone, Debug, Default)]
pub struct Context<'a> {
    /// Our own mount namespace: mounts there are unmounted directly.
    pub own_mnt_ns: u64,
    /// Processes in the namespace: with any, it is in use, not a leak.
    pub tasks: u32,
    /// Containers known to have used it (running, or remembered by `serve`).
    pub containers: &'a [ContainerRef],
    /// Shared peer groups of its mounts in our own mount namespace
    /// ([`own_peer_groups`]): unmounting those releases their peers elsewhere.
    pub own_peer_groups: &'a [u32],
}

/// The shared peer groups of the mounts among `reasons` that are in mount namespace `own_mnt_ns`.
pub fn own_peer_groups(reasons: &[Reason], own_mnt_ns: u64) -> Vec<u32> {
    reasons
        .iter()
        .filter_map(|r| match r {
            Reason::Mount { mnt_ns, stack, .. } if *mnt_ns == own_mnt_ns => stack.peer_group,
            _ => None,
        })
        .collect()
}

/// The containers known to have used `row`: those `serve` saw (with
/// names), then those whose tasks use it now.
pub fn known_containers(row: &NsRow, seen_in: &[ContainerRef]) -> Vec<ContainerRef> {
    let mut out = seen_in.to_vec();
    for c in row.containers.iter() {
        if !out.iter().any(|s| s.runtime == c.runtime && s.id == c.id) {
            out.push(ContainerRef {
                runtime: c.runtime,
                id: c.id.clone(),
                pod_uid: c.pod_uid.clone(),
                ..Default::default()
            });
        }
    }
    out
}

/// Processes whose fds must not be poked or killed: init, the container
/// runtimes and the system's daemons (by comm).
const SYSTEM_DAEMONS: [&str; 20] = [
    "systemd",
    "init",
    "dockerd",
    "containerd",
    "kubelet",
    "crio",
    "conmon",
    "podman",
    "sshd",
    "NetworkManager",
    "systemd-network",
    "systemd-udevd",
    "systemd-journal",
    "systemd-logind",
    "dbus-daemon",
    "rsyslogd",
    "cron",
    "snapd",
    "multipathd",
    "polkitd",
];

/// Whether advice must leave process `pid` alone.
pub fn protected(pid: u32, comm: &str, cmdline: &str) -> bool {
    pid <= 2
        // Kernel threads have no command line (shown as "[comm]").
        || cmdline.starts_with('[')
        || comm.starts_with("containerd-shim")
        || SYSTEM_DAEMONS.iter().any(|d| comm == *d || comm.starts_with(&format!("{d}-")))
}

/// The advice for one holder of a namespace.
pub fn advise(reason: &Reason, ctx: &Context<'_>) -> Advice {
    // A zombie is counted in, but uses nothing: only its parent's wait
    // (or the parent's exit, which hands it to a reaper) lets go.
    if let Reason::Task { pid, unreaped_by: Some(parent), .. } = reason {
        return Advice::none(format!(
            "process {pid} has exited, but its parent {parent} has not reaped it (waitpid): fix or stop process \
             {parent}"
        ));
    }
    if ctx.tasks > 0 {
        return Advice::none(format!(
            "in use by {} process{}: not a leak, nothing to release",
            ctx.tasks,
            if ctx.tasks == 1 { "" } else { "es" }
        ));
    }
    match reason {
        Reason::Task { pid, .. } => Advice::none(format!("process {pid} holds it for its next children")),
        Reason::Fd { pid, fd, comm, cmdline } | Reason::Socket { pid, fd, comm, cmdline, .. } => {
            if protected(*pid, comm, cmdline) {
                Advice::none(format!(
                    "{comm}[{pid}] is a system process: do not kill it or poke its fds; if fd {fd} leaks, restart or \
                     reconfigure that service"
                ))
            } else {
                Advice::run(
                    words(["gdb", "-p", &pid.to_string(), "--batch", "-ex", &format!("call (int)close({fd})")]),
                    false,
                    format!("or stop {comm}[{pid}] if it is yours"),
                )
            }
        }
        Reason::Mount { path, mnt_ns, via_pid, stack, netns_name, mnt_ns_entry } => {
            mount_advice(path, *mnt_ns, (*via_pid, mnt_ns_entry.as_ref()), *stack, netns_name, ctx)
        }
        Reason::Owner { .. } => Advice::none("release the namespaces it owns first (nstrace why <inode> on each)"),
        Reason::KernelReference { hint } => Advice::none(format!("find what references it: {hint}")),
        Reason::Teardown { .. } => Advice::none(
            "nothing to release; if it stays dying, look in the kernel log (`dmesg`) for \"unregister_netdevice: \
             waiting for <device> to become free\": a device (often a veth or tunnel whose peer or a socket still \
             holds it) blocks cleanup_net and every network namespace queued behind it",
        ),
    }
}

/// How to reach the mount namespace: a process in it, else a file that refers to it.
type Entry<'a> = (u32, Option<&'a MntNsEntry>);

fn mount_advice(
    path: &str,
    mnt_ns: u64,
    entry: Entry<'_>,
    stack: crate::model::MountStack,
    netns_name: &Option<String>,
    ctx: &Context<'_>,
) -> Advice {
    let here = mnt_ns == ctx.own_mnt_ns;
    if let Some(group) = stack.peer_group.filter(|g| !here && ctx.own_peer_groups.contains(g)) {
        return Advice::none(format!(
            "a shared peer (group {group}) of its mount in this mount namespace: unmounting that one unmounts this one"
        ));
    }
    // Mounted more than once here (one propagated back from a shared peer
    // that mounted it again): unlinking the path fails with EBUSY, and so
    // do `ip netns del` and the runtimes' own removal, until every one is
    // unmounted. The loop ends when nothing is left to unmount.
    if here && stack.stacked > 1 {
        let script = r#"while umount "$1" 2>/dev/null; do :; done; rm -f "$1""#;
        return Advice::run(
            words(["sh", "-c", script, "sh", path]),
            false,
            format!(
                "{} mounts are stacked at it: `ip netns del` and rm fail with EBUSY until all are unmounted",
                stack.stacked
            ),
        );
    }
    let umount = match entry {
        _ if here => words(["umount", path]),
        (0, Some(e)) => words(["nsenter", &format!("--mount={}", e.path), "umount", path]),
        (0, None) => {
            return Advice::none(format!(
                "no task is in mount namespace {mnt_ns} and nstrace found nothing that holds it open: \
                 nstrace why {mnt_ns}"
            ));
        }
        (via_pid, _) => words(["nsenter", "-t", &via_pid.to_string(), "-m", "umount", path]),
    };
    let umount_line = shell_line(&umount);
    let named = |c: &&ContainerRef| c.name.clone().unwrap_or_else(|| c.id.chars().take(12).collect());
    if (path.starts_with("/run/docker/netns/") || path.starts_with("/var/run/docker/netns/"))
        && let Some(c) = ctx.containers.iter().find(|c| c.runtime == crate::containers::Runtime::Docker)
    {
        return Advice::run(
            words(["docker", "rm", "-f", &named(&c)]),
            true,
            format!("dockerd must be running; without it: {umount_line}"),
        );
    }
    // A podman container's netns (podman makes it on the host before the
    // container): `podman rm -f` removes the container, its netns and its
    // network state; `ip netns del` alone leaves podman's own state broken.
    if (path.starts_with("/run/netns/netns-") || path.starts_with("/var/run/netns/netns-"))
        && let Some(c) = ctx.containers.iter().find(|c| c.runtime == crate::containers::Runtime::Podman)
    {
        let rm = shell_line(&words(["rm", path]));
        return Advice::run(
            words(["podman", "rm", "-f", &named(&c)]),
            false,
            format!("podman's container; if its state is gone: {umount_line} && {rm}"),
        );
    }
    // A CRI sandbox's netns: the runtime removes the sandbox and its mount
    // (checked first: it stops the pod); a dead runtime leaves the mount to
    // unmount and remove by hand.
    if let Some(c) = ctx.containers.iter().find(|c| c.pod.is_some() && c.sandbox.is_some())
        && let (Some(pod), Some(sandbox)) = (&c.pod, &c.sandbox)
    {
        let rm = shell_line(&words(["rm", path]));
        return Advice::run(
            words(["crictl", "rmp", "-f", sandbox]),
            false,
            format!("pod {pod}; if its runtime is gone: {umount_line} && {rm}"),
        );
    }
    if let Some(pod) = ctx.containers.iter().find_map(|c| c.pod.as_ref()) {
        // The pod's name reaches the shell as an argument, never as code.
        let script = r#"crictl rmp -f "$(crictl pods -q --name "$1")""#;
        return Advice::run(
            words(["sh", "-c", script, "sh", pod_name(pod)]),
            true,
            format!("pod {pod}; else: {umount_line}"),
        );
    }
    match netns_name {
        Some(n) if here => Advice::run(words(["ip", "netns", "del", n]), true, String::new()),
        _ => Advice::run(umount, true, String::new()),
    }
}

/// "ns/name" → "name".
fn pod_name(pod: &str) -> &str {
    pod.rsplit('/').next().unwrap_or(pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskHold;

    fn ctx(tasks: u32) -> Context<'static> {
        Context { own_mnt_ns: 1, tasks, containers: &[], own_peer_groups: &[] }
    }

    fn mount(mnt_ns: u64, path: &str, name: Option<&str>) -> Reason {
        Reason::Mount {
            path: path.into(),
            mnt_ns,
            via_pid: 42,
            stack: Default::default(),
            netns_name: name.map(Into::into),
            mnt_ns_entry: None,
        }
    }

    #[test]
    fn a_namespace_in_use_gets_no_command() {
        let task = Reason::Task {
            pid: 1,
            comm: "systemd".into(),
            hold: TaskHold::Member,
            tid: None,
            in_pid_ns: None,
            unreaped_by: None,
        };
        let a = advise(&task, &ctx(80));
        assert_eq!(a.command, None);
        assert_eq!(a.note, "in use by 80 processes: not a leak, nothing to release");
        // Except by a zombie: its parent is what to look at.
        let zombie = Reason::Task {
            pid: 9,
            comm: "init".into(),
            hold: TaskHold::Member,
            tid: None,
            in_pid_ns: None,
            unreaped_by: Some(8),
        };
        let a = advise(&zombie, &ctx(1));
        assert_eq!(a.command, None);
        assert!(a.note.contains("parent 8 has not reaped it"), "{}", a.note);
        assert!(advise(&mount(1, "/run/netns/x", Some("x")), &ctx(1)).note.contains("1 process:"));
    }

    #[test]
    fn system_processes_and_kernel_threads_are_left_alone() {
        for (pid, comm, cmdline) in [
            (1, "systemd", "/sbin/init"),
            (2, "kthreadd", "[kthreadd]"),
            (77, "kworker/0:1", "[kworker/0:1]"),
            (500, "dockerd", "/usr/bin/dockerd -H fd://"),
            (501, "containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2 -id x"),
            (502, "systemd-udevd", "/lib/systemd/systemd-udevd"),
        ] {
            let fd = Reason::Fd { pid, fd: 9, comm: comm.into(), cmdline: cmdline.into() };
            let a = advise(&fd, &ctx(0));
            assert_eq!(a.command, None, "{comm}");
            assert!(a.note.contains("system process"), "{a:?}");
        }
        let mine = Reason::Fd { pid: 700, fd: 5, comm: "python3".into(), cmdline: "python3 r.py".into() };
        let a = advise(&mine, &ctx(0));
        assert_eq!(a.command.as_deref(), Some("gdb -p 700 --batch -ex 'call (int)close(5)'"));
        assert!(!a.safe);
        assert_eq!(
            a.text(),
            "gdb -p 700 --batch -ex 'call (int)close(5)'   [check first]   # or stop python3[700] if it is yours"
        );
        let sock = Reason::Socket { pid: 1, fd: 3, comm: "systemd".into(), cmdline: "/sbin/init".into(), socket: 9 };
        assert_eq!(advise(&sock, &ctx(0)).command, None);
    }

    #[test]
    fn pid_1_is_left_alone_whatever_its_name() {
        // A container's or a VM's init is often a shell or a tiny reaper.
        for comm in ["tini", "bash", "dumb-init", "sh", "python3", "my-app"] {
            for reason in [
                Reason::Fd { pid: 1, fd: 4, comm: comm.into(), cmdline: format!("/usr/bin/{comm} --flag") },
                Reason::Socket { pid: 1, fd: 4, comm: comm.into(), cmdline: format!("/usr/bin/{comm}"), socket: 9 },
            ] {
                let a = advise(&reason, &ctx(0));
                assert_eq!(a.command, None, "pid 1 named {comm}: {a:?}");
                assert!(!a.text().contains("gdb -p") && !a.text().contains("kill 1"), "{a:?}");
            }
        }
        // The same names at another pid get the advice.
        let app = Reason::Fd { pid: 4242, fd: 4, comm: "tini".into(), cmdline: "/usr/bin/tini".into() };
        assert!(advise(&app, &ctx(0)).command.is_some());
    }

    #[test]
    fn mounts_get_the_runtime_command_first() {
        let a = advise(&mount(1, "/run/netns/blue", Some("blue")), &ctx(0));
        assert_eq!((a.command.as_deref(), a.safe), (Some("ip netns del blue"), true));
        assert_eq!(a.text(), "ip netns del blue   [safe]");
        assert_eq!(advise(&mount(1, "/tmp/pin", None), &ctx(0)).command.as_deref(), Some("umount /tmp/pin"));
        let other = advise(&mount(2, "/run/netns/blue", Some("blue")), &ctx(0));
        assert_eq!(other.command.as_deref(), Some("nsenter -t 42 -m umount /run/netns/blue"));
        // A mount namespace no task is in: entered through the fd that holds it.
        let fd = Some(MntNsEntry { path: "/proc/70/fd/4".into(), held_by: "fd 4 of process 70".into() });
        let taskless = Reason::Mount {
            path: "/m".into(),
            mnt_ns: 2,
            via_pid: 0,
            stack: Default::default(),
            netns_name: None,
            mnt_ns_entry: fd,
        };
        let a = advise(&taskless, &ctx(0));
        assert_eq!((a.command.as_deref(), a.safe), (Some("nsenter '--mount=/proc/70/fd/4' umount /m"), true));
        let unheld = Reason::Mount {
            path: "/m".into(),
            mnt_ns: 2,
            via_pid: 0,
            stack: Default::default(),
            netns_name: None,
            mnt_ns_entry: None,
        };
        let a = advise(&unheld, &ctx(0));
        assert_eq!(a.command, None);
        assert!(a.note.contains("nstrace why 2"), "{}", a.note);
        let web = [ContainerRef {
            runtime: crate::containers::Runtime::Docker,
            id: "3f2a9c1b7d4e99".into(),
            name: Some("web".into()),
            ..Default::default()
        }];
        let docker = Context { own_mnt_ns: 1, tasks: 0, containers: &web, own_peer_groups: &[] };
        let a = advise(&mount(1, "/run/docker/netns/abc", None), &docker);
        assert_eq!(a.command.as_deref(), Some("docker rm -f web"));
        assert!(a.note.contains("without it: umount /run/docker/netns/abc"), "{a:?}");
        let unnamed = [ContainerRef { name: None, ..web[0].clone() }];
        let a =
            advise(&mount(1, "/var/run/docker/netns/abc", None), &Context { containers: &unnamed, ..docker.clone() });
        assert_eq!(a.command.as_deref(), Some("docker rm -f 3f2a9c1b7d4e"));
        let pod = [ContainerRef {
            runtime: crate::containers::Runtime::Containerd,
            id: "ab".into(),
            pod: Some("prod/web-1".into()),
            ..Default::default()
        }];
        let a = advise(&mount(1, "/run/netns/cni-1234", None), &Context { containers: &pod, ..docker.clone() });
        assert_eq!(a.command.as_deref(), Some(r#"sh -c 'crictl rmp -f "$(crictl pods -q --name "$1")"' sh web-1"#));
        assert!(!a.safe, "a shell script is checked first");
        // With the sandbox id (from the runtime's annotations): that sandbox,
        // and the exact unmount for when the runtime is gone.
        let podman = [ContainerRef {
            runtime: crate::containers::Runtime::Podman,
            id: "ec41f82a61eb".into(),
            name: Some("leaky".into()),
            ..Default::default()
        }];
        let netns = "/run/netns/netns-8111d651-e4b5-6c1b-7509-1848ebb90822";
        let a = advise(&mount(1, netns, Some("netns-8111d651")), &Context { containers: &podman, ..docker.clone() });
        assert_eq!((a.command.as_deref(), a.safe), (Some("podman rm -f leaky"), false));
        assert!(a.note.ends_with(&format!("state is gone: umount {netns} && rm {netns}")), "{a:?}");
        // The container that has both: a pod without a sandbox id listed first does not hide it.
        let sandbox = [pod[0].clone(), ContainerRef { sandbox: Some("5ab1e0c9".into()), ..pod[0].clone() }];
        let a = advise(&mount(1, "/run/netns/cni-1234", None), &Context { containers: &sandbox, ..docker });
        assert_eq!(a.command.as_deref(), Some("crictl rmp -f 5ab1e0c9"));
        assert!(!a.safe, "removing a pod is checked first");
        assert!(
            a.note.ends_with("if its runtime is gone: umount /run/netns/cni-1234 && rm /run/netns/cni-1234"),
            "{a:?}"
        );
    }

    /// `ip netns del` fails with EBUSY while the path stays a mount point
    /// here: two mounts stacked (one propagated back from a shared peer).
    /// The advice unmounts every one, and the peer elsewhere goes with ours.
    #[test]
    fn stacked_mounts_and_their_shared_peers() {
        let stacked = |mnt_ns: u64, via_pid: u32, n: u32| Reason::Mount {
            path: "/run/netns/t".into(),
            mnt_ns,
            via_pid,
            stack: crate::model::MountStack { stacked: n, peer_group: Some(3) },
            netns_name: Some("t".into()),
            mnt_ns_entry: None,
        };
        let mut elsewhere = stacked(8, 80, 1);
        if let Reason::Mount { stack, .. } = &mut elsewhere {
            stack.peer_group = Some(9);
        }
        let reasons = [stacked(1, 2, 2), stacked(7, 70, 1), elsewhere];
        let groups = own_peer_groups(&reasons, 1);
        assert_eq!(groups, [3], "only the groups of our own mount namespace's mounts");
        let ctx = Context { own_mnt_ns: 1, tasks: 0, containers: &[], own_peer_groups: &groups };
        let a = advise(&reasons[0], &ctx);
        assert_eq!(
            a.command.as_deref(),
            Some(r#"sh -c 'while umount "$1" 2>/dev/null; do :; done; rm -f "$1"' sh /run/netns/t"#)
        );
        assert!(!a.safe && a.note.starts_with("2 mounts are stacked at it"), "{a:?}");
        let peer = advise(&reasons[1], &ctx);
        assert_eq!(peer.command, None, "released with ours: {peer:?}");
        assert!(peer.note.contains("shared peer (group 3)"), "{peer:?}");
        // Not a peer of ours (another group, or none here): entered and unmounted there.
        let alone = Context { own_peer_groups: &[], ..ctx };
        assert_eq!(advise(&reasons[1], &alone).command.as_deref(), Some("nsenter -t 70 -m umount /run/netns/t"));
        // One mount here: the usual `ip netns del`.
        assert_eq!(advise(&stacked(1, 2, 1), &ctx).command.as_deref(), Some("ip netns del t"));
    }

    /// A path a process chose can hold anything: each word is quoted, the
    /// JSON carries the exact words, and anything odd is "check first".
    #[test]
    fn hostile_paths_are_quoted_and_checked_first() {
        let hostile = "/tmp/x/my ns;$(touch PWNED)";
        let a = advise(&mount(1, hostile, None), &ctx(0));
        assert_eq!(a.command.as_deref(), Some("umount '/tmp/x/my ns;$(touch PWNED)'"));
        assert_eq!(a.argv, Some(vec!["umount".to_string(), hostile.to_string()]));
        assert!(!a.safe);
        assert!(a.text().ends_with("[check first]"), "{}", a.text());
        let other = advise(&mount(2, "/x/a'b", None), &ctx(0));
        assert_eq!(other.command.as_deref(), Some(r#"nsenter -t 42 -m umount "/x/a'b""#));
        // A newline is quoted for the shell and shown escaped on the terminal.
        let a = advise(&mount(1, "/tmp/a\nkept alive by: FAKE", None), &ctx(0));
        assert!(!a.text().contains('\n'), "{}", a.text());
        assert!(a.text().contains("\\x0a"), "{}", a.text());
        let named = advise(&mount(1, "/run/netns/x;reboot", Some("x;reboot")), &ctx(0));
        assert_eq!(named.command.as_deref(), Some("ip netns del 'x;reboot'"));
        assert!(!named.safe);
    }

    #[test]
    fn owners_and_kernel_references_have_nothing_to_run() {
        let a = advise(&Reason::Owner { dependents: vec![] }, &ctx(0));
        assert!(a.command.is_none() && a.note.contains("nstrace why"));
        let a = advise(&Reason::KernelReference { hint: "sockets".into() }, &ctx(0));
        assert_eq!(a.text(), "(nothing to run)   # find what references it: sockets");
        let pfc = Reason::Task {
            pid: 9,
            comm: "unshare".into(),
            hold: TaskHold::PidForChildren,
            tid: None,
            in_pid_ns: None,
            unreaped_by: None,
        };
        assert!(advise(&pfc, &ctx(0)).command.is_none());
    }

    #[test]
    fn known_containers_are_those_seen_then_those_running() {
        use crate::containers::Container;
        let mut row = NsRow::new(nstrace_common::ns::NsType::Net, 10);
        row.containers = vec![
            Container { runtime: crate::containers::Runtime::Docker, id: "aaa".into(), pod_uid: None },
            Container {
                runtime: crate::containers::Runtime::Containerd,
                id: "bbb".into(),
                pod_uid: Some("uid-1".into()),
            },
            Container { runtime: crate::containers::Runtime::CriO, id: "aaa".into(), pod_uid: None },
        ]
        .into();
        let seen = [ContainerRef {
            runtime: crate::containers::Runtime::Docker,
            id: "aaa".into(),
            name: Some("web".into()),
            ..Default::default()
        }];
        let known = known_containers(&row, &seen);
        let got: Vec<(&str, &str, Option<&str>, Option<&str>)> =
            known.iter().map(|c| (c.runtime.name(), c.id.as_str(), c.name.as_deref(), c.pod_uid.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("docker", "aaa", Some("web"), None),
                ("containerd", "bbb", None, Some("uid-1")),
                ("cri-o", "aaa", None, None),
            ],
            "the named one once; same id, other runtime: another container"
        );
        assert!(known_containers(&NsRow::new(nstrace_common::ns::NsType::Net, 1), &[]).is_empty());
    }
}

//! A driver shell for the limits tests: root of a new user namespace,
//! run one command a line (see [`DRIVER`]).

use std::{
    os::unix::fs::MetadataExt,
    process::{Command, Stdio},
};

use crate::{ChildGuard, ns_inode, spawn_ready};

/// A shell run as root of a new user namespace (`unshare -Ur sh -c DRIVER
/// DRIVER`), driven one command a line on stdin, one answer a line on
/// stdout. First it prints `user INODE` (its user namespace). Commands:
///
/// - `limit [N]`: sets its max_uts_namespaces to N (if given); `limit VALUE`.
/// - `hold`: `unshare -u sleep infinity` in the background (setpriv's
///   parent-death signal kills it with the driver); once it sleeps (its
///   unshare succeeded) `holder PID`, else `hold-failed: …` (unshare's
///   error goes to the driver's stderr, which the test's output shows).
/// - `try`: `unshare -u true`; `ok PID` or `refused PID ERROR` (PID: the
///   process that called unshare(2), the one a refusal event names).
/// - `nest`: execs a new driver in a child user namespace (prints `user INODE`).
pub const DRIVER: &str = r#"
set -u
stat -L -c 'user %i' /proc/self/ns/user
hold() {
  unshare -u setpriv --pdeathsig KILL sleep infinity </dev/null >/dev/null &
  p=$!
  while [ "$(cat /proc/$p/comm 2>/dev/null)" != sleep ]; do
    case "$(cat /proc/$p/stat 2>/dev/null)" in
      ""|*") Z "*) wait $p; echo "hold-failed: unshare -u exited $? (its error is on stderr)"; return;;
    esac
    sleep 0.01
  done
  echo "holder $p"
}
while read -r cmd arg; do
  case "$cmd" in
    limit)
      if [ -n "$arg" ] && ! echo "$arg" > /proc/sys/user/max_uts_namespaces; then echo limit-failed; continue; fi
      echo "limit $(cat /proc/sys/user/max_uts_namespaces)";;
    hold) hold;;
    try)
      if out=$(sh -c 'echo $$; exec unshare -u true' 2>&1); then echo "ok $out"; else echo "refused $(echo $out)"; fi;;
    nest) exec unshare -Ur sh -c "$0" "$0";;
    *) echo "unknown command $cmd";;
  esac
done
"#;

/// A running [`DRIVER`] and the uts holders it started (killed when
/// dropped, each only while its pid is still the process in that uts
/// namespace; setpriv's parent-death signal kills the rest with the driver).
pub struct Driver {
    holders: Vec<(u32, u64)>,
    /// The user namespace the driver is root of now (changes with `nest`).
    pub user_ns: u64,
    child: ChildGuard,
}

impl Driver {
    pub fn start() -> Driver {
        let (child, first) =
            spawn_ready(Command::new("unshare").args(["-Ur", "sh", "-c", DRIVER, DRIVER]).stdin(Stdio::piped()));
        let user_ns = parse_user(&first);
        assert_ne!(user_ns, ns_inode(std::process::id(), "user"), "unshare -Ur made no user namespace");
        Driver { holders: Vec::new(), user_ns, child }
    }

    pub fn ask(&mut self, command: &str) -> String {
        self.child.send_line(command);
        self.child.next_line()
    }

    /// Sets the driver's max_uts_namespaces; returns what it reads back.
    pub fn set_limit(&mut self, n: u64) -> u64 {
        let said = self.ask(&format!("limit {n}"));
        let read = parse_limit(&said);
        assert_eq!(
            read, n,
            "max_uts_namespaces of user namespace {} reads back {read} after writing {n}",
            self.user_ns
        );
        read
    }

    pub fn limit(&mut self) -> u64 {
        let said = self.ask("limit");
        parse_limit(&said)
    }

    /// A process in a new uts namespace: (pid, inode of its uts namespace).
    pub fn hold(&mut self) -> (u32, u64) {
        let said = self.ask("hold");
        let pid: u32 = said
            .strip_prefix("holder ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the driver could not make a uts namespace to hold: {said:?}"));
        let uts = ns_inode(pid, "uts");
        assert_ne!(uts, ns_inode(self.child.pid(), "uts"), "holder {pid} is not in a uts namespace of its own");
        self.holders.push((pid, uts));
        (pid, uts)
    }

    /// `unshare -u true` in the driver's user namespace: Ok(pid) when it
    /// made its namespace, else Err((pid, what unshare printed)).
    pub fn try_uts(&mut self) -> Result<u32, (u32, String)> {
        let said = self.ask("try");
        let pid = |rest: &str| -> u32 {
            rest.split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("driver said {said:?}"))
        };
        if let Some(rest) = said.strip_prefix("ok ") {
            Ok(pid(rest))
        } else if let Some(rest) = said.strip_prefix("refused ") {
            let error = rest.split_once(' ').map(|(_, e)| e.to_string()).unwrap_or_default();
            Err((pid(rest), error))
        } else {
            panic!("the driver did not say whether `unshare -u true` worked: {said:?}")
        }
    }

    /// Goes on in a new child user namespace; returns its inode.
    pub fn nest(&mut self) -> u64 {
        let said = self.ask("nest");
        let user_ns = parse_user(&said);
        assert_ne!(user_ns, self.user_ns, "nest made no new user namespace");
        self.user_ns = user_ns;
        user_ns
    }

    pub fn kill_holder(&mut self, pid: u32) {
        kill_if_in(pid, self.holders.iter().find(|h| h.0 == pid).expect("a holder of this driver").1);
        self.holders.retain(|h| h.0 != pid);
    }

    pub fn kill_holders(&mut self) {
        for (pid, uts) in std::mem::take(&mut self.holders) {
            kill_if_in(pid, uts);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill_holders();
    }
}

/// SIGKILL to `pid` if it is still in the uts namespace `uts` (else the
/// pid is gone, or someone else's by now).
pub fn kill_if_in(pid: u32, uts: u64) {
    if std::fs::metadata(format!("/proc/{pid}/ns/uts")).is_ok_and(|m| m.ino() == uts) {
        // SAFETY: kill(2) takes no pointers.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

pub fn parse_user(line: &str) -> u64 {
    line.strip_prefix("user ")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("the driver did not name its user namespace: {line:?}"))
}

pub fn parse_limit(line: &str) -> u64 {
    line.strip_prefix("limit ")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("the driver could not set or read max_uts_namespaces: {line:?}"))
}

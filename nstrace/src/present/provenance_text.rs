//! Creators and pins as one line of text (`why`, `leaks`, `history`).

use crate::{
    model::{Creator, Pin, PinKind},
    present::render::clock_time,
};

/// "ip[812] (ip netns add blue; /usr/bin/ip) via unshare, parent sh[800], in docker:3f2a9c1b7d4e (web)".
pub fn creator_text(c: &Creator) -> String {
    crate::present::escape::text(&creator_text_raw(c)).into_owned()
}

/// [`creator_text`] before escaping.
fn creator_text_raw(c: &Creator) -> String {
    let mut s = c.process().to_string();
    match (&c.origin.cmdline, &c.origin.exe) {
        (Some(cmd), Some(exe)) => s.push_str(&format!(" ({cmd}; {exe})")),
        (Some(cmd), None) => s.push_str(&format!(" ({cmd})")),
        (None, Some(exe)) => s.push_str(&format!(" ({exe})")),
        (None, None) => {}
    }
    s.push_str(&format!(" via {}", c.cause));
    if let Some(p) = &c.origin.parent {
        s.push_str(&format!(", parent {p}"));
    }
    if let Some(k) = &c.origin.container {
        s.push_str(&format!(", in {}", container_text(k)));
    }
    s
}

/// "docker:3f2a9c1b7d4e (web) pod prod/web-1".
pub fn container_text(c: &crate::origin::ContainerRef) -> String {
    crate::present::escape::text(&container_text_raw(c)).into_owned()
}

/// [`container_text`] before escaping.
fn container_text_raw(c: &crate::origin::ContainerRef) -> String {
    match &c.pod {
        Some(pod) => format!("{} pod {pod}", c.short()),
        None => c.short(),
    }
}

/// "mount /run/netns/blue (mnt ns 4026531841) by ip[812] [mount-syscall] since 10:00:01.000000".
pub fn pin_text(p: &Pin) -> String {
    crate::present::escape::text(&pin_text_raw(p)).into_owned()
}

/// [`pin_text`] before escaping.
fn pin_text_raw(p: &Pin) -> String {
    let mut s = match p.kind {
        PinKind::Mount => format!("mount {}", p.target),
        PinKind::Fd => format!("fd {}", p.target),
    };
    if let Some(m) = p.mnt_ns {
        s.push_str(&format!(" (mnt ns {m})"));
    }
    match &p.by {
        Some(by) => s.push_str(&format!(" by {by} [{}]", p.attribution)),
        None => s.push_str(" by an unknown process [first seen by a refresh]"),
    }
    s.push_str(&format!(" since {}", clock_time(p.since)));
    if let Some(r) = p.released {
        s.push_str(&format!(", released {}", clock_time(r)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::{ContainerRef, Origin};
    use crate::time::UnixTime;

    #[test]
    fn creator_and_pin_lines() {
        let mut c = Creator {
            pid: 812,
            tid: 812,
            comm: "ip".into(),
            cause: crate::events::Cause::Unshare,
            flags: 0,
            origin: Origin::default(),
        };
        assert_eq!(creator_text(&c), "ip[812] via unshare");
        c.origin = Origin {
            exe: Some("/usr/bin/ip".into()),
            cmdline: Some("ip netns add blue".into()),
            parent: Some("sh[800]".parse().unwrap()),
            cgroup: None,
            cgroup_id: None,
            container: Some(ContainerRef {
                runtime: crate::containers::Runtime::Docker,
                id: "3f2a9c1b7d4e99".into(),
                name: Some("web".into()),
                pod: Some("prod/web-1".into()),
                pod_uid: None,
                sandbox: None,
            }),
        };
        assert_eq!(
            creator_text(&c),
            "ip[812] (ip netns add blue; /usr/bin/ip) via unshare, parent sh[800], in docker:3f2a9c1b7d4e (web) pod prod/web-1"
        );
        let mut p = Pin {
            kind: PinKind::Mount,
            target: "/run/netns/blue".into(),
            mnt_ns: Some(7),
            by: None,
            attribution: crate::model::Attribution::Unknown,
            since: UnixTime::from_secs(3600.5),
            released: None,
        };
        assert_eq!(
            pin_text(&p),
            "mount /run/netns/blue (mnt ns 7) by an unknown process [first seen by a refresh] since 01:00:00.500000"
        );
        p.by = Some("ip[812]".parse().unwrap());
        p.attribution = crate::model::Attribution::MountSyscall;
        p.released = Some(UnixTime::from_secs(3601.0));
        assert_eq!(
            pin_text(&p),
            "mount /run/netns/blue (mnt ns 7) by ip[812] [mount-syscall] since 01:00:00.500000, released 01:00:01.000000"
        );
        let fd = Pin {
            kind: PinKind::Fd,
            target: "9:3".into(),
            mnt_ns: None,
            by: Some("py[9]".parse().unwrap()),
            attribution: crate::model::Attribution::FdOwner,
            since: UnixTime::from_secs(0.0),
            released: None,
        };
        assert_eq!(pin_text(&fd), "fd 9:3 by py[9] [fd-owner] since 00:00:00.000000");
    }
}

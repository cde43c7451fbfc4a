//! Parsers of /proc text: ns links, stat, cgroup, mountinfo.

use super::*;

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub(super) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    u32::try_from(n).ok()
}

/// Parses an nsfs link or dentry name, `net:[4026531840]`. The
/// `*_for_children` spellings are accepted too (older kernels named the
/// dentry after the /proc entry it was first opened through).
pub fn parse_ns_link(link: &[u8]) -> Option<(NsType, u64)> {
    let open = link.iter().position(|&b| b == b':')?;
    let (name, rest) = link.split_at(open);
    let digits = rest.strip_prefix(b":[")?.strip_suffix(b"]")?;
    let ns_type = match name {
        b"pid_for_children" => NsType::Pid,
        b"time_for_children" => NsType::Time,
        n => *NsType::ALL.iter().find(|t| t.name().as_bytes() == n)?,
    };
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let inode = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((ns_type, inode))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub ppid: u32,
    pub flags: u64,
    pub threads: u32,
}

/// Parses `/proc/PID/stat`. comm may hold spaces and parentheses, so the
/// fields start after the *last* `)`.
pub fn parse_stat(s: &[u8]) -> Option<Stat> {
    let open = s.iter().position(|&b| b == b'(')?;
    let close = s.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = String::from_utf8_lossy(&s[open + 1..close]).into_owned();
    let mut f = s[close + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty());
    // After comm: state(0) ppid(1) pgrp session tty tpgid flags(6) ...
    // num_threads is field 20 of the file, index 17 here.
    let num = |f: Option<&[u8]>| f.and_then(|f| std::str::from_utf8(f).ok()?.trim().parse::<u64>().ok());
    let ppid = num(f.nth(1))? as u32;
    let flags = num(f.nth(4))?;
    let threads = num(f.nth(10))? as u32;
    Some(Stat { comm, ppid, flags, threads })
}

/// The state letter of a `/proc/PID/stat` text (`Z` for a zombie).
pub fn stat_state(s: &[u8]) -> Option<u8> {
    let close = s.iter().rposition(|&b| b == b')')?;
    s[close + 1..].iter().copied().find(|b| *b != b' ')
}

/// The cgroup v2 entry (`0::/path`) of `/proc/PID/cgroup`, else the path
/// of the first line (v1-only hosts).
pub fn parse_cgroup(s: &[u8]) -> Option<String> {
    let lines = s.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let mut first = None;
    for line in lines {
        let mut parts = line.splitn(3, |&b| b == b':');
        let (Some(id), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == b"0" && ctl.is_empty() {
            return Some(String::from_utf8_lossy(path).into_owned());
        }
        first.get_or_insert(path);
    }
    first.map(|p| String::from_utf8_lossy(p).into_owned())
}

/// The fields of a mountinfo line that holder discovery needs.
#[derive(Debug, PartialEq, Eq)]
pub struct MountLine {
    pub mount_id: u32,
    /// Root of the mount within its filesystem; for nsfs, `net:[...]`.
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// The shared peer group (`shared:N` among the optional fields).
    pub peer_group: Option<u32>,
}

/// Parses one `/proc/PID/mountinfo` line: `id parent maj:min root point
/// opts [optional fields...] - fstype source superopts`.
pub fn parse_mountinfo_line(line: &[u8]) -> Option<MountLine> {
    let mut f = line.split(|&b| b == b' ');
    let mount_id = parse_u32(f.next()?)?;
    let _parent = f.next()?;
    let _dev = f.next()?;
    let root = unescape(f.next()?);
    let mount_point = unescape(f.next()?);
    let _opts = f.next()?;
    // Zero or more optional fields end at a lone "-".
    let mut peer_group = None;
    loop {
        let field = f.next()?;
        if field == b"-" {
            break;
        }
        if let Some(n) = field.strip_prefix(b"shared:") {
            peer_group = parse_u32(n);
        }
    }
    let fs_type = unescape(f.next()?);
    let source = unescape(f.next()?);
    Some(MountLine { mount_id, root, mount_point, fs_type, source, peer_group })
}

/// Undoes the kernel's octal escapes (`\040` space, `\011`, `\012`, `\134`).
pub(super) fn unescape(s: &[u8]) -> String {
    if !s.contains(&b'\\') {
        return String::from_utf8_lossy(s).into_owned();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = s.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (s[i], oct) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

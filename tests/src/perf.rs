//! perf's own output, parsed (the perf-format and perf.data tests).

/// One PERF_RECORD_NAMESPACES as perf script prints it: comm, pid, tid and
/// (index, type, dev, inode) per namespace.
#[derive(Debug, PartialEq)]
pub struct PerfNamespaces {
    pub comm: String,
    pub pid: u32,
    pub tid: u32,
    pub namespaces: Vec<(u32, String, u64, u64)>,
}

/// Parses PERF_RECORD_NAMESPACES records out of `perf script
/// --show-namespace-events` (or `nstrace trace --format perf`) output.
pub fn parse_perf(text: &str) -> Vec<PerfNamespaces> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((head, rest)) = line.split_once(": PERF_RECORD_NAMESPACES ") else { continue };
        let comm = head.split_whitespace().next().unwrap_or_default().to_string();
        let ids = rest.split_whitespace().next().unwrap_or_default();
        let (pid, tid) = ids.split_once('/').unwrap();
        let mut body = String::new();
        while let Some(l) = lines.peek() {
            if !l.starts_with('\t') {
                break;
            }
            body.push_str(l.trim());
            body.push(' ');
            lines.next();
        }
        let namespaces = body
            .trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace())
            .split(", ")
            .filter_map(|e| {
                // "1/uts: 4/0xf0000151"
                let (idx_name, dev_ino) = e.trim().trim_end_matches(']').split_once(": ")?;
                let (idx, name) = idx_name.split_once('/')?;
                let (dev, ino) = dev_ino.split_once('/')?;
                let ino = u64::from_str_radix(ino.trim_start_matches("0x"), 16).ok()?;
                Some((idx.parse().ok()?, name.to_string(), dev.parse().ok()?, ino))
            })
            .collect();
        out.push(PerfNamespaces { comm, pid: pid.parse().unwrap(), tid: tid.parse().unwrap(), namespaces });
    }
    out
}

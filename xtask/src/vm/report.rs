//! Parses a `vm-test` guest's console (the markers the guest script prints
//! around `nstrace doctor` and each libtest binary) into a summary.

use std::{fmt::Write as _, time::Duration};

use super::initramfs::MARK;

#[derive(Default)]
pub struct Binary {
    name: String,
    start: Duration,
    time: Duration,
    rc: Option<i32>,
    /// libtest's `test result: ...` line, after the verdict.
    result: Option<String>,
    /// (test, outcome, time since the previous result line)
    tests: Vec<(String, String, Duration)>,
    last: Duration,
    /// `---- name stdout ----` sections (`--show-output` prints passing ones too).
    sections: Vec<(String, Vec<String>)>,
    in_section: bool,
    /// A `test name ... ` line whose verdict comes on a later line.
    pending: Option<String>,
    /// Reasons tests printed for skipping (`SKIPPED name: why`).
    skipped: Vec<String>,
}

/// Console lines from the guest kernel that mean the run cannot be trusted.
const KERNEL_TROUBLE: &[&str] =
    &["Oops", "BUG:", "Kernel panic", "WARNING:", "general protection fault", "detected stalls", "hung_task"];

/// A printk line (`[   12.345678] text`) without its timestamp.
fn printk(line: &str) -> Option<&str> {
    let (time, text) = line.strip_prefix('[')?.split_once("] ")?;
    time.trim().bytes().all(|c| c.is_ascii_digit() || c == b'.').then_some(text)
}

fn is_verdict(s: &str) -> bool {
    ["ok", "FAILED", "ignored"].iter().any(|v| s.starts_with(v))
}

#[derive(Default)]
pub struct Report {
    pub label: String,
    /// `--test-threads` in the guest: with 1, per-test times are exact.
    threads: u32,
    origin: String,
    uname: Option<String>,
    root: Option<String>,
    /// Host time from qemu's start to the guest script's first line.
    boot: Option<Duration>,
    guest_uptime: Option<String>,
    doctor: Vec<String>,
    doctor_rc: Option<i32>,
    in_doctor: bool,
    binaries: Vec<Binary>,
    /// Suites not chosen for this kernel (`Options::suites`).
    not_run: Vec<String>,
    done: bool,
    pub timed_out: bool,
    /// Kernel oopses, warnings, lockups (first few, with what was running).
    kernel: Vec<String>,
    pub total: Duration,
    pub errors: Vec<String>,
}

fn rc(s: &str) -> Option<i32> {
    s.rsplit_once("rc=")?.1.trim().parse().ok()
}

impl Report {
    pub fn new(label: &str, origin: &str, threads: u32) -> Report {
        Report { label: label.into(), origin: origin.into(), threads, ..Default::default() }
    }

    pub fn failed(label: &str, e: &anyhow::Error) -> Report {
        Report { label: label.into(), errors: vec![format!("{e:#}")], ..Default::default() }
    }

    pub fn passed(&self) -> bool {
        self.done
            && !self.timed_out
            && self.errors.is_empty()
            && self.kernel.is_empty()
            && !self.binaries.is_empty()
            && self.binaries.iter().all(|b| b.rc == Some(0))
    }

    /// Feeds one console line that arrived `at` after qemu started.
    pub fn line(&mut self, at: Duration, line: &str) {
        if let Some(i) = line.find(MARK) {
            return self.marker(at, line[i + MARK.len()..].trim());
        }
        if let Some(text) = printk(line).filter(|t| KERNEL_TROUBLE.iter().any(|k| t.contains(k)))
            && self.kernel.len() < 6
        {
            let during = match self.binaries.last() {
                _ if self.in_doctor => "doctor",
                Some(b) if b.rc.is_none() => &b.name,
                _ => "boot",
            };
            self.kernel.push(format!("{text} (during {during})"));
        }
        if self.in_doctor {
            self.doctor.push(line.to_string());
            return;
        }
        let Some(b) = self.binaries.last_mut().filter(|b| b.rc.is_none()) else { return };
        // Tests print why they skip straight to stderr, past libtest's capture: at the start of a
        // line or after libtest's `test name ... `, whose verdict then comes on a later line.
        let mut line = line;
        if let Some(i) = line.find("SKIPPED ") {
            let why = line[i + "SKIPPED ".len()..].trim().to_string();
            if !b.skipped.contains(&why) {
                b.skipped.push(why);
            }
            line = &line[..i];
        }
        if let Some(name) = b.pending.take() {
            if is_verdict(line.trim()) {
                b.tests.push((name, line.trim().to_string(), at - b.last));
                b.last = at;
                return;
            }
            b.pending = Some(name);
        }
        if let Some(r) = line.strip_prefix("test result: ") {
            b.result = Some(r.to_string());
            b.in_section = false;
        } else if let Some(name) = line.strip_prefix("---- ").and_then(|l| l.strip_suffix(" stdout ----")) {
            b.sections.push((name.to_string(), Vec::new()));
            b.in_section = true;
        } else if line == "failures:" || line == "successes:" {
            b.in_section = false;
        } else if b.in_section {
            if let Some((_, lines)) = b.sections.last_mut() {
                lines.push(line.to_string());
            }
        } else if let Some((name, outcome)) = line.strip_prefix("test ").and_then(|l| l.split_once(" ...")) {
            if is_verdict(outcome.trim()) {
                b.tests.push((name.to_string(), outcome.trim().to_string(), at - b.last));
                b.last = at;
            } else {
                b.pending = Some(name.to_string());
            }
        }
    }

    fn marker(&mut self, at: Duration, m: &str) {
        let (word, rest) = m.split_once(' ').unwrap_or((m, ""));
        match word {
            "uname" => self.uname = Some(rest.to_string()),
            "root" => self.root = Some(rest.to_string()),
            "up" => {
                self.boot = Some(at);
                self.guest_uptime = Some(rest.to_string());
            }
            "fatal" => self.errors.push(format!("guest: {rest}")),
            "warn" => self.errors.push(format!("guest: {rest}")),
            "done" => self.done = true,
            "skip" => {
                let name = rest.strip_prefix("test ").unwrap_or(rest);
                self.not_run.push(name.split_once(':').map_or(name, |n| n.0).to_string());
            }
            "begin" if rest == "doctor" => self.in_doctor = true,
            "end" if rest.starts_with("doctor") => {
                self.in_doctor = false;
                self.doctor_rc = rc(rest);
            }
            "begin" => {
                let name = rest.strip_prefix("test ").unwrap_or(rest).to_string();
                self.binaries.push(Binary { name, start: at, last: at, ..Default::default() });
            }
            "end" => {
                if let Some(b) = self.binaries.last_mut() {
                    b.rc = Some(rc(rest).unwrap_or(-1));
                    b.time = at - b.start;
                }
            }
            _ => {}
        }
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        let _ = writeln!(s, "== vm {}: {verdict}", self.label);
        if !self.origin.is_empty() {
            let _ =
                writeln!(s, "   kernel {} from {}", self.uname.as_deref().unwrap_or("(did not report)"), self.origin);
        }
        let boot = self.boot.map_or("-".into(), |b| format!("{:.1}s", b.as_secs_f64()));
        let uptime = self.guest_uptime.as_deref().unwrap_or("-");
        let root = self.root.as_deref().unwrap_or("-");
        let _ =
            writeln!(s, "   boot {boot} (guest uptime {uptime}s), total {:.1}s, root {root}", self.total.as_secs_f64());
        for e in &self.errors {
            let _ = writeln!(s, "   error: {e}");
        }
        if self.timed_out {
            let _ = writeln!(s, "   error: timed out (qemu killed)");
        }
        for k in &self.kernel {
            let _ = writeln!(s, "   kernel: {k}");
        }
        if let Some(rc) = self.doctor_rc {
            let _ = writeln!(s, "   doctor (exit {rc}); what it lacks and the mechanisms it picks:");
            let mut mech = false;
            for l in &self.doctor {
                mech |= l == "mechanisms";
                let t = l.trim_start();
                if mech || ["no ", "err ", "fail", "warn"].iter().any(|p| t.starts_with(p)) {
                    let _ = writeln!(s, "     {l}");
                }
            }
        }
        for b in &self.binaries {
            let verdict = match b.rc {
                Some(0) => "ok".to_string(),
                Some(124) => "TIMED OUT".to_string(),
                Some(rc) => format!("FAILED (exit {rc})"),
                None => "did not finish".to_string(),
            };
            let result = b.result.as_deref().map(|r| r.split_once(". ").map_or(r, |x| x.1)).unwrap_or("");
            let _ = writeln!(s, "   {:<12} {:<16} {:>7.1}s  {result}", b.name, verdict, b.time.as_secs_f64());
            for (name, outcome, _) in b.tests.iter().filter(|t| t.1 != "ok") {
                let _ = writeln!(s, "       {outcome}: {name}");
                for l in failure_message(b, name) {
                    let cut = l.char_indices().nth(300).map_or(l, |(i, _)| &l[..i]);
                    let more = if cut.len() < l.len() { " …" } else { "" };
                    let _ = writeln!(s, "           {cut}{more}");
                }
            }
            for l in &b.skipped {
                let _ = writeln!(s, "       skipped {l}");
            }
        }
        if !self.not_run.is_empty() {
            let _ = writeln!(s, "   not run on this kernel (chosen elsewhere): {}", self.not_run.join(", "));
        }
        let mut slow: Vec<(&str, Duration)> =
            self.binaries.iter().flat_map(|b| b.tests.iter().map(|t| (t.0.as_str(), t.2))).collect();
        slow.sort_by_key(|t| std::cmp::Reverse(t.1));
        if !slow.is_empty() {
            let top: Vec<String> = slow.iter().take(6).map(|(n, d)| format!("{n} {:.1}s", d.as_secs_f64())).collect();
            let how = if self.threads == 1 { "one at a time" } else { "between results, tests overlapping" };
            let _ = writeln!(s, "   slowest ({how}): {}", top.join(", "));
        }
        s
    }
}

/// The first lines of the panic message in `test`'s captured output.
fn failure_message<'a>(b: &'a Binary, test: &str) -> Vec<&'a str> {
    let Some((_, lines)) = b.sections.iter().find(|(n, _)| n == test) else { return Vec::new() };
    let Some(at) = lines.iter().position(|l| l.contains("panicked at")) else {
        return lines.iter().rev().take(3).rev().map(String::as_str).collect();
    };
    lines[at + 1..]
        .iter()
        .take_while(|l| !l.starts_with("note: run with") && !l.starts_with("stack backtrace"))
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_markers_verdicts_skips_and_failures() {
        let log = "@@nstrace-vm root overlay
@@nstrace-vm uname 6.1.0-56-amd64
@@nstrace-vm up 4.2
@@nstrace-vm begin doctor
mechanisms
  events    tracepoints
@@nstrace-vm end doctor rc=0
@@nstrace-vm begin test ls
running 3 tests
test a ... SKIPPED a: no tree walk
ok
SKIPPED c: not root
test b ... FAILED
test c ... ok
[  332.845324] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI

successes:

---- a stdout ----

failures:

---- b stdout ----
thread 'b' panicked at tests/ls.rs:10:5:
assertion failed: x

note: run with `RUST_BACKTRACE=1`

failures:
    b

test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.00s
@@nstrace-vm end test ls rc=101
@@nstrace-vm skip test serve: not chosen for this kernel
@@nstrace-vm done";
        let mut r = Report::new("6.1", "pkg", 2);
        for (i, l) in log.lines().enumerate() {
            r.line(Duration::from_secs(i as u64), l);
        }
        assert!(!r.passed());
        let b = &r.binaries[0];
        let verdicts: Vec<_> = b.tests.iter().map(|t| (t.0.as_str(), t.1.as_str())).collect();
        assert_eq!(verdicts, [("a", "ok"), ("b", "FAILED"), ("c", "ok")]);
        assert_eq!(b.skipped, ["a: no tree walk", "c: not root"]);
        assert_eq!(failure_message(b, "b"), ["assertion failed: x"]);
        let sum = r.summary();
        assert!(sum.contains("FAILED: b\n           assertion failed: x"), "{sum}");
        assert!(sum.contains("root overlay") && sum.contains("events    tracepoints"), "{sum}");
        assert!(sum.contains("kernel: Oops: int3: 0000 [#1] PREEMPT SMP NOPTI (during ls)"), "{sum}");
        assert!(sum.contains("not run on this kernel (chosen elsewhere): serve"), "{sum}");
    }
}

//! One module per subcommand.

pub mod completions;
pub mod diff;
pub mod doctor;
pub mod export;
pub mod history;
pub mod leaks;
pub mod limits;
pub mod live;
pub mod ls;
pub mod serve;
pub mod trace;
pub mod why;

/// `--mechanism JOB=NAME`, shared by the subcommands that trace.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MechanismArgs {
    /// Force the mechanism for a job instead of the best one probed (repeatable):
    /// create=fexit-ns-tree|fexit-constructors|kprobe-constructors|tracepoints,
    /// destroy=fentry-ns-tree|fentry-free-inum|kprobe-free-inum|tree-walk|proc-rescan,
    /// snapshot=tree-walk|proc. `nstrace doctor` lists what this kernel supports.
    #[arg(long = "mechanism", value_name = "JOB=NAME")]
    pub mechanism: Vec<String>,
}

impl MechanismArgs {
    pub fn overrides(&self) -> Result<crate::kernel::mechanism::Overrides, crate::error::Error> {
        crate::kernel::mechanism::Overrides::parse(&self.mechanism)
            .map_err(|e| crate::error::Error::Usage(e.to_string()))
    }
}

/// How often the kernel's lists are checked and walked, shared by the
/// subcommands that trace.
#[derive(Debug, Clone, clap::Args)]
pub struct WalkArgs {
    /// Time between checks that confirm deaths and heal lost events (1, 500ms, 5s, ...):
    /// on kernels whose namespace lists count their changes (6.18) a check
    /// reads the counts and walks only the lists that changed; elsewhere it
    /// walks every list.
    #[arg(long, value_parser = crate::cli::trace::parse_seconds, default_value = "1")]
    pub walk_interval: std::time::Duration,
    /// Time between walks of every list whatever the checks found, and
    /// (serve, export) between holder refreshes when nothing changed: a
    /// safety net (1m, 10m, ...). Scaled up by 1 per 2,500 namespaces.
    #[arg(long, value_parser = crate::cli::trace::parse_seconds, default_value = "60")]
    pub sweep: std::time::Duration,
}

/// How a one-shot command finds `nstrace serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServiceArgs {
    /// Ask the `nstrace serve` listening on this socket (default: $NSTRACE_SOCKET,
    /// else /run/nstrace/nstrace.sock); without one, a one-shot snapshot answers.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// Do not ask the service: answer from a one-shot snapshot.
    #[arg(long)]
    pub no_service: bool,
}

/// How `ls`, `why` and `leaks` run: root first (the service's socket is
/// root's too, and a snapshot needs it); then the service, unless a source
/// is forced; else `answer` from a one-shot snapshot.
pub fn from_service_or_snapshot(
    command: &str,
    svc: &ServiceArgs,
    source: Option<crate::snapshot::Source>,
    extra: &[String],
    answer: impl FnOnce(crate::snapshot::OneShot) -> Result<i32, crate::error::Error>,
) -> Result<i32, crate::error::Error> {
    crate::error::require_privileges()?;
    if source.is_none()
        && let Some(code) = ask_service(command, svc, extra)?
    {
        return Ok(code);
    }
    answer(crate::snapshot::take(source)?)
}

/// Runs `command` (with this process's own arguments, then `extra`) on the
/// service and prints its answer. `Ok(None)`: no service answers; the
/// caller takes a snapshot (and this says so once on stderr).
pub fn ask_service(command: &str, svc: &ServiceArgs, extra: &[String]) -> Result<Option<i32>, crate::error::Error> {
    ask_service_or(command, svc, extra, "a one-shot snapshot (creation, creators and pins unknown)")
}

/// [`ask_service`], saying what answers instead (`instead`) when no service does.
pub fn ask_service_or(
    command: &str,
    svc: &ServiceArgs,
    extra: &[String],
    instead: &str,
) -> Result<Option<i32>, crate::error::Error> {
    use std::io::Write;
    if svc.no_service {
        return Ok(None);
    }
    let path = crate::remote::socket_path(svc.socket.as_deref());
    // The command's own arguments, as typed (argv[1] is the command).
    let mut args: Vec<String> = std::env::args().skip(2).collect();
    args.extend_from_slice(extra);
    let request = crate::remote::Request { version: crate::remote::VERSION, command: command.into(), args };
    match crate::remote::call(&path, &request, std::time::Duration::from_secs(120)) {
        Ok(Some(reply)) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(reply.stdout.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(crate::error::Error::io("writing output", e));
                }
                _ => {}
            }
            eprint!("{}", reply.stderr);
            Ok(Some(reply.exit))
        }
        Ok(None) => {
            eprintln!("nstrace: no `nstrace serve` answers on {}: answering from {instead}", path.display());
            Ok(None)
        }
        Err(e) => {
            eprintln!("nstrace: {}; answering from {instead}", crate::chain::Chain(&e));
            Ok(None)
        }
    }
}

/// A pipe on stdout holds 64 KiB: megabytes of `ls --json` then cross it
/// in as many wake-ups of the reader. Ask for the largest buffer an
/// unprivileged pipe may have (`/proc/sys/fs/pipe-max-size`, 1 MiB by
/// default); nothing changes where stdout is not a pipe or it is refused.
fn widen_stdout_pipe() {
    use std::os::unix::fs::FileTypeExt;
    let is_pipe = std::fs::metadata("/proc/self/fd/1").is_ok_and(|m| m.file_type().is_fifo());
    if is_pipe {
        let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .unwrap_or(1 << 20)
            .min(1 << 20);
        // SAFETY: fcntl on our own stdout; failure leaves the pipe as it was.
        unsafe { libc::fcntl(1, libc::F_SETPIPE_SZ, max) };
    }
}

/// Runs `answer` on a buffered stdout; a reader that went away is not an error.
pub fn to_stdout(
    answer: impl FnOnce(&mut dyn std::io::Write) -> Result<i32, crate::error::Error>,
) -> Result<i32, crate::error::Error> {
    use std::io::Write;
    widen_stdout_pipe();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let code = match answer(&mut out) {
        Err(e) if e.is_broken_pipe() => return Ok(0),
        other => other?,
    };
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::error::Error::io("writing output", e)),
        _ => Ok(code),
    }
}

/// `value` as indented JSON and a newline. Serialised into memory first:
/// serde_json's many small writes through a `dyn Write` cost more than the
/// copy (a third of `ls --json`'s output time at 10,000 namespaces).
pub fn write_json_pretty(out: &mut dyn std::io::Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    let mut buf = serde_json::to_vec_pretty(value).map_err(std::io::Error::from)?;
    buf.push(b'\n');
    out.write_all(&buf)
}

/// A duration on the command line: `0`, `90` or `90s`, `5m`, `2h`, `7d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match s.strip_suffix("ms") {
        Some(n) => (n, "ms"),
        None => match s.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], &s[i..]),
            _ => (s, "s"),
        },
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use ms, s, m, h or d)")),
    };
    let v: f64 = number.parse().map_err(|_| format!("'{s}' is not a duration (e.g. 0, 30s, 5m, 2h, 1d)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("'{s}' must be a duration of zero or more"));
    }
    std::time::Duration::try_from_secs_f64(v * scale).map_err(|e| format!("'{s}': {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_with_units() {
        for (text, secs) in [("0", 0), ("30", 30), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86_400), ("1.5m", 90)]
        {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "x", "5w", "-1", "m", "ms", "nan"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    /// Every option that takes a time takes the same spellings: plain
    /// seconds and units (`--leak-age` and `--min-age` alike).
    #[test]
    fn every_time_option_takes_one_syntax() {
        use crate::cli::trace::parse_seconds;
        assert_eq!(parse_seconds("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_seconds("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("0").is_err(), "an interval of zero");
    }
}

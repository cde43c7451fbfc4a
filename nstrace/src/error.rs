//! The library's top-level error: what a subcommand can fail with, and the
//! exit status each failure maps to.
//!
//! One rule for every error type in nstrace: its message says only what
//! failed at its own level; the cause is its `source()`, never repeated in
//! the message. [`Chain`] prints the whole chain, "what failed: why: root
//! cause", as `main` does.

use std::io;

use crate::{engine::EngineError, monitor::MonitorError, snapshot::SnapshotError};

/// Exit statuses of the `nstrace` binary.
pub mod exit {
    /// Success, nothing found.
    pub const OK: u8 = 0;
    /// Findings: `leaks` found leaked namespaces; `diff` found differences;
    /// `doctor` says nstrace cannot run on this kernel.
    pub const FINDINGS: u8 = 1;
    /// Usage error: bad arguments (clap exits 2 too), a path or namespace
    /// named on the command line that does not exist or is not what it
    /// should be, a forced `--mechanism` this kernel cannot run.
    pub const USAGE: u8 = 2;
    /// Runtime failure: kernel, eBPF loader, /proc, I/O, or missing
    /// privileges (never an empty answer that looks like "all clear").
    pub const RUNTIME: u8 = 3;
}

type BoxedError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// Bad input named on the command line (a file, a path): a usage error
    /// with a cause.
    #[error("{context}")]
    Input {
        context: String,
        #[source]
        source: BoxedError,
    },
    // Boxed: these are large, and every subcommand returns this error.
    #[error(transparent)]
    Snapshot(Box<SnapshotError>),
    #[error(transparent)]
    Engine(Box<EngineError>),
    #[error(transparent)]
    Monitor(Box<MonitorError>),
    /// The process lacks what a complete answer needs.
    #[error(
        "root is needed (or CAP_SYS_ADMIN and CAP_SYS_PTRACE; CAP_BPF and CAP_PERFMON where CAP_SYS_ADMIN \
         does not allow eBPF): this process (uid {uid}) lacks {missing}"
    )]
    NotPrivileged { uid: u32, missing: String },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A runtime failure that is not some other error (or whose cause is
    /// not one of ours).
    #[error("{context}")]
    Failed {
        context: String,
        #[source]
        source: Option<BoxedError>,
    },
}

/// Fails unless this process may load eBPF programs, open every process's
/// namespaces and fds, and enter mount namespaces: without that, answers
/// would be silently partial (an empty leak list that looks like "all clear").
pub fn require_privileges() -> Result<(), Error> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| Error::io("reading /proc/self/status", e))?;
    let missing = crate::kernel::probe::missing_privileges(&status);
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    Err(Error::NotPrivileged { uid, missing: missing.join(", ") })
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    pub fn input(context: impl Into<String>, source: impl Into<BoxedError>) -> Error {
        Error::Input { context: context.into(), source: source.into() }
    }

    /// A runtime failure with no underlying error.
    pub fn failed(context: impl Into<String>) -> Error {
        Error::Failed { context: context.into(), source: None }
    }

    /// A runtime failure caused by `source`.
    pub fn failed_with(context: impl Into<String>, source: impl Into<BoxedError>) -> Error {
        Error::Failed { context: context.into(), source: Some(source.into()) }
    }

    /// Whether this is a write to a reader that went away (`| head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The exit status for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        use crate::engine::EngineError::Mechanism;
        match self {
            Error::Usage(_) | Error::Input { .. } => exit::USAGE,
            // A mechanism forced with --mechanism that this kernel lacks.
            Error::Engine(e) if matches!(**e, Mechanism(_)) => exit::USAGE,
            Error::Monitor(e) if matches!(&**e, MonitorError::Engine(e) if matches!(**e, Mechanism(_))) => exit::USAGE,
            Error::Snapshot(_)
            | Error::Engine(_)
            | Error::Monitor(_)
            | Error::NotPrivileged { .. }
            | Error::Io { .. }
            | Error::Failed { .. } => exit::RUNTIME,
        }
    }
}

impl From<SnapshotError> for Error {
    fn from(e: SnapshotError) -> Error {
        Error::Snapshot(Box::new(e))
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Error {
        Error::Engine(Box::new(e))
    }
}

impl From<MonitorError> for Error {
    fn from(e: MonitorError) -> Error {
        Error::Monitor(Box::new(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::chain::Chain;
    use crate::{
        kernel::btf::BtfError, kernel::btf_offsets::OffsetsError, kernel::mechanism::MechanismError,
        kernel::tracefs::TracefsError, procfs::holders::HoldersError, procfs::namespaces::ProcScanError,
    };

    fn enoent() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOENT)
    }

    /// `main`'s line for `e`, and a check that no level repeats its cause.
    fn printed(e: &(dyn std::error::Error + 'static)) -> String {
        let line = Chain(e).to_string();
        let mut level = Some(e);
        while let Some(l) = level {
            if let Some(cause) = l.source() {
                let (outer, inner) = (l.to_string(), cause.to_string());
                assert!(!outer.contains(&inner), "{outer:?} repeats its cause {inner:?}; printed: {line}");
            }
            level = l.source();
        }
        line
    }

    fn once(line: &str, cause: &str) {
        assert_eq!(line.matches(cause).count(), 1, "{cause:?} should appear once in {line:?}");
    }

    #[test]
    fn causes_are_printed_once() {
        let os = enoent().to_string();
        let line = printed(&Error::io("writing output", enoent()));
        assert_eq!(line, format!("writing output: {os}"));
        once(&line, &os);

        // Three levels: offsets <- BTF <- I/O.
        let btf = BtfError::Io { path: "/sys/kernel/btf/vmlinux".into(), source: enoent() };
        let e = OffsetsError::Missing { ty: "ns_common", member: "ns_id", source: btf };
        let line = printed(&e);
        assert_eq!(
            line,
            format!("kernel BTF lacks ns_common.ns_id, which nstrace needs: cannot read /sys/kernel/btf/vmlinux: {os}")
        );
        once(&line, &os);
        once(&line, "cannot read");

        for e in [
            HoldersError::Open { path: PathBuf::from("/proc"), source: enoent() },
            HoldersError::List { path: PathBuf::from("/proc/1/fd"), source: enoent() },
        ] {
            once(&printed(&e), &os);
        }
        for e in [TracefsError::Mount(enoent()), TracefsError::Io { path: "x/format".into(), source: enoent() }] {
            once(&printed(&e), &os);
        }
        once(&printed(&ProcScanError::Nsfs(enoent())), &os);
        let json = serde_json::from_str::<serde_json::Value>("[").unwrap_err();
        once(&printed(&Error::input("a.json is not an `nstrace ls --json` document", json)), "EOF");
        let e = Error::failed_with("the HTTP server task failed", io::Error::other("boom"));
        assert_eq!(printed(&e), "the HTTP server task failed: boom");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Error::Usage("bad".into()).exit_code(), exit::USAGE);
        assert_eq!(Error::input("reading a.json", enoent()).exit_code(), exit::USAGE);
        assert_eq!(Error::io("writing output", enoent()).exit_code(), exit::RUNTIME);
        assert_eq!(Error::failed("terminal input closed").exit_code(), exit::RUNTIME);
        let loader = crate::kernel::loader::LoaderError::NoPrograms;
        assert_eq!(Error::from(EngineError::from(loader)).exit_code(), exit::RUNTIME);
        let holders = HoldersError::Open { path: PathBuf::from("/proc"), source: enoent() };
        assert_eq!(Error::from(SnapshotError::from(holders)).exit_code(), exit::RUNTIME);
        // A forced mechanism this kernel cannot run is the caller's to fix.
        let forced = || MechanismError::Unavailable { job: "destroy", name: "kprobe-free-inum".into(), why: "".into() };
        assert_eq!(Error::from(EngineError::from(forced())).exit_code(), exit::USAGE);
        assert_eq!(Error::from(MonitorError::from(EngineError::from(forced()))).exit_code(), exit::USAGE);
    }
}

//! The library's top-level error: what a subcommand can fail with.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Loader(#[from] crate::loader::LoaderError),
    #[error(transparent)]
    Walk(#[from] crate::snapshot::kernel::WalkError),
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("nstrace needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN): {0}")]
    NotPrivileged(String),
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}

impl From<io::Error> for Error {
    fn from(source: io::Error) -> Error {
        Error::Io { context: "I/O".into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! nstrace: a live table of every Linux namespace on the host, fed by eBPF.
//!
//! Layers, each using only those below it:
//! - `containers`, `events`, `model`, `time`: data (container ids from
//!   cgroup paths, the events users see, the namespace record, the two
//!   clocks);
//! - `kernel` (eBPF, BTF, probe, mechanisms, walks) and `procfs` (holders,
//!   sockets, nsfs, the lsns method);
//! - `store`: the one namespace table, pure;
//! - `snapshot` (one-shot: kernel + procfs into a store) and `engine` (the
//!   running tracer that owns the store), then `monitor` (engine + holder
//!   scans + feed);
//! - `present`: rendering, explanations, metrics, HTTP, TUI;
//! - `cli`: one module per subcommand; `error`: what they fail with.

pub mod chain;
pub mod charges;
pub mod cli;
pub mod containers;
pub mod database;
pub mod engine;
pub mod error;
pub mod events;
pub mod kernel;
pub mod model;
pub mod monitor;
pub mod origin;
pub mod present;
pub mod procfs;
pub mod refusal;
pub mod remote;
pub mod snapshot;
pub mod store;
pub mod time;
pub mod timings;

/// Prints why a unit test skips, past libtest's output capture (which hides
/// `eprintln!` of passing tests), so a skip is never silent.
#[cfg(test)]
pub(crate) fn test_skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

//! Snapshots of every namespace on the host.

pub mod kernel;

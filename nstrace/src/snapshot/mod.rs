//! Snapshots of every namespace on the host.

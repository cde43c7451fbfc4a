//! nstrace: a live table of every Linux namespace on the host, fed by eBPF.

pub mod btf;
pub mod btf_offsets;
pub mod cli;
pub mod containers;
pub mod engine;
pub mod error;
pub mod events;
pub mod explain;
pub mod holders;
pub mod http;
pub mod loader;
pub mod mechanism;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod nsfs;
pub mod probe;
pub mod render;
pub mod snapshot;
pub mod sockets;
pub mod store;
pub mod tracefs;
pub mod tui;

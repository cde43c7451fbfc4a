//! nstrace: a live table of every Linux namespace on the host, fed by eBPF.

pub mod btf;
pub mod btf_offsets;
pub mod cli;
pub mod engine;
pub mod error;
pub mod events;
pub mod holders;
pub mod loader;
pub mod model;
pub mod monitor;
pub mod nsfs;
pub mod probe;
pub mod render;
pub mod snapshot;
pub mod table;
pub mod tracefs;

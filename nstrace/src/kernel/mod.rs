//! The kernel side: BTF and struct offsets, the capability probe and the
//! mechanism chosen per job, loading and attaching the eBPF programs, the
//! ring-buffer stream and the namespace/task walks. Knows nothing of /proc,
//! the store or any view.

pub mod btf;
pub mod btf_offsets;
pub mod loader;
pub mod mechanism;
pub mod pinned;
pub mod probe;
pub mod ring;
pub mod ring_pos;
pub mod test_run;
pub mod tracefs;
pub mod walker;

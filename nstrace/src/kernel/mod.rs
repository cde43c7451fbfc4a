//! The kernel side: BTF and struct offsets, the capability probe and the
//! mechanism chosen per job, loading and attaching the eBPF programs, the
//! event ring (`ring`), the pinned walk programs, the bpf(2) calls made by
//! hand (`sys_bpf`) and the namespace, task and fd walks. It reads the
//! kernel's own files: BTF, kallsyms, tracefs, the boot id, /proc/locks and
//! the comm of a process holding the walk lock, and for the probe the
//! kernel release, its own capabilities (/proc/self/status) and its own
//! network namespace (nsfs and listns through `procfs`). It keeps no
//! namespace table and scans no processes' /proc entries, and renders
//! nothing: that is `store`, `procfs` and `present`.

pub mod btf;
pub mod btf_offsets;
pub mod loader;
pub mod mechanism;
pub mod pinned;
pub mod probe;
pub mod ring;
pub mod ring_pos;
pub mod sys_bpf;
pub mod test_run;
pub mod tracefs;
pub mod tree_watch;
pub mod walker;

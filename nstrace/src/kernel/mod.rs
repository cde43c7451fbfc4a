//! The kernel side: BTF and struct offsets, the capability probe and the
//! mechanism chosen per job, loading and attaching the eBPF programs, the
//! event ring (`ring`), the pinned walk programs and the namespace, task
//! and fd walks. Reads of the kernel's own files (kallsyms, tracefs
//! formats, /proc/locks, the boot id) and the probe's nsfs/listns checks
//! (through `procfs`) happen here; the namespace table, /proc scans of
//! processes and every view do not: they are `store`, `procfs` and
//! `present`.

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
pub mod walker;

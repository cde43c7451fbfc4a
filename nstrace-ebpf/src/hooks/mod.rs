pub mod create;
pub mod free;
pub mod kernfn;
pub mod syscalls;
pub mod task;

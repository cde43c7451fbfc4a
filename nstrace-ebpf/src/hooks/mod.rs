pub mod create;
pub mod free;
pub mod syscalls;
pub mod task;

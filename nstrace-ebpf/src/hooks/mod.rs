pub mod create;
pub mod syscalls;
pub mod task;

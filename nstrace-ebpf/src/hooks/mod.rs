pub mod create;
pub mod forkgate;
pub mod free;
pub mod kernfn;
pub mod mount;
pub mod refusal;
pub mod syscalls;
pub mod task;

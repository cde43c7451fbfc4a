//! nstrace's eBPF programs. One module per hook family; every program reads
//! struct offsets from the `CONFIG` global that user space fills from BTF.
#![no_std]
#![no_main]
// The BPF atomic add (`hooks::forkgate`): core has no 64-bit atomics here.
#![feature(asm_experimental_arch)]

mod hooks;
mod loops;
mod maps;
mod read;
mod walk;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_probe_read_kernel is GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

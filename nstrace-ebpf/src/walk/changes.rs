//! The change check (6.18 layout): has any namespace been added to or
//! removed from a type's list since the last walk? The walk notes each
//! list's head (a static `struct ns_tree`) as it passes it; `ns_changes`
//! reads each noted list's seqlock count, which every add and remove
//! moves by two. A quiet host is checked with one run of a few reads
//! instead of a walk of every namespace.
//!
//! # Safety
//! `TREE_WATCH` values through pointers from lookups checked for null,
//! valid until the program returns. Kernel memory is read only through
//! `read.rs` (a stale or wrong head reads garbage, never faults).

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use nstrace_common::{config::ABSENT, ns::NS_TYPES};

use crate::{
    maps::{TREE_WATCH, config},
    read::u32_at,
};

/// Notes `node` as type `ty`'s list head if the `struct ns_tree` around it
/// says it holds that type (`expected`: its CLONE_NEW* bit).
#[inline(always)]
pub(crate) fn note_head(node: u64, ty: usize, expected: u32) {
    let (list, kind) = (config!(offsets.ns_tree_list), config!(offsets.ns_tree_type));
    if list == ABSENT || kind == ABSENT || ty >= NS_TYPES {
        return;
    }
    let tree = node - list as u64;
    if u32_at(tree, kind) != expected {
        return;
    }
    if let Some(watch) = TREE_WATCH.get_ptr_mut(0) {
        unsafe { (*watch).heads[ty] = node };
    }
}

/// Reads every noted list's change count into `TREE_WATCH.seqs`.
#[raw_tracepoint]
pub fn ns_changes(_ctx: RawTracePointContext) -> i32 {
    let (list, seq) = (config!(offsets.ns_tree_list), config!(offsets.ns_tree_seq));
    if list == ABSENT || seq == ABSENT {
        return 0;
    }
    let Some(watch) = TREE_WATCH.get_ptr_mut(0) else {
        return 0;
    };
    for ty in 0..NS_TYPES {
        let head = unsafe { (*watch).heads[ty] };
        if head != 0 {
            let count = u32_at(head - list as u64, seq);
            unsafe { (*watch).seqs[ty] = count };
        }
    }
    0
}

//! Loops the verifier checks once: `bpf_loop` with the loop's state in a
//! per-CPU map, for the walks and for the hooks' per-namespace reports.

use aya_ebpf::{helpers::generated::bpf_loop, maps::PerCpuArray};

/// A loop's per-iteration callback: `ctx` points at a pointer to the run's
/// state (see [`run_loop`]); returns 1 to stop the loop.
pub(crate) type StepFn = unsafe extern "C" fn(u64, *mut core::ffi::c_void) -> i64;

/// Calls `step` up to `budget` times with `state`. The state lives in a
/// per-CPU map, not on the stack, and the callback reaches it through a
/// pointer: the verifier then knows nothing of its fields, so every
/// iteration starts from the same verifier state and the callback is
/// verified in a pass or two. On the stack, the fields' known values would
/// make each iteration a new state, and the verifier would walk every
/// iteration of the loop.
#[inline(always)]
pub(crate) fn run_loop<T>(budget: u32, step: StepFn, state: *mut T) {
    let mut at = state;
    unsafe { bpf_loop(budget, step as *mut core::ffi::c_void, (&raw mut at).cast(), 0) };
}

/// The state [`run_loop`] passes to a callback as `ctx`.
///
/// # Safety
/// `ctx` must be the `ctx` of a callback called by [`run_loop`] with a `*mut T`.
#[inline(always)]
pub(crate) unsafe fn step_of<'a, T>(ctx: *mut core::ffi::c_void) -> &'a mut T {
    unsafe { &mut **(ctx as *mut *mut T) }
}

/// This CPU's entry of `map`, set to `init`: a run's fresh state.
#[inline(always)]
pub(crate) fn fresh_step<T>(map: &'static PerCpuArray<T>, init: T) -> Option<&'static mut T> {
    let at = map.get_ptr_mut(0)?;
    // SAFETY: a live value of this map; a run is the only user of this CPU's entry.
    unsafe {
        *at = init;
        Some(&mut *at)
    }
}

//! Keeping freed memory in the process heap on glibc, for the taped passes.
//!
//! A training step at batch 128 allocates and frees tens of feature maps of several MB each.
//! glibc serves blocks that large with `mmap` (or trims the heap top with `brk` when they are
//! freed), so every step faulted all of them in again: page faults were ~18% of a ResNet20
//! training step. [`keep_freed_memory`] raises the mmap and trim thresholds once per process
//! (glibc `mallopt`), so freed maps are reused by the next step; the heap then stays at the
//! step's peak size. No effect on other C libraries or targets.
//!
//! [`with_reused`] keeps the scratch buffers of the convolutions per thread, for the same
//! reason at a smaller scale: allocating and zeroing a column block per call was ~10% of
//! inference.

use std::cell::RefCell;
use std::sync::Once;
use std::thread::LocalKey;

/// Raises glibc's mmap and trim thresholds (once per process). See the module doc.
pub fn keep_freed_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            // glibc's <malloc.h>: M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3. The heap top
            // is given back only above 1 GiB free; blocks up to 32 MiB (glibc's maximum mmap
            // threshold on 64-bit; a ResNet20 map at batch 128 is 8 MiB) come from the heap.
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: `mallopt` only changes allocator tuning parameters; it is called before
            // any concurrent use of these settings matters (allocations stay valid either way).
            unsafe {
                mallopt(M_TRIM_THRESHOLD, 1 << 30);
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
            }
        }
    });
}

/// Runs `f` with the first `len` floats of this thread's buffer `slot` (contents
/// unspecified), grown as needed and kept for the next call. Falls back to a fresh buffer when
/// the slot is in use: rayon may run another convolution on a thread that is waiting inside
/// this one.
pub(crate) fn with_reused<R>(
    slot: &'static LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let run = |v: &mut Vec<f32>| {
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    };
    slot.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => run(&mut v),
        Err(_) => run(&mut Vec::new()),
    })
}

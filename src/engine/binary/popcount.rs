//! Popcount code paths and their run-time dispatch.
//!
//! Three paths compute the same integers:
//! - [`PopcountPath::Portable`]: `u64::count_ones` compiled for the baseline target (on x86-64
//!   without `-C target-cpu`, LLVM emits a bit-twiddling sequence, not the `popcnt` instruction).
//! - [`PopcountPath::Popcnt`]: the same Rust code compiled with `#[target_feature(enable =
//!   "popcnt")]`, so `count_ones` becomes one instruction.
//! - [`PopcountPath::Avx512`]: AVX-512 VPOPCNTDQ (`_mm512_popcnt_epi64`), eight words per
//!   instruction.
//!
//! [`PopcountPath::detect`] picks the fastest one the process may run ([`crate::engine::cpu`]:
//! the CPU and `BBED_ISA`); every kernel has a `_with` variant taking a path so tests can force
//! each one. Forcing a path the CPU lacks is an input error, never undefined behaviour.

use serde::{Deserialize, Serialize};

use crate::engine::cpu::{self, Features, Isa};
use crate::{Error, Result};

/// Which popcount implementation a kernel uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PopcountPath {
    Portable,
    Popcnt,
    Avx512,
}

impl PopcountPath {
    /// All paths, slowest first.
    pub const ALL: [PopcountPath; 3] = [
        PopcountPath::Portable,
        PopcountPath::Popcnt,
        PopcountPath::Avx512,
    ];

    /// The features the path's kernels are compiled with (their `#[target_feature]` lists).
    pub const fn needs(self) -> Features {
        match self {
            PopcountPath::Portable => Features::NONE,
            PopcountPath::Popcnt => Features::POPCNT,
            PopcountPath::Avx512 => Features::AVX512F.with(Features::AVX512VPOPCNTDQ),
        }
    }

    /// Whether this CPU can run the path (whatever `BBED_ISA` says).
    pub fn is_available(self) -> bool {
        Isa::Avx512.allows(self.needs())
    }

    /// The paths this CPU can run, slowest first.
    pub fn available() -> Vec<PopcountPath> {
        Self::ALL.into_iter().filter(|p| p.is_available()).collect()
    }

    /// The fastest path allowed at level `isa` on this CPU.
    pub fn for_isa(isa: Isa) -> PopcountPath {
        Self::ALL
            .into_iter()
            .rfind(|p| isa.allows(p.needs()))
            .unwrap_or(PopcountPath::Portable)
    }

    /// The fastest path this process may run ([`cpu::isa`]).
    pub fn detect() -> PopcountPath {
        Self::for_isa(cpu::isa())
    }

    /// `Ok(self)` if the CPU can run it, else an input error naming the path.
    pub fn checked(self) -> Result<PopcountPath> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(Error::input(
                "popcount path",
                format!("{self:?} is not supported by this CPU"),
            ))
        }
    }
}

#[inline(always)]
fn xor_popcount_body(a: &[u64], b: &[u64]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| u64::from((x ^ y).count_ones()))
        .sum()
}

/// [`xor_popcount_body`] with `count_ones` as one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn xor_popcount_popcnt(a: &[u64], b: &[u64]) -> u64 {
    xor_popcount_body(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn xor_popcount_avx512(a: &[u64], b: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut acc = _mm512_setzero_si512();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: words i..i + 8 exist in both slices (i + 8 <= n).
        let (va, vb) = unsafe {
            (
                _mm512_loadu_si512(a.as_ptr().add(i) as *const __m512i),
                _mm512_loadu_si512(b.as_ptr().add(i) as *const __m512i),
            )
        };
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(va, vb)));
        i += 8;
    }
    // The tail (< 8 words) goes through a masked load so no word is read twice or out of bounds.
    if i < n {
        let mask: __mmask8 = (1u8 << (n - i)) - 1;
        // SAFETY: the mask enables only words i..n, which exist in both slices.
        let (va, vb) = unsafe {
            (
                _mm512_maskz_loadu_epi64(mask, a.as_ptr().add(i) as *const i64),
                _mm512_maskz_loadu_epi64(mask, b.as_ptr().add(i) as *const i64),
            )
        };
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(va, vb)));
    }
    _mm512_reduce_add_epi64(acc) as u64
}

/// `sum_i popcount(a[i] XOR b[i])` over `min(a.len(), b.len())` words on the given path.
/// Panics unless the path is available (see [`PopcountPath::checked`]); callers validate first.
pub(crate) fn xor_popcount(path: PopcountPath, a: &[u64], b: &[u64]) -> u64 {
    assert!(path.is_available(), "{path:?} popcount on a CPU without it");
    match path {
        PopcountPath::Portable => xor_popcount_body(a, b),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (asserted), i.e. the CPU has popcnt.
        PopcountPath::Popcnt => unsafe { xor_popcount_popcnt(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (asserted), i.e. the CPU has avx512f + vpopcntdq.
        PopcountPath::Avx512 => unsafe { xor_popcount_avx512(a, b) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => xor_popcount_body(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_agree_on_known_counts() {
        // popcount(0 ^ !0) = 64 per word; 11 words exercises the 8-wide loop and the masked tail.
        let a = vec![0u64; 11];
        let b = vec![!0u64; 11];
        for p in PopcountPath::available() {
            assert_eq!(xor_popcount(p, &a, &b), 64 * 11, "{p:?}");
            assert_eq!(xor_popcount(p, &a, &a), 0, "{p:?}");
            assert_eq!(xor_popcount(p, &[0b1011], &[0b0001]), 2, "{p:?}");
        }
    }

    #[test]
    fn detect_is_available_and_portable_always_is() {
        assert!(PopcountPath::detect().is_available());
        assert!(PopcountPath::Portable.checked().is_ok());
        assert_eq!(PopcountPath::for_isa(Isa::Portable), PopcountPath::Portable);
        for isa in cpu::test_levels() {
            let p = PopcountPath::for_isa(isa);
            assert!(p.is_available() && isa.allows(p.needs()), "{isa:?}: {p:?}");
        }
        if Isa::Avx512.allows(PopcountPath::Avx512.needs()) {
            assert_eq!(PopcountPath::for_isa(Isa::Avx512), PopcountPath::Avx512);
        }
    }
}

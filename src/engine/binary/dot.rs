//! XNOR-popcount dot products of two packed +/-1 vectors of length K.
//!
//! Two conventions, kept in separate functions because libraries disagree:
//! - [`bdot`] returns the bipolar (+/-1) dot product `K - 2 * popcount(a XOR b)`, the value a float
//!   conv on +/-1 data produces (Larq Compute Engine's output).
//! - [`bdot_matches`] returns FINN's xnor-popcount value, the number of positions where the two
//!   vectors agree: `K - popcount(a XOR b) = (dot + K) / 2`.
//!
//! Inputs are packed as in [`super::pack`]: `ceil(K / 64)` words each, tail bits zero.

use super::pack::{check_tails, words_for, WORD_BITS};
use super::popcount::{xor_popcount, PopcountPath};
use crate::{Error, Result};

fn check(a: &[u64], b: &[u64], k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::input("bdot", "length K must be at least 1"));
    }
    let words = words_for(k);
    for (name, v) in [("a", a), ("b", b)] {
        if v.len() != words {
            return Err(Error::input(
                format!("bdot operand {name}"),
                format!("{} words, expected {words} for K = {k}", v.len()),
            ));
        }
        check_tails(&format!("bdot operand {name}"), v, words, k)?;
    }
    debug_assert!(words * WORD_BITS >= k);
    Ok(())
}

/// Number of disagreeing positions, `popcount(a XOR b)`, on the given path.
pub fn bdot_mismatches_with(path: PopcountPath, a: &[u64], b: &[u64], k: usize) -> Result<u32> {
    let path = path.checked()?;
    check(a, b, k)?;
    Ok(xor_popcount(path, a, b) as u32)
}

/// Bipolar dot product `K - 2 * popcount(a XOR b)` on the given popcount path.
pub fn bdot_with(path: PopcountPath, a: &[u64], b: &[u64], k: usize) -> Result<i32> {
    let m = bdot_mismatches_with(path, a, b, k)?;
    Ok(k as i32 - 2 * m as i32)
}

/// Bipolar dot product `K - 2 * popcount(a XOR b)` of two packed +/-1 vectors of length `k`
/// (fastest popcount path). Wrong word counts or nonzero tail bits are input errors.
pub fn bdot(a: &[u64], b: &[u64], k: usize) -> Result<i32> {
    bdot_with(PopcountPath::detect(), a, b, k)
}

/// FINN's convention: the number of matching positions, `K - popcount(a XOR b) = (dot + K) / 2`.
pub fn bdot_matches(a: &[u64], b: &[u64], k: usize) -> Result<u32> {
    let m = bdot_mismatches_with(PopcountPath::detect(), a, b, k)?;
    Ok(k as u32 - m)
}

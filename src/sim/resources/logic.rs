//! LUT and flip-flop counts of the fabric datapath (our derivation; compare [`super::finn`]).
//!
//! ## XNOR-popcount tree
//! Counting the ones of `q` bits with LUT6s and carry chains:
//! - first level, XNOR **fused** into the LUTs (dataflow MVAU: weights and activations both
//!   enter the fabric): one LUT6 sees 3 weight/activation pairs and produces their 2-bit match
//!   count, so `2 * ceil(q / 3)` LUTs giving 2-bit numbers;
//! - first level, XNOR **in the DSP48 ALU** (the array of [`crate::sim::schedule`]): the 48-bit
//!   XNOR word enters the fabric and one LUT6 per output bit counts 6 bits (a 6:3 compressor),
//!   so `3 * ceil(q / 6)` LUTs giving 3-bit numbers;
//! - then a binary adder tree: adding two numbers of widths `a >= b` costs `a` LUTs (one LUT per
//!   bit, carry chain) and gives `a + 1` bits; an odd number out passes to the next level.
//!
//! Every level is registered (one FF per output bit, pass-throughs included) for one result per
//! cycle at the array clock. The result is `ceil(log2(q + 1))` bits.
//!
//! ## Accumulators
//! An accumulator of `b` bits is one `b`-bit adder and its register: `b` LUTs, `b` FFs. Widths:
//! popcount of a reduction of `r` bits: `ceil(log2(r + 1))`; a full-precision reduction of `r`
//! products of `w`-bit signed operands: `2w + ceil(log2 r)` (the magnitude bound of FINN's
//! accumulator analysis for signed operands).
//!
//! ## Packed DSP lanes
//! A lane field of a DSP48 holds `2w + guard` bits, so a cascade (PCOUT -> PCIN) of DSPs can sum
//! at most `2^guard` products per lane before it must be drained; longer reductions split into
//! `ceil(simd / 2^guard)` chains whose outputs a fabric adder tree sums per lane, then an
//! accumulator adds over the folded reduction.

/// LUTs and FFs of one popcount tree over `q` inputs; `fused_xnor` as in the module doc.
pub fn popcount_tree(q: u64, fused_xnor: bool) -> (u64, u64) {
    if q == 0 {
        return (0, 0);
    }
    let (group, out_bits) = if fused_xnor { (3, 2) } else { (6, 3) };
    let groups = q.div_ceil(group);
    let mut luts = groups * out_bits;
    let mut ffs = groups * out_bits;
    let widths = vec![out_bits; groups as usize];
    let (l, f) = adder_tree(widths);
    luts += l;
    ffs += f;
    (luts, ffs)
}

/// LUTs and FFs of a registered binary adder tree over numbers of the given widths.
pub fn adder_tree(mut widths: Vec<u64>) -> (u64, u64) {
    let (mut luts, mut ffs) = (0, 0);
    while widths.len() > 1 {
        let mut next = Vec::with_capacity(widths.len().div_ceil(2));
        for pair in widths.chunks(2) {
            match pair {
                [a, b] => {
                    let w = (*a).max(*b);
                    luts += w;
                    ffs += w + 1;
                    next.push(w + 1);
                }
                [a] => {
                    ffs += a;
                    next.push(*a);
                }
                _ => unreachable!("chunks of 2"),
            }
        }
        widths = next;
    }
    (luts, ffs)
}

/// Width of a popcount accumulator over a reduction of `r` bits.
pub fn popcount_acc_bits(r: u64) -> u64 {
    super::clog2(r + 1)
}

/// Width of a signed accumulator of `r` products of `w`-bit signed operands.
pub fn mac_acc_bits(r: u64, w: u64) -> u64 {
    2 * w + super::clog2(r.max(1))
}

/// LUTs and FFs behind one packed lane whose reduction of `simd` products per cycle runs in
/// DSP cascades of at most `2^guard` products: the adder tree over the chain outputs (each
/// `2w + guard` bits) and the accumulator over the folded reduction (`acc_bits`).
pub fn lane_drain(simd: u64, w: u64, guard: u32, acc_bits: u64) -> (u64, u64) {
    let chain = 1u64.checked_shl(guard).unwrap_or(u64::MAX).max(1);
    let chains = simd.div_ceil(chain);
    let (l, f) = adder_tree(vec![2 * w + guard as u64; chains as usize]);
    (l + acc_bits, f + acc_bits)
}

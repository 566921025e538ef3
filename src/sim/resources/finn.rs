//! FINN's MVAU estimates, re-derived (not copied) from the formulas of Xilinx/finn,
//! `src/finn/custom_op/fpgadataflow/matrixvectoractivation.py` (methods `get_exp_cycles`,
//! `lut_estimation`, `dsp_estimation`, `bram_estimation`; the LUT model cites Blott et al.,
//! "FINN-R", 2018), so that our own resource model can be compared with them.
//!
//! For an MVAU with `MH` outputs, `MW` inputs per output, `PE` x `SIMD` folding, weight bits `W`
//! and input bits `A`:
//! - cycles `(MH / PE) * (MW / SIMD) * vectors` (PE | MH, SIMD | MW);
//! - LUTs `300 + 1.1 * PE * (mult + adder tree + accumulator)` with `mult = SIMD * (2 *
//!   ceil((W + A) / 6) - 1) * (W + A)` when products are built in LUTs (0 on DSPs), adder tree
//!   `(W + A) * (2 SIMD - 1)` and accumulator bits `ceil(alpha + log2(1 + 2^-alpha) + 1)`, `alpha
//!   = log2(MW) + W + A - 1 - signed(input)`, capped at 32 (FINN's default INT32 accumulator);
//!   we evaluate it for `noActivation = 1` (no fused thresholds: we do not model them either),
//!   weights in block RAM (`c2 = 0`);
//! - DSPs `PE * SIMD * ceil((W + A) / 48)` for DSP products (one product per DSP: FINN's generic
//!   estimate does not pack two INT8 products), 0 for LUT products (XNOR-popcount layers);
//! - RAMB18s: memory width `PE * SIMD * W`, depth `MW * MH / (PE * SIMD)`; the aspect ratio is
//!   chosen by the width (1, 2, <= 4, <= 9, then 18 if the width is <= 18 or the depth > 512,
//!   else 36) and the count is `ceil(depth / d) * ceil(width / w)` of that ratio.

/// One MVAU as FINN sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mvau {
    pub mh: u64,
    pub mw: u64,
    pub pe: u64,
    pub simd: u64,
    /// Input vectors per frame (output pixels of a conv).
    pub vectors: u64,
    pub w_bits: u64,
    pub a_bits: u64,
    pub signed_input: bool,
    /// Products on DSPs (`resType = "dsp"`) or in LUTs.
    pub dsp_products: bool,
}

impl Mvau {
    /// FINN's expected cycles (integer division is exact for legal folds).
    pub fn exp_cycles(&self) -> u64 {
        (self.mh / self.pe) * (self.mw / self.simd) * self.vectors
    }

    pub fn acc_bits(&self) -> u64 {
        let alpha = (self.mw as f64).log2() + (self.w_bits + self.a_bits) as f64
            - 1.0
            - if self.signed_input { 1.0 } else { 0.0 };
        let bits = (alpha + (1.0 + (-alpha).exp2()).log2() + 1.0).ceil();
        (bits as u64).min(32)
    }

    pub fn luts(&self) -> u64 {
        let wa = self.w_bits + self.a_bits;
        let mult = if self.dsp_products {
            0
        } else {
            self.simd * (2 * wa.div_ceil(6) - 1) * wa
        };
        let tree = wa * (2 * self.simd - 1);
        let per_pe = (mult + tree + self.acc_bits()) as f64;
        (300.0 + 1.1 * self.pe as f64 * per_pe) as u64
    }

    pub fn dsps(&self) -> u64 {
        if self.dsp_products {
            self.pe * self.simd * (self.w_bits + self.a_bits).div_ceil(48)
        } else {
            0
        }
    }

    pub fn bram18(&self) -> u64 {
        let width = self.pe * self.simd * self.w_bits;
        let depth = (self.mw * self.mh).div_ceil(self.pe * self.simd);
        let (w, d) = match width {
            1 => (1, 16384),
            2 => (2, 8192),
            3..=4 => (4, 4096),
            5..=9 => (9, 2048),
            _ if width <= 18 || depth > 512 => (18, 1024),
            _ => (36, 512),
        };
        depth.div_ceil(d) * width.div_ceil(w)
    }
}

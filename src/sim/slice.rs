//! One DSP48 slice, bit-exact: a packed multi-lane MAC on a P register of `acc_width` bits, and a
//! 48-bit (configurable) XNOR through the ALU logic unit followed by the LUT popcount tree.
//!
//! The P register is held in a `u128` masked to `acc_width` bits and updated with wrapping
//! two's-complement arithmetic, exactly as the hardware adder. Lane `l`'s field starts at bit
//! `l * spacing`. Because lower fields are signed, a negative lower field borrows one from the
//! field above it; [`PackedMac::lanes`] undoes that borrow (the "sign correction" packed MACs
//! need) when it reads the fields out. The top lane's field runs to the top of P.
//!
//! XNOR convention (crate-wide): +1 -> bit 0, -1 -> bit 1. The XNOR word has a 1 where the two
//! operands *match*; the popcount tree counts matches among the valid lanes (`popcount_matches`).
//! The +/-1 dot of a word is `2 * matches - valid = valid - 2 * popcount(a XOR b)`.

use crate::hw::{Device, Packing};

/// Sign-extends the low `bits` bits of `v`.
fn sext(v: u128, bits: u32) -> i128 {
    let shift = 128 - bits;
    ((v << shift) as i128) >> shift
}

fn mask(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// The packed MAC datapath of one slice.
#[derive(Debug, Clone)]
pub struct PackedMac {
    lanes: u32,
    width: u32,
    spacing: u32,
    acc_width: u32,
    packing: Packing,
    p: u128,
}

impl PackedMac {
    pub fn new(dev: &Device) -> Self {
        PackedMac {
            lanes: dev.slice.mac.lanes,
            width: dev.slice.mac.width,
            spacing: dev.mac_spacing(),
            acc_width: dev.slice.acc_width,
            packing: dev.slice.mac.packing,
            p: 0,
        }
    }

    pub fn lane_count(&self) -> usize {
        self.lanes as usize
    }

    /// Clears P (OPMODE selecting zero instead of P as the adder's feedback input).
    pub fn reset(&mut self) {
        self.p = 0;
    }

    /// Raw P register bits.
    pub fn p(&self) -> u128 {
        self.p
    }

    fn check_operand(&self, v: i32) {
        let lim = 1i64 << (self.width - 1);
        assert!(
            (-lim..lim).contains(&(v as i64)),
            "operand {v} exceeds the {}-bit lane width (callers validate inputs)",
            self.width
        );
    }

    /// One cycle of the physical shared-operand path: weights `a[l]` are packed by the pre-adder
    /// into `sum_l a[l] * 2^(l*spacing)`, multiplied by the shared `b` in one multiplier, and the
    /// product is added to P. Works for `Independent` packing too (same arithmetic).
    pub fn mac_shared(&mut self, a: &[i32], b: i32) {
        debug_assert_eq!(a.len(), self.lanes as usize);
        self.check_operand(b);
        let mut packed: i128 = 0;
        for (l, &w) in a.iter().enumerate() {
            self.check_operand(w);
            packed += (w as i128) << (l as u32 * self.spacing);
        }
        let product = packed * b as i128;
        self.p = (self.p.wrapping_add(product as u128)) & mask(self.acc_width);
    }

    /// One cycle of the paper's abstraction: lane `l` multiplies its own pair `a[l] * b[l]`;
    /// the products are shifted into their fields and added to P as one wide addition.
    pub fn mac_independent(&mut self, a: &[i32], b: &[i32]) {
        debug_assert_eq!(a.len(), self.lanes as usize);
        debug_assert_eq!(b.len(), self.lanes as usize);
        let mut sum: i128 = 0;
        for l in 0..self.lanes as usize {
            self.check_operand(a[l]);
            self.check_operand(b[l]);
            sum += ((a[l] as i128) * (b[l] as i128)) << (l as u32 * self.spacing);
        }
        self.p = (self.p.wrapping_add(sum as u128)) & mask(self.acc_width);
    }

    /// Dispatches on the configured packing for lanes that share the activation `b`.
    pub fn mac(&mut self, a: &[i32], b: i32) {
        match self.packing {
            Packing::SharedOperand => self.mac_shared(a, b),
            Packing::Independent => {
                let bs = [b; 8];
                let n = self.lanes as usize;
                if n <= bs.len() {
                    self.mac_independent(a, &bs[..n]);
                } else {
                    self.mac_independent(a, &vec![b; n]);
                }
            }
        }
    }

    /// Reads the lane fields out of P with borrow correction, lowest lane first.
    pub fn lanes(&self) -> Vec<i64> {
        let mut out = vec![0; self.lanes as usize];
        self.lanes_into(&mut out);
        out
    }

    /// As [`PackedMac::lanes`], into `out` (length = lane count), without allocating.
    pub fn lanes_into(&self, out: &mut [i64]) {
        let mut v = sext(self.p, self.acc_width);
        for l in 0..self.lanes {
            let bits = if l + 1 == self.lanes {
                self.acc_width - l * self.spacing
            } else {
                self.spacing
            };
            let field = sext(v as u128, bits);
            out[l as usize] = field as i64;
            // Subtracting the signed field value removes its borrow from the field above.
            v = (v - field) >> self.spacing.min(127);
        }
    }
}

/// Bitwise XNOR of two `lanes`-bit operands, as the DSP48 ALU logic unit computes it; bits at and
/// above `lanes` are zero.
pub fn xnor_word(a: u64, b: u64, lanes: u32) -> u64 {
    let m = if lanes >= 64 {
        u64::MAX
    } else {
        (1u64 << lanes) - 1
    };
    !(a ^ b) & m
}

/// The fabric popcount tree: counts the ones among the first `valid` inputs. A LUT6 6:3
/// compressor tree followed by an adder tree computes exactly this count; its depth only matters
/// for latency (`popcount.latency` in the hardware file), so the value is computed directly.
pub fn popcount_tree(word: u64, valid: u32) -> u32 {
    let w = if valid >= 64 {
        word
    } else {
        word & ((1u64 << valid) - 1)
    };
    w.count_ones()
}

/// Matches between `a` and `b` among the first `valid` lanes (XNOR + popcount tree).
pub fn popcount_matches(a: u64, b: u64, lanes: u32, valid: u32) -> u32 {
    popcount_tree(xnor_word(a, b, lanes), valid.min(lanes))
}

/// The +/-1 dot product of one word pair over its `valid` real positions.
pub fn xnor_dot(a: u64, b: u64, lanes: u32, valid: u32) -> i32 {
    2 * popcount_matches(a, b, lanes, valid) as i32 - valid.min(lanes) as i32
}

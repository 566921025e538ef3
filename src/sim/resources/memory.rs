//! Mapping memories onto block RAM.
//!
//! ## Packing rule
//! A memory is `width` bits wide (read in one cycle) and `depth` words deep. A RAMB18 in simple
//! dual-port mode offers the aspect ratios 16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18 and 512 x 36
//! (UG573, block RAM port aspect ratios); a memory takes `ceil(width / w) * ceil(depth / d)`
//! blocks of the cheapest ratio. FINN's `bram_estimation` uses the same table but picks the
//! ratio from the width alone ([`super::finn::Mvau::bram18`]); taking the cheapest ratio never needs
//! more blocks. An UltraRAM is 4K x 72 (UG573): `ceil(width / 72) * ceil(depth / 4096)`.
//!
//! Feature maps (ping-pong buffers) are stored as 36-bit words at full depth, the densest use of
//! a RAMB18 (18,432 bits); line buffers as `SIMD x act_bits`-wide memories.
//!
//! ## Placement
//! Weight memories go to block RAM; when the device declares UltraRAM and block RAM would
//! overflow, [`place`] moves the weight memories that occupy the most RAMB18s to UltraRAM, one
//! by one, while block RAM still overflows and UltraRAM has room. Buffers stay in block RAM.

/// RAMB18 aspect ratios (width bits, depth words) in SDP mode.
pub const BRAM18_SHAPES: [(u64, u64); 6] = [
    (1, 16384),
    (2, 8192),
    (4, 4096),
    (9, 2048),
    (18, 1024),
    (36, 512),
];

/// Bits of one RAMB18 at its densest (512 x 36).
pub const BRAM18_BITS: u64 = 36 * 512;

/// A memory: `width` bits read per cycle, `depth` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub width: u64,
    pub depth: u64,
}

impl Memory {
    /// `bits` stored `width` bits wide.
    pub fn of_bits(bits: u64, width: u64) -> Memory {
        if bits == 0 || width == 0 {
            return Memory { width: 0, depth: 0 };
        }
        Memory {
            width,
            depth: bits.div_ceil(width),
        }
    }

    /// A feature map of `bits`, stored densely (36-bit words).
    pub fn map(bits: u64) -> Memory {
        Memory::of_bits(bits, 36)
    }

    /// RAMB18s at the cheapest aspect ratio.
    pub fn bram18(&self) -> u64 {
        if self.width == 0 || self.depth == 0 {
            return 0;
        }
        BRAM18_SHAPES
            .iter()
            .map(|&(w, d)| self.width.div_ceil(w) * self.depth.div_ceil(d))
            .min()
            .expect("table is not empty")
    }

    /// UltraRAMs (4K x 72).
    pub fn uram(&self) -> u64 {
        if self.width == 0 || self.depth == 0 {
            return 0;
        }
        self.width.div_ceil(72) * self.depth.div_ceil(4096)
    }
}

/// Where each weight memory goes: `(bram18, uram)` per memory, in input order. `bram_free` is
/// the block RAM left after the buffers (None = unlimited), `uram_cap` the UltraRAMs (None or 0
/// = none).
pub fn place(mems: &[Memory], bram_free: Option<u64>, uram_cap: Option<u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = mems.iter().map(|m| (m.bram18(), 0)).collect();
    let (Some(free), Some(uram_cap)) = (bram_free, uram_cap) else {
        return out;
    };
    let mut bram: u64 = out.iter().map(|p| p.0).sum();
    let mut uram = 0u64;
    let mut order: Vec<usize> = (0..mems.len()).collect();
    // Largest block-RAM users first; ties by index keep the result deterministic.
    order.sort_by_key(|&i| (std::cmp::Reverse(out[i].0), i));
    for i in order {
        if bram <= free {
            break;
        }
        let u = mems[i].uram();
        if u == 0 || uram + u > uram_cap {
            continue;
        }
        bram -= out[i].0;
        uram += u;
        out[i] = (0, u);
    }
    out
}

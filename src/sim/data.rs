//! Plain input data for functional simulation of one image.
//!
//! - Binary tensors are packed along channels into words of `lanes` bits (the slice's XNOR lane
//!   count, 48 on a DSP48) stored in the low bits of a `u64`: bit `i` of word `j` is channel
//!   `j * lanes + i`; +1 -> 0, -1 -> 1; bits past the last channel are 0 and never counted.
//!   Activations are laid out `[y][x][word]`, weights `[out_c][kh][kw][word]` (input channels
//!   innermost, as they stream into a slice).
//! - Fixed-point tensors are raw two's-complement integers (`i32` storage; the device's MAC lane
//!   width bounds their range), NCHW order without the batch axis; weights `[out][in][kh][kw]`.
//!   A value `v` with `frac` fractional bits means `v / 2^frac` (e.g. Q8.8 activations and Q2.14
//!   weights for 16-bit lanes, see [`FixedFormat::for_width`]).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Packed +/-1 activations of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedActs {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub lanes: u32,
    pub words: Vec<u64>,
}

/// Packed +/-1 weights of one layer (one weight base).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedWeights {
    pub out_c: usize,
    pub in_c: usize,
    pub kernel: usize,
    pub lanes: u32,
    pub words: Vec<u64>,
}

/// Words needed for `c` channels.
pub fn words_for(c: usize, lanes: u32) -> usize {
    c.div_ceil(lanes as usize)
}

fn bit_of(v: i8, context: &str, idx: usize) -> Result<u64> {
    match v {
        1 => Ok(0),
        -1 => Ok(1),
        _ => Err(Error::input(
            format!("{context}[{idx}]"),
            format!("binary values must be +1 or -1, got {v}"),
        )),
    }
}

fn check_lanes(lanes: u32) -> Result<()> {
    if lanes == 0 || lanes > 64 {
        return Err(Error::input(
            "lanes",
            format!("must be in 1..=64, got {lanes}"),
        ));
    }
    Ok(())
}

impl PackedActs {
    /// Packs one image of +/-1 values given in CHW order.
    pub fn from_pm1(values: &[i8], c: usize, h: usize, w: usize, lanes: u32) -> Result<Self> {
        check_lanes(lanes)?;
        if values.len() != c * h * w {
            return Err(Error::input(
                "activations",
                format!(
                    "expected {c}x{h}x{w} = {} values, got {}",
                    c * h * w,
                    values.len()
                ),
            ));
        }
        let wpp = words_for(c, lanes);
        let mut words = vec![0u64; h * w * wpp];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let idx = (ch * h + y) * w + x;
                    let bit = bit_of(values[idx], "activations", idx)?;
                    let word = (y * w + x) * wpp + ch / lanes as usize;
                    words[word] |= bit << (ch % lanes as usize);
                }
            }
        }
        Ok(PackedActs {
            c,
            h,
            w,
            lanes,
            words,
        })
    }

    pub fn words_per_pixel(&self) -> usize {
        words_for(self.c, self.lanes)
    }

    pub fn word(&self, y: usize, x: usize, j: usize) -> u64 {
        self.words[(y * self.w + x) * self.words_per_pixel() + j]
    }
}

impl PackedWeights {
    /// Packs +/-1 weights given in `[out][in][kh][kw]` order.
    pub fn from_pm1(
        values: &[i8],
        out_c: usize,
        in_c: usize,
        kernel: usize,
        lanes: u32,
    ) -> Result<Self> {
        check_lanes(lanes)?;
        let n = out_c * in_c * kernel * kernel;
        if values.len() != n {
            return Err(Error::input(
                "weights",
                format!(
                    "expected {out_c}x{in_c}x{kernel}x{kernel} = {n} values, got {}",
                    values.len()
                ),
            ));
        }
        let wpt = words_for(in_c, lanes);
        let mut words = vec![0u64; out_c * kernel * kernel * wpt];
        for o in 0..out_c {
            for i in 0..in_c {
                for kh in 0..kernel {
                    for kw in 0..kernel {
                        let idx = ((o * in_c + i) * kernel + kh) * kernel + kw;
                        let bit = bit_of(values[idx], "weights", idx)?;
                        let word = ((o * kernel + kh) * kernel + kw) * wpt + i / lanes as usize;
                        words[word] |= bit << (i % lanes as usize);
                    }
                }
            }
        }
        Ok(PackedWeights {
            out_c,
            in_c,
            kernel,
            lanes,
            words,
        })
    }

    pub fn words_per_tap(&self) -> usize {
        words_for(self.in_c, self.lanes)
    }

    pub fn word(&self, o: usize, kh: usize, kw: usize, j: usize) -> u64 {
        self.words[((o * self.kernel + kh) * self.kernel + kw) * self.words_per_tap() + j]
    }
}

/// Fractional bits of activations and weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedFormat {
    pub act_frac: u32,
    pub weight_frac: u32,
}

impl FixedFormat {
    /// Default formats for `width`-bit lanes: activations Q(w/2).(w/2) (16 bits: Q8.8, range
    /// +/-128 after BN), weights Q2.(w-2) (16 bits: Q2.14, range +/-2).
    pub fn for_width(width: u32) -> FixedFormat {
        FixedFormat {
            act_frac: width / 2,
            weight_frac: width - 2,
        }
    }

    /// Fractional bits of the accumulator (products add their fractional bits).
    pub fn acc_frac(&self) -> u32 {
        self.act_frac + self.weight_frac
    }
}

/// Rounds `x` to nearest `width`-bit fixed point with `frac` fractional bits. Values outside the
/// representable range are an error naming `context[index]` (never silently saturated).
pub fn quantize(x: &[f32], width: u32, frac: u32, context: &str) -> Result<Vec<i32>> {
    let lo = -(1i64 << (width - 1));
    let hi = (1i64 << (width - 1)) - 1;
    let scale = (frac as f64).exp2();
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let q = (v as f64 * scale).round();
            if !q.is_finite() || q < lo as f64 || q > hi as f64 {
                Err(Error::input(
                    format!("{context}[{i}]"),
                    format!(
                        "{v} does not fit {width}-bit fixed point with {frac} fractional bits (range {} .. {})",
                        lo as f64 / scale,
                        hi as f64 / scale
                    ),
                ))
            } else {
                Ok(q as i32)
            }
        })
        .collect()
}

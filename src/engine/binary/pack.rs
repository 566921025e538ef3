//! Packing +/-1 tensors into `u64` words along the channel axis.
//!
//! Conventions (fixed here, relied on by every kernel in [`super`]):
//! - `sign(x) = +1` for `x >= 0` (so sign(0) = +1), `-1` for `x < 0`; NaN is an input error.
//! - +1 is stored as bit 0 and -1 as bit 1 (Larq Compute Engine's convention), so for two packed
//!   vectors the +/-1 dot product over K real positions is `K - 2 * popcount(a XOR b)`.
//! - Bit `c` of a channel vector is bit `c % 64` of word `c / 64`, least significant bit first
//!   (`bitvec::order::Lsb0` over `u64` storage). Bits past the channel count in the last word
//!   ("tail bits") are always zero; the kernels rely on that and deserialisation checks it.
//! - Activations are NHWC-packed: `[N][H][W][words]`; weights `[O][kh][kw][words]`; matrices for
//!   linear layers `[rows][words]`. `words = ceil(C / 64)`.
//!
//! `bitvec` owns layout and correctness: every tensor is written and read through a `BitSlice`
//! view of the word storage; only the hot loops elsewhere read the raw words.

use bitvec::prelude::*;
use ndarray::{Array2, Array4, ArrayView2, ArrayView4};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Bits per storage word.
pub const WORD_BITS: usize = 64;

/// Pixels packed together by the fast packer (two AVX-512 registers of `u64`; 8 ran 4% slower
/// on XNOR ResNet20 from loop overhead, 32 no faster).
const PACK_BLOCK: usize = 16;

/// Number of `u64` words needed for `bits` bits.
pub fn words_for(bits: usize) -> usize {
    bits.div_ceil(WORD_BITS)
}

/// The crate-wide sign function as a +/-1 `i8` (sign(0) = +1). NaN maps to +1 here; the packing
/// functions reject NaN before calling it.
pub fn sign(x: f32) -> i8 {
    if x >= 0.0 || x.is_nan() {
        1
    } else {
        -1
    }
}

/// A +/-1 tensor packed along axis 1 of a 4-D array: `[d0][d2][d3][words]`, `channels` bits used
/// per vector. Shared storage for activations and weights.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Packed4 {
    dims: [usize; 3],
    channels: usize,
    words: usize,
    data: Vec<u64>,
}

impl Packed4 {
    fn from_fn(
        context: &str,
        shape: [usize; 4],
        value: impl Fn([usize; 4]) -> Result<bool>,
    ) -> Result<Self> {
        let [d0, c, d2, d3] = shape;
        if c == 0 {
            return Err(Error::input(context, "channel axis (1) has size 0"));
        }
        let words = words_for(c);
        let mut data = vec![0u64; d0 * d2 * d3 * words];
        let bits = data.view_bits_mut::<Lsb0>();
        // Channel outer, pixels inner: reads the NCHW source in memory order.
        for i0 in 0..d0 {
            for ch in 0..c {
                for i2 in 0..d2 {
                    for i3 in 0..d3 {
                        let negative = value([i0, ch, i2, i3])?;
                        let vector = ((i0 * d2 + i2) * d3 + i3) * words;
                        bits.set(vector * WORD_BITS + ch, negative);
                    }
                }
            }
        }
        Ok(Packed4 {
            dims: [d0, d2, d3],
            channels: c,
            words,
            data,
        })
    }

    /// Reference packer: bitvec sets each bit through its `Lsb0` index.
    fn from_f32_bitvec(context: &str, x: ArrayView4<f32>) -> Result<Self> {
        let shape = x.dim();
        Self::from_fn(
            context,
            [shape.0, shape.1, shape.2, shape.3],
            |[a, b, c, d]| {
                let v = x[[a, b, c, d]];
                if v.is_nan() {
                    return Err(nan_error(context, [a, b, c, d]));
                }
                Ok(v < 0.0)
            },
        )
    }

    /// Fast packer (activations are re-packed after every binary layer). Pixels go in blocks
    /// of [`PACK_BLOCK`]: for each word, the block's bits are gathered in a register-sized
    /// array over up to 64 contiguous channel planes and stored once, so each float is read
    /// once and each word written once (the plane-by-plane OR it replaced rewrote every word
    /// once per channel). Equal to [`Self::from_f32_bitvec`] (tested); `v < 0.0` keeps
    /// sign(-0.0) = +1.
    fn from_f32(context: &str, x: ArrayView4<f32>) -> Result<Self> {
        let (d0, c, d2, d3) = x.dim();
        let Some(xs) = x.as_slice() else {
            return Self::from_f32_bitvec(context, x);
        };
        // A branch-free fold per chunk vectorizes; `position` alone checks one float per step.
        let has_nan = xs
            .chunks(4096)
            .any(|ch| ch.iter().fold(false, |acc, v| acc | v.is_nan()));
        if let Some(i) = has_nan
            .then(|| xs.iter().position(|v| v.is_nan()))
            .flatten()
        {
            let (a, rest) = (i / (c * d2 * d3), i % (c * d2 * d3));
            let (b, rest) = (rest / (d2 * d3), rest % (d2 * d3));
            return Err(nan_error(context, [a, b, rest / d3, rest % d3]));
        }
        if c == 0 {
            return Err(Error::input(context, "channel axis (1) has size 0"));
        }
        let words = words_for(c);
        let plane = d2 * d3;
        let mut data = vec![0u64; d0 * plane * words];
        for i0 in 0..d0 {
            let img = &mut data[i0 * plane * words..(i0 + 1) * plane * words];
            let planes = &xs[i0 * c * plane..(i0 + 1) * c * plane];
            let full = plane - plane % PACK_BLOCK;
            for wi in 0..words {
                let chans = wi * WORD_BITS..((wi + 1) * WORD_BITS).min(c);
                for p0 in (0..full).step_by(PACK_BLOCK) {
                    // Fixed-size block: the accumulator lives in registers across channels.
                    let mut acc = [0u64; PACK_BLOCK];
                    for ch in chans.clone() {
                        let bit = ch % WORD_BITS;
                        let src: &[f32; PACK_BLOCK] = planes[ch * plane + p0..][..PACK_BLOCK]
                            .try_into()
                            .expect("block");
                        for j in 0..PACK_BLOCK {
                            acc[j] |= u64::from(src[j] < 0.0) << bit;
                        }
                    }
                    for (j, &a) in acc.iter().enumerate() {
                        img[(p0 + j) * words + wi] = a;
                    }
                }
                for p in full..plane {
                    let mut a = 0u64;
                    for ch in chans.clone() {
                        a |= u64::from(planes[ch * plane + p] < 0.0) << (ch % WORD_BITS);
                    }
                    img[p * words + wi] = a;
                }
            }
        }
        Ok(Packed4 {
            dims: [d0, d2, d3],
            channels: c,
            words,
            data,
        })
    }

    fn from_i8(context: &str, x: ArrayView4<i8>) -> Result<Self> {
        let shape = x.dim();
        Self::from_fn(
            context,
            [shape.0, shape.1, shape.2, shape.3],
            |[a, b, c, d]| match x[[a, b, c, d]] {
                1 => Ok(false),
                -1 => Ok(true),
                v => Err(Error::input(
                    context,
                    format!("value {v} at [{a}, {b}, {c}, {d}] is not +1 or -1"),
                )),
            },
        )
    }

    /// Back to a +/-1 `i8` array in the original `[d0][C][d2][d3]` layout.
    fn to_i8(&self) -> Array4<i8> {
        let [d0, d2, d3] = self.dims;
        let bits = self.data.view_bits::<Lsb0>();
        Array4::from_shape_fn((d0, self.channels, d2, d3), |(a, ch, b, c)| {
            let vector = ((a * d2 + b) * d3 + c) * self.words;
            if bits[vector * WORD_BITS + ch] {
                -1
            } else {
                1
            }
        })
    }

    fn check(context: &str, dims: [usize; 3], channels: usize, data: &[u64]) -> Result<usize> {
        if channels == 0 {
            return Err(Error::input(context, "channels must be at least 1"));
        }
        let words = words_for(channels);
        let expected = dims.iter().product::<usize>() * words;
        if data.len() != expected {
            return Err(Error::input(
                context,
                format!(
                    "data has {} words, expected {expected} for dims {dims:?} x {words} words",
                    data.len()
                ),
            ));
        }
        check_tails(context, data, words, channels)?;
        Ok(words)
    }
}

/// The input error for a NaN at NCHW index `[a, b, c, d]` (sign is undefined there).
pub(crate) fn nan_error(context: &str, [a, b, c, d]: [usize; 4]) -> Error {
    Error::input(
        context,
        format!("NaN at [{a}, {b}, {c}, {d}] cannot be binarized"),
    )
}

/// Errors if any vector of `words` words has a set bit at or past `bits`.
pub(crate) fn check_tails(context: &str, data: &[u64], words: usize, bits: usize) -> Result<()> {
    let used = bits % WORD_BITS;
    if used == 0 || words == 0 {
        return Ok(());
    }
    let mask = !0u64 << used;
    for (i, v) in data.chunks_exact(words).enumerate() {
        if v[words - 1] & mask != 0 {
            return Err(Error::input(
                context,
                format!("vector {i} has nonzero tail bits past bit {bits}"),
            ));
        }
    }
    Ok(())
}

/// Packed activations, NHWC: `[N][H][W][words]`, `channels` real bits per pixel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawActivations")]
pub struct PackedActivations {
    n: usize,
    h: usize,
    w: usize,
    channels: usize,
    words: usize,
    data: Vec<u64>,
}

#[derive(Deserialize)]
struct RawActivations {
    n: usize,
    h: usize,
    w: usize,
    channels: usize,
    data: Vec<u64>,
}

impl TryFrom<RawActivations> for PackedActivations {
    type Error = Error;
    fn try_from(r: RawActivations) -> Result<Self> {
        Self::from_raw(r.n, r.h, r.w, r.channels, r.data)
    }
}

impl PackedActivations {
    /// Wraps raw words laid out as documented in the module; checks length and zero tail bits.
    pub fn from_raw(n: usize, h: usize, w: usize, channels: usize, data: Vec<u64>) -> Result<Self> {
        let words = Packed4::check("packed activations", [n, h, w], channels, &data)?;
        Ok(PackedActivations {
            n,
            h,
            w,
            channels,
            words,
            data,
        })
    }

    fn from_packed4(p: Packed4) -> Self {
        PackedActivations {
            n: p.dims[0],
            h: p.dims[1],
            w: p.dims[2],
            channels: p.channels,
            words: p.words,
            data: p.data,
        }
    }

    fn as_packed4(&self) -> Packed4 {
        Packed4 {
            dims: [self.n, self.h, self.w],
            channels: self.channels,
            words: self.words,
            data: self.data.clone(),
        }
    }

    /// `(N, C, H, W)` of the tensor this packs.
    pub fn dim(&self) -> (usize, usize, usize, usize) {
        (self.n, self.channels, self.h, self.w)
    }
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// Words per pixel, `ceil(C / 64)`.
    pub fn words_per_pixel(&self) -> usize {
        self.words
    }
    /// All words, `[N][H][W][words]`.
    pub fn as_words(&self) -> &[u64] {
        &self.data
    }
    /// The channel vector of one pixel.
    pub fn pixel(&self, n: usize, y: usize, x: usize) -> &[u64] {
        let start = ((n * self.h + y) * self.w + x) * self.words;
        &self.data[start..start + self.words]
    }
    /// Unpacks to a +/-1 NCHW `i8` array (for checks and debugging).
    pub fn to_i8(&self) -> Array4<i8> {
        self.as_packed4().to_i8()
    }
}

/// Packed weights: `[O][kh][kw][words]`, `in_channels` real bits per tap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawWeights")]
pub struct PackedWeights {
    out_channels: usize,
    kh: usize,
    kw: usize,
    in_channels: usize,
    words: usize,
    data: Vec<u64>,
}

#[derive(Deserialize)]
struct RawWeights {
    out_channels: usize,
    kh: usize,
    kw: usize,
    in_channels: usize,
    data: Vec<u64>,
}

impl TryFrom<RawWeights> for PackedWeights {
    type Error = Error;
    fn try_from(r: RawWeights) -> Result<Self> {
        Self::from_raw(r.out_channels, r.kh, r.kw, r.in_channels, r.data)
    }
}

impl PackedWeights {
    /// Wraps raw words laid out as documented in the module; checks length and zero tail bits.
    pub fn from_raw(
        out_channels: usize,
        kh: usize,
        kw: usize,
        in_channels: usize,
        data: Vec<u64>,
    ) -> Result<Self> {
        let words = Packed4::check("packed weights", [out_channels, kh, kw], in_channels, &data)?;
        let w = PackedWeights {
            out_channels,
            kh,
            kw,
            in_channels,
            words,
            data,
        };
        w.check_nonempty("packed weights")?;
        Ok(w)
    }

    fn check_nonempty(&self, context: &str) -> Result<()> {
        if self.out_channels == 0 || self.kh == 0 || self.kw == 0 {
            return Err(Error::input(
                context,
                format!(
                    "weights shape [{}, {}, {}, {}] has an empty axis",
                    self.out_channels, self.in_channels, self.kh, self.kw
                ),
            ));
        }
        Ok(())
    }

    fn from_packed4(context: &str, p: Packed4) -> Result<Self> {
        let w = PackedWeights {
            out_channels: p.dims[0],
            kh: p.dims[1],
            kw: p.dims[2],
            in_channels: p.channels,
            words: p.words,
            data: p.data,
        };
        w.check_nonempty(context)?;
        Ok(w)
    }

    /// `(O, C, kh, kw)` of the OIHW tensor this packs.
    pub fn dim(&self) -> (usize, usize, usize, usize) {
        (self.out_channels, self.in_channels, self.kh, self.kw)
    }
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }
    /// Words per tap, `ceil(C / 64)`.
    pub fn words_per_tap(&self) -> usize {
        self.words
    }
    /// All words, `[O][kh][kw][words]`.
    pub fn as_words(&self) -> &[u64] {
        &self.data
    }
    /// The in-channel vector of output `o` at tap `(ky, kx)`.
    pub fn tap(&self, o: usize, ky: usize, kx: usize) -> &[u64] {
        let start = ((o * self.kh + ky) * self.kw + kx) * self.words;
        &self.data[start..start + self.words]
    }
    /// Unpacks to a +/-1 OIHW `i8` array.
    pub fn to_i8(&self) -> Array4<i8> {
        Packed4 {
            dims: [self.out_channels, self.kh, self.kw],
            channels: self.in_channels,
            words: self.words,
            data: self.data.clone(),
        }
        .to_i8()
    }
}

/// Rows of +/-1 values packed along the row: `[rows][words]`, `len` real bits per row. Inputs
/// (`[N][K]`) and weights (`[O][K]`) of binary linear layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRows")]
pub struct PackedRows {
    rows: usize,
    len: usize,
    words: usize,
    data: Vec<u64>,
}

#[derive(Deserialize)]
struct RawRows {
    rows: usize,
    len: usize,
    data: Vec<u64>,
}

impl TryFrom<RawRows> for PackedRows {
    type Error = Error;
    fn try_from(r: RawRows) -> Result<Self> {
        Self::from_raw(r.rows, r.len, r.data)
    }
}

impl PackedRows {
    /// Wraps raw words laid out as documented in the module; checks length and zero tail bits.
    pub fn from_raw(rows: usize, len: usize, data: Vec<u64>) -> Result<Self> {
        let words = Packed4::check("packed rows", [rows, 1, 1], len, &data)?;
        Ok(PackedRows {
            rows,
            len,
            words,
            data,
        })
    }

    fn from_packed4(p: Packed4) -> Self {
        PackedRows {
            rows: p.dims[0],
            len: p.channels,
            words: p.words,
            data: p.data,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Real bits per row (K).
    pub fn len(&self) -> usize {
        self.len
    }
    /// Always false: a row has at least one bit.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Words per row, `ceil(K / 64)`.
    pub fn words_per_row(&self) -> usize {
        self.words
    }
    /// All words, `[rows][words]`.
    pub fn as_words(&self) -> &[u64] {
        &self.data
    }
    /// One packed row.
    pub fn row(&self, r: usize) -> &[u64] {
        &self.data[r * self.words..(r + 1) * self.words]
    }
    /// Unpacks to a +/-1 `i8` matrix `[rows][K]`.
    pub fn to_i8(&self) -> Array2<i8> {
        let p = Packed4 {
            dims: [self.rows, 1, 1],
            channels: self.len,
            words: self.words,
            data: self.data.clone(),
        };
        p.to_i8()
            .into_shape_with_order((self.rows, self.len))
            .expect("rows x len x 1 x 1 reshapes to rows x len")
    }
}

fn as4<T>(x: ArrayView2<'_, T>) -> ArrayView4<'_, T> {
    let (r, k) = x.dim();
    x.into_shape_with_order((r, k, 1, 1))
        .unwrap_or_else(|_| unreachable!("a 2-D view always reshapes to r x k x 1 x 1"))
}

/// Packs NCHW activations by sign (sign(0) = +1). NaN is an error naming its index.
pub fn pack_activations(x: &Array4<f32>) -> Result<PackedActivations> {
    Packed4::from_f32("activations", x.view()).map(PackedActivations::from_packed4)
}

/// Packs NCHW activations given as +/-1 `i8`; any other value is an error.
pub fn pack_activations_i8(x: &Array4<i8>) -> Result<PackedActivations> {
    Packed4::from_i8("activations", x.view()).map(PackedActivations::from_packed4)
}

/// Packs OIHW weights by sign (sign(0) = +1). NaN is an error naming its index.
pub fn pack_weights(w: &Array4<f32>) -> Result<PackedWeights> {
    let p = Packed4::from_f32("weights", w.view())?;
    PackedWeights::from_packed4("weights", p)
}

/// Packs OIHW weights given as +/-1 `i8`; any other value is an error.
pub fn pack_weights_i8(w: &Array4<i8>) -> Result<PackedWeights> {
    let p = Packed4::from_i8("weights", w.view())?;
    PackedWeights::from_packed4("weights", p)
}

/// Packs the rows of a `[rows][K]` matrix by sign (sign(0) = +1). NaN is an error.
pub fn pack_rows(x: &Array2<f32>) -> Result<PackedRows> {
    Packed4::from_f32("rows", as4(x.view())).map(PackedRows::from_packed4)
}

/// Packs the rows of a `[rows][K]` +/-1 `i8` matrix; any other value is an error.
pub fn pack_rows_i8(x: &Array2<i8>) -> Result<PackedRows> {
    Packed4::from_i8("rows", as4(x.view())).map(PackedRows::from_packed4)
}

/// Packs one +/-1 `i8` vector into words (tail bits zero), for [`super::bdot`].
pub fn pack_vector_i8(x: &[i8]) -> Result<Vec<u64>> {
    let m = Array2::from_shape_vec((1, x.len()), x.to_vec())
        .map_err(|e| Error::input("vector", e.to_string()))?;
    Ok(pack_rows_i8(&m)?.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_layout_is_lsb_first_and_minus_one_is_set() {
        // 70 channels: channel 0 -> word 0 bit 0, channel 65 -> word 1 bit 1.
        let mut x = Array4::<f32>::ones((1, 70, 1, 1));
        x[[0, 0, 0, 0]] = -0.5;
        x[[0, 65, 0, 0]] = -2.0;
        x[[0, 3, 0, 0]] = 0.0; // sign(0) = +1 -> bit clear
        let p = pack_activations(&x).unwrap();
        assert_eq!(p.pixel(0, 0, 0), &[1u64, 2u64]);
    }

    proptest::proptest! {
        /// The fast f32 packer against the bitvec one, with exact zeros and -0.0 mixed in; up to
        /// 64 pixels per plane, so whole pixel blocks and tails both occur.
        #[test]
        fn fast_f32_packing_equals_bitvec_packing(
            n in 1usize..3, c in 1usize..140, h in 1usize..9, w in 1usize..9, seed in 0u64..1000
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let x = Array4::from_shape_fn((n, c, h, w), |_| match rng.gen_range(0..6) {
                0 => 0.0,
                1 => -0.0,
                _ => rng.gen_range(-1.0f32..1.0),
            });
            let fast = Packed4::from_f32("x", x.view()).unwrap();
            let slow = Packed4::from_f32_bitvec("x", x.view()).unwrap();
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn nan_is_an_error_naming_the_index() {
        let mut x = Array4::<f32>::zeros((1, 2, 2, 2));
        x[[0, 1, 1, 0]] = f32::NAN;
        let e = pack_activations(&x).unwrap_err().to_string();
        assert!(
            e.contains("activations") && e.contains("[0, 1, 1, 0]"),
            "{e}"
        );
        let e = Packed4::from_f32_bitvec("a", x.view())
            .unwrap_err()
            .to_string();
        assert!(e.contains("[0, 1, 1, 0]"), "{e}");
    }

    #[test]
    fn i8_other_than_pm1_is_an_error() {
        let x = Array4::<i8>::zeros((1, 1, 1, 1));
        assert!(pack_weights_i8(&x).is_err());
    }

    #[test]
    fn raw_tail_bits_are_rejected() {
        assert!(PackedRows::from_raw(1, 3, vec![0b1000]).is_err());
        assert!(PackedRows::from_raw(1, 3, vec![0b0111]).is_ok());
        assert!(PackedRows::from_raw(2, 3, vec![0]).is_err());
    }

    #[test]
    fn serde_roundtrip_validates() {
        let x = Array4::from_shape_fn((2, 67, 3, 2), |(a, b, c, d)| {
            if (a * 7 + b * 3 + c + d) % 3 == 0 {
                -1i8
            } else {
                1
            }
        });
        let p = pack_activations_i8(&x).unwrap();
        let s = serde_json::to_string(&p).unwrap();
        let q: PackedActivations = serde_json::from_str(&s).unwrap();
        assert_eq!(p, q);
        assert_eq!(q.to_i8(), x);
        let bad = s.replacen("\"channels\":67", "\"channels\":3", 1);
        assert!(serde_json::from_str::<PackedActivations>(&bad).is_err());
    }
}

//! Bit-exact binarized kernels: packing, XNOR + popcount dot products, binary conv2d and linear
//! layers, and the XNOR-Net / ABC-Net output transforms.
//!
//! Conventions (see [`pack`] for the full statement):
//! - sign(0) = +1; +1 -> bit 0, -1 -> bit 1; bit `c` = bit `c % 64` of word `c / 64` (LSB first);
//!   tail bits zero. Activations NHWC-packed `[N][H][W][words]`, weights `[O][kh][kw][words]`.
//! - Kernels return exact `i32` +/-1 sums ([`bdot`]: `K - 2*popcount(a XOR b)`;
//!   [`bdot_matches`]: FINN's match count `(dot + K) / 2`).
//! - Zero padding is exact: a padded position contributes 0, as in a float conv of +/-1 tensors
//!   ([`padding`]). Output sizes follow PyTorch (`floor((H + 2p - k) / s) + 1`).
//! - Every kernel has a `_with(PopcountPath, ..)` form so tests can force the portable, `popcnt`
//!   or AVX-512 VPOPCNTDQ path; the plain form picks the fastest available at run time.
//!
//! One concern per file: [`pack`] (layout), [`popcount`] (paths), [`dot`], [`frame`] (the
//! channel-last byte-packed image of the inference path), [`im2col`] (bit rows),
//! [`bgemm`] (the hot loop; [`taps`] its tap-per-lane form for 16, 32 and 64 channels), [`padding`] (exact zero padding), [`output_transform`] (sums to the next layer's floats
//! or sign bits: intervals, their writer, the tap kernel's thresholds), [`bconv`], [`linear`],
//! [`transform`] (i32 -> scaled f32), [`multibase`] (XNOR / ABC layers), and [`reference`](mod@reference)
//! (slow i8 truth the fast kernels are tested against).
//!
//! ```
//! use breakingbed::engine::binary;
//! use ndarray::Array4;
//! let x = Array4::from_shape_fn((1, 3, 4, 4), |(_, c, y, x)| if (c + y + x) % 3 == 0 { -1.0f32 } else { 0.5 });
//! let w = Array4::from_shape_fn((2, 3, 3, 3), |(o, c, y, x)| if (o + c * y + x) % 2 == 0 { 1.0f32 } else { -1.0 });
//! let acc = binary::bconv2d(&binary::pack_activations(&x)?, &binary::pack_weights(&w)?, 1, 1)?;
//! assert_eq!(acc.dim(), (1, 2, 4, 4));
//! # Ok::<(), breakingbed::Error>(())
//! ```

pub mod bconv;
mod bgemm;
pub mod dot;
mod frame;
mod im2col;
pub mod linear;
pub mod multibase;
mod output_transform;
pub mod pack;
mod padding;
pub mod popcount;
pub mod reference;
mod taps;
pub mod transform;

pub use bconv::{bconv2d, bconv2d_with, BConv2d};
pub use dot::{bdot, bdot_matches, bdot_mismatches_with, bdot_with};
pub(crate) use frame::{framed_len, pack_framed, row_start};
pub use linear::{blinear, blinear_with, BLinear};
pub use multibase::{abc_bconv2d, abc_blinear, xnor_bconv2d};
pub(crate) use output_transform::BitsOut;
pub use pack::{
    pack_activations, pack_activations_i8, pack_rows, pack_rows_i8, pack_vector_i8, pack_weights,
    pack_weights_i8, sign, words_for, PackedActivations, PackedRows, PackedWeights, WORD_BITS,
};
pub use popcount::PopcountPath;
pub use transform::{combine_bases, scale_per_channel};

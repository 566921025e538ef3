//! Channel-last bit images for the inference path: one NHWC `f32` image packed into a
//! zero-framed, byte-packed bit image whose windows [`super::im2col::Windows`] reads in place.
//!
//! Layout: the image framed by `pad` zero pixels on every side (`(H + 2p) x (W + 2p)` pixels,
//! row-major), each pixel `C / 8` bytes, channel `c` at bit `c % 8` of byte `c / 8` (so read
//! as little-endian `u64` words this is the crate's LSB-first bit order, and a run of pixels is
//! one contiguous bit string: `kw` neighbouring pixels are exactly the `kw * C` bits of one
//! im2col tap row). Frame pixels are zero bits, i.e. +1, as in the word-major im2col;
//! [`super::padding`] removes their contribution. Eight spare zero bytes at the end let
//! readers load whole `u64`s past the last pixel.
//!
//! Only `C % 8 == 0` is handled (every ResNet width is); other widths take the word-packed
//! path ([`super::pack`]). Sign rule as the packer: bit 1 iff `v < 0` (sign(0) = sign(-0) = +1);
//! NaN is an input error, never a silent +1.

use super::pack::nan_error;
use crate::engine::cpu::{self, Features, Isa};
use crate::Result;

/// Spare bytes after the last pixel (one `u64` of over-read).
pub(crate) const SLACK: usize = 8;

/// Whether the byte-packed path can take `channels` on this target.
pub(crate) fn supports(channels: usize) -> bool {
    channels > 0 && channels.is_multiple_of(8) && cfg!(target_endian = "little")
}

/// Bytes of a framed `h x w` image with `c` channels and padding `pad`, slack included.
pub(crate) fn framed_len(h: usize, w: usize, c: usize, pad: usize) -> usize {
    (h + 2 * pad) * (w + 2 * pad) * (c / 8) + SLACK
}

/// Byte offset of row `y`'s first image pixel in a frame of a `w`-wide image with `c`
/// channels and padding `pad`.
pub(crate) fn row_start(y: usize, w: usize, c: usize, pad: usize) -> usize {
    ((y + pad) * (w + 2 * pad) + pad) * (c / 8)
}

/// Packs one NHWC image `x` (`h * w * c` floats) into `out` ([`framed_len`] bytes, every byte
/// written). `image` is the image's index in its batch, for the NaN error.
pub(crate) fn pack_framed(
    x: &[f32],
    dims: (usize, usize, usize),
    pad: usize,
    image: usize,
    out: &mut [u8],
) -> Result<()> {
    pack_framed_with(cpu::isa(), x, dims, pad, image, out)
}

/// The features of the AVX-512 row writers.
const AVX512: Features = Features::AVX512F;

/// [`pack_framed`] at level `isa`: the AVX-512 row packer where it allows it, else the
/// portable one.
fn pack_framed_with(
    isa: Isa,
    x: &[f32],
    (h, w, c): (usize, usize, usize),
    pad: usize,
    image: usize,
    out: &mut [u8],
) -> Result<()> {
    assert!(supports(c) && x.len() == h * w * c && out.len() == framed_len(h, w, c, pad));
    out.fill(0);
    let fast = isa.allows(AVX512);
    let mut nan = false;
    for y in 0..h {
        let at = row_start(y, w, c, pad);
        let row = &mut out[at..at + w * c / 8];
        let src = &x[y * w * c..(y + 1) * w * c];
        nan |= match fast {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `fast` means the CPU has AVX-512F.
            true => unsafe { pack_row_avx512(src, row) },
            _ => pack_row(src, row),
        };
    }
    if nan {
        let at = x.iter().position(|v| v.is_nan()).expect("a NaN was seen");
        let (px, ch) = (at / c, at % c);
        return Err(nan_error("binary conv input", [image, ch, px / w, px % w]));
    }
    Ok(())
}

/// Eight floats per byte (`src.len() == 8 * dst.len()`); returns whether any was NaN.
fn pack_row(src: &[f32], dst: &mut [u8]) -> bool {
    let mut nan = false;
    for (d, ch) in dst.iter_mut().zip(src.chunks_exact(8)) {
        let mut bits = 0u8;
        for (i, &v) in ch.iter().enumerate() {
            bits |= u8::from(v < 0.0) << i;
            nan |= v.is_nan();
        }
        *d = bits;
    }
    nan
}

/// [`pack_row`] sixteen floats per compare-to-mask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pack_row_avx512(src: &[f32], dst: &mut [u8]) -> bool {
    use std::arch::x86_64::*;
    assert_eq!(src.len(), 8 * dst.len());
    let n16 = dst.len() / 2;
    let zero = _mm512_setzero_ps();
    let mut nan: __mmask16 = 0;
    for i in 0..n16 {
        // SAFETY: floats 16i..16i + 16 <= 8 * dst.len() = src.len().
        let v = unsafe { _mm512_loadu_ps(src.as_ptr().add(16 * i)) };
        // Ordered less-than: false for NaN (reported below) and for -0.0 (sign(-0) = +1).
        let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, zero);
        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        dst[2 * i..2 * i + 2].copy_from_slice(&m.to_le_bytes());
    }
    let tail = pack_row(&src[16 * n16..], &mut dst[2 * n16..]);
    nan != 0 || tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_land_where_the_layout_says() {
        // 1x2 image, 16 channels, pad 1: framed 3x4 pixels of 2 bytes.
        let (h, w, c) = (1, 2, 16);
        let mut x = vec![0.5f32; h * w * c];
        x[3] = -1.0; // pixel 0, channel 3
        x[c + 9] = -0.0; // pixel 1, channel 9: sign(-0) = +1, bit stays 0
        x[c + 12] = -2.0; // pixel 1, channel 12
        let mut out = vec![0xAAu8; framed_len(h, w, c, 1)];
        pack_framed(&x, (h, w, c), 1, 0, &mut out).unwrap();
        let mut want = vec![0u8; out.len()];
        let px = |y: usize, xx: usize| (y * 4 + xx) * 2;
        want[px(1, 1)] = 1 << 3;
        want[px(1, 2) + 1] = 1 << (12 - 8);
        assert_eq!(out, want);
    }

    /// Every level's row packer against the definition (signed zeros, infinities, odd tails).
    #[test]
    fn packers_agree() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (h, w, c, pad) in [(3, 5, 8, 1), (4, 4, 16, 0), (2, 7, 24, 2), (5, 3, 64, 1)] {
            let x: Vec<f32> = (0..h * w * c)
                .map(|_| match rng.gen_range(0..6) {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f32::NEG_INFINITY,
                    _ => rng.gen_range(-1.0..1.0),
                })
                .collect();
            // The definition: bit c of pixel (y, x) iff the value is below zero.
            let mut want = vec![0u8; framed_len(h, w, c, pad)];
            for (i, &v) in x.iter().enumerate() {
                let (px, ch) = (i / c, i % c);
                let at = row_start(px / w, w, c, pad) + (px % w) * c / 8 + ch / 8;
                want[at] |= u8::from(v < 0.0) << (ch % 8);
            }
            for isa in cpu::test_levels() {
                let mut a = vec![1u8; framed_len(h, w, c, pad)];
                pack_framed_with(isa, &x, (h, w, c), pad, 0, &mut a).unwrap();
                assert_eq!(a, want, "{isa:?} {h}x{w}x{c} pad {pad}");
                let mut bad = x.clone();
                bad[h * w * c - 1] = f32::NAN;
                let e = pack_framed_with(isa, &bad, (h, w, c), pad, 3, &mut a).unwrap_err();
                assert!(e.to_string().contains("NaN at [3, "), "{isa:?} {e}");
            }
        }
    }

    #[test]
    fn nan_is_an_error_naming_the_position() {
        let mut x = vec![1.0f32; 2 * 3 * 8];
        x[(3 + 2) * 8 + 5] = f32::NAN; // y 1, x 2, channel 5
        let mut out = vec![0u8; framed_len(2, 3, 8, 0)];
        let e = pack_framed(&x, (2, 3, 8), 0, 7, &mut out).unwrap_err();
        assert!(e.to_string().contains("NaN at [7, 5, 1, 2]"), "{e}");
    }
}

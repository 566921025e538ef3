//! Bit-level im2col: the receptive field of each output pixel as one dense bit row.
//!
//! Row layout: tap-major in `(ky, kx)` order, then the C channel bits of that tap, so tap `t`
//! occupies bits `t*C .. (t+1)*C` of a row of `K = kh*kw*C` bits (`ceil(K/64)` words, tail zero).
//! Unlike word-level im2col this wastes no bits when C is not a multiple of 64 (C = 16 uses 144
//! bits = 3 words for a 3x3 window instead of 9 words).
//!
//! Padded taps are left as zero bits, i.e. +1 ("same-one" padding); [`super::padding`] removes
//! their contribution exactly. Filter rows use the same layout, built once per layer.

use super::pack::{words_for, PackedWeights};

/// Geometry of one conv: input size, kernel, stride, symmetric zero padding, output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    /// Bits per im2col row.
    pub fn kbits(&self) -> usize {
        self.kh * self.kw * self.c
    }
    pub fn row_words(&self) -> usize {
        words_for(self.kbits())
    }
    pub fn out_pixels(&self) -> usize {
        self.oh * self.ow
    }
}

/// ORs `src` into `dst` starting at bit `off`. `src`'s bits past its real length must be zero, so
/// words or word halves that would land past `dst`'s end carry nothing and are skipped.
#[inline(always)]
pub(crate) fn or_bits_at(dst: &mut [u64], off: usize, src: &[u64]) {
    let (w0, s) = (off / 64, off % 64);
    let n = dst.len();
    if s == 0 {
        for (d, &v) in dst[w0.min(n)..].iter_mut().zip(src) {
            *d |= v;
        }
    } else {
        for (i, &v) in src.iter().enumerate() {
            let j = w0 + i;
            if j < n {
                dst[j] |= v << s;
            }
            if j + 1 < n {
                dst[j + 1] |= v >> (64 - s);
            }
        }
    }
}

/// Valid tap range `[lo, hi)` along one axis for output position `o`: input index
/// `o*stride + t - pad` lies in `[0, len)` exactly for `t` in the range.
#[inline]
pub(crate) fn valid_taps(o: usize, k: usize, stride: usize, pad: usize, len: usize) -> (usize, usize) {
    let start = o * stride;
    let lo = pad.saturating_sub(start).min(k);
    let hi = (len + pad).saturating_sub(start).min(k).max(lo);
    (lo, hi)
}

/// Words `out` must hold for one image: one row per output pixel plus one spare word, which the
/// single-word fast path may OR zeros into past the last row.
pub(crate) fn im2col_len(g: &ConvGeom) -> usize {
    g.out_pixels() * g.row_words() + 1
}

/// Fills `out` (`[oh*ow][row_words]`, length [`im2col_len`]) with the im2col rows of one image
/// given as NHWC-packed words (`[H][W][words_per_pixel]`).
pub(crate) fn bit_im2col(g: &ConvGeom, image: &[u64], words_per_pixel: usize, out: &mut [u64]) {
    let rw = g.row_words();
    assert!(out.len() >= im2col_len(g));
    out.fill(0);
    // Where each tap starts in a row: word index and bit shift.
    let taps: Vec<(usize, u32)> = (0..g.kh * g.kw)
        .map(|t| ((t * g.c) / 64, ((t * g.c) % 64) as u32))
        .collect();
    for oy in 0..g.oh {
        let (ylo, yhi) = valid_taps(oy, g.kh, g.stride, g.pad, g.h);
        for ox in 0..g.ow {
            let (xlo, xhi) = valid_taps(ox, g.kw, g.stride, g.pad, g.w);
            let pix = oy * g.ow + ox;
            // The row plus the next word: the fast path below may OR zeros into it.
            let row = &mut out[pix * rw..pix * rw + rw + 1];
            for ky in ylo..yhi {
                let iy = oy * g.stride + ky - g.pad;
                let line = &image[iy * g.w * words_per_pixel..(iy + 1) * g.w * words_per_pixel];
                for kx in xlo..xhi {
                    let ix = ox * g.stride + kx - g.pad;
                    let (wi, s) = taps[ky * g.kw + kx];
                    if words_per_pixel == 1 {
                        // C <= 64: one word per tap. The high part `v >> (64 - s)` is written as
                        // `(v >> 1) >> (63 - s)` so s = 0 needs no branch (it yields 0). Bits that
                        // spill past the row are tail bits of v, i.e. zero.
                        let v = line[ix];
                        row[wi] |= v << s;
                        row[wi + 1] |= (v >> 1) >> (63 - s);
                    } else {
                        let px = &line[ix * words_per_pixel..(ix + 1) * words_per_pixel];
                        or_bits_at(&mut row[..rw], (ky * g.kw + kx) * g.c, px);
                    }
                }
            }
        }
    }
}

/// Filter rows (`[O][row_words]`) in the im2col layout.
pub(crate) fn weight_rows(w: &PackedWeights) -> Vec<u64> {
    let (o, c, kh, kw) = w.dim();
    let rw = words_for(kh * kw * c);
    let mut out = vec![0u64; o * rw];
    for (oc, row) in out.chunks_exact_mut(rw.max(1)).enumerate() {
        for ky in 0..kh {
            for kx in 0..kw {
                or_bits_at(row, (ky * kw + kx) * c, w.tap(oc, ky, kx));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::pack::{pack_activations_i8, pack_weights_i8};
    use super::*;
    use bitvec::prelude::*;
    use ndarray::Array4;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn pm1(rng: &mut ChaCha8Rng) -> i8 {
        if rng.gen::<bool>() {
            1
        } else {
            -1
        }
    }

    /// The word-shifting im2col against rows built bit by bit with bitvec from unpacked values.
    #[test]
    fn bit_im2col_equals_bitvec_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for &(c, k, stride, pad, h) in &[
            (1, 3, 1, 1, 4),
            (16, 3, 1, 1, 5),
            (33, 3, 2, 1, 5),
            (64, 1, 2, 0, 4),
            (65, 5, 1, 2, 3),
            (130, 3, 2, 2, 6),
        ] {
            let x = Array4::from_shape_fn((1, c, h, h + 1), |_| pm1(&mut rng));
            let p = pack_activations_i8(&x).unwrap();
            let w = h + 1;
            let g = ConvGeom {
                h,
                w,
                c,
                kh: k,
                kw: k,
                stride,
                pad,
                oh: (h + 2 * pad - k) / stride + 1,
                ow: (w + 2 * pad - k) / stride + 1,
            };
            let rw = g.row_words();
            let mut got = vec![u64::MAX; im2col_len(&g)];
            bit_im2col(&g, p.as_words(), p.words_per_pixel(), &mut got);
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut bits: BitVec<u64, Lsb0> = BitVec::new();
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * stride + ky) as isize - pad as isize;
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w;
                            for ch in 0..c {
                                bits.push(inside && x[[0, ch, iy as usize, ix as usize]] == -1);
                            }
                        }
                    }
                    bits.resize(rw * 64, false);
                    let p = oy * g.ow + ox;
                    assert_eq!(&got[p * rw..(p + 1) * rw], bits.as_raw_slice(), "c{c} k{k}");
                }
            }
        }
    }

    #[test]
    fn weight_rows_equal_bitvec_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let (o, c, k) = (3, 37, 3);
        let w = Array4::from_shape_fn((o, c, k, k), |_| pm1(&mut rng));
        let rows = weight_rows(&pack_weights_i8(&w).unwrap());
        let rw = words_for(k * k * c);
        for oc in 0..o {
            let mut bits: BitVec<u64, Lsb0> = BitVec::new();
            for ky in 0..k {
                for kx in 0..k {
                    for ch in 0..c {
                        bits.push(w[[oc, ch, ky, kx]] == -1);
                    }
                }
            }
            bits.resize(rw * 64, false);
            assert_eq!(&rows[oc * rw..(oc + 1) * rw], bits.as_raw_slice());
        }
    }
}

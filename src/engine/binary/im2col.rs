//! Bit-level im2col: the receptive field of each output pixel as one dense bit row.
//!
//! Row layout: tap-major in `(ky, kx)` order, then the C channel bits of that tap, so tap `t`
//! occupies bits `t*C .. (t+1)*C` of a row of `K = kh*kw*C` bits (`ceil(K/64)` words, tail zero).
//! Unlike word-level im2col this wastes no bits when C is not a multiple of 64 (C = 16 uses 144
//! bits = 3 words for a 3x3 window instead of 9 words).
//!
//! The rows of one image are stored *word-major* ("transposed"): word `j` of pixel `p` lives at
//! `j * cols8 + p`, with `cols8` the pixel count rounded up to 8, so the conv kernel can load the
//! same word of 8 neighbouring pixels as one AVX-512 vector and write NCHW outputs directly.
//! Filter rows (built once per layer) use the plain `[O][row_words]` layout.
//!
//! Padded taps are left as zero bits, i.e. +1 ("same-one" padding); [`super::padding`] removes
//! their contribution exactly.
//!
//! The image is first framed by `pad` zero pixels, so every pixel takes one branch-free path:
//! each row word is the OR of a fixed list of shifted input words at fixed offsets from the
//! pixel's window origin.

use super::pack::{words_for, PackedWeights};
use crate::model::geom::ConvGeom;

/// Words per im2col row (`ceil(C*KH*KW / 64)`).
pub(crate) fn row_words(g: &ConvGeom) -> usize {
    words_for(g.reduction())
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
pub(crate) fn valid_taps(
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    len: usize,
) -> (usize, usize) {
    let start = o * stride;
    let lo = pad.saturating_sub(start).min(k);
    let hi = (len + pad).saturating_sub(start).min(k).max(lo);
    (lo, hi)
}

/// One input word's share of a row word: `(image[origin + off] << l) >> r`.
#[derive(Clone, Copy, Debug)]
struct Contrib {
    off: usize,
    l: u32,
    r: u32,
}

/// A prepared im2col for one geometry and pixel width (words per input pixel).
#[derive(Clone, Debug)]
pub(crate) struct Im2col {
    g: ConvGeom,
    wpp: usize,
    cols8: usize,
    contrib: Vec<Contrib>,
    /// `contrib[word_start[j]..word_start[j + 1]]` build row word `j`.
    word_start: Vec<usize>,
}

impl Im2col {
    pub(crate) fn new(g: ConvGeom, wpp: usize) -> Self {
        let rw = row_words(&g);
        let mut per_word: Vec<Vec<Contrib>> = vec![Vec::new(); rw];
        for t in 0..g.kh * g.kw {
            let (dy, dx) = (t / g.kw, t % g.kw);
            for m in 0..wpp {
                let bit = t * g.c + 64 * m;
                let (j, s) = (bit / 64, (bit % 64) as u32);
                // Offsets in the zero-framed image `fill` builds (row stride W + 2*pad).
                let off = (dy * (g.w + 2 * g.pad) + dx) * wpp + m;
                per_word[j].push(Contrib { off, l: s, r: 0 });
                // The high part of a shifted word; past the row it holds only zero tail bits.
                if s > 0 && j + 1 < rw {
                    per_word[j + 1].push(Contrib {
                        off,
                        l: 0,
                        r: 64 - s,
                    });
                }
            }
        }
        let mut word_start = vec![0];
        let mut contrib = Vec::new();
        for v in per_word {
            contrib.extend(v);
            word_start.push(contrib.len());
        }
        Im2col {
            g,
            wpp,
            cols8: g.pixels().div_ceil(8) * 8,
            contrib,
            word_start,
        }
    }

    /// Pixel stride of the word-major buffer (pixels rounded up to 8).
    pub(crate) fn cols8(&self) -> usize {
        self.cols8
    }

    /// Words the output buffer holds: `row_words * cols8`.
    pub(crate) fn len(&self) -> usize {
        row_words(&self.g) * self.cols8
    }

    /// Fills `out` (word-major, [`Self::len`] words) from one NHWC-packed image
    /// (`[H][W][wpp]`).
    pub(crate) fn fill(&self, image: &[u64], out: &mut [u64]) {
        let g = &self.g;
        let (rw, wpp, cols8) = (row_words(g), self.wpp, self.cols8);
        assert!(out.len() >= self.len() && image.len() >= g.h * g.w * wpp);
        // The image framed by `pad` zero pixels (zero bits are the +1 taps the padding
        // correction assumes), so every output pixel takes the same branch-free path; the
        // per-pixel border path this replaced took 10% of XNOR ResNet20 inference.
        let pw = g.w + 2 * g.pad;
        let framed;
        let src_img: &[u64] = if g.pad == 0 {
            image
        } else {
            let mut v = vec![0u64; (g.h + 2 * g.pad) * pw * wpp];
            for y in 0..g.h {
                let d = ((y + g.pad) * pw + g.pad) * wpp;
                v[d..d + g.w * wpp].copy_from_slice(&image[y * g.w * wpp..(y + 1) * g.w * wpp]);
            }
            framed = v;
            &framed
        };
        // For a fixed contribution the source words of consecutive pixels are `step` apart
        // (contiguous for stride 1 and C <= 64), so these loops vectorize.
        let step = g.stride * wpp;
        let n = g.wo;
        for oy in 0..g.ho {
            let origin = oy * g.stride * pw * wpp;
            for j in 0..rw {
                let start = j * cols8 + oy * g.wo;
                let dst = &mut out[start..start + n];
                let cs = &self.contrib[self.word_start[j]..self.word_start[j + 1]];
                let Some((first, rest)) = cs.split_first() else {
                    dst.fill(0);
                    continue;
                };
                let src =
                    |c: &Contrib| &src_img[origin + c.off..origin + c.off + (n - 1) * step + 1];
                if step == 1 {
                    let (l, r) = (first.l, first.r);
                    dst.iter_mut()
                        .zip(src(first))
                        .for_each(|(d, &v)| *d = v.wrapping_shl(l).wrapping_shr(r));
                    for c in rest {
                        dst.iter_mut()
                            .zip(src(c))
                            .for_each(|(d, &v)| *d |= v.wrapping_shl(c.l).wrapping_shr(c.r));
                    }
                } else {
                    let (l, r) = (first.l, first.r);
                    dst.iter_mut()
                        .zip(src(first).iter().step_by(step))
                        .for_each(|(d, &v)| *d = v.wrapping_shl(l).wrapping_shr(r));
                    for c in rest {
                        dst.iter_mut()
                            .zip(src(c).iter().step_by(step))
                            .for_each(|(d, &v)| *d |= v.wrapping_shl(c.l).wrapping_shr(c.r));
                    }
                }
            }
        }
        // The pixels past the last one up to `cols8` (read by the 8-wide kernel, discarded).
        let p = g.pixels();
        for j in 0..rw {
            out[j * cols8 + p..(j + 1) * cols8].fill(0);
        }
    }
}

/// Words per kernel row ("run": `kw` neighbouring pixels, `kw * C` bits) in the run-padded
/// layout of the channel-last path.
pub(crate) fn run_words(kw: usize, c: usize) -> usize {
    words_for(kw * c)
}

/// Implicit im2col over a byte-packed framed image ([`super::frame`], `C % 8 == 0`) for the
/// channel-last path. A window's kernel row `ky` is `kw * C` contiguous bits of the frame, so
/// it is read in place as [`run_words`] little-endian `u64` loads, the last one masked to the
/// run's bits; nothing is copied. Filter rows use the matching *run-padded* layout
/// ([`run_weight_rows`]): run `ky` in words `ky * run_words ..`, bit `kx * C + c` within it.
/// Per pixel that is `kh * run_words` words (C = 16: 3, as many as a dense row; C = 32: 6
/// instead of 5; C = 64: 9, the same).
#[derive(Clone, Debug)]
pub(crate) struct Windows {
    /// Byte offset of each row word from the window's origin, `[kh * run_words]`.
    pub off: Vec<usize>,
    /// Mask of each row word.
    pub mask: Vec<u64>,
    /// Bytes between the origins of horizontally neighbouring windows.
    pub step: usize,
    /// Bytes between the origins of vertically neighbouring windows.
    pub row_step: usize,
    /// Byte offset of each tap's pixel from the window's origin, `[kh * kw]` in tap order
    /// (for [`super::taps`]).
    pub tap_off: Vec<usize>,
}

impl Windows {
    pub(crate) fn new(g: &ConvGeom) -> Self {
        assert!(
            super::frame::supports(g.c),
            "framed windows need C % 8 == 0"
        );
        let (bpp, fw) = (g.c / 8, g.w + 2 * g.pad);
        let (rwr, bits) = (run_words(g.kw, g.c), g.kw * g.c);
        let mut off = Vec::with_capacity(g.kh * rwr);
        let mut mask = Vec::with_capacity(g.kh * rwr);
        for ky in 0..g.kh {
            for j in 0..rwr {
                off.push(ky * fw * bpp + 8 * j);
                let left = bits - 64 * j;
                mask.push(if left >= 64 { !0 } else { (1u64 << left) - 1 });
            }
        }
        let tap_off = (0..g.kh * g.kw)
            .map(|t| ((t / g.kw) * fw + t % g.kw) * bpp)
            .collect();
        Windows {
            off,
            mask,
            step: g.stride * bpp,
            row_step: g.stride * fw * bpp,
            tap_off,
        }
    }
}

/// Filter rows `[O][kh * run_words]` in the run-padded layout of [`Windows`].
pub(crate) fn run_weight_rows(w: &PackedWeights) -> Vec<u64> {
    let (o, c, kh, kw) = w.dim();
    let rwr = run_words(kw, c);
    let mut out = vec![0u64; o * kh * rwr];
    for (oc, row) in out.chunks_exact_mut((kh * rwr).max(1)).enumerate() {
        for ky in 0..kh {
            for kx in 0..kw {
                let run = &mut row[ky * rwr..(ky + 1) * rwr];
                or_bits_at(run, kx * c, w.tap(oc, ky, kx));
            }
        }
    }
    out
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
                o: 1,
                kh: k,
                kw: k,
                stride,
                pad,
                ho: (h + 2 * pad - k) / stride + 1,
                wo: (w + 2 * pad - k) / stride + 1,
            };
            let rw = row_words(&g);
            let plan = Im2col::new(g, p.words_per_pixel());
            let mut got = vec![u64::MAX; plan.len()];
            plan.fill(p.as_words(), &mut got);
            let cols8 = plan.cols8();
            for oy in 0..g.ho {
                for ox in 0..g.wo {
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
                    let p = oy * g.wo + ox;
                    let row: Vec<u64> = (0..rw).map(|j| got[j * cols8 + p]).collect();
                    assert_eq!(&row[..], bits.as_raw_slice(), "c{c} k{k} oy{oy} ox{ox}");
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

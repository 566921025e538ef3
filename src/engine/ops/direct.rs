//! Direct (im2col-free) channel-last convolution for layers with a short reduction, such as a
//! network's first conv on 3 input channels: each output pixel's channel vector is
//! accumulated in registers and stored NHWC, so there is no column matrix to build and no
//! transpose after the GEMM.
//!
//! It must give the float engine's NCHW values bit for bit (the engines agree exactly). At
//! stride 1 the float engine runs the implicit GEMM of [`super::implicit`], whose chain is the
//! one below; at other strides the `gemm` crate, whose microkernel computes each output as one fused
//! multiply-add chain over the reduction index `k` in order, from a zeroed accumulator, and
//! stores it with `beta = 1` and no read of the destination (`alpha = 0`), as long as the
//! reduction fits one of its depth blocks. So this kernel runs the same chain,
//! `acc = fma(x_k, w_k, acc)` from `+0` with `k = (c, ky, kx)` in im2col order, and padded
//! positions enter as `0.0` terms as im2col's zeros do (a `+0` term can turn a `-0`
//! accumulator into `+0`). [`usable`] limits it to reductions of at most [`MAX_K`] terms,
//! far below the crate's depth block; the tests compare it with the GEMM path bit for bit.
//!
//! Written by hand because no crate offers a direct convolution with this exact rounding.

use crate::engine::cpu::{self, Features, Isa};
use crate::model::geom::ConvGeom;

/// Longest reduction (`C * KH * KW`) taken: one depth block of the GEMM for certain.
pub const MAX_K: usize = 64;

/// The features the kernel is compiled with.
const NEEDS: Features = Features::AVX512F.with(Features::FMA);

/// Whether the geometry suits the kernel: at most [`MAX_K`] reduction terms and 16, 32 or 64
/// output channels.
fn fits(g: &ConvGeom) -> bool {
    g.c * g.kh * g.kw <= MAX_K && matches!(g.o, 16 | 32 | 64)
}

/// Whether [`conv_nhwc_image`] runs this geometry in this process: it [`fits`] and the
/// level allows AVX-512F + FMA ([`cpu::allows`]).
pub fn usable(g: &ConvGeom) -> bool {
    usable_with(cpu::isa(), g)
}

/// [`usable`] at level `isa`.
pub fn usable_with(isa: Isa, g: &ConvGeom) -> bool {
    cfg!(target_arch = "x86_64") && fits(g) && isa.allows(NEEDS)
}

/// The filters as the kernel reads them: `[k][O]`, `k = (c * KH + ky) * KW + kx`.
pub fn filters_by_tap(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let k = g.c * g.kh * g.kw;
    assert_eq!(w.len(), g.o * k, "filters");
    crate::engine::fmap::transpose_images(w, 1, g.o, k)
}

/// Floats of the zero-framed input [`conv_nhwc_image`] builds.
pub fn framed_len(g: &ConvGeom) -> usize {
    g.c * (g.h + 2 * g.pad) * (g.w + 2 * g.pad)
}

/// One image `x` (`[C][H][W]`) into `out` (`[HO][WO][O]`), with filters from
/// [`filters_by_tap`]; `pad_buf` (contents unspecified, [`framed_len`] long) is scratch.
/// Needs [`usable_with`] at some level (the geometry and the CPU's features; panics otherwise).
pub fn conv_nhwc_image(g: &ConvGeom, x: &[f32], wk: &[f32], pad_buf: &mut [f32], out: &mut [f32]) {
    assert!(
        usable_with(Isa::Avx512, g),
        "direct conv needs AVX-512F + FMA and a short reduction"
    );
    let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    assert!(x.len() == g.c * g.h * g.w && out.len() == g.ho * g.wo * g.o);
    assert_eq!(wk.len(), g.c * g.kh * g.kw * g.o, "filters by tap");
    assert_eq!(pad_buf.len(), framed_len(g), "frame scratch");
    // The input inside a zero frame, so every tap of every window is a load.
    pad_buf.fill(0.0);
    for c in 0..g.c {
        for y in 0..g.h {
            let at = (c * hp + y + g.pad) * wp + g.pad;
            pad_buf[at..at + g.w].copy_from_slice(&x[(c * g.h + y) * g.w..][..g.w]);
        }
    }
    if g.ho == 0 || g.wo == 0 {
        return;
    }
    // The last window's furthest tap lies inside the frame (`C`, `KH`, `KW` >= 1: checked by
    // `conv::geometry`).
    let last =
        ((g.c - 1) * hp + (g.ho - 1) * g.stride + g.kh - 1) * wp + (g.wo - 1) * g.stride + g.kw - 1;
    assert!(last < pad_buf.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has the features (`usable_with` asserted above); every load is at most
    // `last` (asserted), every store inside `out` (its length asserted).
    unsafe {
        let p = avx512::Conv {
            g: *g,
            x: pad_buf.as_ptr(),
            wp,
            plane: hp * wp,
            w: wk.as_ptr(),
            out: out.as_mut_ptr(),
        };
        match (g.o, g.stride == 1 && g.kw == 3) {
            (16, true) => avx512::image::<1, 8, true>(&p),
            (32, true) => avx512::image::<2, 4, true>(&p),
            (_, true) => avx512::image::<4, 2, true>(&p),
            (16, false) => avx512::image::<1, 12, false>(&p),
            (32, false) => avx512::image::<2, 6, false>(&p),
            _ => avx512::image::<4, 3, false>(&p),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::ConvGeom;
    use std::arch::x86_64::*;

    /// Raw operands (checked by the caller): padded planes `x` of width `wp`, `plane`
    /// floats apart; filters `[k][O]`; output `[HO][WO][O]`.
    ///
    /// The kernels' shared contract (their `# Safety`): the CPU has AVX-512F + FMA; `g.o` is
    /// `16 * B`; every tap of every output window lies inside the planes at `x`; `w` holds
    /// `C * KH * KW * O` floats and `out` `HO * WO * O`.
    pub(super) struct Conv {
        pub g: ConvGeom,
        pub x: *const f32,
        pub wp: usize,
        pub plane: usize,
        pub w: *const f32,
        pub out: *mut f32,
    }

    /// Every output pixel, `P` neighbours of a row at a time (then one), `B` vectors of 16
    /// channels each; `ROW3` for stride 1 and three taps per kernel row.
    ///
    /// # Safety
    /// The contract of [`Conv`] for `p`.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn image<const B: usize, const P: usize, const ROW3: bool>(p: &Conv) {
        // SAFETY: the contract of `Conv`; pixel runs end at or before `WO`.
        unsafe {
            let g = &p.g;
            for oy in 0..g.ho {
                let mut ox = 0;
                while ox + P <= g.wo {
                    match ROW3 {
                        true => pixels_row3::<B, P>(p, oy, ox),
                        false => pixels::<B, P>(p, oy, ox),
                    }
                    ox += P;
                }
                while ox < g.wo {
                    pixels::<B, 1>(p, oy, ox);
                    ox += 1;
                }
            }
        }
    }

    /// [`pixels`] at stride 1 with three taps per kernel row: input `ox + m` of a kernel row
    /// is tap `kx` of pixel `m - kx`, so each input is broadcast once for up to three FMAs
    /// (a broadcast per FMA halved the rate; more than 8 pixels of 16 channels were not
    /// unrolled and spilled the accumulators). Each accumulator still takes its taps in `k`
    /// order.
    ///
    /// # Safety
    /// The contract of [`Conv`] for `p`. `ROW3` (stride 1,
    /// `KW = 3`), `ox + P <= WO`.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    unsafe fn pixels_row3<const B: usize, const P: usize>(p: &Conv, oy: usize, ox: usize) {
        // SAFETY: this function's contract.
        unsafe {
            let g = &p.g;
            let mut acc = [[_mm512_setzero_ps(); B]; P];
            let mut k = 0;
            for c in 0..g.c {
                for ky in 0..g.kh {
                    let row = p.x.add(c * p.plane + (oy + ky) * p.wp + ox);
                    let mut wv = [[_mm512_setzero_ps(); B]; 3];
                    for (kx, t) in wv.iter_mut().enumerate() {
                        for (j, v) in t.iter_mut().enumerate() {
                            *v = _mm512_loadu_ps(p.w.add((k + kx) * g.o + 16 * j));
                        }
                    }
                    for m in 0..P + 2 {
                        let xv = _mm512_set1_ps(*row.add(m));
                        for (kx, t) in wv.iter().enumerate() {
                            if m >= kx && m - kx < P {
                                for (aj, &v) in acc[m - kx].iter_mut().zip(t) {
                                    *aj = _mm512_fmadd_ps(xv, v, *aj);
                                }
                            }
                        }
                    }
                    k += 3;
                }
            }
            store::<B, P>(p, oy, ox, &acc);
        }
    }

    /// The accumulators of pixels `ox .. ox + P` of row `oy`.
    ///
    /// # Safety
    /// The contract of [`Conv`] for `p`. `ox + P <= WO`, `oy < HO`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store<const B: usize, const P: usize>(
        p: &Conv,
        oy: usize,
        ox: usize,
        acc: &[[__m512; B]; P],
    ) {
        // SAFETY: this function's contract.
        unsafe {
            for (i, a) in acc.iter().enumerate() {
                let at = p.out.add((oy * p.g.wo + ox + i) * p.g.o);
                for (j, &v) in a.iter().enumerate() {
                    _mm512_storeu_ps(at.add(16 * j), v);
                }
            }
        }
    }

    /// Pixels `ox .. ox + P` of row `oy`: one FMA chain per output in `k` order from `+0`.
    ///
    /// # Safety
    /// The contract of [`Conv`] for `p`. `ox + P <= WO`, `oy < HO`.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    unsafe fn pixels<const B: usize, const P: usize>(p: &Conv, oy: usize, ox: usize) {
        // SAFETY: this function's contract.
        unsafe {
            let g = &p.g;
            let mut acc = [[_mm512_setzero_ps(); B]; P];
            let mut k = 0;
            for c in 0..g.c {
                for ky in 0..g.kh {
                    let row =
                        p.x.add(c * p.plane + (oy * g.stride + ky) * p.wp + ox * g.stride);
                    for kx in 0..g.kw {
                        let mut wv = [_mm512_setzero_ps(); B];
                        for (j, v) in wv.iter_mut().enumerate() {
                            *v = _mm512_loadu_ps(p.w.add(k * g.o + 16 * j));
                        }
                        for (i, a) in acc.iter_mut().enumerate() {
                            let xv = _mm512_set1_ps(*row.add(i * g.stride + kx));
                            for (aj, &v) in a.iter_mut().zip(&wv) {
                                *aj = _mm512_fmadd_ps(xv, v, *aj);
                            }
                        }
                        k += 1;
                    }
                }
            }
            store::<B, P>(p, oy, ox, &acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ops::conv::{conv2d, geometry};
    use ndarray::Array4;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Bit for bit the NCHW path's output (the implicit GEMM at stride 1, im2col + `gemm`
    /// otherwise; neither takes this kernel) read channel-last, on first-layer shapes and others, with signed
    /// zeros among inputs and weights (so `-0` accumulators meet the `+0` terms of padding).
    #[test]
    fn direct_equals_the_nchw_path_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for &(n, c, h, w, o, k, stride, pad) in &[
            (2, 3, 32, 32, 16, 3, 1, 1),
            (1, 3, 9, 7, 16, 3, 2, 1),
            (1, 3, 8, 8, 32, 3, 1, 1),
            (1, 2, 11, 6, 64, 3, 2, 0),
            (1, 7, 5, 5, 16, 3, 1, 1),
            (1, 1, 6, 6, 32, 5, 1, 2),
            (1, 3, 5, 13, 16, 1, 1, 0),
            (1, 3, 6, 9, 64, 3, 1, 1),
        ] {
            let val = |rng: &mut ChaCha8Rng| match rng.gen_range(0..8) {
                0 => -0.0f32,
                1 => 0.0,
                _ => rng.gen_range(-2.0..2.0),
            };
            let x = Array4::from_shape_simple_fn((n, c, h, w), || val(&mut rng));
            let wt = Array4::from_shape_simple_fn((o, c, k, k), || val(&mut rng));
            // `[N, O, HO, WO]` -> `[N, HO, WO, O]`, the layout the kernel writes.
            let nchw = conv2d(&x, &wt, None, stride, pad).unwrap();
            let want = nchw
                .permuted_axes([0, 2, 3, 1])
                .as_standard_layout()
                .into_owned();
            let (_, g) = geometry(x.dim(), wt.dim(), stride, pad).unwrap();
            // Fails under CI if the CPU lacks a feature; elsewhere a skip notice.
            cpu::test_levels();
            assert!(fits(&g), "every case fits the kernel");
            if !cpu::has(NEEDS) {
                return;
            }
            let wk = filters_by_tap(wt.as_slice().unwrap(), &g);
            let (xs, ws) = (x.as_slice().unwrap(), want.as_slice().unwrap());
            let mut buf = vec![f32::NAN; framed_len(&g)];
            for img in 0..n {
                let mut got = vec![f32::NAN; g.ho * g.wo * o];
                conv_nhwc_image(
                    &g,
                    &xs[img * c * h * w..][..c * h * w],
                    &wk,
                    &mut buf,
                    &mut got,
                );
                let want = &ws[img * got.len()..][..got.len()];
                for (i, (a, b)) in got.iter().zip(want).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{c}x{h}x{w}->{o} k{k} s{stride} p{pad} at {i}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

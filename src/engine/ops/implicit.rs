//! Implicit-GEMM forward convolution at stride 1: no column matrix, the input read in place
//! at each tap's offset.
//!
//! The input of one image goes into a frame of `C` planes with `pad` zero rows above and below
//! each (rows keep their width `W`). Output `(oy, ox)` is position `q = oy * W + ox`, and its
//! tap `(c, ky, kx)` is the frame float `q + off(c, ky, kx)` with `off = c * plane + ky * W +
//! kx`: one offset per reduction index, the same for every output. A run of 16 (AVX-512) or 8
//! (AVX2) consecutive positions is therefore one vector load per tap, and a register block of
//! 8 (4) output channels by 3 runs is 24 (12) accumulators fed by 3 loads and 8 (4) broadcast
//! filter values per tap. A tap that falls left or right of the image would read the
//! neighbouring row, so each run carries a lane mask per kernel column and loads with it
//! (masked lanes read `+0`, what a zero border holds); runs cross rows freely, so a map of
//! 8x8 is 4 full runs. Where `WO < W` (no padding) the last columns of a row are computed and
//! dropped: each run's output mask selects its valid lanes, compressed into the dense
//! `[O][HO*WO]` output.
//!
//! Against im2col + GEMM this saves the unfold (9 copies of the input for a 3x3 kernel, 20%
//! of float inference) and the GEMM's packing of it.
//!
//! Arithmetic: each output is one fused multiply-add chain `acc = fma(x_k, w_k, acc)` from
//! `+0` over `k = (c, ky, kx)` in im2col order, padded taps entering as `0.0` terms, whatever
//! the level, the blocking, the batch or the thread count. That is the chain of
//! [`super::direct`], which is bit-identical to the `gemm` crate for reductions within one of
//! its depth blocks; for longer reductions the GEMM splits the chain and rounds differently, so
//! every stride-1 convolution of the float engine but the 1x1 unpadded ones (one GEMM on the
//! input as it lies) goes through this one kernel: forward, taped forward and the input
//! gradient, which at stride 1 is itself a convolution.
//!
//! Written by hand because no crate offers a convolution without a packed or unfolded copy
//! of the input and with a fixed summation order.

use crate::engine::cpu::{self, Isa};
use crate::model::geom::ConvGeom;

/// Widest kernel taken (one column mask per kernel column and run).
pub const MAX_KW: usize = 16;

/// Runs per register block.
const RUNS: usize = 3;

/// A run of `lanes` consecutive positions `q ..` computed together: `out` marks the lanes that
/// are outputs (their values go, in order, to dense outputs `dst, dst + 1, ...` of each
/// channel); `col[kx]` the lanes whose tap in kernel column `kx` lies inside the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    q: usize,
    out: u16,
    dst: usize,
    col: [u16; MAX_KW],
}

/// The layout of one convolution's frame and runs at one vector level. Cheap to make (a few
/// integer operations), so the inference path, which runs one image at a time, makes it per
/// call; the filters are read as they lie (`[O][K]`, one broadcast per output channel and
/// tap), since packing them per call would cost as much as a small map's convolution.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    g: ConvGeom,
    level: Isa,
    /// Lanes per run and output channels per register block.
    lanes: usize,
    mr: usize,
    /// Floats per channel plane of the frame.
    plane: usize,
    frame_len: usize,
    runs: usize,
}

/// Whether [`Plan`] takes the geometry: stride 1, not pointwise (the GEMM reads a 1x1
/// unpadded input as it is), `2 * pad < KW` (so an output row is no wider than an input
/// row: "same" and "valid" convolutions) and `KW <= MAX_KW`.
pub fn usable(g: &ConvGeom) -> bool {
    g.stride == 1
        && !super::im2col::is_pointwise(g)
        && 2 * g.pad < g.kw
        && g.kw <= MAX_KW
        && g.o > 0
}

/// `(lanes, output channels per block)` of a vector level.
fn shape(level: Isa) -> (usize, usize) {
    match level {
        Isa::Avx512 | Isa::Portable => (16, 8),
        Isa::Avx2 => (8, 4),
    }
}

impl Plan {
    /// The plan of a [`usable`] geometry at the process's level.
    pub fn new(g: &ConvGeom) -> Plan {
        Plan::with_level(cpu::isa(), g)
    }

    /// [`Plan::new`] at level `isa` (its vector level: AVX-512, AVX2 or portable).
    pub fn with_level(isa: Isa, g: &ConvGeom) -> Plan {
        assert!(usable(g), "implicit conv: geometry {g:?}");
        let level = cpu::vector_level(isa);
        let (lanes, mr) = shape(level);
        let plane = (g.h + 2 * g.pad) * g.w + 2 * g.pad;
        let runs = (g.ho * g.w).div_ceil(lanes);
        // The furthest float any lane reads: the last run's last lane at the last tap (a
        // masked lane may read past the last plane, never past the frame).
        let far = (g.c - 1) * plane + (g.kh - 1) * g.w + g.kw - 1;
        let frame_len = (runs * lanes + far).max(g.c * plane);
        Plan {
            g: *g,
            level,
            lanes,
            mr,
            plane,
            frame_len,
            runs,
        }
    }

    /// The run at position `q = y0 * W + x0` (`x0 < W`; see [`Run`]).
    fn run(&self, q: usize, y0: usize, x0: usize) -> Run {
        let g = &self.g;
        let (lanes, w) = (self.lanes, g.w);
        // Lanes at the start and at the end of a row, as bits `l + 16` of a u64 for lanes
        // `l` in `-16 .. lanes + 16`: every spread below is at most `KW - 1 < 16` lanes, so
        // rows that start before the run or end after it still reach into it.
        const O: isize = 16;
        let (w_, x0_) = (w as isize, x0 as isize);
        let marks = |mut l: isize| {
            while l - w_ >= -O {
                l -= w_;
            }
            let mut set = 0u64;
            while l < lanes as isize + O {
                set |= 1 << (l + O);
                l += w_;
            }
            set
        };
        let starts = marks((w_ - x0_) % w_);
        let ends = marks(w_ - 1 - x0_);
        // The lanes within `n` places right (or left) of a set's lanes, back as lane bits.
        let spread = |set: u64, n: usize, right: bool| {
            let m = (0..n).fold(0u64, |m, t| m | if right { set << t } else { set >> t });
            (m >> O) as u32
        };
        let all = (1u32 << lanes) - 1;
        let left_in_map = (g.ho * w - q).min(lanes);
        let out = all & !spread(ends, w - g.wo, false) & ((1u32 << left_in_map) - 1);
        let mut col = [0u16; MAX_KW];
        for (kx, m) in col.iter_mut().enumerate().take(g.kw) {
            let off = if kx < g.pad {
                spread(starts, g.pad - kx, true)
            } else {
                spread(ends, kx - g.pad, false)
            };
            *m = (all & !off) as u16;
        }
        Run {
            q,
            out: out as u16,
            dst: y0 * g.wo + x0.min(g.wo),
            col,
        }
    }

    /// Floats of the frame [`Plan::image`] takes as scratch.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Writes image `x` (`[C][H][W]`) into `frame` ([`Plan::frame_len`] floats) between its
    /// zero rows.
    fn fill_frame(&self, x: &[f32], frame: &mut [f32]) {
        let g = &self.g;
        assert_eq!(x.len(), g.c * g.h * g.w, "implicit conv: input");
        assert_eq!(frame.len(), self.frame_len, "implicit conv: frame");
        let (head, body) = (g.pad + g.pad * g.w, g.h * g.w);
        for c in 0..g.c {
            let p = &mut frame[c * self.plane..(c + 1) * self.plane];
            p[..head].fill(0.0);
            p[head..head + body].copy_from_slice(&x[c * body..(c + 1) * body]);
            p[head + body..].fill(0.0);
        }
        // Read by masked or dropped lanes only; zeroed so no value there is ever undefined.
        frame[g.c * self.plane..].fill(0.0);
    }

    /// Output channels `block * mr ..` of the image in `frame` into `out` (`[channels][HO*WO]`,
    /// dense; `channels` = `out.len() / (HO*WO)`, a whole number of blocks but for the last),
    /// with filters `w` (`[O][C][KH][KW]`, all of them). Each run is made once and serves
    /// every block.
    fn blocks(&self, frame: &[f32], w: &[f32], block: usize, out: &mut [f32]) {
        let g = &self.g;
        let (l, k) = (g.pixels(), g.reduction());
        let o0 = block * self.mr;
        assert!(o0 < g.o && l > 0, "implicit conv: block {block}");
        assert_eq!(out.len() % l, 0, "implicit conv: output");
        let channels = out.len() / l;
        assert!(
            channels > 0 && o0 + channels <= g.o,
            "implicit conv: output channels"
        );
        assert_eq!(frame.len(), self.frame_len, "implicit conv: frame");
        assert_eq!(w.len(), g.o * k, "implicit conv: filters");
        // The kernels' bounds: every lane of every run reads below `frame_len` (by its
        // definition, `runs * lanes + far`), every filter row has `K` floats, and every output
        // lane lies below `HO*WO` (`dst` counts the outputs before `q`; asserted per run).
        let (mut q, mut y0, mut x0) = (0, 0, 0);
        let mut next = || {
            let r = self.run(q, y0, x0);
            q += self.lanes;
            x0 += self.lanes;
            while x0 >= g.w {
                (x0, y0) = (x0 - g.w, y0 + 1);
            }
            r
        };
        let mut i = 0;
        while i < self.runs {
            let s = RUNS.min(self.runs - i);
            // Runs past the last repeat the first (computed, not stored).
            let first = next();
            let mut r = [first; RUNS];
            for t in r.iter_mut().take(s).skip(1) {
                *t = next();
            }
            // The bounds the kernels rely on (cheap; `run` is their only source): the runs of
            // a tile are consecutive, and each one's outputs lie inside the map.
            for (i, t) in r[..s].iter().enumerate() {
                assert_eq!(t.q, r[0].q + i * self.lanes, "implicit conv: runs");
                assert!(
                    t.dst + t.out.count_ones() as usize <= l,
                    "implicit conv: run"
                );
            }
            for (b, out) in out.chunks_mut(self.mr * l).enumerate() {
                let oc = o0 + b * self.mr;
                let rows = self.mr.min(g.o - oc);
                // Each block channel's filter row; rows past `O` repeat the last (dropped).
                let wrows: [usize; 8] = std::array::from_fn(|m| (oc + m.min(rows - 1)) * k);
                self.tile(frame, w, wrows, &r, s, out, rows);
            }
            i += s;
        }
    }

    /// The first `s` runs of `r` by one block of `rows` channels, at the plan's level.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn tile(
        &self,
        frame: &[f32],
        w: &[f32],
        wrows: [usize; 8],
        r: &[Run; RUNS],
        s: usize,
        out: &mut [f32],
        rows: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        match self.level {
            // SAFETY: the level was checked by `vector_level` when the plan was made; the
            // bounds hold as stated in `blocks`.
            Isa::Avx512 => unsafe {
                return match s {
                    3 => avx512::tile::<3>(self, frame, w, wrows, r, out, rows),
                    2 => avx512::tile::<2>(self, frame, w, wrows, r, out, rows),
                    _ => avx512::tile::<1>(self, frame, w, wrows, r, out, rows),
                };
            },
            // SAFETY: as above.
            Isa::Avx2 => unsafe {
                return match s {
                    3 => avx2::tile::<3>(self, frame, w, wrows, r, out, rows),
                    2 => avx2::tile::<2>(self, frame, w, wrows, r, out, rows),
                    _ => avx2::tile::<1>(self, frame, w, wrows, r, out, rows),
                };
            },
            Isa::Portable => {}
        }
        portable_tile(self, frame, w, wrows, &r[..s], out, rows);
    }

    /// Image `x` (`[C][H][W]`) convolved with filters `w` (`[O][C][KH][KW]`) into `out`
    /// (`[O][HO*WO]`, dense), using `frame` ([`Plan::frame_len`] floats, contents unspecified)
    /// as scratch. `threads_inside` spreads the channel blocks over the rayon pool (for batches
    /// smaller than the pool); the result is the same either way.
    pub fn image(
        &self,
        x: &[f32],
        w: &[f32],
        frame: &mut [f32],
        out: &mut [f32],
        threads_inside: bool,
    ) {
        let l = self.g.pixels();
        assert_eq!(out.len(), self.g.o * l, "implicit conv: output");
        self.fill_frame(x, frame);
        if l == 0 {
            return;
        }
        let frame = &*frame;
        if threads_inside && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            out.par_chunks_mut(self.mr * l)
                .enumerate()
                .for_each(|(b, ob)| self.blocks(frame, w, b, ob));
        } else {
            self.blocks(frame, w, 0, out);
        }
    }

    /// `f(k, kx, offset)` for every reduction index in `k` order.
    #[inline(always)]
    fn for_taps(&self, mut f: impl FnMut(usize, usize, usize)) {
        let g = &self.g;
        let mut k = 0;
        for c in 0..g.c {
            for ky in 0..g.kh {
                let row = c * self.plane + ky * g.w;
                for kx in 0..g.kw {
                    f(k, kx, row + kx);
                    k += 1;
                }
            }
        }
    }
}

/// Stores the output lanes of `v` (run `r`) of one channel, in order, from `out[at + r.dst]`.
#[inline(always)]
fn store_lanes(v: &[f32], r: &Run, out: &mut [f32], at: usize) {
    let mut d = at + r.dst;
    for (l, &x) in v.iter().enumerate() {
        if r.out >> l & 1 == 1 {
            out[d] = x;
            d += 1;
        }
    }
}

/// The portable kernel, and the definition of the arithmetic (see the module doc): a masked
/// lane's term is `+0 * w`.
fn portable_tile(
    p: &Plan,
    frame: &[f32],
    w: &[f32],
    wrows: [usize; 8],
    runs: &[Run],
    out: &mut [f32],
    rows: usize,
) {
    let l = p.g.pixels();
    for r in runs {
        let mut acc = [[0.0f32; 16]; 8];
        p.for_taps(|k, kx, o| {
            let x = &frame[r.q + o..][..16];
            let x: [f32; 16] =
                std::array::from_fn(|t| if r.col[kx] >> t & 1 == 1 { x[t] } else { 0.0 });
            for (m, a) in acc.iter_mut().enumerate().take(rows) {
                let wv = w[wrows[m] + k];
                for (al, &xl) in a.iter_mut().zip(&x) {
                    *al = xl.mul_add(wv, *al);
                }
            }
        });
        for (m, a) in acc.iter().enumerate().take(rows) {
            store_lanes(a, r, out, m * l);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Plan, Run, RUNS};
    use std::arch::x86_64::*;

    /// `S` runs of 16 positions by 8 output channels: `8 * S` accumulators.
    ///
    /// # Safety
    /// The CPU has AVX-512F + FMA; every run's 16 lanes at every tap lie inside `frame`;
    /// `wrows[m] + K <= w.len()`; each output lane `m * HO*WO + dst + i`, `m < rows`, lies
    /// inside `out` (the bounds stated in `Plan::block`).
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn tile<const S: usize>(
        p: &Plan,
        frame: &[f32],
        w: &[f32],
        wrows: [usize; 8],
        runs: &[Run; RUNS],
        out: &mut [f32],
        rows: usize,
    ) {
        // SAFETY: this function's contract.
        unsafe {
            let (x, wp) = (frame.as_ptr(), w.as_ptr());
            // The runs are consecutive: one pointer serves all (fewer live registers).
            let base = x.add(runs[0].q);
            let wr: [*const f32; 8] = std::array::from_fn(|m| wp.add(wrows[m]));
            let mut acc = [[_mm512_setzero_ps(); S]; 8];
            p.for_taps(|k, kx, o| {
                let xo = base.add(o);
                let xv: [__m512; S] =
                    std::array::from_fn(|s| _mm512_maskz_loadu_ps(runs[s].col[kx], xo.add(16 * s)));
                for (a, w) in acc.iter_mut().zip(&wr) {
                    let wv = _mm512_set1_ps(*w.add(k));
                    for (as_, &xs) in a.iter_mut().zip(&xv) {
                        *as_ = _mm512_fmadd_ps(xs, wv, *as_);
                    }
                }
            });
            let l = p.g.pixels();
            let o = out.as_mut_ptr();
            for (m, a) in acc.iter().enumerate().take(rows) {
                for (r, &v) in runs.iter().zip(a) {
                    let n = r.out.count_ones();
                    let packed = _mm512_maskz_compress_ps(r.out, v);
                    let keep = ((1u32 << n) - 1) as __mmask16;
                    _mm512_mask_storeu_ps(o.add(m * l + r.dst), keep, packed);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{store_lanes, Plan, Run, MAX_KW, RUNS};
    use std::arch::x86_64::*;

    /// `S` runs of 8 positions by 4 output channels: `4 * S` accumulators.
    ///
    /// # Safety
    /// The CPU has AVX2 + FMA; bounds as `avx512::tile` with 8-lane runs and 4-channel blocks.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const S: usize>(
        p: &Plan,
        frame: &[f32],
        w: &[f32],
        wrows: [usize; 8],
        runs: &[Run; RUNS],
        out: &mut [f32],
        rows: usize,
    ) {
        // SAFETY: this function's contract; stores go to a local array.
        unsafe {
            let (x, wp) = (frame.as_ptr(), w.as_ptr());
            let base = x.add(runs[0].q);
            let wr: [*const f32; 4] = std::array::from_fn(|m| wp.add(wrows[m]));
            // Each column mask as a vector of lane masks (sign bit set where the lane loads).
            let bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let mut col = [[_mm256_setzero_si256(); MAX_KW]; S];
            for (cs, r) in col.iter_mut().zip(runs) {
                for (c, &m) in cs.iter_mut().zip(&r.col).take(p.g.kw) {
                    let v = _mm256_and_si256(_mm256_set1_epi32(m as i32), bits);
                    *c = _mm256_cmpeq_epi32(v, bits);
                }
            }
            let mut acc = [[_mm256_setzero_ps(); S]; 4];
            p.for_taps(|k, kx, o| {
                let xo = base.add(o);
                let xv: [__m256; S] =
                    std::array::from_fn(|s| _mm256_maskload_ps(xo.add(8 * s), col[s][kx]));
                for (a, w) in acc.iter_mut().zip(&wr) {
                    let wv = _mm256_set1_ps(*w.add(k));
                    for (as_, &xs) in a.iter_mut().zip(&xv) {
                        *as_ = _mm256_fmadd_ps(xs, wv, *as_);
                    }
                }
            });
            let l = p.g.pixels();
            let mut lanes = [0.0f32; 8];
            for (m, a) in acc.iter().enumerate().take(rows) {
                for (r, &v) in runs.iter().zip(a) {
                    _mm256_storeu_ps(lanes.as_mut_ptr(), v);
                    store_lanes(&lanes, r, out, m * l);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ops::conv::geometry;
    use crate::engine::ops::reference::conv as refc;
    use ndarray::Array4;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

    /// `(n, c, h, w, o, kh, kw, pad)`: runs within rows (32 and 16 wide maps) and
    /// across rows (8 wide and odd maps), partial channel blocks, "same" and "valid" padding,
    /// even and non-square kernels, output rows of padding only.
    const CASES: &[Case] = &[
        (2, 3, 32, 32, 16, 3, 3, 1),
        (1, 16, 16, 16, 20, 3, 3, 1),
        (2, 8, 8, 8, 9, 3, 3, 1),
        (1, 5, 7, 5, 3, 3, 3, 0),
        (1, 2, 6, 9, 7, 5, 5, 2),
        (1, 3, 5, 13, 4, 1, 3, 0),
        (1, 4, 6, 7, 5, 2, 2, 0),
        (1, 3, 5, 13, 4, 1, 3, 1),
        (1, 2, 1, 1, 1, 3, 3, 1),
        (1, 3, 9, 33, 17, 5, 5, 2),
    ];

    /// Every level's output of every image, `[N][O][HO*WO]`.
    fn run(isa: Isa, x: &Array4<f32>, w: &Array4<f32>, pad: usize) -> Vec<f32> {
        let (n, g) = geometry(x.dim(), w.dim(), 1, pad).unwrap();
        assert!(usable(&g), "{g:?}");
        let p = Plan::with_level(isa, &g);
        let (xs, ws) = (x.as_slice().unwrap(), w.as_slice().unwrap());
        let img = g.c * g.h * g.w;
        let mut frame = vec![f32::NAN; p.frame_len()];
        let mut out = vec![f32::NAN; n * g.o * g.pixels()];
        for (i, o) in out.chunks_mut(g.o * g.pixels()).enumerate() {
            p.image(&xs[i * img..][..img], ws, &mut frame, o, false);
        }
        out
    }

    /// Small integers: every partial sum is exact in f32, so any order gives the f64
    /// reference's value exactly, and a misplaced, dropped or extra term shows.
    #[test]
    fn every_level_equals_the_reference_exactly_on_integers() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for &(n, c, h, w, o, kh, kw, pad) in CASES {
            let x = Array4::from_shape_simple_fn((n, c, h, w), || rng.gen_range(-4..=4) as f32);
            let wt = Array4::from_shape_simple_fn((o, c, kh, kw), || rng.gen_range(-3..=3) as f32);
            let want = refc::conv2d(&x.mapv(f64::from), &wt.mapv(f64::from), None, 1, pad);
            let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            for isa in cpu::test_levels() {
                let got = run(isa, &x, &wt, pad);
                assert_eq!(got, want, "{isa:?} {c}x{h}x{w}->{o} k{kh}x{kw} p{pad}");
            }
        }
    }

    /// Real values with signed zeros: every level gives the portable kernel's bits (one chain
    /// per output), within f32 rounding of the f64 reference.
    #[test]
    fn levels_agree_bit_for_bit_on_real_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let mut val = move || match rng.gen_range(0..8) {
            0 => -0.0f32,
            1 => 0.0,
            _ => rng.gen_range(-2.0f32..2.0),
        };
        for &(n, c, h, w, o, kh, kw, pad) in CASES {
            let x = Array4::from_shape_simple_fn((n, c, h, w), &mut val);
            let wt = Array4::from_shape_simple_fn((o, c, kh, kw), &mut val);
            let want = run(Isa::Portable, &x, &wt, pad);
            let exact = refc::conv2d(&x.mapv(f64::from), &wt.mapv(f64::from), None, 1, pad);
            for (a, b) in want.iter().zip(exact.iter()) {
                assert!(
                    (*a as f64 - b).abs() < 1e-5 * (1.0 + b.abs()) * c as f64,
                    "{a} vs {b}"
                );
            }
            for isa in cpu::test_levels() {
                let got = run(isa, &x, &wt, pad);
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{isa:?} {c}x{h}x{w}->{o} k{kh}x{kw} p{pad}");
            }
        }
    }
}

//! What happens to a convolution's output on its way out: bias, eval-mode batch-norm
//! (`s * v + t` with the folded running statistics), a residual add and an activation, in that
//! order, in one pass while the values are still in cache.
//!
//! Every step uses the same scalar expression as the stand-alone op it replaces (`v + b` as the
//! conv bias, `s * v + t` as [`super::batchnorm::scale_shift`], `v + r` as the `Add` op,
//! `max(v, 0)` / `clamp(v, -1, 1)`), and rounds after each step as they do, so a fused layer
//! gives bit-identical values to the unfused sequence: the tape-free inference path and the
//! taped forward pass agree exactly, and the two engines stay bit-identical. BN is deliberately
//! not folded into the weights (that changes the rounding of the convolution itself).

use std::mem::MaybeUninit;

use crate::engine::cpu::{self, Features, Isa};

/// Elementwise activation applied last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// `max(v, 0)`.
    Relu,
    /// `clamp(v, -1, 1)`.
    Hardtanh,
}

/// Per-output-channel parameters of the epilogue (the residual is per element and is passed
/// with each row).
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// Conv bias `b[o]`.
    pub bias: Option<&'a [f32]>,
    /// Eval-mode batch-norm as `(scale[o], shift[o])`.
    pub bn: Option<(&'a [f32], &'a [f32])>,
    pub act: Activation,
}

impl Epilogue<'_> {
    /// Nothing to do: the conv output as the GEMM produced it.
    pub const IDENTITY: Epilogue<'static> = Epilogue {
        bias: None,
        bn: None,
        act: Activation::Identity,
    };

    /// `dst = act(bn(src + bias) + residual)` for one row of output channel `o`, in one sweep
    /// with the steps' roundings in order.
    pub fn row(&self, o: usize, dst: &mut [f32], src: &[f32], residual: Option<&[f32]>) {
        // SAFETY: `row_uninit` only writes initialised values, so viewing initialised floats as
        // possibly-uninitialised ones for the write cannot leave anything uninitialised.
        let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
        self.row_uninit(o, dst, src, residual)
    }

    /// As [`Epilogue::row`] into memory not yet initialised (the convolution writes its
    /// output only through here, so it does not zero it first); writes every element of `dst`.
    pub fn row_uninit(
        &self,
        o: usize,
        dst: &mut [MaybeUninit<f32>],
        src: &[f32],
        residual: Option<&[f32]>,
    ) {
        self.row_map(o, dst, src, |v| v, residual)
    }

    /// As [`Epilogue::row_uninit`] with each source value first mapped by `to` (e.g. the
    /// scaling of a binary conv's integer sums), in the same sweep.
    pub fn row_map<T: Copy>(
        &self,
        o: usize,
        dst: &mut [MaybeUninit<f32>],
        src: &[T],
        to: impl Fn(T) -> f32,
        residual: Option<&[f32]>,
    ) {
        assert_eq!(dst.len(), src.len(), "epilogue row lengths");
        let bias = self.bias.map(|b| b[o]);
        let bn = self.bn.map(|(s, t)| (s[o], t[o]));
        run(dst, src, |v, _| to(v), bias, bn, residual, self.act);
    }

    /// This epilogue for pixel-major (channel-last) rows of `pixels` pixels of a binary conv
    /// with per-channel scale `k`: see [`PixelRows`].
    pub fn pixel_rows(&self, channels: usize, pixels: usize, k: &[f32]) -> PixelRows {
        let tile = |v: &[f32]| -> Vec<f32> {
            assert!(v.len() >= channels, "per-channel epilogue parameter");
            v[..channels].repeat(pixels)
        };
        PixelRows {
            channels,
            len: channels * pixels,
            scale_positive: k[..channels.min(k.len())].iter().all(|&v| v > 0.0),
            scale: tile(k),
            bias: self.bias.map(tile),
            bn: self.bn.map(|(s, t)| (tile(s), tile(t))),
            act: self.act,
        }
    }

    /// As [`Epilogue::row`], in place (through a small stack buffer, so source and
    /// destination never alias).
    pub fn row_inplace(&self, o: usize, dst: &mut [f32], residual: Option<&[f32]>) {
        const B: usize = 256;
        let mut buf = [0.0f32; B];
        for (i, d) in dst.chunks_mut(B).enumerate() {
            let src = &mut buf[..d.len()];
            src.copy_from_slice(d);
            let r = residual.map(|r| &r[i * B..i * B + d.len()]);
            self.row(o, d, src, r);
        }
    }
}

/// An [`Epilogue`] for pixel-major rows of a binary conv's integer sums: element `j` of a row
/// belongs to channel `j % C`, and each per-channel parameter is stored repeated for every
/// pixel of the row, so a row is one elementwise sweep like [`Epilogue::row_map`] (a loop
/// per pixel over its channels compiled to gathers across pixels, 10x slower). Per element
/// the source value is `0 + k[o] * sum` (the binary layer's scaling, as the NCHW path maps
/// it) and then the same expression as `row_map`, so the layout does not change a bit.
///
/// With AVX-512 and a multiple of 16 channels (and no ReLU, whose `f32::max` leaves the sign of
/// a zero result to the compiler) rows go through explicit 16-channel vectors instead: the
/// per-channel parameters stay in registers and only the sums and the residual are read, with
/// the same operations in the same order (`vmaxps`/`vminps` with the operand order that keeps
/// a NaN, as `clamp` does). That path can also emit the values' sign bits for the next binary
/// conv's frame ([`PixelRows::apply_signs`]), so that conv need not pack the map again.
#[derive(Clone, Debug)]
pub struct PixelRows {
    channels: usize,
    len: usize,
    scale: Vec<f32>,
    bias: Option<Vec<f32>>,
    bn: Option<(Vec<f32>, Vec<f32>)>,
    act: Activation,
    /// Every scale is `> 0`: then `k * s` is never `-0` (`|s| >= 1` or `s = 0`), so `0 + k * s`
    /// equals it bit for bit and the SIMD sweep skips the add.
    scale_positive: bool,
}

impl PixelRows {
    /// The row length (pixels x channels) the tiles were made for.
    pub fn row_len(&self) -> usize {
        self.len
    }

    /// `dst = act(bn(0 + k*sums + bias) + residual)` for one row (`sums.len()` is the row
    /// length the tiles were made for).
    pub fn apply(&self, dst: &mut [MaybeUninit<f32>], sums: &[i32], residual: Option<&[f32]>) {
        self.apply_with(cpu::isa(), dst, sums, residual)
    }

    /// [`PixelRows::apply`] at level `isa`.
    fn apply_with(
        &self,
        isa: Isa,
        dst: &mut [MaybeUninit<f32>],
        sums: &[i32],
        residual: Option<&[f32]>,
    ) {
        assert_eq!(sums.len(), self.len, "pixel row length");
        if self.simd_with(isa) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `simd_with` means the CPU has AVX-512F.
            unsafe {
                self.rows_avx512(dst, sums, residual, None);
            }
            return;
        }
        self.apply_scalar(dst, sums, residual);
    }

    /// `dst = act(bn(v + bias))` for one row of a float conv's pixel-major output `src` (no
    /// scale: `k` of [`Epilogue::pixel_rows`] is not used), the same expression per element
    /// as [`Epilogue::row`] on the channel rows.
    pub fn apply_floats(&self, dst: &mut [MaybeUninit<f32>], src: &[f32]) {
        assert_eq!(src.len(), self.len, "pixel row length");
        self.portable(dst, src, |v, _| v, None);
    }

    /// The portable sweep over the tiled parameters.
    fn apply_scalar(&self, dst: &mut [MaybeUninit<f32>], sums: &[i32], residual: Option<&[f32]>) {
        let k = &self.scale[..self.len];
        // |s| <= C*k*k < 2^24, so the conversion is exact; `0 + k*s` is what accumulating
        // into a zeroed tensor computes.
        self.portable(dst, sums, |s, j| 0.0 + k[j] * s as f32, residual);
    }

    /// [`run`] with the tiled parameters, each source value first mapped by `to`.
    fn portable<T: Copy>(
        &self,
        dst: &mut [MaybeUninit<f32>],
        src: &[T],
        to: impl Fn(T, usize) -> f32,
        residual: Option<&[f32]>,
    ) {
        let bias = self.bias.as_deref();
        let bn = self.bn.as_ref().map(|(s, t)| (s.as_slice(), t.as_slice()));
        run(dst, src, to, bias, bn, residual, self.act);
    }

    /// Whether rows run the explicit AVX-512 sweep, which [`PixelRows::apply_signs`] needs.
    pub fn simd(&self) -> bool {
        self.simd_with(cpu::isa())
    }

    /// [`PixelRows::simd`] at level `isa`.
    fn simd_with(&self, isa: Isa) -> bool {
        cfg!(target_arch = "x86_64")
            && self.channels.is_multiple_of(16)
            && self.act != Activation::Relu
            && isa.allows(Features::AVX512F)
    }

    /// [`PixelRows::apply`], also writing each value's sign bit (1 iff `v < 0`, so sign(0) =
    /// sign(-0) = +1) into `signs`, `C / 8` bytes per pixel, channel `c` at bit `c % 8` of
    /// byte `c / 8` (one row of pixels of a binary conv frame). Returns `false` if a value is
    /// NaN (its bit is then meaningless; the caller must not use the bits). Needs
    /// [`PixelRows::simd`].
    pub fn apply_signs(
        &self,
        dst: &mut [MaybeUninit<f32>],
        sums: &[i32],
        residual: Option<&[f32]>,
        signs: &mut [u8],
    ) -> bool {
        self.apply_signs_with(cpu::isa(), dst, sums, residual, signs)
    }

    /// [`PixelRows::apply_signs`] at level `isa` (needs [`PixelRows::simd_with`] there).
    fn apply_signs_with(
        &self,
        isa: Isa,
        dst: &mut [MaybeUninit<f32>],
        sums: &[i32],
        residual: Option<&[f32]>,
        signs: &mut [u8],
    ) -> bool {
        assert!(self.simd_with(isa), "sign output needs the AVX-512 sweep");
        assert_eq!(sums.len(), self.len, "pixel row length");
        assert_eq!(signs.len() * 8, self.len, "one sign bit per value");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `simd_with` means the CPU has AVX-512F.
        return unsafe { self.rows_avx512(dst, sums, residual, Some(signs)) };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("simd() is false")
    }

    /// The AVX-512 sweep: per block of 16 channels, the parameters in registers, then every
    /// pixel. Returns `false` if any value is NaN. Panics unless the lengths match the tiles.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_avx512(
        &self,
        dst: &mut [MaybeUninit<f32>],
        sums: &[i32],
        residual: Option<&[f32]>,
        signs: Option<&mut [u8]>,
    ) -> bool {
        let (n, c) = (self.len, self.channels);
        assert!(dst.len() == n && sums.len() == n && residual.is_none_or(|r| r.len() == n));
        assert!(signs.as_ref().is_none_or(|b| b.len() * 8 == n) && c.is_multiple_of(16));
        let null = std::ptr::null::<f32>();
        let p = simd::Sweep {
            n,
            c,
            dst: dst.as_mut_ptr() as *mut f32,
            sums: sums.as_ptr(),
            res: residual.map_or(null, |r| r.as_ptr()),
            signs: signs.map_or(std::ptr::null_mut(), |b| b.as_mut_ptr()),
            k: self.scale.as_ptr(),
            bias: self.bias.as_ref().map_or(null, |b| b.as_ptr()),
            s: self.bn.as_ref().map_or(null, |(s, _)| s.as_ptr()),
            t: self.bn.as_ref().map_or(null, |(_, t)| t.as_ptr()),
            zero_add: !self.scale_positive,
        };
        // Which steps run is fixed per call, so each combination is its own branch-free loop.
        let hardtanh = self.act == Activation::Hardtanh;
        // SAFETY: the CPU has AVX-512F (this function's contract); the lengths of every
        // buffer behind `p` were asserted above, and each tile holds `n` values.
        unsafe { simd::dispatch(&p, hardtanh) == 0 }
    }
}

/// The AVX-512 pixel-row sweep of [`PixelRows`], one monomorphised loop per set of steps.
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// Raw operands of one sweep (lengths checked by the caller): `n` values of `c`
    /// channels; null pointers for the steps that do not run.
    ///
    /// The sweeps' shared contract (their `# Safety`): the CPU has AVX-512F; `c` is a
    /// multiple of 16 dividing `n`; every non-null pointer addresses `n` values (`n / 8`
    /// bytes for `signs`).
    pub(super) struct Sweep {
        pub n: usize,
        pub c: usize,
        pub dst: *mut f32,
        pub sums: *const i32,
        pub res: *const f32,
        pub signs: *mut u8,
        pub k: *const f32,
        pub bias: *const f32,
        pub s: *const f32,
        pub t: *const f32,
        /// Whether `k * s` needs the `0 +` (some `k` is not positive: see `PixelRows`).
        pub zero_add: bool,
    }

    /// Picks the loop for the steps present; returns the NaN mask (sign output only).
    ///
    /// # Safety
    /// The contract of [`Sweep`] for `p`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dispatch(p: &Sweep, hardtanh: bool) -> u16 {
        // SAFETY: the contract of `Sweep`, which this function's caller upholds.
        unsafe {
            let (bias, bn, res, signs) = (
                !p.bias.is_null(),
                !p.s.is_null(),
                !p.res.is_null(),
                !p.signs.is_null(),
            );
            macro_rules! pick {
            ($($b:literal $n:literal $r:literal),*) => {
                match (bias, bn, res, hardtanh, signs) {
                    $(
                        ($b, $n, $r, false, false) => sweep::<$b, $n, $r, false, false>(p),
                        ($b, $n, $r, false, true) => sweep::<$b, $n, $r, false, true>(p),
                        ($b, $n, $r, true, false) => sweep::<$b, $n, $r, true, false>(p),
                        ($b, $n, $r, true, true) => sweep::<$b, $n, $r, true, true>(p),
                    )*
                }
            };
        }
            pick!(false false false, false false true, false true false, false true true,
              true false false, true false true, true true false, true true true)
        }
    }

    /// [`sweep_with`], with or without the `0 +` (a branch per vector cost 15%).
    ///
    /// # Safety
    /// The contract of [`Sweep`] for `p`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn sweep<
        const BIAS: bool,
        const BN: bool,
        const RES: bool,
        const HARDTANH: bool,
        const SIGNS: bool,
    >(
        p: &Sweep,
    ) -> u16 {
        // SAFETY: the contract of `Sweep`, which this function's caller upholds.
        unsafe {
            match p.zero_add {
                true => sweep_with::<BIAS, BN, RES, HARDTANH, SIGNS, true>(p),
                false => sweep_with::<BIAS, BN, RES, HARDTANH, SIGNS, false>(p),
            }
        }
    }

    /// Per block of 16 channels the parameters in registers, then every pixel, step by step
    /// as the portable sweep: `0 + k*s` (`k*s` unless `ZADD`), `+ bias`, `s*v + t`, `+ r`,
    /// activation.
    ///
    /// # Safety
    /// The contract of [`Sweep`] for `p`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn sweep_with<
        const BIAS: bool,
        const BN: bool,
        const RES: bool,
        const HARDTANH: bool,
        const SIGNS: bool,
        const ZADD: bool,
    >(
        p: &Sweep,
    ) -> u16 {
        // SAFETY: the contract of `Sweep`, which this function's caller upholds.
        unsafe {
            let (zero, one, minus_one) = (
                _mm512_setzero_ps(),
                _mm512_set1_ps(1.0),
                _mm512_set1_ps(-1.0),
            );
            let mut nan: __mmask16 = 0;
            for b in (0..p.c).step_by(16) {
                // The tiles repeat the per-channel values, so their first C entries are them.
                let k = _mm512_loadu_ps(p.k.add(b));
                let bv = if BIAS {
                    _mm512_loadu_ps(p.bias.add(b))
                } else {
                    zero
                };
                let (sv, tv) = if BN {
                    (_mm512_loadu_ps(p.s.add(b)), _mm512_loadu_ps(p.t.add(b)))
                } else {
                    (zero, zero)
                };
                // One pixel's 16 values, stored, and their sign bits written.
                let value = |at: usize| -> __m512 {
                    let s = _mm512_loadu_si512(p.sums.add(at) as *const __m512i);
                    let mut v = _mm512_mul_ps(k, _mm512_cvtepi32_ps(s));
                    if ZADD {
                        v = _mm512_add_ps(zero, v);
                    }
                    if BIAS {
                        v = _mm512_add_ps(v, bv);
                    }
                    if BN {
                        v = _mm512_add_ps(_mm512_mul_ps(sv, v), tv);
                    }
                    if RES {
                        v = _mm512_add_ps(v, _mm512_loadu_ps(p.res.add(at)));
                    }
                    if HARDTANH {
                        // vmaxps/vminps return the second operand when one is NaN: NaN stays NaN.
                        v = _mm512_min_ps(one, _mm512_max_ps(minus_one, v));
                    }
                    _mm512_storeu_ps(p.dst.add(at), v);
                    if SIGNS {
                        let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, zero);
                        std::ptr::write_unaligned(p.signs.add(at / 8) as *mut u16, neg.to_le());
                    }
                    v
                };
                // Two pixels per step: one unordered compare finds a NaN in either.
                let mut at = b;
                while at + p.c < p.n {
                    let (v0, v1) = (value(at), value(at + p.c));
                    if SIGNS {
                        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v1);
                    }
                    at += 2 * p.c;
                }
                if at < p.n {
                    let v = value(at);
                    if SIGNS {
                        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                    }
                }
            }
            nan
        }
    }
}

/// A per-element epilogue parameter: one value for a whole row (a channel's row, NCHW) or
/// one per element (pixel-major rows, [`PixelRows`]).
trait Lane: Copy {
    fn at(self, k: usize) -> f32;
    /// Whether `at` is defined for `k < n`.
    fn covers(self, n: usize) -> bool;
}

impl Lane for f32 {
    #[inline(always)]
    fn at(self, _: usize) -> f32 {
        self
    }
    fn covers(self, _: usize) -> bool {
        true
    }
}

impl Lane for &[f32] {
    #[inline(always)]
    fn at(self, k: usize) -> f32 {
        self[k]
    }
    fn covers(self, n: usize) -> bool {
        self.len() >= n
    }
}

/// `dst[k] = act(bn(to(src[k], k) + bias) + residual[k])` for the steps present. One
/// monomorphised loop per combination: a branch per element cost more than the arithmetic.
#[inline(always)]
fn run<T: Copy, L: Lane>(
    dst: &mut [MaybeUninit<f32>],
    src: &[T],
    to: impl Fn(T, usize) -> f32,
    bias: Option<L>,
    bn: Option<(L, L)>,
    residual: Option<&[f32]>,
    a: Activation,
) {
    // Known lengths let the compiler drop the per-element bounds checks and vectorize.
    let n = dst.len();
    assert!(src.len() == n && residual.is_none_or(|r| r.len() == n));
    assert!(bias.is_none_or(|b| b.covers(n)));
    assert!(bn.is_none_or(|(s, t)| s.covers(n) && t.covers(n)));
    match (bias, bn, residual) {
        (None, None, None) => sweep(dst, src, None, a, |v, k, _| to(v, k)),
        (None, Some((s, t)), None) => {
            sweep(dst, src, None, a, |v, k, _| s.at(k) * to(v, k) + t.at(k))
        }
        (None, Some((s, t)), Some(r)) => sweep(dst, src, Some(r), a, |v, k, r| {
            s.at(k) * to(v, k) + t.at(k) + r
        }),
        (Some(b), None, None) => sweep(dst, src, None, a, |v, k, _| to(v, k) + b.at(k)),
        (Some(b), Some((s, t)), None) => sweep(dst, src, None, a, |v, k, _| {
            s.at(k) * (to(v, k) + b.at(k)) + t.at(k)
        }),
        (Some(b), Some((s, t)), Some(r)) => sweep(dst, src, Some(r), a, |v, k, r| {
            s.at(k) * (to(v, k) + b.at(k)) + t.at(k) + r
        }),
        (None, None, Some(r)) => sweep(dst, src, Some(r), a, |v, k, r| to(v, k) + r),
        (Some(b), None, Some(r)) => sweep(dst, src, Some(r), a, |v, k, r| to(v, k) + b.at(k) + r),
    }
}

/// `dst[k] = act(f(src[k], k, residual[k]))` (without a residual `f` gets 0 and ignores it),
/// one loop per activation.
#[inline(always)]
fn sweep<T: Copy>(
    dst: &mut [MaybeUninit<f32>],
    src: &[T],
    residual: Option<&[f32]>,
    act: Activation,
    f: impl Fn(T, usize, f32) -> f32,
) {
    match act {
        Activation::Identity => each(dst, src, residual, f),
        Activation::Relu => each(dst, src, residual, |v, k, r| f(v, k, r).max(0.0)),
        Activation::Hardtanh => each(dst, src, residual, |v, k, r| f(v, k, r).clamp(-1.0, 1.0)),
    }
}

#[inline(always)]
fn each<T: Copy>(
    dst: &mut [MaybeUninit<f32>],
    src: &[T],
    residual: Option<&[f32]>,
    f: impl Fn(T, usize, f32) -> f32,
) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    match residual {
        Some(r) => {
            let r = &r[..n];
            for k in 0..n {
                dst[k].write(f(src[k], k, r[k]));
            }
        }
        None => {
            for k in 0..n {
                dst[k].write(f(src[k], k, 0.0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused row equals the unfused sequence of stand-alone expressions, bit for bit.
    #[test]
    fn fused_row_equals_the_unfused_sequence() {
        let src: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let res: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let (b, s, t) = ([0.3f32, -0.7], [1.7f32, 0.4], [-0.2f32, 0.9]);
        for act in [Activation::Identity, Activation::Relu, Activation::Hardtanh] {
            let ep = Epilogue {
                bias: Some(&b),
                bn: Some((&s, &t)),
                act,
            };
            let mut got = vec![0.0; 37];
            ep.row(1, &mut got, &src, Some(&res));
            let want: Vec<f32> = src
                .iter()
                .zip(&res)
                .map(|(&v, &r)| {
                    let z = s[1] * (v + b[1]) + t[1] + r;
                    match act {
                        Activation::Identity => z,
                        Activation::Relu => z.max(0.0),
                        Activation::Hardtanh => z.clamp(-1.0, 1.0),
                    }
                })
                .collect();
            assert_eq!(got, want, "{act:?}");
            let mut inplace = src.clone();
            ep.row_inplace(1, &mut inplace, Some(&res));
            assert_eq!(inplace, want, "{act:?} in place");
        }
    }

    /// Pixel-major rows equal `row_map` per channel on the transposed values, bit for bit.
    #[test]
    fn pixel_rows_equal_channel_rows() {
        let (c, px) = (3usize, 5usize);
        let sums: Vec<i32> = (0..c * px).map(|i| (i as i32 * 7) % 23 - 11).collect();
        let res: Vec<f32> = (0..c * px).map(|i| (i as f32 * 0.3).sin()).collect();
        let (k, b, s, t) = (
            [0.25f32, -0.5, 1.5],
            [0.1f32, 0.0, -0.3],
            [1.7f32, -0.4, 0.9],
            [-0.2f32, 0.9, 0.05],
        );
        for act in [Activation::Identity, Activation::Relu, Activation::Hardtanh] {
            for (bias, bn, with_res) in [
                (None, None, false),
                (Some(&b[..]), Some((&s[..], &t[..])), true),
                (Some(&b[..]), None, true),
                (None, Some((&s[..], &t[..])), false),
            ] {
                let ep = Epilogue { bias, bn, act };
                let mut got = vec![MaybeUninit::uninit(); c * px];
                let r = with_res.then_some(&res[..]);
                ep.pixel_rows(c, px, &k).apply(&mut got, &sums, r);
                for o in 0..c {
                    let col: Vec<i32> = (0..px).map(|p| sums[p * c + o]).collect();
                    let rcol: Vec<f32> = (0..px).map(|p| res[p * c + o]).collect();
                    let mut want = vec![MaybeUninit::uninit(); px];
                    let ko = k[o];
                    ep.row_map(
                        o,
                        &mut want,
                        &col,
                        |v| 0.0 + ko * v as f32,
                        with_res.then_some(&rcol[..]),
                    );
                    for p in 0..px {
                        // SAFETY: both writers fill every element.
                        let (g, w) =
                            unsafe { (got[p * c + o].assume_init(), want[p].assume_init()) };
                        assert_eq!(g.to_bits(), w.to_bits(), "{act:?} o{o} p{p}");
                    }
                }
            }
        }
    }

    /// Every level's sweep equals the portable one bit for bit (NaN for NaN) over every
    /// combination of steps, with signed zeros, infinities and NaN among the residuals, and
    /// the AVX-512 sign bits are `v < 0`, with NaN reported.
    #[test]
    fn simd_pixel_rows_equal_the_portable_sweep() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
        for (c, px) in [(16usize, 7usize), (32, 3), (48, 5)] {
            let n = c * px;
            let mut param =
                |scale: f32| -> Vec<f32> { (0..c).map(|_| rng.gen_range(-scale..scale)).collect() };
            let (mixed, b, s, t) = (param(0.5), param(1.0), param(2.0), param(1.0));
            // All scales positive (the sweep then skips the `0 +`), and one of them zero.
            let positive: Vec<f32> = mixed.iter().map(|k| k.abs() + 1e-3).collect();
            let mut one_zero = positive.clone();
            one_zero[c / 2] = 0.0;
            // Every fifth sum zero: with a negative scale `k*s` is -0, which `0 + k*s` makes +0.
            let sums: Vec<i32> = (0..n)
                .map(|i| {
                    if i % 5 == 0 {
                        0
                    } else {
                        rng.gen_range(-200..200)
                    }
                })
                .collect();
            let res: Vec<f32> = (0..n)
                .map(|i| match i % 11 {
                    0 => -0.0,
                    1 => f32::INFINITY,
                    2 => 0.0,
                    _ => rng.gen_range(-3.0..3.0),
                })
                .collect();
            let mut with_nan = res.clone();
            with_nan[n / 2] = f32::NAN;
            for (act, k) in [Activation::Identity, Activation::Hardtanh]
                .into_iter()
                .flat_map(|a| [(a, &mixed), (a, &positive), (a, &one_zero)])
            {
                for (bias, bn, r) in [
                    (None, None, None),
                    (Some(&b[..]), None, Some(&res[..])),
                    (None, Some((&s[..], &t[..])), Some(&res[..])),
                    (Some(&b[..]), Some((&s[..], &t[..])), None),
                    (None, Some((&s[..], &t[..])), Some(&with_nan[..])),
                ] {
                    let rows = Epilogue { bias, bn, act }.pixel_rows(c, px, k);
                    let mut want = vec![MaybeUninit::uninit(); n];
                    rows.apply_scalar(&mut want, &sums, r);
                    // SAFETY: the portable sweep writes every element.
                    let want: Vec<f32> = unsafe { want.iter().map(|v| v.assume_init()).collect() };
                    for isa in cpu::test_levels() {
                        // The explicit sweep runs wherever the level has AVX-512F.
                        assert_eq!(rows.simd_with(isa), isa.allows(Features::AVX512F));
                        let mut got = vec![MaybeUninit::uninit(); n];
                        rows.apply_with(isa, &mut got, &sums, r);
                        let mut with_signs = vec![MaybeUninit::uninit(); n];
                        let mut signs = vec![0xA5u8; n / 8];
                        let clean = rows.simd_with(isa).then(|| {
                            rows.apply_signs_with(isa, &mut with_signs, &sums, r, &mut signs)
                        });
                        // SAFETY: the sweeps write every element (`with_signs` only if run).
                        let (got, with_signs): (Vec<f32>, Vec<f32>) = unsafe {
                            (
                                got.iter().map(|v| v.assume_init()).collect(),
                                match clean {
                                    Some(_) => with_signs.iter().map(|v| v.assume_init()).collect(),
                                    None => got.iter().map(|v| v.assume_init()).collect(),
                                },
                            )
                        };
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            let same =
                                |g: &f32| g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
                            assert!(same(g), "{isa:?} C{c} {act:?} i{i}: {g} vs {w}");
                            assert!(same(&with_signs[i]), "{isa:?} signs C{c} {act:?} i{i}");
                        }
                        let Some(clean) = clean else { continue };
                        assert_eq!(clean, !want.iter().any(|v| v.is_nan()), "NaN reported");
                        for (i, v) in want.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
                            let bit = signs[i / 8] >> (i % 8) & 1 == 1;
                            assert_eq!(bit, *v < 0.0, "{isa:?} sign of {v} at {i}");
                        }
                    }
                }
            }
        }
    }
}

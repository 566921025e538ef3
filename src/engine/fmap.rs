//! A feature map on the tape-free inference path, in one of two memory layouts.
//!
//! Every op and the taped forward pass use NCHW. The bitwise binary conv of the inference path
//! ([`super::binary::BConv2d::forward_nhwc`]) reads and writes channel-last (NHWC) maps: its
//! packed input is then one compare per channel vector, and its pixel-major sums feed the
//! epilogue without a transpose. Between such convs a map stays NHWC through the
//! layout-free ops (activations, residual adds, the option-A shortcut); any other op takes
//! the NCHW view, converted when needed. Elementwise ops compute the same expression per
//! element in either layout and the converting ops only move values, so the layout never
//! changes a number.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use ndarray::Array4;

use super::cpu::{self, Features, Isa};
use super::ops;
use crate::{Error, Result};

/// NCHW `[N, C, H, W]` or NHWC `[N, H, W, C]` values, or only their signs.
#[derive(Clone, Debug)]
pub(crate) enum FeatureMap {
    Nchw(Array4<f32>),
    Nhwc(Array4<f32>),
    /// Signs only, already in the frame of the one binary conv that reads them (see
    /// [`FramedBits`]); the inference plan never routes such a map to any other reader.
    Bits(FramedBits),
}

/// The sign bits of a map, one [`crate::engine::binary`] frame per image (`framed_len(h, w,
/// c, pad)` bytes each, back to back), as a binary layer writes them for the binary conv
/// after it when nothing else reads its output.
#[derive(Clone, Debug)]
pub(crate) struct FramedBits {
    pub data: Vec<u8>,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub pad: usize,
}

const BITS_ONLY: &str = "sign bits go only to the binary conv the inference plan made them for";

/// `[N, A, B]` -> `[N, B, A]` on contiguous data: the pixels-by-channels transpose behind
/// both conversions (ndarray's generic `as_standard_layout` of a permuted view took 5% of XNOR
/// ResNet20 inference). Whole 16 x 16 blocks go through registers on AVX-512; the rest (and
/// every block elsewhere) through 8 x 8 tiles read and written in short contiguous runs.
pub(crate) fn transpose_images(src: &[f32], n: usize, a: usize, b: usize) -> Vec<f32> {
    transpose_images_with(cpu::isa(), src, n, a, b)
}

/// [`transpose_images`] at level `isa`.
fn transpose_images_with(isa: Isa, src: &[f32], n: usize, a: usize, b: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * a * b);
    if a * b > 0 {
        let dst = &mut out.spare_capacity_mut()[..n * a * b];
        for (img, dst) in src.chunks_exact(a * b).zip(dst.chunks_exact_mut(a * b)) {
            transpose_into_with(isa, img, a, b, dst);
        }
    }
    // SAFETY: every image's transpose wrote all `a * b` of its elements.
    unsafe { out.set_len(n * a * b) };
    out
}

/// One `[A, B]` -> `[B, A]` transpose (`img` and `dst` both `a * b` long); writes every
/// element of `dst`, which need not be initialised.
pub(crate) fn transpose_into(img: &[f32], a: usize, b: usize, dst: &mut [MaybeUninit<f32>]) {
    transpose_into_with(cpu::isa(), img, a, b, dst)
}

/// [`transpose_into`] at level `isa`.
fn transpose_into_with(isa: Isa, img: &[f32], a: usize, b: usize, dst: &mut [MaybeUninit<f32>]) {
    assert!(img.len() == a * b && dst.len() == a * b);
    let fast = cfg!(target_arch = "x86_64") && isa.allows(Features::AVX512F);
    let (a16, b16) = if fast {
        (a / 16 * 16, b / 16 * 16)
    } else {
        (0, 0)
    };
    #[cfg(target_arch = "x86_64")]
    if fast {
        for i0 in (0..a16).step_by(16) {
            for j0 in (0..b16).step_by(16) {
                // SAFETY: the level allows AVX-512F (the CPU has it); the block's 16 source rows
                // `img[(i0 + k) * b + j0..][..16]` and destination rows
                // `dst[(j0 + k) * a + i0..][..16]` lie inside the image (i0 + 16 <= a,
                // j0 + 16 <= b).
                unsafe { transpose16_avx512(img, b, i0, j0, dst, a) };
            }
        }
    }
    // Everything outside the whole 16 x 16 blocks.
    transpose_tiles(img, dst, a, b, (a16, b16));
}

fn transpose_tiles(
    img: &[f32],
    dst: &mut [MaybeUninit<f32>],
    a: usize,
    b: usize,
    done: (usize, usize),
) {
    const T: usize = 8;
    for i0 in (0..a).step_by(T) {
        let ti = T.min(a - i0);
        for j0 in (0..b).step_by(T) {
            if i0 < done.0 && j0 < done.1 {
                continue;
            }
            let tj = T.min(b - j0);
            for j in j0..j0 + tj {
                let d = &mut dst[j * a + i0..j * a + i0 + ti];
                for (ii, v) in d.iter_mut().enumerate() {
                    v.write(img[(i0 + ii) * b + j]);
                }
            }
        }
    }
}

/// One 16 x 16 block: `dst[(j0 + k) * ld_dst + i0 + l] = src[(i0 + l) * ld_src + j0 + k]`,
/// through registers (interleave 32-bit, then 64-bit pairs, then 128- and 256-bit lanes).
///
/// # Safety
/// The CPU has AVX-512F, and the 16 rows `src[(i0 + l) * ld_src + j0..][..16]` and
/// `dst[(j0 + k) * ld_dst + i0..][..16]` (`k`, `l < 16`) lie inside the slices.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16_avx512(
    src: &[f32],
    ld_src: usize,
    i0: usize,
    j0: usize,
    dst: &mut [MaybeUninit<f32>],
    ld_dst: usize,
) {
    use std::arch::x86_64::*;
    let mut r = [_mm512_setzero_ps(); 16];
    for (k, v) in r.iter_mut().enumerate() {
        // SAFETY: source row `i0 + k`, 16 floats from `j0` (the contract).
        *v = unsafe { _mm512_loadu_ps(src.as_ptr().add((i0 + k) * ld_src + j0)) };
    }
    let mut t = [_mm512_setzero_ps(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    for q in 0..4 {
        let (x, y, z, w) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
        r[4 * q] = ps(_mm512_unpacklo_pd(pd(x), pd(z)));
        r[4 * q + 1] = ps(_mm512_unpackhi_pd(pd(x), pd(z)));
        r[4 * q + 2] = ps(_mm512_unpacklo_pd(pd(y), pd(w)));
        r[4 * q + 3] = ps(_mm512_unpackhi_pd(pd(y), pd(w)));
    }
    for h in 0..2 {
        for k in 0..4 {
            let (x, y) = (r[8 * h + k], r[8 * h + k + 4]);
            t[8 * h + k] = _mm512_shuffle_f32x4::<0x88>(x, y);
            t[8 * h + k + 4] = _mm512_shuffle_f32x4::<0xdd>(x, y);
        }
    }
    for k in 0..8 {
        r[k] = _mm512_shuffle_f32x4::<0x88>(t[k], t[k + 8]);
        r[k + 8] = _mm512_shuffle_f32x4::<0xdd>(t[k], t[k + 8]);
    }
    for (k, v) in r.iter().enumerate() {
        // SAFETY: destination row `j0 + k`, 16 floats from `i0` (the contract).
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr().add((j0 + k) * ld_dst + i0) as *mut f32, *v) };
    }
}

fn to_nhwc(x: &Array4<f32>) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    let x = x.as_standard_layout();
    let v = transpose_images(x.as_slice().expect("standard layout"), n, c, h * w);
    Array4::from_shape_vec((n, h, w, c), v).expect("sizes match")
}

fn to_nchw(x: &Array4<f32>) -> Array4<f32> {
    let (n, h, w, c) = x.dim();
    let x = x.as_standard_layout();
    let v = transpose_images(x.as_slice().expect("standard layout"), n, h * w, c);
    Array4::from_shape_vec((n, c, h, w), v).expect("sizes match")
}

impl FeatureMap {
    /// `(N, C, H, W)` whatever the layout.
    pub(crate) fn dim(&self) -> (usize, usize, usize, usize) {
        match self {
            FeatureMap::Nchw(x) => x.dim(),
            FeatureMap::Nhwc(x) => {
                let (n, h, w, c) = x.dim();
                (n, c, h, w)
            }
            FeatureMap::Bits(b) => (b.n, b.c, b.h, b.w),
        }
    }

    /// The values as NCHW (standard layout), converted if stored NHWC.
    pub(crate) fn nchw(&self) -> Cow<'_, Array4<f32>> {
        match self {
            FeatureMap::Nchw(x) => Cow::Borrowed(x),
            FeatureMap::Nhwc(x) => Cow::Owned(to_nchw(x)),
            FeatureMap::Bits(_) => unreachable!("{BITS_ONLY}"),
        }
    }

    /// The values as NHWC (standard layout), converted if stored NCHW.
    pub(crate) fn nhwc(&self) -> Cow<'_, Array4<f32>> {
        match self {
            FeatureMap::Nhwc(x) if x.is_standard_layout() => Cow::Borrowed(x),
            FeatureMap::Nhwc(x) => Cow::Owned(x.as_standard_layout().into_owned()),
            FeatureMap::Nchw(x) => Cow::Owned(to_nhwc(x)),
            FeatureMap::Bits(_) => unreachable!("{BITS_ONLY}"),
        }
    }

    pub(crate) fn into_nchw(self) -> Array4<f32> {
        match self {
            FeatureMap::Nchw(x) => x,
            FeatureMap::Nhwc(x) => to_nchw(&x),
            FeatureMap::Bits(_) => unreachable!("{BITS_ONLY}"),
        }
    }

    /// Global average pool `[N, C]` in the map's own layout (the NHWC form is bit-identical).
    pub(crate) fn global_avg_pool(&self) -> Result<ndarray::Array2<f32>> {
        match self {
            FeatureMap::Nchw(x) => ops::pool::global_avg_pool(x),
            FeatureMap::Nhwc(x) => ops::pool::global_avg_pool_nhwc(x),
            FeatureMap::Bits(_) => unreachable!("{BITS_ONLY}"),
        }
    }

    /// Stores the map NHWC from now on (later readers of either layout see the same values).
    pub(crate) fn make_nhwc(&mut self) {
        if let FeatureMap::Nchw(x) = self {
            *self = FeatureMap::Nhwc(to_nhwc(x));
        }
    }

    /// The same map in `other`'s layout.
    pub(crate) fn like<'a>(&'a self, other: &FeatureMap) -> Cow<'a, Array4<f32>> {
        match other {
            FeatureMap::Nchw(_) => self.nchw(),
            FeatureMap::Nhwc(_) => self.nhwc(),
            FeatureMap::Bits(_) => unreachable!("{BITS_ONLY}"),
        }
    }

    /// Applies `f` to every value, in place, in whichever layout it is stored.
    pub(crate) fn map_inplace(&mut self, f: impl Fn(f32) -> f32) {
        match self {
            FeatureMap::Nchw(x) | FeatureMap::Nhwc(x) => x.mapv_inplace(f),
            FeatureMap::Bits(_) => unreachable!("{BITS_ONLY}"),
        }
    }

    /// `self += other` (the residual `Add` op's `v + r` per element).
    pub(crate) fn add_assign(&mut self, other: &FeatureMap, context: &str) -> Result<()> {
        if other.dim() != self.dim() {
            return Err(Error::input(
                context,
                format!("cannot add {:?} and {:?}", self.dim(), other.dim()),
            ));
        }
        let o = other.like(self);
        match self {
            FeatureMap::Nchw(x) | FeatureMap::Nhwc(x) => *x += &*o,
            FeatureMap::Bits(_) => unreachable!("{BITS_ONLY}"),
        }
        Ok(())
    }

    /// The option-A shortcut ([`ops::shortcut::shortcut_a`]) in the map's own layout.
    pub(crate) fn shortcut_a(&self, out_c: usize, stride: usize) -> Result<FeatureMap> {
        match self {
            FeatureMap::Nchw(x) => Ok(FeatureMap::Nchw(ops::shortcut::shortcut_a(
                x, out_c, stride,
            )?)),
            FeatureMap::Nhwc(x) => {
                let (n, h, w, c) = x.dim();
                let p = ops::shortcut::pad_channels(c, out_c, stride)?;
                let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
                let mut y = Array4::<f32>::zeros((n, ho, wo, out_c));
                y.slice_mut(ndarray::s![.., .., .., p..p + c])
                    .assign(&x.slice(ndarray::s![.., ..;stride, ..;stride, ..]));
                Ok(FeatureMap::Nhwc(y))
            }
            FeatureMap::Bits(_) => unreachable!("{BITS_ONLY}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(dim: (usize, usize, usize, usize), seed: u64) -> Array4<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array4::from_shape_simple_fn(dim, || rng.gen_range(-2.0..2.0))
    }

    /// Both transposes equal the definition at every level, on sizes with and without whole
    /// 16 x 16 blocks.
    #[test]
    fn transposes_equal_the_definition() {
        for (n, a, b) in [
            (2, 16, 64),
            (1, 32, 48),
            (1, 17, 33),
            (3, 5, 7),
            (1, 64, 16),
        ] {
            let src: Vec<f32> = (0..n * a * b).map(|v| v as f32).collect();
            for isa in cpu::test_levels() {
                let got = transpose_images_with(isa, &src, n, a, b);
                for img in 0..n {
                    for i in 0..a {
                        for j in 0..b {
                            let want = src[img * a * b + i * b + j];
                            assert_eq!(
                                got[img * a * b + j * a + i],
                                want,
                                "{isa:?} {n}x{a}x{b} ({img},{i},{j})"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The NHWC ops equal the NCHW ones (the reference ops) after converting back.
    #[test]
    fn nhwc_ops_equal_the_nchw_ops() {
        let x = random((2, 4, 5, 7), 1);
        let r = random((2, 4, 5, 7), 2);
        let nhwc = FeatureMap::Nhwc(to_nhwc(&x));
        assert_eq!(nhwc.dim(), x.dim());
        assert_eq!(nhwc.nchw().into_owned(), x);
        for (out_c, stride) in [(4, 1), (8, 2), (6, 2)] {
            let want = ops::shortcut::shortcut_a(&x, out_c, stride).unwrap();
            let got = nhwc.shortcut_a(out_c, stride).unwrap();
            assert!(matches!(got, FeatureMap::Nhwc(_)));
            assert_eq!(got.into_nchw(), want, "out_c {out_c}, stride {stride}");
        }
        let mut sum = nhwc.clone();
        sum.add_assign(&FeatureMap::Nchw(r.clone()), "add").unwrap();
        assert_eq!(sum.into_nchw(), &x + &r);
        // Bit for bit, including a plane of negative zeros (whose f64 sum keeps its sign).
        let mut zeros = x.clone();
        zeros.slice_mut(ndarray::s![1, 2, .., ..]).fill(-0.0);
        let want = ops::pool::global_avg_pool(&zeros).unwrap();
        let got = FeatureMap::Nhwc(to_nhwc(&zeros)).global_avg_pool().unwrap();
        let bits = |a: &ndarray::Array2<f32>| a.mapv(f32::to_bits);
        assert_eq!(bits(&got), bits(&want));
        let mut clamped = nhwc;
        clamped.map_inplace(|v| v.clamp(-1.0, 1.0));
        assert_eq!(clamped.into_nchw(), x.mapv(|v| v.clamp(-1.0, 1.0)));
        let e = FeatureMap::Nchw(x)
            .add_assign(&FeatureMap::Nchw(random((2, 4, 5, 6), 3)), "add")
            .unwrap_err();
        assert!(e.to_string().contains("cannot add"), "{e}");
    }
}

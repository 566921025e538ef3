//! Binary conv2d: packed +/-1 input and filters to exact `i32` accumulators, NCHW.
//!
//! `out[n][o][oy][ox] = sum over real taps (ky, kx, c) of x[n][c][iy][ix] * w[o][c][ky][kx]`,
//! with `iy = oy*stride + ky - pad` (same for x), and zero padding that contributes exactly 0:
//! this equals PyTorch's `conv2d(sign(x), sign(w), stride, padding)` on +/-1 tensors.
//! Output size `(H + 2*pad - kh) / stride + 1` (floor), as PyTorch.
//!
//! Pipeline per image: word-major bit-im2col ([`super::im2col`]) -> conv kernel
//! ([`super::bgemm`], writes `K - 2*count` straight into the NCHW plane of each output channel)
//! -> exact zero-padding fix-up of border pixels ([`super::padding`]). Images run in parallel
//! (rayon); results are integers, so they do not depend on the thread count.
//!
//! Measured (single thread, this 2-core AVX-512 machine under heavy shared load, see
//! `benches/binary_conv.rs`): 64->64 3x3 on 8x8 5-8 us per image vs ~115 us for an f32
//! im2col + sgemm conv (14-30x); 16->16 3x3 on 32x32 15-22 us vs ~335 us (15-22x).

use std::sync::{Arc, Mutex};

use ndarray::Array4;
use rayon::prelude::*;

use super::bgemm::gemm_cols;
use super::im2col::{weight_rows, ConvGeom, Im2col};
use super::pack::{PackedActivations, PackedWeights};
use super::padding::PaddingBias;
use super::popcount::PopcountPath;
use crate::{Error, Result};

/// Everything that depends on the input geometry, cached across calls with the same shape.
#[derive(Debug)]
struct Plan {
    g: ConvGeom,
    wpp: usize,
    im2col: Im2col,
    /// Border pixels `(pixel, padding class)`.
    border: Vec<(u32, u32)>,
    /// Per output channel, then border pixel: the exact padding bias minus the all-real `K` the
    /// kernel assumed (a flat table, so the fix-up is one add per entry).
    fix: Vec<i32>,
}

/// A binary conv layer with its filters prepared (im2col row layout, tap popcounts) and the
/// geometry-dependent plan (im2col offsets, padding bias) of the last input shape cached.
/// Build once, run many inputs; `Sync`, so one layer can serve several threads.
#[derive(Debug)]
pub struct BConv2d {
    out_channels: usize,
    in_channels: usize,
    kh: usize,
    kw: usize,
    row_words: usize,
    /// Filters as im2col rows, `[O][row_words]`.
    filters: Vec<u64>,
    /// popcount of each filter tap, `[O][kh*kw]`, for the padding bias.
    tap_pop: Vec<u32>,
    plan: Mutex<Option<Arc<Plan>>>,
}

impl Clone for BConv2d {
    fn clone(&self) -> Self {
        BConv2d {
            out_channels: self.out_channels,
            in_channels: self.in_channels,
            kh: self.kh,
            kw: self.kw,
            row_words: self.row_words,
            filters: self.filters.clone(),
            tap_pop: self.tap_pop.clone(),
            plan: Mutex::new(None),
        }
    }
}

impl BConv2d {
    pub fn new(weights: &PackedWeights) -> Self {
        let (o, c, kh, kw) = weights.dim();
        let filters = weight_rows(weights);
        let tap_pop = (0..o)
            .flat_map(|oc| (0..kh * kw).map(move |t| (oc, t / kw, t % kw)))
            .map(|(oc, ky, kx)| weights.tap(oc, ky, kx).iter().map(|v| v.count_ones()).sum())
            .collect();
        BConv2d {
            out_channels: o,
            in_channels: c,
            kh,
            kw,
            row_words: filters.len() / o,
            filters,
            tap_pop,
            plan: Mutex::new(None),
        }
    }

    /// `(O, C, kh, kw)`.
    pub fn dim(&self) -> (usize, usize, usize, usize) {
        (self.out_channels, self.in_channels, self.kh, self.kw)
    }

    /// Output `(OH, OW)` for an `H x W` input, or an input error if the shapes do not fit.
    pub fn output_size(
        &self,
        h: usize,
        w: usize,
        stride: usize,
        pad: usize,
    ) -> Result<(usize, usize)> {
        let g = self.geometry(h, w, stride, pad)?;
        Ok((g.oh, g.ow))
    }

    fn geometry(&self, h: usize, w: usize, stride: usize, pad: usize) -> Result<ConvGeom> {
        if stride == 0 {
            return Err(Error::input("bconv2d stride", "must be at least 1"));
        }
        if h + 2 * pad < self.kh || w + 2 * pad < self.kw {
            return Err(Error::input(
                "bconv2d input",
                format!(
                    "{h}x{w} input with padding {pad} is smaller than the {}x{} kernel",
                    self.kh, self.kw
                ),
            ));
        }
        Ok(ConvGeom {
            h,
            w,
            c: self.in_channels,
            kh: self.kh,
            kw: self.kw,
            stride,
            pad,
            oh: (h + 2 * pad - self.kh) / stride + 1,
            ow: (w + 2 * pad - self.kw) / stride + 1,
        })
    }

    fn plan(&self, g: ConvGeom, wpp: usize) -> Arc<Plan> {
        let mut cache = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.as_ref() {
            if p.g == g && p.wpp == wpp {
                return Arc::clone(p);
            }
        }
        let bias = PaddingBias::new(&g, self.out_channels, &self.tap_pop);
        let border = bias.border_pixels();
        let k = g.kbits() as i32;
        let fix = (0..self.out_channels)
            .flat_map(|oc| border.iter().map(move |&(_, class)| (class, oc)))
            .map(|(class, oc)| bias.bias(class, oc) - k)
            .collect();
        let plan = Arc::new(Plan {
            g,
            wpp,
            im2col: Im2col::new(g, wpp),
            border,
            fix,
        });
        *cache = Some(Arc::clone(&plan));
        plan
    }

    /// Runs the conv with the fastest popcount path.
    pub fn forward(
        &self,
        input: &PackedActivations,
        stride: usize,
        pad: usize,
    ) -> Result<Array4<i32>> {
        self.forward_with(PopcountPath::detect(), input, stride, pad)
    }

    /// Runs the conv on a given popcount path (unavailable path: input error).
    pub fn forward_with(
        &self,
        path: PopcountPath,
        input: &PackedActivations,
        stride: usize,
        pad: usize,
    ) -> Result<Array4<i32>> {
        let path = path.checked()?;
        let (n, c, h, w) = input.dim();
        if c != self.in_channels {
            return Err(Error::input(
                "bconv2d input",
                format!("{c} channels, weights expect {}", self.in_channels),
            ));
        }
        let g = self.geometry(h, w, stride, pad)?;
        let o = self.out_channels;
        let p = g.out_pixels();
        let mut out = vec![0i32; n * o * p];
        if n == 0 {
            return Ok(Array4::from_shape_vec((n, o, g.oh, g.ow), out).expect("sizes match"));
        }
        let plan = self.plan(g, input.words_per_pixel());
        let image_words = h * w * input.words_per_pixel();
        let run = |buf: &mut Vec<u64>, (img, dst): (usize, &mut [i32])| {
            let src = &input.as_words()[img * image_words..(img + 1) * image_words];
            self.image(path, &plan, src, buf, dst);
        };
        let new_buf = || vec![0u64; plan.im2col.len()];
        if n == 1 {
            run(&mut new_buf(), (0, &mut out));
        } else {
            out.par_chunks_mut(o * p)
                .enumerate()
                .for_each_init(new_buf, run);
        }
        Ok(Array4::from_shape_vec((n, o, g.oh, g.ow), out).expect("sizes match"))
    }

    fn image(
        &self,
        path: PopcountPath,
        plan: &Plan,
        src: &[u64],
        buf: &mut [u64],
        dst: &mut [i32],
    ) {
        let g = &plan.g;
        let p = g.out_pixels();
        let k = g.kbits() as i32;
        plan.im2col.fill(src, buf);
        gemm_cols(
            path,
            buf,
            p,
            plan.im2col.cols8(),
            &self.filters,
            self.row_words,
            k,
            dst,
        );
        // The kernel assumed every tap real (bias K); border pixels get their exact bias.
        // Channel-outer: a pixel-outer walk would hop between planes 4*p bytes apart, which for
        // p = 1024 maps every access to one L1 set.
        let nb = plan.border.len();
        for (plane, fix) in dst
            .chunks_exact_mut(p)
            .zip(plan.fix.chunks_exact(nb.max(1)))
        {
            for (&(pix, _), &d) in plan.border.iter().zip(fix) {
                plane[pix as usize] += d;
            }
        }
    }
}

/// Binary conv2d with the fastest popcount path: NCHW `i32` accumulators equal to the +/-1 conv
/// with exact zero padding. Channel mismatch, stride 0 or a kernel larger than the padded input
/// are input errors.
pub fn bconv2d(
    input: &PackedActivations,
    weights: &PackedWeights,
    stride: usize,
    pad: usize,
) -> Result<Array4<i32>> {
    BConv2d::new(weights).forward(input, stride, pad)
}

/// [`bconv2d`] on a given popcount path.
pub fn bconv2d_with(
    path: PopcountPath,
    input: &PackedActivations,
    weights: &PackedWeights,
    stride: usize,
    pad: usize,
) -> Result<Array4<i32>> {
    BConv2d::new(weights).forward_with(path, input, stride, pad)
}

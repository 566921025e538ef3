//! Binary conv2d: packed +/-1 input and filters to exact `i32` accumulators, NCHW.
//!
//! `out[n][o][oy][ox] = sum over real taps (ky, kx, c) of x[n][c][iy][ix] * w[o][c][ky][kx]`,
//! with `iy = oy*stride + ky - pad` (same for x), and zero padding that contributes exactly 0:
//! this equals PyTorch's `conv2d(sign(x), sign(w), stride, padding)` on +/-1 tensors.
//! Output size `(H + 2*pad - kh) / stride + 1` (floor), as PyTorch.
//!
//! Pipeline per image: bit-im2col ([`super::im2col`]) -> XOR-popcount GEMM ([`super::bgemm`]) ->
//! `bias - 2*count` with the padding bias of [`super::padding`]. Images run in parallel (rayon);
//! results are integers, so they do not depend on the thread count.

use ndarray::Array4;
use rayon::prelude::*;

use super::bgemm::{gemm, Panels};
use super::im2col::{bit_im2col, im2col_len, weight_rows, ConvGeom};
use super::pack::{PackedActivations, PackedWeights};
use super::padding::PaddingBias;
use super::popcount::PopcountPath;
use crate::{Error, Result};

/// A binary conv layer with its filters prepared (im2col row layout, panels, tap popcounts).
/// Build once, run many inputs.
#[derive(Clone, Debug)]
pub struct BConv2d {
    out_channels: usize,
    in_channels: usize,
    kh: usize,
    kw: usize,
    panels: Panels,
    /// popcount of each filter tap, `[O][kh*kw]`, for the padding bias.
    tap_pop: Vec<u32>,
}

impl BConv2d {
    pub fn new(weights: &PackedWeights) -> Self {
        let (o, c, kh, kw) = weights.dim();
        let rows = weight_rows(weights);
        let row_words = rows.len() / o;
        let tap_pop = (0..o)
            .flat_map(|oc| {
                (0..kh * kw).map(move |t| (oc, t / kw, t % kw))
            })
            .map(|(oc, ky, kx)| weights.tap(oc, ky, kx).iter().map(|v| v.count_ones()).sum())
            .collect();
        BConv2d {
            out_channels: o,
            in_channels: c,
            kh,
            kw,
            panels: Panels::from_rows(&rows, o, row_words),
            tap_pop,
        }
    }

    /// `(O, C, kh, kw)`.
    pub fn dim(&self) -> (usize, usize, usize, usize) {
        (self.out_channels, self.in_channels, self.kh, self.kw)
    }

    /// Output `(OH, OW)` for an `H x W` input, or an input error if the shapes do not fit.
    pub fn output_size(&self, h: usize, w: usize, stride: usize, pad: usize) -> Result<(usize, usize)> {
        Ok(self.geometry(h, w, stride, pad)?.oh_ow())
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

    /// Runs the conv with the fastest popcount path.
    pub fn forward(&self, input: &PackedActivations, stride: usize, pad: usize) -> Result<Array4<i32>> {
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
        let bias = PaddingBias::new(&g, self.out_channels, &self.tap_pop);
        let classes = bias.pixel_classes();
        let o = self.out_channels;
        let p = g.out_pixels();
        let mut out = vec![0i32; n * o * p];
        if n * o * p == 0 {
            return Ok(Array4::from_shape_vec((n, o, g.oh, g.ow), out).expect("sizes match"));
        }
        let image_words = h * w * input.words_per_pixel();
        let run = |bufs: &mut (Vec<u64>, Vec<u32>), (img, dst): (usize, &mut [i32])| {
            let src = &input.as_words()[img * image_words..(img + 1) * image_words];
            self.image(path, &g, (&bias, &classes), src, input.words_per_pixel(), bufs, dst);
        };
        let new_bufs = || {
            (
                vec![0u64; im2col_len(&g)],
                vec![0u32; p * self.panels.padded_outputs()],
            )
        };
        if n == 1 {
            run(&mut new_bufs(), (0, &mut out));
        } else {
            out.par_chunks_mut(o * p)
                .enumerate()
                .for_each_init(new_bufs, run);
        }
        Ok(Array4::from_shape_vec((n, o, g.oh, g.ow), out).expect("sizes match"))
    }

    #[allow(clippy::too_many_arguments)]
    fn image(
        &self,
        path: PopcountPath,
        g: &ConvGeom,
        (bias, classes): (&PaddingBias, &[u32]),
        src: &[u64],
        words_per_pixel: usize,
        (rows, counts): &mut (Vec<u64>, Vec<u32>),
        dst: &mut [i32],
    ) {
        bit_im2col(g, src, words_per_pixel, rows);
        let p = g.out_pixels();
        gemm(path, &rows[..p * g.row_words()], &self.panels, counts);
        let ld = self.panels.padded_outputs();
        // counts are [pixel][channel], the output [channel][pixel]: transpose in pixel blocks so
        // both sides stay in L1 (a plain column walk with a 4 KiB stride thrashes one cache set).
        for start in (0..p).step_by(TRANSPOSE_BLOCK) {
            let end = (start + TRANSPOSE_BLOCK).min(p);
            for oc in 0..self.out_channels {
                let out = &mut dst[oc * p + start..oc * p + end];
                for (i, d) in out.iter_mut().enumerate() {
                    let pix = start + i;
                    *d = bias.bias(classes[pix], oc) - 2 * counts[pix * ld + oc] as i32;
                }
            }
        }
    }
}

/// Pixels per block of the counts -> NCHW transpose.
const TRANSPOSE_BLOCK: usize = 64;

impl ConvGeom {
    fn oh_ow(&self) -> (usize, usize) {
        (self.oh, self.ow)
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

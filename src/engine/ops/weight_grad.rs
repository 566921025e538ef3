//! The weight gradient of a stride-1 convolution whose output has its input's size (3x3 pad 1,
//! 1x1 pad 0, ...) without im2col, for [`super::conv::conv2d_backward_with`].
//!
//! Why: im2col writes every input value `KH*KW` times, and for the weight gradient those
//! copies only feed one product. Here each channel plane is copied once, with `E = pad*W + pad`
//! zeros on either side; row `(c, p, q)` of the column block is then that padded plane read
//! from offset `p*W + q`, so all nine taps are views of one buffer. The entries im2col would
//! zero are of two kinds:
//! - rows above or below the image land in the zero borders;
//! - columns that wrap around a row edge are zeroed on the other operand instead: one copy of
//!   `dy` per kernel column `q`, zero in the output columns whose window leaves the image
//!   there.
//!
//! Several images side by side are padded segments one after another, with zeros in `dy`
//! between them. Every dot product is summed by [`super::gemm::dot_products`] in its fixed
//! order, so the result depends on neither threads nor batch split, as before.
//!
//! Cost: one copy of the input and `KW` copies of `dy`, where im2col wrote `KH*KW` copies of
//! the input. Measured on ResNet20's 16-channel stage: a float training step 3% faster
//! (interleaved runs on one core, 469 against 454 img/s).

use super::gemm::{dot_products, SMALL_SIDE};
use super::im2col::{valid_cols, zero_outside_cols};
use crate::model::geom::ConvGeom;

/// Whether [`weight_grad`] serves this convolution: stride 1, output the input's size, and at
/// most [`SMALL_SIDE`] input or output channels. Wider convolutions keep im2col + the `gemm`
/// crate, which the kernel does not beat there: on ResNet20 this path for every stride-1
/// layer ran a training step at 451 img/s, only for the 16-channel stage at 465, im2col
/// everywhere at 460 (interleaved runs, one core).
pub(super) fn fits(g: &ConvGeom) -> bool {
    g.stride == 1 && g.ho == g.h && g.wo == g.w && g.h * g.w > 0 && g.c.min(g.o) <= SMALL_SIDE
}

/// `E`: zeros either side of a padded plane, and the length of one image's segment.
fn segment(g: &ConvGeom) -> (usize, usize) {
    let e = g.pad * g.w + g.pad;
    (e, g.h * g.w + 2 * e)
}

/// Scratch floats [`weight_grad`] needs for up to `imgs` images.
pub(super) fn scratch_len(g: &ConvGeom, imgs: usize) -> usize {
    let (_, seg) = segment(g);
    g.c * imgs * seg + g.kw * g.o * imgs * seg + g.c * g.kh * g.o
}

/// `dwt [C*KH*KW, O] += sum over the images of col_n dy_n^T` for `imgs` images (`xs`
/// `[imgs, C, H, W]`, `dys` `[imgs, O, H, W]`), with `scratch` of [`scratch_len`] floats
/// (contents unspecified).
pub(super) fn weight_grad(
    g: &ConvGeom,
    xs: &[f32],
    dys: &[f32],
    imgs: usize,
    scratch: &mut [f32],
    dwt: &mut [f32],
) {
    let l = g.h * g.w;
    let (e, seg) = segment(g);
    let lc = imgs * seg;
    // Inner length: up to the last image's last output position.
    let kk = (imgs - 1) * seg + l;
    let (planes, rest) = scratch.split_at_mut(g.c * lc);
    let (dyq, tmp) = rest.split_at_mut(g.kw * g.o * kk);
    let tmp = &mut tmp[..g.c * g.kh * g.o];
    for c in 0..g.c {
        for i in 0..imgs {
            let dst = &mut planes[c * lc + i * seg..c * lc + (i + 1) * seg];
            dst[..e].fill(0.0);
            dst[e..e + l].copy_from_slice(&xs[(i * g.c + c) * l..(i * g.c + c + 1) * l]);
            dst[e + l..].fill(0.0);
        }
    }
    for q in 0..g.kw {
        let valid = valid_cols(g, q);
        for o in 0..g.o {
            let row = &mut dyq[(q * g.o + o) * kk..(q * g.o + o + 1) * kk];
            for i in 0..imgs {
                let at = i * seg;
                let plane = &mut row[at..at + l];
                plane.copy_from_slice(&dys[(i * g.o + o) * l..(i * g.o + o + 1) * l]);
                zero_outside_cols(plane, g.w, 0..g.h, valid);
                if i + 1 < imgs {
                    row[at + l..at + seg].fill(0.0);
                }
            }
        }
    }
    let cols: Vec<usize> = (0..g.o).map(|o| o * kk).collect();
    let mut rows = Vec::with_capacity(g.c * g.kh);
    for q in 0..g.kw {
        rows.clear();
        rows.extend((0..g.c).flat_map(|c| (0..g.kh).map(move |p| c * lc + p * g.w + q)));
        let dq = &dyq[q * g.o * kk..(q + 1) * g.o * kk];
        dot_products(planes, &rows, dq, &cols, kk, tmp, false, false);
        for (cp, sums) in tmp.chunks(g.o).enumerate() {
            let r = cp * g.kw + q;
            for (d, s) in dwt[r * g.o..(r + 1) * g.o].iter_mut().zip(sums) {
                *d += s;
            }
        }
    }
}

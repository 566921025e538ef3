//! Fast 2-D convolution (cross-correlation, PyTorch `conv2d` semantics) for the float engine,
//! forward and backward, parallel over the batch with rayon.
//!
//! Conventions: NCHW f32 input `x [N,C,H,W]`, weights `w [O,C,KH,KW]`, optional bias `b [O]`;
//! the same stride and zero padding on both spatial axes; output `[N,O,HO,WO]` with
//! `HO = (H + 2*pad - KH) / stride + 1` (floor). No groups, no dilation. [`geometry`] validates
//! the shapes and gives the batch size and the per-image [`ConvGeom`] shared with the binary
//! engine and the simulator.
//!
//! Forward, per image, by geometry:
//! - stride 1, "same" or "valid" padding (`2*pad < KW`), not 1x1 unpadded: the implicit GEMM
//!   of [`super::implicit`], which reads the input in place at each tap's offset (no column
//!   matrix). With the default backend every such forward goes there, so the taped forward,
//!   inference and the input gradient (itself a stride-1 convolution, below) share its one
//!   summation order.
//! - 1x1 stride-1 unpadded: one GEMM on the input as it lies.
//! - anything else (stride 2, the `matrixmultiply` backend): one GEMM `y_n [O, HO*WO] = W [O,
//!   C*KH*KW] x col_n [C*KH*KW, HO*WO]`, where `col_n` holds the receptive fields (rows ordered
//!   c-major, then kh, then kw, so `W` needs no reshaping).
//!
//! Backward uses the column layout: `dW = sum_n dy_n col_n^T`; the input gradient of a stride-1
//! convolution is the forward convolution of `dy` with the flipped kernel (see
//! `transposed_pad`), of other convolutions `dcol_n = W^T dy_n` folded back by col2im.
//! [`conv2d_backward_input`] gives the input gradient alone, one image at a time. The
//! weight-gradient sum runs over fixed batch groups whose partial sums are added in order, so
//! the result does not depend on the thread count.
//!
//! The forward pass computes one image at a time, so results do not depend on the batch;
//! the backward pass puts several images of small maps (fewer than 256 output positions) side
//! by side in one GEMM, which roughly doubles the GEMM rate on the 8x8 ResNet stage. The weight gradient
//! is accumulated transposed, `dW^T += col dy^T`, because the `gemm` crate is several times
//! slower on `dy col^T` (long inner dimension, column-major rhs); with at most 16 filters that
//! product goes to the inner-product kernel of [`super::gemm`], and for narrow stride-1 layers
//! to the im2col-free [`super::weight_grad`]. im2col and col2im are in [`super::im2col`].
//!
//! The channel-last forward ([`conv2d_fused_nhwc`], for a binary conv reading the output)
//! of a short reduction (`C*KH*KW <= 64`, e.g. a first layer on RGB) runs the direct kernel of
//! [`super::direct`] instead, which gives the same values bit for bit.
//!
//! NaN or infinite inputs propagate through the sums (IEEE); nothing is checked here.
//!
//! The slow reference these are tested against is [`super::reference::conv`].

use super::direct;
use super::epilogue::Epilogue;
use super::gemm::{sgemm, GemmBackend, MatRef, DEFAULT_BACKEND};
use super::im2col::{col2im_at, im2col_at, im2col_rows, is_pointwise};
use super::implicit;
use super::weight_grad as shifted;
use crate::engine::heap::with_reused;
use crate::model::geom::ConvGeom;
use crate::{Error, Result};
use ndarray::{Array1, Array4};
use rayon::prelude::*;
use std::cell::RefCell;

/// Checks the shapes of `x [N,C,H,W]` and `w [O,C,KH,KW]` and the hyper-parameters; returns
/// the batch size and the per-image geometry. Every failure names the offending field.
pub fn geometry(
    x: (usize, usize, usize, usize),
    w: (usize, usize, usize, usize),
    stride: usize,
    pad: usize,
) -> Result<(usize, ConvGeom)> {
    let (n, c, h, wd) = x;
    let (o, c2, kh, kw) = w;
    if stride == 0 {
        return Err(Error::input("conv2d stride", "must be at least 1"));
    }
    if c != c2 {
        return Err(Error::input(
            "conv2d weight",
            format!("weight expects {c2} input channels, input has {c} (x {x:?}, w {w:?})"),
        ));
    }
    if kh == 0 || kw == 0 || o == 0 || c == 0 {
        return Err(Error::input(
            "conv2d weight",
            format!("empty weight shape {w:?}"),
        ));
    }
    let g = ConvGeom::new((c, h, wd), (o, kh, kw), stride, pad).ok_or_else(|| {
        Error::input(
            "conv2d input",
            format!(
                "padded input {}x{} is smaller than the kernel {kh}x{kw}",
                h + 2 * pad,
                wd + 2 * pad
            ),
        )
    })?;
    Ok((n, g))
}

/// A tensor that must have the conv output's shape `[N,O,HO,WO]`.
fn check_output_shape(
    n: usize,
    g: &ConvGeom,
    field: &str,
    what: &str,
    t: &Array4<f32>,
) -> Result<()> {
    let want = (n, g.o, g.ho, g.wo);
    if t.dim() != want {
        return Err(Error::input(
            field,
            format!("{what} has shape {:?}, output shape is {want:?}", t.dim()),
        ));
    }
    Ok(())
}

fn check_bias(g: &ConvGeom, b: Option<&Array1<f32>>) -> Result<()> {
    if let Some(b) = b {
        if b.len() != g.o {
            return Err(Error::input(
                "conv2d bias",
                format!(
                    "bias has {} entries, weight has {} output channels",
                    b.len(),
                    g.o
                ),
            ));
        }
    }
    Ok(())
}

/// Forward convolution with the default GEMM backend. See the module doc for conventions.
pub fn conv2d(
    x: &Array4<f32>,
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
) -> Result<Array4<f32>> {
    conv2d_with(DEFAULT_BACKEND, x, w, b, stride, pad)
}

/// Forward convolution with an explicit GEMM backend (for benches and cross-checks).
pub fn conv2d_with(
    backend: GemmBackend,
    x: &Array4<f32>,
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
) -> Result<Array4<f32>> {
    conv2d_fused_with(backend, x, w, b, stride, pad, Epilogue::IDENTITY, None)
}

/// `conv2d(x, w) + b` followed by an [`Epilogue`] (batch-norm, residual `[N,O,HO,WO]`,
/// activation) in the same pass (default backend).
pub fn conv2d_fused(
    x: &Array4<f32>,
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    ep: Epilogue<'_>,
    residual: Option<&Array4<f32>>,
) -> Result<Array4<f32>> {
    conv2d_fused_with(DEFAULT_BACKEND, x, w, b, stride, pad, ep, residual)
}

/// The forward pass computes one image at a time: by the implicit GEMM (stride 1, see the
/// module doc) or by one GEMM per image (in bands of output rows when the map has more than
/// [`BAND_COLS`] positions): each tile is unfolded into a column block that stays in
/// cache, multiplied, and written to NCHW through the epilogue. One image per GEMM also makes
/// an image's output independent of the batch it is in: the `gemm` crate's rounding of a
/// column depends on the shape of the product it sits in (its k-blocking changes with the
/// column count), so grouping images would tie results to batch composition. Putting 4 images
/// of an 8x8 map side by side ran the GEMM faster in isolation, but whole-network inference
/// image by image was as fast (cache reuse across layers wins it back).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_fused_with(
    backend: GemmBackend,
    x: &Array4<f32>,
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    ep: Epilogue<'_>,
    residual: Option<&Array4<f32>>,
) -> Result<Array4<f32>> {
    conv2d_fused_impl(backend, x, w, b, stride, pad, ep, residual, false)
}

/// [`conv2d_fused`] (no residual) written channel-last, `[N, HO, WO, O]`, for a reader that
/// works channel-last: the same GEMM and epilogue give the same values, and each band of
/// output rows is transposed while it is in cache instead of the whole map afterwards.
pub fn conv2d_fused_nhwc(
    x: &Array4<f32>,
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    ep: Epilogue<'_>,
) -> Result<Array4<f32>> {
    conv2d_fused_impl(DEFAULT_BACKEND, x, w, b, stride, pad, ep, None, true)
}

/// [`conv2d_fused_with`]'s body; `nhwc` writes `[N, HO, WO, O]` (only without a residual).
#[allow(clippy::too_many_arguments)]
fn conv2d_fused_impl(
    backend: GemmBackend,
    x: &Array4<f32>,
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    ep: Epilogue<'_>,
    residual: Option<&Array4<f32>>,
    nhwc: bool,
) -> Result<Array4<f32>> {
    assert!(
        !nhwc || residual.is_none(),
        "channel-last output takes no residual"
    );
    let (n, g) = geometry(x.dim(), w.dim(), stride, pad)?;
    check_bias(&g, b)?;
    if let Some(r) = residual {
        check_output_shape(n, &g, "conv2d residual", "residual", r)?;
    }
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let residual = residual.map(|r| r.as_standard_layout());
    let rs = residual
        .as_ref()
        .map(|r| r.as_slice().expect("standard layout"));
    let xs = x.as_slice().expect("standard layout");
    let ws = w.as_slice().expect("standard layout");
    let (ckk, l) = (g.reduction(), g.pixels());
    let (img_in, img_out) = (g.c * g.h * g.w, g.o * l);
    let mut y = Array4::<f32>::uninit((n, g.o, g.ho, g.wo));
    let wmat = MatRef::row_major(ws, g.o, ckk);
    // With fewer images than threads, let the GEMM itself use the pool instead.
    let inner = n < rayon::current_num_threads();
    let bias: Option<Vec<f32>> = b.map(|b| b.iter().copied().collect());
    let ep = Epilogue {
        bias: bias.as_deref(),
        ..ep
    };
    // Channel-last output of a short reduction: the direct kernel, bit-identical to the GEMM
    // (see `super::direct`), with the epilogue over its pixel rows.
    let direct = (nhwc && backend == GemmBackend::Gemm && direct::usable(&g)).then(|| {
        // `apply_floats` takes no scale: the ones only fill the tiles' scale slot.
        let ones = vec![1.0; g.o];
        (
            direct::filters_by_tap(ws, &g),
            ep.pixel_rows(g.o, g.wo, &ones),
        )
    });
    if let Some((wk, rows)) = &direct {
        if n > 0 && l > 0 {
            let row = g.wo * g.o;
            y.as_slice_mut()
                .expect("fresh array")
                .par_chunks_mut(img_out)
                .zip(xs.par_chunks(img_in))
                .for_each(|(yn, xn)| {
                    with_scratch(direct::framed_len(&g), img_out, |framed, out| {
                        direct::conv_nhwc_image(&g, xn, wk, framed, out);
                        for (d, s) in yn.chunks_mut(row).zip(out.chunks(row)) {
                            rows.apply_floats(d, s);
                        }
                    })
                });
        }
        // SAFETY: every image's rows were written by `apply_floats`, which writes every
        // element (for an empty batch or map there is nothing to write).
        let y = unsafe { y.assume_init() };
        return Ok(y
            .into_shape_with_order((n, g.ho, g.wo, g.o))
            .expect("contiguous"));
    }
    // Stride-1 convolutions other than 1x1: the implicit GEMM over a framed input (no
    // column block; see `super::implicit`), whole images at a time.
    let implicit =
        (backend == GemmBackend::Gemm && implicit::usable(&g)).then(|| implicit::Plan::new(&g));
    // Output rows per tile (im2col + GEMM).
    let band = (BAND_COLS / g.wo.max(1)).clamp(1, g.ho.max(1));
    let tile_cols = band * g.wo;
    if n > 0 && l > 0 {
        y.as_slice_mut()
            .expect("fresh array")
            .par_chunks_mut(img_out)
            .zip(xs.par_chunks(img_in))
            .enumerate()
            .for_each(|(img, (yn, xn))| {
                // The epilogue of output rows `r0..r1`, whose values `out` holds `[O][cols]`.
                let finish = |yn: &mut [std::mem::MaybeUninit<f32>],
                              out: &mut [f32],
                              r0: usize,
                              r1: usize| {
                    let cols = (r1 - r0) * g.wo;
                    if nhwc {
                        // Epilogue in place over the band's channel rows, then the band
                        // transposed into its pixels' channel vectors.
                        for (oc, row) in out[..g.o * cols].chunks_mut(cols).enumerate() {
                            ep.row_inplace(oc, row, None);
                        }
                        let dst = &mut yn[r0 * g.wo * g.o..r1 * g.wo * g.o];
                        crate::engine::fmap::transpose_into(&out[..g.o * cols], g.o, cols, dst);
                        return;
                    }
                    for (oc, row) in yn.chunks_mut(l).enumerate() {
                        let src = &out[oc * cols..(oc + 1) * cols];
                        let at = img * img_out + oc * l;
                        let res = rs.map(|r| &r[at + r0 * g.wo..at + r1 * g.wo]);
                        ep.row_uninit(oc, &mut row[r0 * g.wo..r1 * g.wo], src, res);
                    }
                };
                if let Some(plan) = &implicit {
                    with_scratch(plan.frame_len(), img_out, |frame, out| {
                        plan.image(xn, ws, frame, out, inner);
                        finish(yn, out, 0, g.ho);
                    });
                    return;
                }
                let col_len = if is_pointwise(&g) { 0 } else { ckk * tile_cols };
                with_scratch(col_len, g.o * tile_cols, |col, out| {
                    for r0 in (0..g.ho).step_by(band) {
                        let r1 = (r0 + band).min(g.ho);
                        let cols = (r1 - r0) * g.wo;
                        let rhs = if is_pointwise(&g) {
                            // The input plane band is the GEMM operand as it stands.
                            MatRef {
                                data: &xn[r0 * g.wo..],
                                rows: ckk,
                                cols,
                                row_stride: l,
                                col_stride: 1,
                            }
                        } else {
                            im2col_rows(&g, xn, col, cols, 0, r0, r1);
                            MatRef::row_major(col, ckk, cols)
                        };
                        sgemm(backend, wmat, rhs, out, false, inner);
                        finish(yn, out, r0, r1);
                    }
                })
            });
    }
    // SAFETY: the bands of every image cover all its output rows, and the epilogue (or the
    // band transpose) writes every element of each row it is given (for an empty batch or map
    // there is nothing to write).
    let y = unsafe { y.assume_init() };
    Ok(match nhwc {
        // The buffer was filled pixel-major: reinterpret it as [N, HO, WO, O].
        true => y
            .into_shape_with_order((n, g.ho, g.wo, g.o))
            .expect("contiguous"),
        false => y,
    })
}

thread_local! {
    static SCRATCH_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with two per-thread scratch buffers of the given lengths (contents unspecified;
/// see [`with_reused`]).
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    with_reused(&SCRATCH_A, a, |x| with_reused(&SCRATCH_B, b, |y| f(x, y)))
}

/// `dst [cols x rows] = src [rows x cols]^T`, in square tiles so both sides stay in cache.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const T: usize = 16;
    for r0 in (0..rows).step_by(T) {
        for c0 in (0..cols).step_by(T) {
            for r in r0..(r0 + T).min(rows) {
                for c in c0..(c0 + T).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// GEMM width (output positions) below which the backward pass puts images side by side in
/// one GEMM; the bench shows the `gemm` kernels roughly doubling their rate from 64 to 256
/// columns.
const GROUP_COLS: usize = 256;

/// Forward tiles of larger maps are bands of output rows of about this many positions, so the
/// column block (`C*KH*KW x BAND_COLS` floats, 576 KB for 16 channels 3x3) stays in L2. On the
/// ResNet20 shapes (at most 1024 positions) bands of 256 were slower than whole images.
const BAND_COLS: usize = 1024;

/// Images per backward GEMM.
fn group_size(n: usize, g: &ConvGeom) -> usize {
    (GROUP_COLS / g.pixels().max(1)).clamp(1, n.max(1))
}

/// Number of batch groups for the weight-gradient reduction. Fixed (not the thread count) so
/// the summation order, and hence the rounding, is the same on any machine.
const GRAD_GROUPS: usize = 16;

/// The padding with which the input gradient of a stride-1 convolution is itself a forward
/// convolution: `dx = conv2d(dy, flipped(W), pad = K - 1 - pad)` (square kernel, `pad < K`).
/// That runs the forward path's im2col + GEMM (`[C x O*K*K] x [O*K*K x H*W]`) instead of the
/// GEMM `W^T dy` (inner dimension only `O`, which the `gemm` crate runs slowly) and col2im.
fn transposed_pad(g: &ConvGeom) -> Option<usize> {
    (g.stride == 1 && g.kh == g.kw && g.pad < g.kh).then(|| g.kh - 1 - g.pad)
}

/// `[C, O, KH, KW]` with `wf[c, o, p, q] = w[o, c, KH-1-p, KW-1-q]`: the kernel of the
/// transposed convolution (see [`transposed_pad`]); prepare it once per weight and pass it to
/// [`conv2d_backward_input_with`] when the same weight serves many images.
pub fn flipped(w: &Array4<f32>) -> Array4<f32> {
    let (o, c, kh, kw) = w.dim();
    Array4::from_shape_fn((c, o, kh, kw), |(ci, oi, p, q)| {
        w[[oi, ci, kh - 1 - p, kw - 1 - q]]
    })
}

/// The input gradient alone (no weight or bias gradient), for `x` of shape `x_dim` and `dy
/// [N,O,HO,WO]`, one image per GEMM, so an image's gradient does not depend on the batch it is
/// in (the attacks' gradient path; see [`crate::engine::exec::Net::input_grad`]). Stride-1
/// convolutions run as the forward convolution of [`transposed_pad`]; others as
/// `dcol_n = W^T dy_n` folded back by col2im.
pub fn conv2d_backward_input(
    x_dim: (usize, usize, usize, usize),
    w: &Array4<f32>,
    stride: usize,
    pad: usize,
    dy: &Array4<f32>,
) -> Result<Array4<f32>> {
    conv2d_backward_input_with(x_dim, w, None, stride, pad, dy)
}

/// [`conv2d_backward_input`] with `flipped(w)` prepared by the caller (ignored where the
/// gradient is not a forward convolution).
pub fn conv2d_backward_input_with(
    x_dim: (usize, usize, usize, usize),
    w: &Array4<f32>,
    wflip: Option<&Array4<f32>>,
    stride: usize,
    pad: usize,
    dy: &Array4<f32>,
) -> Result<Array4<f32>> {
    let (n, g) = geometry(x_dim, w.dim(), stride, pad)?;
    check_output_shape(n, &g, "conv2d_backward_input dy", "gradient", dy)?;
    if let Some(tpad) = transposed_pad(&g) {
        return match wflip {
            Some(wf) if wf.dim() == (g.c, g.o, g.kh, g.kw) => conv2d(dy, wf, None, 1, tpad),
            _ => conv2d(dy, &flipped(w), None, 1, tpad),
        };
    }
    let w = w.as_standard_layout();
    let dy = dy.as_standard_layout();
    let ws = w.as_slice().expect("standard layout");
    let dys = dy.as_slice().expect("standard layout");
    let (ckk, l) = (g.reduction(), g.pixels());
    let (img_in, img_out) = (g.c * g.h * g.w, g.o * l);
    let wt = MatRef::row_major(ws, g.o, ckk).t();
    let mut dx = vec![0.0f32; n * img_in];
    if n > 0 && img_in > 0 && l > 0 {
        dx.par_chunks_mut(img_in)
            .zip(dys.par_chunks(img_out))
            .for_each(|(dxn, dyn_)| {
                with_scratch(ckk * l, 0, |dcol, _| {
                    sgemm(
                        DEFAULT_BACKEND,
                        wt,
                        MatRef::row_major(dyn_, g.o, l),
                        dcol,
                        false,
                        false,
                    );
                    col2im_at(&g, dcol, l, 0, dxn);
                })
            });
    }
    Ok(Array4::from_shape_vec(x_dim, dx).expect("shape"))
}

/// Backward convolution with the default backend: returns `(dx, dw, db)` for `dy [N,O,HO,WO]`.
pub fn conv2d_backward(
    x: &Array4<f32>,
    w: &Array4<f32>,
    stride: usize,
    pad: usize,
    dy: &Array4<f32>,
) -> Result<(Array4<f32>, Array4<f32>, Array1<f32>)> {
    conv2d_backward_with(DEFAULT_BACKEND, x, w, stride, pad, dy)
}

/// Backward convolution with an explicit GEMM backend.
pub fn conv2d_backward_with(
    backend: GemmBackend,
    x: &Array4<f32>,
    w: &Array4<f32>,
    stride: usize,
    pad: usize,
    dy: &Array4<f32>,
) -> Result<(Array4<f32>, Array4<f32>, Array1<f32>)> {
    let (n, g) = geometry(x.dim(), w.dim(), stride, pad)?;
    check_output_shape(n, &g, "conv2d_backward dy", "gradient", dy)?;
    let tpad = transposed_pad(&g);
    let dx_fwd = match tpad {
        Some(tp) => Some(
            // A fresh array from the forward conv: standard layout, offset 0.
            conv2d_with(backend, dy, &flipped(w), None, 1, tp)?
                .into_raw_vec_and_offset()
                .0,
        ),
        None => None,
    };
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let dy = dy.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let ws = w.as_slice().expect("standard layout");
    let dys = dy.as_slice().expect("standard layout");
    let (ckk, l) = (g.reduction(), g.pixels());
    let img_in = g.c * g.h * g.w;
    let img_out = g.o * l;
    let wt = MatRef::row_major(ws, g.o, ckk).t();
    // The input gradient as a forward convolution when it is one (see `transposed_pad`); the
    // groups below then compute only the weight gradient.
    let mut dx = match dx_fwd {
        Some(dx) => dx,
        None => vec![0.0f32; n * img_in],
    };
    let per_group = n.div_ceil(GRAD_GROUPS).max(1);
    let inner = n.div_ceil(per_group) < rayon::current_num_threads();
    let shifted = backend == GemmBackend::Gemm && shifted::fits(&g);
    let sub = group_size(n, &g).min(per_group);
    let partials: Vec<(Vec<f32>, Vec<f64>)> = dx
        .par_chunks_mut(per_group * img_in)
        .zip(xs.par_chunks(per_group * img_in))
        .zip(dys.par_chunks(per_group * img_out))
        .map(|((dxg, xg), dyg)| {
            let mut dwt = vec![0.0f32; ckk * g.o];
            let mut db = vec![0.0f64; g.o];
            // The column blocks are overwritten before they are read: per-thread scratch, not
            // fresh zeroed vectors (their memset and page faults were ~3% of a training step).
            let dcol_len = if tpad.is_none() { ckk * sub * l } else { 0 };
            let side_len = if sub > 1 && !shifted {
                g.o * sub * l
            } else {
                0
            };
            let col_len = match shifted {
                true => shifted::scratch_len(&g, sub),
                false => ckk * sub * l,
            };
            with_scratch(col_len, dcol_len + side_len, |col, rest| {
                let (dcol, dy_side) = rest.split_at_mut(dcol_len);
                // `sub` images side by side per GEMM, as in the forward pass.
                for ((dxs, xs), dys) in dxg
                    .chunks_mut(sub * img_in)
                    .zip(xg.chunks(sub * img_in))
                    .zip(dyg.chunks(sub * img_out))
                {
                    let imgs = xs.len() / img_in;
                    for dyn_ in dys.chunks(img_out) {
                        for (acc, row) in db.iter_mut().zip(dyn_.chunks(l)) {
                            *acc += row.iter().map(|&v| v as f64).sum::<f64>();
                        }
                    }
                    if shifted {
                        // dx came from the transposed forward convolution (stride 1).
                        shifted::weight_grad(&g, xs, dys, imgs, col, &mut dwt);
                        continue;
                    }
                    let cols = imgs * l;
                    let dymat = if imgs == 1 {
                        MatRef::row_major(dys, g.o, l)
                    } else {
                        for (i, dyn_) in dys.chunks(img_out).enumerate() {
                            for (oc, row) in dyn_.chunks(l).enumerate() {
                                dy_side[oc * cols + i * l..oc * cols + (i + 1) * l]
                                    .copy_from_slice(row);
                            }
                        }
                        MatRef::row_major(dy_side, g.o, cols)
                    };
                    // dx: W^T dy, folded back onto each image.
                    if tpad.is_none() {
                        sgemm(backend, wt, dymat, dcol, false, inner);
                        for (i, dxn) in dxs.chunks_mut(img_in).enumerate() {
                            col2im_at(&g, dcol, cols, i * l, dxn);
                        }
                    }
                    // dW += dy col^T.
                    // Computed as dW^T = col dy^T ([CKK x cols] x [cols x O]): with `dy col^T` the
                    // long-inner-dimension product has a column-major rhs, which the `gemm` crate
                    // runs ~10x slower (bench `sgemm_backward_*`).
                    for (i, xn) in xs.chunks(img_in).enumerate() {
                        im2col_at(&g, xn, col, cols, i * l);
                    }
                    sgemm(
                        backend,
                        MatRef::row_major(col, ckk, cols),
                        dymat.t(),
                        &mut dwt,
                        true,
                        inner,
                    );
                }
            });
            (dwt, db)
        })
        .collect();
    let mut dwt = vec![0.0f32; ckk * g.o];
    let mut db = vec![0.0f64; g.o];
    for (pw, pb) in &partials {
        dwt.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    let mut dw = vec![0.0f32; g.o * ckk];
    transpose(&dwt, ckk, g.o, &mut dw);
    Ok((
        Array4::from_shape_vec((n, g.c, g.h, g.w), dx).expect("shape"),
        Array4::from_shape_vec((g.o, g.c, g.kh, g.kw), dw).expect("shape"),
        db.into_iter().map(|v| v as f32).collect(),
    ))
}

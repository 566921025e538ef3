//! Executing one binarized layer: activation bases, the integer sums `s_ij` on either backend,
//! and the fixed-order scaling `y = sum_i sum_j (alpha_i * beta_j) * s_ij` (see the module doc
//! of [`super`]), for the taped pass ([`bin_forward`]), fused with its epilogue for inference
//! ([`bin_forward_fused`]), and channel-last on the bitwise backend ([`bin_forward_nhwc`]).

use std::sync::OnceLock;

use ndarray::{s, Array1, Array4, ArrayView4, ArrayViewMut4, Axis};
use rayon::prelude::*;

use super::params::BinWeights;
use super::ConvBackend;
use crate::engine::binary::{
    self as bin, framed_len, pack_framed, row_start, BitsOut, PopcountPath,
};
use crate::engine::fmap::{FeatureMap, FramedBits};
use crate::engine::ops;
use crate::engine::params::BinScheme;
use crate::{Error, Result};

/// The activation side of a binarized layer, prepared once for all its weight bases: the
/// +/-1 activation bases (float backend, or when the combined activation is wanted) and their
/// packed words (bitwise backend). XNOR on the bitwise backend packs `x` itself: the packer's
/// `v < 0` rule is the crate's sign, sign(0) = +1, and it rejects NaN instead of mapping it to
/// -1.
struct BinInputs {
    acts: Vec<Array4<f32>>,
    /// ABC only: `A = sum_j beta_j a_j` as [`ops::abc::abc_activation`] made it (kept so the
    /// taped pass does not sum the bases a second time).
    abc_combined: Option<Array4<f32>>,
    packed: Vec<bin::PackedActivations>,
    backend: ConvBackend,
}

/// The integer sums `s_ij` of one (weight base, activation base) pair, as the backend made them.
enum Sums {
    Float(Array4<f32>),
    Int(Array4<i32>),
}

impl BinInputs {
    fn new(
        x: &Array4<f32>,
        bw: &BinWeights,
        backend: ConvBackend,
        want_acts: bool,
    ) -> Result<Self> {
        let xnor_direct =
            backend == ConvBackend::Bitwise && !want_acts && bw.scheme == BinScheme::Xnor;
        let (acts, abc_combined): (Vec<Array4<f32>>, _) = match bw.scheme {
            _ if xnor_direct => (Vec::new(), None),
            BinScheme::Xnor => (vec![ops::activation::sign(x)], None),
            BinScheme::Abc { .. } => {
                let out = ops::abc::abc_activation(x, &bw.act)?;
                (out.bases, Some(out.a))
            }
        };
        let packed = match backend {
            ConvBackend::Float => Vec::new(),
            ConvBackend::Bitwise if xnor_direct => vec![bin::pack_activations(x)?],
            ConvBackend::Bitwise => acts
                .iter()
                .map(bin::pack_activations)
                .collect::<Result<Vec<_>>>()?,
        };
        Ok(BinInputs {
            acts,
            abc_combined,
            packed,
            backend,
        })
    }

    /// `s_ij = conv(a_j, B_i)`.
    fn sums(&self, bw: &BinWeights, i: usize, j: usize, stride: usize, pad: usize) -> Result<Sums> {
        Ok(match self.backend {
            ConvBackend::Float => Sums::Float(ops::conv::conv2d(
                &self.acts[j],
                &bw.bases[i],
                None,
                stride,
                pad,
            )?),
            ConvBackend::Bitwise => {
                let plans = bw
                    .plans
                    .as_ref()
                    .ok_or_else(|| Error::input("binary engine", "weights were not packed"))?;
                Sums::Int(plans[i].forward(&self.packed[j], stride, pad)?)
            }
        })
    }
}

/// `k[o] = alpha_i[o] * beta_j`, the scale of pair (i, j).
pub(super) fn pair_scale(bw: &BinWeights, i: usize, j: usize) -> Vec<f32> {
    bw.alphas[i].iter().map(|a| a * bw.act.betas[j]).collect()
}

/// One binarized conv (linear layers as 1x1 convs on `[N, I, 1, 1]`). Returns the output, the
/// combined activation `A = sum_j beta_j a_j` (for the backward pass; empty unless
/// `want_combined`) and the accumulators (empty unless `keep_accs`).
///
/// `y` starts at zero and receives `(alpha_i[o] * beta_j) * s_ij` for each base pair in the
/// order (i, j), whichever backend produced `s_ij`: this fixed order is what makes the two
/// engines bit-identical. The activation bases are prepared once per layer ([`BinInputs`]);
/// the float backend makes the sums of all weight bases at once ([`float_sums`]).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub(super) fn bin_forward(
    x: &Array4<f32>,
    bw: &BinWeights,
    bias: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    backend: ConvBackend,
    want_combined: bool,
    keep_accs: bool,
) -> Result<(Array4<f32>, Array4<f32>, Vec<(usize, usize, Array4<f32>)>)> {
    let mut inputs = BinInputs::new(x, bw, backend, want_combined)?;
    let combined = if want_combined && inputs.abc_combined.is_some() {
        // Same sum, same order as below: abc_activation already formed it.
        inputs.abc_combined.take().expect("checked")
    } else if want_combined {
        let mut c = Array4::<f32>::zeros(x.raw_dim());
        for (a, &beta) in inputs.acts.iter().zip(&bw.act.betas) {
            c.scaled_add(beta, a);
        }
        c
    } else {
        Array4::zeros((0, 0, 0, 0))
    };
    let (mut y, accs) = match backend {
        ConvBackend::Float => float_sums(&inputs, bw, stride, pad, keep_accs)?,
        ConvBackend::Bitwise => {
            let mut y: Option<Array4<f32>> = None;
            let mut accs = Vec::new();
            for i in 0..bw.bases.len() {
                for j in 0..bw.act.betas.len() {
                    let k = pair_scale(bw, i, j);
                    let Sums::Int(s) = inputs.sums(bw, i, j, stride, pad)? else {
                        unreachable!("the bitwise backend makes integer sums")
                    };
                    let acc = y.get_or_insert_with(|| Array4::zeros(s.raw_dim()));
                    // |s| <= C*k*k < 2^24, so the conversion is exact.
                    accumulate(acc.view_mut(), &[(s.view(), &k)], |t| t as f32);
                    if keep_accs {
                        accs.push((i, j, s.mapv(|v| v as f32)));
                    }
                }
            }
            (y.expect("at least one base"), accs)
        }
    };
    if let Some(b) = bias {
        for (mut yo, &bo) in y.axis_iter_mut(Axis(1)).zip(b.iter()) {
            yo.mapv_inplace(|v| v + bo);
        }
    }
    Ok((y, combined, accs))
}

/// Floats of `s_ij` tensors held at once by [`float_sums`] (1 MB): the GEMM writes a chunk
/// that the scaling then reads while it is still in cache, and many bases on large maps do
/// not hold every image's sums at once.
const CHUNK_FLOATS: usize = 1 << 18;

/// The float backend's part of [`bin_forward`]: `y = sum_i sum_j k_ij * s_ij` (zero-based,
/// in the order (i, j)) and, with `keep_accs`, every `s_ij`. Per activation base, one
/// convolution with the stacked weight bases ([`ops::abc::stacked_sums`]) gives all `s_ij`,
/// exactly the per-pair convolutions' integers. The batch runs in chunks of images so that
/// the `M*N` sums of a chunk stay within [`CHUNK_FLOATS`] (one chunk with `keep_accs`);
/// every image's output depends only on that image, so chunking does not change it.
#[allow(clippy::type_complexity)]
fn float_sums(
    inputs: &BinInputs,
    bw: &BinWeights,
    stride: usize,
    pad: usize,
    keep_accs: bool,
) -> Result<(Array4<f32>, Vec<(usize, usize, Array4<f32>)>)> {
    let (m, nb) = (bw.bases.len(), bw.act.betas.len());
    let stacked = bw.stacked.as_ref().unwrap_or(&bw.bases[0]);
    let x_dim = inputs.acts[0].dim();
    let (batch, g) = ops::conv::geometry(x_dim, bw.bases[0].dim(), stride, pad)?;
    let per_image = (m * nb * g.o * g.pixels()).max(1);
    let chunk = match keep_accs {
        true => batch,
        false => (CHUNK_FLOATS / per_image).max(rayon::current_num_threads()),
    }
    .clamp(1, batch.max(1));
    let ks: Vec<Vec<f32>> = (0..m)
        .flat_map(|i| (0..nb).map(move |j| (i, j)))
        .map(|(i, j)| pair_scale(bw, i, j))
        .collect();
    let mut y = Array4::<f32>::zeros((batch, g.o, g.ho, g.wo));
    let mut accs = Vec::new();
    for b0 in (0..batch).step_by(chunk) {
        let b1 = (b0 + chunk).min(batch);
        let sums = inputs
            .acts
            .iter()
            .map(|a| match (b0, b1) {
                (0, b1) if b1 == batch => ops::abc::stacked_sums(a, stacked, stride, pad),
                _ => {
                    let part = a.slice(s![b0..b1, .., .., ..]).to_owned();
                    ops::abc::stacked_sums(&part, stacked, stride, pad)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<(ArrayView4<f32>, &[f32])> = (0..m)
            .flat_map(|i| (0..nb).map(move |j| (i, j)))
            .zip(&ks)
            .map(|((i, j), k)| (ops::abc::base_sum(&sums[j], m, i), k.as_slice()))
            .collect();
        accumulate(y.slice_mut(s![b0..b1, .., .., ..]), &pairs, |t| t);
        if keep_accs {
            let ij = (0..m).flat_map(|i| (0..nb).map(move |j| (i, j)));
            accs.extend(ij.zip(&pairs).map(|((i, j), (s, _))| (i, j, s.to_owned())));
        }
    }
    Ok((y, accs))
}

/// [`bin_forward`] followed by a fusion epilogue, for the inference path. With one weight base
/// and one activation base (XNOR, ABC 1x1) each output row is scaled and sent through the
/// epilogue as it leaves the binary conv (`0 + k*s`, `+ bias`, then the epilogue: the same
/// operations in the same order as [`bin_forward`] accumulating into a zeroed tensor followed
/// by the BN/add/activation ops, so the result is bit-identical) instead of three passes over
/// the feature maps.
#[allow(clippy::too_many_arguments)]
pub(super) fn bin_forward_fused(
    x: &Array4<f32>,
    bw: &BinWeights,
    bias: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    backend: ConvBackend,
    ep: &ops::epilogue::Epilogue<'_>,
    residual: Option<&Array4<f32>>,
) -> Result<Array4<f32>> {
    if bw.bases.len() != 1 || bw.act.betas.len() != 1 {
        let mut y = bin_forward(x, bw, bias, stride, pad, backend, false, false)?.0;
        epilogue_inplace(&mut y, ep, residual)?;
        return Ok(y);
    }
    let k = pair_scale(bw, 0, 0);
    // The integer sums `s` as f32 (float backend) or i32 (bitwise), both standard layout.
    let (sf, si) = match BinInputs::new(x, bw, backend, false)?.sums(bw, 0, 0, stride, pad)? {
        Sums::Float(s) => (Some(s), None),
        Sums::Int(s) => (None, Some(s)),
    };
    let dim = sf
        .as_ref()
        .map_or_else(|| si.as_ref().expect("one").dim(), |s| s.dim());
    check_residual(dim, residual)?;
    let (c, plane) = (dim.1, dim.2 * dim.3);
    let r_std = residual.map(|r| r.as_standard_layout());
    let rs = r_std
        .as_ref()
        .map(|r| r.as_slice().expect("standard layout"));
    let sf_s = sf.as_ref().map(|s| s.as_slice().expect("standard layout"));
    let si_s = si.as_ref().map(|s| s.as_slice().expect("standard layout"));
    let bias = bias.map(|b| b.to_vec());
    let ep = ops::epilogue::Epilogue {
        bias: bias.as_deref(),
        ..*ep
    };
    let mut y = Array4::<f32>::uninit(dim);
    if c * plane > 0 {
        y.as_slice_mut()
            .expect("fresh array")
            .par_chunks_mut(c * plane)
            .enumerate()
            .for_each(|(n, img)| {
                for (o, row) in img.chunks_mut(plane).enumerate() {
                    let at = (n * c + o) * plane;
                    let ko = k[o];
                    let res = rs.map(|r| &r[at..at + plane]);
                    // |s| <= C*k*k < 2^24, so the conversion is exact; `0 + k*s` is what
                    // accumulating into a zeroed tensor computes.
                    match (sf_s, si_s) {
                        (Some(s), _) => {
                            ep.row_map(o, row, &s[at..at + plane], |v| 0.0 + ko * v, res)
                        }
                        (_, Some(s)) => {
                            ep.row_map(o, row, &s[at..at + plane], |v| 0.0 + ko * v as f32, res)
                        }
                        _ => unreachable!("one backend ran"),
                    }
                }
            });
    }
    // SAFETY: every row of every image was written by `row_map` above (nothing to write
    // for an empty tensor).
    Ok(unsafe { y.assume_init() })
}

/// Whether layer `j` is a binary conv the bitwise backend runs channel-last.
pub(super) fn bitwise_nhwc(bw: &[Option<BinWeights>], j: usize) -> bool {
    bw.get(j)
        .and_then(|b| b.as_ref())
        .is_some_and(|b| nhwc_conv(b, ConvBackend::Bitwise))
}

/// Whether the inference path runs this binary conv channel-last ([`bin_forward_nhwc`]):
/// bitwise XNOR (one weight and one activation base, the activation base `sign(x)`) on a
/// multiple of 8 input channels.
pub(super) fn nhwc_conv(bw: &BinWeights, backend: ConvBackend) -> bool {
    backend == ConvBackend::Bitwise
        && bw.scheme == BinScheme::Xnor
        && bw.bases.len() == 1
        && bw.act.betas.len() == 1
        && bw
            .plans
            .as_ref()
            .is_some_and(|p| p.len() == 1 && p[0].supports_nhwc())
}

/// Where a channel-last binary conv's output goes, as the inference plan decided: only sign
/// bits for the next conv (`bits`), or floats and, with `frame`, also their sign bits framed
/// with that padding for the conv that reads them; `rows` caches the pixel-major epilogue.
pub(super) struct NhwcOut<'a> {
    pub(super) bits: Option<&'a BitsOut>,
    pub(super) frame: Option<usize>,
    pub(super) rows: &'a OnceLock<ops::epilogue::PixelRows>,
}

/// [`bin_forward_fused`] channel-last: the binary conv's pixel-major sums go through the
/// epilogue row by row as [`bin::BConv2d::forward_framed`] produces them, with the same scalar
/// expression per element (`0 + k*s`, `+ bias`, then the epilogue), so the values are
/// bit-identical to the NCHW path's. Returns an NHWC map, or with `out.bits` only
/// the signs, framed for the next conv; with `out.frame` (and a clean sweep) also the
/// signs of the NHWC map, framed for the conv that reads it. Reads `x` as floats, as bits
/// framed for this conv, or from `frame_in` (the same map's signs framed for this conv).
#[allow(clippy::too_many_arguments)]
pub(super) fn bin_forward_nhwc(
    x: &FeatureMap,
    frame_in: Option<&FramedBits>,
    bw: &BinWeights,
    bias: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    ep: &ops::epilogue::Epilogue<'_>,
    residual: Option<&FeatureMap>,
    out: NhwcOut<'_>,
) -> Result<(FeatureMap, Option<FramedBits>)> {
    let (bits, rows_cache) = (out.bits, out.rows);
    let conv = &bw.plans.as_ref().expect("checked by nhwc_conv")[0];
    let (n, c, h, w) = x.dim();
    let (o, ci, _, _) = conv.dim();
    if c != ci {
        return Err(Error::input(
            "bconv2d input",
            format!("{c} channels, weights expect {ci}"),
        ));
    }
    let (oh, ow) = conv.output_size(h, w, stride, pad)?;
    check_residual_dim((n, o, oh, ow), residual.map(|r| r.dim()))?;
    let path = PopcountPath::detect();
    // One image's conv, rows handed to `emit`, from floats or from this conv's frames.
    let frame_in = match x {
        FeatureMap::Bits(fb) => Some(fb),
        _ => frame_in,
    };
    let floats = match frame_in {
        Some(_) => None,
        None => Some(x.nhwc()),
    };
    let xs = floats
        .as_ref()
        .map(|f| f.as_slice().expect("standard layout"));
    let in_frame = framed_len(h, w, c, pad);
    if let Some(fb) = frame_in {
        // The plan framed them for this conv.
        assert!(
            fb.pad == pad && fb.data.len() == n * in_frame,
            "bits framed for this conv"
        );
    }
    // Image `img` framed for this conv (the producer's bits, or packed here), handed to `f`.
    let with_frame = |img: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>| -> Result<()> {
        match (xs, frame_in) {
            (Some(xs), _) => {
                let mut buf = vec![0u8; in_frame];
                let x_img = &xs[img * h * w * c..(img + 1) * h * w * c];
                pack_framed(x_img, (h, w, c), pad, img, &mut buf)?;
                f(&buf)
            }
            (None, Some(fb)) => f(&fb.data[img * in_frame..(img + 1) * in_frame]),
            _ => unreachable!("floats or bits"),
        }
    };
    let conv_image = |img: usize, emit: &mut dyn FnMut(usize, &[i32])| -> Result<()> {
        with_frame(img, &mut |f| {
            conv.forward_framed(path, f, (h, w), stride, pad, &mut *emit)
        })
    };
    if let Some(bits) = bits {
        // Only the signs, straight into the next conv's frames (zero frame = +1 padding bits).
        let out_frame = framed_len(oh, ow, o, bits.pad);
        let mut data = vec![0u8; n * out_frame];
        if out_frame > 0 {
            data.par_chunks_mut(out_frame)
                .enumerate()
                .try_for_each(|(img, fr)| {
                    let bounds = (bits.lo.as_slice(), bits.hi.as_slice());
                    with_frame(img, &mut |f| {
                        conv.forward_framed_bits(path, f, (h, w), stride, pad, bounds, fr, bits.pad)
                    })
                })?;
        }
        let fb = FramedBits {
            data,
            n,
            h: oh,
            w: ow,
            c: o,
            pad: bits.pad,
        };
        return Ok((FeatureMap::Bits(fb), None));
    }
    let (img_out, row) = (oh * ow * o, ow * o);
    // The tiled epilogue depends only on the layer and its output width, which the network's
    // fixed input shape fixes: built once per plan, not once per image.
    let make_rows = || {
        let bias = bias.map(|b| b.to_vec());
        let ep = ops::epilogue::Epilogue {
            bias: bias.as_deref(),
            ..*ep
        };
        ep.pixel_rows(o, ow, &pair_scale(bw, 0, 0))
    };
    let fresh;
    let rows_ep = match rows_cache.get_or_init(make_rows) {
        cached if cached.row_len() == row => cached,
        _ => {
            fresh = make_rows();
            &fresh
        }
    };
    let r = residual.map(|r| r.nhwc());
    let rs = r.as_ref().map(|r| r.as_slice().expect("standard layout"));
    let mut y = Array4::<f32>::uninit((n, oh, ow, o));
    // The signs of the output for the conv that reads it, from the same sweep.
    let p2 = out.frame.filter(|_| rows_ep.simd() && o.is_multiple_of(8));
    let out_frame = p2.map_or(0, |p2| framed_len(oh, ow, o, p2));
    let mut fdata = vec![0u8; n * out_frame];
    let clean = std::sync::atomic::AtomicBool::new(true);
    if img_out > 0 {
        let mut fimgs: Vec<Option<&mut [u8]>> = match out_frame {
            0 => (0..n).map(|_| None).collect(),
            len => fdata.chunks_mut(len).map(Some).collect(),
        };
        y.as_slice_mut()
            .expect("fresh array")
            .par_chunks_mut(img_out)
            .zip(fimgs.par_iter_mut())
            .enumerate()
            .try_for_each(|(img, (dst, fr))| {
                conv_image(img, &mut |oy, sums| {
                    let at = img * img_out + oy * row;
                    let d = &mut dst[oy * row..(oy + 1) * row];
                    let res = rs.map(|r| &r[at..at + row]);
                    match (fr.as_deref_mut(), p2) {
                        (Some(fr), Some(p2)) => {
                            let fa = row_start(oy, ow, o, p2);
                            let signs = &mut fr[fa..fa + ow * o / 8];
                            if !rows_ep.apply_signs(d, sums, res, signs) {
                                clean.store(false, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        _ => rows_ep.apply(d, sums, res),
                    }
                })
            })?;
    }
    let frame = p2
        .filter(|_| clean.into_inner() && out_frame > 0)
        .map(|pad| FramedBits {
            data: fdata,
            n,
            h: oh,
            w: ow,
            c: o,
            pad,
        });
    // SAFETY: the conv emitted every output row of every image (it returns an error before
    // emitting anything otherwise, and the error is propagated above), and each row's
    // epilogue wrote all of it (nothing to write for an empty tensor).
    Ok((FeatureMap::Nhwc(unsafe { y.assume_init() }), frame))
}

/// A fused residual must have the conv output's shape.
fn check_residual(dim: (usize, usize, usize, usize), residual: Option<&Array4<f32>>) -> Result<()> {
    check_residual_dim(dim, residual.map(|r| r.dim()))
}

/// [`check_residual`] on the residual's `(N, C, H, W)`.
fn check_residual_dim(
    dim: (usize, usize, usize, usize),
    residual: Option<(usize, usize, usize, usize)>,
) -> Result<()> {
    match residual {
        Some(r) if r != dim => Err(Error::input(
            "residual add",
            format!("cannot add {dim:?} and {r:?}"),
        )),
        _ => Ok(()),
    }
}

/// Applies a fusion epilogue in place, parallel over the batch: to a multi-base binary conv's
/// output (its bias already added by [`bin_forward`]) or to a batch-norm's input.
pub(super) fn epilogue_inplace(
    y: &mut Array4<f32>,
    ep: &ops::epilogue::Epilogue<'_>,
    residual: Option<&Array4<f32>>,
) -> Result<()> {
    check_residual(y.dim(), residual)?;
    if !y.is_standard_layout() {
        *y = y.as_standard_layout().into_owned();
    }
    let r_std = residual.map(|r| r.as_standard_layout());
    let rs = r_std
        .as_ref()
        .map(|r| r.as_slice().expect("standard layout"));
    let (c, plane) = (y.dim().1, y.dim().2 * y.dim().3);
    if c * plane == 0 {
        return Ok(());
    }
    y.as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(c * plane)
        .enumerate()
        .for_each(|(n, img)| {
            for (o, d) in img.chunks_mut(plane).enumerate() {
                let at = (n * c + o) * plane;
                ep.row_inplace(o, d, rs.map(|r| &r[at..at + plane]));
            }
        });
    Ok(())
}

/// `y[n, o] += k[o] * s[n, o]` for each `(s, k)` of `pairs` in turn, parallel over the batch:
/// per element the same operations in the same order as one pass per pair, in one pass.
fn accumulate<T: Copy + Send + Sync>(
    mut y: ArrayViewMut4<'_, f32>,
    pairs: &[(ArrayView4<'_, T>, &[f32])],
    to_f32: impl Fn(T) -> f32 + Sync,
) {
    y.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(n, mut yn)| {
            for (o, mut yo) in yn.axis_iter_mut(Axis(0)).enumerate() {
                for (s, k) in pairs {
                    let ko = k[o];
                    yo.zip_mut_with(&s.slice(s![n, o, .., ..]), |v, &t| *v += ko * to_f32(t));
                }
            }
        });
}

//! im2col and its adjoint col2im for the float convolutions of [`super::conv`].
//!
//! Layout: `col [C*KH*KW, ld]` holds, from column `off`, one column per output position of an
//! image; rows are ordered c-major, then kh, then kw (so `W [O, C*KH*KW]` needs no reshaping),
//! and entries whose window hangs over the zero padding are 0. Several images can sit side by
//! side in one GEMM operand (`off` = image * HO*WO).
//!
//! How the unfold is done, and why:
//! The stride-1 forward of the default backend does not unfold at all
//! (`super::implicit`); these serve strided forwards, the `matrixmultiply` backend and the
//! weight gradient.
//! - Stride 1 with same-width output (the 3x3 pad-1 convolutions): within the valid rows a
//!   tap's whole plane is one contiguous copy at a fixed offset, then the few entries that
//!   wrapped around a row edge are zeroed ([`shifted_copy`]). Copying row by row from a padded
//!   slab instead was tried and was slower (im2col 30% of float inference against 20%): the
//!   per-row loop costs more than the fix-ups.
//! - Any other stride: each channel's needed input rows go first into a zero-bordered slab
//!   (`W + 2*pad` wide, only the rows the band reads), so every output row of every tap is
//!   one gather with no edge cases; stride 2 gathers 16 or 8 outputs per vector shuffle. The
//!   per-element form it replaces (a bounds test per output) was 4% of a training step.
//!
//! Wrapped entries are zeroed by [`zero_outside_cols`], which `super::weight_grad` shares.

use crate::model::geom::ConvGeom;

/// Whether im2col is the identity (1x1, stride 1, no padding): `col_n` is `x_n`.
pub(super) fn is_pointwise(g: &ConvGeom) -> bool {
    g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0
}

/// Outputs `[i0, i1)` of one axis (`len` inputs, `out` outputs) whose input
/// `i*stride + t - pad` for kernel tap `t` lies inside the image.
fn valid_outputs(len: usize, out: usize, stride: usize, pad: usize, t: usize) -> (usize, usize) {
    let i0 = if pad > t {
        (pad - t).div_ceil(stride)
    } else {
        0
    };
    let i1 = if len + pad > t {
        (len + pad - t).div_ceil(stride).min(out)
    } else {
        0
    };
    (i0.min(i1), i1)
}

/// Output rows `[i0, i1)` whose input row `i*stride + p - pad` lies inside the image.
fn valid_rows(g: &ConvGeom, p: usize) -> (usize, usize) {
    valid_outputs(g.h, g.ho, g.stride, g.pad, p)
}

/// Output columns `[j0, j1)` whose input column `j*stride + q - pad` lies inside the image.
pub(super) fn valid_cols(g: &ConvGeom, q: usize) -> (usize, usize) {
    valid_outputs(g.w, g.wo, g.stride, g.pad, q)
}

/// Unfolds one image `[C,H,W]` into columns `[off, off + HO*WO)` of `col [C*KH*KW, ld]`.
pub(super) fn im2col_at(g: &ConvGeom, x: &[f32], col: &mut [f32], ld: usize, off: usize) {
    im2col_rows(g, x, col, ld, off, 0, g.ho);
}

/// The columns of output rows `[r0, r1)` only (`(r1 - r0) * WO` columns from `off`): the
/// forward pass can unfold large feature maps a few rows at a time so the column block stays
/// in cache between the copy and the GEMM. Vectorised for the process's level (see
/// [`im2col_rows_at`]).
pub(super) fn im2col_rows(
    g: &ConvGeom,
    x: &[f32],
    col: &mut [f32],
    ld: usize,
    off: usize,
    r0: usize,
    r1: usize,
) {
    if r1 <= r0 || g.wo == 0 {
        return;
    }
    if is_pointwise(g) {
        let (l, len) = (g.h * g.w, (r1 - r0) * g.wo);
        for c in 0..g.c {
            col[c * ld + off..c * ld + off + len]
                .copy_from_slice(&x[c * l + r0 * g.wo..c * l + r1 * g.wo]);
        }
        return;
    }
    let slab_len = if g.stride == 1 && g.wo == g.w {
        0
    } else {
        slab_rows(g, r0, r1) * slab_width(g)
    };
    crate::engine::heap::with_reused(&SLAB, slab_len, |slab| {
        im2col_rows_at(crate::engine::cpu::isa(), g, x, col, ld, off, r0, r1, slab)
    })
}

/// Width of a padded slab row: the image row with `pad` zeros on each side.
fn slab_width(g: &ConvGeom) -> usize {
    g.w + 2 * g.pad
}

/// Padded input rows that output rows `[r0, r1)` read: from `r0*stride` to
/// `(r1-1)*stride + KH - 1` (padded coordinates).
fn slab_rows(g: &ConvGeom, r0: usize, r1: usize) -> usize {
    (r1 - 1) * g.stride + g.kh - r0 * g.stride
}

thread_local! {
    static SLAB: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

crate::engine::cpu::vectorized!(
    /// [`im2col_rows`] compiled for the vector level of `isa`.
    #[allow(clippy::too_many_arguments)]
    fn im2col_rows_at(
        g: &ConvGeom,
        x: &[f32],
        col: &mut [f32],
        ld: usize,
        off: usize,
        r0: usize,
        r1: usize,
        slab: &mut [f32],
    ) = im2col_rows_body;
);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn im2col_rows_body(
    g: &ConvGeom,
    x: &[f32],
    col: &mut [f32],
    ld: usize,
    off: usize,
    r0: usize,
    r1: usize,
    slab: &mut [f32],
) {
    let (wp, rows) = (slab_width(g), slab_rows(g, r0, r1));
    let first = r0 * g.stride;
    let len = (r1 - r0) * g.wo;
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        if g.stride == 1 && g.wo == g.w {
            for p in 0..g.kh {
                for q in 0..g.kw {
                    let row = (c * g.kh + p) * g.kw + q;
                    let dst = &mut col[row * ld + off..row * ld + off + len];
                    shifted_copy(g, plane, dst, p, q, r0, r1);
                }
            }
            continue;
        }
        fill_slab(g, plane, first, rows, &mut slab[..rows * wp]);
        for p in 0..g.kh {
            for q in 0..g.kw {
                let row = (c * g.kh + p) * g.kw + q;
                let dst = &mut col[row * ld + off..row * ld + off + len];
                for (i, out) in dst.chunks_exact_mut(g.wo).enumerate() {
                    let at = (i * g.stride + p) * wp + q;
                    match g.stride {
                        2 => gather2_row(out, &slab[at..(at + 2 * g.wo).min(slab.len())]),
                        s => out
                            .iter_mut()
                            .zip(slab[at..].iter().step_by(s))
                            .for_each(|(d, &v)| *d = v),
                    }
                }
            }
        }
    }
}

/// Stride 1 with same-width output: within the valid rows, `dst[k] = plane[k + off]` for one
/// fixed offset, so a whole plane is a single contiguous copy; the entries that wrapped
/// around a row edge are then zeroed. This replaces `HO` short copies per kernel tap.
/// `dst` holds output rows `[r0, r1)`.
#[inline(always)]
fn shifted_copy(
    g: &ConvGeom,
    plane: &[f32],
    dst: &mut [f32],
    p: usize,
    q: usize,
    r0: usize,
    r1: usize,
) {
    let w = g.w as isize;
    let (v0, v1) = valid_rows(g, p);
    let i0 = v0.clamp(r0, r1);
    let i1 = v1.clamp(i0, r1);
    let base = r0 * g.wo;
    dst[..i0 * g.wo - base].fill(0.0);
    dst[i1 * g.wo - base..].fill(0.0);
    let off = (p as isize - g.pad as isize) * w + q as isize - g.pad as isize;
    // Clamp so the source index stays inside the plane; clamped-away entries are edge
    // columns, zeroed below.
    let Some((k0, k1)) = shifted_range(g, i0, i1, off, plane.len()) else {
        dst[i0 * g.wo - base..i1 * g.wo - base].fill(0.0);
        return;
    };
    let s0 = (k0 as isize + off) as usize;
    dst[k0 - base..k1 - base].copy_from_slice(&plane[s0..s0 + (k1 - k0)]);
    dst[i0 * g.wo - base..k0 - base].fill(0.0);
    dst[k1 - base..i1 * g.wo - base].fill(0.0);
    // The wrapped entries: the first `j0` and last `WO - j1` columns of each row (at most
    // `pad` each).
    zero_outside_cols(dst, g.wo, i0 - r0..i1 - r0, valid_cols(g, q));
}

/// Padded rows `[first, first + rows)` of one channel plane: the image rows with `pad` zeros
/// either side, zero rows above and below the image.
#[inline(always)]
fn fill_slab(g: &ConvGeom, plane: &[f32], first: usize, rows: usize, slab: &mut [f32]) {
    let wp = slab_width(g);
    for (k, srow) in slab.chunks_exact_mut(wp).enumerate().take(rows) {
        let r = (first + k) as isize - g.pad as isize;
        if r < 0 || r >= g.h as isize {
            srow.iter_mut().for_each(|v| *v = 0.0);
            continue;
        }
        let r = r as usize;
        srow[..g.pad].iter_mut().for_each(|v| *v = 0.0);
        srow[g.pad + g.w..].iter_mut().for_each(|v| *v = 0.0);
        srow[g.pad..g.pad + g.w].copy_from_slice(&plane[r * g.w..(r + 1) * g.w]);
    }
}

/// `dst[j] = src[2*j]` in chunks of 16 or 8 outputs (a vector shuffle each), then one at a
/// time; `src` may extend past `2 * dst.len() - 1`, which lets the last chunk vectorise too.
#[inline(always)]
fn gather2_row(dst: &mut [f32], src: &[f32]) {
    fn chunks<const K: usize>(dst: &mut [f32], src: &[f32], j: &mut usize) {
        while *j + K <= dst.len() && 2 * (*j + K) <= src.len() {
            let d = &mut dst[*j..*j + K];
            let s = &src[2 * *j..2 * (*j + K)];
            for k in 0..K {
                d[k] = s[2 * k];
            }
            *j += K;
        }
    }
    let mut j = 0;
    chunks::<16>(dst, src, &mut j);
    chunks::<8>(dst, src, &mut j);
    for k in j..dst.len() {
        dst[k] = src[2 * k];
    }
}

/// Zeroes the entries of rows `rows` of a `width`-wide row-major block that lie outside the
/// columns `[j0, j1)`: the window positions that wrap around a row edge. Column by column with
/// strided stores, because a fill per row becomes a `memset` call per row (6% of float
/// inference when it was one).
pub(super) fn zero_outside_cols(
    m: &mut [f32],
    width: usize,
    rows: std::ops::Range<usize>,
    (j0, j1): (usize, usize),
) {
    for j in (0..j0).chain(j1..width) {
        for i in rows.clone() {
            m[i * width + j] = 0.0;
        }
    }
}

/// The part `[k0, k1)` of the valid rows' flat range `[i0*WO, i1*WO)` whose source `k + off`
/// lies inside the plane (None if empty).
fn shifted_range(
    g: &ConvGeom,
    i0: usize,
    i1: usize,
    off: isize,
    len: usize,
) -> Option<(usize, usize)> {
    let k0 = ((i0 * g.wo) as isize).max(-off);
    let k1 = ((i1 * g.wo) as isize).min(len as isize - off);
    (k1 > k0).then_some((k0 as usize, k1 as usize))
}

/// Adjoint of [`im2col_at`]: adds every column entry back onto the input position it came from.
/// `dx` is overwritten; `col` is scratch and its padded-position entries are zeroed.
/// Reads columns `[off, off + HO*WO)` of a matrix with row stride `ld` (see [`im2col_at`]).
pub(super) fn col2im_at(g: &ConvGeom, col: &mut [f32], ld: usize, off: usize, dx: &mut [f32]) {
    let l = g.pixels();
    let w = g.w as isize;
    if is_pointwise(g) {
        for (c, plane) in dx.chunks_mut(l).enumerate() {
            plane.copy_from_slice(&col[c * ld + off..c * ld + off + l]);
        }
        return;
    }
    dx.fill(0.0);
    for c in 0..g.c {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for p in 0..g.kh {
            for q in 0..g.kw {
                let row = (c * g.kh + p) * g.kw + q;
                let src = &mut col[row * ld + off..row * ld + off + l];
                let (j0, j1) = valid_cols(g, q);
                let (i0, i1) = valid_rows(g, p);
                if g.stride == 1 && g.wo == g.w {
                    // Mirror of `shifted_copy`: drop the wrapped edge entries, then one
                    // contiguous add at a fixed offset.
                    zero_outside_cols(src, g.wo, i0..i1, (j0, j1));
                    let off = (p as isize - g.pad as isize) * w + q as isize - g.pad as isize;
                    if let Some((k0, k1)) = shifted_range(g, i0, i1, off, plane.len()) {
                        let s0 = (k0 as isize + off) as usize;
                        plane[s0..s0 + (k1 - k0)]
                            .iter_mut()
                            .zip(&src[k0..k1])
                            .for_each(|(d, v)| *d += v);
                    }
                } else {
                    for i in i0..i1 {
                        let r = i * g.stride + p - g.pad;
                        let dst = &mut plane[r * g.w..(r + 1) * g.w];
                        let s = &src[i * g.wo..(i + 1) * g.wo];
                        for j in j0..j1 {
                            dst[j * g.stride + q - g.pad] += s[j];
                        }
                    }
                }
            }
        }
    }
}

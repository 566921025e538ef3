//! Pooling over NCHW tensors: max, average and global average, with backward passes.
//!
//! Conventions (PyTorch defaults): square window `k`, `stride`, zero padding `pad` on both
//! sides; output size `(H + 2*pad - k) / stride + 1` (floor, no ceil mode); `pad <= k/2`.
//! Max pool ignores padded positions (they act as -inf); ties go to the first position in
//! row-major window order, which receives the whole gradient. Average pool divides by `k*k`
//! including padded positions (`count_include_pad = true`).

use crate::{Error, Result};
use ndarray::{Array2, Array4, Axis};
use rayon::prelude::*;

fn out_dims(
    op: &str,
    x: (usize, usize, usize, usize),
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<(usize, usize)> {
    let (_, _, h, w) = x;
    if k == 0 || stride == 0 {
        return Err(Error::input(
            format!("{op} kernel/stride"),
            "must be at least 1",
        ));
    }
    if pad > k / 2 {
        return Err(Error::input(
            format!("{op} padding"),
            format!("pad {pad} exceeds half the window {k}"),
        ));
    }
    if h + 2 * pad < k || w + 2 * pad < k {
        return Err(Error::input(
            format!("{op} input"),
            format!("input {h}x{w} (pad {pad}) is smaller than the window {k}"),
        ));
    }
    Ok((
        (h + 2 * pad - k) / stride + 1,
        (w + 2 * pad - k) / stride + 1,
    ))
}

/// Flat in-plane indices of the window at output (i, j).
fn window(
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    i: usize,
    j: usize,
) -> impl Iterator<Item = usize> {
    (0..k).flat_map(move |p| {
        (0..k).filter_map(move |q| {
            let r = (i * stride + p) as isize - pad as isize;
            let t = (j * stride + q) as isize - pad as isize;
            (r >= 0 && t >= 0 && (r as usize) < h && (t as usize) < w)
                .then(|| r as usize * w + t as usize)
        })
    })
}

/// Max pool forward: returns the output and, per output element, the flat in-plane index of
/// the chosen input (needed by the backward pass).
pub fn max_pool2d(
    x: &Array4<f32>,
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<(Array4<f32>, Array4<usize>)> {
    let (n, c, h, w) = x.dim();
    let (ho, wo) = out_dims("max_pool2d", x.dim(), k, stride, pad)?;
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let mut y = vec![0.0f32; n * c * ho * wo];
    let mut arg = vec![0usize; n * c * ho * wo];
    y.par_chunks_mut(ho * wo)
        .zip(arg.par_chunks_mut(ho * wo))
        .zip(xs.par_chunks(h * w))
        .for_each(|((yp, ap), xp)| {
            for i in 0..ho {
                for j in 0..wo {
                    let mut best = (usize::MAX, f32::NEG_INFINITY);
                    for idx in window(h, w, k, stride, pad, i, j) {
                        // NaN propagates: a NaN input wins and stays.
                        if best.0 == usize::MAX
                            || xp[idx] > best.1
                            || xp[idx].is_nan() && !best.1.is_nan()
                        {
                            best = (idx, xp[idx]);
                        }
                    }
                    yp[i * wo + j] = best.1;
                    ap[i * wo + j] = best.0;
                }
            }
        });
    Ok((
        Array4::from_shape_vec((n, c, ho, wo), y).expect("shape"),
        Array4::from_shape_vec((n, c, ho, wo), arg).expect("shape"),
    ))
}

/// Max pool backward: routes each output gradient to its argmax.
pub fn max_pool2d_backward(
    x_dim: (usize, usize, usize, usize),
    argmax: &Array4<usize>,
    dy: &Array4<f32>,
) -> Result<Array4<f32>> {
    let (n, c, h, w) = x_dim;
    if argmax.dim() != dy.dim() || dy.dim().0 != n || dy.dim().1 != c {
        return Err(Error::input(
            "max_pool2d_backward dy",
            format!(
                "gradient shape {:?}, argmax {:?}, input {:?} do not fit",
                dy.dim(),
                argmax.dim(),
                x_dim
            ),
        ));
    }
    let mut dx = Array4::<f32>::zeros(x_dim);
    for (((ni, ci, i, j), &g), &idx) in dy.indexed_iter().zip(argmax.iter()) {
        if idx >= h * w {
            return Err(Error::input(
                "max_pool2d_backward argmax",
                format!(
                    "index {idx} at {:?} outside the input plane",
                    (ni, ci, i, j)
                ),
            ));
        }
        dx[[ni, ci, idx / w, idx % w]] += g;
    }
    Ok(dx)
}

/// Average pool forward (`count_include_pad = true`).
pub fn avg_pool2d(x: &Array4<f32>, k: usize, stride: usize, pad: usize) -> Result<Array4<f32>> {
    let (n, c, h, w) = x.dim();
    let (ho, wo) = out_dims("avg_pool2d", x.dim(), k, stride, pad)?;
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let inv = 1.0 / (k * k) as f32;
    let mut y = vec![0.0f32; n * c * ho * wo];
    y.par_chunks_mut(ho * wo)
        .zip(xs.par_chunks(h * w))
        .for_each(|(yp, xp)| {
            for i in 0..ho {
                for j in 0..wo {
                    yp[i * wo + j] = window(h, w, k, stride, pad, i, j)
                        .map(|idx| xp[idx])
                        .sum::<f32>()
                        * inv;
                }
            }
        });
    Ok(Array4::from_shape_vec((n, c, ho, wo), y).expect("shape"))
}

/// Average pool backward.
pub fn avg_pool2d_backward(
    x_dim: (usize, usize, usize, usize),
    k: usize,
    stride: usize,
    pad: usize,
    dy: &Array4<f32>,
) -> Result<Array4<f32>> {
    let (n, c, h, w) = x_dim;
    let (ho, wo) = out_dims("avg_pool2d_backward", x_dim, k, stride, pad)?;
    if dy.dim() != (n, c, ho, wo) {
        return Err(Error::input(
            "avg_pool2d_backward dy",
            format!(
                "gradient shape {:?}, expected {:?}",
                dy.dim(),
                (n, c, ho, wo)
            ),
        ));
    }
    let inv = 1.0 / (k * k) as f32;
    let mut dx = Array4::<f32>::zeros(x_dim);
    for ((ni, ci, i, j), &g) in dy.indexed_iter() {
        for idx in window(h, w, k, stride, pad, i, j) {
            dx[[ni, ci, idx / w, idx % w]] += g * inv;
        }
    }
    Ok(dx)
}

/// Global average pool: `[N,C,H,W] -> [N,C]` (mean over each plane, accumulated in f64).
pub fn global_avg_pool(x: &Array4<f32>) -> Result<Array2<f32>> {
    let (n, c, h, w) = x.dim();
    if h * w == 0 {
        return Err(Error::input(
            "global_avg_pool input",
            format!("empty spatial size in {:?}", x.dim()),
        ));
    }
    let mut y = Array2::<f32>::zeros((n, c));
    for ((ni, ci), v) in y.indexed_iter_mut() {
        let plane = x.index_axis(Axis(0), ni);
        let plane = plane.index_axis(Axis(0), ci);
        *v = (plane.iter().map(|&e| e as f64).sum::<f64>() / (h * w) as f64) as f32;
    }
    Ok(y)
}

/// [`global_avg_pool`] of an NHWC map `[N, H, W, C]`, bit-identical to it: each channel's
/// `f64` sum takes the same additions in the same pixel order from the same start (the
/// neutral element `Iterator::sum` starts from), only all channels advance together, so the
/// adds are independent across channels instead of one dependent chain per plane.
pub fn global_avg_pool_nhwc(x: &Array4<f32>) -> Result<Array2<f32>> {
    let (n, h, w, c) = x.dim();
    if h * w == 0 {
        return Err(Error::input(
            "global_avg_pool input",
            format!("empty spatial size in {:?}", (n, c, h, w)),
        ));
    }
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let start = std::iter::empty::<f64>().sum::<f64>();
    let mut y = Array2::<f32>::zeros((n, c));
    let mut acc = vec![start; c];
    for (img, mut row) in xs.chunks_exact(h * w * c).zip(y.rows_mut()) {
        acc.fill(start);
        for px in img.chunks_exact(c) {
            for (a, &v) in acc.iter_mut().zip(px) {
                *a += v as f64;
            }
        }
        for (d, &a) in row.iter_mut().zip(&acc) {
            *d = (a / (h * w) as f64) as f32;
        }
    }
    Ok(y)
}

/// Global average pool backward: spreads `dy[n,c] / (H*W)` over the plane.
pub fn global_avg_pool_backward(
    x_dim: (usize, usize, usize, usize),
    dy: &Array2<f32>,
) -> Result<Array4<f32>> {
    let (n, c, h, w) = x_dim;
    if dy.dim() != (n, c) {
        return Err(Error::input(
            "global_avg_pool_backward dy",
            format!("gradient shape {:?}, expected {:?}", dy.dim(), (n, c)),
        ));
    }
    let inv = 1.0 / (h * w) as f32;
    Ok(Array4::from_shape_fn(x_dim, |(ni, ci, _, _)| {
        dy[[ni, ci]] * inv
    }))
}

//! Batch normalisation over the channel axis of NCHW tensors: inference with running
//! statistics, training with batch statistics, both backward passes, the running-statistics
//! update and the per-channel fold.
//!
//! Conventions (as PyTorch `BatchNorm2d`): `y = gamma * (x - mu) / sqrt(var + eps) + beta`.
//! Training normalises with the *biased* batch variance (divide by M = N*H*W) but feeds the
//! *unbiased* one (divide by M-1) into the running variance; the update is
//! `running = (1 - momentum) * running + momentum * batch` (PyTorch's momentum, default 0.1).
//! Statistics are accumulated in f64.

use crate::{Error, Result};
use ndarray::{Array1, Array4, Axis};
use rayon::prelude::*;

fn check_param(field: &str, p: &Array1<f32>, c: usize) -> Result<()> {
    if p.len() != c {
        return Err(Error::input(
            format!("batch_norm {field}"),
            format!("has {} entries, input has {c} channels", p.len()),
        ));
    }
    Ok(())
}

fn check_dy(op: &str, x: &Array4<f32>, dy: &Array4<f32>) -> Result<()> {
    if x.dim() != dy.dim() {
        return Err(Error::input(
            format!("{op} dy"),
            format!(
                "gradient shape {:?} differs from input shape {:?}",
                dy.dim(),
                x.dim()
            ),
        ));
    }
    Ok(())
}

/// Per-channel `(scale, shift)` with `BN(x) = scale * x + shift`:
/// `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`.
/// Errors if `var + eps` is not positive (corrupt running statistics).
pub fn fold(
    gamma: &Array1<f32>,
    beta: &Array1<f32>,
    mean: &Array1<f32>,
    var: &Array1<f32>,
    eps: f32,
) -> Result<(Array1<f32>, Array1<f32>)> {
    let c = gamma.len();
    check_param("beta", beta, c)?;
    check_param("running_mean", mean, c)?;
    check_param("running_var", var, c)?;
    if let Some(i) = var.iter().position(|&v| {
        let s = v as f64 + eps as f64;
        s.is_nan() || s <= 0.0
    }) {
        return Err(Error::input(
            "batch_norm running_var",
            format!("channel {i}: var + eps = {} is not positive", var[i] + eps),
        ));
    }
    let scale: Array1<f32> = gamma
        .iter()
        .zip(var)
        .map(|(&g, &v)| (g as f64 / (v as f64 + eps as f64).sqrt()) as f32)
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((&b, &m), &s)| b - m * s)
        .collect();
    Ok((scale, shift))
}

/// `y[n,c] = scale[c] * x[n,c] + shift[c]`, parallel over the batch.
pub fn scale_shift(
    x: &Array4<f32>,
    scale: &Array1<f32>,
    shift: &Array1<f32>,
) -> Result<Array4<f32>> {
    check_param("scale", scale, x.dim().1)?;
    check_param("shift", shift, x.dim().1)?;
    let xs = x.as_standard_layout();
    let (scale, shift) = (scale.to_vec(), shift.to_vec());
    Ok(affine_map(
        xs.as_slice().expect("standard layout"),
        &[],
        x.dim(),
        &scale,
        &[],
        &shift,
        &[],
    ))
}

/// Inference-mode forward with running statistics.
pub fn batch_norm_inference(
    x: &Array4<f32>,
    gamma: &Array1<f32>,
    beta: &Array1<f32>,
    running_mean: &Array1<f32>,
    running_var: &Array1<f32>,
    eps: f32,
) -> Result<Array4<f32>> {
    check_param("weight", gamma, x.dim().1)?;
    let (scale, shift) = fold(gamma, beta, running_mean, running_var, eps)?;
    scale_shift(x, &scale, &shift)
}

/// f64 accumulator lanes per channel: the statistics of one channel are summed into
/// `LANES` independent partial sums (element `k` of each `H*W` plane into lane `k % LANES`)
/// that are then added in one fixed tree. The order depends only on the shape, so results do
/// not depend on the thread count, and the independent lanes vectorise (the single serial f64
/// sum this replaces was a third of a training step). 32 lanes are four AVX-512 f64 vectors per
/// sum, enough independent add chains to hide the add latency: with 8 (one vector) the sums
/// were latency-bound and took 9% of a float training step.
const LANES: usize = 32;

/// Adds `f(x_k[, dy_k])` of one plane into `acc` (see [`LANES`]).
#[inline(always)]
fn lanes_body(xs: &[f32], ds: &[f32], mean: f64, mode: u8, acc: &mut [[f64; LANES]; 2]) {
    let (xc, xr) = (xs.chunks_exact(LANES), xs.chunks_exact(LANES).remainder());
    match mode {
        // sum x
        0 => {
            for v in xc {
                for l in 0..LANES {
                    acc[0][l] += v[l] as f64;
                }
            }
            for (l, &v) in xr.iter().enumerate() {
                acc[0][l] += v as f64;
            }
        }
        // sum (x - mean)^2
        1 => {
            for v in xc {
                for l in 0..LANES {
                    let d = v[l] as f64 - mean;
                    acc[0][l] += d * d;
                }
            }
            for (l, &v) in xr.iter().enumerate() {
                let d = v as f64 - mean;
                acc[0][l] += d * d;
            }
        }
        // sum dy and sum dy * (x - mean)
        _ => {
            let dc = ds.chunks_exact(LANES);
            let dr = dc.remainder();
            for (v, d) in xc.zip(dc) {
                for l in 0..LANES {
                    acc[0][l] += d[l] as f64;
                    acc[1][l] += d[l] as f64 * (v[l] as f64 - mean);
                }
            }
            for (l, (&v, &d)) in xr.iter().zip(dr).enumerate() {
                acc[0][l] += d as f64;
                acc[1][l] += d as f64 * (v as f64 - mean);
            }
        }
    }
}

crate::engine::cpu::vectorized!(
    /// [`lanes_body`] compiled for the vector level of `isa`.
    fn lanes_at(xs: &[f32], ds: &[f32], mean: f64, mode: u8, acc: &mut [[f64; LANES]; 2]) = lanes_body;
);

/// The fixed reduction of one channel's lanes: a pairwise tree (lane `i` with lane
/// `i + width/2`, halving the width each round).
fn reduce(a: &[f64; LANES]) -> f64 {
    let mut v = *a;
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            v[i] += v[i + width];
        }
    }
    v[0]
}

/// Per channel of `x` (and `dy`): with `mode` 0 the sum of `x`, 1 the sum of `(x - mean[c])^2`,
/// 2 the sums of `dy` and of `dy * (x - mean[c])`. Parallel over channels; each channel in the
/// fixed order of [`LANES`].
fn channel_sums(
    x: &[f32],
    dy: &[f32],
    dims: (usize, usize, usize, usize),
    mean: &[f64],
    mode: u8,
) -> Vec<[f64; 2]> {
    let (n, c, h, w) = dims;
    let hw = h * w;
    let isa = crate::engine::cpu::isa();
    (0..c)
        .into_par_iter()
        .map(|ci| {
            let mut acc = [[0.0f64; LANES]; 2];
            let m = mean.get(ci).copied().unwrap_or(0.0);
            for ni in 0..n {
                let at = (ni * c + ci) * hw;
                let ds = if dy.is_empty() {
                    &[][..]
                } else {
                    &dy[at..at + hw]
                };
                lanes_at(isa, &x[at..at + hw], ds, m, mode, &mut acc);
            }
            [reduce(&acc[0]), reduce(&acc[1])]
        })
        .collect()
}

/// `y = a[c] * u + b[c] * (v - m[c]) + k[c]` per element over NCHW, in f32, parallel over the
/// batch (`v` may be empty: then `y = a[c] * u + k[c]`).
fn affine_map(
    u: &[f32],
    v: &[f32],
    dims: (usize, usize, usize, usize),
    a: &[f32],
    b: &[f32],
    k: &[f32],
    m: &[f32],
) -> Array4<f32> {
    let (_, c, h, w) = dims;
    let hw = h * w;
    let mut y = vec![0.0f32; u.len()];
    let isa = crate::engine::cpu::isa();
    if hw > 0 && c > 0 {
        y.par_chunks_mut(c * hw).enumerate().for_each(|(ni, yn)| {
            for (ci, yp) in yn.chunks_mut(hw).enumerate() {
                let at = (ni * c + ci) * hw;
                let vp = if v.is_empty() {
                    &[][..]
                } else {
                    &v[at..at + hw]
                };
                let (bc, mc) = (b.get(ci).copied(), m.get(ci).copied());
                let (bc, mc) = (bc.unwrap_or(0.0), mc.unwrap_or(0.0));
                affine_at(isa, yp, &u[at..at + hw], vp, [a[ci], bc, k[ci], mc]);
            }
        });
    }
    Array4::from_shape_vec(dims, y).expect("shape")
}

#[inline(always)]
fn affine_body(y: &mut [f32], u: &[f32], v: &[f32], abkm: [f32; 4]) {
    let [a, b, k, m] = abkm;
    if v.is_empty() {
        for (o, &x) in y.iter_mut().zip(u) {
            *o = a * x + k;
        }
    } else {
        for ((o, &x), &z) in y.iter_mut().zip(u).zip(v) {
            *o = a * x + b * (z - m) + k;
        }
    }
}

crate::engine::cpu::vectorized!(
    /// [`affine_body`] compiled for the vector level of `isa`.
    fn affine_at(y: &mut [f32], u: &[f32], v: &[f32], abkm: [f32; 4]) = affine_body;
);

/// Inference-mode backward: running statistics are constants, so BN is affine per channel.
/// Returns `(dx, dgamma, dbeta)`.
pub fn batch_norm_inference_backward(
    x: &Array4<f32>,
    gamma: &Array1<f32>,
    running_mean: &Array1<f32>,
    running_var: &Array1<f32>,
    eps: f32,
    dy: &Array4<f32>,
) -> Result<(Array4<f32>, Array1<f32>, Array1<f32>)> {
    check_dy("batch_norm_inference_backward", x, dy)?;
    check_param("weight", gamma, x.dim().1)?;
    let zeros = Array1::zeros(gamma.len());
    let (scale, _) = fold(gamma, &zeros, running_mean, running_var, eps)?;
    let x = x.as_standard_layout();
    let dy = dy.as_standard_layout();
    let (xs, ds) = (
        x.as_slice().expect("standard layout"),
        dy.as_slice().expect("standard layout"),
    );
    let mean: Vec<f64> = running_mean.iter().map(|&m| m as f64).collect();
    let sums = channel_sums(xs, ds, x.dim(), &mean, 2);
    let inv_std = running_var
        .iter()
        .map(|&v| 1.0 / (v as f64 + eps as f64).sqrt());
    let dgamma: Vec<f64> = sums.iter().zip(inv_std).map(|(s, is)| s[1] * is).collect();
    let dbeta: Vec<f64> = sums.iter().map(|s| s[0]).collect();
    let dx = affine_map(
        ds,
        &[],
        x.dim(),
        scale.as_slice().expect("1-D"),
        &[],
        &vec![0.0; scale.len()],
        &[],
    );
    Ok((dx, to_f32(dgamma), to_f32(dbeta)))
}

fn to_f32(v: Vec<f64>) -> Array1<f32> {
    v.into_iter().map(|x| x as f32).collect()
}

/// Batch statistics of one training-mode forward pass, kept for the backward pass and the
/// running-statistics update.
#[derive(Clone, Debug, PartialEq)]
pub struct BnBatchStats {
    /// Per-channel batch mean.
    pub mean: Array1<f32>,
    /// Per-channel biased batch variance (the one used to normalise).
    pub var: Array1<f32>,
    /// Per-channel unbiased batch variance (the one fed to the running variance).
    pub var_unbiased: Array1<f32>,
    /// `1 / sqrt(var + eps)`.
    pub inv_std: Array1<f32>,
}

impl BnBatchStats {
    /// PyTorch's update: `running = (1 - momentum) * running + momentum * batch`, with the
    /// unbiased batch variance.
    pub fn update_running(
        &self,
        running_mean: &mut Array1<f32>,
        running_var: &mut Array1<f32>,
        momentum: f32,
    ) -> Result<()> {
        check_param("running_mean", running_mean, self.mean.len())?;
        check_param("running_var", running_var, self.mean.len())?;
        for c in 0..self.mean.len() {
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * self.mean[c];
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * self.var_unbiased[c];
        }
        Ok(())
    }
}

/// Training-mode forward: normalises with the batch statistics. Needs at least two values
/// per channel (N*H*W >= 2), as PyTorch.
pub fn batch_norm_train(
    x: &Array4<f32>,
    gamma: &Array1<f32>,
    beta: &Array1<f32>,
    eps: f32,
) -> Result<(Array4<f32>, BnBatchStats)> {
    let (n, c, h, w) = x.dim();
    check_param("weight", gamma, c)?;
    check_param("bias", beta, c)?;
    let m = n * h * w;
    if m < 2 {
        return Err(Error::input(
            "batch_norm_train input",
            format!(
                "needs more than one value per channel, got shape {:?}",
                x.dim()
            ),
        ));
    }
    let xv = x.as_standard_layout();
    let xs = xv.as_slice().expect("standard layout");
    let mean: Vec<f64> = channel_sums(xs, &[], x.dim(), &[], 0)
        .iter()
        .map(|s| s[0] / m as f64)
        .collect();
    let ssd: Vec<f64> = channel_sums(xs, &[], x.dim(), &mean, 1)
        .iter()
        .map(|s| s[0])
        .collect();
    let var: Vec<f64> = ssd.iter().map(|s| s / m as f64).collect();
    let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps as f64).sqrt()).collect();
    let scale: Vec<f32> = (0..c)
        .map(|i| (gamma[i] as f64 * inv_std[i]) as f32)
        .collect();
    let shift: Vec<f32> = (0..c)
        .map(|i| (beta[i] as f64 - mean[i] * gamma[i] as f64 * inv_std[i]) as f32)
        .collect();
    let y = affine_map(xs, &[], x.dim(), &scale, &[], &shift, &[]);
    let stats = BnBatchStats {
        mean: mean.iter().map(|&v| v as f32).collect(),
        var: var.iter().map(|&v| v as f32).collect(),
        var_unbiased: ssd.iter().map(|s| (s / (m - 1) as f64) as f32).collect(),
        inv_std: inv_std.iter().map(|&v| v as f32).collect(),
    };
    Ok((y, stats))
}

/// Training-mode backward through the batch statistics. With `xh = (x - mean) * inv_std` and
/// `g = dy * gamma`: `dx = inv_std * (g - mean(g) - xh * mean(g * xh))` (means over N,H,W),
/// `dgamma = sum(dy * xh)`, `dbeta = sum(dy)`.
pub fn batch_norm_train_backward(
    x: &Array4<f32>,
    gamma: &Array1<f32>,
    stats: &BnBatchStats,
    dy: &Array4<f32>,
) -> Result<(Array4<f32>, Array1<f32>, Array1<f32>)> {
    check_dy("batch_norm_train_backward", x, dy)?;
    let (n, c, h, w) = x.dim();
    check_param("weight", gamma, c)?;
    check_param("batch mean", &stats.mean, c)?;
    let m = (n * h * w) as f64;
    let xv = x.as_standard_layout();
    let dv = dy.as_standard_layout();
    let (xs, ds) = (
        xv.as_slice().expect("standard layout"),
        dv.as_slice().expect("standard layout"),
    );
    let mean: Vec<f64> = stats.mean.iter().map(|&v| v as f64).collect();
    let sums = channel_sums(xs, ds, x.dim(), &mean, 2);
    let dbeta: Vec<f64> = sums.iter().map(|s| s[0]).collect();
    let dgamma: Vec<f64> = sums
        .iter()
        .zip(&stats.inv_std)
        .map(|(s, &is)| s[1] * is as f64)
        .collect();
    // dx = is * (g * dy - mg - xh * mgx) with xh = (x - mean) * is: per channel the affine map
    // `a * dy + b * (x - mean) + k`, evaluated in f32.
    let (mut a, mut b, mut k) = (vec![0.0f32; c], vec![0.0f32; c], vec![0.0f32; c]);
    for ci in 0..c {
        let g = gamma[ci] as f64;
        let (mg, mgx) = (g * dbeta[ci] / m, g * dgamma[ci] / m);
        let is = stats.inv_std[ci] as f64;
        a[ci] = (is * g) as f32;
        b[ci] = (-is * is * mgx) as f32;
        k[ci] = (-is * mg) as f32;
    }
    let dx = affine_map(
        ds,
        xs,
        x.dim(),
        &a,
        &b,
        &k,
        stats.mean.as_slice().expect("1-D"),
    );
    Ok((dx, to_f32(dgamma), to_f32(dbeta)))
}

/// Folds an inference-mode BN that follows a convolution into the convolution:
/// `BN(conv(x, w) + b) = conv(x, w * scale[o]) + (b * scale + shift)`, with `(scale, shift)`
/// from [`fold`]. Returns the new weight and bias.
pub fn fold_into_conv(
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
    scale: &Array1<f32>,
    shift: &Array1<f32>,
) -> Result<(Array4<f32>, Array1<f32>)> {
    let o = w.dim().0;
    check_param("scale", scale, o)?;
    check_param("shift", shift, o)?;
    if let Some(b) = b {
        check_param("conv bias", b, o)?;
    }
    let mut wf = w.to_owned();
    for (mut f, &s) in wf.axis_iter_mut(Axis(0)).zip(scale) {
        f.mapv_inplace(|v| v * s);
    }
    let bf = (0..o)
        .map(|i| b.map_or(0.0, |b| b[i]) * scale[i] + shift[i])
        .collect();
    Ok((wf, bf))
}

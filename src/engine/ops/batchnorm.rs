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
    let mut y = x.to_owned();
    y.axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each(|mut img| {
            for (c, mut plane) in img.axis_iter_mut(Axis(0)).enumerate() {
                let (s, t) = (scale[c], shift[c]);
                plane.mapv_inplace(|v| s * v + t);
            }
        });
    Ok(y)
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

/// Per-channel sums over N, H, W of `f(c, x, dy)` in f64.
fn channel_sums(
    x: &Array4<f32>,
    dy: Option<&Array4<f32>>,
    f: impl Fn(usize, f32, f32) -> f64,
) -> Vec<f64> {
    let c = x.dim().1;
    let mut acc = vec![0.0f64; c];
    for (ci, a) in acc.iter_mut().enumerate() {
        let xs = x.index_axis(Axis(1), ci);
        match dy {
            Some(dy) => {
                let ds = dy.index_axis(Axis(1), ci);
                for (&xv, &dv) in xs.iter().zip(ds.iter()) {
                    *a += f(ci, xv, dv);
                }
            }
            None => {
                for &xv in xs.iter() {
                    *a += f(ci, xv, 0.0);
                }
            }
        }
    }
    acc
}

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
    let inv_std: Vec<f64> = running_var
        .iter()
        .map(|&v| 1.0 / (v as f64 + eps as f64).sqrt())
        .collect();
    let dgamma = channel_sums(x, Some(dy), |c, xv, d| {
        d as f64 * (xv as f64 - running_mean[c] as f64) * inv_std[c]
    });
    let dbeta = channel_sums(x, Some(dy), |_, _, d| d as f64);
    let dx = scale_shift(dy, &scale, &zeros)?;
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
    let mean = channel_sums(x, None, |_, v, _| v as f64)
        .into_iter()
        .map(|s| s / m as f64)
        .collect::<Vec<_>>();
    let ssd = channel_sums(x, None, |ci, v, _| (v as f64 - mean[ci]).powi(2));
    let var: Vec<f64> = ssd.iter().map(|s| s / m as f64).collect();
    let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps as f64).sqrt()).collect();
    let scale: Array1<f32> = (0..c)
        .map(|i| (gamma[i] as f64 * inv_std[i]) as f32)
        .collect();
    let shift: Array1<f32> = (0..c)
        .map(|i| (beta[i] as f64 - mean[i] * gamma[i] as f64 * inv_std[i]) as f32)
        .collect();
    let y = scale_shift(x, &scale, &shift)?;
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
    let xh = |ci: usize, v: f32| (v as f64 - stats.mean[ci] as f64) * stats.inv_std[ci] as f64;
    let dbeta = channel_sums(x, Some(dy), |_, _, d| d as f64);
    let dgamma = channel_sums(x, Some(dy), |ci, v, d| d as f64 * xh(ci, v));
    let mut dx = Array4::<f32>::zeros(x.dim());
    for ci in 0..c {
        let g = gamma[ci] as f64;
        let (mg, mgx) = (g * dbeta[ci] / m, g * dgamma[ci] / m);
        let is = stats.inv_std[ci] as f64;
        let xs = x.index_axis(Axis(1), ci);
        let ds = dy.index_axis(Axis(1), ci);
        let mut out = dx.index_axis_mut(Axis(1), ci);
        ndarray::Zip::from(&mut out)
            .and(&xs)
            .and(&ds)
            .for_each(|o, &v, &d| {
                *o = (is * (g * d as f64 - mg - xh(ci, v) * mgx)) as f32;
            });
    }
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

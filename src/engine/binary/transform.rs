//! Output transforms: integer +/-1 accumulators to scaled `f32`, on the channel axis (axis 1) of
//! NCHW conv outputs `[N][O][OH][OW]` or linear outputs `[N][O]`.
//!
//! - XNOR-Net: `y[n][o] = alpha[o] * acc[n][o]`, alpha = mean |W| of filter `o` (computed by the
//!   caller from the latent float weights).
//! - ABC-Net: `y = sum_i sum_j (alpha_i * beta_j) * acc_ij`, with `acc_ij` the binary conv of
//!   activation base `j` with weight base `i` (`i < M`, `j < N`), given in the order
//!   `accs[i * N + j]`. The f32 sum runs in that order (i outer, j inner), each term formed as
//!   `(alpha_i * beta_j) * (acc as f32)`, so a float reference using the same order matches
//!   bit for bit; `acc as f32` is exact for |acc| <= 2^24, i.e. any K up to 16.7M.

use ndarray::{Array, Axis, Dimension, RemoveAxis, Zip};

use crate::{Error, Result};

fn channels<D: Dimension>(acc: &Array<i32, D>, context: &str) -> Result<usize> {
    if acc.ndim() < 2 {
        return Err(Error::input(
            context,
            format!(
                "accumulators have {} axes, need at least 2 (N, O, ...)",
                acc.ndim()
            ),
        ));
    }
    Ok(acc.len_of(Axis(1)))
}

fn check_finite(context: &str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::input(
            context,
            format!("value {} at {i} is not finite", v[i]),
        )),
        None => Ok(()),
    }
}

/// XNOR-Net output transform: `alpha[o] * acc` per output channel (axis 1).
pub fn scale_per_channel<D: RemoveAxis>(
    acc: &Array<i32, D>,
    alpha: &[f32],
) -> Result<Array<f32, D>> {
    let o = channels(acc, "xnor accumulators")?;
    if alpha.len() != o {
        return Err(Error::input(
            "xnor alpha",
            format!("{} scales for {o} output channels", alpha.len()),
        ));
    }
    check_finite("xnor alpha", alpha)?;
    let mut out = acc.mapv(|v| v as f32);
    for (mut lane, &a) in out.axis_iter_mut(Axis(1)).zip(alpha) {
        lane.mapv_inplace(|v| a * v);
    }
    Ok(out)
}

/// ABC-Net output transform: combines `M * N` accumulators (`accs[i * N + j]`) with weight-base
/// scales `alphas` (len M) and activation-base scales `betas` (len N).
pub fn combine_bases<D: Dimension>(
    accs: &[Array<i32, D>],
    alphas: &[f32],
    betas: &[f32],
) -> Result<Array<f32, D>> {
    let (m, n) = (alphas.len(), betas.len());
    if m == 0 || n == 0 {
        return Err(Error::input(
            "abc bases",
            "need at least one weight and one activation base",
        ));
    }
    if accs.len() != m * n {
        return Err(Error::input(
            "abc accumulators",
            format!(
                "{} accumulators for {m} weight x {n} activation bases",
                accs.len()
            ),
        ));
    }
    check_finite("abc alphas", alphas)?;
    check_finite("abc betas", betas)?;
    let shape = accs[0].raw_dim();
    if let Some(k) = accs.iter().position(|a| a.raw_dim() != shape) {
        return Err(Error::input(
            "abc accumulators",
            format!(
                "accumulator {k} has shape {:?}, expected {:?}",
                accs[k].shape(),
                accs[0].shape()
            ),
        ));
    }
    let mut out = Array::<f32, D>::zeros(shape);
    for (i, &a) in alphas.iter().enumerate() {
        for (j, &b) in betas.iter().enumerate() {
            let s = a * b;
            Zip::from(&mut out)
                .and(&accs[i * n + j])
                .for_each(|y, &v| *y += s * v as f32);
        }
    }
    Ok(out)
}

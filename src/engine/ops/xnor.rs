//! XNOR-Net weight binarization (Rastegari et al., ECCV 2016) and its backward pass.
//!
//! Forward, per output filter `o` (axis 0 of the weight; the filter is everything else, so
//! conv `[O,C,K,K]` and linear `[O,I]` weights both work) with `n` weights per filter:
//! `alpha_o = mean_i |W_oi|`, `B_oi = sign(W_oi)` (sign(0) = +1), `Wb_oi = alpha_o * B_oi`.
//!
//! Backward. Differentiating `Wb_oj = alpha_o sign(W_oj)` w.r.t. `W_oi`:
//! `dL/dW_oi = sum_j dWb_oj * (sign(W_oj) * d alpha_o / dW_oi + alpha_o * d sign(W_oj)/dW_oi)`
//! with `d alpha_o / dW_oi = sign(W_oi) / n` and `d sign(W_oj)/dW_oi = [i = j] * 1{|W_oi| <= 1}`
//! (the clipped straight-through estimator; the true derivative is 0 a.e.). Hence
//! - `through_alpha_oi = sign(W_oi) / n * sum_j dWb_oj sign(W_oj)` — the exact gradient of the
//!   forward pass away from the sign discontinuities, and
//! - `ste_oi = alpha_o * 1{|W_oi| <= 1} * dWb_oi`,
//!
//! and `total = through_alpha + ste`. The XNOR-Net reference code keeps only the `j = i` term of
//! the alpha path, `dW = dWb * (1/n + alpha * 1{|W| <= 1})`; we keep the full sum, which is
//! what finite differences of the forward pass measure.

use super::activation::sign_scalar;
use crate::{Error, Result};
use ndarray::{Array, Array1, Dimension};

/// Binarized weights: the +/-1 tensor and per-filter scales separately (for the bit-exact
/// engine), and their product (for the float engine).
#[derive(Clone, Debug, PartialEq)]
pub struct XnorWeights<D: Dimension> {
    /// `sign(W)` as +/-1 f32, same shape as `W`.
    pub binary: Array<f32, D>,
    /// `alpha_o = mean |W_o|`, one per output filter.
    pub alpha: Array1<f32>,
    /// `alpha_o * sign(W_o)`.
    pub approx: Array<f32, D>,
}

/// Gradient of the loss w.r.t. the latent float weights, split by path (see module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct XnorWeightGrad<D: Dimension> {
    pub through_alpha: Array<f32, D>,
    pub ste: Array<f32, D>,
    pub total: Array<f32, D>,
}

fn filters<D: Dimension>(w: &Array<f32, D>, field: &str) -> Result<(usize, usize)> {
    let o = w.shape().first().copied().unwrap_or(0);
    if w.ndim() < 2 || o == 0 || w.is_empty() {
        return Err(Error::input(
            field,
            format!("weight shape {:?} has no filters to binarize", w.shape()),
        ));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::input(
            field,
            format!("weight element {i} is not finite"),
        ));
    }
    Ok((o, w.len() / o))
}

/// Binarizes `w` per output filter. Errors on an empty or non-finite weight.
pub fn xnor_binarize<D: Dimension>(w: &Array<f32, D>) -> Result<XnorWeights<D>> {
    let (o, n) = filters(w, "xnor weight")?;
    let ws = w.as_standard_layout();
    let ws = ws.as_slice().expect("standard layout");
    let alpha: Array1<f32> = ws
        .chunks(n)
        .map(|f| (f.iter().map(|v| v.abs() as f64).sum::<f64>() / n as f64) as f32)
        .collect();
    debug_assert_eq!(alpha.len(), o);
    let binary = w.mapv(sign_scalar);
    let mut approx = binary.as_standard_layout().into_owned();
    approx
        .as_slice_mut()
        .expect("standard layout")
        .chunks_mut(n)
        .zip(alpha.iter())
        .for_each(|(f, &a)| f.iter_mut().for_each(|v| *v *= a));
    Ok(XnorWeights {
        binary,
        alpha,
        approx,
    })
}

/// Backward of [`xnor_binarize`]: `dwb` is dL/d(approx). See the module doc for the formula.
pub fn xnor_binarize_backward<D: Dimension>(
    w: &Array<f32, D>,
    dwb: &Array<f32, D>,
) -> Result<XnorWeightGrad<D>> {
    if w.shape() != dwb.shape() {
        return Err(Error::input(
            "xnor_binarize_backward dwb",
            format!(
                "gradient shape {:?} differs from weight shape {:?}",
                dwb.shape(),
                w.shape()
            ),
        ));
    }
    let (_, n) = filters(w, "xnor weight")?;
    let ws = w.as_standard_layout();
    let ws = ws.as_slice().expect("standard layout");
    let gs = dwb.as_standard_layout();
    let gs = gs.as_slice().expect("standard layout");
    let mut through = Vec::with_capacity(ws.len());
    let mut ste = Vec::with_capacity(ws.len());
    for (wf, gf) in ws.chunks(n).zip(gs.chunks(n)) {
        let alpha = wf.iter().map(|v| v.abs() as f64).sum::<f64>() / n as f64;
        let proj: f64 = wf
            .iter()
            .zip(gf)
            .map(|(&w, &g)| g as f64 * sign_scalar(w) as f64)
            .sum();
        for (&w, &g) in wf.iter().zip(gf) {
            through.push((sign_scalar(w) as f64 * proj / n as f64) as f32);
            ste.push(if w.abs() <= 1.0 {
                (alpha * g as f64) as f32
            } else {
                0.0
            });
        }
    }
    let shape = w.raw_dim();
    let through_alpha = Array::from_shape_vec(shape.clone(), through).expect("shape");
    let ste = Array::from_shape_vec(shape, ste).expect("shape");
    let total = &through_alpha + &ste;
    Ok(XnorWeightGrad {
        through_alpha,
        ste,
        total,
    })
}

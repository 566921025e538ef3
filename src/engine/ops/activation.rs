//! Element-wise activations and their backward passes: ReLU, hardtanh (clip to [-1, 1]) and
//! sign with the straight-through estimator.
//!
//! Conventions: `sign(x) = +1 for x >= 0, -1 otherwise` (sign(0) = +1, crate-wide).
//! At the kinks the subgradient is fixed as: relu'(0) = 0 (PyTorch), hardtanh'(+/-1) = 1
//! (the interval is closed), STE sign'(x) = 1 for |x| <= 1 (closed, as the clipped STE of
//! BinaryNet / larq's `ste_sign`). Work on any dimensionality.

use crate::{Error, Result};
use ndarray::{Array, Dimension, Zip};

fn same_shape<D: Dimension>(op: &str, x: &Array<f32, D>, dy: &Array<f32, D>) -> Result<()> {
    if x.shape() != dy.shape() {
        return Err(Error::input(
            format!("{op} dy"),
            format!(
                "gradient shape {:?} differs from input shape {:?}",
                dy.shape(),
                x.shape()
            ),
        ));
    }
    Ok(())
}

/// Applies `f'(x) * dy` element-wise after checking shapes.
fn masked<D: Dimension>(
    op: &str,
    x: &Array<f32, D>,
    dy: &Array<f32, D>,
    pass: impl Fn(f32) -> bool + Sync,
) -> Result<Array<f32, D>> {
    same_shape(op, x, dy)?;
    Ok(Zip::from(x)
        .and(dy)
        .par_map_collect(|&x, &g| if pass(x) { g } else { 0.0 }))
}

/// `max(x, 0)`.
pub fn relu<D: Dimension>(x: &Array<f32, D>) -> Array<f32, D> {
    x.mapv(|v| v.max(0.0))
}

/// `dy * 1[x > 0]`.
pub fn relu_backward<D: Dimension>(x: &Array<f32, D>, dy: &Array<f32, D>) -> Result<Array<f32, D>> {
    masked("relu_backward", x, dy, |v| v > 0.0)
}

/// `clip(x, -1, 1)`.
pub fn hardtanh<D: Dimension>(x: &Array<f32, D>) -> Array<f32, D> {
    x.mapv(|v| v.clamp(-1.0, 1.0))
}

/// `dy * 1[|x| <= 1]`.
pub fn hardtanh_backward<D: Dimension>(
    x: &Array<f32, D>,
    dy: &Array<f32, D>,
) -> Result<Array<f32, D>> {
    masked("hardtanh_backward", x, dy, |v| v.abs() <= 1.0)
}

/// The crate's sign: +1 for `v >= 0` (so sign(0) = +1, and also sign(-0.0) = +1), -1 otherwise.
/// NaN maps to -1; callers that must reject NaN check before binarizing.
#[inline]
pub fn sign_scalar(v: f32) -> f32 {
    if v >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// Element-wise sign as +/-1 f32.
pub fn sign<D: Dimension>(x: &Array<f32, D>) -> Array<f32, D> {
    x.mapv(sign_scalar)
}

/// Straight-through estimator of sign: `dy * 1[|x| <= 1]`.
pub fn sign_ste_backward<D: Dimension>(
    x: &Array<f32, D>,
    dy: &Array<f32, D>,
) -> Result<Array<f32, D>> {
    masked("sign_ste_backward", x, dy, |v| v.abs() <= 1.0)
}

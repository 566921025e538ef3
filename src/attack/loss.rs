//! Single-image helpers shared by the white-box attacks: logits, cross-entropy (natural log,
//! mean over nothing — one image) and its input gradient through [`WhiteBox::input_vjp`].
//!
//! Images here are one CHW unit-scale array; the batch axis of the [`Model`] traits is added and
//! removed locally, so attacks can be parallel over images without sharing batches.

use ndarray::{Array2, Array3, ArrayView3, Axis};

use super::classifier::{Model, WhiteBox};

/// Logits of one image.
pub fn logits(model: &dyn Model, x: ArrayView3<f32>) -> Vec<f32> {
    let xb = x.insert_axis(Axis(0)).to_owned();
    model.logits(&xb).row(0).to_vec()
}

/// `d/dx sum_k dlogits[k] * logits(x)[k]` for one image.
pub fn vjp(model: &dyn WhiteBox, x: ArrayView3<f32>, dlogits: &[f32]) -> Array3<f32> {
    let xb = x.insert_axis(Axis(0)).to_owned();
    let d =
        Array2::from_shape_vec((1, dlogits.len()), dlogits.to_vec()).expect("one row of logits");
    model.input_vjp(&xb, &d).index_axis_move(Axis(0), 0)
}

/// Numerically stable softmax.
pub fn softmax(z: &[f32]) -> Vec<f32> {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = z.iter().map(|&v| ((v - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// Cross-entropy `logsumexp(z) - z[label]` (natural log).
pub fn cross_entropy(z: &[f32], label: usize) -> f32 {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = m + z.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    (lse - z[label] as f64) as f32
}

/// Gradient of [`cross_entropy`] with respect to the logits: `softmax(z) - onehot(label)`.
pub fn cross_entropy_grad(z: &[f32], label: usize) -> Vec<f32> {
    let mut p = softmax(z);
    p[label] -= 1.0;
    p
}

/// Logits, cross-entropy w.r.t. `label` and its input gradient at `x`.
pub fn ce_with_grad(
    model: &dyn WhiteBox,
    x: ArrayView3<f32>,
    label: usize,
) -> (Vec<f32>, f32, Array3<f32>) {
    let z = logits(model, x);
    let loss = cross_entropy(&z, label);
    let g = vjp(model, x, &cross_entropy_grad(&z, label));
    (z, loss, g)
}

pub use super::classifier::argmax;

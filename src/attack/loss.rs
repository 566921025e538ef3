//! Loss helpers shared by the white-box attacks: per-image logits, cross-entropy (natural log,
//! one image, never a batch mean) and its gradient, and the batched cross-entropy input gradient
//! through [`WhiteBox::logits_and_vjps`] (one forward pass per gradient).

use ndarray::{Array2, Array4, ArrayView3, Axis};

use super::classifier::{Model, WhiteBox};

/// Logits of one image.
pub fn logits(model: &dyn Model, x: ArrayView3<f32>) -> Vec<f32> {
    let xb = x.insert_axis(Axis(0)).to_owned();
    model.logits(&xb).row(0).to_vec()
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

/// Logits of a batch and, for each image `n`, the input gradient of its cross-entropy towards
/// `towards[n]`, from one forward pass ([`WhiteBox::logits_and_vjps`]). Row `n` of the
/// cotangent depends only on image `n`'s logits.
pub fn ce_grads(
    model: &dyn WhiteBox,
    x: &Array4<f32>,
    towards: &[usize],
) -> (Array2<f32>, Array4<f32>) {
    let mut dce = |z: &Array2<f32>| {
        let mut d = Array2::<f32>::zeros(z.raw_dim());
        for (n, (zr, mut dr)) in z.outer_iter().zip(d.outer_iter_mut()).enumerate() {
            let zr = zr.to_vec();
            dr.assign(&ndarray::Array1::from(cross_entropy_grad(&zr, towards[n])));
        }
        vec![d]
    };
    let (z, mut g) = model.logits_and_vjps(x, &mut dce);
    (z, g.pop().expect("one cotangent, one gradient"))
}

/// Row `n` of a logits matrix as a vector.
pub fn row(z: &Array2<f32>, n: usize) -> Vec<f32> {
    z.row(n).to_vec()
}

pub use super::classifier::argmax;

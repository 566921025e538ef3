//! The two faces of a classifier: white-box ([`WhiteBox`]) and query-only ([`Oracle`]).

use ndarray::{Array2, Array4, Axis};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::Normalization;

/// Anything that maps a batch of unit-scale images (NCHW, values in \[0,1\]) to logits (N x classes).
/// Normalisation is applied inside the model.
pub trait Model: Send + Sync {
    /// (channels, height, width) of one image.
    fn input_shape(&self) -> [usize; 3];
    fn num_classes(&self) -> usize;
    /// The normalisation the model applies to unit-scale pixels (needed to convert budgets given
    /// in `normalized` scale).
    fn normalization(&self) -> Normalization;
    fn logits(&self, x: &Array4<f32>) -> Array2<f32>;
}

/// White-box access: the model plus vector-Jacobian products with respect to the input.
pub trait WhiteBox: Model {
    /// Returns `d/dx sum_{n,k} dlogits[n,k] * logits(x)[n,k]` (same shape as `x`, unit scale).
    /// For binarized variants the gradient flows through the straight-through estimator exactly
    /// as in training.
    fn input_vjp(&self, x: &Array4<f32>, dlogits: &Array2<f32>) -> Array4<f32>;

    /// One gradient step's worth of work from a single forward pass: the logits `z` of `x`, then
    /// `dlogits(&z)` names any number of cotangents (each N x classes, built from `z`), and the
    /// input gradient of each is returned, in order. An empty list skips the backward pass.
    ///
    /// Every row depends only on its own image: results do not depend on what else is in the
    /// batch. The default runs [`Model::logits`] and one [`WhiteBox::input_vjp`] per cotangent;
    /// an engine overrides it to run one taped forward and only backward passes after it.
    fn logits_and_vjps(
        &self,
        x: &Array4<f32>,
        dlogits: &mut dyn FnMut(&Array2<f32>) -> Vec<Array2<f32>>,
    ) -> (Array2<f32>, Vec<Array4<f32>>) {
        let z = self.logits(x);
        let grads = dlogits(&z).iter().map(|d| self.input_vjp(x, d)).collect();
        (z, grads)
    }
}

/// Query-only access to a model. The model is a private field: code outside this module can only
/// ask for probabilities or labels, and every image queried increments the counter.
pub struct Oracle<'a> {
    model: &'a dyn Model,
    queries: AtomicU64,
}

/// Runs `f(oracle, k)` for every image `k < n` in parallel, each with its own [`Oracle`] over
/// `model` (so each image's query count is its own), and returns the results in image order.
pub fn per_image_oracle<T: Send>(
    model: &dyn Model,
    n: usize,
    f: impl Fn(&Oracle, usize) -> crate::Result<T> + Sync,
) -> crate::Result<Vec<T>> {
    use rayon::prelude::*;
    (0..n)
        .into_par_iter()
        .map(|k| f(&Oracle::new(model), k))
        .collect()
}

impl<'a> Oracle<'a> {
    pub fn new(model: &'a dyn Model) -> Self {
        Oracle {
            model,
            queries: AtomicU64::new(0),
        }
    }

    pub fn input_shape(&self) -> [usize; 3] {
        self.model.input_shape()
    }

    pub fn num_classes(&self) -> usize {
        self.model.num_classes()
    }

    pub fn normalization(&self) -> Normalization {
        self.model.normalization()
    }

    /// Softmax probabilities for each image of the batch; counts `batch` queries.
    pub fn probs(&self, x: &Array4<f32>) -> Array2<f32> {
        self.queries
            .fetch_add(x.len_of(Axis(0)) as u64, Ordering::Relaxed);
        let mut z = self.model.logits(x);
        for mut row in z.rows_mut() {
            let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            row.mapv_inplace(|v| (v - m).exp());
            let s = row.sum();
            row.mapv_inplace(|v| v / s);
        }
        z
    }

    /// Top-1 label for each image of the batch; counts `batch` queries.
    pub fn top1(&self, x: &Array4<f32>) -> Vec<usize> {
        self.probs(x)
            .rows()
            .into_iter()
            .map(|r| argmax(r.as_slice().unwrap_or(&r.to_vec())))
            .collect()
    }

    /// Number of images queried so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

/// Index of the largest value (first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

//! Test fixtures: small classifiers with *analytic* input gradients, so attacks can be checked
//! against closed forms independently of the engines, and a counting wrapper.
//!
//! - [`LinearSoftmax`]: `logits = W n(x) + b` over the flattened image, where
//!   `n(x)[c] = (x[c] - mean[c]) / std[c]` (identity normalisation by default); its input
//!   gradient is constant, `d logit_k / dx[c,h,w] = W[k, (c,h,w)] / std[c]`.
//! - [`Mlp`]: one hidden ReLU layer (ReLU'(0) = 0), analytic backprop, and a tiny full-batch
//!   gradient-descent trainer so tests can train a network on data they make.
//! - [`Counting`]: forwards to a model and counts the images sent through forward passes and
//!   backward passes (gradient and forward budget checks).
//!
//! Compiled only for unit tests and with the `testing` feature (which the crate's
//! dev-dependency on itself turns on for integration tests and benches), so the `bbed` binary
//! does not contain them.

use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array1, Array2, Array4, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::classifier::{Model, WhiteBox};
use crate::model::Normalization;

/// `(x - mean) / std` per channel, flattened to `[N, C*H*W]` (what the reference models see).
pub fn flatten_normalized(x: &Array4<f32>, norm: &Normalization) -> Array2<f32> {
    let n = x.len_of(Axis(0));
    let mut y = x.clone();
    for (c, (m, s)) in norm.mean.iter().zip(&norm.std).enumerate() {
        y.index_axis_mut(Axis(1), c).mapv_inplace(|v| (v - m) / s);
    }
    let d = y.len() / n.max(1);
    y.into_shape_with_order((n, d)).expect("contiguous batch")
}

/// Undoes the normalisation in a gradient: `dx[c] = dn[c] / std[c]`.
fn unflatten_grad(g: Array2<f32>, shape: [usize; 3], norm: &Normalization) -> Array4<f32> {
    let n = g.nrows();
    let mut g = g
        .into_shape_with_order((n, shape[0], shape[1], shape[2]))
        .expect("gradient shape");
    for (c, s) in norm.std.iter().enumerate() {
        g.index_axis_mut(Axis(1), c).mapv_inplace(|v| v / s);
    }
    g
}

/// Linear softmax classifier (see the module doc).
#[derive(Clone, Debug)]
pub struct LinearSoftmax {
    pub shape: [usize; 3],
    /// classes x (C*H*W), row-major over (c, h, w).
    pub w: Array2<f32>,
    pub b: Array1<f32>,
    pub norm: Normalization,
}

impl LinearSoftmax {
    /// Weights ~ N(0, 1/sqrt(D)), biases ~ N(0, 0.1), identity normalisation.
    pub fn random(shape: [usize; 3], classes: usize, seed: u64) -> Self {
        let d = shape.iter().product::<usize>();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nw = Normal::new(0.0, 1.0 / (d as f32).sqrt()).expect("valid normal");
        let nb = Normal::new(0.0, 0.1).expect("valid normal");
        LinearSoftmax {
            shape,
            w: Array2::from_shape_fn((classes, d), |_| nw.sample(&mut rng)),
            b: Array1::from_shape_fn(classes, |_| nb.sample(&mut rng)),
            norm: Normalization::identity(shape[0]),
        }
    }

    /// Closed-form `d logit_k / dx` (unit scale), flattened over (c, h, w).
    pub fn logit_gradient(&self, k: usize) -> Vec<f32> {
        let hw = self.shape[1] * self.shape[2];
        self.w
            .row(k)
            .iter()
            .enumerate()
            .map(|(i, v)| v / self.norm.std[i / hw])
            .collect()
    }
}

impl Model for LinearSoftmax {
    fn input_shape(&self) -> [usize; 3] {
        self.shape
    }
    fn num_classes(&self) -> usize {
        self.w.nrows()
    }
    fn normalization(&self) -> Normalization {
        self.norm.clone()
    }
    fn logits(&self, x: &Array4<f32>) -> Array2<f32> {
        flatten_normalized(x, &self.norm).dot(&self.w.t()) + &self.b
    }
}

impl WhiteBox for LinearSoftmax {
    fn input_vjp(&self, _x: &Array4<f32>, dlogits: &Array2<f32>) -> Array4<f32> {
        unflatten_grad(dlogits.dot(&self.w), self.shape, &self.norm)
    }
}

/// Two-layer perceptron `logits = W2 relu(W1 n(x) + b1) + b2` (see the module doc).
#[derive(Clone, Debug)]
pub struct Mlp {
    pub shape: [usize; 3],
    /// hidden x D
    pub w1: Array2<f32>,
    pub b1: Array1<f32>,
    /// classes x hidden
    pub w2: Array2<f32>,
    pub b2: Array1<f32>,
    pub norm: Normalization,
}

impl Mlp {
    /// He-initialised weights, zero biases, identity normalisation.
    pub fn random(shape: [usize; 3], hidden: usize, classes: usize, seed: u64) -> Self {
        let d = shape.iter().product::<usize>();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n1 = Normal::new(0.0, (2.0 / d as f32).sqrt()).expect("valid normal");
        let n2 = Normal::new(0.0, (2.0 / hidden as f32).sqrt()).expect("valid normal");
        Mlp {
            shape,
            w1: Array2::from_shape_fn((hidden, d), |_| n1.sample(&mut rng)),
            b1: Array1::zeros(hidden),
            w2: Array2::from_shape_fn((classes, hidden), |_| n2.sample(&mut rng)),
            b2: Array1::zeros(classes),
            norm: Normalization::identity(shape[0]),
        }
    }

    fn forward(&self, x: &Array4<f32>) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        let xn = flatten_normalized(x, &self.norm);
        let pre = xn.dot(&self.w1.t()) + &self.b1;
        let h = pre.mapv(|v| v.max(0.0));
        (xn, pre, h)
    }

    /// Full-batch gradient descent on the mean cross-entropy; returns the final training loss.
    pub fn train(&mut self, x: &Array4<f32>, labels: &[usize], epochs: usize, lr: f32) -> f32 {
        let n = labels.len() as f32;
        let mut last = f32::NAN;
        for _ in 0..epochs {
            let (xn, pre, h) = self.forward(x);
            let z = h.dot(&self.w2.t()) + &self.b2;
            let mut dz = z.clone();
            last = 0.0;
            for (i, mut row) in dz.rows_mut().into_iter().enumerate() {
                let zr = z.row(i).to_vec();
                last += super::loss::cross_entropy(&zr, labels[i]) / n;
                let g = super::loss::cross_entropy_grad(&zr, labels[i]);
                for (r, gv) in row.iter_mut().zip(g) {
                    *r = gv / n;
                }
            }
            let dw2 = dz.t().dot(&h);
            let db2 = dz.sum_axis(Axis(0));
            let mut dh = dz.dot(&self.w2);
            ndarray::Zip::from(&mut dh)
                .and(&pre)
                .for_each(|d, &p| *d = if p > 0.0 { *d } else { 0.0 });
            let dw1 = dh.t().dot(&xn);
            let db1 = dh.sum_axis(Axis(0));
            self.w2.scaled_add(-lr, &dw2);
            self.b2.scaled_add(-lr, &db2);
            self.w1.scaled_add(-lr, &dw1);
            self.b1.scaled_add(-lr, &db1);
        }
        last
    }
}

impl Model for Mlp {
    fn input_shape(&self) -> [usize; 3] {
        self.shape
    }
    fn num_classes(&self) -> usize {
        self.w2.nrows()
    }
    fn normalization(&self) -> Normalization {
        self.norm.clone()
    }
    fn logits(&self, x: &Array4<f32>) -> Array2<f32> {
        let (_, _, h) = self.forward(x);
        h.dot(&self.w2.t()) + &self.b2
    }
}

impl WhiteBox for Mlp {
    fn input_vjp(&self, x: &Array4<f32>, dlogits: &Array2<f32>) -> Array4<f32> {
        let (_, pre, _) = self.forward(x);
        let mut dh = dlogits.dot(&self.w2);
        ndarray::Zip::from(&mut dh)
            .and(&pre)
            .for_each(|d, &p| *d = if p > 0.0 { *d } else { 0.0 });
        unflatten_grad(dh.dot(&self.w1), self.shape, &self.norm)
    }
}

/// Forwards to `inner`, counting images passed to `logits` and to `input_vjp`.
#[derive(Debug)]
pub struct Counting<M> {
    pub inner: M,
    logits: AtomicU64,
    vjps: AtomicU64,
}

impl<M> Counting<M> {
    pub fn new(inner: M) -> Self {
        Counting {
            inner,
            logits: AtomicU64::new(0),
            vjps: AtomicU64::new(0),
        }
    }
    /// Images sent through a forward pass so far (by `logits`, or taped by `logits_and_vjps`).
    pub fn logit_images(&self) -> u64 {
        self.logits.load(Ordering::Relaxed)
    }
    /// Images differentiated so far (one per image and backward pass: `input_vjp`, or each
    /// cotangent of `logits_and_vjps`).
    pub fn vjp_images(&self) -> u64 {
        self.vjps.load(Ordering::Relaxed)
    }
}

impl<M: Model> Model for Counting<M> {
    fn input_shape(&self) -> [usize; 3] {
        self.inner.input_shape()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn normalization(&self) -> Normalization {
        self.inner.normalization()
    }
    fn logits(&self, x: &Array4<f32>) -> Array2<f32> {
        self.logits
            .fetch_add(x.len_of(Axis(0)) as u64, Ordering::Relaxed);
        self.inner.logits(x)
    }
}

impl<M: WhiteBox> WhiteBox for Counting<M> {
    fn input_vjp(&self, x: &Array4<f32>, dlogits: &Array2<f32>) -> Array4<f32> {
        self.vjps
            .fetch_add(x.len_of(Axis(0)) as u64, Ordering::Relaxed);
        self.inner.input_vjp(x, dlogits)
    }

    fn logits_and_vjps(
        &self,
        x: &Array4<f32>,
        dlogits: &mut dyn FnMut(&Array2<f32>) -> Vec<Array2<f32>>,
    ) -> (Array2<f32>, Vec<Array4<f32>>) {
        let n = x.len_of(Axis(0)) as u64;
        self.logits.fetch_add(n, Ordering::Relaxed);
        let (z, g) = self.inner.logits_and_vjps(x, dlogits);
        self.vjps.fetch_add(n * g.len() as u64, Ordering::Relaxed);
        (z, g)
    }
}

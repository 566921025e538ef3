//! Shared by the tests/train_*.rs files: a softmax-regression model with analytic gradients that
//! implements `Trainable`, and a seeded synthetic image set.
#![allow(dead_code)]

use breakingbed::io::Dataset;
use breakingbed::train::r#loop::LogitLoss;
use breakingbed::train::{Params, Predict, Trainable};
use breakingbed::Result;
use ndarray::{Array1, Array2, Array4, ArrayD, Axis, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// logits = W x + b on the flattened unit-scale image; params "fc.weight" (K, D), "fc.bias" (K).
///
/// With [`SoftmaxRegression::centered`] the input is first centred like a parameter-free batch
/// norm: by the batch mean in training mode (updating a running mean, momentum 0.1) and by the
/// running mean in inference, so the model has a non-trained buffer ("center.running_mean") that
/// checkpoints must carry.
pub struct SoftmaxRegression {
    pub params: Params,
    pub classes: usize,
    pub running_mean: Option<Array1<f32>>,
}

impl SoftmaxRegression {
    /// Small seeded random weights (N(0, 0.01^2)), zero bias.
    pub fn new(dim: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = Normal::new(0.0f32, 0.01).unwrap();
        let w: Vec<f32> = (0..dim * classes).map(|_| n.sample(&mut rng)).collect();
        let mut params = Params::new();
        params.insert(
            "fc.weight".into(),
            ArrayD::from_shape_vec(IxDyn(&[classes, dim]), w).unwrap(),
        );
        params.insert("fc.bias".into(), ArrayD::zeros(IxDyn(&[classes])));
        SoftmaxRegression {
            params,
            classes,
            running_mean: None,
        }
    }

    pub fn centered(mut self) -> Self {
        let dim = self.params["fc.weight"].shape()[1];
        self.running_mean = Some(Array1::zeros(dim));
        self
    }

    fn flat(x: &Array4<f32>) -> Array2<f32> {
        let n = x.len_of(Axis(0));
        x.as_standard_layout()
            .into_owned()
            .into_shape_with_order((n, x.len() / n.max(1)))
            .unwrap()
    }

    /// The flattened, possibly centred input; `train` uses and records batch statistics.
    fn input(&mut self, x: &Array4<f32>, train: bool) -> Array2<f32> {
        let xf = Self::flat(x);
        match &mut self.running_mean {
            None => xf,
            Some(rm) if train => {
                let mean = xf.mean_axis(Axis(0)).unwrap();
                *rm = &*rm * 0.9 + &mean * 0.1;
                xf - &mean
            }
            Some(rm) => xf - &*rm,
        }
    }

    fn weight(&self) -> Array2<f32> {
        self.params["fc.weight"]
            .clone()
            .into_dimensionality()
            .unwrap()
    }

    fn logits(&self, xf: &Array2<f32>) -> Array2<f32> {
        let b = self.params["fc.bias"]
            .clone()
            .into_dimensionality::<ndarray::Ix1>()
            .unwrap();
        xf.dot(&self.weight().t()) + &b
    }

    /// Gradients of `sum dlogits * logits` w.r.t. the parameters (the batch mean does not depend
    /// on them, so centring changes only the input the weight gradient sees).
    fn backward(&self, xf: &Array2<f32>, dz: &Array2<f32>) -> Params {
        let mut g = Params::new();
        g.insert("fc.weight".into(), dz.t().dot(xf).into_dyn());
        g.insert("fc.bias".into(), dz.sum_axis(Axis(0)).into_dyn());
        g
    }
}

impl Predict for SoftmaxRegression {
    fn predict(&self, x: &Array4<f32>) -> Result<Array2<f32>> {
        let mut xf = Self::flat(x);
        if let Some(rm) = &self.running_mean {
            xf -= rm;
        }
        Ok(self.logits(&xf))
    }
}

impl Trainable for SoftmaxRegression {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn forward_backward(
        &mut self,
        x: &Array4<f32>,
        labels: &[usize],
        train: bool,
    ) -> Result<(f32, Params)> {
        let xf = self.input(x, train);
        let z = self.logits(&xf);
        let (loss, dz) = breakingbed::train::cross_entropy(&z, labels)?;
        Ok((loss, self.backward(&xf, &dz)))
    }
    fn forward_backward_with(
        &mut self,
        x: &Array4<f32>,
        train: bool,
        loss: &mut LogitLoss<'_>,
    ) -> Result<(f32, Params)> {
        let xf = self.input(x, train);
        let z = self.logits(&xf);
        let (l, dz) = loss(&z)?;
        Ok((l, self.backward(&xf, &dz)))
    }
    fn buffers(&self) -> Params {
        let mut b = Params::new();
        if let Some(rm) = &self.running_mean {
            b.insert("center.running_mean".into(), rm.clone().into_dyn());
        }
        b
    }
    fn set_buffers(&mut self, mut buffers: Params) -> Result<()> {
        match (
            &mut self.running_mean,
            buffers.remove("center.running_mean"),
        ) {
            (Some(rm), Some(b)) if b.shape() == rm.shape() && buffers.is_empty() => {
                *rm = b.into_dimensionality().unwrap();
                Ok(())
            }
            (None, None) if buffers.is_empty() => Ok(()),
            _ => Err(breakingbed::Error::input(
                "checkpoint",
                "model buffers do not match this model",
            )),
        }
    }
}

/// `n` images (1 x side x side) of `classes` classes: class c is a bright square at a
/// class-specific place on a noisy background, so a linear model can separate them.
pub fn blobs(n: usize, classes: usize, side: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = Array4::<u8>::zeros((n, 1, side, side));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = rng.gen_range(0..classes);
        labels.push(c as u16);
        let (cy, cx) = ((c * 3) % (side - 2), (c * 5) % (side - 2));
        for y in 0..side {
            for x in 0..side {
                let on = y >= cy && y < cy + 3 && x >= cx && x < cx + 3;
                let base: f32 = if on { 170.0 } else { 60.0 };
                let v = base + rng.gen_range(-60.0f32..60.0);
                images[[i, 0, y, x]] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    Dataset::new(images, labels, classes, format!("blobs(seed {seed})")).unwrap()
}

/// One hidden ReLU layer: logits = W2 relu(W1 x + b1) + b2; params "fc1.*" (H, D), "fc2.*" (K, H).
pub struct Mlp {
    pub params: Params,
}

impl Mlp {
    /// He-style init N(0, 2/fan_in) for the weights, zero biases.
    pub fn new(dim: usize, hidden: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Params::new();
        for (name, o, i) in [("fc1", hidden, dim), ("fc2", classes, hidden)] {
            let n = Normal::new(0.0f32, (2.0 / i as f32).sqrt()).unwrap();
            let w: Vec<f32> = (0..o * i).map(|_| n.sample(&mut rng)).collect();
            params.insert(
                format!("{name}.weight"),
                ArrayD::from_shape_vec(IxDyn(&[o, i]), w).unwrap(),
            );
            params.insert(format!("{name}.bias"), ArrayD::zeros(IxDyn(&[o])));
        }
        Mlp { params }
    }

    fn mat(&self, name: &str) -> Array2<f32> {
        self.params[name].clone().into_dimensionality().unwrap()
    }

    fn vec(&self, name: &str) -> ndarray::Array1<f32> {
        self.params[name].clone().into_dimensionality().unwrap()
    }

    /// (pre-activation of the hidden layer, logits).
    fn forward(&self, x: &Array4<f32>) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        let xf = SoftmaxRegression::flat(x);
        let a = xf.dot(&self.mat("fc1.weight").t()) + &self.vec("fc1.bias");
        let h = a.mapv(|v| v.max(0.0));
        let z = h.dot(&self.mat("fc2.weight").t()) + &self.vec("fc2.bias");
        (xf, a, z)
    }

    fn backward(&self, xf: &Array2<f32>, a: &Array2<f32>, dz: &Array2<f32>) -> Params {
        let h = a.mapv(|v| v.max(0.0));
        let dh = dz.dot(&self.mat("fc2.weight"));
        // ReLU'(0) = 0, the usual subgradient choice.
        let da = dh * &a.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
        let mut g = Params::new();
        g.insert("fc2.weight".into(), dz.t().dot(&h).into_dyn());
        g.insert("fc2.bias".into(), dz.sum_axis(Axis(0)).into_dyn());
        g.insert("fc1.weight".into(), da.t().dot(xf).into_dyn());
        g.insert("fc1.bias".into(), da.sum_axis(Axis(0)).into_dyn());
        g
    }
}

impl Predict for Mlp {
    fn predict(&self, x: &Array4<f32>) -> Result<Array2<f32>> {
        Ok(self.forward(x).2)
    }
}

impl Trainable for Mlp {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn forward_backward(
        &mut self,
        x: &Array4<f32>,
        labels: &[usize],
        _train: bool,
    ) -> Result<(f32, Params)> {
        let (xf, a, z) = self.forward(x);
        let (loss, dz) = breakingbed::train::cross_entropy(&z, labels)?;
        Ok((loss, self.backward(&xf, &a, &dz)))
    }
    fn forward_backward_with(
        &mut self,
        x: &Array4<f32>,
        _train: bool,
        loss: &mut LogitLoss<'_>,
    ) -> Result<(f32, Params)> {
        let (xf, a, z) = self.forward(x);
        let (l, dz) = loss(&z)?;
        Ok((l, self.backward(&xf, &a, &dz)))
    }
}

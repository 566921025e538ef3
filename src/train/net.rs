//! [`Trainable`] / [`Predict`] for the network executor ([`Net`]): what `bbed train` trains.
//!
//! - Trained parameters are every tensor of [`crate::engine::params::expected`] except the
//!   batch-norm running statistics (`{bn}.running_mean`, `{bn}.running_var`), which are model
//!   *buffers*: saved in checkpoints, updated only by training-mode forward passes with PyTorch's
//!   rule (`running = 0.9 * running + 0.1 * batch`, unbiased batch variance; momentum
//!   [`BN_MOMENTUM`]) and never touched by the optimizer (so weight decay cannot shrink them).
//! - Training-mode passes use batch statistics; [`Predict::predict`] runs in evaluation mode with
//!   the running statistics and the float conv backend (bit-identical to the bitwise backend, see
//!   [`crate::engine::exec`]).
//! - Binarized layers train their latent float weights through the straight-through estimator
//!   exactly as the executor's backward pass defines it; ABC activation shifts/scales are trained
//!   parameters.
//! - Gradients of parameters a pass does not reach are zero (so the optimizer sees every name).

use std::cell::RefCell;

use ndarray::{Array1, Array2, Array4, ArrayD};

use crate::engine::exec::{ConvBackend, Mode, Net};
use crate::engine::params::Params;
use crate::train::kd::cross_entropy;
use crate::train::r#loop::{LogitLoss, Predict, Trainable};
use crate::variant::CompressedNetwork;
use crate::{Error, Result};

/// Batch-norm running-statistics momentum (PyTorch's default).
pub const BN_MOMENTUM: f32 = 0.1;

/// True for names that are batch-norm running statistics (buffers, not trained).
pub fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// A [`Net`] wrapped for the training loop. The executor reads the full parameter set; the
/// trained subset lives in `trainable` and is copied into the executor before each pass (the
/// loop's optimizer mutates `trainable` in place between passes).
pub struct NetModel {
    net: RefCell<Net>,
    trainable: Params,
}

impl NetModel {
    pub fn new(cn: CompressedNetwork, params: Params) -> Result<Self> {
        let net = Net::new(cn, params)?;
        let trainable = net
            .params
            .iter()
            .filter(|(k, _)| !is_buffer(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(NetModel {
            net: RefCell::new(net),
            trainable,
        })
    }

    /// The full parameter set (trained tensors and running statistics), e.g. to save.
    pub fn all_params(&self) -> Params {
        self.sync();
        self.net.borrow().params.clone()
    }

    /// The network with its current parameters (for the inference engines).
    pub fn into_net(self) -> Net {
        self.sync();
        self.net.into_inner()
    }

    pub fn network(&self) -> CompressedNetwork {
        self.net.borrow().cn.clone()
    }

    fn sync(&self) {
        let mut net = self.net.borrow_mut();
        for (k, v) in &self.trainable {
            if let Some(t) = net.params.get_mut(k) {
                t.assign(v);
            }
        }
    }

    /// Training/inference forward, loss, backward; updates running statistics in training mode.
    fn pass(
        &mut self,
        x: &Array4<f32>,
        train: bool,
        loss: &mut LogitLoss<'_>,
    ) -> Result<(f32, Params)> {
        self.sync();
        let mode = if train { Mode::Train } else { Mode::Eval };
        let (value, grads, updates) = {
            let net = self.net.borrow();
            let bw = net.binarize(false)?;
            let (logits, tape) = net.forward(x, mode, ConvBackend::Float, &bw, false)?;
            let (value, dlogits) = loss(&logits)?;
            if dlogits.dim() != logits.dim() {
                return Err(Error::input(
                    "loss",
                    format!(
                        "gradient {:?} does not match logits {:?}",
                        dlogits.dim(),
                        logits.dim()
                    ),
                ));
            }
            let g = net.backward(&tape, &bw, &dlogits, true)?;
            let mut updates: Vec<(String, Array1<f32>, Array1<f32>)> = Vec::new();
            if train {
                for (name, stats) in net.bn_batch_stats(&tape) {
                    let mk = format!("{name}.running_mean");
                    let vk = format!("{name}.running_var");
                    let mut rm: Array1<f32> = net.params[&mk].iter().copied().collect();
                    let mut rv: Array1<f32> = net.params[&vk].iter().copied().collect();
                    stats.update_running(&mut rm, &mut rv, BN_MOMENTUM)?;
                    updates.push((name.to_string(), rm, rv));
                }
            }
            (value, g.params, updates)
        };
        let mut net = self.net.borrow_mut();
        for (name, rm, rv) in updates {
            for (k, v) in [("running_mean", rm), ("running_var", rv)] {
                let key = format!("{name}.{k}");
                let t = net.params.get_mut(&key).expect("bn buffer exists");
                let shape = t.raw_dim();
                *t = v.into_shape_with_order(shape).expect("same length");
            }
        }
        let mut out = Params::new();
        for (k, p) in &self.trainable {
            let g = grads
                .get(k)
                .cloned()
                .unwrap_or_else(|| ArrayD::zeros(p.raw_dim()));
            out.insert(k.clone(), g);
        }
        Ok((value, out))
    }
}

impl Predict for NetModel {
    fn predict(&self, x: &Array4<f32>) -> Result<Array2<f32>> {
        self.sync();
        let net = self.net.borrow();
        let bw = net.binarize(false)?;
        Ok(net
            .forward(x, Mode::Eval, ConvBackend::Float, &bw, false)?
            .0)
    }
}

impl Predict for Net {
    fn predict(&self, x: &Array4<f32>) -> Result<Array2<f32>> {
        let bw = self.binarize(false)?;
        Ok(self
            .forward(x, Mode::Eval, ConvBackend::Float, &bw, false)?
            .0)
    }
}

impl Trainable for NetModel {
    fn params(&self) -> &Params {
        &self.trainable
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.trainable
    }

    fn forward_backward(
        &mut self,
        x: &Array4<f32>,
        labels: &[usize],
        train: bool,
    ) -> Result<(f32, Params)> {
        self.pass(x, train, &mut |z| cross_entropy(z, labels))
    }

    fn forward_backward_with(
        &mut self,
        x: &Array4<f32>,
        train: bool,
        loss: &mut LogitLoss<'_>,
    ) -> Result<(f32, Params)> {
        self.pass(x, train, loss)
    }

    fn buffers(&self) -> Params {
        self.net
            .borrow()
            .params
            .iter()
            .filter(|(k, _)| is_buffer(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn set_buffers(&mut self, buffers: Params) -> Result<()> {
        let mut net = self.net.borrow_mut();
        let want: Vec<(&String, &[usize])> = net
            .params
            .iter()
            .filter(|(k, _)| is_buffer(k))
            .map(|(k, v)| (k, v.shape()))
            .collect();
        let got: Vec<(&String, &[usize])> = buffers.iter().map(|(k, v)| (k, v.shape())).collect();
        if want != got {
            return Err(Error::input(
                "checkpoint",
                "its batch-norm running statistics do not match this network (another model?)",
            ));
        }
        for (k, v) in buffers {
            net.params.insert(k, v);
        }
        Ok(())
    }
}

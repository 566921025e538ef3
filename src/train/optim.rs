//! First-order optimizers over a named parameter set: SGD with momentum (optionally Nesterov) and
//! Adam / AdamW, with PyTorch's update rules so recipes written for `torch.optim` carry over.
//!
//! - SGD (`torch.optim.SGD`, dampening 0): `d = g + wd*p`; `v = mu*v + d` (v starts at 0, so the
//!   first step gives `v = d` exactly as PyTorch's clone); Nesterov uses `d + mu*v`, plain uses `v`;
//!   `p -= lr * step`.
//! - Adam (`torch.optim.Adam`): coupled weight decay adds `wd*p` to the gradient; decoupled
//!   (`torch.optim.AdamW`) multiplies `p` by `1 - lr*wd` first. `m = b1*m + (1-b1)g`,
//!   `v = b2*v + (1-b2)g^2`, `p -= (lr / (1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps)` with `t`
//!   the 1-based step count.
//!
//! Masks (pruning) are 0/1 tensors keyed by parameter name. They are applied to the gradient before
//! the update (so momentum/Adam state of pruned weights stays zero and cannot resurrect them) and
//! to the parameter after it (so weight decay or a stale buffer can never move a pruned weight off
//! zero). Optimizer state is plain named tensors plus a step count, for checkpoints.
//!
//! Every update is element-wise and serial per tensor, so results are bitwise independent of the
//! thread count.

use crate::{Error, Result};
use ndarray::{ArrayD, Zip};
use serde::{Deserialize, Serialize};

/// Named parameters (or gradients, or masks) of a model: the engine's one definition.
pub use crate::engine::params::Params;

/// Which optimizer and its hyper-parameters (the learning rate comes from the schedule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    Sgd {
        momentum: f32,
        weight_decay: f32,
        #[serde(default)]
        nesterov: bool,
    },
    Adam {
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
        /// AdamW-style decay (`p *= 1 - lr*wd`) instead of adding `wd*p` to the gradient.
        #[serde(default)]
        decoupled: bool,
    },
}

impl OptimizerConfig {
    /// SGD with momentum and L2 weight decay (the usual CIFAR ResNet recipe is 0.9, 1e-4 or 5e-4).
    pub fn sgd(momentum: f32, weight_decay: f32) -> Self {
        OptimizerConfig::Sgd {
            momentum,
            weight_decay,
            nesterov: false,
        }
    }

    /// Adam with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adam() -> Self {
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// Reject values no recipe means (negative decay, betas outside [0,1), ...).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::input(format!("optimizer.{field}"), msg));
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                if !(momentum.is_finite() && (0.0..1.0).contains(&momentum)) {
                    return bad("momentum", format!("{momentum} is not in [0, 1)"));
                }
                if !(weight_decay.is_finite() && weight_decay >= 0.0) {
                    return bad(
                        "weight_decay",
                        format!("{weight_decay} is not a finite number >= 0"),
                    );
                }
                if nesterov && momentum == 0.0 {
                    return bad("nesterov", "Nesterov momentum needs momentum > 0".into());
                }
            }
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                for (name, b) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(b.is_finite() && (0.0..1.0).contains(&b)) {
                        return bad(name, format!("{b} is not in [0, 1)"));
                    }
                }
                if !(eps.is_finite() && eps > 0.0) {
                    return bad("eps", format!("{eps} is not a positive finite number"));
                }
                if !(weight_decay.is_finite() && weight_decay >= 0.0) {
                    return bad(
                        "weight_decay",
                        format!("{weight_decay} is not a finite number >= 0"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Names of the per-parameter state buffers this optimizer keeps.
    fn slots(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Sgd { momentum, .. } if *momentum == 0.0 => &[],
            OptimizerConfig::Sgd { .. } => &["momentum"],
            OptimizerConfig::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// The optimizer's mutable state: per-parameter buffers, keyed `"{slot}/{param}"`, and the number
/// of steps taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    pub buffers: Params,
    pub steps: u64,
}

/// An optimizer bound to a config, its state and (optionally) pruning masks.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    state: OptimizerState,
    masks: Params,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Optimizer {
            config,
            state: OptimizerState::default(),
            masks: Params::new(),
        })
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    pub fn masks(&self) -> &Params {
        &self.masks
    }

    /// Restore state saved from an optimizer with the same config; every buffer must name a known
    /// slot and be finite.
    pub fn set_state(&mut self, state: OptimizerState) -> Result<()> {
        let slots = self.config.slots();
        for (key, buf) in &state.buffers {
            let slot = key.split('/').next().unwrap_or("");
            if !slots.contains(&slot) {
                return Err(Error::input(
                    "optimizer state",
                    format!("buffer {key:?} does not belong to this optimizer (slots {slots:?})"),
                ));
            }
            if buf.iter().any(|v| !v.is_finite()) {
                return Err(Error::input(
                    "optimizer state",
                    format!("buffer {key:?} holds a non-finite value"),
                ));
            }
        }
        self.state = state;
        Ok(())
    }

    /// Fix pruning masks (0/1 tensors keyed by parameter name). Shapes are checked at each step
    /// against the parameters; values must be exactly 0 or 1.
    pub fn set_masks(&mut self, masks: Params) -> Result<()> {
        for (name, m) in &masks {
            if m.iter().any(|&v| v != 0.0 && v != 1.0) {
                return Err(Error::input(
                    format!("mask {name:?}"),
                    "holds values other than 0 and 1",
                ));
            }
        }
        self.masks = masks;
        Ok(())
    }

    /// One update of `params` with `grads` at learning rate `lr`. Every parameter needs a
    /// gradient of the same shape and every gradient a parameter; nothing is changed on error.
    pub fn step(&mut self, params: &mut Params, grads: &Params, lr: f32) -> Result<()> {
        check_matching(params, grads, &self.masks)?;
        check_buffers(&self.state.buffers, params)?;
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::input(
                "learning rate",
                format!("{lr} is not a finite number >= 0"),
            ));
        }
        if let Some((name, _)) = grads.iter().find(|(_, g)| g.iter().any(|v| !v.is_finite())) {
            return Err(Error::input(
                format!("gradient {name:?}"),
                "holds a non-finite value (diverged? try a smaller learning rate)",
            ));
        }
        self.state.steps += 1;
        let t = self.state.steps;
        for (name, p) in params.iter_mut() {
            let mut g = grads[name].clone();
            let mask = self.masks.get(name);
            if let Some(m) = mask {
                g *= m;
            }
            match self.config {
                OptimizerConfig::Sgd {
                    momentum,
                    weight_decay,
                    nesterov,
                } => {
                    if weight_decay != 0.0 {
                        Zip::from(&mut g)
                            .and(&*p)
                            .for_each(|g, &p| *g += weight_decay * p);
                    }
                    if momentum != 0.0 {
                        let mut v = take_buffer(&mut self.state.buffers, "momentum", name, p);
                        Zip::from(&mut v)
                            .and(&g)
                            .for_each(|v, &d| *v = momentum * *v + d);
                        if nesterov {
                            Zip::from(&mut g)
                                .and(&v)
                                .for_each(|d, &v| *d += momentum * v);
                        } else {
                            g.assign(&v);
                        }
                        self.state.buffers.insert(format!("momentum/{name}"), v);
                    }
                    Zip::from(&mut *p).and(&g).for_each(|p, &d| *p -= lr * d);
                }
                OptimizerConfig::Adam {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    decoupled,
                } => {
                    if weight_decay != 0.0 {
                        if decoupled {
                            p.mapv_inplace(|p| p * (1.0 - lr * weight_decay));
                        } else {
                            Zip::from(&mut g)
                                .and(&*p)
                                .for_each(|g, &p| *g += weight_decay * p);
                        }
                    }
                    let bc1 = 1.0 - beta1.powi(t.min(i32::MAX as u64) as i32);
                    let bc2_sqrt = (1.0 - beta2.powi(t.min(i32::MAX as u64) as i32)).sqrt();
                    let step_size = lr / bc1;
                    let mut m = take_buffer(&mut self.state.buffers, "exp_avg", name, p);
                    let mut v = take_buffer(&mut self.state.buffers, "exp_avg_sq", name, p);
                    Zip::from(&mut m).and(&mut v).and(&g).for_each(|m, v, &g| {
                        *m = beta1 * *m + (1.0 - beta1) * g;
                        *v = beta2 * *v + (1.0 - beta2) * g * g;
                    });
                    Zip::from(&mut *p)
                        .and(&m)
                        .and(&v)
                        .for_each(|p, &m, &v| *p -= step_size * m / (v.sqrt() / bc2_sqrt + eps));
                    self.state.buffers.insert(format!("exp_avg/{name}"), m);
                    self.state.buffers.insert(format!("exp_avg_sq/{name}"), v);
                }
            }
            if let Some(m) = mask {
                *p *= m;
            }
        }
        Ok(())
    }
}

/// Remove and return the state buffer `slot` of parameter `name` (zeros shaped like `p` on first
/// use; [`check_buffers`] has already checked restored shapes).
fn take_buffer(buffers: &mut Params, slot: &str, name: &str, p: &ArrayD<f32>) -> ArrayD<f32> {
    buffers
        .remove(&format!("{slot}/{name}"))
        .unwrap_or_else(|| ArrayD::zeros(p.raw_dim()))
}

/// Every state buffer belongs to a parameter of the same shape (a checkpoint of another model
/// would otherwise be silently reset or mis-applied).
fn check_buffers(buffers: &Params, params: &Params) -> Result<()> {
    for (key, b) in buffers {
        let name = key.split_once('/').map(|(_, n)| n).unwrap_or("");
        match params.get(name) {
            Some(p) if p.shape() == b.shape() => {}
            Some(p) => {
                return Err(Error::input(
                    "optimizer state",
                    format!(
                        "buffer {key:?} has shape {:?} but the parameter has {:?}",
                        b.shape(),
                        p.shape()
                    ),
                ))
            }
            None => {
                return Err(Error::input(
                    "optimizer state",
                    format!("buffer {key:?} names no parameter of the model"),
                ))
            }
        }
    }
    Ok(())
}

/// Parameters and gradients name the same tensors with the same shapes; masks name parameters.
fn check_matching(params: &Params, grads: &Params, masks: &Params) -> Result<()> {
    for (name, p) in params {
        match grads.get(name) {
            None => {
                return Err(Error::input(
                    "gradients",
                    format!("no gradient for parameter {name:?}"),
                ))
            }
            Some(g) if g.shape() != p.shape() => {
                return Err(Error::input(
                    format!("gradient {name:?}"),
                    format!(
                        "shape {:?} differs from the parameter's {:?}",
                        g.shape(),
                        p.shape()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(name) = grads.keys().find(|n| !params.contains_key(*n)) {
        return Err(Error::input(
            "gradients",
            format!("gradient {name:?} has no parameter"),
        ));
    }
    for (name, m) in masks {
        match params.get(name) {
            None => {
                return Err(Error::input(
                    format!("mask {name:?}"),
                    "names no parameter of the model",
                ))
            }
            Some(p) if p.shape() != m.shape() => {
                return Err(Error::input(
                    format!("mask {name:?}"),
                    format!(
                        "shape {:?} differs from the parameter's {:?}",
                        m.shape(),
                        p.shape()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Multiply each masked parameter by its mask (e.g. right after pruning, before fine-tuning).
pub fn apply_masks(params: &mut Params, masks: &Params) -> Result<()> {
    for (name, m) in masks {
        let p = params.get_mut(name).ok_or_else(|| {
            Error::input(format!("mask {name:?}"), "names no parameter of the model")
        })?;
        if p.shape() != m.shape() {
            return Err(Error::input(
                format!("mask {name:?}"),
                format!(
                    "shape {:?} differs from the parameter's {:?}",
                    m.shape(),
                    p.shape()
                ),
            ));
        }
        *p *= m;
    }
    Ok(())
}

//! The DDPG agent of AMC (He et al., ECCV 2018; DDPG: Lillicrap et al., ICLR 2016): an actor
//! MLP `mu(s) -> a in (0, 1)` and a critic MLP `Q(s, a)`, each with a target copy tracked by soft
//! updates, trained from a replay buffer with Adam ([`crate::train::optim::Optimizer`]).
//!
//! Conventions:
//! - MLP layers are `y = x W^T + b` with PyTorch `nn.Linear` layout (`W [out, in]`), computed by
//!   [`crate::engine::ops::linear`]; hidden activations are ReLU
//!   ([`crate::engine::ops::activation::relu`]); the actor's output goes through a sigmoid so the
//!   action is a sparsity ratio in (0, 1); the critic's output is linear.
//! - Parameters are named `"{prefix}.fc{k}.weight"` / `".bias"` (`k` from 1) in a [`Params`] map,
//!   so the optimizer and soft updates walk them in a fixed (name) order.
//! - The critic reads `concat(state, action)` (AMC's reference critic adds two separate input
//!   projections; the concatenation is the same function class with one fewer bias).
//! - Initialisation as the DDPG paper: hidden layers `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for
//!   weights and biases, the output layer `U(-3e-3, 3e-3)`, so initial actions are ~0.5 and
//!   initial Q-values ~0.
//! - Update (as AMC's `update_policy`): rewards of the batch minus a moving-average baseline
//!   (`b += alpha (mean(r) - b)`, alpha 0.5), target `y = r - b + gamma (1 - done)
//!   Q'(s', mu'(s'))`, critic loss `mean (Q(s,a) - y)^2`, actor loss `-mean Q(s, mu(s))`, then
//!   `theta' <- (1 - tau) theta' + tau theta` for both target networks.
//! - Everything is serial and seeded, so a run is the same for any thread count.

use crate::engine::ops::activation::{relu, relu_backward};
use crate::engine::ops::linear::{linear, linear_backward};
use crate::train::optim::{Optimizer, OptimizerConfig, Params};
use crate::{Error, Result};
use ndarray::{Array1, Array2, ArrayD, Axis, IxDyn};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use serde::{Deserialize, Serialize};

/// What follows the last layer of an [`Mlp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutAct {
    Identity,
    Sigmoid,
}

/// A plain MLP: `sizes[0]` inputs, ReLU hidden layers, `sizes.last()` outputs.
#[derive(Clone, Debug)]
pub struct Mlp {
    pub prefix: String,
    pub sizes: Vec<usize>,
    pub out: OutAct,
}

/// What [`Mlp::backward`] needs from the forward pass: the input of every layer and the
/// pre-activations of the hidden layers.
pub struct MlpTape {
    inputs: Vec<Array2<f32>>,
    pre: Vec<Array2<f32>>,
    output: Array2<f32>,
}

fn weight(params: &Params, name: &str) -> Result<Array2<f32>> {
    params
        .get(name)
        .ok_or_else(|| Error::input("agent parameters", format!("missing tensor {name:?}")))?
        .clone()
        .into_dimensionality()
        .map_err(|e| Error::input(name, e.to_string()))
}

fn bias(params: &Params, name: &str) -> Result<Array1<f32>> {
    params
        .get(name)
        .ok_or_else(|| Error::input("agent parameters", format!("missing tensor {name:?}")))?
        .clone()
        .into_dimensionality()
        .map_err(|e| Error::input(name, e.to_string()))
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl Mlp {
    pub fn new(prefix: &str, sizes: Vec<usize>, out: OutAct) -> Self {
        Mlp {
            prefix: prefix.to_string(),
            sizes,
            out,
        }
    }

    fn names(&self, k: usize) -> (String, String) {
        (
            format!("{}.fc{}.weight", self.prefix, k + 1),
            format!("{}.fc{}.bias", self.prefix, k + 1),
        )
    }

    /// Seeded DDPG initialisation (module docs).
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Params {
        let mut p = Params::new();
        let layers = self.sizes.len() - 1;
        for k in 0..layers {
            let (i, o) = (self.sizes[k], self.sizes[k + 1]);
            let b = if k + 1 == layers {
                3e-3
            } else {
                1.0 / (i as f32).sqrt()
            };
            let d = Uniform::new_inclusive(-b, b);
            let w: Vec<f32> = (0..o * i).map(|_| d.sample(rng)).collect();
            let bv: Vec<f32> = (0..o).map(|_| d.sample(rng)).collect();
            let (wn, bn) = self.names(k);
            p.insert(
                wn,
                ArrayD::from_shape_vec(IxDyn(&[o, i]), w).expect("shape"),
            );
            p.insert(bn, ArrayD::from_shape_vec(IxDyn(&[o]), bv).expect("shape"));
        }
        p
    }

    /// Forward pass on a batch `x [N, sizes[0]]`.
    pub fn forward(&self, params: &Params, x: &Array2<f32>) -> Result<MlpTape> {
        let layers = self.sizes.len() - 1;
        let mut inputs = Vec::with_capacity(layers);
        let mut pre = Vec::with_capacity(layers);
        let mut h = x.clone();
        for k in 0..layers {
            let (wn, bn) = self.names(k);
            let z = linear(&h, &weight(params, &wn)?, Some(&bias(params, &bn)?))?;
            inputs.push(h);
            if k + 1 < layers {
                h = relu(&z);
                pre.push(z);
            } else {
                h = match self.out {
                    OutAct::Identity => z,
                    OutAct::Sigmoid => z.mapv(sigmoid),
                };
            }
        }
        Ok(MlpTape {
            inputs,
            pre,
            output: h,
        })
    }

    /// Backward pass from `dy` (gradient w.r.t. the output): returns `(dx, parameter grads)`.
    pub fn backward(
        &self,
        params: &Params,
        tape: &MlpTape,
        dy: &Array2<f32>,
    ) -> Result<(Array2<f32>, Params)> {
        let layers = self.sizes.len() - 1;
        let mut grads = Params::new();
        let mut d = match self.out {
            OutAct::Identity => dy.clone(),
            OutAct::Sigmoid => dy * &tape.output.mapv(|y| y * (1.0 - y)),
        };
        for k in (0..layers).rev() {
            let (wn, bn) = self.names(k);
            let (dx, dw, db) = linear_backward(&tape.inputs[k], &weight(params, &wn)?, &d)?;
            grads.insert(wn, dw.into_dyn());
            grads.insert(bn, db.into_dyn());
            d = if k > 0 {
                relu_backward(&tape.pre[k - 1], &dx)?
            } else {
                dx
            };
        }
        Ok((d, grads))
    }
}

impl MlpTape {
    pub fn output(&self) -> &Array2<f32> {
        &self.output
    }
}

/// A sample from `N(mean, sigma^2)` truncated to `[lo, hi]`, by rejection (as scipy's
/// `truncnorm` that AMC uses, in distribution); after 1000 rejections (only when the interval
/// lies far in a tail) the mean clamped into the interval is returned.
pub fn truncated_normal(rng: &mut ChaCha8Rng, mean: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    if sigma <= 0.0 {
        return mean.clamp(lo, hi);
    }
    for _ in 0..1000 {
        let z: f64 = StandardNormal.sample(rng);
        let v = mean + sigma * z;
        if (lo..=hi).contains(&v) {
            return v;
        }
    }
    mean.clamp(lo, hi)
}

/// One step of an episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub state: Vec<f32>,
    pub action: f32,
    pub reward: f32,
    pub next_state: Vec<f32>,
    pub done: bool,
}

/// First-in first-out replay buffer; batches are drawn uniformly with replacement.
#[derive(Clone, Debug, Default)]
pub struct ReplayBuffer {
    items: std::collections::VecDeque<Transition>,
    capacity: usize,
}

impl ReplayBuffer {
    pub fn new(capacity: usize) -> Self {
        ReplayBuffer {
            items: Default::default(),
            capacity: capacity.max(1),
        }
    }
    pub fn push(&mut self, t: Transition) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(t);
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn sample(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<&Transition> {
        (0..n)
            .map(|_| &self.items[rng.gen_range(0..self.items.len())])
            .collect()
    }
}

/// Hyper-parameters of the networks and their updates (AMC's values in [`DdpgConfig::amc`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DdpgConfig {
    /// Hidden layer widths of both actor and critic (AMC: [300, 300]).
    pub hidden: Vec<usize>,
    pub actor_lr: f32,
    pub critic_lr: f32,
    /// Soft-update rate of the target networks.
    pub tau: f32,
    /// Discount of the bootstrapped target (AMC: 1.0).
    pub gamma: f32,
    pub batch_size: usize,
    /// Rate of the moving-average reward baseline (AMC: 0.5).
    pub baseline_alpha: f32,
}

impl DdpgConfig {
    /// The values of AMC's reference implementation.
    pub fn amc() -> Self {
        DdpgConfig {
            hidden: vec![300, 300],
            actor_lr: 1e-4,
            critic_lr: 1e-3,
            tau: 0.01,
            gamma: 1.0,
            batch_size: 64,
            baseline_alpha: 0.5,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, m: String| Err(Error::input(format!("ddpg.{f}"), m));
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return bad(
                "hidden",
                format!(
                    "{:?}: need at least one non-empty hidden layer",
                    self.hidden
                ),
            );
        }
        for (f, v) in [("actor_lr", self.actor_lr), ("critic_lr", self.critic_lr)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(f, format!("{v} is not a positive finite number"));
            }
        }
        for (f, v) in [
            ("tau", self.tau),
            ("gamma", self.gamma),
            ("baseline_alpha", self.baseline_alpha),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(f, format!("{v} is not in [0, 1]"));
            }
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Actor, critic, their targets and optimizers.
pub struct Ddpg {
    pub actor: Mlp,
    pub critic: Mlp,
    pub actor_params: Params,
    pub critic_params: Params,
    pub actor_target: Params,
    pub critic_target: Params,
    actor_opt: Optimizer,
    critic_opt: Optimizer,
    cfg: DdpgConfig,
    baseline: Option<f32>,
}

/// Losses of one update (for the history).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    pub critic_loss: f32,
    /// `mean Q(s, mu(s))` before the actor step.
    pub policy_value: f32,
}

fn stack(rows: impl Iterator<Item = Vec<f32>>, width: usize) -> Array2<f32> {
    let data: Vec<f32> = rows.flatten().collect();
    let n = data.len() / width.max(1);
    Array2::from_shape_vec((n, width), data).expect("rows of equal width")
}

/// `target <- (1 - tau) target + tau online`, tensor by tensor.
pub fn soft_update(target: &mut Params, online: &Params, tau: f32) {
    for (name, t) in target.iter_mut() {
        let o = &online[name];
        ndarray::Zip::from(t)
            .and(o)
            .for_each(|t, &o| *t = (1.0 - tau) * *t + tau * o);
    }
}

impl Ddpg {
    pub fn new(state_dim: usize, cfg: &DdpgConfig, rng: &mut ChaCha8Rng) -> Result<Self> {
        cfg.validate()?;
        let mut a_sizes = vec![state_dim];
        a_sizes.extend(&cfg.hidden);
        a_sizes.push(1);
        let mut c_sizes = vec![state_dim + 1];
        c_sizes.extend(&cfg.hidden);
        c_sizes.push(1);
        let actor = Mlp::new("actor", a_sizes, OutAct::Sigmoid);
        let critic = Mlp::new("critic", c_sizes, OutAct::Identity);
        let actor_params = actor.init(rng);
        let critic_params = critic.init(rng);
        Ok(Ddpg {
            actor,
            critic,
            actor_target: actor_params.clone(),
            critic_target: critic_params.clone(),
            actor_params,
            critic_params,
            actor_opt: Optimizer::new(OptimizerConfig::adam())?,
            critic_opt: Optimizer::new(OptimizerConfig::adam())?,
            cfg: cfg.clone(),
            baseline: None,
        })
    }

    /// The actor's (noise-free) action for one state.
    pub fn act(&self, state: &[f32]) -> Result<f32> {
        let x = stack(std::iter::once(state.to_vec()), state.len());
        Ok(self.actor.forward(&self.actor_params, &x)?.output[[0, 0]])
    }

    /// Current reward baseline (`None` before the first update).
    pub fn baseline(&self) -> Option<f32> {
        self.baseline
    }

    /// One critic and one actor step on `batch`, then soft target updates (module docs).
    pub fn update(&mut self, batch: &[&Transition]) -> Result<UpdateStats> {
        if batch.is_empty() {
            return Err(Error::input("ddpg update", "empty batch"));
        }
        let sd = self.actor.sizes[0];
        let n = batch.len();
        let s = stack(batch.iter().map(|t| t.state.clone()), sd);
        let s1 = stack(batch.iter().map(|t| t.next_state.clone()), sd);
        let mean_r = batch.iter().map(|t| t.reward).sum::<f32>() / n as f32;
        let b = match self.baseline {
            None => mean_r,
            Some(b) => b + self.cfg.baseline_alpha * (mean_r - b),
        };
        self.baseline = Some(b);

        // Bootstrapped target from the target networks.
        let a1 = self.actor.forward(&self.actor_target, &s1)?.output;
        let q1 = self
            .critic
            .forward(&self.critic_target, &ndarray::concatenate![Axis(1), s1, a1])?
            .output;
        let y: Vec<f32> = batch
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let boot = if t.done { 0.0 } else { q1[[i, 0]] };
                t.reward - b + self.cfg.gamma * boot
            })
            .collect();

        // Critic: mean squared TD error.
        let a = Array2::from_shape_vec((n, 1), batch.iter().map(|t| t.action).collect())
            .expect("shape");
        let sa = ndarray::concatenate![Axis(1), s, a];
        let tape = self.critic.forward(&self.critic_params, &sa)?;
        let mut dq = Array2::<f32>::zeros((n, 1));
        let mut loss = 0.0f32;
        for i in 0..n {
            let e = tape.output[[i, 0]] - y[i];
            loss += e * e / n as f32;
            dq[[i, 0]] = 2.0 * e / n as f32;
        }
        let (_, cg) = self.critic.backward(&self.critic_params, &tape, &dq)?;
        self.critic_opt
            .step(&mut self.critic_params, &cg, self.cfg.critic_lr)?;

        // Actor: ascend Q(s, mu(s)) through the (just updated) critic.
        let at = self.actor.forward(&self.actor_params, &s)?;
        let sa = ndarray::concatenate![Axis(1), s, at.output.clone()];
        let ct = self.critic.forward(&self.critic_params, &sa)?;
        let value = ct.output.sum() / n as f32;
        let dneg = Array2::<f32>::from_elem((n, 1), -1.0 / n as f32);
        let (dsa, _) = self.critic.backward(&self.critic_params, &ct, &dneg)?;
        let da = dsa.slice(ndarray::s![.., sd..]).to_owned();
        let (_, ag) = self.actor.backward(&self.actor_params, &at, &da)?;
        self.actor_opt
            .step(&mut self.actor_params, &ag, self.cfg.actor_lr)?;

        soft_update(&mut self.actor_target, &self.actor_params, self.cfg.tau);
        soft_update(&mut self.critic_target, &self.critic_params, self.cfg.tau);
        Ok(UpdateStats {
            critic_loss: loss,
            policy_value: value,
        })
    }
}

//! AMC-style automated pruning (He et al., "AMC: AutoML for Model Compression and Acceleration
//! on Mobile Devices", ECCV 2018): a DDPG agent ([`ddpg`]) walks the prunable layers of a
//! network one by one and picks each layer's sparsity ratio under a FLOPs budget; the reward is
//! the validation accuracy of the pruned model *without* fine-tuning.
//!
//! The environment is a trait ([`PruneEnv`]) so the search can run on any model; [`env`](mod@env) holds
//! the implementation for a real [`crate::engine::exec::Net`] (channel pruning by l2 magnitude,
//! mask-based evaluation on a validation subset).
//!
//! **State** of layer `t` (11 features, as AMC's embedding): `t`, input channels, output
//! channels, input height, input width, stride, kernel size, the layer's FLOPs (these eight
//! min-max normalised over the layers, 0 when constant), then `reduced` (fraction of the
//! unpruned network's FLOPs removed by the actions on layers `< t`), `rest` (fraction of the
//! unpruned FLOPs in layers `> t`, by [`LayerInfo::flops`]) and the previous action.
//!
//! **Action**: sparsity ratio (fraction of input channels removed) in `[lbound, rbound]`
//! (AMC: [0, 0.8]). **Budget** (fraction of the unpruned FLOPs kept, in (0, 1]) is enforced as
//! in AMC by clamping: action `t` is raised to the smallest value such that the budget can
//! still be met with every later layer at `rbound`; the search fails early if even all layers at
//! `rbound` cannot meet it. Every episode therefore ends within budget (given
//! [`PruneEnv::flops`] is non-increasing in each rate; checked).
//!
//! **Reward** `R_err = -error = accuracy - 1` of the pruned, not fine-tuned model on the
//! environment's validation split, given to every transition of the episode (as AMC's code);
//! the agent subtracts a moving-average baseline ([`ddpg`] module doc).
//!
//! **Exploration**: the first `warmup` episodes take actions uniform in `[lbound, rbound]`;
//! afterwards action = truncated normal around `mu(s)` on `[lbound, rbound]` with
//! `sigma = sigma0 * decay^(episode - warmup)`. After every post-warm-up episode the agent does
//! `updates_per_step` updates per transition of the episode.
//!
//! **Hyper-parameters** ([`AmcConfig::amc`], AMC's reference values): actor and critic with two
//! hidden layers of 300 units, Adam with lr 1e-4 (actor) / 1e-3 (critic), tau 0.01, batch 64,
//! discount 1, sigma0 0.5 decaying 0.95 per episode, 100 warm-up episodes of 800, a replay
//! buffer of 100 episodes, baseline rate 0.5. Tests scale these down (and say so).
//!
//! The search returns the best episode seen (highest reward, earliest on ties), as AMC reports
//! its best policy; [`AmcResult::write_toml`] writes its rates as the `"layer.name" = rate` file
//! that `variant` (`--variant channel --rates FILE`) and the cost model read.
//!
//! Seeded with `rand_chacha::ChaCha8Rng`; everything is serial, so the same seed gives the same
//! search for any thread count (as long as the environment is deterministic).

pub mod ddpg;
pub mod env;

use crate::{Error, Result};
use ddpg::{truncated_normal, Ddpg, DdpgConfig, ReplayBuffer, Transition};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub use env::NetPruneEnv;

/// One prunable layer as the agent sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// The key the rate is stored under (for channel pruning: the consuming conv).
    pub name: String,
    pub in_c: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    /// Input feature map `[H, W]`.
    pub in_hw: [usize; 2],
    /// FLOPs (MACs) of the unpruned layer.
    pub flops: f64,
}

/// A pruning environment: the prunable layers, the cost of a rate vector and its reward.
/// Rates are aligned with [`PruneEnv::layers`].
pub trait PruneEnv {
    fn layers(&self) -> Vec<LayerInfo>;
    /// Total FLOPs (MACs) of the model pruned at `rates`; must not increase when a rate grows.
    fn flops(&self, rates: &[f64]) -> Result<f64>;
    /// Validation accuracy in [0, 1] of the model pruned at `rates`, without fine-tuning.
    fn evaluate(&mut self, rates: &[f64]) -> Result<f64>;
}

/// Search settings (module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AmcConfig {
    /// Fraction of the unpruned FLOPs the pruned model may keep, in (0, 1].
    pub budget: f64,
    pub episodes: usize,
    pub warmup: usize,
    pub lbound: f64,
    pub rbound: f64,
    pub sigma: f64,
    pub sigma_decay: f64,
    pub updates_per_step: usize,
    /// Replay buffer capacity in episodes.
    pub buffer_episodes: usize,
    pub ddpg: DdpgConfig,
}

impl AmcConfig {
    /// AMC's reference hyper-parameters at FLOPs budget `budget`.
    pub fn amc(budget: f64) -> Self {
        AmcConfig {
            budget,
            episodes: 800,
            warmup: 100,
            lbound: 0.0,
            rbound: 0.8,
            sigma: 0.5,
            sigma_decay: 0.95,
            updates_per_step: 1,
            buffer_episodes: 100,
            ddpg: DdpgConfig::amc(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.budget.is_finite() && self.budget > 0.0 && self.budget <= 1.0) {
            return Err(Error::input(
                "budget",
                format!(
                    "{} is not a fraction of FLOPs to keep in (0, 1]",
                    self.budget
                ),
            ));
        }
        if !(self.lbound.is_finite()
            && self.rbound.is_finite()
            && 0.0 <= self.lbound
            && self.lbound <= self.rbound
            && self.rbound < 1.0)
        {
            return Err(Error::input(
                "lbound/rbound",
                format!(
                    "need 0 <= lbound <= rbound < 1, got {} and {}",
                    self.lbound, self.rbound
                ),
            ));
        }
        if self.episodes == 0 {
            return Err(Error::input("episodes", "must be at least 1"));
        }
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(Error::input(
                "sigma",
                format!("{} is not a finite number >= 0", self.sigma),
            ));
        }
        if !(self.sigma_decay.is_finite() && (0.0..=1.0).contains(&self.sigma_decay)) {
            return Err(Error::input(
                "sigma_decay",
                format!("{} is not in [0, 1]", self.sigma_decay),
            ));
        }
        if self.buffer_episodes == 0 {
            return Err(Error::input("buffer_episodes", "must be at least 1"));
        }
        self.ddpg.validate()
    }
}

/// One episode of the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    pub episode: usize,
    pub rates: Vec<f64>,
    /// FLOPs of the pruned model / unpruned FLOPs.
    pub flops_ratio: f64,
    pub accuracy: f64,
    pub reward: f64,
    /// Exploration noise (`None` in warm-up: uniform random actions).
    pub sigma: Option<f64>,
    /// Mean critic loss of the updates after this episode.
    pub critic_loss: Option<f32>,
}

/// The best rates found and the whole search history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AmcResult {
    /// Per-layer rate of the best episode, by [`LayerInfo::name`].
    pub rates: BTreeMap<String, f64>,
    pub reward: f64,
    pub accuracy: f64,
    pub flops_ratio: f64,
    pub budget: f64,
    pub best_episode: usize,
    pub history: Vec<EpisodeRecord>,
}

impl AmcResult {
    /// Writes the rates as `"layer.name" = rate` lines (atomically), the per-layer overrides
    /// format of `variant` (`configs/rates_example.toml`), with a comment saying where they
    /// came from.
    pub fn write_toml(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let body = toml::to_string(&self.rates)
            .map_err(|e| Error::internal(path.display().to_string(), e.to_string()))?;
        let text = format!(
            "# AMC agent rates (fraction of input channels removed, keyed by the consuming conv):\n\
             # FLOPs {:.4} of unpruned (budget {}), validation accuracy {:.4} without \
             fine-tuning, episode {}.\n{body}",
            self.flops_ratio, self.budget, self.accuracy, self.best_episode
        );
        crate::io::atomic::write_bytes_atomic(path, text.as_bytes())
    }
}

/// The 8 static features of every layer, min-max normalised per feature over the layers.
fn static_features(layers: &[LayerInfo]) -> Vec<[f32; 8]> {
    let raw: Vec<[f64; 8]> = layers
        .iter()
        .enumerate()
        .map(|(t, l)| {
            [
                t as f64,
                l.in_c as f64,
                l.out_c as f64,
                l.in_hw[0] as f64,
                l.in_hw[1] as f64,
                l.stride as f64,
                l.kernel as f64,
                l.flops,
            ]
        })
        .collect();
    let mut out = vec![[0f32; 8]; raw.len()];
    for f in 0..8 {
        let lo = raw.iter().map(|r| r[f]).fold(f64::INFINITY, f64::min);
        let hi = raw.iter().map(|r| r[f]).fold(f64::NEG_INFINITY, f64::max);
        for (o, r) in out.iter_mut().zip(&raw) {
            o[f] = if hi > lo {
                ((r[f] - lo) / (hi - lo)) as f32
            } else {
                0.0
            };
        }
    }
    out
}

/// The full state of layer `t` given the actions on layers `< t` (module docs).
fn state(
    env: &dyn PruneEnv,
    stat: &[[f32; 8]],
    layers: &[LayerInfo],
    actions: &[f64],
    t: usize,
    full: f64,
) -> Result<Vec<f32>> {
    let mut rates = actions[..t].to_vec();
    rates.resize(layers.len(), 0.0);
    let reduced = (full - env.flops(&rates)?) / full;
    let rest: f64 = layers[t + 1..].iter().map(|l| l.flops).sum::<f64>() / full;
    let prev = if t == 0 { 0.0 } else { actions[t - 1] };
    let mut s = stat[t].to_vec();
    s.extend([reduced as f32, rest as f32, prev as f32]);
    Ok(s)
}

/// Smallest action for layer `t` (given `actions[..t]`) that still lets the budget be met with
/// every later layer at `rbound`: bisection on the FLOPs, keeping the upper end feasible.
fn min_action(
    env: &dyn PruneEnv,
    actions: &[f64],
    t: usize,
    n: usize,
    cfg: &AmcConfig,
    target: f64,
) -> Result<f64> {
    let flops_at = |a: f64| -> Result<f64> {
        let mut r = actions[..t].to_vec();
        r.push(a);
        r.resize(n, cfg.rbound);
        env.flops(&r)
    };
    if flops_at(cfg.lbound)? <= target {
        return Ok(cfg.lbound);
    }
    let (mut lo, mut hi) = (cfg.lbound, cfg.rbound);
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if flops_at(mid)? <= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// Runs the AMC search on `env` (module docs).
pub fn search(env: &mut dyn PruneEnv, cfg: &AmcConfig, seed: u64) -> Result<AmcResult> {
    cfg.validate()?;
    let layers = env.layers();
    let n = layers.len();
    if n == 0 {
        return Err(Error::input(
            "model",
            "has no prunable layer (channel pruning needs a conv whose output feeds only convs)",
        ));
    }
    let full = env.flops(&vec![0.0; n])?;
    if !(full.is_finite() && full > 0.0) {
        return Err(Error::input(
            "model",
            format!("unpruned FLOPs are {full}, expected a positive number"),
        ));
    }
    let target = cfg.budget * full;
    let floor = env.flops(&vec![cfg.rbound; n])?;
    if floor > target {
        return Err(Error::input(
            "budget",
            format!(
                "{} is unreachable: even every layer at the largest rate {} keeps {:.4} of the \
                 FLOPs (only these {n} layers can be pruned)",
                cfg.budget,
                cfg.rbound,
                floor / full
            ),
        ));
    }
    let stat = static_features(&layers);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut agent = Ddpg::new(11, &cfg.ddpg, &mut rng)?;
    let mut buffer = ReplayBuffer::new(cfg.buffer_episodes * n);
    let mut history: Vec<EpisodeRecord> = Vec::with_capacity(cfg.episodes);
    let mut best: Option<usize> = None;

    for ep in 0..cfg.episodes {
        let warm = ep < cfg.warmup;
        let sigma = (!warm).then(|| cfg.sigma * cfg.sigma_decay.powi((ep - cfg.warmup) as i32));
        let mut actions: Vec<f64> = Vec::with_capacity(n);
        let mut states: Vec<Vec<f32>> = Vec::with_capacity(n + 1);
        for t in 0..n {
            let s = state(env, &stat, &layers, &actions, t, full)?;
            let a = match sigma {
                None => rng.gen_range(cfg.lbound..=cfg.rbound),
                Some(sg) => {
                    let mu = agent.act(&s)? as f64;
                    truncated_normal(&mut rng, mu, sg, cfg.lbound, cfg.rbound)
                }
            };
            let a = a.max(min_action(env, &actions, t, n, cfg, target)?);
            actions.push(a);
            states.push(s);
        }
        let flops = env.flops(&actions)?;
        if flops > target * (1.0 + 1e-9) {
            return Err(Error::input(
                "environment",
                format!(
                    "FLOPs {flops} exceed the budget {target} after clamping: flops(rates) must \
                     not increase when a rate grows"
                ),
            ));
        }
        let accuracy = env.evaluate(&actions)?;
        if !(accuracy.is_finite() && (0.0..=1.0).contains(&accuracy)) {
            return Err(Error::input(
                "environment",
                format!("accuracy {accuracy} is not in [0, 1]"),
            ));
        }
        let reward = accuracy - 1.0;
        for t in 0..n {
            // The terminal transition's next state is never used (done), so repeat the state.
            let next = if t + 1 < n {
                states[t + 1].clone()
            } else {
                states[t].clone()
            };
            buffer.push(Transition {
                state: states[t].clone(),
                action: actions[t] as f32,
                reward: reward as f32,
                next_state: next,
                done: t + 1 == n,
            });
        }
        let mut critic_loss = None;
        if !warm {
            let steps = n * cfg.updates_per_step;
            let mut sum = 0.0f32;
            for _ in 0..steps {
                let batch = buffer.sample(&mut rng, cfg.ddpg.batch_size);
                sum += agent.update(&batch)?.critic_loss;
            }
            if steps > 0 {
                critic_loss = Some(sum / steps as f32);
            }
        }
        if best.is_none_or(|b: usize| reward > history[b].reward) {
            best = Some(ep);
        }
        let rec = EpisodeRecord {
            episode: ep,
            rates: actions,
            flops_ratio: flops / full,
            accuracy,
            reward,
            sigma,
            critic_loss,
        };
        history.push(rec);
    }
    let b = best.expect("at least one episode");
    let rec = &history[b];
    Ok(AmcResult {
        rates: layers
            .iter()
            .zip(&rec.rates)
            .map(|(l, &r)| (l.name.clone(), r))
            .collect(),
        reward: rec.reward,
        accuracy: rec.accuracy,
        flops_ratio: rec.flops_ratio,
        budget: cfg.budget,
        best_episode: b,
        history,
    })
}

/// The uniform rate (same for every layer) that meets `budget` with the least pruning:
/// bisection on [0, `rbound`] keeping the upper end feasible, for comparisons at equal budget.
pub fn uniform_rate(env: &dyn PruneEnv, budget: f64, rbound: f64) -> Result<f64> {
    let n = env.layers().len();
    let full = env.flops(&vec![0.0; n])?;
    let target = budget * full;
    if env.flops(&vec![0.0; n])? <= target {
        return Ok(0.0);
    }
    if env.flops(&vec![rbound; n])? > target {
        return Err(Error::input(
            "budget",
            format!("{budget} is unreachable with a uniform rate <= {rbound}"),
        ));
    }
    let (mut lo, mut hi) = (0.0, rbound);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if env.flops(&vec![mid; n])? <= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

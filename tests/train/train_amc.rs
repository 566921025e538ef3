//! The AMC agent against independent truth: MLP backprop vs finite differences, the truncated
//! normal vs its closed-form mean, soft updates vs their geometric closed form, DDPG on a
//! one-step bandit with a known optimum, and the whole search on an analytic pruning
//! environment whose constrained optimum is computed by Lagrange multipliers. Budgets are
//! checked by property tests. All configs are scaled down from AMC's (300-unit layers, 800
//! episodes) to run in seconds.

use breakingbed::train::amc::ddpg::{
    soft_update, truncated_normal, Ddpg, DdpgConfig, Mlp, OutAct, Transition,
};
use breakingbed::train::amc::{search, uniform_rate, AmcConfig, LayerInfo, PruneEnv};
use breakingbed::train::Params;
use breakingbed::{Error, Result};
use ndarray::{Array2, ArrayD, IxDyn};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Analytic environment: layer `i` removes `f_i * r_i` FLOPs (of `fixed + sum f_i`) and costs
/// `s_i * r_i^2` accuracy: accuracy = `top - sum s_i r_i^2`.
struct Quadratic {
    f: Vec<f64>,
    s: Vec<f64>,
    fixed: f64,
    top: f64,
}

impl Quadratic {
    fn acc(&self, r: &[f64]) -> f64 {
        self.top - self.s.iter().zip(r).map(|(s, r)| s * r * r).sum::<f64>()
    }

    /// Optimum of max acc s.t. flops <= budget * full, r in [0, hi]: KKT gives
    /// `r_i = clip(lambda f_i / (2 s_i), 0, hi)`; lambda by bisection on the active budget.
    fn optimum(&self, budget: f64, hi: f64) -> Vec<f64> {
        let full = self.fixed + self.f.iter().sum::<f64>();
        let need = full * (1.0 - budget);
        let rates = |l: f64| -> Vec<f64> {
            self.f
                .iter()
                .zip(&self.s)
                .map(|(f, s)| (l * f / (2.0 * s)).clamp(0.0, hi))
                .collect()
        };
        let removed = |r: &[f64]| self.f.iter().zip(r).map(|(f, r)| f * r).sum::<f64>();
        let (mut lo, mut up) = (0.0, 1e6);
        for _ in 0..200 {
            let mid = 0.5 * (lo + up);
            if removed(&rates(mid)) >= need {
                up = mid;
            } else {
                lo = mid;
            }
        }
        rates(up)
    }
}

impl PruneEnv for Quadratic {
    fn layers(&self) -> Vec<LayerInfo> {
        self.f
            .iter()
            .enumerate()
            .map(|(i, &f)| LayerInfo {
                name: format!("layer{i}.conv"),
                in_c: 16 << (i % 3),
                out_c: 16 << ((i + 1) % 3),
                kernel: 3,
                stride: 1 + i % 2,
                in_hw: [32 >> (i % 3), 32 >> (i % 3)],
                flops: f,
            })
            .collect()
    }
    fn flops(&self, r: &[f64]) -> Result<f64> {
        Ok(self.fixed
            + self
                .f
                .iter()
                .zip(r)
                .map(|(f, r)| f * (1.0 - r))
                .sum::<f64>())
    }
    fn evaluate(&mut self, r: &[f64]) -> Result<f64> {
        Ok(self.acc(r))
    }
}

fn quadratic() -> Quadratic {
    // Sensitivities differ by 20x, so uniform pruning is far from optimal.
    Quadratic {
        f: vec![10.0, 30.0, 20.0, 40.0, 25.0],
        s: vec![0.40, 0.02, 0.30, 0.03, 0.10],
        fixed: 5.0,
        top: 0.95,
    }
}

fn small_cfg(budget: f64) -> AmcConfig {
    let mut c = AmcConfig::amc(budget);
    // Scaled down from AMC (800 episodes, 100 warm-up, 300-unit layers) to run in seconds.
    c.episodes = 120;
    c.warmup = 30;
    c.ddpg.hidden = vec![64, 64];
    c.ddpg.batch_size = 32;
    c
}

#[test]
fn mlp_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for out in [OutAct::Sigmoid, OutAct::Identity] {
        let mlp = Mlp::new("m", vec![4, 6, 5, 2], out);
        let mut params = mlp.init(&mut rng);
        // Larger output weights than the DDPG init so the last layer's gradient is not tiny.
        params
            .get_mut("m.fc3.weight")
            .unwrap()
            .mapv_inplace(|v| v * 200.0);
        let x = Array2::from_shape_fn((3, 4), |_| rng.gen_range(-1.0f32..1.0));
        let dy = Array2::from_shape_fn((3, 2), |_| rng.gen_range(-1.0f32..1.0));
        let loss = |p: &Params, x: &Array2<f32>| -> f64 {
            let y = mlp.forward(p, x).unwrap();
            y.output()
                .iter()
                .zip(&dy)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        let tape = mlp.forward(&params, &x).unwrap();
        let (dx, grads) = mlp.backward(&params, &tape, &dy).unwrap();
        // Small enough that no ReLU pre-activation crosses zero, large enough for f32 round-off.
        let eps = 1e-3f32;
        let close = |num: f64, ana: f64, what: &str| {
            assert!(
                (num - ana).abs() <= 2e-3 + 2e-2 * ana.abs(),
                "{what}: finite difference {num} vs backprop {ana}"
            );
        };
        for (name, g) in &grads {
            for k in 0..g.len() {
                let mut p1 = params.clone();
                let mut p2 = params.clone();
                p1.get_mut(name).unwrap().as_slice_mut().unwrap()[k] += eps;
                p2.get_mut(name).unwrap().as_slice_mut().unwrap()[k] -= eps;
                let num = (loss(&p1, &x) - loss(&p2, &x)) / (2.0 * eps as f64);
                close(
                    num,
                    g.as_slice().unwrap()[k] as f64,
                    &format!("{name}[{k}]"),
                );
            }
        }
        for k in 0..x.len() {
            let mut x1 = x.clone();
            let mut x2 = x.clone();
            x1.as_slice_mut().unwrap()[k] += eps;
            x2.as_slice_mut().unwrap()[k] -= eps;
            let num = (loss(&params, &x1) - loss(&params, &x2)) / (2.0 * eps as f64);
            close(num, dx.as_slice().unwrap()[k] as f64, &format!("dx[{k}]"));
        }
    }
}

/// Standard normal CDF via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn phi_cdf(x: f64) -> f64 {
    let z = x.abs() / 2f64.sqrt();
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + if x >= 0.0 { erf } else { -erf })
}

fn phi_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

#[test]
fn truncated_normal_matches_closed_form_mean() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (mu, sigma) in [(0.7, 0.5), (0.1, 0.3), (0.4, 0.05)] {
        let (lo, hi) = (0.0, 0.8);
        let n = 40_000;
        let xs: Vec<f64> = (0..n)
            .map(|_| truncated_normal(&mut rng, mu, sigma, lo, hi))
            .collect();
        assert!(xs.iter().all(|&x| (lo..=hi).contains(&x)));
        let mean = xs.iter().sum::<f64>() / n as f64;
        // E[X | lo <= X <= hi] = mu + sigma (pdf(a) - pdf(b)) / (cdf(b) - cdf(a)).
        let (a, b) = ((lo - mu) / sigma, (hi - mu) / sigma);
        let truth = mu + sigma * (phi_pdf(a) - phi_pdf(b)) / (phi_cdf(b) - phi_cdf(a));
        let sd = sigma.min(hi - lo) / (n as f64).sqrt();
        assert!(
            (mean - truth).abs() < 5.0 * sd,
            "mu {mu} sigma {sigma}: sample mean {mean}, closed form {truth}"
        );
    }
    // sigma 0: the mean, clamped.
    assert_eq!(truncated_normal(&mut rng, 0.95, 0.0, 0.0, 0.8), 0.8);
}

#[test]
fn soft_update_is_geometric() {
    let mut target = Params::new();
    target.insert("w".into(), ArrayD::from_elem(IxDyn(&[3]), 2.0f32));
    let mut online = Params::new();
    online.insert("w".into(), ArrayD::from_elem(IxDyn(&[3]), -1.0f32));
    let tau = 0.01f32;
    for _ in 0..100 {
        soft_update(&mut target, &online, tau);
    }
    // t_k = o + (t_0 - o)(1 - tau)^k
    let truth = -1.0 + 3.0 * (1.0f64 - 0.01).powi(100);
    for &v in target["w"].iter() {
        assert!((v as f64 - truth).abs() < 1e-4, "{v} vs {truth}");
    }
}

#[test]
fn ddpg_finds_the_best_action_of_a_one_step_bandit() {
    // Reward -(a - 0.3)^2, every transition terminal: the optimal deterministic policy is 0.3.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let cfg = DdpgConfig {
        hidden: vec![32, 32],
        actor_lr: 1e-3,
        critic_lr: 1e-2,
        tau: 0.05,
        gamma: 1.0,
        batch_size: 32,
        baseline_alpha: 0.5,
    };
    let mut agent = Ddpg::new(2, &cfg, &mut rng).unwrap();
    let state = vec![0.5f32, 1.0];
    let data: Vec<Transition> = (0..256)
        .map(|_| {
            let a: f32 = rng.gen_range(0.0..1.0);
            Transition {
                state: state.clone(),
                action: a,
                reward: -(a - 0.3) * (a - 0.3),
                next_state: state.clone(),
                done: true,
            }
        })
        .collect();
    for _ in 0..1500 {
        let batch: Vec<&Transition> = (0..32).map(|_| &data[rng.gen_range(0..256)]).collect();
        agent.update(&batch).unwrap();
    }
    let a = agent.act(&state).unwrap();
    assert!((a - 0.3).abs() < 0.05, "actor chose {a}, optimum 0.3");
}

#[test]
fn search_beats_uniform_and_approaches_the_analytic_optimum() {
    let mut env = quadratic();
    let budget = 0.5;
    let cfg = small_cfg(budget);
    let res = search(&mut env, &cfg, 11).unwrap();
    let full = env.flops(&[0.0; 5]).unwrap();
    let u = uniform_rate(&env, budget, cfg.rbound).unwrap();
    let uni = env.acc(&[u; 5]);
    let opt_rates = env.optimum(budget, cfg.rbound);
    let opt = env.acc(&opt_rates);
    let best: Vec<f64> = res.history[res.best_episode].rates.clone();
    assert!(env.flops(&best).unwrap() <= budget * full + 1e-9);
    assert!(env.flops(&opt_rates).unwrap() <= budget * full + 1e-6);
    eprintln!(
        "quadratic env: agent {:.4}, uniform {uni:.4} (rate {u:.3}), optimum {opt:.4} {opt_rates:?}",
        res.accuracy
    );
    assert!(opt >= res.accuracy - 1e-9, "nothing beats the KKT optimum");
    assert!(
        res.accuracy > uni,
        "agent {} <= uniform {uni}",
        res.accuracy
    );
    // The agent closes most of the gap between uniform pruning and the optimum.
    assert!(
        opt - res.accuracy < 0.25 * (opt - uni),
        "agent {} too far from optimum {opt} (uniform {uni})",
        res.accuracy
    );
    // The DDPG phase, not only the random warm-up, finds good policies: its late episodes beat
    // the warm-up's average.
    let warm: f64 = res.history[..cfg.warmup]
        .iter()
        .map(|e| e.accuracy)
        .sum::<f64>()
        / cfg.warmup as f64;
    let late = &res.history[cfg.episodes - 20..];
    let late_mean = late.iter().map(|e| e.accuracy).sum::<f64>() / late.len() as f64;
    assert!(
        late_mean > warm,
        "late episodes {late_mean} vs warm-up {warm}"
    );
}

#[test]
fn search_is_deterministic_per_seed() {
    let mut cfg = small_cfg(0.6);
    cfg.episodes = 12;
    cfg.warmup = 4;
    let a = search(&mut quadratic(), &cfg, 5).unwrap();
    let b = search(&mut quadratic(), &cfg, 5).unwrap();
    let c = search(&mut quadratic(), &cfg, 6).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.history, c.history);
}

#[test]
fn write_toml_gives_variant_rates() {
    let mut cfg = small_cfg(0.6);
    cfg.episodes = 3;
    cfg.warmup = 3;
    let res = search(&mut quadratic(), &cfg, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rates.toml");
    res.write_toml(&p).unwrap();
    let back: std::collections::BTreeMap<String, f64> =
        toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(back, res.rates);
    assert_eq!(back.len(), 5);
}

#[test]
fn bad_settings_are_named_errors() {
    let field = |r: Result<_>| match r {
        Err(Error::Input { context, .. }) => context,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted bad input"),
    };
    for b in [0.0, -0.5, 1.5, f64::NAN] {
        assert_eq!(
            field(search(&mut quadratic(), &small_cfg(b), 0).map(|_| ())),
            "budget"
        );
    }
    // Unreachable: even all layers at rbound 0.8 keep 5 + 0.2 * 125 = 30 of 130 FLOPs.
    let e = search(&mut quadratic(), &small_cfg(0.2), 0).unwrap_err();
    assert!(e.to_string().contains("unreachable"), "{e}");
    let mut c = small_cfg(0.5);
    c.rbound = 1.0;
    assert_eq!(
        field(search(&mut quadratic(), &c, 0).map(|_| ())),
        "lbound/rbound"
    );
    let mut c = small_cfg(0.5);
    c.ddpg.tau = 2.0;
    assert_eq!(
        field(search(&mut quadratic(), &c, 0).map(|_| ())),
        "ddpg.tau"
    );
    let mut empty = Quadratic {
        f: vec![],
        s: vec![],
        fixed: 1.0,
        top: 1.0,
    };
    assert_eq!(
        field(search(&mut empty, &small_cfg(0.5), 0).map(|_| ())),
        "model"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_episode_meets_the_budget(
        f in proptest::collection::vec(1.0f64..50.0, 1..6),
        budget in 0.35f64..0.95,
        seed in 0u64..1000,
    ) {
        let n = f.len();
        let mut env = Quadratic { s: vec![0.1; n], f, fixed: 1.0, top: 1.0 };
        let full = env.flops(&vec![0.0; n]).unwrap();
        let mut cfg = small_cfg(budget);
        cfg.episodes = 6;
        cfg.warmup = 3;
        cfg.ddpg.hidden = vec![8];
        cfg.ddpg.batch_size = 4;
        match search(&mut env, &cfg, seed) {
            Ok(res) => {
                for e in &res.history {
                    prop_assert!(e.flops_ratio <= budget + 1e-9, "episode {} keeps {}", e.episode, e.flops_ratio);
                    prop_assert!(e.rates.iter().all(|r| (cfg.lbound..=cfg.rbound).contains(r)));
                }
            }
            Err(e) => {
                // Only when even the largest rates cannot meet the budget.
                prop_assert!(env.flops(&vec![cfg.rbound; n]).unwrap() > budget * full, "{}", e);
            }
        }
    }
}

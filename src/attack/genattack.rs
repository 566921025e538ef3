//! GenAttack (Alzantot et al., "GenAttack: Practical Black-Box Attacks with Gradient-Free
//! Optimization", GECCO 2019): a query-only genetic search inside an L-inf ball, targeted or
//! untargeted.
//!
//! # Algorithm (one image `x`, budget `eps`, per channel in unit scale)
//! 1. Population of `N` images `x + U(-eps, eps)` (element-wise), projected into the ball and the
//!    unit box.
//! 2. Each generation: fitness of every individual from its softmax probabilities,
//!    - targeted at `t`: `ln p_t - ln sum_{j != t} p_j` (the paper's fitness),
//!    - untargeted, true label `y`: `ln sum_{j != y} p_j - ln p_y` (the same log-odds, turned
//!      around; the paper's untargeted variant).
//!
//!    The fittest individual is the *elite*; the attack stops once the elite is adversarial
//!    (targeted: top-1 is `t`; untargeted: top-1 is not `y`).
//! 3. Next generation: the elite survives unchanged (elitism); each of the other `N - 1` children
//!    picks two parents by fitness-proportional selection with probabilities
//!    `softmax(fitness / tau)`, takes each element from parent 1 with probability
//!    `s_1 / (s_1 + s_2)` (uniform crossover weighted by the parents' selection probabilities
//!    `s_i`: the raw fitness is a log-odds and may be negative, so it cannot be used as a weight
//!    directly), then mutates each element with probability `rho` by adding
//!    `U(-alpha * eps, alpha * eps)`, and is projected into the ball and the box.
//! 4. Adaptive schedule (paper, Sec. 3): `rho = max(rho_min, 0.5 * 0.9^k)` and
//!    `alpha = max(alpha_min, 0.4 * 0.9^k)`, where `k` counts plateaus: runs of `plateau_window`
//!    consecutive generations in which the elite's fitness did not improve by more than
//!    `plateau_tol` (see [`PlateauCounter`]). The paper leaves the exact plateau test to its code;
//!    `plateau_window = 1` (default) counts every non-improving generation. Without `adaptive`,
//!    `rho = rho_min` and `alpha = alpha_min` throughout.
//!
//! The elite's fitness is carried over, so generation 1 costs `N` queries and every later one
//! `N - 1`, plus one query for the clean image.
//!
//! # Defaults
//! Paper: population `N = 6`, `tau = 0.1`, `rho_min = 0.1`, `alpha_min = 0.15`, adaptive
//! schedule on. BreakingBED uses `N = 6` (ImageNet, its Table 6, 200-1000 generations) and `N = 16`
//! (CIFAR-10, 50-200 generations) at eps 8 and 12 (pixel scale). [`GenAttackConfig::foolbox3`]
//! gives Foolbox 3's defaults (population 10, mutation probability 0.10, mutation range 0.15,
//! sampling temperature 0.3, 1000 steps, fixed rates); Foolbox 2.x used `N = 10, rho = 0.05,
//! alpha = 1.0, tau = 0.1`. The paper's dimension reduction for ImageNet (searching a
//! down-sampled perturbation) is not implemented.
//!
//! # Failure
//! An attack whose final elite is not adversarial returns the *clean* image (norms 0, the clean
//! prediction and loss), as CW does. The elite of a failed run is random noise inside the ball,
//! chosen for the target's log-odds and blind to the true label, so on a model with small
//! margins it moved initially misclassified images onto their label about as often as it moved
//! correct ones off it: a targeted run reported a higher accuracy after the attack than before
//! (reproduced on a random-init ResNet20-XNOR, eps 4 pixel, 1 generation: among 142 failed
//! images 13 went from wrong to right and 10 from right to wrong). Now a record's `adv_pred`
//! is either adversarial or the clean prediction, so the accuracy after any GenAttack run is at
//! most the clean accuracy (tested).
//!
//! # Trace
//! `result.trace` holds one point per generation evaluated (iteration `g`, 1-based; iteration 0
//! is the clean image) with the elite's prediction and its cross-entropy w.r.t. the true label.
//! An attack that stopped at generation `g` keeps its elite for all later generations; use
//! [`accuracy_at_generations`] to build the paper's OA/TA table (which, by the failure rule,
//! counts a not-yet-adversarial elite with the clean prediction).

use ndarray::{Array3, Array4, ArrayView3, ArrayView4, Axis, Zip};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::classifier::{argmax, per_image_oracle, Model, Oracle};
use super::local_search::{
    check_batch, check_class, check_eps, check_image, cross_entropy, ln_p, query_one, scale_units,
};
use super::result::{ImageResult, TracePoint};
use super::spec::{
    check_count, check_nonneg, check_positive, check_probability, defaults, GenAttackSpec,
};
use super::streams::image_rng;
use super::threat::{norms, Ball, Norms, Scale};
use crate::{Error, Result};

/// Parameters of [`genattack`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenAttackConfig {
    /// Population size N (at least 2: the elite plus one child).
    pub population: usize,
    /// Maximum number of generations G.
    pub generations: usize,
    /// L-inf budget in `scale` units.
    pub eps: f32,
    /// Scale of `eps` and of the norms reported in the result.
    pub scale: Scale,
    /// Sampling temperature tau of the selection softmax.
    pub tau: f32,
    /// Mutation probability (the floor of the adaptive schedule, or the constant without it).
    pub rho_min: f32,
    /// Mutation range as a fraction of eps (floor of the schedule, or the constant).
    pub alpha_min: f32,
    /// Use the paper's adaptive schedule for rho and alpha.
    pub adaptive: bool,
    /// Elite fitness gains at or below this count as no improvement.
    pub plateau_tol: f32,
    /// Consecutive non-improving generations that make one plateau.
    pub plateau_window: usize,
}

impl Default for GenAttackConfig {
    fn default() -> Self {
        GenAttackConfig {
            population: defaults::GA_POPULATION,
            generations: 1000,
            eps: 8.0,
            scale: Scale::Pixel,
            tau: defaults::GA_TEMPERATURE,
            rho_min: defaults::GA_RHO_MIN,
            alpha_min: defaults::GA_ALPHA_MIN,
            adaptive: true,
            plateau_tol: 1e-5,
            plateau_window: 1,
        }
    }
}

impl GenAttackSpec {
    /// The [`GenAttackConfig`] this spec stands for (plateau settings keep their defaults).
    pub fn config(&self) -> GenAttackConfig {
        GenAttackConfig {
            population: self.population,
            generations: self.generations,
            eps: self.eps.value,
            scale: self.eps.scale,
            tau: self.temperature,
            rho_min: self.rho_min,
            alpha_min: self.alpha_min,
            ..GenAttackConfig::default()
        }
    }
}

impl GenAttackConfig {
    /// Foolbox 3's `GenAttack` defaults (fixed mutation probability and range).
    pub fn foolbox3() -> Self {
        GenAttackConfig {
            population: 10,
            tau: 0.3,
            adaptive: false,
            ..GenAttackConfig::default()
        }
    }

    /// Checks every field; errors name the field as `genattack.<field>`.
    pub fn validate(&self) -> Result<()> {
        let field = |f: &str| format!("genattack.{f}");
        if self.population < 2 {
            return Err(Error::input(
                field("population"),
                format!(
                    "needs at least 2 individuals (elite + child), got {}",
                    self.population
                ),
            ));
        }
        check_count(self.generations, "generations", "genattack")?;
        check_eps(self.eps, &field("eps"))?;
        check_positive(self.tau, "tau", "genattack")?;
        check_probability(self.rho_min, "rho_min", "genattack")?;
        check_nonneg(self.alpha_min, "alpha_min", "genattack")?;
        check_nonneg(self.plateau_tol, "plateau_tol", "genattack")?;
        if self.plateau_window == 0 {
            return Err(Error::input(
                field("plateau_window"),
                "must be at least 1 generation",
            ));
        }
        Ok(())
    }
}

/// Counts plateaus of the elite's fitness for the adaptive schedule.
#[derive(Clone, Debug)]
pub struct PlateauCounter {
    tol: f64,
    window: usize,
    /// Best elite fitness so far; `None` before the first generation.
    best: Option<f64>,
    stall: usize,
    plateaus: u32,
}

impl PlateauCounter {
    pub fn new(tol: f64, window: usize) -> Self {
        PlateauCounter {
            tol,
            window: window.max(1),
            best: None,
            stall: 0,
            plateaus: 0,
        }
    }

    /// Feeds one generation's elite fitness; returns the number of plateaus so far. The first
    /// generation only sets the reference.
    pub fn update(&mut self, elite_fitness: f64) -> u32 {
        match self.best {
            Some(best) if elite_fitness <= best + self.tol => {
                self.stall += 1;
                if self.stall == self.window {
                    self.plateaus += 1;
                    self.stall = 0;
                }
            }
            _ => self.stall = 0,
        }
        self.best = Some(self.best.map_or(elite_fitness, |b| b.max(elite_fitness)));
        self.plateaus
    }
}

/// One image's GenAttack outcome.
/// Not serde: the image is for the caller; `result` is the serialisable part.
#[derive(Clone, Debug, PartialEq)]
pub struct GenAttackOutput {
    pub result: ImageResult,
    /// The final elite (unit scale, C x H x W).
    pub adversarial: Array3<f32>,
}

/// Fitness from softmax probabilities: targeted log-odds of `target`, or untargeted log-odds of
/// "anything but `label`".
pub fn fitness(probs: &[f32], label: usize, target: Option<usize>) -> f64 {
    let (cls, sign) = match target {
        Some(t) => (t, 1.0),
        None => (label, -1.0),
    };
    let others: f64 = probs
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != cls)
        .map(|(_, &p)| p as f64)
        .sum();
    sign * (ln_p(probs[cls] as f64) - ln_p(others))
}

/// The adaptive mutation probability and range after `plateaus` plateaus.
pub fn schedule(cfg: &GenAttackConfig, plateaus: u32) -> (f32, f32) {
    if !cfg.adaptive {
        return (cfg.rho_min, cfg.alpha_min);
    }
    let decay = 0.9f32.powi(plateaus as i32);
    (cfg.rho_min.max(0.5 * decay), cfg.alpha_min.max(0.4 * decay))
}

/// Attacks one image (unit scale, C x H x W) with true label `label`, towards `target` if given.
/// `index` is the image's data-set position (recorded, and with `seed` choosing the random
/// stream). Only the oracle is queried; `result.queries` counts the queries of this call.
pub fn genattack(
    oracle: &Oracle,
    image: ArrayView3<f32>,
    label: usize,
    target: Option<usize>,
    index: usize,
    cfg: &GenAttackConfig,
    seed: u64,
) -> Result<GenAttackOutput> {
    cfg.validate()?;
    check_image(oracle, image, "genattack.image")?;
    check_class(oracle, label, "genattack.label")?;
    if let Some(t) = target {
        check_class(oracle, t, "genattack.target")?;
        if t == label {
            return Err(Error::input(
                "genattack.target",
                format!("target {t} equals the true label"),
            ));
        }
    }
    let unit = scale_units(oracle, cfg.scale, "genattack.scale")?;
    let ball = Ball::linf(Some(cfg.eps), cfg.scale, unit.clone());
    let eps_unit: Vec<f32> = (0..unit.len()).map(|c| ball.unit_radius(c)).collect();
    let mut rng = image_rng(seed, index);
    let q0 = oracle.queries();
    let adversarial_pred = |pred: usize| match target {
        Some(t) => pred == t,
        None => pred != label,
    };

    let clean = query_one(oracle, image);
    let clean_pred = argmax(&clean);
    let mut trace = vec![TracePoint {
        iteration: 0,
        pred: clean_pred,
        loss: Some(cross_entropy(&clean, label)),
    }];

    let n = cfg.population;
    let mut pop: Vec<Array3<f32>> = (0..n)
        .map(|_| {
            let mut ind = image.to_owned();
            for (ch, mut plane) in ind.axis_iter_mut(Axis(0)).enumerate() {
                let e = eps_unit[ch];
                plane.mapv_inplace(|v| v + uniform(&mut rng, e));
            }
            ball.project(image, &mut ind);
            ind
        })
        .collect();
    let mut probs = evaluate(oracle, &pop);
    let mut fit: Vec<f64> = probs.iter().map(|p| fitness(p, label, target)).collect();

    let mut plateau = PlateauCounter::new(cfg.plateau_tol as f64, cfg.plateau_window);
    let mut elite = 0;
    for generation in 1..=cfg.generations {
        elite = argmax_f64(&fit);
        let pred = argmax(&probs[elite]);
        trace.push(TracePoint {
            iteration: generation,
            pred,
            loss: Some(cross_entropy(&probs[elite], label)),
        });
        if adversarial_pred(pred) || generation == cfg.generations {
            break;
        }
        let (rho, alpha) = schedule(cfg, plateau.update(fit[elite]));

        let select = selection_probs(&fit, cfg.tau as f64);
        let mut next = Vec::with_capacity(n);
        next.push(pop[elite].clone());
        for _ in 1..n {
            let a = sample_index(&mut rng, &select);
            let b = sample_index(&mut rng, &select);
            let w_a = (select[a] / (select[a] + select[b])) as f32;
            let mut child = pop[a].clone();
            Zip::from(&mut child).and(&pop[b]).for_each(|c, &vb| {
                if rng.gen::<f32>() >= w_a {
                    *c = vb;
                }
            });
            for (ch, mut plane) in child.axis_iter_mut(Axis(0)).enumerate() {
                let range = alpha * eps_unit[ch];
                plane.mapv_inplace(|v| {
                    if rng.gen::<f32>() < rho {
                        v + uniform(&mut rng, range)
                    } else {
                        v
                    }
                });
            }
            ball.project(image, &mut child);
            next.push(child);
        }
        let child_probs = evaluate(oracle, &next[1..]);
        let elite_probs = std::mem::take(&mut probs[elite]);
        let elite_fit = fit[elite];
        fit = std::iter::once(elite_fit)
            .chain(child_probs.iter().map(|p| fitness(p, label, target)))
            .collect();
        probs = std::iter::once(elite_probs).chain(child_probs).collect();
        pop = next;
    }

    // A failed attack leaves the image unchanged (module doc, "Failure").
    let success = adversarial_pred(argmax(&probs[elite]));
    let (final_probs, adversarial) = if success {
        (std::mem::take(&mut probs[elite]), pop.swap_remove(elite))
    } else {
        (clean, image.to_owned())
    };
    let adv_pred = argmax(&final_probs);
    let Norms { l0, l2, linf } = norms(image, adversarial.view(), &unit);
    Ok(GenAttackOutput {
        result: ImageResult {
            index,
            label,
            target,
            clean_pred,
            adv_pred,
            success,
            scale: cfg.scale,
            l0,
            l2,
            linf,
            iterations: None,
            queries: Some(oracle.queries() - q0),
            loss: Some(cross_entropy(&final_probs, label)),
            trace,
            warning: None,
        },
        adversarial,
    })
}

/// Attacks every image of `images` (N x C x H x W, unit scale) in parallel; `targets`, if given,
/// holds one target per image. Image `k` gets data-set index `first_index + k`, its own oracle
/// (its own query count) and its own random stream: results do not depend on thread count.
pub fn genattack_batch(
    model: &dyn Model,
    images: ArrayView4<f32>,
    labels: &[usize],
    targets: Option<&[usize]>,
    first_index: usize,
    cfg: &GenAttackConfig,
    seed: u64,
) -> Result<Vec<GenAttackOutput>> {
    cfg.validate()?;
    check_batch(images, labels.len(), "genattack.labels")?;
    if let Some(t) = targets {
        check_batch(images, t.len(), "genattack.targets")?;
    }
    per_image_oracle(model, labels.len(), |oracle, k| {
        let x = images.index_axis(Axis(0), k);
        let target = targets.map(|t| t[k]);
        genattack(oracle, x, labels[k], target, first_index + k, cfg, seed)
    })
}

/// One row of the paper's Table 6: at generation `generation`, the fraction of images whose elite
/// is still classified as the original label (OA) and, for targeted runs, as the target (TA).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationAccuracy {
    pub generation: usize,
    pub oa: f32,
    /// `None` when no result is targeted.
    pub ta: Option<f32>,
}

/// The prediction an attack stopped at `generation` would report: the elite's (the last trace
/// point at or before it; an attack that stopped early keeps its final elite) if that elite is
/// adversarial, otherwise the clean prediction (a failed attack leaves the image unchanged,
/// module doc "Failure").
pub fn pred_at_generation(result: &ImageResult, generation: usize) -> usize {
    let elite = result
        .trace
        .iter()
        .take_while(|p| p.iteration <= generation)
        .last()
        .map_or(result.clean_pred, |p| p.pred);
    let adversarial = match result.target {
        Some(t) => elite == t,
        None => elite != result.label,
    };
    if adversarial {
        elite
    } else {
        result.clean_pred
    }
}

/// OA/TA at each of `generations` over `results` (e.g. the paper's i = 200, 400, ..., 1000).
pub fn accuracy_at_generations(
    results: &[ImageResult],
    generations: &[usize],
) -> Vec<GenerationAccuracy> {
    let n = results.len().max(1) as f32;
    let targeted = results.iter().any(|r| r.target.is_some());
    generations
        .iter()
        .map(|&g| {
            let preds: Vec<usize> = results.iter().map(|r| pred_at_generation(r, g)).collect();
            let oa = results
                .iter()
                .zip(&preds)
                .filter(|(r, &p)| p == r.label)
                .count();
            let ta = results
                .iter()
                .zip(&preds)
                .filter(|(r, &p)| r.target == Some(p))
                .count();
            GenerationAccuracy {
                generation: g,
                oa: oa as f32 / n,
                ta: targeted.then_some(ta as f32 / n),
            }
        })
        .collect()
}

fn uniform(rng: &mut ChaCha8Rng, half_width: f32) -> f32 {
    if half_width > 0.0 {
        rng.gen_range(-half_width..=half_width)
    } else {
        0.0
    }
}

fn evaluate(oracle: &Oracle, pop: &[Array3<f32>]) -> Vec<Vec<f32>> {
    let views: Vec<_> = pop.iter().map(|p| p.view()).collect();
    let batch: Array4<f32> = ndarray::stack(Axis(0), &views).expect("population shapes agree");
    oracle
        .probs(&batch)
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect()
}

/// `softmax(fitness / tau)`, computed stably in f64.
fn selection_probs(fit: &[f64], tau: f64) -> Vec<f64> {
    let m = fit.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = fit.iter().map(|f| ((f - m) / tau).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn sample_index(rng: &mut ChaCha8Rng, probs: &[f64]) -> usize {
    let u: f64 = rng.gen();
    let mut acc = 0.0;
    for (i, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return i;
        }
    }
    probs.len() - 1
}

fn argmax_f64(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitness_is_log_odds() {
        let p = [0.5f32, 0.3, 0.2];
        // Targeted at 1: ln 0.3 - ln 0.7.
        assert!((fitness(&p, 0, Some(1)) - (0.3f64.ln() - 0.7f64.ln())).abs() < 1e-6);
        // Untargeted, label 0: ln 0.5 - ln 0.5 = 0.
        assert!(fitness(&p, 0, None).abs() < 1e-6);
        // Saturated softmax stays finite.
        assert!(fitness(&[1.0, 0.0], 0, Some(1)).is_finite());
    }

    #[test]
    fn schedule_follows_paper_formula() {
        let cfg = GenAttackConfig::default();
        assert_eq!(schedule(&cfg, 0), (0.5, 0.4));
        let (rho, alpha) = schedule(&cfg, 5);
        assert!((rho - 0.5 * 0.9f32.powi(5)).abs() < 1e-6);
        assert!((alpha - 0.4 * 0.9f32.powi(5)).abs() < 1e-6);
        // 0.5 * 0.9^k < 0.1 from k = 16 on; 0.4 * 0.9^k < 0.15 from k = 10 on.
        assert_eq!(schedule(&cfg, 40), (0.1, 0.15));
        assert_eq!(schedule(&GenAttackConfig::foolbox3(), 3), (0.1, 0.15));
    }

    #[test]
    fn plateaus_count_runs_without_improvement() {
        let mut every = PlateauCounter::new(1e-5, 1);
        let counts: Vec<u32> = [1.0, 2.0, 2.0, 2.0, 3.0, 3.0]
            .iter()
            .map(|&f| every.update(f))
            .collect();
        assert_eq!(counts, vec![0, 0, 1, 2, 2, 3]);
        // Window 2: a plateau after each two stalled generations; improvement resets the run.
        let mut pairs = PlateauCounter::new(1e-5, 2);
        let counts: Vec<u32> = [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0]
            .iter()
            .map(|&f| pairs.update(f))
            .collect();
        assert_eq!(counts, vec![0, 0, 1, 1, 2, 2, 2]);
        // A gain within the tolerance is no gain.
        let mut tol = PlateauCounter::new(0.1, 1);
        assert_eq!([0.0, 0.05].map(|f| tol.update(f)), [0, 1]);
    }

    #[test]
    fn selection_is_softmax_and_sampling_matches_it() {
        let s = selection_probs(&[0.0, 0.1f64.ln() * 0.1], 0.1);
        // exp(0) : exp(ln 0.1) = 1 : 0.1.
        assert!((s[0] - 1.0 / 1.1).abs() < 1e-12);
        let mut rng = image_rng(3, 0);
        let hits = (0..20000)
            .filter(|_| sample_index(&mut rng, &s) == 1)
            .count();
        // Binomial(20000, 1/11): mean 1818, sd 41.
        assert!((hits as f64 - 20000.0 / 11.0).abs() < 200.0, "{hits}");
    }

    #[test]
    fn table6_holds_final_elite_after_early_stop() {
        let r = ImageResult {
            index: 0,
            label: 0,
            target: Some(2),
            clean_pred: 0,
            adv_pred: 2,
            success: true,
            scale: Scale::Pixel,
            l0: 0,
            l2: 0.0,
            linf: 0.0,
            iterations: None,
            queries: None,
            loss: None,
            warning: None,
            trace: vec![
                TracePoint {
                    iteration: 0,
                    pred: 0,
                    loss: None,
                },
                TracePoint {
                    iteration: 1,
                    pred: 0,
                    loss: None,
                },
                TracePoint {
                    iteration: 2,
                    pred: 1,
                    loss: None,
                },
                TracePoint {
                    iteration: 3,
                    pred: 2,
                    loss: None,
                },
            ],
        };
        let rows = accuracy_at_generations(&[r], &[1, 2, 100]);
        assert_eq!(
            rows[0],
            GenerationAccuracy {
                generation: 1,
                oa: 1.0,
                ta: Some(0.0)
            }
        );
        // At generation 2 the elite (class 1) is not adversarial: an attack stopped there fails
        // and reports the clean image, which keeps its label.
        assert_eq!(
            rows[1],
            GenerationAccuracy {
                generation: 2,
                oa: 1.0,
                ta: Some(0.0)
            }
        );
        assert_eq!(
            rows[2],
            GenerationAccuracy {
                generation: 100,
                oa: 0.0,
                ta: Some(1.0)
            }
        );
    }
}

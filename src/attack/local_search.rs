//! LocalSearch (Narodytska & Kasiviswanathan, "Simple Black-Box Adversarial Attacks on Deep
//! Neural Networks", CVPR Workshops 2017): an untargeted, query-only, greedy search over pixel
//! neighbourhoods. Also home of the small query and input checks shared with
//! [`super::genattack`]; per-image streams come from [`super::streams::image_rng`], the eps ball
//! and norms from [`super::threat`], as for the white-box attacks.
//!
//! # Algorithm (one image)
//! Work in the paper's centred pixel scale `c = x - 1/2 in [LB, UB] = [-1/2, 1/2]` (unit scale
//! shifted, as Foolbox 2 normalised to the model bounds). Start from a random set of
//! `min(floor(10% of H*W), 128)` pixel locations (at least one). Each round:
//! 1. *Probe*: for every location, set all channels of that pixel to `p * sign(c)` (crate
//!    convention `sign(0) = +1`; Foolbox used `np.sign`, which gives 0 there) and query the
//!    probability of the true label.
//! 2. Take the `t` locations with the lowest probability (ties: first in location order) and
//!    apply the round-trip ("cyclic") perturbation `c <- r * c`, wrapped back into `[LB, UB]` by
//!    adding or subtracting `UB - LB`, to every channel of those pixels.
//! 3. Query the new image; stop as soon as its top-1 differs from the true label.
//! 4. The next locations are the `(2d+1) x (2d+1)` squares around the `t` chosen pixels, clipped
//!    to the image, de-duplicated and taken in row-major order (Foolbox used a Python `set`,
//!    whose order is arbitrary; a fixed order makes runs reproducible).
//!
//! Defaults are Foolbox 2.x `LocalSearchAttack`: `r = 1.5, p = 10, d = 5, t = 5, R = 150`,
//! starting locations `min(10% of pixels, 128)`.
//!
//! # Budget (BreakingBED's eps 8/16/32, pixel scale)
//! The original algorithm has no norm bound: the probes are far outside the pixel box (p = 10)
//! and the cyclic update may move a pixel anywhere in the box. BreakingBED nevertheless reports
//! LocalSearch at eps 8, 16, 32. With `eps = Some(..)` we therefore
//! - project every probe into the eps ball intersected with the box, so a probe becomes "push this
//!   pixel to the edge of the ball in the direction `sign(c)`" (with `p >= 1` the unbounded probe
//!   always overshoots the ball, so `p` no longer matters), and
//! - project the current image into the ball and the box after every cyclic update, so the search
//!   continues from, and tests success on, an image that satisfies the budget. The returned image
//!   is therefore always inside the ball and the box.
//!
//! With `eps = None` the algorithm is the original one: probes may leave the box (the model is
//! queried on them, as Foolbox 2 did with `strict=False`), and the returned image stays in the box
//! because the cyclic update never leaves `[LB, UB]`.
//!
//! # Queries
//! One for the clean image, then per round one per probe (sent in batches of at most
//! `batch` images) plus one for the updated image. An image the model already misclassifies is
//! returned unchanged after the single clean query (Foolbox 2 behaved the same way).

use ndarray::{Array3, Array4, ArrayView3, ArrayView4, Axis};
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use super::classifier::{argmax, per_image_oracle, Model, Oracle};
use super::result::{ImageResult, TracePoint};
use super::spec::{check_count, check_nonneg, check_positive, defaults, LocalSearchSpec};
use super::streams::image_rng;
use super::threat::{norms, Ball, Norms, Scale};
use crate::{Error, Result};

const LB: f32 = -0.5;
const UB: f32 = 0.5;
/// Probabilities are clamped here before taking logs so a saturated softmax gives a finite loss.
const P_FLOOR: f64 = 1e-38;

/// Parameters of [`local_search`]. Field names follow the paper's notation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSearchConfig {
    /// Perturbation parameter p: probes set a pixel to `p * sign(c)` in the centred scale.
    pub p: f32,
    /// Round-trip perturbation scale r of the cyclic update `c <- r * c` (paper: r in [0, 2]).
    pub r: f32,
    /// Neighbourhood half-size d.
    pub d: usize,
    /// Pixels perturbed per round t.
    pub t: usize,
    /// Rounds R.
    pub rounds: usize,
    /// Fraction of pixel locations in the initial random set.
    pub init_fraction: f32,
    /// Cap on the initial set (Foolbox 2: 128).
    pub max_init: usize,
    /// Optional L-inf budget, in `scale` units (see the module doc for how it changes the search).
    pub eps: Option<f32>,
    /// Scale of `eps` and of the norms reported in the result.
    pub scale: Scale,
    /// Most images sent to the oracle in one call (memory bound only; does not change results).
    pub batch: usize,
}

impl Default for LocalSearchConfig {
    fn default() -> Self {
        LocalSearchConfig {
            p: defaults::LS_P,
            r: defaults::LS_R,
            d: defaults::LS_D,
            t: defaults::LS_T,
            rounds: defaults::LS_ROUNDS,
            init_fraction: 0.1,
            max_init: 128,
            eps: None,
            scale: Scale::Pixel,
            batch: 256,
        }
    }
}

impl LocalSearchSpec {
    /// The [`LocalSearchConfig`] this spec stands for; fields the spec does not carry keep the
    /// config's defaults.
    pub fn config(&self) -> LocalSearchConfig {
        LocalSearchConfig {
            p: self.p,
            r: self.r,
            d: self.d,
            t: self.t,
            rounds: self.rounds,
            eps: Some(self.eps.value),
            scale: self.eps.scale,
            ..LocalSearchConfig::default()
        }
    }
}

impl LocalSearchConfig {
    /// Checks every field; errors name the field as `local_search.<field>`.
    pub fn validate(&self) -> Result<()> {
        let field = |f: &str| format!("local_search.{f}");
        let ctx = "local_search";
        check_count(self.rounds, "rounds", ctx)?;
        check_positive(self.p, "p", ctx)?;
        check_nonneg(self.r, "r", ctx)?;
        if self.t == 0 {
            return Err(Error::input(
                field("t"),
                "must be at least 1 pixel per round",
            ));
        }
        if !self.init_fraction.is_finite() || self.init_fraction <= 0.0 || self.init_fraction > 1.0
        {
            return Err(Error::input(
                field("init_fraction"),
                format!("must be in (0, 1], got {}", self.init_fraction),
            ));
        }
        check_count(self.max_init, "max_init", ctx)?;
        check_count(self.batch, "batch", ctx)?;
        if let Some(eps) = self.eps {
            check_eps(eps, &field("eps"))?;
        }
        Ok(())
    }
}

/// One image's LocalSearch outcome.
/// Not serde: the image is for the caller; `result` is the serialisable part.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalSearchOutput {
    /// Per-round trace in `result.trace`: iteration 0 is the clean image, iteration k the image
    /// after round k; `loss` is the cross-entropy w.r.t. the true label.
    pub result: ImageResult,
    /// Probability margin `p_label - max_{j != label} p_j` for each trace point (same order);
    /// negative means misclassified.
    pub margins: Vec<f32>,
    /// The final image (unit scale, C x H x W).
    pub adversarial: Array3<f32>,
}

/// Attacks one image (unit scale, C x H x W) with true label `label`. `index` is the image's
/// position in its data set (recorded in the result and, with `seed`, choosing the random stream).
/// Only the oracle is queried; `result.queries` counts the queries made by this call.
pub fn local_search(
    oracle: &Oracle,
    image: ArrayView3<f32>,
    label: usize,
    index: usize,
    cfg: &LocalSearchConfig,
    seed: u64,
) -> Result<LocalSearchOutput> {
    cfg.validate()?;
    check_image(oracle, image, "local_search.image")?;
    check_class(oracle, label, "local_search.label")?;
    let unit = scale_units(oracle, cfg.scale, "local_search.scale")?;
    let ball = Ball::linf(cfg.eps, cfg.scale, unit.clone());
    let mut rng = image_rng(seed, index);
    let q0 = oracle.queries();
    let [_, h, w] = oracle.input_shape();

    let mut trace = Vec::new();
    let mut margins = Vec::new();
    let mut cur = image.to_owned();
    let mut probs = query_one(oracle, cur.view());
    let clean_pred = argmax(&probs);
    let mut record = |round: usize, probs: &[f32], trace: &mut Vec<TracePoint>| {
        trace.push(TracePoint {
            iteration: round,
            pred: argmax(probs),
            loss: Some(cross_entropy(probs, label)),
        });
        margins.push(margin(probs, label));
    };
    record(0, &probs, &mut trace);

    if clean_pred == label {
        let n_init = ((cfg.init_fraction as f64 * (h * w) as f64).floor() as usize)
            .clamp(1, cfg.max_init.min(h * w));
        let mut locations: Vec<(usize, usize)> = sample(&mut rng, h * w, n_init)
            .into_iter()
            .map(|k| (k / w, k % w))
            .collect();
        for round in 1..=cfg.rounds {
            let scores = probe_scores(oracle, image, &cur, &locations, label, cfg, &ball);
            let chosen = lowest(&scores, cfg.t);
            let star: Vec<(usize, usize)> = chosen.iter().map(|&k| locations[k]).collect();
            for &(i, j) in &star {
                for ch in 0..cur.len_of(Axis(0)) {
                    let v = cur[[ch, i, j]];
                    let x0 = image[[ch, i, j]];
                    cur[[ch, i, j]] = ball.clamp(ch, x0, cyclic(cfg.r, v - 0.5) + 0.5);
                }
            }
            probs = query_one(oracle, cur.view());
            record(round, &probs, &mut trace);
            if argmax(&probs) != label {
                break;
            }
            locations = neighbourhood(&star, cfg.d, h, w);
        }
    }

    let adv_pred = argmax(&probs);
    let Norms { l0, l2, linf } = norms(image, cur.view(), &unit);
    Ok(LocalSearchOutput {
        result: ImageResult {
            index,
            label,
            target: None,
            clean_pred,
            adv_pred,
            success: adv_pred != label,
            scale: cfg.scale,
            l0,
            l2,
            linf,
            iterations: None,
            queries: Some(oracle.queries() - q0),
            loss: Some(cross_entropy(&probs, label)),
            trace,
            warning: None,
        },
        margins,
        adversarial: cur,
    })
}

/// Attacks every image of `images` (N x C x H x W, unit scale) in parallel. Image `k` gets data
/// set index `first_index + k` and its own oracle (so its query count is its own) and its own
/// random stream [`image_rng`]`(seed, first_index + k)`: results do not depend on thread count.
pub fn local_search_batch(
    model: &dyn Model,
    images: ArrayView4<f32>,
    labels: &[usize],
    first_index: usize,
    cfg: &LocalSearchConfig,
    seed: u64,
) -> Result<Vec<LocalSearchOutput>> {
    cfg.validate()?;
    check_batch(images, labels.len(), "local_search.labels")?;
    per_image_oracle(model, labels.len(), |oracle, k| {
        let x = images.index_axis(Axis(0), k);
        local_search(oracle, x, labels[k], first_index + k, cfg, seed)
    })
}

/// The round-trip perturbation: `r * c`, wrapped into `[LB, UB]` by whole periods `UB - LB`
/// (for `r <= 2` at most one period, as in the paper).
pub fn cyclic(r: f32, c: f32) -> f32 {
    let v = r * c;
    if (LB..=UB).contains(&v) {
        v
    } else {
        (v - LB).rem_euclid(UB - LB) + LB
    }
}

/// Probability of `label` after each probe (one per location), queried in batches.
fn probe_scores(
    oracle: &Oracle,
    image: ArrayView3<f32>,
    cur: &Array3<f32>,
    locations: &[(usize, usize)],
    label: usize,
    cfg: &LocalSearchConfig,
    ball: &Ball,
) -> Vec<f32> {
    let [c, h, w] = oracle.input_shape();
    let mut scores = Vec::with_capacity(locations.len());
    for chunk in locations.chunks(cfg.batch) {
        let mut batch = Array4::<f32>::zeros((chunk.len(), c, h, w));
        for (n, &(i, j)) in chunk.iter().enumerate() {
            let mut img = batch.index_axis_mut(Axis(0), n);
            img.assign(cur);
            for ch in 0..c {
                let centred = cur[[ch, i, j]] - 0.5;
                let s = if centred >= 0.0 { 1.0 } else { -1.0 };
                let v = cfg.p * s + 0.5;
                // Unbounded probes leave the box on purpose (original algorithm).
                img[[ch, i, j]] = match cfg.eps {
                    Some(_) => ball.clamp(ch, image[[ch, i, j]], v),
                    None => v,
                };
            }
        }
        let probs = oracle.probs(&batch);
        scores.extend(probs.column(label).iter().copied());
    }
    scores
}

/// Indices of the `t` smallest scores, smallest first; ties keep their original order.
fn lowest(scores: &[f32], t: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    idx.truncate(t);
    idx
}

/// All in-image locations within Chebyshev distance `d` of any centre, row-major, no duplicates.
fn neighbourhood(centres: &[(usize, usize)], d: usize, h: usize, w: usize) -> Vec<(usize, usize)> {
    let mut mark = vec![false; h * w];
    for &(ci, cj) in centres {
        for i in ci.saturating_sub(d)..=(ci + d).min(h - 1) {
            for j in cj.saturating_sub(d)..=(cj + d).min(w - 1) {
                mark[i * w + j] = true;
            }
        }
    }
    (0..h * w)
        .filter(|&k| mark[k])
        .map(|k| (k / w, k % w))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers shared with GenAttack (query-only L-inf attacks).
// ---------------------------------------------------------------------------------------------

/// Unit-scale size of one unit of `scale` per channel, checked against the model's channels.
pub(crate) fn scale_units(oracle: &Oracle, scale: Scale, context: &str) -> Result<Vec<f32>> {
    let norm = oracle.normalization();
    let c = oracle.input_shape()[0];
    let unit = scale.unit_per_channel(&norm);
    if unit.len() != c {
        return Err(Error::input(
            context,
            format!(
                "the model's normalisation has {} channels but its input has {c}",
                unit.len()
            ),
        ));
    }
    if unit.iter().any(|u| !u.is_finite() || *u <= 0.0) {
        return Err(Error::input(
            context,
            format!("{scale:?} scale needs positive finite per-channel sizes, got {unit:?}"),
        ));
    }
    Ok(unit)
}

pub(crate) fn check_eps(eps: f32, context: &str) -> Result<()> {
    if !eps.is_finite() || eps < 0.0 {
        return Err(Error::input(
            context,
            format!("budget must be a finite number >= 0, got {eps}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_image(oracle: &Oracle, image: ArrayView3<f32>, context: &str) -> Result<()> {
    let shape = oracle.input_shape();
    if shape.contains(&0) {
        return Err(Error::input(
            context,
            format!("the model's input shape {shape:?} has an empty dimension"),
        ));
    }
    if image.shape() != shape {
        return Err(Error::input(
            context,
            format!(
                "shape {:?} does not match the model input {shape:?}",
                image.shape()
            ),
        ));
    }
    if let Some(v) = image.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::input(
            context,
            format!("pixel {v} outside the unit box [0, 1] (images must be in unit scale)"),
        ));
    }
    Ok(())
}

pub(crate) fn check_class(oracle: &Oracle, class: usize, context: &str) -> Result<()> {
    let k = oracle.num_classes();
    if class >= k {
        return Err(Error::input(
            context,
            format!("class {class} out of range for a model with {k} classes"),
        ));
    }
    Ok(())
}

pub(crate) fn check_batch(images: ArrayView4<f32>, n: usize, context: &str) -> Result<()> {
    if images.len_of(Axis(0)) != n {
        return Err(Error::input(
            context,
            format!("{n} labels for {} images", images.len_of(Axis(0))),
        ));
    }
    Ok(())
}

/// Probabilities of one image (one query).
pub(crate) fn query_one(oracle: &Oracle, image: ArrayView3<f32>) -> Vec<f32> {
    let batch = image.insert_axis(Axis(0)).to_owned();
    oracle.probs(&batch).row(0).to_vec()
}

/// `-ln p_label`, finite even for a saturated softmax.
pub(crate) fn cross_entropy(probs: &[f32], label: usize) -> f32 {
    -((probs[label] as f64).max(P_FLOOR).ln()) as f32
}

/// `ln max(p, floor)`, the log used by fitness functions.
pub(crate) fn ln_p(p: f64) -> f64 {
    p.max(P_FLOOR).ln()
}

/// `p_label - max_{j != label} p_j`.
pub(crate) fn margin(probs: &[f32], label: usize) -> f32 {
    let other = probs
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != label)
        .fold(0f32, |m, (_, &p)| m.max(p));
    probs[label] - other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclic_matches_paper_definition() {
        // r * c stays when inside [-1/2, 1/2], else one period (UB - LB = 1) is added/subtracted.
        assert!((cyclic(1.5, -0.2) - (-0.3)).abs() < 1e-7);
        assert!((cyclic(1.5, 0.4) - (0.6 - 1.0)).abs() < 1e-7);
        assert!((cyclic(1.5, -0.5) - (-0.75 + 1.0)).abs() < 1e-7);
        assert_eq!(cyclic(1.0, 0.5), 0.5);
        for k in 0..=100 {
            let c = -0.5 + k as f32 / 100.0;
            let v = cyclic(1.9, c);
            assert!((LB..=UB).contains(&v), "cyclic(1.9, {c}) = {v}");
        }
    }

    #[test]
    fn neighbourhood_is_clipped_square() {
        // Corner centre with d = 1 on a 4x4 image: the 2x2 corner block.
        assert_eq!(
            neighbourhood(&[(0, 0)], 1, 4, 4),
            vec![(0, 0), (0, 1), (1, 0), (1, 1)]
        );
        // Two overlapping centres: the union of two 3x3 squares, 9 + 9 - 6 shared = 12 cells.
        assert_eq!(neighbourhood(&[(1, 1), (1, 2)], 1, 5, 5).len(), 12);
    }

    #[test]
    fn lowest_breaks_ties_by_position() {
        assert_eq!(lowest(&[0.3, 0.1, 0.1, 0.0], 3), vec![3, 1, 2]);
        assert_eq!(lowest(&[0.5], 5), vec![0]);
    }

    #[test]
    fn norms_by_hand() {
        let x = Array3::<f32>::zeros((2, 1, 2));
        let mut a = x.clone();
        a[[0, 0, 0]] = 0.3;
        a[[1, 0, 1]] = -0.4;
        // Channel sizes 0.1 and 0.2: scaled deltas 3 and -2.
        let Norms { l0, l2, linf } = norms(x.view(), a.view(), &[0.1, 0.2]);
        assert_eq!(l0, 2);
        assert!((l2 - 13f32.sqrt()).abs() < 1e-5);
        assert!((linf - 3.0).abs() < 1e-5);
    }

    #[test]
    fn ball_projection_is_clamp_to_ball_and_box() {
        let x = ndarray::arr3(&[[[0.0f32, 0.5, 0.98]]]);
        let ball = Ball::linf(Some(0.1), Scale::Unit, vec![1.0]);
        let mut y = ndarray::arr3(&[[[0.5f32, 0.2, 1.5]]]);
        ball.project(x.view(), &mut y);
        assert_eq!(y, ndarray::arr3(&[[[0.1f32, 0.4, 1.0]]]));
        // Element-wise clamp gives the same numbers; without eps only the box remains.
        let z: Vec<f32> = [(0.0, 0.5), (0.5, 0.2), (0.98, 1.5)]
            .iter()
            .map(|&(x0, v)| ball.clamp(0, x0, v))
            .collect();
        assert_eq!(z, vec![0.1, 0.4, 1.0]);
        let free = Ball::linf(None, Scale::Unit, vec![1.0]);
        assert_eq!(free.clamp(0, 0.5, -3.0), 0.0);
        assert_eq!(free.clamp(0, 0.5, 0.9), 0.9);
    }
}

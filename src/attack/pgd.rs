//! PGD, projected gradient descent on the cross-entropy (Madry et al., "Towards Deep Learning
//! Models Resistant to Adversarial Attacks", ICLR 2018), the paper's Eq. 4:
//! `x_{i+1} = P_{ball ∩ \[0,1\]}(x_i ± alpha * step(grad_x CE(x_i, y)))`, with `+` away from the
//! label (untargeted) and `-` towards the target (targeted).
//!
//! - L-inf: `step(g) = sign(g)` per element, alpha converted per channel.
//! - L2: steepest ascent in the step's scale coordinates `z = delta / s`: `g_z = g * s`, the
//!   step is `alpha * s * g_z / ||g_z||` (zero gradient: no step).
//! - Start: uniform in the ball (Madry et al.; torchattacks' `random_start=True`), clipped to the
//!   box; `random_start = false` starts at the clean image.
//! - Restarts: independent random starts; the first successful one is kept (later restarts
//!   are skipped), otherwise the one with the largest final objective (CE to the label, or
//!   minus CE to the target).
//! - Trace: prediction and CE w.r.t. the true label after 0, k, 2k, ... steps and at the end
//!   (paper: every 5th iteration), for the kept restart.
//! - No early stop within a restart: the reported loss is the loss after exactly `iterations`
//!   steps, as in the paper's loss curves.
//!
//! Reference defaults (torchattacks): eps 8/255, alpha 2/255, 10 steps, random start.
//!
//! Batched: every step sends the images still in their restart through the model at once (one
//! forward pass per gradient); each image keeps its own random stream, start, trace and best
//! restart, so its result does not depend on the batch. Images that succeeded leave the batch
//! before the next restart. The clean logits come from the first gradient's forward pass when
//! the first start is the clean image, otherwise from one forward pass of the clean batch.

use ndarray::{Array3, ArrayView3, Axis, Zip};
use rand_chacha::ChaCha8Rng;

use super::batch::{stack, WhiteBatch};
use super::classifier::{argmax, WhiteBox};
use super::loss::{ce_grads, cross_entropy, row};
use super::output::{finish, masking_warning, step_sign, AttackOutput, Run};
use super::result::TracePoint;
use super::spec::PgdSpec;
use super::threat::{Ball, Norm};
use crate::{Error, Result};

/// Attacks one image (CHW, unit scale); random starts draw from `rng`.
pub fn pgd(
    model: &dyn WhiteBox,
    spec: &PgdSpec,
    x: ArrayView3<f32>,
    label: usize,
    target: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Result<AttackOutput> {
    let (labels, targets) = ([label], [target]);
    let b = WhiteBatch {
        x: x.view().insert_axis(Axis(0)),
        labels: &labels,
        targets: &targets,
    };
    Ok(pgd_batch(model, spec, &b, std::slice::from_mut(rng))?.remove(0))
}

/// The kept restart of one image: success, objective, adversarial image, trace, its logits.
type Best = (bool, f32, Array3<f32>, Vec<TracePoint>, Vec<f32>);

/// One step of `dir * alpha` along `step(g)` (module doc) on one image.
fn take_step(norm: Norm, step: &Ball, dir: f32, adv: &mut Array3<f32>, g: ArrayView3<f32>) {
    match norm {
        Norm::Linf => {
            for (c, s) in step.unit_per_channel.iter().enumerate() {
                let a = dir * step.radius * s;
                Zip::from(adv.index_axis_mut(Axis(0), c))
                    .and(g.index_axis(Axis(0), c))
                    .for_each(|v, &gi| *v += a * step_sign(gi));
            }
        }
        Norm::L2 => {
            let s = &step.unit_per_channel;
            let hw = g.len() / s.len().max(1);
            let gz2: f64 = g
                .iter()
                .enumerate()
                .map(|(k, &gi)| ((gi * s[k / hw]) as f64).powi(2))
                .sum();
            let gn = gz2.sqrt();
            if gn > 0.0 {
                for (k, (v, &gi)) in adv.iter_mut().zip(g.iter()).enumerate() {
                    let sk = s[k / hw] as f64;
                    *v += (dir as f64 * step.radius as f64 * sk * (gi as f64 * sk) / gn) as f32;
                }
            }
        }
    }
}

/// Attacks every image of the batch; image `i`'s random starts draw from `rngs[i]`. Outputs in
/// batch order.
pub fn pgd_batch(
    model: &dyn WhiteBox,
    spec: &PgdSpec,
    b: &WhiteBatch,
    rngs: &mut [ChaCha8Rng],
) -> Result<Vec<AttackOutput>> {
    if spec.restarts == 0 {
        return Err(Error::input("pgd.restarts", "must be at least 1"));
    }
    let norm = model.normalization();
    let ball = Ball::new(spec.norm, spec.eps.budget(), &norm, b.channels(), "pgd.eps")?;
    let step = Ball::new(
        spec.norm,
        spec.step.budget(),
        &norm,
        b.channels(),
        "pgd.step",
    )?;
    let n = b.len();
    if rngs.len() != n {
        return Err(Error::input(
            "pgd",
            format!("{} random streams for {n} images", rngs.len()),
        ));
    }
    let mut clean: Vec<Option<Vec<f32>>> = vec![None; n];
    if spec.random_start.get() && n > 0 {
        let z = model.logits(&b.x.to_owned());
        for (i, c) in clean.iter_mut().enumerate() {
            *c = Some(row(&z, i));
        }
    }
    let mut best: Vec<Option<Best>> = vec![None; n];
    let mut first: Vec<Option<Option<String>>> = vec![None; n];
    let mut used = vec![0usize; n];
    for _ in 0..spec.restarts {
        let active: Vec<usize> = (0..n)
            .filter(|&i| !best[i].as_ref().is_some_and(|b| b.0))
            .collect();
        if active.is_empty() {
            break;
        }
        let mut advs: Vec<Array3<f32>> = active
            .iter()
            .map(|&i| {
                if spec.random_start.get() {
                    ball.sample(b.image(i), &mut rngs[i])
                } else {
                    b.image(i).to_owned()
                }
            })
            .collect();
        let mut traces: Vec<Vec<TracePoint>> = vec![Vec::new(); active.len()];
        let towards: Vec<usize> = active.iter().map(|&i| b.towards(i).0).collect();
        for it in 0..spec.iterations {
            let (z, g) = ce_grads(model, &stack(advs.iter().map(|a| a.view())), &towards);
            for (k, &i) in active.iter().enumerate() {
                used[i] += 1;
                let (zk, gk) = (row(&z, k), g.index_axis(Axis(0), k));
                if first[i].is_none() {
                    first[i] = Some(masking_warning(gk.iter()));
                }
                if clean[i].is_none() {
                    // The first start is the clean image (no random start): these are its logits.
                    clean[i] = Some(zk.clone());
                }
                if spec.trace_every > 0 && it.is_multiple_of(spec.trace_every) {
                    traces[k].push(TracePoint {
                        iteration: it,
                        pred: argmax(&zk),
                        loss: Some(cross_entropy(&zk, b.labels[i])),
                    });
                }
                take_step(spec.norm, &step, b.towards(i).1, &mut advs[k], gk);
                ball.project(b.image(i), &mut advs[k]);
            }
        }
        let z = model.logits(&stack(advs.iter().map(|a| a.view())));
        for ((k, &i), (adv, mut trace)) in
            active.iter().enumerate().zip(advs.into_iter().zip(traces))
        {
            let zk = row(&z, k);
            let (label, target) = (b.labels[i], b.targets[i]);
            let pred = argmax(&zk);
            let loss_label = cross_entropy(&zk, label);
            if spec.trace_every > 0 && spec.iterations.is_multiple_of(spec.trace_every) {
                trace.push(TracePoint {
                    iteration: spec.iterations,
                    pred,
                    loss: Some(loss_label),
                });
            }
            let success = match target {
                Some(t) => pred == t,
                None => pred != label,
            };
            let objective = match target {
                Some(t) => -cross_entropy(&zk, t),
                None => loss_label,
            };
            let better = match &best[i] {
                None => true,
                Some((s, o, ..)) => (success && !s) || (success == *s && objective > *o),
            };
            if better {
                best[i] = Some((success, objective, adv, trace, zk));
            }
        }
    }
    Ok(best
        .into_iter()
        .enumerate()
        .map(|(i, kept)| {
            let (_, _, adv, trace, z_adv) = kept.expect("at least one restart");
            finish(
                b.image(i),
                adv,
                clean[i]
                    .as_deref()
                    .expect("clean logits are known after a step"),
                &z_adv,
                Run {
                    label: b.labels[i],
                    target: b.targets[i],
                    scale: spec.eps.scale,
                    unit_per_channel: ball.unit_per_channel.clone(),
                    iterations: used[i],
                    trace,
                    warning: first[i].take().flatten(),
                },
            )
        })
        .collect())
}

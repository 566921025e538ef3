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

use ndarray::{Array3, ArrayView3, Axis, Zip};
use rand_chacha::ChaCha8Rng;

use super::classifier::{argmax, WhiteBox};
use super::loss::{ce_with_grad, cross_entropy, logits};
use super::output::{finish, step_sign, AttackOutput, Run};
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
    if spec.restarts == 0 {
        return Err(Error::input("pgd.restarts", "must be at least 1"));
    }
    let norm = model.normalization();
    let channels = x.len_of(Axis(0));
    let ball = Ball::new(spec.norm, spec.eps.budget(), &norm, channels, "pgd.eps")?;
    let step = Ball::new(spec.norm, spec.step.budget(), &norm, channels, "pgd.step")?;
    let (towards, dir) = match target {
        Some(t) => (t, -1.0f32),
        None => (label, 1.0f32),
    };
    let hw = x.len() / channels.max(1);
    let mut best: Option<(bool, f32, Array3<f32>, Vec<TracePoint>)> = None;
    let mut used = 0;
    for _ in 0..spec.restarts {
        let mut adv = if spec.random_start {
            ball.sample(x, rng)
        } else {
            x.to_owned()
        };
        let mut trace = Vec::new();
        for i in 0..spec.iterations {
            let (z, _, g) = ce_with_grad(model, adv.view(), towards);
            used += 1;
            if spec.trace_every > 0 && i.is_multiple_of(spec.trace_every) {
                trace.push(TracePoint {
                    iteration: i,
                    pred: argmax(&z),
                    loss: Some(cross_entropy(&z, label)),
                });
            }
            match spec.norm {
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
                    let gz2: f64 = g
                        .iter()
                        .enumerate()
                        .map(|(k, &gi)| ((gi * s[k / hw]) as f64).powi(2))
                        .sum();
                    let gn = gz2.sqrt();
                    if gn > 0.0 {
                        for (k, (v, &gi)) in adv.iter_mut().zip(g.iter()).enumerate() {
                            let sk = s[k / hw] as f64;
                            *v += (dir as f64 * step.radius as f64 * sk * (gi as f64 * sk) / gn)
                                as f32;
                        }
                    }
                }
            }
            ball.project(x, &mut adv);
        }
        let z = logits(model, adv.view());
        let pred = argmax(&z);
        let loss_label = cross_entropy(&z, label);
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
            Some(t) => -cross_entropy(&z, t),
            None => loss_label,
        };
        let better = match &best {
            None => true,
            Some((s, o, _, _)) => (success && !s) || (success == *s && objective > *o),
        };
        if better {
            best = Some((success, objective, adv, trace));
        }
        if success {
            break;
        }
    }
    let (_, _, adv, trace) = best.expect("at least one restart");
    Ok(finish(
        model,
        x,
        adv,
        Run {
            label,
            target,
            scale: spec.eps.scale,
            unit_per_channel: ball.unit_per_channel,
            iterations: used,
            trace,
            warning: None,
        },
    ))
}

//! FGSM, the fast gradient sign method (Goodfellow, Shlens & Szegedy, "Explaining and Harnessing
//! Adversarial Examples", ICLR 2015), the paper's Eq. 3:
//! `x_adv = clip_\[0,1\](x + eps * sign(grad_x CE(x, label)))` (untargeted), or
//! `x - eps * sign(grad_x CE(x, target))` (targeted, Kurakin et al. 2017's "step l.l.").
//!
//! The budget is L-inf in its own scale, converted per channel (normalized scale: `eps*std[c]`).
//! `sign(0) = 0` here (see `output::step_sign`). One gradient evaluation (its forward pass gives
//! the clean logits) and one forward pass at the adversarial images, for the whole batch.

use ndarray::{Array3, ArrayView3, Axis, Zip};

use super::batch::{stack, WhiteBatch};
use super::classifier::WhiteBox;
use super::loss::{ce_grads, row};
use super::output::{finish, masking_warning, step_sign, AttackOutput, Run};
use super::spec::FgsmSpec;
use super::threat::{Ball, Norm};
use crate::Result;

/// Attacks one image (CHW, unit scale). `target` is the resolved target class of a targeted
/// attack.
pub fn fgsm(
    model: &dyn WhiteBox,
    spec: &FgsmSpec,
    x: ArrayView3<f32>,
    label: usize,
    target: Option<usize>,
) -> Result<AttackOutput> {
    let (labels, targets) = ([label], [target]);
    let b = WhiteBatch {
        x: x.view().insert_axis(Axis(0)),
        labels: &labels,
        targets: &targets,
    };
    Ok(fgsm_batch(model, spec, &b)?.remove(0))
}

/// Attacks every image of the batch; outputs in batch order.
pub fn fgsm_batch(
    model: &dyn WhiteBox,
    spec: &FgsmSpec,
    b: &WhiteBatch,
) -> Result<Vec<AttackOutput>> {
    let ball = Ball::new(
        Norm::Linf,
        spec.eps.budget(),
        &model.normalization(),
        b.channels(),
        "fgsm.eps",
    )?;
    if b.is_empty() {
        return Ok(Vec::new());
    }
    let towards: Vec<usize> = (0..b.len()).map(|i| b.towards(i).0).collect();
    let (z0, g) = ce_grads(model, &b.x.to_owned(), &towards);
    let advs: Vec<Array3<f32>> = (0..b.len())
        .map(|i| {
            let dir = b.towards(i).1;
            let mut adv = b.image(i).to_owned();
            let gi = g.index_axis(Axis(0), i);
            for (c, s) in ball.unit_per_channel.iter().enumerate() {
                let r = dir * ball.radius * s;
                Zip::from(adv.index_axis_mut(Axis(0), c))
                    .and(gi.index_axis(Axis(0), c))
                    .for_each(|a, &gv| *a += r * step_sign(gv));
            }
            ball.project(b.image(i), &mut adv);
            adv
        })
        .collect();
    let za = model.logits(&stack(advs.iter().map(|a| a.view())));
    Ok(advs
        .into_iter()
        .enumerate()
        .map(|(i, adv)| {
            finish(
                b.image(i),
                adv,
                &row(&z0, i),
                &row(&za, i),
                Run {
                    label: b.labels[i],
                    target: b.targets[i],
                    scale: spec.eps.scale,
                    unit_per_channel: ball.unit_per_channel.clone(),
                    iterations: 1,
                    trace: Vec::new(),
                    warning: masking_warning(g.index_axis(Axis(0), i).iter()),
                },
            )
        })
        .collect())
}

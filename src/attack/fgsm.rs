//! FGSM, the fast gradient sign method (Goodfellow, Shlens & Szegedy, "Explaining and Harnessing
//! Adversarial Examples", ICLR 2015), the paper's Eq. 3:
//! `x_adv = clip_\[0,1\](x + eps * sign(grad_x CE(x, label)))` (untargeted), or
//! `x - eps * sign(grad_x CE(x, target))` (targeted, Kurakin et al. 2017's "step l.l.").
//!
//! The budget is L-inf in its own scale, converted per channel (normalized scale: `eps*std[c]`).
//! `sign(0) = 0` here (see `output::step_sign`). One gradient evaluation.

use ndarray::{ArrayView3, Axis, Zip};

use super::classifier::WhiteBox;
use super::loss::ce_with_grad;
use super::output::{finish, step_sign, AttackOutput, Run};
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
    let ball = Ball::new(
        Norm::Linf,
        spec.eps.budget(),
        &model.normalization(),
        x.len_of(Axis(0)),
        "fgsm.eps",
    )?;
    let (towards, dir) = match target {
        Some(t) => (t, -1.0),
        None => (label, 1.0),
    };
    let (_, _, g) = ce_with_grad(model, x, towards);
    let mut adv = x.to_owned();
    for (c, s) in ball.unit_per_channel.iter().enumerate() {
        let r = dir * ball.radius * s;
        Zip::from(adv.index_axis_mut(Axis(0), c))
            .and(g.index_axis(Axis(0), c))
            .for_each(|a, &gi| *a += r * step_sign(gi));
    }
    ball.project(x, &mut adv);
    Ok(finish(
        model,
        x,
        adv,
        Run {
            label,
            target,
            scale: spec.eps.scale,
            unit_per_channel: ball.unit_per_channel,
            iterations: 1,
            trace: Vec::new(),
            warning: None,
        },
    ))
}

//! What a single-image attack hands back ([`AttackOutput`]) and the one place where the
//! per-image [`ImageResult`] is filled in, so every attack measures success, norms and the final
//! loss the same way.

use ndarray::{Array3, ArrayView3};

use super::classifier::{argmax, Model};
use super::loss::{cross_entropy, logits};
use super::result::{ImageResult, TracePoint};
use super::threat::{norms, Ball, Budget, Norm, Scale};
use crate::model::Normalization;
use crate::Result;

/// Unit size per channel of the scale results are reported in, validating the normalisation
/// against the image's channel count (`context` names the option for the error).
pub(crate) fn report_units(
    norm: &Normalization,
    scale: Scale,
    channels: usize,
    context: &str,
) -> Result<Vec<f32>> {
    Ok(Ball::new(Norm::L2, Budget::new(0.0, scale), norm, channels, context)?.unit_per_channel)
}

/// The adversarial image (unit scale, CHW) and its result record.
#[derive(Clone, Debug)]
pub struct AttackOutput {
    pub adv: Array3<f32>,
    pub result: ImageResult,
}

/// Everything an attack knows about its run besides the images.
pub(crate) struct Run {
    pub label: usize,
    pub target: Option<usize>,
    pub scale: Scale,
    pub unit_per_channel: Vec<f32>,
    pub iterations: usize,
    pub trace: Vec<TracePoint>,
    pub warning: Option<String>,
}

/// Fills in predictions, success, norms of `adv - x0` in `run.scale` and the final
/// cross-entropy w.r.t. the true label.
pub(crate) fn finish(
    model: &dyn Model,
    x0: ArrayView3<f32>,
    adv: Array3<f32>,
    run: Run,
) -> AttackOutput {
    let clean_pred = argmax(&logits(model, x0));
    let z = logits(model, adv.view());
    let adv_pred = argmax(&z);
    let n = norms(x0, adv.view(), &run.unit_per_channel);
    let success = match run.target {
        Some(t) => adv_pred == t,
        None => adv_pred != run.label,
    };
    AttackOutput {
        result: ImageResult {
            index: 0,
            label: run.label,
            target: run.target,
            clean_pred,
            adv_pred,
            success,
            scale: run.scale,
            l0: n.l0,
            l2: n.l2,
            linf: n.linf,
            iterations: Some(run.iterations),
            queries: None,
            loss: Some(cross_entropy(&z, run.label)),
            trace: run.trace,
            warning: run.warning,
        },
        adv,
    }
}

/// `sign` for attack steps: zero stays zero (as `torch.sign`), because a zero gradient component
/// carries no direction. This is deliberately *not* the crate's binarisation sign (sign(0)=+1).
pub(crate) fn step_sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

//! What a white-box attack hands back per image ([`AttackOutput`]) and the one place where the
//! per-image [`ImageResult`] is filled in, so every attack measures success, norms and the final
//! loss the same way, from logits the attack already has (no extra forward pass); also the
//! gradient-masking check every white-box attack applies to its own first gradient.

use ndarray::{Array3, ArrayView3};

use super::classifier::argmax;
use super::loss::cross_entropy;
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
/// cross-entropy w.r.t. the true label, from the logits the attack already computed at the clean
/// image and at `adv` (no forward pass here).
pub(crate) fn finish(
    x0: ArrayView3<f32>,
    adv: Array3<f32>,
    clean_logits: &[f32],
    adv_logits: &[f32],
    run: Run,
) -> AttackOutput {
    let clean_pred = argmax(clean_logits);
    let adv_pred = argmax(adv_logits);
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
            loss: Some(cross_entropy(adv_logits, run.label)),
            trace: run.trace,
            warning: run.warning,
        },
        adv,
    }
}

/// The gradient-masking check (AutoAttack's), on the first input gradient the attack computed
/// for an image (all its values, e.g. every candidate logit's gradient for DeepFool): a warning
/// if it is identically zero or not finite. "Robust" under a white-box attack then means "no
/// gradient", not robustness.
pub(crate) fn masking_warning<'a>(g: impl IntoIterator<Item = &'a f32>) -> Option<String> {
    let (mut finite, mut zero) = (true, true);
    for v in g {
        finite &= v.is_finite();
        zero &= *v == 0.0;
    }
    if !finite {
        Some("input gradient is not finite at the attack's first step".to_string())
    } else if zero {
        Some(
            "input gradient is identically zero at the attack's first step: gradient masking \
             suspected, white-box accuracy is not a robustness measure here"
                .to_string(),
        )
    } else {
        None
    }
}

/// `first; then` when both are warnings.
pub(crate) fn join_warnings(first: Option<String>, then: Option<String>) -> Option<String> {
    match (first, then) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
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

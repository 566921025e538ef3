//! The engine side of `bbed attack`: which engine an attack runs on and one image attacked by its
//! data-set index.
//!
//! Engine choice (issue 5): white-box attacks need gradients, so they always run on the
//! [`FloatEngine`] (for binarized variants the gradient flows through the straight-through
//! estimator, exactly as in training). Black-box attacks only query, so for a binarized variant
//! they run on the bit-exact [`BinaryEngine`] (the model a deployed accelerator computes), and on
//! the [`FloatEngine`] otherwise. Both are reached only through an [`Oracle`] there.
//!
//! Determinism: image `index` is attacked with the streams `(seed, index)` only, never with a
//! chunk- or thread-dependent position, so a resumed or re-chunked run reproduces every record.
//! The target of a targeted black-box attack is drawn from stream `index` of `seed ^ TARGET_SALT`
//! (the attack itself uses stream `index` of `seed`; a separate seed keeps the two draws
//! independent).

use ndarray::ArrayView3;

use crate::attack::classifier::argmax;
use crate::attack::genattack::genattack;
use crate::attack::local_search::local_search;
use crate::attack::run::{attack_image as white_image, image_rng, resolve_target};
use crate::attack::threat::Scale;
use crate::attack::{AttackSpec, ImageResult, Model, Oracle};
use crate::engine::classifier::{BinaryEngine, FloatEngine};
use crate::engine::exec::Net;
use crate::variant::{CompressedNetwork, LayerPrecision};
use crate::{Error, Result};

/// Salt of the seed that draws black-box targets (see the module doc).
pub const TARGET_SALT: u64 = 0x7A26_E75A_17C3;

/// The engine an attack runs on.
pub enum AttackEngine {
    Float(FloatEngine),
    Binary(BinaryEngine),
}

/// Whether any layer of the variant is binarized (XNOR-Net, ABC-Net).
pub fn is_binarized(cn: &CompressedNetwork) -> bool {
    cn.layers
        .iter()
        .any(|l| matches!(l.precision, LayerPrecision::Binary { .. }))
}

impl AttackEngine {
    /// The engine `spec` runs on for `net` (module doc).
    pub fn for_attack(net: Net, spec: &AttackSpec) -> Result<Self> {
        if !spec.is_white_box() && is_binarized(&net.cn) {
            Ok(AttackEngine::Binary(BinaryEngine::new(net)?))
        } else {
            Ok(AttackEngine::Float(FloatEngine::new(net)?))
        }
    }

    /// `"float"` or `"binary"` (bit-exact XNOR + popcount).
    pub fn name(&self) -> &'static str {
        match self {
            AttackEngine::Float(_) => "float",
            AttackEngine::Binary(_) => "binary",
        }
    }

    pub fn model(&self) -> &dyn Model {
        match self {
            AttackEngine::Float(e) => e,
            AttackEngine::Binary(e) => e,
        }
    }
}

/// Scale in which an attack reports the norms of its perturbations.
pub fn report_scale(spec: &AttackSpec) -> Scale {
    match spec {
        AttackSpec::Fgsm(s) => s.eps.scale,
        AttackSpec::Pgd(s) => s.eps.scale,
        AttackSpec::Cw(s) => s.report_scale,
        AttackSpec::DeepFool(s) => s.report_scale,
        AttackSpec::LocalSearch(s) => s.eps.scale,
        AttackSpec::GenAttack(s) => s.eps.scale,
    }
}

/// A targeted black-box attack whose target is the image's own label has nothing to do: the
/// image is queried once and recorded as not attacked, with a warning.
fn not_attacked(
    oracle: &Oracle,
    x: ArrayView3<f32>,
    label: usize,
    target: usize,
    index: usize,
    scale: Scale,
) -> ImageResult {
    let probs = oracle.probs(&x.insert_axis(ndarray::Axis(0)).to_owned());
    let p = probs.row(0).to_vec();
    let pred = argmax(&p);
    ImageResult {
        index,
        label,
        target: Some(target),
        clean_pred: pred,
        adv_pred: pred,
        success: pred == target,
        scale,
        l0: 0,
        l2: 0.0,
        linf: 0.0,
        iterations: None,
        queries: Some(oracle.queries()),
        // Probabilities, not logits: ln is the cross-entropy of the probabilities.
        loss: Some(-(p[label].max(1e-38)).ln()),
        trace: Vec::new(),
        warning: Some("target equals the true label: image not attacked".into()),
    }
}

/// Attacks image `index` (unit scale, CHW) with true label `label`; the result records `index`.
/// The engine must match the attack ([`AttackEngine::for_attack`]).
pub fn attack_image(
    engine: &AttackEngine,
    spec: &AttackSpec,
    x: ArrayView3<f32>,
    label: usize,
    index: usize,
    seed: u64,
) -> Result<ImageResult> {
    let model = engine.model();
    if spec.is_white_box() {
        let AttackEngine::Float(fe) = engine else {
            return Err(Error::input(
                "attack",
                format!(
                    "{} needs gradients; the bit-exact engine is query-only",
                    spec.name()
                ),
            ));
        };
        return Ok(white_image(fe, spec, x, label, index, seed)?.result);
    }
    let oracle = Oracle::new(model);
    match spec {
        AttackSpec::LocalSearch(s) => {
            Ok(local_search(&oracle, x, label, index, &s.config(), seed)?.result)
        }
        AttackSpec::GenAttack(s) => {
            let mut rng = image_rng(seed ^ TARGET_SALT, index);
            let target = resolve_target(s.target, label, model.num_classes(), &mut rng);
            if let Some(t) = target.filter(|t| *t == label) {
                return Ok(not_attacked(&oracle, x, label, t, index, s.eps.scale));
            }
            let cfg = s.config();
            Ok(genattack(&oracle, x, label, target, index, &cfg, seed)?.result)
        }
        _ => unreachable!("white-box attacks handled above"),
    }
}

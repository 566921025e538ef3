//! The one attack driver: `bbed attack`, `bbed sweep` and the library's batch functions all run
//! an image through [`attack_image`], so a (spec, seed, image index) gives the same target, the
//! same engine and the same [`ImageResult`] whichever command asked.
//!
//! # Engine choice (one rule)
//! White-box attacks need gradients: they run on the [`FloatEngine`] (binarized layers pass the
//! gradient through the straight-through estimator, exactly as in training). Black-box attacks
//! only query: they run on the bit-exact [`BinaryEngine`] iff any layer of the variant is
//! binarized ([`is_binarized`], by layer precision: what a deployed accelerator computes), on
//! the [`FloatEngine`] otherwise, and always through an [`Oracle`]. See [`engine_kind`].
//!
//! # Targets (one rule)
//! A targeted attack's target is resolved per image by [`resolve_target`]: a class index as
//! given, `next` = `(label + 1) mod classes`, `random` = uniform over the other classes drawn
//! from [`streams::target_rng`] (stream `index` of `seed ^ TARGET_SALT`), for every attack. A
//! target equal to the image's label leaves nothing to do: the image is evaluated once and
//! recorded as not attacked, with a warning ([`not_attacked`]); the run goes on.
//!
//! # Determinism
//! Image `index` uses only the streams `(seed, index)` ([`super::streams`]), so a record does
//! not depend on the batch, the chunk, the thread count or what ran before.
//!
//! # Gradient masking
//! Before a white-box attack the cross-entropy gradient at the clean image is computed; if it is
//! identically zero (or not finite) the result carries a `warning` (AutoAttack's check):
//! "robust" under a white-box attack then means "no gradient", not robustness.

use ndarray::{Array4, ArrayView3, Axis};
use rand::Rng;
use rayon::prelude::*;

use super::classifier::{argmax, Model, Oracle, WhiteBox};
use super::cw::cw;
use super::deepfool::deepfool;
use super::fgsm::fgsm;
use super::genattack::genattack;
use super::local_search::local_search;
use super::loss::{ce_with_grad, cross_entropy, logits};
use super::output::AttackOutput;
use super::pgd::pgd;
use super::result::ImageResult;
use super::spec::{AttackSpec, Target};
use super::streams::{self, image_rng};
use super::threat::check_normalization;
use crate::engine::classifier::{BinaryEngine, FloatEngine};
use crate::engine::exec::Net;
use crate::report::record::Setting;
use crate::variant::{CompressedNetwork, LayerPrecision};
use crate::{Error, Result};

/// The engine an attack runs on (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// Float reference (white-box; black-box on variants without binarized layers).
    Float,
    /// Bit-exact XNOR + popcount (black-box on binarized variants).
    Binary,
}

impl EngineKind {
    /// `"float"` or `"binary"`, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Float => "float",
            EngineKind::Binary => "binary",
        }
    }
}

/// Whether any layer of the variant is binarized (XNOR-Net, ABC-Net).
pub fn is_binarized(cn: &CompressedNetwork) -> bool {
    cn.layers
        .iter()
        .any(|l| matches!(l.precision, LayerPrecision::Binary { .. }))
}

/// The engine `spec` runs on for a variant (module doc): the one rule of both commands.
pub fn engine_kind(spec: &AttackSpec, binarized: bool) -> EngineKind {
    if !spec.is_white_box() && binarized {
        EngineKind::Binary
    } else {
        EngineKind::Float
    }
}

/// What one attack of one image runs on: a white-box attack gets gradients, a black-box one only
/// the model behind an [`Oracle`].
#[derive(Clone, Copy)]
pub enum Victim<'a> {
    WhiteBox(&'a dyn WhiteBox),
    Query(&'a dyn Model),
}

impl<'a> Victim<'a> {
    pub fn model(&self) -> &'a dyn Model {
        match *self {
            Victim::WhiteBox(m) => m,
            Victim::Query(m) => m,
        }
    }
}

/// The engines of one network for a set of attacks: exactly those [`engine_kind`] picks.
pub struct Engines {
    binarized: bool,
    float: Option<FloatEngine>,
    binary: Option<BinaryEngine>,
}

impl Engines {
    /// Builds the engines `specs` run on (the float engine if none is given).
    pub fn new<'s>(net: Net, specs: impl IntoIterator<Item = &'s AttackSpec>) -> Result<Self> {
        let binarized = is_binarized(&net.cn);
        let kinds: Vec<EngineKind> = specs
            .into_iter()
            .map(|s| engine_kind(s, binarized))
            .collect();
        let need_binary = kinds.contains(&EngineKind::Binary);
        let need_float = kinds.is_empty() || kinds.contains(&EngineKind::Float);
        let (float, binary) = match (need_float, need_binary) {
            (true, true) => {
                let copy = Net::new(net.cn.clone(), net.params.clone())?;
                (Some(FloatEngine::new(net)?), Some(BinaryEngine::new(copy)?))
            }
            (false, true) => (None, Some(BinaryEngine::new(net)?)),
            _ => (Some(FloatEngine::new(net)?), None),
        };
        Ok(Engines {
            binarized,
            float,
            binary,
        })
    }

    /// The engines of one attack.
    pub fn for_attack(net: Net, spec: &AttackSpec) -> Result<Self> {
        Self::new(net, [spec])
    }

    /// The engines of every attack: the float engine, and the bit-exact one iff a layer is
    /// binarized.
    pub fn all(net: Net) -> Result<Self> {
        let binarized = is_binarized(&net.cn);
        let binary = if binarized {
            Some(BinaryEngine::new(Net::new(
                net.cn.clone(),
                net.params.clone(),
            )?)?)
        } else {
            None
        };
        Ok(Engines {
            binarized,
            float: Some(FloatEngine::new(net)?),
            binary,
        })
    }

    /// The float engine, if built (always, except for only black-box attacks on a binarized
    /// variant).
    pub fn float(&self) -> Option<&FloatEngine> {
        self.float.as_ref()
    }

    /// The engine `spec` runs on here.
    pub fn kind(&self, spec: &AttackSpec) -> EngineKind {
        engine_kind(spec, self.binarized)
    }

    /// What `spec` attacks; an error if these engines were not built for it.
    pub fn victim(&self, spec: &AttackSpec) -> Result<Victim<'_>> {
        let missing = || {
            Error::input(
                "attack",
                format!(
                    "no {} engine was built for {}",
                    self.kind(spec).name(),
                    spec.name()
                ),
            )
        };
        match (self.kind(spec), spec.is_white_box()) {
            (EngineKind::Binary, _) => Ok(Victim::Query(self.binary.as_ref().ok_or_else(missing)?)),
            (EngineKind::Float, true) => {
                Ok(Victim::WhiteBox(self.float.as_ref().ok_or_else(missing)?))
            }
            (EngineKind::Float, false) => {
                Ok(Victim::Query(self.float.as_ref().ok_or_else(missing)?))
            }
        }
    }

    /// One of the engines (they share the network's shape, classes and normalisation).
    pub fn model(&self) -> &dyn Model {
        match (&self.float, &self.binary) {
            (Some(f), _) => f,
            (None, Some(b)) => b,
            (None, None) => unreachable!("Engines::new builds at least one engine"),
        }
    }
}

/// Resolves a [`Target`] for image `index` with true label `label` (`None` for untargeted
/// attacks); `random` draws from [`streams::target_rng`] (module doc).
pub fn resolve_target(
    target: Option<Target>,
    label: usize,
    classes: usize,
    seed: u64,
    index: usize,
) -> Option<usize> {
    match target? {
        Target::Class(c) => Some(c),
        Target::Next => Some((label + 1) % classes),
        Target::Random => {
            let k = streams::target_rng(seed, index).gen_range(0..classes - 1);
            Some(if k >= label { k + 1 } else { k })
        }
    }
}

/// The record of an image whose target is its own label: evaluated once (one query for a
/// black-box attack, no gradient for a white-box one), unchanged, with a warning.
pub fn not_attacked(
    victim: Victim,
    spec: &AttackSpec,
    x: ArrayView3<f32>,
    label: usize,
    index: usize,
) -> AttackOutput {
    let (probs_or_logits, queries, iterations) = match victim {
        Victim::Query(m) => {
            let oracle = Oracle::new(m);
            let p = oracle
                .probs(&x.insert_axis(Axis(0)).to_owned())
                .row(0)
                .to_vec();
            (Ok(p), Some(oracle.queries()), None)
        }
        Victim::WhiteBox(m) => (Err(logits(m, x)), None, Some(0)),
    };
    let (pred, loss) = match &probs_or_logits {
        // Probabilities: the cross-entropy is -ln p[label] (floored as the black-box attacks do).
        Ok(p) => (argmax(p), -(p[label].max(1e-38)).ln()),
        Err(z) => (argmax(z), cross_entropy(z, label)),
    };
    AttackOutput {
        adv: x.to_owned(),
        result: ImageResult {
            index,
            label,
            target: Some(label),
            clean_pred: pred,
            adv_pred: pred,
            success: pred == label,
            scale: spec.report_scale(),
            l0: 0,
            l2: 0.0,
            linf: 0.0,
            iterations,
            queries,
            loss: Some(loss),
            trace: Vec::new(),
            warning: Some("target equals the true label: image not attacked".into()),
        },
    }
}

fn masking_warning(model: &dyn WhiteBox, x: ArrayView3<f32>, label: usize) -> Option<String> {
    let (_, _, g) = ce_with_grad(model, x, label);
    if g.iter().any(|v| !v.is_finite()) {
        Some("input gradient is not finite at the clean image".to_string())
    } else if g.iter().all(|v| *v == 0.0) {
        Some(
            "input gradient is identically zero at the clean image: gradient masking suspected, \
             white-box accuracy is not a robustness measure here"
                .to_string(),
        )
    } else {
        None
    }
}

/// Attacks image `index` (unit scale, CHW) with true label `label` under `seed`: target
/// resolution, the attack, and its record (which carries `index`). Inputs are not validated
/// here (the batch functions and the commands do it once).
pub fn attack_image(
    victim: Victim,
    spec: &AttackSpec,
    x: ArrayView3<f32>,
    label: usize,
    index: usize,
    seed: u64,
) -> Result<AttackOutput> {
    let classes = victim.model().num_classes();
    let target = resolve_target(spec.target(), label, classes, seed, index);
    if target == Some(label) {
        return Ok(not_attacked(victim, spec, x, label, index));
    }
    let mut out = match (victim, spec) {
        (Victim::WhiteBox(m), _) if spec.is_white_box() => {
            let masked = masking_warning(m, x, label);
            let mut rng = image_rng(seed, index);
            let mut out = match spec {
                AttackSpec::Fgsm(s) => fgsm(m, s, x, label, target)?,
                AttackSpec::Pgd(s) => pgd(m, s, x, label, target, &mut rng)?,
                AttackSpec::Cw(s) => cw(m, s, x, label, target)?,
                AttackSpec::DeepFool(s) => deepfool(m, s, x, label)?,
                AttackSpec::LocalSearch(_) | AttackSpec::GenAttack(_) => {
                    unreachable!("guarded by is_white_box")
                }
            };
            if let Some(w) = masked {
                out.result.warning = Some(match out.result.warning.take() {
                    Some(prev) => format!("{w}; {prev}"),
                    None => w,
                });
            }
            out
        }
        (Victim::Query(_), _) if spec.is_white_box() => {
            return Err(Error::input(
                "attack",
                format!(
                    "{} needs gradients; a query-only engine cannot run it",
                    spec.name()
                ),
            ))
        }
        (v, AttackSpec::LocalSearch(s)) => {
            let o = local_search(&Oracle::new(v.model()), x, label, index, &s.config(), seed)?;
            AttackOutput {
                adv: o.adversarial,
                result: o.result,
            }
        }
        (v, AttackSpec::GenAttack(s)) => {
            let oracle = Oracle::new(v.model());
            let o = genattack(&oracle, x, label, target, index, &s.config(), seed)?;
            AttackOutput {
                adv: o.adversarial,
                result: o.result,
            }
        }
        _ => unreachable!("white-box attacks are matched above"),
    };
    out.result.index = index;
    Ok(out)
}

/// The record [`Setting`] of an attack spec: the Table 2 strength and iteration fields.
pub fn setting_of(spec: &AttackSpec) -> Setting {
    let budget = |v: f32, s| Setting {
        eps: Some(v),
        scale: Some(s),
        ..Setting::default()
    };
    match spec {
        AttackSpec::Fgsm(s) => budget(s.eps.value, s.eps.scale),
        AttackSpec::Pgd(s) => Setting {
            iterations: Some(s.iterations),
            ..budget(s.eps.value, s.eps.scale)
        },
        AttackSpec::Cw(s) => Setting {
            c: Some(s.c),
            iterations: Some(s.max_iterations),
            ..Setting::default()
        },
        AttackSpec::DeepFool(s) => Setting {
            iterations: Some(s.max_iterations),
            ..Setting::default()
        },
        AttackSpec::LocalSearch(s) => Setting {
            iterations: Some(s.rounds),
            ..budget(s.eps.value, s.eps.scale)
        },
        AttackSpec::GenAttack(s) => Setting {
            iterations: Some(s.generations),
            population: Some(s.population),
            ..budget(s.eps.value, s.eps.scale)
        },
    }
}

fn check_white_inputs(
    model: &dyn WhiteBox,
    spec: &AttackSpec,
    images: &Array4<f32>,
    labels: &[usize],
) -> Result<()> {
    spec.validate("attack")?;
    if !spec.is_white_box() {
        return Err(Error::input(
            "attack",
            format!(
                "{} is a black-box attack: run it through an Oracle, not run_white",
                spec.name()
            ),
        ));
    }
    check_normalization(&model.normalization(), "model.normalization")?;
    let shape = model.input_shape();
    if images.shape()[1..] != shape[..] {
        return Err(Error::input(
            "images",
            format!(
                "shape {:?} but the model takes N x {shape:?}",
                images.shape()
            ),
        ));
    }
    if model.normalization().channels() != shape[0] {
        return Err(Error::input(
            "model.normalization",
            format!(
                "{} channels but the model takes {}",
                model.normalization().channels(),
                shape[0]
            ),
        ));
    }
    if labels.len() != images.len_of(Axis(0)) {
        return Err(Error::input(
            "labels",
            format!(
                "{} labels for {} images",
                labels.len(),
                images.len_of(Axis(0))
            ),
        ));
    }
    let k = model.num_classes();
    if k < 2 {
        return Err(Error::input("model", "needs at least 2 classes"));
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l >= k) {
        return Err(Error::input(
            format!("labels[{i}]"),
            format!("label {l} but the model has {k} classes"),
        ));
    }
    if let Some(Target::Class(c)) = spec.target() {
        if c >= k {
            return Err(Error::input(
                "attack.target",
                format!("class {c} but the model has {k} classes"),
            ));
        }
    }
    if let Some(v) = images.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::input(
            "images",
            format!("pixel value {v} outside the unit scale [0,1]"),
        ));
    }
    Ok(())
}

/// Attacks every image with a white-box attack (image `i` has index `i`); returns the
/// per-image results and the adversarial images (N x C x H x W), both in image order.
pub fn run_white_with_images(
    model: &dyn WhiteBox,
    spec: &AttackSpec,
    images: &Array4<f32>,
    labels: &[usize],
    seed: u64,
) -> Result<(Vec<ImageResult>, Array4<f32>)> {
    check_white_inputs(model, spec, images, labels)?;
    let outs: Vec<AttackOutput> = (0..labels.len())
        .into_par_iter()
        .map(|i| {
            attack_image(
                Victim::WhiteBox(model),
                spec,
                images.index_axis(Axis(0), i),
                labels[i],
                i,
                seed,
            )
        })
        .collect::<Result<_>>()?;
    let mut adv = Array4::<f32>::zeros(images.raw_dim());
    for (i, o) in outs.iter().enumerate() {
        adv.index_axis_mut(Axis(0), i).assign(&o.adv);
    }
    Ok((outs.into_iter().map(|o| o.result).collect(), adv))
}

/// Attacks every image in parallel; per-image results in image order.
pub fn run_white(
    model: &dyn WhiteBox,
    spec: &AttackSpec,
    images: &Array4<f32>,
    labels: &[usize],
    seed: u64,
) -> Result<Vec<ImageResult>> {
    run_white_with_images(model, spec, images, labels, seed).map(|(r, _)| r)
}

/// `reruns` independent runs with new random starts (the paper averages five PGD reruns);
/// rerun `r` uses the seed `seed + r * 0x9E37_79B9_7F4A_7C15` (golden-ratio stride). Feed the
/// output to [`super::result::curve`] for averaged loss / accuracy curves.
pub fn run_white_reruns(
    model: &dyn WhiteBox,
    spec: &AttackSpec,
    images: &Array4<f32>,
    labels: &[usize],
    seed: u64,
    reruns: usize,
) -> Result<Vec<Vec<ImageResult>>> {
    (0..reruns as u64)
        .map(|r| {
            run_white(
                model,
                spec,
                images,
                labels,
                seed.wrapping_add(r.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_targets_are_never_the_label_and_come_from_the_target_stream() {
        for label in 0..4 {
            for index in 0..50 {
                let t = resolve_target(Some(Target::Random), label, 4, 9, index).unwrap();
                assert!(t < 4 && t != label);
                let k = streams::target_rng(9, index).gen_range(0..3);
                assert_eq!(t, if k >= label { k + 1 } else { k });
            }
        }
        assert_eq!(resolve_target(Some(Target::Next), 9, 10, 0, 0), Some(0));
        assert_eq!(resolve_target(Some(Target::Class(3)), 3, 10, 0, 0), Some(3));
        assert_eq!(resolve_target(None, 3, 10, 0, 0), None);
    }
}

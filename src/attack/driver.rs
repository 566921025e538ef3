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
//! not depend on the batch, the chunk, the thread count or what ran before. White-box attacks
//! run their images as batches ([`attack_images`]), and every per-image quantity is computed
//! from that image's row alone, so this holds bit for bit (tested: batch sizes 1, 7 and all,
//! one and two threads).
//!
//! # Gradient masking
//! Every white-box attack checks the first input gradient it computes for an image (no extra
//! gradient): FGSM the cross-entropy gradient at the clean image, PGD the one at its first start
//! (the clean image, or the random start), DeepFool the candidate-logit gradients at the clean
//! image, CW its first margin gradient. If it is identically zero (or not finite) the result
//! carries a `warning` (AutoAttack's check): "robust" under a white-box attack then means "no
//! gradient", not robustness. Images that never get a gradient (DeepFool: already
//! misclassified; CW: margin already met) are not checked.

use ndarray::{Array4, ArrayView3, ArrayView4, Axis};
use rand::Rng;
use rayon::prelude::*;

use super::batch::{stack, WhiteBatch};
use super::classifier::{argmax, Model, Oracle, WhiteBox};
use super::cw::cw_batch;
use super::deepfool::deepfool_batch;
use super::fgsm::fgsm_batch;
use super::genattack::genattack;
use super::local_search::local_search;
use super::loss::{cross_entropy, logits};
use super::output::AttackOutput;
use super::pgd::pgd_batch;
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

/// Images a white-box attack sends through the model at once (at most): bounds the memory of
/// the taped forward pass. Results do not depend on it (module doc).
pub const WHITE_BATCH: usize = 32;

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
    let mut out = attack_images(
        victim,
        spec,
        x.insert_axis(Axis(0)),
        &[label],
        &[index],
        seed,
    )?;
    Ok(out.remove(0))
}

/// Attacks images `x` (unit scale, NCHW) with true labels `labels` and data-set indices
/// `indices` under `seed`; outputs in input order, each exactly what [`attack_image`] gives for
/// that image alone. White-box attacks run the images in batches of at most [`WHITE_BATCH`]
/// through the engine (images whose target is their label are recorded as not attacked, outside
/// the batch); black-box attacks run each image on its own [`Oracle`], in parallel.
pub fn attack_images(
    victim: Victim,
    spec: &AttackSpec,
    x: ArrayView4<f32>,
    labels: &[usize],
    indices: &[usize],
    seed: u64,
) -> Result<Vec<AttackOutput>> {
    let n = labels.len();
    if x.len_of(Axis(0)) != n || indices.len() != n {
        return Err(Error::input(
            "attack",
            format!(
                "{} images, {n} labels and {} indices",
                x.len_of(Axis(0)),
                indices.len()
            ),
        ));
    }
    let classes = victim.model().num_classes();
    let targets: Vec<Option<usize>> = (0..n)
        .map(|i| resolve_target(spec.target(), labels[i], classes, seed, indices[i]))
        .collect();
    let skip = |i: usize| targets[i] == Some(labels[i]);
    let mut outs: Vec<Option<AttackOutput>> = (0..n).map(|_| None).collect();
    match victim {
        Victim::WhiteBox(m) if spec.is_white_box() => {
            let todo: Vec<usize> = (0..n).filter(|&i| !skip(i)).collect();
            for part in todo.chunks(WHITE_BATCH) {
                let xb = stack(part.iter().map(|&i| x.index_axis(Axis(0), i)));
                let ls: Vec<usize> = part.iter().map(|&i| labels[i]).collect();
                let ts: Vec<Option<usize>> = part.iter().map(|&i| targets[i]).collect();
                let b = WhiteBatch {
                    x: xb.view(),
                    labels: &ls,
                    targets: &ts,
                };
                let got = match spec {
                    AttackSpec::Fgsm(s) => fgsm_batch(m, s, &b)?,
                    AttackSpec::Pgd(s) => {
                        let mut rngs: Vec<_> =
                            part.iter().map(|&i| image_rng(seed, indices[i])).collect();
                        pgd_batch(m, s, &b, &mut rngs)?
                    }
                    AttackSpec::Cw(s) => cw_batch(m, s, &b)?,
                    AttackSpec::DeepFool(s) => deepfool_batch(m, s, &b)?,
                    AttackSpec::LocalSearch(_) | AttackSpec::GenAttack(_) => {
                        unreachable!("guarded by is_white_box")
                    }
                };
                for (&i, o) in part.iter().zip(got) {
                    outs[i] = Some(o);
                }
            }
        }
        Victim::Query(_) if spec.is_white_box() => {
            return Err(Error::input(
                "attack",
                format!(
                    "{} needs gradients; a query-only engine cannot run it",
                    spec.name()
                ),
            ))
        }
        v => {
            let black: Vec<(usize, AttackOutput)> = (0..n)
                .into_par_iter()
                .filter(|&i| !skip(i))
                .map(|i| {
                    let xi = x.index_axis(Axis(0), i);
                    let o = black_box(v, spec, xi, labels[i], targets[i], indices[i], seed)?;
                    Ok((i, o))
                })
                .collect::<Result<_>>()?;
            for (i, o) in black {
                outs[i] = Some(o);
            }
        }
    }
    Ok(outs
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let mut o = o.unwrap_or_else(|| {
                not_attacked(
                    victim,
                    spec,
                    x.index_axis(Axis(0), i),
                    labels[i],
                    indices[i],
                )
            });
            o.result.index = indices[i];
            o
        })
        .collect())
}

/// One image of a black-box attack, on its own [`Oracle`].
fn black_box(
    victim: Victim,
    spec: &AttackSpec,
    x: ArrayView3<f32>,
    label: usize,
    target: Option<usize>,
    index: usize,
    seed: u64,
) -> Result<AttackOutput> {
    let oracle = Oracle::new(victim.model());
    Ok(match spec {
        AttackSpec::LocalSearch(s) => {
            let o = local_search(&oracle, x, label, index, &s.config(), seed)?;
            AttackOutput {
                adv: o.adversarial,
                result: o.result,
            }
        }
        AttackSpec::GenAttack(s) => {
            let o = genattack(&oracle, x, label, target, index, &s.config(), seed)?;
            AttackOutput {
                adv: o.adversarial,
                result: o.result,
            }
        }
        _ => unreachable!("white-box attacks are matched by the caller"),
    })
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
    let indices: Vec<usize> = (0..labels.len()).collect();
    let outs = attack_images(
        Victim::WhiteBox(model),
        spec,
        images.view(),
        labels,
        &indices,
        seed,
    )?;
    let mut adv = Array4::<f32>::zeros(images.raw_dim());
    for (i, o) in outs.iter().enumerate() {
        adv.index_axis_mut(Axis(0), i).assign(&o.adv);
    }
    Ok((outs.into_iter().map(|o| o.result).collect(), adv))
}

/// Attacks every image (in batches, see [`attack_images`]); per-image results in image order.
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

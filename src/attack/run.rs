//! The white-box driver: validates a spec against a model and a batch, attacks every image in
//! parallel (rayon) and returns per-image results in image order.
//!
//! Determinism: image `i` uses its own `ChaCha8Rng` seeded with `seed` on stream `i`, so the
//! numbers do not depend on the thread count or on scheduling. Rerun `r` of
//! [`run_white_reruns`] uses the seed `seed + r * 0x9E37_79B9_7F4A_7C15` (golden-ratio stride).
//!
//! Gradient-masking check (AutoAttack's idea): before attacking, the cross-entropy gradient at
//! the clean image is computed; if it is identically zero (or not finite) the result carries a
//! `warning` — "robust" under a white-box attack then means "no gradient", not robustness.

use ndarray::{Array4, ArrayView3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::classifier::WhiteBox;
use super::cw::cw;
use super::deepfool::deepfool;
use super::fgsm::fgsm;
use super::loss::ce_with_grad;
use super::output::AttackOutput;
use super::pgd::pgd;
use super::result::ImageResult;
use super::spec::{AttackSpec, Target};
use super::threat::check_normalization;
use crate::{Error, Result};

/// The per-image RNG of image `index` for `seed`.
pub fn image_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// Resolves a [`Target`] for one image (`None` for untargeted attacks).
pub fn resolve_target(
    target: Option<Target>,
    label: usize,
    classes: usize,
    rng: &mut ChaCha8Rng,
) -> Option<usize> {
    match target? {
        Target::Class(c) => Some(c),
        Target::Next => Some((label + 1) % classes),
        Target::Random => {
            let k = rng.gen_range(0..classes - 1);
            Some(if k >= label { k + 1 } else { k })
        }
    }
}

fn check_inputs(
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

/// Attacks one image (no input validation: [`run_white`] does it once for the batch).
pub fn attack_image(
    model: &dyn WhiteBox,
    spec: &AttackSpec,
    x: ArrayView3<f32>,
    label: usize,
    index: usize,
    seed: u64,
) -> Result<AttackOutput> {
    let mut rng = image_rng(seed, index);
    let target = resolve_target(spec.target(), label, model.num_classes(), &mut rng);
    let (_, _, g) = ce_with_grad(model, x, label);
    let masked = if g.iter().any(|v| !v.is_finite()) {
        Some("input gradient is not finite at the clean image".to_string())
    } else if g.iter().all(|v| *v == 0.0) {
        Some(
            "input gradient is identically zero at the clean image: gradient masking suspected, \
             white-box accuracy is not a robustness measure here"
                .to_string(),
        )
    } else {
        None
    };
    let mut out = match spec {
        AttackSpec::Fgsm(s) => fgsm(model, s, x, label, target)?,
        AttackSpec::Pgd(s) => pgd(model, s, x, label, target, &mut rng)?,
        AttackSpec::Cw(s) => cw(model, s, x, label, target)?,
        AttackSpec::DeepFool(s) => deepfool(model, s, x, label)?,
        AttackSpec::LocalSearch(_) | AttackSpec::GenAttack(_) => {
            return Err(Error::input(
                "attack",
                format!("{} is a black-box attack", spec.name()),
            ))
        }
    };
    out.result.index = index;
    if let Some(w) = masked {
        out.result.warning = Some(match out.result.warning.take() {
            Some(prev) => format!("{w}; {prev}"),
            None => w,
        });
    }
    Ok(out)
}

/// Attacks every image; returns the per-image results and the adversarial images (N x C x H x W),
/// both in image order.
pub fn run_white_with_images(
    model: &dyn WhiteBox,
    spec: &AttackSpec,
    images: &Array4<f32>,
    labels: &[usize],
    seed: u64,
) -> Result<(Vec<ImageResult>, Array4<f32>)> {
    check_inputs(model, spec, images, labels)?;
    let outs: Vec<AttackOutput> = (0..labels.len())
        .into_par_iter()
        .map(|i| {
            attack_image(
                model,
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
/// feed the output to [`super::result::curve`] for averaged loss / accuracy curves.
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

//! CAM inputs from real models for the report's Table 3 grid: for one fixed image, per zoo entry,
//! the clean image and DeepFool adversarials after 1 and 5 iterations (DeepFool run with
//! `max_iterations` 1 and 5, overshoot 0.02 as the reference implementation).
//!
//! Features are the output of the layer feeding the network's `GlobalAvgPool` (the last conv
//! stage after its activation: Zhou et al.'s `f_k`), weights are the following linear layer's
//! `[classes, K]` matrix, and the map is drawn for the class the float engine predicts on the
//! panel's image. Networks without a GlobalAvgPool directly followed by a linear layer on its
//! channels have no CAM; that is an error naming the entry.

use ndarray::{Array2, Array3, Array4, ArrayView3, Axis, Ix2};

use super::run::LoadedEntry;
use crate::attack::classifier::argmax;
use crate::attack::driver::run_white_with_images;
use crate::attack::spec::{AttackSpec, DeepFoolSpec};
use crate::attack::Scale;
use crate::model::Op;
use crate::report::cam::{CamInput, CamRow};
use crate::{Error, Result};

/// DeepFool iteration counts of the CAM columns.
pub const CAM_DEEPFOOL_ITERATIONS: [usize; 2] = [1, 5];

/// Names of the CAM feature layer (input of GlobalAvgPool) and of the linear layer after it.
pub fn cam_layers(l: &LoadedEntry) -> Result<(String, String)> {
    let layers = &l.float().net.cn.network.layers;
    let ctx = || format!("zoo entry {:?}", l.entry.name);
    let gap = layers
        .iter()
        .position(|x| matches!(x.op, Op::GlobalAvgPool))
        .ok_or_else(|| Error::input(ctx(), "network has no GlobalAvgPool layer: no CAM"))?;
    let feat = match layers[gap].inputs.as_slice() {
        [i] => layers[*i].name.clone(),
        _ => {
            return Err(Error::input(
                ctx(),
                "GlobalAvgPool does not take a single layer's output: no CAM",
            ))
        }
    };
    let lin = layers[gap + 1..]
        .iter()
        .find(|x| matches!(x.op, Op::Linear { .. }))
        .ok_or_else(|| Error::input(ctx(), "no linear layer after GlobalAvgPool: no CAM"))?;
    Ok((feat, lin.name.clone()))
}

/// Feature maps `[K, h, w]` of `feat` and the prediction for one image.
fn features(l: &LoadedEntry, x: &Array4<f32>, feat: &str) -> Result<(Array3<f32>, usize)> {
    let (logits, tape) = l.float().run(x, false)?;
    let f = l.float().net.layer_output(&tape, feat).ok_or_else(|| {
        Error::input(
            format!("zoo entry {:?}", l.entry.name),
            format!("layer {feat} has no recorded output"),
        )
    })?;
    let row = logits.row(0).to_vec();
    Ok((f.index_axis(Axis(0), 0).to_owned(), argmax(&row)))
}

/// The CAM row of one entry for image `x` (CHW, unit scale) with true label `label`.
pub fn cam_row(l: &LoadedEntry, x: ArrayView3<f32>, label: usize, seed: u64) -> Result<CamRow> {
    let (feat, lin) = cam_layers(l)?;
    let ctx = format!("zoo entry {:?}", l.entry.name);
    let w = l
        .float()
        .net
        .params
        .get(&format!("{lin}.weight"))
        .ok_or_else(|| Error::input(&ctx, format!("no parameter {lin}.weight")))?
        .clone()
        .into_dimensionality::<Ix2>()
        .map_err(|_| Error::input(&ctx, format!("{lin}.weight is not a matrix")))?;
    let x4 = x.to_owned().insert_axis(Axis(0));
    let (f0, p0) = features(l, &x4, &feat)?;
    if w.ncols() != f0.len_of(Axis(0)) {
        return Err(Error::input(
            &ctx,
            format!(
                "{lin} takes {} inputs but {feat} has {} channels: no CAM",
                w.ncols(),
                f0.len_of(Axis(0))
            ),
        ));
    }
    let weights: Array2<f32> = w;
    let mut panels = vec![CamInput {
        label: "clean".into(),
        image: x.to_owned(),
        features: f0,
        weights: weights.clone(),
        class: p0,
        class_name: None,
    }];
    for it in CAM_DEEPFOOL_ITERATIONS {
        let spec = AttackSpec::DeepFool(DeepFoolSpec {
            max_iterations: it,
            overshoot: 0.02,
            candidates: Some(10),
            report_scale: Scale::Unit,
        });
        let (_, adv) = run_white_with_images(l.float(), &spec, &x4, &[label], seed)?;
        let (f, p) = features(l, &adv, &feat)?;
        panels.push(CamInput {
            label: format!("DeepFool i={it}"),
            image: adv.index_axis(Axis(0), 0).to_owned(),
            features: f,
            weights: weights.clone(),
            class: p,
            class_name: None,
        });
    }
    Ok(CamRow {
        variant: l.entry.name.clone(),
        panels,
    })
}

//! DeepFool, multi-class L2 version (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple
//! and accurate method to fool deep neural networks", CVPR 2016, Algorithm 2), following the
//! authors' reference implementation (`deepfool.py`, LTS4):
//!
//! - `k0` is the *predicted* class at the clean image; candidates are the `candidates` (default
//!   10) classes with the highest clean logits, `k0` first.
//! - At `x_i`, for each candidate `k != k0`: `w_k = grad Z_k - grad Z_k0`, `f_k = Z_k - Z_k0`;
//!   pick `l = argmin |f_k| / ||w_k||` and step `r_i = (|f_l|/||w_l|| + 1e-4) * w_l / ||w_l||`.
//! - Accumulate `r_tot += r_i` and set `x_{i+1} = clip_\[0,1\](x0 + (1 + overshoot) * r_tot)`:
//!   the overshoot (0.02) multiplies the *accumulated* perturbation, once.
//! - Stop when the prediction leaves `k0` or after `max_iterations` (reference 50).
//!
//! torchattacks differs: it applies `(1 + overshoot)` to each step's increment from the current
//! point, so the overshoot compounds over iterations; ART's default overshoot is 1e-6. The clip
//! to \[0,1\] is ours (the reference does not clip); it keeps every attack inside the pixel box.
//!
//! On a linear classifier the first step lands exactly `(1 + overshoot) * (d + 1e-4)` from `x0`,
//! `d` being the distance to the nearest decision boundary (tested). The result's `iterations`
//! is the iteration at which the label flipped (or `max_iterations`), and the trace records the
//! prediction and CE w.r.t. the true label after every iteration.

use ndarray::{Array2, Array3, Array4, ArrayView3, Axis, Zip};

use super::classifier::{argmax, WhiteBox};
use super::loss::{cross_entropy, logits};
use super::output::{finish, report_units, AttackOutput, Run};
use super::result::TracePoint;
use super::spec::DeepFoolSpec;
use crate::Result;

/// Gradients of the logits `classes` at `x`, one batched VJP with one-hot rows.
fn logit_gradients(
    model: &dyn WhiteBox,
    x: ArrayView3<f32>,
    classes: &[usize],
) -> Vec<Array3<f32>> {
    let k = classes.len();
    let xb: Array4<f32> = x
        .insert_axis(Axis(0))
        .broadcast((k, x.shape()[0], x.shape()[1], x.shape()[2]))
        .expect("broadcast over classes")
        .to_owned();
    let mut d = Array2::<f32>::zeros((k, model.num_classes()));
    for (row, &c) in classes.iter().enumerate() {
        d[[row, c]] = 1.0;
    }
    let g = model.input_vjp(&xb, &d);
    g.outer_iter().map(|v| v.to_owned()).collect()
}

/// Attacks one image (CHW, unit scale).
pub fn deepfool(
    model: &dyn WhiteBox,
    spec: &DeepFoolSpec,
    x: ArrayView3<f32>,
    label: usize,
) -> Result<AttackOutput> {
    let units = report_units(
        &model.normalization(),
        spec.report_scale,
        x.len_of(ndarray::Axis(0)),
        "deepfool.report_scale",
    )?;
    let z0 = logits(model, x);
    let mut order: Vec<usize> = (0..z0.len()).collect();
    // Highest logit first; stable sort keeps the lower index first on ties, like argmax.
    order.sort_by(|&a, &b| z0[b].total_cmp(&z0[a]));
    order.truncate(spec.candidates.unwrap_or(order.len()).max(2));
    let k0 = order[0];
    let mut r_tot = Array3::<f32>::zeros(x.raw_dim());
    let mut adv = x.to_owned();
    let mut trace = Vec::new();
    let mut pred = k0;
    let mut iterations = 0;
    let mut warning = None;
    // An image the model already misclassifies is already adversarial: leave it unchanged (as
    // Foolbox does) instead of pushing it away from its wrong class, possibly onto the true one.
    while pred == k0 && k0 == label && iterations < spec.max_iterations {
        let z = logits(model, adv.view());
        let grads = logit_gradients(model, adv.view(), &order);
        let mut best: Option<(f64, f64, Array3<f32>)> = None; // (pert, ||w||, w)
        for (gi, &k) in order.iter().enumerate().skip(1) {
            let w = &grads[gi] - &grads[0];
            let wn = w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            if wn == 0.0 {
                continue;
            }
            let pert = (z[k] - z[k0]).abs() as f64 / wn;
            if best.as_ref().is_none_or(|(p, _, _)| pert < *p) {
                best = Some((pert, wn, w));
            }
        }
        let Some((pert, wn, w)) = best else {
            warning = Some(
                "deepfool: logit-difference gradients are all zero (gradient masking?)".into(),
            );
            break;
        };
        let k = ((pert + 1e-4) / wn) as f32;
        r_tot.scaled_add(k, &w);
        adv = x.to_owned();
        Zip::from(&mut adv)
            .and(&r_tot)
            .for_each(|a, &r| *a = (*a + (1.0 + spec.overshoot) * r).clamp(0.0, 1.0));
        iterations += 1;
        let z = logits(model, adv.view());
        pred = argmax(&z);
        trace.push(TracePoint {
            iteration: iterations,
            pred,
            loss: Some(cross_entropy(&z, label)),
        });
    }
    let scale = spec.report_scale;
    Ok(finish(
        model,
        x,
        adv,
        Run {
            label,
            target: None,
            scale,
            unit_per_channel: units,
            iterations,
            trace,
            warning,
        },
    ))
}

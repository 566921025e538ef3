//! Carlini & Wagner L2 ("Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017),
//! the paper's Eq. 5 with the L2 distance:
//! `minimise ||x_adv - x||_2^2 + c * f(x_adv)`, `x_adv = (tanh(w) + 1) / 2` (the tanh box keeps
//! `x_adv` in \[0,1\] without clipping), with
//! - targeted: `f = max(max_{j != t} Z_j - Z_t, -kappa)`,
//! - untargeted: `f = max(Z_y - max_{j != y} Z_j, -kappa)`,
//!
//! on the logits `Z`, optimised with Adam (lr 0.01, betas 0.9/0.999, eps 1e-8), `w` initialised
//! at `atanh((2x - 1) * 0.999999)`. A binary search over `c` (steps `binary_search_steps`,
//! starting at `c`): success lowers the upper bound and bisects, failure raises the lower bound
//! and bisects, or multiplies by 10 while no upper bound is known. Early abort: every
//! `max_iterations / 10` steps, stop the search step if the objective did not drop below
//! 0.9999 of its value at the previous check. Each search step restarts `w` and Adam.
//! Success uses the margin: targeted `argmax(Z - kappa e_t) == t`, untargeted
//! `argmax(Z + kappa e_y) != y`. The result is the successful point of smallest L2 over all
//! steps, or the clean image if none succeeded — all as in the authors' `l2_attack.py`
//! (defaults there: 9 search steps, 10000 iterations, c 1e-3, kappa 0, abort early).
//!
//! Distances are in unit scale (the attack's own space); the result's norms are reported in
//! `report_scale`. `iterations` in the result counts Adam steps over all search steps.

use ndarray::{Array3, ArrayView3, Zip};

use super::classifier::{argmax, WhiteBox};
use super::loss::{logits, vjp};
use super::output::{finish, report_units, AttackOutput, Run};
use super::spec::CwSpec;
use crate::Result;

/// `f` of the module doc and its gradient w.r.t. the logits.
fn margin(z: &[f32], label: usize, target: Option<usize>, kappa: f32) -> (f32, Vec<f32>) {
    let (pos, neg_of) = match target {
        // targeted: max other - Z_t
        Some(t) => (None, t),
        // untargeted: Z_y - max other
        None => (Some(label), label),
    };
    let mut other = usize::MAX;
    for (j, &v) in z.iter().enumerate() {
        if j != neg_of && (other == usize::MAX || v > z[other]) {
            other = j;
        }
    }
    let mut g = vec![0.0; z.len()];
    if other == usize::MAX {
        return (-kappa, g);
    }
    let raw = match pos {
        None => z[other] - z[neg_of],
        Some(y) => z[y] - z[other],
    };
    if raw <= -kappa {
        return (-kappa, g);
    }
    match pos {
        None => {
            g[other] = 1.0;
            g[neg_of] = -1.0;
        }
        Some(y) => {
            g[y] = 1.0;
            g[other] = -1.0;
        }
    }
    (raw, g)
}

fn succeeded(z: &[f32], label: usize, target: Option<usize>, kappa: f32) -> bool {
    let mut z = z.to_vec();
    match target {
        Some(t) => {
            z[t] -= kappa;
            argmax(&z) == t
        }
        None => {
            z[label] += kappa;
            argmax(&z) != label
        }
    }
}

/// Attacks one image (CHW, unit scale).
pub fn cw(
    model: &dyn WhiteBox,
    spec: &CwSpec,
    x: ArrayView3<f32>,
    label: usize,
    target: Option<usize>,
) -> Result<AttackOutput> {
    let units = report_units(
        &model.normalization(),
        spec.report_scale,
        x.len_of(ndarray::Axis(0)),
        "cw.report_scale",
    )?;
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let w0 = x.mapv(|v| ((2.0 * v - 1.0) * 0.999_999).atanh());
    let mut c = spec.c;
    let (mut lower, mut upper) = (0.0f32, 1e10f32);
    let mut best: Option<(f32, Array3<f32>)> = None;
    let mut steps = 0usize;
    let check_every = (spec.max_iterations / 10).max(1);
    for _ in 0..spec.binary_search_steps {
        let mut w = w0.clone();
        let mut m = Array3::<f32>::zeros(x.raw_dim());
        let mut v = Array3::<f32>::zeros(x.raw_dim());
        let mut prev = f32::INFINITY;
        let mut step_success = false;
        // max_iterations Adam steps; the extra pass only evaluates the last point.
        for it in 0..=spec.max_iterations {
            let t = w.mapv(f32::tanh);
            let xa = t.mapv(|v| (v + 1.0) * 0.5);
            let z = logits(model, xa.view());
            let diff = &xa - &x;
            let l2sq: f32 = diff.iter().map(|d| d * d).sum();
            let (f, df) = margin(&z, label, target, spec.confidence);
            let obj = l2sq + c * f;
            if succeeded(&z, label, target, spec.confidence) {
                step_success = true;
                if best.as_ref().is_none_or(|(b, _)| l2sq < *b) {
                    best = Some((l2sq, xa.clone()));
                }
            }
            if it == spec.max_iterations {
                break;
            }
            if spec.abort_early && it.is_multiple_of(check_every) {
                if obj > prev * 0.9999 {
                    break;
                }
                prev = obj;
            }
            let dfdz: Vec<f32> = df.iter().map(|g| g * c).collect();
            let gx = if dfdz.iter().any(|g| *g != 0.0) {
                vjp(model, xa.view(), &dfdz) + &diff * 2.0
            } else {
                &diff * 2.0
            };
            steps += 1;
            let k = steps_in_step(it);
            let (bc1, bc2) = (1.0 - b1.powi(k), 1.0 - b2.powi(k));
            Zip::from(&mut w)
                .and(&mut m)
                .and(&mut v)
                .and(&gx)
                .and(&t)
                .for_each(|wi, mi, vi, &gxi, &ti| {
                    let g = gxi * (1.0 - ti * ti) * 0.5;
                    *mi = b1 * *mi + (1.0 - b1) * g;
                    *vi = b2 * *vi + (1.0 - b2) * g * g;
                    *wi -= spec.learning_rate * (*mi / bc1) / ((*vi / bc2).sqrt() + eps);
                });
        }
        if step_success {
            upper = upper.min(c);
            if upper < 1e9 {
                c = (lower + upper) / 2.0;
            }
        } else {
            lower = lower.max(c);
            c = if upper < 1e9 {
                (lower + upper) / 2.0
            } else {
                c * 10.0
            };
        }
    }
    let adv = best.map(|(_, a)| a).unwrap_or_else(|| x.to_owned());
    let scale = spec.report_scale;
    Ok(finish(
        model,
        x,
        adv,
        Run {
            label,
            target,
            scale,
            unit_per_channel: units,
            iterations: steps,
            trace: Vec::new(),
            warning: None,
        },
    ))
}

/// Adam's step counter within one search step (1-based).
fn steps_in_step(it: usize) -> i32 {
    (it + 1).min(i32::MAX as usize) as i32
}

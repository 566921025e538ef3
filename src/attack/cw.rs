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
//!
//! Batched: every tick evaluates the current point of each image still searching in one forward
//! pass and differentiates (one backward pass, from the same forward pass) only the rows whose
//! margin term is active; each image keeps its own search step, `c`, Adam state and early-abort
//! clock, so its result does not depend on the batch. The clean logits come from one forward
//! pass of the clean batch. The gradient-masking check looks at the first margin gradient an
//! image gets (an image whose margin is already satisfied at the start gets none).

use ndarray::{Array2, Array3, ArrayView3, Axis, Zip};

use super::batch::{stack, WhiteBatch};
use super::classifier::{argmax, WhiteBox};
use super::loss::row;
use super::output::{finish, masking_warning, report_units, AttackOutput, Run};
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
    let (labels, targets) = ([label], [target]);
    let b = WhiteBatch {
        x: x.view().insert_axis(Axis(0)),
        labels: &labels,
        targets: &targets,
    };
    Ok(cw_batch(model, spec, &b)?.remove(0))
}

/// Per-image state of the batched search.
struct Image {
    w0: Array3<f32>,
    c: f32,
    lower: f32,
    upper: f32,
    /// Smallest successful L2^2, its point and its logits.
    best: Option<(f32, Array3<f32>, Vec<f32>)>,
    /// Adam steps over all search steps.
    steps: usize,
    /// Search steps finished.
    search: usize,
    // The current search step.
    w: Array3<f32>,
    m: Array3<f32>,
    v: Array3<f32>,
    prev: f32,
    it: usize,
    step_success: bool,
    /// The masking check of the first margin gradient (`None`: none computed yet).
    first: Option<Option<String>>,
}

impl Image {
    fn new(x: ArrayView3<f32>, c: f32) -> Self {
        let w0 = x.mapv(|v| ((2.0 * v - 1.0) * 0.999_999).atanh());
        Image {
            w: w0.clone(),
            m: Array3::zeros(x.raw_dim()),
            v: Array3::zeros(x.raw_dim()),
            w0,
            c,
            lower: 0.0,
            upper: 1e10,
            best: None,
            steps: 0,
            search: 0,
            prev: f32::INFINITY,
            it: 0,
            step_success: false,
            first: None,
        }
    }

    /// Ends the current search step: the binary search over `c`, then a fresh `w` and Adam.
    fn end_search_step(&mut self) {
        if self.step_success {
            self.upper = self.upper.min(self.c);
            if self.upper < 1e9 {
                self.c = (self.lower + self.upper) / 2.0;
            }
        } else {
            self.lower = self.lower.max(self.c);
            self.c = if self.upper < 1e9 {
                (self.lower + self.upper) / 2.0
            } else {
                self.c * 10.0
            };
        }
        self.search += 1;
        self.w = self.w0.clone();
        self.m.fill(0.0);
        self.v.fill(0.0);
        self.prev = f32::INFINITY;
        self.it = 0;
        self.step_success = false;
    }
}

/// What one evaluation decided for an image.
enum Next {
    /// The search step ends here (last evaluation or early abort).
    EndStep,
    /// An Adam step, with the logit-side cotangent `c * df` when it is not zero.
    Step(Option<Vec<f32>>),
}

/// Attacks every image of the batch; outputs in batch order.
pub fn cw_batch(model: &dyn WhiteBox, spec: &CwSpec, b: &WhiteBatch) -> Result<Vec<AttackOutput>> {
    let units = report_units(
        &model.normalization(),
        spec.report_scale,
        b.channels(),
        "cw.report_scale",
    )?;
    if b.is_empty() {
        return Ok(Vec::new());
    }
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let check_every = (spec.max_iterations / 10).max(1);
    let clean = model.logits(&b.x.to_owned());
    let mut imgs: Vec<Image> = (0..b.len())
        .map(|i| Image::new(b.image(i), spec.c))
        .collect();
    loop {
        let active: Vec<usize> = (0..b.len())
            .filter(|&i| imgs[i].search < spec.binary_search_steps)
            .collect();
        if active.is_empty() {
            break;
        }
        let ts: Vec<Array3<f32>> = active.iter().map(|&i| imgs[i].w.mapv(f32::tanh)).collect();
        let xas: Vec<Array3<f32>> = ts.iter().map(|t| t.mapv(|v| (v + 1.0) * 0.5)).collect();
        let mut next: Vec<Next> = Vec::with_capacity(active.len());
        let mut cotangents = |z: &Array2<f32>| {
            let mut d = Array2::<f32>::zeros(z.raw_dim());
            let mut any = false;
            for (k, &i) in active.iter().enumerate() {
                let s = &mut imgs[i];
                let zk = row(z, k);
                let (label, target) = (b.labels[i], b.targets[i]);
                let l2sq: f32 = Zip::from(&xas[k])
                    .and(b.image(i))
                    .fold(0.0f32, |acc, &a, &x| acc + (a - x) * (a - x));
                let (f, df) = margin(&zk, label, target, spec.confidence);
                let obj = l2sq + s.c * f;
                if succeeded(&zk, label, target, spec.confidence) {
                    s.step_success = true;
                    if s.best.as_ref().is_none_or(|(bl, _, _)| l2sq < *bl) {
                        s.best = Some((l2sq, xas[k].clone(), zk.clone()));
                    }
                }
                if s.it == spec.max_iterations {
                    next.push(Next::EndStep);
                    continue;
                }
                if spec.abort_early && s.it.is_multiple_of(check_every) {
                    if obj > s.prev * 0.9999 {
                        next.push(Next::EndStep);
                        continue;
                    }
                    s.prev = obj;
                }
                let dfdz: Vec<f32> = df.iter().map(|g| g * s.c).collect();
                if dfdz.iter().any(|g| *g != 0.0) {
                    d.row_mut(k).assign(&ndarray::ArrayView1::from(&dfdz));
                    any = true;
                    next.push(Next::Step(Some(dfdz)));
                } else {
                    next.push(Next::Step(None));
                }
            }
            if any {
                vec![d]
            } else {
                Vec::new()
            }
        };
        let (_, grads) =
            model.logits_and_vjps(&stack(xas.iter().map(|a| a.view())), &mut cotangents);
        for (k, (&i, nx)) in active.iter().zip(next).enumerate() {
            let s = &mut imgs[i];
            let vjp = match nx {
                Next::EndStep => {
                    s.end_search_step();
                    continue;
                }
                Next::Step(None) => None,
                Next::Step(Some(_)) => Some(grads[0].index_axis(Axis(0), k)),
            };
            let diff = &xas[k] - &b.image(i);
            let gx = match vjp {
                Some(g) => {
                    if s.first.is_none() {
                        s.first = Some(masking_warning(g.iter()));
                    }
                    &g + &(&diff * 2.0)
                }
                None => &diff * 2.0,
            };
            s.steps += 1;
            let kk = steps_in_step(s.it);
            let (bc1, bc2) = (1.0 - b1.powi(kk), 1.0 - b2.powi(kk));
            Zip::from(&mut s.w)
                .and(&mut s.m)
                .and(&mut s.v)
                .and(&gx)
                .and(&ts[k])
                .for_each(|wi, mi, vi, &gxi, &ti| {
                    let g = gxi * (1.0 - ti * ti) * 0.5;
                    *mi = b1 * *mi + (1.0 - b1) * g;
                    *vi = b2 * *vi + (1.0 - b2) * g * g;
                    *wi -= spec.learning_rate * (*mi / bc1) / ((*vi / bc2).sqrt() + eps);
                });
            s.it += 1;
        }
    }
    Ok(imgs
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let zc = row(&clean, i);
            let (adv, za) = match s.best {
                Some((_, a, z)) => (a, z),
                None => (b.image(i).to_owned(), zc.clone()),
            };
            finish(
                b.image(i),
                adv,
                &zc,
                &za,
                Run {
                    label: b.labels[i],
                    target: b.targets[i],
                    scale: spec.report_scale,
                    unit_per_channel: units.clone(),
                    iterations: s.steps,
                    trace: Vec::new(),
                    warning: s.first.flatten(),
                },
            )
        })
        .collect())
}

/// Adam's step counter within one search step (1-based).
fn steps_in_step(it: usize) -> i32 {
    (it + 1).min(i32::MAX as usize) as i32
}

//! White-box attacks against closed forms on a linear softmax classifier, plus finite-difference
//! checks of the fixtures' analytic gradients.

use breakingbed::attack::cw::cw;
use breakingbed::attack::deepfool::deepfool;
use breakingbed::attack::fgsm::fgsm;
use breakingbed::attack::loss::logits;
use breakingbed::attack::pgd::pgd;
use breakingbed::attack::spec::{CwSpec, DeepFoolSpec, FgsmSpec, PgdSpec};
use breakingbed::attack::testing::{Counting, LinearSoftmax, Mlp};
use breakingbed::attack::threat::{Budget, Norm, Scale};
use breakingbed::attack::{Model, Normalization, WhiteBox};
use ndarray::{Array2, Array3, Array4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SHAPE: [usize; 3] = [3, 4, 4];

fn image(seed: u64, lo: f32, hi: f32) -> Array3<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array3::from_shape_fn((SHAPE[0], SHAPE[1], SHAPE[2]), |_| rng.gen_range(lo..hi))
}

/// Independent softmax in f64.
fn probs(z: &[f32]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f32::MIN, f32::max) as f64;
    let e: Vec<f64> = z.iter().map(|v| (*v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Closed form: d CE(x, y) / dx = sum_k (p_k - [k = y]) * grad z_k, grad z_k = W_k / std.
fn ce_grad_closed(m: &LinearSoftmax, x: &Array3<f32>, y: usize) -> Vec<f64> {
    let z = logits(m, x.view());
    let p = probs(&z);
    let d = x.len();
    let mut g = vec![0.0f64; d];
    for (k, pk) in p.iter().enumerate() {
        let coef = pk - if k == y { 1.0 } else { 0.0 };
        for (gi, wi) in g.iter_mut().zip(m.logit_gradient(k)) {
            *gi += coef * wi as f64;
        }
    }
    g
}

fn sgn(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn pred(m: &dyn Model, x: &Array3<f32>) -> usize {
    breakingbed::attack::classifier::argmax(&logits(m, x.view()))
}

#[test]
fn fgsm_equals_eps_times_sign_of_closed_form_gradient() {
    // Normalised model + normalized-scale budget: eps per channel is 0.3 * std[c].
    let mut m = LinearSoftmax::random(SHAPE, 5, 1);
    m.norm = Normalization::cifar10();
    for (seed, scale, eps) in [
        (2, Scale::Normalized, 0.3f32),
        (3, Scale::Pixel, 8.0),
        (4, Scale::Unit, 0.2),
    ] {
        let x = image(seed, 0.0, 1.0);
        let y = pred(&m, &x);
        let spec = FgsmSpec {
            eps: Budget::new(eps, scale).into(),
            targeted: false,
            target: None,
        };
        let out = fgsm(&m, &spec, x.view(), y, None).unwrap();
        let g = ce_grad_closed(&m, &x, y);
        let hw = 16;
        for (i, (a, x0)) in out.adv.iter().zip(x.iter()).enumerate() {
            let c = i / hw;
            let r = match scale {
                Scale::Normalized => eps * m.norm.std[c],
                Scale::Pixel => eps / 255.0,
                Scale::Unit => eps,
            };
            let want = (*x0 as f64 + r as f64 * sgn(g[i])).clamp(0.0, 1.0);
            assert!(
                (*a as f64 - want).abs() < 1e-6,
                "element {i}: {a} vs {want}"
            );
        }
        assert_eq!(out.result.iterations, Some(1));
        assert_eq!(out.result.scale, scale);
        // L-inf in the stated scale is the budget unless every element hit the box.
        assert!((out.result.linf - eps).abs() < 1e-4 * eps.max(1.0));
    }
}

#[test]
fn targeted_fgsm_descends_the_target_loss() {
    let m = LinearSoftmax::random(SHAPE, 4, 5);
    let x = image(6, 0.2, 0.8);
    let y = pred(&m, &x);
    let t = (y + 1) % 4;
    let spec = FgsmSpec {
        eps: Budget::new(4.0, Scale::Pixel).into(),
        targeted: true,
        target: Some(breakingbed::attack::Target::Class(t)),
    };
    let out = fgsm(&m, &spec, x.view(), y, Some(t)).unwrap();
    let g = ce_grad_closed(&m, &x, t);
    for (i, (a, x0)) in out.adv.iter().zip(x.iter()).enumerate() {
        let want = *x0 as f64 - 4.0 / 255.0 * sgn(g[i]);
        assert!((*a as f64 - want).abs() < 1e-6);
    }
    assert_eq!(out.result.target, Some(t));
}

/// Distance from x to the nearest boundary z_k = z_k0 of a linear model, and the minimiser's
/// direction w_l = grad z_l - grad z_k0.
fn nearest_boundary(m: &LinearSoftmax, x: &Array3<f32>) -> (usize, f64, Vec<f64>, f64) {
    let z = logits(m, x.view());
    let k0 = pred(m, x);
    let g0 = m.logit_gradient(k0);
    let mut best = (usize::MAX, f64::INFINITY, vec![], 0.0);
    for k in 0..z.len() {
        if k == k0 {
            continue;
        }
        let w: Vec<f64> = m
            .logit_gradient(k)
            .iter()
            .zip(&g0)
            .map(|(a, b)| (*a - *b) as f64)
            .collect();
        let wn = w.iter().map(|v| v * v).sum::<f64>().sqrt();
        let f = (z[k] - z[k0]) as f64;
        let d = f.abs() / wn;
        if d < best.1 {
            best = (k, d, w, wn);
        }
    }
    best
}

#[test]
fn deepfool_step_is_the_closed_form_distance_to_the_nearest_boundary() {
    let spec = DeepFoolSpec {
        max_iterations: 50,
        overshoot: 0.02,
        candidates: None,
        report_scale: Scale::Unit,
    };
    for seed in 0..10 {
        let m = LinearSoftmax::random(SHAPE, 6, 100 + seed);
        let x = image(200 + seed, 0.35, 0.65);
        let y = pred(&m, &x);
        let (_, d, w, wn) = nearest_boundary(&m, &x);
        let out = deepfool(&m, &spec, x.view(), y).unwrap();
        // Reference implementation: r = (d + 1e-4) * w / ||w||, applied once with (1+overshoot).
        let scale = 1.02 * (d + 1e-4);
        for (i, (a, x0)) in out.adv.iter().zip(x.iter()).enumerate() {
            let want = *x0 as f64 + scale * w[i] / wn;
            assert!(
                want > 0.0 && want < 1.0,
                "box must be inactive for this check"
            );
            assert!((*a as f64 - want).abs() < 1e-5, "seed {seed} elt {i}");
        }
        assert!(
            ((out.result.l2 as f64) - scale).abs() < 1e-4 * scale.max(1.0),
            "seed {seed}: l2 {} vs {scale}",
            out.result.l2
        );
        // A linear model flips at the first iteration.
        assert_eq!(out.result.iterations, Some(1));
        assert!(out.result.success);
        assert_eq!(out.result.trace.len(), 1);
    }
}

#[test]
fn cw_l2_is_no_larger_than_deepfool_and_no_smaller_than_the_exact_minimum() {
    let df = DeepFoolSpec {
        max_iterations: 50,
        overshoot: 0.02,
        candidates: None,
        report_scale: Scale::Unit,
    };
    let spec = CwSpec {
        c: 0.1,
        binary_search_steps: 9,
        max_iterations: 1000,
        learning_rate: 0.01,
        confidence: 0.0,
        abort_early: true,
        report_scale: Scale::Unit,
        targeted: false,
        target: None,
    };
    for seed in 0..5 {
        let m = LinearSoftmax::random(SHAPE, 4, 300 + seed);
        let x = image(400 + seed, 0.35, 0.65);
        let y = pred(&m, &x);
        let (_, d, _, _) = nearest_boundary(&m, &x);
        let d_df = deepfool(&m, &df, x.view(), y).unwrap().result.l2 as f64;
        let out = cw(&m, &spec, x.view(), y, None).unwrap();
        eprintln!(
            "seed {seed}: exact {d:.5} cw {:.5} deepfool {d_df:.5} iters {:?}",
            out.result.l2, out.result.iterations
        );
        assert!(out.result.success, "seed {seed}");
        let l2 = out.result.l2 as f64;
        // The misclassified region is a union of half-spaces: nothing closer than d exists.
        assert!(
            l2 >= d * (1.0 - 1e-3),
            "seed {seed}: cw {l2} below exact minimum {d}"
        );
        assert!(
            l2 <= d_df * 1.005,
            "seed {seed}: cw {l2} vs deepfool {d_df} (exact {d})"
        );
    }
}

#[test]
fn cw_targeted_reaches_the_target_with_the_requested_margin() {
    let m = LinearSoftmax::random(SHAPE, 4, 7);
    let x = image(8, 0.3, 0.7);
    let y = pred(&m, &x);
    let t = (y + 2) % 4;
    let spec = CwSpec {
        c: 1.0,
        binary_search_steps: 5,
        max_iterations: 500,
        learning_rate: 0.01,
        confidence: 0.5,
        abort_early: true,
        report_scale: Scale::Pixel,
        targeted: true,
        target: Some(breakingbed::attack::Target::Class(t)),
    };
    let out = cw(&m, &spec, x.view(), y, Some(t)).unwrap();
    assert!(out.result.success);
    let z = logits(&m, out.adv.view());
    for (k, v) in z.iter().enumerate() {
        if k != t {
            assert!(z[t] - v >= 0.5 - 1e-4, "margin to class {k}: {}", z[t] - v);
        }
    }
    // pixel-scale report: 255 times the unit-scale L2
    let unit_l2 = out
        .adv
        .iter()
        .zip(x.iter())
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((out.result.l2 as f64 - 255.0 * unit_l2).abs() < 1e-3 * 255.0 * unit_l2);
}

fn pgd_spec(norm: Norm, eps: Budget, step: Budget, iterations: usize) -> PgdSpec {
    PgdSpec {
        norm,
        eps: eps.into(),
        step: step.into(),
        iterations,
        restarts: 1,
        random_start: false.into(),
        trace_every: 5,
        targeted: false,
        target: None,
    }
}

#[test]
fn one_pgd_step_from_the_clean_image_is_fgsm() {
    let m = Mlp::random(SHAPE, 16, 4, 9);
    let x = image(10, 0.0, 1.0);
    let y = pred(&m, &x);
    let eps = Budget::new(6.0, Scale::Pixel);
    let p = pgd(
        &m,
        &pgd_spec(Norm::Linf, eps, eps, 1),
        x.view(),
        y,
        None,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    let f = fgsm(
        &m,
        &FgsmSpec {
            eps: eps.into(),
            targeted: false,
            target: None,
        },
        x.view(),
        y,
        None,
    )
    .unwrap();
    assert_eq!(p.adv, f.adv);
}

#[test]
fn pgd_l2_step_follows_the_normalised_closed_form_gradient() {
    let m = LinearSoftmax::random(SHAPE, 4, 11);
    let x = image(12, 0.3, 0.7);
    let y = pred(&m, &x);
    let alpha = 0.05f64;
    let spec = pgd_spec(
        Norm::L2,
        Budget::new(1.0, Scale::Unit),
        Budget::new(alpha as f32, Scale::Unit),
        1,
    );
    let out = pgd(
        &m,
        &spec,
        x.view(),
        y,
        None,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    let g = ce_grad_closed(&m, &x, y);
    let gn = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    for (i, (a, x0)) in out.adv.iter().zip(x.iter()).enumerate() {
        let want = *x0 as f64 + alpha * g[i] / gn;
        assert!((*a as f64 - want).abs() < 1e-6);
    }
    assert!((out.result.l2 as f64 - alpha).abs() < 1e-5);
}

#[test]
fn pgd_uses_iterations_times_restarts_gradients_and_traces_every_kth() {
    let m = Counting::new(LinearSoftmax::random(SHAPE, 4, 13));
    let x = image(14, 0.2, 0.8);
    let y = pred(&m, &x);
    // eps 0: nothing can succeed, so every restart runs to the end.
    let mut spec = pgd_spec(
        Norm::Linf,
        Budget::new(0.0, Scale::Pixel),
        Budget::new(1.0, Scale::Pixel),
        10,
    );
    spec.restarts = 3;
    spec.random_start = true.into();
    let out = pgd(
        &m,
        &spec,
        x.view(),
        y,
        None,
        &mut ChaCha8Rng::seed_from_u64(1),
    )
    .unwrap();
    assert_eq!(m.vjp_images(), 30);
    assert_eq!(out.result.iterations, Some(30));
    assert_eq!(out.adv, x);
    let its: Vec<usize> = out.result.trace.iter().map(|t| t.iteration).collect();
    assert_eq!(its, vec![0, 5, 10]);
}

#[test]
fn fixture_gradients_match_finite_differences() {
    let mut lin = LinearSoftmax::random(SHAPE, 4, 15);
    lin.norm = Normalization::cifar10();
    let mut mlp = Mlp::random(SHAPE, 16, 4, 16);
    mlp.norm = Normalization::cifar10();
    let models: [&dyn WhiteBox; 2] = [&lin, &mlp];
    let x = image(17, 0.1, 0.9).insert_axis(Axis(0));
    let dl = Array2::from_shape_vec((1, 4), vec![0.3, -1.0, 0.5, 0.2]).unwrap();
    for m in models {
        let g = m.input_vjp(&x, &dl);
        let f = |x: &Array4<f32>| -> f64 {
            m.logits(x)
                .iter()
                .zip(dl.iter())
                .map(|(a, b)| (*a * *b) as f64)
                .sum()
        };
        let h = 1e-3f32;
        for i in (0..x.len()).step_by(5) {
            let mut xp = x.clone();
            let mut xm = x.clone();
            xp.as_slice_mut().unwrap()[i] += h;
            xm.as_slice_mut().unwrap()[i] -= h;
            let fd = (f(&xp) - f(&xm)) / (2.0 * h as f64);
            let an = g.as_slice().unwrap()[i] as f64;
            assert!(
                (fd - an).abs() < 2e-2 * (1.0 + an.abs()),
                "elt {i}: fd {fd} vs {an}"
            );
        }
    }
}

//! Properties: every white-box attack's output stays in its epsilon ball and the pixel box;
//! projection is feasible and idempotent; norms agree with a naive per-element formula.

use breakingbed::attack::cw::cw;
use breakingbed::attack::deepfool::deepfool;
use breakingbed::attack::fgsm::fgsm;
use breakingbed::attack::pgd::pgd;
use breakingbed::attack::spec::{CwSpec, DeepFoolSpec, FgsmSpec, PgdSpec};
use breakingbed::attack::testing::Mlp;
use breakingbed::attack::threat::{norms_in, Ball, Budget, Norm, Scale};
use breakingbed::attack::Normalization;
use ndarray::Array3;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SHAPE: [usize; 3] = [3, 4, 4];

fn image(seed: u64) -> Array3<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Include exact 0s and 1s: the box must hold at its faces too.
    Array3::from_shape_fn((3, 4, 4), |_| match rng.gen_range(0..10) {
        0 => 0.0,
        1 => 1.0,
        _ => rng.gen_range(0.0..1.0),
    })
}

fn scale_of(i: u8) -> Scale {
    [Scale::Pixel, Scale::Unit, Scale::Normalized][i as usize % 3]
}

/// A budget of comparable size in each scale.
fn budget(scale: Scale, frac: f32) -> Budget {
    Budget::new(
        match scale {
            Scale::Pixel => frac * 64.0,
            Scale::Unit => frac * 0.25,
            Scale::Normalized => frac * 1.0,
        },
        scale,
    )
}

fn model(seed: u64) -> Mlp {
    let mut m = Mlp::random(SHAPE, 12, 4, seed);
    m.norm = Normalization::cifar10();
    m
}

fn in_box(x: &Array3<f32>) -> bool {
    x.iter().all(|v| (0.0..=1.0).contains(v))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn fgsm_and_pgd_stay_in_ball_and_box(
        seed in 0u64..10_000, s in 0u8..3, frac in 0.0f32..1.0, l2 in any::<bool>(),
        iters in 1usize..6, step_frac in 0.05f32..2.0, targeted in any::<bool>(),
    ) {
        let m = model(seed);
        let x = image(seed + 1);
        let scale = scale_of(s);
        let eps = budget(scale, frac);
        let target = targeted.then_some((seed % 4) as usize);
        let f = fgsm(&m, &FgsmSpec { eps: eps.into(), targeted, target: target.map(breakingbed::attack::Target::Class) },
            x.view(), 0, target).unwrap();
        let ball = Ball::new(Norm::Linf, eps, &m.norm, 3, "eps").unwrap();
        prop_assert!(ball.contains(x.view(), f.adv.view(), 1e-5));
        let norm = if l2 { Norm::L2 } else { Norm::Linf };
        let spec = PgdSpec {
            norm, eps: eps.into(), step: budget(scale, frac * step_frac).into(), iterations: iters, restarts: 2,
            random_start: true.into(), trace_every: 1, targeted,
            target: target.map(breakingbed::attack::Target::Class),
        };
        let p = pgd(&m, &spec, x.view(), 1, target, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let ball = Ball::new(norm, eps, &m.norm, 3, "eps").unwrap();
        prop_assert!(in_box(&p.adv));
        prop_assert!(ball.contains(x.view(), p.adv.view(), 1e-4), "{:?}", p.result);
        // reported norms are in the budget's scale
        let size = if l2 { p.result.l2 } else { p.result.linf };
        // f32 rounding of the projection (see Ball::rounding_slack; sqrt(d) of it for L2).
        let slack = ball.rounding_slack() * if l2 { (x.len() as f32).sqrt() } else { 1.0 };
        prop_assert!(size <= eps.value * (1.0 + 1e-4) + slack);
    }

    #[test]
    fn cw_and_deepfool_stay_in_the_box(seed in 0u64..10_000, c in 0.01f32..20.0, overshoot in 0.0f32..1.0) {
        let m = model(seed);
        let x = image(seed + 2);
        let spec = CwSpec { c, binary_search_steps: 2, max_iterations: 20, learning_rate: 0.05,
            confidence: 0.0, abort_early: false, report_scale: Scale::Unit, targeted: false, target: None };
        prop_assert!(in_box(&cw(&m, &spec, x.view(), 0, None).unwrap().adv));
        let spec = DeepFoolSpec { max_iterations: 10, overshoot, candidates: None, report_scale: Scale::Pixel };
        prop_assert!(in_box(&deepfool(&m, &spec, x.view(), 0).unwrap().adv));
    }

    #[test]
    fn projection_is_feasible_and_idempotent(
        seed in 0u64..10_000, s in 0u8..3, frac in 0.0f32..1.0, l2 in any::<bool>(), spread in 0.0f32..3.0,
    ) {
        let n = Normalization::cifar10();
        let norm = if l2 { Norm::L2 } else { Norm::Linf };
        let ball = Ball::new(norm, budget(scale_of(s), frac), &n, 3, "eps").unwrap();
        let x0 = image(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 9);
        let mut x = x0.mapv(|v| v + spread * rng.gen_range(-1.0f32..1.0));
        ball.project(x0.view(), &mut x);
        prop_assert!(ball.contains(x0.view(), x.view(), 1e-5));
        let mut again = x.clone();
        ball.project(x0.view(), &mut again);
        for (a, b) in again.iter().zip(x.iter()) {
            prop_assert!((a - b).abs() <= 1e-6);
        }
        // the random start lies in the ball too
        let r = ball.sample(x0.view(), &mut rng);
        prop_assert!(ball.contains(x0.view(), r.view(), 1e-5));
    }

    #[test]
    fn norms_match_a_naive_formula(seed in 0u64..10_000, s in 0u8..3) {
        let n = Normalization::imagenet();
        let scale = scale_of(s);
        let x0 = image(seed);
        let x = image(seed + 1);
        let got = norms_in(x0.view(), x.view(), scale, &n);
        let (mut l0, mut l2, mut linf) = (0usize, 0f64, 0f64);
        for ((c, h, w), a) in x.indexed_iter() {
            let d = (*a - x0[[c, h, w]]) as f64;
            let unit = match scale { Scale::Pixel => 1.0 / 255.0, Scale::Unit => 1.0, Scale::Normalized => n.std[c] as f64 };
            if d != 0.0 { l0 += 1; }
            l2 += (d / unit).powi(2);
            linf = linf.max((d / unit).abs());
        }
        prop_assert_eq!(got.l0, l0);
        prop_assert!((got.l2 as f64 - l2.sqrt()).abs() <= 1e-5 * (1.0 + l2.sqrt()));
        prop_assert!((got.linf as f64 - linf).abs() <= 1e-5 * (1.0 + linf));
    }
}

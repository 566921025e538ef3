//! Whole-network input gradient of the float engine (`FloatEngine::try_input_vjp`) against
//! central finite differences, on a vanilla ResNet8 in eval mode with randomised BN statistics.
//!
//! Why the check is sharp: in eval mode a vanilla ResNet is piecewise linear in its input (conv,
//! affine BN, ReLU, option-A shortcut, add, average pool, linear), so the central quotient
//! `(L(x + h v) - L(x - h v)) / 2h` has no truncation error unless a ReLU kink lies within the
//! step. What remains is f32 rounding: |L| ~ 10 with relative error ~1e-6 after ~20 layers gives
//! ~1e-5 absolute per evaluation, i.e. ~5e-4 in the quotient at h = 1e-2 (unit-scale pixels).
//! Tolerance for single pixels: 2e-3 absolute + 2% relative covers that and a rare kink, while a wrong backward
//! (missing normalisation 1/std, a wrong shortcut or transposed kernel) is off by O(1).
//!
//! Binarized nets are deliberately not checked against finite differences: their forward pass is
//! piecewise constant along every path through `sign`, so the true derivative is zero there
//! almost everywhere, while the engine returns the straight-through surrogate on purpose (as in
//! training). The surrogate's pieces (sign STE clipped at |x| > 1, XNOR/ABC binarize backward)
//! are checked op by op in tests/ops_gradcheck.rs; the executor composes them with the same
//! chain rule this test validates on the vanilla net.

use breakingbed::engine::classifier::FloatEngine;
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::model;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use ndarray::{Array2, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn engine(seed: u64) -> FloatEngine {
    let net = model::builtin("resnet8", None, None).unwrap();
    let cn = variant::apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let mut p = params::init(&cn, seed);
    // Non-trivial BN (params::init gives identity statistics) so the BN backward is exercised.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb17);
    for (name, t) in p.iter_mut() {
        if name.ends_with("running_mean") || name.contains("bn") && name.ends_with(".bias") {
            t.mapv_inplace(|_| rng.gen_range(-0.3..0.3));
        } else if name.ends_with("running_var") || name.contains("bn") && name.ends_with(".weight")
        {
            t.mapv_inplace(|_| rng.gen_range(0.5..1.5));
        }
    }
    FloatEngine::new(Net::new(cn, p).unwrap()).unwrap()
}

fn loss(e: &FloatEngine, x: &Array4<f32>, c: &Array2<f32>) -> f64 {
    let l = e.try_logits(x).unwrap();
    l.iter()
        .zip(c)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum()
}

fn close(fd: f64, an: f64) -> bool {
    (fd - an).abs() <= 2e-3 + 0.02 * an.abs()
}

#[test]
fn resnet8_input_gradient_matches_central_differences() {
    let e = engine(21);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Pixels kept away from the box edges so x +/- h stays a valid unit-scale image.
    let x = Array4::from_shape_simple_fn((2, 3, 32, 32), || rng.gen_range(0.1f32..0.9));
    let c = Array2::from_shape_simple_fn((2, 10), || StandardNormal.sample(&mut rng));
    let g = e.try_input_vjp(&x, &c).unwrap();
    let h = 1e-2f32;

    // Single pixels, both images, every channel.
    let mut checked = 0;
    for _ in 0..12 {
        let idx = [
            rng.gen_range(0..2),
            rng.gen_range(0..3),
            rng.gen_range(0..32),
            rng.gen_range(0..32),
        ];
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[idx] += h;
        xm[idx] -= h;
        // The step actually taken in f32.
        let step = f64::from(xp[idx] - xm[idx]);
        let fd = (loss(&e, &xp, &c) - loss(&e, &xm, &c)) / step;
        let an = f64::from(g[idx]);
        assert!(close(fd, an), "pixel {idx:?}: fd {fd} vs vjp {an}");
        checked += usize::from(an.abs() > 1e-4);
    }
    // The probes must have seen real gradients, not a dead network.
    assert!(
        checked >= 6,
        "only {checked} pixels with a non-negligible gradient"
    );

    // Dense random directions: the directional derivative is the sum of all 6144 pixel terms,
    // so a wrong gradient anywhere shows up. Moving every pixel at once crosses ReLU kinks
    // quickly (measured for this seed: quotient 0.32 at h = 1e-2, 0.64 at 1e-3, 0.816 at 1e-4
    // against a VJP of 0.823), so the step is 1e-4 (f32 rounding of L, ~1e-6 absolute here,
    // adds ~5e-3 to the quotient), the tolerance 3% relative, and the quotient must be
    // converging towards the VJP as the step shrinks.
    for _ in 0..3 {
        let v = Array4::from_shape_simple_fn(x.raw_dim(), || rng.gen_range(-1.0f32..1.0));
        let an: f64 = g
            .iter()
            .zip(&v)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        assert!(
            an.abs() > 1e-2,
            "directional derivative {an} too small to test"
        );
        let quotient = |h: f32| {
            let xp = &x + &(&v * h);
            let xm = &x - &(&v * h);
            (loss(&e, &xp, &c) - loss(&e, &xm, &c)) / (2.0 * f64::from(h))
        };
        let (coarse, fine) = (quotient(1e-3), quotient(1e-4));
        assert!(
            (fine - an).abs() <= 2e-3 + 0.03 * an.abs(),
            "direction: fd {fine} vs vjp {an}"
        );
        assert!(
            (fine - an).abs() <= (coarse - an).abs() + 2e-3,
            "quotient not converging to the vjp: h=1e-3 {coarse}, h=1e-4 {fine}, vjp {an}"
        );
    }
}

#[test]
fn input_gradient_of_a_batch_is_the_per_image_gradient() {
    // Images in a batch are independent in eval mode: the batched VJP must equal each image's
    // own VJP (catches cross-talk between batch entries in any op's backward).
    let e = engine(3);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = Array4::from_shape_simple_fn((3, 3, 32, 32), || rng.gen::<f32>());
    let c = Array2::from_shape_simple_fn((3, 10), || StandardNormal.sample(&mut rng));
    let g = e.try_input_vjp(&x, &c).unwrap();
    for i in 0..3 {
        let xi = x.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
        let ci = c.slice(ndarray::s![i..i + 1, ..]).to_owned();
        let gi = e.try_input_vjp(&xi, &ci).unwrap();
        let max = (&gi - &g.slice(ndarray::s![i..i + 1, .., .., ..]))
            .mapv(f32::abs)
            .fold(0.0f32, |a, &b| a.max(b));
        let scale = gi.mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
        assert!(max <= 1e-5 * (1.0 + scale), "image {i}: max diff {max}");
    }
}

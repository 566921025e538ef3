//! Every float operator's backward pass against central finite differences of its forward
//! pass, as property tests over small random shapes.
//!
//! Method: pick a random cotangent `r` and the scalar `L(theta) = sum(r * f(theta))` (in f64);
//! then `dL/dtheta_i` from the backward pass (fed `dy = r`) must equal
//! `(L(theta + h e_i) - L(theta - h e_i)) / (2h)`. The step actually taken is measured in f32
//! (`x+h` rounds), and inputs of piecewise-linear ops are kept further than `h` from their kinks
//! so the difference quotient is exact up to rounding there. Tolerances are stated per test:
//! forward values are f32 (relative rounding ~6e-8), so a quotient with step h carries an error
//! of roughly 1e-7 * |L| / h.

use breakingbed::engine::ops::{
    abc, activation as act, batchnorm as bn, conv, linear as lin, loss, pool, shortcut, xnor,
};
use ndarray::{Array, Array1, Array2, Array4, Dimension};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand_arr<D: Dimension>(rng: &mut ChaCha8Rng, shape: D, lo: f32, hi: f32) -> Array<f32, D> {
    Array::from_shape_simple_fn(shape, || rng.gen_range(lo..hi))
}

/// Pushes every element at least `gap` away from each kink in `kinks`.
fn away_from<D: Dimension>(a: &mut Array<f32, D>, kinks: &[f32], gap: f32) {
    a.mapv_inplace(|v| {
        let mut v = v;
        for &k in kinks {
            if (v - k).abs() < gap {
                v = if v >= k { k + gap } else { k - gap };
            }
        }
        v
    });
}

fn dot<D: Dimension>(r: &Array<f32, D>, y: &Array<f32, D>) -> f64 {
    r.iter()
        .zip(y.iter())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Asserts `grad` equals the central difference of `loss` at `x`, element by element:
/// `|fd - g| <= tol * max(1, |g|)`.
fn check_fd<D: Dimension>(
    what: &str,
    x: &Array<f32, D>,
    grad: &Array<f32, D>,
    h: f32,
    tol: f64,
    loss: impl Fn(&Array<f32, D>) -> f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(x.shape(), grad.shape());
    let mut xp = x.clone();
    for (i, (&g, &v)) in grad.iter().zip(x.iter()).enumerate() {
        let slot = xp.iter_mut().nth(i).unwrap();
        *slot = v + h;
        let up = *slot;
        let lp = loss(&xp);
        let slot = xp.iter_mut().nth(i).unwrap();
        *slot = v - h;
        let down = *slot;
        let lm = loss(&xp);
        *xp.iter_mut().nth(i).unwrap() = v;
        let fd = (lp - lm) / (up as f64 - down as f64);
        prop_assert!(
            (fd - g as f64).abs() <= tol * (g as f64).abs().max(1.0),
            "{}: element {} analytic {} vs finite difference {}",
            what,
            i,
            g,
            fd
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn conv2d_backward_matches_fd(n in 1usize..3, c in 1usize..4, o in 1usize..4, h in 2usize..6,
                                  k in 1usize..4, stride in 1usize..3, pad in 0usize..2, seed in any::<u64>()) {
        prop_assume!(h + 2 * pad >= k);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = rand_arr(&mut rng, ndarray::Dim([n, c, h, h]), -1.0, 1.0);
        let w = rand_arr(&mut rng, ndarray::Dim([o, c, k, k]), -1.0, 1.0);
        let b = rand_arr(&mut rng, ndarray::Dim([o]), -1.0, 1.0);
        let y = conv::conv2d(&x, &w, Some(&b), stride, pad).unwrap();
        let r = rand_arr(&mut rng, y.raw_dim(), -1.0, 1.0);
        let (dx, dw, db) = conv::conv2d_backward(&x, &w, stride, pad, &r).unwrap();
        // Linear in each argument: the quotient is exact up to rounding for any step.
        check_fd("dx", &x, &dx, 0.25, 1e-3, |x| dot(&r, &conv::conv2d(x, &w, Some(&b), stride, pad).unwrap()))?;
        check_fd("dw", &w, &dw, 0.25, 1e-3, |w| dot(&r, &conv::conv2d(&x, w, Some(&b), stride, pad).unwrap()))?;
        check_fd("db", &b, &db, 0.25, 1e-3, |b| dot(&r, &conv::conv2d(&x, &w, Some(b), stride, pad).unwrap()))?;
    }

    #[test]
    fn batch_norm_train_backward_matches_fd(n in 1usize..4, c in 1usize..4, h in 1usize..4, seed in any::<u64>()) {
        prop_assume!(n * h * h >= 2);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = rand_arr(&mut rng, ndarray::Dim([n, c, h, h]), -2.0, 2.0);
        let g = rand_arr(&mut rng, ndarray::Dim([c]), 0.5, 1.5);
        let be = rand_arr(&mut rng, ndarray::Dim([c]), -1.0, 1.0);
        let eps = 1e-3;
        let (y, stats) = bn::batch_norm_train(&x, &g, &be, eps).unwrap();
        // The step must be small against the spread of each channel: with nearly equal values
        // the normalisation's curvature ~ 1/std^2 would swamp the O(h^2) truncation bound.
        prop_assume!(stats.var.iter().all(|&v| v >= 0.1));
        let r = rand_arr(&mut rng, y.raw_dim(), -1.0, 1.0);
        let (dx, dg, db) = bn::batch_norm_train_backward(&x, &g, &stats, &r).unwrap();
        // Smooth but nonlinear (through mean and variance): step 1e-2 gives a truncation error
        // O(h^2) ~ 1e-4 and rounding ~1e-5 * |L|.
        let f = |x: &Array4<f32>, g: &Array1<f32>, b: &Array1<f32>| dot(&r, &bn::batch_norm_train(x, g, b, eps).unwrap().0);
        check_fd("dx", &x, &dx, 1e-2, 5e-3, |x| f(x, &g, &be))?;
        check_fd("dgamma", &g, &dg, 1e-2, 5e-3, |g| f(&x, g, &be))?;
        check_fd("dbeta", &be, &db, 1e-2, 5e-3, |b| f(&x, &g, b))?;
    }

    #[test]
    fn batch_norm_inference_backward_matches_fd(n in 1usize..3, c in 1usize..4, h in 1usize..4, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = rand_arr(&mut rng, ndarray::Dim([n, c, h, h]), -2.0, 2.0);
        let g = rand_arr(&mut rng, ndarray::Dim([c]), -1.5, 1.5);
        let be = rand_arr(&mut rng, ndarray::Dim([c]), -1.0, 1.0);
        let m = rand_arr(&mut rng, ndarray::Dim([c]), -1.0, 1.0);
        let v = rand_arr(&mut rng, ndarray::Dim([c]), 0.1, 2.0);
        let y = bn::batch_norm_inference(&x, &g, &be, &m, &v, 1e-5).unwrap();
        let r = rand_arr(&mut rng, y.raw_dim(), -1.0, 1.0);
        let (dx, dg, db) = bn::batch_norm_inference_backward(&x, &g, &m, &v, 1e-5, &r).unwrap();
        let f = |x: &Array4<f32>, g: &Array1<f32>, b: &Array1<f32>| dot(&r, &bn::batch_norm_inference(x, g, b, &m, &v, 1e-5).unwrap());
        check_fd("dx", &x, &dx, 0.1, 1e-3, |x| f(x, &g, &be))?;
        check_fd("dgamma", &g, &dg, 0.1, 1e-3, |g| f(&x, g, &be))?;
        check_fd("dbeta", &be, &db, 0.1, 1e-3, |b| f(&x, &g, b))?;
    }

    #[test]
    fn relu_and_hardtanh_backward_match_fd(len in 1usize..40, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = rand_arr(&mut rng, ndarray::Dim([len]), -2.0, 2.0);
        away_from(&mut x, &[-1.0, 0.0, 1.0], 0.05);
        let r = rand_arr(&mut rng, x.raw_dim(), -1.0, 1.0);
        let d = act::relu_backward(&x, &r).unwrap();
        check_fd("relu", &x, &d, 0.01, 1e-3, |x| dot(&r, &act::relu(x)))?;
        let d = act::hardtanh_backward(&x, &r).unwrap();
        check_fd("hardtanh", &x, &d, 0.01, 1e-3, |x| dot(&r, &act::hardtanh(x)))?;
    }

    #[test]
    fn xnor_alpha_path_matches_fd_and_ste_path_matches_definition(o in 1usize..4, n in 1usize..12, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut w = rand_arr(&mut rng, ndarray::Dim([o, n]), -1.5, 1.5);
        away_from(&mut w, &[-1.0, 0.0, 1.0], 0.05);
        let dwb = rand_arr(&mut rng, w.raw_dim(), -1.0, 1.0);
        let g = xnor::xnor_binarize_backward(&w, &dwb).unwrap();
        // Away from sign changes the forward pass only moves through alpha.
        check_fd("through_alpha", &w, &g.through_alpha, 0.01, 1e-3,
                 |w| dot(&dwb, &xnor::xnor_binarize(w).unwrap().approx))?;
        let alpha = xnor::xnor_binarize(&w).unwrap().alpha;
        for ((oi, i), &s) in g.ste.indexed_iter() {
            let want = if w[[oi, i]].abs() <= 1.0 { alpha[oi] * dwb[[oi, i]] } else { 0.0 };
            prop_assert!((s - want).abs() <= 1e-6);
            prop_assert!((g.total[[oi, i]] - s - g.through_alpha[[oi, i]]).abs() <= 1e-6);
        }
    }

    #[test]
    fn abc_alpha_and_beta_gradients_match_fd(m in 1usize..5, nb in 1usize..4, len in 2usize..30, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w = rand_arr(&mut rng, ndarray::Dim([len, 1]), -1.0, 1.0);
        let wb = abc::abc_binarize(&w, m).unwrap();
        let r = rand_arr(&mut rng, w.raw_dim(), -1.0, 1.0);
        let (_, dalpha) = abc::abc_binarize_backward(&w, &wb, &r).unwrap();
        let alphas = Array1::from(wb.alphas.clone());
        let approx_of = |a: &Array1<f32>| {
            let mut s = Array2::<f32>::zeros(w.raw_dim());
            for (b, &ai) in wb.bases.iter().zip(a.iter()) { s.scaled_add(ai, b); }
            s
        };
        check_fd("dalpha", &alphas, &Array1::from(dalpha), 0.1, 1e-3, |a| dot(&r, &approx_of(a)))?;

        let mut x = rand_arr(&mut rng, ndarray::Dim([len]), -0.5, 1.5);
        let p = abc::AbcActivation { shifts: (0..nb).map(|_| rng.gen_range(-0.4f32..0.4)).collect(),
                                     betas: (0..nb).map(|_| rng.gen_range(0.5f32..1.5)).collect() };
        // Keep x + v_j off the H threshold 0.5 so beta's quotient is not hit by a jump.
        for &v in &p.shifts { away_from(&mut x, &[0.5 - v], 0.02); }
        let ra = rand_arr(&mut rng, x.raw_dim(), -1.0, 1.0);
        let dbeta = abc::abc_activation_backward(&x, &p, &ra).unwrap().dbeta;
        let betas = Array1::from(p.betas.clone());
        check_fd("dbeta", &betas, &Array1::from(dbeta), 0.1, 1e-3, |b| {
            let q = abc::AbcActivation { shifts: p.shifts.clone(), betas: b.to_vec() };
            dot(&ra, &abc::abc_activation(&x, &q).unwrap().a)
        })?;
    }

    #[test]
    fn shortcut_a_backward_matches_fd(n in 1usize..3, c in 1usize..4, extra in 0usize..3, h in 1usize..6, stride in 1usize..3, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = rand_arr(&mut rng, ndarray::Dim([n, c, h, h]), -1.0, 1.0);
        let out_c = c + 2 * extra;
        let y = shortcut::shortcut_a(&x, out_c, stride).unwrap();
        let r = rand_arr(&mut rng, y.raw_dim(), -1.0, 1.0);
        let dx = shortcut::shortcut_a_backward(x.dim(), stride, &r).unwrap();
        check_fd("dx", &x, &dx, 0.25, 1e-4, |x| dot(&r, &shortcut::shortcut_a(x, out_c, stride).unwrap()))?;
    }

    #[test]
    fn pools_backward_match_fd(n in 1usize..3, c in 1usize..3, h in 2usize..7, k in 1usize..4, stride in 1usize..3, pad in 0usize..2, seed in any::<u64>()) {
        prop_assume!(pad <= k / 2 && h + 2 * pad >= k);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Distinct values 0.1 apart (a shuffled ramp) so no window has a near-tie within the step.
        let len = n * c * h * h;
        let mut vals: Vec<f32> = (0..len).map(|i| i as f32 * 0.1 - 1.0).collect();
        for i in (1..len).rev() { let j = rng.gen_range(0..=i); vals.swap(i, j); }
        let x = Array4::from_shape_vec((n, c, h, h), vals).unwrap();
        let (y, arg) = pool::max_pool2d(&x, k, stride, pad).unwrap();
        let r = rand_arr(&mut rng, y.raw_dim(), -1.0, 1.0);
        let dx = pool::max_pool2d_backward(x.dim(), &arg, &r).unwrap();
        check_fd("max", &x, &dx, 0.02, 1e-3, |x| dot(&r, &pool::max_pool2d(x, k, stride, pad).unwrap().0))?;
        let y = pool::avg_pool2d(&x, k, stride, pad).unwrap();
        let r = rand_arr(&mut rng, y.raw_dim(), -1.0, 1.0);
        let dx = pool::avg_pool2d_backward(x.dim(), k, stride, pad, &r).unwrap();
        check_fd("avg", &x, &dx, 0.25, 1e-3, |x| dot(&r, &pool::avg_pool2d(x, k, stride, pad).unwrap()))?;
        let r2 = rand_arr(&mut rng, ndarray::Dim([n, c]), -1.0, 1.0);
        let dx = pool::global_avg_pool_backward(x.dim(), &r2).unwrap();
        check_fd("global", &x, &dx, 0.25, 1e-3, |x| dot(&r2, &pool::global_avg_pool(x).unwrap()))?;
    }

    #[test]
    fn linear_backward_matches_fd(n in 1usize..5, i in 1usize..8, o in 1usize..6, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = rand_arr(&mut rng, ndarray::Dim([n, i]), -1.0, 1.0);
        let w = rand_arr(&mut rng, ndarray::Dim([o, i]), -1.0, 1.0);
        let b = rand_arr(&mut rng, ndarray::Dim([o]), -1.0, 1.0);
        let r = rand_arr(&mut rng, ndarray::Dim([n, o]), -1.0, 1.0);
        let (dx, dw, db) = lin::linear_backward(&x, &w, &r).unwrap();
        check_fd("dx", &x, &dx, 0.25, 1e-4, |x| dot(&r, &lin::linear(x, &w, Some(&b)).unwrap()))?;
        check_fd("dw", &w, &dw, 0.25, 1e-4, |w| dot(&r, &lin::linear(&x, w, Some(&b)).unwrap()))?;
        check_fd("db", &b, &db, 0.25, 1e-4, |b| dot(&r, &lin::linear(&x, &w, Some(b)).unwrap()))?;
    }

    #[test]
    fn losses_gradients_match_fd(n in 1usize..5, k in 2usize..8, temp in 1.0f32..8.0, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z = rand_arr(&mut rng, ndarray::Dim([n, k]), -3.0, 3.0);
        let t = rand_arr(&mut rng, ndarray::Dim([n, k]), -3.0, 3.0);
        let labels: Vec<usize> = (0..n).map(|_| rng.gen_range(0..k)).collect();
        let (_, d) = loss::softmax_cross_entropy(&z, &labels).unwrap();
        check_fd("ce", &z, &d, 1e-2, 2e-3, |z| loss::softmax_cross_entropy(z, &labels).unwrap().0 as f64)?;
        let (_, d) = loss::kd_kl_loss(&z, &t, temp).unwrap();
        check_fd("kd", &z, &d, 1e-2, 2e-3, |z| loss::kd_kl_loss(z, &t, temp).unwrap().0 as f64)?;
    }
}

#[test]
fn fd_checker_rejects_a_wrong_gradient() {
    // The checker itself must fail on a gradient off by a factor: relu's gradient doubled.
    let x = Array1::from(vec![0.5f32, -0.7, 1.3]);
    let r = Array1::from(vec![1.0f32, 1.0, 1.0]);
    let wrong = act::relu_backward(&x, &r).unwrap() * 2.0;
    assert!(check_fd("relu", &x, &wrong, 0.01, 1e-3, |x| dot(&r, &act::relu(x))).is_err());
    let right = act::relu_backward(&x, &r).unwrap();
    assert!(check_fd("relu", &x, &right, 0.01, 1e-3, |x| dot(&r, &act::relu(x))).is_ok());
}

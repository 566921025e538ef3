//! Known answers worked out by hand (in the comments) and closed-form properties for the
//! non-convolution operators: sign, binarizers, batch norm, shortcut, pools, losses.

use breakingbed::engine::ops::{
    abc, activation as act, batchnorm as bn, conv, loss, pool, shortcut, xnor,
};
use ndarray::{array, Array, Array1, Array2, Array4, Axis};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn sign_of_zero_is_plus_one_and_ste_window_is_closed() {
    let x = array![-2.0f32, -1.0, -0.5, 0.0, -0.0, 0.5, 1.0, 2.0];
    assert_eq!(
        act::sign(&x),
        array![-1.0f32, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    );
    let g = act::sign_ste_backward(&x, &Array1::from_elem(8, 3.0f32)).unwrap();
    assert_eq!(g, array![0.0f32, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 0.0]);
    assert_eq!(
        act::hardtanh(&x),
        array![-1.0f32, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 1.0]
    );
    assert_eq!(
        act::relu(&x),
        array![0.0f32, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 2.0]
    );
}

#[test]
fn xnor_hand_example() {
    // Filter 0: (0.5, -1.5, 0, 2) -> alpha = (0.5+1.5+0+2)/4 = 1, B = (+1,-1,+1,+1).
    // Filter 1: (-0.2, -0.2, 0.2, 0.6) -> alpha = 1.2/4 = 0.3, B = (-1,-1,+1,+1).
    let w = array![[0.5f32, -1.5, 0.0, 2.0], [-0.2, -0.2, 0.2, 0.6]];
    let b = xnor::xnor_binarize(&w).unwrap();
    assert_eq!(
        b.binary,
        array![[1.0f32, -1.0, 1.0, 1.0], [-1.0, -1.0, 1.0, 1.0]]
    );
    assert!((b.alpha[0] - 1.0).abs() < 1e-7 && (b.alpha[1] - 0.3).abs() < 1e-7);
    assert!(
        (&b.approx - &array![[1.0f32, -1.0, 1.0, 1.0], [-0.3, -0.3, 0.3, 0.3]])
            .iter()
            .all(|d| d.abs() < 1e-7)
    );
    // Backward with dWb = 1 everywhere on filter 0: sum_j dWb_j sign(W_j) = 1-1+1+1 = 2, so
    // through_alpha = sign(W)*2/4 = (0.5,-0.5,0.5,0.5); STE = alpha*1{|W|<=1} = (1,0,1,0).
    let g = xnor::xnor_binarize_backward(&w, &Array2::ones((2, 4))).unwrap();
    assert_eq!(g.through_alpha.row(0), array![0.5f32, -0.5, 0.5, 0.5]);
    assert_eq!(g.ste.row(0), array![1.0f32, 0.0, 1.0, 0.0]);
    assert!(xnor::xnor_binarize(&array![[f32::NAN, 1.0]]).is_err());
}

#[test]
fn abc_weight_shifts_follow_the_formula() {
    assert_eq!(abc::weight_shifts(1), vec![0.0]);
    assert_eq!(abc::weight_shifts(3), vec![-1.0, 0.0, 1.0]);
    assert_eq!(abc::weight_shifts(5), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
}

#[test]
fn abc_single_base_on_zero_mean_weights_is_xnor_scale() {
    // With M = 1, u = 0 and mean(W) = 0, B = sign(W) and the least-squares alpha is
    // sum(B*W)/n = mean|W| — the XNOR-Net scale over the whole tensor.
    let w = array![[0.3f32, -0.3], [0.9, -0.9], [0.1, -0.1]];
    let a = abc::abc_binarize(&w, 1).unwrap();
    assert!((a.alphas[0] - (0.3 + 0.9 + 0.1) / 3.0).abs() < 1e-6);
    assert_eq!(a.bases[0], w.mapv(|v| if v >= 0.0 { 1.0 } else { -1.0 }));
}

#[test]
fn abc_constant_weights_are_reproduced_exactly_despite_duplicate_bases() {
    // Constant W: std = 0, every base equals sign(0) = +1 (singular normal equations); the
    // least-squares fit is exact: sum alpha_i = 0.25.
    let w = Array2::from_elem((4, 3), 0.25f32);
    let a = abc::abc_binarize(&w, 3).unwrap();
    assert!(
        a.approx.iter().all(|&v| (v - 0.25).abs() < 1e-6),
        "{:?}",
        a.approx
    );
    assert!(abc::abc_binarize(&w, 0).is_err());
}

#[test]
fn abc_activation_hand_example() {
    // v = (0, 0.25), beta = (1, 2). x = 0.3: H(0.3) = -1, H(0.55) = +1 -> A = -1 + 2 = 1.
    // x = -0.5: H(-0.5) = H(-0.25) = -1 -> A = -3. x = 0.5: H(0.5) = +1 (sign(0) = +1),
    // H(0.75) = +1 -> A = 3.
    let p = abc::AbcActivation {
        shifts: vec![0.0, 0.25],
        betas: vec![1.0, 2.0],
    };
    let x = array![0.3f32, -0.5, 0.5];
    let out = abc::abc_activation(&x, &p).unwrap();
    let (a, bases) = (out.a, out.bases);
    assert_eq!(a, array![1.0f32, -3.0, 3.0]);
    assert_eq!(bases[1], array![1.0f32, -1.0, 1.0]);
    // STE: x+v inside [0,1]: x=0.3 both (dx = 1 + 2 = 3), x=-0.5 neither, x=0.5 both.
    let g = abc::abc_activation_backward(&x, &p, &Array1::ones(3)).unwrap();
    let (dx, dv, dbeta) = (g.dx, g.dv, g.dbeta);
    assert_eq!(dx, array![3.0f32, 0.0, 3.0]);
    assert_eq!(dv, vec![2.0, 4.0]);
    assert_eq!(dbeta, vec![-1.0, 1.0]);
    assert_eq!(abc::AbcActivation::spread(2).shifts, vec![0.25, -0.25]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Least-squares optimality: the residual W - sum alpha_i B_i is orthogonal to every base.
    #[test]
    fn abc_alphas_solve_least_squares(m in 1usize..6, len in 1usize..60, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w = Array::from_shape_simple_fn((len, 1, 1, 1), || rng.gen_range(-1.0f32..1.0));
        let a = abc::abc_binarize(&w, m).unwrap();
        let resid = &w - &a.approx;
        for b in &a.bases {
            let ip: f64 = b.iter().zip(resid.iter()).map(|(&p, &q)| p as f64 * q as f64).sum();
            prop_assert!(ip.abs() < 1e-4 * len as f64, "residual not orthogonal: {}", ip);
        }
        // And it never does worse than the single best-scaled base.
        let err = resid.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
        let b0 = &a.bases[m / 2];
        let s = b0.iter().zip(w.iter()).map(|(&p, &q)| (p * q) as f64).sum::<f64>() / len as f64;
        let err0 = b0.iter().zip(w.iter()).map(|(&p, &q)| (q as f64 - s * p as f64).powi(2)).sum::<f64>();
        prop_assert!(err <= err0 + 1e-5);
    }

    /// The ABC activation backward against its STE formula (module doc of `ops::abc`) summed
    /// in f64 here, element by element: `dx = sum_j beta_j 1{0 <= x+v_j <= 1} dA`, `dv_j` the
    /// sum of that term, `dbeta_j = sum H(x+v_j) dA`. Lengths cross the kernel's block and lane
    /// boundaries; a channel-last input checks the element order.
    #[test]
    fn abc_activation_backward_equals_the_ste_formula(nb in 1usize..=5, n in 1usize..4, c in 1usize..9, hw in 1usize..40, nhwc in any::<bool>(), seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Array::from_shape_simple_fn((n, c, hw, 7), || rng.gen_range(-0.5f32..1.5));
        // Some elements exactly on the window's edges and the threshold.
        for v in x.iter_mut().step_by(5) { *v = [0.0f32, 1.0, 0.5][rng.gen_range(0..3)]; }
        let mut da = Array::from_shape_simple_fn(x.raw_dim(), || rng.gen_range(-1.0f32..1.0));
        if nhwc {
            x = x.permuted_axes([0, 2, 3, 1]).as_standard_layout().into_owned().permuted_axes([0, 3, 1, 2]);
            da = da.permuted_axes([0, 2, 3, 1]).as_standard_layout().into_owned().permuted_axes([0, 3, 1, 2]);
        }
        let p = abc::AbcActivation {
            shifts: (0..nb).map(|j| if j == 0 { 0.0 } else { rng.gen_range(-0.5f32..0.5) }).collect(),
            betas: (0..nb).map(|_| rng.gen_range(0.25f32..2.0)).collect(),
        };
        let g = abc::abc_activation_backward(&x, &p, &da).unwrap();
        let mut dx = Array::<f64, _>::zeros(x.raw_dim());
        let mut dx_abs = Array::<f64, _>::zeros(x.raw_dim());
        for (j, (&v, &beta)) in p.shifts.iter().zip(&p.betas).enumerate() {
            let (mut dv, mut dv_abs, mut dbeta, mut dbeta_abs) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for ((idx, &e), &d) in x.indexed_iter().zip(da.iter()) {
                let y = e + v;
                let t = beta as f64 * d as f64;
                if (0.0..=1.0).contains(&y) {
                    dx[idx] += t;
                    dx_abs[idx] += t.abs();
                    dv += t;
                    dv_abs += t.abs();
                }
                dbeta += if y >= 0.5 { d as f64 } else { -(d as f64) };
                dbeta_abs += (d as f64).abs();
            }
            // f32 products, f64 sums, one rounding to f32.
            let tol = |abs: f64| 4.0 * f32::EPSILON as f64 * abs.max(1e-30);
            prop_assert!((g.dv[j] as f64 - dv).abs() <= tol(dv_abs), "dv[{}]: {} vs {}", j, g.dv[j], dv);
            prop_assert!((g.dbeta[j] as f64 - dbeta).abs() <= tol(dbeta_abs), "dbeta[{}]: {} vs {}", j, g.dbeta[j], dbeta);
        }
        for (idx, &got) in g.dx.indexed_iter() {
            let tol = nb as f64 * f32::EPSILON as f64 * dx_abs[idx];
            prop_assert!((got as f64 - dx[idx]).abs() <= tol, "dx{:?}: {} vs {}", idx, got, dx[idx]);
        }
    }
}

#[test]
fn batch_norm_running_update_matches_pytorch_formula() {
    // One channel, values 1,2,3,4 (N=1, 2x2): batch mean 2.5, biased var 1.25, unbiased
    // var 5/3. PyTorch, momentum 0.1, from (0, 1): mean 0.25, var 0.9 + 0.1*5/3 = 1.0666...
    let x = Array4::from_shape_vec((1, 1, 2, 2), vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let (y, st) = bn::batch_norm_train(&x, &array![1.0f32], &array![0.0f32], 0.0).unwrap();
    assert_eq!(st.mean[0], 2.5);
    assert!((st.var[0] - 1.25).abs() < 1e-6 && (st.var_unbiased[0] - 5.0 / 3.0).abs() < 1e-6);
    // Normalised values: (x - 2.5)/sqrt(1.25).
    let s = 1.25f32.sqrt();
    for (v, want) in y.iter().zip([-1.5f32 / s, -0.5 / s, 0.5 / s, 1.5 / s]) {
        assert!((v - want).abs() < 1e-6);
    }
    let (mut rm, mut rv) = (array![0.0f32], array![1.0f32]);
    st.update_running(&mut rm, &mut rv, 0.1).unwrap();
    assert!((rm[0] - 0.25).abs() < 1e-7 && (rv[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6);
}

#[test]
fn batch_norm_fold_and_errors() {
    // gamma 2, beta 1, mean 3, var 4-eps -> scale 2/2 = 1, shift 1 - 3 = -2.
    let (s, t) = bn::fold(
        &array![2.0f32],
        &array![1.0f32],
        &array![3.0f32],
        &array![3.99f32],
        0.01,
    )
    .unwrap();
    assert!((s[0] - 1.0).abs() < 1e-6 && (t[0] + 2.0).abs() < 1e-6);
    let e = bn::fold(
        &array![1.0f32],
        &array![0.0f32],
        &array![0.0f32],
        &array![-1.0f32],
        1e-5,
    )
    .unwrap_err();
    assert!(e.to_string().contains("running_var"), "{e}");
    let x = Array4::<f32>::zeros((2, 3, 2, 2));
    let e = bn::batch_norm_train(&x, &Array1::ones(2), &Array1::zeros(2), 1e-5).unwrap_err();
    assert!(e.to_string().contains("batch_norm weight"), "{e}");
    assert!(bn::batch_norm_train(
        &Array4::zeros((1, 1, 1, 1)),
        &array![1.0f32],
        &array![0.0f32],
        1e-5
    )
    .is_err());
}

#[test]
fn folded_conv_equals_conv_then_batch_norm() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = Array::from_shape_simple_fn((2, 3, 6, 6), || rng.gen_range(-1.0f32..1.0));
    let w = Array::from_shape_simple_fn((4, 3, 3, 3), || rng.gen_range(-1.0f32..1.0));
    let b: Array1<f32> = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let g: Array1<f32> = (0..4).map(|_| rng.gen_range(0.5f32..1.5)).collect();
    let be: Array1<f32> = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let m: Array1<f32> = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let v: Array1<f32> = (0..4).map(|_| rng.gen_range(0.2f32..2.0)).collect();
    let two_step = bn::batch_norm_inference(
        &conv::conv2d(&x, &w, Some(&b), 1, 1).unwrap(),
        &g,
        &be,
        &m,
        &v,
        1e-5,
    )
    .unwrap();
    let (s, t) = bn::fold(&g, &be, &m, &v, 1e-5).unwrap();
    let (wf, bf) = bn::fold_into_conv(&w, Some(&b), &s, &t).unwrap();
    let folded = conv::conv2d(&x, &wf, Some(&bf), 1, 1).unwrap();
    let err = (&two_step - &folded)
        .iter()
        .fold(0.0f32, |a, d| a.max(d.abs()));
    assert!(err < 1e-4, "max diff {err}");
}

#[test]
fn shortcut_option_a_hand_example() {
    // in 2 channels of 3x3, out 4, stride 2: keep rows/cols 0 and 2 -> 2x2, one zero channel
    // on each side.
    let x = Array4::from_shape_fn((1, 2, 3, 3), |(_, c, i, j)| (c * 9 + i * 3 + j) as f32);
    let y = shortcut::shortcut_a(&x, 4, 2).unwrap();
    assert_eq!(y.dim(), (1, 4, 2, 2));
    assert!(y.index_axis(Axis(1), 0).iter().all(|&v| v == 0.0));
    assert!(y.index_axis(Axis(1), 3).iter().all(|&v| v == 0.0));
    assert_eq!(
        y.index_axis(Axis(0), 0).index_axis(Axis(0), 1),
        array![[0.0f32, 2.0], [6.0, 8.0]]
    );
    assert_eq!(
        y.index_axis(Axis(0), 0).index_axis(Axis(0), 2),
        array![[9.0f32, 11.0], [15.0, 17.0]]
    );
    assert!(shortcut::shortcut_a(&x, 3, 2).is_err());
    assert!(shortcut::residual_add(&x, &y).is_err());
}

#[test]
fn pools_hand_example() {
    // 4x4 ramp 0..15; 2x2 windows stride 2: max = (5,7,13,15), avg = (2.5,4.5,10.5,12.5),
    // global mean = 7.5.
    let x = Array4::from_shape_vec((1, 1, 4, 4), (0..16).map(|v| v as f32).collect()).unwrap();
    let (m, arg) = pool::max_pool2d(&x, 2, 2, 0).unwrap();
    assert_eq!(
        m.iter().copied().collect::<Vec<_>>(),
        vec![5.0, 7.0, 13.0, 15.0]
    );
    assert_eq!(arg.iter().copied().collect::<Vec<_>>(), vec![5, 7, 13, 15]);
    let a = pool::avg_pool2d(&x, 2, 2, 0).unwrap();
    assert_eq!(
        a.iter().copied().collect::<Vec<_>>(),
        vec![2.5, 4.5, 10.5, 12.5]
    );
    assert_eq!(pool::global_avg_pool(&x).unwrap()[[0, 0]], 7.5);
    // 3x3 window, pad 1 at the corner of an all-ones image: avg counts padding -> 4/9.
    let ones = Array4::<f32>::ones((1, 1, 2, 2));
    assert!((pool::avg_pool2d(&ones, 3, 1, 1).unwrap()[[0, 0, 0, 0]] - 4.0 / 9.0).abs() < 1e-7);
    assert!(pool::max_pool2d(&ones, 3, 1, 2).is_err());
}

#[test]
fn losses_hand_examples() {
    // Equal logits over K classes: CE = ln K, dlogits = (1/K - onehot)/N.
    let z = Array2::<f32>::zeros((2, 4));
    let (l, d) = loss::softmax_cross_entropy(&z, &[1, 3]).unwrap();
    assert!((l - 4.0f32.ln()).abs() < 1e-6);
    assert!((d[[0, 1]] - (0.25 - 1.0) / 2.0).abs() < 1e-7 && (d[[0, 0]] - 0.125).abs() < 1e-7);
    // Logits (ln 1, ln 3): p = (1/4, 3/4); label 0 -> CE = ln 4.
    let z = array![[0.0f32, 3.0f32.ln()]];
    assert!((loss::softmax_cross_entropy(&z, &[0]).unwrap().0 - 4.0f32.ln()).abs() < 1e-6);
    // KD: identical logits -> KL 0; T = 1, teacher (0,0) p_t = (1/2,1/2), student p_s =
    // (1/4,3/4): KL = 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3).
    assert!(loss::kd_kl_loss(&z, &z, 4.0).unwrap().0.abs() < 1e-7);
    let (l, _) = loss::kd_kl_loss(&z, &array![[0.0f32, 0.0]], 1.0).unwrap();
    assert!((l - 0.5 * (4.0f32 / 3.0).ln()).abs() < 1e-6);
    // T = 2 scales logits by 1/2 and the loss by 4: student (0, 2 ln 3) at T=2 is the case above.
    let (l2, _) = loss::kd_kl_loss(
        &array![[0.0f32, 2.0 * 3.0f32.ln()]],
        &array![[0.0f32, 0.0]],
        2.0,
    )
    .unwrap();
    assert!((l2 - 4.0 * 0.5 * (4.0f32 / 3.0).ln()).abs() < 1e-5);
    assert!(loss::softmax_cross_entropy(&z, &[2]).is_err());
    assert!(loss::softmax_cross_entropy(&z, &[0, 1]).is_err());
    assert!(loss::kd_kl_loss(&z, &z, 0.0).is_err());
    // NaN logits are an input error rather than a plausible-looking number.
    let e = loss::softmax_cross_entropy(&array![[f32::NAN, 0.0]], &[0]).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
}

/// Training-mode BN on shapes whose planes are not a multiple of the 8 summation lanes (and
/// several images), forward and backward against the textbook formulas evaluated in f64.
#[test]
fn batch_norm_train_matches_f64_formulas_on_odd_planes() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for &(n, c, h, w) in &[(3usize, 4usize, 7usize, 7usize), (5, 2, 3, 5), (2, 3, 8, 8)] {
        let x = Array4::from_shape_simple_fn((n, c, h, w), || rng.gen_range(-2.0f32..3.0));
        let dy = Array4::from_shape_simple_fn((n, c, h, w), || rng.gen_range(-1.0f32..1.0));
        let g: Array1<f32> = (0..c).map(|_| rng.gen_range(0.5f32..1.5)).collect();
        let b: Array1<f32> = (0..c).map(|_| rng.gen_range(-0.5f32..0.5)).collect();
        let eps = 1e-5;
        let (y, st) = bn::batch_norm_train(&x, &g, &b, eps).unwrap();
        let (dx, dg, db) = bn::batch_norm_train_backward(&x, &g, &st, &dy).unwrap();
        let m = (n * h * w) as f64;
        for ci in 0..c {
            let xs: Vec<f64> = x
                .index_axis(Axis(1), ci)
                .iter()
                .map(|&v| v as f64)
                .collect();
            let ds: Vec<f64> = dy
                .index_axis(Axis(1), ci)
                .iter()
                .map(|&v| v as f64)
                .collect();
            let mean = xs.iter().sum::<f64>() / m;
            let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
            let is = 1.0 / (var + eps as f64).sqrt();
            let xh: Vec<f64> = xs.iter().map(|v| (v - mean) * is).collect();
            let (gc, bc) = (g[ci] as f64, b[ci] as f64);
            let sdy: f64 = ds.iter().sum();
            let sdxh: f64 = ds.iter().zip(&xh).map(|(d, v)| d * v).sum();
            assert!((st.mean[ci] as f64 - mean).abs() < 1e-6 * mean.abs().max(1.0));
            assert!((st.var[ci] as f64 - var).abs() < 1e-6 * var.max(1.0));
            assert!(
                (db[ci] as f64 - sdy).abs() < 1e-5 * sdy.abs().max(1.0),
                "dbeta {ci}"
            );
            assert!(
                (dg[ci] as f64 - sdxh).abs() < 1e-5 * sdxh.abs().max(1.0),
                "dgamma {ci}"
            );
            let ys = y.index_axis(Axis(1), ci);
            let dxs = dx.index_axis(Axis(1), ci);
            for (k, (yv, dxv)) in ys.iter().zip(dxs.iter()).enumerate() {
                let want_y = gc * xh[k] + bc;
                let want_dx = gc * is * (ds[k] - sdy / m - xh[k] * sdxh / m);
                assert!((*yv as f64 - want_y).abs() < 1e-5, "y[{ci}, {k}]");
                assert!(
                    (*dxv as f64 - want_dx).abs() < 1e-5 * (gc * is).max(1.0),
                    "dx[{ci}, {k}]: {dxv} vs {want_dx}"
                );
            }
        }
    }
}

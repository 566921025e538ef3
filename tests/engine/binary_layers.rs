//! Binary linear layers against the i8 reference, the XNOR-Net / ABC-Net output transforms
//! against float convs of the same +/-1 bases computed independently (f64), and the float
//! engine's stacked ABC base sums against per-pair convs and the f64 sign conv.

use breakingbed::engine::binary::{
    abc_bconv2d, abc_blinear, blinear_with, combine_bases, pack_activations, pack_rows,
    pack_rows_i8, pack_weights, reference, scale_per_channel, xnor_bconv2d, PopcountPath,
};
use breakingbed::engine::ops::{abc, conv};
use ndarray::{Array2, Array4};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn sgn(v: f32) -> f64 {
    if v >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// f64 conv of sign(x) with sign(w), zero padding.
fn sign_conv_f64(x: &Array4<f32>, w: &Array4<f32>, stride: usize, pad: usize) -> Array4<f64> {
    let (n, c, h, wd) = x.dim();
    let (o, _, kh, kw) = w.dim();
    let oh = (h + 2 * pad - kh) / stride + 1;
    let ow = (wd + 2 * pad - kw) / stride + 1;
    Array4::from_shape_fn((n, o, oh, ow), |(b, oc, oy, ox)| {
        let mut s = 0.0;
        for ch in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    let iy = (oy * stride + ky) as isize - pad as isize;
                    let ix = (ox * stride + kx) as isize - pad as isize;
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                        s += sgn(x[[b, ch, iy as usize, ix as usize]]) * sgn(w[[oc, ch, ky, kx]]);
                    }
                }
            }
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn blinear_equals_reference(n in 1usize..70, o in 1usize..40, k in 1usize..300, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut pm = |r, c| Array2::from_shape_fn((r, c), |_| if rng.gen::<bool>() { 1i8 } else { -1 });
        let (x, w) = (pm(n, k), pm(o, k));
        let truth = reference::linear_i8(&x, &w).unwrap();
        let (px, pw) = (pack_rows_i8(&x).unwrap(), pack_rows_i8(&w).unwrap());
        for path in PopcountPath::available() {
            prop_assert_eq!(&blinear_with(path, &px, &pw).unwrap(), &truth, "{:?}", path);
        }
    }
}

#[test]
fn blinear_feature_mismatch_is_an_error() {
    let x = pack_rows(&Array2::<f32>::zeros((2, 10))).unwrap();
    let w = pack_rows(&Array2::<f32>::zeros((3, 11))).unwrap();
    let e = blinear_with(PopcountPath::Portable, &x, &w)
        .unwrap_err()
        .to_string();
    assert!(e.contains("10 features") && e.contains("11"), "{e}");
}

#[test]
fn xnor_conv_equals_alpha_times_sign_conv() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let x = Array4::from_shape_fn((2, 33, 6, 5), |_| rng.gen_range(-1.0f32..1.0));
    let w = Array4::from_shape_fn((10, 33, 3, 3), |_| rng.gen_range(-1.0f32..1.0));
    // XNOR-Net's alpha: mean |W| per output filter.
    let alpha: Vec<f32> = (0..10)
        .map(|o| {
            w.index_axis(ndarray::Axis(0), o)
                .mapv(f32::abs)
                .mean()
                .unwrap()
        })
        .collect();
    let got = xnor_bconv2d(
        &pack_activations(&x).unwrap(),
        &pack_weights(&w).unwrap(),
        &alpha,
        2,
        1,
    )
    .unwrap();
    let truth = sign_conv_f64(&x, &w, 2, 1);
    for ((b, o, y, xx), &v) in got.indexed_iter() {
        // One f32 product of an exact integer: within half an ulp of the f64 value.
        let t = alpha[o] as f64 * truth[[b, o, y, xx]];
        assert!(
            (v as f64 - t).abs() <= t.abs() * f32::EPSILON as f64,
            "{v} vs {t}"
        );
    }
}

#[test]
fn abc_conv_equals_sum_of_scaled_base_convs() {
    // M = 3 weight bases, N = 2 activation bases, built ABC-style from shifted signs.
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let x = Array4::from_shape_fn((2, 20, 7, 7), |_| rng.gen_range(0.0f32..1.0));
    let w = Array4::from_shape_fn((12, 20, 3, 3), |_| rng.gen_range(-1.0f32..1.0));
    let us = [-0.5f32, 0.0, 0.5];
    let vs = [-0.3f32, -0.7];
    let alphas = [0.31f32, 0.52, 0.27];
    let betas = [1.1f32, 0.8];
    let wb: Vec<Array4<f32>> = us.iter().map(|&u| w.mapv(|v| v + u)).collect();
    let xb: Vec<Array4<f32>> = vs.iter().map(|&s| x.mapv(|v| v + s)).collect();
    let pw: Vec<_> = wb.iter().map(|b| pack_weights(b).unwrap()).collect();
    let px: Vec<_> = xb.iter().map(|b| pack_activations(b).unwrap()).collect();
    let got = abc_bconv2d(&px, &pw, &alphas, &betas, 1, 1).unwrap();
    let mut truth = Array4::<f64>::zeros(got.dim());
    let mut bound = Array4::<f64>::zeros(got.dim());
    for (i, bw) in wb.iter().enumerate() {
        for (j, bx) in xb.iter().enumerate() {
            let c = sign_conv_f64(bx, bw, 1, 1);
            let s = alphas[i] as f64 * betas[j] as f64;
            truth = truth + &c * s;
            bound = bound + c.mapv(f64::abs) * s;
        }
    }
    // 6 f32 products and sums: error at most ~8 ulps of the sum of |terms|.
    for (idx, &v) in got.indexed_iter() {
        let tol = 8.0 * f32::EPSILON as f64 * bound[idx].max(1.0);
        assert!(
            (v as f64 - truth[idx]).abs() <= tol,
            "{idx:?}: {v} vs {}",
            truth[idx]
        );
    }
}

#[test]
fn abc_linear_with_dyadic_scales_is_exact() {
    // Powers of two make every f32 product and sum exact, so equality is the right check.
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let mut pm = |r, c| Array2::from_shape_fn((r, c), |_| if rng.gen::<bool>() { 1i8 } else { -1 });
    let xs = [pm(5, 100), pm(5, 100)];
    let ws = [pm(7, 100), pm(7, 100)];
    let (alphas, betas) = ([0.5f32, 0.25], [2.0f32, 0.125]);
    let px: Vec<_> = xs.iter().map(|x| pack_rows_i8(x).unwrap()).collect();
    let pw: Vec<_> = ws.iter().map(|w| pack_rows_i8(w).unwrap()).collect();
    let got = abc_blinear(&px, &pw, &alphas, &betas).unwrap();
    let mut truth = Array2::<f32>::zeros((5, 7));
    for i in 0..2 {
        for j in 0..2 {
            let acc = reference::linear_i8(&xs[j], &ws[i]).unwrap();
            truth = truth + acc.mapv(|v| v as f32 * alphas[i] * betas[j]);
        }
    }
    assert_eq!(got, truth);
}

#[test]
fn transform_errors_name_the_field() {
    let acc = Array4::<i32>::zeros((1, 3, 2, 2));
    let e = scale_per_channel(&acc, &[1.0, 2.0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("xnor alpha") && e.contains("3 output channels"),
        "{e}"
    );
    assert!(scale_per_channel(&acc, &[1.0, f32::NAN, 1.0]).is_err());
    let e = combine_bases(&[acc.clone(), acc.clone()], &[1.0, 1.0], &[1.0, 1.0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 accumulators"), "{e}");
    let other = Array4::<i32>::zeros((1, 4, 2, 2));
    assert!(combine_bases(&[acc, other], &[1.0, 1.0], &[1.0]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// All M sums of one activation base from one conv with the stacked weight bases equal, bit
    /// for bit, the per-pair convs `conv(a_j, B_i)` and the independent f64 sign conv.
    #[test]
    fn stacked_base_sums_equal_per_pair_convs(
        m in 1usize..=5,
        nb in 1usize..=5,
        (c, o, k) in (1usize..7, 1usize..9, prop::sample::select(vec![1usize, 3, 5])),
        (h, w) in (5usize..12, 5usize..12),
        stride in 1usize..=2,
        pad in 0usize..=2,
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array4::from_shape_fn((3, c, h, w), |_| rng.gen_range(-0.5f32..1.5));
        let wt = Array4::from_shape_fn((o, c, k, k), |_| rng.gen_range(-1.0f32..1.0));
        let bases = abc::abc_binarize(&wt, m).unwrap().bases;
        let acts = abc::abc_activation(&x, &abc::AbcActivation::spread(nb)).unwrap().bases;
        let stacked = abc::stack_bases(&bases).unwrap();
        prop_assert_eq!(stacked.dim(), (m * o, c, k, k));
        for a in &acts {
            let sums = abc::stacked_sums(a, &stacked, stride, pad).unwrap();
            for (i, b) in bases.iter().enumerate() {
                let got = abc::base_sum(&sums, m, i);
                let pair = conv::conv2d(a, b, None, stride, pad).unwrap();
                prop_assert_eq!(&got, &pair.view(), "base {}", i);
                let truth = sign_conv_f64(a, b, stride, pad);
                prop_assert_eq!(&got.mapv(f64::from), &truth, "base {}", i);
            }
        }
    }
}

#[test]
fn stacking_bases_of_different_shapes_is_an_error() {
    let e = abc::stack_bases(&[Array4::zeros((2, 3, 3, 3)), Array4::zeros((2, 3, 1, 1))])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("abc weight bases") && e.contains("base 1"),
        "{e}"
    );
    assert!(abc::stack_bases(&[]).is_err());
}

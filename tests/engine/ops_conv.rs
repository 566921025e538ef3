//! Fast im2col+GEMM convolution against the f64 nested-loop reference, hand-computed answers,
//! and the reference backward against central finite differences.

use breakingbed::engine::ops::batchnorm as bn;
use breakingbed::engine::ops::conv::{
    conv2d, conv2d_backward, conv2d_backward_input, conv2d_backward_input_with,
    conv2d_backward_with, conv2d_fused, conv2d_fused_nhwc, conv2d_with, flipped,
};
use breakingbed::engine::ops::epilogue::{Activation, Epilogue};
use breakingbed::engine::ops::gemm::GemmBackend;
use breakingbed::engine::ops::reference::conv as refc;
use ndarray::{array, Array, Array1, Array4};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand4(rng: &mut ChaCha8Rng, d: (usize, usize, usize, usize)) -> Array4<f32> {
    Array::from_shape_fn(d, |_| rng.gen_range(-1.0f32..1.0))
}

fn to64(a: &Array4<f32>) -> Array4<f64> {
    a.mapv(|v| v as f64)
}

/// Max |a-b| relative to max(1, max|b|).
fn rel_err(a: &Array4<f32>, b: &Array4<f64>) -> f64 {
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (x, y)| m.max((*x as f64 - y).abs()))
        / scale
}

#[test]
fn hand_computed_3x3_input_2x2_kernel_no_padding() {
    // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,0],[0,-1]], bias 0.5, stride 1, pad 0.
    // y[i][j] = x[i][j] - x[i+1][j+1] + 0.5 = -4 + 0.5 everywhere:
    //   (1-5, 2-6; 4-8, 5-9) = (-4,-4;-4,-4) -> -3.5.
    let x = Array::from_shape_vec((1, 1, 3, 3), (1..=9).map(|v| v as f32).collect()).unwrap();
    let w = Array::from_shape_vec((1, 1, 2, 2), vec![1.0, 0.0, 0.0, -1.0]).unwrap();
    let b = array![0.5f32];
    let y = conv2d(&x, &w, Some(&b), 1, 0).unwrap();
    assert_eq!(y, Array::from_elem((1, 1, 2, 2), -3.5f32));
}

#[test]
fn hand_computed_all_ones_kernel_with_padding_counts_neighbours() {
    // A 3x3 kernel of ones on a 3x3 image of ones with pad 1 counts the in-image neighbours
    // (including itself): corners see 4, edges 6, the centre 9.
    let x = Array::from_elem((1, 1, 3, 3), 1.0f32);
    let w = Array::from_elem((1, 1, 3, 3), 1.0f32);
    let y = conv2d(&x, &w, None, 1, 1).unwrap();
    let want = array![[4.0f32, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]];
    assert_eq!(
        y.index_axis(ndarray::Axis(0), 0)
            .index_axis(ndarray::Axis(0), 0),
        want
    );
}

#[test]
fn hand_computed_stride2_two_channels_two_filters() {
    // x channel 0 = 0..16 row-major on 4x4, channel 1 = all 1; 1x1 kernel, stride 2, pad 0.
    // Filter 0 = (1, 0): picks x0 at (0,0),(0,2),(2,0),(2,2) = 0, 2, 8, 10.
    // Filter 1 = (2, 3): 2*x0 + 3 = 3, 7, 19, 23.
    let mut x = Array4::<f32>::ones((1, 2, 4, 4));
    for i in 0..16 {
        x[[0, 0, i / 4, i % 4]] = i as f32;
    }
    let w = Array::from_shape_vec((2, 2, 1, 1), vec![1.0, 0.0, 2.0, 3.0]).unwrap();
    let y = conv2d(&x, &w, None, 2, 0).unwrap();
    let want = Array::from_shape_vec(
        (1, 2, 2, 2),
        vec![0.0, 2.0, 8.0, 10.0, 3.0, 7.0, 19.0, 23.0],
    )
    .unwrap();
    assert_eq!(y, want);
}

#[test]
fn hand_computed_backward_of_single_tap() {
    // 1x1 image, 3x3 kernel, pad 1: only the kernel centre touches the pixel, so
    // y = w[1,1]*x + b. With x = 2, w centre = 5, dy = 3: dx = 15, dw centre = 6 (others 0),
    // db = 3.
    let x = Array::from_elem((1, 1, 1, 1), 2.0f32);
    let mut w = Array4::<f32>::zeros((1, 1, 3, 3));
    w[[0, 0, 1, 1]] = 5.0;
    let dy = Array::from_elem((1, 1, 1, 1), 3.0f32);
    let (dx, dw, db) = conv2d_backward(&x, &w, 1, 1, &dy).unwrap();
    assert_eq!(dx[[0, 0, 0, 0]], 15.0);
    let mut want_dw = Array4::<f32>::zeros((1, 1, 3, 3));
    want_dw[[0, 0, 1, 1]] = 6.0;
    assert_eq!(dw, want_dw);
    assert_eq!(db, array![3.0f32]);
}

#[test]
fn reference_backward_matches_central_differences() {
    // L = sum(y * r) is linear in x, w and b, so central differences are exact up to f64
    // rounding for any step.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for &(stride, pad) in &[(1, 1), (2, 1), (2, 0), (3, 2)] {
        let x = to64(&rand4(&mut rng, (2, 3, 5, 6)));
        let w = to64(&rand4(&mut rng, (4, 3, 3, 2)));
        let b: Array1<f64> = (0..4).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let y = refc::conv2d(&x, &w, Some(&b), stride, pad);
        let r = y.mapv(|_| rng.gen_range(-1.0..1.0));
        let loss = |x: &Array4<f64>, w: &Array4<f64>, b: &Array1<f64>| {
            (refc::conv2d(x, w, Some(b), stride, pad) * &r).sum()
        };
        let (dx, dw, db) = refc::conv2d_backward(&x, &w, stride, pad, &r);
        let h = 1e-3;
        for (idx, g) in dx.indexed_iter() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[idx] += h;
            xm[idx] -= h;
            let fd = (loss(&xp, &w, &b) - loss(&xm, &w, &b)) / (2.0 * h);
            assert!((fd - g).abs() < 1e-9, "dx {idx:?}: fd {fd} vs {g}");
        }
        for (idx, g) in dw.indexed_iter() {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[idx] += h;
            wm[idx] -= h;
            let fd = (loss(&x, &wp, &b) - loss(&x, &wm, &b)) / (2.0 * h);
            assert!((fd - g).abs() < 1e-9, "dw {idx:?}: fd {fd} vs {g}");
        }
        for o in 0..4 {
            let (mut bp, mut bm) = (b.clone(), b.clone());
            bp[o] += h;
            bm[o] -= h;
            let fd = (loss(&x, &w, &bp) - loss(&x, &w, &bm)) / (2.0 * h);
            assert!((fd - db[o]).abs() < 1e-9);
        }
    }
}

#[test]
fn bad_shapes_are_errors_naming_the_field() {
    let x = Array4::<f32>::zeros((1, 3, 4, 4));
    let w = Array4::<f32>::zeros((2, 4, 3, 3));
    let e = conv2d(&x, &w, None, 1, 1).unwrap_err().to_string();
    assert!(
        e.contains("conv2d weight") && e.contains("input channels"),
        "{e}"
    );
    let w = Array4::<f32>::zeros((2, 3, 3, 3));
    let e = conv2d(&x, &w, Some(&Array1::zeros(3)), 1, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv2d bias"), "{e}");
    let e = conv2d(&x, &w, None, 0, 1).unwrap_err().to_string();
    assert!(e.contains("stride"), "{e}");
    let e = conv2d(&Array4::zeros((1, 3, 1, 1)), &w, None, 1, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("smaller than the kernel"), "{e}");
    let e = conv2d_backward(&x, &w, 1, 1, &Array4::zeros((1, 2, 3, 3)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("dy"), "{e}");
}

#[test]
fn result_does_not_depend_on_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = rand4(&mut rng, (37, 4, 7, 7));
    let w = rand4(&mut rng, (5, 4, 3, 3));
    let y = conv2d(&x, &w, None, 1, 1).unwrap();
    let dy = y.mapv(|v| v * 0.5 - 0.1);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            (
                conv2d(&x, &w, None, 1, 1).unwrap(),
                conv2d_backward(&x, &w, 1, 1, &dy).unwrap(),
            )
        })
    };
    let (y1, g1) = run(1);
    let (y3, g3) = run(3);
    assert_eq!(y1, y3);
    assert_eq!(g1, g3);
}

#[test]
fn large_maps_one_image_per_gemm_equal_reference() {
    // 17x17 outputs (289 positions) are past the backward grouping width, so each image gets
    // its own backward GEMM; the proptests below use small maps, which take the grouped path.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for &(stride, pad, k) in &[(1, 1, 3), (1, 0, 1), (2, 1, 3)] {
        let h = if stride == 1 { 17 } else { 34 };
        let x = rand4(&mut rng, (3, 4, h, h));
        let w = rand4(&mut rng, (5, 4, k, k));
        let b: Array1<f32> = (0..5).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let want = refc::conv2d(
            &to64(&x),
            &to64(&w),
            Some(&b.mapv(|v| v as f64)),
            stride,
            pad,
        );
        let y = conv2d(&x, &w, Some(&b), stride, pad).unwrap();
        assert!(rel_err(&y, &want) < 1e-5, "stride {stride} pad {pad} k {k}");
        let dy = rand4(&mut rng, y.dim());
        let (rdx, rdw, _) = refc::conv2d_backward(&to64(&x), &to64(&w), stride, pad, &to64(&dy));
        let (dx, dw, _) = conv2d_backward(&x, &w, stride, pad, &dy).unwrap();
        assert!(rel_err(&dx, &rdx) < 1e-5 && rel_err(&dw, &rdw) < 1e-5);
    }
}

#[test]
fn large_batches_of_small_maps_group_images_and_equal_reference() {
    // 40 images of 6x5 maps: 16 gradient groups of 3 images, and small maps put the images of
    // a group side by side in one weight-gradient product (for these few channels the
    // im2col-free path of `ops::weight_grad`, with zeros of `dy` between the images).
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    for &(stride, pad, k) in &[(1, 1, 3), (1, 0, 1), (1, 2, 5), (2, 1, 3)] {
        let x = rand4(&mut rng, (40, 3, 6, 5));
        let w = rand4(&mut rng, (4, 3, k, k));
        let want = refc::conv2d(&to64(&x), &to64(&w), None, stride, pad);
        let dy = rand4(&mut rng, want.dim());
        let (rdx, rdw, _) = refc::conv2d_backward(&to64(&x), &to64(&w), stride, pad, &to64(&dy));
        let (dx, dw, _) = conv2d_backward(&x, &w, stride, pad, &dy).unwrap();
        assert!(
            rel_err(&dx, &rdx) < 1e-5,
            "dx stride {stride} pad {pad} k {k}"
        );
        assert!(
            rel_err(&dw, &rdw) < 1e-5,
            "dw stride {stride} pad {pad} k {k}"
        );
    }
}

#[test]
fn maps_cut_into_row_bands_equal_reference() {
    // 40x48 outputs (1,920 positions) exceed the forward band width (1,024), so the forward
    // pass unfolds and multiplies them in bands of 21 rows (the last one shorter).
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for &(stride, pad, k) in &[(1, 1, 3), (1, 0, 1), (2, 2, 5)] {
        let (h, w_) = if stride == 1 { (40, 48) } else { (80, 96) };
        let x = rand4(&mut rng, (2, 3, h, w_));
        let w = rand4(&mut rng, (4, 3, k, k));
        let want = refc::conv2d(&to64(&x), &to64(&w), None, stride, pad);
        let y = conv2d(&x, &w, None, stride, pad).unwrap();
        assert_eq!(y.dim(), want.dim());
        assert!(rel_err(&y, &want) < 1e-5, "stride {stride} pad {pad} k {k}");
    }
}

#[test]
fn fused_epilogue_equals_the_unfused_ops_bit_for_bit() {
    // conv + bias, then eval BN, residual add and ReLU/hardtanh as separate ops, against the
    // one-pass fused convolution: same roundings, so equal exactly.
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let x = rand4(&mut rng, (3, 4, 9, 7));
    let w = rand4(&mut rng, (5, 4, 3, 3));
    let b: Array1<f32> = (0..5).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let s: Array1<f32> = (0..5).map(|_| rng.gen_range(0.5f32..2.0)).collect();
    let t: Array1<f32> = (0..5).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let r = rand4(&mut rng, (3, 5, 9, 7));
    let plain = conv2d(&x, &w, Some(&b), 1, 1).unwrap();
    let mut want = bn::scale_shift(&plain, &s, &t).unwrap();
    want += &r;
    for act in [Activation::Identity, Activation::Relu, Activation::Hardtanh] {
        let ep = Epilogue {
            bias: None,
            bn: Some((s.as_slice().unwrap(), t.as_slice().unwrap())),
            act,
        };
        let got = conv2d_fused(&x, &w, Some(&b), 1, 1, ep, Some(&r)).unwrap();
        let want = want.mapv(|v| match act {
            Activation::Identity => v,
            Activation::Relu => v.max(0.0),
            Activation::Hardtanh => v.clamp(-1.0, 1.0),
        });
        assert!(got == want, "{act:?}");
    }
    let bad = rand4(&mut rng, (3, 5, 9, 6));
    let e = conv2d_fused(&x, &w, None, 1, 1, Epilogue::IDENTITY, Some(&bad)).unwrap_err();
    assert!(e.to_string().contains("residual"), "{e}");
}

/// The channel-last output is the NCHW output transposed, bit for bit, for maps of one and of
/// several bands of output rows (32x32 is more than one band), widths of 16 (whole transpose
/// blocks) and 5, and every activation; the 16-output cases take the direct kernel
/// (`ops::direct`), the 5-output one the GEMM and transpose.
#[test]
fn nhwc_output_is_the_nchw_output_transposed() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    for (n, c, o, h, stride) in [(2, 3, 16, 32, 1), (1, 4, 5, 7, 2), (3, 2, 16, 9, 1)] {
        let x = rand4(&mut rng, (n, c, h, h));
        let w = rand4(&mut rng, (o, c, 3, 3));
        let b: Array1<f32> = (0..o).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let s: Array1<f32> = (0..o).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
        let t: Array1<f32> = (0..o).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        for act in [Activation::Identity, Activation::Relu, Activation::Hardtanh] {
            let ep = Epilogue {
                bias: None,
                bn: Some((s.as_slice().unwrap(), t.as_slice().unwrap())),
                act,
            };
            let want = conv2d_fused(&x, &w, Some(&b), stride, 1, ep, None).unwrap();
            let got = conv2d_fused_nhwc(&x, &w, Some(&b), stride, 1, ep).unwrap();
            let got = got.permuted_axes([0, 3, 1, 2]);
            let bits = |a: ndarray::ArrayView4<f32>| a.mapv(f32::to_bits);
            assert_eq!(bits(got.view()), bits(want.view()), "{act:?} {:?}", x.dim());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fast_conv_equals_reference(
        n in 1usize..4, c in 1usize..6, o in 1usize..6, h in 1usize..9, wd in 1usize..9,
        k in 1usize..4, stride in 1usize..4, pad in 0usize..3, bias in any::<bool>(), seed in any::<u64>(),
    ) {
        prop_assume!(h + 2 * pad >= k && wd + 2 * pad >= k);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = rand4(&mut rng, (n, c, h, wd));
        let w = rand4(&mut rng, (o, c, k, k));
        let b: Array1<f32> = (0..o).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let want = refc::conv2d(&to64(&x), &to64(&w), bias.then(|| b.mapv(|v| v as f64)).as_ref(), stride, pad);
        for backend in [GemmBackend::Gemm, GemmBackend::MatrixMultiply] {
            let y = conv2d_with(backend, &x, &w, bias.then_some(&b), stride, pad).unwrap();
            prop_assert_eq!(y.dim(), want.dim());
            prop_assert!(rel_err(&y, &want) < 1e-5, "{:?} err {}", backend, rel_err(&y, &want));
        }
    }

    #[test]
    fn fast_conv_backward_equals_reference(
        n in 1usize..4, c in 1usize..6, o in 1usize..6, h in 1usize..9, wd in 1usize..9,
        k in 1usize..4, stride in 1usize..4, pad in 0usize..3, seed in any::<u64>(),
    ) {
        prop_assume!(h + 2 * pad >= k && wd + 2 * pad >= k);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = rand4(&mut rng, (n, c, h, wd));
        let w = rand4(&mut rng, (o, c, k, k));
        let y = refc::conv2d(&to64(&x), &to64(&w), None, stride, pad);
        let dy = rand4(&mut rng, y.dim());
        let (rdx, rdw, rdb) = refc::conv2d_backward(&to64(&x), &to64(&w), stride, pad, &to64(&dy));
        for backend in [GemmBackend::Gemm, GemmBackend::MatrixMultiply] {
            let (dx, dw, db) = conv2d_backward_with(backend, &x, &w, stride, pad, &dy).unwrap();
            prop_assert!(rel_err(&dx, &rdx) < 1e-5);
            prop_assert!(rel_err(&dw, &rdw) < 1e-5);
            for (a, b) in db.iter().zip(rdb.iter()) {
                prop_assert!((*a as f64 - b).abs() < 1e-4 * b.abs().max(1.0));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The input-gradient-only backward (the attacks' path: the transposed forward conv for
    /// stride 1 with `pad < k`, col2im otherwise), with and without a prepared flipped kernel.
    #[test]
    fn input_only_backward_equals_reference(
        n in 1usize..4, c in 1usize..6, o in 1usize..6, h in 1usize..9, wd in 1usize..9,
        k in 1usize..4, stride in 1usize..4, pad in 0usize..3, seed in any::<u64>(),
    ) {
        prop_assume!(h + 2 * pad >= k && wd + 2 * pad >= k);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = rand4(&mut rng, (n, c, h, wd));
        let w = rand4(&mut rng, (o, c, k, k));
        let y = refc::conv2d(&to64(&x), &to64(&w), None, stride, pad);
        let dy = rand4(&mut rng, y.dim());
        let (rdx, _, _) = refc::conv2d_backward(&to64(&x), &to64(&w), stride, pad, &to64(&dy));
        let dx = conv2d_backward_input(x.dim(), &w, stride, pad, &dy).unwrap();
        prop_assert_eq!(dx.dim(), x.dim());
        prop_assert!(rel_err(&dx, &rdx) < 1e-5, "err {}", rel_err(&dx, &rdx));
        let wf = flipped(&w);
        let dx2 = conv2d_backward_input_with(x.dim(), &w, Some(&wf), stride, pad, &dy).unwrap();
        prop_assert_eq!(dx2, dx);
    }
}

//! Binary conv2d against two independent truths: the i8 reference conv and a naive f32 conv of
//! sign(x) and sign(w) with zero padding (exact here: sums of +/-1 are integers below 2^24), for
//! random shapes, every popcount path, and hand-computed known answers.

use breakingbed::engine::binary::{
    bconv2d, bconv2d_with, pack_activations, pack_activations_i8, pack_weights, pack_weights_i8,
    reference, BConv2d, PopcountPath,
};
use ndarray::Array4;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Naive f32 NCHW conv with zero padding; written independently of the crate's code.
fn conv_f32(x: &Array4<f32>, w: &Array4<f32>, stride: usize, pad: usize) -> Array4<f32> {
    let (n, c, h, wd) = x.dim();
    let (o, _, kh, kw) = w.dim();
    let oh = (h + 2 * pad - kh) / stride + 1;
    let ow = (wd + 2 * pad - kw) / stride + 1;
    let mut padded = Array4::<f32>::zeros((n, c, h + 2 * pad, wd + 2 * pad));
    for ((b, ch, y, xx), &v) in x.indexed_iter() {
        padded[[b, ch, y + pad, xx + pad]] = v;
    }
    Array4::from_shape_fn((n, o, oh, ow), |(b, oc, oy, ox)| {
        let mut s = 0.0f32;
        for ch in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    s += padded[[b, ch, oy * stride + ky, ox * stride + kx]] * w[[oc, ch, ky, kx]];
                }
            }
        }
        s
    })
}

fn sign(v: f32) -> f32 {
    if v >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// Random floats with exact zeros mixed in, to exercise sign(0) = +1.
fn random_f32(rng: &mut ChaCha8Rng, shape: (usize, usize, usize, usize)) -> Array4<f32> {
    Array4::from_shape_fn(shape, |_| {
        if rng.gen_ratio(1, 10) {
            0.0
        } else {
            rng.gen_range(-1.0f32..1.0)
        }
    })
}

#[derive(Debug, Clone)]
struct Case {
    n: usize,
    c: usize,
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    h: usize,
    w: usize,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=2,
        prop::sample::select(vec![1usize, 31, 32, 33, 63, 64, 65, 127]),
        1usize..=40,
        prop::sample::select(vec![1usize, 3, 5]),
        1usize..=2,
        0usize..=2,
        1usize..=9,
        1usize..=9,
        any::<u64>(),
    )
        .prop_filter(
            "kernel fits the padded input",
            |&(_, _, _, k, _, p, h, w, _)| h + 2 * p >= k && w + 2 * p >= k,
        )
        .prop_map(|(n, c, o, k, stride, pad, h, w, seed)| Case {
            n,
            c,
            o,
            k,
            stride,
            pad,
            h,
            w,
            seed,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn bconv_equals_reference_convs(cs in case()) {
        let mut rng = ChaCha8Rng::seed_from_u64(cs.seed);
        let x = random_f32(&mut rng, (cs.n, cs.c, cs.h, cs.w));
        let w = random_f32(&mut rng, (cs.o, cs.c, cs.k, cs.k));
        let (px, pw) = (pack_activations(&x).unwrap(), pack_weights(&w).unwrap());
        let i8_truth = reference::conv2d_i8(&px.to_i8(), &pw.to_i8(), cs.stride, cs.pad).unwrap();
        let f32_truth = conv_f32(&x.mapv(sign), &w.mapv(sign), cs.stride, cs.pad);
        prop_assert_eq!(&i8_truth.mapv(|v| v as f32), &f32_truth);
        for path in PopcountPath::available() {
            let got = bconv2d_with(path, &px, &pw, cs.stride, cs.pad).unwrap();
            prop_assert_eq!(&got, &i8_truth, "{:?} {:?}", path, cs);
        }
    }
}

/// The channel-last inference kernel (`forward_nhwc`: byte-packed framed image, windows read in
/// place, pixel-major sums) on one image, as NCHW.
fn nhwc_conv(
    path: PopcountPath,
    layer: &BConv2d,
    x: &Array4<f32>,
    img: usize,
    stride: usize,
    pad: usize,
) -> Array4<i32> {
    let (_, c, h, w) = x.dim();
    let (o, ..) = layer.dim();
    let (oh, ow) = layer.output_size(h, w, stride, pad).unwrap();
    let xi = x.slice(ndarray::s![img, .., .., ..]);
    let nhwc: Vec<f32> = xi.permuted_axes([1, 2, 0]).iter().copied().collect();
    assert_eq!(nhwc.len(), h * w * c);
    let mut out = Array4::<i32>::from_elem((1, o, oh, ow), i32::MIN);
    let mut seen = vec![false; oh];
    layer
        .forward_nhwc(path, &nhwc, (h, w), stride, pad, img, |oy, sums| {
            seen[oy] = true;
            for (ox, px) in sums.chunks_exact(o).enumerate() {
                for (oc, &v) in px.iter().enumerate() {
                    out[[0, oc, oy, ox]] = v;
                }
            }
        })
        .unwrap();
    assert!(seen.iter().all(|&s| s), "every output row emitted");
    out
}

/// [`nhwc_conv`] of a random case with `c` channels on each of `paths` against the i8
/// reference, image by image.
fn nhwc_matches_reference(
    cs: &Case,
    c: usize,
    paths: &[PopcountPath],
) -> Result<(), TestCaseError> {
    let mut rng = ChaCha8Rng::seed_from_u64(cs.seed);
    let x = random_f32(&mut rng, (cs.n, c, cs.h, cs.w));
    let w = random_f32(&mut rng, (cs.o, c, cs.k, cs.k));
    let (px, pw) = (pack_activations(&x).unwrap(), pack_weights(&w).unwrap());
    let truth = reference::conv2d_i8(&px.to_i8(), &pw.to_i8(), cs.stride, cs.pad).unwrap();
    let layer = BConv2d::new(&pw);
    prop_assert!(layer.supports_nhwc());
    for &path in paths {
        for img in 0..cs.n {
            let got = nhwc_conv(path, &layer, &x, img, cs.stride, cs.pad);
            let want = truth.slice(ndarray::s![img..img + 1, .., .., ..]);
            prop_assert_eq!(got.view(), want, "{:?} c {} {:?}", path, c, cs);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The channel-last kernel of the inference path against the i8 reference, for widths
    /// around its word and run boundaries (a kernel row of `k * C` bits read as masked words).
    #[test]
    fn nhwc_bconv_equals_reference(
        cs in case(),
        c in prop::sample::select(vec![8usize, 16, 24, 32, 40, 64, 72, 128]),
    ) {
        nhwc_matches_reference(&cs, c, &PopcountPath::available())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// The same for the widths and output counts that take the tap-per-lane kernel on AVX-512
    /// (16, 32 or 64 channels, a multiple of 16 outputs), which the case above reaches only now
    /// and then.
    #[test]
    fn nhwc_bconv_tap_kernel_equals_reference(
        cs in case(),
        c in prop::sample::select(vec![16usize, 32, 64]),
        blocks in 1usize..=5,
    ) {
        let cs = Case { o: 16 * blocks, ..cs };
        nhwc_matches_reference(&cs, c, &[PopcountPath::detect()])?;
    }
}

#[test]
fn nhwc_bconv_refuses_other_widths_and_nan() {
    let w = Array4::from_elem((4, 5, 3, 3), 1.0f32);
    let layer = BConv2d::new(&pack_weights(&w).unwrap());
    assert!(!layer.supports_nhwc());
    let e = layer
        .forward_nhwc(
            PopcountPath::Portable,
            &[0.5; 5 * 4 * 4],
            (4, 4),
            1,
            1,
            0,
            |_, _| {},
        )
        .unwrap_err();
    assert!(e.to_string().contains("multiple of 8 channels"), "{e}");
    let w = Array4::from_elem((4, 8, 3, 3), 1.0f32);
    let layer = BConv2d::new(&pack_weights(&w).unwrap());
    let mut x = vec![0.5f32; 8 * 4 * 4];
    x[(4 + 2) * 8 + 3] = f32::NAN; // y 1, x 2, channel 3
    let mut emitted = false;
    let e = layer
        .forward_nhwc(PopcountPath::Portable, &x, (4, 4), 1, 1, 2, |_, _| {
            emitted = true
        })
        .unwrap_err();
    assert!(e.to_string().contains("NaN at [2, 3, 1, 2]"), "{e}");
    assert!(!emitted, "nothing emitted before the error");
    let e = layer
        .forward_nhwc(PopcountPath::Portable, &x[1..], (4, 4), 1, 1, 0, |_, _| {})
        .unwrap_err();
    assert!(e.to_string().contains("values for a 4x4x8 image"), "{e}");
}

#[test]
fn hand_computed_3x3_with_exact_zero_padding() {
    // All-ones 3x3 filter, pad 1: each output is the sum of x over the in-bounds neighbourhood.
    // Padding treated as +1 would add 5 at corners and 3 at edges, so this pins exactness.
    let x = [[1i8, -1, 1], [1, 1, -1], [-1, 1, 1]];
    let expect = [[2, 2, 0], [2, 3, 2], [2, 2, 2]];
    for c in [1usize, 65] {
        let xa = Array4::from_shape_fn((1, c, 3, 3), |(_, _, y, xx)| x[y][xx]);
        let px = pack_activations_i8(&xa).unwrap();
        for (sgn, wv) in [(1, 1i8), (-1, -1i8)] {
            let pw = pack_weights_i8(&Array4::from_elem((1, c, 3, 3), wv)).unwrap();
            for path in PopcountPath::available() {
                let got = bconv2d_with(path, &px, &pw, 1, 1).unwrap();
                for y in 0..3 {
                    for xx in 0..3 {
                        assert_eq!(
                            got[[0, 0, y, xx]],
                            sgn * c as i32 * expect[y][xx],
                            "{path:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn one_by_one_stride_two_shortcut() {
    // ResNet shortcut shape: 16 -> 32 channels, 1x1, stride 2, 32x32 -> 16x16. Output (oy, ox)
    // reads input pixel (2oy, 2ox) only.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = random_f32(&mut rng, (2, 16, 32, 32));
    let w = random_f32(&mut rng, (32, 16, 1, 1));
    let got = bconv2d(
        &pack_activations(&x).unwrap(),
        &pack_weights(&w).unwrap(),
        2,
        0,
    )
    .unwrap();
    assert_eq!(got.dim(), (2, 32, 16, 16));
    for ((b, o, oy, ox), &v) in got.indexed_iter() {
        let s: f32 = (0..16)
            .map(|c| sign(x[[b, c, 2 * oy, 2 * ox]]) * sign(w[[o, c, 0, 0]]))
            .sum();
        assert_eq!(v as f32, s);
    }
}

#[test]
fn bench_shapes_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for &(c, hw) in &[(64usize, 8usize), (16, 32)] {
        let x = random_f32(&mut rng, (2, c, hw, hw));
        let w = random_f32(&mut rng, (c, c, 3, 3));
        let (px, pw) = (pack_activations(&x).unwrap(), pack_weights(&w).unwrap());
        let truth = reference::conv2d_i8(&px.to_i8(), &pw.to_i8(), 1, 1).unwrap();
        let layer = BConv2d::new(&pw);
        for path in PopcountPath::available() {
            assert_eq!(
                layer.forward_with(path, &px, 1, 1).unwrap(),
                truth,
                "{path:?}"
            );
        }
    }
}

#[test]
fn bad_shapes_are_input_errors() {
    let x = pack_activations_i8(&Array4::from_elem((1, 3, 4, 4), 1i8)).unwrap();
    let w = pack_weights_i8(&Array4::from_elem((2, 4, 3, 3), 1i8)).unwrap();
    let e = bconv2d(&x, &w, 1, 1).unwrap_err().to_string();
    assert!(e.contains("3 channels") && e.contains("expect 4"), "{e}");
    let w = pack_weights_i8(&Array4::from_elem((2, 3, 3, 3), 1i8)).unwrap();
    assert!(bconv2d(&x, &w, 0, 1)
        .unwrap_err()
        .to_string()
        .contains("stride"));
    let big = pack_weights_i8(&Array4::from_elem((2, 3, 7, 7), 1i8)).unwrap();
    assert!(bconv2d(&x, &big, 1, 1)
        .unwrap_err()
        .to_string()
        .contains("smaller than"));
    assert!(pack_weights_i8(&Array4::from_elem((0, 3, 3, 3), 1i8)).is_err());
    let mut nan = Array4::<f32>::zeros((1, 3, 4, 4));
    nan[[0, 2, 3, 1]] = f32::NAN;
    assert!(pack_activations(&nan)
        .unwrap_err()
        .to_string()
        .contains("NaN"));
}

#[test]
fn one_layer_serves_changing_shapes() {
    // The layer caches the plan of the last input shape; alternating shapes and strides must
    // rebuild it, never reuse a stale one.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let w = random_f32(&mut rng, (9, 40, 3, 3));
    let pw = pack_weights(&w).unwrap();
    let layer = BConv2d::new(&pw);
    for &(h, wd, stride, pad) in &[
        (5, 7, 1, 1),
        (6, 6, 2, 0),
        (5, 7, 1, 1),
        (5, 7, 2, 1),
        (3, 3, 1, 2),
    ] {
        let x = random_f32(&mut rng, (1, 40, h, wd));
        let px = pack_activations(&x).unwrap();
        let truth = reference::conv2d_i8(&px.to_i8(), &pw.to_i8(), stride, pad).unwrap();
        assert_eq!(
            layer.forward(&px, stride, pad).unwrap(),
            truth,
            "{h}x{wd} s{stride} p{pad}"
        );
        assert_eq!(layer.clone().forward(&px, stride, pad).unwrap(), truth);
    }
}

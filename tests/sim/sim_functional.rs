//! Functional outputs against naive references: binary layers exactly, fixed-point layers exactly
//! against an integer convolution and within the stated bound of an f32 convolution.

use breakingbed::hw::Device;
use breakingbed::sim::reference::{binary_conv, fixed_conv, fixed_error_bound, float_conv};
use breakingbed::sim::{
    acc_to_f32, quantize, run_binary, run_fixed, BinaryInputs, FixedFormat, LayerKind, LayerSpec,
    PackedActs, PackedWeights, Precision,
};
use breakingbed::Error;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn hw(name: &str) -> Device {
    Device::load(format!("{}/hw/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn pm1(rng: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| if rng.gen::<bool>() { 1 } else { -1 })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn conv(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    h: usize,
    w: usize,
    p: Precision,
) -> LayerSpec {
    LayerSpec {
        name: "l".into(),
        kind: LayerKind::Conv {
            in_c,
            out_c,
            kernel,
            stride,
            padding,
            in_h: h,
            in_w: w,
        },
        precision: p,
    }
}

/// Random conv (or linear) shape; channel counts around the 48-lane word boundary (as LCE's
/// in-channel sweep {1, 31, 32, 33, 64}).
fn shape() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize, usize, bool)> {
    (
        prop::sample::select(vec![1usize, 3, 31, 32, 33, 47, 48, 49, 64, 97]),
        1usize..9,
        prop::sample::select(vec![1usize, 3, 5]),
        1usize..=2,
        0usize..=2,
        3usize..9,
        3usize..9,
        prop::bool::weighted(0.2),
    )
        .prop_map(|(ic, oc, k, s, p, h, w, lin)| {
            (ic, oc, k, s, p.min(k - 1), h.max(k), w.max(k), lin)
        })
}

fn spec_of(sh: (usize, usize, usize, usize, usize, usize, usize, bool), p: Precision) -> LayerSpec {
    let (ic, oc, k, s, pad, h, w, lin) = sh;
    if lin {
        LayerSpec {
            name: "fc".into(),
            kind: LayerKind::Linear {
                in_f: ic,
                out_f: oc,
            },
            precision: p,
        }
    } else {
        conv(ic, oc, k, s, pad, h, w, p)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Random binary layers (XNOR and ABC M x N): every base pair's accumulators equal the naive
    /// +/-1 convolution; the scaled output equals sum alpha*beta*conv in f64 to f32 precision.
    #[test]
    fn binary_layers_equal_reference(sh in shape(), m in 1usize..=3, n in 1usize..=2, seed in any::<u64>()) {
        let dev = hw("zcu102.toml");
        let spec = spec_of(sh, Precision::Binary { m, n });
        let g = spec.geometry().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ws: Vec<Vec<i8>> = (0..m).map(|_| pm1(&mut rng, g.o * g.reduction())).collect();
        let xs: Vec<Vec<i8>> = (0..n).map(|_| pm1(&mut rng, g.c * g.h * g.w)).collect();
        let alpha: Vec<f32> = (0..m * g.o).map(|_| rng.gen_range(0.01..2.0)).collect();
        let beta: Vec<f32> = (0..n).map(|_| rng.gen_range(0.1..1.5)).collect();
        let pw: Vec<PackedWeights> = ws.iter()
            .map(|w| PackedWeights::from_pm1(w, g.o, g.c, g.kh, 48).unwrap()).collect();
        let pa: Vec<PackedActs> = xs.iter()
            .map(|x| PackedActs::from_pm1(x, g.c, g.h, g.w, 48).unwrap()).collect();
        let out = run_binary(&spec, &dev, &BinaryInputs { weights: &pw, acts: &pa, alpha: &alpha, beta: &beta }).unwrap();
        let px = g.pixels();
        let mut scaled = vec![0f64; g.o * px];
        for mi in 0..m {
            for ni in 0..n {
                let r = binary_conv(&g, &ws[mi], &xs[ni]);
                let base = (mi * n + ni) * g.o * px;
                prop_assert_eq!(&out.dots[base..base + g.o * px], &r[..]);
                for o in 0..g.o {
                    for p in 0..px {
                        scaled[o * px + p] += alpha[mi * g.o + o] as f64 * beta[ni] as f64 * r[o * px + p] as f64;
                    }
                }
            }
        }
        for (a, b) in out.out.iter().zip(&scaled) {
            let tol = 1e-5 * (1.0 + b.abs()) * (m * n) as f64;
            prop_assert!((*a as f64 - b).abs() <= tol, "{} vs {}", a, b);
        }
    }

    /// Random full-precision layers on all lane configurations (paper 2x16 virtual, ZCU102 INT8
    /// shared-operand with a drain every 4 products, ZU3EG 1x16): exact integer accumulators.
    #[test]
    fn fixed_layers_equal_integer_reference(sh in shape(), dev_i in 0usize..3, seed in any::<u64>()) {
        let dev = hw(["paper.toml", "zcu102.toml", "zu3eg.toml"][dev_i]);
        let spec = spec_of(sh, Precision::Full);
        let g = spec.geometry().unwrap();
        let half = 1i32 << (dev.slice.mac.width - 1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Extremes included on purpose: they stress the guard bits.
        let mut draw = |n: usize| -> Vec<i32> {
            (0..n).map(|_| match rng.gen_range(0..4) {
                0 => -half,
                1 => half - 1,
                _ => rng.gen_range(-half..half),
            }).collect()
        };
        let w = draw(g.o * g.reduction());
        let x = draw(g.c * g.h * g.w);
        let out = run_fixed(&spec, &dev, &w, &x).unwrap();
        prop_assert_eq!(out, fixed_conv(&g, &w, &x));
    }

    /// Q8.8 activations x Q2.14 weights on 16-bit lanes: the fixed-point output converted to f32
    /// stays within `fixed_error_bound` of an f32 convolution of the unquantised values.
    #[test]
    fn fixed_within_stated_bound_of_f32(sh in shape(), seed in any::<u64>(), eight_bit in any::<bool>()) {
        let dev = hw(if eight_bit { "zcu102.toml" } else { "paper.toml" });
        let width = dev.slice.mac.width;
        let fmt = FixedFormat::for_width(width);
        let spec = spec_of(sh, Precision::Full);
        let g = spec.geometry().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let xr = if eight_bit { 7.0 } else { 100.0 };
        let w: Vec<f32> = (0..g.o * g.reduction()).map(|_| rng.gen_range(-1.9f32..1.9)).collect();
        let x: Vec<f32> = (0..g.c * g.h * g.w).map(|_| rng.gen_range(-xr..xr)).collect();
        let wq = quantize(&w, width, fmt.weight_frac, "weights").unwrap();
        let xq = quantize(&x, width, fmt.act_frac, "activations").unwrap();
        let y = acc_to_f32(&run_fixed(&spec, &dev, &wq, &xq).unwrap(), fmt.acc_frac());
        let yf = float_conv(&g, &w, &x);
        let bound = fixed_error_bound(&g, &w, &x, fmt.act_frac, fmt.weight_frac);
        for i in 0..y.len() {
            let err = (y[i] as f64 - yf[i] as f64).abs();
            prop_assert!(err <= bound[i] as f64, "output {}: |{} - {}| = {} > {}", i, y[i], yf[i], err, bound[i]);
        }
    }
}

/// The bound is not vacuous: for a 16-bit 3x3x64 conv it is well below 1% of the output scale,
/// and an error of 2^-9 per activation would break it.
#[test]
fn fixed_bound_is_tight_enough_to_matter() {
    let g = conv(64, 1, 3, 1, 1, 4, 4, Precision::Full)
        .geometry()
        .unwrap();
    let w = vec![0.5f32; g.reduction()];
    let x = vec![1.0f32; g.c * 16];
    let b = fixed_error_bound(&g, &w, &x, 8, 14);
    // Centre pixel: 576 taps, each |x| 2^-15 + |w| 2^-9, plus f32 summation gamma_576 * 288.
    let centre = b[5] as f64;
    let u = (-24f64).exp2();
    let expect =
        576.0 * ((-15f64).exp2() + 0.5 * (-9f64).exp2()) + 576.0 * u / (1.0 - 576.0 * u) * 288.0;
    assert!(
        centre >= expect && centre < expect * 1.001,
        "{centre} vs {expect}"
    );
    assert!(centre < 0.01 * 288.0);
}

#[test]
fn bad_inputs_are_named_errors() {
    let dev = hw("zu3eg.toml");
    let spec = conv(2, 1, 1, 1, 0, 2, 2, Precision::Full);
    let e = run_fixed(&spec, &dev, &[1, 40000], &[0; 8]).unwrap_err();
    assert!(
        matches!(&e, Error::Input { context, .. } if context.ends_with("weights[1]")),
        "{e}"
    );
    let e = run_fixed(&spec, &dev, &[1], &[0; 8]).unwrap_err();
    assert!(e.to_string().contains("weights"), "{e}");
    let e = quantize(&[0.0, 200.0], 16, 8, "acts").unwrap_err();
    assert!(
        matches!(&e, Error::Input { context, .. } if context == "acts[1]"),
        "{e}"
    );
    let e = PackedActs::from_pm1(&[1, 0], 2, 1, 1, 48).unwrap_err();
    assert!(
        matches!(&e, Error::Input { context, .. } if context == "activations[1]"),
        "{e}"
    );
    // Binary layer with the wrong number of bases / wrong word width.
    let bspec = conv(2, 1, 1, 1, 0, 1, 1, Precision::Binary { m: 2, n: 1 });
    let pw = PackedWeights::from_pm1(&[1, -1], 1, 2, 1, 48).unwrap();
    let pa = PackedActs::from_pm1(&[1, 1], 2, 1, 1, 32).unwrap();
    let e = run_binary(
        &bspec,
        &dev,
        &BinaryInputs {
            weights: std::slice::from_ref(&pw),
            acts: std::slice::from_ref(&pa),
            alpha: &[1.0],
            beta: &[1.0],
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("weights"), "{e}");
    let bspec = conv(2, 1, 1, 1, 0, 1, 1, Precision::Binary { m: 1, n: 1 });
    let e = run_binary(
        &bspec,
        &dev,
        &BinaryInputs {
            weights: &[pw],
            acts: &[pa],
            alpha: &[1.0],
            beta: &[1.0],
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("activations[0]"), "{e}");
}

/// Padding convention: a 3x3 all-(+1) kernel on an all-(+1) 1-channel 3x3 image with padding 1
/// counts only real taps: corners 4, edges 6, centre 9.
#[test]
fn padded_taps_contribute_zero() {
    let dev = hw("paper.toml");
    let spec = conv(1, 1, 3, 1, 1, 3, 3, Precision::Binary { m: 1, n: 1 });
    let pw = PackedWeights::from_pm1(&[1; 9], 1, 1, 3, 48).unwrap();
    let pa = PackedActs::from_pm1(&[1; 9], 1, 3, 3, 48).unwrap();
    let out = run_binary(
        &spec,
        &dev,
        &BinaryInputs {
            weights: &[pw],
            acts: &[pa],
            alpha: &[1.0],
            beta: &[1.0],
        },
    )
    .unwrap();
    assert_eq!(out.dots, vec![4, 6, 4, 6, 9, 6, 4, 6, 4]);
}

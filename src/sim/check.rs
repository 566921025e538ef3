//! Functional check of simulated layers against an independent reference, on seeded random
//! inputs of each layer's shape ([`super::random`]).
//!
//! - Binary layers (`Binary { m, n }`): every `(m, n)` accumulator of the simulator (the exact
//!   +/-1 dot product, padded taps contributing 0) must **equal** the reference's; the scaled
//!   output must equal, bit for bit, `sum_m sum_n (alpha[m][o] * beta[n]) * dot` evaluated in `f32`
//!   in that order from the *reference* accumulators.
//! - Full-precision layers: the simulator's exact fixed-point accumulator, rounded once to `f32`,
//!   must lie within [`super::reference::fixed_error_bound`] of an `f32` convolution of the
//!   unquantised values (the bound covers rounding the operands to the Q format, the reference's
//!   own `f32` accumulation in any order, and the final rounding).
//!
//! The reference is [`REFERENCE`]: the crate's inference engines, which share no code with the
//! simulator (bit-im2col + XOR-popcount GEMM for binary layers, im2col + `f32` GEMM for full
//! precision). Engine errors are reported against the layer name.

use super::functional::{acc_to_f32, run_binary_images, run_fixed, BinaryOutput};
use super::layer::{LayerSpec, Precision};
use super::random::{layer_data, BinaryData, FixedData, LayerData};
use super::reference::fixed_error_bound;
use crate::engine::binary::{bconv2d, pack_activations_i8, pack_weights_i8};
use crate::engine::ops::conv::conv2d;
use crate::hw::Device;
use crate::model::geom::ConvGeom;
use crate::{Error, Result};
use ndarray::Array4;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// What the simulator is compared against.
pub const REFERENCE: &str =
    "engine::binary::bconv2d (binary layers), engine::ops::conv::conv2d (full precision)";

/// Outcome of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCheck {
    pub name: String,
    pub precision: Precision,
    /// `exact` (binary) or `bound` (full precision).
    pub criterion: String,
    /// Values compared (accumulators and outputs, over images and bases).
    pub compared: u64,
    /// Values outside the criterion.
    pub mismatches: u64,
    /// Largest `|sim - reference|` of the layer outputs.
    pub max_abs_err: f64,
    /// Largest `|sim - reference| / bound` (full precision; <= 1 passes); 0 for binary layers.
    pub max_err_over_bound: f64,
    pub matched: bool,
}

/// Outcome of all layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionalReport {
    pub images: usize,
    pub seed: u64,
    /// Where the layer inputs came from: seeded random data, or real images through the engine
    /// (see [`super::real`]).
    pub inputs: String,
    pub reference: String,
    pub layers: Vec<LayerCheck>,
    /// True when every layer matched.
    pub functional_match: bool,
}

/// Running tally of one layer's comparisons.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub compared: u64,
    pub mismatches: u64,
    pub max_abs_err: f64,
    pub max_err_over_bound: f64,
}

/// Compares one image of a simulated binary layer with reference accumulators `refs`
/// (`[m * n]` of `[out_c][oh][ow]`): dots must be equal, scaled outputs equal bit for bit to the
/// documented `f32` combination of the reference dots.
pub fn compare_binary(
    g: &ConvGeom,
    sim: &BinaryOutput,
    refs: &[Vec<i32>],
    alpha: &[f32],
    beta: &[f32],
    t: &mut Tally,
) {
    let (m, n) = (alpha.len() / g.o, beta.len());
    let px = g.pixels();
    let flat: Vec<i32> = refs.concat();
    t.compared += flat.len() as u64;
    t.mismatches += sim.dots.iter().zip(&flat).filter(|(a, b)| a != b).count() as u64
        + sim.dots.len().abs_diff(flat.len()) as u64;
    for o in 0..g.o {
        for p in 0..px {
            let mut y = 0f32;
            for mi in 0..m {
                for ni in 0..n {
                    let dot = refs[mi * n + ni][o * px + p];
                    y += (alpha[mi * g.o + o] * beta[ni]) * dot as f32;
                }
            }
            let s = sim.out[o * px + p];
            t.compared += 1;
            if s.to_bits() != y.to_bits() {
                t.mismatches += 1;
            }
            t.max_abs_err = t.max_abs_err.max((s as f64 - y as f64).abs());
        }
    }
}

/// Compares simulated fixed-point outputs `y` with reference `r` under per-output `bound`.
pub fn compare_fixed(y: &[f32], r: &[f32], bound: &[f32], t: &mut Tally) {
    t.mismatches += y.len().abs_diff(r.len()) as u64;
    for ((&s, &v), &b) in y.iter().zip(r).zip(bound) {
        let e = (s as f64 - v as f64).abs();
        t.compared += 1;
        // NaN errors fail too.
        if e.is_nan() || e > b as f64 {
            t.mismatches += 1;
        }
        t.max_abs_err = t.max_abs_err.max(e);
        t.max_err_over_bound = t.max_err_over_bound.max(e / b as f64);
    }
}

fn finish(spec: &LayerSpec, criterion: &str, t: Tally) -> LayerCheck {
    LayerCheck {
        name: spec.name.clone(),
        precision: spec.precision,
        criterion: criterion.into(),
        compared: t.compared,
        mismatches: t.mismatches,
        max_abs_err: t.max_abs_err,
        max_err_over_bound: t.max_err_over_bound,
        matched: t.mismatches == 0 && t.compared > 0,
    }
}

fn check_binary(
    spec: &LayerSpec,
    g: &ConvGeom,
    dev: &Device,
    d: &BinaryData,
) -> Result<LayerCheck> {
    let mut t = Tally::default();
    for (img, sim) in d.images.iter().zip(run_binary_images(spec, dev, d)?) {
        let mut refs = Vec::with_capacity(d.weights.len() * img.len());
        for w in &d.weights {
            for x in img {
                refs.push(reference_dots(g, w, x).map_err(|e| engine_err(spec, e))?);
            }
        }
        compare_binary(g, &sim, &refs, &d.alpha, &d.beta, &mut t);
    }
    Ok(finish(spec, "exact", t))
}

fn check_fixed(spec: &LayerSpec, g: &ConvGeom, dev: &Device, d: &FixedData) -> Result<LayerCheck> {
    let mut t = Tally::default();
    for (x, xq) in d.images.iter().zip(&d.images_q) {
        let acc = run_fixed(spec, dev, &d.weights_q, xq)?;
        let y = acc_to_f32(&acc, d.format.acc_frac());
        let r = reference_float(g, &d.weights, x).map_err(|e| engine_err(spec, e))?;
        let bound = fixed_error_bound(g, &d.weights, x, d.format.act_frac, d.format.weight_frac);
        compare_fixed(&y, &r, &bound, &mut t);
    }
    Ok(finish(spec, "bound", t))
}

fn engine_err(spec: &LayerSpec, e: Error) -> Error {
    match e {
        Error::Input { context, message } => {
            Error::input(format!("layer `{}`: engine {context}", spec.name), message)
        }
        other => other,
    }
}

/// The bit-exact engine's +/-1 convolution (`crate::engine::binary::bconv2d`), `[out_c][oh][ow]`.
fn reference_dots(g: &ConvGeom, w: &[i8], x: &[i8]) -> Result<Vec<i32>> {
    let k = g.kh;
    let wa = Array4::from_shape_vec((g.o, g.c, k, k), w.to_vec())
        .expect("weights have out x in x k x k values");
    let xa = Array4::from_shape_vec((1, g.c, g.h, g.w), x.to_vec())
        .expect("activations have c x h x w values");
    let acc = bconv2d(
        &pack_activations_i8(&xa)?,
        &pack_weights_i8(&wa)?,
        g.stride,
        g.pad,
    )?;
    Ok(acc.iter().copied().collect())
}

/// The float engine's convolution (`crate::engine::ops::conv::conv2d`), `[out_c][oh][ow]`.
fn reference_float(g: &ConvGeom, w: &[f32], x: &[f32]) -> Result<Vec<f32>> {
    let k = g.kh;
    let wa = Array4::from_shape_vec((g.o, g.c, k, k), w.to_vec())
        .expect("weights have out x in x k x k values");
    let xa = Array4::from_shape_vec((1, g.c, g.h, g.w), x.to_vec())
        .expect("activations have c x h x w values");
    Ok(conv2d(&xa, &wa, None, g.stride, g.pad)?
        .iter()
        .copied()
        .collect())
}

/// Checks layer `index` of a network (its position in the layer list, which selects its random
/// stream) on `images` images.
pub fn check_layer(
    spec: &LayerSpec,
    index: usize,
    dev: &Device,
    images: usize,
    seed: u64,
) -> Result<LayerCheck> {
    let g = spec.geometry()?;
    check_data(spec, dev, &layer_data(spec, &g, dev, images, seed, index)?)
}

/// Checks one layer on the given data (random, or real from [`super::real`]).
pub fn check_data(spec: &LayerSpec, dev: &Device, data: &LayerData) -> Result<LayerCheck> {
    let g = spec.geometry()?;
    match data {
        LayerData::Binary(d) => check_binary(spec, &g, dev, d),
        LayerData::Fixed(d) => check_fixed(spec, &g, dev, d),
    }
}

/// Checks every layer on real data (`data[i]` for `specs[i]`, as [`super::real::real_layer_data`]
/// returns them); `inputs` describes their origin for the report.
pub fn check_layers_data(
    specs: &[LayerSpec],
    dev: &Device,
    data: &[LayerData],
    images: usize,
    inputs: String,
    done: impl Fn() + Sync,
) -> Result<FunctionalReport> {
    let layers = specs
        .par_iter()
        .zip(data)
        .map(|(s, d)| {
            let r = check_data(s, dev, d);
            done();
            r
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FunctionalReport {
        images,
        seed: 0,
        inputs,
        reference: REFERENCE.into(),
        functional_match: layers.iter().all(|l| l.matched),
        layers,
    })
}

/// Checks every layer (in parallel; results do not depend on the thread count because each
/// layer has its own random stream). `done` is called once per finished layer, for progress.
pub fn check_layers(
    specs: &[LayerSpec],
    dev: &Device,
    images: usize,
    seed: u64,
    done: impl Fn() + Sync,
) -> Result<FunctionalReport> {
    let layers = specs
        .par_iter()
        .enumerate()
        .map(|(i, s)| {
            let r = check_layer(s, i, dev, images, seed);
            done();
            r
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FunctionalReport {
        images,
        seed,
        inputs: format!("seeded random data (seed {seed}, sim::random)"),
        reference: REFERENCE.into(),
        functional_match: layers.iter().all(|l| l.matched),
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::reference::{binary_conv, float_conv};
    use crate::sim::{run_binary, BinaryInputs, LayerKind, PackedActs, PackedWeights};

    fn dev() -> Device {
        Device::from_toml_str(crate::cli::simulate::PAPER_HW_TOML, "paper").unwrap()
    }

    fn conv(in_c: usize, out_c: usize, k: usize, s: usize, hw: usize, p: Precision) -> LayerSpec {
        LayerSpec {
            name: "t".into(),
            kind: LayerKind::Conv {
                in_c,
                out_c,
                kernel: k,
                stride: s,
                padding: k / 2,
                in_h: hw,
                in_w: hw + 1,
            },
            precision: p,
        }
    }

    /// Channel counts around the 48-lane word boundary (as LCE sweeps 31/32/33/64 around its
    /// 32-bit words), strides 1 and 2, 1x1 and 3x3: all match, and the number of compared values
    /// is (m*n dots + 1 output) per position and image.
    #[test]
    fn layers_match_across_lane_boundaries() {
        let d = dev();
        for (i, in_c) in [1usize, 47, 48, 49, 96, 100].into_iter().enumerate() {
            for (k, s) in [(1, 1), (3, 1), (3, 2)] {
                for p in [Precision::Binary { m: 2, n: 3 }, Precision::Full] {
                    let spec = conv(in_c, 5, k, s, 5, p);
                    let g = spec.geometry().unwrap();
                    let c = check_layer(&spec, i, &d, 2, 11).unwrap();
                    assert!(c.matched, "{in_c} {k} {s} {p:?}: {c:?}");
                    let per = match p {
                        Precision::Binary { m, n } => m * n + 1,
                        Precision::Full => 1,
                    };
                    assert_eq!(c.compared, (2 * per * 5 * g.pixels()) as u64);
                }
            }
        }
    }

    /// The comparison is not vacuous: one wrong accumulator is one mismatch (and it also
    /// changes the scaled output it feeds).
    #[test]
    fn a_wrong_dot_is_caught() {
        let spec = conv(3, 2, 3, 1, 3, Precision::Binary { m: 1, n: 1 });
        let g = spec.geometry().unwrap();
        let w: Vec<i8> = (0..2 * 27)
            .map(|i| if i % 3 == 0 { -1 } else { 1 })
            .collect();
        let x: Vec<i8> = (0..3 * 12)
            .map(|i| if i % 5 == 0 { -1 } else { 1 })
            .collect();
        let pw = PackedWeights::from_pm1(&w, 2, 3, 3, 48).unwrap();
        let pa = PackedActs::from_pm1(&x, 3, 3, 4, 48).unwrap();
        let (alpha, beta) = (vec![0.5, 0.75], vec![1.0]);
        let sim = run_binary(
            &spec,
            &dev(),
            &BinaryInputs {
                weights: std::slice::from_ref(&pw),
                acts: std::slice::from_ref(&pa),
                alpha: &alpha,
                beta: &beta,
            },
        )
        .unwrap();
        let mut good = Tally::default();
        compare_binary(
            &g,
            &sim,
            &[binary_conv(&g, &w, &x)],
            &alpha,
            &beta,
            &mut good,
        );
        assert_eq!(good.mismatches, 0);
        let mut bad_ref = binary_conv(&g, &w, &x);
        bad_ref[5] += 2;
        let mut bad = Tally::default();
        compare_binary(&g, &sim, &[bad_ref], &alpha, &beta, &mut bad);
        assert_eq!(bad.mismatches, 2);
    }

    /// The engine plumbing (NCHW arrays, packing, output order) agrees with the naive definition
    /// in `sim::reference`: exactly for +/-1 data, to f32 rounding for floats.
    #[test]
    fn engine_references_agree_with_naive_definitions() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (in_c, out_c, k, s) in [(1, 1, 1, 1), (5, 3, 3, 2), (50, 4, 3, 1), (7, 2, 5, 1)] {
            let spec = conv(in_c, out_c, k, s, 6, Precision::Full);
            let g = spec.geometry().unwrap();
            let nw = out_c * in_c * k * k;
            let nx = in_c * g.h * g.w;
            let w: Vec<i8> = (0..nw).map(|_| if rng.gen() { 1 } else { -1 }).collect();
            let x: Vec<i8> = (0..nx).map(|_| if rng.gen() { 1 } else { -1 }).collect();
            assert_eq!(reference_dots(&g, &w, &x).unwrap(), binary_conv(&g, &w, &x));
            let wf: Vec<f32> = (0..nw).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let xf: Vec<f32> = (0..nx).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let a = reference_float(&g, &wf, &xf).unwrap();
            let b = float_conv(&g, &wf, &xf);
            assert_eq!(a.len(), b.len());
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
    }

    #[test]
    fn fixed_outside_bound_or_nan_is_caught() {
        let mut t = Tally::default();
        compare_fixed(
            &[1.0, 2.0, f32::NAN],
            &[1.0005, 2.5, 0.0],
            &[0.001; 3],
            &mut t,
        );
        assert_eq!((t.compared, t.mismatches), (3, 2));
        assert!((t.max_abs_err - 0.5).abs() < 1e-6);
    }
}

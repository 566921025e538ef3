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
//! The reference is [`REFERENCE`]: the naive direct convolutions of [`super::reference`], written
//! from the definition without packing, lanes or slices.

use super::functional::{acc_to_f32, run_binary, run_fixed, BinaryInputs};
use super::layer::{Geometry, LayerSpec, Precision};
use super::random::{layer_data, BinaryData, FixedData, LayerData};
use super::reference::{binary_conv, fixed_error_bound, float_conv};
use super::PackedActs;
use super::PackedWeights;
use crate::hw::Device;
use crate::Result;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// What the simulator is compared against.
pub const REFERENCE: &str = "sim::reference (naive direct convolution)";

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
    pub reference: String,
    pub layers: Vec<LayerCheck>,
    /// True when every layer matched.
    pub functional_match: bool,
}

fn check_binary(spec: &LayerSpec, g: &Geometry, dev: &Device, d: &BinaryData) -> Result<LayerCheck> {
    let lanes = dev.slice.xnor.lanes;
    let pw: Vec<PackedWeights> = d
        .weights
        .iter()
        .map(|w| PackedWeights::from_pm1(w, g.out_c, g.in_c, g.kernel, lanes))
        .collect::<Result<_>>()?;
    let (m, n) = (d.weights.len(), d.beta.len());
    let px = g.pixels();
    let (mut compared, mut mismatches, mut max_err) = (0u64, 0u64, 0f64);
    for img in &d.images {
        let pa: Vec<PackedActs> = img
            .iter()
            .map(|x| PackedActs::from_pm1(x, g.in_c, g.in_h, g.in_w, lanes))
            .collect::<Result<_>>()?;
        let sim = run_binary(
            spec,
            dev,
            &BinaryInputs {
                weights: &pw,
                acts: &pa,
                alpha: &d.alpha,
                beta: &d.beta,
            },
        )?;
        let mut refs = Vec::with_capacity(m * n);
        for w in &d.weights {
            for x in img {
                refs.push(binary_conv(g, w, x));
            }
        }
        let flat: Vec<i32> = refs.concat();
        compared += flat.len() as u64;
        mismatches += sim.dots.iter().zip(&flat).filter(|(a, b)| a != b).count() as u64;
        for o in 0..g.out_c {
            for p in 0..px {
                let mut y = 0f32;
                for mi in 0..m {
                    for ni in 0..n {
                        let dot = refs[mi * n + ni][o * px + p];
                        y += (d.alpha[mi * g.out_c + o] * d.beta[ni]) * dot as f32;
                    }
                }
                let s = sim.out[o * px + p];
                compared += 1;
                if s.to_bits() != y.to_bits() {
                    mismatches += 1;
                }
                max_err = max_err.max((s as f64 - y as f64).abs());
            }
        }
    }
    Ok(LayerCheck {
        name: spec.name.clone(),
        precision: spec.precision,
        criterion: "exact".into(),
        compared,
        mismatches,
        max_abs_err: max_err,
        max_err_over_bound: 0.0,
        matched: mismatches == 0,
    })
}

fn check_fixed(spec: &LayerSpec, g: &Geometry, dev: &Device, d: &FixedData) -> Result<LayerCheck> {
    let (mut compared, mut mismatches, mut max_err, mut max_ratio) = (0u64, 0u64, 0f64, 0f64);
    for (x, xq) in d.images.iter().zip(&d.images_q) {
        let acc = run_fixed(spec, dev, &d.weights_q, xq)?;
        let y = acc_to_f32(&acc, d.format.acc_frac());
        let r = float_conv(g, &d.weights, x);
        let bound = fixed_error_bound(g, &d.weights, x, d.format.act_frac, d.format.weight_frac);
        for ((&s, &t), &b) in y.iter().zip(&r).zip(&bound) {
            let e = (s as f64 - t as f64).abs();
            compared += 1;
            if e > b as f64 {
                mismatches += 1;
            }
            max_err = max_err.max(e);
            max_ratio = max_ratio.max(e / b as f64);
        }
    }
    Ok(LayerCheck {
        name: spec.name.clone(),
        precision: spec.precision,
        criterion: "bound".into(),
        compared,
        mismatches,
        max_abs_err: max_err,
        max_err_over_bound: max_ratio,
        matched: mismatches == 0,
    })
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
    match layer_data(spec, &g, dev, images, seed, index)? {
        LayerData::Binary(d) => check_binary(spec, &g, dev, &d),
        LayerData::Fixed(d) => check_fixed(spec, &g, dev, &d),
    }
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
        reference: REFERENCE.into(),
        functional_match: layers.iter().all(|l| l.matched),
        layers,
    })
}

//! Seeded random inputs of one layer's shape, for functional checks and golden vectors.
//!
//! Determinism: layer `index` (its position in [`super::network::layer_specs`]) draws from
//! `ChaCha8Rng::seed_from_u64(seed)` on stream `index`, so every layer's data depend only on
//! `(seed, index)`, never on which other layers run or on the thread count; `bbed vectors
//! --layer L --seed S` therefore writes exactly the data `bbed simulate --functional --seed S`
//! checked for `L`. Draw order: weights first (all bases), then alpha, beta, then per image its
//! activations (all bases).
//!
//! Value ranges:
//! - Binary layers: +/-1 weights and activations, each +1 with probability 1/2; `alpha[m][o]` and
//!   `beta[n]` uniform in [0.25, 1.25) (positive, as mean |W| and trained betas are).
//! - Full-precision layers: weights uniform in `[-rw, rw]` and activations uniform in
//!   `[-ra, ra]` with `r = min(1, max_representable / 2)` of the lane's Q format
//!   ([`FixedFormat::for_width`]): 16-bit lanes (Q8.8 / Q2.14) and 8-bit lanes (Q4.4 / Q2.6)
//!   both give `[-1, 1]` for activations and `[-1, 1]` resp. `[-0.99, 0.99]` for weights, the
//!   scale of BN-normalised activations and of trained conv weights. The float values are kept
//!   (the reference runs on them) beside their rounded fixed-point codes.

use super::data::{quantize, FixedFormat};
use super::layer::{LayerSpec, Precision};
use crate::hw::Device;
use crate::model::geom::ConvGeom;
use crate::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The RNG of layer `index` under `seed` (see the module doc).
pub fn layer_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

fn pm1(rng: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| if rng.gen::<bool>() { 1 } else { -1 })
        .collect()
}

/// +/-1 data of a `Binary { m, n }` layer.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryData {
    /// `m` weight bases, each `[out][in][k][k]`.
    pub weights: Vec<Vec<i8>>,
    /// `[m][out_c]`.
    pub alpha: Vec<f32>,
    /// `[n]`.
    pub beta: Vec<f32>,
    /// Per image, `n` activation bases, each `[c][h][w]`.
    pub images: Vec<Vec<Vec<i8>>>,
}

/// Data of a full-precision layer: float values and their fixed-point codes.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedData {
    pub format: FixedFormat,
    /// Lane width, bits.
    pub width: u32,
    pub act_range: f32,
    pub weight_range: f32,
    /// `[out][in][k][k]`.
    pub weights: Vec<f32>,
    pub weights_q: Vec<i32>,
    /// Per image `[c][h][w]`.
    pub images: Vec<Vec<f32>>,
    pub images_q: Vec<Vec<i32>>,
}

impl FixedData {
    /// Rounds float weights and images to their codes in `format` on `width`-bit lanes (errors
    /// name `layer` and the tensor); the ranges are recorded as given.
    pub fn quantized(
        layer: &str,
        format: FixedFormat,
        width: u32,
        (act_range, weight_range): (f32, f32),
        weights: Vec<f32>,
        images: Vec<Vec<f32>>,
    ) -> Result<FixedData> {
        let ctx = |f: &str| format!("layer `{layer}`: {f}");
        let weights_q = quantize(&weights, width, format.weight_frac, &ctx("weights"))?;
        let images_q = images
            .iter()
            .map(|x| quantize(x, width, format.act_frac, &ctx("activations")))
            .collect::<Result<_>>()?;
        Ok(FixedData {
            format,
            width,
            act_range,
            weight_range,
            weights,
            weights_q,
            images,
            images_q,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LayerData {
    Binary(BinaryData),
    Fixed(FixedData),
}

/// Half the largest value of `width`-bit fixed point with `frac` fractional bits, at most 1.
pub fn value_range(width: u32, frac: u32) -> f32 {
    let max = ((1u64 << (width - 1)) - 1) as f64 / (frac as f64).exp2();
    (max / 2.0).min(1.0) as f32
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, r: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-r..=r)).collect()
}

/// Draws the data of layer `index` of `spec` (geometry `g`) for `images` images on `dev`.
pub fn layer_data(
    spec: &LayerSpec,
    g: &ConvGeom,
    dev: &Device,
    images: usize,
    seed: u64,
    index: usize,
) -> Result<LayerData> {
    let mut rng = layer_rng(seed, index);
    let nw = g.o * g.reduction();
    let na = g.c * g.h * g.w;
    match spec.precision {
        Precision::Binary { m, n } => {
            let weights = (0..m).map(|_| pm1(&mut rng, nw)).collect();
            let alpha = (0..m * g.o).map(|_| rng.gen_range(0.25f32..1.25)).collect();
            let beta = (0..n).map(|_| rng.gen_range(0.25f32..1.25)).collect();
            let images = (0..images)
                .map(|_| (0..n).map(|_| pm1(&mut rng, na)).collect())
                .collect();
            Ok(LayerData::Binary(BinaryData {
                weights,
                alpha,
                beta,
                images,
            }))
        }
        Precision::Full => {
            let width = dev.slice.mac.width;
            let format = FixedFormat::for_width(width);
            let ra = value_range(width, format.act_frac);
            let rw = value_range(width, format.weight_frac);
            let weights = uniform(&mut rng, nw, rw);
            let images: Vec<Vec<f32>> = (0..images).map(|_| uniform(&mut rng, na, ra)).collect();
            Ok(LayerData::Fixed(FixedData::quantized(
                &spec.name,
                format,
                width,
                (ra, rw),
                weights,
                images,
            )?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Q8.8: largest code 32767 / 256 = 127.996, half of it > 1 -> 1. Q2.14: 1.99994 / 2.
    /// Q4.4 (8-bit acts): 127 / 16 = 7.94 -> 1. Q2.6: 127 / 64 / 2 = 0.9921875.
    #[test]
    fn ranges_from_q_formats() {
        assert_eq!(value_range(16, 8), 1.0);
        assert_eq!(value_range(16, 14), (32767.0 / 16384.0 / 2.0) as f32);
        assert_eq!(value_range(8, 4), 1.0);
        assert_eq!(value_range(8, 6), 0.9921875);
    }

    #[test]
    fn streams_are_independent_and_repeatable() {
        let a: Vec<u32> = (0..4).map(|_| layer_rng(5, 3).gen()).collect();
        let b: Vec<u32> = (0..4).map(|_| layer_rng(5, 3).gen()).collect();
        assert_eq!(a, b);
        let x: u64 = layer_rng(5, 3).gen();
        let y: u64 = layer_rng(5, 4).gen();
        let z: u64 = layer_rng(6, 3).gen();
        assert_ne!(x, y);
        assert_ne!(x, z);
    }
}

//! Stress vector sets: deterministic operand patterns on a layer's geometry that drive the
//! datapath into its corners, written beside the random set (whose values are typical, not
//! extreme: random 8-bit codes stay near +/-16 and never fill a lane field).
//!
//! Full-precision layers (codes of the device's `width`-bit lanes, `lo = -2^(width-1)`,
//! `hi = 2^(width-1) - 1`):
//! - `max_product`: every weight and activation `lo`, so every tap adds the largest product
//!   `lo * lo = 2^(2*width-2)` (-128 * -128 for 8-bit lanes) to every lane: read-outs reach the
//!   drain's limit and a reduction of `2^(guard_bits+1)` taps overflows a field that is not
//!   drained.
//! - `mixed_extremes`: weights `hi` on even output channels and `lo` on odd ones, activations
//!   `lo`: the lower lane of a pair sums large negative products (it borrows from the lane above
//!   at every read-out) while the upper lane sums the largest positive ones.
//! - `borrow_boundary`: weights -1 / +1 on even / odd output channels, activations +1 / -1 in a
//!   checkerboard over channel, row and column: lane sums hover at -1, 0 and +1, so read-outs land
//!   exactly on the borrow boundary.
//! - `full_range`: uniform random codes over the whole `[lo, hi]` range (stream `index` of
//!   `ChaCha8Rng::seed_from_u64(seed ^ STRESS_SALT)`).
//!
//! Binary layers (one base pair on the layer's geometry):
//! - `all_match`: weights and activations +1: every output is `+K_real`; a PE that counts a padded
//!   tap as a +1 activation reads `K_full` at the borders instead.
//! - `all_mismatch`: weights +1, activations -1: every output is `-K_real`; a popcount that counts
//!   the unused high lanes of a partly filled word (XNOR(0,0) = 1) is off there.
//! - `checkerboard`: weights `(-1)^(o+i+kh+kw)`, activations `(-1)^(c+y+x)` (negated on odd
//!   images): outputs of both signs that depend on every position.
//!
//! Every image of a stress set holds the same pattern, except where stated.

use super::data::FixedFormat;
use super::layer::{LayerSpec, Precision};
use super::random::layer_rng;
use super::vectors::VectorData;
use crate::hw::Device;
use crate::model::geom::ConvGeom;
use rand::Rng;

/// Seed salt of the `full_range` set (keeps it off the random set's stream).
pub const STRESS_SALT: u64 = 0x5354_5245_5353; // "STRESS"

/// One stress set.
#[derive(Debug, Clone)]
pub struct StressSet {
    pub name: &'static str,
    pub purpose: &'static str,
    pub data: VectorData,
}

fn sign(parity: usize) -> i8 {
    if parity.is_multiple_of(2) {
        1
    } else {
        -1
    }
}

/// The stress sets of layer `index` (position among the simulated layers) of geometry `g` with
/// `images` images each. Binary layers get one-base-pair sets whatever their M x N.
pub fn stress_sets(
    spec: &LayerSpec,
    g: &ConvGeom,
    dev: &Device,
    images: usize,
    seed: u64,
    index: usize,
) -> Vec<StressSet> {
    let (o, c, k, h, w) = (g.o, g.c, g.kh, g.h, g.w);
    let nw = o * c * k * k;
    let na = c * h * w;
    match spec.precision {
        Precision::Binary { .. } => {
            let uniform = |v: i8| vec![v; na];
            let checker_w: Vec<i8> = (0..nw)
                .map(|i| {
                    let (kw, r) = (i % k, i / k);
                    let (kh, r) = (r % k, r / k);
                    sign(r / c + r % c + kh + kw)
                })
                .collect();
            let checker_x = |n: usize| -> Vec<i8> {
                (0..na)
                    .map(|i| sign(i / (h * w) + (i / w) % h + i % w + n))
                    .collect()
            };
            vec![
                StressSet {
                    name: "all_match",
                    purpose: "every output +K_real; a +1-padding PE reads K_full at the borders",
                    data: VectorData::Binary {
                        weights: vec![1; nw],
                        images: vec![uniform(1); images],
                    },
                },
                StressSet {
                    name: "all_mismatch",
                    purpose: "every output -K_real; counting unused high lanes (XNOR(0,0)=1) \
                              or padded taps as +1 is off",
                    data: VectorData::Binary {
                        weights: vec![1; nw],
                        images: vec![uniform(-1); images],
                    },
                },
                StressSet {
                    name: "checkerboard",
                    purpose: "alternating signs over every axis: outputs of both signs",
                    data: VectorData::Binary {
                        weights: checker_w,
                        images: (0..images).map(checker_x).collect(),
                    },
                },
            ]
        }
        Precision::Full => {
            let width = dev.slice.mac.width;
            let format = FixedFormat::for_width(width);
            let lo = -(1i32 << (width - 1));
            let hi = (1i32 << (width - 1)) - 1;
            let by_out = |even: i32, odd: i32| -> Vec<i32> {
                (0..nw)
                    .map(|i| {
                        if (i / (c * k * k)) % 2 == 0 {
                            even
                        } else {
                            odd
                        }
                    })
                    .collect()
            };
            let fixed = |weights: Vec<i32>, images: Vec<Vec<i32>>| VectorData::Fixed {
                format,
                weights,
                images,
            };
            let checker: Vec<i32> = (0..na)
                .map(|i| sign(i / (h * w) + (i / w) % h + i % w) as i32)
                .collect();
            let mut rng = layer_rng(seed ^ STRESS_SALT, index);
            let mut full =
                |n: usize| -> Vec<i32> { (0..n).map(|_| rng.gen_range(lo..=hi)).collect() };
            let full_w = full(nw);
            let full_x: Vec<Vec<i32>> = (0..images).map(|_| full(na)).collect();
            vec![
                StressSet {
                    name: "max_product",
                    purpose: "every product lo*lo = 2^(2w-2): read-outs at the drain limit; an \
                              undrained field overflows",
                    data: fixed(vec![lo; nw], vec![vec![lo; na]; images]),
                },
                StressSet {
                    name: "mixed_extremes",
                    purpose: "lower lanes large negative (borrow at every read-out), upper lanes \
                              largest positive",
                    data: fixed(by_out(hi, lo), vec![vec![lo; na]; images]),
                },
                StressSet {
                    name: "borrow_boundary",
                    purpose: "lane sums at -1, 0, +1: read-outs on the borrow boundary",
                    data: fixed(by_out(-1, 1), vec![checker; images]),
                },
                StressSet {
                    name: "full_range",
                    purpose: "uniform random codes over the whole lane range",
                    data: fixed(full_w, full_x),
                },
            ]
        }
    }
}

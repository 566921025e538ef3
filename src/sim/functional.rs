//! Functional simulation: a layer's output computed through the bit-exact slice model in the
//! order the schedule streams it (per output group and pixel, reduction innermost).
//!
//! - Binary layers return, per (weight base m, activation base n), the exact `i32` +/-1 dot
//!   product `sum w * x` over real positions (padded taps are masked and contribute 0), i.e.
//!   `K_real - 2 * popcount(xor)`, *not* FINN's match count. The scaled output is
//!   `y[o] = sum_m sum_n (alpha[m][o] * beta[n]) * dot[m][n][o]` evaluated in `f32` in exactly that
//!   order (m outer, n inner), so any implementation following the same order matches bit for bit.
//! - Full-precision layers return exact integer accumulators with `act_frac + weight_frac`
//!   fractional bits. Lane fields are drained into a fabric accumulator every
//!   `2^guard_bits` products, so no field ever overflows. Padded taps issue activation 0.
//!   Bias, BN and activation functions are not part of the layer here.

use super::data::{PackedActs, PackedWeights};
use super::layer::{LayerSpec, Precision};
use super::slice::{xnor_dot, PackedMac};
use crate::hw::Device;
use crate::model::geom::ConvGeom;
use crate::{Error, Result};

/// Output of a binary layer for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryOutput {
    pub out_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    /// `[m][n][out_c][oh][ow]`.
    pub dots: Vec<i32>,
    /// `[out_c][oh][ow]`, alpha/beta-scaled sum over bases.
    pub out: Vec<f32>,
}

/// Inputs of a binary layer for one image: `m` weight bases, `n` activation bases, `alpha`
/// `[m][out_c]` (per base and filter; repeat a per-tensor value), `beta` `[n]`.
#[derive(Debug, Clone, Copy)]
pub struct BinaryInputs<'a> {
    pub weights: &'a [PackedWeights],
    pub acts: &'a [PackedActs],
    pub alpha: &'a [f32],
    pub beta: &'a [f32],
}

fn check_binary(g: &ConvGeom, spec: &LayerSpec, dev: &Device, inp: &BinaryInputs) -> Result<()> {
    let (m, n) = match spec.precision {
        Precision::Binary { m, n } => (m, n),
        Precision::Full => {
            return Err(Error::input(
                format!("layer `{}`: precision", spec.name),
                "run_binary needs a binary layer",
            ))
        }
    };
    let ctx = |f: &str| format!("layer `{}`: {f}", spec.name);
    let lanes = dev.slice.xnor.lanes;
    if inp.weights.len() != m {
        return Err(Error::input(
            ctx("weights"),
            format!("expected {m} weight bases, got {}", inp.weights.len()),
        ));
    }
    if inp.acts.len() != n {
        return Err(Error::input(
            ctx("activations"),
            format!("expected {n} activation bases, got {}", inp.acts.len()),
        ));
    }
    for (i, w) in inp.weights.iter().enumerate() {
        if (w.out_c, w.in_c, w.kernel, w.lanes) != (g.o, g.c, g.kh, lanes) {
            return Err(Error::input(
                ctx(&format!("weights[{i}]")),
                format!(
                    "shape {}x{}x{k}x{k} packed in {}-bit words, layer needs {}x{}x{kk}x{kk} in {lanes}-bit words",
                    w.out_c, w.in_c, w.lanes, g.o, g.c, k = w.kernel, kk = g.kh
                ),
            ));
        }
    }
    for (i, a) in inp.acts.iter().enumerate() {
        if (a.c, a.h, a.w, a.lanes) != (g.c, g.h, g.w, lanes) {
            return Err(Error::input(
                ctx(&format!("activations[{i}]")),
                format!(
                    "shape {}x{}x{} packed in {}-bit words, layer needs {}x{}x{} in {lanes}-bit words",
                    a.c, a.h, a.w, a.lanes, g.c, g.h, g.w
                ),
            ));
        }
    }
    if inp.alpha.len() != m * g.o {
        return Err(Error::input(
            ctx("alpha"),
            format!(
                "expected m x out_c = {} values, got {}",
                m * g.o,
                inp.alpha.len()
            ),
        ));
    }
    if inp.beta.len() != n {
        return Err(Error::input(
            ctx("beta"),
            format!("expected n = {n} values, got {}", inp.beta.len()),
        ));
    }
    Ok(())
}

/// Simulates a binary (XNOR / ABC M x N) layer for one image.
pub fn run_binary(spec: &LayerSpec, dev: &Device, inp: &BinaryInputs) -> Result<BinaryOutput> {
    let g = spec.geometry()?;
    check_binary(&g, spec, dev, inp)?;
    let lanes = dev.slice.xnor.lanes;
    let wpt = inp.weights[0].words_per_tap();
    let (m, n) = (inp.weights.len(), inp.acts.len());
    let px = g.pixels();
    let mut dots = vec![0i32; m * n * g.o * px];
    // Real lanes of each word of a tap (the last word may be partly filled).
    let valid: Vec<u32> = (0..wpt)
        .map(|j| (g.c - j * lanes as usize).min(lanes as usize) as u32)
        .collect();
    let k = g.kh;
    for (mi, w) in inp.weights.iter().enumerate() {
        for (ni, a) in inp.acts.iter().enumerate() {
            let base = (mi * n + ni) * g.o * px;
            for o in 0..g.o {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        // The fabric accumulator behind the popcount tree of slice (o, pixel).
                        let mut acc = 0i32;
                        for kh in 0..k {
                            for kw in 0..k {
                                let Some((y, x)) = g.input_at(oy, ox, kh, kw) else {
                                    continue; // masked padded tap
                                };
                                let aw = &a.words[(y * g.w + x) * wpt..][..wpt];
                                let ww = &w.words[((o * k + kh) * k + kw) * wpt..][..wpt];
                                for j in 0..wpt {
                                    acc += xnor_dot(aw[j], ww[j], lanes, valid[j]);
                                }
                            }
                        }
                        dots[base + o * px + oy * g.wo + ox] = acc;
                    }
                }
            }
        }
    }
    let mut out = vec![0f32; g.o * px];
    for o in 0..g.o {
        for p in 0..px {
            let mut y = 0f32;
            for mi in 0..m {
                for ni in 0..n {
                    let d = dots[((mi * n + ni) * g.o + o) * px + p];
                    y += (inp.alpha[mi * g.o + o] * inp.beta[ni]) * d as f32;
                }
            }
            out[o * px + p] = y;
        }
    }
    Ok(BinaryOutput {
        out_c: g.o,
        out_h: g.ho,
        out_w: g.wo,
        dots,
        out,
    })
}

fn check_range(v: &[i32], width: u32, context: &str) -> Result<()> {
    let lo = -(1i64 << (width - 1));
    let hi = (1i64 << (width - 1)) - 1;
    if let Some((i, &x)) = v
        .iter()
        .enumerate()
        .find(|(_, &x)| (x as i64) < lo || (x as i64) > hi)
    {
        return Err(Error::input(
            format!("{context}[{i}]"),
            format!("{x} does not fit the {width}-bit MAC lanes ({lo} ..= {hi})"),
        ));
    }
    Ok(())
}

/// Simulates a full-precision layer for one image in fixed point: `weights` `[out][in][k][k]`,
/// `acts` `[c][h][w]`, both raw integers within the lane width. Returns `[out_c][oh][ow]`
/// accumulators with the sum of both fractional bit counts.
pub fn run_fixed(
    spec: &LayerSpec,
    dev: &Device,
    weights: &[i32],
    acts: &[i32],
) -> Result<Vec<i64>> {
    let g = spec.geometry()?;
    let ctx = |f: &str| format!("layer `{}`: {f}", spec.name);
    if spec.precision != Precision::Full {
        return Err(Error::input(
            ctx("precision"),
            "run_fixed needs a full-precision layer",
        ));
    }
    let nw = g.o * g.reduction();
    if weights.len() != nw {
        return Err(Error::input(
            ctx("weights"),
            format!("expected {nw} values, got {}", weights.len()),
        ));
    }
    let na = g.c * g.h * g.w;
    if acts.len() != na {
        return Err(Error::input(
            ctx("activations"),
            format!("expected {na} values, got {}", acts.len()),
        ));
    }
    let width = dev.slice.mac.width;
    check_range(weights, width, &ctx("weights"))?;
    check_range(acts, width, &ctx("activations"))?;

    let lanes = dev.slice.mac.lanes as usize;
    let max_acc = dev.max_accumulations();
    let k = g.kh;
    let px = g.pixels();
    let mut out = vec![0i64; g.o * px];
    let mut slice = PackedMac::new(dev);
    let mut wl = vec![0i32; lanes];
    let mut partial = vec![0i64; lanes];
    let mut fields = vec![0i64; lanes];
    for group in 0..g.o.div_ceil(lanes) {
        for oy in 0..g.ho {
            for ox in 0..g.wo {
                slice.reset();
                partial.fill(0);
                let mut count = 0u64;
                for ci in 0..g.c {
                    for kh in 0..k {
                        for kw in 0..k {
                            let a = match g.input_at(oy, ox, kh, kw) {
                                Some((y, x)) => acts[(ci * g.h + y) * g.w + x],
                                None => 0,
                            };
                            for (l, w) in wl.iter_mut().enumerate() {
                                let o = group * lanes + l;
                                *w = if o < g.o {
                                    weights[((o * g.c + ci) * k + kh) * k + kw]
                                } else {
                                    0
                                };
                            }
                            slice.mac(&wl, a);
                            count += 1;
                            if count == max_acc {
                                slice.lanes_into(&mut fields);
                                for (p, v) in partial.iter_mut().zip(&fields) {
                                    *p += v;
                                }
                                slice.reset();
                                count = 0;
                            }
                        }
                    }
                }
                slice.lanes_into(&mut fields);
                for (l, &v) in fields.iter().enumerate() {
                    let o = group * lanes + l;
                    if o < g.o {
                        out[o * px + oy * g.wo + ox] = partial[l] + v;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Packs `d` (`m` weight bases, per image `n` activation bases, scales) and simulates every
/// image; one output per image.
pub fn run_binary_images(
    spec: &LayerSpec,
    dev: &Device,
    d: &super::random::BinaryData,
) -> Result<Vec<BinaryOutput>> {
    let g = spec.geometry()?;
    let lanes = dev.slice.xnor.lanes;
    let pw: Vec<PackedWeights> = d
        .weights
        .iter()
        .map(|w| PackedWeights::from_pm1(w, g.o, g.c, g.kh, lanes))
        .collect::<Result<_>>()?;
    d.images
        .iter()
        .map(|img| {
            let pa: Vec<PackedActs> = img
                .iter()
                .map(|x| PackedActs::from_pm1(x, g.c, g.h, g.w, lanes))
                .collect::<Result<_>>()?;
            run_binary(
                spec,
                dev,
                &BinaryInputs {
                    weights: &pw,
                    acts: &pa,
                    alpha: &d.alpha,
                    beta: &d.beta,
                },
            )
        })
        .collect()
}

/// Converts accumulators with `frac` fractional bits to `f32` (rounded once from the exact value).
pub fn acc_to_f32(acc: &[i64], frac: u32) -> Vec<f32> {
    let s = (-(frac as f64)).exp2();
    acc.iter().map(|&a| (a as f64 * s) as f32).collect()
}

//! Real layer data for the hardware commands (`simulate --functional`, `vectors` with `--data`):
//! a layer's trained weights and its input activations for real images, computed by the engine.
//!
//! Source: a [`Net`] (a compressed network plus its parameter map: a safetensors file, a seeded
//! initialisation, or any importer that yields the same map). One taped float forward pass
//! ([`Net::forward`], eval mode, float backend) over the images gives every layer's input: the
//! output of its producer on the tape, or the normalised image for the first layer; a linear
//! layer's input is flattened in C, H, W order (a 1x1 conv on a 1x1 image).
//!
//! Quantisation (stated in every output that uses it):
//! - Binary layers: the engine's own binarization. Weight bases `B_i` and scales `alpha_i`
//!   from [`Net::binarize`]; activation bases XNOR: `sign(x)` (sign(0) = +1), ABC:
//!   `H(x + v_j) = sign(clip(x + v_j, 0, 1) - 0.5)` with the trained shifts `v_j` and scales
//!   `beta_j`. The simulator's accumulators are then the engine's `s_ij` exactly.
//! - Full-precision layers: the device's lane width `w`, one power-of-two scale per tensor (the
//!   weights; the activations of all images together): `frac` = the largest number of fractional
//!   bits (at most [`MAX_FRAC`]) with `round(max|v| * 2^frac) <= 2^(w-1) - 1`, values rounded to
//!   nearest. Bias, BN and activation functions stay outside the layer, as in [`super::functional`].

use ndarray::{Array4, Axis};

use super::data::FixedFormat;
use super::layer::{LayerSpec, Precision};
use super::random::{BinaryData, FixedData, LayerData};
use crate::engine::exec::{BinWeights, ConvBackend, Mode, Net};
use crate::engine::ops;
use crate::engine::params::BinScheme;
use crate::hw::Device;
use crate::{Error, Result};

/// Largest fractional bit count chosen for a real tensor.
pub const MAX_FRAC: u32 = 30;

/// Fractional bits for a tensor whose largest magnitude is `max_abs` on `width`-bit lanes (see
/// the module doc); an error naming `context` when even 0 fractional bits do not fit.
pub fn frac_for(max_abs: f32, width: u32, context: &str) -> Result<u32> {
    let hi = ((1u64 << (width - 1)) - 1) as f64;
    if !max_abs.is_finite() {
        return Err(Error::input(
            context,
            format!("holds a non-finite value ({max_abs})"),
        ));
    }
    if max_abs == 0.0 {
        return Ok(width - 1);
    }
    (0..=MAX_FRAC)
        .rev()
        .find(|&f| (max_abs as f64 * (f as f64).exp2()).round() <= hi)
        .ok_or_else(|| {
            Error::input(
                context,
                format!(
                    "largest magnitude {max_abs} exceeds the {width}-bit lane's range even with \
                     0 fractional bits"
                ),
            )
        })
}

fn max_abs(v: impl IntoIterator<Item = f32>) -> f32 {
    v.into_iter().fold(0f32, |m, x| {
        if x.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(x.abs())
        }
    })
}

fn pm1_i8(a: &Array4<f32>, context: &str) -> Result<Vec<i8>> {
    a.iter()
        .map(|&v| {
            if v == 1.0 {
                Ok(1)
            } else if v == -1.0 {
                Ok(-1)
            } else {
                Err(Error::input(
                    context,
                    format!("binary value {v} is not +/-1"),
                ))
            }
        })
        .collect()
}

/// The engine's normalisation of unit-scale images (`(x - mean[c]) / std[c]`, same expression).
fn normalized(net: &Net, x: &Array4<f32>) -> Array4<f32> {
    let norm = &net.cn.network.normalization;
    let mut x0 = x.to_owned();
    for (ch, mut plane) in x0.axis_iter_mut(Axis(1)).enumerate() {
        let (m, s) = (norm.mean[ch], norm.std[ch]);
        plane.mapv_inplace(|v| (v - m) / s);
    }
    x0
}

/// Real data of the layers `specs[i]` for `i` in `which` (simulator layer positions), for the
/// unit-scale images `x` `[N, C, H, W]`: one forward pass, then each layer's inputs and weights
/// quantised for `dev` (module doc). Returned in the order of `which`.
pub fn real_layer_data(
    net: &Net,
    specs: &[LayerSpec],
    which: &[usize],
    dev: &Device,
    x: &Array4<f32>,
) -> Result<Vec<LayerData>> {
    let bw = net.binarize(false)?;
    let (_, tape) = net.forward(x, Mode::Eval, ConvBackend::Float, &bw, false)?;
    let network = &net.cn.network;
    let x0 = normalized(net, x);
    which
        .iter()
        .map(|&s| {
            let spec = &specs[s];
            let ctx = |f: &str| format!("layer `{}`: {f}", spec.name);
            let i = network
                .index_of(&spec.name)
                .ok_or_else(|| Error::input(ctx("name"), "not a layer of the network"))?;
            let input = match network.layers[i].inputs.first() {
                Some(&j) => net
                    .layer_output(&tape, &network.layers[j].name)
                    .ok_or_else(|| {
                        Error::input(ctx("input"), "not recorded by the forward pass")
                    })?,
                None => &x0,
            };
            let g = spec.geometry()?;
            let n = input.dim().0;
            let per = g.c * g.h * g.w;
            let flat = input.as_standard_layout();
            let flat = flat.as_slice().expect("standard layout");
            if flat.len() != n * per {
                return Err(Error::input(
                    ctx("input"),
                    format!(
                        "{} values per image, layer expects {per}",
                        flat.len() / n.max(1)
                    ),
                ));
            }
            let images: Vec<&[f32]> = flat.chunks(per).collect();
            match (spec.precision, &bw[i]) {
                (Precision::Binary { m, n: nb }, Some(b)) => {
                    binary_data(spec, b, m, nb, &images, (g.c, g.h, g.w))
                }
                (Precision::Full, None) => fixed_data(spec, net, dev, &images),
                _ => Err(Error::input(
                    ctx("precision"),
                    "the simulator's and the engine's binarization of this layer disagree",
                )),
            }
        })
        .collect()
}

fn binary_data(
    spec: &LayerSpec,
    b: &BinWeights,
    m: usize,
    n: usize,
    images: &[&[f32]],
    (c, h, w): (usize, usize, usize),
) -> Result<LayerData> {
    let ctx = |f: &str| format!("layer `{}`: {f}", spec.name);
    if b.bases.len() != m || b.act.betas.len() != n {
        return Err(Error::input(
            ctx("bases"),
            format!(
                "engine has {} x {} bases, simulator expects {m} x {n}",
                b.bases.len(),
                b.act.betas.len()
            ),
        ));
    }
    let weights = b
        .bases
        .iter()
        .map(|base| pm1_i8(&base.as_standard_layout().to_owned(), &ctx("weight base")))
        .collect::<Result<Vec<_>>>()?;
    let alpha: Vec<f32> = b.alphas.iter().flatten().copied().collect();
    let mut imgs = Vec::with_capacity(images.len());
    for img in images {
        if let Some(v) = img.iter().find(|v| !v.is_finite()) {
            return Err(Error::input(
                ctx("input"),
                format!("non-finite activation {v}"),
            ));
        }
        let xa = Array4::from_shape_vec((1, c, h, w), img.to_vec()).expect("c*h*w values");
        let bases = match b.scheme {
            BinScheme::Xnor => vec![ops::activation::sign(&xa)],
            BinScheme::Abc { .. } => ops::abc::abc_activation(&xa, &b.act)?.bases,
        };
        imgs.push(
            bases
                .iter()
                .map(|a| pm1_i8(a, &ctx("activation base")))
                .collect::<Result<Vec<_>>>()?,
        );
    }
    Ok(LayerData::Binary(BinaryData {
        weights,
        alpha,
        beta: b.act.betas.clone(),
        images: imgs,
    }))
}

fn fixed_data(spec: &LayerSpec, net: &Net, dev: &Device, images: &[&[f32]]) -> Result<LayerData> {
    let ctx = |f: &str| format!("layer `{}`: {f}", spec.name);
    let name = format!("{}.weight", spec.name);
    let t = net
        .params
        .get(&name)
        .ok_or_else(|| Error::input("parameters", format!("missing tensor {name:?}")))?;
    let weights: Vec<f32> = t.as_standard_layout().iter().copied().collect();
    let width = dev.slice.mac.width;
    let wmax = max_abs(weights.iter().copied());
    let xmax = max_abs(images.iter().flat_map(|i| i.iter().copied()));
    let format = FixedFormat {
        act_frac: frac_for(xmax, width, &ctx("activations"))?,
        weight_frac: frac_for(wmax, width, &ctx("weights"))?,
    };
    let images: Vec<Vec<f32>> = images.iter().map(|i| i.to_vec()).collect();
    Ok(LayerData::Fixed(FixedData::quantized(
        &spec.name,
        format,
        width,
        (xmax, wmax),
        weights,
        images,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8-bit lanes (largest code 127): 1.0 -> 6 fractional bits (64), 0.99 -> 7 (126.7 -> 127),
    /// 127.4 -> 0, 127.6 does not fit; zero takes w-1; tiny values cap at MAX_FRAC.
    #[test]
    fn per_tensor_scale() {
        assert_eq!(frac_for(1.0, 8, "t").unwrap(), 6);
        assert_eq!(frac_for(0.99, 8, "t").unwrap(), 7);
        assert_eq!(frac_for(127.4, 8, "t").unwrap(), 0);
        assert!(frac_for(127.6, 8, "t").is_err());
        assert!(frac_for(f32::NAN, 8, "t").is_err());
        assert_eq!(frac_for(0.0, 8, "t").unwrap(), 7);
        assert_eq!(frac_for(1e-20, 16, "t").unwrap(), MAX_FRAC);
    }
}

//! Scaled binary layers built from the kernels: XNOR-Net (one base, per-filter alpha) and ABC-Net
//! (M weight bases x N activation bases = M*N binary convs, combined by
//! [`super::transform::combine_bases`]). The network engine calls these per layer.

use ndarray::{Array2, Array4};

use super::bconv::BConv2d;
use super::linear::BLinear;
use super::pack::{PackedActivations, PackedRows, PackedWeights};
use super::transform::{combine_bases, scale_per_channel};
use crate::{Error, Result};

/// XNOR-Net conv: `alpha[o] * bconv2d(input, weights)`.
pub fn xnor_bconv2d(
    input: &PackedActivations,
    weights: &PackedWeights,
    alpha: &[f32],
    stride: usize,
    pad: usize,
) -> Result<Array4<f32>> {
    let acc = BConv2d::new(weights).forward(input, stride, pad)?;
    scale_per_channel(&acc, alpha)
}

fn check_bases(inputs: usize, weights: usize, betas: usize, alphas: usize) -> Result<()> {
    if inputs != betas || weights != alphas {
        return Err(Error::input(
            "abc bases",
            format!(
                "{inputs} activation bases with {betas} betas, {weights} weight bases with {alphas} alphas"
            ),
        ));
    }
    Ok(())
}

/// ABC-Net conv: `sum_i sum_j alpha_i * beta_j * bconv2d(inputs[j], weights[i])`.
pub fn abc_bconv2d(
    inputs: &[PackedActivations],
    weights: &[PackedWeights],
    alphas: &[f32],
    betas: &[f32],
    stride: usize,
    pad: usize,
) -> Result<Array4<f32>> {
    check_bases(inputs.len(), weights.len(), betas.len(), alphas.len())?;
    let mut accs = Vec::with_capacity(weights.len() * inputs.len());
    for w in weights {
        let conv = BConv2d::new(w);
        for x in inputs {
            accs.push(conv.forward(x, stride, pad)?);
        }
    }
    combine_bases(&accs, alphas, betas)
}

/// ABC-Net linear layer: `sum_i sum_j alpha_i * beta_j * blinear(inputs[j], weights[i])`.
pub fn abc_blinear(
    inputs: &[PackedRows],
    weights: &[PackedRows],
    alphas: &[f32],
    betas: &[f32],
) -> Result<Array2<f32>> {
    check_bases(inputs.len(), weights.len(), betas.len(), alphas.len())?;
    let mut accs = Vec::with_capacity(weights.len() * inputs.len());
    for w in weights {
        let layer = BLinear::new(w);
        for x in inputs {
            accs.push(layer.forward(x)?);
        }
    }
    combine_bases(&accs, alphas, betas)
}

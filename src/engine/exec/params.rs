//! Parameter glue: reading a layer's tensors from the parameter map by name (errors name the
//! tensor) and turning latent float weights into the binarized weights ([`BinWeights`]) both
//! backends run.

use ndarray::{Array1, Array4, Ix4};

use super::Net;
use crate::engine::binary::{self as bin, BConv2d};
use crate::engine::ops;
use crate::engine::params::{BinScheme, Params};
use crate::{Error, Result};

/// Binarized weights of one layer, computed from the latent float weights.
pub struct BinWeights {
    pub scheme: BinScheme,
    /// +/-1 weight bases `B_i` as `[O, C, k, k]` (linear layers as `[O, I, 1, 1]`).
    pub bases: Vec<Array4<f32>>,
    /// Scale of base `i` per output channel (XNOR: `alpha_o`; ABC: the base's scalar alpha).
    pub alphas: Vec<Vec<f32>>,
    /// `sum_i alpha_i B_i` (what the STE backward differentiates through).
    pub approx: Array4<f32>,
    /// Activation shifts `v_j` and scales `beta_j` (XNOR: one base, v = 0 unused, beta = 1).
    pub act: ops::abc::AbcActivation,
    /// Packed weight plans for the bitwise backend (one per base), built on demand.
    pub plans: Option<Vec<BConv2d>>,
    pub(super) abc: Option<ops::abc::AbcWeights<Ix4>>,
    /// With more than one weight base, the bases stacked along output channels
    /// ([`ops::abc::stack_bases`]): the float backend's weight, built with the bases.
    pub(super) stacked: Option<Array4<f32>>,
}

pub(super) fn p4(params: &Params, name: &str) -> Result<Array4<f32>> {
    let t = params
        .get(name)
        .ok_or_else(|| Error::input("parameters", format!("missing tensor {name:?}")))?;
    let shape = t.shape();
    let s = match shape.len() {
        4 => [shape[0], shape[1], shape[2], shape[3]],
        2 => [shape[0], shape[1], 1, 1],
        _ => {
            return Err(Error::input(
                name,
                format!("expected a 2-D or 4-D weight, got shape {shape:?}"),
            ))
        }
    };
    Ok(t.to_shape(s)
        .map_err(|e| Error::input(name, e.to_string()))?
        .to_owned())
}

pub(super) fn p1(params: &Params, name: &str) -> Result<Array1<f32>> {
    let t = params
        .get(name)
        .ok_or_else(|| Error::input("parameters", format!("missing tensor {name:?}")))?;
    Ok(t.iter().copied().collect())
}

impl Net {
    /// Binarizes the weights of every binarized layer (`plans`: also pack them for the bitwise
    /// backend).
    pub fn binarize(&self, plans: bool) -> Result<Vec<Option<BinWeights>>> {
        self.cn
            .network
            .layers
            .iter()
            .zip(&self.schemes)
            .map(|(l, s)| {
                let Some(scheme) = *s else { return Ok(None) };
                let w = p4(&self.params, &format!("{}.weight", l.name))?;
                let o = w.dim().0;
                let (bases, alphas, approx, act, abc) = match scheme {
                    BinScheme::Xnor => {
                        let xw = ops::xnor::xnor_binarize(&w)?;
                        (
                            vec![xw.binary],
                            vec![xw.alpha.to_vec()],
                            xw.approx,
                            ops::abc::AbcActivation {
                                shifts: vec![0.0],
                                betas: vec![1.0],
                            },
                            None,
                        )
                    }
                    BinScheme::Abc { m, .. } => {
                        let aw = ops::abc::abc_binarize(&w, m)?;
                        let act = ops::abc::AbcActivation {
                            shifts: p1(&self.params, &format!("{}.act_shift", l.name))?.to_vec(),
                            betas: p1(&self.params, &format!("{}.act_scale", l.name))?.to_vec(),
                        };
                        let alphas = aw.alphas.iter().map(|&a| vec![a; o]).collect();
                        (aw.bases.clone(), alphas, aw.approx.clone(), act, Some(aw))
                    }
                };
                let plans = if plans {
                    Some(
                        bases
                            .iter()
                            .map(|b| Ok(BConv2d::new(&bin::pack_weights(b)?)))
                            .collect::<Result<Vec<_>>>()?,
                    )
                } else {
                    None
                };
                let stacked = match bases.len() {
                    1 => None,
                    _ => Some(ops::abc::stack_bases(&bases)?),
                };
                Ok(Some(BinWeights {
                    scheme,
                    stacked,
                    bases,
                    alphas,
                    approx,
                    act,
                    plans,
                    abc,
                }))
            })
            .collect()
    }

    /// Output channels of conv layer `i` (from its weight).
    pub(super) fn out_channels(&self, i: usize) -> Result<usize> {
        let name = &self.cn.network.layers[i].name;
        let w = self
            .params
            .get(&format!("{name}.weight"))
            .ok_or_else(|| Error::input("parameters", format!("missing tensor {name}.weight")))?;
        Ok(w.shape()[0])
    }
}

//! Parameter sets of a compressed network: the names and shapes an engine expects, seeded random
//! initialisation, and loading from a weight file with one clear error on any mismatch.
//!
//! Names follow the PyTorch state dicts (see [`crate::model`]): `{layer}.weight`, `{layer}.bias`,
//! `{bn}.running_mean`, `{bn}.running_var`. Binarized variants store the *latent* float weights
//! under the same names; ABC-Net layers add their activation-base parameters
//! `{layer}.act_shift` (`v_j`, shape `[N]`) and `{layer}.act_scale` (`beta_j`, shape `[N]`).
//! Weight-base scales (XNOR's per-filter alpha, ABC's least-squares alphas) are functions of the
//! latent weights and are recomputed, never stored.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::engine::ops::abc::AbcActivation;
use crate::io::weights::WeightStore;
use crate::model::Op;
use crate::variant::{CompressedNetwork, LayerPrecision, VariantKind};
use crate::Result;

pub type Params = BTreeMap<String, ArrayD<f32>>;

/// How one layer is binarized, if at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinScheme {
    /// XNOR-Net: `sign(x)` activations, `alpha_o * sign(W_o)` weights.
    Xnor,
    /// ABC-Net with `m` weight bases and `n` activation bases.
    Abc { m: usize, n: usize },
}

/// Per-layer binarization scheme (`None` for full-precision layers).
pub fn schemes(cn: &CompressedNetwork) -> Vec<Option<BinScheme>> {
    cn.layers
        .iter()
        .map(|l| match l.precision {
            LayerPrecision::Full => None,
            LayerPrecision::Binary {
                m_weight_bases,
                n_act_bases,
            } => Some(if cn.spec.kind == VariantKind::Xnor {
                BinScheme::Xnor
            } else {
                BinScheme::Abc {
                    m: m_weight_bases,
                    n: n_act_bases,
                }
            }),
        })
        .collect()
}

/// Every parameter tensor the engine needs, with its shape.
pub fn expected(cn: &CompressedNetwork) -> Vec<(String, Vec<usize>)> {
    let mut v = cn.network.param_shapes();
    for (l, s) in cn.network.layers.iter().zip(schemes(cn)) {
        if let Some(BinScheme::Abc { n, .. }) = s {
            v.push((format!("{}.act_shift", l.name), vec![n]));
            v.push((format!("{}.act_scale", l.name), vec![n]));
        }
    }
    v
}

/// Seeded initialisation: conv weights Kaiming-normal (fan-in, gain sqrt(2)), linear weights and
/// biases uniform in +/- 1/sqrt(fan_in) (PyTorch's default), BN gamma 1, beta 0, running mean 0,
/// running var 1, ABC activation bases evenly spread thresholds ([`AbcActivation::spread`]).
pub fn init(cn: &CompressedNetwork, seed: u64) -> Params {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = Params::new();
    for (name, shape) in expected(cn) {
        let len: usize = shape.iter().product();
        let layer = name.rsplit_once('.').map(|(l, _)| l).unwrap_or(&name);
        let op = cn
            .network
            .layers
            .iter()
            .find(|l| l.name == layer)
            .map(|l| &l.op);
        let data: Vec<f32> = if name.ends_with(".act_shift") {
            AbcActivation::spread(len).shifts
        } else if name.ends_with(".act_scale") || name.ends_with(".running_var") {
            vec![1.0; len]
        } else if name.ends_with(".running_mean") {
            vec![0.0; len]
        } else {
            match op {
                Some(Op::BatchNorm { .. }) => {
                    vec![if name.ends_with(".weight") { 1.0 } else { 0.0 }; len]
                }
                Some(Op::Conv { in_c, kernel, .. }) if name.ends_with(".weight") => {
                    let std = (2.0 / (in_c * kernel * kernel).max(1) as f32).sqrt();
                    let d = Normal::new(0.0, std).expect("finite std");
                    (0..len).map(|_| d.sample(&mut rng)).collect()
                }
                Some(Op::Conv { in_c, kernel, .. }) => {
                    let b = 1.0 / ((in_c * kernel * kernel).max(1) as f32).sqrt();
                    let d = Uniform::new_inclusive(-b, b);
                    (0..len).map(|_| d.sample(&mut rng)).collect()
                }
                Some(Op::Linear { in_f, .. }) => {
                    let b = 1.0 / (*in_f.max(&1) as f32).sqrt();
                    let d = Uniform::new_inclusive(-b, b);
                    (0..len).map(|_| d.sample(&mut rng)).collect()
                }
                _ => vec![0.0; len],
            }
        };
        p.insert(
            name,
            ArrayD::from_shape_vec(IxDyn(&shape), data).expect("shape"),
        );
    }
    p
}

/// Loads a weight file and checks it against [`expected`]: one error lists every missing,
/// unexpected or mis-shaped tensor; non-finite values are an error naming the tensor.
///
/// Pruning masks stored beside the weights (`{weight}.mask`, written by `bbed prune` for kernel /
/// weight pruning, see [`crate::train::physical`]) are dropped: the weights are already zero
/// where the mask is, and inference does not need the mask.
pub fn load(cn: &CompressedNetwork, path: &Path) -> Result<Params> {
    let mut store = WeightStore::load(path)?;
    store.tensors.retain(|k, _| !k.ends_with(".mask"));
    store.check(&expected(cn), path)?;
    store.check_finite()?;
    Ok(store.tensors)
}

/// Saves a parameter set (atomically) with the model and variant as metadata.
pub fn save(cn: &CompressedNetwork, params: &Params, path: &Path) -> Result<()> {
    let mut store = WeightStore::new();
    for (k, v) in params {
        store.insert(k.clone(), v.clone());
    }
    store.set_meta_json("model", &cn.network.name)?;
    store.set_meta_json("variant", &cn.spec)?;
    store.save(path)
}

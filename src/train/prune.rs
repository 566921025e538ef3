//! Magnitude pruning masks for convolution and linear weights, independent of any network
//! description: the caller names the weight tensors to prune.
//!
//! Weights are `(out, in, kh, kw)` (convolutions) or `(out, in)` (linear layers, treated as
//! `kh = kw = 1`). A scheme groups a weight tensor into *units* and scores each unit:
//! - `Weight`: each element, by `|w|` (unstructured; the mask is kept, nothing is removed);
//! - `Kernel`: each `kh x kw` kernel `(o, i)`, by its l2 norm (unit index `o * in + i`);
//! - `Filter`: each output filter `o` (all `in x kh x kw` weights), by l2 norm;
//! - `Channel`: each input channel `i` (all `out x kh x kw` weights reading it), by l2 norm.
//!
//! In every layer the `units_to_prune(n, rate)` lowest-scoring units are zeroed: `rate * n`
//! rounded to nearest (halves away from zero), but never all `n`, so no layer is cut off.
//! Ties are broken by unit index (lower index pruned first), so masks are deterministic. Scores are
//! accumulated in f64.
//!
//! [`PruneResult::pruned`] lists the pruned unit indices per layer, ascending: filter and channel
//! indices are what physical removal needs (dropping input channel `i` of a layer also drops
//! filter `i` of the layer producing it, and through a residual connection every layer sharing
//! that tensor; that coupling belongs to the network description and comes with it).

use crate::train::optim::Params;
use crate::{Error, Result};
use ndarray::{ArrayD, Axis, IxDyn};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneScheme {
    Weight,
    Kernel,
    Filter,
    Channel,
}

impl std::str::FromStr for PruneScheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "weight" => Ok(PruneScheme::Weight),
            "kernel" => Ok(PruneScheme::Kernel),
            "filter" => Ok(PruneScheme::Filter),
            "channel" => Ok(PruneScheme::Channel),
            _ => Err(Error::input(
                "scheme",
                format!("{s:?} is not one of weight, kernel, filter, channel"),
            )),
        }
    }
}

/// What to prune and how much.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PruneSpec {
    pub scheme: PruneScheme,
    /// Fraction of units pruned in every layer without an override, in (0, 1).
    pub rate: f64,
    /// Per-layer rates by weight name, each in (0, 1).
    #[serde(default)]
    pub overrides: BTreeMap<String, f64>,
    /// Names of the weight tensors to prune (others are left alone and get no mask).
    pub layers: Vec<String>,
}

impl PruneSpec {
    /// Read a spec from a TOML file (the per-layer rates the cost model and pruning share), e.g.
    /// `scheme = "channel"`, `rate = 0.5`, `layers = [...]`, `[overrides]` `"layer1.0.conv1.weight"
    /// = 0.3`. Rates are validated here so a bad file fails before any work.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<PruneSpec> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let spec: PruneSpec = toml::from_str(&text)
            .map_err(|e| Error::input(path.display().to_string(), e.to_string()))?;
        spec.validate()
            .map_err(|e| Error::input(path.display().to_string(), e.to_string()))?;
        Ok(spec)
    }

    /// Write the spec as TOML, atomically.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        let text = toml::to_string(self)
            .map_err(|e| Error::internal(path.display().to_string(), e.to_string()))?;
        crate::io::atomic::write_bytes_atomic(path, text.as_bytes())
    }

    /// Rates in (0, 1), overrides naming listed layers, at least one layer.
    pub fn validate(&self) -> Result<()> {
        check_rate("rate", self.rate)?;
        for (name, &r) in &self.overrides {
            check_rate(&format!("overrides.{name}"), r)?;
            if !self.layers.contains(name) {
                return Err(Error::input(
                    format!("overrides.{name}"),
                    "names no layer being pruned",
                ));
            }
        }
        if self.layers.is_empty() {
            return Err(Error::input("layers", "no layers to prune"));
        }
        Ok(())
    }
}

/// Masks (0/1, shaped like each pruned weight) and the pruned unit indices per layer.
#[derive(Clone, Debug, PartialEq)]
pub struct PruneResult {
    pub masks: Params,
    pub pruned: BTreeMap<String, Vec<usize>>,
}

fn check_rate(field: &str, rate: f64) -> Result<()> {
    if rate > 0.0 && rate < 1.0 {
        Ok(())
    } else {
        Err(Error::input(
            field,
            format!("pruning rate {rate} is not in the open interval (0, 1)"),
        ))
    }
}

/// Number of the `n` units pruned at `rate` (module docs).
pub fn units_to_prune(n: usize, rate: f64) -> usize {
    ((rate * n as f64).round() as usize).min(n.saturating_sub(1))
}

/// The weight viewed as `(out, in, kh, kw)`.
fn as_4d(name: &str, w: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    match w.ndim() {
        4 => Ok(w.clone()),
        2 => Ok(w.clone().insert_axis(Axis(2)).insert_axis(Axis(3))),
        d => Err(Error::input(
            format!("layer {name:?}"),
            format!(
                "a {d}-d tensor {:?} is not a convolution (out, in, kh, kw) or linear (out, in) \
                 weight",
                w.shape()
            ),
        )),
    }
}

/// Unit index of element `(o, i, y, x)` of an `(out, in, kh, kw)` weight.
fn unit_of(scheme: PruneScheme, dims: &[usize], o: usize, i: usize, flat: usize) -> usize {
    match scheme {
        PruneScheme::Weight => flat,
        PruneScheme::Kernel => o * dims[1] + i,
        PruneScheme::Filter => o,
        PruneScheme::Channel => i,
    }
}

fn unit_count(scheme: PruneScheme, dims: &[usize]) -> usize {
    match scheme {
        PruneScheme::Weight => dims.iter().product(),
        PruneScheme::Kernel => dims[0] * dims[1],
        PruneScheme::Filter => dims[0],
        PruneScheme::Channel => dims[1],
    }
}

/// Score of every unit of `w` (`|w|` for weights, l2 norm otherwise).
pub fn unit_scores(name: &str, w: &ArrayD<f32>, scheme: PruneScheme) -> Result<Vec<f64>> {
    let w4 = as_4d(name, w)?;
    let dims = w4.shape().to_vec();
    let mut sq = vec![0f64; unit_count(scheme, &dims)];
    let inner = dims[2] * dims[3];
    for (flat, &v) in w4.iter().enumerate() {
        let o = flat / (dims[1] * inner);
        let i = (flat / inner) % dims[1];
        sq[unit_of(scheme, &dims, o, i, flat)] += (v as f64) * (v as f64);
    }
    Ok(sq.into_iter().map(f64::sqrt).collect())
}

/// Masks for every layer of `spec` (module docs).
pub fn prune_masks(params: &Params, spec: &PruneSpec) -> Result<PruneResult> {
    spec.validate()?;
    let mut out = PruneResult {
        masks: Params::new(),
        pruned: BTreeMap::new(),
    };
    for name in &spec.layers {
        let w = params.get(name).ok_or_else(|| {
            Error::input(format!("layers.{name}"), "names no parameter of the model")
        })?;
        if out.masks.contains_key(name) {
            return Err(Error::input(format!("layers.{name}"), "listed twice"));
        }
        if w.iter().any(|v| !v.is_finite()) {
            return Err(Error::input(
                format!("layer {name:?}"),
                "holds a non-finite weight",
            ));
        }
        let rate = spec.overrides.get(name).copied().unwrap_or(spec.rate);
        let scores = unit_scores(name, w, spec.scheme)?;
        let k = units_to_prune(scores.len(), rate);
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        let mut pruned: Vec<usize> = order[..k].to_vec();
        pruned.sort_unstable();
        let mut keep = vec![true; scores.len()];
        for &u in &pruned {
            keep[u] = false;
        }
        let w4 = as_4d(name, w)?;
        let dims = w4.shape().to_vec();
        let inner = dims[2] * dims[3];
        let mask: Vec<f32> = (0..w4.len())
            .map(|flat| {
                let o = flat / (dims[1] * inner);
                let i = (flat / inner) % dims[1];
                if keep[unit_of(spec.scheme, &dims, o, i, flat)] {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mask =
            ArrayD::from_shape_vec(IxDyn(w.shape()), mask).expect("mask has one entry per weight");
        out.masks.insert(name.clone(), mask);
        out.pruned.insert(name.clone(), pruned);
    }
    Ok(out)
}

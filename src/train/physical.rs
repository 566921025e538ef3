//! Pruning a trained network's weights the way [`crate::variant`] describes the pruned network,
//! so the weights of a pruned model always load into `variant::apply(net, spec)` and its cost is
//! the cost model's.
//!
//! - Filter/channel ([`structured`]): the network shrinks physically. The prunable convs and how
//!   many filters each keeps come from [`crate::variant::prune::structured`] (a conv whose output
//!   reaches only convs through BN/ReLU/hardtanh; convs feeding a residual add are never cut, so
//!   the residual structure stays valid). Which filters go: filter scheme, the lowest l2 norms of
//!   the conv's own filters; channel scheme, the lowest l2 norms of the input channels they feed
//!   (over all consuming convs: `sqrt(sum of squared norms)`). Ties prune the lower index first.
//!   Removing filter `o` removes row `o` of the conv (and its bias), channel `o` of every BN on
//!   the path, and input channel `o` of every consuming conv.
//! - Kernel/weight ([`sparse_masks`]): shapes stay, 0/1 masks zero the lowest-norm kernels / smallest
//!   weights of every eligible layer (the cost model's eligibility and rates, see
//!   [`crate::variant::prune::sparse`]). Masks are saved beside the weights under
//!   `{weight name}.mask` (e.g. `layer1.0.conv1.weight.mask`) and stay fixed in fine-tuning.

use ndarray::{ArrayD, Axis};

use crate::engine::params::Params;
use crate::model::{Network, Op};
use crate::train::prune::{prune_masks, unit_scores, PruneScheme, PruneSpec};
use crate::variant::prune::{downstream_convs, rate_for};
use crate::variant::{self, CompressedNetwork, VariantKind, VariantSpec};
use crate::{Error, Result};

/// Suffix of mask tensors in a weight file.
pub const MASK_SUFFIX: &str = ".mask";

fn tensor<'a>(params: &'a Params, name: &str) -> Result<&'a ArrayD<f32>> {
    params
        .get(name)
        .ok_or_else(|| Error::input("weights", format!("missing tensor {name:?}")))
}

/// Indices of the `keep` highest-scoring units, ascending (lowest scores pruned, ties: lower
/// index pruned first, as [`crate::train::prune`]).
fn kept_units(scores: &[f64], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut kept: Vec<usize> = order[scores.len() - keep..].to_vec();
    kept.sort_unstable();
    kept
}

/// BN layers on the BN/ReLU/hardtanh paths from conv `i` to its consuming convs.
fn bns_after(net: &Network, i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = net.consumers(i);
    while let Some(j) = stack.pop() {
        match net.layers[j].op {
            Op::BatchNorm { .. } => {
                out.push(j);
                stack.extend(net.consumers(j));
            }
            Op::Relu | Op::Hardtanh => stack.extend(net.consumers(j)),
            _ => {}
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn select(t: &ArrayD<f32>, axis: usize, idx: &[usize]) -> ArrayD<f32> {
    t.select(Axis(axis), idx)
}

/// Filter/channel pruning of `params` (weights of the unpruned `net`, running statistics
/// included). Returns the pruned network (exactly `variant::apply(net, spec)`) and its weights.
pub fn structured(
    net: &Network,
    params: &Params,
    spec: &VariantSpec,
) -> Result<(CompressedNetwork, Params)> {
    if !matches!(spec.kind, VariantKind::Filter | VariantKind::Channel) {
        return Err(Error::input(
            "scheme",
            format!(
                "physical pruning is filter or channel, not {}",
                spec.kind.name()
            ),
        ));
    }
    let small = variant::apply(net, spec)?;
    let mut out = params.clone();
    for i in 0..net.layers.len() {
        let Op::Conv { out_c, .. } = net.layers[i].op else {
            continue;
        };
        let Some(down) = downstream_convs(net, i) else {
            continue;
        };
        let Op::Conv { out_c: keep, .. } = small.network.layers[i].op else {
            unreachable!("pruning keeps layer kinds");
        };
        if keep == out_c {
            continue;
        }
        let name = &net.layers[i].name;
        let scores = if spec.kind == VariantKind::Filter {
            unit_scores(
                name,
                tensor(params, &format!("{name}.weight"))?,
                PruneScheme::Filter,
            )?
        } else {
            let mut sq = vec![0f64; out_c];
            for &d in &down {
                let dn = &net.layers[d].name;
                let s = unit_scores(
                    dn,
                    tensor(params, &format!("{dn}.weight"))?,
                    PruneScheme::Channel,
                )?;
                for (a, b) in sq.iter_mut().zip(s) {
                    *a += b * b;
                }
            }
            sq.into_iter().map(f64::sqrt).collect()
        };
        let kept = kept_units(&scores, keep);
        for suffix in ["weight", "bias"] {
            let key = format!("{name}.{suffix}");
            if let Some(t) = out.get(&key) {
                let t = select(t, 0, &kept);
                out.insert(key, t);
            }
        }
        for b in bns_after(net, i) {
            let bn = &net.layers[b].name;
            for suffix in ["weight", "bias", "running_mean", "running_var"] {
                let key = format!("{bn}.{suffix}");
                let t = select(tensor(&out, &key)?, 0, &kept);
                out.insert(key, t);
            }
        }
        for &d in &down {
            let key = format!("{}.weight", net.layers[d].name);
            let t = select(tensor(&out, &key)?, 1, &kept);
            out.insert(key, t);
        }
    }
    crate::engine::exec::Net::new(small.clone(), out.clone())?;
    Ok((small, out))
}

/// Kernel/weight masks for the layers the cost model prunes (module docs), keyed by weight name.
pub fn sparse_masks(net: &Network, params: &Params, spec: &VariantSpec) -> Result<Params> {
    let scheme = match spec.kind {
        VariantKind::Kernel => PruneScheme::Kernel,
        VariantKind::Weight => PruneScheme::Weight,
        k => {
            return Err(Error::input(
                "scheme",
                format!("masks are for kernel or weight pruning, not {}", k.name()),
            ))
        }
    };
    let cn = variant::apply(net, spec)?;
    let mut layers = Vec::new();
    let mut overrides = std::collections::BTreeMap::new();
    for (l, c) in net.layers.iter().zip(&cn.layers) {
        if let variant::Sparsity::Sparse { .. } = c.sparsity {
            let w = format!("{}.weight", l.name);
            let r = rate_for(spec, &l.name);
            if r != spec.options.rate {
                overrides.insert(w.clone(), r);
            }
            layers.push(w);
        }
    }
    let ps = PruneSpec {
        scheme,
        rate: spec.options.rate,
        overrides,
        layers,
    };
    Ok(prune_masks(params, &ps)?.masks)
}

/// Splits a loaded tensor set into weights and `{name}.mask` masks (keyed by the weight name).
pub fn split_masks(mut tensors: Params) -> (Params, Params) {
    let keys: Vec<String> = tensors
        .keys()
        .filter(|k| k.ends_with(MASK_SUFFIX))
        .cloned()
        .collect();
    let mut masks = Params::new();
    for k in keys {
        let t = tensors.remove(&k).expect("listed");
        masks.insert(k[..k.len() - MASK_SUFFIX.len()].to_string(), t);
    }
    (tensors, masks)
}

/// Checks masks against the weights they belong to: same shape, only 0/1 values.
pub fn check_masks(params: &Params, masks: &Params, file: &str) -> Result<()> {
    for (k, m) in masks {
        let w = params.get(k).ok_or_else(|| {
            Error::input(file, format!("mask {k}{MASK_SUFFIX} belongs to no weight"))
        })?;
        if w.shape() != m.shape() {
            return Err(Error::input(
                file,
                format!(
                    "mask {k}{MASK_SUFFIX} has shape {:?}, the weight {:?}",
                    m.shape(),
                    w.shape()
                ),
            ));
        }
        if m.iter().any(|&v| v != 0.0 && v != 1.0) {
            return Err(Error::input(
                file,
                format!("mask {k}{MASK_SUFFIX} holds values other than 0 and 1"),
            ));
        }
    }
    Ok(())
}

/// Saves weights plus masks (`{name}.mask`) with the model and variant as metadata.
pub fn save_with_masks(
    cn: &CompressedNetwork,
    params: &Params,
    masks: &Params,
    path: &std::path::Path,
) -> Result<()> {
    let mut store = crate::io::WeightStore::new();
    for (k, v) in params {
        store.insert(k.clone(), v.clone());
    }
    for (k, v) in masks {
        store.insert(format!("{k}{MASK_SUFFIX}"), v.clone());
    }
    store.set_meta_json("model", &cn.network.name)?;
    store.set_meta_json("variant", &cn.spec)?;
    store.save(path)
}

/// Loads weights for `cn` with any `{name}.mask` masks. Tensors `cn` needs but the file lacks are
/// taken from `fill` when given (e.g. ABC activation bases when initialising from a
/// full-precision model), else an error; shape mismatches and unexpected tensors are errors.
pub fn load_with_masks(
    cn: &CompressedNetwork,
    path: &std::path::Path,
    fill: Option<&Params>,
) -> Result<(Params, Params)> {
    let store = crate::io::WeightStore::load(path)?;
    store.check_finite()?;
    let file = path.display().to_string();
    let (mut tensors, masks) = split_masks(store.tensors);
    let expected = crate::engine::params::expected(cn);
    if let Some(fill) = fill {
        for (name, _) in &expected {
            if !tensors.contains_key(name) {
                if let Some(t) = fill.get(name) {
                    tensors.insert(name.clone(), t.clone());
                }
            }
        }
    }
    let mut s = crate::io::WeightStore::new();
    s.tensors = tensors;
    s.check(&expected, path)?;
    check_masks(&s.tensors, &masks, &file)?;
    Ok((s.tensors, masks))
}

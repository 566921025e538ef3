//! Pruning transforms: structured (filter/channel: the network gets physically smaller) and
//! sparse (kernel/weight: shape unchanged, zeros recorded as [`Sparsity::Sparse`]). Which layers
//! are eligible and how rates round is fixed in the parent module doc ([`crate::variant`]).

use super::{
    first_last, LayerCompression, LayerPrecision, SparseUnit, Sparsity, VariantKind, VariantSpec,
};
use crate::model::{Network, Op};
use crate::{Error, Result};

/// `*` matches any (possibly empty) run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|k| go(rest, &n[k..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Rate for layer `name`: the most specific (longest) matching override, else the global rate.
pub fn rate_for(spec: &VariantSpec, name: &str) -> f64 {
    spec.options
        .rates
        .iter()
        .filter(|(k, _)| glob_match(k, name))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, &r)| r)
        .unwrap_or(spec.options.rate)
}

/// Every override key must name at least one eligible layer; a typo would otherwise silently
/// leave the layer at the global rate.
fn check_overrides(spec: &VariantSpec, eligible: &[&str]) -> Result<()> {
    for key in spec.options.rates.keys() {
        if !eligible.iter().any(|n| glob_match(key, n)) {
            let shown: Vec<&str> = eligible.iter().take(6).copied().collect();
            return Err(Error::input(
                format!("rates.\"{key}\""),
                format!(
                    "matches no layer that {} pruning acts on (e.g. {}{})",
                    spec.kind.name(),
                    shown.join(", "),
                    if eligible.len() > shown.len() {
                        ", ..."
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Number of units removed at `rate` (round half away from zero).
fn removed(units: u64, rate: f64) -> u64 {
    ((units as f64) * rate).round() as u64
}

/// Convs reached from layer `i` through BN/ReLU/Hardtanh only; `None` if any path ends
/// elsewhere (add, pool, linear, network output), because then its channels are tied.
pub fn downstream_convs(net: &Network, i: usize) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let mut stack = net.consumers(i);
    if stack.is_empty() {
        return None;
    }
    while let Some(j) = stack.pop() {
        match net.layers[j].op {
            Op::Conv { .. } => out.push(j),
            Op::BatchNorm { .. } | Op::Relu | Op::Hardtanh => {
                let c = net.consumers(j);
                if c.is_empty() {
                    return None;
                }
                stack.extend(c);
            }
            _ => return None,
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Filter/channel pruning: returns the smaller network, shapes re-inferred.
pub fn structured(net: &Network, spec: &VariantSpec) -> Result<Network> {
    let prunable: Vec<(usize, Vec<usize>)> = (0..net.layers.len())
        .filter(|&i| matches!(net.layers[i].op, Op::Conv { .. }))
        .filter_map(|i| downstream_convs(net, i).map(|d| (i, d)))
        .collect();
    let key_layers: Vec<usize> = match spec.kind {
        VariantKind::Filter => prunable.iter().map(|(p, _)| *p).collect(),
        _ => prunable.iter().flat_map(|(_, d)| d.clone()).collect(),
    };
    let eligible: Vec<&str> = key_layers
        .iter()
        .map(|&i| net.layers[i].name.as_str())
        .collect();
    check_overrides(spec, &eligible)?;
    let mut out = net.clone();
    for (p, down) in &prunable {
        let key = if spec.kind == VariantKind::Filter {
            *p
        } else {
            down[0]
        };
        let rate = rate_for(spec, &net.layers[key].name);
        if let Op::Conv { out_c, .. } = &mut out.layers[*p].op {
            let gone = removed(*out_c as u64, rate) as usize;
            // A conv with no filters left would disconnect the network; keep one.
            *out_c = (*out_c - gone.min(*out_c)).max(1);
        }
    }
    // Let inference recompute every consumer's channel count.
    for l in &mut out.layers {
        match &mut l.op {
            Op::Conv { in_c, .. } => *in_c = 0,
            Op::BatchNorm { channels } => *channels = 0,
            Op::Linear { in_f, .. } => *in_f = 0,
            _ => {}
        }
    }
    out.infer()?;
    Ok(out)
}

/// Kernel/weight pruning: per-layer [`Sparsity`].
pub fn sparse(net: &Network, spec: &VariantSpec) -> Result<Vec<LayerCompression>> {
    let (first, last) = first_last(net);
    let kernel = spec.kind == VariantKind::Kernel;
    let eligible_idx: Vec<usize> = (0..net.layers.len())
        .filter(|&i| match net.layers[i].op {
            Op::Conv { .. } => true,
            Op::Linear { .. } => !kernel,
            _ => false,
        })
        .filter(|&i| !(spec.options.fp_first_last && (Some(i) == first || Some(i) == last)))
        .collect();
    let eligible: Vec<&str> = eligible_idx
        .iter()
        .map(|&i| net.layers[i].name.as_str())
        .collect();
    check_overrides(spec, &eligible)?;
    let mut layers = vec![
        LayerCompression {
            precision: LayerPrecision::Full,
            sparsity: Sparsity::Dense
        };
        net.layers.len()
    ];
    for &i in &eligible_idx {
        let total = match net.layers[i].op {
            Op::Conv {
                in_c,
                out_c,
                kernel: k,
                ..
            } => (out_c * in_c * if kernel { 1 } else { k * k }) as u64,
            Op::Linear { in_f, out_f, .. } => (in_f * out_f) as u64,
            _ => unreachable!("eligible layers are conv/linear"),
        };
        let rate = rate_for(spec, &net.layers[i].name);
        let kept = total - removed(total, rate).min(total);
        layers[i].sparsity = Sparsity::Sparse {
            unit: if kernel {
                SparseUnit::Kernel
            } else {
                SparseUnit::Weight
            },
            kept,
            total,
            index_bits: spec.options.index_bits,
        };
    }
    Ok(layers)
}

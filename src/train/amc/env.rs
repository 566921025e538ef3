//! [`PruneEnv`] for a real network: channel pruning of a full-precision [`Net`], rewarded by
//! accuracy on a validation subset.
//!
//! - Prunable layers are exactly those `--variant channel` prunes ([`crate::variant::prune`]):
//!   a conv whose output flows (through BN/ReLU only) into other convs; the rate is keyed by the
//!   first consuming conv (the name in [`LayerInfo::name`] and in the rates TOML) and is the
//!   fraction of that conv's input channels removed (`round(rate * in_c)`, at least one kept).
//! - FLOPs are the MACs of the physically pruned network ([`crate::variant::apply`] with those
//!   rates, then [`crate::model::Network::macs`]), so the agent's budget is the cost model's.
//! - Evaluation is mask-based: the channels with the smallest l2 norm over the consuming conv's
//!   weights ([`crate::train::prune`], `Channel` scheme, ties to the lower index) are zeroed in
//!   the input of every consuming conv. That computes the same function as removing the
//!   producer's filters (and their BN channels), without rebuilding the network.
//! - Batch norm runs on its running statistics (inference mode); no fine-tuning.

use super::{LayerInfo, PruneEnv};
use crate::engine::exec::{BinWeights, ConvBackend, Mode, Net};
use crate::io::Dataset;
use crate::model::{Network, Op};
use crate::train::optim::Params;
use crate::train::prune::{prune_masks, PruneScheme, PruneSpec};
use crate::variant::{self, prune::downstream_convs, VariantKind, VariantSpec};
use crate::{Error, Result};
use ndarray::{s, Array4, Axis};

struct Unit {
    info: LayerInfo,
    /// Weight whose input-channel norms rank the channels.
    key_weight: String,
    /// Weights of every conv reading the pruned channels.
    consumers: Vec<String>,
}

/// A full-precision network, its validation images and the prunable layers.
pub struct NetPruneEnv {
    net: Net,
    original: Params,
    images: Array4<f32>,
    labels: Vec<usize>,
    units: Vec<Unit>,
    bw: Vec<Option<BinWeights>>,
    /// Images per forward pass.
    pub batch_size: usize,
}

/// Prunable units of `net` in layer order (module docs).
fn units(net: &Network) -> Vec<Unit> {
    let mut out = Vec::new();
    for p in 0..net.layers.len() {
        if !matches!(net.layers[p].op, Op::Conv { .. }) {
            continue;
        }
        let Some(down) = downstream_convs(net, p) else {
            continue;
        };
        let key = down[0];
        let l = &net.layers[key];
        let Op::Conv {
            in_c,
            out_c,
            kernel,
            stride,
            ..
        } = l.op
        else {
            unreachable!("downstream_convs returns convs")
        };
        let [_, h, w] = net.input_shape(key, 0);
        out.push(Unit {
            info: LayerInfo {
                name: l.name.clone(),
                in_c,
                out_c,
                kernel,
                stride,
                in_hw: [h, w],
                flops: net.layer_macs(key) as f64,
            },
            key_weight: format!("{}.weight", l.name),
            consumers: down
                .iter()
                .map(|&d| format!("{}.weight", net.layers[d].name))
                .collect(),
        });
    }
    out
}

impl NetPruneEnv {
    /// `val`: the validation images (all are used; pass a subset for speed). The network must
    /// be full precision and unpruned (vanilla or KD).
    pub fn new(net: Net, val: &Dataset) -> Result<Self> {
        let kind = net.cn.spec.kind;
        if !matches!(kind, VariantKind::Vanilla | VariantKind::Kd) {
            return Err(Error::input(
                "variant",
                format!(
                    "the AMC search starts from a full-precision, unpruned model, not '{}'",
                    kind.name()
                ),
            ));
        }
        if val.is_empty() {
            return Err(Error::input("validation set", "holds no images"));
        }
        let shape = val.image_shape();
        if shape != net.cn.network.input {
            return Err(Error::input(
                "validation set",
                format!(
                    "images are {shape:?}, the network expects {:?}",
                    net.cn.network.input
                ),
            ));
        }
        if val.classes > net.cn.network.num_classes {
            return Err(Error::input(
                "validation set",
                format!(
                    "has {} classes, the network outputs {}",
                    val.classes, net.cn.network.num_classes
                ),
            ));
        }
        let images = val.to_unit(0..val.len())?;
        let labels = val
            .labels_of(0..val.len())?
            .iter()
            .map(|&l| l as usize)
            .collect();
        let units = units(&net.cn.network);
        let bw = net.binarize(false)?;
        Ok(NetPruneEnv {
            original: net.params.clone(),
            net,
            images,
            labels,
            units,
            bw,
            batch_size: 256,
        })
    }

    fn check(&self, rates: &[f64]) -> Result<()> {
        if rates.len() != self.units.len() {
            return Err(Error::input(
                "rates",
                format!(
                    "{} rates for {} prunable layers",
                    rates.len(),
                    self.units.len()
                ),
            ));
        }
        for (u, &r) in self.units.iter().zip(rates) {
            if !(r.is_finite() && (0.0..1.0).contains(&r)) {
                return Err(Error::input(
                    format!("rates.\"{}\"", u.info.name),
                    format!("{r} is not in [0, 1)"),
                ));
            }
        }
        Ok(())
    }

    /// The parameters with the pruned channels of every consuming conv zeroed.
    pub fn masked_params(&self, rates: &[f64]) -> Result<Params> {
        self.check(rates)?;
        let mut params = self.original.clone();
        for (u, &r) in self.units.iter().zip(rates) {
            if r <= 0.0 {
                continue;
            }
            let spec = PruneSpec {
                scheme: PruneScheme::Channel,
                rate: r,
                overrides: Default::default(),
                layers: vec![u.key_weight.clone()],
            };
            let res = prune_masks(&self.original, &spec)?;
            for c in &u.consumers {
                let w = params
                    .get_mut(c)
                    .ok_or_else(|| Error::input("parameters", format!("missing tensor {c:?}")))?;
                for &ch in &res.pruned[&u.key_weight] {
                    w.index_axis_mut(Axis(1), ch).fill(0.0);
                }
            }
        }
        Ok(params)
    }

    /// The rates as the per-layer overrides of a `channel` variant.
    pub fn variant_spec(&self, rates: &[f64]) -> Result<VariantSpec> {
        self.check(rates)?;
        let mut spec = VariantSpec::new(VariantKind::Channel);
        spec.options.rate = 0.0;
        spec.options.rates = self
            .units
            .iter()
            .zip(rates)
            .map(|(u, &r)| (u.info.name.clone(), r))
            .collect();
        Ok(spec)
    }
}

impl PruneEnv for NetPruneEnv {
    fn layers(&self) -> Vec<LayerInfo> {
        self.units.iter().map(|u| u.info.clone()).collect()
    }

    fn flops(&self, rates: &[f64]) -> Result<f64> {
        let spec = self.variant_spec(rates)?;
        Ok(variant::apply(&self.net.cn.network, &spec)?.network.macs() as f64)
    }

    fn evaluate(&mut self, rates: &[f64]) -> Result<f64> {
        self.net.params = self.masked_params(rates)?;
        let n = self.labels.len();
        let mut correct = 0usize;
        let mut start = 0;
        while start < n {
            let end = (start + self.batch_size.max(1)).min(n);
            let x = self.images.slice(s![start..end, .., .., ..]).to_owned();
            let (logits, _) =
                self.net
                    .forward(&x, Mode::Eval, ConvBackend::Float, &self.bw, false)?;
            for (row, &y) in logits.rows().into_iter().zip(&self.labels[start..end]) {
                // First maximum wins, so ties are decided the same way every time.
                let mut arg = 0;
                for (k, &v) in row.iter().enumerate() {
                    if v > row[arg] {
                        arg = k;
                    }
                }
                correct += usize::from(arg == y);
            }
            start = end;
        }
        self.net.params = self.original.clone();
        Ok(correct as f64 / n as f64)
    }
}

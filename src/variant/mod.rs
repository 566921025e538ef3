//! Compression variants as transforms of a network description.
//!
//! [`apply`] turns a [`Network`] and a [`VariantSpec`] into a [`CompressedNetwork`]: the
//! (for filter/channel pruning physically smaller) network plus, per layer, its precision
//! ([`LayerPrecision`]) and storage ([`Sparsity`]). Everything that changes cost is an explicit
//! option in [`VariantOptions`]:
//! - `fp_first_last` (default true): the first conv and the last linear layer stay full precision
//!   (binarized variants) or unpruned (weight/kernel pruning).
//! - `shortcut` (`full`|`binary`, default `binary`): precision of 1x1 projection-shortcut convs
//!   (torchvision `downsample.0`) in binarized variants.
//! - `bn` (`folded`|`counted`, default `folded`): folded BN is merged into the adjacent conv /
//!   sign threshold and costs no separate parameters; counted BN stores 2 fp32 values (affine
//!   gamma, beta; the running statistics fold into them) per channel.
//! - `scales` (default true): count the fp32 scaling factors of binary layers (XNOR: one alpha per
//!   output channel; ABC: M alphas per layer plus N betas and N shifts per layer, i.e. per-tensor
//!   bases as in the public ABC-Net implementations).
//! - `bias` (default true): count conv/linear biases.
//! - `rate` (default 0.5) and `rates` (per-layer overrides; keys are layer names, `*` matches any
//!   run of characters) for pruning; `index_bits` (default 4) per kept weight (weight pruning)
//!   or kept k x k kernel (kernel pruning) for the sparse index.
//!
//! Which layers a pruning kind touches:
//! - `filter`: removes output filters of every conv whose output only flows (through BN/ReLU)
//!   into other convs, i.e. not into a residual add; the rate is keyed by that conv's name and
//!   `round(rate * out_c)` filters go (at least one is kept). Consumers shrink accordingly.
//! - `channel`: the same physical cut, keyed by the *consuming* conv (fraction of its input
//!   channels removed).
//! - `xnor` / `abc`: every `relu` becomes `hardtanh` (as in BNN/XNOR-Net training): a binary
//!   layer takes `sign` of its input, and `sign(relu(x))` would be +1 everywhere (sign(0) = +1).
//! - `kernel` / `weight`: sparse, shape unchanged; `round(rate * units)` whole k x k kernels /
//!   single weights of every conv (and, for weight, linear) layer are zero and skipped.

pub mod prune;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Network, Op};
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantKind {
    Vanilla,
    /// Knowledge-distilled: same architecture and cost as vanilla.
    Kd,
    Filter,
    Channel,
    Kernel,
    Weight,
    Xnor,
    Abc,
}

impl VariantKind {
    pub const NAMES: &'static str = "vanilla, kd, filter, channel, kernel, weight, xnor, abc";

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "vanilla" => VariantKind::Vanilla,
            "kd" | "kd-kl" => VariantKind::Kd,
            "filter" => VariantKind::Filter,
            "channel" => VariantKind::Channel,
            "kernel" => VariantKind::Kernel,
            "weight" => VariantKind::Weight,
            "xnor" => VariantKind::Xnor,
            "abc" => VariantKind::Abc,
            _ => {
                return Err(Error::input(
                    "variant",
                    format!("unknown variant '{s}'; expected one of {}", Self::NAMES),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            VariantKind::Vanilla => "vanilla",
            VariantKind::Kd => "kd",
            VariantKind::Filter => "filter",
            VariantKind::Channel => "channel",
            VariantKind::Kernel => "kernel",
            VariantKind::Weight => "weight",
            VariantKind::Xnor => "xnor",
            VariantKind::Abc => "abc",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortcutPrecision {
    Full,
    Binary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BnMode {
    Folded,
    Counted,
}

/// Options of a variant; see the module doc for their meaning and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VariantOptions {
    /// ABC weight bases M (XNOR: 1).
    pub m: usize,
    /// ABC activation bases N (XNOR: 1).
    pub n: usize,
    pub rate: f64,
    pub rates: BTreeMap<String, f64>,
    pub fp_first_last: bool,
    pub shortcut: ShortcutPrecision,
    pub bn: BnMode,
    pub scales: bool,
    pub bias: bool,
    pub index_bits: u32,
}

impl Default for VariantOptions {
    fn default() -> Self {
        VariantOptions {
            m: 1,
            n: 1,
            rate: 0.5,
            rates: BTreeMap::new(),
            fp_first_last: true,
            shortcut: ShortcutPrecision::Binary,
            bn: BnMode::Folded,
            scales: true,
            bias: true,
            index_bits: 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantSpec {
    pub kind: VariantKind,
    #[serde(default)]
    pub options: VariantOptions,
}

/// The name other stages use for a variant description.
pub type Variant = VariantSpec;

impl VariantSpec {
    pub fn new(kind: VariantKind) -> Self {
        VariantSpec {
            kind,
            options: VariantOptions::default(),
        }
    }

    /// Short label such as `xnor`, `abc(3x3)`, `filter@0.5`.
    pub fn label(&self) -> String {
        let o = &self.options;
        match self.kind {
            VariantKind::Abc => format!("abc({}x{})", o.m, o.n),
            VariantKind::Filter
            | VariantKind::Channel
            | VariantKind::Kernel
            | VariantKind::Weight => {
                if o.rates.is_empty() {
                    format!("{}@{}", self.kind.name(), o.rate)
                } else {
                    format!("{}@per-layer", self.kind.name())
                }
            }
            k => k.name().to_string(),
        }
    }

    /// Checks option ranges; errors name the option.
    pub fn validate(&self) -> Result<()> {
        let o = &self.options;
        check_rate(
            self.kind,
            "rate",
            o.rate,
            RateScope::Global {
                overrides: !o.rates.is_empty(),
            },
        )?;
        for (k, &r) in &o.rates {
            check_rate(self.kind, &format!("rates.\"{k}\""), r, RateScope::Layer)?;
        }
        if self.kind == VariantKind::Abc {
            for (field, v) in [("m", o.m), ("n", o.n)] {
                if !(1..=32).contains(&v) {
                    return Err(Error::input(
                        field,
                        format!("ABC bases must be in 1..=32, got {v}"),
                    ));
                }
            }
        }
        if o.index_bits > 64 {
            return Err(Error::input(
                "index_bits",
                format!("must be <= 64, got {}", o.index_bits),
            ));
        }
        Ok(())
    }
}

/// Which pruning rate [`check_rate`] looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateScope {
    /// The global rate (`--rate`); `overrides` says per-layer rates are given too.
    Global { overrides: bool },
    /// A per-layer override (`--rates` entry).
    Layer,
}

/// The one rule for a pruning rate, used by every command (through [`VariantSpec::validate`]):
/// - below 1 always: 1 would remove every unit (the cost model used to keep one per layer
///   silently while `prune` refused);
/// - for a pruning variant, above 0, with two exceptions for the physical cuts (filter,
///   channel), where 0 means "leave uncut": a per-layer override (the pruning agent writes 0
///   for a layer it keeps whole), and the global rate when per-layer overrides are given (the
///   agent's rates file lists every layer it cuts; the rest stay whole);
/// - for other variants the rate is unused and only has to lie in [0, 1).
pub fn check_rate(kind: VariantKind, field: &str, r: f64, scope: RateScope) -> Result<()> {
    let physical = matches!(kind, VariantKind::Filter | VariantKind::Channel);
    let prunes = physical || matches!(kind, VariantKind::Kernel | VariantKind::Weight);
    let zero_ok = !prunes
        || (physical
            && matches!(
                scope,
                RateScope::Layer | RateScope::Global { overrides: true }
            ));
    let (ok, range) = if zero_ok {
        ((0.0..1.0).contains(&r), "[0, 1)")
    } else {
        (r > 0.0 && r < 1.0, "the open interval (0, 1)")
    };
    if !ok {
        return Err(Error::input(
            field,
            format!(
                "pruning rate {r} is not in {range}{}",
                if prunes {
                    format!(" for {} pruning", kind.name())
                } else {
                    String::new()
                }
            ),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerPrecision {
    Full,
    Binary {
        m_weight_bases: usize,
        n_act_bases: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SparseUnit {
    /// Single weights.
    Weight,
    /// Whole k x k kernels (one (out, in) pair of a conv).
    Kernel,
}

/// Storage of a layer's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sparsity {
    Dense,
    /// `kept` of `total` units are non-zero; each kept unit carries an index of `index_bits`.
    Sparse {
        unit: SparseUnit,
        kept: u64,
        total: u64,
        index_bits: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCompression {
    pub precision: LayerPrecision,
    pub sparsity: Sparsity,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompressedNetwork {
    pub network: Network,
    pub spec: VariantSpec,
    /// One entry per layer of `network`, same order.
    pub layers: Vec<LayerCompression>,
}

/// Index of the first conv and of the last weighted layer (kept full precision by default).
pub fn first_last(net: &Network) -> (Option<usize>, Option<usize>) {
    let first = net
        .layers
        .iter()
        .position(|l| matches!(l.op, Op::Conv { .. }));
    let last = net.layers.iter().rposition(|l| l.op.is_weighted());
    (first, last)
}

/// True for a 1x1 conv on a residual shortcut: its input is a branching point (also consumed
/// elsewhere) and its output reaches an add through batch-norm only.
pub fn is_projection_shortcut(net: &Network, i: usize) -> bool {
    let Op::Conv { kernel: 1, .. } = net.layers[i].op else {
        return false;
    };
    let branches = match net.layers[i].inputs.first() {
        Some(&p) => net.consumers(p).len() > 1,
        None => false,
    };
    let mut j = i;
    loop {
        let c = net.consumers(j);
        match c.as_slice() {
            [k] if matches!(net.layers[*k].op, Op::BatchNorm { .. }) => j = *k,
            [k] if matches!(net.layers[*k].op, Op::Add) => return branches,
            _ => return false,
        }
    }
}

/// Applies a variant. Errors: bad option ranges, rate overrides that match no prunable layer.
pub fn apply(net: &Network, spec: &VariantSpec) -> Result<CompressedNetwork> {
    spec.validate()?;
    let dense = LayerCompression {
        precision: LayerPrecision::Full,
        sparsity: Sparsity::Dense,
    };
    let o = &spec.options;
    match spec.kind {
        VariantKind::Vanilla | VariantKind::Kd => Ok(CompressedNetwork {
            network: net.clone(),
            spec: spec.clone(),
            layers: vec![dense; net.layers.len()],
        }),
        VariantKind::Xnor | VariantKind::Abc => {
            let (m, n) = if spec.kind == VariantKind::Xnor {
                (1, 1)
            } else {
                (o.m, o.n)
            };
            let mut spec = spec.clone();
            spec.options.m = m;
            spec.options.n = n;
            let (first, last) = first_last(net);
            let layers = (0..net.layers.len())
                .map(|i| {
                    let keep_fp = !net.layers[i].op.is_weighted()
                        || (o.fp_first_last && (Some(i) == first || Some(i) == last))
                        || (o.shortcut == ShortcutPrecision::Full
                            && is_projection_shortcut(net, i));
                    if keep_fp {
                        dense
                    } else {
                        LayerCompression {
                            precision: LayerPrecision::Binary {
                                m_weight_bases: m,
                                n_act_bases: n,
                            },
                            sparsity: Sparsity::Dense,
                        }
                    }
                })
                .collect();
            let mut network = net.clone();
            for l in &mut network.layers {
                if l.op == Op::Relu {
                    l.op = Op::Hardtanh;
                }
            }
            Ok(CompressedNetwork {
                network,
                spec,
                layers,
            })
        }
        VariantKind::Filter | VariantKind::Channel => {
            let network = prune::structured(net, spec)?;
            let len = network.layers.len();
            Ok(CompressedNetwork {
                network,
                spec: spec.clone(),
                layers: vec![dense; len],
            })
        }
        VariantKind::Kernel | VariantKind::Weight => {
            let layers = prune::sparse(net, spec)?;
            Ok(CompressedNetwork {
                network: net.clone(),
                spec: spec.clone(),
                layers,
            })
        }
    }
}

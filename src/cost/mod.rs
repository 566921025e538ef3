//! Cost model: per layer and in total, full-precision MACs, binary operations, parameters,
//! memory demand and NCC of a [`CompressedNetwork`].
//!
//! Units and accounting (options from [`crate::variant::VariantOptions`]):
//! - `binary_macs`: XNOR-popcount MACs of a binary layer (its dense MAC count);
//!   `binary_ops = binary_macs * M * N`.
//! - `fp_params`: fp32 values stored (weights, and per the options biases, counted BN affine
//!   pairs, binary scale factors); `binary_params`: binarized weights (each stored once per base).
//! - Memory in bytes: 4 per fp32 value; `M * ceil(binary_params / 8)` per binary layer (1 bit
//!   per weight per base, each base padded to whole bytes); `ceil(kept * index_bits / 8)` per
//!   sparse layer. Reported MB = 10^6 bytes.
//! - Sparse (kernel/weight-pruned) layers skip zeros: `fp_macs = dense * kept / total`.
//! - NCC as in [`ncc`]; reported in 10^6.

pub mod ncc;
pub mod table1;

use serde::{Deserialize, Serialize};

pub use ncc::NccParams;

use crate::model::Op;
use crate::variant::{BnMode, CompressedNetwork, LayerPrecision, Sparsity, VariantKind};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerCost {
    pub name: String,
    pub op: String,
    /// `fp32`, `binary MxN` or `sparse k/n`.
    pub precision: String,
    pub fp_macs: u64,
    pub binary_macs: u64,
    pub binary_ops: u64,
    pub fp_params: u64,
    pub binary_params: u64,
    pub memory_bytes: u64,
    /// In operations (not 10^6).
    pub ncc: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostTotals {
    pub fp_macs: u64,
    pub binary_macs: u64,
    pub binary_ops: u64,
    pub fp_params: u64,
    pub binary_params: u64,
    pub memory_bytes: u64,
    /// 10^6 bytes.
    pub memory_mb: f64,
    /// 10^6 operations.
    pub ncc: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub model: String,
    pub variant: String,
    pub ncc_params: NccParams,
    pub layers: Vec<LayerCost>,
    pub total: CostTotals,
}

/// Cost of every layer of `c` and the totals.
pub fn cost(c: &CompressedNetwork, ncc: &NccParams) -> CostReport {
    let net = &c.network;
    let o = &c.spec.options;
    let mut layers = Vec::with_capacity(net.layers.len());
    for (i, (l, comp)) in net.layers.iter().zip(&c.layers).enumerate() {
        let dense_macs = net.layer_macs(i);
        let (weights, bias, out_ch) = match l.op {
            Op::Conv {
                in_c,
                out_c,
                kernel,
                bias,
                ..
            } => (
                (out_c * in_c * kernel * kernel) as u64,
                if bias { out_c as u64 } else { 0 },
                out_c as u64,
            ),
            Op::Linear { in_f, out_f, bias } => (
                (in_f * out_f) as u64,
                if bias { out_f as u64 } else { 0 },
                out_f as u64,
            ),
            _ => (0, 0, 0),
        };
        let bias = if o.bias { bias } else { 0 };
        let mut lc = LayerCost {
            name: l.name.clone(),
            op: l.op.kind().to_string(),
            precision: "fp32".into(),
            fp_macs: 0,
            binary_macs: 0,
            binary_ops: 0,
            fp_params: 0,
            binary_params: 0,
            memory_bytes: 0,
            ncc: 0.0,
        };
        let mut extra_bytes = 0u64;
        match (comp.precision, comp.sparsity) {
            (
                LayerPrecision::Binary {
                    m_weight_bases: m,
                    n_act_bases: n,
                },
                _,
            ) => {
                let (m, n) = (m as u64, n as u64);
                lc.precision = format!("binary {m}x{n}");
                lc.binary_macs = dense_macs;
                lc.binary_ops = dense_macs * m * n;
                lc.binary_params = weights;
                let scales = if !o.scales {
                    0
                } else if c.spec.kind == VariantKind::Abc {
                    m + 2 * n
                } else {
                    out_ch * m
                };
                lc.fp_params = bias + scales;
                extra_bytes = m * weights.div_ceil(8);
            }
            (
                LayerPrecision::Full,
                Sparsity::Sparse {
                    kept,
                    total,
                    index_bits,
                    ..
                },
            ) => {
                lc.precision = format!("sparse {kept}/{total}");
                lc.fp_macs = (dense_macs as u128 * kept as u128 / total.max(1) as u128) as u64;
                let kept_weights = (weights as u128 * kept as u128 / total.max(1) as u128) as u64;
                lc.fp_params = kept_weights + bias;
                extra_bytes = (kept * index_bits as u64).div_ceil(8);
            }
            (LayerPrecision::Full, Sparsity::Dense) => {
                lc.fp_macs = dense_macs;
                lc.fp_params = weights + bias;
            }
        }
        if let Op::BatchNorm { channels } = l.op {
            if o.bn == BnMode::Counted {
                lc.fp_params = 2 * channels as u64;
            }
        }
        lc.memory_bytes = 4 * lc.fp_params + extra_bytes;
        lc.ncc = ncc.ncc(lc.fp_macs, lc.binary_ops);
        layers.push(lc);
    }
    let sum = |f: fn(&LayerCost) -> u64| layers.iter().map(f).sum::<u64>();
    let total_fp = sum(|l| l.fp_macs);
    let total_bin_ops = sum(|l| l.binary_ops);
    let memory_bytes = sum(|l| l.memory_bytes);
    let total = CostTotals {
        fp_macs: total_fp,
        binary_macs: sum(|l| l.binary_macs),
        binary_ops: total_bin_ops,
        fp_params: sum(|l| l.fp_params),
        binary_params: sum(|l| l.binary_params),
        memory_bytes,
        memory_mb: memory_bytes as f64 / 1e6,
        ncc: ncc.ncc(total_fp, total_bin_ops) / 1e6,
    };
    CostReport {
        model: net.name.clone(),
        variant: c.spec.label(),
        ncc_params: *ncc,
        layers,
        total,
    }
}

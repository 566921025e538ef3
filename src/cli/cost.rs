//! `bbed cost`: cost of one network variant, in total or per layer.

// clap renders this module's `///` comments as `--help` text, where brackets are literal
// (`[0,1]`, `[required]`), so rustdoc's link check does not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::Args;

use super::args::{ModelArgs, VariantArgs};
use super::format::{render, Format, Tabular};
use crate::cost::{cost, CostReport, NccParams};
use crate::variant::apply;
use crate::Result;

const AFTER: &str = "\
Units: MACs and binary ops are counts; binary ops = XNOR-popcount MACs x M x N; params are
counts of stored values (fp32) or binarized weights; memory in MB = 10^6 bytes (fp32 4 B,
1 bit per binary weight per base rounded up to bytes per layer and base, sparse index bits);
NCC in 10^6 = fp MACs + binary ops / xnor_lanes (48 in hw/reference.toml). Any hardware file
(the one schema `simulate` reads) works with --hw; its [ncc] table is the paper's reference unit.

Examples:
  bbed cost --model resnet20 --variant xnor
  bbed cost --model resnet20 --variant abc --m 3 --n 3 --per-layer --format csv
  bbed cost --model resnet56 --variant channel --rate 0.5 --rates configs/rates_example.toml
  bbed cost --model configs/custom_net.toml --variant weight --rate 0.7";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct CostArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub variant: VariantArgs,
    /// Hardware: a built-in name (reference, paper, zcu102, zu3eg, zynq7020) or a TOML file of
    /// the one hardware schema (its [ncc] table; an old [ncc]-only file also works); default:
    /// embedded hw/reference.toml
    #[arg(long)]
    pub hw: Option<PathBuf>,
    /// Print every layer, not only the totals
    #[arg(long)]
    pub per_layer: bool,
    /// Output format (json carries full-precision numbers)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn table(report: &CostReport, per_layer: bool) -> Tabular {
    let mut t = Tabular::new(&[
        "layer",
        "op",
        "precision",
        "fp_macs",
        "binary_macs",
        "binary_ops",
        "fp_params",
        "binary_params",
        "memory_mb",
        "ncc_1e6",
    ]);
    if per_layer {
        for l in &report.layers {
            t.push(vec![
                l.name.clone(),
                l.op.clone(),
                l.precision.clone(),
                l.fp_macs.to_string(),
                l.binary_macs.to_string(),
                l.binary_ops.to_string(),
                l.fp_params.to_string(),
                l.binary_params.to_string(),
                format!("{:.6}", l.memory_bytes as f64 / 1e6),
                format!("{:.6}", l.ncc / 1e6),
            ]);
        }
    }
    let s = &report.total;
    t.push(vec![
        "TOTAL".into(),
        report.model.clone(),
        report.variant.clone(),
        s.fp_macs.to_string(),
        s.binary_macs.to_string(),
        s.binary_ops.to_string(),
        s.fp_params.to_string(),
        s.binary_params.to_string(),
        format!("{:.6}", s.memory_mb),
        format!("{:.4}", s.ncc),
    ]);
    t
}

pub fn run(a: CostArgs) -> Result<String> {
    let (model, spec) = a.model.load_spec(&a.variant)?;
    let net = model.network;
    let ncc = NccParams::resolve(a.hw.as_deref())?;
    let compressed = apply(&net, &spec)?;
    let mut report = cost(&compressed, &ncc);
    let t = table(&report, a.per_layer);
    if !a.per_layer {
        report.layers.clear();
    }
    Ok(render(a.format, &t, &report))
}

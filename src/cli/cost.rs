//! `bbed cost`: cost of one network variant, in total or per layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use super::format::{render, Format, Tabular};
use crate::cost::{cost, CostReport, NccParams};
use crate::model::{builtin, custom, resnet::BUILTIN_NAMES, Network};
use crate::variant::{apply, BnMode, ShortcutPrecision, VariantKind, VariantSpec};
use crate::{Error, Result};

const AFTER: &str = "\
Units: MACs and binary ops are counts; binary ops = XNOR-popcount MACs x M x N; params are
counts of stored values (fp32) or binarized weights; memory in MB = 10^6 bytes (fp32 4 B,
1 bit per binary weight per base rounded up to bytes per layer and base, sparse index bits);
NCC in 10^6 = fp MACs + binary ops / xnor_lanes (48 in hw/reference.toml).

Examples:
  bbed cost --model resnet20 --variant xnor
  bbed cost --model resnet20 --variant abc --m 3 --n 3 --per-layer --format csv
  bbed cost --model resnet56 --variant channel --rate 0.5 --rates configs/rates_example.toml
  bbed cost --model configs/custom_net.toml --variant weight --rate 0.7";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct CostArgs {
    /// Built-in model name or path to a network TOML (see README)
    #[arg(long, help = format!("Built-in model ({BUILTIN_NAMES}) or path to a network TOML"))]
    pub model: String,
    /// Override the input size of a built-in model as C,H,W (e.g. 1,28,28)
    #[arg(long, value_parser = parse_shape)]
    pub input: Option<[usize; 3]>,
    /// Override the number of classes of a built-in model
    #[arg(long)]
    pub classes: Option<usize>,
    /// Variant: vanilla, kd, filter, channel, kernel, weight, xnor, abc
    #[arg(long, default_value = "vanilla")]
    pub variant: String,
    /// ABC weight bases M (default 1)
    #[arg(long)]
    pub m: Option<usize>,
    /// ABC activation bases N (default 1)
    #[arg(long)]
    pub n: Option<usize>,
    /// Pruning rate in [0,1]: fraction of filters/channels/kernels/weights removed (default 0.5)
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// TOML file of per-layer rate overrides: `"layer1.*.conv2" = 0.7` (`*` is a wildcard)
    #[arg(long)]
    pub rates: Option<PathBuf>,
    /// Keep the first conv and last linear layer full precision / unpruned (default true)
    #[arg(long)]
    pub fp_first_last: Option<bool>,
    /// Precision of 1x1 projection-shortcut convs in binary variants (default binary)
    #[arg(long, value_parser = ["full", "binary"])]
    pub shortcut: Option<String>,
    /// Batch-norm: folded (no parameters) or counted (2 fp32 per channel) (default folded)
    #[arg(long, value_parser = ["folded", "counted"])]
    pub bn: Option<String>,
    /// Count fp32 scale factors of binary layers (default true)
    #[arg(long)]
    pub scales: Option<bool>,
    /// Count conv/linear biases (default true)
    #[arg(long)]
    pub bias: Option<bool>,
    /// Sparse index bits per kept weight (weight) or kernel (kernel pruning) (default 4)
    #[arg(long)]
    pub index_bits: Option<u32>,
    /// Hardware TOML with an [ncc] table (default: embedded hw/reference.toml)
    #[arg(long)]
    pub hw: Option<PathBuf>,
    /// Print every layer, not only the totals
    #[arg(long)]
    pub per_layer: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn parse_shape(s: &str) -> std::result::Result<[usize; 3], String> {
    let v: Vec<usize> = s
        .split([',', 'x'])
        .map(|p| p.trim().parse::<usize>().map_err(|_| format!("'{s}' is not C,H,W (three positive integers)")))
        .collect::<std::result::Result<_, _>>()?;
    match v.as_slice() {
        [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok([*c, *h, *w]),
        _ => Err(format!("'{s}' is not C,H,W (three positive integers)")),
    }
}

/// A built-in name, or a network TOML when the argument names a file.
pub fn load_model(model: &str, input: Option<[usize; 3]>, classes: Option<usize>) -> Result<Network> {
    let path = Path::new(model);
    if model.ends_with(".toml") || path.is_file() {
        if input.is_some() || classes.is_some() {
            return Err(Error::input("--input/--classes", "only apply to built-in models; a network TOML sets its own"));
        }
        return custom::load(path);
    }
    builtin(model, input, classes)
}

/// Replaces an input error's context with the CLI flag the user typed.
fn recontext(e: Error, flag: &str) -> Error {
    match e {
        Error::Input { message, .. } => Error::input(flag, message),
        other => other,
    }
}

fn load_rates(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| {
        Error::input(path.display().to_string(), format!("malformed rates TOML (expected `\"layer pattern\" = rate` lines): {e}"))
    })
}

/// Builds the variant spec from the flags (unset flags keep [`VariantOptions`] defaults).
///
/// [`VariantOptions`]: crate::variant::VariantOptions
pub fn spec_from_args(a: &CostArgs) -> Result<VariantSpec> {
    let mut spec = VariantSpec::new(VariantKind::parse(&a.variant).map_err(|e| recontext(e, "--variant"))?);
    let o = &mut spec.options;
    if let Some(m) = a.m {
        o.m = m;
    }
    if let Some(n) = a.n {
        o.n = n;
    }
    if let Some(r) = a.rate {
        o.rate = r;
    }
    if let Some(p) = &a.rates {
        o.rates = load_rates(p)?;
    }
    if let Some(b) = a.fp_first_last {
        o.fp_first_last = b;
    }
    if let Some(s) = &a.shortcut {
        o.shortcut = if s == "full" { ShortcutPrecision::Full } else { ShortcutPrecision::Binary };
    }
    if let Some(s) = &a.bn {
        o.bn = if s == "counted" { BnMode::Counted } else { BnMode::Folded };
    }
    if let Some(b) = a.scales {
        o.scales = b;
    }
    if let Some(b) = a.bias {
        o.bias = b;
    }
    if let Some(b) = a.index_bits {
        o.index_bits = b;
    }
    spec.validate().map_err(|e| match &e {
        Error::Input { context, .. } => {
            let flag = format!("--{}", context.replace('_', "-"));
            recontext(e, &flag)
        }
        _ => e,
    })?;
    Ok(spec)
}

fn table(report: &CostReport, per_layer: bool) -> Tabular {
    let mut t = Tabular::new(&[
        "layer", "op", "precision", "fp_macs", "binary_macs", "binary_ops", "fp_params", "binary_params", "memory_mb", "ncc_1e6",
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
    let spec = spec_from_args(&a)?;
    let net = load_model(&a.model, a.input, a.classes)?;
    let ncc = match &a.hw {
        Some(p) => NccParams::load(p)?,
        None => NccParams::reference(),
    };
    let compressed = apply(&net, &spec)?;
    let mut report = cost(&compressed, &ncc);
    let t = table(&report, a.per_layer);
    if !a.per_layer {
        report.layers.clear();
    }
    Ok(render(a.format, &t, &report))
}

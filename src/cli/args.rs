//! Flag groups shared by subcommands that take a network and a variant (`cost` now; `infer`,
//! `simulate`, `attack` later): `#[command(flatten)]` a [`ModelArgs`] / [`VariantArgs`] and call
//! [`ModelArgs::load`] / [`VariantArgs::spec`]. Unset variant flags keep the defaults of
//! [`crate::variant::VariantOptions`], so defaults live in one place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::model::{resnet::BUILTIN_NAMES, Network};
use crate::variant::{BnMode, ShortcutPrecision, VariantKind, VariantSpec};
use crate::{Error, Result};

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    #[arg(long, help = format!("Built-in model ({BUILTIN_NAMES}) or path to a network TOML"))]
    pub model: String,
    /// Override the input size of a built-in model as C,H,W (e.g. 1,28,28)
    #[arg(long, value_parser = parse_shape)]
    pub input: Option<[usize; 3]>,
    /// Override the number of classes of a built-in model
    #[arg(long)]
    pub classes: Option<usize>,
}

impl ModelArgs {
    /// A built-in name, or a network TOML when the argument names a file.
    pub fn load(&self) -> Result<Network> {
        crate::model::resolve(&self.model, self.input, self.classes)
    }
}

fn parse_shape(s: &str) -> std::result::Result<[usize; 3], String> {
    let msg = || format!("'{s}' is not C,H,W (three positive integers)");
    let v: Vec<usize> = s
        .split([',', 'x'])
        .map(|p| p.trim().parse::<usize>().map_err(|_| msg()))
        .collect::<std::result::Result<_, _>>()?;
    match v.as_slice() {
        [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok([*c, *h, *w]),
        _ => Err(msg()),
    }
}

#[derive(Debug, Clone, Args)]
pub struct VariantArgs {
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
        Error::input(
            path.display().to_string(),
            format!("malformed rates TOML (expected `\"layer pattern\" = rate` lines): {e}"),
        )
    })
}

impl VariantArgs {
    /// The variant spec these flags describe; errors name the flag.
    pub fn spec(&self) -> Result<VariantSpec> {
        let mut spec = VariantSpec::new(
            VariantKind::parse(&self.variant).map_err(|e| recontext(e, "--variant"))?,
        );
        let o = &mut spec.options;
        if let Some(m) = self.m {
            o.m = m;
        }
        if let Some(n) = self.n {
            o.n = n;
        }
        if let Some(r) = self.rate {
            o.rate = r;
        }
        if let Some(p) = &self.rates {
            o.rates = load_rates(p)?;
        }
        if let Some(b) = self.fp_first_last {
            o.fp_first_last = b;
        }
        if let Some(s) = &self.shortcut {
            o.shortcut = if s == "full" {
                ShortcutPrecision::Full
            } else {
                ShortcutPrecision::Binary
            };
        }
        if let Some(s) = &self.bn {
            o.bn = if s == "counted" {
                BnMode::Counted
            } else {
                BnMode::Folded
            };
        }
        if let Some(b) = self.scales {
            o.scales = b;
        }
        if let Some(b) = self.bias {
            o.bias = b;
        }
        if let Some(b) = self.index_bits {
            o.index_bits = b;
        }
        spec.validate().map_err(|e| match &e {
            // Option errors come back named by field ("rate", "rates.\"x\""): show the flag.
            Error::Input { context, .. } if !context.starts_with("rates.") => {
                let flag = format!("--{}", context.replace('_', "-"));
                recontext(e, &flag)
            }
            _ => e,
        })?;
        Ok(spec)
    }
}

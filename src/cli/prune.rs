//! `bbed prune`: prune a trained model's weights at a rate (global, per-layer overrides).
//! Filter/channel write a physically smaller model that loads with `--variant filter|channel
//! --rate R`; kernel/weight write the masked weights plus `{weight}.mask` tensors that
//! `bbed train --init P --variant kernel|weight` keeps fixed while fine-tuning. See
//! [`crate::train::physical`].

use std::path::PathBuf;

use clap::Args;

use super::args::{ModelArgs, VariantArgs};
use crate::engine::params;
use crate::train::physical::{save_with_masks, sparse_masks, structured};
use crate::variant::{self, VariantKind, VariantSpec};
use crate::{Error, Result};

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Trained weights of the unpruned (vanilla) model
    #[arg(long)]
    pub weights: PathBuf,
    /// filter, channel, kernel or weight
    #[arg(long, value_parser = ["filter", "channel", "kernel", "weight"])]
    pub scheme: String,
    /// Fraction of units removed, in (0, 1)
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub rate: f64,
    /// TOML of per-layer rate overrides (`"layer1.*.conv1" = 0.7`)
    #[arg(long)]
    pub rates: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
}

impl PruneArgs {
    /// The variant spec of the pruned model.
    pub fn spec(&self) -> Result<VariantSpec> {
        if !(self.rate > 0.0 && self.rate < 1.0) {
            return Err(Error::input(
                "--rate",
                format!(
                    "pruning rate {} is not in the open interval (0, 1)",
                    self.rate
                ),
            ));
        }
        let va = VariantArgs {
            variant: self.scheme.clone(),
            m: None,
            n: None,
            rate: Some(self.rate),
            rates: self.rates.clone(),
            fp_first_last: None,
            shortcut: None,
            bn: None,
            scales: None,
            bias: None,
            index_bits: None,
        };
        let spec = va.spec()?;
        for (k, &r) in &spec.options.rates {
            if !(r > 0.0 && r < 1.0) {
                return Err(Error::input(
                    format!("--rates \"{k}\""),
                    format!("pruning rate {r} is not in the open interval (0, 1)"),
                ));
            }
        }
        Ok(spec)
    }
}

/// Prunes and saves; returns the pruned network's parameter count before/after.
pub fn prune(args: &PruneArgs) -> Result<(u64, u64)> {
    let net = args.model.load()?;
    let spec = args.spec()?;
    let base = variant::apply(&net, &VariantSpec::new(VariantKind::Vanilla))?;
    let p = params::load(&base, &args.weights).map_err(|e| match e {
        Error::Input { context, message } => Error::input(format!("--weights {context}"), message),
        other => other,
    })?;
    let count = |p: &params::Params| -> u64 {
        p.iter()
            .filter(|(k, _)| !crate::train::net::is_buffer(k))
            .map(|(_, v)| v.iter().filter(|&&x| x != 0.0).count() as u64)
            .sum()
    };
    let before = count(&p);
    match spec.kind {
        VariantKind::Filter | VariantKind::Channel => {
            let (cn, out) = structured(&net, &p, &spec)?;
            params::save(&cn, &out, &args.out)?;
            Ok((before, count(&out)))
        }
        _ => {
            let cn = variant::apply(&net, &spec)?;
            let masks = sparse_masks(&net, &p, &spec)?;
            let mut out = p.clone();
            crate::train::apply_masks(&mut out, &masks)?;
            save_with_masks(&cn, &out, &masks, &args.out)?;
            Ok((before, count(&out)))
        }
    }
}

pub fn run(args: PruneArgs) -> Result<String> {
    let (before, after) = prune(&args)?;
    Ok(format!(
        "{} {} pruning at {}: non-zero parameters {before} -> {after}; weights -> {}\n",
        args.model.model,
        args.scheme,
        args.rate,
        args.out.display()
    ))
}

//! `bbed prune`: prune a trained model's weights at a rate (global, per-layer overrides).
//! Filter/channel write a physically smaller model that loads with `--variant filter|channel
//! --rate R`; kernel/weight write the masked weights plus `{weight}.mask` tensors that
//! `bbed train --init P --variant kernel|weight` keeps fixed while fine-tuning. See
//! [`crate::train::physical`].
//!
//! `--agent --budget B` first chooses per-layer channel rates with the AMC agent
//! ([`super::prune_agent::search_rates`], shared with the `prune-agent` alias), writes them to
//! `--rates-out` (default: next to `--out`, `<out stem>.rates.toml`), and, given `--out`, prunes
//! the weights at those rates (channel scheme; layers the file does not list stay uncut).
//! In a rates file, a per-layer rate of 0 leaves that layer uncut (filter/channel only).

// clap renders this module's `///` comments as `--help` text, where brackets are literal
// (`[0,1]`, `[required]`), so rustdoc's link check does not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{ModelArgs, VariantArgs};
use super::prune_agent::{search_rates, AgentOptions};
use crate::engine::params;
use crate::io::limits::check_memory;
use crate::io::output;
use crate::train::physical::{save_with_masks, sparse_masks, structured};
use crate::variant::{self, VariantKind, VariantSpec};
use crate::{Error, Result};

const AFTER: &str = "\
Examples:
  bbed prune --model resnet20 --weights W.safetensors --scheme filter --rate 0.5 --out P.safetensors
  bbed prune --agent --budget 0.5 --model resnet20 --weights W.safetensors --data cifar10/ \\
      --rates-out rates.toml --out P.safetensors
  bbed prune --model resnet20 --weights W.safetensors --scheme channel --rates rates.toml \\
      --out P.safetensors";

#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER)]
pub struct PruneArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Trained weights of the unpruned (vanilla) model
    #[arg(long)]
    pub weights: PathBuf,
    /// filter, channel, kernel or weight (with --agent: channel, the default)
    #[arg(long, value_parser = ["filter", "channel", "kernel", "weight"],
          required_unless_present = "agent")]
    pub scheme: Option<String>,
    /// Fraction of units removed, in (0, 1) [default: 0.5]
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// TOML of per-layer rate overrides (`"layer1.*.conv1" = 0.7`)
    #[arg(long)]
    pub rates: Option<PathBuf>,
    /// Where to write the pruned weights (optional with --agent)
    #[arg(long, required_unless_present = "agent")]
    pub out: Option<PathBuf>,
    /// Choose per-layer channel rates with the AMC agent under --budget (needs --data)
    #[arg(long, requires_all = ["budget", "data"], conflicts_with_all = ["rate", "rates"])]
    pub agent: bool,
    /// With --agent: fraction of the unpruned FLOPs (conv + linear MACs) to keep, in (0, 1)
    #[arg(long, requires = "agent", allow_negative_numbers = true)]
    pub budget: Option<f64>,
    /// With --agent: dataset directory the validation images come from
    #[arg(long, requires = "agent")]
    pub data: Option<PathBuf>,
    /// With --agent: where to write the chosen rates TOML [default: <out stem>.rates.toml]
    #[arg(long, requires = "agent")]
    pub rates_out: Option<PathBuf>,
    #[command(flatten)]
    pub search: AgentOptions,
    /// Replace an existing --out / --rates-out (never one of the inputs)
    #[arg(long)]
    pub force: bool,
}

/// Global rate when `--rate` is not given.
pub const DEFAULT_RATE: f64 = 0.5;

impl PruneArgs {
    fn scheme(&self) -> &str {
        self.scheme.as_deref().unwrap_or("channel")
    }

    /// The variant spec of the pruned model (without `--agent`).
    pub fn spec(&self) -> Result<VariantSpec> {
        let rate = self.rate.unwrap_or(DEFAULT_RATE);
        // Range rules: VariantSpec::validate, shared by every command.
        let va = VariantArgs {
            variant: Some(self.scheme().to_string()),
            m: None,
            n: None,
            rate: Some(rate),
            rates: self.rates.clone(),
            fp_first_last: None,
            shortcut: None,
            bn: None,
            scales: None,
            bias: None,
            index_bits: None,
        };
        va.spec()
    }

    /// The output rule ([`crate::io::output`]) for `--out` and `--rates-out`, before any work.
    fn check_outputs(&self, rates_out: Option<&Path>) -> Result<()> {
        let mut inputs: Vec<(&str, &Path)> = vec![("--weights", &self.weights)];
        if let Some(r) = &self.rates {
            inputs.push(("--rates", r));
        }
        if let Some(d) = &self.data {
            inputs.push(("--data", d));
        }
        if let Some(r) = rates_out {
            output::check_file("--rates-out", r, self.force, &inputs)?;
        }
        if let Some(h) = &self.search.history {
            output::check_file("--history", h, self.force, &inputs)?;
        }
        if let Some(o) = &self.out {
            output::check_file("--out", o, self.force, &inputs)?;
        }
        Ok(())
    }
}

/// Prunes and saves; returns the pruned network's parameter count before/after.
pub fn prune(args: &PruneArgs) -> Result<(u64, u64)> {
    let out = args
        .out
        .as_ref()
        .ok_or_else(|| Error::input("--out", "where to write the pruned weights is required"))?;
    args.check_outputs(None)?;
    prune_with(&args.model, &args.weights, &args.spec()?, out)
}

/// Prunes `weights` of `model` as `spec` says and saves to `out`; non-zero parameter counts
/// before/after.
pub fn prune_with(
    model: &ModelArgs,
    weights: &Path,
    spec: &VariantSpec,
    out_path: &Path,
) -> Result<(u64, u64)> {
    spec.validate()?;
    let net = model.load()?;
    // The input weights, the pruned copy and the masks.
    check_memory(
        &format!("pruning {}", net.name),
        net.memory_estimate(0, 3, 0),
        "choose a smaller model",
    )?;
    let spec = spec.clone();
    let base = variant::apply(&net, &VariantSpec::new(VariantKind::Vanilla))?;
    let p = params::load(&base, weights).map_err(|e| match e {
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
            params::save(&cn, &out, out_path)?;
            Ok((before, count(&out)))
        }
        _ => {
            let cn = variant::apply(&net, &spec)?;
            let masks = sparse_masks(&net, &p, &spec)?;
            let mut out = p.clone();
            crate::train::apply_masks(&mut out, &masks)?;
            save_with_masks(&cn, &out, &masks, out_path)?;
            Ok((before, count(&out)))
        }
    }
}

pub fn run(args: PruneArgs) -> Result<String> {
    if args.agent {
        return run_agent(&args);
    }
    let (before, after) = prune(&args)?;
    Ok(format!(
        "{} {} pruning at {}: non-zero parameters {before} -> {after}; weights -> {}\n",
        args.model.model,
        args.scheme(),
        args.rate.unwrap_or(DEFAULT_RATE),
        args.out.as_deref().unwrap_or(Path::new("?")).display()
    ))
}

/// `--agent`: search rates, write them, and prune with them when `--out` is given.
fn run_agent(args: &PruneArgs) -> Result<String> {
    if args.scheme() != "channel" {
        return Err(Error::input(
            "--scheme",
            format!(
                "the agent chooses channel-pruning rates; use --scheme channel (or leave it out), \
                 not {}",
                args.scheme()
            ),
        ));
    }
    let budget = args
        .budget
        .ok_or_else(|| Error::input("--budget", "--agent needs a FLOPs budget"))?;
    if !(budget > 0.0 && budget < 1.0) {
        return Err(Error::input(
            "--budget",
            format!(
                "{budget} is not in the open interval (0, 1): it is the fraction of the unpruned \
                 FLOPs to keep"
            ),
        ));
    }
    let data = args
        .data
        .as_ref()
        .ok_or_else(|| Error::input("--data", "--agent needs validation data"))?;
    let rates_out =
        match (&args.rates_out, &args.out) {
            (Some(r), _) => r.clone(),
            (None, Some(o)) => o.with_extension("rates.toml"),
            (None, None) => return Err(Error::input(
                "--rates-out",
                "--agent needs --rates-out (where to write the rates TOML) or --out (the pruned \
                 weights; the rates then go to <out stem>.rates.toml)",
            )),
        };
    if args.out.as_ref() == Some(&rates_out) {
        return Err(Error::input(
            "--rates-out",
            "is the same file as --out; the rates and the weights need two files",
        ));
    }
    args.check_outputs(Some(&rates_out))?;
    let (res, mut text) = search_rates(
        &args.model,
        &args.weights,
        data,
        budget,
        &args.search,
        &rates_out,
    )?;
    if let Some(out) = &args.out {
        let mut spec = VariantSpec::new(VariantKind::Channel);
        // Every channel-prunable layer is listed; a global rate of 0 keeps any other uncut.
        spec.options.rate = 0.0;
        spec.options.rates = res.rates.clone();
        let (before, after) = prune_with(&args.model, &args.weights, &spec, out)?;
        text.push_str(&format!(
            "{} channel pruning at the agent's rates: non-zero parameters {before} -> {after}; \
             weights -> {}\n",
            args.model.model,
            out.display()
        ));
    }
    Ok(text)
}

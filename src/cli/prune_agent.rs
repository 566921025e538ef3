//! The AMC-style DDPG search ([`crate::train::amc`]) for per-layer channel pruning rates of a
//! trained full-precision model under a FLOPs budget, as `bbed prune --agent` and its older
//! spelling `bbed prune-agent` (a documented alias: both call [`search_rates`], the one
//! implementation). Writes the rates TOML that `bbed cost --variant channel --rates FILE` and
//! `bbed prune --scheme channel --rates FILE` read.
//!
//! Validation images are a seeded sample of the data's *train* split (AMC holds out part of the
//! training set; if the model was trained on every training image, this split is not unseen,
//! so hold images out when training, or use `--val-split test` knowingly).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::args::{FolderArgs, ModelArgs};
use crate::engine::{exec::Net, params};
use crate::train::amc::{search, uniform_rate, AmcConfig, AmcResult, NetPruneEnv, PruneEnv};
use crate::variant::{self, VariantKind, VariantSpec};
use crate::{Error, Result};

const AFTER: &str = "\
Budget = fraction of the unpruned FLOPs (conv + linear MACs) kept. Rates = fraction of a
layer's input channels removed (keyed by the consuming conv), chosen without fine-tuning.
Defaults are AMC's (800 episodes, 100 warm-up); fewer episodes give a quicker, rougher search.

`bbed prune-agent ... --out R.toml` is the older spelling of `bbed prune --agent ...
--rates-out R.toml` (which can also write the pruned weights with --out).

Examples:
  bbed prune --agent --model resnet20 --weights W.safetensors --data cifar10/ --budget 0.5 \\
      --rates-out rates.toml --out pruned.safetensors
  bbed cost --model resnet20 --variant channel --rate 0 --rates rates.toml";

/// Which split of `--data` the validation images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValSplit {
    Train,
    Test,
}

/// The search options shared by `bbed prune --agent` and `bbed prune-agent`.
#[derive(Debug, Clone, Args)]
pub struct AgentOptions {
    /// How an image-folder --data is read
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Number of validation images the reward is measured on
    #[arg(long, default_value_t = 1000)]
    pub val: usize,
    /// Split the validation images are drawn from
    #[arg(long, value_enum, default_value_t = ValSplit::Train)]
    pub val_split: ValSplit,
    /// Agent episodes (AMC: 800)
    #[arg(long, default_value_t = 800)]
    pub episodes: usize,
    /// Warm-up episodes with uniformly random actions (AMC: 100)
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// Seed of the validation sample and the agent
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the whole search history as JSON
    #[arg(long)]
    pub history: Option<PathBuf>,
}

/// `bbed prune-agent` (alias of `bbed prune --agent`).
#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct PruneAgentArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Trained full-precision weights (safetensors)
    #[arg(long)]
    pub weights: PathBuf,
    /// Dataset directory (CIFAR-10 binary, MNIST-family IDX or an image folder)
    #[arg(long)]
    pub data: PathBuf,
    /// Fraction of the unpruned FLOPs to keep, in (0, 1]
    #[arg(long, allow_negative_numbers = true)]
    pub budget: f64,
    /// Where to write the per-layer rates TOML
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub search: AgentOptions,
    /// Replace an existing --out (never one of the inputs)
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: PruneAgentArgs) -> Result<String> {
    let inputs = [
        ("--weights", a.weights.as_path()),
        ("--data", a.data.as_path()),
    ];
    crate::io::output::check_file("--out", &a.out, a.force, &inputs)?;
    if let Some(h) = &a.search.history {
        crate::io::output::check_file("--history", h, a.force, &inputs)?;
    }
    search_rates(&a.model, &a.weights, &a.data, a.budget, &a.search, &a.out).map(|(_, text)| text)
}

/// Runs the agent search and writes the best rates to `rates_out` (and the history, if asked);
/// returns the result and a printable summary (per-layer rates, accuracies vs a uniform rate).
pub fn search_rates(
    model: &ModelArgs,
    weights: &Path,
    data: &Path,
    budget: f64,
    o: &AgentOptions,
    rates_out: &Path,
) -> Result<(AmcResult, String)> {
    let mut cfg = AmcConfig::amc(budget);
    cfg.episodes = o.episodes;
    cfg.warmup = o.warmup;
    cfg.validate()?;
    if o.val == 0 {
        return Err(Error::input("--val", "needs at least one validation image"));
    }
    let network = model.load()?;
    let cn = variant::apply(&network, &VariantSpec::new(VariantKind::Vanilla))?;
    let p = params::load(&cn, weights)?;
    let net = Net::new(cn, p)?;
    let (train, test) = o.folder.load(data)?;
    let pool = match o.val_split {
        ValSplit::Train => train.ok_or_else(|| {
            Error::input(
                data.display().to_string(),
                "has no train split to draw validation images from (use --val-split test)",
            )
        })?,
        ValSplit::Test => test,
    };
    let val = pool.sample(o.val.min(pool.len()), o.seed)?;
    let mut env = NetPruneEnv::new(net, &val)?;
    let res = search(&mut env, &cfg, o.seed)?;
    res.write_toml(rates_out)?;
    if let Some(h) = &o.history {
        let text = serde_json::to_string_pretty(&res)
            .map_err(|e| Error::internal(h.display().to_string(), e.to_string()))?;
        crate::io::atomic::write_bytes_atomic(h, text.as_bytes())?;
    }
    let n = env.layers().len();
    let unpruned = env.evaluate(&vec![0.0; n])?;
    let u = uniform_rate(&env, budget, cfg.rbound)?;
    let uni_acc = env.evaluate(&vec![u; n])?;
    let full = env.flops(&vec![0.0; n])?;
    let mut out = String::new();
    out.push_str("layer\trate\n");
    for (name, r) in &res.rates {
        out.push_str(&format!("{name}\t{r:.4}\n"));
    }
    out.push_str(&format!(
        "validation accuracy (no fine-tuning, {} images): unpruned {unpruned:.4}, agent \
         {:.4} at FLOPs {:.4}, uniform rate {u:.4} {uni_acc:.4} at FLOPs {:.4}\n\
         wrote {}\n",
        val.len(),
        res.accuracy,
        res.flops_ratio,
        env.flops(&vec![u; n])? / full,
        rates_out.display()
    ));
    Ok((res, out))
}

//! `bbed sweep`: run an attack grid against every zoo entry (see [`crate::sweep::run`]).

use super::args::FolderArgs;
use std::path::PathBuf;

use clap::Args;

use crate::sweep::{run_sweep, Shard, SweepOptions};
use crate::Result;

const AFTER: &str = "\
Writes <out>/sweep.json (run header) and <out>/results.jsonl (one record per entry, attack,
setting, rerun and image, appended as they finish). A killed sweep continues with --resume;
--resume with other settings is refused. --shard i/n (0-based i) runs every n-th cell starting
at i; join the shard folders with `bbed merge`. Units of every budget are in the config.

Examples:
  bbed sweep --zoo zoo/ --config configs/table2.toml --data /usr/share/datasets/fashion-mnist --out results/
  bbed sweep --zoo zoo/ --config configs/table2.toml --data cifar-10-batches-bin --out r3/ --shard 3/8 --resume";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct SweepArgs {
    /// Zoo folder (manifest.json + weights)
    #[arg(long)]
    pub zoo: PathBuf,
    /// Attack grid TOML (e.g. configs/table2.toml)
    #[arg(long)]
    pub config: PathBuf,
    /// Data set: CIFAR-10 binary dir/file, MNIST-family IDX dir or an image folder; its test split is used
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Output folder
    #[arg(long)]
    pub out: PathBuf,
    /// Images attacked per cell (seeded sample of the test split)
    #[arg(long, default_value_t = 100)]
    pub images: usize,
    /// Seed of the image sample and of every attack
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reruns of random-start attacks (PGD), averaged in the report (paper: 5)
    #[arg(long, default_value_t = 5)]
    pub reruns: usize,
    /// Run shard i of n (0-based), e.g. 0/4
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Continue an existing output folder, skipping finished records
    #[arg(long)]
    pub resume: bool,
    /// Only these grid entries (comma-separated names)
    #[arg(long, value_delimiter = ',')]
    pub only_attacks: Option<Vec<String>>,
    /// On --resume, skip corrupt lines of the results file with a warning instead of failing
    #[arg(long)]
    pub skip_corrupt: bool,
    /// Stop after writing this many records (for testing interruption)
    #[arg(long, hide = true)]
    pub max_records: Option<usize>,
}

fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    Shard::parse(s).map_err(|e| e.to_string())
}

pub fn run(a: SweepArgs) -> Result<String> {
    let (_, test) = a.folder.load(&a.data)?;
    let opts = SweepOptions {
        zoo: a.zoo,
        config: a.config,
        out: a.out,
        images: a.images,
        seed: a.seed,
        reruns: a.reruns,
        shard: a.shard,
        resume: a.resume,
        only_attacks: a.only_attacks,
        skip_corrupt: a.skip_corrupt,
        max_records: a.max_records,
        progress: true,
    };
    Ok(run_sweep(&opts, &test)?.render())
}

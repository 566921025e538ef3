//! `bbed merge`: join the output folders of sharded sweeps (see [`crate::sweep::merge`]).

use std::path::PathBuf;

use clap::Args;

use crate::sweep::merge_shards;
use crate::Result;

const AFTER: &str = "\
Refuses folders of different sweeps (zoo, config, seed, images), repeated or missing shards,
duplicate records, and an existing non-empty --out (never overwrites).

Example:
  bbed merge results-shard-*/ --out merged/";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct MergeArgs {
    /// Shard output folders (each with sweep.json and results.jsonl)
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// Output folder (must not exist or be empty)
    #[arg(long)]
    pub out: PathBuf,
    /// Skip corrupt result lines with a warning instead of failing
    #[arg(long)]
    pub skip_corrupt: bool,
}

pub fn run(a: MergeArgs) -> Result<String> {
    Ok(merge_shards(&a.shards, &a.out, a.skip_corrupt)?.render())
}

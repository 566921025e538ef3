//! Robustness sweeps (the paper's Section 4 as commands): [`plan`] (cells, shards, seeds),
//! [`header`] (the run header that guards `--resume` and merging), [`run`] (`bbed sweep`),
//! [`merge`] (`bbed merge`) and [`cam`] (CAM inputs from real models for `bbed report`).
//!
//! Output folder layout: `sweep.json` (header) and `results.jsonl` (one
//! [`crate::report::SweepRecord`] per line); `bbed report <folder>` reads the `*.jsonl` files.

pub mod cam;
pub mod header;
pub mod merge;
pub mod plan;
pub mod run;

pub use header::{SweepHeader, HEADER_FILE, RESULTS_FILE};
pub use merge::{merge_shards, MergeSummary};
pub use plan::Shard;
pub use run::{load_zoo, run_sweep, LoadedEntry, SweepOptions, SweepSummary};

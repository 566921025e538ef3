//! Command-line interface of `bbed`. Each subcommand lives in its own file with an `Args`
//! struct and a `run(args) -> Result<String>` that returns what to print; adding one means a
//! new file, a [`Command`] variant and a match arm in [`dispatch`]. Errors print as
//! `error: <msg>` on stderr with exit code 2 (bad user input), as do clap usage errors.

pub mod args;
pub mod attack;
pub mod cost;
pub mod format;
pub mod infer;
pub mod merge;
pub mod prune;
pub mod prune_agent;
pub mod report;
pub mod simulate;
pub mod sweep;
pub mod table1;
pub mod train;
pub mod vectors;
pub mod verify;
pub mod zoo;

use std::io::Write as _;

use clap::{Parser, Subcommand};

use crate::Result;

const LONG_ABOUT: &str = "\
Cost, bit-exact simulation and adversarial robustness of compressed CNNs on DSP48 FPGAs.

Units used throughout:
  MACs         multiply-accumulates of conv and linear layers (BN, pooling, adds excluded)
  binary ops   XNOR-popcount MACs x M weight bases x N activation bases
  memory       MB = 10^6 bytes: fp32 = 4 B per value, 1 bit per binary weight per base
               (rounded up to whole bytes per layer and base), sparse indices in bits
  NCC          normalized compute complexity in 10^6: fp MACs + binary ops / 48, with the
               DSP48 lane counts read from hw/reference.toml";

#[derive(Debug, Parser)]
#[command(name = "bbed", version, about = "Cost, simulation and robustness of compressed CNNs on DSP48 FPGAs", long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cost of one network variant: MACs, binary ops, params, memory [MB = 10^6 B], NCC [10^6].
    Cost(Box<cost::CostArgs>),
    /// The paper's Table 1: paper vs our memory [MB = 10^6 B] and NCC [10^6] for every row.
    Table1(table1::Table1Args),
    /// Attack a variant on real data: FGSM, PGD, CW, DeepFool (float engine), LocalSearch,
    /// GenAttack (query-only; bit-exact engine for binarized variants).
    Attack(Box<attack::AttackArgs>),
    /// Cycle-level DSP48 array simulation: per-layer cycles, ideal cycles, utilisation (0-1),
    /// latency [us] at the clock [MHz], frames/s; --functional checks outputs bit-exactly.
    Simulate(Box<simulate::SimulateArgs>),
    /// Golden vectors ($readmemh hex + JSON manifest) of one layer for an RTL testbench.
    Vectors(Box<vectors::VectorsArgs>),
    /// AMC-style DDPG search for per-layer channel-pruning rates under a FLOPs budget (the
    /// older spelling of `bbed prune --agent`).
    PruneAgent(Box<prune_agent::PruneAgentArgs>),
    /// Run an attack grid against every zoo entry; resumable, shardable JSONL results.
    Sweep(Box<sweep::SweepArgs>),
    /// Join the output folders of sharded sweeps.
    Merge(merge::MergeArgs),
    /// Figures, tables, CAM and index.html from sweep results.
    Report(Box<report::ReportArgs>),
    /// Train one variant on a data set (SGD/Adam, KD, masks, binarized STE); resumable.
    Train(Box<train::TrainArgs>),
    /// Prune trained weights (filter/channel: physically smaller; kernel/weight: masks);
    /// --agent --budget B picks per-layer channel rates with the AMC agent.
    Prune(Box<prune::PruneArgs>),
    /// Train the paper's whole variant family into one folder with a manifest; resumable.
    Zoo(Box<zoo::ZooArgs>),
    /// Classify a dataset's test split with the float or the bit-exact binary engine.
    Infer(Box<infer::InferArgs>),
    /// Compare the float and bit-exact binary engines on the same inputs (accumulators, logits).
    Verify(Box<verify::VerifyArgs>),
}

fn dispatch(command: Command) -> Result<String> {
    match command {
        Command::Cost(a) => cost::run(*a),
        Command::Table1(a) => table1::run(a),
        Command::Attack(a) => attack::run(*a),
        Command::Simulate(a) => simulate::run(*a),
        Command::Vectors(a) => vectors::run(*a),
        Command::PruneAgent(a) => prune_agent::run(*a),
        Command::Sweep(a) => sweep::run(*a),
        Command::Merge(a) => merge::run(a),
        Command::Report(a) => report::run(*a),
        Command::Train(a) => train::run(*a),
        Command::Prune(a) => prune::run(*a),
        Command::Zoo(a) => zoo::run(*a),
        Command::Infer(a) => infer::run(*a),
        Command::Verify(a) => verify::run(*a),
    }
}

/// Entry point of the `bbed` binary; returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return e.exit_code();
        }
    };
    match dispatch(cli.command) {
        Ok(out) => {
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

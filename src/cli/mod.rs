//! Command-line interface of `bbed`. Each subcommand lives in its own file with an `Args`
//! struct and a `run(args) -> Result<String>` that returns what to print; adding one means a
//! new file, a [`Command`] variant and a match arm in [`dispatch`].
//!
//! Errors print as one `error: <msg>` line on stderr; the exit code says whose fault it was
//! ([`EXIT_CODES`], shown by `bbed --help`): 2 for bad user input (as clap's usage errors), 1 for
//! a check that ran and failed, 70 for a bug ([`crate::Error::Internal`], or a panic caught by
//! [`guarded`]).

// clap renders this module's `///` comments as `--help` text, where brackets are literal
// (`[us]`, `[MHz]`), so rustdoc's link check does not apply to them.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod args;
pub mod attack;
pub mod cost;
pub mod export;
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

use crate::error::EXIT_INTERNAL;
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

/// The exit codes of `bbed`, as `bbed --help` lists them (values from [`crate::error`]).
pub const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   a check you asked for ran and failed (e.g. simulate --functional found a mismatch)
  2   bad input: usage error, bad option or field, unreadable or malformed file (named)
  70  internal error: a bug in bbed (broken invariant or panic); please report it";

#[derive(Debug, Parser)]
#[command(name = "bbed", version, about = "Cost, simulation and robustness of compressed CNNs on DSP48 FPGAs", long_about = LONG_ABOUT, after_help = EXIT_CODES)]
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
    /// Write a variant with its weights as ONNX (float) or QONNX (binarized, BipolarQuant).
    Export(Box<export::ExportArgs>),
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
        Command::Export(a) => export::run(*a),
    }
}

/// Entry point of the `bbed` binary; returns the process exit code ([`EXIT_CODES`]).
pub fn run() -> i32 {
    guarded(|| match Cli::try_parse() {
        Ok(cli) => finish(dispatch(cli.command)),
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            e.exit_code()
        }
    })
}

/// Prints a command's outcome, the output on stdout or `error: <msg>` on stderr, and returns
/// its exit code ([`crate::Error::exit_code`]).
pub fn finish(outcome: Result<String>) -> i32 {
    match outcome {
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

/// Runs `f` and returns its exit code, or [`EXIT_INTERNAL`] if it panics (on this thread or on
/// a rayon worker, whose panic rayon re-raises here). The panic hook installed here replaces
/// Rust's multi-line report with one `error: internal error ...` line asking for a bug report;
/// with `RUST_BACKTRACE` set, the default report (and backtrace) follows it for that report.
pub fn guarded(f: impl FnOnce() -> i32) -> i32 {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("panic");
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            eprintln!(
                "error: internal error (a bug in bbed {}, please report it with the command \
                 line): {}{at}",
                env!("CARGO_PKG_VERSION"),
                what.replace('\n', " ")
            );
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                default(info);
            }
        }));
    });
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(EXIT_INTERNAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{EXIT_CHECK, EXIT_INPUT};

    /// `bbed --help` lists each code with the value the errors map to.
    #[test]
    fn help_lists_the_exit_codes() {
        for (code, what) in [
            (EXIT_CHECK, "a check"),
            (EXIT_INPUT, "bad input"),
            (EXIT_INTERNAL, "internal error"),
        ] {
            let line = format!("  {code:<3} {what}");
            assert!(EXIT_CODES.contains(&line), "{line:?} not in {EXIT_CODES}");
        }
    }
}

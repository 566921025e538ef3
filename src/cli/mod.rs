//! Command-line interface of `bbed`. Each subcommand lives in its own file with an `Args`
//! struct and a `run(args) -> Result<String>` that returns what to print; adding one means a
//! new file, a [`Command`] variant and a match arm in [`dispatch`]. Errors print as
//! `error: <msg>` on stderr with exit code 2 (bad user input), as do clap usage errors.

pub mod args;
pub mod cost;
pub mod format;
pub mod infer;
pub mod table1;
pub mod verify;

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
    /// Classify a dataset's test split with the float or the bit-exact binary engine.
    Infer(Box<infer::InferArgs>),
    /// Compare the float and bit-exact binary engines on the same inputs (accumulators, logits).
    Verify(Box<verify::VerifyArgs>),
}

fn dispatch(command: Command) -> Result<String> {
    match command {
        Command::Cost(a) => cost::run(*a),
        Command::Table1(a) => table1::run(a),
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

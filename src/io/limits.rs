//! What a command accepts and how big it may get: one validation function per count parameter
//! (shared by every command that takes it) and the memory guard.
//!
//! Memory guard: a command estimates the bytes of its big allocations (weights, activations,
//! data) from shapes alone, before allocating, and [`check_memory`] refuses an estimate above the
//! limit with an error giving the estimate, the limit and what to change. The limit is a fixed
//! 16 GB (16 * 10^9 bytes: two thirds of the 24 GiB machines this runs on, leaving room for the
//! rest of the process and a second job), overridable with the environment variable
//! `BBED_MAX_MEMORY` in GB (10^9 bytes; e.g. `BBED_MAX_MEMORY=64`). Estimates use saturating
//! arithmetic so an absurd shape reads as "too big", never as an overflow.

use crate::{Error, Result};

/// Environment variable overriding [`DEFAULT_MAX_MEMORY`], in GB (10^9 bytes).
pub const MAX_MEMORY_ENV: &str = "BBED_MAX_MEMORY";

/// Default memory limit in bytes (16 GB).
pub const DEFAULT_MAX_MEMORY: u64 = 16_000_000_000;

/// The memory limit in bytes: `BBED_MAX_MEMORY` (GB) when set, else [`DEFAULT_MAX_MEMORY`].
pub fn max_memory() -> Result<u64> {
    match std::env::var(MAX_MEMORY_ENV) {
        Err(_) => Ok(DEFAULT_MAX_MEMORY),
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(gb) if gb.is_finite() && gb > 0.0 => Ok((gb * 1e9).min(u64::MAX as f64) as u64),
            _ => Err(Error::input(
                MAX_MEMORY_ENV,
                format!("{s:?} is not a positive number of GB (10^9 bytes)"),
            )),
        },
    }
}

fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

/// Refuses `estimate` bytes for `what` beyond [`max_memory`]; `advice` says what to change.
pub fn check_memory(what: &str, estimate: u64, advice: &str) -> Result<()> {
    let limit = max_memory()?;
    if estimate > limit {
        return Err(Error::input(
            what,
            format!(
                "needs an estimated {} of memory, over the limit of {}; {advice}, or raise the \
                 limit with {MAX_MEMORY_ENV}=<GB>",
                gb(estimate),
                gb(limit)
            ),
        ));
    }
    Ok(())
}

/// A count that must be at least 1 (`--limit`, `--images`, `--batch`, `--epochs`, ...): 0 would
/// run on nothing and report an empty result as if it meant something.
pub fn at_least_one(flag: &str, n: usize) -> Result<usize> {
    if n == 0 {
        return Err(Error::input(flag, "must be at least 1"));
    }
    Ok(n)
}

//! The sweep plan: which cells exist, in which order, which shard runs them, and which seed each
//! one uses.
//!
//! A *cell* is (zoo entry, grid point, rerun); it produces one record per image. Cells are listed
//! zoo entry by zoo entry (manifest order), then grid point by grid point (config order), then
//! rerun by rerun. Shard `i` of `n` (0-based, `0 <= i < n`) runs the cells whose position in that
//! full list is `i (mod n)`: a fixed round-robin, so shards get similar mixes of attacks and the
//! union of all shards is the whole list.
//!
//! Seeds never depend on the shard, the thread or the order of execution: the cell seed is a
//! 64-bit FNV-1a hash of `(sweep seed, entry name, attack name, setting label, rerun)`, finished
//! with SplitMix64; the cell seed is the attack driver's seed, so image `k` of the data set uses
//! the streams (cell seed, `k`) of [`crate::attack::streams`], exactly as `bbed attack --seed
//! <cell seed>` would.
//!
//! Reruns: only attacks with a random start (PGD with `random_start`) are rerun `reruns` times, as
//! the paper averages five PGD runs; the others are deterministic given their seed and run once.

use serde::{Deserialize, Serialize};

use crate::attack::driver::setting_of;
use crate::attack::spec::{AttackSpec, GridPoint};
use crate::report::{canonical_attack, Setting};
use crate::{Error, Result};

/// One attack configuration of the grid, with the record fields it produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedAttack {
    /// Grid entry name, recorded as the attack name (the report recognises `fgsm`, `pgd`, `cw`,
    /// `deepfool`, `localsearch`, `genattack`).
    pub name: String,
    pub setting: Setting,
    pub spec: AttackSpec,
    /// Number of reruns of this attack (1 unless it has a random start).
    pub reruns: usize,
}

/// One cell: zoo entry `entry` x attack `attack` x rerun.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub entry: usize,
    pub attack: usize,
    pub rerun: usize,
}

/// `--shard i/n`: 0-based index `i` of `n` shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses `i/n` (0-based `i`, so a Slurm array `--array=0-3` passes `$SLURM_ARRAY_TASK_ID/4`).
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = |m: &str| Error::input("--shard", format!("{s:?}: {m}"));
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| bad("expected i/n, e.g. 0/4"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| bad("shard index is not a non-negative integer"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad("shard count is not a positive integer"))?;
        if count == 0 {
            return Err(bad("shard count must be at least 1"));
        }
        if index >= count {
            return Err(bad(&format!(
                "shard index is 0-based and must be below the count ({count})"
            )));
        }
        Ok(Shard { index, count })
    }

    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Turns expanded grid points into planned attacks, keeping those named in `only` (canonical
/// names; `None` keeps all). Two points with the same name and setting label would write
/// indistinguishable records, so they are an error naming both.
pub fn plan_attacks(
    points: &[GridPoint],
    only: Option<&[String]>,
    reruns: usize,
    context: &str,
) -> Result<Vec<PlannedAttack>> {
    if reruns == 0 {
        return Err(Error::input("--reruns", "must be at least 1"));
    }
    if let Some(only) = only {
        for want in only {
            if !points
                .iter()
                .any(|p| canonical_attack(&p.name) == canonical_attack(want))
            {
                let mut names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
                names.dedup();
                return Err(Error::input(
                    "--only-attacks",
                    format!(
                        "no grid entry named {want:?} in {context}; entries: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    let mut out: Vec<PlannedAttack> = Vec::new();
    for p in points {
        if let Some(only) = only {
            if !only
                .iter()
                .any(|w| canonical_attack(w) == canonical_attack(&p.name))
            {
                continue;
            }
        }
        let setting = setting_of(&p.spec);
        if let Some(prev) = out.iter().find(|a| {
            canonical_attack(&a.name) == canonical_attack(&p.name)
                && a.setting.label() == setting.label()
        }) {
            return Err(Error::input(
                format!("{context}: grid entry {}", p.name),
                format!(
                    "two grid points give the same recorded setting ({}; first {:?}): their \
                     results could not be told apart; give the entries different names",
                    setting.label(),
                    prev.name
                ),
            ));
        }
        let random = matches!(&p.spec, AttackSpec::Pgd(s) if s.random_start.get());
        out.push(PlannedAttack {
            name: p.name.clone(),
            setting,
            spec: p.spec.clone(),
            reruns: if random { reruns } else { 1 },
        });
    }
    if out.is_empty() {
        return Err(Error::input(context, "the grid has no attacks to run"));
    }
    Ok(out)
}

/// Every cell of the sweep in plan order (module docs).
pub fn all_cells(entries: usize, attacks: &[PlannedAttack]) -> Vec<Cell> {
    let mut cells = Vec::new();
    for entry in 0..entries {
        for (a, att) in attacks.iter().enumerate() {
            for rerun in 0..att.reruns {
                cells.push(Cell {
                    entry,
                    attack: a,
                    rerun,
                });
            }
        }
    }
    cells
}

/// The cells shard `shard` runs (all of them without a shard).
pub fn shard_cells(cells: &[Cell], shard: Option<Shard>) -> Vec<Cell> {
    cells
        .iter()
        .enumerate()
        .filter(|(k, _)| shard.is_none_or(|s| s.owns(*k)))
        .map(|(_, c)| *c)
        .collect()
}

/// 64-bit FNV-1a of `bytes`, continuing from `h`.
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// SplitMix64's output function (Steele, Lea, Flood: "Fast splittable pseudorandom number
/// generators", 2014): a bijective mix of `z + golden`.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of one cell (module docs); fields are separated by a 0 byte so `("ab","c")` and
/// `("a","bc")` differ.
pub fn cell_seed(seed: u64, entry: &str, attack: &str, setting: &Setting, rerun: usize) -> u64 {
    let mut h = fnv1a(FNV_OFFSET, &seed.to_le_bytes());
    for part in [entry, &canonical_attack(attack), &setting.label()] {
        h = fnv1a(h, part.as_bytes());
        h = fnv1a(h, &[0]);
    }
    h = fnv1a(h, &(rerun as u64).to_le_bytes());
    splitmix(h)
}

/// Hex FNV-1a digest of a byte string (config and manifest fingerprints in the run header).
pub fn digest(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(FNV_OFFSET, bytes))
}

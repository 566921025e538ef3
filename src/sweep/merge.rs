//! `bbed merge`: joins the output folders of the shards of one sweep into one folder.
//!
//! Refused (error naming the folder, nothing written): a folder without a sweep header, headers
//! that differ in anything but the shard (other zoo, config, seed, images, ...), an unsharded
//! input, two folders of the same shard, a missing shard, duplicate records, and an output folder
//! that exists and is not empty (merge never overwrites).
//!
//! The merged folder holds the common header with `shard = None` and `results.jsonl` with the
//! shards' records in shard order, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::header::{SweepHeader, HEADER_FILE, RESULTS_FILE};
use crate::io::atomic::write_bytes_atomic;
use crate::report::record::{check_consistent, load_records};
use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeSummary {
    pub out: PathBuf,
    pub shards: usize,
    pub records: usize,
    /// Records the complete sweep produces (fewer merged means some shard stopped early).
    pub records_expected: usize,
}

impl MergeSummary {
    pub fn render(&self) -> String {
        let mut s = format!(
            "merged {} shards into {}: {} records",
            self.shards,
            self.out.display(),
            self.records
        );
        if self.records < self.records_expected {
            s.push_str(&format!(
                " (of {} expected: some shards are unfinished; resume them and merge again)",
                self.records_expected
            ));
        }
        s.push('\n');
        s
    }
}

fn check_out_free(out: &Path) -> Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(Error::input(
                    out.display().to_string(),
                    "output folder exists and is not empty; merge never overwrites, choose \
                     another --out",
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(out, e)),
    }
}

pub fn merge_shards(inputs: &[PathBuf], out: &Path, skip_corrupt: bool) -> Result<MergeSummary> {
    if inputs.is_empty() {
        return Err(Error::input("merge", "no shard folders given"));
    }
    check_out_free(out)?;
    let mut shards: Vec<(usize, &PathBuf, SweepHeader)> = Vec::new();
    for dir in inputs {
        let header = SweepHeader::load(dir)?.ok_or_else(|| {
            Error::input(
                dir.display().to_string(),
                format!("no {HEADER_FILE}: not a sweep output folder"),
            )
        })?;
        let Some(shard) = header.shard else {
            return Err(Error::input(
                dir.display().to_string(),
                "is an unsharded sweep; only the folders of `--shard i/n` runs can be merged",
            ));
        };
        if let Some((_, first_dir, first)) = shards.first() {
            let diff = first.differences(&header, false);
            if !diff.is_empty() {
                return Err(Error::input(
                    dir.display().to_string(),
                    format!(
                        "incompatible with {}: {}",
                        first_dir.display(),
                        diff.join("; ")
                    ),
                ));
            }
            let count = first.shard.expect("checked").count;
            if shard.count != count {
                return Err(Error::input(
                    dir.display().to_string(),
                    format!(
                        "is shard {shard} but {} is one of {count} shards",
                        first_dir.display()
                    ),
                ));
            }
        }
        if let Some((_, other, _)) = shards.iter().find(|s| s.0 == shard.index) {
            return Err(Error::input(
                dir.display().to_string(),
                format!("shard {shard} is also in {}", other.display()),
            ));
        }
        shards.push((shard.index, dir, header));
    }
    let count = shards[0].2.shard.expect("checked").count;
    let missing: Vec<String> = (0..count)
        .filter(|i| !shards.iter().any(|s| s.0 == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::input(
            "merge",
            format!("shards {} are missing", missing.join(", ")),
        ));
    }
    shards.sort_by_key(|s| s.0);
    let mut records = Vec::new();
    for (_, dir, _) in &shards {
        records.extend(load_records(dir.join(RESULTS_FILE), skip_corrupt)?);
    }
    check_consistent(&records)?;
    let mut text = Vec::new();
    for r in &records {
        serde_json::to_writer(&mut text, r).expect("record serialises");
        text.push(b'\n');
    }
    let mut header = shards[0].2.clone();
    header.shard = None;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_bytes_atomic(&out.join(RESULTS_FILE), &text)?;
    header.save(out)?;
    Ok(MergeSummary {
        out: out.to_path_buf(),
        shards: shards.len(),
        records: records.len(),
        records_expected: header.total_records,
    })
}

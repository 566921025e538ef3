//! The run header `<out>/sweep.json`: what a results folder was computed from. `--resume` refuses
//! a folder whose header differs from the new run's, and `bbed merge` refuses shards whose
//! headers differ in anything but the shard index.
//!
//! Identity is by content, not path: the zoo manifest and the config file are fingerprinted
//! (FNV-1a of their bytes) and so is the sampled image subset (pixels and labels), so a zoo or a
//! data set copied to another machine still matches while an edited one does not. The
//! fingerprints are [`super::plan::digest`] (FNV-1a) of the bytes: [`file_digest`] for files,
//! [`dataset_digest`] for images and labels; `bbed attack --resume` identifies its inputs with
//! the same functions.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::plan::{digest, fnv1a, Shard, FNV_OFFSET};
use crate::io::atomic::write_bytes_atomic;
use crate::io::dataset::Dataset;
use crate::{Error, Result};

pub const HEADER_FILE: &str = "sweep.json";
pub const RESULTS_FILE: &str = "results.jsonl";
pub const FORMAT: u32 = 1;

/// Fingerprint of a file's bytes (its path plays no part).
pub fn file_digest(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(digest(&bytes))
}

/// Fingerprint of a data set's pixels (in image order) and labels. Labels count one byte each
/// while every label fits one (as before labels were widened to u16), so digests recorded by
/// earlier sweeps of CIFAR / MNIST data stay valid for resuming; two little-endian bytes
/// otherwise.
pub fn dataset_digest(d: &Dataset) -> String {
    let h = match d.images.as_slice() {
        Some(px) => fnv1a(FNV_OFFSET, px),
        None => d.images.iter().fold(FNV_OFFSET, |h, &b| fnv1a(h, &[b])),
    };
    let h = if d.classes <= 256 {
        d.labels.iter().fold(h, |h, &l| fnv1a(h, &[l as u8]))
    } else {
        d.labels.iter().fold(h, |h, l| fnv1a(h, &l.to_le_bytes()))
    };
    format!("{h:016x}")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepHeader {
    pub format: u32,
    /// Zoo folder as given (informational).
    pub zoo: String,
    /// Fingerprint of `manifest.json`.
    pub zoo_digest: String,
    /// Zoo entries swept, in manifest order.
    pub entries: Vec<String>,
    /// Config path as given (informational).
    pub config: String,
    /// Fingerprint of the config file.
    pub config_digest: String,
    /// Data set description (informational).
    pub data: String,
    /// Fingerprint of the sampled images and labels.
    pub data_digest: String,
    pub seed: u64,
    /// Data-set indices of the images attacked (`Dataset::sample_indices(images, seed)`).
    pub image_indices: Vec<usize>,
    pub classes: usize,
    pub reruns: usize,
    /// `--only-attacks`, as given.
    pub only_attacks: Option<Vec<String>>,
    pub shard: Option<Shard>,
    /// Cells of the whole (unsharded) sweep and records it produces.
    pub total_cells: usize,
    pub total_records: usize,
}

impl SweepHeader {
    /// Fields that differ between two headers, as `name: ours vs theirs`; `with_shard` also
    /// compares the shard. Informational paths are not compared.
    pub fn differences(&self, other: &SweepHeader, with_shard: bool) -> Vec<String> {
        let mut d = Vec::new();
        macro_rules! cmp {
            ($f:ident) => {
                if self.$f != other.$f {
                    d.push(format!(
                        "{}: {:?} vs {:?}",
                        stringify!($f),
                        self.$f,
                        other.$f
                    ));
                }
            };
        }
        cmp!(format);
        cmp!(zoo_digest);
        cmp!(entries);
        cmp!(config_digest);
        cmp!(data_digest);
        cmp!(seed);
        cmp!(classes);
        cmp!(reruns);
        cmp!(only_attacks);
        cmp!(total_cells);
        cmp!(total_records);
        if self.image_indices != other.image_indices {
            d.push(format!(
                "image_indices: {} images vs {} images (or different ones)",
                self.image_indices.len(),
                other.image_indices.len()
            ));
        }
        if with_shard {
            cmp!(shard);
        }
        d
    }

    pub fn load(dir: &Path) -> Result<Option<SweepHeader>> {
        let path = dir.join(HEADER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::input(
                path.display().to_string(),
                format!("malformed sweep header: {e}"),
            )
        })
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("header serialises");
        write_bytes_atomic(&dir.join(HEADER_FILE), text.as_bytes())
    }

    /// A one-paragraph description for the report page.
    pub fn note(&self) -> String {
        format!(
            "Sweep of {} zoo entries ({}) from {} (manifest {}), config {} ({}), data {} \
             ({} images sampled with seed {}), {} PGD reruns{}{}.",
            self.entries.len(),
            self.entries.join(", "),
            self.zoo,
            self.zoo_digest,
            self.config,
            self.config_digest,
            self.data,
            self.image_indices.len(),
            self.seed,
            self.reruns,
            match &self.only_attacks {
                Some(a) => format!(", attacks {}", a.join(",")),
                None => String::new(),
            },
            match self.shard {
                Some(s) => format!(", shard {s}"),
                None => String::new(),
            }
        )
    }
}

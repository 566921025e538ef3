//! `bbed sweep`: every attack x setting of a grid against every zoo entry, on a fixed seeded image
//! subset, one JSONL record per (entry, attack, setting, rerun, image) appended as it finishes.
//!
//! Every image is attacked by [`crate::attack::driver::attack_images`] (batches of a cell's
//! images), the driver `bbed attack` uses: the same engine rule (white-box on the float engine; black-box on the bit-exact engine
//! iff a layer is binarized), the same target rule and the same record for the same seed.
//!
//! Crash safety: records go through [`crate::io::jsonl::JsonlWriter`] (one flushed line each, torn
//! last line cut on resume); `--resume` skips every (entry, attack, setting, rerun, image) already
//! in the file, so a killed sweep resumed any number of times ends with exactly the records of an
//! uninterrupted run. Each result depends only on its seed (see [`super::plan`]), not on the
//! shard, the thread count or what ran before.
//!
//! Progress: [`Progress`] on stderr (a bar on a terminal, a line every few seconds in a batch
//! job), counting this shard's records from those already present, with the cells finished.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array4, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use super::header::{dataset_digest, SweepHeader, FORMAT, RESULTS_FILE};
use super::plan::{all_cells, cell_seed, digest, plan_attacks, shard_cells, PlannedAttack, Shard};
use crate::attack::batch::stack;
use crate::attack::driver::{attack_image, attack_images, Engines, WHITE_BATCH};
use crate::attack::spec::Grid;
use crate::attack::threat::check_normalization;
use crate::attack::ImageResult;
use crate::engine::classifier::FloatEngine;
use crate::io::dataset::Dataset;
use crate::io::jsonl::{JsonlOptions, JsonlWriter};
use crate::io::progress::Progress;
use crate::report::{canonical_attack, SweepRecord};
use crate::variant::{VariantKind, VariantSpec};
use crate::zoo::{ZooEntry, ZooManifest, MANIFEST};
use crate::{Error, Result};

/// Everything `bbed sweep` takes (the data set is passed separately, already loaded).
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub zoo: PathBuf,
    pub config: PathBuf,
    pub out: PathBuf,
    /// Images attacked per cell (a seeded sample of the test set).
    pub images: usize,
    pub seed: u64,
    /// Reruns of random-start attacks (PGD); the paper uses 5.
    pub reruns: usize,
    pub shard: Option<Shard>,
    pub resume: bool,
    pub only_attacks: Option<Vec<String>>,
    /// Skip corrupt lines of an existing results file (with a warning) instead of failing.
    pub skip_corrupt: bool,
    /// Stop after appending this many records (tests use it to simulate a kill).
    pub max_records: Option<usize>,
    /// Show progress on stderr ([`crate::io::progress::Progress`]: a bar on a terminal, a line
    /// every few seconds otherwise).
    pub progress: bool,
}

/// What a sweep run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub out: PathBuf,
    /// Cells of this shard (all cells without `--shard`).
    pub cells: usize,
    /// Records this shard produces in total.
    pub records_total: usize,
    /// Records found in the results file at start (resume).
    pub records_existing: usize,
    /// Records appended by this run.
    pub records_written: usize,
    /// True when `max_records` stopped the run before the shard was complete.
    pub stopped_early: bool,
    pub seconds: f64,
}

impl SweepSummary {
    pub fn render(&self) -> String {
        format!(
            "sweep {}: {} cells, {} records ({} already present, {} written in {:.1} s){}\n",
            self.out.display(),
            self.cells,
            self.records_total,
            self.records_existing,
            self.records_written,
            self.seconds,
            if self.stopped_early {
                "; stopped early by --max-records, resume with --resume"
            } else {
                ""
            }
        )
    }
}

/// The compression kind as recorded (`vanilla`, `kd-kl`, `filter-prune`, `ch-prune`,
/// `kernel-prune`, `weight-prune`, `xnor`, `abc<M>` or `abc<M>x<N>`).
pub fn kind_label(spec: &VariantSpec) -> String {
    match spec.kind {
        VariantKind::Vanilla => "vanilla".into(),
        VariantKind::Kd => "kd-kl".into(),
        VariantKind::Filter => "filter-prune".into(),
        VariantKind::Channel => "ch-prune".into(),
        VariantKind::Kernel => "kernel-prune".into(),
        VariantKind::Weight => "weight-prune".into(),
        VariantKind::Xnor => "xnor".into(),
        VariantKind::Abc if spec.options.m == spec.options.n => format!("abc{}", spec.options.m),
        VariantKind::Abc => format!("abc{}x{}", spec.options.m, spec.options.n),
    }
}

/// A loaded zoo entry and the engines its attacks run on ([`Engines::all`]).
pub struct LoadedEntry {
    pub entry: ZooEntry,
    pub kind: String,
    pub engines: Engines,
}

impl LoadedEntry {
    /// The float engine (CAMs, logits).
    pub fn float(&self) -> &FloatEngine {
        self.engines
            .float()
            .expect("Engines::all always builds the float engine")
    }
}

/// Loads every entry of the zoo with the engines of every attack, checking first that every
/// weight file exists (so a broken zoo fails before any work), then that each network takes the
/// data set's images and classes.
pub fn load_zoo(dir: &Path, image_shape: [usize; 3], classes: usize) -> Result<Vec<LoadedEntry>> {
    let manifest = ZooManifest::load(dir)?;
    if manifest.entries.is_empty() {
        return Err(Error::input(
            dir.join(MANIFEST).display().to_string(),
            "the zoo has no entries",
        ));
    }
    for e in &manifest.entries {
        let w = dir.join(&e.weights);
        if !w.is_file() {
            return Err(Error::input(
                format!("{}: zoo entry {:?}", dir.join(MANIFEST).display(), e.name),
                format!("weight file {} does not exist", w.display()),
            ));
        }
    }
    let mut out = Vec::new();
    for e in manifest.entries {
        let ctx = format!("zoo entry {:?}", e.name);
        let net = e.load(dir)?;
        let input = net.cn.network.input;
        if input != image_shape {
            return Err(Error::input(
                &ctx,
                format!("network takes {input:?} images but the data set has {image_shape:?}"),
            ));
        }
        if net.cn.network.num_classes != classes {
            return Err(Error::input(
                &ctx,
                format!(
                    "network has {} classes but the data set has {classes}",
                    net.cn.network.num_classes
                ),
            ));
        }
        check_normalization(
            &net.cn.network.normalization,
            &format!("{ctx}.normalization"),
        )?;
        out.push(LoadedEntry {
            kind: kind_label(&e.variant),
            engines: Engines::all(net)?,
            entry: e,
        });
    }
    Ok(out)
}

/// Runs one attack on one image through the driver. `index` is the image's data-set index (it
/// picks the random streams); `seed` is the cell seed.
pub fn attack_one(
    loaded: &LoadedEntry,
    attack: &PlannedAttack,
    x: ArrayView3<f32>,
    label: usize,
    index: usize,
    seed: u64,
) -> Result<ImageResult> {
    let victim = loaded.engines.victim(&attack.spec)?;
    Ok(attack_image(victim, &attack.spec, x, label, index, seed)?.result)
}

type Key = (String, String, String, usize, usize);

fn record_key(r: &SweepRecord) -> Key {
    (
        r.variant.clone(),
        canonical_attack(&r.attack),
        r.setting.label(),
        r.rerun,
        r.result.index,
    )
}

/// The sampled images (unit scale), their labels and data-set indices.
pub struct ImageSubset {
    pub indices: Vec<usize>,
    pub images: Array4<f32>,
    pub labels: Vec<usize>,
    pub digest: String,
}

pub fn sample_images(data: &Dataset, n: usize, seed: u64) -> Result<ImageSubset> {
    if n == 0 {
        return Err(Error::input("--images", "must be at least 1"));
    }
    let indices = data.sample_indices(n, seed)?;
    let sub = data.subset(&indices)?;
    Ok(ImageSubset {
        images: sub.to_unit(0..sub.len())?,
        labels: sub.labels.iter().map(|&l| l as usize).collect(),
        digest: dataset_digest(&sub),
        indices,
    })
}

/// Runs (or resumes) a sweep; see the module docs.
pub fn run_sweep(opts: &SweepOptions, data: &Dataset) -> Result<SweepSummary> {
    let start = Instant::now();
    let config_ctx = opts.config.display().to_string();
    let config_text =
        std::fs::read_to_string(&opts.config).map_err(|e| Error::io(&opts.config, e))?;
    let points = Grid::from_toml(&config_text, &config_ctx)?.expand(&config_ctx)?;
    let attacks = plan_attacks(
        &points,
        opts.only_attacks.as_deref(),
        opts.reruns,
        &config_ctx,
    )?;
    let zoo = load_zoo(&opts.zoo, data.image_shape(), data.classes)?;
    let subset = sample_images(data, opts.images, opts.seed)?;
    let manifest_path = opts.zoo.join(MANIFEST);
    let manifest_bytes = std::fs::read(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;

    let cells_all = all_cells(zoo.len(), &attacks);
    let cells = shard_cells(&cells_all, opts.shard);
    let n_img = subset.indices.len();
    let header = SweepHeader {
        format: FORMAT,
        zoo: opts.zoo.display().to_string(),
        zoo_digest: digest(&manifest_bytes),
        entries: zoo.iter().map(|l| l.entry.name.clone()).collect(),
        config: config_ctx.clone(),
        config_digest: digest(config_text.as_bytes()),
        data: data.source.clone(),
        data_digest: subset.digest.clone(),
        seed: opts.seed,
        image_indices: subset.indices.clone(),
        classes: data.classes,
        reruns: opts.reruns,
        only_attacks: opts.only_attacks.clone(),
        shard: opts.shard,
        total_cells: cells_all.len(),
        total_records: cells_all.len() * n_img,
    };

    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let results_path = opts.out.join(RESULTS_FILE);
    match SweepHeader::load(&opts.out)? {
        Some(_) if !opts.resume => {
            return Err(Error::input(
                opts.out.display().to_string(),
                "already holds a sweep (sweep.json); pass --resume to continue it, or choose \
                 another --out",
            ));
        }
        Some(old) => {
            let diff = old.differences(&header, true);
            if !diff.is_empty() {
                return Err(Error::input(
                    opts.out
                        .join(super::header::HEADER_FILE)
                        .display()
                        .to_string(),
                    format!(
                        "--resume with different settings than the stored sweep: {}",
                        diff.join("; ")
                    ),
                ));
            }
        }
        None => {
            if results_path.exists() && !opts.resume {
                return Err(Error::input(
                    results_path.display().to_string(),
                    "a results file exists without a sweep header; refusing to append to it",
                ));
            }
            header.save(&opts.out)?;
        }
    }

    let (writer, state) = JsonlWriter::open_with(
        &results_path,
        JsonlOptions {
            resume: opts.resume,
            skip_corrupt: opts.skip_corrupt,
        },
        |v| {
            SweepRecord::deserialize(v)
                .ok()
                .map(|r: SweepRecord| record_key(&r))
        },
    )?;
    if state.duplicates > 0 {
        eprintln!(
            "warning: {}: {} records appear twice (was the file appended to by hand?); `bbed \
             report` will refuse it until the duplicates are removed",
            results_path.display(),
            state.duplicates
        );
    }
    let done = &state.completed;

    // Pending work per cell, with the records' fixed fields.
    let mut pending: Vec<(usize, Vec<usize>, u64)> = Vec::new();
    let mut records_existing = 0;
    for (ci, c) in cells.iter().enumerate() {
        let l = &zoo[c.entry];
        let a = &attacks[c.attack];
        let todo: Vec<usize> = (0..n_img)
            .filter(|&k| {
                let key = (
                    l.entry.name.clone(),
                    canonical_attack(&a.name),
                    a.setting.label(),
                    c.rerun,
                    subset.indices[k],
                );
                !done.contains(&key)
            })
            .collect();
        records_existing += n_img - todo.len();
        if !todo.is_empty() {
            let seed = cell_seed(opts.seed, &l.entry.name, &a.name, &a.setting, c.rerun);
            pending.push((ci, todo, seed));
        }
    }
    let records_total = cells.len() * n_img;

    // Counts are records of this shard; a resumed run starts at the records already present.
    let bar = Progress::new("sweep", "records", records_total as u64, opts.progress);
    bar.set_position(records_existing as u64);
    let cells_done_before = cells.len() - pending.len();
    bar.set_message(format!("cells {cells_done_before}/{}", cells.len()));

    let mut writer = writer;
    let mut claimed = 0usize;
    let limit = opts.max_records.unwrap_or(usize::MAX);
    let mut stopped = false;
    let mut cells_done = cells_done_before;
    'cells: for (ci, todo, seed) in &pending {
        let c = cells[*ci];
        let l = &zoo[c.entry];
        let a = &attacks[c.attack];
        let victim = l.engines.victim(&a.spec)?;
        // Batches of the driver's white-box size: a white-box attack runs each as one batch
        // through the engine, a black-box one runs its images in parallel.
        for part in todo.chunks(WHITE_BATCH) {
            let take = part.len().min(limit.saturating_sub(claimed));
            if take < part.len() {
                stopped = true;
            }
            if take == 0 {
                break 'cells;
            }
            let part = &part[..take];
            claimed += take;
            let x = stack(part.iter().map(|&k| subset.images.index_axis(Axis(0), k)));
            let labels: Vec<usize> = part.iter().map(|&k| subset.labels[k]).collect();
            let indices: Vec<usize> = part.iter().map(|&k| subset.indices[k]).collect();
            let outs = attack_images(victim, &a.spec, x.view(), &labels, &indices, *seed)?;
            for o in outs {
                let rec = SweepRecord {
                    variant: l.entry.name.clone(),
                    variant_kind: l.kind.clone(),
                    model: l.entry.model.clone(),
                    attack: a.name.clone(),
                    setting: a.setting.clone(),
                    rerun: c.rerun,
                    result: o.result,
                };
                writer.append(&rec)?;
                bar.inc(1);
            }
            if stopped {
                break 'cells;
            }
        }
        cells_done += 1;
        bar.set_message(format!("cells {cells_done}/{}", cells.len()));
    }
    if stopped {
        bar.abandon();
    } else {
        bar.finish_and_clear();
    }
    writer.sync()?;
    Ok(SweepSummary {
        out: opts.out.clone(),
        cells: cells.len(),
        records_total,
        records_existing,
        records_written: writer.appended(),
        stopped_early: stopped,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Every record key of a results set (for comparisons in tests and merge).
pub fn keys_of(records: &[SweepRecord]) -> BTreeSet<Key> {
    records.iter().map(record_key).collect()
}

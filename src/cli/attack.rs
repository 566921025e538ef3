//! `bbed attack`: one attack over the first `--limit` test images of a data set, through the
//! attack driver ([`crate::attack::driver`]: engine choice, targets, per-image records), the
//! same one `bbed sweep` uses.
//!
//! The attack is a subcommand whose flags are the spec's fields (`#[derive(clap::Args)]` on
//! each [`AttackSpec`] variant), named after their paths (`eps.scale` is `--eps-scale`), with the
//! spec's own defaults; `--spec FILE.toml` gives the same spec as a file instead. A subcommand and
//! `--spec` together are refused (flags never silently override a file). Errors name the flag
//! and the field path (`--eps-scale (pgd.eps.scale)`), or the file and the field path.
//!
//! With `--out`, each finished image is appended to a JSONL file as a
//! [`crate::report::SweepRecord`] (what `bbed report` reads), keyed by image index; images are
//! processed in chunks of `--chunk` (in parallel inside a chunk) so a killed run loses at most one
//! chunk. `--resume` skips images already in the file; a sidecar `<out>.meta.json` holds the run's
//! settings ([`RunMeta`]) and a resume with different settings is refused, naming what changed.
//! The final output covers every selected image, old and new.
//!
//! Inputs are identified by content, as the sweep identifies its zoo, config and data
//! ([`crate::sweep::header`]): the weights file, the data set's test split (pixels and labels)
//! and the resolved model description are fingerprinted; the attack spec and the variant are
//! recorded in full. Paths are kept for the reader only, so a moved but identical file resumes
//! and a changed file under the same path is refused.
//!
//! Before the weights are loaded and the engines built, the shared memory guard
//! ([`crate::io::limits::check_memory`]) checks the network's estimate for the images in flight.
//! Progress goes to stderr through [`crate::io::progress::Progress`] (a bar on a terminal, a line
//! every few seconds otherwise).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Args;
use ndarray::{Array3, Axis};
use serde::{Deserialize, Serialize};

use super::args::{FolderArgs, ModelArgs, VariantArgs};
use super::format::{render, Format, Tabular};
use crate::attack::batch::stack;
use crate::attack::driver::{attack_images, setting_of, Engines, WHITE_BATCH};
use crate::attack::save::{self, AdvSet};
use crate::attack::spec::ATTACK_NAMES;
use crate::attack::{summarize, AttackSpec, ImageResult, Scale, Target};
use crate::engine::exec::Net;
use crate::io::dataset::Dataset;
use crate::io::jsonl::{read_jsonl, JsonlWriter};
use crate::io::limits::check_memory;
use crate::io::output;
use crate::io::progress::Progress;
use crate::model::Network;
use crate::model::Normalization;
use crate::report::record::SweepRecord;
use crate::sweep::header::{dataset_digest, file_digest};
use crate::sweep::plan::digest;
use crate::variant::apply;
use crate::{Error, Result};

const AFTER: &str = "\
The run's flags go before the attack name, the attack's own flags after it
(`bbed attack pgd --help` lists them with units and defaults). Budgets carry a scale: pixel
(0-255), unit ([0,1]) or normalized (after the model's mean/std); --eps needs --eps-scale and
--step needs --step-scale. White-box attacks (fgsm, pgd, cw, deepfool) run on the float engine
(binarized layers: straight-through gradients); black-box attacks (localsearch, genattack) run
on the bit-exact XNOR engine when a layer is binarized, query-only. --spec FILE gives the
attack as TOML instead of a subcommand (not both). --seed is the attack's randomness (per
image: streams (seed, image index)); --init-seed the random weights used without --weights.

Examples:
  bbed attack --model resnet20 --variant xnor --weights w.safetensors --data cifar-10-batches-bin \\
       --limit 500 --format json pgd --eps 0.5 --eps-scale normalized --step 0.5 \\
       --step-scale normalized --iterations 10
  bbed attack --model resnet20 --data test_batch.bin --out ga.jsonl --resume \\
       genattack --eps 8 --eps-scale pixel --generations 100 --population 6 --targeted --target random
  bbed attack --model resnet20 --data test_batch.bin --spec my_attack.toml";

#[derive(Debug, Args)]
#[command(
    after_help = AFTER,
    subcommand_value_name = "ATTACK",
    subcommand_help_heading = "Attacks"
)]
pub struct AttackArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub variant: VariantArgs,
    /// Weights (safetensors, as `bbed train` writes them); default: random init from --init-seed
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the random weight initialisation used when no --weights are given
    #[arg(long, default_value_t = 0)]
    pub init_seed: u64,
    /// Data set: CIFAR-10 binary dir/file, MNIST-family IDX dir or an image folder (its test split is attacked)
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Attack only the first N test images
    #[arg(long)]
    pub limit: Option<usize>,
    /// The attack as a TOML file (`attack = "pgd"` plus its fields) instead of a subcommand
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Seed of every random choice of the attack (per image: stream = image index)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Append per-image records (JSONL) here as they finish
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue an existing --out file, skipping images already in it
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Write the adversarial images (u8 pixels and unit-scale floats, with labels, predictions and
    /// the settings) to FILE: .safetensors, or .npy (+ FILE.u8.npy, FILE.meta.json); also
    /// STEM.grid.png (clean / adversarial / amplified difference of the first images)
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub save_adv: Option<PathBuf>,
    /// Replace existing --save-adv files
    #[arg(long, requires = "save_adv")]
    pub force: bool,
    /// Images per chunk: attacked as batches, then saved
    #[arg(long, default_value_t = 32)]
    pub chunk: usize,
    /// Output format (json: per-image results and aggregates)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The attack and its parameters (or --spec FILE)
    #[command(subcommand)]
    pub attack: Option<AttackSpec>,
}

/// Images of a run, one CHW array each.
type Images = Vec<Array3<f32>>;

/// Where a spec came from, for error messages.
enum Source<'a> {
    Flags,
    File(&'a Path),
}

impl Source<'_> {
    /// How an error names field `path` of attack `name`: the flag and the field path, or the file
    /// and the field path.
    fn field(&self, name: &str, path: &str) -> String {
        match self {
            Source::Flags => format!("--{} ({name}.{path})", path.replace(['.', '_'], "-")),
            Source::File(p) => format!("{}: {name}.{path}", p.display()),
        }
    }
}

/// The attack of this run, validated; errors name the flag or the file, and the field path.
fn load_spec(a: &AttackArgs) -> Result<(AttackSpec, Source<'_>)> {
    match (&a.spec, &a.attack) {
        (Some(p), None) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            let spec = AttackSpec::from_toml(&text, &p.display().to_string())?;
            Ok((spec, Source::File(p)))
        }
        (None, Some(spec)) => {
            let name = spec.name();
            spec.validate(name).map_err(|e| match e {
                Error::Input { context, message } => match context.strip_prefix(name) {
                    Some(path) => Error::input(
                        Source::Flags.field(name, path.trim_start_matches('.')),
                        message,
                    ),
                    None => Error::input(context, message),
                },
                other => other,
            })?;
            Ok((spec.clone(), Source::Flags))
        }
        (Some(_), Some(spec)) => Err(Error::input(
            "--spec",
            format!(
                "given together with the `{}` subcommand: give the attack either as --spec FILE or \
                 as a subcommand with its flags (flags do not override a spec file)",
                spec.name()
            ),
        )),
        (None, None) => Err(Error::input(
            "attack",
            format!(
                "no attack given: name one ({}) with its flags after the run's flags, or pass \
                 --spec FILE",
                ATTACK_NAMES.join(", ")
            ),
        )),
    }
}

/// Everything that determines a run's per-image records; a resume must match it exactly, except
/// the paths (`model`, `weights`, `data`), which are for the reader: identity is by content
/// (module doc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// `--model` as given (informational).
    pub model: String,
    /// Fingerprint of the resolved network description (built-in or TOML, with --input and
    /// --classes applied). Empty in files written before fingerprints were recorded.
    #[serde(default)]
    pub model_digest: String,
    pub input: [usize; 3],
    pub classes: usize,
    pub variant: crate::variant::VariantSpec,
    /// `--weights` as given (informational).
    pub weights: Option<String>,
    /// Fingerprint of the weights file's bytes.
    #[serde(default)]
    pub weights_digest: Option<String>,
    pub init_seed: Option<u64>,
    /// `--data` as given (informational).
    pub data: String,
    /// Fingerprint of the test split's pixels and labels (every image, so a larger --limit
    /// resumes).
    #[serde(default)]
    pub data_digest: String,
    pub attack: AttackSpec,
    pub seed: u64,
}

impl RunMeta {
    /// What differs from `new` (this is the stored run), one `what: stored vs new` per field;
    /// the paths are named beside their fingerprints, never compared.
    pub fn differences(&self, new: &RunMeta) -> Vec<String> {
        fn show<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap_or_default()
        }
        let mut d = Vec::new();
        let mut cmp = |what: String, stored: String, now: String| {
            if stored != now {
                d.push(format!("{what}: {stored} vs {now}"));
            }
        };
        cmp(
            format!(
                "model_digest (model description of --model {} / {})",
                self.model, new.model
            ),
            self.model_digest.clone(),
            new.model_digest.clone(),
        );
        cmp("input".into(), show(&self.input), show(&new.input));
        cmp("classes".into(), show(&self.classes), show(&new.classes));
        cmp("variant".into(), show(&self.variant), show(&new.variant));
        let path = |p: &Option<String>| p.as_deref().unwrap_or("none").to_string();
        cmp(
            format!(
                "weights_digest (content of --weights {} / {})",
                path(&self.weights),
                path(&new.weights)
            ),
            show(&self.weights_digest),
            show(&new.weights_digest),
        );
        cmp(
            "init_seed".into(),
            show(&self.init_seed),
            show(&new.init_seed),
        );
        cmp(
            format!(
                "data_digest (test images and labels of --data {} / {})",
                self.data, new.data
            ),
            self.data_digest.clone(),
            new.data_digest.clone(),
        );
        cmp("attack".into(), show(&self.attack), show(&new.attack));
        cmp("seed".into(), show(&self.seed), show(&new.seed));
        d
    }
}

/// The settings of a run; the content fingerprints of its inputs (module doc) only with
/// `fingerprints` (they read every weight and pixel byte, and only `--out` runs compare them).
fn run_meta(
    a: &AttackArgs,
    network: &Network,
    variant: &crate::variant::VariantSpec,
    test: &Dataset,
    spec: &AttackSpec,
    fingerprints: bool,
) -> Result<RunMeta> {
    let (model_digest, weights_digest, data_digest) = if fingerprints {
        let model_json = serde_json::to_vec(network).expect("a network serializes");
        (
            digest(&model_json),
            a.weights.as_deref().map(file_digest).transpose()?,
            dataset_digest(test),
        )
    } else {
        Default::default()
    };
    Ok(RunMeta {
        model: a.model.model.clone(),
        model_digest,
        input: network.input,
        classes: network.num_classes,
        variant: variant.clone(),
        weights: a.model.weights_source(a.weights.as_deref()),
        weights_digest,
        init_seed: a
            .model
            .weights_source(a.weights.as_deref())
            .is_none()
            .then_some(a.init_seed),
        data: display(&a.data),
        data_digest,
        attack: spec.clone(),
        seed: a.seed,
    })
}

fn meta_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

fn check_meta(out: &Path, meta: &RunMeta, resume: bool) -> Result<()> {
    let path = meta_path(out);
    if resume && path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let old: RunMeta = serde_json::from_str(&text).map_err(|e| {
            Error::input(
                path.display().to_string(),
                format!("malformed run settings: {e}"),
            )
        })?;
        let differ = old.differences(meta);
        if !differ.is_empty() {
            return Err(Error::input(
                "--resume",
                format!(
                    "{} was written with different settings ({}); use the same flags and inputs \
                     or another --out",
                    out.display(),
                    differ.join("; ")
                ),
            ));
        }
        return Ok(());
    }
    let bytes = serde_json::to_vec_pretty(meta).expect("meta serializes");
    crate::io::atomic::write_bytes_atomic(&path, &bytes)
}

/// Images one black-box attack of one image sends through the network at once: the population
/// for GenAttack, at most one probe batch for LocalSearch (for the memory guard).
fn images_per_attack(spec: &AttackSpec) -> usize {
    match spec {
        AttackSpec::GenAttack(s) => s.population,
        AttackSpec::LocalSearch(s) => s.config().batch,
        _ => 1,
    }
}

/// One image in the output (the JSONL records keep the full [`ImageResult`], trace included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRow {
    pub index: usize,
    pub label: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<usize>,
    pub clean_pred: usize,
    pub adv_pred: usize,
    pub success: bool,
    pub l0: usize,
    pub l2: f32,
    pub linf: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queries: Option<u64>,
    pub loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl From<&ImageResult> for ImageRow {
    fn from(r: &ImageResult) -> Self {
        ImageRow {
            index: r.index,
            label: r.label,
            target: r.target,
            clean_pred: r.clean_pred,
            adv_pred: r.adv_pred,
            success: r.success,
            l0: r.l0,
            l2: r.l2,
            linf: r.linf,
            iterations: r.iterations,
            queries: r.queries,
            loss: r.loss,
            warning: r.warning.clone(),
        }
    }
}

/// A distinct warning and how many images carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarningCount {
    pub message: String,
    pub images: usize,
}

/// What `bbed attack --format json` prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackReport {
    pub model: String,
    pub variant: String,
    /// `float` or `binary` (bit-exact XNOR + popcount).
    pub engine: String,
    /// Weight file, or `None` for a random initialisation (`init_seed`).
    pub weights: Option<String>,
    pub init_seed: Option<u64>,
    pub data: String,
    pub attack: AttackSpec,
    pub seed: u64,
    /// Scale of every norm below (`linf`, `l2`).
    pub scale: Scale,
    pub normalization: Normalization,
    pub count: usize,
    pub accuracy_clean: f32,
    pub accuracy_adv: f32,
    pub mean_loss: Option<f32>,
    /// Share of all images with `success` (counts images already misclassified).
    pub success_rate_all: f32,
    /// Images classified correctly before the attack.
    pub initially_correct: usize,
    /// Share of `success` among the initially correct images.
    pub success_rate_on_correct: Option<f32>,
    /// Targeted attacks: accuracy to the original label / to the target label.
    pub oa: Option<f32>,
    pub ta: Option<f32>,
    pub mean_queries: Option<f64>,
    /// Gradient masking and similar: results that are not a robustness figure.
    pub warnings: Vec<WarningCount>,
    pub images: Vec<ImageRow>,
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

pub fn run(a: AttackArgs) -> Result<String> {
    if a.chunk == 0 {
        return Err(Error::input("--chunk", "must be at least 1"));
    }
    let (spec, source) = load_spec(&a)?;
    let save_format = check_save_adv(&a)?;
    let (model, vspec) = a.model.load_spec(&a.variant)?;
    let network = model.network.clone();
    let cn = apply(&network, &vspec)?;
    let (_, test) = a.folder.load(&a.data)?;
    let shape = network.input;
    if test.image_shape() != shape {
        return Err(Error::input(
            "--data",
            format!(
                "{}: images are {:?} (C,H,W) but --model {} takes {shape:?}; pass --input {}",
                display(&a.data),
                test.image_shape(),
                a.model.model,
                test.image_shape().map(|v| v.to_string()).join(",")
            ),
        ));
    }
    if test.classes > network.num_classes {
        return Err(Error::input(
            "--data",
            format!(
                "{}: {} classes but --model {} has {} outputs; pass --classes {}",
                display(&a.data),
                test.classes,
                a.model.model,
                network.num_classes,
                test.classes
            ),
        ));
    }
    if let Some(Target::Class(c)) = spec.target() {
        if c >= network.num_classes {
            return Err(Error::input(
                source.field(spec.name(), "target"),
                format!(
                    "class {c} but the model has {} classes",
                    network.num_classes
                ),
            ));
        }
    }
    crate::attack::threat::check_normalization(&network.normalization, "--model normalization")?;
    let n = a.limit.unwrap_or(test.len()).min(test.len());
    if n == 0 {
        return Err(Error::input("--limit", "no images selected"));
    }
    // The guard runs before the weights are loaded and the engines built. Images in flight: a
    // white-box attack sends one batch of at most `WHITE_BATCH` images of the chunk through the
    // taped pass; a black-box attack one image per thread of a chunk, each sending
    // `images_per_attack` at once. The estimate counts the parameters twice (the loaded ones and
    // an engine's), every layer's output and gradient for the images alive in the network at
    // once (a white-box batch keeps its tape; a black-box query runs on its thread), the query
    // batches' inputs and the chunk's images in unit scale.
    let threads = rayon::current_num_threads().max(1);
    let (queried, live) = if spec.is_white_box() {
        let batch = a.chunk.min(n).min(WHITE_BATCH);
        (batch, batch)
    } else {
        let q = a
            .chunk
            .min(n)
            .min(threads)
            .saturating_mul(images_per_attack(&spec));
        (q, q.min(threads))
    };
    let image_bytes = (shape.iter().product::<usize>() as u64).saturating_mul(4);
    let inputs = (a.chunk.min(n).saturating_add(queried) as u64).saturating_mul(image_bytes);
    check_memory(
        &format!("model {}", network.name),
        network.memory_estimate(live, 2, 2).saturating_add(inputs),
        "choose a smaller model or a lower --chunk",
    )?;
    let params = a
        .model
        .params(&model, &cn, a.weights.as_deref(), a.init_seed)?;
    let engines = Engines::for_attack(Net::new(cn, params)?, &spec)?;
    let victim = engines.victim(&spec)?;
    let model_name = network.name.clone();
    let meta = run_meta(&a, &network, &vspec, &test, &spec, a.out.is_some())?;

    let key = |v: &serde_json::Value| v["result"]["index"].as_u64();
    let (mut writer, done) = match &a.out {
        Some(p) => {
            let (w, state) = JsonlWriter::open(p, a.resume, key)?;
            check_meta(p, &meta, a.resume)?;
            (Some(w), state.completed)
        }
        None => (None, BTreeSet::new()),
    };
    let todo: Vec<usize> = (0..n).filter(|i| !done.contains(&(*i as u64))).collect();
    let record = |r: ImageResult| SweepRecord {
        variant: format!("{model_name}-{}", vspec.kind.name()),
        variant_kind: vspec.kind.name().into(),
        model: model_name.clone(),
        attack: spec.name().into(),
        setting: setting_of(&spec),
        rerun: 0,
        result: r,
    };

    // (clean, adversarial) images of this run, kept for --save-adv.
    let mut saved: Option<(Images, Images)> = save_format.map(|_| Default::default());
    let bar = Progress::new("attack", "images", n as u64, true);
    bar.set_position((n - todo.len()) as u64);
    let mut fresh: BTreeMap<usize, ImageResult> = BTreeMap::new();
    for chunk in todo.chunks(a.chunk) {
        let (lo, hi) = (chunk[0], chunk[chunk.len() - 1] + 1);
        let x = test.to_unit(lo..hi)?;
        let labels = test.labels_of(lo..hi)?;
        let xs = stack(chunk.iter().map(|&i| x.index_axis(Axis(0), i - lo)));
        let ls: Vec<usize> = chunk.iter().map(|&i| labels[i - lo] as usize).collect();
        let outs = attack_images(victim, &spec, xs.view(), &ls, chunk, a.seed)?;
        let mut results = Vec::with_capacity(outs.len());
        for (k, o) in outs.into_iter().enumerate() {
            if let Some((clean, adv)) = saved.as_mut() {
                clean.push(xs.index_axis(Axis(0), k).to_owned());
                adv.push(o.adv);
            }
            results.push(o.result);
        }
        for r in results {
            if let Some(w) = writer.as_mut() {
                w.append(&record(r.clone()))?;
            }
            bar.inc(1);
            fresh.insert(r.index, r);
        }
    }
    bar.finish_and_clear();
    drop(writer);

    // Old records come back from the file; the first record of an index wins (a duplicate can
    // only come from a torn resume and carries the same numbers).
    let mut all = fresh;
    if let (Some(p), false) = (&a.out, done.is_empty()) {
        for (line, v) in read_jsonl(p, false)?.records {
            let rec: SweepRecord = serde_json::from_value(v).map_err(|e| {
                Error::input(
                    format!("{}:{line}", display(p)),
                    format!("not an attack record: {e}"),
                )
            })?;
            if rec.result.index < n {
                all.entry(rec.result.index).or_insert(rec.result);
            }
        }
    }
    let results: Vec<ImageResult> = all.into_values().collect();
    let report = build_report(&a, &meta, &spec, &engines, &results);
    if let (Some(path), Some(format), Some((clean, adv))) = (&a.save_adv, save_format, saved) {
        // Without --resume every selected image is fresh, so `results` and the saved images
        // are the same images in the same (index) order.
        let set = AdvSet {
            clean: &stack(clean.iter().map(|v| v.view())),
            adv: &stack(adv.iter().map(|v| v.view())),
            index: results.iter().map(|r| r.index).collect(),
            label: results.iter().map(|r| r.label).collect(),
            target: results.iter().map(|r| r.target).collect(),
            clean_pred: results.iter().map(|r| r.clean_pred).collect(),
            adv_pred: results.iter().map(|r| r.adv_pred).collect(),
            settings: serde_json::json!({
                "run": meta,
                "engine": report.engine,
                "scale": report.scale,
                "normalization": report.normalization,
            }),
        };
        save::save(path, format, &set)?;
    }
    for w in &report.warnings {
        eprintln!(
            "warning: {} of {} images: {}",
            w.images, report.count, w.message
        );
    }
    Ok(render(a.format, &table(&report), &report))
}

/// The --save-adv format, with every file it writes checked against the output rules before
/// any work ([`crate::io::output`]).
fn check_save_adv(a: &AttackArgs) -> Result<Option<save::Format>> {
    let Some(path) = &a.save_adv else {
        return Ok(None);
    };
    let format = save::format_of("--save-adv", path)?;
    let mut inputs: Vec<(&str, &Path)> = vec![("--data", a.data.as_path())];
    for (flag, p) in [
        ("--weights", &a.weights),
        ("--spec", &a.spec),
        ("--out", &a.out),
    ] {
        if let Some(p) = p {
            inputs.push((flag, p.as_path()));
        }
    }
    for f in save::files(path, format) {
        output::check_file("--save-adv", &f, a.force, &inputs)?;
    }
    Ok(Some(format))
}

fn build_report(
    a: &AttackArgs,
    meta: &RunMeta,
    spec: &AttackSpec,
    engines: &Engines,
    results: &[ImageResult],
) -> AttackReport {
    let s = summarize(results);
    let mut warnings: BTreeMap<String, usize> = BTreeMap::new();
    for w in results.iter().filter_map(|r| r.warning.as_ref()) {
        *warnings.entry(w.clone()).or_default() += 1;
    }
    let queries: Vec<u64> = results.iter().filter_map(|r| r.queries).collect();
    AttackReport {
        model: a.model.model.clone(),
        variant: meta.variant.kind.name().into(),
        engine: engines.kind(spec).name().into(),
        weights: meta.weights.clone(),
        init_seed: meta.init_seed,
        data: meta.data.clone(),
        attack: spec.clone(),
        seed: a.seed,
        scale: spec.report_scale(),
        normalization: engines.model().normalization(),
        count: s.images,
        accuracy_clean: s.accuracy_clean,
        accuracy_adv: s.accuracy_adv,
        mean_loss: s.mean_loss,
        success_rate_all: s.success_rate_all,
        initially_correct: s.initially_correct,
        success_rate_on_correct: s.success_rate_on_correct,
        oa: s.oa,
        ta: s.ta,
        mean_queries: (!queries.is_empty())
            .then(|| queries.iter().sum::<u64>() as f64 / queries.len() as f64),
        warnings: warnings
            .into_iter()
            .map(|(message, images)| WarningCount { message, images })
            .collect(),
        images: results.iter().map(ImageRow::from).collect(),
    }
}

fn table(r: &AttackReport) -> Tabular {
    let mut t = Tabular::new(&["metric", "value"]);
    let scale = serde_json::to_value(r.scale).unwrap_or_default();
    let scale = scale.as_str().unwrap_or_default();
    let opt = |v: Option<f32>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let rows: Vec<(&str, String)> = vec![
        ("model", format!("{} ({})", r.model, r.variant)),
        ("engine", r.engine.clone()),
        ("attack", r.attack.name().into()),
        ("images", r.count.to_string()),
        ("accuracy_clean", format!("{:.4}", r.accuracy_clean)),
        ("accuracy_adv", format!("{:.4}", r.accuracy_adv)),
        ("initially_correct", r.initially_correct.to_string()),
        ("success_rate_on_correct", opt(r.success_rate_on_correct)),
        ("success_rate_all", format!("{:.4}", r.success_rate_all)),
        ("mean_loss", opt(r.mean_loss)),
        ("oa", opt(r.oa)),
        ("ta", opt(r.ta)),
        (
            "mean_linf",
            format!(
                "{:.4} ({scale})",
                r.images.iter().map(|i| i.linf as f64).sum::<f64>() / r.count.max(1) as f64
            ),
        ),
        (
            "mean_queries",
            r.mean_queries.map_or("-".into(), |q| format!("{q:.1}")),
        ),
    ];
    for (k, v) in rows {
        t.push(vec![k.into(), v]);
    }
    for w in &r.warnings {
        t.push(vec![
            "WARNING".into(),
            format!("{} images: {}", w.images, w.message),
        ]);
    }
    t
}

//! `bbed attack`: one attack over the first `--limit` test images of a data set, on the real
//! engines (see [`super::attack_run`] for which engine runs which attack).
//!
//! Flags map onto an [`AttackSpec`] (built as a TOML table and parsed by the spec itself), so
//! every default lives in `attack::spec` and `--spec FILE.toml` means exactly the same thing.
//! `--iters` is the attack's own iteration count: PGD iterations, C&W `max_iterations`, DeepFool
//! `max_iterations`, LocalSearch rounds R, GenAttack generations. `--step` shares `--eps-scale`
//! unless `--step-scale` is given. Norms in the output are in the attack's stated scale.
//!
//! With `--out`, each finished image is appended to a JSONL file as a
//! [`crate::report::SweepRecord`] (what `bbed report` reads), keyed by image index; images are
//! processed in chunks of `--chunk` (in parallel inside a chunk) so a killed run loses at most one
//! chunk. `--resume` skips images already in the file; a sidecar `<out>.meta.json` holds the run's
//! settings and a resume with different settings is refused. The final output covers every
//! selected image, old and new.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use clap::Args;
use ndarray::Axis;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::args::{FolderArgs, ModelArgs, VariantArgs};
use super::attack_run::{attack_image, report_scale, AttackEngine};
use super::format::{render, Format, Tabular};
use crate::attack::{summarize, AttackSpec, ImageResult, Scale};
use crate::engine::{exec::Net, params};
use crate::io::jsonl::{read_jsonl, JsonlWriter};
use crate::model::Normalization;
use crate::report::record::{Setting, SweepRecord};
use crate::variant::apply;
use crate::{Error, Result};

const AFTER: &str = "\
Budgets carry a scale: pixel (0-255), unit ([0,1]) or normalized (after the model's mean/std);
an --eps without --eps-scale is an error. --iters is PGD iterations, C&W/DeepFool max iterations,
LocalSearch rounds or GenAttack generations. White-box attacks (fgsm, pgd, cw, deepfool) run on
the float engine (binarized layers: straight-through gradients); black-box attacks (localsearch,
genattack) run on the bit-exact XNOR engine for xnor/abc variants, query-only.

Examples:
  bbed attack --model resnet20 --variant xnor --weights w.safetensors --data cifar-10-batches-bin \\
       --limit 500 --attack pgd --eps 0.5 --eps-scale normalized --step 0.5 --iters 10 --format json
  bbed attack --model resnet20 --data test_batch.bin --attack genattack --eps 8 --eps-scale pixel \\
       --iters 100 --population 6 --targeted --target random --out ga.jsonl --resume
  bbed attack --model resnet20 --data test_batch.bin --spec my_attack.toml";

const ATTACK_FLAGS: [&str; 13] = [
    "attack",
    "eps",
    "eps_scale",
    "step",
    "step_scale",
    "iters",
    "restarts",
    "norm",
    "targeted",
    "target",
    "c",
    "kappa",
    "population",
];

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct AttackArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub variant: VariantArgs,
    /// Weights (safetensors, as `bbed train` writes them); default: random init from --init-seed
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the random initialisation used when no --weights are given
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
    /// Attack from a TOML file (`attack = "pgd"` plus its fields) instead of the flags below
    #[arg(long, conflicts_with_all = ATTACK_FLAGS)]
    pub spec: Option<PathBuf>,
    /// fgsm, pgd, cw, deepfool, localsearch, genattack
    #[arg(long, required_unless_present = "spec")]
    pub attack: Option<String>,
    /// Perturbation budget (L-inf or L2 radius), in --eps-scale units
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// Scale of --eps (and of --step unless --step-scale): pixel, unit or normalized
    #[arg(long)]
    pub eps_scale: Option<String>,
    /// PGD step size alpha
    #[arg(long, allow_negative_numbers = true)]
    pub step: Option<f64>,
    /// Scale of --step (default: --eps-scale)
    #[arg(long)]
    pub step_scale: Option<String>,
    /// Iterations / rounds / generations (see below)
    #[arg(long)]
    pub iters: Option<usize>,
    /// PGD random restarts
    #[arg(long)]
    pub restarts: Option<usize>,
    /// PGD norm: linf or l2
    #[arg(long)]
    pub norm: Option<String>,
    /// Targeted attack (needs --target)
    #[arg(long)]
    pub targeted: bool,
    /// Target class: an index, `random` (uniform over the other classes) or `next` (label+1)
    #[arg(long)]
    pub target: Option<String>,
    /// C&W constant c
    #[arg(long, allow_negative_numbers = true)]
    pub c: Option<f64>,
    /// C&W confidence kappa
    #[arg(long, allow_negative_numbers = true)]
    pub kappa: Option<f64>,
    /// GenAttack population size N
    #[arg(long)]
    pub population: Option<usize>,
    /// Seed of every random choice of the attack (per image: stream = image index)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Append per-image records (JSONL) here as they finish
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue an existing --out file, skipping images already in it
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Images per chunk: attacked in parallel, then saved
    #[arg(long, default_value_t = 32)]
    pub chunk: usize,
    /// Output format (json: per-image results and aggregates)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Maps a spec field back to the flag that sets it, for error messages.
fn flag_of(field: &str) -> &'static str {
    match field {
        "eps" => "--eps",
        "step" => "--step",
        "iterations" | "max_iterations" | "rounds" | "generations" => "--iters",
        "restarts" => "--restarts",
        "norm" => "--norm",
        "target" => "--target",
        "targeted" => "--targeted",
        "c" => "--c",
        "confidence" => "--kappa",
        "population" => "--population",
        _ => "--attack",
    }
}

fn parse_scale(s: &str, flag: &str) -> Result<Scale> {
    match s {
        "pixel" => Ok(Scale::Pixel),
        "unit" => Ok(Scale::Unit),
        "normalized" => Ok(Scale::Normalized),
        _ => Err(Error::input(
            flag,
            format!("unknown scale '{s}'; expected pixel (0-255), unit ([0,1]) or normalized"),
        )),
    }
}

fn budget(value: f64, scale: Scale) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("value".into(), toml::Value::Float(value));
    let s = serde_json::to_value(scale).expect("scale serializes");
    t.insert(
        "scale".into(),
        toml::Value::String(s.as_str().unwrap_or_default().into()),
    );
    toml::Value::Table(t)
}

fn check_amount(v: f64, flag: &str) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::input(
            flag,
            format!("must be a finite number >= 0, got {v}"),
        ))
    }
}

/// The attack the flags describe. Errors name the flag.
pub fn spec_from_flags(a: &AttackArgs) -> Result<AttackSpec> {
    let raw = a
        .attack
        .as_deref()
        .ok_or_else(|| Error::input("--attack", "required unless --spec FILE is given"))?;
    let name: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    // (flag, given) pairs and, per attack, the flags it takes and the ones it needs.
    let given: [(&str, bool); 9] = [
        ("--eps", a.eps.is_some()),
        ("--step", a.step.is_some()),
        ("--iters", a.iters.is_some()),
        ("--restarts", a.restarts.is_some()),
        ("--norm", a.norm.is_some()),
        ("--targeted", a.targeted || a.target.is_some()),
        ("--c", a.c.is_some()),
        ("--kappa", a.kappa.is_some()),
        ("--population", a.population.is_some()),
    ];
    let (takes, needs): (&[&str], &[&str]) = match name.as_str() {
        "fgsm" => (&["--eps", "--targeted"], &["--eps"]),
        "pgd" => (
            &[
                "--eps",
                "--step",
                "--iters",
                "--restarts",
                "--norm",
                "--targeted",
            ],
            &["--eps", "--step", "--iters"],
        ),
        "cw" => (&["--iters", "--c", "--kappa", "--targeted"], &[]),
        "deepfool" => (&["--iters"], &[]),
        "localsearch" => (&["--eps", "--iters"], &["--eps"]),
        "genattack" => (
            &["--eps", "--iters", "--population", "--targeted"],
            &["--eps", "--iters"],
        ),
        _ => {
            return Err(Error::input(
                "--attack",
                format!(
                    "unknown attack '{raw}'; expected fgsm, pgd, cw, deepfool, localsearch or \
                     genattack"
                ),
            ))
        }
    };
    for (flag, on) in given {
        if on && !takes.contains(&flag) {
            return Err(Error::input(
                flag,
                format!("{name} takes no {flag} (it takes {})", takes.join(", ")),
            ));
        }
    }
    for flag in needs {
        if !given.iter().any(|(f, on)| f == flag && *on) {
            return Err(Error::input(*flag, format!("{name} needs {flag}")));
        }
    }

    let mut t = toml::Table::new();
    t.insert("attack".into(), toml::Value::String(name.clone()));
    let eps_scale = a
        .eps_scale
        .as_deref()
        .map(|s| parse_scale(s, "--eps-scale"))
        .transpose()?;
    if let Some(v) = a.eps {
        let scale = eps_scale.ok_or_else(|| {
            Error::input(
                "--eps-scale",
                format!(
                    "--eps {v} has no scale: add --eps-scale pixel (0-255), unit ([0,1]) or \
                     normalized (after the model's mean/std)"
                ),
            )
        })?;
        check_amount(v, "--eps")?;
        t.insert("eps".into(), budget(v, scale));
    } else if eps_scale.is_some() {
        return Err(Error::input("--eps-scale", "given without --eps"));
    }
    if let Some(v) = a.step {
        let scale = match a.step_scale.as_deref() {
            Some(s) => parse_scale(s, "--step-scale")?,
            None => eps_scale.ok_or_else(|| {
                Error::input(
                    "--step-scale",
                    "--step has no scale: add --eps-scale or --step-scale",
                )
            })?,
        };
        check_amount(v, "--step")?;
        t.insert("step".into(), budget(v, scale));
    } else if a.step_scale.is_some() {
        return Err(Error::input("--step-scale", "given without --step"));
    }
    if let Some(n) = a.iters {
        let field = match name.as_str() {
            "pgd" => "iterations",
            "localsearch" => "rounds",
            "genattack" => "generations",
            _ => "max_iterations",
        };
        t.insert(field.into(), toml::Value::Integer(n as i64));
    }
    if let Some(r) = a.restarts {
        t.insert("restarts".into(), toml::Value::Integer(r as i64));
    }
    if let Some(n) = &a.norm {
        if n != "linf" && n != "l2" {
            return Err(Error::input(
                "--norm",
                format!("unknown norm '{n}'; expected linf or l2"),
            ));
        }
        t.insert("norm".into(), toml::Value::String(n.clone()));
    }
    match (a.targeted, &a.target) {
        (true, None) => {
            return Err(Error::input(
                "--target",
                "--targeted needs --target N (a class index), random or next",
            ))
        }
        (false, Some(_)) => {
            return Err(Error::input(
                "--targeted",
                "--target given without --targeted",
            ))
        }
        (true, Some(s)) => {
            let v = match s.as_str() {
                "random" | "next" => toml::Value::String(s.clone()),
                _ => toml::Value::Integer(s.parse::<u32>().map_err(|_| {
                    Error::input(
                        "--target",
                        format!("'{s}' is not a class index, random or next"),
                    )
                })? as i64),
            };
            t.insert("targeted".into(), toml::Value::Boolean(true));
            t.insert("target".into(), v);
        }
        (false, None) => {}
    }
    if let Some(c) = a.c {
        check_amount(c, "--c")?;
        t.insert("c".into(), toml::Value::Float(c));
    }
    if let Some(k) = a.kappa {
        check_amount(k, "--kappa")?;
        t.insert("confidence".into(), toml::Value::Float(k));
    }
    if let Some(n) = a.population {
        t.insert("population".into(), toml::Value::Integer(n as i64));
    }
    AttackSpec::from_table(t, "flags").map_err(|e| match e {
        Error::Input { context, message } => {
            let field = context
                .strip_prefix("flags.")
                .and_then(|f| f.split('.').next())
                .unwrap_or("");
            Error::input(flag_of(field), message)
        }
        other => other,
    })
}

fn load_spec(a: &AttackArgs) -> Result<AttackSpec> {
    let spec = match &a.spec {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            AttackSpec::from_toml(&text, &p.display().to_string())?
        }
        None => spec_from_flags(a)?,
    };
    // The black-box configs check more than the spec does (e.g. population >= 2); check them
    // before any image is loaded, naming the flag or the spec file's field.
    let checked = match &spec {
        AttackSpec::LocalSearch(s) => s.config().validate(),
        AttackSpec::GenAttack(s) => s.config().validate(),
        _ => Ok(()),
    };
    checked.map_err(|e| match e {
        Error::Input { context, message } => {
            let field = context.rsplit('.').next().unwrap_or("");
            match &a.spec {
                Some(p) => Error::input(format!("{}: {field}", p.display()), message),
                None => Error::input(flag_of(field), message),
            }
        }
        other => other,
    })?;
    Ok(spec)
}

/// The Table 2 setting of a spec, as sweep records carry it.
pub fn setting_of(spec: &AttackSpec) -> Setting {
    let mut s = Setting::default();
    match spec {
        AttackSpec::Fgsm(p) => {
            s.eps = Some(p.eps.value);
            s.scale = Some(p.eps.scale);
        }
        AttackSpec::Pgd(p) => {
            s.eps = Some(p.eps.value);
            s.scale = Some(p.eps.scale);
            s.iterations = Some(p.iterations);
        }
        AttackSpec::Cw(p) => {
            s.c = Some(p.c);
            s.iterations = Some(p.max_iterations);
        }
        AttackSpec::DeepFool(p) => s.iterations = Some(p.max_iterations),
        AttackSpec::LocalSearch(p) => {
            s.eps = Some(p.eps.value);
            s.scale = Some(p.eps.scale);
            s.iterations = Some(p.rounds);
        }
        AttackSpec::GenAttack(p) => {
            s.eps = Some(p.eps.value);
            s.scale = Some(p.eps.scale);
            s.iterations = Some(p.generations);
            s.population = Some(p.population);
        }
    }
    s
}

/// Everything that determines a run's per-image records; a resume must match it exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub model: String,
    pub input: [usize; 3],
    pub classes: usize,
    pub variant: crate::variant::VariantSpec,
    pub weights: Option<String>,
    pub init_seed: Option<u64>,
    pub data: String,
    pub attack: AttackSpec,
    pub seed: u64,
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
        if &old != meta {
            let (a, b) = (
                serde_json::to_value(&old).unwrap_or_default(),
                serde_json::to_value(meta).unwrap_or_default(),
            );
            let differ: Vec<String> = b
                .as_object()
                .map(|o| {
                    o.keys()
                        .filter(|k| a.get(k.as_str()) != b.get(k.as_str()))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            return Err(Error::input(
                "--resume",
                format!(
                    "{} was written with different settings ({}); use the same flags or another \
                     --out",
                    out.display(),
                    differ.join(", ")
                ),
            ));
        }
        return Ok(());
    }
    let bytes = serde_json::to_vec_pretty(meta).expect("meta serializes");
    crate::io::atomic::write_bytes_atomic(&path, &bytes)
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
    pub success_rate: f32,
    /// Targeted attacks: accuracy to the original label / to the target label.
    pub oa: Option<f32>,
    pub ta: Option<f32>,
    pub mean_queries: Option<f64>,
    /// Gradient masking and similar: results that are not a robustness figure.
    pub warnings: Vec<WarningCount>,
    pub images: Vec<ImageRow>,
}

fn progress(n: u64) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(n);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "attack {bar:30} {pos}/{len} images  {elapsed_precise} eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

pub fn run(a: AttackArgs) -> Result<String> {
    if a.chunk == 0 {
        return Err(Error::input("--chunk", "must be at least 1"));
    }
    let spec = load_spec(&a)?;
    let vspec = a.variant.spec()?;
    let network = a.model.load()?;
    let cn = apply(&network, &vspec)?;
    let params = match &a.weights {
        Some(p) => params::load(&cn, p)?,
        None => params::init(&cn, a.init_seed),
    };
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
    if let Some(crate::attack::Target::Class(c)) = spec.target() {
        if c >= network.num_classes {
            return Err(Error::input(
                "--target",
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
    let engine = AttackEngine::for_attack(Net::new(cn, params)?, &spec)?;
    let model_name = network.name.clone();
    let meta = RunMeta {
        model: a.model.model.clone(),
        input: shape,
        classes: network.num_classes,
        variant: vspec.clone(),
        weights: a.weights.as_deref().map(display),
        init_seed: a.weights.is_none().then_some(a.init_seed),
        data: display(&a.data),
        attack: spec.clone(),
        seed: a.seed,
    };

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

    let bar = progress(todo.len() as u64);
    let mut fresh: BTreeMap<usize, ImageResult> = BTreeMap::new();
    for chunk in todo.chunks(a.chunk) {
        let (lo, hi) = (chunk[0], chunk[chunk.len() - 1] + 1);
        let x = test.to_unit(lo..hi)?;
        let labels = test.labels_of(lo..hi)?;
        let results: Vec<ImageResult> = chunk
            .par_iter()
            .map(|&i| {
                attack_image(
                    &engine,
                    &spec,
                    x.index_axis(Axis(0), i - lo),
                    labels[i - lo] as usize,
                    i,
                    a.seed,
                )
            })
            .collect::<Result<_>>()?;
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
    let report = build_report(&a, &meta, &spec, &engine, &results);
    for w in &report.warnings {
        eprintln!(
            "warning: {} of {} images: {}",
            w.images, report.count, w.message
        );
    }
    Ok(render(a.format, &table(&report), &report))
}

fn build_report(
    a: &AttackArgs,
    meta: &RunMeta,
    spec: &AttackSpec,
    engine: &AttackEngine,
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
        engine: engine.name().into(),
        weights: meta.weights.clone(),
        init_seed: meta.init_seed,
        data: meta.data.clone(),
        attack: spec.clone(),
        seed: a.seed,
        scale: report_scale(spec),
        normalization: engine.model().normalization(),
        count: s.images,
        accuracy_clean: s.accuracy_clean,
        accuracy_adv: s.accuracy_adv,
        mean_loss: s.mean_loss,
        success_rate: s.success_rate,
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
        ("success_rate", format!("{:.4}", r.success_rate)),
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

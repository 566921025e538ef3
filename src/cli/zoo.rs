//! `bbed zoo`: trains the paper's variant family of one base network into one folder with a
//! `manifest.json` ([`crate::zoo::ZooManifest`]): vanilla; KD-KL distilled from the vanilla
//! model (same architecture, T = 30); filter/channel/kernel/weight pruned from the vanilla model
//! at `--rate` and fine-tuned with masks fixed; XNOR and ABC 1x1/3x3/5x5 initialised from the
//! vanilla model.
//!
//! Resumable: each manifest entry records the settings it was trained with (epochs, rate,
//! batch, subsets, seed, data and vanilla-model fingerprints). An entry whose weight file exists
//! and whose settings equal this run's is skipped; one trained with other settings is refused
//! naming the setting, or re-trained from scratch with `--force`. An entry whose training was
//! killed resumes from its own checkpoint (`{entry}.safetensors.ckpt`), whose fingerprint refuses
//! other settings. The manifest is rewritten (atomically) after each entry. `--out` must be new,
//! empty or an earlier zoo (any other folder only with `--force`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::args::{FolderArgs, ModelArgs, VariantArgs};
use super::prune::prune_with;
use super::train::{data_digest, load_data, train_with_data, TrainArgs};
use crate::cost::{cost, NccParams};
use crate::io::output;
use crate::sweep::plan::digest;
use crate::variant::{check_rate, RateScope, VariantKind};
use crate::zoo::{ZooEntry, ZooManifest};
use crate::{Error, Result};

#[derive(Debug, Clone, Args)]
pub struct ZooArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Data directory (CIFAR-10 binary batches, MNIST-family IDX files or an image folder)
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Output folder
    #[arg(long)]
    pub out: PathBuf,
    /// Epochs of every from-scratch / binarized run
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Epochs of fine-tuning after pruning (default: --epochs)
    #[arg(long)]
    pub finetune_epochs: Option<usize>,
    /// Pruning rate for the four pruning schemes, in (0, 1)
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub rate: f64,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Train on a seeded subset of this many images (fast mode)
    #[arg(long)]
    pub subset: Option<usize>,
    /// Evaluate on a seeded subset of this many test images
    #[arg(long)]
    pub test_subset: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only these entries (comma-separated suffixes: vanilla,kd,filter,channel,kernel,weight,
    /// xnor,abc1x1,abc3x3,abc5x5); default all
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Use a non-empty --out that holds no zoo, and re-train entries whose recorded settings
    /// differ from this run's (their weights, checkpoint and log are replaced)
    #[arg(long)]
    pub force: bool,
}

/// Every entry suffix in training order (later ones depend on `vanilla`).
pub const ENTRIES: [&str; 10] = [
    "vanilla", "kd", "filter", "channel", "kernel", "weight", "xnor", "abc1x1", "abc3x3", "abc5x5",
];

fn variant_args(kind: &str) -> VariantArgs {
    let (variant, m, n) = match kind {
        "abc1x1" => ("abc", Some(1), Some(1)),
        "abc3x3" => ("abc", Some(3), Some(3)),
        "abc5x5" => ("abc", Some(5), Some(5)),
        k => (k, None, None),
    };
    VariantArgs {
        variant: Some(variant.into()),
        m,
        n,
        rate: None,
        rates: None,
        fp_first_last: None,
        shortcut: None,
        bn: None,
        scales: None,
        bias: None,
        index_bits: None,
    }
}

/// Builds the zoo; returns a summary table.
pub fn build(args: &ZooArgs, progress: bool) -> Result<ZooManifest> {
    // The rate of the four pruning schemes: the shared rule, as for a filter cut.
    check_rate(
        VariantKind::Filter,
        "--rate",
        args.rate,
        RateScope::Global { overrides: false },
    )?;
    let only: Vec<String> = match &args.only {
        Some(v) => {
            for e in v {
                if !ENTRIES.contains(&e.as_str()) {
                    return Err(Error::input(
                        "--only",
                        format!("{e:?} is not one of {}", ENTRIES.join(", ")),
                    ));
                }
            }
            v.clone()
        }
        None => ENTRIES.iter().map(|s| s.to_string()).collect(),
    };
    output::check_dir(
        "--out",
        &args.out,
        args.force,
        |d| d.join(crate::zoo::MANIFEST).is_file(),
        &[("--data", &args.data)],
    )?;
    let (train_set, test_set) = load_data(
        &args.data,
        &args.folder,
        args.subset,
        args.test_subset,
        args.seed,
    )?;
    let mut manifest = if args.out.join(crate::zoo::MANIFEST).exists() {
        ZooManifest::load(&args.out)?
    } else {
        ZooManifest {
            dataset: train_set.source.clone(),
            entries: Vec::new(),
        }
    };
    let base = args.model.model.clone();
    let stem = Path::new(&base)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or(base.clone());
    let file = |suffix: &str| format!("{stem}-{suffix}.safetensors");
    let vanilla = args.out.join(file("vanilla"));
    let data_id = serde_json::json!({
        "train": data_digest(&train_set),
        "test": data_digest(&test_set),
        "resize": args.folder.resize,
        "crop": args.folder.crop,
        "limit_per_class": args.folder.limit_per_class,
    });
    let ncc = NccParams::reference();
    for kind in ENTRIES {
        if !only.iter().any(|o| o == kind) {
            continue;
        }
        let name = format!("{stem}-{kind}");
        let weights = file(kind);
        if kind != "vanilla" && !vanilla.is_file() {
            return Err(Error::input(
                "--only",
                format!("{name} needs the vanilla model {} first", vanilla.display()),
            ));
        }
        let pruned = matches!(kind, "filter" | "channel" | "kernel" | "weight");
        let epochs = if pruned {
            args.finetune_epochs.unwrap_or(args.epochs)
        } else {
            args.epochs
        };
        let settings = settings(args, kind, epochs, &data_id, &vanilla)?;
        let ckpt = args.out.join(format!("{weights}.ckpt"));
        let log = args.out.join(format!("{stem}-{kind}.log.jsonl"));
        let mut retrain = false;
        if let Some(e) = manifest
            .entries
            .iter()
            .find(|e| e.name == name && args.out.join(&e.weights).is_file())
        {
            match changed(e.training.as_ref(), &settings) {
                None => {
                    eprintln!("zoo: {name} already trained with these settings, skipping");
                    continue;
                }
                Some(why) if !args.force => {
                    return Err(Error::input(
                        format!("zoo entry {name}"),
                        format!(
                            "was trained with other settings ({why}); pass --force to re-train                              it (its weights, checkpoint and log are replaced), or use another                              --out"
                        ),
                    ));
                }
                Some(why) => {
                    eprintln!("zoo: {name}: settings changed ({why}); re-training (--force)");
                    retrain = true;
                }
            }
        }
        if retrain {
            for f in [&ckpt, &log] {
                if f.exists() {
                    std::fs::remove_file(f).map_err(|e| Error::io(f, e))?;
                }
            }
        }
        let started = Instant::now();
        let mut init = None;
        if pruned {
            let p = args.out.join(format!("{stem}-{kind}.pruned.safetensors"));
            let mut spec =
                crate::variant::VariantSpec::new(crate::variant::VariantKind::parse(kind)?);
            spec.options.rate = args.rate;
            prune_with(&args.model, &vanilla, &spec, &p)?;
            init = Some(p);
        } else if kind.starts_with("abc") || kind == "xnor" {
            init = Some(vanilla.clone());
        }
        let mut va = variant_args(kind);
        if pruned {
            va.rate = Some(args.rate);
        }
        let targs = TrainArgs {
            model: args.model.clone(),
            variant: va,
            data: args.data.clone(),
            folder: args.folder.clone(),
            epochs,
            out: args.out.join(&weights),
            seed: args.seed,
            init,
            teacher: (kind == "kd").then(|| vanilla.clone()),
            teacher_model: None,
            temperature: 30.0,
            kd_weight: 0.5,
            // Fine-tuning starts from trained weights: a tenth of the from-scratch rate.
            lr: pruned.then_some(0.01),
            schedule: "cosine".into(),
            optimizer: None,
            momentum: 0.9,
            weight_decay: None,
            batch: args.batch,
            augment_pad: None,
            subset: None,
            test_subset: None,
            checkpoint: None,
            // Continue a killed run of this entry from its own checkpoint (its fingerprint
            // refuses one written with other settings).
            resume: ckpt.exists(),
            log: Some(log),
            // The zoo owns its folder; whether an entry may be replaced was decided above.
            force: true,
        };
        let o = train_with_data(&targs, &train_set, &test_set, progress, false)?;
        let c = cost(&o.network, &ncc);
        eprintln!(
            "zoo: {name}: accuracy {:.2}% ({:.0}s)",
            100.0 * o.accuracy,
            started.elapsed().as_secs_f64()
        );
        manifest.entries.retain(|e| e.name != name);
        manifest.entries.push(ZooEntry {
            name,
            model: base.clone(),
            input: args.model.input,
            classes: args.model.classes,
            variant: o.network.spec.clone(),
            weights: PathBuf::from(weights),
            accuracy: Some(o.accuracy as f32),
            cost: Some(serde_json::to_value(&c.total).map_err(|e| {
                Error::internal("cost", format!("cannot serialise the cost report: {e}"))
            })?),
            training: Some(settings),
        });
        manifest.save(&args.out)?;
    }
    Ok(manifest)
}

/// The settings an entry is trained with (recorded in its manifest entry): every flag that
/// changes its weights, the data's content fingerprint and, for entries built from the vanilla
/// model, that model's fingerprint (a re-trained vanilla model makes them stale).
fn settings(
    args: &ZooArgs,
    kind: &str,
    epochs: usize,
    data: &serde_json::Value,
    vanilla: &Path,
) -> Result<serde_json::Value> {
    let pruned = matches!(kind, "filter" | "channel" | "kernel" | "weight");
    let from_vanilla = if kind == "vanilla" {
        None
    } else {
        let bytes = std::fs::read(vanilla).map_err(|e| Error::io(vanilla, e))?;
        Some(digest(&bytes))
    };
    Ok(serde_json::json!({
        "model": args.model.model,
        "input": args.model.input,
        "classes": args.model.classes,
        "epochs": epochs,
        "rate": pruned.then_some(args.rate),
        "batch": args.batch,
        "subset": args.subset,
        "test_subset": args.test_subset,
        "seed": args.seed,
        "data": data,
        "vanilla": from_vanilla,
    }))
}

/// The first setting that differs between the recorded and this run's (`None`: same).
fn changed(recorded: Option<&serde_json::Value>, now: &serde_json::Value) -> Option<String> {
    let Some(old) = recorded else {
        return Some("no settings recorded in the manifest".into());
    };
    if old == now {
        return None;
    }
    let empty = serde_json::Map::new();
    let (a, b) = (
        old.as_object().unwrap_or(&empty),
        now.as_object().unwrap_or(&empty),
    );
    let key = b
        .keys()
        .chain(a.keys())
        .find(|k| a.get(*k) != b.get(*k))
        .cloned()
        .unwrap_or_default();
    let show = |m: &serde_json::Map<String, serde_json::Value>| {
        m.get(&key)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    };
    Some(format!("{key}: manifest {}, now {}", show(a), show(b)))
}

pub fn run(args: ZooArgs) -> Result<String> {
    let m = build(&args, true)?;
    let mut s = format!(
        "{:<24} {:<16} {:>9} {:>12}\n",
        "entry", "variant", "accuracy", "NCC[1e6]"
    );
    for e in &m.entries {
        let ncc = e
            .cost
            .as_ref()
            .and_then(|c| c.get("ncc"))
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NAN);
        s.push_str(&format!(
            "{:<24} {:<16} {:>8.2}% {:>12.3}\n",
            e.name,
            e.variant.label(),
            100.0 * e.accuracy.unwrap_or(f32::NAN),
            ncc
        ));
    }
    s.push_str(&format!(
        "manifest -> {}\n",
        args.out.join(crate::zoo::MANIFEST).display()
    ));
    Ok(s)
}

//! `bbed zoo`: trains the paper's variant family of one base network into one folder with a
//! `manifest.json` ([`crate::zoo::ZooManifest`]): vanilla; KD-KL distilled from the vanilla
//! model (same architecture, T = 30); filter/channel/kernel/weight pruned from the vanilla model
//! at `--rate` and fine-tuned with masks fixed; XNOR and ABC 1x1/3x3/5x5 initialised from the
//! vanilla model.
//!
//! Resumable: an entry already in the manifest whose weight file exists is skipped; an entry
//! whose training was killed resumes from its own checkpoint (`{entry}.safetensors.ckpt`). The
//! manifest is rewritten (atomically) after each entry.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::args::{FolderArgs, ModelArgs, VariantArgs};
use super::prune::prune_with;
use super::train::{load_data, train_with_data, TrainArgs};
use crate::cost::{cost, NccParams};
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
        variant: variant.into(),
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
    if !(args.rate > 0.0 && args.rate < 1.0) {
        return Err(Error::input(
            "--rate",
            format!(
                "pruning rate {} is not in the open interval (0, 1)",
                args.rate
            ),
        ));
    }
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
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
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
    let ncc = NccParams::reference();
    for kind in ENTRIES {
        if !only.iter().any(|o| o == kind) {
            continue;
        }
        let name = format!("{stem}-{kind}");
        let weights = file(kind);
        if manifest
            .entries
            .iter()
            .any(|e| e.name == name && args.out.join(&e.weights).is_file())
        {
            eprintln!("zoo: {name} already trained, skipping");
            continue;
        }
        if kind != "vanilla" && !vanilla.is_file() {
            return Err(Error::input(
                "--only",
                format!("{name} needs the vanilla model {} first", vanilla.display()),
            ));
        }
        let started = Instant::now();
        let pruned = matches!(kind, "filter" | "channel" | "kernel" | "weight");
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
            epochs: if pruned {
                args.finetune_epochs.unwrap_or(args.epochs)
            } else {
                args.epochs
            },
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
            // Continue a killed run of this entry from its own checkpoint.
            resume: args.out.join(format!("{weights}.ckpt")).exists(),
            log: Some(args.out.join(format!("{stem}-{kind}.log.jsonl"))),
        };
        let o = train_with_data(&targs, &train_set, &test_set, progress)?;
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
        });
        manifest.save(&args.out)?;
    }
    Ok(manifest)
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

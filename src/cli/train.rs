//! `bbed train`: train one variant of a network on a data set and save its weights.
//!
//! Recipe defaults (every one overridable by a flag):
//! - full-precision variants (vanilla, kd, pruned): SGD, momentum 0.9, weight decay 1e-4 (He et
//!   al. 2016's CIFAR ResNet recipe), base lr 0.1, cosine decay to 0, batch 128;
//! - binarized variants (xnor, abc): Adam (PyTorch defaults, betas 0.9/0.999), lr 1e-3, no weight
//!   decay, cosine decay to 0, batch 128, first/last layers full precision, initialised from a
//!   trained full-precision model (`--init`). This is the larq-zoo style recipe (Adam + decaying
//!   lr, latent weights initialised from fp); the XNOR-Net and ABC-Net reference code also use
//!   Adam with a decaying rate.
//! - augmentation: 4-pixel pad + random crop + horizontal flip for 3-channel (CIFAR-like) data,
//!   none for 1-channel data (Fashion-MNIST), unless `--augment-pad` says otherwise.
//! - distillation (`--teacher`): `L = a T^2 KL(p_t || p_s) + (1 - a) CE` ([`crate::train::kd`]),
//!   temperature 30 (the paper), `a = 0.5`; the teacher runs in inference mode.
//!
//! The checkpoint (`{out}.ckpt` unless `--checkpoint`) is written every epoch; `--resume`
//! continues it exactly. Masks stored in the `--init` file (`{weight}.mask`, from `bbed prune`)
//! stay fixed throughout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::args::{FolderArgs, ModelArgs, VariantArgs};
use crate::engine::params;
use crate::io::limits::check_memory;
use crate::io::{output, Dataset};
use crate::model::Network;
use crate::sweep::plan::{digest, fnv1a, FNV_OFFSET};
use crate::train::physical::{load_with_masks, save_with_masks};
use crate::train::{
    evaluate, train, KdConfig, NetModel, OptimizerConfig, RunOptions, Schedule, TrainConfig,
    TrainReport,
};
use crate::variant::{self, CompressedNetwork, VariantKind, VariantSpec};
use crate::{Error, Result};

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub variant: VariantArgs,
    /// Data directory (CIFAR-10 binary batches, MNIST-family IDX files or an image folder)
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub folder: FolderArgs,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Where the trained weights go (safetensors)
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Initial weights (a trained fp model for binarized variants, a `bbed prune` output for
    /// fine-tuning pruned variants)
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Teacher weights for distillation (a vanilla model of --teacher-model)
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Teacher architecture (default: --model)
    #[arg(long)]
    pub teacher_model: Option<String>,
    #[arg(long, default_value_t = 30.0)]
    pub temperature: f32,
    /// Weight a of the KD term (1 - a goes to cross-entropy)
    #[arg(long, default_value_t = 0.5)]
    pub kd_weight: f32,
    /// Base learning rate (default 0.1 for SGD, 1e-3 for Adam)
    #[arg(long)]
    pub lr: Option<f32>,
    #[arg(long, value_parser = ["cosine", "step", "constant"], default_value = "cosine")]
    pub schedule: String,
    /// sgd or adam (default: sgd for fp variants, adam for binarized ones)
    #[arg(long, value_parser = ["sgd", "adam"])]
    pub optimizer: Option<String>,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Weight decay (default 1e-4 for SGD, 0 for Adam)
    #[arg(long)]
    pub weight_decay: Option<f32>,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Pad for pad+crop+flip augmentation; 0 disables (default 4 for 3-channel data, else 0)
    #[arg(long)]
    pub augment_pad: Option<usize>,
    /// Train on a seeded random subset of this many training images
    #[arg(long)]
    pub subset: Option<usize>,
    /// Evaluate on a seeded random subset of this many test images
    #[arg(long)]
    pub test_subset: Option<usize>,
    /// Checkpoint file (default: OUT.ckpt)
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint
    #[arg(long)]
    pub resume: bool,
    /// JSONL log of loss/accuracy per epoch
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Replace an existing --out (never one of the inputs)
    #[arg(long)]
    pub force: bool,
}

/// What a finished run produced.
pub struct TrainOutcome {
    pub network: CompressedNetwork,
    pub report: TrainReport,
    /// Test accuracy / loss of the saved weights on the evaluation split.
    pub accuracy: f64,
    pub loss: f64,
    pub seconds: f64,
}

/// The data split a run uses (subsets applied), checked against the network input.
pub fn load_data(
    dir: &Path,
    folder: &FolderArgs,
    subset: Option<usize>,
    test_subset: Option<usize>,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    let (train, test) = folder.load(dir).map_err(|e| match e {
        Error::Io { source, .. } => Error::input(
            format!("--data {}", dir.display()),
            format!(
                "{source}; expected a CIFAR-10 binary directory (data_batch_1..5.bin, \
                 test_batch.bin) or an MNIST-family IDX directory (train-images-idx3-ubyte[.gz], \
                 t10k-images-idx3-ubyte[.gz], ...)"
            ),
        ),
        Error::Input { message, .. } => Error::input(format!("--data {}", dir.display()), message),
        other => other,
    })?;
    let train = train.ok_or_else(|| {
        Error::input(
            format!("--data {}", dir.display()),
            "holds only a test split; training needs the training files too \
             (data_batch_1..5.bin or train-images/train-labels IDX files)",
        )
    })?;
    let train = match subset {
        Some(n) if n < train.len() => train.sample(n, seed ^ 0x5EED)?,
        _ => train,
    };
    let test = match test_subset {
        Some(n) if n < test.len() => test.sample(n, seed ^ 0x7E57)?,
        _ => test,
    };
    Ok((train, test))
}

fn check_input(net: &Network, data: &Dataset) -> Result<()> {
    if net.input != data.image_shape() {
        return Err(Error::input(
            "--input",
            format!(
                "the network takes {:?} images but {} holds {:?} (pass --input {})",
                net.input,
                data.source,
                data.image_shape(),
                data.image_shape().map(|v| v.to_string()).join(",")
            ),
        ));
    }
    if net.num_classes != data.classes {
        return Err(Error::input(
            "--classes",
            format!(
                "the network has {} classes, {} has {}",
                net.num_classes, data.source, data.classes
            ),
        ));
    }
    Ok(())
}

fn is_binary(spec: &VariantSpec) -> bool {
    matches!(spec.kind, VariantKind::Xnor | VariantKind::Abc)
}

/// The training configuration the flags describe.
pub fn config(args: &TrainArgs, spec: &VariantSpec, channels: usize) -> Result<TrainConfig> {
    let adam = match args.optimizer.as_deref() {
        Some(o) => o == "adam",
        None => is_binary(spec),
    };
    let optimizer = if adam {
        let mut o = OptimizerConfig::adam();
        if let OptimizerConfig::Adam { weight_decay, .. } = &mut o {
            *weight_decay = args.weight_decay.unwrap_or(0.0);
        }
        o
    } else {
        OptimizerConfig::sgd(args.momentum, args.weight_decay.unwrap_or(1e-4))
    };
    let lr = args.lr.unwrap_or(if adam { 1e-3 } else { 0.1 });
    let schedule = match args.schedule.as_str() {
        "constant" => Schedule::Constant { lr },
        // The usual CIFAR step recipe: x0.1 at 50% and 75% of the run.
        "step" => Schedule::Step {
            lr,
            milestones: {
                let mut m = vec![args.epochs / 2, args.epochs * 3 / 4];
                m.retain(|&e| e > 0);
                m.dedup();
                m
            },
            gamma: 0.1,
        },
        _ => Schedule::Cosine {
            lr,
            min_lr: 0.0,
            total_epochs: args.epochs,
            warmup_epochs: 0,
        },
    };
    let pad = args
        .augment_pad
        .unwrap_or(if channels == 3 { 4 } else { 0 });
    let kd = args.teacher.as_ref().map(|_| KdConfig {
        temperature: args.temperature,
        weight: args.kd_weight,
    });
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        eval_batch_size: 500,
        seed: args.seed,
        optimizer,
        schedule,
        augment_pad: (pad > 0).then_some(pad),
        kd,
        checkpoint_every: None,
    };
    cfg.validate().map_err(|e| match e {
        Error::Input { context, message } => {
            let flag = match context.as_str() {
                "epochs" => "--epochs".to_string(),
                "batch_size" => "--batch".to_string(),
                c if c.starts_with("kd.temperature") => "--temperature".to_string(),
                c if c.starts_with("kd.weight") => "--kd-weight".to_string(),
                c => c.to_string(),
            };
            Error::input(flag, message)
        }
        other => other,
    })?;
    Ok(cfg)
}

/// Loads the teacher (a vanilla model) and checks it fits the data.
fn load_teacher(
    args: &TrainArgs,
    path: &Path,
    student: &Network,
) -> Result<crate::engine::exec::Net> {
    let name = args.teacher_model.as_deref().unwrap_or(&args.model.model);
    let tnet = crate::model::resolve(name, args.model.input, args.model.classes)?;
    if tnet.input != student.input || tnet.num_classes != student.num_classes {
        return Err(Error::input(
            "--teacher-model",
            format!(
                "{name} takes {:?} images and has {} classes, the student {:?} / {}",
                tnet.input, tnet.num_classes, student.input, student.num_classes
            ),
        ));
    }
    let cn = variant::apply(&tnet, &VariantSpec::new(VariantKind::Vanilla))?;
    let p = params::load(&cn, path).map_err(|e| {
        Error::input(
            format!("--teacher {}", path.display()),
            format!(
                "is not a vanilla {name} model (use --teacher-model for another architecture): {e}"
            ),
        )
    })?;
    crate::engine::exec::Net::new(cn, p)
}

/// The checkpoint file of a run: `--checkpoint`, else `{out}.ckpt`.
fn checkpoint_path(args: &TrainArgs) -> PathBuf {
    args.checkpoint.clone().unwrap_or_else(|| {
        let mut s = args.out.clone().into_os_string();
        s.push(".ckpt");
        PathBuf::from(s)
    })
}

/// The output rule ([`crate::io::output`]) for every file a run writes, checked before any work.
/// An existing `--out` is accepted without `--force` when `--resume` continues the checkpoint
/// that produced it (the checkpoint's fingerprint is checked when it is loaded).
pub fn check_outputs(args: &TrainArgs) -> Result<()> {
    let ck = checkpoint_path(args);
    let mut inputs: Vec<(&str, &Path)> = vec![("--data", &args.data)];
    for (flag, p) in [
        ("--init", &args.init),
        ("--teacher", &args.teacher),
        ("--rates", &args.variant.rates),
    ] {
        if let Some(p) = p {
            inputs.push((flag, p));
        }
    }
    let continuing = args.resume && ck.is_file();
    output::check_file("--out", &args.out, args.force || continuing, &inputs)?;
    inputs.push(("--out", &args.out));
    // An existing checkpoint is the loop's business (resume it or refuse); only its place and
    // that it is no input are checked here.
    output::check_file("--checkpoint", &ck, true, &inputs)?;
    if ck == args.out {
        return Err(Error::input(
            "--checkpoint",
            "is the same file as --out; the checkpoint and the weights need two files",
        ));
    }
    if let Some(log) = &args.log {
        inputs.push(("--checkpoint", &ck));
        // The log is appended to on --resume, so an existing one is replaced only with --force.
        output::check_file("--log", log, args.force || args.resume, &inputs)?;
    }
    Ok(())
}

/// Hex digest of a file's bytes, or "none".
fn file_digest(path: Option<&PathBuf>) -> Result<String> {
    match path {
        None => Ok("none".into()),
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            Ok(digest(&bytes))
        }
    }
}

/// Content fingerprint of a data split (pixels, labels, classes): moving the folder keeps it,
/// another subset or other files change it.
pub fn data_digest(d: &Dataset) -> String {
    let mut h = fnv1a(FNV_OFFSET, &(d.classes as u64).to_le_bytes());
    for s in d.image_shape() {
        h = fnv1a(h, &(s as u64).to_le_bytes());
    }
    h = fnv1a(h, d.images.as_slice().unwrap_or(&[]));
    h = fnv1a(
        h,
        &d.labels
            .iter()
            .flat_map(|l| l.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    format!("{h:016x}")
}

/// Every setting outside the [`TrainConfig`] that changes the result, by flag (see
/// [`RunOptions::identity`]); keys that are flags sort before the content fingerprints, so a
/// changed `--subset` is named as such rather than as changed data.
fn identity(
    args: &TrainArgs,
    net: &Network,
    spec: &VariantSpec,
    train_set: &Dataset,
    test_set: &Dataset,
) -> Result<BTreeMap<String, String>> {
    let show = |v: Option<usize>| v.map(|n| n.to_string()).unwrap_or_else(|| "all".into());
    let mut m = BTreeMap::new();
    m.insert(
        "--model".into(),
        format!(
            "{} {:?} {} classes ({})",
            net.name,
            net.input,
            net.num_classes,
            digest(format!("{:?}", net.layers).as_bytes())
        ),
    );
    m.insert(
        "--variant".into(),
        format!(
            "{} ({})",
            spec.label(),
            digest(serde_json::to_string(spec).unwrap_or_default().as_bytes())
        ),
    );
    m.insert("--subset".into(), show(args.subset));
    m.insert("--test-subset".into(), show(args.test_subset));
    m.insert(
        "--teacher-model".into(),
        args.teacher_model.clone().unwrap_or_default(),
    );
    m.insert("data content (train)".into(), data_digest(train_set));
    m.insert("data content (test)".into(), data_digest(test_set));
    m.insert("--init content".into(), file_digest(args.init.as_ref())?);
    m.insert(
        "--teacher content".into(),
        file_digest(args.teacher.as_ref())?,
    );
    Ok(m)
}

/// Trains with already loaded data (also used by `bbed zoo`). `epoch_lines` prints each epoch's
/// line to stdout as it ends (flushed), for `bbed train`.
pub fn train_with_data(
    args: &TrainArgs,
    train_set: &Dataset,
    test_set: &Dataset,
    progress: bool,
    epoch_lines: bool,
) -> Result<TrainOutcome> {
    let started = Instant::now();
    check_outputs(args)?;
    let (model, spec) = args.model.load_spec(&args.variant)?;
    let net = model.network.clone();
    check_input(&net, train_set)?;
    check_memory(
        &format!("training {}", net.name),
        net.memory_estimate(args.batch.max(500), 4, 2),
        "lower --batch or choose a smaller model",
    )?;
    let cn = variant::apply(&net, &spec)?;
    if spec.kind == VariantKind::Kd && args.teacher.is_none() {
        return Err(Error::input(
            "--teacher",
            "the kd variant is distilled from a teacher: pass --teacher T.safetensors",
        ));
    }
    // An ONNX model starts from its own weights (when the variant keeps their shapes).
    let fresh = args.model.params(&model, &cn, None, args.seed)?;
    let (p, masks) = match &args.init {
        Some(path) => load_with_masks(&cn, path, Some(&fresh)).map_err(|e| match e {
            Error::Input { context, message } => Error::input(format!("--init {context}"), message),
            other => other,
        })?,
        None => {
            if is_binary(&spec) && model.weights.is_none() {
                eprintln!(
                    "note: training a binarized variant from random weights; the reference \
                     recipe initialises from a trained full-precision model (--init)"
                );
            }
            (fresh, Default::default())
        }
    };
    if matches!(spec.kind, VariantKind::Kernel | VariantKind::Weight) && masks.is_empty() {
        eprintln!(
            "note: no masks in --init; {} pruning fine-tunes a `bbed prune` output",
            spec.kind.name()
        );
    }
    let teacher = match &args.teacher {
        Some(t) => Some(load_teacher(args, t, &net)?),
        None => None,
    };
    let cfg = config(args, &spec, net.input[0])?;
    let mut model = NetModel::new(cn.clone(), p)?;
    let run = RunOptions {
        checkpoint: Some(checkpoint_path(args)),
        log: args.log.clone(),
        resume: args.resume,
        progress,
        halt_after_steps: None,
        identity: identity(args, &net, &spec, train_set, test_set)?,
        epoch_lines,
    };
    let report = train(
        &mut model,
        train_set,
        test_set,
        &cfg,
        &run,
        teacher.as_ref().map(|t| t as &dyn crate::train::Predict),
        masks.clone(),
    )?;
    let (loss, accuracy) = evaluate(&model, test_set, cfg.eval_batch_size)?;
    save_with_masks(&cn, &model.all_params(), &masks, &args.out)?;
    Ok(TrainOutcome {
        network: cn,
        report,
        accuracy,
        loss,
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub fn run(args: TrainArgs) -> Result<String> {
    check_outputs(&args)?;
    let (train_set, test_set) = load_data(
        &args.data,
        &args.folder,
        args.subset,
        args.test_subset,
        args.seed,
    )?;
    // The epoch lines are printed (and flushed) by the loop as each epoch ends.
    let o = train_with_data(&args, &train_set, &test_set, true, true)?;
    let mut s = String::new();
    s.push_str(&format!(
        "{} {}: test accuracy {:.2}% on {} images, {} updates, {:.1}s; weights -> {}\n",
        o.network.network.name,
        o.network.spec.label(),
        100.0 * o.accuracy,
        test_set.len(),
        o.report.global_step,
        o.seconds,
        args.out.display()
    ));
    Ok(s)
}

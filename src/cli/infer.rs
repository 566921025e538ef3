//! `bbed infer`: classify the test split of a dataset with the float reference engine or the
//! bit-exact binarized engine, printing per-image logits and the accuracy.
//!
//! Conventions: images are read as raw 0-255 pixels, scaled to unit range (`x / 255`), and the
//! model's per-channel normalisation (printed as `normalization`) is applied inside the engine on
//! that unit scale. Without `--weights` the parameters are a seeded random initialisation
//! ([`crate::engine::params::init`] with `--init-seed`), useful for checking the plumbing, not accuracy.
//! `--engine binary` on a variant with no binarized layer is an error rather than a silent
//! fallback: the binary engine would then just be the float engine under another name.
//! A weight file whose metadata names another variant than `--variant` is refused
//! ([`crate::io::weights::check_variant`]; shared with `verify`, `export` and `attack`).

// clap renders this module's `///` comments as `--help` text, where brackets are literal
// (`[0,1]`, `[required]`), so rustdoc's link check does not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ndarray::Array2;
use serde::Serialize;

use super::args::{FolderArgs, ModelArgs, VariantArgs};
use super::format::{render, Format, Tabular};
use crate::engine::classifier::{BinaryEngine, FloatEngine};
use crate::engine::exec::Net;
use crate::engine::params;
use crate::io::limits::{at_least_one, check_memory};
use crate::io::progress::Progress;
use crate::model::Normalization;
use crate::variant::{apply, CompressedNetwork};
use crate::{Error, Result};

const AFTER: &str = "\
Pixels are scaled to [0,1] and then normalised per channel with the model's mean/std (printed
as `normalization`). Without --weights the network gets a seeded random initialisation.
--engine binary evaluates binarized layers with XNOR + popcount; it needs a binarized variant
(xnor or abc).

Examples:
  bbed infer --model resnet20 --variant vanilla --weights w.safetensors \\
      --data cifar-10-batches-bin --limit 100 --format json
  bbed infer --model resnet8 --input 1,28,28 --variant xnor --engine binary \\
      --data /usr/share/datasets/fashion-mnist --limit 50";

/// Which engine evaluates the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Float reference (binarized layers as +/-1 float GEMM).
    #[default]
    Float,
    /// Bit-exact XNOR + popcount for binarized layers.
    Binary,
}

/// Weight and variant flags shared by `infer` and `verify`.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub variant: VariantArgs,
    /// safetensors weights (PyTorch state-dict names, docs/weights.md); refused if its metadata
    /// names another variant. Default: an ONNX model's own weights, else random init from
    /// --init-seed
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the random weight initialisation used when no --weights are given
    #[arg(long, default_value_t = 0)]
    pub init_seed: u64,
}

impl NetArgs {
    /// The compressed network and its parameters (loaded, or initialised from the seed), after
    /// the memory guard for forward passes of `batch` images.
    pub fn net(&self, batch: usize) -> Result<Net> {
        let (model, spec) = self.model.load_spec(&self.variant)?;
        let network = &model.network;
        let cn = apply(network, &spec)?;
        check_memory(
            &format!("model {}", network.name),
            network.memory_estimate(batch, 2, 2),
            "choose a smaller model or lower --batch",
        )?;
        let p = self
            .model
            .params(&model, &cn, self.weights.as_deref(), self.init_seed)?;
        Net::new(cn, p)
    }
}

/// Whether any layer of the variant is binarized.
pub fn has_binary_layers(cn: &CompressedNetwork) -> bool {
    params::schemes(cn).iter().any(Option::is_some)
}

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct InferArgs {
    #[command(flatten)]
    pub net: NetArgs,
    /// Dataset: CIFAR-10 binary dir/file, MNIST-family IDX dir or an image folder (test split used)
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Classify only the first N test images
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = EngineKind::Float)]
    pub engine: EngineKind,
    /// Images per forward pass
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Output format (json carries the logits)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
pub struct ImagePrediction {
    pub index: usize,
    pub label: usize,
    pub pred: usize,
    pub logits: Vec<f32>,
}

#[derive(Debug, Serialize)]
pub struct InferReport {
    pub model: String,
    pub variant: String,
    pub engine: EngineKind,
    /// Weight file, or `null` for the seeded random initialisation.
    pub weights: Option<String>,
    /// Seed of that random initialisation (`--init-seed`).
    pub init_seed: u64,
    pub data: String,
    pub images: Vec<ImagePrediction>,
    pub correct: usize,
    pub accuracy: f64,
    /// Per-channel mean/std applied to pixels scaled to [0,1].
    pub normalization: Normalization,
}

/// Index of the largest logit; an error on non-finite logits (a NaN would otherwise silently
/// become class 0).
pub fn argmax(logits: &[f32], image: usize) -> Result<usize> {
    if let Some(v) = logits.iter().find(|v| !v.is_finite()) {
        return Err(Error::input(
            format!("image {image}"),
            format!("logit {v} is not finite (weights too large or corrupt?)"),
        ));
    }
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    Ok(best)
}

enum Engine {
    Float(FloatEngine),
    Binary(BinaryEngine),
}

impl Engine {
    fn logits(&self, x: &ndarray::Array4<f32>) -> Result<Array2<f32>> {
        match self {
            Engine::Float(e) => e.try_logits(x),
            Engine::Binary(e) => e.try_logits(x),
        }
    }
}

pub fn infer(args: &InferArgs) -> Result<InferReport> {
    at_least_one("--batch", args.batch)?;
    if let Some(n) = args.limit {
        at_least_one("--limit", n)?;
    }
    let net = args.net.net(args.batch)?;
    let (_, test) = args.folder.load(&args.data)?;
    let network = &net.cn.network;
    if test.image_shape() != network.input {
        return Err(Error::input(
            "--data",
            format!(
                "{}: images are {:?} (C,H,W) but {} expects {:?}; pass --input {} for a built-in model",
                test.source,
                test.image_shape(),
                network.name,
                network.input,
                test.image_shape()
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ));
    }
    if test.classes > network.num_classes {
        return Err(Error::input(
            "--data",
            format!(
                "{} has {} classes but {} has {} outputs; pass --classes {}",
                test.source, test.classes, network.name, network.num_classes, test.classes
            ),
        ));
    }
    if args.engine == EngineKind::Binary && !has_binary_layers(&net.cn) {
        return Err(Error::input(
            "--engine",
            format!(
                "binary needs a binarized variant (xnor or abc); {} has no binarized layer, use \
                 --engine float",
                net.cn.spec.kind.name()
            ),
        ));
    }
    let n = args.limit.unwrap_or(test.len()).min(test.len());
    let model = network.name.clone();
    let variant = net.cn.spec.label();
    let normalization = network.normalization.clone();
    let engine = match args.engine {
        EngineKind::Float => Engine::Float(FloatEngine::new(net)?),
        EngineKind::Binary => Engine::Binary(BinaryEngine::new(net)?),
    };
    let bar = Progress::new("infer", "images", n as u64, true);
    let mut images = Vec::with_capacity(n);
    let mut correct = 0;
    let mut start = 0;
    while start < n {
        let end = (start + args.batch).min(n);
        let x = test.to_unit(start..end)?;
        let logits = engine.logits(&x)?;
        for (k, row) in logits.outer_iter().enumerate() {
            let index = start + k;
            let row = row.to_vec();
            let pred = argmax(&row, index)?;
            let label = test.labels[index] as usize;
            correct += usize::from(pred == label);
            images.push(ImagePrediction {
                index,
                label,
                pred,
                logits: row,
            });
        }
        bar.inc((end - start) as u64);
        start = end;
    }
    bar.finish_and_clear();
    Ok(InferReport {
        model,
        variant,
        engine: args.engine,
        weights: args.net.model.weights_source(args.net.weights.as_deref()),
        init_seed: args.net.init_seed,
        data: test.source.clone(),
        images,
        correct,
        accuracy: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
        normalization,
    })
}

pub fn run(args: InferArgs) -> Result<String> {
    let r = infer(&args)?;
    let mut t = Tabular::new(&["index", "label", "pred", "correct"]);
    for im in &r.images {
        t.push(vec![
            im.index.to_string(),
            im.label.to_string(),
            im.pred.to_string(),
            (im.label == im.pred).to_string(),
        ]);
    }
    let mut out = render(args.format, &t, &r);
    if args.format == Format::Table {
        out.push_str(&format!(
            "\n{} {} ({:?} engine): {}/{} correct, accuracy {:.4}\n",
            r.model,
            r.variant,
            r.engine,
            r.correct,
            r.images.len(),
            r.accuracy
        ));
    }
    Ok(out)
}

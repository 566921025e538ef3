//! `bbed vectors`: golden vectors of one layer for an RTL testbench, written with
//! [`crate::sim::vectors::write`] from the same seeded inputs `bbed simulate --functional` checks
//! (see [`crate::sim::random`]).
//!
//! Layout of `--out DIR`: `vectors.json` (what was written: model, variant, layer, seed, scales,
//! sets) and one vector set (`manifest.json`, `weights.hex`, `acts.hex`, `expected.hex`) per
//! weight base x activation base: in `DIR` itself for full-precision and XNOR layers, in
//! `DIR/w{i}_a{j}` (0-based) for ABC layers with M x N > 1. The ABC output is
//! `sum_i sum_j alpha[i][o] * beta[j] * expected_ij`, with the scales from `vectors.json`.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::args::{ModelArgs, VariantArgs};
use super::format::{render, Format, Tabular};
use super::simulate::load_device;
use crate::io::atomic::write_bytes_atomic;
use crate::io::limits::{at_least_one, check_memory};
use crate::io::output;
use crate::sim::network::layer_specs;
use crate::sim::random::{layer_data, LayerData};
use crate::sim::vectors::{write, VectorData};
use crate::sim::{LayerSpec, Precision};
use crate::variant::apply;
use crate::{Error, Result};

const AFTER: &str = "\
Writes $readmemh-compatible hex files (one word per line, two's complement, no prefix) and a
JSON manifest per set (bit order, word widths, layouts). Binary layers: weights and activations
in xnor.lanes-bit words (bit i of word j = channel j*lanes+i; +1 -> 0, -1 -> 1), expected 32-bit
+/-1 dot products (K_real - 2*popcount(xor); padded taps contribute 0). Full-precision layers:
mac.width-bit fixed-point codes (Q8.8 activations / Q2.14 weights for 16-bit lanes), expected
64-bit exact accumulators. Inputs are seeded random data of the layer's shape (the same data
`bbed simulate --functional --seed S` checks for that layer).

Examples:
  bbed vectors --model resnet20 --variant xnor --layer layer1.0.conv1 --images 2 --out vec/
  bbed vectors --model resnet20 --variant abc --m 3 --n 3 --layer layer2.0.conv1 --out vec_abc/";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct VectorsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub variant: VariantArgs,
    /// Hardware TOML (lane counts and widths); default: embedded hw/paper.toml
    #[arg(long)]
    pub hw: Option<PathBuf>,
    /// Conv or linear layer name, e.g. layer1.0.conv1
    #[arg(long)]
    pub layer: String,
    /// Input images
    #[arg(long, default_value_t = 1)]
    pub images: usize,
    /// Seed of the random weights and inputs
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (created if missing; must be empty unless --force)
    #[arg(long)]
    pub out: PathBuf,
    /// Write into a non-empty directory, overwriting files of the same name
    #[arg(long)]
    pub force: bool,
    /// Output format of the summary
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// One written vector set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorSet {
    /// Directory relative to `--out` (`.` for the only set).
    pub dir: String,
    pub weight_base: usize,
    pub act_base: usize,
    pub weight_words: usize,
    pub act_words: usize,
    pub expected_words: usize,
}

/// `vectors.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorsSummary {
    pub model: String,
    pub variant: String,
    pub hw: String,
    pub layer: LayerSpec,
    /// Position among the simulated layers (selects the random stream).
    pub layer_index: usize,
    pub seed: u64,
    pub images: usize,
    /// `[m][out_c]` weight-base scales (binary layers).
    pub alpha: Option<Vec<f32>>,
    /// `[n]` activation-base scales (binary layers).
    pub beta: Option<Vec<f32>>,
    pub sets: Vec<VectorSet>,
}

/// Writes the vectors; the typed summary of `bbed vectors`.
pub fn vectors(a: &VectorsArgs) -> Result<VectorsSummary> {
    let (model, spec) = a.model.load_spec(&a.variant)?;
    let net = model.network;
    let dev = load_device(a.hw.as_ref())?;
    let compressed = apply(&net, &spec)?;
    let specs = layer_specs(&compressed)?;
    let Some(index) = specs.iter().position(|s| s.name == a.layer) else {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::input(
            "--layer",
            format!(
                "no conv or linear layer '{}' in {}; valid layers: {}",
                a.layer,
                net.name,
                names.join(", ")
            ),
        ));
    };
    at_least_one("--images", a.images)?;
    check_memory(
        &format!("vectors of {}", net.name),
        net.memory_estimate(a.images, 2, 2),
        "lower --images or choose a smaller model",
    )?;
    let inputs: Vec<(&str, &Path)> = a.hw.iter().map(|p| ("--hw", p.as_path())).collect();
    output::check_dir("--out", &a.out, a.force, |_| false, &inputs)?;
    let layer = specs[index].clone();
    let g = layer.geometry()?;
    let data = layer_data(&layer, &g, &dev, a.images, a.seed, index)?;
    let mut sets = Vec::new();
    let (mut alpha, mut beta) = (None, None);
    match data {
        LayerData::Binary(d) => {
            let (m, n) = (d.weights.len(), d.beta.len());
            // vectors::write covers one base pair: each pair is a plain XNOR layer.
            let single = LayerSpec {
                precision: Precision::Binary { m: 1, n: 1 },
                ..layer.clone()
            };
            for (i, w) in d.weights.iter().enumerate() {
                for j in 0..n {
                    let rel = if m * n == 1 {
                        ".".to_string()
                    } else {
                        format!("w{i}_a{j}")
                    };
                    let vd = VectorData::Binary {
                        weights: w.clone(),
                        images: d.images.iter().map(|img| img[j].clone()).collect(),
                    };
                    let dir = if m * n == 1 {
                        a.out.clone()
                    } else {
                        a.out.join(&rel)
                    };
                    let man = write(&dir, &single, &dev, &vd)?;
                    sets.push(VectorSet {
                        dir: rel,
                        weight_base: i,
                        act_base: j,
                        weight_words: man.weights.words,
                        act_words: man.activations.words,
                        expected_words: man.expected.words,
                    });
                }
            }
            alpha = Some(d.alpha);
            beta = Some(d.beta);
        }
        LayerData::Fixed(d) => {
            let vd = VectorData::Fixed {
                format: d.format,
                weights: d.weights_q,
                images: d.images_q,
            };
            let man = write(&a.out, &layer, &dev, &vd)?;
            sets.push(VectorSet {
                dir: ".".into(),
                weight_base: 0,
                act_base: 0,
                weight_words: man.weights.words,
                act_words: man.activations.words,
                expected_words: man.expected.words,
            });
        }
    }
    let summary = VectorsSummary {
        model: net.name.clone(),
        variant: compressed.spec.label(),
        hw: dev.source.clone(),
        layer,
        layer_index: index,
        seed: a.seed,
        images: a.images,
        alpha,
        beta,
        sets,
    };
    let path = a.out.join("vectors.json");
    let text = serde_json::to_string_pretty(&summary).expect("summary serialises");
    write_bytes_atomic(&path, text.as_bytes())?;
    Ok(summary)
}

pub fn run(a: VectorsArgs) -> Result<String> {
    let s = vectors(&a)?;
    let mut t = Tabular::new(&[
        "set",
        "weight_base",
        "act_base",
        "weight_words",
        "act_words",
        "expected_words",
    ]);
    for set in &s.sets {
        t.push(vec![
            if set.dir == "." {
                a.out.display().to_string()
            } else {
                a.out.join(&set.dir).display().to_string()
            },
            set.weight_base.to_string(),
            set.act_base.to_string(),
            set.weight_words.to_string(),
            set.act_words.to_string(),
            set.expected_words.to_string(),
        ]);
    }
    Ok(render(a.format, &t, &s))
}

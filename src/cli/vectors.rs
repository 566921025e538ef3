//! `bbed vectors`: golden vectors of one layer for an RTL testbench, written with
//! [`crate::sim::vectors::write_set`], from the same seeded inputs `bbed simulate --functional`
//! checks (see [`crate::sim::random`]) or, with `--data`, from real images and trained weights
//! ([`crate::sim::real`]); plus the stress sets of [`crate::sim::stress`] and, with
//! `--testbench`, a self-checking Verilog testbench ([`crate::sim::testbench`]).
//!
//! Layout of `--out DIR`: `vectors.json` (what was written: model, variant, layer, inputs, scales,
//! sets, every file written), one vector set (`manifest.json`, `weights.hex`, `acts.hex`,
//! `expected.hex`) per weight base x activation base: in `DIR` itself for full-precision and XNOR
//! layers, in `DIR/w{i}_a{j}` (0-based) for ABC layers with M x N > 1; binary layers also get
//! `scaled.hex` (the scaled output `sum_i sum_j alpha[i][o] * beta[j] * expected_ij`, f32 in that
//! order), `alpha.hex` and `beta.hex`; the stress sets in `DIR/stress/<pattern>`; the testbench in
//! `DIR/testbench`. With `--force` the files an earlier run recorded in `vectors.json` are removed
//! first (nothing else), so no stale set survives; every file is written atomically.

use std::path::{Component, Path, PathBuf};

use clap::Args;
use ndarray::Array4;
use serde::{Deserialize, Serialize};

use super::args::{FolderArgs, ModelArgs, VariantArgs};
use super::format::{render, Format, Tabular};
use super::simulate::load_device;
use crate::engine::exec::Net;
use crate::engine::params;
use crate::io::atomic::write_bytes_atomic;
use crate::io::limits::{at_least_one, check_memory};
use crate::io::output;
use crate::model::Network;
use crate::sim::functional::run_binary_images;
use crate::sim::network::layer_specs;
use crate::sim::random::{layer_data, LayerData};
use crate::sim::real::real_layer_data;
use crate::sim::stress::stress_sets;
use crate::sim::testbench::{testbench, Labels};
use crate::sim::vectors::{write_f32, write_set, BasePair, Coverage, HexFile, SetInfo, VectorData};
use crate::sim::{LayerSpec, Precision};
use crate::variant::{apply, CompressedNetwork};
use crate::{Error, Result};

const AFTER: &str = "\
Writes $readmemh-compatible hex files (one word per line, two's complement, no prefix) and a
self-describing JSON manifest per set (geometry, datapath: lanes, spacing, guard bits, drain rule,
borrow-corrected read-out; reduction order; bit order and signedness of every file; coverage).
Binary layers: weights and activations in xnor.lanes-bit words (bit i of word j = channel
j*lanes+i; +1 -> 0, -1 -> 1), expected 32-bit +/-1 dot products (K_real - 2*popcount(xor);
padded taps contribute 0), scaled.hex the f32 scaled output. Full-precision layers:
mac.width-bit fixed-point codes, expected 64-bit exact accumulators.
Inputs: seeded random data of the layer's shape (the data `bbed simulate --functional --seed S`
checks), or with --data the layer's real inputs for test images --index.. of the dataset,
computed by the engine with --weights (binary layers: sign / ABC bases; fixed-point layers: one
power-of-two scale per tensor on the lane width). Stress sets (stress/*) beside them drive the
datapath to its corners (extreme operands, drains, borrows, padding, unused lanes).

Examples:
  bbed vectors --model resnet20 --variant xnor --layer layer1.0.conv1 --images 2 --out vec/
  bbed vectors --model resnet20 --variant abc --m 3 --n 3 --layer layer2.0.conv1 --out vec_abc/
  bbed vectors --model resnet20 --variant xnor --layer conv1 --hw hw/zcu102.toml --testbench \\
      --weights w.safetensors --data cifar-10-batches-bin --images 2 --out vec_tb/
  sh vec_tb/testbench/run.sh";

/// Real-data flags shared by `vectors` and `simulate --functional`.
#[derive(Debug, Clone, Args)]
pub struct RealArgs {
    /// safetensors weights (PyTorch state-dict names, as `bbed infer`); needs --data. Without
    /// it, --data runs a seeded random initialisation (--seed)
    #[arg(long, requires = "data")]
    pub weights: Option<PathBuf>,
    /// Dataset (anything `bbed infer` reads; test split): the layers get their real input
    /// activations for these images instead of seeded random data
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// First test image used with --data (then --images consecutive ones)
    #[arg(long, default_value_t = 0, requires = "data")]
    pub index: usize,
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// Real images and the network they run through.
pub struct RealInputs {
    pub net: Net,
    /// Unit-scale images `[N, C, H, W]`.
    pub x: Array4<f32>,
    /// What they are, for the outputs.
    pub describe: String,
}

impl RealArgs {
    /// `None` without `--data`; else the network with its parameter map (`--weights`, or the
    /// seeded initialisation) and `images` test images from `--index`.
    pub fn load(
        &self,
        cn: &CompressedNetwork,
        images: usize,
        seed: u64,
    ) -> Result<Option<RealInputs>> {
        let Some(data) = &self.data else {
            return Ok(None);
        };
        let network = &cn.network;
        let (_, test) = self.folder.load(data)?;
        check_images(network, &test)?;
        let end = self.index.checked_add(images).filter(|&e| e <= test.len());
        let Some(end) = end else {
            return Err(Error::input(
                "--index",
                format!(
                    "images {}..{} requested but {} holds {} test images",
                    self.index,
                    self.index.saturating_add(images),
                    test.source,
                    test.len()
                ),
            ));
        };
        let x = test.to_unit(self.index..end)?;
        let p = match &self.weights {
            Some(path) => params::load(cn, path)?,
            None => params::init(cn, seed),
        };
        let weights = match &self.weights {
            Some(p) => format!("weights {}", p.display()),
            None => format!("seeded random initialisation (seed {seed})"),
        };
        Ok(Some(RealInputs {
            net: Net::new(cn.clone(), p)?,
            x,
            describe: format!(
                "real: test images {}..{end} of {}, {weights}; layer inputs from the engine's \
                 float forward pass; binary layers sign / ABC bases, fixed-point layers one \
                 power-of-two scale per tensor on the lane width (sim::real)",
                self.index, test.source
            ),
        }))
    }
}

fn check_images(network: &Network, test: &crate::io::Dataset) -> Result<()> {
    if test.image_shape() != network.input {
        return Err(Error::input(
            "--data",
            format!(
                "{}: images are {:?} (C,H,W) but {} expects {:?}; pass --input for a built-in model",
                test.source,
                test.image_shape(),
                network.name,
                network.input
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct VectorsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub variant: VariantArgs,
    /// Hardware: a built-in part (zcu102, zu3eg, zynq7020, paper, reference) or a TOML file;
    /// default: zcu102 (XCZU9EG, physical DSP48E2 with two INT8 products per slice)
    #[arg(long)]
    pub hw: Option<PathBuf>,
    /// Conv or linear layer name, e.g. layer1.0.conv1
    #[arg(long)]
    pub layer: String,
    /// Input images (every set, stress sets included, holds this many)
    #[arg(long, default_value_t = 1)]
    pub images: usize,
    /// Seed of the random weights and inputs (and of the random initialisation with --data)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub real: RealArgs,
    /// Also write a self-checking Verilog testbench and reference PE (DIR/testbench)
    #[arg(long)]
    pub testbench: bool,
    /// Output directory (created if missing; must be empty unless --force)
    #[arg(long)]
    pub out: PathBuf,
    /// Write into a non-empty directory: the files an earlier `bbed vectors` recorded there are
    /// removed first, other files are kept
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

/// One written stress set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StressSummary {
    pub dir: String,
    pub purpose: String,
    pub coverage: Coverage,
}

/// The scaled output of a binary layer and its scales.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaled {
    pub rule: String,
    pub output: HexFile,
    pub alpha: HexFile,
    pub beta: HexFile,
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
    /// Origin of the main sets' data.
    pub inputs: String,
    /// `[m][out_c]` weight-base scales (binary layers).
    pub alpha: Option<Vec<f32>>,
    /// `[n]` activation-base scales (binary layers).
    pub beta: Option<Vec<f32>>,
    pub sets: Vec<VectorSet>,
    /// Binary layers: the scaled-output golden.
    pub scaled: Option<Scaled>,
    pub stress_sets: Vec<StressSummary>,
    /// The testbench directory, when written.
    pub testbench: Option<String>,
    /// Every file this run wrote, relative to `--out` (what `--force` removes next time).
    pub files: Vec<String>,
}

/// The four files of a vector set.
const SET_FILES: [&str; 4] = ["manifest.json", "weights.hex", "acts.hex", "expected.hex"];

fn rel(dir: &str, file: &str) -> String {
    if dir == "." {
        file.to_string()
    } else {
        format!("{dir}/{file}")
    }
}

/// A relative path made only of plain names (no `..`, root or prefix).
fn is_plain(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Removes the files an earlier run recorded in `out/vectors.json` (older summaries without a
/// file list: their sets' four files), then the directories they leave empty. Anything not
/// recorded is kept; a `vectors.json` that is not ours is left alone.
fn remove_previous(out: &Path) -> Result<()> {
    let path = out.join("vectors.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(());
    };
    let strings = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut files = strings("files");
    if files.is_empty() {
        let dirs: Vec<String> = v["sets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["dir"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for d in dirs {
            files.extend(SET_FILES.iter().map(|f| rel(&d, f)));
        }
    }
    files.push("vectors.json".into());
    let mut parents = Vec::new();
    for f in &files {
        let p = Path::new(f);
        if !is_plain(p) {
            continue;
        }
        let full = out.join(p);
        match std::fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&full, e)),
        }
        let mut q = p.parent();
        while let Some(d) = q.filter(|d| !d.as_os_str().is_empty()) {
            parents.push(d.to_path_buf());
            q = d.parent();
        }
    }
    // Deepest first; a directory still holding anything stays.
    parents.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    parents.dedup();
    for d in parents {
        let _ = std::fs::remove_dir(out.join(d));
    }
    Ok(())
}

/// Collects written files.
struct Written<'a> {
    out: &'a Path,
    files: Vec<String>,
}

impl Written<'_> {
    fn set(&mut self, dir: &str) -> PathBuf {
        self.files.extend(SET_FILES.iter().map(|f| rel(dir, f)));
        if dir == "." {
            self.out.to_path_buf()
        } else {
            self.out.join(dir)
        }
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.out.join(name);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        write_bytes_atomic(&path, bytes)?;
        self.files.push(name.to_string());
        Ok(())
    }
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
    let mut inputs: Vec<(&str, &Path)> = a.hw.iter().map(|p| ("--hw", p.as_path())).collect();
    inputs.extend(a.real.weights.iter().map(|p| ("--weights", p.as_path())));
    inputs.extend(a.real.data.iter().map(|p| ("--data", p.as_path())));
    // Real inputs are validated (dataset, index range, weights) before the output folder is
    // touched; the forward pass runs after.
    let real = a.real.load(&compressed, a.images, a.seed)?;
    output::check_dir("--out", &a.out, a.force, |_| false, &inputs)?;
    let layer = specs[index].clone();
    let g = layer.geometry()?;
    let (data, inputs_desc, set_name) = match real {
        Some(r) => {
            let mut d = real_layer_data(&r.net, &specs, &[index], &dev, &r.x)?;
            (d.remove(0), r.describe, "real")
        }
        None => (
            layer_data(&layer, &g, &dev, a.images, a.seed, index)?,
            format!("seeded random data (seed {}, sim::random)", a.seed),
            "random",
        ),
    };
    if a.force {
        remove_previous(&a.out)?;
    }
    let mut w = Written {
        out: &a.out,
        files: Vec::new(),
    };
    let mut sets = Vec::new();
    let (mut alpha, mut beta, mut scaled) = (None, None, None);
    // vectors::write_set covers one base pair: each pair is a plain XNOR layer.
    let single = LayerSpec {
        precision: match layer.precision {
            Precision::Binary { .. } => Precision::Binary { m: 1, n: 1 },
            Precision::Full => Precision::Full,
        },
        ..layer.clone()
    };
    match data {
        LayerData::Binary(d) => {
            let (m, n) = (d.weights.len(), d.beta.len());
            for (i, wb) in d.weights.iter().enumerate() {
                for j in 0..n {
                    let dir = if m * n == 1 {
                        ".".to_string()
                    } else {
                        format!("w{i}_a{j}")
                    };
                    let vd = VectorData::Binary {
                        weights: wb.clone(),
                        images: d.images.iter().map(|img| img[j].clone()).collect(),
                    };
                    let info = SetInfo {
                        name: set_name.into(),
                        data: inputs_desc.clone(),
                        base_pair: Some(BasePair {
                            weight_base: i,
                            act_base: j,
                        }),
                    };
                    let man = write_set(&w.set(&dir), &single, &dev, &vd, &info)?;
                    sets.push(VectorSet {
                        dir,
                        weight_base: i,
                        act_base: j,
                        weight_words: man.weights.words,
                        act_words: man.activations.words,
                        expected_words: man.expected.words,
                    });
                }
            }
            let y: Vec<f32> = run_binary_images(&layer, &dev, &d)?
                .into_iter()
                .flat_map(|o| o.out)
                .collect();
            let s = Scaled {
                rule: format!(
                    "y[image][o][oy][ox] = sum over weight base i (outer, 0..{m}) of sum over \
                     activation base j (inner, 0..{n}) of (alpha[i][o] * beta[j]) * \
                     f32(expected of set w{{i}}_a{{j}}), every product and sum rounded to f32 in \
                     that order, starting from +0.0 (XNOR: the only set, in this directory)"
                ),
                output: write_f32(&a.out, "scaled.hex", &y, "[image][out_c][oy][ox]")?,
                alpha: write_f32(&a.out, "alpha.hex", &d.alpha, "[weight_base][out_c]")?,
                beta: write_f32(&a.out, "beta.hex", &d.beta, "[act_base]")?,
            };
            w.files
                .extend(["scaled.hex", "alpha.hex", "beta.hex"].map(String::from));
            scaled = Some(s);
            alpha = Some(d.alpha);
            beta = Some(d.beta);
        }
        LayerData::Fixed(d) => {
            let vd = VectorData::Fixed {
                format: d.format,
                weights: d.weights_q,
                images: d.images_q,
            };
            let info = SetInfo {
                name: set_name.into(),
                data: format!(
                    "{inputs_desc}; act_frac {}, weight_frac {}",
                    d.format.act_frac, d.format.weight_frac
                ),
                base_pair: None,
            };
            let man = write_set(&w.set("."), &layer, &dev, &vd, &info)?;
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
    let mut stress = Vec::new();
    for s in stress_sets(&single, &g, &dev, a.images, a.seed, index) {
        let dir = format!("stress/{}", s.name);
        let info = SetInfo {
            name: dir.clone(),
            data: format!("stress pattern `{}`: {}", s.name, s.purpose),
            base_pair: None,
        };
        let man = write_set(&w.set(&dir), &single, &dev, &s.data, &info)?;
        stress.push(StressSummary {
            dir,
            purpose: s.purpose.into(),
            coverage: man.coverage,
        });
    }
    let tb_dir = if a.testbench {
        let dirs: Vec<String> = sets
            .iter()
            .map(|s| &s.dir)
            .chain(stress.iter().map(|s| &s.dir))
            .map(|d| rel("..", d).trim_end_matches("/.").to_string())
            .collect();
        let variant = compressed.spec.label();
        let tb = testbench(
            &single,
            &dev,
            a.images,
            &dirs,
            Labels {
                model: &net.name,
                variant: &variant,
            },
        )?;
        for (name, text) in &tb.files {
            w.file(&format!("testbench/{name}"), text.as_bytes())?;
        }
        Some("testbench".to_string())
    } else {
        None
    };
    w.files.push("vectors.json".into());
    let summary = VectorsSummary {
        model: net.name.clone(),
        variant: compressed.spec.label(),
        hw: dev.source.clone(),
        layer,
        layer_index: index,
        seed: a.seed,
        images: a.images,
        inputs: inputs_desc,
        alpha,
        beta,
        sets,
        scaled,
        stress_sets: stress,
        testbench: tb_dir,
        files: w.files,
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
    let path = |d: &str| {
        if d == "." {
            a.out.display().to_string()
        } else {
            a.out.join(d).display().to_string()
        }
    };
    for set in &s.sets {
        t.push(vec![
            path(&set.dir),
            set.weight_base.to_string(),
            set.act_base.to_string(),
            set.weight_words.to_string(),
            set.act_words.to_string(),
            set.expected_words.to_string(),
        ]);
    }
    for set in &s.stress_sets {
        t.push(vec![
            path(&set.dir),
            "-".into(),
            "-".into(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    if let Some(tb) = &s.testbench {
        t.push(vec![
            format!("{} (sh run.sh)", path(tb)),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    Ok(render(a.format, &t, &s))
}

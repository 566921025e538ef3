//! `bbed simulate`: cycle counts of a network variant on a DSP48 array described by a hardware
//! TOML, optionally with a functional check of every simulated layer.
//!
//! JSON always carries every layer (so layer cycles can be summed against `total_cycles`);
//! `--per-layer` only affects the text formats.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::args::{ModelArgs, VariantArgs};
use super::format::{render, Format, Tabular};
use crate::hw::Device;
use crate::io::limits::{at_least_one, check_memory};
use crate::sim::check::{check_layers, FunctionalReport};
use crate::sim::network::{layer_specs, sparse_layers};
use crate::sim::{simulate_layers, Precision, SimReport};
use crate::variant::apply;
use crate::{Error, Result};

/// `hw/paper.toml`, used when `--hw` is not given.
pub const PAPER_HW_TOML: &str = include_str!("../../hw/paper.toml");

/// The device of `--hw`, or the embedded paper abstraction.
pub fn load_device(hw: Option<&PathBuf>) -> Result<Device> {
    match hw {
        Some(p) => Device::load(p),
        None => Device::from_toml_str(PAPER_HW_TOML, "hw/paper.toml"),
    }
}

const AFTER: &str = "\
Units: cycles are DSP clock cycles of the whole array (layers run one after another, one frame
at a time); ideal_cycles = ceil(work / (dsp_count x lanes)) with work = MACs (full precision,
mac.lanes per slice) or +/-1 products of all M x N bases (binary, xnor.lanes per slice);
utilization in 0-1 = busy lane-slots / available lane-slots during compute cycles;
efficiency in 0-1 = ideal_cycles / cycles; clock in MHz; latency in us = cycles / clock_mhz;
frames/s = 10^6 / total latency_us; NCC in 10^6 (fp MACs + binary ops / 48, as Table 1).
Only conv and linear layers occupy the DSPs (BN, pooling, adds run in fabric).
Kernel/weight-pruned layers run the dense schedule (zero weights are not skipped).

--functional runs each simulated layer through the bit-exact slice model on seeded random inputs
of its shape (binary: +/-1 weights and activations; full precision: values in [-1, 1], rounded
to the lane's Q format, e.g. Q8.8 activations / Q2.14 weights for 16-bit lanes) and compares it
with the engines: binary accumulators must equal the bit-exact engine's (bconv2d), full-precision
outputs must lie within the stated fixed-point error bound of the float engine's conv2d.
functional_match is true when every layer passes.

Examples:
  bbed simulate --model resnet20 --variant xnor --hw hw/zcu102.toml --per-layer
  bbed simulate --model resnet8 --variant abc --m 3 --n 3 --functional --images 2 --format json
  bbed simulate --model resnet50 --hw hw/paper.toml --format csv";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub variant: VariantArgs,
    /// Hardware TOML (device, DSP48 slice, popcount tree); default: embedded hw/paper.toml
    /// (the paper's one-slice 2 x 16-bit / 48-XNOR abstraction, 100 MHz)
    #[arg(long)]
    pub hw: Option<PathBuf>,
    /// Print every layer, not only the totals (text formats; JSON always has every layer)
    #[arg(long)]
    pub per_layer: bool,
    /// Check every layer's simulated output against a reference on random inputs
    #[arg(long)]
    pub functional: bool,
    /// Images per layer for --functional
    #[arg(long, default_value_t = 1, requires = "functional")]
    pub images: usize,
    /// Seed of the random inputs for --functional
    #[arg(long, default_value_t = 0, requires = "functional")]
    pub seed: u64,
    /// Output format (json carries full-precision numbers)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The JSON document of `bbed simulate`.
#[derive(Debug, Clone, Serialize)]
pub struct SimulateOutput {
    pub model: String,
    pub variant: String,
    #[serde(flatten)]
    pub report: SimReport,
    /// Kernel/weight-pruned layers simulated with the dense schedule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dense_schedule_sparse_layers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functional_match: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functional: Option<FunctionalReport>,
}

fn precision_label(p: Precision) -> String {
    match p {
        Precision::Full => "full".into(),
        Precision::Binary { m: 1, n: 1 } => "binary".into(),
        Precision::Binary { m, n } => format!("binary {m}x{n}"),
    }
}

fn table(o: &SimulateOutput, per_layer: bool) -> Tabular {
    let mut headers = vec![
        "layer",
        "precision",
        "cycles",
        "ideal_cycles",
        "utilization",
        "efficiency",
        "latency_us",
        "ncc_1e6",
        "frames_per_s",
    ];
    if o.functional.is_some() {
        headers.push("functional");
    }
    let mut t = Tabular::new(&headers);
    let verdict = |name: &str| -> Option<String> {
        o.functional.as_ref().map(|f| {
            f.layers
                .iter()
                .find(|l| l.name == name)
                .map(|l| if l.matched { "match" } else { "MISMATCH" })
                .unwrap_or("")
                .to_string()
        })
    };
    if per_layer {
        for l in &o.report.layers {
            let mut row = vec![
                l.name.clone(),
                precision_label(l.precision),
                l.cycles.to_string(),
                l.ideal_cycles.to_string(),
                format!("{:.4}", l.utilization),
                format!("{:.4}", l.efficiency),
                format!("{:.3}", l.latency_us),
                format!("{:.4}", l.ncc),
                String::new(),
            ];
            if let Some(v) = verdict(&l.name) {
                row.push(v);
            }
            t.push(row);
        }
    }
    let r = &o.report;
    let mut row = vec![
        "TOTAL".into(),
        format!(
            "{} {} on {} x DSP @ {} MHz",
            o.model, o.variant, r.dsp_count, r.clock_mhz
        ),
        r.total_cycles.to_string(),
        r.ideal_cycles.to_string(),
        format!("{:.4}", r.utilization),
        format!(
            "{:.4}",
            r.ideal_cycles as f64 / r.total_cycles.max(1) as f64
        ),
        format!("{:.3}", r.latency_us),
        format!("{:.4}", r.ncc),
        format!("{:.2}", r.frames_per_s),
    ];
    if let Some(m) = o.functional_match {
        row.push(if m { "match" } else { "MISMATCH" }.into());
    }
    t.push(row);
    t
}

fn progress(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("functional check {bar:30} {pos}/{len} layers")
    {
        pb.set_style(style);
    }
    pb
}

/// Simulates (and optionally checks) a network variant; the typed output of `bbed simulate`.
pub fn simulate(a: &SimulateArgs) -> Result<SimulateOutput> {
    let (model, spec) = a.model.load_spec(&a.variant)?;
    let net = model.network;
    let dev = load_device(a.hw.as_ref())?;
    let compressed = apply(&net, &spec)?;
    let specs = layer_specs(&compressed)?;
    let report = simulate_layers(&specs, &dev)?;
    let functional = if a.functional {
        at_least_one("--images", a.images)?;
        // Layer by layer: weights plus inputs and outputs of `--images` images, as integers
        // and floats (the two sides compared).
        check_memory(
            &format!("functional check of {}", net.name),
            net.memory_estimate(a.images, 2, 2),
            "lower --images or choose a smaller model",
        )?;
        let pb = progress(specs.len());
        let f = check_layers(&specs, &dev, a.images, a.seed, || pb.inc(1))?;
        pb.finish_and_clear();
        Some(f)
    } else {
        None
    };
    Ok(SimulateOutput {
        model: net.name.clone(),
        variant: compressed.spec.label(),
        report,
        dense_schedule_sparse_layers: sparse_layers(&compressed),
        functional_match: functional.as_ref().map(|f| f.functional_match),
        functional,
    })
}

pub fn run(a: SimulateArgs) -> Result<String> {
    let out = simulate(&a)?;
    let t = table(&out, a.per_layer);
    let text = render(a.format, &t, &out);
    if out.functional_match == Some(false) {
        // The report is the evidence: print it, then fail the command so scripts and CI notice.
        print!("{text}");
        return Err(Error::check(
            "simulate --functional",
            "simulated layer outputs differ from the engines (see the report above)",
        ));
    }
    Ok(text)
}

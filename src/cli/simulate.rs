//! `bbed simulate`: cycle counts and fabric resources of a network variant on a DSP48 device
//! described by a hardware TOML (default: the built-in ZCU102 part, [`crate::hw::DEFAULT_PART`]),
//! layer-sequential (`--mode sequential`, the shared array of [`crate::sim::schedule`]) or as a
//! FINN-style dataflow pipeline (`--mode dataflow`, [`crate::sim::fold`]), optionally with a
//! functional check of every simulated layer.
//!
//! JSON always carries every layer (so layer cycles can be summed against `total_cycles`);
//! `--per-layer` only affects the text formats.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::args::{ModelArgs, VariantArgs};
use super::format::{render, Format, Tabular};
use crate::hw::{self, Device};
use crate::io::limits::{at_least_one, check_memory};
use crate::sim::check::{check_layers, check_layers_data, FunctionalReport};
use crate::sim::network::{layer_specs, sparse_layers};
use crate::sim::real::real_layer_data;
use crate::sim::resources::{fit, Capacity, DdrTraffic, Resources};
use crate::sim::{dataflow, simulate_layers, DataflowReport, Precision, SimReport, Target};
use crate::variant::apply;
use crate::{Error, Result};

/// The embedded `hw/paper.toml` (the paper's abstract slice; `--hw paper`).
pub const PAPER_HW_TOML: &str = hw::PAPER_TOML;

/// The device of `--hw` (a built-in name such as `paper` or `zcu102`, or a file), or the
/// default part [`hw::DEFAULT_PART`].
pub fn load_device(hw: Option<&PathBuf>) -> Result<Device> {
    hw::resolve(hw.map(|p| p.as_path()))
}

/// Execution style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// Layers one after another on one shared DSP array.
    Sequential,
    /// Every layer its own PE x SIMD unit, pipelined.
    Dataflow,
}

const AFTER: &str = "\
Hardware: --hw takes a built-in part (zcu102 = default, zu3eg, zynq7020, paper, reference) or a
TOML file; `physical` says whether the slice is a real DSP48E1/E2 mode (paper: false).
Resources (dsp, lut, ff, bram18, uram) per layer and in total against the part's capacity (vendor
tables), `fits` and the `binding` resource; DDR bytes per frame against the board bandwidth.
--mode sequential (default): one DSP array shared in time; --mode dataflow: a FINN-style pipeline,
every layer a PE x SIMD unit (PE | out_c, SIMD | in_c, cycles = out_c/PE x in_c*k*k/SIMD x
output pixels x base pairs); frames/s = clock / slowest layer; the folding is searched for
--target-fps, or for the fastest design within --dsp-budget/--lut-budget (default: the part).

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
functional_match is true when every layer passes. With --data (and --weights) the layers get
their real inputs for those test images instead (see `bbed vectors --help`).

Examples:
  bbed simulate --model resnet20 --variant xnor --per-layer
  bbed simulate --model resnet20 --variant xnor --mode dataflow --target-fps 10000 --per-layer
  bbed simulate --model resnet8 --variant abc --m 3 --n 3 --functional --images 2 --format json
  bbed simulate --model resnet50 --hw paper --format csv";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub variant: VariantArgs,
    /// Hardware: a built-in part (zcu102, zu3eg, zynq7020, paper, reference) or a TOML file;
    /// default: zcu102 (XCZU9EG, physical DSP48E2 with two INT8 products per slice). `paper` is
    /// the paper's abstract one-slice 2 x 16-bit / 48-XNOR DSP48 (Table 1)
    #[arg(long)]
    pub hw: Option<PathBuf>,
    /// Execution style: layers one after another on one array, or a dataflow pipeline
    #[arg(long, value_enum, default_value_t = ExecMode::Sequential)]
    pub mode: ExecMode,
    /// Dataflow: search the cheapest folding that reaches this many frames per second
    #[arg(long, conflicts_with_all = ["dsp_budget", "lut_budget"])]
    pub target_fps: Option<f64>,
    /// Dataflow: the fastest folding within this many DSPs (default: the part's)
    #[arg(long)]
    pub dsp_budget: Option<u64>,
    /// Dataflow: the fastest folding within this many LUTs (default: the part's)
    #[arg(long)]
    pub lut_budget: Option<u64>,
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
    /// --functional on real data: trained weights and real images (see `bbed vectors --help`)
    #[command(flatten)]
    pub real: super::vectors::RealArgs,
    /// Output format (json carries full-precision numbers)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The JSON document of `bbed simulate`.
#[derive(Debug, Clone, Serialize)]
pub struct SimulateOutput {
    pub model: String,
    pub variant: String,
    pub mode: ExecMode,
    /// `--mode sequential`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub report: Option<SimReport>,
    /// `--mode dataflow`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub dataflow: Option<DataflowOutput>,
    pub capacity: Capacity,
    pub fits: bool,
    /// The resource with the highest used / capacity share.
    pub binding: Option<String>,
    pub binding_share: Option<f64>,
    pub ddr: DdrTraffic,
    /// Kernel/weight-pruned layers simulated with the dense schedule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dense_schedule_sparse_layers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functional_match: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functional: Option<FunctionalReport>,
}

/// The device part of a dataflow report (the sequential report carries the same fields).
#[derive(Debug, Clone, Serialize)]
pub struct DataflowOutput {
    pub device: String,
    pub source: String,
    pub dsp_count: u32,
    pub clock_mhz: f64,
    pub physical: bool,
    #[serde(flatten)]
    pub design: DataflowReport,
}

fn precision_label(p: Precision) -> String {
    match p {
        Precision::Full => "full".into(),
        Precision::Binary { m: 1, n: 1 } => "binary".into(),
        Precision::Binary { m, n } => format!("binary {m}x{n}"),
    }
}

fn resource_cells(r: Option<&Resources>) -> Vec<String> {
    match r {
        Some(r) => r.values().iter().map(|v| v.to_string()).collect(),
        None => vec![String::new(); 5],
    }
}

/// The functional verdict of layer `name` (None without --functional).
fn verdict(o: &SimulateOutput, name: &str) -> Option<String> {
    o.functional.as_ref().map(|f| {
        f.layers
            .iter()
            .find(|l| l.name == name)
            .map(|l| if l.matched { "match" } else { "MISMATCH" })
            .unwrap_or("")
            .to_string()
    })
}

fn fit_cell(o: &SimulateOutput) -> String {
    let verdict = if o.fits { "fits" } else { "DOES NOT FIT" };
    match (&o.binding, o.binding_share) {
        (Some(b), Some(s)) => format!("{verdict} ({b} {:.0}%)", 100.0 * s),
        _ => verdict.to_string(),
    }
}

fn part_label(o: &SimulateOutput, dsp_count: u32, clock_mhz: f64, physical: bool) -> String {
    format!(
        "{} {} on {} x DSP @ {} MHz, {}",
        o.model,
        o.variant,
        dsp_count,
        clock_mhz,
        if physical {
            "physical slice"
        } else {
            "abstract slice (not physical)"
        }
    )
}

fn table(o: &SimulateOutput, per_layer: bool) -> Tabular {
    match (&o.report, &o.dataflow) {
        (_, Some(d)) => dataflow_table(o, d, per_layer),
        (Some(r), None) => sequential_table(o, r, per_layer),
        (None, None) => Tabular::new(&["layer"]),
    }
}

fn sequential_table(o: &SimulateOutput, r: &SimReport, per_layer: bool) -> Tabular {
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
        "dsp",
        "lut",
        "ff",
        "bram18",
        "uram",
        "fit",
    ];
    if o.functional.is_some() {
        headers.push("functional");
    }
    let mut t = Tabular::new(&headers);
    if per_layer {
        for l in &r.layers {
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
            row.extend(resource_cells(l.resources.as_ref()));
            row.push(String::new());
            if let Some(v) = verdict(o, &l.name) {
                row.push(v);
            }
            t.push(row);
        }
    }
    let mut row = vec![
        "TOTAL".into(),
        part_label(o, r.dsp_count, r.clock_mhz, r.physical),
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
    row.extend(resource_cells(Some(&r.resources)));
    row.push(fit_cell(o));
    if let Some(m) = o.functional_match {
        row.push(if m { "match" } else { "MISMATCH" }.into());
    }
    t.push(row);
    t
}

fn dataflow_table(o: &SimulateOutput, d: &DataflowOutput, per_layer: bool) -> Tabular {
    let mut headers = vec![
        "layer",
        "precision",
        "pe",
        "simd",
        "cycles",
        "frames_per_s",
        "dsp",
        "lut",
        "ff",
        "bram18",
        "uram",
        "finn_dsp",
        "finn_lut",
        "finn_bram18",
        "fit",
    ];
    if o.functional.is_some() {
        headers.push("functional");
    }
    let mut t = Tabular::new(&headers);
    let g = &d.design;
    if per_layer {
        for l in &g.layers {
            let mut row = vec![
                l.name.clone(),
                precision_label(l.precision),
                l.pe.to_string(),
                l.simd.to_string(),
                l.cycles.to_string(),
                String::new(),
            ];
            row.extend(resource_cells(Some(&l.resources)));
            row.extend([
                l.finn.dsp.to_string(),
                l.finn.lut.to_string(),
                l.finn.bram18.to_string(),
                if l.name == g.bottleneck {
                    "bottleneck".into()
                } else {
                    String::new()
                },
            ]);
            if let Some(v) = verdict(o, &l.name) {
                row.push(v);
            }
            t.push(row);
        }
    }
    let sum = |f: fn(&crate::sim::fold::FinnEstimate) -> u64| -> String {
        g.layers.iter().map(|l| f(&l.finn)).sum::<u64>().to_string()
    };
    let mut row = vec![
        "TOTAL".into(),
        format!(
            "{} (dataflow; bottleneck {}{})",
            part_label(o, d.dsp_count, d.clock_mhz, d.physical),
            g.bottleneck,
            if g.target_met { "" } else { "; target NOT met" }
        ),
        String::new(),
        String::new(),
        g.ii_cycles.to_string(),
        format!("{:.2}", g.frames_per_s),
    ];
    row.extend(resource_cells(Some(&g.resources)));
    row.extend([
        sum(|f| f.dsp),
        sum(|f| f.lut),
        sum(|f| f.bram18),
        fit_cell(o),
    ]);
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
    if a.real.data.is_some() && !a.functional {
        return Err(Error::input("--data", "needs --functional"));
    }
    let dataflow_only = a.target_fps.is_some() || a.dsp_budget.is_some() || a.lut_budget.is_some();
    if dataflow_only && a.mode != ExecMode::Dataflow {
        return Err(Error::input(
            "--target-fps/--dsp-budget/--lut-budget",
            "only apply to --mode dataflow (the sequential array is the whole part)",
        ));
    }
    let (report, flow) = match a.mode {
        ExecMode::Sequential => (Some(simulate_layers(&specs, &dev)?), None),
        ExecMode::Dataflow => {
            let target = match a.target_fps {
                Some(f) => Target::Fps(f),
                None => Target::Budget {
                    dsp: a.dsp_budget.or(Some(dev.device.dsp_count as u64)),
                    lut: a.lut_budget.or(dev.device.lut),
                },
            };
            let design = dataflow(&specs, &dev, target)?;
            let out = DataflowOutput {
                device: dev.device.name.clone(),
                source: dev.source.clone(),
                dsp_count: dev.device.dsp_count,
                clock_mhz: dev.device.clock_mhz,
                physical: dev.physical(),
                design,
            };
            (None, Some(out))
        }
    };
    let (used, ddr_bytes) = match (&report, &flow) {
        (Some(r), _) => (r.resources, r.ddr_bytes_per_frame),
        (None, Some(d)) => (d.design.resources, d.design.ddr_bytes_per_frame),
        (None, None) => unreachable!("one of the two modes ran"),
    };
    let capacity = Capacity::of(&dev);
    let f = fit(&used, &capacity);
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
        let f = match a.real.load(&compressed, a.images, a.seed)? {
            Some(r) => {
                let all: Vec<usize> = (0..specs.len()).collect();
                let data = real_layer_data(&r.net, &specs, &all, &dev, &r.x)?;
                check_layers_data(&specs, &dev, &data, a.images, r.describe, || pb.inc(1))?
            }
            None => check_layers(&specs, &dev, a.images, a.seed, || pb.inc(1))?,
        };
        pb.finish_and_clear();
        Some(f)
    } else {
        None
    };
    Ok(SimulateOutput {
        model: net.name.clone(),
        variant: compressed.spec.label(),
        mode: a.mode,
        report,
        dataflow: flow,
        capacity,
        fits: f.fits,
        binding: f.binding,
        binding_share: f.binding_share,
        ddr: DdrTraffic::new(ddr_bytes, &dev),
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

//! FINN-style folding and the dataflow execution style.
//!
//! ## Dataflow
//! Every conv/linear layer gets its own matrix-vector unit (MVAU) and the layers run as a
//! pipeline, one frame after another; throughput is set by the slowest layer's initiation
//! interval (II): `frames/s = clock / max_layer II`. A layer of `MH = out_c` outputs and
//! `MW = in_c * k * k` inputs per output, folded `PE` (output channels in parallel) x `SIMD`
//! (input channels in parallel), takes FINN's `II = (MH / PE) * (MW / SIMD) * output_pixels`
//! cycles, times `m * n` for a binary layer of `m` weight and `n` activation bases (the base
//! pairs run one after another on the same unit). Legal folds: `PE | out_c` (FINN: PE | MH) and
//! `SIMD | in_c` (FINN: SIMD | MW; the sliding-window generator also needs SIMD | in_c, which
//! implies it). The first-frame latency is reported as the sum of the layer IIs plus pipeline
//! fills (an upper bound: a layer may start before its producer finishes).
//!
//! ## Resources of one MVAU (ours; FINN's in [`super::resources::finn`])
//! - binary: `PE` popcount trees over `SIMD` fused XNOR inputs, each with its accumulator (LUTs;
//!   no DSP);
//! - full precision: `ceil(PE / mac.lanes) * SIMD` DSP48s (`mac.lanes` output channels share one
//!   activation per DSP: the shared-operand packing; the paper slice packs the same way), the
//!   SIMD products of a lane summed in DSP cascades and a fabric tree ([`lane_drain`]);
//! - weights on chip: `PE * SIMD * bits` wide, `MW * MH / (PE * SIMD)` deep (x `m` bases);
//! - a line buffer for `k > 1`: `((k - 1) * in_w + k) * in_c` activations, `SIMD * act_bits` wide.
//!
//! Weights never leave the chip, so DDR carries only the input image and the last output.
//!
//! ## Search
//! Candidates of a layer are all legal (PE, SIMD). For a target II, a layer takes the
//! candidate with `II <= target` of least cost `dsp / dsp_budget + lut / lut_budget`
//! (ties: fewer LUTs, then fewer DSPs); if none reaches the target it takes its fastest.
//! `--target-fps F` sets the target to `floor(clock / F)`. With a budget (`--dsp-budget`,
//! `--lut-budget`, default the device's DSPs and LUTs) the smallest target whose selection stays
//! within the budget is taken, trying every II any candidate has, smallest first, and then every
//! layer is re-folded at least cost for the II that design achieves (faster layers than the
//! bottleneck buy nothing). This is a heuristic: the per-layer choice minimises a weighted sum,
//! not both resources at once.

use serde::{Deserialize, Serialize};

use super::layer::{LayerSpec, Precision};
use super::resources::finn::Mvau;
use super::resources::logic::{lane_drain, mac_acc_bits, popcount_acc_bits, popcount_tree};
use super::resources::memory::{place, Memory};
use super::resources::{act_bits, weight_bits, Resources};
use crate::hw::Device;
use crate::model::geom::ConvGeom;
use crate::{Error, Result};

/// One layer's folding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    pub pe: u64,
    pub simd: u64,
}

/// What the search aims at (JSON: `{"fps": F}` or `{"budget": {"dsp": D, "lut": L}}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// At least this many frames per second, at least cost.
    Fps(f64),
    /// Fastest within these budgets (None = unlimited).
    Budget { dsp: Option<u64>, lut: Option<u64> },
}

/// A layer's MVAU shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub mh: u64,
    pub mw: u64,
    pub in_c: u64,
    pub kernel: u64,
    pub in_w: u64,
    pub pixels: u64,
    pub passes: u64,
    pub precision: Precision,
}

impl Unit {
    pub fn new(g: &ConvGeom, precision: Precision) -> Unit {
        let passes = match precision {
            Precision::Full => 1,
            Precision::Binary { m, n } => (m * n) as u64,
        };
        Unit {
            mh: g.o as u64,
            mw: (g.c * g.kh * g.kw) as u64,
            in_c: g.c as u64,
            kernel: g.kh as u64,
            in_w: g.w as u64,
            pixels: g.pixels() as u64,
            passes,
            precision,
        }
    }

    /// FINN's cycle formula times the base pairs.
    pub fn cycles(&self, f: Fold) -> u64 {
        (self.mh / f.pe) * (self.mw / f.simd) * self.pixels * self.passes
    }

    /// Whether `f` is a legal fold (PE | MH, SIMD | in_c).
    pub fn legal(&self, f: Fold) -> bool {
        f.pe >= 1 && f.simd >= 1 && self.mh.is_multiple_of(f.pe) && self.in_c.is_multiple_of(f.simd)
    }

    /// All legal folds, by PE then SIMD.
    pub fn candidates(&self) -> Vec<Fold> {
        let pes = divisors(self.mh);
        let simds = divisors(self.in_c);
        pes.iter()
            .flat_map(|&pe| simds.iter().map(move |&simd| Fold { pe, simd }))
            .collect()
    }

    /// Logic of the MVAU (DSP, LUT, FF; memories in [`Unit::memories`]).
    pub fn logic(&self, f: Fold, dev: &Device) -> Resources {
        match self.precision {
            Precision::Binary { .. } => {
                let (l, ff) = popcount_tree(f.simd, true);
                let acc = popcount_acc_bits(self.mw);
                Resources {
                    lut: f.pe * (l + acc),
                    ff: f.pe * (ff + acc),
                    ..Resources::default()
                }
            }
            Precision::Full => {
                let lanes = dev.slice.mac.lanes as u64;
                let w = dev.slice.mac.width as u64;
                let acc = mac_acc_bits(self.mw, w);
                let (l, ff) = lane_drain(f.simd, w, dev.slice.mac.guard_bits, acc);
                Resources {
                    dsp: f.pe.div_ceil(lanes) * f.simd,
                    lut: f.pe * l,
                    ff: f.pe * ff,
                    ..Resources::default()
                }
            }
        }
    }

    /// (weight memory, line buffer) of the MVAU.
    pub fn memories(&self, f: Fold, dev: &Device) -> (Memory, Memory) {
        let (wb, bases) = match self.precision {
            Precision::Full => (weight_bits(self.precision, dev), 1),
            Precision::Binary { m, .. } => (1, m as u64),
        };
        let width = f.pe * f.simd * wb;
        let weights = Memory {
            width,
            depth: self.mw * self.mh / (f.pe * f.simd) * bases,
        };
        let ab = act_bits(self.precision, dev);
        let line = if self.kernel > 1 {
            let bits = ((self.kernel - 1) * self.in_w + self.kernel) * self.in_c * ab;
            Memory::of_bits(bits, f.simd * ab)
        } else {
            Memory { width: 0, depth: 0 }
        };
        (weights, line)
    }

    /// FINN's view of the same MVAU (see [`super::resources::finn`]).
    pub fn finn(&self, f: Fold, dev: &Device) -> Mvau {
        let (w, a, signed, dsp) = match self.precision {
            Precision::Full => {
                let b = dev.slice.mac.width as u64;
                (b, b, true, true)
            }
            Precision::Binary { .. } => (1, 1, false, false),
        };
        Mvau {
            mh: self.mh,
            mw: self.mw,
            pe: f.pe,
            simd: f.simd,
            vectors: self.pixels,
            w_bits: w,
            a_bits: a,
            signed_input: signed,
            dsp_products: dsp,
        }
    }
}

/// Divisors of `n` in increasing order.
pub fn divisors(n: u64) -> Vec<u64> {
    let mut small = Vec::new();
    let mut large = Vec::new();
    let mut d = 1;
    while d * d <= n {
        if n.is_multiple_of(d) {
            small.push(d);
            if d != n / d {
                large.push(n / d);
            }
        }
        d += 1;
    }
    large.reverse();
    small.extend(large);
    small
}

/// FINN's estimate of one layer, for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinnEstimate {
    pub cycles: u64,
    pub dsp: u64,
    pub lut: u64,
    pub bram18: u64,
}

/// One layer of a dataflow design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataflowLayer {
    pub name: String,
    pub precision: Precision,
    pub mh: u64,
    pub mw: u64,
    pub output_pixels: u64,
    pub pe: u64,
    pub simd: u64,
    /// Initiation interval, cycles per frame.
    pub cycles: u64,
    pub resources: Resources,
    /// FINN's estimate of the same MVAU (weights only in its block RAM count).
    pub finn: FinnEstimate,
}

/// A dataflow design: per-layer folding, throughput and resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataflowReport {
    pub target: Target,
    /// Whether every layer reached the target II (Fps) / the design stays in budget (Budget).
    pub target_met: bool,
    pub ii_cycles: u64,
    pub bottleneck: String,
    pub frames_per_s: f64,
    /// Sum of layer IIs and pipeline fills, us (first-frame latency bound).
    pub latency_us: f64,
    pub layers: Vec<DataflowLayer>,
    pub resources: Resources,
    /// DDR bytes per frame: the input image and the last layer's output.
    pub ddr_bytes_per_frame: u64,
}

struct Choice {
    fold: Fold,
    cycles: u64,
    logic: Resources,
}

fn choose(options: &[Choice], target: u64, dsp_b: f64, lut_b: f64) -> &Choice {
    let cost = |c: &Choice| c.logic.dsp as f64 / dsp_b + c.logic.lut as f64 / lut_b;
    let within = options.iter().filter(|c| c.cycles <= target);
    let best = within.min_by(|a, b| {
        cost(a)
            .total_cmp(&cost(b))
            .then(a.logic.lut.cmp(&b.logic.lut))
            .then(a.logic.dsp.cmp(&b.logic.dsp))
            .then(a.cycles.cmp(&b.cycles))
    });
    best.unwrap_or_else(|| {
        options
            .iter()
            .min_by_key(|c| (c.cycles, c.logic.dsp, c.logic.lut))
            .expect("every layer has the fold (1, 1)")
    })
}

/// Searches a folding for `target` and reports the dataflow design.
pub fn dataflow(layers: &[LayerSpec], dev: &Device, target: Target) -> Result<DataflowReport> {
    let units: Vec<Unit> = layers
        .iter()
        .map(|l| Ok(Unit::new(&l.geometry()?, l.precision)))
        .collect::<Result<_>>()?;
    let options: Vec<Vec<Choice>> = units
        .iter()
        .map(|u| {
            u.candidates()
                .into_iter()
                .map(|fold| Choice {
                    fold,
                    cycles: u.cycles(fold),
                    logic: u.logic(fold, dev),
                })
                .collect()
        })
        .collect();
    let (dsp_budget, lut_budget) = match target {
        Target::Fps(_) => (Some(dev.device.dsp_count as u64), dev.device.lut),
        Target::Budget { dsp, lut } => (dsp, lut),
    };
    // Weights of the cost; an undeclared budget still needs a finite scale.
    let dsp_b = dsp_budget.unwrap_or(dev.device.dsp_count as u64).max(1) as f64;
    let lut_b = lut_budget.unwrap_or(u64::MAX).max(1) as f64;
    let pick =
        |t: u64| -> Vec<&Choice> { options.iter().map(|o| choose(o, t, dsp_b, lut_b)).collect() };
    let (chosen, met) = match target {
        Target::Fps(fps) => {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(Error::input("--target-fps", "must be a positive number"));
            }
            let t = (dev.device.clock_mhz * 1e6 / fps).floor() as u64;
            let c = pick(t);
            let met = c.iter().all(|c| c.cycles <= t);
            (c, met)
        }
        Target::Budget { .. } => {
            let mut ts: Vec<u64> = options.iter().flatten().map(|c| c.cycles).collect();
            ts.sort_unstable();
            ts.dedup();
            let within = |c: &[&Choice]| {
                let d: u64 = c.iter().map(|c| c.logic.dsp).sum();
                let l: u64 = c.iter().map(|c| c.logic.lut).sum();
                dsp_budget.is_none_or(|b| d <= b) && lut_budget.is_none_or(|b| l <= b)
            };
            let found = ts.iter().map(|&t| pick(t)).find(|c| within(c));
            match found {
                Some(c) => {
                    // Layers faster than the bottleneck buy nothing: re-pick the cheapest folding
                    // for the achieved II (kept only if it stays within the budget).
                    let ii = c.iter().map(|c| c.cycles).max().unwrap_or(0);
                    let lean = pick(ii);
                    (if within(&lean) { lean } else { c }, true)
                }
                // Nothing fits: the cheapest design (every layer at its least cost).
                None => (pick(u64::MAX), false),
            }
        }
    };
    let mut out = Vec::with_capacity(layers.len());
    let mut weights = Vec::with_capacity(layers.len());
    let mut lines = Vec::with_capacity(layers.len());
    for ((spec, u), c) in layers.iter().zip(&units).zip(&chosen) {
        let (w, l) = u.memories(c.fold, dev);
        weights.push(w);
        lines.push(l);
        let fm = u.finn(c.fold, dev);
        out.push(DataflowLayer {
            name: spec.name.clone(),
            precision: spec.precision,
            mh: u.mh,
            mw: u.mw,
            output_pixels: u.pixels,
            pe: c.fold.pe,
            simd: c.fold.simd,
            cycles: c.cycles,
            resources: c.logic,
            finn: FinnEstimate {
                cycles: fm.exp_cycles() * u.passes,
                dsp: fm.dsps(),
                lut: fm.luts(),
                bram18: fm.bram18(),
            },
        });
    }
    let line_bram: u64 = lines.iter().map(|m| m.bram18()).sum();
    let free = dev.device.bram18.map(|b| b.saturating_sub(line_bram));
    for ((l, p), line) in out
        .iter_mut()
        .zip(place(&weights, free, dev.device.uram))
        .zip(&lines)
    {
        l.resources.bram18 = p.0 + line.bram18();
        l.resources.uram = p.1;
    }
    let resources = out
        .iter()
        .fold(Resources::default(), |a, l| a.plus(&l.resources));
    // The first of the slowest layers (ties: the earliest in the network).
    let slowest = out
        .iter()
        .min_by_key(|l| std::cmp::Reverse(l.cycles))
        .expect("at least one layer");
    let ii = slowest.cycles;
    let fill: u64 = layers
        .iter()
        .map(|l| match l.precision {
            Precision::Full => dev.mac_latency() as u64,
            Precision::Binary { .. } => dev.xnor_latency() as u64,
        })
        .sum();
    let latency_cycles: u64 = out.iter().map(|l| l.cycles).sum::<u64>() + fill;
    let first = layers[0].geometry()?;
    let last = layers[layers.len() - 1].geometry()?;
    let ddr = ((first.c * first.h * first.w) as u64 * act_bits(layers[0].precision, dev))
        .div_ceil(8)
        + ((last.o * last.ho * last.wo) as u64 * 32).div_ceil(8);
    Ok(DataflowReport {
        target,
        target_met: met,
        ii_cycles: ii,
        bottleneck: slowest.name.clone(),
        frames_per_s: dev.device.clock_mhz * 1e6 / ii as f64,
        latency_us: latency_cycles as f64 / dev.device.clock_mhz,
        layers: out,
        resources,
        ddr_bytes_per_frame: ddr,
    })
}

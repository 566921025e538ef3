//! Per-layer and whole-network simulation reports (plain serde data, SCALE-Sim-like fields).
//!
//! Layers run one after another, one frame at a time (no inter-layer pipelining), so the frame
//! latency is the sum of layer latencies and `frames_per_s = 1 / latency`. Resources per layer
//! and of the whole array, and DDR bytes per frame, follow [`super::resources::sequential`]; the
//! dataflow style is in [`super::fold`].
//!
//! `ncc` is the paper's normalised compute complexity (Table 1), in 10^6: one unit per
//! full-precision MAC plus one unit per 48 +/-1 products (all M x N passes). It reproduces Table 1
//! (e.g. ResNet20: 40.55 -> "41"; XNOR: 0.44 + 40.1/48 -> "1.3"). Note that it does *not* divide
//! full-precision MACs by the two 16-bit lanes the paper attributes to a DSP48, so simulated
//! cycles on one `hw/paper.toml` slice are about `fp_MACs / 2 + bin_MACs / 48` plus tiling and
//! pipeline overhead, i.e. below NCC for full-precision layers.

use super::layer::{LayerSpec, Precision};
use super::resources::{sequential, Resources};
use super::schedule::{grouped_cycles, Mapping, Mode};
use crate::hw::Device;
use crate::Result;
use serde::{Deserialize, Serialize};

/// XNORs per NCC unit in the paper's normalisation.
pub const NCC_XNOR_PER_UNIT: f64 = 48.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    pub name: String,
    pub precision: Precision,
    pub mode: Mode,
    pub cols: usize,
    pub rows: usize,
    pub tiles: u64,
    /// Useful lane operations (MACs or +/-1 products).
    pub work: u64,
    pub ideal_cycles: u64,
    pub compute_cycles: u64,
    pub stall_cycles: u64,
    pub fill_cycles: u64,
    pub cycles: u64,
    /// Busy lane-slots / available lane-slots during compute cycles.
    pub utilization: f64,
    /// ideal_cycles / cycles (includes stalls and pipeline fill).
    pub efficiency: f64,
    pub latency_us: f64,
    /// This layer's NCC contribution, 10^6.
    pub ncc: f64,
    /// What the layer occupies of the shared array while it runs (filled by
    /// [`simulate_layers`], which knows the next layer's input precision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    pub device: String,
    pub source: String,
    pub dsp_count: u32,
    pub clock_mhz: f64,
    pub mem_bytes_per_cycle: Option<u32>,
    /// Whether the slice is a real DSP48 mode (false for the paper's abstraction).
    pub physical: bool,
    /// Resources of the whole array (built once, shared by the layers in time).
    pub resources: Resources,
    /// DDR bytes per frame: all weights, the input image and the last output.
    pub ddr_bytes_per_frame: u64,
    /// Paper's NCC, 10^6.
    pub ncc: f64,
    pub total_cycles: u64,
    pub ideal_cycles: u64,
    pub stall_cycles: u64,
    /// Busy slice-cycles / (dsp_count x compute cycles), over all layers.
    pub utilization: f64,
    pub latency_us: f64,
    pub frames_per_s: f64,
    pub layers: Vec<LayerReport>,
}

/// Cycle report of one layer.
pub fn simulate_layer(spec: &LayerSpec, dev: &Device) -> Result<LayerReport> {
    let m = Mapping::new(spec, dev)?;
    let c = grouped_cycles(&m, dev.device.mem_bytes_per_cycle);
    let slots = (m.dsp_count * m.lanes) as f64 * c.compute_cycles as f64;
    let ncc = match m.mode {
        Mode::Mac => m.work as f64,
        Mode::Xnor => m.work as f64 / NCC_XNOR_PER_UNIT,
    } / 1e6;
    Ok(LayerReport {
        name: spec.name.clone(),
        precision: spec.precision,
        mode: m.mode,
        cols: m.cols,
        rows: m.rows,
        tiles: m.tiles_groups * m.tiles_pixels,
        work: m.work,
        ideal_cycles: m.ideal_cycles(),
        compute_cycles: c.compute_cycles,
        stall_cycles: c.stall_cycles,
        fill_cycles: c.fill_cycles,
        cycles: c.cycles,
        utilization: m.work as f64 / slots,
        efficiency: m.ideal_cycles() as f64 / c.cycles as f64,
        latency_us: c.cycles as f64 / dev.device.clock_mhz,
        ncc,
        resources: None,
    })
}

/// Cycle report of a sequence of layers run one after another on `dev`.
pub fn simulate_layers(layers: &[LayerSpec], dev: &Device) -> Result<SimReport> {
    let mut reports = Vec::with_capacity(layers.len());
    let (mut busy_slice_cycles, mut compute) = (0.0f64, 0u64);
    for spec in layers {
        let r = simulate_layer(spec, dev)?;
        busy_slice_cycles += r.utilization * dev.device.dsp_count as f64 * r.compute_cycles as f64;
        compute += r.compute_cycles;
        reports.push(r);
    }
    let (per_layer, resources, ddr_bytes_per_frame) = sequential::estimate(layers, dev)?;
    for (r, res) in reports.iter_mut().zip(per_layer) {
        r.resources = Some(res);
    }
    let total_cycles: u64 = reports.iter().map(|r| r.cycles).sum();
    let latency_us = total_cycles as f64 / dev.device.clock_mhz;
    Ok(SimReport {
        device: dev.device.name.clone(),
        source: dev.source.clone(),
        dsp_count: dev.device.dsp_count,
        clock_mhz: dev.device.clock_mhz,
        mem_bytes_per_cycle: dev.device.mem_bytes_per_cycle,
        physical: dev.physical(),
        resources,
        ddr_bytes_per_frame,
        ncc: reports.iter().map(|r| r.ncc).sum(),
        total_cycles,
        ideal_cycles: reports.iter().map(|r| r.ideal_cycles).sum(),
        stall_cycles: reports.iter().map(|r| r.stall_cycles).sum(),
        utilization: if compute == 0 {
            0.0
        } else {
            busy_slice_cycles / (dev.device.dsp_count as f64 * compute as f64)
        },
        latency_us,
        frames_per_s: if latency_us > 0.0 {
            1e6 / latency_us
        } else {
            0.0
        },
        layers: reports,
    })
}

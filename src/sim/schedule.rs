//! Mapping a layer onto the slice array, and counting its cycles.
//!
//! ## Dataflow: output-stationary
//! The `D` slices form a `cols x rows` grid chosen per layer: columns over output-channel groups,
//! rows over output pixels (`cols = min(groups, D)`, `rows = min(D / cols, pixels)`). A slice
//! owns one group x one pixel (a *tile* position) and keeps its partial sums in place (P register
//! or fabric popcount accumulator) while the reduction streams past it, one issue per cycle:
//! - **MAC mode** (`Precision::Full`): a group is `mac.lanes` output channels (one per lane,
//!   sharing the activation on B); each cycle feeds one input element (channel x tap), so a tile
//!   takes `in_c * k * k` cycles.
//! - **XNOR mode** (`Precision::Binary{m,n}`): a group is one output channel; each cycle feeds one
//!   word of `xnor.lanes` input channels of one tap, so a tile takes
//!   `m * n * k * k * ceil(in_c / xnor.lanes)` cycles. Channel counts that do not fill the lanes
//!   leave lanes idle (tiling remainder).
//!
//! Tiles run back to back; the accumulator is reset by OPMODE on the first cycle of a tile, so the
//! pipeline fills and drains only once per layer (`latency` cycles: slice latency, plus the
//! popcount tree in XNOR mode). Taps on padding are issued masked: they cost their cycle and count
//! as work (the MAC-count convention), but contribute 0.
//!
//! Memory: each issue cycle needs fresh weights for every column and a fresh activation word for
//! every row (broadcast along the other axis, no other reuse). With `mem_bytes_per_cycle = B`,
//! bytes arrive at B per cycle and an issue waits until its operands are there; the `k`-th issue
//! therefore happens at cycle `max(k, ceil(k * demand / B))` and the difference are stall cycles.
//!
//! ## Formulas (grouped counting)
//! `compute = ceil(groups / cols) * ceil(pixels / rows) * steps_per_tile`, where FINN's
//! `ceil(MH/PE) * ceil(MW/SIMD) * vectors` is the special case `rows = 1` (in XNOR mode the
//! remainder is taken per tap: `k * k * ceil(in_c / SIMD)` instead of `ceil(k * k * in_c / SIMD)`,
//! equal when `SIMD` divides `in_c`); `issue = max(compute,
//! ceil(compute * demand_bits / (8 B)))`; `cycles = issue + latency`.
//! `utilization = work / (D * lanes * compute)` (busy lane-slots during compute cycles, SCALE-Sim's
//! mapping efficiency); it is 1.0 exactly when `cols * rows = D`, cols divides the groups, rows
//! divides the pixels, and lanes divide the output channels (MAC) or input channels (XNOR).
//! `ideal_cycles = ceil(work / (D * lanes))`.
//! [`step_cycles`] recounts everything by advancing one cycle at a time; tests check both agree.

use super::layer::{LayerSpec, Precision};
use crate::hw::Device;
use crate::model::geom::ConvGeom;
use crate::Result;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Mac,
    Xnor,
}

/// How one layer is laid onto the array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub mode: Mode,
    pub dsp_count: usize,
    /// Lanes per slice in this mode.
    pub lanes: usize,
    /// Output channels one slice computes at once (MAC lanes, or 1 in XNOR mode).
    pub outs_per_slice: usize,
    pub out_c: usize,
    pub in_c: usize,
    pub groups: usize,
    pub pixels: usize,
    pub cols: usize,
    pub rows: usize,
    /// Issue cycles per tile (reduction steps).
    pub steps_per_tile: u64,
    /// Tiles along groups and along pixels.
    pub tiles_groups: u64,
    pub tiles_pixels: u64,
    /// Words (XNOR) or elements (MAC) per tap: the innermost reduction step count.
    pub words_per_tap: usize,
    /// Pipeline fill + drain, cycles.
    pub latency: u64,
    /// Operand bits needed from memory per issue cycle.
    pub demand_bits: u64,
    /// Useful lane operations (MACs, or +/-1 bit products; all M x N passes).
    pub work: u64,
}

impl Mapping {
    pub fn new(spec: &LayerSpec, dev: &Device) -> Result<Mapping> {
        let g = spec.geometry()?;
        Ok(Mapping::from_geometry(&g, spec.precision, dev))
    }

    pub fn from_geometry(g: &ConvGeom, precision: Precision, dev: &Device) -> Mapping {
        let d = dev.device.dsp_count as usize;
        let pixels = g.pixels();
        let taps = (g.kh * g.kw) as u64;
        let (mode, lanes, outs, steps, words_per_tap, latency, op_bits, work) = match precision {
            Precision::Full => {
                let l = dev.slice.mac.lanes as usize;
                (
                    Mode::Mac,
                    l,
                    l,
                    g.c as u64 * taps,
                    g.c,
                    dev.mac_latency() as u64,
                    dev.slice.mac.width as u64,
                    g.macs(),
                )
            }
            Precision::Binary { m, n } => {
                let x = dev.slice.xnor.lanes as usize;
                let words = g.c.div_ceil(x);
                (
                    Mode::Xnor,
                    x,
                    1,
                    (m * n) as u64 * taps * words as u64,
                    words,
                    dev.xnor_latency() as u64,
                    x as u64,
                    (m * n) as u64 * g.macs(),
                )
            }
        };
        let groups = g.o.div_ceil(outs);
        let cols = groups.min(d);
        let rows = (d / cols).min(pixels).max(1);
        let demand_bits = match mode {
            // Each column needs its lanes' weights, each row one shared activation.
            Mode::Mac => (cols * lanes + rows) as u64 * op_bits,
            Mode::Xnor => (cols + rows) as u64 * op_bits,
        };
        Mapping {
            mode,
            dsp_count: d,
            lanes,
            outs_per_slice: outs,
            out_c: g.o,
            in_c: g.c,
            groups,
            pixels,
            cols,
            rows,
            steps_per_tile: steps,
            tiles_groups: groups.div_ceil(cols) as u64,
            tiles_pixels: pixels.div_ceil(rows) as u64,
            words_per_tap,
            latency,
            demand_bits,
            work,
        }
    }

    pub fn compute_cycles(&self) -> u64 {
        self.tiles_groups * self.tiles_pixels * self.steps_per_tile
    }

    pub fn ideal_cycles(&self) -> u64 {
        self.work.div_ceil((self.dsp_count * self.lanes) as u64)
    }

    /// Busy lanes of slice (col, row) in issue step `step` of tile (tg, tp); used by the
    /// cycle-by-cycle counter.
    fn busy_lanes(&self, tg: u64, tp: u64, col: usize, row: usize, step: u64) -> u64 {
        let group = tg as usize * self.cols + col;
        let pixel = tp as usize * self.rows + row;
        if group >= self.groups || pixel >= self.pixels {
            return 0;
        }
        match self.mode {
            Mode::Mac => (self.out_c - group * self.outs_per_slice).min(self.outs_per_slice) as u64,
            Mode::Xnor => {
                let word = (step % self.words_per_tap as u64) as usize;
                (self.in_c - word * self.lanes).min(self.lanes) as u64
            }
        }
    }
}

/// Cycle counts of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleCount {
    /// Cycles in which the array issued an operation.
    pub compute_cycles: u64,
    /// Cycles in which it waited for memory.
    pub stall_cycles: u64,
    /// Pipeline fill + drain.
    pub fill_cycles: u64,
    /// compute + stall + fill.
    pub cycles: u64,
    /// Sum over issue cycles of busy lanes over all slices.
    pub busy_lane_ops: u64,
}

/// Counts cycles from the closed-form expressions (fast; identical cycles grouped).
pub fn grouped_cycles(m: &Mapping, mem_bytes_per_cycle: Option<u32>) -> CycleCount {
    let compute = m.compute_cycles();
    let issue = match mem_bytes_per_cycle {
        Some(b) => {
            let need = compute as u128 * m.demand_bits as u128;
            let per_cycle = 8 * b as u128;
            (need.div_ceil(per_cycle) as u64).max(compute)
        }
        None => compute,
    };
    let fill = if compute == 0 { 0 } else { m.latency };
    CycleCount {
        compute_cycles: compute,
        stall_cycles: issue - compute,
        fill_cycles: fill,
        cycles: issue + fill,
        busy_lane_ops: m.work,
    }
}

/// Counts cycles by advancing the schedule one clock at a time: memory credit arrives, the array
/// issues when its operands are there, every slice's busy lanes are tallied, and the layer ends
/// when the last issued operation leaves the pipeline. Cost is O(cycles x slices): for tests and
/// small layers.
pub fn step_cycles(m: &Mapping, mem_bytes_per_cycle: Option<u32>) -> CycleCount {
    let total_issues = m.compute_cycles();
    let per_cycle_bits = mem_bytes_per_cycle.map(|b| 8 * b as u64);
    let mut clock: u64 = 0;
    let mut credit: u64 = 0;
    let mut stalls: u64 = 0;
    let mut busy: u64 = 0;
    let mut done_at: u64 = 0;
    let (mut tg, mut tp, mut step) = (0u64, 0u64, 0u64);
    let mut issued = 0u64;
    while issued < total_issues {
        clock += 1;
        let ready = match per_cycle_bits {
            None => true,
            Some(bits) => {
                credit += bits;
                if credit >= m.demand_bits {
                    credit -= m.demand_bits;
                    true
                } else {
                    false
                }
            }
        };
        if !ready {
            stalls += 1;
            continue;
        }
        for col in 0..m.cols {
            for row in 0..m.rows {
                busy += m.busy_lanes(tg, tp, col, row, step);
            }
        }
        issued += 1;
        done_at = clock + m.latency;
        step += 1;
        if step == m.steps_per_tile {
            step = 0;
            tp += 1;
            if tp == m.tiles_pixels {
                tp = 0;
                tg += 1;
            }
        }
    }
    CycleCount {
        compute_cycles: issued,
        stall_cycles: stalls,
        fill_cycles: done_at - clock,
        cycles: done_at,
        busy_lane_ops: busy,
    }
}

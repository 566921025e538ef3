//! Resources of the layer-sequential array ([`crate::sim::schedule`]): one DSP array shared by
//! all layers in time.
//!
//! Per layer (what the layer occupies while it runs):
//! - DSP: the `cols x rows` slices of its mapping;
//! - LUT/FF: per used slice, XNOR mode: the popcount tree over `xnor.lanes` bits with the XNOR in
//!   the DSP48 ALU, plus its accumulator; MAC mode: one drain accumulator per lane (the lane
//!   field is drained into it every `2^guard_bits` products); see [`super::logic`];
//! - weight memory: the whole layer's weights on chip (loaded from DDR once per frame), read
//!   `cols x lanes x width` bits (MAC) or `cols x xnor.lanes` bits (XNOR, words padded to the
//!   lanes) per cycle, mapped per [`super::memory`];
//! - feature maps: its input map and its output map (the next layer's input precision; 32 bits
//!   per element after the last layer), i.e. the ping-pong pair.
//!
//! Total: the array is built once for all layers: `dsp_count` slices, each with the XNOR logic if
//! any layer is binary and the lane drains if any layer is full precision (widths the largest any
//! layer needs); block RAM/UltraRAM the largest per-layer memory (weights + ping-pong maps), since
//! layers run one at a time. Residual shortcut buffers are not modelled.
//!
//! DDR per frame: every layer's weights read once, the input image read and the last output
//! written once (feature maps stay on chip).

use super::logic::{mac_acc_bits, popcount_acc_bits, popcount_tree};
use super::memory::{place, Memory};
use super::{act_bits, weight_bits, Resources};
use crate::hw::Device;
use crate::model::geom::ConvGeom;
use crate::sim::layer::{LayerSpec, Precision};
use crate::sim::schedule::{Mapping, Mode};
use crate::Result;

/// Per-slice fabric logic of a layer: (LUT, FF).
fn slice_logic(g: &ConvGeom, precision: Precision, dev: &Device) -> (u64, u64) {
    let r = (g.c * g.kh * g.kw) as u64;
    match precision {
        Precision::Binary { .. } => {
            let (l, f) = popcount_tree(dev.slice.xnor.lanes as u64, false);
            let acc = popcount_acc_bits(r);
            (l + acc, f + acc)
        }
        Precision::Full => {
            let acc = mac_acc_bits(r, dev.slice.mac.width as u64);
            let lanes = dev.slice.mac.lanes as u64;
            (lanes * acc, lanes * acc)
        }
    }
}

/// The layer's weight memory in the array's read layout.
pub fn weight_memory(m: &Mapping, g: &ConvGeom, precision: Precision, dev: &Device) -> Memory {
    let taps = (g.kh * g.kw) as u64;
    match (m.mode, precision) {
        (Mode::Xnor, Precision::Binary { m: bases, .. }) => {
            let lanes = dev.slice.xnor.lanes as u64;
            let bits = bases as u64 * g.o as u64 * taps * m.words_per_tap as u64 * lanes;
            Memory::of_bits(bits, m.cols as u64 * lanes)
        }
        _ => {
            let w = weight_bits(precision, dev);
            let bits = g.o as u64 * g.c as u64 * taps * w;
            Memory::of_bits(bits, (m.cols * m.lanes) as u64 * w)
        }
    }
}

/// Bits of a layer's input map.
pub fn input_map_bits(g: &ConvGeom, precision: Precision, dev: &Device) -> u64 {
    (g.c * g.h * g.w) as u64 * act_bits(precision, dev)
}

/// Bits of a layer's weights as stored (lane width or one bit per base).
pub fn weight_storage_bits(g: &ConvGeom, precision: Precision, dev: &Device) -> u64 {
    let n = (g.o * g.c * g.kh * g.kw) as u64;
    match precision {
        Precision::Full => n * weight_bits(precision, dev),
        Precision::Binary { m, .. } => n * m as u64,
    }
}

/// Resources of every layer (in order) and of the whole array, and DDR bytes per frame.
pub fn estimate(layers: &[LayerSpec], dev: &Device) -> Result<(Vec<Resources>, Resources, u64)> {
    let mut per = Vec::with_capacity(layers.len());
    let geoms: Vec<ConvGeom> = layers.iter().map(|l| l.geometry()).collect::<Result<_>>()?;
    let (mut xnor_slice, mut mac_slice) = ((0u64, 0u64), (0u64, 0u64));
    let mut mem_max = Resources::default();
    let mut weight_bytes = 0u64;
    for (i, (spec, g)) in layers.iter().zip(&geoms).enumerate() {
        let m = Mapping::from_geometry(g, spec.precision, dev);
        let used = (m.cols * m.rows) as u64;
        let (l, f) = slice_logic(g, spec.precision, dev);
        let slot = match spec.precision {
            Precision::Binary { .. } => &mut xnor_slice,
            Precision::Full => &mut mac_slice,
        };
        *slot = (slot.0.max(l), slot.1.max(f));
        let wmem = weight_memory(&m, g, spec.precision, dev);
        let out_bits = match layers.get(i + 1) {
            Some(next) => (g.o * g.ho * g.wo) as u64 * act_bits(next.precision, dev),
            None => (g.o * g.ho * g.wo) as u64 * 32,
        };
        let maps = Memory::map(input_map_bits(g, spec.precision, dev)).bram18()
            + Memory::map(out_bits).bram18();
        let free = dev.device.bram18.map(|b| b.saturating_sub(maps));
        let (wb, wu) = place(&[wmem], free, dev.device.uram)[0];
        let r = Resources {
            dsp: used,
            lut: used * l,
            ff: used * f,
            bram18: wb + maps,
            uram: wu,
        };
        mem_max = mem_max.max_each(&Resources {
            bram18: r.bram18,
            uram: r.uram,
            ..Resources::default()
        });
        weight_bytes += weight_storage_bits(g, spec.precision, dev).div_ceil(8);
        per.push(r);
    }
    let d = dev.device.dsp_count as u64;
    let total = Resources {
        dsp: d,
        lut: d * (xnor_slice.0 + mac_slice.0),
        ff: d * (xnor_slice.1 + mac_slice.1),
        bram18: mem_max.bram18,
        uram: mem_max.uram,
    };
    let first = &geoms[0];
    let last = geoms.last().expect("at least one layer");
    let image = input_map_bits(first, layers[0].precision, dev).div_ceil(8);
    let output = ((last.o * last.ho * last.wo) as u64 * 32).div_ceil(8);
    Ok((per, total, weight_bytes + image + output))
}

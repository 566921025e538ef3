//! Golden test vectors for RTL testbenches: one layer's packed weights, input activations and
//! expected accumulators as `$readmemh`-compatible hex files (one word per line, fixed number of
//! hex digits, two's complement, no prefix) plus a self-describing `manifest.json`.
//!
//! The manifest ([`Manifest`]) states everything an RTL engineer would otherwise read the source
//! for: the geometry (output size rule, padding, a linear layer as a 1x1 conv on a 1x1 image), the
//! datapath ([`Datapath`]: XNOR lanes and the popcount's valid-lane mask, or the packed MAC's lanes,
//! lane spacing, guard bits, packing, P width, drain rule, lane-to-channel mapping and the
//! borrow-corrected read-out), the reduction order and the cost of masked padded taps
//! ([`Schedule`]), the bit order and signedness of every file ([`HexFile`]), and what the data
//! exercises ([`Coverage`]: operand extremes, field peaks against their limits with and without
//! drains, borrow read-outs, padded outputs).
//!
//! Binary layers (one weight base x one activation base, i.e. `Binary { m: 1, n: 1 }`; write one
//! set per base pair for ABC): `weights.hex` and `acts.hex` hold `lanes`-bit words (bit `i` of
//! word `j` = channel `j * lanes + i`, +1 -> 0, -1 -> 1, unused high bits 0) in layouts
//! `[out_c][kh][kw][word]` and `[image][y][x][word]`; `expected.hex` holds 32-bit +/-1 dot
//! products `[image][out_c][oy][ox]` (`K_real - 2 * popcount(xor)`, padded taps skipped).
//! Full-precision layers: `width`-bit raw fixed-point words, weights `[out][in][kh][kw]`,
//! activations `[image][c][y][x]`, expected 64-bit accumulators with `act_frac + weight_frac`
//! fractional bits. [`write_f32`] writes IEEE-754 binary32 golden values (the scaled output of a
//! binary layer, its alpha and beta scales).

use super::data::{FixedFormat, PackedActs, PackedWeights};
use super::functional::{run_binary, run_fixed, BinaryInputs};
use super::layer::{LayerKind, LayerSpec, Precision};
use crate::hw::{Device, Packing};
use crate::model::geom::ConvGeom;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Format tag of [`Manifest::format`].
pub const FORMAT: &str = "breakingbed golden vectors v2 ($readmemh: one hex word per line)";

/// Data of one layer to write vectors for.
#[derive(Debug, Clone)]
pub enum VectorData {
    /// +/-1 weights `[out][in][k][k]` and per-image +/-1 activations `[c][h][w]`.
    Binary {
        weights: Vec<i8>,
        images: Vec<Vec<i8>>,
    },
    /// Raw fixed-point weights and per-image activations (same layouts).
    Fixed {
        format: FixedFormat,
        weights: Vec<i32>,
        images: Vec<Vec<i32>>,
    },
}

impl VectorData {
    pub fn images(&self) -> usize {
        match self {
            VectorData::Binary { images, .. } => images.len(),
            VectorData::Fixed { images, .. } => images.len(),
        }
    }
}

/// One hex file of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HexFile {
    pub path: String,
    pub words: usize,
    pub word_width: u32,
    pub layout: String,
    /// True when a word is a two's-complement number (sign-extend it from `word_width` bits);
    /// false when it is a bit vector.
    pub signed: bool,
    /// What the bits of a word mean.
    pub encoding: String,
}

/// The (weight base, activation base) pair of an ABC set (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasePair {
    pub weight_base: usize,
    pub act_base: usize,
}

/// What a set is: its name, where its data come from, and (ABC) its base pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetInfo {
    /// `random`, `real` or `stress/<pattern>`.
    pub name: String,
    /// Origin of the values and what they exercise.
    pub data: String,
    /// The base pair whose +/-1 convolution the set holds (binary layers from the layer's own
    /// bases); `None` for full-precision layers and for stress sets (synthetic operands on the
    /// layer's geometry).
    pub base_pair: Option<BasePair>,
}

impl SetInfo {
    /// The default set: seeded random data.
    pub fn random() -> SetInfo {
        SetInfo {
            name: "random".into(),
            data: "seeded random values (sim::random)".into(),
            base_pair: None,
        }
    }
}

/// Layer geometry, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub out_h: usize,
    pub out_w: usize,
    /// Taps of one output, `in_c * kernel^2`, padded taps included.
    pub reduction: usize,
    /// True for a linear layer, run as a 1x1 conv (stride 1, no padding) on a 1x1 image with
    /// `in_c = in_features` (input flattened in C, H, W order) and `out_c = out_features`.
    pub linear_as_conv: bool,
    pub rule: String,
}

/// The arithmetic unit the set targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "unit", rename_all = "snake_case")]
pub enum Datapath {
    /// DSP48 ALU XNOR on `lanes`-bit words, then a LUT popcount tree and a fabric accumulator.
    XnorPopcount {
        lanes: u32,
        words_per_tap: usize,
        /// Real channels in the last word of a tap (`lanes` when `in_c` is a multiple).
        last_word_valid_lanes: u32,
        lane_to_channel: String,
        popcount: String,
        accumulator_bits: u32,
    },
    /// The packed multi-lane MAC on one P register.
    PackedMac {
        lanes: u32,
        /// Operand width of both operands, bits (signed two's complement).
        width: u32,
        /// Bit distance between lane fields in P.
        spacing: u32,
        guard_bits: u32,
        packing: Packing,
        /// P register width, bits.
        acc_width: u32,
        /// Width of each lane's field in P, lowest lane first (the top one runs to the top of P).
        field_bits: Vec<u32>,
        /// Issued taps between drains (`2^guard_bits`).
        drain_every: u64,
        /// Drains within one output's reduction (before its final read-out).
        drains_per_output: u64,
        lane_to_channel: String,
        drain: String,
        readout: String,
    },
}

/// The order in which the data stream through the unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub output_order: String,
    pub reduction_order: String,
    /// Issue cycles of one output (binary) or output group (packed MAC), padded taps included.
    pub cycles_per_output: u64,
    pub padding: String,
}

/// What the set's data exercise (computed from the data, not from the simulator).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub min_expected: i64,
    pub max_expected: i64,
    /// Outputs (over images and channels) whose window covers at least one padded tap.
    pub outputs_with_padding: u64,
    /// Binary: lanes of a tap's last word holding no channel (must be masked from the popcount).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unused_lanes: Option<u32>,
    /// Packed MAC: largest |weight| and |activation| code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_abs_weight: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_abs_act: Option<i64>,
    /// Packed MAC: largest value a signed field can hold, per lane (`2^(bits-1) - 1`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field_limits: Option<Vec<i64>>,
    /// Packed MAC: largest |field| at any read-out of the drained schedule.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub readout_peak: Option<i64>,
    /// Packed MAC: largest |lane sum| over a whole reduction, i.e. what a PE that never drains
    /// would read out once.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub undrained_peak: Option<i64>,
    /// Packed MAC: true when some lane sum over a whole reduction leaves its field's range, so a
    /// PE that never drains reads a wrong value on this set.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub undrained_overflow: Option<bool>,
    /// Packed MAC: read-outs (drains and final) at which a lower field is negative and the field
    /// above it is a real channel; a read-out without borrow correction is off by one there.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub borrow_readouts: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub layer: LayerSpec,
    pub device: String,
    pub kind: String,
    pub set: SetInfo,
    pub images: usize,
    pub geometry: Geometry,
    pub datapath: Datapath,
    pub schedule: Schedule,
    pub bit_order: String,
    pub accumulator: String,
    pub fixed_format: Option<FixedFormat>,
    pub weights: HexFile,
    pub activations: HexFile,
    pub expected: HexFile,
    pub coverage: Coverage,
}

/// Vectors read back from a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenSet {
    pub manifest: Manifest,
    /// Raw words, zero-extended.
    pub weights: Vec<u64>,
    pub activations: Vec<u64>,
    /// Expected values, sign-extended from their word width.
    pub expected: Vec<i64>,
}

fn to_hex(v: i64, width: u32) -> String {
    let digits = width.div_ceil(4) as usize;
    let mask = if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    format!("{:0digits$x}", (v as u64) & mask)
}

/// Where a file of a set is: its name and how to read it.
struct FileSpec<'a> {
    name: &'a str,
    width: u32,
    layout: &'a str,
    signed: bool,
    encoding: String,
}

fn write_hex(dir: &Path, f: FileSpec, values: &[i64]) -> Result<HexFile> {
    let mut s = String::with_capacity(values.len() * (f.width as usize / 4 + 2));
    for &v in values {
        s.push_str(&to_hex(v, f.width));
        s.push('\n');
    }
    let path = dir.join(f.name);
    // Temp file + rename: a full disk leaves no truncated vector file behind.
    crate::io::atomic::write_bytes_atomic(&path, s.as_bytes())?;
    Ok(HexFile {
        path: f.name.to_string(),
        words: values.len(),
        word_width: f.width,
        layout: f.layout.to_string(),
        signed: f.signed,
        encoding: f.encoding,
    })
}

/// Writes `values` as IEEE-754 binary32 bit patterns (8 hex digits a line) to `dir/name`.
pub fn write_f32(dir: &Path, name: &str, values: &[f32], layout: &str) -> Result<HexFile> {
    let bits: Vec<i64> = values.iter().map(|v| v.to_bits() as i64).collect();
    write_hex(
        dir,
        FileSpec {
            name,
            width: 32,
            layout,
            signed: false,
            encoding: "IEEE-754 binary32 bit pattern".into(),
        },
        &bits,
    )
}

fn geometry_doc(spec: &LayerSpec, g: &ConvGeom) -> Geometry {
    Geometry {
        in_c: g.c,
        in_h: g.h,
        in_w: g.w,
        out_c: g.o,
        kernel: g.kh,
        stride: g.stride,
        padding: g.pad,
        out_h: g.ho,
        out_w: g.wo,
        reduction: g.reduction(),
        linear_as_conv: matches!(spec.kind, LayerKind::Linear { .. }),
        rule: "out = floor((in + 2*padding - kernel) / stride) + 1; symmetric zero padding; \
               output (oy, ox) reads input (oy*stride - padding + kh, ox*stride - padding + kw)"
            .into(),
    }
}

/// Field widths of the packed MAC's lanes, lowest first.
pub fn field_bits(dev: &Device) -> Vec<u32> {
    let (lanes, spacing, acc) = (dev.slice.mac.lanes, dev.mac_spacing(), dev.slice.acc_width);
    (0..lanes)
        .map(|l| {
            if l + 1 == lanes {
                acc - l * spacing
            } else {
                spacing
            }
        })
        .collect()
}

fn binary_datapath(g: &ConvGeom, dev: &Device) -> Datapath {
    let lanes = dev.slice.xnor.lanes;
    let wpt = g.c.div_ceil(lanes as usize);
    Datapath::XnorPopcount {
        lanes,
        words_per_tap: wpt,
        last_word_valid_lanes: (g.c - (wpt - 1) * lanes as usize) as u32,
        lane_to_channel: format!(
            "bit i of word j of a tap = input channel j*{lanes} + i (the same for weights and \
             activations)"
        ),
        popcount: "the XNOR word has a 1 where weight and activation match; count matches only \
                   among lanes holding a real channel (unused high lanes are 0 in both operands, \
                   and XNOR(0,0) = 1 must not count); word dot = 2*matches - valid_lanes"
            .into(),
        accumulator_bits: 32,
    }
}

fn mac_datapath(g: &ConvGeom, dev: &Device) -> Datapath {
    let m = &dev.slice.mac;
    let drain_every = dev.max_accumulations();
    Datapath::PackedMac {
        lanes: m.lanes,
        width: m.width,
        spacing: dev.mac_spacing(),
        guard_bits: m.guard_bits,
        packing: m.packing,
        acc_width: dev.slice.acc_width,
        field_bits: field_bits(dev),
        drain_every,
        drains_per_output: (g.reduction() as u64 - 1) / drain_every,
        lane_to_channel: format!(
            "lane l of output group gr = output channel gr*{} + l (lanes past out_c get weight 0); \
             all lanes share the activation of the cycle; lane l's field starts at bit l*{} of P",
            m.lanes,
            dev.mac_spacing()
        ),
        drain: format!(
            "P wraps modulo 2^{acc} like the DSP adder; after every {drain_every} issued taps \
             (2^guard_bits, padded taps included) the fields are read out into 64-bit fabric \
             accumulators and P is cleared; the output is the fabric sum plus the final read-out",
            acc = dev.slice.acc_width
        ),
        readout: "borrow-corrected, lowest lane first: v = P sign-extended; for each lane l: \
                  field = sign-extend the low field_bits[l] bits of v; v = (v - field) >> spacing \
                  (arithmetic). A negative lower field borrowed one from the field above; reading \
                  the raw bits of P is off by one there"
            .into(),
    }
}

fn schedule_doc(g: &ConvGeom, dev: &Device, binary: bool) -> Schedule {
    let k2 = (g.kh * g.kw) as u64;
    if binary {
        let wpt = g.c.div_ceil(dev.slice.xnor.lanes as usize) as u64;
        Schedule {
            output_order: "image, out_c, oy, ox (one output per accumulator)".into(),
            reduction_order: "kh, kw, word j (word innermost); one word per cycle".into(),
            cycles_per_output: k2 * wpt,
            padding: "a tap on zero padding is masked: its words still take their cycles but \
                      add 0 (a +1 activation there would be wrong)"
                .into(),
        }
    } else {
        Schedule {
            output_order: format!(
                "image, output group (lanes = {} consecutive out channels), oy, ox",
                dev.slice.mac.lanes
            ),
            reduction_order: "in_c, kh, kw (kw innermost); one tap per cycle".into(),
            cycles_per_output: g.reduction() as u64,
            padding: "a tap on zero padding issues activation 0: it takes its cycle and counts \
                      towards the drain"
                .into(),
        }
    }
}

fn padded_outputs(g: &ConvGeom) -> u64 {
    let mut n = 0u64;
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let any = (0..g.kh).any(|kh| (0..g.kw).any(|kw| g.input_at(oy, ox, kh, kw).is_none()));
            n += u64::from(any);
        }
    }
    n * g.o as u64
}

fn extremes(expected: &[i64]) -> Coverage {
    Coverage {
        min_expected: expected.iter().copied().min().unwrap_or(0),
        max_expected: expected.iter().copied().max().unwrap_or(0),
        ..Coverage::default()
    }
}

fn signed_limit(bits: u32) -> i64 {
    ((1i128 << (bits.min(64) - 1)) - 1).min(i64::MAX as i128) as i64
}

/// Coverage of a fixed-point set, from the integer data alone: lane sums per read-out chunk of
/// the drained schedule and over whole reductions.
fn fixed_coverage(
    g: &ConvGeom,
    dev: &Device,
    w: &[i32],
    images: &[Vec<i32>],
    expected: &[i64],
) -> Coverage {
    let lanes = dev.slice.mac.lanes as usize;
    let bits = field_bits(dev);
    let limits: Vec<i64> = bits.iter().map(|&b| signed_limit(b)).collect();
    let drain = dev.max_accumulations();
    let k = g.kh;
    let (mut readout_peak, mut undrained_peak, mut borrows) = (0i64, 0i64, 0u64);
    let mut overflow = false;
    for x in images {
        for o in 0..g.o {
            let l = o % lanes;
            let upper_real = l + 1 < lanes && o + 1 < g.o;
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let (mut chunk, mut total, mut count) = (0i64, 0i64, 0u64);
                    let readout = |v: i64, peak: &mut i64, b: &mut u64| {
                        *peak = (*peak).max(v.abs());
                        *b += u64::from(upper_real && v < 0);
                    };
                    for ci in 0..g.c {
                        for kh in 0..k {
                            for kw in 0..k {
                                if let Some((y, xx)) = g.input_at(oy, ox, kh, kw) {
                                    let p = w[((o * g.c + ci) * k + kh) * k + kw] as i64
                                        * x[(ci * g.h + y) * g.w + xx] as i64;
                                    chunk += p;
                                    total += p;
                                }
                                count += 1;
                                if count == drain {
                                    readout(chunk, &mut readout_peak, &mut borrows);
                                    chunk = 0;
                                    count = 0;
                                }
                            }
                        }
                    }
                    readout(chunk, &mut readout_peak, &mut borrows);
                    undrained_peak = undrained_peak.max(total.abs());
                    overflow |= total > limits[l] || total < -limits[l] - 1;
                }
            }
        }
    }
    Coverage {
        max_abs_weight: Some(w.iter().map(|&v| (v as i64).abs()).max().unwrap_or(0)),
        max_abs_act: Some(
            images
                .iter()
                .flatten()
                .map(|&v| (v as i64).abs())
                .max()
                .unwrap_or(0),
        ),
        field_limits: Some(limits),
        readout_peak: Some(readout_peak),
        undrained_peak: Some(undrained_peak),
        undrained_overflow: Some(overflow),
        borrow_readouts: Some(borrows),
        ..extremes(expected)
    }
}

/// Writes the vectors of one layer into `dir` (created if missing) as the default `random` set.
pub fn write(dir: &Path, spec: &LayerSpec, dev: &Device, data: &VectorData) -> Result<Manifest> {
    write_set(dir, spec, dev, data, &SetInfo::random())
}

/// Writes one vector set of a layer into `dir` (created if missing) and returns its manifest.
pub fn write_set(
    dir: &Path,
    spec: &LayerSpec,
    dev: &Device,
    data: &VectorData,
    info: &SetInfo,
) -> Result<Manifest> {
    let g = spec.geometry()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ctx = |f: &str| format!("layer `{}`: {f}", spec.name);
    let (kind, weights, acts, expected, bit_order, accumulator, fixed_format, mut coverage) = match (
        data,
        spec.precision,
    ) {
        (VectorData::Binary { weights, images }, Precision::Binary { m: 1, n: 1 }) => {
            let lanes = dev.slice.xnor.lanes;
            let pw = PackedWeights::from_pm1(weights, g.o, g.c, g.kh, lanes)?;
            let mut acts = Vec::new();
            let mut expected = Vec::new();
            for img in images {
                let pa = PackedActs::from_pm1(img, g.c, g.h, g.w, lanes)?;
                let out = run_binary(
                    spec,
                    dev,
                    &BinaryInputs {
                        weights: std::slice::from_ref(&pw),
                        acts: std::slice::from_ref(&pa),
                        alpha: &vec![1.0; g.o],
                        beta: &[1.0],
                    },
                )?;
                acts.extend(pa.words.iter().map(|&w| w as i64));
                expected.extend(out.dots.iter().map(|&d| d as i64));
            }
            let wv: Vec<i64> = pw.words.iter().map(|&w| w as i64).collect();
            let bits = format!(
                "bit i = channel j*{lanes}+i of word j; 0 = +1, 1 = -1; unused high bits 0"
            );
            let wpt = g.c.div_ceil(lanes as usize);
            let word = |name, layout| FileSpec {
                name,
                width: lanes,
                layout,
                signed: false,
                encoding: bits.clone(),
            };
            (
                "binary",
                write_hex(dir, word("weights.hex", "[out_c][kh][kw][word]"), &wv)?,
                write_hex(dir, word("acts.hex", "[image][y][x][word]"), &acts)?,
                write_hex(
                    dir,
                    FileSpec {
                        name: "expected.hex",
                        width: 32,
                        layout: "[image][out_c][oy][ox]",
                        signed: true,
                        encoding: "32-bit two's complement +/-1 dot product".into(),
                    },
                    &expected,
                )?,
                bits,
                "i32 +/-1 dot product = K_real - 2*popcount(w XOR x); padded taps skipped"
                    .to_string(),
                None,
                Coverage {
                    unused_lanes: Some((wpt * lanes as usize - g.c) as u32),
                    ..extremes(&expected)
                },
            )
        }
        (
            VectorData::Fixed {
                format,
                weights,
                images,
            },
            Precision::Full,
        ) => {
            let width = dev.slice.mac.width;
            let mut acts = Vec::new();
            let mut expected = Vec::new();
            for img in images {
                let out = run_fixed(spec, dev, weights, img)?;
                acts.extend(img.iter().map(|&v| v as i64));
                expected.extend(out);
            }
            let wv: Vec<i64> = weights.iter().map(|&v| v as i64).collect();
            let code = |name, layout, frac: u32| FileSpec {
                name,
                width,
                layout,
                signed: true,
                encoding: format!(
                    "{width}-bit two's complement fixed point, value = code / 2^{frac}"
                ),
            };
            (
                    "fixed",
                    write_hex(
                        dir,
                        code("weights.hex", "[out_c][in_c][kh][kw]", format.weight_frac),
                        &wv,
                    )?,
                    write_hex(
                        dir,
                        code("acts.hex", "[image][c][y][x]", format.act_frac),
                        &acts,
                    )?,
                    write_hex(
                        dir,
                        FileSpec {
                            name: "expected.hex",
                            width: 64,
                            layout: "[image][out_c][oy][ox]",
                            signed: true,
                            encoding: format!(
                                "64-bit two's complement exact accumulator, value = code / 2^{}",
                                format.acc_frac()
                            ),
                        },
                        &expected,
                    )?,
                    format!("{width}-bit two's complement raw fixed point, one value per word"),
                    format!(
                        "i64 exact accumulator with {} fractional bits (Q.{}); padded taps contribute 0",
                        format.acc_frac(),
                        format.acc_frac()
                    ),
                    Some(*format),
                    fixed_coverage(&g, dev, weights, images, &expected),
                )
        }
        (VectorData::Binary { .. }, _) => {
            return Err(Error::input(
                ctx("precision"),
                "binary vectors need a Binary { m: 1, n: 1 } layer (write one set per base pair)",
            ))
        }
        (VectorData::Fixed { .. }, _) => {
            return Err(Error::input(
                ctx("precision"),
                "fixed vectors need a full-precision layer",
            ))
        }
    };
    let binary = kind == "binary";
    coverage.outputs_with_padding = padded_outputs(&g) * data.images() as u64;
    let manifest = Manifest {
        format: FORMAT.to_string(),
        layer: spec.clone(),
        device: dev.device.name.clone(),
        kind: kind.to_string(),
        set: info.clone(),
        images: data.images(),
        geometry: geometry_doc(spec, &g),
        datapath: if binary {
            binary_datapath(&g, dev)
        } else {
            mac_datapath(&g, dev)
        },
        schedule: schedule_doc(&g, dev, binary),
        bit_order,
        accumulator,
        fixed_format,
        weights,
        activations: acts,
        expected,
        coverage,
    };
    let path = dir.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    crate::io::atomic::write_bytes_atomic(&path, text.as_bytes())?;
    Ok(manifest)
}

fn read_hex(dir: &Path, f: &HexFile) -> Result<Vec<u64>> {
    let path = dir.join(&f.path);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut out = Vec::with_capacity(f.words);
    for (n, line) in text.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let v = u64::from_str_radix(line, 16).map_err(|e| {
            Error::input(format!("{}: line {}", path.display(), n + 1), e.to_string())
        })?;
        out.push(v);
    }
    if out.len() != f.words {
        return Err(Error::input(
            path.display().to_string(),
            format!("manifest says {} words, file has {}", f.words, out.len()),
        ));
    }
    Ok(out)
}

/// The words of `f` as numbers: sign-extended when the file is signed, else zero-extended.
pub fn read_hex_values(dir: &Path, f: &HexFile) -> Result<Vec<i64>> {
    let w = f.word_width.min(64);
    Ok(read_hex(dir, f)?
        .into_iter()
        .map(|v| {
            if f.signed {
                let s = 64 - w;
                ((v << s) as i64) >> s
            } else {
                v as i64
            }
        })
        .collect())
}

/// Reads a vector set written by [`write`](fn@write).
pub fn read(dir: &Path) -> Result<GoldenSet> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::input(path.display().to_string(), e.to_string()))?;
    let weights = read_hex(dir, &manifest.weights)?;
    let activations = read_hex(dir, &manifest.activations)?;
    let expected = read_hex_values(dir, &manifest.expected)?;
    Ok(GoldenSet {
        manifest,
        weights,
        activations,
        expected,
    })
}

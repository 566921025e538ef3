//! Golden test vectors for RTL testbenches: one layer's packed weights, input activations and
//! expected accumulators as `$readmemh`-compatible hex files (one word per line, fixed number of
//! hex digits, two's complement, no prefix) plus `manifest.json` describing bit order, word
//! widths and layouts.
//!
//! Binary layers (one weight base x one activation base, i.e. `Binary { m: 1, n: 1 }`; write one
//! set per base pair for ABC): `weights.hex` and `acts.hex` hold `lanes`-bit words (bit `i` of
//! word `j` = channel `j * lanes + i`, +1 -> 0, -1 -> 1, unused high bits 0) in layouts
//! `[out_c][kh][kw][word]` and `[image][y][x][word]`; `expected.hex` holds 32-bit +/-1 dot
//! products `[image][out_c][oy][ox]` (`K_real - 2 * popcount(xor)`, padded taps skipped).
//! Full-precision layers: `width`-bit raw fixed-point words, weights `[out][in][kh][kw]`,
//! activations `[image][c][y][x]`, expected 64-bit accumulators with `act_frac + weight_frac`
//! fractional bits.

use super::data::{FixedFormat, PackedActs, PackedWeights};
use super::functional::{run_binary, run_fixed, BinaryInputs};
use super::layer::{LayerSpec, Precision};
use crate::hw::Device;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HexFile {
    pub path: String,
    pub words: usize,
    pub word_width: u32,
    pub layout: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub layer: LayerSpec,
    pub device: String,
    pub kind: String,
    pub images: usize,
    pub bit_order: String,
    pub accumulator: String,
    pub fixed_format: Option<FixedFormat>,
    pub weights: HexFile,
    pub activations: HexFile,
    pub expected: HexFile,
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

fn write_hex(dir: &Path, name: &str, values: &[i64], width: u32, layout: &str) -> Result<HexFile> {
    let mut s = String::with_capacity(values.len() * (width as usize / 4 + 2));
    for &v in values {
        s.push_str(&to_hex(v, width));
        s.push('\n');
    }
    let path = dir.join(name);
    // Temp file + rename: a full disk leaves no truncated vector file behind.
    crate::io::atomic::write_bytes_atomic(&path, s.as_bytes())?;
    Ok(HexFile {
        path: name.to_string(),
        words: values.len(),
        word_width: width,
        layout: layout.to_string(),
    })
}

/// Writes the vectors of one layer into `dir` (created if missing) and returns the manifest.
pub fn write(dir: &Path, spec: &LayerSpec, dev: &Device, data: &VectorData) -> Result<Manifest> {
    let g = spec.geometry()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ctx = |f: &str| format!("layer `{}`: {f}", spec.name);
    let (kind, weights, acts, expected, bit_order, accumulator, fixed_format) = match (
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
            (
                "binary",
                write_hex(dir, "weights.hex", &wv, lanes, "[out_c][kh][kw][word]")?,
                write_hex(dir, "acts.hex", &acts, lanes, "[image][y][x][word]")?,
                write_hex(dir, "expected.hex", &expected, 32, "[image][out_c][oy][ox]")?,
                format!(
                    "bit i of word j = channel j*{lanes}+i; +1 -> 0, -1 -> 1; unused high bits 0"
                ),
                "i32 +/-1 dot product = K_real - 2*popcount(w XOR x); padded taps skipped"
                    .to_string(),
                None,
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
            (
                "fixed",
                write_hex(dir, "weights.hex", &wv, width, "[out_c][in_c][kh][kw]")?,
                write_hex(dir, "acts.hex", &acts, width, "[image][c][y][x]")?,
                write_hex(dir, "expected.hex", &expected, 64, "[image][out_c][oy][ox]")?,
                format!("{width}-bit two's complement raw fixed point, one value per word"),
                format!(
                    "i64 exact accumulator with {} fractional bits (Q.{}); padded taps contribute 0",
                    format.acc_frac(),
                    format.acc_frac()
                ),
                Some(*format),
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
    let images = match data {
        VectorData::Binary { images, .. } => images.len(),
        VectorData::Fixed { images, .. } => images.len(),
    };
    let manifest = Manifest {
        format: "breakingbed golden vectors v1 ($readmemh: one hex word per line)".to_string(),
        layer: spec.clone(),
        device: dev.device.name.clone(),
        kind: kind.to_string(),
        images,
        bit_order,
        accumulator,
        fixed_format,
        weights,
        activations: acts,
        expected,
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

/// Reads a vector set written by [`write`].
pub fn read(dir: &Path) -> Result<GoldenSet> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::input(path.display().to_string(), e.to_string()))?;
    let weights = read_hex(dir, &manifest.weights)?;
    let activations = read_hex(dir, &manifest.activations)?;
    let w = manifest.expected.word_width;
    let expected = read_hex(dir, &manifest.expected)?
        .into_iter()
        .map(|v| {
            let s = 64 - w.min(64);
            ((v << s) as i64) >> s
        })
        .collect();
    Ok(GoldenSet {
        manifest,
        weights,
        activations,
        expected,
    })
}

//! Adversarial examples to files (`bbed attack --save-adv FILE`), so they can be inspected and
//! reused, and a PNG grid of a few of them.
//!
//! Conventions (one layout for both formats):
//! - images are NCHW; `adv` is float32 in unit scale (\[0,1\]), exactly the images the records
//!   describe; `adv_u8` is `round(255 * adv)` as 8-bit pixels (rounding can move an image
//!   across a decision boundary: the predictions are those of the float images);
//! - per image: `index` (data-set index), `label`, `target` (-1: untargeted), `clean_pred`,
//!   `adv_pred`, as int64, in the order the images were attacked (ascending index);
//! - the run's settings (attack spec, seed, model, variant, engine, weights, data, the scale of
//!   the norms, normalisation) as one JSON object.
//!
//! `.safetensors`: one file; the tensors above by those names, the settings as the JSON string
//! of metadata key `bbed`. `.npy`: `FILE.npy` holds `adv` (`<f4`), `FILE.u8.npy` holds `adv_u8`
//! (`|u1`), and the sidecar `FILE.meta.json` holds the settings and the per-image fields (NumPy
//! format 1.0, little endian, C order). The grid `STEM.grid.png` shows up to [`GRID_IMAGES`]
//! images as columns, rows clean / adversarial / difference (mid-grey plus the signed difference,
//! amplified per image so its largest change reaches full range), each pixel drawn as a
//! [`GRID_ZOOM`]-pixel square; single-channel images are grey, other channel counts than 1 and 3
//! show their first channel.
//!
//! Every file is written atomically ([`crate::io::atomic`]); which files a path implies is
//! [`files`], so the command can check them all ([`crate::io::output`]) before any work.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayView3, Axis};
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;

use crate::io::atomic::write_bytes_atomic;
use crate::report::png::encode_rgb;
use crate::{Error, Result};

/// Images shown in the PNG grid (the first ones attacked).
pub const GRID_IMAGES: usize = 8;
/// Screen pixels per image pixel in the grid.
pub const GRID_ZOOM: usize = 4;

/// The file format, from the extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    SafeTensors,
    Npy,
}

/// Everything saved about a run's adversarial examples (module doc).
pub struct AdvSet<'a> {
    pub clean: &'a Array4<f32>,
    pub adv: &'a Array4<f32>,
    pub index: Vec<usize>,
    pub label: Vec<usize>,
    pub target: Vec<Option<usize>>,
    pub clean_pred: Vec<usize>,
    pub adv_pred: Vec<usize>,
    /// The run's settings (module doc).
    pub settings: serde_json::Value,
}

/// The format `path` asks for; an error naming `flag` for any other extension.
pub fn format_of(flag: &str, path: &Path) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Ok(Format::SafeTensors),
        Some("npy") => Ok(Format::Npy),
        _ => Err(Error::input(
            format!("{flag} {}", path.display()),
            "unknown extension: use .safetensors or .npy",
        )),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}{suffix}"))
}

/// Every file `path` writes: the main file, the `.npy` sidecars, the grid.
pub fn files(path: &Path, format: Format) -> Vec<PathBuf> {
    let mut v = vec![path.to_path_buf()];
    if format == Format::Npy {
        v.push(with_suffix(path, ".u8.npy"));
        let mut meta = path.as_os_str().to_owned();
        meta.push(".meta.json");
        v.push(PathBuf::from(meta));
    }
    v.push(with_suffix(path, ".grid.png"));
    v
}

/// `round(255 * v)` as a pixel.
pub fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

/// The per-image fields as one JSON object of arrays (the `.npy` sidecar).
#[derive(Serialize)]
struct Sidecar<'a> {
    layout: &'static str,
    shape: &'a [usize],
    settings: &'a serde_json::Value,
    index: &'a [usize],
    label: &'a [usize],
    target: Vec<i64>,
    clean_pred: &'a [usize],
    adv_pred: &'a [usize],
}

fn int64(v: &[usize]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect()
}

fn targets(set: &AdvSet) -> Vec<i64> {
    set.target
        .iter()
        .map(|t| t.map_or(-1, |t| t as i64))
        .collect()
}

fn view<'a>(dtype: Dtype, shape: &[usize], data: &'a [u8]) -> TensorView<'a> {
    TensorView::new(dtype, shape.to_vec(), data).expect("sizes match the shape")
}

/// A NumPy format 1.0 file: `descr` (`<f4`, `|u1`), C order, `shape`, then `data`.
pub fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut head =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}").into_bytes();
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64 and
    // ended by a newline, as NumPy writes it.
    while (10 + head.len() + 1) % 64 != 0 {
        head.push(b' ');
    }
    head.push(b'\n');
    let mut out = Vec::with_capacity(10 + head.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(head.len() as u16).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(data);
    out
}

/// Writes `set` to `path` in `format`, and the grid (module doc).
pub fn save(path: &Path, format: Format, set: &AdvSet) -> Result<()> {
    let shape = set.adv.shape().to_vec();
    let adv = set.adv.as_standard_layout();
    let f32_bytes: Vec<u8> = adv.iter().flat_map(|v| v.to_le_bytes()).collect();
    let u8_bytes: Vec<u8> = adv.iter().map(|&v| to_u8(v)).collect();
    match format {
        Format::SafeTensors => {
            let n = vec![set.index.len()];
            let ints = [
                ("index", int64(&set.index)),
                ("label", int64(&set.label)),
                ("clean_pred", int64(&set.clean_pred)),
                ("adv_pred", int64(&set.adv_pred)),
                (
                    "target",
                    targets(set).iter().flat_map(|t| t.to_le_bytes()).collect(),
                ),
            ];
            let mut tensors = vec![
                ("adv".to_string(), view(Dtype::F32, &shape, &f32_bytes)),
                ("adv_u8".to_string(), view(Dtype::U8, &shape, &u8_bytes)),
            ];
            for (name, bytes) in &ints {
                tensors.push((name.to_string(), view(Dtype::I64, &n, bytes)));
            }
            let meta: HashMap<String, String> =
                [("bbed".to_string(), set.settings.to_string())].into();
            let bytes = safetensors::tensor::serialize(tensors, &Some(meta)).map_err(|e| {
                Error::input(path.display().to_string(), format!("safetensors: {e}"))
            })?;
            write_bytes_atomic(path, &bytes)?;
        }
        Format::Npy => {
            let fs = files(path, format);
            write_bytes_atomic(&fs[0], &npy_bytes("<f4", &shape, &f32_bytes))?;
            write_bytes_atomic(&fs[1], &npy_bytes("|u1", &shape, &u8_bytes))?;
            let side = Sidecar {
                layout: "NCHW",
                shape: &shape,
                settings: &set.settings,
                index: &set.index,
                label: &set.label,
                target: targets(set),
                clean_pred: &set.clean_pred,
                adv_pred: &set.adv_pred,
            };
            let json = serde_json::to_vec_pretty(&side).expect("plain data serializes");
            write_bytes_atomic(&fs[2], &json)?;
        }
    }
    let grid = files(path, format)
        .pop()
        .expect("the grid is always listed");
    let (w, h, rgb) = grid_rgb(set.clean, set.adv);
    write_bytes_atomic(&grid, &encode_rgb(w as u32, h as u32, &rgb))
}

/// RGB of pixel (`y`, `x`) of a CHW image with values in \[0,1\] (module doc).
fn pixel(img: ArrayView3<f32>, y: usize, x: usize) -> [u8; 3] {
    if img.len_of(Axis(0)) == 3 {
        [0, 1, 2].map(|c| to_u8(img[[c, y, x]]))
    } else {
        [to_u8(img[[0, y, x]]); 3]
    }
}

/// The grid image (module doc): width, height and RGB bytes.
pub fn grid_rgb(clean: &Array4<f32>, adv: &Array4<f32>) -> (usize, usize, Vec<u8>) {
    let (n, _, h, w) = clean.dim();
    let cols = n.min(GRID_IMAGES);
    let (cw, ch, gap) = (w * GRID_ZOOM, h * GRID_ZOOM, 2);
    let width = (cols * (cw + gap) + gap).max(1);
    let height = 3 * (ch + gap) + gap;
    let mut rgb = vec![255u8; width * height * 3];
    for i in 0..cols {
        let (c, a) = (clean.index_axis(Axis(0), i), adv.index_axis(Axis(0), i));
        let diff = &a - &c;
        let amp = diff.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if amp > 0.0 { 0.5 / amp } else { 0.0 };
        let shown = diff.mapv(|d| 0.5 + d * scale);
        for (r, img) in [c, a, shown.view()].into_iter().enumerate() {
            for y in 0..ch {
                for x in 0..cw {
                    let px = pixel(img, y / GRID_ZOOM, x / GRID_ZOOM);
                    let (gy, gx) = (gap + r * (ch + gap) + y, gap + i * (cw + gap) + x);
                    let at = (gy * width + gx) * 3;
                    rgb[at..at + 3].copy_from_slice(&px);
                }
            }
        }
    }
    (width, height, rgb)
}

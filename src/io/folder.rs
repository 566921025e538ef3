//! Folder-of-images datasets in the ImageNet / torchvision `ImageFolder` layout, preprocessed as
//! torchvision's standard evaluation transform (`Resize(256)`, `CenterCrop(224)`).
//!
//! **Layout.** Either `DIR/val/<class>/<image>` (test split) with an optional
//! `DIR/train/<class>/<image>` (train split), or `DIR/<class>/<image>` directly (test split only,
//! no train split). A `DIR/train/` without `DIR/val/` is an error (there would be no test split).
//! Class indices follow the sorted class-folder names (`ImageFolder`'s convention: Unicode code
//! point order, which is Rust's `String` order); within a class, files are taken in sorted name
//! order (sub-folders of a class folder included, ordered as `ImageFolder` does: by sub-folder
//! path, then file name), so loading is deterministic. Train and val must have the same class
//! folders. Files whose extension is not an image extension ([`EXTENSIONS`], any case) are
//! skipped, as `ImageFolder` does; hidden entries (name starting with `.`) are skipped too (`.DS_Store`,
//! `.ipynb_checkpoints`), which `ImageFolder` does not do for folders. A class folder with no
//! image is an error (its index would silently shift every later class otherwise).
//!
//! **Decoding.** JPEG and PNG via the `image` crate, format sniffed from the content (a PNG
//! named `.jpg` loads). Every image becomes 8-bit RGB: grey is copied to all three channels,
//! alpha is dropped (not composited onto a background), 16-bit samples are scaled to 8 bits.
//!
//! **Preprocessing.** Resize so the *shorter* side is `resize` pixels and the longer side is
//! `floor(resize * long / short)` (torchvision's integer truncation), with a triangle (bilinear)
//! filter whose support widens by the downscale factor (antialiased, as PIL's bilinear; values
//! are not bit-identical to PIL's). Then the centre `crop` x `crop` window, its top-left corner
//! at `round((h - crop) / 2)`, `round((w - crop) / 2)` with round-half-to-even (Python's `round`,
//! which torchvision's `CenterCrop` uses). Pixels stay `u8` NCHW, channel 0 = R.
//!
//! **Memory.** Every image is held decoded: `3 * crop * crop` bytes (150 KB at 224), so the
//! 50,000 ImageNet validation images take 7.5 GB and the 1.28 M training images 193 GB, which
//! does not fit: use [`FolderOptions::limit_per_class`] (the first `k` files of each class).
//! Images are decoded in parallel; the result does not depend on the thread count.

use crate::io::Dataset;
use crate::{Error, Result};
use image::imageops::FilterType;
use ndarray::Array4;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// File extensions read as images (compared case-insensitively).
pub const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Preprocessing and size options; [`Default`] is torchvision's eval transform (256, 224, all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FolderOptions {
    /// Length of the shorter side after resizing, in pixels.
    pub resize: u32,
    /// Side of the square centre crop, in pixels; must be `<= resize`.
    pub crop: u32,
    /// Take at most this many images (the first in name order) from each class folder.
    pub limit_per_class: Option<usize>,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            resize: 256,
            crop: 224,
            limit_per_class: None,
        }
    }
}

impl FolderOptions {
    pub fn validate(&self) -> Result<()> {
        if self.crop == 0 {
            return Err(Error::input("crop", "must be at least 1 pixel"));
        }
        if self.crop > self.resize {
            return Err(Error::input(
                "crop",
                format!(
                    "a {}-pixel centre crop does not fit in an image whose shorter side is \
                     resized to {} pixels; crop must be <= resize",
                    self.crop, self.resize
                ),
            ));
        }
        if self.limit_per_class == Some(0) {
            return Err(Error::input(
                "limit_per_class",
                "must be at least 1 (or unset for all images)",
            ));
        }
        Ok(())
    }
}

/// Where the splits of a folder dataset are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderLayout {
    pub train: Option<PathBuf>,
    pub test: PathBuf,
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn entry_name(path: &Path, dir: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::input(
                path.display().to_string(),
                format!(
                    "name is not valid UTF-8; class and image names in {} must be",
                    dir.display()
                ),
            )
        })
}

/// Sorted (name, path) of the non-hidden entries of `dir` that are directories (`dirs`) or files.
fn sorted_entries(dir: &Path, dirs: bool) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        // `Path::is_dir` follows symlinks, so a class folder may link to another disk.
        if path.is_dir() != dirs || (!dirs && !path.is_file()) {
            continue;
        }
        let name = entry_name(&path, dir)?;
        if !is_hidden(&name) {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Deepest folder nesting followed inside a class folder (guards against symlink loops).
const MAX_DEPTH: usize = 32;

/// Whether `dir` or a folder below it holds an image file (stops at the first one).
fn any_image(dir: &Path, depth: usize) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut subdirs = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.is_file() && has_image_extension(&p) {
            return true;
        }
        if p.is_dir() && depth < MAX_DEPTH {
            subdirs.push(p);
        }
    }
    subdirs.iter().any(|d| any_image(d, depth + 1))
}

/// Whether `split` has at least one class folder holding an image file.
fn looks_like_split(split: &Path) -> bool {
    let Ok(classes) = std::fs::read_dir(split) else {
        return false;
    };
    classes.flatten().any(|c| {
        let p = c.path();
        p.is_dir() && any_image(&p, 0)
    })
}

/// The image files of one class folder, sub-folders included, in `ImageFolder`'s order: by the
/// folder's path relative to the class folder (as a string), then by file name.
pub fn class_images(class_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<(String, String, PathBuf)> = Vec::new();
    let mut stack = vec![(class_dir.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(Error::input(
                dir.display().to_string(),
                format!("folders nested more than {MAX_DEPTH} deep (a symlink loop?)"),
            ));
        }
        for (name, path) in sorted_entries(&dir, false)? {
            if has_image_extension(&path) {
                found.push((rel.clone(), name, path));
            }
        }
        for (name, path) in sorted_entries(&dir, true)? {
            let sub = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            stack.push((path, sub, depth + 1));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, _, p)| p).collect())
}

/// The layout at `dir` if it looks like a folder-of-images dataset (some class folder holds an
/// image file), else `None`. `train/` without `val/` is reported by [`load_image_folder`].
pub fn find_image_folder(dir: &Path) -> Option<FolderLayout> {
    let (train, val) = (dir.join("train"), dir.join("val"));
    if val.is_dir() || train.is_dir() {
        if looks_like_split(&val) || looks_like_split(&train) {
            return Some(FolderLayout {
                train: train.is_dir().then_some(train),
                test: val,
            });
        }
        return None;
    }
    looks_like_split(dir).then(|| FolderLayout {
        train: None,
        test: dir.to_path_buf(),
    })
}

/// The class names of one split, sorted; an error when there are none.
pub fn class_names(split: &Path) -> Result<Vec<String>> {
    let names: Vec<String> = sorted_entries(split, true)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        return Err(Error::input(
            split.display().to_string(),
            "no class folders: expected one sub-folder of images per class",
        ));
    }
    Ok(names)
}

/// Load one split: `split/<class>/<image>` with `classes` as the class list (index = position).
pub fn load_split(split: &Path, classes: &[String], opts: &FolderOptions) -> Result<Dataset> {
    opts.validate()?;
    if classes.len() > usize::from(u16::MAX) + 1 {
        return Err(Error::input(
            split.display().to_string(),
            format!(
                "{} class folders; at most 65536 are supported",
                classes.len()
            ),
        ));
    }
    let mut files: Vec<(PathBuf, u16)> = Vec::new();
    for (label, name) in classes.iter().enumerate() {
        let dir = split.join(name);
        let mut imgs = class_images(&dir)?;
        if imgs.is_empty() {
            return Err(Error::input(
                dir.display().to_string(),
                format!(
                    "class folder has no image (expected files ending in {})",
                    EXTENSIONS.join(", ")
                ),
            ));
        }
        if let Some(k) = opts.limit_per_class {
            imgs.truncate(k);
        }
        let label = u16::try_from(label).expect("class count checked above");
        files.extend(imgs.into_iter().map(|p| (p, label)));
    }
    let side = opts.crop as usize;
    let per = 3 * side * side;
    // Decode straight into the final buffer: peak memory stays one dataset, not two. Every
    // image is tried and the first failure in file order reported, so the error does not
    // depend on thread scheduling.
    let mut pixels = vec![0u8; files.len() * per];
    let results: Vec<Result<()>> = pixels
        .par_chunks_mut(per)
        .zip(files.par_iter())
        .map(|(dst, (p, _))| load_image_into(p, opts, dst))
        .collect();
    results.into_iter().collect::<Result<()>>()?;
    let images = Array4::from_shape_vec((files.len(), 3, side, side), pixels)
        .expect("each image is 3 * crop * crop bytes by construction");
    let labels = files.into_iter().map(|(_, l)| l).collect();
    Dataset::new(images, labels, classes.len(), split.display().to_string())
}

/// Largest width or height an image may declare, in pixels (photos of data sets are far smaller;
/// a corrupt header claiming more is refused before anything is allocated).
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// Most a decoder may allocate for one image, in bytes.
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

fn decode_limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(MAX_IMAGE_SIDE);
    l.max_image_height = Some(MAX_IMAGE_SIDE);
    l.max_alloc = Some(MAX_DECODE_BYTES);
    l
}

/// Decode, resize, centre-crop one image file; returns its `3 x crop x crop` CHW bytes.
/// Images beyond [`MAX_IMAGE_SIDE`] or needing more than [`MAX_DECODE_BYTES`] are refused.
pub fn load_image(path: &Path, opts: &FolderOptions) -> Result<Vec<u8>> {
    let side = opts.crop as usize;
    let mut out = vec![0u8; 3 * side * side];
    load_image_into(path, opts, &mut out)?;
    Ok(out)
}

/// As [`load_image`], writing into `out` (`3 * crop * crop` bytes).
fn load_image_into(path: &Path, opts: &FolderOptions, out: &mut [u8]) -> Result<()> {
    let bad = |msg: String| Error::input(path.display().to_string(), msg);
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    reader.limits(decode_limits());
    let img = reader
        .decode()
        .map_err(|e| bad(format!("cannot decode image: {e}")))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(bad(format!("image is {w}x{h} pixels")));
    }
    let (nw, nh) = resized_size(w, h, opts.resize);
    let img = image::imageops::resize(&img, nw, nh, FilterType::Triangle);
    let (top, left) = (
        crop_offset(nh, opts.crop) as usize,
        crop_offset(nw, opts.crop) as usize,
    );
    let side = opts.crop as usize;
    let raw = img.as_raw();
    let row = nw as usize * 3;
    for y in 0..side {
        for x in 0..side {
            let src = (top + y) * row + (left + x) * 3;
            for c in 0..3 {
                out[(c * side + y) * side + x] = raw[src + c];
            }
        }
    }
    Ok(())
}

/// (width, height) with the shorter side `short` and the longer side truncated as torchvision.
pub fn resized_size(w: u32, h: u32, short: u32) -> (u32, u32) {
    let scale = |long: u32, s: u32| ((short as u64 * long as u64) / s as u64) as u32;
    if w <= h {
        (short, scale(h, w))
    } else {
        (scale(w, h), short)
    }
}

/// Start of a centred window of `crop` in `len`: `round((len - crop) / 2)`, ties to even.
pub fn crop_offset(len: u32, crop: u32) -> u32 {
    let d = len - crop;
    let half = d / 2;
    // d odd means a .5 tie: Python rounds it to the even neighbour.
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Load a folder dataset (see the module doc) as (train, test).
pub fn load_image_folder(dir: &Path, opts: &FolderOptions) -> Result<(Option<Dataset>, Dataset)> {
    opts.validate()?;
    let (train, val) = (dir.join("train"), dir.join("val"));
    let layout = if val.is_dir() {
        FolderLayout {
            train: train.is_dir().then_some(train),
            test: val,
        }
    } else if train.is_dir() {
        return Err(Error::input(
            dir.display().to_string(),
            "has train/ but no val/: the test split is read from val/<class>/ (or pass a folder \
             that directly holds the class folders)",
        ));
    } else {
        FolderLayout {
            train: None,
            test: dir.to_path_buf(),
        }
    };
    let classes = class_names(&layout.test)?;
    let train = match &layout.train {
        Some(t) => {
            let tc = class_names(t)?;
            if tc != classes {
                return Err(Error::input(
                    dir.display().to_string(),
                    format!(
                        "train and val have different class folders: {} has {}, {} has {}",
                        t.display(),
                        describe(&tc, &classes),
                        layout.test.display(),
                        describe(&classes, &tc),
                    ),
                ));
            }
            Some(load_split(t, &classes, opts)?)
        }
        None => None,
    };
    let test = load_split(&layout.test, &classes, opts)?;
    Ok((train, test))
}

/// `n classes` plus the names missing from `other` (at most 5), for the mismatch error.
fn describe(these: &[String], other: &[String]) -> String {
    let extra: Vec<&str> = these
        .iter()
        .filter(|c| !other.contains(c))
        .map(String::as_str)
        .collect();
    let shown = extra.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    let more = if extra.len() > 5 { ", ..." } else { "" };
    if extra.is_empty() {
        format!("{} classes", these.len())
    } else {
        format!(
            "{} classes including {} not in the other ({shown}{more})",
            these.len(),
            extra.len()
        )
    }
}

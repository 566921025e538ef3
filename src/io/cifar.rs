//! CIFAR-10 binary format: each record is 1 label byte (0-9) followed by 3072 pixel bytes, the
//! R, G and B planes of a 32x32 image one after another, each plane row-major. Files:
//! `data_batch_1.bin` .. `data_batch_5.bin` (train, 10,000 records each) and `test_batch.bin`.
//! A record maps to NCHW directly: channel 0 = R, 1 = G, 2 = B.

use crate::io::atomic::write_atomic;
use crate::io::Dataset;
use crate::{Error, Result};
use ndarray::{Array4, Axis};
use std::path::{Path, PathBuf};

pub const SIDE: usize = 32;
pub const CHANNELS: usize = 3;
pub const CLASSES: usize = 10;
pub const PIXELS: usize = CHANNELS * SIDE * SIDE;
pub const RECORD: usize = 1 + PIXELS;
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_FILE: &str = "test_batch.bin";

/// Parse CIFAR-10 records; `path` names the origin in errors.
pub fn parse_cifar(bytes: &[u8], path: &Path) -> Result<Dataset> {
    let ctx = || path.display().to_string();
    if bytes.is_empty() {
        return Err(Error::input(ctx(), "empty file: no CIFAR-10 records"));
    }
    if !bytes.len().is_multiple_of(RECORD) {
        let full = bytes.len() / RECORD;
        return Err(Error::input(
            ctx(),
            format!(
                "truncated: {} bytes is not a multiple of the {RECORD}-byte record size; record \
                 {full} (0-based) has only {} of {RECORD} bytes",
                bytes.len(),
                bytes.len() % RECORD
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] as usize >= CLASSES {
            return Err(Error::input(
                ctx(),
                format!(
                    "record {i} (byte offset {}): label {} is not a CIFAR-10 class (0-9); is this \
                     a CIFAR-100 file or not CIFAR at all?",
                    i * RECORD,
                    rec[0]
                ),
            ));
        }
        labels.push(u16::from(rec[0]));
        pixels.extend_from_slice(&rec[1..]);
    }
    let images = Array4::from_shape_vec((n, CHANNELS, SIDE, SIDE), pixels)
        .expect("length is n * 3072 by construction");
    Dataset::new(images, labels, CLASSES, ctx())
}

/// Load one CIFAR-10 binary file.
pub fn read_cifar_file(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_cifar(&bytes, path)
}

/// The directory holding `test_batch.bin`: `dir` itself or its `cifar-10-batches-bin/` (the name
/// the official archive extracts to).
pub fn find_cifar_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|d| d.join(TEST_FILE).is_file())
}

fn concat(parts: Vec<Dataset>, source: String) -> Result<Dataset> {
    let views: Vec<_> = parts.iter().map(|d| d.images.view()).collect();
    let images = ndarray::concatenate(Axis(0), &views)
        .map_err(|e| Error::input(&source, format!("cannot join batches: {e}")))?;
    let labels = parts
        .iter()
        .flat_map(|d| d.labels.iter().copied())
        .collect();
    Dataset::new(images, labels, CLASSES, source)
}

/// Load a CIFAR-10 directory (see [`crate::io::load_dataset`] for the train-split rule).
pub fn load_cifar_dir(dir: impl AsRef<Path>) -> Result<(Option<Dataset>, Dataset)> {
    let given = dir.as_ref();
    let dir = find_cifar_dir(given).ok_or_else(|| {
        Error::input(
            given.display().to_string(),
            format!("missing {TEST_FILE} (looked in the directory and in cifar-10-batches-bin/)"),
        )
    })?;
    let test = read_cifar_file(dir.join(TEST_FILE))?;
    let present: Vec<bool> = TRAIN_FILES.iter().map(|f| dir.join(f).is_file()).collect();
    let train = if present.iter().all(|&p| p) {
        let parts = TRAIN_FILES
            .iter()
            .map(|f| read_cifar_file(dir.join(f)))
            .collect::<Result<Vec<_>>>()?;
        Some(concat(parts, format!("{} (train)", dir.display()))?)
    } else if present.iter().any(|&p| p) {
        let missing: Vec<&str> = TRAIN_FILES
            .iter()
            .zip(&present)
            .filter(|(_, &p)| !p)
            .map(|(f, _)| *f)
            .collect();
        return Err(Error::input(
            dir.display().to_string(),
            format!(
                "incomplete CIFAR-10 training set: missing {}",
                missing.join(", ")
            ),
        ));
    } else {
        None
    };
    Ok((train, test))
}

/// Write `data` in the CIFAR-10 binary format (atomically). Images must be 3x32x32 with labels 0-9.
pub fn write_cifar_file(path: impl AsRef<Path>, data: &Dataset) -> Result<()> {
    let path = path.as_ref();
    if data.image_shape() != [CHANNELS, SIDE, SIDE] {
        return Err(Error::input(
            path.display().to_string(),
            format!(
                "CIFAR-10 images are 3x32x32, these are {:?}",
                data.image_shape()
            ),
        ));
    }
    if data.is_empty() {
        return Err(Error::input(
            path.display().to_string(),
            "no images to write (an empty CIFAR-10 file could not be loaded back)",
        ));
    }
    if let Some((i, l)) = data
        .labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= CLASSES)
    {
        return Err(Error::input(
            path.display().to_string(),
            format!("image {i}: label {l} does not fit CIFAR-10 (0-9)"),
        ));
    }
    let mut bytes = Vec::with_capacity(data.len() * RECORD);
    for (img, &label) in data.images.outer_iter().zip(&data.labels) {
        bytes.push(u8::try_from(label).expect("labels checked to be < 10 above"));
        // Standard layout iteration is C, then H, then W: exactly the file's plane order.
        bytes.extend(img.iter().copied());
    }
    write_atomic(path, |w| w.write_all(&bytes))
}

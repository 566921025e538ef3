//! Files in and out: weight files (safetensors), datasets (CIFAR-10 binary, IDX / MNIST family,
//! ImageNet-style folders of JPEG/PNG images), the standard CIFAR augmentation, and resumable append-only JSONL result logs.
//!
//! Conventions: images are kept as raw `u8` pixels (0-255) in NCHW until a caller asks for unit
//! scale (\[0,1\], `/255`); labels are class indices `0..classes`. Every writer that produces a file a
//! later run depends on (weights, datasets) writes a temporary file in the same directory and renames
//! it into place ([`atomic::write_atomic`]), so a killed run never leaves a half-written file behind,
//! and every command checks its outputs before starting ([`output`]: no silent overwrite, never
//! onto an input). [`limits`] holds the shared count rules and the memory guard, [`progress`] the
//! progress display that also works when stderr is a file.
//! Every malformed file is an [`crate::Error::Input`] naming the file (and record / line / tensor).

pub mod atomic;
pub mod augment;
pub mod cifar;
pub mod dataset;
pub mod folder;
pub mod idx;
pub mod jsonl;
pub mod limits;
pub mod output;
pub mod progress;
pub mod weights;

pub use dataset::{normalize, Dataset};
pub use jsonl::{read_jsonl, JsonlOptions, JsonlWriter, ResumeState};
pub use weights::WeightStore;

use crate::{Error, Result};
use std::path::Path;

/// Which on-disk layout [`load_dataset`] recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DatasetFormat {
    /// CIFAR-10 binary batches (`data_batch_N.bin`, `test_batch.bin`).
    Cifar10,
    /// IDX files of the MNIST family (MNIST, Fashion-MNIST), plain or gzipped.
    MnistIdx,
    /// Class folders of JPEG/PNG images (`val/<class>/`, optional `train/<class>/`, or
    /// `<class>/` directly), resized and centre-cropped ([`folder`]).
    ImageFolder,
}

/// Detect the format at `path` and load it.
///
/// - A directory holding `test_batch.bin` (directly or in `cifar-10-batches-bin/`): CIFAR-10; the
///   train split is `Some` when all of `data_batch_1..5.bin` are present, `None` when none are, and
///   an error when only some are (a broken download should not silently shrink the training set).
/// - A directory holding `t10k-images-idx3-ubyte[.gz]`: MNIST family, same rule for `train-*`.
/// - A directory of class folders holding JPEG/PNG images, ImageNet style: `val/<class>/*`
///   (test) with optional `train/<class>/*`, or `<class>/*` directly (test only). Loaded with
///   [`folder::FolderOptions::default`] (shorter side 256, centre crop 224, every image); call
///   [`folder::load_image_folder`] for other sizes or a per-class limit.
/// - A single CIFAR `.bin` file: loaded as the test split, train is `None`.
pub fn load_dataset(path: impl AsRef<Path>) -> Result<(Option<Dataset>, Dataset)> {
    load_dataset_with(path, None)
}

/// As [`load_dataset`], reading an image folder with `folder` (resize, crop, per-class limit)
/// instead of the defaults. Options given for data that is not an image folder are an input
/// error (they would silently do nothing).
pub fn load_dataset_with(
    path: impl AsRef<Path>,
    folder: Option<&folder::FolderOptions>,
) -> Result<(Option<Dataset>, Dataset)> {
    detect_and_load_with(path.as_ref(), folder).map(|(_, train, test)| (train, test))
}

/// As [`load_dataset`], also saying which format was found.
pub fn detect_and_load(path: &Path) -> Result<(DatasetFormat, Option<Dataset>, Dataset)> {
    detect_and_load_with(path, None)
}

fn detect_and_load_with(
    path: &Path,
    folder_options: Option<&folder::FolderOptions>,
) -> Result<(DatasetFormat, Option<Dataset>, Dataset)> {
    // Checked before loading: the options would silently do nothing.
    let not_a_folder = |format: DatasetFormat| -> Result<()> {
        match folder_options {
            Some(_) => Err(Error::input(
                path.display().to_string(),
                format!(
                    "--resize, --crop and --limit-per-class apply to image folders only; this is \
                     {format:?} data"
                ),
            )),
            None => Ok(()),
        }
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        let is_bin = path.extension().is_some_and(|e| e == "bin");
        if is_bin {
            not_a_folder(DatasetFormat::Cifar10)?;
            return Ok((DatasetFormat::Cifar10, None, cifar::read_cifar_file(path)?));
        }
        return Err(Error::input(
            path.display().to_string(),
            "a single file is only accepted in the CIFAR-10 binary format (*.bin); for IDX data \
             (MNIST, Fashion-MNIST) pass the directory holding the images and labels files",
        ));
    }
    if let Some(dir) = cifar::find_cifar_dir(path) {
        not_a_folder(DatasetFormat::Cifar10)?;
        let (train, test) = cifar::load_cifar_dir(&dir)?;
        return Ok((DatasetFormat::Cifar10, train, test));
    }
    if idx::find_idx_file(path, "t10k-images-idx3-ubyte").is_some() {
        not_a_folder(DatasetFormat::MnistIdx)?;
        let (train, test) = idx::load_mnist_dir(path)?;
        return Ok((DatasetFormat::MnistIdx, train, test));
    }
    if folder::find_image_folder(path).is_some() {
        let default = folder::FolderOptions::default();
        let (train, test) = folder::load_image_folder(path, folder_options.unwrap_or(&default))?;
        return Ok((DatasetFormat::ImageFolder, train, test));
    }
    Err(Error::input(
        path.display().to_string(),
        "no dataset recognised: expected CIFAR-10 binary batches (test_batch.bin, data_batch_1..5.bin, \
         optionally inside cifar-10-batches-bin/) or MNIST-family IDX files \
         (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz], train-...) or an image \
         folder (val/<class>/*.jpg|png with optional train/<class>/..., or <class>/*.jpg|png)",
    ))
}

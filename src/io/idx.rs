//! IDX files (the MNIST family: MNIST, Fashion-MNIST), plain or gzip-compressed.
//!
//! Layout: bytes 0-1 are zero, byte 2 is the element type (only 0x08 = unsigned byte is accepted:
//! every MNIST-family file uses it), byte 3 the number of dimensions d, then d big-endian u32
//! sizes, then the elements row-major. Gzip is recognised by its magic bytes (1f 8b), not by the
//! file name; multi-member gzip (concatenated streams) is read whole. Image files are (N, H, W)
//! and become (N, 1, H, W); label files are (N).

use crate::io::atomic::write_atomic;
use crate::io::Dataset;
use crate::{Error, Result};
use flate2::read::MultiGzDecoder;
use ndarray::Array4;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A decoded IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "short (16-bit)",
        0x0C => "int (32-bit)",
        0x0D => "float (32-bit)",
        0x0E => "double (64-bit)",
        _ => "unknown",
    }
}

/// Parse IDX bytes (already decompressed); `path` names the origin in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    parse_idx_owned(bytes.to_vec(), path)
}

/// As [`parse_idx`], reusing the buffer for the elements (the training images are 47 MB).
fn parse_idx_owned(mut bytes: Vec<u8>, path: &Path) -> Result<IdxArray> {
    let ctx = || path.display().to_string();
    if bytes.len() < 4 {
        return Err(Error::input(
            ctx(),
            format!(
                "truncated: {} bytes, an IDX header needs at least 4",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::input(
            ctx(),
            format!(
                "bad magic number {:02x} {:02x} {:02x} {:02x}: an IDX file starts with 00 00 <type> <dims>",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(Error::input(
            ctx(),
            format!(
                "element type 0x{:02x} ({}) is not supported; only 0x08 (unsigned byte) is",
                bytes[2],
                type_name(bytes[2])
            ),
        ));
    }
    let nd = bytes[3] as usize;
    if nd == 0 {
        return Err(Error::input(ctx(), "IDX header declares 0 dimensions"));
    }
    let header = 4 + 4 * nd;
    if bytes.len() < header {
        return Err(Error::input(
            ctx(),
            format!(
                "truncated header: {nd} dimensions need {header} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::input(ctx(), format!("dimensions {dims:?} overflow")))?;
    let have = bytes.len() - header;
    if have < count {
        return Err(Error::input(
            ctx(),
            format!(
                "truncated: dimensions {dims:?} need {count} data bytes, file has {have} \
                 (element {have} onwards missing)"
            ),
        ));
    }
    if have > count {
        return Err(Error::input(
            ctx(),
            format!(
                "corrupted: dimensions {dims:?} need {count} data bytes, file has {have} \
                 ({} extra)",
                have - count
            ),
        ));
    }
    bytes.drain(..header);
    Ok(IdxArray { dims, data: bytes })
}

/// Read an IDX file, gunzipping it if it starts with the gzip magic.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::input(
                    path.display().to_string(),
                    format!("corrupted or truncated gzip stream: {e}"),
                )
            })?;
        parse_idx_owned(out, path)
    } else {
        parse_idx_owned(raw, path)
    }
}

/// Serialise an unsigned-byte IDX array.
pub fn idx_bytes(dims: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    let count: usize = dims.iter().product();
    if dims.is_empty() || dims.len() > 255 || count != data.len() {
        return Err(Error::input(
            "idx",
            format!(
                "dims {dims:?} do not describe {} bytes (1..=255 dims needed)",
                data.len()
            ),
        ));
    }
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        let d = u32::try_from(d)
            .map_err(|_| Error::input("idx", format!("dimension {d} exceeds u32")))?;
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}

/// Write an unsigned-byte IDX file (atomically), gzip-compressed when `gzip` is set.
pub fn write_idx(path: impl AsRef<Path>, dims: &[usize], data: &[u8], gzip: bool) -> Result<()> {
    let path = path.as_ref();
    let bytes = idx_bytes(dims, data)?;
    write_atomic(path, |w| {
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::default());
            enc.write_all(&bytes)?;
            enc.finish()?;
            Ok(())
        } else {
            w.write_all(&bytes)
        }
    })
}

/// Load an images file (N, H, W) and a labels file (N) as one dataset of `classes` classes.
pub fn load_idx_pair(images: &Path, labels: &Path, classes: usize) -> Result<Dataset> {
    let im = read_idx(images)?;
    if im.dims.len() != 3 {
        return Err(Error::input(
            images.display().to_string(),
            format!(
                "an image file has 3 dimensions (N, H, W), this has {:?}",
                im.dims
            ),
        ));
    }
    let lb = read_idx(labels)?;
    if lb.dims.len() != 1 {
        return Err(Error::input(
            labels.display().to_string(),
            format!("a label file has 1 dimension (N), this has {:?}", lb.dims),
        ));
    }
    if lb.dims[0] != im.dims[0] {
        return Err(Error::input(
            labels.display().to_string(),
            format!(
                "{} labels but {} holds {} images",
                lb.dims[0],
                images.display(),
                im.dims[0]
            ),
        ));
    }
    if let Some((i, l)) = lb
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return Err(Error::input(
            labels.display().to_string(),
            format!("label {i}: {l} is outside 0..{}", classes - 1),
        ));
    }
    let (n, h, w) = (im.dims[0], im.dims[1], im.dims[2]);
    let arr = Array4::from_shape_vec((n, 1, h, w), im.data).expect("size checked by parse_idx");
    let labels = lb.data.into_iter().map(u16::from).collect();
    Dataset::new(arr, labels, classes, images.display().to_string())
}

/// `dir/stem` or `dir/stem.gz`, whichever exists (plain preferred).
pub fn find_idx_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// Where the Debian package `dataset-fashion-mnist` installs the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Load an MNIST-family directory (MNIST, Fashion-MNIST; 10 classes): `t10k-*` is required, the
/// `train-*` pair is loaded when both files exist, and one without the other is an error.
pub fn load_mnist_dir(dir: impl AsRef<Path>) -> Result<(Option<Dataset>, Dataset)> {
    let dir = dir.as_ref();
    let missing = |stem: &str| {
        Error::input(
            dir.display().to_string(),
            format!("missing {stem} (or {stem}.gz)"),
        )
    };
    let need = |stem: &str| find_idx_file(dir, stem).ok_or_else(|| missing(stem));
    let test = load_idx_pair(
        &need("t10k-images-idx3-ubyte")?,
        &need("t10k-labels-idx1-ubyte")?,
        10,
    )?;
    let ti = find_idx_file(dir, "train-images-idx3-ubyte");
    let tl = find_idx_file(dir, "train-labels-idx1-ubyte");
    let train = match (ti, tl) {
        (Some(i), Some(l)) => Some(load_idx_pair(&i, &l, 10)?),
        (None, None) => None,
        (Some(_), None) => return Err(missing("train-labels-idx1-ubyte")),
        (None, Some(_)) => return Err(missing("train-images-idx3-ubyte")),
    };
    Ok((train, test))
}

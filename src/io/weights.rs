//! Weight files: named `f32` tensors in the safetensors format, plus string metadata.
//!
//! Names and shapes are data: callers (the network description) say what they expect and
//! [`WeightStore::check`] reports every difference at once. Element type on disk:
//! - `F32` is read as is.
//! - `F16` and `BF16` are widened to `f32` exactly (every half / bfloat16 value is an `f32`).
//! - `F64` is narrowed to the nearest `f32` (round to nearest even, as `as f32`); this loses
//!   precision beyond 24 bits, which no network here can use.
//! - Integer tensors named `*num_batches_tracked` (PyTorch batch-norm bookkeeping) are skipped and
//!   listed in [`WeightStore::skipped`]; any other dtype is rejected naming the tensor.
//!
//! Saved files are always `F32`, little-endian (the format's byte order), tensors in name order,
//! header padded with spaces to a multiple of 8 bytes; the output is byte-for-byte deterministic.
//! Metadata goes in the `__metadata__` header map (string -> string); structured values (options)
//! are stored as JSON strings via [`WeightStore::set_meta_json`].

use crate::io::atomic::write_bytes_atomic;
use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Named `f32` tensors and string metadata, as stored in one safetensors file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightStore {
    pub tensors: BTreeMap<String, ArrayD<f32>>,
    pub metadata: BTreeMap<String, String>,
    /// Tensors present in the file but deliberately not loaded (see module docs).
    pub skipped: Vec<String>,
    /// The file this store was loaded from, used in error messages.
    pub source: Option<PathBuf>,
}

fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

fn describe(e: SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall => {
            "not a safetensors file: shorter than the 8-byte header length".into()
        }
        SafeTensorError::InvalidHeaderLength => {
            "truncated or not a safetensors file: the declared header length runs past the end of \
             the file"
                .into()
        }
        SafeTensorError::HeaderTooLarge => {
            "not a safetensors file: declared header length is implausibly large".into()
        }
        SafeTensorError::InvalidHeader
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization => {
            "corrupted safetensors header (not valid UTF-8 JSON with dtype/shape/data_offsets)"
                .into()
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "truncated or corrupted: the header's tensor offsets do not cover exactly the data \
             that follows it"
                .into()
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("corrupted: tensor {name:?} has invalid data offsets")
        }
        SafeTensorError::TensorInvalidInfo | SafeTensorError::ValidationOverflow => {
            "corrupted: a tensor's shape, dtype and byte size disagree".into()
        }
        other => format!("cannot read safetensors data: {other}"),
    }
}

/// Bits of an IEEE 754 binary16 value widened to f32 (exact).
pub(crate) fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    if exp == 0 {
        // Zero or subnormal: value = mant * 2^-24, exact in f32.
        let v = mant as f32 * f32::from_bits(0x3380_0000); // 2^-24
        return if sign != 0 { -v } else { v };
    }
    let bits = if exp == 31 {
        sign | 0x7f80_0000 | (mant << 13)
    } else {
        // Rebias the exponent from 15 to 127.
        sign | ((exp + 112) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

fn decode(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        _ => return None,
    })
}

fn fmt_shape(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl WeightStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where errors should say the weights came from.
    fn origin(&self) -> String {
        match &self.source {
            Some(p) => p.display().to_string(),
            None => "weights (in memory)".into(),
        }
    }

    /// Load every tensor of a safetensors file (see module docs for dtypes).
    pub fn load(path: impl AsRef<Path>) -> Result<WeightStore> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parse safetensors bytes; `path` only names the origin in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<WeightStore> {
        let ctx = || path.display().to_string();
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::input(ctx(), describe(e)))?;
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| Error::input(ctx(), describe(e)))?;
        let mut store = WeightStore {
            source: Some(path.to_path_buf()),
            ..Default::default()
        };
        if let Some(meta) = header.metadata() {
            store.metadata = meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        let mut bad = Vec::new();
        for (name, view) in st.tensors() {
            match decode(view.dtype(), view.data()) {
                Some(values) => {
                    let arr = ArrayD::from_shape_vec(IxDyn(view.shape()), values)
                        .map_err(|e| Error::input(ctx(), format!("tensor {name:?}: {e}")))?;
                    store.tensors.insert(name, arr);
                }
                None if name.ends_with("num_batches_tracked") => store.skipped.push(name),
                None => bad.push(format!("{name:?} is {}", dtype_name(view.dtype()))),
            }
        }
        if !bad.is_empty() {
            bad.sort();
            return Err(Error::input(
                ctx(),
                format!(
                    "unsupported tensor dtype (only F32, F64, F16 and BF16 are read): {}",
                    bad.join(", ")
                ),
            ));
        }
        store.skipped.sort();
        Ok(store)
    }

    /// Serialise to safetensors bytes (F32, deterministic; see module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        if !self.metadata.is_empty() {
            let meta: serde_json::Map<String, serde_json::Value> = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            header.insert("__metadata__".into(), meta.into());
        }
        let mut offset = 0usize;
        for (name, arr) in &self.tensors {
            let len = arr.len() * 4;
            header.insert(
                name.clone(),
                serde_json::json!({
                    "dtype": "F32",
                    "shape": arr.shape(),
                    "data_offsets": [offset, offset + len],
                }),
            );
            offset += len;
        }
        let mut head = serde_json::to_string(&serde_json::Value::Object(header))
            .expect("a map of strings and numbers always serialises")
            .into_bytes();
        // Padding keeps the tensor data 8-byte aligned for readers that map the file.
        while !head.len().is_multiple_of(8) {
            head.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + head.len() + offset);
        out.extend_from_slice(&(head.len() as u64).to_le_bytes());
        out.extend_from_slice(&head);
        for arr in self.tensors.values() {
            for v in arr.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Write to `path` atomically (temp file + rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        for name in self.tensors.keys() {
            if name == "__metadata__" || name.is_empty() {
                return Err(Error::input(
                    path.display().to_string(),
                    format!("tensor name {name:?} is reserved or empty"),
                ));
            }
        }
        write_bytes_atomic(path, &self.to_bytes())
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: ArrayD<f32>) {
        self.tensors.insert(name.into(), tensor);
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The tensor `name`, which must have exactly `expected_shape`.
    pub fn get(&self, name: &str, expected_shape: &[usize]) -> Result<&ArrayD<f32>> {
        let t = self.tensors.get(name).ok_or_else(|| {
            Error::input(
                self.origin(),
                format!(
                    "missing tensor {name:?} (expected shape {})",
                    fmt_shape(expected_shape)
                ),
            )
        })?;
        if t.shape() != expected_shape {
            return Err(Error::input(
                self.origin(),
                format!(
                    "tensor {name:?}: expected shape {}, found {}",
                    fmt_shape(expected_shape),
                    fmt_shape(t.shape())
                ),
            ));
        }
        Ok(t)
    }

    /// Check the store holds exactly the `expected` names with their shapes. One error lists all
    /// missing names, unexpected names and shape mismatches, naming `path`.
    pub fn check(&self, expected: &[(String, Vec<usize>)], path: impl AsRef<Path>) -> Result<()> {
        let want: BTreeMap<&str, &Vec<usize>> =
            expected.iter().map(|(n, s)| (n.as_str(), s)).collect();
        let mut missing = Vec::new();
        let mut mismatched = Vec::new();
        for (name, shape) in &want {
            match self.tensors.get(*name) {
                None => missing.push(format!("{name} {}", fmt_shape(shape))),
                Some(t) if t.shape() != shape.as_slice() => mismatched.push(format!(
                    "{name}: expected {}, found {}",
                    fmt_shape(shape),
                    fmt_shape(t.shape())
                )),
                Some(_) => {}
            }
        }
        let unexpected: Vec<String> = self
            .tensors
            .iter()
            .filter(|(n, _)| !want.contains_key(n.as_str()))
            .map(|(n, t)| format!("{n} {}", fmt_shape(t.shape())))
            .collect();
        if missing.is_empty() && unexpected.is_empty() && mismatched.is_empty() {
            return Ok(());
        }
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!(
                "missing {} tensor(s): {}",
                missing.len(),
                missing.join(", ")
            ));
        }
        if !unexpected.is_empty() {
            parts.push(format!(
                "unexpected {} tensor(s): {}",
                unexpected.len(),
                unexpected.join(", ")
            ));
        }
        if !mismatched.is_empty() {
            parts.push(format!(
                "shape mismatch in {} tensor(s): {}",
                mismatched.len(),
                mismatched.join("; ")
            ));
        }
        Err(Error::input(
            path.as_ref().display().to_string(),
            format!("weights do not match the network ({})", parts.join("; ")),
        ))
    }

    /// Fail, naming every affected tensor and its first bad element, if any value is NaN or
    /// infinite (a diverged training run saves such weights; they would turn every prediction into
    /// an arbitrary class rather than an error), or if a batch-norm `running_var` is negative
    /// (naming the layer). Loading does not call this: callers decide.
    pub fn check_finite(&self) -> Result<()> {
        let bad: Vec<String> = self
            .tensors
            .iter()
            .filter_map(|(name, t)| {
                let count = t.iter().filter(|v| !v.is_finite()).count();
                let first = t.iter().position(|v| !v.is_finite())?;
                Some(format!(
                    "{name} ({count} value(s), first at flat index {first}: {})",
                    t.iter().nth(first).expect("position found")
                ))
            })
            .collect();
        if !bad.is_empty() {
            return Err(Error::input(
                self.origin(),
                format!("non-finite weights in {}", bad.join(", ")),
            ));
        }
        // A variance is never negative; caught here the error names the tensor (so the layer)
        // and the file, instead of surfacing later as a nameless batch-norm fold error.
        for (name, t) in self
            .tensors
            .iter()
            .filter(|(n, _)| n.ends_with("running_var"))
        {
            if let Some((i, v)) = t.iter().enumerate().find(|(_, v)| **v < 0.0) {
                let layer = name.trim_end_matches(".running_var");
                return Err(Error::input(
                    self.origin(),
                    format!(
                        "batch-norm layer {layer:?}: {name} channel {i} is {v}, a variance must                          be >= 0 (corrupt or not a running variance)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Store `value` as a JSON string under metadata `key` (e.g. the variant's options).
    pub fn set_meta_json<T: serde::Serialize>(&mut self, key: &str, value: &T) -> Result<()> {
        let s = serde_json::to_string(value)
            .map_err(|e| Error::internal(format!("metadata {key:?}"), e.to_string()))?;
        self.metadata.insert(key.to_string(), s);
        Ok(())
    }

    /// Read metadata `key` as JSON; `Ok(None)` when absent, an error naming the file when present
    /// but not parseable as `T`.
    pub fn meta_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(s) => serde_json::from_str(s).map(Some).map_err(|e| {
                Error::input(
                    self.origin(),
                    format!("metadata {key:?} is not the expected JSON: {e}"),
                )
            }),
        }
    }
}

/// The metadata (`__metadata__`) of a safetensors file, read from its header alone (the
/// tensors are not read). A file without metadata gives an empty map.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    use std::io::Read;
    let ctx = || path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| Error::input(ctx(), describe(SafeTensorError::HeaderTooSmall)))?;
    let n = u64::from_le_bytes(len);
    // The same limit and messages as the full reader (safetensors' 100 MB header cap).
    if n > 100_000_000 {
        return Err(Error::input(
            ctx(),
            describe(SafeTensorError::HeaderTooLarge),
        ));
    }
    if n > file_len.saturating_sub(8) {
        return Err(Error::input(
            ctx(),
            describe(SafeTensorError::InvalidHeaderLength),
        ));
    }
    let mut head = vec![0u8; n as usize];
    f.read_exact(&mut head).map_err(|e| Error::io(path, e))?;
    let header: serde_json::Value = serde_json::from_slice(&head)
        .map_err(|_| Error::input(ctx(), describe(SafeTensorError::InvalidHeader)))?;
    let Some(meta) = header.get("__metadata__") else {
        return Ok(BTreeMap::new());
    };
    let meta = meta
        .as_object()
        .ok_or_else(|| Error::input(ctx(), "header field __metadata__ is not a map of strings"))?;
    meta.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => Err(Error::input(
                ctx(),
                format!("metadata {k:?} is not a string"),
            )),
        })
        .collect()
}

/// Options of a variant that change how the weights are read: which layers are binarized
/// (`fp_first_last`, `shortcut`) and how many bases they have (`m`, `n`). Compared only for
/// binarized kinds; other options (pruning rates, cost-accounting switches) change the cost
/// report, not the arithmetic on the loaded weights, and tensor shapes are checked on loading.
const BINARY_READ_OPTIONS: [&str; 4] = ["m", "n", "fp_first_last", "shortcut"];

/// Refuses a weight file whose stored variant (metadata `variant`, the JSON of a
/// [`crate::variant::VariantSpec`] as `bbed train` / `bbed prune` write it) disagrees with the
/// variant asked for: a different kind, or for `xnor` / `abc` a different
/// [`BINARY_READ_OPTIONS`] value (an option missing from the stored JSON counts as its
/// default). Running full-precision weights as XNOR, or the reverse, would give numbers that mean
/// nothing. A file without a `variant` entry (e.g. a PyTorch state dict) is accepted: nothing
/// says what it holds.
pub fn check_variant(path: &Path, asked: &crate::variant::VariantSpec) -> Result<()> {
    use crate::variant::{VariantKind, VariantOptions};
    let meta = read_metadata(path)?;
    let Some(text) = meta.get("variant") else {
        return Ok(());
    };
    let ctx = || path.display().to_string();
    let bad = |why: String| {
        Error::input(
            ctx(),
            format!("metadata \"variant\" is not a variant description ({why}): {text}"),
        )
    };
    let stored: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let kind: VariantKind = serde_json::from_value(stored.get("kind").cloned().unwrap_or_default())
        .map_err(|e| bad(format!("kind: {e}")))?;
    let as_json = |o: &VariantOptions| serde_json::to_value(o).expect("options serialise");
    let mut options = as_json(&VariantOptions::default());
    if let (Some(all), Some(given)) = (
        options.as_object_mut(),
        stored.get("options").and_then(|o| o.as_object()),
    ) {
        for (k, v) in given {
            all.insert(k.clone(), v.clone());
        }
    }
    let asked_options = as_json(&asked.options);
    let describe_spec = |kind: VariantKind, o: &serde_json::Value| -> String {
        match kind {
            VariantKind::Xnor => format!(
                "xnor (fp_first_last={}, shortcut={})",
                o["fp_first_last"], o["shortcut"]
            ),
            VariantKind::Abc => format!(
                "{} (m={}, n={}, fp_first_last={}, shortcut={})",
                kind.name(),
                o["m"],
                o["n"],
                o["fp_first_last"],
                o["shortcut"]
            ),
            k => k.name().to_string(),
        }
    };
    // `apply` forces m = n = 1 for XNOR; compare the spec as the engine will run it.
    let normalize = |kind: VariantKind, mut o: serde_json::Value| {
        if kind == VariantKind::Xnor {
            o["m"] = 1.into();
            o["n"] = 1.into();
        }
        o
    };
    let options = normalize(kind, options);
    let asked_options = normalize(asked.kind, asked_options);
    let differs = kind != asked.kind
        || (matches!(kind, VariantKind::Xnor | VariantKind::Abc)
            && BINARY_READ_OPTIONS
                .iter()
                .any(|k| options[*k] != asked_options[*k]));
    if differs {
        return Err(Error::input(
            ctx(),
            format!(
                "the weights were saved for variant {} but --variant asks for {}; pass the \
                 variant flags the file was trained with, or other weights",
                describe_spec(kind, &options),
                describe_spec(asked.kind, &asked_options)
            ),
        ));
    }
    Ok(())
}

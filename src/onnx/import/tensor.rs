//! Constant tensors as the importer sees them ([`Const`]: dims plus f32 or i64 data), decoded
//! from an ONNX `TensorProto` (an initializer or a `Constant` node's attribute), numpy-style
//! broadcasting for the element-wise ops folded on them, and node attribute access.
//!
//! Sizes in a file are data, not trusted: element counts are multiplied with overflow checks
//! and must match the bytes actually present, so nothing is allocated from a dimension alone;
//! tensors computed by folding (e.g. `ConstantOfShape`) stay under [`MAX_FOLD_ELEMS`].

use ndarray::{ArrayD, IxDyn};

use crate::onnx::proto::{AttributeProto, NodeProto, TensorProto};
use crate::{Error, Result};

/// Largest tensor the importer computes itself (folded shape subgraphs are a handful of
/// integers; 16 M elements is far above any of them and far below any memory limit).
pub const MAX_FOLD_ELEMS: usize = 1 << 24;

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A constant tensor (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub data: Data,
}

/// Product of `dims`, `None` on overflow.
pub fn elem_count(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

impl Const {
    pub fn f32(dims: Vec<usize>, v: Vec<f32>) -> Self {
        debug_assert_eq!(elem_count(&dims), Some(v.len()));
        Const {
            dims,
            data: Data::F32(v),
        }
    }

    pub fn i64(dims: Vec<usize>, v: Vec<i64>) -> Self {
        debug_assert_eq!(elem_count(&dims), Some(v.len()));
        Const {
            dims,
            data: Data::I64(v),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The values as f32 (integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as i64; float values must be integral (`what` names the tensor).
    pub fn to_i64(&self, what: &str) -> Result<Vec<i64>> {
        match &self.data {
            Data::I64(v) => Ok(v.clone()),
            Data::F32(v) => v
                .iter()
                .map(|&x| {
                    if x.fract() == 0.0 && x.abs() < 9.0e15 {
                        Ok(x as i64)
                    } else {
                        Err(Error::input(what, format!("expected integers, found {x}")))
                    }
                })
                .collect(),
        }
    }

    /// The single value of a one-element tensor.
    pub fn scalar(&self) -> Option<f32> {
        (self.len() == 1).then(|| self.to_f32()[0])
    }

    pub fn to_array(&self) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(&self.dims), self.to_f32()).expect("dims match data")
    }

    /// Same data under new dims (element counts must agree).
    pub fn reshaped(&self, dims: Vec<usize>) -> Self {
        debug_assert_eq!(elem_count(&dims), Some(self.len()));
        Const {
            dims,
            data: self.data.clone(),
        }
    }

    /// Gathers the elements at `idx` (flat indices) into a tensor of `dims`.
    pub fn pick(&self, dims: Vec<usize>, idx: &[usize]) -> Self {
        let data = match &self.data {
            Data::F32(v) => Data::F32(idx.iter().map(|&i| v[i]).collect()),
            Data::I64(v) => Data::I64(idx.iter().map(|&i| v[i]).collect()),
        };
        Const { dims, data }
    }

    /// Values per channel when the tensor broadcasts against `[N, C, ...]` (rank `rank`) as a
    /// per-channel constant (see [`Const::along`] with axis 1).
    pub fn per_channel(&self, channels: usize, rank: usize) -> Option<Vec<f32>> {
        self.along(1, channels, rank)
    }

    /// Values along `axis` when the tensor broadcasts against a rank-`rank` tensor as a
    /// constant that varies only along that axis: right-aligned, every other axis has size 1,
    /// `axis` has size `n` or 1 (a scalar is replicated).
    pub fn along(&self, axis: usize, n: usize, rank: usize) -> Option<Vec<f32>> {
        if self.dims.len() > rank {
            return None;
        }
        let lead = rank - self.dims.len();
        let mut per = 1;
        for (i, &d) in self.dims.iter().enumerate() {
            if lead + i == axis {
                per = d;
            } else if d != 1 {
                return None;
            }
        }
        let v = self.to_f32();
        match per {
            1 => Some(vec![v[0]; n]),
            p if p == n => Some(v),
            _ => None,
        }
    }
}

/// Right-aligned numpy broadcast of two shapes.
pub fn broadcast_dims(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                1
            };
            let db = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Flat source index in a tensor of `dims` for each element of the broadcast shape `out`.
pub fn broadcast_index(dims: &[usize], out: &[usize]) -> Vec<usize> {
    let n = elem_count(out).unwrap_or(0);
    let lead = out.len() - dims.len();
    let mut strides = vec![0usize; dims.len()];
    let mut s = 1;
    for i in (0..dims.len()).rev() {
        strides[i] = if dims[i] == 1 { 0 } else { s };
        s *= dims[i];
    }
    (0..n)
        .map(|mut flat| {
            let mut src = 0;
            for ax in (0..out.len()).rev() {
                let coord = flat % out[ax];
                flat /= out[ax];
                if ax >= lead {
                    src += coord * strides[ax - lead];
                }
            }
            src
        })
        .collect()
}

/// Element-wise `f` of two constants with broadcasting; integer inputs stay integer when both
/// are (with `fi`), otherwise f32. `what` names the node in errors.
pub fn elementwise(
    a: &Const,
    b: &Const,
    what: &str,
    f: impl Fn(f32, f32) -> f32,
    fi: impl Fn(i64, i64) -> Option<i64>,
) -> Result<Const> {
    let out = broadcast_dims(&a.dims, &b.dims).ok_or_else(|| {
        Error::input(
            what,
            format!("shapes {:?} and {:?} do not broadcast", a.dims, b.dims),
        )
    })?;
    let n = elem_count(&out)
        .filter(|&n| n <= MAX_FOLD_ELEMS)
        .ok_or_else(|| Error::input(what, format!("result shape {out:?} is too large to fold")))?;
    let (ia, ib) = (
        broadcast_index(&a.dims, &out),
        broadcast_index(&b.dims, &out),
    );
    let data = match (&a.data, &b.data) {
        (Data::I64(x), Data::I64(y)) => Data::I64(
            (0..n)
                .map(|i| fi(x[ia[i]], y[ib[i]]))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::input(what, "integer overflow or division by zero"))?,
        ),
        _ => {
            let (x, y) = (a.to_f32(), b.to_f32());
            Data::F32((0..n).map(|i| f(x[ia[i]], y[ib[i]])).collect())
        }
    };
    Ok(Const { dims: out, data })
}

/// ONNX `TensorProto.DataType` codes the importer reads.
mod dtype {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const UINT16: i32 = 4;
    pub const INT16: i32 = 5;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const DOUBLE: i32 = 11;
    pub const UINT32: i32 = 12;
}

/// True for the data types [`decode`] turns into floats (used by `Cast`).
pub fn is_float_type(t: i64) -> bool {
    matches!(t as i32, dtype::FLOAT | dtype::DOUBLE | 10 | 16)
}

fn fixed<const N: usize, T>(
    raw: &[u8],
    n: usize,
    what: &str,
    conv: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    if raw.len() != n.saturating_mul(N) {
        return Err(Error::input(
            what,
            format!(
                "raw data holds {} bytes but the dims need {n} elements of {N} bytes",
                raw.len()
            ),
        ));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| conv(c.try_into().expect("chunk size")))
        .collect())
}

fn counted<T: Clone>(v: &[T], n: usize, what: &str) -> Result<Vec<T>> {
    if v.len() != n {
        return Err(Error::input(
            what,
            format!("holds {} values but its dims need {n}", v.len()),
        ));
    }
    Ok(v.to_vec())
}

/// Decodes a tensor; `what` names it in errors (e.g. `initializer 'conv1.weight'`).
pub fn decode(t: &TensorProto, what: &str) -> Result<Const> {
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(Error::input(
            what,
            "stored as external data (a separate file); save the model with all tensors inside \
             (onnx.save_model(m, path, save_as_external_data=False))",
        ));
    }
    if t.segment.is_some() {
        return Err(Error::input(what, "segmented tensors are not supported"));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Error::input(what, format!("negative dim {d}"))))
        .collect::<Result<Vec<usize>>>()?;
    let n =
        elem_count(&dims).ok_or_else(|| Error::input(what, format!("dims {dims:?} overflow")))?;
    let raw = t.raw_data.as_deref();
    let ty = t.data_type.unwrap_or(0);
    let data = match ty {
        dtype::FLOAT => Data::F32(match raw {
            Some(r) => fixed(r, n, what, f32::from_le_bytes)?,
            None => counted(&t.float_data, n, what)?,
        }),
        dtype::DOUBLE => Data::F32(match raw {
            Some(r) => fixed(r, n, what, |b| f64::from_le_bytes(b) as f32)?,
            None => counted(&t.double_data, n, what)?
                .into_iter()
                .map(|x| x as f32)
                .collect(),
        }),
        dtype::INT64 => Data::I64(match raw {
            Some(r) => fixed(r, n, what, i64::from_le_bytes)?,
            None => counted(&t.int64_data, n, what)?,
        }),
        dtype::INT32 => Data::I64(match raw {
            Some(r) => fixed(r, n, what, |b| i32::from_le_bytes(b) as i64)?,
            None => widen(&t.int32_data, n, what)?,
        }),
        dtype::UINT32 => Data::I64(match raw {
            Some(r) => fixed(r, n, what, |b| u32::from_le_bytes(b) as i64)?,
            None => counted(&t.uint64_data, n, what)?
                .into_iter()
                .map(|x| x as i64)
                .collect(),
        }),
        dtype::INT16 => Data::I64(match raw {
            Some(r) => fixed(r, n, what, |b| i16::from_le_bytes(b) as i64)?,
            None => widen(&t.int32_data, n, what)?,
        }),
        dtype::UINT16 => Data::I64(match raw {
            Some(r) => fixed(r, n, what, |b| u16::from_le_bytes(b) as i64)?,
            None => widen(&t.int32_data, n, what)?,
        }),
        dtype::INT8 => Data::I64(match raw {
            Some(r) => fixed(r, n, what, |b: [u8; 1]| b[0] as i8 as i64)?,
            None => widen(&t.int32_data, n, what)?,
        }),
        dtype::UINT8 | dtype::BOOL => Data::I64(match raw {
            Some(r) => fixed(r, n, what, |b: [u8; 1]| b[0] as i64)?,
            None => widen(&t.int32_data, n, what)?,
        }),
        other => {
            return Err(Error::input(
                what,
                format!(
                    "data type {other} is not supported (float, double and integer tensors are; \
                     export float16/bfloat16 models as float32)"
                ),
            ))
        }
    };
    Ok(Const { dims, data })
}

fn widen(v: &[i32], n: usize, what: &str) -> Result<Vec<i64>> {
    Ok(counted(v, n, what)?.into_iter().map(i64::from).collect())
}

/// Attribute access on one node; errors name the node.
pub struct Attrs<'a> {
    node: &'a NodeProto,
    pub ctx: String,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto, ctx: String) -> Self {
        Attrs { node, ctx }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    /// Name of input `i`, if present.
    pub fn input_name(&self, i: usize) -> Option<String> {
        self.node.input.get(i).filter(|n| !n.is_empty()).cloned()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }

    pub fn float(&self, name: &str) -> Option<f32> {
        self.get(name).and_then(|a| a.f)
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    pub fn floats(&self, name: &str) -> Option<Vec<f32>> {
        self.get(name).map(|a| a.floats.clone())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    pub fn tensor(&self, name: &str) -> Option<&'a TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }

    /// An error naming this node.
    pub fn err(&self, msg: impl Into<String>) -> Error {
        Error::input(self.ctx.clone(), msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_dims(&[1, 3, 1, 1], &[2, 3, 4, 5]),
            Some(vec![2, 3, 4, 5])
        );
        assert_eq!(broadcast_dims(&[3], &[2, 1]), Some(vec![2, 3]));
        assert_eq!(broadcast_dims(&[3], &[2]), None);
        // [[0],[1]] + [10, 20, 30] = [[10,20,30],[11,21,31]]
        let a = Const::i64(vec![2, 1], vec![0, 1]);
        let b = Const::i64(vec![3], vec![10, 20, 30]);
        let s = elementwise(&a, &b, "t", |x, y| x + y, |x, y| x.checked_add(y)).unwrap();
        assert_eq!(s.dims, vec![2, 3]);
        assert_eq!(s.data, Data::I64(vec![10, 20, 30, 11, 21, 31]));
    }

    #[test]
    fn per_channel_accepts_only_channel_axis_broadcasts() {
        let c = Const::f32(vec![1, 3, 1, 1], vec![1.0, 2.0, 3.0]);
        assert_eq!(c.per_channel(3, 4), Some(vec![1.0, 2.0, 3.0]));
        assert_eq!(
            Const::f32(vec![3, 1, 1], vec![1.0, 2.0, 3.0]).per_channel(3, 4),
            Some(vec![1.0, 2.0, 3.0])
        );
        // A [3] vector broadcasts along W in NCHW, not along channels.
        assert_eq!(
            Const::f32(vec![3], vec![1.0, 2.0, 3.0]).per_channel(3, 4),
            None
        );
        assert_eq!(
            Const::f32(vec![], vec![2.0]).per_channel(3, 4),
            Some(vec![2.0; 3])
        );
    }

    #[test]
    fn decode_checks_counts_against_bytes() {
        let t = TensorProto {
            dims: vec![2, 2],
            data_type: Some(1),
            raw_data: Some(vec![0u8; 12]),
            ..Default::default()
        };
        assert!(decode(&t, "w")
            .unwrap_err()
            .to_string()
            .contains("12 bytes"));
        let t = TensorProto {
            dims: vec![i64::MAX, 4],
            data_type: Some(1),
            raw_data: Some(vec![]),
            ..Default::default()
        };
        assert!(decode(&t, "w").is_err());
    }
}

//! Constant folding: ops whose inputs are all constants are evaluated at import time. This is
//! how shape subgraphs disappear -- e.g. the option-A shortcut `F.pad(x[:, :, ::2, ::2], ...)`
//! exported by torch computes its pads through `ConstantOfShape`, `Concat`, `Reshape`, a
//! reversing `Slice`, `Transpose` and `Cast` -- and how `Constant` nodes become values.
//!
//! Semantics follow the ONNX operator specification (negative axes count from the end;
//! `Slice` clamps starts/ends per its spec, negative steps included; `Reshape` 0 copies the input
//! dim unless `allowzero`, -1 is inferred). Every result stays under
//! [`super::tensor::MAX_FOLD_ELEMS`] elements.

use super::tensor::{elem_count, elementwise, is_float_type, Attrs, Const, Data, MAX_FOLD_ELEMS};
use crate::Result;

/// Op types [`fold`] evaluates (when every input is a constant).
pub const FOLDABLE: &[&str] = &[
    "Constant",
    "ConstantOfShape",
    "Concat",
    "Reshape",
    "Transpose",
    "Cast",
    "Slice",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Identity",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
];

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Normalises a possibly negative axis of a rank-`rank` tensor.
pub fn axis(a: &Attrs, ax: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if ax < -r || ax >= r {
        return Err(a.err(format!("axis {ax} is out of range for rank {rank}")));
    }
    Ok(if ax < 0 {
        (ax + r) as usize
    } else {
        ax as usize
    })
}

fn checked(a: &Attrs, dims: &[usize]) -> Result<usize> {
    elem_count(dims)
        .filter(|&n| n <= MAX_FOLD_ELEMS)
        .ok_or_else(|| a.err(format!("folded tensor of shape {dims:?} is too large")))
}

/// Input `i` (must be present).
fn need<'c>(a: &Attrs, inputs: &'c [Option<Const>], i: usize) -> Result<&'c Const> {
    inputs
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| a.err(format!("input {i} is missing")))
}

/// Axes given as an attribute (older opsets) or as input `i` (newer), if any.
pub fn axes_of(a: &Attrs, inputs: &[Option<Const>], i: usize) -> Result<Option<Vec<i64>>> {
    if let Some(v) = a.ints("axes") {
        return Ok(Some(v));
    }
    match inputs.get(i).and_then(Option::as_ref) {
        Some(c) => Ok(Some(c.to_i64(&a.ctx)?)),
        None => Ok(None),
    }
}

/// Evaluates `op` on constant `inputs` (absent optional inputs are `None`).
pub fn fold(op: &str, a: &Attrs, inputs: &[Option<Const>]) -> Result<Const> {
    match op {
        "Constant" => constant(a),
        "ConstantOfShape" => {
            let shape = need(a, inputs, 0)?.to_i64(&a.ctx)?;
            let dims = shape
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| a.err(format!("negative dim {d}"))))
                .collect::<Result<Vec<_>>>()?;
            let n = checked(a, &dims)?;
            let value = match a.tensor("value") {
                Some(t) => super::tensor::decode(t, &a.ctx)?,
                None => Const::f32(vec![1], vec![0.0]),
            };
            if value.len() != 1 {
                return Err(a.err("attribute 'value' must hold one element"));
            }
            Ok(match value.data {
                Data::F32(v) => Const::f32(dims, vec![v[0]; n]),
                Data::I64(v) => Const::i64(dims, vec![v[0]; n]),
            })
        }
        "Concat" => {
            let parts: Vec<&Const> = inputs.iter().flatten().collect();
            let first = parts.first().ok_or_else(|| a.err("no inputs"))?;
            let rank = first.dims.len();
            let ax = axis(a, a.int("axis", 0), rank)?;
            let mut dims = first.dims.clone();
            dims[ax] = 0;
            for p in &parts {
                let same = p.dims.len() == rank
                    && (0..rank).all(|i| i == ax || p.dims[i] == first.dims[i]);
                if !same {
                    return Err(a.err(format!(
                        "inputs of shapes {:?} and {:?} do not concatenate on axis {ax}",
                        first.dims, p.dims
                    )));
                }
                dims[ax] += p.dims[ax];
            }
            checked(a, &dims)?;
            let outer: usize = dims[..ax].iter().product();
            let ints = parts.iter().all(|p| matches!(p.data, Data::I64(_)));
            let mut fv = Vec::new();
            let mut iv = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let inner: usize = p.dims[ax..].iter().product();
                    let r = o * inner..(o + 1) * inner;
                    match (&p.data, ints) {
                        (Data::I64(v), true) => iv.extend_from_slice(&v[r]),
                        _ => fv.extend_from_slice(&p.to_f32()[r]),
                    }
                }
            }
            Ok(if ints {
                Const::i64(dims, iv)
            } else {
                Const::f32(dims, fv)
            })
        }
        "Reshape" => {
            let x = need(a, inputs, 0)?;
            let shape = match inputs.get(1).and_then(Option::as_ref) {
                Some(s) => s.to_i64(&a.ctx)?,
                None => a.ints("shape").ok_or_else(|| a.err("no target shape"))?,
            };
            let dims = reshape_dims(a, &x.dims, &shape, a.int("allowzero", 0) != 0)?;
            Ok(x.reshaped(dims))
        }
        "Transpose" => {
            let x = need(a, inputs, 0)?;
            let rank = x.dims.len();
            let perm = a
                .ints("perm")
                .unwrap_or_else(|| (0..rank as i64).rev().collect());
            let perm = perm
                .iter()
                .map(|&p| axis(a, p, rank))
                .collect::<Result<Vec<_>>>()?;
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..rank).collect::<Vec<_>>() {
                return Err(a.err(format!("perm {perm:?} is not a permutation")));
            }
            let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
            let (si, so) = (strides(&x.dims), strides(&dims));
            let idx: Vec<usize> = (0..x.len())
                .map(|flat| {
                    (0..rank)
                        .map(|k| (flat / so[k]) % dims[k] * si[perm[k]])
                        .sum()
                })
                .collect();
            Ok(x.pick(dims, &idx))
        }
        "Cast" => {
            let x = need(a, inputs, 0)?;
            let to = a.int("to", 0);
            Ok(if is_float_type(to) {
                Const::f32(x.dims.clone(), x.to_f32())
            } else {
                let v = match &x.data {
                    Data::I64(v) => v.clone(),
                    Data::F32(v) => v.iter().map(|&f| f.trunc() as i64).collect(),
                };
                let v = if to == 9 {
                    v.into_iter().map(|x| i64::from(x != 0)).collect()
                } else {
                    v
                };
                Const::i64(x.dims.clone(), v)
            })
        }
        "Slice" => {
            let x = need(a, inputs, 0)?;
            let spec = SliceSpec::read(a, inputs, x.dims.len())?;
            let mut ranges: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
            for (ax, (s, e, k)) in spec.axes.iter().zip(&spec.bounds) {
                ranges[*ax] = slice_indices(x.dims[*ax], *s, *e, *k);
            }
            let dims: Vec<usize> = ranges.iter().map(Vec::len).collect();
            checked(a, &dims)?;
            let si = strides(&x.dims);
            let so = strides(&dims);
            let idx: Vec<usize> = (0..elem_count(&dims).unwrap_or(0))
                .map(|flat| {
                    (0..dims.len())
                        .map(|k| ranges[k][(flat / so[k]) % dims[k]] * si[k])
                        .sum()
                })
                .collect();
            Ok(x.pick(dims, &idx))
        }
        "Gather" => {
            let x = need(a, inputs, 0)?;
            let ind = need(a, inputs, 1)?;
            let ax = axis(a, a.int("axis", 0), x.dims.len())?;
            let d = x.dims[ax] as i64;
            let ind_v = ind
                .to_i64(&a.ctx)?
                .into_iter()
                .map(|i| {
                    let j = if i < 0 { i + d } else { i };
                    (0..d)
                        .contains(&j)
                        .then_some(j as usize)
                        .ok_or_else(|| a.err(format!("index {i} out of range for size {d}")))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut dims = x.dims[..ax].to_vec();
            dims.extend_from_slice(&ind.dims);
            dims.extend_from_slice(&x.dims[ax + 1..]);
            checked(a, &dims)?;
            let outer: usize = x.dims[..ax].iter().product();
            let inner: usize = x.dims[ax + 1..].iter().product();
            let mut idx = Vec::new();
            for o in 0..outer {
                for &i in &ind_v {
                    idx.extend((0..inner).map(|k| (o * x.dims[ax] + i) * inner + k));
                }
            }
            Ok(x.pick(dims, &idx))
        }
        "Unsqueeze" => {
            let x = need(a, inputs, 0)?;
            let axes = axes_of(a, inputs, 1)?.ok_or_else(|| a.err("no axes"))?;
            let rank = x.dims.len() + axes.len();
            let mut axes = axes
                .iter()
                .map(|&v| axis(a, v, rank))
                .collect::<Result<Vec<_>>>()?;
            axes.sort_unstable();
            let mut dims = x.dims.clone();
            for ax in axes {
                dims.insert(ax.min(dims.len()), 1);
            }
            Ok(x.reshaped(dims))
        }
        "Squeeze" => {
            let x = need(a, inputs, 0)?;
            let dims = match axes_of(a, inputs, 1)? {
                None => x.dims.iter().copied().filter(|&d| d != 1).collect(),
                Some(axes) => {
                    let axes = axes
                        .iter()
                        .map(|&v| axis(a, v, x.dims.len()))
                        .collect::<Result<Vec<_>>>()?;
                    if let Some(&bad) = axes.iter().find(|&&ax| x.dims[ax] != 1) {
                        return Err(
                            a.err(format!("cannot squeeze axis {bad} of size {}", x.dims[bad]))
                        );
                    }
                    (0..x.dims.len())
                        .filter(|i| !axes.contains(i))
                        .map(|i| x.dims[i])
                        .collect()
                }
            };
            Ok(x.reshaped(dims))
        }
        "Identity" => Ok(need(a, inputs, 0)?.clone()),
        "Neg" => {
            let x = need(a, inputs, 0)?;
            Ok(match &x.data {
                Data::F32(v) => Const::f32(x.dims.clone(), v.iter().map(|v| -v).collect()),
                Data::I64(v) => {
                    Const::i64(x.dims.clone(), v.iter().map(|v| v.wrapping_neg()).collect())
                }
            })
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let (x, y) = (need(a, inputs, 0)?, need(a, inputs, 1)?);
            match op {
                "Add" => elementwise(x, y, &a.ctx, |p, q| p + q, i64::checked_add),
                "Sub" => elementwise(x, y, &a.ctx, |p, q| p - q, i64::checked_sub),
                "Mul" => elementwise(x, y, &a.ctx, |p, q| p * q, i64::checked_mul),
                _ => elementwise(x, y, &a.ctx, |p, q| p / q, i64::checked_div),
            }
        }
        other => Err(a.err(format!("{other} cannot be folded"))),
    }
}

fn constant(a: &Attrs) -> Result<Const> {
    if let Some(t) = a.tensor("value") {
        return super::tensor::decode(t, &a.ctx);
    }
    if a.has("value_float") {
        return Ok(Const::f32(
            vec![],
            vec![a.float("value_float").unwrap_or(0.0)],
        ));
    }
    if let Some(v) = a.floats("value_floats") {
        return Ok(Const::f32(vec![v.len()], v));
    }
    if a.has("value_int") {
        return Ok(Const::i64(vec![], vec![a.int("value_int", 0)]));
    }
    if let Some(v) = a.ints("value_ints") {
        return Ok(Const::i64(vec![v.len()], v));
    }
    Err(a.err("Constant without a value/value_float(s)/value_int(s) attribute (sparse and string constants are not supported)"))
}

/// Output dims of `Reshape` (`0` copies the input dim unless `allowzero`, one `-1` is inferred).
pub fn reshape_dims(
    a: &Attrs,
    input: &[usize],
    shape: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>> {
    let total = elem_count(input).unwrap_or(0);
    let mut dims = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        dims.push(match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allowzero => *input.get(i).ok_or_else(|| {
                a.err(format!(
                    "shape {shape:?}: 0 at axis {i} has no input dim to copy"
                ))
            })?,
            s if s >= 0 => s as usize,
            _ => return Err(a.err(format!("invalid target shape {shape:?}"))),
        });
    }
    let known = elem_count(&dims).unwrap_or(usize::MAX);
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(a.err(format!("cannot reshape {input:?} to {shape:?}")));
        }
        dims[i] = total / known;
    } else if known != total {
        return Err(a.err(format!(
            "cannot reshape {input:?} ({total} elements) to {shape:?}"
        )));
    }
    Ok(dims)
}

/// Starts, ends and steps of a `Slice` per sliced axis, from inputs (opset >= 10) or attributes.
pub struct SliceSpec {
    pub axes: Vec<usize>,
    /// `(start, end, step)` per entry of `axes`, as in the file (not yet clamped).
    pub bounds: Vec<(i64, i64, i64)>,
}

impl SliceSpec {
    pub fn read(a: &Attrs, inputs: &[Option<Const>], rank: usize) -> Result<Self> {
        let get = |i: usize, attr: &str| -> Result<Option<Vec<i64>>> {
            if let Some(v) = a.ints(attr) {
                return Ok(Some(v));
            }
            match inputs.get(i).and_then(Option::as_ref) {
                Some(c) => Ok(Some(c.to_i64(&a.ctx)?)),
                None => Ok(None),
            }
        };
        let starts = get(1, "starts")?.ok_or_else(|| a.err("no starts"))?;
        let ends = get(2, "ends")?.ok_or_else(|| a.err("no ends"))?;
        let axes = get(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = get(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(a.err("starts, ends, axes and steps differ in length"));
        }
        if steps.contains(&0) {
            return Err(a.err("a slice step is 0"));
        }
        let axes = axes
            .iter()
            .map(|&x| axis(a, x, rank))
            .collect::<Result<Vec<_>>>()?;
        let bounds = (0..starts.len())
            .map(|i| (starts[i], ends[i], steps[i]))
            .collect();
        Ok(SliceSpec { axes, bounds })
    }
}

/// The indices `Slice` keeps on an axis of length `d` (ONNX clamping rules).
pub fn slice_indices(d: usize, start: i64, end: i64, step: i64) -> Vec<usize> {
    let d = d as i64;
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (norm(start), norm(end));
    let (s, e) = if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(0, d - 1), e.clamp(-1, d - 1))
    };
    let mut v = Vec::new();
    let mut i = s;
    while (step > 0 && i < e) || (step < 0 && i > e) {
        v.push(i as usize);
        i += step;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::NodeProto;

    fn attrs(node: &NodeProto) -> Attrs<'_> {
        Attrs::new(node, "test".into())
    }

    #[test]
    fn slice_follows_the_onnx_clamping_rules() {
        assert_eq!(slice_indices(5, 0, i64::MAX, 2), vec![0, 2, 4]);
        // Reversal as torch exports it for pads: start -1, end INT64_MIN, step -1.
        assert_eq!(slice_indices(4, -1, i64::MIN, -1), vec![3, 2, 1, 0]);
        assert_eq!(slice_indices(4, 10, -10, -2), vec![3, 1]);
        assert_eq!(slice_indices(4, 3, 1, 1), Vec::<usize>::new());
    }

    #[test]
    fn transpose_and_reshape_match_numpy() {
        let n = NodeProto::default();
        // np.arange(6).reshape(2, 3).T.reshape(-1) == [0, 3, 1, 4, 2, 5]
        let x = Const::i64(vec![2, 3], (0..6).collect());
        let t = fold("Transpose", &attrs(&n), &[Some(x)]).unwrap();
        assert_eq!(t.dims, vec![3, 2]);
        assert_eq!(t.data, Data::I64(vec![0, 3, 1, 4, 2, 5]));
        let r = fold(
            "Reshape",
            &attrs(&n),
            &[Some(t), Some(Const::i64(vec![1], vec![-1]))],
        )
        .unwrap();
        assert_eq!(r.dims, vec![6]);
    }
}

//! Maps ONNX nodes, in file order (ONNX graphs are topologically sorted), onto [`Layer`]s of a
//! [`Network`] and the parameter map the engines read (`{layer}.weight`, `{layer}.bias`,
//! `{bn}.running_mean`, ... -- the PyTorch state-dict convention of [`crate::model`]).
//!
//! Every ONNX value becomes a [`Value`]: a constant (initializers, `Constant` nodes, folded
//! subgraphs, see [`super::fold`]), the graph input behind its normalisation prefix, a layer's
//! output, or one of the intermediate forms that only make sense together with their consumer:
//! a spatially strided view (`Slice` step 2, the first half of an option-A shortcut, completed
//! by the channel `Pad`), and QONNX's binarized weights and activations (completed by the
//! Conv / Gemm / MatMul that reads them, see [`super::qonnx`]). This module holds the values,
//! the node dispatch and the element-wise / reshaping ops; the windowed and weighted layers are
//! in [`super::layers`].
//!
//! Layer names: a weighted node whose weight initializer is called `P.weight` (the dynamo
//! exporter keeps state-dict names) is layer `P`; otherwise the node name's module path
//! (`/layer1/layer1.0/conv1/Conv` -> `layer1.0.conv1`, `/layer1/layer1.0/Relu_1` ->
//! `layer1.0.relu_1`); names are made unique with a `_2`, `_3` suffix.

use std::collections::{HashMap, HashSet};

use ndarray::{ArrayD, IxDyn};

use super::fold::{axes_of, axis, fold, reshape_dims, FOLDABLE};
use super::qonnx::{self, BinWeight};
use super::tensor::{Attrs, Const};
use super::SUPPORTED;
use crate::engine::params::Params;
use crate::model::{Layer, Network, Op};
use crate::{Error, Result};

/// What an ONNX value is, as far as the import is concerned (see the module doc).
#[derive(Clone, Debug)]
pub enum Value {
    Const(Const),
    /// The graph input after the per-channel affine prefix read so far: `(x - mean) / std`.
    Input {
        mean: Vec<f32>,
        std: Vec<f32>,
    },
    /// A computed tensor: a layer's output (`None`: the network input, already normalised);
    /// `flat` once flattened to `[N, C*H*W]`.
    Dyn {
        src: Option<usize>,
        flat: bool,
    },
    /// `x[:, :, ::s, ::s]` of a computed tensor, named after the slicing node.
    Strided {
        src: Option<usize>,
        stride: [usize; 2],
        name: String,
    },
    /// QONNX binarized activation `sign(x) * scale`.
    ActQuant {
        src: Option<usize>,
        scale: f32,
    },
    /// QONNX binarized weight.
    WeightQuant(BinWeight),
}

pub struct Builder {
    pub net: Network,
    pub params: Params,
    /// Layers the file binarizes (both weights and input activations).
    pub binarized: Vec<String>,
    pub values: HashMap<String, Value>,
    /// The input prefix `(mean, std)` once a layer reads the input.
    pub norm: Option<(Vec<f32>, Vec<f32>)>,
    /// Batch size the graph input declares (`None`: symbolic).
    pub batch: Option<usize>,
    /// Node that produced each layer (for error messages).
    pub origin: Vec<String>,
    names: HashSet<String>,
    shaped: usize,
}

/// Default domain op types mapped onto layers (besides folding, see [`FOLDABLE`]).
pub const LAYER_OPS: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Relu",
    "Clip",
    "Add",
    "Sub",
    "Div",
    "Mul",
    "Gemm",
    "MatMul",
    "Flatten",
    "Reshape",
    "Squeeze",
    "GlobalAveragePool",
    "ReduceMean",
    "MaxPool",
    "AveragePool",
    "Slice",
    "Pad",
    "Identity",
    "Dropout",
    "Shape",
];

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches('.')
        .to_string()
}

/// Module path of a node name (see the module doc); `keep_op` keeps the last segment.
fn module_path(node_name: &str, keep_op: bool) -> String {
    let segs: Vec<&str> = node_name.split('/').filter(|s| !s.is_empty()).collect();
    let mut parts: Vec<String> = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        if last && !keep_op && !parts.is_empty() {
            break;
        }
        // `/layer1/layer1.0/conv1`: the scope repeats its parent's qualified name.
        if segs
            .get(i + 1)
            .is_some_and(|n| n.starts_with(&format!("{s}.")))
        {
            continue;
        }
        let s = if last {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        };
        parts.push(s.strip_prefix("node_").map(str::to_string).unwrap_or(s));
    }
    sanitize(&parts.join("."))
}

/// The constant inputs of a node (`None` for absent and computed ones).
pub(super) fn constants(ins: &[Option<Value>]) -> Vec<Option<Const>> {
    ins.iter()
        .map(|v| match v {
            Some(Value::Const(c)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn dims_str(d: &[usize]) -> String {
    format!("{d:?}")
}

impl Builder {
    pub fn new(net: Network, batch: Option<usize>) -> Self {
        Builder {
            net,
            params: Params::new(),
            binarized: Vec::new(),
            values: HashMap::new(),
            norm: None,
            batch,
            origin: Vec::new(),
            names: HashSet::new(),
            shaped: 0,
        }
    }

    pub(super) fn name_for(
        &mut self,
        node_name: &str,
        op: &str,
        weight: Option<&str>,
        weighted: bool,
    ) -> String {
        let from_weight = weight
            .and_then(|w| w.strip_suffix(".weight"))
            .filter(|p| !p.is_empty() && !p.starts_with("onnx::"))
            .map(sanitize)
            .filter(|p| !p.is_empty());
        let base = from_weight.unwrap_or_else(|| module_path(node_name, !weighted));
        self.unique(base, op)
    }

    /// `base` (or `op` when empty), made unique with a numeric suffix.
    fn unique(&mut self, base: String, op: &str) -> String {
        let base = if base.is_empty() {
            op.to_ascii_lowercase()
        } else {
            base
        };
        let mut name = base.clone();
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// Name of an option-A shortcut layer built from the slicing (or padding) node `node_name`.
    pub(super) fn shortcut_name(&mut self, node_name: &str) -> String {
        let base = module_path(node_name, true);
        let base = [".slice", ".pad"]
            .iter()
            .find_map(|s| base.strip_suffix(s))
            .map(str::to_string)
            .unwrap_or(base);
        self.unique(base, "shortcut")
    }

    fn push(&mut self, name: String, op: Op, src: Vec<Option<usize>>, ctx: &str) -> usize {
        let inputs = src.into_iter().flatten().collect();
        self.net.layers.push(Layer {
            name,
            op,
            inputs,
            out_shape: [0; 3],
        });
        self.origin.push(ctx.to_string());
        self.net.layers.len() - 1
    }

    /// `[C, H, W]` of a computed tensor.
    pub fn shape(&mut self, src: Option<usize>) -> Result<[usize; 3]> {
        let Some(i) = src else {
            return Ok(self.net.input);
        };
        if i >= self.shaped {
            self.net.infer_shapes().map_err(|e| match e {
                Error::Input { message, context } => {
                    let at = self
                        .net
                        .layers
                        .iter()
                        .position(|l| context.contains(&format!("'{}'", l.name)))
                        .map(|j| {
                            format!("{} (layer '{}')", self.origin[j], self.net.layers[j].name)
                        })
                        .unwrap_or(context);
                    Error::input(at, message)
                }
                other => other,
            })?;
            self.shaped = self.net.layers.len();
        }
        Ok(self.net.layers[i].out_shape)
    }

    /// The layer (or network input) a computed value comes from; materialises a pending
    /// strided view as an option-A shortcut without padding.
    pub(super) fn src(&mut self, v: &Value, a: &Attrs) -> Result<Option<usize>> {
        match v {
            Value::Dyn { src, .. } => Ok(*src),
            Value::Input { mean, std } => {
                match &self.norm {
                    Some((m, s)) if m != mean || s != std => {
                        return Err(a.err(
                            "the graph reads its input with two different normalisations",
                        ))
                    }
                    _ => self.norm = Some((mean.clone(), std.clone())),
                }
                Ok(None)
            }
            Value::Strided { src, stride, name } => {
                let s = Self::square(stride, a)?;
                let c = self.shape(*src)?[0];
                let name = self.shortcut_name(name);
                let ctx = a.ctx.clone();
                Ok(Some(self.push(name, Op::ShortcutA { out_c: c, stride: s }, vec![*src], &ctx)))
            }
            Value::ActQuant { .. } => Err(a.err(
                "reads a binarized activation (BipolarQuant/Quant/Sign); only Conv, Gemm and \
                 MatMul take binarized inputs",
            )),
            Value::Const(_) | Value::WeightQuant(_) => Err(a.err(
                "expects a computed tensor here but got a constant (an initializer or a folded value)",
            )),
        }
    }

    pub(super) fn square(stride: &[usize; 2], a: &Attrs) -> Result<usize> {
        if stride[0] != stride[1] {
            return Err(a.err(format!(
                "strided view with different steps {stride:?} along H and W (only square option-A subsampling is supported)"
            )));
        }
        Ok(stride[0])
    }

    pub(super) fn param(&mut self, name: String, dims: &[usize], data: Vec<f32>) {
        let arr = ArrayD::from_shape_vec(IxDyn(dims), data).expect("dims match data");
        self.params.insert(name, arr);
    }

    /// Handles one node (`idx` is its position, for nameless nodes).
    pub fn node(&mut self, node: &crate::onnx::proto::NodeProto, idx: usize) -> Result<()> {
        let op = node.op_type.clone().unwrap_or_default();
        let domain = node.domain.clone().unwrap_or_default();
        let nname = node.name.clone().unwrap_or_default();
        let shown = if nname.is_empty() {
            format!("#{idx}")
        } else {
            nname.clone()
        };
        let a = Attrs::new(node, format!("node '{shown}' ({op})"));
        let mut ins: Vec<Option<Value>> = Vec::with_capacity(node.input.len());
        for n in &node.input {
            if n.is_empty() {
                ins.push(None);
                continue;
            }
            let v = self.values.get(n).cloned().ok_or_else(|| {
                a.err(format!(
                    "input '{n}' is not a graph input, an initializer or the output of an earlier node \
                     (missing initializer, or nodes out of topological order)"
                ))
            })?;
            ins.push(Some(v));
        }
        let out_name = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| a.err("node has no output"))?;
        let in_default = domain.is_empty() || domain == "ai.onnx";
        let all_const = ins
            .iter()
            .all(|v| matches!(v, None | Some(Value::Const(_))));
        if in_default && all_const && FOLDABLE.contains(&op.as_str()) {
            let c = fold(&op, &a, &constants(&ins))?;
            self.values.insert(out_name, Value::Const(c));
            return Ok(());
        }
        let out = if qonnx::QUANT_OPS.contains(&op.as_str()) {
            self.quant(&op, &a, &ins)?
        } else if !in_default || !LAYER_OPS.contains(&op.as_str()) {
            return Err(a.err(format!(
                "op_type '{op}'{} is not supported; supported: {}",
                if in_default {
                    String::new()
                } else {
                    format!(" (domain '{domain}')")
                },
                SUPPORTED.join(", ")
            )));
        } else {
            self.layer_op(&op, &a, &nname, &ins)?
        };
        self.values.insert(out_name, out);
        Ok(())
    }

    fn quant(&mut self, op: &str, a: &Attrs, ins: &[Option<Value>]) -> Result<Value> {
        let scale = qonnx::scale_of(op, a, ins)?;
        match ins.first().cloned().flatten() {
            Some(Value::Const(w)) => Ok(Value::WeightQuant(qonnx::bin_weight(op, a, &w, scale)?)),
            Some(v) => {
                let s = scale.scalar().ok_or_else(|| {
                    a.err(format!(
                        "activation scale of shape {} is not one value per tensor (the XNOR alpha can take only a per-tensor activation scale)",
                        dims_str(&scale.dims)
                    ))
                })?;
                let src = self.src(&v, a)?;
                Ok(Value::ActQuant { src, scale: s })
            }
            None => Err(a.err("input 0 is missing")),
        }
    }

    pub(super) fn dyn_in(
        &mut self,
        ins: &[Option<Value>],
        i: usize,
        a: &Attrs,
    ) -> Result<Option<usize>> {
        let v = ins
            .get(i)
            .cloned()
            .flatten()
            .ok_or_else(|| a.err(format!("input {i} is missing")))?;
        self.src(&v, a)
    }

    pub(super) fn const_in<'v>(
        ins: &'v [Option<Value>],
        i: usize,
        a: &Attrs,
        what: &str,
    ) -> Result<Option<&'v Const>> {
        match ins.get(i) {
            None | Some(None) => Ok(None),
            Some(Some(Value::Const(c))) => Ok(Some(c)),
            Some(Some(_)) => Err(a.err(format!(
                "{what} (input {i}) must be a constant (initializer or foldable subgraph), not a computed tensor"
            ))),
        }
    }

    pub(super) fn layer(
        &mut self,
        name: String,
        op: Op,
        src: Vec<Option<usize>>,
        a: &Attrs,
    ) -> Value {
        let i = self.push(name, op, src, &a.ctx);
        Value::Dyn {
            src: Some(i),
            flat: false,
        }
    }

    fn layer_op(
        &mut self,
        op: &str,
        a: &Attrs,
        nname: &str,
        ins: &[Option<Value>],
    ) -> Result<Value> {
        match op {
            "Conv" => self.conv(a, nname, ins),
            "Gemm" | "MatMul" => self.linear(op, a, nname, ins),
            "BatchNormalization" => self.batch_norm(a, nname, ins),
            "Relu" => {
                let s = self.dyn_in(ins, 0, a)?;
                let name = self.name_for(nname, op, None, false);
                Ok(self.layer(name, Op::Relu, vec![s], a))
            }
            "Clip" => {
                let bound = |i: usize, attr: &str, d: f32| -> Result<f32> {
                    match Self::const_in(ins, i, a, attr)? {
                        Some(c) => c
                            .scalar()
                            .ok_or_else(|| a.err(format!("{attr} must be one value"))),
                        None => Ok(a.float(attr).unwrap_or(d)),
                    }
                };
                let (lo, hi) = (
                    bound(1, "min", f32::NEG_INFINITY)?,
                    bound(2, "max", f32::INFINITY)?,
                );
                let kind = match (lo, hi) {
                    (l, h) if l == 0.0 && h == f32::INFINITY => Op::Relu,
                    (l, h) if l == -1.0 && h == 1.0 => Op::Hardtanh,
                    _ => {
                        return Err(a.err(format!(
                            "Clip({lo}, {hi}) has no equivalent layer (supported: Clip(0, inf) = ReLU, Clip(-1, 1) = HardTanh)"
                        )))
                    }
                };
                let s = self.dyn_in(ins, 0, a)?;
                let name = self.name_for(nname, op, None, false);
                Ok(self.layer(name, kind, vec![s], a))
            }
            "Add" | "Sub" | "Mul" | "Div" => self.arith(op, a, nname, ins),
            "Identity" | "Dropout" => ins
                .first()
                .cloned()
                .flatten()
                .ok_or_else(|| a.err("input 0 is missing")),
            "Flatten" => {
                let v = ins
                    .first()
                    .cloned()
                    .flatten()
                    .ok_or_else(|| a.err("input 0 is missing"))?;
                let ax = a.int("axis", 1);
                if ax != 1 && ax != -3 {
                    return Err(a.err(format!(
                        "Flatten axis {ax}: only axis 1 (keep the batch axis) is supported"
                    )));
                }
                let src = self.src(&v, a)?;
                Ok(Value::Dyn { src, flat: true })
            }
            "Reshape" | "Squeeze" => self.reshape(op, a, ins),
            "GlobalAveragePool" => {
                let s = self.dyn_in(ins, 0, a)?;
                let name = self.name_for(nname, op, None, false);
                Ok(self.layer(name, Op::GlobalAvgPool, vec![s], a))
            }
            "ReduceMean" => {
                let consts = constants(ins);
                let axes = axes_of(a, &consts, 1)?.unwrap_or_default();
                let mut axes = axes
                    .iter()
                    .map(|&x| axis(a, x, 4))
                    .collect::<Result<Vec<_>>>()?;
                axes.sort_unstable();
                if axes != [2, 3] {
                    return Err(a.err(format!(
                        "ReduceMean over axes {axes:?}: only the spatial mean (axes 2 and 3, a global average pool) is supported"
                    )));
                }
                let s = self.dyn_in(ins, 0, a)?;
                let name = self.name_for(nname, op, None, false);
                let v = self.layer(name, Op::GlobalAvgPool, vec![s], a);
                Ok(match v {
                    Value::Dyn { src, .. } => Value::Dyn {
                        src,
                        flat: a.int("keepdims", 1) == 0,
                    },
                    other => other,
                })
            }
            "MaxPool" | "AveragePool" => self.pool(op, a, nname, ins),
            "Slice" => self.slice(a, nname, ins),
            "Pad" => self.pad(a, nname, ins),
            "Shape" => {
                let v = ins
                    .first()
                    .cloned()
                    .flatten()
                    .ok_or_else(|| a.err("input 0 is missing"))?;
                let (dims, _) = self.logical_dims(&v, a)?;
                let r = dims.len() as i64;
                let clampi = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
                let (s, e) = (clampi(a.int("start", 0)), clampi(a.int("end", r)));
                let v: Vec<i64> = dims[s..e.max(s)].iter().map(|&d| d as i64).collect();
                Ok(Value::Const(Const::i64(vec![v.len()], v)))
            }
            other => Err(a.err(format!("op_type '{other}' is not handled"))),
        }
    }

    /// Logical NCHW (or `[N, F]` when flat) dims of a computed value; the batch is the declared
    /// one, or 1 when symbolic (it only ever feeds the batch slot of a flattening reshape).
    fn logical_dims(&mut self, v: &Value, a: &Attrs) -> Result<(Vec<usize>, Option<usize>)> {
        let (src, flat) = match v {
            Value::Dyn { src, flat } => (*src, *flat),
            other => (self.src(other, a)?, false),
        };
        let [c, h, w] = self.shape(src)?;
        let n = self.batch.unwrap_or(1);
        Ok((
            if flat {
                vec![n, c * h * w]
            } else {
                vec![n, c, h, w]
            },
            src,
        ))
    }

    fn reshape(&mut self, op: &str, a: &Attrs, ins: &[Option<Value>]) -> Result<Value> {
        let v = ins
            .first()
            .cloned()
            .flatten()
            .ok_or_else(|| a.err("input 0 is missing"))?;
        let (dims, src) = self.logical_dims(&v, a)?;
        let flat_len: usize = dims[1..].iter().product();
        let target = if op == "Reshape" {
            let shape = match Self::const_in(ins, 1, a, "shape")? {
                Some(c) => c.to_i64(&a.ctx)?,
                None => a.ints("shape").ok_or_else(|| a.err("no target shape"))?,
            };
            reshape_dims(a, &dims, &shape, a.int("allowzero", 0) != 0)?
        } else {
            let consts = constants(ins);
            let axes = axes_of(a, &consts, 1)?.unwrap_or_else(|| vec![2, 3]);
            let axes = axes
                .iter()
                .map(|&x| axis(a, x, dims.len()))
                .collect::<Result<Vec<_>>>()?;
            if axes.iter().any(|&x| x == 0 || dims[x] != 1) {
                return Err(a.err(format!("cannot squeeze axes {axes:?} of {dims:?}")));
            }
            (0..dims.len())
                .filter(|i| !axes.contains(i))
                .map(|i| dims[i])
                .collect()
        };
        if target.len() == 2 && target[1] == flat_len {
            return Ok(Value::Dyn { src, flat: true });
        }
        if target[1..] == dims[1..] {
            return Ok(Value::Dyn {
                src,
                flat: dims.len() == 2,
            });
        }
        Err(a.err(format!(
            "{op} from {dims:?} to {target:?} changes the layout; only flattening [N, C, H, W] to [N, C*H*W] is supported"
        )))
    }

    fn arith(&mut self, op: &str, a: &Attrs, nname: &str, ins: &[Option<Value>]) -> Result<Value> {
        let (x, y) = match (
            ins.first().cloned().flatten(),
            ins.get(1).cloned().flatten(),
        ) {
            (Some(x), Some(y)) => (x, y),
            _ => return Err(a.err("needs two inputs")),
        };
        // The normalisation prefix: (x - m) / s in any order of Sub/Div/Add/Mul by constants.
        if let (Value::Input { mean, std }, Value::Const(c)) = (&x, &y) {
            let ch = self.net.input[0];
            let k = c.per_channel(ch, 4).ok_or_else(|| {
                a.err(format!(
                    "{op} of the input by a constant of shape {} that is not one value per channel",
                    dims_str(&c.dims)
                ))
            })?;
            let (mut mean, mut std) = (mean.clone(), std.clone());
            for i in 0..ch {
                match op {
                    "Sub" => mean[i] += k[i] * std[i],
                    "Add" => mean[i] -= k[i] * std[i],
                    "Div" => std[i] *= k[i],
                    _ => std[i] /= k[i],
                }
            }
            if mean.iter().chain(&std).any(|v| !v.is_finite()) || std.contains(&0.0) {
                return Err(a.err("input normalisation with a zero or non-finite factor"));
            }
            return Ok(Value::Input { mean, std });
        }
        match (op, &x, &y) {
            ("Add", Value::Const(_), Value::Const(_)) => unreachable!("folded"),
            ("Add", Value::Const(c), d) | ("Add", d, Value::Const(c))
                if !matches!(d, Value::Input { .. }) =>
            {
                self.absorb_bias(c, d, a)
            }
            ("Add", _, _) => {
                let (sx, sy) = (self.src(&x, a)?, self.src(&y, a)?);
                let name = self.name_for(nname, op, None, false);
                Ok(self.layer(name, Op::Add, vec![sx, sy], a))
            }
            _ => Err(a.err(format!(
                "{op} is supported only in the input normalisation prefix ((x - mean) / std by constants) \
                 and Add between two computed tensors or as a bias"
            ))),
        }
    }

    /// `Add(layer, const)` right after a bias-free conv / linear (MatMul + Add exports): the
    /// constant becomes that layer's bias.
    fn absorb_bias(&mut self, c: &Const, d: &Value, a: &Attrs) -> Result<Value> {
        let fail = || {
            a.err("adds a constant to a computed tensor; only a bias right after a bias-free Conv/Gemm/MatMul is supported")
        };
        let Value::Dyn { src: Some(i), flat } = d else {
            return Err(fail());
        };
        let (i, flat) = (*i, *flat);
        if i + 1 != self.net.layers.len() {
            return Err(fail());
        }
        let name = self.net.layers[i].name.clone();
        let (n, rank) = match &mut self.net.layers[i].op {
            Op::Conv { out_c, bias, .. } if !*bias => (*out_c, 4),
            Op::Linear { out_f, bias, .. } if !*bias => (*out_f, 2),
            _ => return Err(fail()),
        };
        let v = c.per_channel(n, rank).ok_or_else(|| {
            a.err(format!(
                "bias of shape {} does not match {n} channels",
                dims_str(&c.dims)
            ))
        })?;
        match &mut self.net.layers[i].op {
            Op::Conv { bias, .. } | Op::Linear { bias, .. } => *bias = true,
            _ => unreachable!("checked above"),
        }
        self.param(format!("{name}.bias"), &[n], v);
        Ok(Value::Dyn { src: Some(i), flat })
    }
}

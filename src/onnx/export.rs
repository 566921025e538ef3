//! Export of a variant with its weights as ONNX (float variants, for onnxruntime) or QONNX
//! (binarized variants, for the `qonnx` executor and FINN).
//!
//! Conventions the written graph fixes:
//! - One input `input`, `[N, C, H, W]` float, **unit-scale images** ([0,1]): the network's
//!   per-channel normalisation is the first two nodes (`Sub` mean, `Div` std, constants
//!   `[1, C, 1, 1]`), exactly the executor's `(x - mean) / std`. One output `logits`,
//!   `[N, classes]`. ONNX files have a symbolic batch (`N`); QONNX files a batch of 1, since the
//!   `qonnx` executor and FINN's flow need every tensor shape fixed (every intermediate tensor
//!   gets a `value_info` with its shape for the same reason).
//! - Default-domain opset [`OPSET`] (Clip, Pad, Slice and Unsqueeze take their bounds as inputs),
//!   IR version [`IR_VERSION`]; QONNX adds the domain [`QONNX_DOMAIN`] version 1.
//! - Initializers keep the parameter names of the weight file (`layer1.0.conv1.weight`, ...);
//!   node outputs are named after the layer that computes them (`layer1.0.conv1`), helper
//!   tensors `{layer}/{what}`.
//! - Layers map one to one: conv -> `Conv`, eval-mode batch-norm -> `BatchNormalization`
//!   (epsilon [`BN_EPS`]), relu -> `Relu`, hardtanh -> `Clip(-1, 1)`, add -> a chain of `Add` in
//!   input order, option-A shortcut -> `Slice` (step = stride) + `Pad` (zero channels), pools ->
//!   `MaxPool` / `AveragePool` (`count_include_pad = 1`) / `GlobalAveragePool`, linear ->
//!   `Flatten` + `Gemm` (`transB = 1`) and `Unsqueeze` back to `[N, F, 1, 1]` unless it is the
//!   last layer.
//! - Binarized layers ([`BinScheme`]), QONNX only, as the executor computes them:
//!   XNOR: `Conv(BipolarQuant(x, 1), BipolarQuant(W, alpha))` with the latent weight `W` and
//!   `alpha` of shape `[O, 1, 1, 1]` (`[O, 1]` for linear). `BipolarQuant(v, s) = s * (v >= 0 ?
//!   1 : -1)`, i.e. sign(0) = +1 as in the engine.
//!   ABC (sum of bases): activation base `j` is `BipolarQuant((x + v_j) - 0.5, beta_j)`, which
//!   equals `beta_j * H(x + v_j)` (`H(y) = +1` iff `y >= 0.5`; subtracting 0.5 is exact around
//!   the threshold, so no decision changes); weight base `i` is `BipolarQuant(B_i, alpha_i)`
//!   with the +/-1 base itself as the initializer (`{layer}.weight.base{i}`): the bases are
//!   cut from the whole tensor's mean and std, which no QONNX op expresses. The layer output is
//!   the sum over (i, j) of `Conv(a_j, w_i)` in the executor's order, then the bias.
//!   Plain ONNX has no binarization op (its `Sign` maps 0 to 0), so `--format onnx` refuses a
//!   binarized variant.
//! - Results equal the engine's up to float rounding: onnxruntime sums products in another
//!   order and multiplies by alpha before summing, where the engine sums +/-1 exactly and scales
//!   after. A binarized layer's input that lies within that rounding of its threshold can take
//!   the other sign.

// clap renders this module's `///` comments as `--help` text, where brackets are literal
// (`[0,1]`, `[required]`), so rustdoc's link check does not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use crate::engine::exec::{BinWeights, Net, BN_EPS};
use crate::engine::params::BinScheme;
use crate::model::Op;
use crate::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use crate::{Error, Result};

/// Default-domain opset of every exported file.
pub const OPSET: i64 = 13;
/// ONNX IR version of every exported file (the one that goes with opset 13).
pub const IR_VERSION: i64 = 7;
/// Domain of the `BipolarQuant` nodes (the `qonnx` package's general custom ops).
pub const QONNX_DOMAIN: &str = "qonnx.custom_op.general";

/// Which kind of file to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Standard ONNX (float variants; symbolic batch).
    Onnx,
    /// QONNX: ONNX plus `BipolarQuant` for binarized layers (batch 1).
    Qonnx,
}

/// What was written, for the command's report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportSummary {
    pub format: ExportFormat,
    pub opset: i64,
    pub nodes: usize,
    pub bipolar_quant_nodes: usize,
    pub initializers: usize,
    /// `[N, C, H, W]`, `N` symbolic (`null`) for ONNX.
    pub batch: Option<usize>,
    pub input: [usize; 3],
    pub classes: usize,
}

/// Shape of a tensor without its batch axis.
type Shape = Vec<usize>;

/// The graph under construction: nodes in topological order, initializers and the value info
/// of every node output.
struct Builder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    infos: Vec<ValueInfoProto>,
    /// Fixed batch (QONNX) or symbolic `N` (ONNX).
    batch: Option<usize>,
    bipolar: usize,
}

/// An attribute of type `kind`; `set` fills in its value field.
fn attr(name: &str, kind: AttributeType, set: impl FnOnce(&mut AttributeProto)) -> AttributeProto {
    let mut a = AttributeProto {
        name: Some(name.into()),
        r#type: Some(kind as i32),
        ..Default::default()
    };
    set(&mut a);
    a
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    attr(name, AttributeType::Ints, |a| a.ints = v.to_vec())
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    attr(name, AttributeType::Int, |a| a.i = Some(v))
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    attr(name, AttributeType::Float, |a| a.f = Some(v))
}

fn value_info(name: &str, dims: Vec<dimension::Value>) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|v| Dimension {
                            value: Some(v),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn entry(key: &str, value: impl Into<String>) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.into()),
        value: Some(value.into()),
    }
}

fn i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&d| d as i64).collect()
}

impl Builder {
    fn dims(&self, shape: &[usize]) -> Vec<dimension::Value> {
        let n = match self.batch {
            Some(b) => dimension::Value::DimValue(b as i64),
            None => dimension::Value::DimParam("N".into()),
        };
        std::iter::once(n)
            .chain(shape.iter().map(|&d| dimension::Value::DimValue(d as i64)))
            .collect()
    }

    /// A float initializer (little-endian raw data); returns its name.
    fn init(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        self.inits.push(TensorProto {
            name: Some(name.into()),
            dims: i64s(dims),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name.into()
    }

    /// An int64 initializer (shape operands of Pad / Slice / Unsqueeze).
    fn init_i64(&mut self, name: &str, data: &[i64]) -> String {
        self.inits.push(TensorProto {
            name: Some(name.into()),
            dims: vec![data.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name.into()
    }

    /// A float scalar constant shared by every node that needs it.
    fn scalar(&mut self, name: &str, v: f32) -> String {
        if !self.inits.iter().any(|t| t.name.as_deref() == Some(name)) {
            self.init(name, &[], &[v]);
        }
        name.into()
    }

    /// Appends a node with one output `out` of shape `shape` (batch axis excluded).
    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        out: &str,
        shape: &[usize],
        attrs: Vec<AttributeProto>,
    ) -> String {
        let qonnx = op == "BipolarQuant";
        self.bipolar += usize::from(qonnx);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            name: Some(out.into()),
            op_type: Some(op.into()),
            domain: qonnx.then(|| QONNX_DOMAIN.into()),
            attribute: attrs,
            ..Default::default()
        });
        let dims = self.dims(shape);
        self.infos.push(value_info(out, dims));
        out.into()
    }

    /// `BipolarQuant` of a constant (weights): its output has the constant's shape, no batch.
    fn quant_weight(&mut self, w: &str, scale: &str, out: &str, shape: &[usize]) -> String {
        self.bipolar += 1;
        self.nodes.push(NodeProto {
            input: vec![w.into(), scale.into()],
            output: vec![out.into()],
            name: Some(out.into()),
            op_type: Some("BipolarQuant".into()),
            domain: Some(QONNX_DOMAIN.into()),
            ..Default::default()
        });
        let dims = shape
            .iter()
            .map(|&d| dimension::Value::DimValue(d as i64))
            .collect();
        self.infos.push(value_info(out, dims));
        out.into()
    }
}

fn param(net: &Net, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let t = net
        .params
        .get(name)
        .ok_or_else(|| Error::input("parameters", format!("missing tensor {name:?}")))?;
    Ok((t.shape().to_vec(), t.iter().copied().collect()))
}

/// A weight-file tensor as an initializer under its own name.
fn param_init(b: &mut Builder, net: &Net, name: &str) -> Result<String> {
    let (shape, data) = param(net, name)?;
    Ok(b.init(name, &shape, &data))
}

/// Geometry of a conv or linear layer.
struct Geometry {
    /// `Some((kernel, stride, padding))` for conv, `None` for linear.
    conv: Option<(usize, usize, usize)>,
    bias: bool,
}

impl Geometry {
    fn attrs(&self) -> Vec<AttributeProto> {
        match self.conv {
            Some((k, s, p)) => vec![
                attr_ints("kernel_shape", &[k as i64, k as i64]),
                attr_ints("strides", &[s as i64, s as i64]),
                attr_ints("pads", &[p as i64; 4]),
            ],
            None => vec![attr_int("transB", 1)],
        }
    }

    fn op(&self) -> &'static str {
        if self.conv.is_some() {
            "Conv"
        } else {
            "Gemm"
        }
    }
}

/// One full-precision conv / linear layer: `Conv` or `Gemm` on `x` with the layer's weight and
/// bias as initializers.
fn full_precision(
    b: &mut Builder,
    net: &Net,
    name: &str,
    x: &str,
    g: &Geometry,
    out: &str,
    shape: &[usize],
) -> Result<String> {
    let wt = param_init(b, net, &format!("{name}.weight"))?;
    let bias = if g.bias {
        Some(param_init(b, net, &format!("{name}.bias"))?)
    } else {
        None
    };
    let inputs: Vec<&str> = [Some(x), Some(wt.as_str()), bias.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    Ok(b.node(g.op(), &inputs, out, shape, g.attrs()))
}

/// One binarized conv / linear layer (see the module doc); `x` is its (flattened for linear)
/// input, `out` the name and `shape` the shape of its output.
#[allow(clippy::too_many_arguments)]
fn binarized(
    b: &mut Builder,
    net: &Net,
    name: &str,
    x: &str,
    in_shape: &[usize],
    bw: &BinWeights,
    g: &Geometry,
    out: &str,
    shape: &[usize],
) -> Result<String> {
    let (wshape, wdata) = param(net, &format!("{name}.weight"))?;
    let o = wshape[0];
    // Scale shape broadcasting over one output filter: [O, 1, 1, 1] or [O, 1].
    let scale_shape: Vec<usize> = std::iter::once(o)
        .chain(std::iter::repeat_n(1, wshape.len() - 1))
        .collect();
    let acts: Vec<String> = match bw.scheme {
        BinScheme::Xnor => {
            let one = b.scalar("const/one", 1.0);
            vec![b.node(
                "BipolarQuant",
                &[x, &one],
                &format!("{name}/act"),
                in_shape,
                vec![],
            )]
        }
        BinScheme::Abc { .. } => {
            let half = b.scalar("const/half", 0.5);
            let mut acts = Vec::new();
            for (j, (&v, &beta)) in bw.act.shifts.iter().zip(&bw.act.betas).enumerate() {
                let vj = b.init(&format!("{name}.act_shift.{j}"), &[], &[v]);
                let bj = b.init(&format!("{name}.act_scale.{j}"), &[], &[beta]);
                let t = b.node(
                    "Add",
                    &[x, &vj],
                    &format!("{name}/shift{j}"),
                    in_shape,
                    vec![],
                );
                let u = b.node(
                    "Sub",
                    &[&t, &half],
                    &format!("{name}/centered{j}"),
                    in_shape,
                    vec![],
                );
                acts.push(b.node(
                    "BipolarQuant",
                    &[&u, &bj],
                    &format!("{name}/act{j}"),
                    in_shape,
                    vec![],
                ));
            }
            acts
        }
    };
    let weights: Vec<String> = match bw.scheme {
        BinScheme::Xnor => {
            let w = b.init(&format!("{name}.weight"), &wshape, &wdata);
            let a = b.init(&format!("{name}.weight.alpha"), &scale_shape, &bw.alphas[0]);
            vec![b.quant_weight(&w, &a, &format!("{name}/weight_q"), &wshape)]
        }
        BinScheme::Abc { .. } => {
            let mut ws = Vec::new();
            for (i, (base, alphas)) in bw.bases.iter().zip(&bw.alphas).enumerate() {
                // ABC alphas are per tensor (the same value for every output channel).
                let data: Vec<f32> = base.iter().copied().collect();
                if data.len() != wdata.len() {
                    return Err(Error::internal(
                        name,
                        "binarized base and weight differ in size",
                    ));
                }
                let w = b.init(&format!("{name}.weight.base{i}"), &wshape, &data);
                let a = b.init(&format!("{name}.weight.alpha{i}"), &[], &alphas[..1]);
                ws.push(b.quant_weight(&w, &a, &format!("{name}/weight_q{i}"), &wshape));
            }
            ws
        }
    };
    let single = weights.len() == 1 && acts.len() == 1;
    let bias = if g.bias {
        Some(param_init(b, net, &format!("{name}.bias"))?)
    } else {
        None
    };
    if single {
        let mut inputs = vec![acts[0].as_str(), weights[0].as_str()];
        if let Some(bias) = &bias {
            inputs.push(bias);
        }
        return Ok(b.node(g.op(), &inputs, out, shape, g.attrs()));
    }
    // Sum of the M x N base pairs in the executor's order (i outer, j inner), then the bias.
    let mut acc: Option<String> = None;
    for (i, w) in weights.iter().enumerate() {
        for (j, a) in acts.iter().enumerate() {
            let s = b.node(
                g.op(),
                &[a, w],
                &format!("{name}/pair{i}_{j}"),
                shape,
                g.attrs(),
            );
            acc = Some(match acc {
                None => s,
                Some(prev) => b.node(
                    "Add",
                    &[&prev, &s],
                    &format!("{name}/sum{i}_{j}"),
                    shape,
                    vec![],
                ),
            });
        }
    }
    let acc = acc.expect("at least one base pair");
    Ok(match bias {
        None => b.node("Identity", &[&acc], out, shape, vec![]),
        Some(bias) => {
            // Gemm output is [N, O]; conv output needs the bias as [O, 1, 1].
            let bname = if g.conv.is_some() {
                let (_, data) = param(net, &format!("{name}.bias"))?;
                b.init(&format!("{name}.bias.chw"), &[o, 1, 1], &data)
            } else {
                bias
            };
            b.node("Add", &[&acc, &bname], out, shape, vec![])
        }
    })
}

/// Builds the ONNX / QONNX model of `net` (see the module doc for the conventions).
pub fn export(net: &Net, format: ExportFormat) -> Result<(ModelProto, ExportSummary)> {
    let cn = &net.cn;
    let network = &cn.network;
    let bws = net.binarize(false)?;
    if format == ExportFormat::Onnx {
        if let Some(i) = bws.iter().position(Option::is_some) {
            return Err(Error::input(
                "--format",
                format!(
                    "onnx cannot express the binarized layer {:?} of variant {} (plain ONNX has \
                     no sign with sign(0) = +1); use --format qonnx, which writes BipolarQuant \
                     nodes",
                    network.layers[i].name,
                    cn.spec.label()
                ),
            ));
        }
    }
    let mut b = Builder {
        nodes: Vec::new(),
        inits: Vec::new(),
        infos: Vec::new(),
        batch: (format == ExportFormat::Qonnx).then_some(1),
        bipolar: 0,
    };
    let [c, h, w] = network.input;
    let norm = &network.normalization;
    let mean = b.init("normalization.mean", &[1, c, 1, 1], &norm.mean);
    let std = b.init("normalization.std", &[1, c, 1, 1], &norm.std);
    let centered = b.node(
        "Sub",
        &["input", &mean],
        "input/centered",
        &[c, h, w],
        vec![],
    );
    let x0 = b.node(
        "Div",
        &[&centered, &std],
        "input/normalized",
        &[c, h, w],
        vec![],
    );

    let nl = network.layers.len();
    // Name and shape (without batch) of each layer's output tensor.
    let mut outs: Vec<(String, Shape)> = Vec::with_capacity(nl);
    for (i, layer) in network.layers.iter().enumerate() {
        let name = layer.name.as_str();
        let src = |slot: usize| -> (String, Shape) {
            match layer.inputs.get(slot) {
                Some(&j) => outs[j].clone(),
                None => (x0.clone(), vec![c, h, w]),
            }
        };
        let (x, xs) = src(0);
        let shape: Shape = layer.out_shape.to_vec();
        let last = i + 1 == nl;
        let out = match &layer.op {
            Op::Conv {
                kernel,
                stride,
                padding,
                bias,
                ..
            } => {
                let g = Geometry {
                    conv: Some((*kernel, *stride, *padding)),
                    bias: *bias,
                };
                match &bws[i] {
                    Some(bw) => binarized(&mut b, net, name, &x, &xs, bw, &g, name, &shape)?,
                    None => full_precision(&mut b, net, name, &x, &g, name, &shape)?,
                }
            }
            Op::Linear { out_f, bias, .. } => {
                let flat_len: usize = xs.iter().product();
                let flat = b.node(
                    "Flatten",
                    &[&x],
                    &format!("{name}/flat"),
                    &[flat_len],
                    vec![attr_int("axis", 1)],
                );
                let g = Geometry {
                    conv: None,
                    bias: *bias,
                };
                let gemm_out = if last {
                    "logits".to_string()
                } else {
                    format!("{name}/gemm")
                };
                let y = match &bws[i] {
                    Some(bw) => binarized(
                        &mut b,
                        net,
                        name,
                        &flat,
                        &[flat_len],
                        bw,
                        &g,
                        &gemm_out,
                        &[*out_f],
                    )?,
                    None => full_precision(&mut b, net, name, &flat, &g, &gemm_out, &[*out_f])?,
                };
                if last {
                    outs.push((y, vec![*out_f]));
                    continue;
                }
                let axes = b.init_i64(&format!("{name}/axes"), &[2, 3]);
                b.node("Unsqueeze", &[&y, &axes], name, &shape, vec![])
            }
            Op::BatchNorm { .. } => {
                let names: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .map(|s| param_init(&mut b, net, &format!("{name}.{s}")))
                    .collect::<Result<_>>()?;
                let mut inputs = vec![x.as_str()];
                inputs.extend(names.iter().map(String::as_str));
                b.node(
                    "BatchNormalization",
                    &inputs,
                    name,
                    &shape,
                    vec![attr_float("epsilon", BN_EPS)],
                )
            }
            Op::Relu => b.node("Relu", &[&x], name, &shape, vec![]),
            Op::Hardtanh => {
                let lo = b.scalar("const/minus_one", -1.0);
                let hi = b.scalar("const/one", 1.0);
                b.node("Clip", &[&x, &lo, &hi], name, &shape, vec![])
            }
            Op::Add => {
                let mut acc = x;
                let n_in = layer.inputs.len();
                for s in 1..n_in {
                    let (other, _) = src(s);
                    let target = if s + 1 == n_in {
                        name.to_string()
                    } else {
                        format!("{name}/partial{s}")
                    };
                    acc = b.node("Add", &[&acc, &other], &target, &shape, vec![]);
                }
                acc
            }
            Op::ShortcutA { out_c, stride } => {
                let pad = crate::engine::ops::shortcut::pad_channels(xs[0], *out_c, *stride)?;
                let sub = if *stride == 1 {
                    x
                } else {
                    let st = b.init_i64(&format!("{name}/starts"), &[0, 0]);
                    let en = b.init_i64(&format!("{name}/ends"), &[i64::MAX, i64::MAX]);
                    let ax = b.init_i64(&format!("{name}/axes"), &[2, 3]);
                    let sp = b.init_i64(&format!("{name}/steps"), &[*stride as i64; 2]);
                    b.node(
                        "Slice",
                        &[&x, &st, &en, &ax, &sp],
                        &format!("{name}/subsample"),
                        &[xs[0], shape[1], shape[2]],
                        vec![],
                    )
                };
                let p = pad as i64;
                let pads = b.init_i64(&format!("{name}/pads"), &[0, p, 0, 0, 0, p, 0, 0]);
                b.node("Pad", &[&sub, &pads], name, &shape, vec![])
            }
            Op::MaxPool {
                kernel,
                stride,
                padding,
            }
            | Op::AvgPool {
                kernel,
                stride,
                padding,
            } => {
                let max = matches!(layer.op, Op::MaxPool { .. });
                let mut attrs = vec![
                    attr_ints("kernel_shape", &[*kernel as i64; 2]),
                    attr_ints("strides", &[*stride as i64; 2]),
                    attr_ints("pads", &[*padding as i64; 4]),
                ];
                if !max {
                    attrs.push(attr_int("count_include_pad", 1));
                }
                let op = if max { "MaxPool" } else { "AveragePool" };
                b.node(op, &[&x], name, &shape, attrs)
            }
            Op::GlobalAvgPool => b.node("GlobalAveragePool", &[&x], name, &shape, vec![]),
        };
        outs.push((out, shape));
    }
    let (last, last_shape) = outs.last().cloned().expect("a network has layers");
    let classes = network.num_classes;
    if last != "logits" {
        if last_shape.iter().product::<usize>() != classes {
            return Err(Error::input(
                &network.layers[nl - 1].name,
                format!("the last layer's output {last_shape:?} is not {classes} logits"),
            ));
        }
        b.node(
            "Flatten",
            &[&last],
            "logits",
            &[classes],
            vec![attr_int("axis", 1)],
        );
    }
    // The graph output's value info is its own entry, not a value_info one.
    let out_info = b.infos.pop().expect("logits has value info");
    let input_info = value_info("input", b.dims(&[c, h, w]));
    let summary = ExportSummary {
        format,
        opset: OPSET,
        nodes: b.nodes.len(),
        bipolar_quant_nodes: b.bipolar,
        initializers: b.inits.len(),
        batch: b.batch,
        input: network.input,
        classes,
    };
    let mut opset_import = vec![OperatorSetIdProto {
        domain: Some(String::new()),
        version: Some(OPSET),
    }];
    if format == ExportFormat::Qonnx {
        opset_import.push(OperatorSetIdProto {
            domain: Some(QONNX_DOMAIN.into()),
            version: Some(1),
        });
    }
    let spec = serde_json::to_string(&cn.spec)
        .map_err(|e| Error::internal("export", format!("variant does not serialise: {e}")))?;
    let model = ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import,
        producer_name: Some("bbed".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "{} variant {}: input = unit-scale images [0,1] (normalisation inside: Sub mean, \
             Div std), output = logits",
            network.name,
            cn.spec.label()
        )),
        graph: Some(GraphProto {
            node: b.nodes,
            name: Some(network.name.clone()),
            initializer: b.inits,
            input: vec![input_info],
            output: vec![out_info],
            value_info: b.infos,
            ..Default::default()
        }),
        metadata_props: vec![
            entry("bbed.model", network.name.clone()),
            entry("bbed.variant", spec),
            entry(
                "bbed.input",
                "unit-scale images [0,1]; normalisation inside the graph",
            ),
        ],
        ..Default::default()
    };
    Ok((model, summary))
}

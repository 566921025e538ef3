//! The layers with windows and weights, as [`Builder`] methods: Conv, Gemm / MatMul (with
//! QONNX binarization of weights and inputs, see [`super::qonnx`]), BatchNormalization, pools,
//! and the option-A shortcut (a step-`s` `Slice` completed by a channel `Pad`). Conventions are
//! those of [`crate::model`]: square kernels, equal strides, the same zero padding on every side.

use super::fold::{axis, slice_indices, SliceSpec};
use super::graph::{constants, dims_str, Builder, Value};
use super::qonnx::{self, BinWeight};
use super::tensor::{Attrs, Const};
use crate::model::Op;
use crate::Result;

impl Builder {
    /// Square kernel, equal strides, symmetric padding of a conv / pool node.
    pub(super) fn window(
        &self,
        a: &Attrs,
        kernel: Option<[usize; 2]>,
    ) -> Result<(usize, usize, usize)> {
        let pad_mode = a.string("auto_pad").unwrap_or_default();
        if !matches!(pad_mode.as_str(), "" | "NOTSET" | "VALID") {
            return Err(a.err(format!(
                "auto_pad {pad_mode} is not supported (export with explicit pads)"
            )));
        }
        if a.ints("dilations")
            .is_some_and(|d| d.iter().any(|&x| x != 1))
        {
            return Err(a.err("dilated windows are not supported"));
        }
        let k = match (a.ints("kernel_shape"), kernel) {
            (Some(ks), w) => {
                if ks.len() != 2
                    || ks[0] != ks[1]
                    || ks[0] < 1
                    || w.is_some_and(|w| w != [ks[0] as usize; 2])
                {
                    return Err(a.err(format!("kernel_shape {ks:?}: only square 2-D kernels matching the weight are supported")));
                }
                ks[0] as usize
            }
            (None, Some(w)) => w[0],
            (None, None) => return Err(a.err("no kernel_shape")),
        };
        let s = a.ints("strides").unwrap_or_else(|| vec![1, 1]);
        if s.len() != 2 || s[0] != s[1] || s[0] < 1 {
            return Err(a.err(format!(
                "strides {s:?}: only equal strides on H and W are supported"
            )));
        }
        let p = a.ints("pads").unwrap_or_else(|| vec![0; 4]);
        if p.len() != 4 || p.iter().any(|&x| x != p[0]) || p[0] < 0 {
            return Err(a.err(format!(
                "pads {p:?}: only the same padding on every side is supported"
            )));
        }
        Ok((k, s[0] as usize, p[0] as usize))
    }

    pub(super) fn conv(&mut self, a: &Attrs, nname: &str, ins: &[Option<Value>]) -> Result<Value> {
        if a.int("group", 1) != 1 {
            return Err(a.err("grouped / depthwise convolution is not supported"));
        }
        let (src, w) = self.quantized_operands(ins, a)?;
        if w.dims.len() != 4 || w.dims[2] != w.dims[3] {
            return Err(a.err(format!(
                "weight of shape {} is not [O, C, K, K]",
                dims_str(&w.dims)
            )));
        }
        let (o, c, k) = (w.dims[0], w.dims[1], w.dims[2]);
        let (kk, stride, padding) = self.window(a, Some([k, k]))?;
        debug_assert_eq!(kk, k);
        let bias = Self::const_in(ins, 2, a, "bias")?.cloned();
        let name = self.name_for(nname, "conv", w.name.as_deref(), true);
        let op = Op::Conv {
            in_c: c,
            out_c: o,
            kernel: k,
            stride,
            padding,
            bias: bias.is_some(),
        };
        self.weighted(name, op, src, w, bias, o, a)
    }

    pub(super) fn linear(
        &mut self,
        op: &str,
        a: &Attrs,
        nname: &str,
        ins: &[Option<Value>],
    ) -> Result<Value> {
        if op == "Gemm" && a.int("transA", 0) != 0 {
            return Err(a.err("Gemm with transA = 1 is not supported"));
        }
        if let Some(Value::Dyn { flat: false, src }) = ins.first().cloned().flatten() {
            let s = self.shape(src)?;
            if s[1] * s[2] != 1 || op == "MatMul" {
                return Err(a.err(format!(
                    "{op} on a [C, H, W] = {s:?} tensor: flatten it first (Flatten / Reshape)"
                )));
            }
        }
        let (src, mut w) = self.quantized_operands(ins, a)?;
        if w.dims.len() != 2 {
            return Err(a.err(format!("weight of shape {} is not 2-D", dims_str(&w.dims))));
        }
        // Our linear weight is [out, in] (PyTorch): Gemm transB = 1 stores it so, MatMul / transB = 0 as [in, out].
        let trans = op == "Gemm" && a.int("transB", 0) != 0;
        if !trans {
            w = w.transposed();
        }
        let (alpha, beta) = if op == "Gemm" {
            (
                a.float("alpha").unwrap_or(1.0),
                a.float("beta").unwrap_or(1.0),
            )
        } else {
            (1.0, 1.0)
        };
        if alpha != 1.0 {
            w = w.scaled(alpha);
        }
        let (o, i) = (w.dims[0], w.dims[1]);
        let bias = match Self::const_in(ins, 2, a, "bias")? {
            Some(c) if op == "Gemm" => {
                let v = c.along(1, o, 2).ok_or_else(|| {
                    a.err(format!(
                        "bias C of shape {} does not broadcast per output feature",
                        dims_str(&c.dims)
                    ))
                })?;
                Some(Const::f32(vec![o], v.iter().map(|x| x * beta).collect()))
            }
            _ => None,
        };
        let name = self.name_for(nname, "linear", w.name.as_deref(), true);
        let op = Op::Linear {
            in_f: i,
            out_f: o,
            bias: bias.is_some(),
        };
        let v = self.weighted(name, op, src, w, bias, o, a)?;
        Ok(match v {
            Value::Dyn { src, .. } => Value::Dyn { src, flat: true },
            other => other,
        })
    }

    /// Data source and weight of a Conv / Gemm / MatMul, with QONNX binarization recognised:
    /// the weight may be a constant or a binarized constant, the input a binarized activation.
    pub(super) fn quantized_operands(
        &mut self,
        ins: &[Option<Value>],
        a: &Attrs,
    ) -> Result<(Option<usize>, WeightIn)> {
        let x = ins
            .first()
            .cloned()
            .flatten()
            .ok_or_else(|| a.err("input 0 is missing"))?;
        let (src, act) = match x {
            Value::ActQuant { src, scale } => (src, Some(scale)),
            other => (self.src(&other, a)?, None),
        };
        let w = match ins.get(1).cloned().flatten() {
            Some(Value::Const(c)) => WeightIn::plain(c, a.input_name(1)),
            Some(Value::WeightQuant(b)) => WeightIn::binary(b),
            Some(_) => return Err(a.err("weight (input 1) must be an initializer (or a BipolarQuant of one), not a computed tensor")),
            None => return Err(a.err("weight (input 1) is missing")),
        };
        let w = match (act, w.bin.is_some()) {
            (Some(s), true) => w.with_act_scale(s),
            (None, _) => w.fold_binary(a)?,
            (Some(_), false) => {
                return Err(a.err(
                    "binarized activations but full-precision weights: not an XNOR layer (binarize the weights with BipolarQuant too)",
                ))
            }
        };
        Ok((src, w))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn weighted(
        &mut self,
        name: String,
        op: Op,
        src: Option<usize>,
        w: WeightIn,
        bias: Option<Const>,
        o: usize,
        a: &Attrs,
    ) -> Result<Value> {
        if let Some(b) = &bias {
            if b.len() != o {
                return Err(a.err(format!("bias has {} values for {o} outputs", b.len())));
            }
        }
        let wdims = w.dims.clone();
        let latent = match &w.bin {
            Some(bw) => {
                self.binarized.push(name.clone());
                qonnx::latent_weights(bw, &wdims, a)?
            }
            None => w.values.clone(),
        };
        self.param(format!("{name}.weight"), &wdims, latent);
        if let Some(b) = bias {
            self.param(format!("{name}.bias"), &[o], b.to_f32());
        }
        Ok(self.layer(name, op, vec![src], a))
    }

    pub(super) fn batch_norm(
        &mut self,
        a: &Attrs,
        nname: &str,
        ins: &[Option<Value>],
    ) -> Result<Value> {
        if a.int("training_mode", 0) != 0 {
            return Err(a.err("BatchNormalization in training mode: export the model in eval mode"));
        }
        let src = self.dyn_in(ins, 0, a)?;
        let c = self.shape(src)?[0];
        let mut p = Vec::new();
        for (i, what) in ["scale", "B", "input_mean", "input_var"].iter().enumerate() {
            let t = Self::const_in(ins, i + 1, a, what)?
                .ok_or_else(|| a.err(format!("{what} (input {}) is missing", i + 1)))?;
            if t.len() != c {
                return Err(a.err(format!("{what} has {} values for {c} channels", t.len())));
            }
            p.push(t.to_f32());
        }
        // Our engine uses eps = BN_EPS; fold a different epsilon into the variance.
        let eps = a.float("epsilon").unwrap_or(1e-5) as f64;
        let d = eps - crate::engine::exec::BN_EPS as f64;
        if d != 0.0 {
            p[3] = p[3].iter().map(|&v| (v as f64 + d) as f32).collect();
        }
        let weight_name = a.input_name(1);
        let name = self.name_for(nname, "bn", weight_name.as_deref(), true);
        for (k, v) in ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .zip(p)
        {
            self.param(format!("{name}.{k}"), &[c], v);
        }
        Ok(self.layer(name, Op::BatchNorm { channels: c }, vec![src], a))
    }

    pub(super) fn pool(
        &mut self,
        op: &str,
        a: &Attrs,
        nname: &str,
        ins: &[Option<Value>],
    ) -> Result<Value> {
        if a.int("ceil_mode", 0) != 0 {
            return Err(a.err("ceil_mode = 1 is not supported (our pools use floor)"));
        }
        if a.int("storage_order", 0) != 0 {
            return Err(a.err("storage_order = 1 is not supported"));
        }
        let (kernel, stride, padding) = self.window(a, None)?;
        if op == "AveragePool" && padding > 0 && a.int("count_include_pad", 0) == 0 {
            return Err(a.err(
                "AveragePool with padding and count_include_pad = 0: our average pool divides by k*k (count_include_pad = 1, PyTorch's default)",
            ));
        }
        let s = self.dyn_in(ins, 0, a)?;
        let name = self.name_for(nname, op, None, false);
        let kind = if op == "MaxPool" {
            Op::MaxPool {
                kernel,
                stride,
                padding,
            }
        } else {
            Op::AvgPool {
                kernel,
                stride,
                padding,
            }
        };
        Ok(self.layer(name, kind, vec![s], a))
    }

    pub(super) fn slice(&mut self, a: &Attrs, nname: &str, ins: &[Option<Value>]) -> Result<Value> {
        let v = ins
            .first()
            .cloned()
            .flatten()
            .ok_or_else(|| a.err("input 0 is missing"))?;
        let (mut stride, src, name) = match &v {
            Value::Strided { src, stride, name } => (*stride, *src, name.clone()),
            Value::Dyn { flat: true, .. } => {
                return Err(a.err("slicing a flattened tensor is not supported"))
            }
            other => ([1, 1], self.src(other, a)?, nname.to_string()),
        };
        let [c, h, w] = self.shape(src)?;
        let consts = constants(ins);
        let spec = SliceSpec::read(a, &consts, 4)?;
        // Current logical sizes (after earlier strided slices).
        let mut sizes = [1, c, h.div_ceil(stride[0]), w.div_ceil(stride[1])];
        for (&ax, &(s, e, k)) in spec.axes.iter().zip(&spec.bounds) {
            let kept = slice_indices(sizes[ax], s, e, k);
            let want_step = if ax >= 2 && k > 0 { k as usize } else { 1 };
            let expect: Vec<usize> = (0..sizes[ax]).step_by(want_step).collect();
            if ax == 0 && kept.len() == 1 && sizes[0] == 1 && k == 1 {
                continue;
            }
            if kept != expect {
                return Err(a.err(format!(
                    "Slice on axis {ax} (start {s}, end {e}, step {k}) is not a whole-axis subsampling; only x[:, :, ::s, ::s] (option-A shortcut) is supported"
                )));
            }
            if ax >= 2 {
                stride[ax - 2] *= want_step;
                sizes[ax] = kept.len();
            }
        }
        Ok(Value::Strided { src, stride, name })
    }

    pub(super) fn pad(&mut self, a: &Attrs, nname: &str, ins: &[Option<Value>]) -> Result<Value> {
        let mode = a.string("mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(a.err(format!(
                "Pad mode '{mode}': only constant (zero) padding is supported"
            )));
        }
        let pads = match Self::const_in(ins, 1, a, "pads")? {
            Some(c) => c.to_i64(&a.ctx)?,
            None => a.ints("pads").ok_or_else(|| a.err("no pads"))?,
        };
        let value = match Self::const_in(ins, 2, a, "constant_value")? {
            Some(c) => c.scalar().unwrap_or(f32::NAN),
            None => a.float("value").unwrap_or(0.0),
        };
        if value != 0.0 {
            return Err(a.err(format!("pad value {value}: only zero padding is supported")));
        }
        // Opset 18 `axes` names the padded axes; pads then hold begins/ends for those only.
        let axes: Vec<usize> = match Self::const_in(ins, 3, a, "axes")? {
            Some(c) => c
                .to_i64(&a.ctx)?
                .iter()
                .map(|&x| axis(a, x, 4))
                .collect::<Result<_>>()?,
            None => (0..4).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(a.err(format!("pads {pads:?} do not match a 4-D input")));
        }
        let mut full = [0i64; 8];
        for (j, &ax) in axes.iter().enumerate() {
            full[ax] = pads[j];
            full[ax + 4] = pads[j + axes.len()];
        }
        let p = full[1];
        if full.iter().enumerate().any(|(i, &x)| i % 4 != 1 && x != 0) || full[5] != p || p < 0 {
            return Err(a.err(format!(
                "pads {pads:?}: only equal zero padding of the channel axis (the option-A shortcut) is supported"
            )));
        }
        let v = ins
            .first()
            .cloned()
            .flatten()
            .ok_or_else(|| a.err("input 0 is missing"))?;
        let (src, stride, base) = match &v {
            Value::Strided { src, stride, name } => (*src, Self::square(stride, a)?, name.clone()),
            other => (self.src(other, a)?, 1, nname.to_string()),
        };
        let c = self.shape(src)?[0];
        let name = self.shortcut_name(&base);
        let out_c = c + 2 * p as usize;
        Ok(self.layer(name, Op::ShortcutA { out_c, stride }, vec![src], a))
    }
}

/// A Conv / linear weight as read: values in the file's layout, and the binarization if any.
pub struct WeightIn {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
    pub name: Option<String>,
    pub bin: Option<BinWeight>,
}

impl WeightIn {
    fn plain(c: Const, name: Option<String>) -> Self {
        WeightIn {
            dims: c.dims.clone(),
            values: c.to_f32(),
            name,
            bin: None,
        }
    }

    fn binary(b: BinWeight) -> Self {
        WeightIn {
            dims: b.dims.clone(),
            values: Vec::new(),
            name: b.name.clone(),
            bin: Some(b),
        }
    }

    /// A binarized weight without binarized inputs is a float layer with +/-scale weights.
    fn fold_binary(mut self, a: &Attrs) -> Result<Self> {
        if let Some(b) = self.bin.take() {
            self.values = b.values(a)?.to_f32();
        }
        Ok(self)
    }

    fn with_act_scale(mut self, s: f32) -> Self {
        if let Some(b) = &mut self.bin {
            b.act_scale = s;
        }
        self
    }

    fn transposed(self) -> Self {
        let (r, c) = (self.dims[0], self.dims[1]);
        let t = |v: &[f32]| {
            (0..r * c)
                .map(|k| v[(k % r) * c + k / r])
                .collect::<Vec<f32>>()
        };
        WeightIn {
            dims: vec![c, r],
            values: if self.values.is_empty() {
                Vec::new()
            } else {
                t(&self.values)
            },
            name: self.name,
            bin: self.bin.map(|b| b.transposed()),
        }
    }

    fn scaled(mut self, k: f32) -> Self {
        self.values.iter_mut().for_each(|v| *v *= k);
        if let Some(b) = &mut self.bin {
            b.act_scale *= k;
        }
        self
    }
}

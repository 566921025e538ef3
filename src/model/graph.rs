//! The layer-graph types ([`Network`], [`Layer`], [`Op`]), shape inference, parameter shapes
//! and MAC counts. Conventions are fixed in the parent module ([`crate::model`]).

use serde::{Deserialize, Serialize};

use super::geom::out_len;
use super::Normalization;
use crate::{Error, Result};

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// One layer operation. Channel counts written as 0 (`in_c`, `in_f`, `channels`) mean "fill in
/// from the producer" and are set by [`Network::infer`]; non-zero values are checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    Conv {
        #[serde(default)]
        in_c: usize,
        out_c: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default)]
        bias: bool,
    },
    BatchNorm {
        #[serde(default)]
        channels: usize,
    },
    Relu,
    Hardtanh,
    /// Element-wise sum of two or more equally shaped inputs.
    Add,
    /// Option-A parameter-free shortcut (see module doc).
    ShortcutA {
        out_c: usize,
        #[serde(default = "one")]
        stride: usize,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
        #[serde(default)]
        padding: usize,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
        #[serde(default)]
        padding: usize,
    },
    GlobalAvgPool,
    /// Fully connected layer on the flattened `[C, H, W]` input (`in_f = C*H*W`).
    Linear {
        #[serde(default)]
        in_f: usize,
        out_f: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
}

impl Op {
    /// Short lower-case kind name, as used in the TOML schema.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "conv",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Hardtanh => "hardtanh",
            Op::Add => "add",
            Op::ShortcutA { .. } => "shortcut_a",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Linear { .. } => "linear",
        }
    }

    /// True for layers with a weight tensor that compression acts on (conv, linear).
    pub fn is_weighted(&self) -> bool {
        matches!(self, Op::Conv { .. } | Op::Linear { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    pub op: Op,
    /// Indices of producer layers; empty = the network input.
    pub inputs: Vec<usize>,
    /// `[C, H, W]` of this layer's output, set by [`Network::infer`].
    pub out_shape: [usize; 3],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// `[C, H, W]`.
    pub input: [usize; 3],
    pub num_classes: usize,
    pub normalization: Normalization,
    pub layers: Vec<Layer>,
}

impl Network {
    /// Shape of the tensor feeding layer `i` through its input slot `slot`.
    pub fn input_shape(&self, i: usize, slot: usize) -> [usize; 3] {
        match self.layers[i].inputs.get(slot) {
            Some(&p) => self.layers[p].out_shape,
            None => self.input,
        }
    }

    /// Checks the graph, fills in zero channel counts and sets every `out_shape`. Errors name
    /// the offending layer (`layer '<name>'`).
    pub fn infer(&mut self) -> Result<()> {
        self.infer_shapes()?;
        let last = self.layers.last().expect("non-empty");
        let classes: usize = last.out_shape.iter().product();
        if classes != self.num_classes {
            return Err(Error::input(
                format!("layer '{}'", last.name),
                format!(
                    "last layer outputs {classes} values but num_classes = {}",
                    self.num_classes
                ),
            ));
        }
        Ok(())
    }

    /// [`Network::infer`] without the final class-count check: every `out_shape` set (the ONNX
    /// importer asks for shapes while the graph is still growing).
    pub fn infer_shapes(&mut self) -> Result<()> {
        if self.input.contains(&0) {
            return Err(Error::input(
                "network.input",
                format!("all of [C, H, W] must be > 0, got {:?}", self.input),
            ));
        }
        if self.layers.is_empty() {
            return Err(Error::input("network.layers", "network has no layers"));
        }
        let mut seen = std::collections::HashSet::new();
        for i in 0..self.layers.len() {
            let ctx = format!("layer '{}'", self.layers[i].name);
            if self.layers[i].name.is_empty() {
                return Err(Error::input(format!("layer #{i}"), "empty layer name"));
            }
            if !seen.insert(self.layers[i].name.clone()) {
                return Err(Error::input(ctx, "duplicate layer name"));
            }
            for &p in &self.layers[i].inputs {
                if p >= i {
                    return Err(Error::input(
                        ctx,
                        format!("input #{p} is not an earlier layer (layers must be in topological order)"),
                    ));
                }
            }
            let n_in = self.layers[i].inputs.len().max(1);
            let is_add = matches!(self.layers[i].op, Op::Add);
            if is_add && n_in < 2 {
                return Err(Error::input(ctx, "add needs at least two inputs"));
            }
            if !is_add && n_in != 1 {
                return Err(Error::input(
                    ctx,
                    format!(
                        "{} takes exactly one input, got {n_in}",
                        self.layers[i].op.kind()
                    ),
                ));
            }
            let in_shapes: Vec<[usize; 3]> = (0..n_in).map(|s| self.input_shape(i, s)).collect();
            let [c, h, w] = in_shapes[0];
            let name = self.layers[i].name.clone();
            let bad = |msg: String| Error::input(format!("layer '{name}'"), msg);
            let mut op = self.layers[i].op.clone();
            let out = match &mut op {
                Op::Conv {
                    in_c,
                    out_c,
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    if *in_c == 0 {
                        *in_c = c;
                    }
                    if *in_c != c {
                        return Err(bad(format!("in_c = {in_c} but its input has {c} channels")));
                    }
                    if *out_c == 0 {
                        return Err(bad("out_c must be > 0".into()));
                    }
                    let (Some(oh), Some(ow)) = (
                        out_len(h, *kernel, *stride, *padding),
                        out_len(w, *kernel, *stride, *padding),
                    ) else {
                        return Err(bad(format!("kernel {kernel}, stride {stride}, padding {padding} do not fit input {h}x{w}")));
                    };
                    [*out_c, oh, ow]
                }
                Op::BatchNorm { channels } => {
                    if *channels == 0 {
                        *channels = c;
                    }
                    if *channels != c {
                        return Err(bad(format!(
                            "channels = {channels} but its input has {c} channels"
                        )));
                    }
                    [c, h, w]
                }
                Op::Relu | Op::Hardtanh => [c, h, w],
                Op::Add => {
                    let first = [c, h, w];
                    for &s in &in_shapes[1..] {
                        if s != first {
                            return Err(bad(format!(
                                "add inputs have different shapes {first:?} and {s:?}"
                            )));
                        }
                    }
                    first
                }
                Op::ShortcutA { out_c, stride } => {
                    if *stride == 0 || *out_c < c || (*out_c - c) % 2 != 0 {
                        return Err(bad(format!(
                            "option-A shortcut needs stride > 0 and out_c >= in_c with an even difference, got in_c {c}, out_c {out_c}, stride {stride}"
                        )));
                    }
                    [*out_c, h.div_ceil(*stride), w.div_ceil(*stride)]
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
                    let (Some(oh), Some(ow)) = (
                        out_len(h, *kernel, *stride, *padding),
                        out_len(w, *kernel, *stride, *padding),
                    ) else {
                        return Err(bad(format!("kernel {kernel}, stride {stride}, padding {padding} do not fit input {h}x{w}")));
                    };
                    [c, oh, ow]
                }
                Op::GlobalAvgPool => [c, 1, 1],
                Op::Linear { in_f, out_f, .. } => {
                    let flat = c * h * w;
                    if *in_f == 0 {
                        *in_f = flat;
                    }
                    if *in_f != flat {
                        return Err(bad(format!(
                            "in_f = {in_f} but its input flattens to {flat} ({c}x{h}x{w})"
                        )));
                    }
                    if *out_f == 0 {
                        return Err(bad("out_f must be > 0".into()));
                    }
                    [*out_f, 1, 1]
                }
            };
            // Counts are u64 downstream; reject sizes whose weights or MACs would overflow.
            let weights = match op {
                Op::Conv {
                    in_c,
                    out_c,
                    kernel,
                    ..
                } => [in_c, out_c, kernel, kernel]
                    .iter()
                    .try_fold(1u64, |a, &b| a.checked_mul(b as u64)),
                Op::Linear { in_f, out_f, .. } => (in_f as u64).checked_mul(out_f as u64),
                _ => Some(0),
            };
            let macs = weights
                .and_then(|w| w.checked_mul(out[1] as u64))
                .and_then(|w| w.checked_mul(out[2] as u64));
            let elems = out.iter().try_fold(1u64, |a, &b| a.checked_mul(b as u64));
            if macs
                .zip(elems)
                .is_none_or(|(m, e)| m > 1 << 60 || e > 1 << 60)
            {
                return Err(bad(format!("sizes too large to count (output {out:?})")));
            }
            self.layers[i].op = op;
            self.layers[i].out_shape = out;
        }
        Ok(())
    }

    /// Index of the layer called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }

    /// Indices of the layers that consume layer `i`'s output.
    pub fn consumers(&self, i: usize) -> Vec<usize> {
        (i + 1..self.layers.len())
            .filter(|&j| self.layers[j].inputs.contains(&i))
            .collect()
    }

    /// Every parameter tensor (state-dict name, shape): conv weight `[out, in, k, k]` (+ bias
    /// `[out]`), batch-norm `weight`, `bias`, `running_mean`, `running_var` `[c]`, linear weight
    /// `[out, in]` (+ bias `[out]`). Running statistics are buffers, listed because the weight
    /// loader needs them; [`Network::num_params`] does not count them.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        for l in &self.layers {
            let n = &l.name;
            match l.op {
                Op::Conv {
                    in_c,
                    out_c,
                    kernel,
                    bias,
                    ..
                } => {
                    v.push((format!("{n}.weight"), vec![out_c, in_c, kernel, kernel]));
                    if bias {
                        v.push((format!("{n}.bias"), vec![out_c]));
                    }
                }
                Op::BatchNorm { channels } => {
                    for p in ["weight", "bias", "running_mean", "running_var"] {
                        v.push((format!("{n}.{p}"), vec![channels]));
                    }
                }
                Op::Linear { in_f, out_f, bias } => {
                    v.push((format!("{n}.weight"), vec![out_f, in_f]));
                    if bias {
                        v.push((format!("{n}.bias"), vec![out_f]));
                    }
                }
                _ => {}
            }
        }
        v
    }

    /// Trainable parameters: conv/linear weights and biases plus batch-norm affine (2 per
    /// channel), the convention of the published counts (torchvision, He et al.).
    pub fn num_params(&self) -> u64 {
        self.param_shapes()
            .iter()
            .filter(|(n, _)| !n.ends_with(".running_mean") && !n.ends_with(".running_var"))
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    }

    /// Bytes of f32 memory the float engine needs for this network on `batch` images, from
    /// shapes only (nothing is allocated): every parameter tensor `param_copies` times (1 to
    /// infer; 4 to train: weights, gradients, two optimizer slots) plus every layer output for
    /// `batch` images `act_copies` times (1 to infer, 2 to train: outputs and their gradients).
    /// Saturates instead of overflowing, so an absurd shape reads as "too big".
    pub fn memory_estimate(&self, batch: usize, param_copies: u64, act_copies: u64) -> u64 {
        let product = |s: &[usize]| s.iter().fold(1u64, |acc, &d| acc.saturating_mul(d as u64));
        let params = self
            .param_shapes()
            .iter()
            .fold(0u64, |acc, (_, s)| acc.saturating_add(product(s)));
        let acts = self.layers.iter().fold(product(&self.input), |acc, l| {
            acc.saturating_add(product(&l.out_shape))
        });
        params
            .saturating_mul(param_copies)
            .saturating_add(acts.saturating_mul(batch as u64).saturating_mul(act_copies))
            .saturating_mul(4)
    }

    /// Dense MACs of layer `i` (0 for layers without weights).
    pub fn layer_macs(&self, i: usize) -> u64 {
        let l = &self.layers[i];
        match l.op {
            Op::Conv {
                in_c,
                out_c,
                kernel,
                ..
            } => (out_c * in_c * kernel * kernel) as u64 * (l.out_shape[1] * l.out_shape[2]) as u64,
            Op::Linear { in_f, out_f, .. } => (in_f * out_f) as u64,
            _ => 0,
        }
    }

    /// Dense conv + linear MACs of the whole network.
    pub fn macs(&self) -> u64 {
        (0..self.layers.len()).map(|i| self.layer_macs(i)).sum()
    }
}

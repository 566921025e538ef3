//! The network executor shared by both engines: walks a [`CompressedNetwork`] layer by layer
//! (topological order), records what each op's backward needs on a [`Tape`], and runs the
//! backward pass for input and parameter gradients.
//!
//! Binarized layers (see [`BinScheme`]) compute, for weight base `i` and activation base `j`, the
//! integer +/-1 convolution `s_ij = conv(a_j, B_i)` and then `y = sum_i sum_j (alpha_i * beta_j) *
//! s_ij` in that fixed order (per output channel `o` for XNOR's `alpha_o`). The two backends
//! differ only in how `s_ij` is computed: [`ConvBackend::Float`] by the float GEMM conv (exact,
//! since every partial sum is an integer below 2^24) and [`ConvBackend::Bitwise`] by XNOR +
//! popcount on packed words. Both therefore produce bit-identical layer outputs, and everything
//! downstream is the same code: the engines agree exactly, not merely to rounding.
//!
//! Block order inside a binarized layer: input `x` -> activation bases (XNOR: `sign(x)`; ABC:
//! `H(x + v_j) = sign(clip(x + v_j, 0, 1) - 0.5)`) -> binary conv with weight bases -> scale by
//! alpha/beta -> (+ bias). BN, hardtanh (which replaces ReLU in binarized variants, see
//! [`crate::variant`]) and residual adds stay full precision as in the description.
//! Backward uses the straight-through estimator exactly as training does: the layer is
//! differentiated as `conv(A, W_approx)` with `A = sum_j beta_j a_j` and
//! `W_approx = sum_i alpha_i B_i`, then through [`ops::activation::sign_ste_backward`] /
//! [`ops::abc::abc_activation_backward`] and [`ops::xnor::xnor_binarize_backward`] /
//! [`ops::abc::abc_binarize_backward`].
//!
//! Inputs are unit-scale images ([0,1]); the executor applies the network's normalisation first
//! and its backward pass returns gradients w.r.t. the unit-scale input.
//!
//! The tape-free inference path ([`Net::infer`]) runs bitwise XNOR convs channel-last
//! ([`BConv2d::forward_nhwc`]; feature maps between them stay NHWC, see
//! [`super::fmap`]), and a binary conv whose output reaches only the next binary conv (through
//! BN and hardtanh) hands it sign bits straight from its integer sums ([`Net::infer_plan`]
//! tabulates, per channel, which sums the float epilogue maps below zero). A binary conv whose
//! float output also feeds a binary conv (a block's output: the next block's first conv and its
//! residual add) writes that output's sign bits in the same sweep, framed for the reader, which
//! then does not pack the map again (a NaN drops the frame, and the reader reports it). Every
//! value it does compute is computed by the same scalar expression as the taped pass, so both
//! stay bit-identical (property-tested).

use std::sync::OnceLock;

use ndarray::{Array1, Array2, Array4, ArrayD, Axis, Ix4};
use rayon::prelude::*;

use super::binary::{self as bin, BConv2d, PopcountPath};
use super::binary::{framed_len, pack_framed, row_start};
use super::fmap::{FeatureMap, FramedBits};
use super::ops;
use super::params::{schemes, BinScheme, Params};
use crate::model::Op;
use crate::variant::CompressedNetwork;
use crate::{Error, Result};

/// Batch-norm epsilon (PyTorch default).
pub const BN_EPS: f32 = 1e-5;

/// How binary convolutions are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvBackend {
    /// Float GEMM on +/-1 tensors (the reference).
    Float,
    /// XNOR + popcount on packed words (the bit-exact engine).
    Bitwise,
}

/// Batch-norm statistics mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Running statistics (inference, attacks).
    Eval,
    /// Batch statistics (training); running-stat updates are returned on the tape.
    Train,
}

/// Binarized weights of one layer, computed from the latent float weights.
pub struct BinWeights {
    pub scheme: BinScheme,
    /// +/-1 weight bases `B_i` as `[O, C, k, k]` (linear layers as `[O, I, 1, 1]`).
    pub bases: Vec<Array4<f32>>,
    /// Scale of base `i` per output channel (XNOR: `alpha_o`; ABC: the base's scalar alpha).
    pub alphas: Vec<Vec<f32>>,
    /// `sum_i alpha_i B_i` (what the STE backward differentiates through).
    pub approx: Array4<f32>,
    /// Activation shifts `v_j` and scales `beta_j` (XNOR: one base, v = 0 unused, beta = 1).
    pub act: ops::abc::AbcActivation,
    /// Packed weight plans for the bitwise backend (one per base), built on demand.
    pub plans: Option<Vec<BConv2d>>,
    abc: Option<ops::abc::AbcWeights<Ix4>>,
}

/// A network with its parameters, ready to run.
pub struct Net {
    pub cn: CompressedNetwork,
    pub params: Params,
    schemes: Vec<Option<BinScheme>>,
}

/// What [`Net::infer`] prepares once per call: the layer plan and the float parameters in
/// the form the layers use (float conv/linear weights, biases, folded eval-mode BN).
pub struct InferPlan {
    /// Last reader of each layer's output; the network input is the last slot.
    last_use: Vec<usize>,
    fusion: Vec<Option<Fusion>>,
    absorbed: Vec<bool>,
    weights: Vec<Option<Array4<f32>>>,
    biases: Vec<Option<Array1<f32>>>,
    /// `(scale, shift)` of each BN layer.
    bn: Vec<Option<(Array1<f32>, Array1<f32>)>>,
    /// Binary convs that hand the next binary conv sign bits instead of floats (bitwise
    /// backend only; see [`Net::sign_intervals`]).
    bits_out: Vec<Option<BitsOut>>,
    /// Channel-last binary convs with float output that a binary conv reads: the padding of
    /// that conv's frame, which they also write (see [`Net::frame_target`]).
    frame_out: Vec<Option<usize>>,
    /// Float convs (without a fused residual) whose output a channel-last binary conv reads,
    /// so they write it NHWC.
    nhwc_out: Vec<bool>,
    /// The pixel-major epilogue of each channel-last binary conv, built on first use.
    pixel_rows: Vec<OnceLock<ops::epilogue::PixelRows>>,
}

impl InferPlan {
    /// Layers that hand the next binary conv sign bits instead of floats (used by the
    /// bitwise backend).
    pub fn sign_bit_layers(&self) -> usize {
        self.bits_out.iter().flatten().count()
    }

    /// Layers that write the sign bits of their float output for the binary conv reading it.
    pub fn framed_float_layers(&self) -> usize {
        self.frame_out.iter().flatten().count()
    }
}

/// How a binary conv writes its output as sign bits: into frames with the reading conv's
/// padding, bit 1 iff the integer sum of channel `o` lies in `lo[o]..=hi[o]`.
struct BitsOut {
    pad: usize,
    lo: Vec<i32>,
    hi: Vec<i32>,
}

/// A conv layer evaluated together with the layers after it (see [`Net::infer`]).
struct Fusion {
    bn: Option<usize>,
    /// The other input of the absorbed residual add.
    residual: Option<usize>,
    act: ops::epilogue::Activation,
    /// The last absorbed layer: the group's output is stored as its output.
    tail: usize,
}

enum Cache {
    None,
    Conv {
        x: Array4<f32>,
    },
    BinConv {
        x: Array4<f32>,
        a: Array4<f32>,
    },
    Bn {
        x: Array4<f32>,
        stats: Option<ops::batchnorm::BnBatchStats>,
    },
    Act {
        x: Array4<f32>,
    },
    MaxPool {
        dim: (usize, usize, usize, usize),
        arg: Array4<usize>,
    },
    Dim {
        dim: (usize, usize, usize, usize),
    },
}

/// What the forward pass recorded for the backward pass.
pub struct Tape {
    outs: Vec<Array4<f32>>,
    caches: Vec<Cache>,
    input_dim: (usize, usize, usize, usize),
    /// Integer accumulators `s_ij` of every binarized layer, when requested:
    /// (layer index, weight base i, activation base j, sums).
    pub accumulators: Vec<(usize, usize, usize, Array4<f32>)>,
}

/// Gradients of one backward pass.
pub struct Grads {
    /// d loss / d input, unit scale, `[N, C, H, W]`.
    pub input: Array4<f32>,
    /// d loss / d parameter, by parameter name.
    pub params: Params,
}

fn p4(params: &Params, name: &str) -> Result<Array4<f32>> {
    let t = params
        .get(name)
        .ok_or_else(|| Error::input("parameters", format!("missing tensor {name:?}")))?;
    let shape = t.shape();
    let s = match shape.len() {
        4 => [shape[0], shape[1], shape[2], shape[3]],
        2 => [shape[0], shape[1], 1, 1],
        _ => {
            return Err(Error::input(
                name,
                format!("expected a 2-D or 4-D weight, got shape {shape:?}"),
            ))
        }
    };
    Ok(t.to_shape(s)
        .map_err(|e| Error::input(name, e.to_string()))?
        .to_owned())
}

fn p1(params: &Params, name: &str) -> Result<Array1<f32>> {
    let t = params
        .get(name)
        .ok_or_else(|| Error::input("parameters", format!("missing tensor {name:?}")))?;
    Ok(t.iter().copied().collect())
}

fn to_flat4(x: &Array4<f32>) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    x.as_standard_layout()
        .into_owned()
        .into_shape_with_order((n, c * h * w, 1, 1))
        .expect("contiguous")
}

impl Net {
    pub fn new(cn: CompressedNetwork, params: Params) -> Result<Self> {
        let want = super::params::expected(&cn);
        for (name, shape) in &want {
            match params.get(name) {
                Some(t) if t.shape() == shape.as_slice() => {}
                Some(t) => {
                    return Err(Error::input(
                        name,
                        format!("shape {:?}, expected {shape:?}", t.shape()),
                    ))
                }
                None => {
                    return Err(Error::input(
                        "parameters",
                        format!("missing tensor {name:?}"),
                    ))
                }
            }
        }
        let schemes = schemes(&cn);
        Ok(Net {
            cn,
            params,
            schemes,
        })
    }

    pub fn schemes(&self) -> &[Option<BinScheme>] {
        &self.schemes
    }

    /// Binarizes the weights of every binarized layer (`plans`: also pack them for the bitwise
    /// backend).
    pub fn binarize(&self, plans: bool) -> Result<Vec<Option<BinWeights>>> {
        self.cn
            .network
            .layers
            .iter()
            .zip(&self.schemes)
            .map(|(l, s)| {
                let Some(scheme) = *s else { return Ok(None) };
                let w = p4(&self.params, &format!("{}.weight", l.name))?;
                let o = w.dim().0;
                let (bases, alphas, approx, act, abc) = match scheme {
                    BinScheme::Xnor => {
                        let xw = ops::xnor::xnor_binarize(&w)?;
                        (
                            vec![xw.binary],
                            vec![xw.alpha.to_vec()],
                            xw.approx,
                            ops::abc::AbcActivation {
                                shifts: vec![0.0],
                                betas: vec![1.0],
                            },
                            None,
                        )
                    }
                    BinScheme::Abc { m, .. } => {
                        let aw = ops::abc::abc_binarize(&w, m)?;
                        let act = ops::abc::AbcActivation {
                            shifts: p1(&self.params, &format!("{}.act_shift", l.name))?.to_vec(),
                            betas: p1(&self.params, &format!("{}.act_scale", l.name))?.to_vec(),
                        };
                        let alphas = aw.alphas.iter().map(|&a| vec![a; o]).collect();
                        (aw.bases.clone(), alphas, aw.approx.clone(), act, Some(aw))
                    }
                };
                let plans = if plans {
                    Some(
                        bases
                            .iter()
                            .map(|b| Ok(BConv2d::new(&bin::pack_weights(b)?)))
                            .collect::<Result<Vec<_>>>()?,
                    )
                } else {
                    None
                };
                Ok(Some(BinWeights {
                    scheme,
                    bases,
                    alphas,
                    approx,
                    act,
                    plans,
                    abc,
                }))
            })
            .collect()
    }

    /// Forward pass on unit-scale images `x` `[N, C, H, W]`. Returns logits `[N, classes]` and
    /// the tape. `bw` comes from [`Net::binarize`] (with plans for the bitwise backend).
    pub fn forward(
        &self,
        x: &Array4<f32>,
        mode: Mode,
        backend: ConvBackend,
        bw: &[Option<BinWeights>],
        keep_accumulators: bool,
    ) -> Result<(Array2<f32>, Tape)> {
        let net = &self.cn.network;
        let x0 = self.normalized_input(x)?;
        let mut tape = Tape {
            outs: Vec::with_capacity(net.layers.len()),
            caches: Vec::with_capacity(net.layers.len()),
            input_dim: x.dim(),
            accumulators: Vec::new(),
        };
        for (i, layer) in net.layers.iter().enumerate() {
            let input = |slot: usize| -> &Array4<f32> {
                match layer.inputs.get(slot) {
                    Some(&j) => &tape.outs[j],
                    None => &x0,
                }
            };
            let name = &layer.name;
            let (y, cache) = match &layer.op {
                op @ (Op::Conv { .. } | Op::Linear { .. }) => {
                    // Linear layers run as 1x1 convolutions on the flattened `[N, C*H*W, 1, 1]`.
                    let (xi, stride, pad, bias) = match op {
                        Op::Conv {
                            stride,
                            padding,
                            bias,
                            ..
                        } => (input(0).clone(), *stride, *padding, *bias),
                        Op::Linear { bias, .. } => (to_flat4(input(0)), 1, 0, *bias),
                        _ => unreachable!("matched conv or linear"),
                    };
                    let b = if bias {
                        Some(p1(&self.params, &format!("{name}.bias"))?)
                    } else {
                        None
                    };
                    match &bw[i] {
                        None => {
                            let wt = p4(&self.params, &format!("{name}.weight"))?;
                            let y = ops::conv::conv2d(&xi, &wt, b.as_ref(), stride, pad)?;
                            (y, Cache::Conv { x: xi })
                        }
                        Some(bwi) => {
                            let (y, a, accs) = bin_forward(
                                &xi,
                                bwi,
                                b.as_ref(),
                                stride,
                                pad,
                                backend,
                                true,
                                keep_accumulators,
                            )?;
                            if keep_accumulators {
                                tape.accumulators
                                    .extend(accs.into_iter().map(|(wi, aj, s)| (i, wi, aj, s)));
                            }
                            (y, Cache::BinConv { x: xi, a })
                        }
                    }
                }
                Op::BatchNorm { .. } => {
                    let xi = input(0);
                    let g = p1(&self.params, &format!("{name}.weight"))?;
                    let b = p1(&self.params, &format!("{name}.bias"))?;
                    match mode {
                        Mode::Eval => {
                            let rm = p1(&self.params, &format!("{name}.running_mean"))?;
                            let rv = p1(&self.params, &format!("{name}.running_var"))?;
                            let y =
                                ops::batchnorm::batch_norm_inference(xi, &g, &b, &rm, &rv, BN_EPS)?;
                            (
                                y,
                                Cache::Bn {
                                    x: xi.clone(),
                                    stats: None,
                                },
                            )
                        }
                        Mode::Train => {
                            let (y, stats) = ops::batchnorm::batch_norm_train(xi, &g, &b, BN_EPS)?;
                            (
                                y,
                                Cache::Bn {
                                    x: xi.clone(),
                                    stats: Some(stats),
                                },
                            )
                        }
                    }
                }
                Op::Relu => (
                    ops::activation::relu(input(0)),
                    Cache::Act {
                        x: input(0).clone(),
                    },
                ),
                Op::Hardtanh => (
                    ops::activation::hardtanh(input(0)),
                    Cache::Act {
                        x: input(0).clone(),
                    },
                ),
                Op::Add => {
                    let mut y = input(0).clone();
                    for s in 1..layer.inputs.len().max(1) {
                        y = ops::shortcut::residual_add(&y, input(s))?;
                    }
                    (y, Cache::None)
                }
                Op::ShortcutA { out_c, stride } => {
                    let xi = input(0);
                    (
                        ops::shortcut::shortcut_a(xi, *out_c, *stride)?,
                        Cache::Dim { dim: xi.dim() },
                    )
                }
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    let xi = input(0);
                    let (y, arg) = ops::pool::max_pool2d(xi, *kernel, *stride, *padding)?;
                    (y, Cache::MaxPool { dim: xi.dim(), arg })
                }
                Op::AvgPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    let xi = input(0);
                    (
                        ops::pool::avg_pool2d(xi, *kernel, *stride, *padding)?,
                        Cache::Dim { dim: xi.dim() },
                    )
                }
                Op::GlobalAvgPool => {
                    let xi = input(0);
                    let y = ops::pool::global_avg_pool(xi)?;
                    let (n, c) = y.dim();
                    (
                        y.into_shape_with_order((n, c, 1, 1)).expect("contiguous"),
                        Cache::Dim { dim: xi.dim() },
                    )
                }
            };
            tape.outs.push(y);
            tape.caches.push(cache);
        }
        let last = tape
            .outs
            .last()
            .ok_or_else(|| Error::input("network", "has no layers"))?;
        let n = last.dim().0;
        let logits = last
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((n, last.len() / n.max(1)))
            .expect("contiguous");
        Ok((logits, tape))
    }

    /// Conv layers whose output flows, each through its sole reader, into a batch-norm, a
    /// two-input residual add (whose other input is already computed when the conv runs) and
    /// an activation: the tape-free pass evaluates such a chain as one convolution with an
    /// [`ops::epilogue::Epilogue`]. A batch-norm that follows no conv heads the same kind of
    /// chain (its add and activation). Returns the fusion per head and which layers are
    /// absorbed into a head.
    fn fusions(&self, last_use: &[usize]) -> (Vec<Option<Fusion>>, Vec<bool>) {
        let layers = &self.cn.network.layers;
        let nl = layers.len();
        let mut readers = vec![Vec::new(); nl];
        for (i, l) in layers.iter().enumerate() {
            for &j in &l.inputs {
                readers[j].push(i);
            }
        }
        let sole = |cur: usize| match readers[cur].as_slice() {
            [r] if last_use[cur] == *r => Some(*r),
            _ => None,
        };
        let mut fusion: Vec<Option<Fusion>> = (0..nl).map(|_| None).collect();
        let mut absorbed = vec![false; nl];
        for (i, l) in layers.iter().enumerate() {
            let mut f = Fusion {
                bn: None,
                residual: None,
                act: ops::epilogue::Activation::Identity,
                tail: i,
            };
            match l.op {
                Op::Conv { .. } => {
                    if let Some(j) = sole(f.tail) {
                        if matches!(layers[j].op, Op::BatchNorm { .. })
                            && layers[j].inputs == [f.tail]
                        {
                            f.bn = Some(j);
                            f.tail = j;
                        }
                    }
                }
                // A batch-norm no conv absorbed heads its own group.
                Op::BatchNorm { .. } if !absorbed[i] => f.bn = Some(i),
                _ => continue,
            }
            if let Some(k) = sole(f.tail) {
                if let (Op::Add, [a, b]) = (&layers[k].op, layers[k].inputs.as_slice()) {
                    let other = if *a == f.tail { *b } else { *a };
                    if (*a == f.tail) != (*b == f.tail) && other < i {
                        f.residual = Some(other);
                        f.tail = k;
                    }
                }
            }
            if let Some(m) = sole(f.tail) {
                let act = match layers[m].op {
                    Op::Relu => Some(ops::epilogue::Activation::Relu),
                    Op::Hardtanh => Some(ops::epilogue::Activation::Hardtanh),
                    _ => None,
                };
                if let (Some(act), true) = (act, layers[m].inputs == [f.tail]) {
                    f.act = act;
                    f.tail = m;
                }
            }
            if f.tail != i {
                // Every layer of the chain between head and tail is absorbed.
                let mut cur = i;
                while cur != f.tail {
                    cur = readers[cur][0];
                    absorbed[cur] = true;
                }
                fusion[i] = Some(f);
            }
        }
        (fusion, absorbed)
    }

    /// Output channels of conv layer `i` (from its weight).
    fn out_channels(&self, i: usize) -> Result<usize> {
        let name = &self.cn.network.layers[i].name;
        let w = self
            .params
            .get(&format!("{name}.weight"))
            .ok_or_else(|| Error::input("parameters", format!("missing tensor {name}.weight")))?;
        Ok(w.shape()[0])
    }

    /// Checks shape and finiteness of unit-scale images and applies the normalisation.
    fn normalized_input(&self, x: &Array4<f32>) -> Result<Array4<f32>> {
        self.check_input(x)?;
        Ok(self.normalize(x.view()))
    }

    /// Shape and finiteness of a batch of input images.
    fn check_input(&self, x: &Array4<f32>) -> Result<()> {
        let [c, h, w] = self.cn.network.input;
        if x.dim().1 != c || x.dim().2 != h || x.dim().3 != w {
            return Err(Error::input(
                "input",
                format!(
                    "images have shape {:?}, the network expects [N, {c}, {h}, {w}]",
                    x.dim()
                ),
            ));
        }
        // A fold over the slice (no early exit) vectorizes; `any` on the array did not.
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        if xs.iter().fold(false, |bad, v| bad | !v.is_finite()) {
            return Err(Error::input(
                "input",
                "images contain NaN or infinite values",
            ));
        }
        Ok(())
    }

    /// `(x - mean[c]) / std[c]` per channel, on checked images.
    fn normalize(&self, x: ndarray::ArrayView4<f32>) -> Array4<f32> {
        let norm = &self.cn.network.normalization;
        let mut x0 = x.to_owned();
        for (ch, mut plane) in x0.axis_iter_mut(Axis(1)).enumerate() {
            let (m, s) = (norm.mean[ch], norm.std[ch]);
            plane.mapv_inplace(|v| (v - m) / s);
        }
        x0
    }

    /// Inference-only forward pass (eval-mode BN): the same arithmetic as [`Net::forward`] in
    /// [`Mode::Eval`], so the logits are bit-identical, but no tape.
    ///
    /// Everything that does not depend on the images (the fusion plan, weights, folded BN) is
    /// prepared once ([`Net::infer_plan`]; the engines keep theirs, so attacks querying one
    /// image at a time do not rebuild it); then each image runs through the whole network on its own, in
    /// parallel over images, so its feature maps stay in L2 from one layer to the next and
    /// every buffer is small enough to be reused by the allocator (layer by layer over a batch
    /// of 128, the XNOR ResNet20 ran at ~0.7x the speed: page faults and cache misses). Every
    /// convolution computes one image per GEMM (see [`ops::conv`]), so an image's logits do
    /// not depend on the batch it came in. Within an image, each layer's output is dropped
    /// after its last consumer, BN, activations and adds overwrite their input in place when
    /// no later layer reads it, and a conv followed by its BN, residual add and activation is
    /// one fused pass (see [`ops::epilogue`]).
    pub fn infer(
        &self,
        x: &Array4<f32>,
        backend: ConvBackend,
        bw: &[Option<BinWeights>],
    ) -> Result<Array2<f32>> {
        self.infer_with(&self.infer_plan(bw)?, x, backend, bw)
    }

    /// [`Net::infer`] with a plan from [`Net::infer_plan`] for the same parameters and `bw`.
    pub fn infer_with(
        &self,
        plan: &InferPlan,
        x: &Array4<f32>,
        backend: ConvBackend,
        bw: &[Option<BinWeights>],
    ) -> Result<Array2<f32>> {
        self.check_input(x)?;
        let n = x.dim().0;
        if n <= 1 {
            return self.infer_images(plan, self.normalize(x.view()), backend, bw);
        }
        // Each image normalised where it is run, while it is in cache.
        let rows = (0..n)
            .into_par_iter()
            .map(|i| {
                let xi = self.normalize(x.slice(ndarray::s![i..i + 1, .., .., ..]));
                self.infer_images(plan, xi, backend, bw)
            })
            .collect::<Result<Vec<_>>>()?;
        let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
        Ok(ndarray::concatenate(Axis(0), &views).expect("same class count"))
    }

    /// The image-independent part of [`Net::infer`]: a snapshot of the parameters, so build
    /// it again after changing them.
    pub fn infer_plan(&self, bw: &[Option<BinWeights>]) -> Result<InferPlan> {
        let net = &self.cn.network;
        let nl = net.layers.len();
        if nl == 0 {
            return Err(Error::input("network", "has no layers"));
        }
        // Last consumer of each layer's output (the network input is slot nl).
        let mut last_use = vec![usize::MAX; nl + 1];
        for (i, l) in net.layers.iter().enumerate() {
            if l.inputs.is_empty() {
                last_use[nl] = i;
            }
            for &j in &l.inputs {
                last_use[j] = i;
            }
        }
        let (fusion, absorbed) = self.fusions(&last_use);
        let mut weights = vec![None; nl];
        let mut biases = vec![None; nl];
        let mut bn = vec![None; nl];
        for (i, l) in net.layers.iter().enumerate() {
            let name = &l.name;
            match &l.op {
                Op::Conv { bias, .. } | Op::Linear { bias, .. } => {
                    if bw[i].is_none() {
                        weights[i] = Some(p4(&self.params, &format!("{name}.weight"))?);
                    }
                    if *bias {
                        biases[i] = Some(p1(&self.params, &format!("{name}.bias"))?);
                    }
                }
                Op::BatchNorm { .. } => {
                    let g = p1(&self.params, &format!("{name}.weight"))?;
                    let b = p1(&self.params, &format!("{name}.bias"))?;
                    let rm = p1(&self.params, &format!("{name}.running_mean"))?;
                    let rv = p1(&self.params, &format!("{name}.running_var"))?;
                    bn[i] = Some(ops::batchnorm::fold(&g, &b, &rm, &rv, BN_EPS)?);
                }
                _ => {}
            }
        }
        // A conv's fused BN must match its output channels (checked once here, not per image).
        for (i, f) in fusion.iter().enumerate() {
            let Some((s, _)) = f.as_ref().and_then(|f| f.bn).and_then(|j| bn[j].as_ref()) else {
                continue;
            };
            if matches!(net.layers[i].op, Op::Conv { .. }) && s.len() != self.out_channels(i)? {
                return Err(Error::input(
                    &net.layers[i].name,
                    format!(
                        "{} output channels, its BN has {}",
                        self.out_channels(i)?,
                        s.len()
                    ),
                ));
            }
        }
        let mut plan = InferPlan {
            last_use,
            fusion,
            absorbed,
            weights,
            biases,
            bn,
            bits_out: Vec::new(),
            frame_out: Vec::new(),
            nhwc_out: Vec::new(),
            pixel_rows: (0..nl).map(|_| OnceLock::new()).collect(),
        };
        plan.bits_out = (0..nl).map(|i| self.sign_intervals(&plan, bw, i)).collect();
        plan.frame_out = (0..nl).map(|i| self.frame_target(&plan, bw, i)).collect();
        plan.nhwc_out = (0..nl)
            .map(|i| {
                let f = plan.fusion[i].as_ref();
                bw[i].is_none()
                    && !plan.absorbed[i]
                    && matches!(net.layers[i].op, Op::Conv { .. })
                    && f.is_none_or(|f| f.residual.is_none())
                    && self
                        .channel_last_reader(bw, f.map_or(i, |f| f.tail))
                        .is_some()
            })
            .collect();
        Ok(plan)
    }

    /// Whether channel-last binary conv `i`, whose output stays float (it has other readers,
    /// e.g. a residual add), should also write that output's sign bits framed for a binary
    /// conv that reads it, and with which padding: the reader then skips packing the map.
    /// The bits come from the same float values (sign(0) = +1), so this changes no result;
    /// a NaN among them drops the frame and the reader packs, reporting the NaN as before.
    fn frame_target(&self, plan: &InferPlan, bw: &[Option<BinWeights>], i: usize) -> Option<usize> {
        let layers = &self.cn.network.layers;
        if !matches!(layers[i].op, Op::Conv { .. })
            || !bitwise_nhwc(bw, i)
            || plan.absorbed[i]
            || plan.bits_out[i].is_some()
        {
            return None;
        }
        let tail = plan.fusion[i].as_ref().map_or(i, |f| f.tail);
        self.channel_last_reader(bw, tail)
    }

    /// The padding of a channel-last binary conv (bitwise backend) that reads slot `slot` as
    /// its only input, if there is one.
    fn channel_last_reader(&self, bw: &[Option<BinWeights>], slot: usize) -> Option<usize> {
        let layers = &self.cn.network.layers;
        layers.iter().enumerate().find_map(|(j, l)| match l.op {
            Op::Conv { padding, .. } if l.inputs == [slot] && bitwise_nhwc(bw, j) => Some(padding),
            _ => None,
        })
    }

    /// Whether binary conv `i` can hand its output to the next binary conv as sign bits, and
    /// with which intervals. It can when both run channel-last (bitwise XNOR), its fusion
    /// group has no residual add (so its epilogue depends on its own sum alone) and the
    /// group's output has exactly one reader, that conv. The reader only takes `sign(v)` of
    /// each value `v = act(bn(0 + k*s + b))`, so each channel's bit is a function of the
    /// integer sum `s` in `-K..=K` (`K` = bits per window). That function is tabulated here
    /// with the very epilogue the float path runs ([`ops::epilogue::Epilogue::row_map`] over
    /// every `s`), so it is exact by construction; each step is monotone in `s`, so the
    /// negative values form one interval (checked: otherwise, or on NaN, the layer keeps its
    /// float output and the reader's own packing, errors included).
    fn sign_intervals(
        &self,
        plan: &InferPlan,
        bw: &[Option<BinWeights>],
        i: usize,
    ) -> Option<BitsOut> {
        let layers = &self.cn.network.layers;
        if !matches!(layers[i].op, Op::Conv { .. }) || !bitwise_nhwc(bw, i) || plan.absorbed[i] {
            return None;
        }
        let f = plan.fusion[i].as_ref();
        if f.is_some_and(|f| f.residual.is_some()) {
            return None;
        }
        let tail = f.map_or(i, |f| f.tail);
        let readers: Vec<usize> = (0..layers.len())
            .filter(|&j| layers[j].inputs.contains(&tail))
            .collect();
        let &[j] = readers.as_slice() else {
            return None;
        };
        let Op::Conv { padding, .. } = layers[j].op else {
            return None;
        };
        if plan.last_use[tail] != j || layers[j].inputs != [tail] || !bitwise_nhwc(bw, j) {
            return None;
        }
        let bwi = bw[i].as_ref()?;
        let (o, c, kh, kw) = bwi.bases[0].dim();
        let kmax = (c * kh * kw) as i32;
        let k = pair_scale(bwi, 0, 0);
        let bn = f.and_then(|f| f.bn).and_then(|b| plan.bn[b].as_ref());
        if bn.is_some_and(|(s, _)| s.len() != o) || k.len() != o {
            return None;
        }
        let bias = plan.biases[i].as_ref().map(|b| b.to_vec());
        if bias.as_ref().is_some_and(|b| b.len() != o) {
            return None;
        }
        let ep = ops::epilogue::Epilogue {
            bias: bias.as_deref(),
            bn: bn.map(|(s, t)| (s.as_slice().expect("1-D"), t.as_slice().expect("1-D"))),
            act: f.map_or(ops::epilogue::Activation::Identity, |f| f.act),
        };
        let sums: Vec<i32> = (-kmax..=kmax).collect();
        let mut v = vec![std::mem::MaybeUninit::<f32>::uninit(); sums.len()];
        let (mut lo, mut hi) = (Vec::with_capacity(o), Vec::with_capacity(o));
        for (ch, &kc) in k.iter().enumerate() {
            ep.row_map(ch, &mut v, &sums, |s| 0.0 + kc * s as f32, None);
            // SAFETY: `row_map` writes every element.
            let v: Vec<f32> = v.iter().map(|x| unsafe { x.assume_init() }).collect();
            if v.iter().any(|x| x.is_nan()) {
                return None;
            }
            let neg: Vec<i32> = (0..sums.len())
                .filter(|&t| v[t] < 0.0)
                .map(|t| sums[t])
                .collect();
            let (l, h) = match (neg.first(), neg.last()) {
                (Some(&l), Some(&h)) if (h - l + 1) as usize == neg.len() => (l, h),
                (None, None) => (1, 0),
                _ => return None,
            };
            lo.push(l);
            hi.push(h);
        }
        Some(BitsOut {
            pad: padding,
            lo,
            hi,
        })
    }

    /// [`Net::infer`] on normalised images `x0`, with the prepared plan. Maps are kept in the
    /// layout their producer wrote (see [`FeatureMap`]): bitwise XNOR convs read and write
    /// NHWC, everything else reads NCHW.
    fn infer_images(
        &self,
        plan: &InferPlan,
        x0: Array4<f32>,
        backend: ConvBackend,
        bw: &[Option<BinWeights>],
    ) -> Result<Array2<f32>> {
        let net = &self.cn.network;
        let nl = net.layers.len();
        let last_use = &plan.last_use;
        let (fusion, absorbed) = (&plan.fusion, &plan.absorbed);
        let mut outs: Vec<Option<FeatureMap>> = vec![None; nl + 1];
        outs[nl] = Some(FeatureMap::Nchw(x0));
        // Sign bits some channel-last convs write beside their float output (`frame_out`).
        let mut frames: Vec<Option<FramedBits>> = vec![None; nl + 1];
        let src = |l: &crate::model::Layer, slot: usize| l.inputs.get(slot).copied().unwrap_or(nl);
        for (i, layer) in net.layers.iter().enumerate() {
            let name = &layer.name;
            if absorbed[i] {
                // Computed by the conv or batch-norm that heads its fusion group.
                free_inputs(&mut outs, layer, last_use, i, nl);
                free_inputs(&mut frames, layer, last_use, i, nl);
                continue;
            }
            // The sole input, owned when this layer is its last reader (so it may be overwritten).
            let take = |outs: &mut Vec<Option<FeatureMap>>| -> FeatureMap {
                let j = src(layer, 0);
                if last_use[j] == i && layer.inputs.len() <= 1 {
                    outs[j].take().expect("producer ran")
                } else {
                    outs[j].as_ref().expect("producer ran").clone()
                }
            };
            let mut slot = i;
            let mut frame = None;
            let y = match &layer.op {
                Op::Conv {
                    stride, padding, ..
                } => {
                    let b = plan.biases[i].as_ref();
                    let f = fusion[i].as_ref();
                    let bn = f.and_then(|f| f.bn).and_then(|j| plan.bn[j].as_ref());
                    let ep = ops::epilogue::Epilogue {
                        bias: None,
                        bn: bn
                            .as_ref()
                            .map(|(s, t)| (s.as_slice().expect("1-D"), t.as_slice().expect("1-D"))),
                        act: f.map_or(ops::epilogue::Activation::Identity, |f| f.act),
                    };
                    let res_slot = f.and_then(|f| f.residual);
                    if let Some(f) = f {
                        slot = f.tail;
                    }
                    match &bw[i] {
                        Some(bwi) if nhwc_conv(bwi, backend) => {
                            // Store the inputs NHWC from now on: the next reader is most
                            // likely another binary conv or its residual add.
                            for j in [Some(src(layer, 0)), res_slot].into_iter().flatten() {
                                outs[j].as_mut().expect("producer ran").make_nhwc();
                            }
                            let xi = outs[src(layer, 0)].as_ref().expect("producer ran");
                            let residual =
                                res_slot.map(|r| outs[r].as_ref().expect("producer ran"));
                            let fin = frames[src(layer, 0)].as_ref().filter(|f| f.pad == *padding);
                            let (y, fr) = bin_forward_nhwc(
                                xi, fin, bwi, b, *stride, *padding, &ep, residual, plan, i,
                            )?;
                            frame = fr;
                            y
                        }
                        None if plan.nhwc_out[i] && backend == ConvBackend::Bitwise => {
                            // Read by a channel-last conv: written NHWC band by band.
                            let xi = outs[src(layer, 0)].as_ref().expect("producer ran").nchw();
                            let wt = plan.weights[i].as_ref().expect("float layer");
                            FeatureMap::Nhwc(ops::conv::conv2d_fused_nhwc(
                                &xi, wt, b, *stride, *padding, ep,
                            )?)
                        }
                        _ => {
                            let xi = outs[src(layer, 0)].as_ref().expect("producer ran").nchw();
                            let r =
                                res_slot.map(|r| outs[r].as_ref().expect("producer ran").nchw());
                            let residual = r.as_deref();
                            FeatureMap::Nchw(match &bw[i] {
                                None => {
                                    let wt = plan.weights[i].as_ref().expect("float layer");
                                    ops::conv::conv2d_fused(
                                        &xi, wt, b, *stride, *padding, ep, residual,
                                    )?
                                }
                                Some(bwi) => bin_forward_fused(
                                    &xi, bwi, b, *stride, *padding, backend, &ep, residual,
                                )?,
                            })
                        }
                    }
                }
                Op::Linear { .. } => {
                    let xi = to_flat4(&outs[src(layer, 0)].as_ref().expect("producer ran").nchw());
                    let b = plan.biases[i].as_ref();
                    FeatureMap::Nchw(match &bw[i] {
                        None => {
                            let wt = plan.weights[i].as_ref().expect("float layer");
                            ops::conv::conv2d(&xi, wt, b, 1, 0)?
                        }
                        Some(bwi) => bin_forward(&xi, bwi, b, 1, 0, backend, false, false)?.0,
                    })
                }
                Op::BatchNorm { .. } => {
                    let (scale, shift) = plan.bn[i].as_ref().expect("BN folded");
                    let mut y = take(&mut outs).into_nchw();
                    if scale.len() != y.dim().1 {
                        return Err(Error::input(
                            name,
                            format!("{} BN channels for {} feature maps", scale.len(), y.dim().1),
                        ));
                    }
                    let f = fusion[i].as_ref();
                    let ep = ops::epilogue::Epilogue {
                        bias: None,
                        bn: Some((
                            scale.as_slice().expect("1-D"),
                            shift.as_slice().expect("1-D"),
                        )),
                        act: f.map_or(ops::epilogue::Activation::Identity, |f| f.act),
                    };
                    let r = f
                        .and_then(|f| f.residual)
                        .map(|r| outs[r].as_ref().expect("producer ran").nchw());
                    epilogue_inplace(&mut y, &ep, r.as_deref())?;
                    if let Some(f) = f {
                        slot = f.tail;
                    }
                    FeatureMap::Nchw(y)
                }
                Op::Relu => {
                    let mut y = take(&mut outs);
                    y.map_inplace(|v| v.max(0.0));
                    y
                }
                Op::Hardtanh => {
                    let mut y = take(&mut outs);
                    y.map_inplace(|v| v.clamp(-1.0, 1.0));
                    y
                }
                Op::Add => {
                    let first = src(layer, 0);
                    let mut y = if last_use[first] == i
                        && layer.inputs.iter().filter(|&&j| j == first).count() == 1
                    {
                        outs[first].take().expect("producer ran")
                    } else {
                        outs[first].clone().expect("producer ran")
                    };
                    for s in 1..layer.inputs.len().max(1) {
                        let other = outs[src(layer, s)].as_ref().expect("producer ran");
                        y.add_assign(other, name)?;
                    }
                    y
                }
                Op::ShortcutA { out_c, stride } => outs[src(layer, 0)]
                    .as_ref()
                    .expect("producer ran")
                    .shortcut_a(*out_c, *stride)?,
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    let xi = outs[src(layer, 0)].as_ref().expect("producer ran").nchw();
                    FeatureMap::Nchw(ops::pool::max_pool2d(&xi, *kernel, *stride, *padding)?.0)
                }
                Op::AvgPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    let xi = outs[src(layer, 0)].as_ref().expect("producer ran").nchw();
                    FeatureMap::Nchw(ops::pool::avg_pool2d(&xi, *kernel, *stride, *padding)?)
                }
                Op::GlobalAvgPool => {
                    let xi = outs[src(layer, 0)].as_ref().expect("producer ran");
                    let y = xi.global_avg_pool()?;
                    let (n, c) = y.dim();
                    FeatureMap::Nchw(y.into_shape_with_order((n, c, 1, 1)).expect("contiguous"))
                }
            };
            free_inputs(&mut outs, layer, last_use, i, nl);
            free_inputs(&mut frames, layer, last_use, i, nl);
            outs[slot] = Some(y);
            frames[slot] = frame;
        }
        let last = outs[nl - 1].take().expect("last layer ran").into_nchw();
        let n = last.dim().0;
        Ok(last
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((n, last.len() / n.max(1)))
            .expect("contiguous"))
    }

    /// Backward pass from `dlogits` (`[N, classes]`). Returns input and parameter gradients.
    pub fn backward(
        &self,
        tape: &Tape,
        bw: &[Option<BinWeights>],
        dlogits: &Array2<f32>,
        want_params: bool,
    ) -> Result<Grads> {
        let net = &self.cn.network;
        let nl = net.layers.len();
        let mut d: Vec<Option<Array4<f32>>> = vec![None; nl];
        let last_dim = tape.outs[nl - 1].dim();
        d[nl - 1] = Some(
            dlogits
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order(last_dim)
                .map_err(|e| Error::input("dlogits", e.to_string()))?,
        );
        let mut dinput = Array4::<f32>::zeros(tape.input_dim);
        let mut grads = Params::new();
        let add_grad = |grads: &mut Params, name: String, g: ArrayD<f32>| {
            if want_params {
                match grads.get_mut(&name) {
                    Some(e) => *e += &g,
                    None => {
                        grads.insert(name, g);
                    }
                }
            }
        };
        for i in (0..nl).rev() {
            let Some(dy) = d[i].take() else { continue };
            let layer = &net.layers[i];
            let name = &layer.name;
            let mut dins: Vec<Array4<f32>> = Vec::new();
            match (&layer.op, &tape.caches[i]) {
                (
                    Op::Conv {
                        stride,
                        padding,
                        bias,
                        ..
                    },
                    Cache::Conv { x },
                ) => {
                    let wt = p4(&self.params, &format!("{name}.weight"))?;
                    let (dx, dw, db) = ops::conv::conv2d_backward(x, &wt, *stride, *padding, &dy)?;
                    add_grad(&mut grads, format!("{name}.weight"), dw.into_dyn());
                    if *bias {
                        add_grad(&mut grads, format!("{name}.bias"), db.into_dyn());
                    }
                    dins.push(dx);
                }
                (Op::Linear { bias, .. }, Cache::Conv { x }) => {
                    let wt = p4(&self.params, &format!("{name}.weight"))?;
                    let (dx, dw, db) = ops::conv::conv2d_backward(x, &wt, 1, 0, &dy)?;
                    let shape = self.params[&format!("{name}.weight")].raw_dim();
                    add_grad(
                        &mut grads,
                        format!("{name}.weight"),
                        dw.into_shape_with_order(shape).expect("same size"),
                    );
                    if *bias {
                        add_grad(&mut grads, format!("{name}.bias"), db.into_dyn());
                    }
                    dins.push(dx);
                }
                (op, Cache::BinConv { x, a }) => {
                    let (stride, pad, bias) = match op {
                        Op::Conv {
                            stride,
                            padding,
                            bias,
                            ..
                        } => (*stride, *padding, *bias),
                        Op::Linear { bias, .. } => (1, 0, *bias),
                        _ => unreachable!("binarized layers are conv or linear"),
                    };
                    let bwi = bw[i].as_ref().expect("binarized layer has weights");
                    let (da, dapprox, db) =
                        ops::conv::conv2d_backward(a, &bwi.approx, stride, pad, &dy)?;
                    if bias {
                        add_grad(&mut grads, format!("{name}.bias"), db.into_dyn());
                    }
                    let wname = format!("{name}.weight");
                    let w = p4(&self.params, &wname)?;
                    let shape = self.params[&wname].raw_dim();
                    let (dx, dw) = match bwi.scheme {
                        BinScheme::Xnor => {
                            let dx = ops::activation::sign_ste_backward(x, &da)?;
                            let g = ops::xnor::xnor_binarize_backward(&w, &dapprox)?;
                            (dx, g.total)
                        }
                        BinScheme::Abc { .. } => {
                            let g = ops::abc::abc_activation_backward(x, &bwi.act, &da)?;
                            add_grad(
                                &mut grads,
                                format!("{name}.act_shift"),
                                Array1::from(g.dv).into_dyn(),
                            );
                            add_grad(
                                &mut grads,
                                format!("{name}.act_scale"),
                                Array1::from(g.dbeta).into_dyn(),
                            );
                            let abc = bwi.abc.as_ref().expect("abc weights");
                            let (dw, _dalphas) =
                                ops::abc::abc_binarize_backward(&w, abc, &dapprox)?;
                            (g.dx, dw)
                        }
                    };
                    add_grad(
                        &mut grads,
                        wname,
                        dw.into_shape_with_order(shape).expect("same size"),
                    );
                    dins.push(dx);
                }
                (Op::BatchNorm { .. }, Cache::Bn { x, stats }) => {
                    let g = p1(&self.params, &format!("{name}.weight"))?;
                    let (dx, dg, db) = match stats {
                        None => {
                            let rm = p1(&self.params, &format!("{name}.running_mean"))?;
                            let rv = p1(&self.params, &format!("{name}.running_var"))?;
                            ops::batchnorm::batch_norm_inference_backward(
                                x, &g, &rm, &rv, BN_EPS, &dy,
                            )?
                        }
                        Some(s) => ops::batchnorm::batch_norm_train_backward(x, &g, s, &dy)?,
                    };
                    add_grad(&mut grads, format!("{name}.weight"), dg.into_dyn());
                    add_grad(&mut grads, format!("{name}.bias"), db.into_dyn());
                    dins.push(dx);
                }
                (Op::Relu, Cache::Act { x }) => dins.push(ops::activation::relu_backward(x, &dy)?),
                (Op::Hardtanh, Cache::Act { x }) => {
                    dins.push(ops::activation::hardtanh_backward(x, &dy)?)
                }
                (Op::Add, _) => {
                    for _ in 0..layer.inputs.len().max(1) {
                        dins.push(dy.clone());
                    }
                }
                (Op::ShortcutA { stride, .. }, Cache::Dim { dim }) => {
                    dins.push(ops::shortcut::shortcut_a_backward(*dim, *stride, &dy)?)
                }
                (Op::MaxPool { .. }, Cache::MaxPool { dim, arg }) => {
                    dins.push(ops::pool::max_pool2d_backward(*dim, arg, &dy)?)
                }
                (
                    Op::AvgPool {
                        kernel,
                        stride,
                        padding,
                    },
                    Cache::Dim { dim },
                ) => dins.push(ops::pool::avg_pool2d_backward(
                    *dim, *kernel, *stride, *padding, &dy,
                )?),
                (Op::GlobalAvgPool, Cache::Dim { dim }) => {
                    let dy2 = dy
                        .into_shape_with_order((dim.0, dim.1))
                        .expect("[N, C, 1, 1]");
                    dins.push(ops::pool::global_avg_pool_backward(*dim, &dy2)?)
                }
                _ => unreachable!("cache matches op"),
            }
            let targets: Vec<Option<usize>> = if layer.inputs.is_empty() {
                vec![None]
            } else {
                layer.inputs.iter().map(|&j| Some(j)).collect()
            };
            for (t, g) in targets.into_iter().zip(dins) {
                match t {
                    None => {
                        let g = g
                            .into_shape_with_order(tape.input_dim)
                            .map_err(|e| Error::input("backward", e.to_string()))?;
                        dinput += &g;
                    }
                    Some(j) => {
                        let shape = tape.outs[j].dim();
                        let g = if g.dim() == shape {
                            g
                        } else {
                            g.into_shape_with_order(shape)
                                .map_err(|e| Error::input("backward", e.to_string()))?
                        };
                        match &mut d[j] {
                            Some(acc) => *acc += &g,
                            slot @ None => *slot = Some(g),
                        }
                    }
                }
            }
        }
        // Normalisation x_norm = (x - mean) / std: d/dx_unit = d/dx_norm / std.
        let norm = &net.normalization;
        for (ch, mut plane) in dinput.axis_iter_mut(Axis(1)).enumerate() {
            let s = norm.std[ch];
            plane.mapv_inplace(|v| v / s);
        }
        Ok(Grads {
            input: dinput,
            params: grads,
        })
    }

    /// Batch statistics recorded by a training-mode forward pass, for the running-stat update:
    /// (bn layer name, stats).
    pub fn bn_batch_stats<'t>(
        &self,
        tape: &'t Tape,
    ) -> Vec<(&str, &'t ops::batchnorm::BnBatchStats)> {
        self.cn
            .network
            .layers
            .iter()
            .zip(&tape.caches)
            .filter_map(|(l, c)| match c {
                Cache::Bn { stats: Some(s), .. } => Some((l.name.as_str(), s)),
                _ => None,
            })
            .collect()
    }

    /// Output of layer `name` recorded on the tape (e.g. the last conv feature maps for CAM).
    pub fn layer_output<'t>(&self, tape: &'t Tape, name: &str) -> Option<&'t Array4<f32>> {
        let i = self.cn.network.index_of(name)?;
        tape.outs.get(i)
    }
}

/// The activation side of a binarized layer, prepared once for all its weight bases: the
/// +/-1 activation bases (float backend, or when the combined activation is wanted) and their
/// packed words (bitwise backend). XNOR on the bitwise backend packs `x` itself: the packer's
/// `v < 0` rule is the crate's sign, sign(0) = +1, and it rejects NaN instead of mapping it to
/// -1.
struct BinInputs {
    acts: Vec<Array4<f32>>,
    packed: Vec<bin::PackedActivations>,
    backend: ConvBackend,
}

/// The integer sums `s_ij` of one (weight base, activation base) pair, as the backend made them.
enum Sums {
    Float(Array4<f32>),
    Int(Array4<i32>),
}

impl BinInputs {
    fn new(
        x: &Array4<f32>,
        bw: &BinWeights,
        backend: ConvBackend,
        want_acts: bool,
    ) -> Result<Self> {
        let xnor_direct =
            backend == ConvBackend::Bitwise && !want_acts && bw.scheme == BinScheme::Xnor;
        let acts: Vec<Array4<f32>> = match bw.scheme {
            _ if xnor_direct => Vec::new(),
            BinScheme::Xnor => vec![ops::activation::sign(x)],
            BinScheme::Abc { .. } => ops::abc::abc_activation(x, &bw.act)?.bases,
        };
        let packed = match backend {
            ConvBackend::Float => Vec::new(),
            ConvBackend::Bitwise if xnor_direct => vec![bin::pack_activations(x)?],
            ConvBackend::Bitwise => acts
                .iter()
                .map(bin::pack_activations)
                .collect::<Result<Vec<_>>>()?,
        };
        Ok(BinInputs {
            acts,
            packed,
            backend,
        })
    }

    /// `s_ij = conv(a_j, B_i)`.
    fn sums(&self, bw: &BinWeights, i: usize, j: usize, stride: usize, pad: usize) -> Result<Sums> {
        Ok(match self.backend {
            ConvBackend::Float => Sums::Float(ops::conv::conv2d(
                &self.acts[j],
                &bw.bases[i],
                None,
                stride,
                pad,
            )?),
            ConvBackend::Bitwise => {
                let plans = bw
                    .plans
                    .as_ref()
                    .ok_or_else(|| Error::input("binary engine", "weights were not packed"))?;
                Sums::Int(plans[i].forward(&self.packed[j], stride, pad)?)
            }
        })
    }
}

/// `k[o] = alpha_i[o] * beta_j`, the scale of pair (i, j).
fn pair_scale(bw: &BinWeights, i: usize, j: usize) -> Vec<f32> {
    bw.alphas[i].iter().map(|a| a * bw.act.betas[j]).collect()
}

/// One binarized conv (linear layers as 1x1 convs on `[N, I, 1, 1]`). Returns the output, the
/// combined activation `A = sum_j beta_j a_j` (for the backward pass; empty unless
/// `want_combined`) and the accumulators (empty unless `keep_accs`).
///
/// `y` starts at zero and receives `(alpha_i[o] * beta_j) * s_ij` for each base pair in the
/// order (i, j), whichever backend produced `s_ij`: this fixed order is what makes the two
/// engines bit-identical. The activation bases are prepared once per layer ([`BinInputs`]).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn bin_forward(
    x: &Array4<f32>,
    bw: &BinWeights,
    bias: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    backend: ConvBackend,
    want_combined: bool,
    keep_accs: bool,
) -> Result<(Array4<f32>, Array4<f32>, Vec<(usize, usize, Array4<f32>)>)> {
    let inputs = BinInputs::new(x, bw, backend, want_combined)?;
    let combined = if want_combined {
        let mut c = Array4::<f32>::zeros(x.raw_dim());
        for (a, &beta) in inputs.acts.iter().zip(&bw.act.betas) {
            c.scaled_add(beta, a);
        }
        c
    } else {
        Array4::zeros((0, 0, 0, 0))
    };
    let mut y: Option<Array4<f32>> = None;
    let mut accs = Vec::new();
    for i in 0..bw.bases.len() {
        for j in 0..bw.act.betas.len() {
            let k = pair_scale(bw, i, j);
            match inputs.sums(bw, i, j, stride, pad)? {
                Sums::Float(s) => {
                    let acc = y.get_or_insert_with(|| Array4::zeros(s.raw_dim()));
                    accumulate(acc, &s, &k, |t| t);
                    if keep_accs {
                        accs.push((i, j, s));
                    }
                }
                Sums::Int(s) => {
                    let acc = y.get_or_insert_with(|| Array4::zeros(s.raw_dim()));
                    // |s| <= C*k*k < 2^24, so the conversion is exact.
                    accumulate(acc, &s, &k, |t| t as f32);
                    if keep_accs {
                        accs.push((i, j, s.mapv(|v| v as f32)));
                    }
                }
            }
        }
    }
    let mut y = y.expect("at least one base");
    if let Some(b) = bias {
        for (mut yo, &bo) in y.axis_iter_mut(Axis(1)).zip(b.iter()) {
            yo.mapv_inplace(|v| v + bo);
        }
    }
    Ok((y, combined, accs))
}

/// [`bin_forward`] followed by a fusion epilogue, for the inference path. With one weight base
/// and one activation base (XNOR, ABC 1x1) each output row is scaled and sent through the
/// epilogue as it leaves the binary conv (`0 + k*s`, `+ bias`, then the epilogue: the same
/// operations in the same order as [`bin_forward`] accumulating into a zeroed tensor followed
/// by the BN/add/activation ops, so the result is bit-identical) instead of three passes over
/// the feature maps.
#[allow(clippy::too_many_arguments)]
fn bin_forward_fused(
    x: &Array4<f32>,
    bw: &BinWeights,
    bias: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    backend: ConvBackend,
    ep: &ops::epilogue::Epilogue<'_>,
    residual: Option<&Array4<f32>>,
) -> Result<Array4<f32>> {
    if bw.bases.len() != 1 || bw.act.betas.len() != 1 {
        let mut y = bin_forward(x, bw, bias, stride, pad, backend, false, false)?.0;
        epilogue_inplace(&mut y, ep, residual)?;
        return Ok(y);
    }
    let k = pair_scale(bw, 0, 0);
    // The integer sums `s` as f32 (float backend) or i32 (bitwise), both standard layout.
    let (sf, si) = match BinInputs::new(x, bw, backend, false)?.sums(bw, 0, 0, stride, pad)? {
        Sums::Float(s) => (Some(s), None),
        Sums::Int(s) => (None, Some(s)),
    };
    let dim = sf
        .as_ref()
        .map_or_else(|| si.as_ref().expect("one").dim(), |s| s.dim());
    check_residual(dim, residual)?;
    let (c, plane) = (dim.1, dim.2 * dim.3);
    let r_std = residual.map(|r| r.as_standard_layout());
    let rs = r_std
        .as_ref()
        .map(|r| r.as_slice().expect("standard layout"));
    let sf_s = sf.as_ref().map(|s| s.as_slice().expect("standard layout"));
    let si_s = si.as_ref().map(|s| s.as_slice().expect("standard layout"));
    let bias = bias.map(|b| b.to_vec());
    let ep = ops::epilogue::Epilogue {
        bias: bias.as_deref(),
        ..*ep
    };
    let mut y = Array4::<f32>::uninit(dim);
    if c * plane > 0 {
        y.as_slice_mut()
            .expect("fresh array")
            .par_chunks_mut(c * plane)
            .enumerate()
            .for_each(|(n, img)| {
                for (o, row) in img.chunks_mut(plane).enumerate() {
                    let at = (n * c + o) * plane;
                    let ko = k[o];
                    let res = rs.map(|r| &r[at..at + plane]);
                    // |s| <= C*k*k < 2^24, so the conversion is exact; `0 + k*s` is what
                    // accumulating into a zeroed tensor computes.
                    match (sf_s, si_s) {
                        (Some(s), _) => {
                            ep.row_map(o, row, &s[at..at + plane], |v| 0.0 + ko * v, res)
                        }
                        (_, Some(s)) => {
                            ep.row_map(o, row, &s[at..at + plane], |v| 0.0 + ko * v as f32, res)
                        }
                        _ => unreachable!("one backend ran"),
                    }
                }
            });
    }
    // SAFETY: every row of every image was written by `row_map` above (nothing to write
    // for an empty tensor).
    Ok(unsafe { y.assume_init() })
}

/// Whether layer `j` is a binary conv the bitwise backend runs channel-last.
fn bitwise_nhwc(bw: &[Option<BinWeights>], j: usize) -> bool {
    bw.get(j)
        .and_then(|b| b.as_ref())
        .is_some_and(|b| nhwc_conv(b, ConvBackend::Bitwise))
}

/// Whether the inference path runs this binary conv channel-last ([`bin_forward_nhwc`]):
/// bitwise XNOR (one weight and one activation base, the activation base `sign(x)`) on a
/// multiple of 8 input channels.
fn nhwc_conv(bw: &BinWeights, backend: ConvBackend) -> bool {
    backend == ConvBackend::Bitwise
        && bw.scheme == BinScheme::Xnor
        && bw.bases.len() == 1
        && bw.act.betas.len() == 1
        && bw
            .plans
            .as_ref()
            .is_some_and(|p| p.len() == 1 && p[0].supports_nhwc())
}

/// [`bin_forward_fused`] channel-last: the binary conv's pixel-major sums go through the
/// epilogue row by row as [`BConv2d::forward_framed`] produces them, with the same scalar
/// expression per element (`0 + k*s`, `+ bias`, then the epilogue), so the values are
/// bit-identical to the NCHW path's. Returns an NHWC map, or with the plan's `bits_out` only
/// the signs, framed for the next conv; with its `frame_out` (and a clean sweep) also the
/// signs of the NHWC map, framed for the conv that reads it. Reads `x` as floats, as bits
/// framed for this conv, or from `frame_in` (the same map's signs framed for this conv).
#[allow(clippy::too_many_arguments)]
fn bin_forward_nhwc(
    x: &FeatureMap,
    frame_in: Option<&FramedBits>,
    bw: &BinWeights,
    bias: Option<&Array1<f32>>,
    stride: usize,
    pad: usize,
    ep: &ops::epilogue::Epilogue<'_>,
    residual: Option<&FeatureMap>,
    plan: &InferPlan,
    i: usize,
) -> Result<(FeatureMap, Option<FramedBits>)> {
    let (bits, rows_cache) = (plan.bits_out[i].as_ref(), &plan.pixel_rows[i]);
    let conv = &bw.plans.as_ref().expect("checked by nhwc_conv")[0];
    let (n, c, h, w) = x.dim();
    let (o, ci, _, _) = conv.dim();
    if c != ci {
        return Err(Error::input(
            "bconv2d input",
            format!("{c} channels, weights expect {ci}"),
        ));
    }
    let (oh, ow) = conv.output_size(h, w, stride, pad)?;
    check_residual_dim((n, o, oh, ow), residual.map(|r| r.dim()))?;
    let path = PopcountPath::detect();
    // One image's conv, rows handed to `emit`, from floats or from this conv's frames.
    let frame_in = match x {
        FeatureMap::Bits(fb) => Some(fb),
        _ => frame_in,
    };
    let floats = match frame_in {
        Some(_) => None,
        None => Some(x.nhwc()),
    };
    let xs = floats
        .as_ref()
        .map(|f| f.as_slice().expect("standard layout"));
    let in_frame = framed_len(h, w, c, pad);
    if let Some(fb) = frame_in {
        // The plan framed them for this conv.
        assert!(
            fb.pad == pad && fb.data.len() == n * in_frame,
            "bits framed for this conv"
        );
    }
    // Image `img` framed for this conv (the producer's bits, or packed here), handed to `f`.
    let with_frame = |img: usize, f: &mut dyn FnMut(&[u8]) -> Result<()>| -> Result<()> {
        match (xs, frame_in) {
            (Some(xs), _) => {
                let mut buf = vec![0u8; in_frame];
                let x_img = &xs[img * h * w * c..(img + 1) * h * w * c];
                pack_framed(x_img, (h, w, c), pad, img, &mut buf)?;
                f(&buf)
            }
            (None, Some(fb)) => f(&fb.data[img * in_frame..(img + 1) * in_frame]),
            _ => unreachable!("floats or bits"),
        }
    };
    let conv_image = |img: usize, emit: &mut dyn FnMut(usize, &[i32])| -> Result<()> {
        with_frame(img, &mut |f| {
            conv.forward_framed(path, f, (h, w), stride, pad, &mut *emit)
        })
    };
    if let Some(bits) = bits {
        // Only the signs, straight into the next conv's frames (zero frame = +1 padding bits).
        let out_frame = framed_len(oh, ow, o, bits.pad);
        let mut data = vec![0u8; n * out_frame];
        if out_frame > 0 {
            data.par_chunks_mut(out_frame)
                .enumerate()
                .try_for_each(|(img, fr)| {
                    let bounds = (bits.lo.as_slice(), bits.hi.as_slice());
                    with_frame(img, &mut |f| {
                        conv.forward_framed_bits(path, f, (h, w), stride, pad, bounds, fr, bits.pad)
                    })
                })?;
        }
        let fb = FramedBits {
            data,
            n,
            h: oh,
            w: ow,
            c: o,
            pad: bits.pad,
        };
        return Ok((FeatureMap::Bits(fb), None));
    }
    let (img_out, row) = (oh * ow * o, ow * o);
    // The tiled epilogue depends only on the layer and its output width, which the network's
    // fixed input shape fixes: built once per plan, not once per image.
    let make_rows = || {
        let bias = bias.map(|b| b.to_vec());
        let ep = ops::epilogue::Epilogue {
            bias: bias.as_deref(),
            ..*ep
        };
        ep.pixel_rows(o, ow, &pair_scale(bw, 0, 0))
    };
    let fresh;
    let rows_ep = match rows_cache.get_or_init(make_rows) {
        cached if cached.row_len() == row => cached,
        _ => {
            fresh = make_rows();
            &fresh
        }
    };
    let r = residual.map(|r| r.nhwc());
    let rs = r.as_ref().map(|r| r.as_slice().expect("standard layout"));
    let mut y = Array4::<f32>::uninit((n, oh, ow, o));
    // The signs of the output for the conv that reads it, from the same sweep.
    let p2 = plan.frame_out[i].filter(|_| rows_ep.simd() && o.is_multiple_of(8));
    let out_frame = p2.map_or(0, |p2| framed_len(oh, ow, o, p2));
    let mut fdata = vec![0u8; n * out_frame];
    let clean = std::sync::atomic::AtomicBool::new(true);
    if img_out > 0 {
        let mut fimgs: Vec<Option<&mut [u8]>> = match out_frame {
            0 => (0..n).map(|_| None).collect(),
            len => fdata.chunks_mut(len).map(Some).collect(),
        };
        y.as_slice_mut()
            .expect("fresh array")
            .par_chunks_mut(img_out)
            .zip(fimgs.par_iter_mut())
            .enumerate()
            .try_for_each(|(img, (dst, fr))| {
                conv_image(img, &mut |oy, sums| {
                    let at = img * img_out + oy * row;
                    let d = &mut dst[oy * row..(oy + 1) * row];
                    let res = rs.map(|r| &r[at..at + row]);
                    match (fr.as_deref_mut(), p2) {
                        (Some(fr), Some(p2)) => {
                            let fa = row_start(oy, ow, o, p2);
                            let signs = &mut fr[fa..fa + ow * o / 8];
                            if !rows_ep.apply_signs(d, sums, res, signs) {
                                clean.store(false, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        _ => rows_ep.apply(d, sums, res),
                    }
                })
            })?;
    }
    let frame = p2
        .filter(|_| clean.into_inner() && out_frame > 0)
        .map(|pad| FramedBits {
            data: fdata,
            n,
            h: oh,
            w: ow,
            c: o,
            pad,
        });
    // SAFETY: the conv emitted every output row of every image (it returns an error before
    // emitting anything otherwise, and the error is propagated above), and each row's
    // epilogue wrote all of it (nothing to write for an empty tensor).
    Ok((FeatureMap::Nhwc(unsafe { y.assume_init() }), frame))
}

/// Drops the outputs whose last reader is layer `i` (the network input is slot `nl`).
fn free_inputs<T>(
    outs: &mut [Option<T>],
    layer: &crate::model::Layer,
    last_use: &[usize],
    i: usize,
    nl: usize,
) {
    for &j in &layer.inputs {
        if last_use[j] == i {
            outs[j] = None;
        }
    }
    if layer.inputs.is_empty() && last_use[nl] == i {
        outs[nl] = None;
    }
}

/// A fused residual must have the conv output's shape.
fn check_residual(dim: (usize, usize, usize, usize), residual: Option<&Array4<f32>>) -> Result<()> {
    check_residual_dim(dim, residual.map(|r| r.dim()))
}

/// [`check_residual`] on the residual's `(N, C, H, W)`.
fn check_residual_dim(
    dim: (usize, usize, usize, usize),
    residual: Option<(usize, usize, usize, usize)>,
) -> Result<()> {
    match residual {
        Some(r) if r != dim => Err(Error::input(
            "residual add",
            format!("cannot add {dim:?} and {r:?}"),
        )),
        _ => Ok(()),
    }
}

/// Applies a fusion epilogue in place, parallel over the batch: to a multi-base binary conv's
/// output (its bias already added by [`bin_forward`]) or to a batch-norm's input.
fn epilogue_inplace(
    y: &mut Array4<f32>,
    ep: &ops::epilogue::Epilogue<'_>,
    residual: Option<&Array4<f32>>,
) -> Result<()> {
    check_residual(y.dim(), residual)?;
    if !y.is_standard_layout() {
        *y = y.as_standard_layout().into_owned();
    }
    let r_std = residual.map(|r| r.as_standard_layout());
    let rs = r_std
        .as_ref()
        .map(|r| r.as_slice().expect("standard layout"));
    let (c, plane) = (y.dim().1, y.dim().2 * y.dim().3);
    if c * plane == 0 {
        return Ok(());
    }
    y.as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(c * plane)
        .enumerate()
        .for_each(|(n, img)| {
            for (o, d) in img.chunks_mut(plane).enumerate() {
                let at = (n * c + o) * plane;
                ep.row_inplace(o, d, rs.map(|r| &r[at..at + plane]));
            }
        });
    Ok(())
}

/// `y[n, o] += k[o] * s[n, o]`, parallel over the batch.
fn accumulate<T: Copy + Send + Sync>(
    y: &mut Array4<f32>,
    s: &Array4<T>,
    k: &[f32],
    to_f32: impl Fn(T) -> f32 + Sync,
) {
    y.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(s.axis_iter(Axis(0)).into_par_iter())
        .for_each(|(mut yn, sn)| {
            for ((mut yo, so), &ko) in yn.axis_iter_mut(Axis(0)).zip(sn.axis_iter(Axis(0))).zip(k) {
                yo.zip_mut_with(&so, |v, &t| *v += ko * to_f32(t));
            }
        });
}

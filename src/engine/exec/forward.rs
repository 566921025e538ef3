//! The taped forward pass: runs every layer in topological order on a batch and records on a
//! [`Tape`] what each op's backward needs beyond the layer inputs, which the tape already holds
//! as the producers' outputs (BN batch statistics, pooling argmax, the binarized layers'
//! combined activations, optionally their integer accumulators), plus the eval-mode taped pass
//! the attacks' input gradients use ([`Net::forward_taped_eval`]: one tape per image).

use ndarray::{Array2, Array4};
use rayon::prelude::*;

use super::binary_layer::bin_forward;
use super::params::{p1, p4, BinWeights};
use super::{to_flat4, ConvBackend, Mode, Net, BN_EPS};
use crate::engine::ops;
use crate::model::Op;
use crate::{Error, Result};

/// What a layer's backward needs besides its inputs (read from the tape, see
/// [`Tape::layer_input`]).
pub(super) enum Cache {
    None,
    Conv,
    BinConv {
        a: Array4<f32>,
    },
    Bn {
        stats: Option<ops::batchnorm::BnBatchStats>,
    },
    Act,
    MaxPool {
        dim: (usize, usize, usize, usize),
        arg: Array4<usize>,
    },
    Dim {
        dim: (usize, usize, usize, usize),
    },
}

/// What the forward pass recorded for the backward pass: every layer's output (so each layer's
/// input too) and the normalised network input. A tape from [`Net::forward_taped_eval`] holds
/// one such tape per image instead (`images`), and only [`Net::input_grad`] reads it.
pub struct Tape {
    pub(super) outs: Vec<Array4<f32>>,
    pub(super) caches: Vec<Cache>,
    pub(super) input: Array4<f32>,
    pub(super) input_dim: (usize, usize, usize, usize),
    /// Shape of every layer output (kept when [`Net::forward_taped_eval`] drops the output).
    pub(super) dims: Vec<(usize, usize, usize, usize)>,
    pub(super) images: Vec<Tape>,
    /// Integer accumulators `s_ij` of every binarized layer, when requested:
    /// (layer index, weight base i, activation base j, sums).
    pub accumulators: Vec<(usize, usize, usize, Array4<f32>)>,
}

impl Net {
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
        crate::engine::heap::keep_freed_memory();
        let x0 = self.normalized_input(x)?;
        let mut tape = Tape {
            outs: Vec::with_capacity(net.layers.len()),
            caches: Vec::with_capacity(net.layers.len()),
            input: Array4::zeros((0, 0, 0, 0)),
            input_dim: x.dim(),
            dims: Vec::with_capacity(net.layers.len()),
            images: Vec::new(),
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
                    let flat;
                    let (xi, stride, pad, bias) = match op {
                        Op::Conv {
                            stride,
                            padding,
                            bias,
                            ..
                        } => (input(0), *stride, *padding, *bias),
                        Op::Linear { bias, .. } => {
                            flat = to_flat4(input(0));
                            (&flat, 1, 0, *bias)
                        }
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
                            let y = ops::conv::conv2d(xi, &wt, b.as_ref(), stride, pad)?;
                            (y, Cache::Conv)
                        }
                        Some(bwi) => {
                            let (y, a, accs) = bin_forward(
                                xi,
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
                            (y, Cache::BinConv { a })
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
                            (y, Cache::Bn { stats: None })
                        }
                        Mode::Train => {
                            let (y, stats) = ops::batchnorm::batch_norm_train(xi, &g, &b, BN_EPS)?;
                            (y, Cache::Bn { stats: Some(stats) })
                        }
                    }
                }
                Op::Relu => (ops::activation::relu(input(0)), Cache::Act),
                Op::Hardtanh => (ops::activation::hardtanh(input(0)), Cache::Act),
                Op::Add => {
                    let mut y = match layer.inputs.len() {
                        0 | 1 => input(0).clone(),
                        _ => ops::shortcut::residual_add(input(0), input(1))?,
                    };
                    for s in 2..layer.inputs.len() {
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
            tape.dims.push(y.dim());
            tape.outs.push(y);
            tape.caches.push(cache);
        }
        tape.input = x0;
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

    /// Eval-mode taped forward for input gradients (the attacks' path): logits `[N, classes]`
    /// bit-identical to [`Net::forward`] in [`Mode::Eval`] on the float backend (and so to
    /// [`Net::infer`]), and a tape for [`Net::input_grad`].
    ///
    /// Each image runs through the network on its own (in parallel over images), and so does
    /// its backward pass in [`Net::input_grad`]: every GEMM holds one image, so an image's
    /// logits and input gradient are bitwise the same whatever other images share the batch and
    /// whatever the thread count. Only layer outputs and what the input gradient needs are
    /// recorded (no accumulators); the tape is not for [`Net::backward`].
    pub fn forward_taped_eval(
        &self,
        x: &Array4<f32>,
        bw: &[Option<BinWeights>],
    ) -> Result<(Array2<f32>, Tape)> {
        self.check_input(x)?;
        let keep = self.kept_for_input_grad(bw);
        let per: Vec<(Array2<f32>, Tape)> = (0..x.dim().0)
            .into_par_iter()
            .map(|i| self.image_tape(x, i, bw, &keep))
            .collect::<Result<_>>()?;
        let classes = self.cn.network.num_classes;
        let mut logits = Array2::<f32>::zeros((per.len(), classes));
        let mut images = Vec::with_capacity(per.len());
        for (i, (z, t)) in per.into_iter().enumerate() {
            logits.row_mut(i).assign(&z.row(0));
            images.push(t);
        }
        Ok((
            logits,
            Tape {
                outs: Vec::new(),
                caches: Vec::new(),
                input: Array4::zeros((0, 0, 0, 0)),
                input_dim: x.dim(),
                dims: Vec::new(),
                images,
                accumulators: Vec::new(),
            },
        ))
    }

    /// [`Net::forward_taped_eval`] and [`Net::input_grad`] in one call, each image's forward
    /// and backward back to back while its tape is in cache: `dloss(i, logits_i)` gives
    /// `d loss / d logits` of image `i` (e.g. the gradient of that image's cross-entropy).
    /// Returns the logits `[N, classes]` and the input gradients `[N, C, H, W]`, bitwise equal
    /// to the two-call route's and, like them, independent of the batch and the thread count.
    pub fn logits_and_input_grad<F>(
        &self,
        x: &Array4<f32>,
        bw: &[Option<BinWeights>],
        dloss: F,
    ) -> Result<(Array2<f32>, Array4<f32>)>
    where
        F: Fn(usize, ndarray::ArrayView1<'_, f32>) -> Result<ndarray::Array1<f32>> + Sync,
    {
        self.check_input(x)?;
        let keep = self.kept_for_input_grad(bw);
        let kernels = self.transposed_kernels(bw)?;
        let n = x.dim().0;
        let per: Vec<(Array2<f32>, Array4<f32>)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let (z, tape) = self.image_tape(x, i, bw, &keep)?;
                let dz = dloss(i, z.row(0))?;
                if dz.len() != z.len() {
                    return Err(Error::input(
                        "dloss",
                        format!("gave {} values for {} logits", dz.len(), z.len()),
                    ));
                }
                let dz = dz.into_shape_with_order((1, z.len())).expect("one row");
                Ok((z, self.image_input_grad(&tape, bw, &dz, &kernels)?))
            })
            .collect::<Result<_>>()?;
        let classes = self.cn.network.num_classes;
        let mut logits = Array2::<f32>::zeros((n, classes));
        let mut grad = Array4::<f32>::zeros(x.dim());
        for (i, (z, g)) in per.into_iter().enumerate() {
            logits.row_mut(i).assign(&z.row(0));
            grad.slice_mut(ndarray::s![i..i + 1, .., .., ..]).assign(&g);
        }
        Ok((logits, grad))
    }

    /// Which layer outputs (and, last slot, the network input) an input-only backward reads:
    /// the inputs of activations (their masks) and of binarized layers (the straight-through
    /// estimator's mask). Convs, eval-mode BN, adds and pools need only shapes.
    fn kept_for_input_grad(&self, bw: &[Option<BinWeights>]) -> Vec<bool> {
        let layers = &self.cn.network.layers;
        let mut keep = vec![false; layers.len() + 1];
        for (i, l) in layers.iter().enumerate() {
            if matches!(l.op, Op::Relu | Op::Hardtanh) || bw[i].is_some() {
                if l.inputs.is_empty() {
                    keep[layers.len()] = true;
                }
                for &j in &l.inputs {
                    keep[j] = true;
                }
            }
        }
        keep
    }

    /// The eval-mode taped forward of image `i` of `x` (checked), keeping only the outputs an
    /// input-only backward reads (`keep`, from [`Net::kept_for_input_grad`]).
    fn image_tape(
        &self,
        x: &Array4<f32>,
        i: usize,
        bw: &[Option<BinWeights>],
        keep: &[bool],
    ) -> Result<(Array2<f32>, Tape)> {
        let xi = x.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
        let (z, mut t) = self.forward(&xi, Mode::Eval, ConvBackend::Float, bw, false)?;
        let empty = || Array4::zeros((0, 0, 0, 0));
        for (o, k) in t.outs.iter_mut().zip(keep) {
            if !k {
                *o = empty();
            }
        }
        if !keep[keep.len() - 1] {
            t.input = empty();
        }
        Ok((z, t))
    }

    /// Output of layer `name` recorded on the tape (e.g. the last conv feature maps for CAM).
    pub fn layer_output<'t>(&self, tape: &'t Tape, name: &str) -> Option<&'t Array4<f32>> {
        let i = self.cn.network.index_of(name)?;
        tape.outs.get(i)
    }
}

impl Tape {
    /// Shape of input `slot` of `layer`.
    pub(super) fn layer_input_dim(
        &self,
        layer: &crate::model::Layer,
        slot: usize,
    ) -> (usize, usize, usize, usize) {
        match layer.inputs.get(slot) {
            Some(&j) => self.dims[j],
            None => self.input_dim,
        }
    }

    /// Input `slot` of `layer` (the network input for a layer without inputs).
    pub(super) fn layer_input(&self, layer: &crate::model::Layer, slot: usize) -> &Array4<f32> {
        match layer.inputs.get(slot) {
            Some(&j) => &self.outs[j],
            None => &self.input,
        }
    }
}

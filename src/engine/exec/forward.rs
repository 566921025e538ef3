//! The taped forward pass: runs every layer in topological order on a batch and records on a
//! [`Tape`] what each op's backward needs (its input, BN batch statistics, pooling argmax,
//! optionally the binarized layers' integer accumulators).

use ndarray::{Array2, Array4};

use super::binary_layer::bin_forward;
use super::params::{p1, p4, BinWeights};
use super::{to_flat4, ConvBackend, Mode, Net, BN_EPS};
use crate::engine::ops;
use crate::model::Op;
use crate::{Error, Result};

pub(super) enum Cache {
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
    pub(super) outs: Vec<Array4<f32>>,
    pub(super) caches: Vec<Cache>,
    pub(super) input_dim: (usize, usize, usize, usize),
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

//! The tape-free inference runtime: runs each image through the whole network on its own
//! (parallel over images), following an [`InferPlan`]: feature maps in the layout their
//! producer wrote, dropped after their last reader, fused groups in one pass.

use ndarray::{Array2, Array4, Axis};
use rayon::prelude::*;

use super::binary_layer::{
    bin_forward, bin_forward_fused, bin_forward_nhwc, epilogue_inplace, nhwc_conv,
};
use super::params::BinWeights;
use super::plan::InferPlan;
use super::{to_flat4, ConvBackend, Net};
use crate::engine::fmap::{FeatureMap, FramedBits};
use crate::engine::ops;
use crate::model::Op;
use crate::{Error, Result};

impl Net {
    /// Inference-only forward pass (eval-mode BN): the same arithmetic as [`Net::forward`] in
    /// [`super::Mode::Eval`], so the logits are bit-identical, but no tape.
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
                                xi,
                                fin,
                                bwi,
                                b,
                                *stride,
                                *padding,
                                &ep,
                                residual,
                                plan.nhwc_out(i),
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

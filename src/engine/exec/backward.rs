//! The backward pass: from `d loss / d logits`, walks the [`Tape`] in reverse and returns the
//! gradients w.r.t. the unit-scale input and every parameter (binarized layers through the
//! straight-through estimator, see the module doc of [`super`]); [`Net::input_grad`] walks the
//! same way for the input gradient alone (no weight, bias or BN parameter gradients computed).

use ndarray::{Array1, Array2, Array4, ArrayD, Axis};

use super::forward::{Cache, Tape};
use super::params::{p1, p4, BinWeights};
use super::{to_flat4, Net, BN_EPS};
use crate::engine::ops;
use crate::engine::params::{BinScheme, Params};
use crate::model::Op;
use crate::{Error, Result};
use rayon::prelude::*;

/// A float layer's weight and the kernel of its input gradient as a forward convolution.
pub(super) struct Kernels {
    w: Option<Array4<f32>>,
    flipped: Array4<f32>,
}

/// Every layer's input-gradient kernels ([`Net::input_grad_kernels`]): a function of the weights
/// only, so a caller that takes many input gradients of one network (the attacks) prepares them
/// once instead of once per call.
pub struct InputGradKernels(Vec<Option<Kernels>>);

/// Gradients of one backward pass.
pub struct Grads {
    /// d loss / d input, unit scale, `[N, C, H, W]`.
    pub input: Array4<f32>,
    /// d loss / d parameter, by parameter name.
    pub params: Params,
}

impl Net {
    /// Backward pass from `dlogits` (`[N, classes]`). Returns input and parameter gradients.
    pub fn backward(
        &self,
        tape: &Tape,
        bw: &[Option<BinWeights>],
        dlogits: &Array2<f32>,
        want_params: bool,
    ) -> Result<Grads> {
        if !tape.images.is_empty() {
            return Err(Error::input(
                "tape",
                "a per-image tape of forward_taped_eval gives input gradients only (input_grad)",
            ));
        }
        self.walk(tape, bw, dlogits, want_params, None)
    }

    /// The input-only walk over one image's tape.
    pub(super) fn image_input_grad(
        &self,
        tape: &Tape,
        bw: &[Option<BinWeights>],
        dlogits: &Array2<f32>,
        kernels: &[Option<Kernels>],
    ) -> Result<Array4<f32>> {
        Ok(self.walk(tape, bw, dlogits, false, Some(kernels))?.input)
    }

    /// Per layer, the kernel of its input gradient as a forward convolution
    /// ([`ops::conv::flipped`]: of the float weight, or of a binarized layer's `W_approx`),
    /// prepared once for every image of an [`Net::input_grad`] call.
    /// Float layers get their weight too (`[O, C, KH, KW]`), so the images do not each convert
    /// it again.
    pub(super) fn transposed_kernels(
        &self,
        bw: &[Option<BinWeights>],
    ) -> Result<Vec<Option<Kernels>>> {
        self.cn
            .network
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| match (&l.op, &bw[i]) {
                (Op::Conv { .. } | Op::Linear { .. }, Some(b)) => Ok(Some(Kernels {
                    w: None,
                    flipped: ops::conv::flipped(&b.approx),
                })),
                (Op::Conv { .. } | Op::Linear { .. }, None) => {
                    let w = p4(&self.params, &format!("{}.weight", l.name))?;
                    Ok(Some(Kernels {
                        flipped: ops::conv::flipped(&w),
                        w: Some(w),
                    }))
                }
                _ => Ok(None),
            })
            .collect()
    }

    /// Gradient w.r.t. the unit-scale input of `sum dlogits * logits`, for a tape of
    /// [`Net::forward_taped_eval`] (or of [`Net::forward`]) and the same `bw`. Computes no
    /// parameter gradient: a conv passes back `W^T dy` only, an eval-mode BN `scale * dy`.
    /// On a per-image tape each image's backward runs on its own (in parallel over images),
    /// so image `i`'s gradient depends only on image `i` and `dlogits` row `i`.
    pub fn input_grad(
        &self,
        tape: &Tape,
        bw: &[Option<BinWeights>],
        dlogits: &Array2<f32>,
    ) -> Result<Array4<f32>> {
        self.input_grad_with(tape, bw, &self.input_grad_kernels(bw)?, dlogits)
    }

    /// The kernels [`Net::input_grad_with`] reads, for these weights and `bw`.
    pub fn input_grad_kernels(&self, bw: &[Option<BinWeights>]) -> Result<InputGradKernels> {
        Ok(InputGradKernels(self.transposed_kernels(bw)?))
    }

    /// [`Net::input_grad`] with kernels prepared once by [`Net::input_grad_kernels`] (same `bw`).
    pub fn input_grad_with(
        &self,
        tape: &Tape,
        bw: &[Option<BinWeights>],
        kernels: &InputGradKernels,
        dlogits: &Array2<f32>,
    ) -> Result<Array4<f32>> {
        let flips = &kernels.0;
        if tape.images.is_empty() {
            return Ok(self.walk(tape, bw, dlogits, false, Some(flips))?.input);
        }
        let n = tape.images.len();
        if dlogits.dim().0 != n {
            return Err(Error::input(
                "dlogits",
                format!("has {} rows for a tape of {n} images", dlogits.dim().0),
            ));
        }
        let per: Vec<Array4<f32>> = tape
            .images
            .par_iter()
            .enumerate()
            .map(|(i, t)| {
                let di = dlogits.slice(ndarray::s![i..i + 1, ..]).to_owned();
                self.image_input_grad(t, bw, &di, flips)
            })
            .collect::<Result<_>>()?;
        let views: Vec<_> = per.iter().map(|d| d.view()).collect();
        if views.is_empty() {
            return Ok(Array4::zeros(tape.input_dim));
        }
        Ok(ndarray::concatenate(Axis(0), &views).expect("same image shape"))
    }

    /// The reverse walk. With `flips` (from [`Net::transposed_kernels`]) only the input
    /// gradient is computed: no parameter gradient at all.
    fn walk(
        &self,
        tape: &Tape,
        bw: &[Option<BinWeights>],
        dlogits: &Array2<f32>,
        want_params: bool,
        flips: Option<&[Option<Kernels>]>,
    ) -> Result<Grads> {
        let input_only = flips.is_some();
        let flip = |i: usize| flips.and_then(|f| f[i].as_ref()).map(|k| &k.flipped);
        // The float weight of layer `i` (prepared once in the input-only walk).
        let weight = |i: usize, name: &str| -> Result<std::borrow::Cow<'_, Array4<f32>>> {
            match flips.and_then(|f| f[i].as_ref()).and_then(|k| k.w.as_ref()) {
                Some(w) => Ok(std::borrow::Cow::Borrowed(w)),
                None => Ok(std::borrow::Cow::Owned(p4(
                    &self.params,
                    &format!("{name}.weight"),
                )?)),
            }
        };
        let net = &self.cn.network;
        let nl = net.layers.len();
        let mut d: Vec<Option<Array4<f32>>> = vec![None; nl];
        let last_dim = tape.dims[nl - 1];
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
                    Cache::Conv,
                ) => {
                    let wt = weight(i, name)?;
                    if input_only {
                        let dx = ops::conv::conv2d_backward_input_with(
                            tape.layer_input_dim(layer, 0),
                            &wt,
                            flip(i),
                            *stride,
                            *padding,
                            &dy,
                        )?;
                        dins.push(dx);
                        continue_with(&mut d, &mut dinput, tape, layer, dins)?;
                        continue;
                    }
                    let x = tape.layer_input(layer, 0);
                    let (dx, dw, db) = ops::conv::conv2d_backward(x, &wt, *stride, *padding, &dy)?;
                    add_grad(&mut grads, format!("{name}.weight"), dw.into_dyn());
                    if *bias {
                        add_grad(&mut grads, format!("{name}.bias"), db.into_dyn());
                    }
                    dins.push(dx);
                }
                (Op::Linear { bias, .. }, Cache::Conv) => {
                    let wt = weight(i, name)?;
                    if input_only {
                        let (n, c, h, w) = tape.layer_input_dim(layer, 0);
                        let dx = ops::conv::conv2d_backward_input_with(
                            (n, c * h * w, 1, 1),
                            &wt,
                            flip(i),
                            1,
                            0,
                            &dy,
                        )?;
                        dins.push(dx);
                        continue_with(&mut d, &mut dinput, tape, layer, dins)?;
                        continue;
                    }
                    let x = to_flat4(tape.layer_input(layer, 0));
                    let (dx, dw, db) = ops::conv::conv2d_backward(&x, &wt, 1, 0, &dy)?;
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
                (op, Cache::BinConv { a }) => {
                    let flat;
                    let x = match op {
                        Op::Linear { .. } => {
                            flat = to_flat4(tape.layer_input(layer, 0));
                            &flat
                        }
                        _ => tape.layer_input(layer, 0),
                    };
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
                    if input_only {
                        let da = ops::conv::conv2d_backward_input_with(
                            a.dim(),
                            &bwi.approx,
                            flip(i),
                            stride,
                            pad,
                            &dy,
                        )?;
                        let dx = match bwi.scheme {
                            BinScheme::Xnor => ops::activation::sign_ste_backward(x, &da)?,
                            BinScheme::Abc { .. } => {
                                ops::abc::abc_activation_backward(x, &bwi.act, &da)?.dx
                            }
                        };
                        dins.push(dx);
                        continue_with(&mut d, &mut dinput, tape, layer, dins)?;
                        continue;
                    }
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
                (Op::BatchNorm { .. }, Cache::Bn { stats }) => {
                    let g = p1(&self.params, &format!("{name}.weight"))?;
                    if input_only && stats.is_none() {
                        // Running statistics are constants: BN is `scale * x + shift`.
                        let rm = p1(&self.params, &format!("{name}.running_mean"))?;
                        let rv = p1(&self.params, &format!("{name}.running_var"))?;
                        let zeros = Array1::zeros(g.len());
                        let (scale, _) = ops::batchnorm::fold(&g, &zeros, &rm, &rv, BN_EPS)?;
                        dins.push(ops::batchnorm::scale_shift(&dy, &scale, &zeros)?);
                        continue_with(&mut d, &mut dinput, tape, layer, dins)?;
                        continue;
                    }
                    let x = tape.layer_input(layer, 0);
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
                (Op::Relu, Cache::Act) => dins.push(ops::activation::relu_backward(
                    tape.layer_input(layer, 0),
                    &dy,
                )?),
                (Op::Hardtanh, Cache::Act) => dins.push(ops::activation::hardtanh_backward(
                    tape.layer_input(layer, 0),
                    &dy,
                )?),
                (Op::Add, _) => {
                    for _ in 1..layer.inputs.len().max(1) {
                        dins.push(dy.clone());
                    }
                    dins.push(dy);
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
            continue_with(&mut d, &mut dinput, tape, layer, dins)?;
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
}

/// Adds the gradients `dins` of `layer`'s inputs into the pending output gradients `d` (or into
/// `dinput` for the network input).
fn continue_with(
    d: &mut [Option<Array4<f32>>],
    dinput: &mut Array4<f32>,
    tape: &Tape,
    layer: &crate::model::Layer,
    dins: Vec<Array4<f32>>,
) -> Result<()> {
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
                *dinput += &g;
            }
            Some(j) => {
                let shape = tape.dims[j];
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
    Ok(())
}

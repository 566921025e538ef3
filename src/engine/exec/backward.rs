//! The backward pass: from `d loss / d logits`, walks the [`Tape`] in reverse and returns the
//! gradients w.r.t. the unit-scale input and every parameter (binarized layers through the
//! straight-through estimator, see the module doc of [`super`]).

use ndarray::{Array1, Array2, Array4, ArrayD, Axis};

use super::forward::{Cache, Tape};
use super::params::{p1, p4, BinWeights};
use super::{Net, BN_EPS};
use crate::engine::ops;
use crate::engine::params::{BinScheme, Params};
use crate::model::Op;
use crate::{Error, Result};

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
}

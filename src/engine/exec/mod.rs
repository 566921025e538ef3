//! The network executor shared by both engines: walks a [`CompressedNetwork`] layer by layer
//! (topological order), records what each op's backward needs on a [`Tape`], and runs the
//! backward pass for input and parameter gradients ([`Net::backward`], training) or for the
//! input gradient alone, image by image ([`Net::input_grad`], [`Net::logits_and_input_grad`]:
//! the white-box attacks).
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
//! `W_approx = sum_i alpha_i B_i`, then through [`crate::engine::ops::activation::sign_ste_backward`] /
//! [`crate::engine::ops::abc::abc_activation_backward`] and [`crate::engine::ops::xnor::xnor_binarize_backward`] /
//! [`crate::engine::ops::abc::abc_binarize_backward`].
//!
//! Inputs are unit-scale images (\[0,1\]); the executor applies the network's normalisation first
//! and its backward pass returns gradients w.r.t. the unit-scale input.
//!
//! The tape-free inference path ([`Net::infer`]) runs bitwise XNOR convs channel-last
//! ([`crate::engine::binary::BConv2d::forward_nhwc`]; feature maps between them stay NHWC, see
//! [`super::fmap`]), and a binary conv whose output reaches only the next binary conv (through
//! BN and hardtanh) hands it sign bits straight from its integer sums ([`Net::infer_plan`]
//! tabulates, per channel, which sums the float epilogue maps below zero). A binary conv whose
//! float output also feeds a binary conv (a block's output: the next block's first conv and its
//! residual add) writes that output's sign bits in the same sweep, framed for the reader, which
//! then does not pack the map again (a NaN drops the frame, and the reader reports it). Every
//! value it does compute is computed by the same scalar expression as the taped pass, so both
//! stay bit-identical (property-tested).
//!
//! One concern per file: `params` (reading parameter tensors, binarizing weights),
//! `forward` (the taped forward pass and what it records), `backward` (gradients from the
//! tape), `plan` (the image-independent inference plan: fusion groups, folded BN, which
//! layers hand over sign bits), `infer` (the tape-free runtime walking the plan) and
//! `binary_layer` (executing one binarized conv or linear layer on either backend).

mod backward;
mod binary_layer;
mod forward;
mod infer;
mod params;
mod plan;

use ndarray::{Array4, Axis};

use super::params::{schemes, BinScheme, Params};
use crate::variant::CompressedNetwork;
use crate::{Error, Result};

pub use backward::{Grads, InputGradKernels};
pub use forward::Tape;
pub use params::BinWeights;
pub use plan::InferPlan;

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

/// A network with its parameters, ready to run.
pub struct Net {
    pub cn: CompressedNetwork,
    pub params: Params,
    schemes: Vec<Option<BinScheme>>,
}

pub(super) fn to_flat4(x: &Array4<f32>) -> Array4<f32> {
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
}

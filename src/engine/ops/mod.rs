//! Float operators (f32) with forward and backward passes: the building blocks the float
//! reference engine's network executor chains. Tensors are NCHW unless a function says
//! otherwise: the inference path's channel-last forms (`*_nhwc`: [`conv::conv2d_fused_nhwc`],
//! [`direct`], [`pool::global_avg_pool_nhwc`]) take or write NHWC for binary convs that run
//! channel-last.
//!
//! Each trained operator is a pair of plain functions: `op(...)` for the forward pass and
//! `op_backward(..., dy)` returning gradients for the input and every parameter, in that
//! order (the inference-only forms above have no backward). Backward functions take whatever the forward pass needs (its input, or a cache
//! struct the forward returned); nothing is hidden in global state. Shape mismatches are
//! [`crate::Error::Input`] naming the operator and field. Crate-wide conventions (sign(0) = +1)
//! are in the crate doc.
//!
//! Modules: [`conv`] (the float convolutions, with the f64 [`reference`](mod@reference)
//! beside it), [`implicit`] (the stride-1 forward without a column matrix), [`im2col`] (the
//! unfold and its adjoint, for strided forwards and the backward pass), [`weight_grad`] (the im2col-free weight gradient
//! of narrow stride-1 convolutions), [`direct`] (the im2col-free channel-last forward of short
//! reductions), [`gemm`] (backend choice and the inner-product kernel),
//! [`epilogue`] (bias, BN, residual add, activation fused into a conv's output), [`batchnorm`],
//! [`activation`] (ReLU, hardtanh, sign + STE), [`xnor`] and [`abc`]
//! (weight / activation binarization returning the +/-1 tensors and scales separately, for the
//! bit-exact engine), [`shortcut`] (option A, residual add), [`pool`], [`linear`], [`loss`]
//! (softmax cross-entropy, distillation KL).

pub mod abc;
pub mod activation;
pub mod batchnorm;
pub mod conv;
pub mod direct;
pub mod epilogue;
pub mod gemm;
pub mod im2col;
pub mod implicit;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod reference;
pub mod shortcut;
pub mod weight_grad;
pub mod xnor;

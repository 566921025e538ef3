//! The two engines as classifiers: [`FloatEngine`] (float reference, white-box: logits and input
//! gradients through the straight-through estimator) and [`BinaryEngine`] (bit-exact XNOR +
//! popcount for binarized layers; query-only, it implements [`Model`] but not [`WhiteBox`]).
//! Both wrap the same [`Net`]; weights are binarized and packed, and the inference plan built,
//! once at construction. Every gradient the attacks ask for goes through one private function
//! of [`FloatEngine`] (one taped forward, then input-only backward passes from its tape).

use ndarray::{Array2, Array4};

use super::exec::{BinWeights, ConvBackend, InferPlan, InputGradKernels, Mode, Net, Tape};
use crate::attack::{Model, WhiteBox};
use crate::model::Normalization;
use crate::Result;

/// Float reference engine (inference mode: BN running statistics).
pub struct FloatEngine {
    pub net: Net,
    bw: Vec<Option<BinWeights>>,
    plan: InferPlan,
    /// Input-gradient kernels, prepared once like `bw` and `plan` (every attack step reads them).
    kernels: InputGradKernels,
}

/// Bit-exact binarized engine (inference mode).
pub struct BinaryEngine {
    pub net: Net,
    bw: Vec<Option<BinWeights>>,
    plan: InferPlan,
}

impl FloatEngine {
    pub fn new(net: Net) -> Result<Self> {
        let bw = net.binarize(false)?;
        let plan = net.infer_plan(&bw)?;
        let kernels = net.input_grad_kernels(&bw)?;
        Ok(FloatEngine {
            net,
            bw,
            plan,
            kernels,
        })
    }

    /// Logits and the tape (accumulators of binarized layers kept when asked).
    pub fn run(&self, x: &Array4<f32>, keep_accumulators: bool) -> Result<(Array2<f32>, Tape)> {
        self.net.forward(
            x,
            Mode::Eval,
            ConvBackend::Float,
            &self.bw,
            keep_accumulators,
        )
    }

    /// Logits through the tape-free inference path (bit-identical to [`FloatEngine::run`]).
    pub fn try_logits(&self, x: &Array4<f32>) -> Result<Array2<f32>> {
        self.net
            .infer_with(&self.plan, x, ConvBackend::Float, &self.bw)
    }

    /// Gradient w.r.t. the unit-scale input of `sum dlogits * logits`.
    pub fn try_input_vjp(&self, x: &Array4<f32>, dlogits: &Array2<f32>) -> Result<Array4<f32>> {
        let mut one = |_: &Array2<f32>| vec![dlogits.clone()];
        let (_, mut g) = self.taped_logits_and_input_grads(x, &mut one)?;
        Ok(g.pop().expect("one cotangent, one gradient"))
    }

    /// The one place the attacks reach the engine's gradient path: one taped forward pass in
    /// eval mode (its logits are bit-identical to [`FloatEngine::try_logits`]), then one
    /// input-only backward pass per cotangent `dlogits(&logits)` names, all from the same tape.
    fn taped_logits_and_input_grads(
        &self,
        x: &Array4<f32>,
        dlogits: &mut dyn FnMut(&Array2<f32>) -> Vec<Array2<f32>>,
    ) -> Result<(Array2<f32>, Vec<Array4<f32>>)> {
        // Per-image tapes holding only what an input gradient reads, and an input-only backward
        // (no parameter gradients): each image's result is bitwise independent of its batch.
        let (z, tape) = self.net.forward_taped_eval(x, &self.bw)?;
        let grads = dlogits(&z)
            .iter()
            .map(|d| self.net.input_grad_with(&tape, &self.bw, &self.kernels, d))
            .collect::<Result<_>>()?;
        Ok((z, grads))
    }
}

impl BinaryEngine {
    pub fn new(net: Net) -> Result<Self> {
        let bw = net.binarize(true)?;
        let plan = net.infer_plan(&bw)?;
        Ok(BinaryEngine { net, bw, plan })
    }

    pub fn run(&self, x: &Array4<f32>, keep_accumulators: bool) -> Result<(Array2<f32>, Tape)> {
        self.net.forward(
            x,
            Mode::Eval,
            ConvBackend::Bitwise,
            &self.bw,
            keep_accumulators,
        )
    }

    /// Logits through the tape-free inference path (bit-identical to [`BinaryEngine::run`]).
    pub fn try_logits(&self, x: &Array4<f32>) -> Result<Array2<f32>> {
        self.net
            .infer_with(&self.plan, x, ConvBackend::Bitwise, &self.bw)
    }
}

fn shape(net: &Net) -> [usize; 3] {
    net.cn.network.input
}

// The `Model` trait is infallible: attacks hand it images they built themselves inside the
// pixel box, so an error here is a broken invariant (shape checked by the attack drivers), and
// panicking with the engine's message is the honest outcome.
macro_rules! impl_model {
    ($t:ty) => {
        impl Model for $t {
            fn input_shape(&self) -> [usize; 3] {
                shape(&self.net)
            }
            fn num_classes(&self) -> usize {
                self.net.cn.network.num_classes
            }
            fn normalization(&self) -> Normalization {
                self.net.cn.network.normalization.clone()
            }
            fn logits(&self, x: &Array4<f32>) -> Array2<f32> {
                self.try_logits(x).unwrap_or_else(|e| panic!("engine: {e}"))
            }
        }
    };
}
impl_model!(FloatEngine);
impl_model!(BinaryEngine);

impl WhiteBox for FloatEngine {
    fn input_vjp(&self, x: &Array4<f32>, dlogits: &Array2<f32>) -> Array4<f32> {
        self.try_input_vjp(x, dlogits)
            .unwrap_or_else(|e| panic!("engine: {e}"))
    }

    fn logits_and_vjps(
        &self,
        x: &Array4<f32>,
        dlogits: &mut dyn FnMut(&Array2<f32>) -> Vec<Array2<f32>>,
    ) -> (Array2<f32>, Vec<Array4<f32>>) {
        self.taped_logits_and_input_grads(x, dlogits)
            .unwrap_or_else(|e| panic!("engine: {e}"))
    }
}

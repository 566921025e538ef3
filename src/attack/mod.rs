//! Adversarial attacks. White-box attacks take a [`WhiteBox`] classifier (logits and input
//! vector-Jacobian products); black-box attacks take an [`Oracle`], which owns the model privately
//! and exposes only probabilities / top-1 labels, counting every query. A black-box attack
//! therefore cannot reach gradients or logits by construction.
//!
//! Images are in *unit* scale (\[0,1\], NCHW); budgets carry their scale ([`threat::Scale`]) and are
//! converted to unit scale per channel with the model's [`Normalization`].
//!
//! White-box attacks: [`fgsm`], [`pgd`], [`cw`] (Carlini-Wagner L2), [`deepfool`]; configured by
//! [`spec::AttackSpec`] and run over a batch by [`run::run_white`].

pub mod classifier;
pub mod cw;
pub mod deepfool;
pub mod fgsm;
pub mod genattack;
pub mod local_search;
pub mod loss;
pub mod output;
pub mod pgd;
pub mod result;
pub mod run;
pub mod spec;
pub mod testing;
pub mod threat;

pub use crate::model::Normalization;
pub use classifier::{Model, Oracle, WhiteBox};
pub use output::AttackOutput;
pub use result::{curve, summarize, CurvePoint, ImageResult, Summary, TracePoint};
pub use run::{run_white, run_white_reruns, run_white_with_images};
pub use spec::{AttackSpec, Grid, Target};
pub use threat::{Ball, Budget, Norm, Norms, Scale};

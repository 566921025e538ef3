//! Adversarial attacks. White-box attacks take a [`WhiteBox`] classifier (logits and input
//! vector-Jacobian products); black-box attacks take an [`Oracle`], which owns the model privately
//! and exposes only probabilities / top-1 labels, counting every query. A black-box attack
//! therefore cannot reach gradients or logits by construction.
//!
//! Images are in *unit* scale (\[0,1\], NCHW); budgets carry their scale ([`threat::Scale`]) and are
//! converted to unit scale per channel with the model's [`Normalization`].
//!
//! Layers (imports point downwards only): [`classifier`], [`threat`], [`streams`], [`result`],
//! [`batch`], [`loss`] and [`spec`] are leaves; [`output`] builds records on them; the attacks — white-box
//! [`fgsm`], [`pgd`], [`cw`], [`deepfool`], black-box [`local_search`], [`genattack`] — depend on
//! those; [`driver`] (engine choice, targets, per-image execution, batch runs) depends on the
//! attacks, and `bbed attack` and `bbed sweep` call the driver; [`save`] writes adversarial
//! examples to files.

pub mod batch;
pub mod classifier;
pub mod cw;
pub mod deepfool;
pub mod driver;
pub mod fgsm;
pub mod genattack;
pub mod local_search;
pub mod loss;
pub mod output;
pub mod pgd;
pub mod result;
pub mod save;
pub mod spec;
pub mod streams;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod threat;

pub use crate::model::Normalization;
pub use classifier::{Model, Oracle, WhiteBox};
pub use driver::{run_white, run_white_reruns, run_white_with_images};
pub use output::AttackOutput;
pub use result::{curve, summarize, CurvePoint, ImageResult, Summary, TracePoint};
pub use spec::{AttackSpec, Eps, Grid, Step, Target};
pub use threat::{Ball, Budget, Norm, Norms, Scale};

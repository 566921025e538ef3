//! Adversarial attacks. White-box attacks take a [`WhiteBox`] classifier (logits and input
//! vector-Jacobian products); black-box attacks take an [`Oracle`], which owns the model privately
//! and exposes only probabilities / top-1 labels, counting every query. A black-box attack
//! therefore cannot reach gradients or logits by construction.
//!
//! Images are in *unit* scale ([0,1], NCHW); budgets carry their scale ([`threat::Scale`]) and are
//! converted to unit scale per channel with the model's [`Normalization`].

pub mod classifier;
pub mod genattack;
pub mod local_search;
pub mod result;
pub mod threat;

pub use crate::model::Normalization;
pub use classifier::{Model, Oracle, WhiteBox};
pub use result::{ImageResult, TracePoint};
pub use threat::Scale;

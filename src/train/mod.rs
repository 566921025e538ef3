//! Training and compression: optimizers, learning-rate schedules, distillation loss, magnitude
//! pruning masks, checkpoints and a generic, exactly resumable training loop over any
//! [`Trainable`] model.
//!
//! Parameters, gradients and masks are `BTreeMap<String, ArrayD<f32>>` ([`Params`]), so the order
//! of every reduction and update is fixed by the names and runs do not depend on hash seeds.

pub mod amc;
pub mod checkpoint;
pub mod kd;
#[path = "loop.rs"]
pub mod r#loop;
pub mod net;
pub mod optim;
pub mod physical;
pub mod prune;
pub mod schedule;

pub use checkpoint::{Checkpoint, Progress, RngState};
pub use kd::{cross_entropy, kd_loss, KdConfig};
pub use net::NetModel;
pub use optim::{apply_masks, Optimizer, OptimizerConfig, OptimizerState, Params};
pub use prune::{prune_masks, PruneResult, PruneScheme, PruneSpec};
pub use r#loop::{
    evaluate, resume_mismatch, train, EpochRecord, LogitLoss, Predict, RunOptions, Stamp,
    TrainConfig, TrainReport, Trainable,
};
pub use schedule::Schedule;

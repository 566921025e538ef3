//! Learning-rate schedules, evaluated per optimizer step.
//!
//! Epoch-based parameters (milestones, warmup, total) are given in epochs and converted with the
//! number of steps per epoch, so a schedule means the same thing at any batch size. `step` is the
//! 0-based index of the update about to be taken; epoch `e` covers steps
//! `e*steps_per_epoch .. (e+1)*steps_per_epoch`.
//!
//! - `Constant`: `lr`.
//! - `Step` (`torch.optim.lr_scheduler.MultiStepLR` stepped once per epoch):
//!   `lr * gamma^(number of milestones <= epoch)`.
//! - `Cosine` (SGDR without restarts, Loshchilov & Hutter 2017, stepped per update) with optional
//!   linear warmup: during the first `W = warmup*steps_per_epoch` steps, `lr * (step+1)/W` (so the
//!   first step is not wasted at lr 0); afterwards, with `p = (step - W) / (total*spe - W)` clamped
//!   to \[0,1\], `min_lr + (lr - min_lr) * (1 + cos(pi*p)) / 2`.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    Constant {
        lr: f32,
    },
    Step {
        lr: f32,
        /// Epochs at which the rate is multiplied by `gamma`, strictly increasing.
        milestones: Vec<usize>,
        gamma: f32,
    },
    Cosine {
        lr: f32,
        #[serde(default)]
        min_lr: f32,
        /// Epochs of the whole run (warmup included).
        total_epochs: usize,
        #[serde(default)]
        warmup_epochs: usize,
    },
}

impl Schedule {
    /// The base (peak) learning rate.
    pub fn base_lr(&self) -> f32 {
        match *self {
            Schedule::Constant { lr } | Schedule::Step { lr, .. } | Schedule::Cosine { lr, .. } => {
                lr
            }
        }
    }

    pub fn validate(&self) -> Result<()> {
        let lr = self.base_lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::input(
                "schedule.lr",
                format!("{lr} is not a positive finite number"),
            ));
        }
        match self {
            Schedule::Constant { .. } => {}
            Schedule::Step {
                milestones, gamma, ..
            } => {
                if !(gamma.is_finite() && *gamma > 0.0 && *gamma <= 1.0) {
                    return Err(Error::input(
                        "schedule.gamma",
                        format!("{gamma} is not in (0, 1]"),
                    ));
                }
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(Error::input(
                        "schedule.milestones",
                        format!("{milestones:?} are not strictly increasing"),
                    ));
                }
            }
            Schedule::Cosine {
                lr,
                min_lr,
                total_epochs,
                warmup_epochs,
            } => {
                if !(min_lr.is_finite() && *min_lr >= 0.0 && min_lr <= lr) {
                    return Err(Error::input(
                        "schedule.min_lr",
                        format!("{min_lr} is not in [0, lr = {lr}]"),
                    ));
                }
                if *total_epochs == 0 || warmup_epochs >= total_epochs {
                    return Err(Error::input(
                        "schedule.total_epochs",
                        format!(
                            "total_epochs {total_epochs} must be positive and exceed \
                             warmup_epochs {warmup_epochs}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The learning rate for update `step` (0-based) with `steps_per_epoch` updates per epoch.
    pub fn lr_at(&self, step: u64, steps_per_epoch: u64) -> f32 {
        let spe = steps_per_epoch.max(1);
        match self {
            Schedule::Constant { lr } => *lr,
            Schedule::Step {
                lr,
                milestones,
                gamma,
            } => {
                let epoch = step / spe;
                let drops = milestones.iter().filter(|&&m| m as u64 <= epoch).count();
                // Repeated multiplication, as PyTorch applies gamma once per milestone.
                (0..drops).fold(*lr, |a, _| a * gamma)
            }
            Schedule::Cosine {
                lr,
                min_lr,
                total_epochs,
                warmup_epochs,
            } => {
                let (lr, min_lr) = (*lr as f64, *min_lr as f64);
                let warm = *warmup_epochs as u64 * spe;
                let total = (*total_epochs as u64 * spe).max(warm + 1);
                if step < warm {
                    return (lr * (step + 1) as f64 / warm as f64) as f32;
                }
                let p = ((step - warm) as f64 / (total - warm) as f64).clamp(0.0, 1.0);
                (min_lr + (lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())) as f32
            }
        }
    }
}

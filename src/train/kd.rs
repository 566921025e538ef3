//! The distillation objective of training: KD-KL plus cross-entropy with weight `a`, built on the
//! two losses of [`crate::engine::ops::loss`] (re-exported here for the training code).
//!
//! KD-KL is the paper's Eq. (1), `sum_n sum_k p_k log(p_k / q_k)` with `p = softmax(t/T)` (teacher)
//! and `q = softmax(s/T)` (student), averaged over the batch instead of summed (PyTorch's
//! `KLDivLoss(reduction="batchmean")`) so the learning rate does not depend on the batch size, and
//! multiplied by `T^2` (Hinton et al. 2015, Sec. 2): the soft-target gradient scales as `1/T^2`, the
//! factor keeps its magnitude comparable to the hard-label term when `T` changes. With weight `a`:
//!
//! `L = a * T^2 * KL + (1 - a) * CE(s, labels)`, and `dL/ds = a * T * (q - p) / N + (1 - a) *
//! (softmax(s) - onehot) / N`.
//!
//! Computed in f64 like the losses it combines; [`kd_loss`] rounds once at the end.

pub use crate::engine::ops::loss::{
    cross_entropy_f64, kd_kl_f64, log_softmax, softmax_cross_entropy as cross_entropy,
};
use crate::engine::ops::loss::{narrow, widen};
use crate::{Error, Result};
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

/// Distillation settings: temperature `T` (the paper uses 30) and the weight `a` of the KD term.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KdConfig {
    pub temperature: f32,
    pub weight: f32,
}

impl KdConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::input(
                "kd.temperature",
                format!("{} is not a positive finite number", self.temperature),
            ));
        }
        if !(self.weight.is_finite() && (0.0..=1.0).contains(&self.weight)) {
            return Err(Error::input(
                "kd.weight",
                format!("{} is not in [0, 1]", self.weight),
            ));
        }
        Ok(())
    }
}

/// `a * T^2 * KL + (1 - a) * CE` and its gradient w.r.t. `student` (f64); see module docs.
pub fn kd_loss_f64(
    student: &Array2<f64>,
    teacher: &Array2<f64>,
    labels: &[usize],
    cfg: &KdConfig,
) -> Result<(f64, Array2<f64>)> {
    cfg.validate()?;
    let a = cfg.weight as f64;
    let (kd, gkd) = kd_kl_f64(student, teacher, cfg.temperature as f64)?;
    let (ce, gce) = cross_entropy_f64(student, labels)?;
    Ok((a * kd + (1.0 - a) * ce, gkd * a + gce * (1.0 - a)))
}

/// KD-KL plus cross-entropy (module docs) and its gradient w.r.t. the student logits.
pub fn kd_loss(
    student: &Array2<f32>,
    teacher: &Array2<f32>,
    labels: &[usize],
    cfg: &KdConfig,
) -> Result<(f32, Array2<f32>)> {
    kd_loss_f64(&widen(student), &widen(teacher), labels, cfg).map(narrow)
}

/// Top-1 predictions (first maximum on ties).
pub fn argmax_rows(logits: &Array2<f32>) -> Vec<usize> {
    logits
        .axis_iter(Axis(0))
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv {
                        (i, v)
                    } else {
                        (bi, bv)
                    }
                })
                .0
        })
        .collect()
}

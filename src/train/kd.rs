//! Losses on logits and their gradients with respect to the (student) logits: cross-entropy and
//! knowledge distillation by KL divergence (KD-KL).
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
//! Everything is computed in f64 (log-sum-exp with the row maximum subtracted) and the `f32` entry
//! points round once at the end; the f64 core is public so gradients can be checked by finite
//! differences at full precision.

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

/// Row-wise log-softmax of `z / t`.
pub fn log_softmax(z: &Array2<f64>, t: f64) -> Array2<f64> {
    let mut out = z.mapv(|v| v / t);
    for mut row in out.rows_mut() {
        let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<f64>().ln();
        row.mapv_inplace(|v| v - lse);
    }
    out
}

fn check_logits(what: &str, z: &Array2<f64>) -> Result<()> {
    if z.nrows() == 0 || z.ncols() == 0 {
        return Err(Error::input(what, format!("empty logits {:?}", z.dim())));
    }
    if z.iter().any(|v| !v.is_finite()) {
        return Err(Error::input(
            what,
            "logits hold a non-finite value (diverged training? lower the learning rate)",
        ));
    }
    Ok(())
}

/// Mean cross-entropy of `logits` against `labels` and its gradient (f64).
pub fn cross_entropy_f64(logits: &Array2<f64>, labels: &[usize]) -> Result<(f64, Array2<f64>)> {
    check_logits("logits", logits)?;
    let (n, k) = logits.dim();
    if labels.len() != n {
        return Err(Error::input(
            "labels",
            format!("{} labels for {n} rows of logits", labels.len()),
        ));
    }
    if let Some(&l) = labels.iter().find(|&&l| l >= k) {
        return Err(Error::input(
            "labels",
            format!("label {l} is outside 0..{}", k - 1),
        ));
    }
    let ls = log_softmax(logits, 1.0);
    let loss = -labels
        .iter()
        .enumerate()
        .map(|(i, &l)| ls[[i, l]])
        .sum::<f64>()
        / n as f64;
    let mut grad = ls.mapv(f64::exp);
    for (i, &l) in labels.iter().enumerate() {
        grad[[i, l]] -= 1.0;
    }
    grad /= n as f64;
    Ok((loss, grad))
}

/// `T^2 * mean_n KL(softmax(t_n/T) || softmax(s_n/T))` and its gradient w.r.t. `student` (f64).
pub fn kd_kl_f64(
    student: &Array2<f64>,
    teacher: &Array2<f64>,
    temperature: f64,
) -> Result<(f64, Array2<f64>)> {
    check_logits("student logits", student)?;
    check_logits("teacher logits", teacher)?;
    if student.dim() != teacher.dim() {
        return Err(Error::input(
            "teacher logits",
            format!(
                "shape {:?} differs from the student's {:?} (a teacher for another task?)",
                teacher.dim(),
                student.dim()
            ),
        ));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::input(
            "kd.temperature",
            format!("{temperature} is not a positive finite number"),
        ));
    }
    let n = student.nrows() as f64;
    let lq = log_softmax(student, temperature);
    let lp = log_softmax(teacher, temperature);
    let p = lp.mapv(f64::exp);
    // 0 * log 0 = 0: a teacher probability that underflowed contributes nothing.
    let kl: f64 = p
        .iter()
        .zip(lp.iter().zip(lq.iter()))
        .map(|(&p, (&lp, &lq))| if p > 0.0 { p * (lp - lq) } else { 0.0 })
        .sum();
    let t2 = temperature * temperature;
    let grad = (lq.mapv(f64::exp) - &p) * (temperature / n);
    Ok((t2 * kl / n, grad))
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

fn widen(z: &Array2<f32>) -> Array2<f64> {
    z.mapv(|v| v as f64)
}

fn narrow((l, g): (f64, Array2<f64>)) -> (f32, Array2<f32>) {
    (l as f32, g.mapv(|v| v as f32))
}

/// Mean cross-entropy and its gradient w.r.t. the logits.
pub fn cross_entropy(logits: &Array2<f32>, labels: &[usize]) -> Result<(f32, Array2<f32>)> {
    cross_entropy_f64(&widen(logits), labels).map(narrow)
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

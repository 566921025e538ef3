//! Classification losses on logits `[N, classes]`, each returning the loss and its gradient
//! w.r.t. the (student) logits. Both are means over the batch.
//!
//! - Softmax cross-entropy: `L = -(1/N) sum_n log softmax(z_n)[y_n]`,
//!   `dL/dz = (softmax(z) - onehot(y)) / N`.
//! - Knowledge-distillation KL (Hinton et al. 2015; the paper's Eq. 1 with a batch mean, as
//!   PyTorch `KLDivLoss(reduction="batchmean")` scaled by `T^2`):
//!   `L = T^2 * (1/N) sum_n KL(p_t || p_s)`, `p = softmax(z / T)`, so that gradient magnitudes
//!   stay comparable across temperatures; `dL/dz_s = (T / N) * (p_s - p_t)`.
//!
//! Everything is computed in f64 (log-sum-exp with the row maximum subtracted); the `f32`
//! entry points round once at the end, and the f64 core is public so gradients can be checked
//! by finite differences at full precision. Empty or non-finite logits are input errors (a
//! NaN loss would look like a number to a training loop; non-finite logits usually mean
//! diverged training). This is the crate's one implementation of both losses: training
//! ([`crate::train::kd`]) uses it too.

use crate::{Error, Result};
use ndarray::Array2;

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

pub(crate) fn widen(z: &Array2<f32>) -> Array2<f64> {
    z.mapv(|v| v as f64)
}

pub(crate) fn narrow((l, g): (f64, Array2<f64>)) -> (f32, Array2<f32>) {
    (l as f32, g.mapv(|v| v as f32))
}

/// Row-wise softmax (temperature 1).
pub fn softmax(z: &Array2<f32>) -> Array2<f32> {
    log_softmax(&widen(z), 1.0).mapv(|v| v.exp() as f32)
}

/// Mean softmax cross-entropy and `dL/dlogits`. Labels must be `< classes`.
pub fn softmax_cross_entropy(logits: &Array2<f32>, labels: &[usize]) -> Result<(f32, Array2<f32>)> {
    cross_entropy_f64(&widen(logits), labels).map(narrow)
}

/// Distillation loss `T^2 * mean_n KL(softmax(t/T) || softmax(s/T))` and its gradient w.r.t.
/// the student logits `s`.
pub fn kd_kl_loss(
    student: &Array2<f32>,
    teacher: &Array2<f32>,
    temperature: f32,
) -> Result<(f32, Array2<f32>)> {
    kd_kl_f64(&widen(student), &widen(teacher), temperature as f64).map(narrow)
}

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
//! Softmax is computed with the max subtracted, in f64. Non-finite logits propagate to a NaN
//! loss and gradient (documented, not hidden); callers decide whether that is an error.

use crate::{Error, Result};
use ndarray::{Array2, ArrayView1};

fn softmax_row(z: ArrayView1<f32>, t: f64) -> Vec<f64> {
    let m = z
        .iter()
        .fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64 / t));
    let e: Vec<f64> = z.iter().map(|&v| (v as f64 / t - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn check_logits(field: &str, z: &Array2<f32>) -> Result<()> {
    if z.nrows() == 0 || z.ncols() == 0 {
        return Err(Error::input(field, format!("empty logits {:?}", z.dim())));
    }
    Ok(())
}

/// Row-wise softmax (with temperature 1).
pub fn softmax(z: &Array2<f32>) -> Array2<f32> {
    let mut p = Array2::<f32>::zeros(z.dim());
    for (n, row) in z.rows().into_iter().enumerate() {
        for (k, v) in softmax_row(row, 1.0).into_iter().enumerate() {
            p[[n, k]] = v as f32;
        }
    }
    p
}

/// Mean softmax cross-entropy and `dL/dlogits`. Labels must be `< classes`.
pub fn softmax_cross_entropy(logits: &Array2<f32>, labels: &[usize]) -> Result<(f32, Array2<f32>)> {
    check_logits("softmax_cross_entropy logits", logits)?;
    let (n, k) = logits.dim();
    if labels.len() != n {
        return Err(Error::input(
            "softmax_cross_entropy labels",
            format!("{} labels for a batch of {n}", labels.len()),
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
        return Err(Error::input(
            "softmax_cross_entropy labels",
            format!("label {l} of image {i} is not below {k} classes"),
        ));
    }
    let mut loss = 0.0f64;
    let mut d = Array2::<f32>::zeros((n, k));
    for (i, row) in logits.rows().into_iter().enumerate() {
        let p = softmax_row(row, 1.0);
        // log p_y = z_y - logsumexp(z), computed directly to keep precision for tiny p_y.
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        loss += lse - row[labels[i]] as f64;
        for (c, pc) in p.into_iter().enumerate() {
            let t = if c == labels[i] { 1.0 } else { 0.0 };
            d[[i, c]] = ((pc - t) / n as f64) as f32;
        }
    }
    Ok(((loss / n as f64) as f32, d))
}

/// Distillation loss `T^2 * mean_n KL(softmax(t/T) || softmax(s/T))` and its gradient w.r.t.
/// the student logits `s`.
pub fn kd_kl_loss(
    student: &Array2<f32>,
    teacher: &Array2<f32>,
    temperature: f32,
) -> Result<(f32, Array2<f32>)> {
    check_logits("kd_kl_loss student", student)?;
    if student.dim() != teacher.dim() {
        return Err(Error::input(
            "kd_kl_loss teacher",
            format!(
                "teacher logits {:?} vs student {:?}",
                teacher.dim(),
                student.dim()
            ),
        ));
    }
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(Error::input(
            "kd_kl_loss temperature",
            format!("must be positive and finite, got {temperature}"),
        ));
    }
    let t = temperature as f64;
    let (n, k) = student.dim();
    let mut loss = 0.0f64;
    let mut d = Array2::<f32>::zeros((n, k));
    for i in 0..n {
        let srow = student.row(i);
        let ps = softmax_row(srow, t);
        let pt = softmax_row(teacher.row(i), t);
        // log p_s via log-sum-exp for precision.
        let m = srow
            .iter()
            .fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64 / t));
        let lse = m + srow
            .iter()
            .map(|&v| (v as f64 / t - m).exp())
            .sum::<f64>()
            .ln();
        for c in 0..k {
            if pt[c] > 0.0 {
                loss += pt[c] * (pt[c].ln() - (srow[c] as f64 / t - lse));
            }
            d[[i, c]] = (t / n as f64 * (ps[c] - pt[c])) as f32;
        }
    }
    Ok(((t * t * loss / n as f64) as f32, d))
}

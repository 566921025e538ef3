//! ABC-Net binary bases (Lin, Zhao, Pan, NeurIPS 2017): M weight bases with least-squares
//! scales, and N shifted activation bases with trainable shifts and scales.
//!
//! Weights. `B_i = sign(W - mean(W) + u_i * std(W))`, `u_i = -1 + (i-1) * 2/(M-1)` (u = 0 for
//! M = 1), i = 1..M. `mean` and `std` are taken over the *whole tensor* (not per filter) and
//! `std` is the population standard deviation (divide by the element count), as the public
//! implementations do (`tf.nn.moments`). The scales minimise `||W - sum_i alpha_i B_i||^2`:
//! the normal equations `(B^T B) alpha = B^T W` (M x M) are solved in f64 by Gaussian
//! elimination with partial pivoting; a basis that duplicates earlier ones (e.g. a constant W)
//! gets alpha = 0, which is still a least-squares solution. `approx = sum_i alpha_i B_i`.
//!
//! Weight backward (ABC-Net Eq. 4 with a straight-through estimator per basis, clipped as the
//! crate's sign STE): `dW = sum_i alpha_i * 1{|W - mean + u_i std| <= 1} * d approx`, and the
//! scales' gradient `dalpha_i = sum(d approx * B_i)` (for callers that train alphas instead of
//! recomputing them). The dependence of mean, std and the least-squares alphas on W is not
//! differentiated (treated as constants), as in the paper.
//!
//! Activations. `A = sum_j beta_j * H(x + v_j)` with `H(y) = sign(clip(y, 0, 1) - 0.5)`, i.e.
//! +1 for `y >= 0.5` and -1 below (sign(0) = +1). Backward STE: `dH/dy = 1{0 <= y <= 1}` (the
//! derivative of the clip; the sign's STE window |.| <= 1 always contains clip - 0.5):
//! `dx = sum_j beta_j 1{0 <= x+v_j <= 1} dA`, `dv_j = sum(beta_j 1{0 <= x+v_j <= 1} dA)`,
//! `dbeta_j = sum(H(x + v_j) dA)`.
//!
//! Base sums. A binarized layer needs every `s_ij = conv(a_j, B_i)` on its own (the engines
//! scale and add them in a fixed order). [`stack_bases`] puts the M weight bases of a conv
//! side by side along output channels, and [`stacked_sums`] gives all M sums of one
//! activation base as one convolution with `M*O` outputs: one im2col of `a_j` instead of M,
//! and one GEMM wide enough for the kernel instead of M narrow ones. The sums are exact
//! integers (products of +/-1 added in f32 below 2^24), so they equal the per-pair
//! convolutions bit for bit whatever order the GEMM adds in.

use super::activation::sign_scalar;
use crate::{Error, Result};
use ndarray::{s, Array, Array4, ArrayView4, Axis, Dimension, Zip};
use rayon::prelude::*;

/// `u_i` for M bases.
pub fn weight_shifts(m: usize) -> Vec<f32> {
    if m == 1 {
        return vec![0.0];
    }
    (0..m)
        .map(|i| -1.0 + i as f32 * 2.0 / (m - 1) as f32)
        .collect()
}

/// M weight bases and their scales.
#[derive(Clone, Debug, PartialEq)]
pub struct AbcWeights<D: Dimension> {
    /// `B_i` as +/-1 f32, each the shape of W.
    pub bases: Vec<Array<f32, D>>,
    /// Least-squares `alpha_i`.
    pub alphas: Vec<f32>,
    /// `u_i`.
    pub shifts: Vec<f32>,
    /// mean(W) over the whole tensor.
    pub mean: f32,
    /// Population std(W) over the whole tensor.
    pub std: f32,
    /// `sum_i alpha_i B_i`.
    pub approx: Array<f32, D>,
}

/// Solves the symmetric M x M system `g a = r` (row-major `g`); dependent columns get 0.
fn solve_normal_equations(mut g: Vec<f64>, mut r: Vec<f64>, m: usize) -> Vec<f64> {
    let scale = g.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1.0);
    let tol = 1e-9 * scale;
    let mut pivot_col = Vec::new();
    let mut row = 0;
    for col in 0..m {
        let (best, val) = (row..m)
            .map(|i| (i, g[i * m + col].abs()))
            .fold((row, -1.0), |a, b| if b.1 > a.1 { b } else { a });
        if row >= m || val <= tol {
            continue;
        }
        for k in 0..m {
            g.swap(row * m + k, best * m + k);
        }
        r.swap(row, best);
        for i in 0..m {
            if i != row {
                let f = g[i * m + col] / g[row * m + col];
                if f != 0.0 {
                    for k in 0..m {
                        g[i * m + k] -= f * g[row * m + k];
                    }
                    r[i] -= f * r[row];
                }
            }
        }
        pivot_col.push((row, col));
        row += 1;
    }
    let mut a = vec![0.0; m];
    for (row, col) in pivot_col {
        a[col] = r[row] / g[row * m + col];
    }
    a
}

/// Computes M weight bases and least-squares scales for `w` (any shape). Errors on M = 0, an
/// empty tensor or non-finite weights.
pub fn abc_binarize<D: Dimension>(w: &Array<f32, D>, m: usize) -> Result<AbcWeights<D>> {
    if m == 0 {
        return Err(Error::input("abc weight bases", "M must be at least 1"));
    }
    if w.is_empty() {
        return Err(Error::input("abc weight", "empty weight tensor"));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::input(
            "abc weight",
            format!("element {i} is not finite"),
        ));
    }
    let len = w.len() as f64;
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / len;
    let std = (w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len).sqrt();
    let shifts = weight_shifts(m);
    let bases: Vec<Array<f32, D>> = shifts
        .iter()
        .map(|&u| w.mapv(|v| sign_scalar((v as f64 - mean + u as f64 * std) as f32)))
        .collect();
    let mut g = vec![0.0f64; m * m];
    let mut r = vec![0.0f64; m];
    for i in 0..m {
        r[i] = Zip::from(&bases[i])
            .and(w)
            .fold(0.0f64, |a, &b, &v| a + b as f64 * v as f64);
        for j in i..m {
            let s = Zip::from(&bases[i])
                .and(&bases[j])
                .fold(0.0f64, |a, &p, &q| a + (p * q) as f64);
            g[i * m + j] = s;
            g[j * m + i] = s;
        }
    }
    let alphas: Vec<f32> = solve_normal_equations(g, r, m)
        .into_iter()
        .map(|a| a as f32)
        .collect();
    let mut approx = Array::<f32, D>::zeros(w.raw_dim());
    for (b, &a) in bases.iter().zip(&alphas) {
        approx.scaled_add(a, b);
    }
    Ok(AbcWeights {
        bases,
        alphas,
        shifts,
        mean: mean as f32,
        std: std as f32,
        approx,
    })
}

/// Backward of [`abc_binarize`]: returns `(dW, dalphas)` for `d_approx` = dL/d(approx).
pub fn abc_binarize_backward<D: Dimension>(
    w: &Array<f32, D>,
    abc: &AbcWeights<D>,
    d_approx: &Array<f32, D>,
) -> Result<(Array<f32, D>, Vec<f32>)> {
    if w.shape() != d_approx.shape() || abc.approx.shape() != w.shape() {
        return Err(Error::input(
            "abc_binarize_backward d_approx",
            format!(
                "gradient shape {:?} differs from weight shape {:?}",
                d_approx.shape(),
                w.shape()
            ),
        ));
    }
    let mut dw = Array::<f32, D>::zeros(w.raw_dim());
    for (&u, &a) in abc.shifts.iter().zip(&abc.alphas) {
        let shift = -abc.mean + u * abc.std;
        Zip::from(&mut dw)
            .and(w)
            .and(d_approx)
            .for_each(|d, &v, &g| {
                if (v + shift).abs() <= 1.0 {
                    *d += a * g;
                }
            });
    }
    let dalphas = abc
        .bases
        .iter()
        .map(|b| {
            Zip::from(b)
                .and(d_approx)
                .fold(0.0f64, |s, &p, &g| s + (p * g) as f64) as f32
        })
        .collect();
    Ok((dw, dalphas))
}

/// The weight bases `[O, C, KH, KW]` stacked along output channels: `[M*O, C, KH, KW]`, base
/// `i` in channels `[i*O, (i+1)*O)`. Errors on no bases or bases of different shapes.
pub fn stack_bases(bases: &[Array4<f32>]) -> Result<Array4<f32>> {
    let Some(first) = bases.first() else {
        return Err(Error::input("abc weight bases", "M must be at least 1"));
    };
    if let Some(i) = bases.iter().position(|b| b.dim() != first.dim()) {
        return Err(Error::input(
            "abc weight bases",
            format!(
                "base {i} has shape {:?}, base 0 {:?}",
                bases[i].dim(),
                first.dim()
            ),
        ));
    }
    let views: Vec<_> = bases.iter().map(|b| b.view()).collect();
    Ok(ndarray::concatenate(Axis(0), &views).expect("same shapes"))
}

/// `conv(a, B_i)` for every weight base at once: `[N, M*O, HO, WO]` from `stacked` =
/// [`stack_bases`] (see the module doc); [`base_sum`] picks out one base's channels.
pub fn stacked_sums(
    a: &Array4<f32>,
    stacked: &Array4<f32>,
    stride: usize,
    pad: usize,
) -> Result<Array4<f32>> {
    super::conv::conv2d(a, stacked, None, stride, pad)
}

/// Base `i`'s sums `[N, O, HO, WO]` in a `[N, M*O, HO, WO]` result of [`stacked_sums`] (or of
/// any tensor laid out the same way) with `m` bases.
pub fn base_sum<T>(sums: &Array4<T>, m: usize, i: usize) -> ArrayView4<'_, T> {
    let o = sums.dim().1 / m;
    sums.slice(s![.., i * o..(i + 1) * o, .., ..])
}

/// `H(y) = sign(clip(y, 0, 1) - 0.5)`.
#[inline]
pub fn heaviside_pm1(y: f32) -> f32 {
    // `clip(y, 0, 1) - 0.5 >= 0` exactly when `y >= 0.5` (the subtraction is exact on
    // [0.25, 1] and far from zero below), and NaN gives -1 either way: the comparison alone,
    // without the clamp's branches, so callers' loops vectorise.
    if y >= 0.5 {
        1.0
    } else {
        -1.0
    }
}

/// Trainable parameters of N activation bases.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AbcActivation {
    /// Shifts `v_j`.
    pub shifts: Vec<f32>,
    /// Scales `beta_j`.
    pub betas: Vec<f32>,
}

impl AbcActivation {
    /// The public implementations' initialisation: `v_j = 0`, `beta_j = 1`. Note that with
    /// N > 1 all bases start identical and get identical gradients, so they stay identical;
    /// use [`AbcActivation::spread`] to break the symmetry.
    pub fn init(n: usize) -> Self {
        AbcActivation {
            shifts: vec![0.0; n],
            betas: vec![1.0; n],
        }
    }

    /// Shifts that place the N thresholds `0.5 - v_j` evenly at `(j - 1/2) / N` in [0, 1]
    /// (v = 0 for N = 1), betas 1.
    pub fn spread(n: usize) -> Self {
        let shifts = (0..n).map(|j| 0.5 - (j as f32 + 0.5) / n as f32).collect();
        AbcActivation {
            shifts,
            betas: vec![1.0; n],
        }
    }

    fn check(&self) -> Result<()> {
        if self.shifts.is_empty() || self.shifts.len() != self.betas.len() {
            return Err(Error::input(
                "abc activation",
                format!(
                    "{} shifts and {} betas: need the same, nonzero count",
                    self.shifts.len(),
                    self.betas.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Output of [`abc_activation`].
#[derive(Clone, Debug, PartialEq)]
pub struct AbcActivationOut<D: Dimension> {
    /// `A = sum_j beta_j * bases[j]`.
    pub a: Array<f32, D>,
    /// `H(x + v_j)` as +/-1 f32, one per base (for the bit-exact engine).
    pub bases: Vec<Array<f32, D>>,
}

/// Gradients from [`abc_activation_backward`].
#[derive(Clone, Debug, PartialEq)]
pub struct AbcActivationGrad<D: Dimension> {
    pub dx: Array<f32, D>,
    pub dv: Vec<f32>,
    pub dbeta: Vec<f32>,
}

/// Forward: `A` and the +/-1 bases.
pub fn abc_activation<D: Dimension>(
    x: &Array<f32, D>,
    p: &AbcActivation,
) -> Result<AbcActivationOut<D>> {
    p.check()?;
    let bases: Vec<Array<f32, D>> = p
        .shifts
        .iter()
        .map(|&v| x.mapv(|e| heaviside_pm1(e + v)))
        .collect();
    let mut a = Array::<f32, D>::zeros(x.raw_dim());
    for (b, &beta) in bases.iter().zip(&p.betas) {
        a.scaled_add(beta, b);
    }
    Ok(AbcActivationOut { a, bases })
}

/// Elements per block of [`abc_activation_backward`]: the blocks' partial sums are added in
/// block order, so the result does not depend on the thread count; a block's `x`, `dA` and
/// `dx` stay in L1 while every base passes over it.
const ACT_BLOCK: usize = 2048;

/// Interleaved partial sums per base within a block (one AVX-512 register of f64).
const LANES: usize = 8;

/// Backward (STE, see module doc). One pass over the elements for all bases, block by block
/// in parallel: `dx` receives the bases' terms in base order (as one pass per base would
/// add them); `dv` and `dbeta` are f64 sums in a fixed order ([`LANES`] interleaved partial
/// sums per [`ACT_BLOCK`], blocks in order).
pub fn abc_activation_backward<D: Dimension>(
    x: &Array<f32, D>,
    p: &AbcActivation,
    da: &Array<f32, D>,
) -> Result<AbcActivationGrad<D>> {
    p.check()?;
    if x.shape() != da.shape() {
        return Err(Error::input(
            "abc_activation_backward da",
            format!(
                "gradient shape {:?} differs from input shape {:?}",
                da.shape(),
                x.shape()
            ),
        ));
    }
    let (x_std, da_std) = (x.as_standard_layout(), da.as_standard_layout());
    let xs = x_std.as_slice().expect("standard layout");
    let gs = da_std.as_slice().expect("standard layout");
    let isa = crate::engine::cpu::isa();
    let mut dx = vec![0.0f32; xs.len()];
    let partials: Vec<Vec<[f64; 2]>> = dx
        .par_chunks_mut(ACT_BLOCK)
        .zip(xs.par_chunks(ACT_BLOCK))
        .zip(gs.par_chunks(ACT_BLOCK))
        .map(|((d, x), g)| {
            let bases = p.shifts.iter().zip(&p.betas);
            bases
                .map(|(&v, &beta)| act_block_at(isa, d, x, g, v, beta))
                .collect()
        })
        .collect();
    let mut dv = vec![0.0f64; p.shifts.len()];
    let mut dbeta = vec![0.0f64; p.shifts.len()];
    for block in &partials {
        for ((sv, sb), [bv, bb]) in dv.iter_mut().zip(dbeta.iter_mut()).zip(block) {
            *sv += bv;
            *sb += bb;
        }
    }
    Ok(AbcActivationGrad {
        dx: Array::from_shape_vec(x.raw_dim(), dx).expect("same element count"),
        dv: dv.into_iter().map(|v| v as f32).collect(),
        dbeta: dbeta.into_iter().map(|v| v as f32).collect(),
    })
}

crate::engine::cpu::vectorized!(
    /// [`act_block`] compiled for the vector level of `isa`.
    fn act_block_at(d: &mut [f32], x: &[f32], g: &[f32], v: f32, beta: f32) -> [f64; 2] = act_block;
);

/// One activation base over one block: adds `beta * 1{0 <= x+v <= 1} * g` into `d` and returns
/// the block's sums of that term and of `H(x + v) * g`. Written without branches (and without
/// captured accumulators) so that it vectorises across the lanes.
#[inline(always)]
fn act_block(d: &mut [f32], x: &[f32], g: &[f32], v: f32, beta: f32) -> [f64; 2] {
    let mut sv = [0.0f64; LANES];
    let mut sb = [0.0f64; LANES];
    let mut dc = d.chunks_exact_mut(LANES);
    let (mut xc, mut gc) = (x.chunks_exact(LANES), g.chunks_exact(LANES));
    for ((d, x), g) in (&mut dc).zip(&mut xc).zip(&mut gc) {
        for l in 0..LANES {
            let (dn, a, b) = act_term(d[l], x[l], g[l], v, beta);
            d[l] = dn;
            sv[l] += a;
            sb[l] += b;
        }
    }
    let tail = dc.into_remainder().iter_mut();
    for ((d, &x), &g) in tail.zip(xc.remainder()).zip(gc.remainder()) {
        let (dn, a, b) = act_term(*d, x, g, v, beta);
        *d = dn;
        sv[0] += a;
        sb[0] += b;
    }
    [sv.iter().sum(), sb.iter().sum()]
}

/// One element of [`act_block`]: the new `d`, its `dv` term and its `dbeta` term.
#[inline(always)]
fn act_term(d: f32, x: f32, g: f32, v: f32, beta: f32) -> (f32, f64, f64) {
    let y = x + v;
    let t = beta * g;
    // Both comparisons, not `contains` (which short-circuits into branches).
    #[allow(clippy::manual_range_contains)]
    let on = (y >= 0.0) & (y <= 1.0);
    let dn = if on { d + t } else { d };
    let tv = if on { t as f64 } else { 0.0 };
    (dn, tv, (heaviside_pm1(y) * g) as f64)
}

//! Naive reference implementations the simulator is tested against: direct convolutions written
//! from the definition (no packing, no lanes, no slices), plus the stated error bound of the
//! fixed-point path against an `f32` reference.
//!
//! Layouts: weights `[out][in][k][k]`, activations `[c][h][w]`, outputs `[out][oh][ow]`.
//! Padded taps are skipped (zero padding).

use crate::model::geom::ConvGeom;

fn conv<T: Copy, A: Copy + Default + std::ops::AddAssign>(
    g: &ConvGeom,
    w: &[T],
    x: &[T],
    mul: impl Fn(T, T) -> A,
) -> Vec<A> {
    let k = g.kh;
    let mut out = vec![A::default(); g.o * g.pixels()];
    for o in 0..g.o {
        for oy in 0..g.ho {
            for ox in 0..g.wo {
                let mut acc = A::default();
                for i in 0..g.c {
                    for kh in 0..k {
                        for kw in 0..k {
                            if let Some((y, xx)) = g.input_at(oy, ox, kh, kw) {
                                acc += mul(
                                    w[((o * g.c + i) * k + kh) * k + kw],
                                    x[(i * g.h + y) * g.w + xx],
                                );
                            }
                        }
                    }
                }
                out[(o * g.ho + oy) * g.wo + ox] = acc;
            }
        }
    }
    out
}

/// +/-1 convolution: the plain `sum w * x`.
pub fn binary_conv(g: &ConvGeom, w: &[i8], x: &[i8]) -> Vec<i32> {
    conv(g, w, x, |a, b| a as i32 * b as i32)
}

/// Integer convolution of raw fixed-point values (exact).
pub fn fixed_conv(g: &ConvGeom, w: &[i32], x: &[i32]) -> Vec<i64> {
    conv(g, w, x, |a, b| a as i64 * b as i64)
}

/// `f32` convolution accumulated in `f32`.
pub fn float_conv(g: &ConvGeom, w: &[f32], x: &[f32]) -> Vec<f32> {
    conv(g, w, x, |a, b| a * b)
}

/// Per-output bound on `|fixed_output_as_f32 - float_conv|` when `w` and `x` are rounded to
/// nearest with `wf` / `af` fractional bits (in range):
/// `sum_taps (|x| e_w + |w| e_x + e_x e_w)` (quantisation, with `e = 2^-(frac+1)`)
/// `+ gamma_K * sum_taps |x w|` (f32 accumulation of the reference, `gamma_K = K u / (1 - K u)`,
/// `u = 2^-24`) `+ u * (|y| + quantisation term)` (one rounding of the exact accumulator to f32).
/// The fixed-point accumulation itself is exact (integer, drained before overflow).
pub fn fixed_error_bound(g: &ConvGeom, w: &[f32], x: &[f32], af: u32, wf: u32) -> Vec<f32> {
    let ex = (-(af as f64) - 1.0).exp2();
    let ew = (-(wf as f64) - 1.0).exp2();
    let u = (-24f64).exp2();
    let kk = g.reduction() as f64;
    let gamma = kk * u / (1.0 - kk * u);
    let wd: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let quant = conv(g, &wd, &xd, |a, b| b.abs() * ew + a.abs() * ex + ex * ew);
    let absprod = conv(g, &wd, &xd, |a, b| (a * b).abs());
    quant
        .iter()
        .zip(&absprod)
        .map(|(&q, &p)| {
            let bound = q + gamma * p + u * (p + q) + u * (p + q) * 1e-3;
            bound as f32 * (1.0 + 1e-6) + f32::MIN_POSITIVE
        })
        .collect()
}

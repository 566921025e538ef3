//! Reference 2-D convolution (cross-correlation, as PyTorch's `conv2d`) in f64, forward and
//! backward, by direct summation over the definition
//! `y[n,o,i,j] = b[o] + sum_{c,p,q} x[n,c, i*s+p-pad, j*s+q-pad] * w[o,c,p,q]`,
//! where out-of-range input positions are zero (zero padding).
//! Output size: `(H + 2*pad - K) / s + 1` (floor), as PyTorch.

use ndarray::{Array1, Array4};

fn out_size(h: usize, k: usize, stride: usize, pad: usize) -> usize {
    (h + 2 * pad - k) / stride + 1
}

/// Input value at a possibly padded position, or None outside the image.
fn at(h: usize, i: usize, p: usize, stride: usize, pad: usize) -> Option<usize> {
    let pos = (i * stride + p) as isize - pad as isize;
    if pos < 0 || pos >= h as isize {
        None
    } else {
        Some(pos as usize)
    }
}

/// Forward pass. Shapes: x \[N,C,H,W\], w [O,C,K,K'], b \[O\].
pub fn conv2d(
    x: &Array4<f64>,
    w: &Array4<f64>,
    b: Option<&Array1<f64>>,
    stride: usize,
    pad: usize,
) -> Array4<f64> {
    let (n, c, h, wd) = x.dim();
    let (o, c2, kh, kw) = w.dim();
    assert_eq!(c, c2);
    let (ho, wo) = (out_size(h, kh, stride, pad), out_size(wd, kw, stride, pad));
    let mut y = Array4::<f64>::zeros((n, o, ho, wo));
    for ni in 0..n {
        for oi in 0..o {
            for i in 0..ho {
                for j in 0..wo {
                    let mut s = b.map_or(0.0, |b| b[oi]);
                    for ci in 0..c {
                        for p in 0..kh {
                            for q in 0..kw {
                                if let (Some(r), Some(t)) =
                                    (at(h, i, p, stride, pad), at(wd, j, q, stride, pad))
                                {
                                    s += x[[ni, ci, r, t]] * w[[oi, ci, p, q]];
                                }
                            }
                        }
                    }
                    y[[ni, oi, i, j]] = s;
                }
            }
        }
    }
    y
}

/// Backward pass: given dL/dy, returns (dL/dx, dL/dw, dL/db), each by scattering the same
/// products the forward pass summed.
pub fn conv2d_backward(
    x: &Array4<f64>,
    w: &Array4<f64>,
    stride: usize,
    pad: usize,
    dy: &Array4<f64>,
) -> (Array4<f64>, Array4<f64>, Array1<f64>) {
    let (n, c, h, wd) = x.dim();
    let (o, _, kh, kw) = w.dim();
    let (_, _, ho, wo) = dy.dim();
    let mut dx = Array4::<f64>::zeros(x.dim());
    let mut dw = Array4::<f64>::zeros(w.dim());
    let mut db = Array1::<f64>::zeros(o);
    for ni in 0..n {
        for oi in 0..o {
            for i in 0..ho {
                for j in 0..wo {
                    let g = dy[[ni, oi, i, j]];
                    db[oi] += g;
                    for ci in 0..c {
                        for p in 0..kh {
                            for q in 0..kw {
                                if let (Some(r), Some(t)) =
                                    (at(h, i, p, stride, pad), at(wd, j, q, stride, pad))
                                {
                                    dx[[ni, ci, r, t]] += g * w[[oi, ci, p, q]];
                                    dw[[oi, ci, p, q]] += g * x[[ni, ci, r, t]];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}
